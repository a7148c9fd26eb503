"""The book's figures: numbers computed in Python, drawn by Vega-Lite in the browser.

A figure is **named tables** (columnar data computed by Python) plus **Vega-Lite panels** (Altair
charts that read those tables by name with ``alt.Data(name=...)``). The design and its reasons
are in CONTRIBUTING.md ("Figures").

* :class:`Explorable` — a figure with sliders: ``compute(**values, **fixed)`` returns the tables
  for any slider setting; the book precomputes them over each slider's grid (identical tables are
  stored once) and draws them with Vega in the browser (``static/pgfigure.js``); in a kernel
  :meth:`Explorable.live` recomputes for any value in the sliders' ranges.
* :class:`DataFigure` — the same without sliders (a static figure drawn from data).
* :class:`Slider`, :func:`linear_grid`, :func:`log_grid` — the sliders and their grids.
* :mod:`pgcore.widgets.style` — fonts, sizes and colours for every panel.

Both front ends draw the same Vega-Lite panels with the same tables, so they cannot disagree.
:meth:`Explorable.display` is what a book cell shows: an HTML block with accessible sliders, a
plain-text read-out, the chart at the default setting as inline SVG (rendered by vl-convert, so
it shows at once, with or without JavaScript) and the data as JSON.
"""

from __future__ import annotations

import copy
import hashlib
import html
import itertools
import json
import math
import re
import statistics
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from . import style

__all__ = [
    "Slider",
    "Explorable",
    "DataFigure",
    "linear_grid",
    "log_grid",
    "style",
    "STATIC_DIR",
    "pick_nearest",
    "one_thread",
]

#: The browser files (pgfigure.js, vega.min.js, vega-lite.min.js), shipped as package data.
STATIC_DIR = Path(__file__).resolve().parent / "static"
#: A continuous slider has at least this many grid values.
MIN_GRID = 25
#: The Vega-Lite version vl-convert renders the first paint with (the browser runs 6.5).
_VL_VERSION = "6.4"


def pick_nearest(values: Sequence[float], preferred: float) -> float:
    """``preferred`` if it is on the grid ``values``, else the grid value nearest to it."""
    return min(list(values), key=lambda v: abs(v - preferred))


@contextmanager
def one_thread():
    """Run torch on one intra-op thread, then restore the previous count.

    The widgets' tensors are tiny: on a busy machine, thread synchronisation otherwise dominates
    and a run takes ten times longer.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


# -- grids and sliders -------------------------------------------------------------------------
def _clean(x: float) -> float:
    """A float rounded to 12 significant digits (0.1 + 0.2 → 0.3), so grid values print cleanly."""
    return float(f"{float(x):.12g}")


def linear_grid(lo: float, hi: float, n: int = MIN_GRID) -> tuple[float, ...]:
    """``n`` values evenly spaced from ``lo`` to ``hi`` (both included), for ``scale="linear"``."""
    if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
        raise ValueError(f"linear_grid needs finite lo < hi, got lo={lo!r}, hi={hi!r}")
    if n < 2:
        raise ValueError(f"linear_grid needs n ≥ 2, got {n}")
    return tuple(_clean(v) for v in np.linspace(lo, hi, int(n)))


def log_grid(lo: float, hi: float, n: int = MIN_GRID) -> tuple[float, ...]:
    """``n`` values evenly spaced in log(value) from ``lo`` to ``hi``, for ``scale="log"``."""
    if not (math.isfinite(lo) and math.isfinite(hi) and 0 < lo < hi):
        raise ValueError(f"log_grid needs finite 0 < lo < hi, got lo={lo!r}, hi={hi!r}")
    if n < 2:
        raise ValueError(f"log_grid needs n ≥ 2, got {n}")
    return tuple(_clean(v) for v in np.geomspace(lo, hi, int(n)))


_SCALES = ("linear", "log", "index")


def _grid_error(name: str, scale: str, values: Sequence) -> str | None:
    """Why ``values`` is not a valid grid for ``scale`` (None if it is)."""
    n = len(values)
    if n == 0:
        return f"slider {name!r} needs at least one value"
    if scale == "index":
        return None
    try:
        v = np.asarray([float(x) for x in values], dtype=float)
    except (TypeError, ValueError):
        return (
            f"slider {name!r}: scale={scale!r} needs numbers, got {list(values)[:5]!r}…; "
            'use scale="index" for named cases'
        )
    if n < MIN_GRID:
        return (
            f"slider {name!r}: a {scale} slider needs at least {MIN_GRID} values evenly spaced on "
            f"its scale, got {n} ({', '.join(f'{x:g}' for x in v[:6])}{'…' if n > 6 else ''}); "
            f"build them with {scale}_grid(lo, hi, n)"
        )
    if not np.all(np.isfinite(v)):
        bad = v[~np.isfinite(v)][0]
        return f"slider {name!r}: value {bad!r} is not finite"
    if scale == "log":
        if np.any(v <= 0):
            bad = v[v <= 0][0]
            return f"slider {name!r}: a log slider needs positive values, got {bad:g}"
        t = np.log(v)
    else:
        t = v
    if not t[-1] > t[0]:
        return f"slider {name!r}: values must increase, got first {v[0]:g} and last {v[-1]:g}"
    expected = np.linspace(t[0], t[-1], n)
    step = (t[-1] - t[0]) / (n - 1)
    off = np.abs(t - expected) > 1e-6 * step
    if off.any():
        i = int(np.argmax(off))
        want = float(np.exp(expected[i])) if scale == "log" else float(expected[i])
        return (
            f"slider {name!r}: value {v[i]:g} (index {i}) breaks the even spacing on a {scale} "
            f"scale (expected {want:.6g}); build the grid with {scale}_grid({v[0]:g}, {v[-1]:g}, {n})"
        )
    return None


class Slider:
    """One slider: the keyword ``name`` passed to ``compute``, its ``label`` and its grid ``values``.

    ``scale="linear"`` or ``"log"``: a continuous parameter; ``values`` (the grid the book
    precomputes) has at least 25 values evenly spaced on that scale (:func:`linear_grid`,
    :func:`log_grid`), and the live slider is continuous over [min, max]. ``scale="index"``:
    discrete values (an iteration, a seed, a named case), stepped through one by one.
    ``fmt`` formats a value for the read-out and ``aria-valuetext``; ``play=True`` adds a ▶
    player that steps through the values.
    """

    def __init__(
        self,
        name: str,
        label: str,
        values: Sequence,
        *,
        default=None,
        fmt: str = "{:.3g}",
        scale: str = "linear",
        play: bool = False,
    ) -> None:
        if scale not in _SCALES:
            raise ValueError(f"slider {name!r}: scale must be one of {_SCALES}, got {scale!r}")
        self.name = str(name)
        self.label = str(label)
        self.values = tuple(values)
        self.fmt = fmt
        self.scale = scale
        self.play = bool(play)
        error = _grid_error(self.name, scale, self.values)
        if error is not None:
            raise ValueError(error)
        self._default_given = default
        self.default_index = self._index_of(default) if default is not None else 0
        self.default = self.values[self.default_index]

    def _index_of(self, value) -> int:
        for i, v in enumerate(self.values):
            if v == value:
                return i
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            nums = [v for v in self.values if isinstance(v, (int, float))]
            if len(nums) == len(self.values):
                arr = np.asarray(nums, dtype=float)
                i = int(np.argmin(np.abs(arr - float(value))))
                if math.isclose(arr[i], float(value), rel_tol=1e-9, abs_tol=1e-12):
                    return i
                raise ValueError(
                    f"slider {self.name!r}: default {value!r} is not one of its values "
                    f"(nearest {arr[i]:g}; use pick_nearest(values, {value!r}))"
                )
        raise ValueError(f"slider {self.name!r}: default {value!r} is not one of its values")

    @property
    def lo(self):
        return self.values[0] if self.scale == "index" else min(self.values)

    @property
    def hi(self):
        return self.values[-1] if self.scale == "index" else max(self.values)

    def format(self, value) -> str:
        """``value`` as the read-out and ``aria-valuetext`` show it."""
        try:
            return self.fmt.format(value)
        except (ValueError, TypeError):
            return str(value)

    def nearest_index(self, value) -> int:
        """The grid index nearest to ``value`` (on the slider's scale)."""
        if self.scale == "index":
            try:
                return self.values.index(value)
            except ValueError:
                pass
        arr = np.asarray(self.values, dtype=float)
        if self.scale == "log":
            return int(np.argmin(np.abs(np.log(arr) - math.log(float(value)))))
        return int(np.argmin(np.abs(arr - float(value))))

    def describe(self) -> dict:
        """The slider as the browser needs it."""
        return {
            "name": self.name,
            "label": self.label,
            "scale": self.scale,
            "play": self.play,
            "values": [_json_scalar(v) for v in self.values],
            "labels": [self.format(v) for v in self.values],
            "default": self.default_index,
        }

    def __repr__(self) -> str:
        return (
            f"Slider({self.name!r}, {self.label!r}, <{len(self.values)} values "
            f"{self.format(self.lo)}…{self.format(self.hi)}>, scale={self.scale!r}, "
            f"default={self.default!r}, play={self.play})"
        )


# -- tables --------------------------------------------------------------------------------------
def _json_scalar(v):
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return float(v) if math.isfinite(v) else None
    return str(v)


def _column(fig: str, table: str, col: str, data) -> np.ndarray:
    """A table column as a 1-D numpy array, checked: numbers finite (NaN = a gap), or strings."""
    if isinstance(data, torch.Tensor):
        data = data.detach().cpu().numpy()
    arr = np.asarray(data)
    if arr.ndim == 0:
        raise ValueError(f"{fig}: table {table!r}, column {col!r} is a scalar; columns are 1-D")
    if arr.ndim != 1:
        raise ValueError(
            f"{fig}: table {table!r}, column {col!r} has shape {arr.shape}; columns are 1-D"
        )
    if arr.dtype.kind in "biuf":
        if arr.dtype.kind == "f" and np.isinf(arr).any():
            i = int(np.argmax(np.isinf(arr)))
            raise ValueError(
                f"{fig}: table {table!r}, column {col!r} has {arr[i]} at row {i}; "
                "tables hold finite numbers (NaN for a gap)"
            )
        return arr
    if arr.dtype.kind in "UO":
        return arr.astype(str) if arr.dtype.kind == "U" else np.asarray([str(x) for x in arr])
    raise ValueError(f"{fig}: table {table!r}, column {col!r} has unsupported dtype {arr.dtype}")


def _check_tables(
    fig: str, tables, names: Sequence[str] | None = None
) -> dict[str, dict[str, np.ndarray]]:
    if not isinstance(tables, Mapping) or not tables:
        raise TypeError(
            f"{fig}: compute must return a non-empty dict of named tables, got {type(tables).__name__}"
        )
    out = {}
    for tname, table in tables.items():
        if not isinstance(table, Mapping) or not table:
            raise TypeError(f"{fig}: table {tname!r} must be a non-empty dict column -> 1-D array")
        cols = {str(c): _column(fig, tname, c, v) for c, v in table.items()}
        lengths = {c: len(v) for c, v in cols.items()}
        if len(set(lengths.values())) != 1:
            raise ValueError(f"{fig}: table {tname!r} has columns of different lengths {lengths}")
        out[str(tname)] = cols
    if names is not None and sorted(out) != sorted(names):
        raise ValueError(f"{fig}: compute returned tables {sorted(out)}, expected {sorted(names)}")
    return out


def _round_list(arr: np.ndarray) -> list:
    """JSON-ready values: floats to 6 significant digits (NaN → null), ints, bools, strings."""
    kind = arr.dtype.kind
    if kind == "f":
        return [float(f"{x:.6g}") if x == x else None for x in arr.tolist()]
    if kind in "iu":
        return [int(x) for x in arr.tolist()]
    if kind == "b":
        return [bool(x) for x in arr.tolist()]
    return [str(x) for x in arr.tolist()]


def _table_json(table: dict[str, np.ndarray]) -> dict[str, list]:
    return {c: _round_list(v) for c, v in table.items()}


def _dumps(obj) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _rows(table: dict[str, list]) -> list[dict]:
    cols = list(table)
    return [dict(zip(cols, vals)) for vals in zip(*(table[c] for c in cols))]


def _data_names(spec) -> set[str]:
    """Every ``{"data": {"name": ...}}`` a Vega-Lite spec reads."""
    found = set()
    if isinstance(spec, dict):
        d = spec.get("data")
        if isinstance(d, dict) and "name" in d:
            found.add(d["name"])
        for k, v in spec.items():
            if k != "datasets":
                found |= _data_names(v)
    elif isinstance(spec, list):
        for v in spec:
            found |= _data_names(v)
    return found


def _panel_spec(fig: str, k: int, chart) -> dict:
    """An Altair chart (or a Vega-Lite dict) as a Vega-Lite dict with no width, data by name."""
    spec = copy.deepcopy(chart) if isinstance(chart, dict) else chart.to_dict()
    for key in ("hconcat", "vconcat", "concat", "facet", "repeat"):
        if key in spec:
            raise ValueError(f"{fig}: panel {k} is a {key} chart; give each panel as its own chart")
    if "datasets" in spec or _has_inline_values(spec):
        raise ValueError(
            f"{fig}: panel {k} has inline data; read tables by name with alt.Data(name=...)"
        )
    spec.pop("config", None)
    spec.pop("width", None)
    spec.pop("$schema", None)
    return spec


def _has_inline_values(spec) -> bool:
    if isinstance(spec, dict):
        d = spec.get("data")
        if isinstance(d, dict) and ("values" in d or "url" in d):
            return True
        return any(_has_inline_values(v) for k, v in spec.items() if k != "data")
    if isinstance(spec, list):
        return any(_has_inline_values(v) for v in spec)
    return False


def full_spec(
    panel: dict, width: float, *, dark: bool = False, datasets: dict | None = None
) -> dict:
    """A panel's Vega-Lite spec ready to render: the book's config and the total width ``width``."""
    spec = copy.deepcopy(panel)
    spec["$schema"] = "https://vega.github.io/schema/vega-lite/v6.json"
    spec["width"] = float(width)
    spec["autosize"] = {"type": "fit-x", "contains": "padding"}
    spec["config"] = style.vega_config(dark)
    if datasets is not None:
        spec["datasets"] = datasets
    return spec


_SVG_ID = re.compile(r'\bid="([^"]+)"')
_INVISIBLE = re.compile(r'<path(?: [a-z-]+="[^"]*")*? opacity="0"(?: [a-z-]+="[^"]*")*/>')


def _svg(spec: dict, prefix: str) -> str:
    import vl_convert

    svg = vl_convert.vegalite_to_svg(spec, vl_version=_VL_VERSION)
    svg = svg.replace(f'fill="{style.TEXT}"', 'fill="currentColor"')
    # invisible marks (hover targets for the live tooltips) draw nothing: not in the first paint
    svg = _INVISIBLE.sub("", svg)
    svg = _SVG_ID.sub(lambda m: f'id="{prefix}{m.group(1)}"', svg)
    svg = svg.replace("url(#", f"url(#{prefix}").replace('href="#', f'href="#{prefix}')
    svg = re.sub(r"^<\?xml[^>]*>\s*", "", svg)
    return svg


# -- figures -------------------------------------------------------------------------------------
class Explorable:
    """A figure whose tables depend on sliders; drawn by Vega-Lite panels.

    ``Explorable(compute, panels, sliders, *, title, alt, readout, fixed=None)``; see the
    module docstring and CONTRIBUTING.md ("Figures").
    """

    def __init__(
        self,
        compute: Callable[..., Mapping],
        panels: Sequence,
        sliders: Sequence[Slider],
        *,
        title: str,
        alt: str,
        readout: Callable[[dict, dict], str] | str | None,
        fixed: Mapping | None = None,
    ) -> None:
        self.compute = compute
        self.title = str(title)
        self.alt = str(alt)
        self.readout = readout
        self.fixed = dict(fixed or {})
        self.sliders = list(sliders)
        names = [s.name for s in self.sliders]
        if len(set(names)) != len(names):
            raise ValueError(f"{self._who()}: slider names must be unique, got {names}")
        for s in self.sliders:
            if not isinstance(s, Slider):
                raise TypeError(f"{self._who()}: sliders must be pgcore.widgets.Slider, got {s!r}")
        if isinstance(panels, (str, bytes)) or not isinstance(panels, Sequence):
            panels = [panels]
        if not panels:
            raise ValueError(f"{self._who()}: needs at least one panel")
        clash = set(names) & set(self.fixed)
        if clash:
            raise ValueError(f"{self._who()}: {sorted(clash)} are both sliders and fixed")
        self.panels = [_panel_spec(self._who(), k, p) for k, p in enumerate(panels)]
        self._names: list[str] | None = None
        self._grid: list[tuple[dict, dict]] | None = None
        self._payload: dict | None = None

    def _who(self) -> str:
        return f"figure {getattr(self, 'title', '?')!r}"

    # -- values and tables ---------------------------------------------------------------------
    def defaults(self) -> dict:
        """The default setting of every slider."""
        return {s.name: s.default for s in self.sliders}

    def grid(self) -> Iterator[dict]:
        """Every combination of slider values (last slider fastest)."""
        for combo in itertools.product(*(s.values for s in self.sliders)):
            yield dict(zip((s.name for s in self.sliders), combo))

    def n_grid(self) -> int:
        return math.prod(len(s.values) for s in self.sliders)

    def tables(self, **values) -> dict[str, dict[str, np.ndarray]]:
        """``compute`` at ``values`` (defaults for sliders not given), checked, as numpy columns."""
        unknown = set(values) - {s.name for s in self.sliders}
        if unknown:
            raise TypeError(f"{self._who()}: no slider named {sorted(unknown)}")
        kwargs = {**self.defaults(), **values}
        with one_thread():  # tiny tensors: thread synchronisation would dominate
            result = self.compute(**kwargs, **self.fixed)
        tables = _check_tables(self._who(), result, self._names)
        if self._names is None:
            missing = _data_names(self.panels) - set(tables)
            if missing:
                raise ValueError(
                    f"{self._who()}: the panels read tables {sorted(missing)} that compute does "
                    f"not return (it returns {sorted(tables)})"
                )
            self._names = list(tables)
        return tables

    def readout_text(self, values: dict, tables: dict) -> str:
        if self.readout is None:
            return ""
        if isinstance(self.readout, str):
            return self.readout
        text = self.readout(dict(values), tables)
        if not isinstance(text, str):
            raise TypeError(f"{self._who()}: readout must return a str, got {type(text).__name__}")
        return text

    def grid_tables(self) -> Iterator[tuple[dict, dict]]:
        """``(values, tables)`` over the whole grid (computed once, then cached)."""
        if self._grid is None:
            self._grid = [(values, self.tables(**values)) for values in self.grid()]
        yield from ((dict(v), t) for v, t in self._grid)

    def sweep(self) -> int:
        """Compute and check every grid point (tables, read-out); returns the number of points."""
        self._grid = None
        count = 0
        for values, tables in self.grid_tables():
            self.readout_text(values, tables)
            count += 1
        return count

    def time_update(self, **values) -> float:
        """Seconds for one live redraw's Python side: compute, check, read-out, serialise."""
        t0 = time.perf_counter()
        tables = self.tables(**values)
        text = self.readout_text({**self.defaults(), **values}, tables)
        _dumps({"tables": {n: _table_json(t) for n, t in tables.items()}, "readout": text})
        return time.perf_counter() - t0

    def time_updates(self, n: int = 12, seed: int = 0) -> dict:
        """``time_update`` at ``n`` random off-grid settings: {"median", "worst", "times"} (s)."""
        rng = np.random.default_rng(seed)
        times = [self.time_update(**self.random_values(rng)) for _ in range(n)]
        return {"median": statistics.median(times), "worst": max(times), "times": times}

    def random_values(self, rng) -> dict:
        """A random setting, off the grid for continuous sliders (as a live slider gives)."""
        out = {}
        for s in self.sliders:
            if s.scale == "index":
                out[s.name] = s.values[int(rng.integers(len(s.values)))]
            else:
                k = int(rng.integers(len(s.values) - 1))
                a, b = float(s.values[k]), float(s.values[k + 1])
                u = float(rng.uniform(0.2, 0.8))
                out[s.name] = (
                    math.exp((1 - u) * math.log(a) + u * math.log(b))
                    if s.scale == "log"
                    else (1 - u) * a + u * b
                )
        return out

    # -- the book's HTML -----------------------------------------------------------------------
    def payload(self) -> dict:
        """The figure as JSON for pgfigure.js (the grid's tables deduplicated)."""
        if self._payload is not None:
            return self._payload
        unique: dict[str, int] = {}
        tables_json: list[dict] = []
        index: list[list[int]] = []
        readouts: list[str] = []
        for values, tables in self.grid_tables():
            row = []
            for name in self._names:
                raw = hashlib.sha1(name.encode())
                for col, arr in tables[name].items():
                    raw.update(f"|{col}|{arr.dtype.str}|{arr.shape[0]}|".encode())
                    raw.update(
                        np.ascontiguousarray(arr).tobytes()
                        if arr.dtype.kind != "O"
                        else repr(arr.tolist()).encode()
                    )
                key = raw.hexdigest()
                if key not in unique:
                    tj = _table_json(tables[name])
                    # tables equal after rounding to 6 digits are stored once too
                    k2 = hashlib.sha1(_dumps([name, tj]).encode()).hexdigest()
                    if k2 not in unique:
                        unique[k2] = len(tables_json)
                        tables_json.append(tj)
                    unique[key] = unique[k2]
                row.append(unique[key])
            index.append(row)
            readouts.append(self.readout_text(values, tables))
        start = 0
        for s in self.sliders:
            start = start * len(s.values) + s.default_index
        payload = {
            "v": 1,
            "title": self.title,
            "alt": self.alt,
            "sliders": [s.describe() for s in self.sliders],
            "names": list(self._names),
            "panels": self.panels,
            "config": {"light": style.vega_config(False), "dark": style.vega_config(True)},
            "style": style.browser_style(),
            "start": start,
            "first": {
                "tables": {n: tables_json[i] for n, i in zip(self._names, index[start])},
                "readout": readouts[start],
            },
            "grid": {"tables": tables_json, "index": index, "readouts": readouts},
        }
        payload["id"] = hashlib.sha256(_dumps(payload).encode()).hexdigest()[:16]
        self._payload = payload
        return payload

    def svgs(self, prefix: str = "", width: float = style.PANEL_WIDTH) -> list[str]:
        """Each panel at the default setting as SVG (vl-convert, light config, text = currentColor)."""
        p = self.payload()
        datasets = {n: _rows(t) for n, t in p["first"]["tables"].items()}
        return [
            _svg(full_spec(panel, width, datasets=datasets), f"{prefix}p{k}-")
            for k, panel in enumerate(self.panels)
        ]

    def html(self) -> str:
        """The HTML block :meth:`display` shows."""
        p = self.payload()
        uid = f"pgf-{p['id'][:12]}"
        esc = html.escape
        controls = []
        for k, (s, d) in enumerate(zip(self.sliders, p["sliders"])):
            sid = f"{uid}-s{k}"
            text = d["labels"][d["default"]]
            play = (
                f'<button type="button" class="pg-play" aria-label="Play: step through '
                f'{esc(s.label)}" title="Play" disabled>▶</button>'
                if s.play
                else ""
            )
            controls.append(
                f'<div class="pg-slider"><label for="{sid}">{esc(s.label)}</label>'
                f'<input type="range" id="{sid}" min="0" max="{len(s.values) - 1}" step="1" '
                f'value="{d["default"]}" data-slider="{k}" aria-valuetext="{esc(text)}" disabled>'
                f'<output for="{sid}">{esc(text)}</output>{play}</div>'
            )
        readout = p["first"]["readout"]
        label = f"{self.alt} {readout}".strip()
        panels = "".join(
            f'<div class="pg-panel" data-panel="{k}">{svg}</div>'
            for k, svg in enumerate(self.svgs(prefix=f"{uid}-"))
        )
        data = _dumps(p).replace("</", "<\\/")
        parts = [
            f'<div class="pg-figure" id="{uid}" data-pg-figure="{p["id"]}">',
            f'<div class="pg-figure-title">{esc(self.title)}</div>' if self.title else "",
            f'<div class="pg-figure-controls">{"".join(controls)}</div>' if controls else "",
            f'<div class="pg-figure-panels" role="img" aria-label="{esc(label)}" '
            f'style="display:flex;flex-wrap:wrap;gap:{style.PANEL_GAP}px">{panels}</div>',
            f'<p class="pg-figure-readout" aria-live="polite">{esc(readout)}</p>'
            if readout
            else "",
            f'<script type="application/json" class="pg-figure-data">{data}</script>',
            "</div>",
        ]
        return "".join(parts)

    def display(self):
        """The book cell's output: an ``IPython.display.HTML`` with the figure (see :meth:`html`).

        Its plain-text form (where HTML is not shown) is the title, the alt text and the read-out.
        """
        from IPython.display import HTML

        text = "\n".join(t for t in (self.title, self.alt, self.payload()["first"]["readout"]) if t)

        class FigureHTML(HTML):
            def __repr__(self) -> str:
                return text

        return FigureHTML(self.html())

    def _repr_html_(self) -> str:
        return self.html()

    # -- the live version (kernel) -------------------------------------------------------------
    def live(self):
        """Continuous ipywidgets sliders and a Vega view that redraws on each move (in a kernel)."""
        from ._live import live_figure

        return live_figure(self)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(title={self.title!r}, sliders={self.sliders!r})"


class DataFigure(Explorable):
    """A figure without sliders: fixed ``tables`` drawn by Vega-Lite ``panels``."""

    def __new__(cls, *args, **kwargs):
        return object.__new__(cls)

    def __init__(
        self, tables: Mapping, panels: Sequence, *, title: str, alt: str, readout=None
    ) -> None:
        self._fixed_tables = tables
        super().__init__(lambda: tables, panels, [], title=title, alt=alt, readout=readout)
