"""Explorable figures: one drawing function, two front ends.

An :class:`Explorable` pairs a function ``draw(**values) -> matplotlib Figure`` with a grid
of slider values. It renders

* :meth:`Explorable.static`: a kernel-free version for the rendered book. Every grid point
  is drawn once, ahead of time, into a PNG, and a few lines of plain JavaScript swap the
  image when a slider moves, so it works offline in any browser, with no Python;
* :meth:`Explorable.live`: the ipywidgets version for a running kernel, which redraws for
  each slider value.

Both call the same ``draw``, so they cannot disagree. :meth:`Explorable.sweep` calls
``draw`` over the whole grid (what the tests use), and :meth:`Explorable.time_update`
measures one redraw.

The topic modules (``pgcore.widgets.<topic>``) define the book's explorables. How a
chapter shows one (static figure, a note, then the live cell) is in CONTRIBUTING.md.
"""

from __future__ import annotations

import base64
import html
import io
import itertools
import json
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

__all__ = ["Slider", "Explorable", "pick_nearest", "one_thread", "simplex_grid"]


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


@lru_cache(maxsize=8)
def simplex_grid(n: int, *, interior: bool) -> np.ndarray:
    """Barycentric grid points (p₀, p₁, p₂) with denominators n on the 2-simplex, [N, 3].

    The array is cached and shared: do not modify it.

    ``interior=True``: only the points with every coordinate ≥ 1/n (strictly inside). ``interior=False``:
    the whole grid, boundary included, with each coordinate raised to at least 10⁻⁴ and the
    rows renormalised (so a KL to any point stays finite).
    """
    i, j = np.meshgrid(np.arange(n + 1), np.arange(n + 1), indexing="ij")
    if interior:
        keep = (i >= 1) & (j >= 1) & (i + j < n)
        i, j = i[keep], j[keep]
        pts = np.stack([i, j, n - i - j], axis=-1) / n
    else:
        keep = i + j <= n
        p1, p2 = i[keep] / n, j[keep] / n
        pts = np.clip(np.stack([1 - p1 - p2, p1, p2], axis=-1), 1e-4, None)
        pts /= pts.sum(-1, keepdims=True)
    return pts


@dataclass(frozen=True)
class Slider:
    """One slider: the keyword ``name`` passed to ``draw``, its ``label``, and its grid."""

    name: str
    label: str
    values: Sequence[float]
    default: float | None = None
    fmt: str = "{:.3g}"

    def __post_init__(self) -> None:
        if len(self.values) == 0:
            raise ValueError(f"slider {self.name!r} needs at least one value")
        if self.default is not None and self.default not in list(self.values):
            raise ValueError(
                f"slider {self.name!r}: default {self.default!r} is not one of its values"
            )

    @property
    def default_index(self) -> int:
        return 0 if self.default is None else list(self.values).index(self.default)


@dataclass
class Explorable:
    """A figure that depends on slider values, rendered kernel-free or live."""

    draw: Callable[..., Figure]
    sliders: Sequence[Slider]
    title: str = ""
    dpi: int = 72
    fixed: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        names = [s.name for s in self.sliders]
        if len(set(names)) != len(names):
            raise ValueError(f"slider names must be unique, got {names}")

    # -- the grid -------------------------------------------------------------------------
    def grid(self) -> Iterator[dict]:
        """Every combination of slider values, last slider fastest."""
        for combo in itertools.product(*(list(s.values) for s in self.sliders)):
            yield dict(zip((s.name for s in self.sliders), combo))

    def defaults(self) -> dict:
        return {s.name: list(s.values)[s.default_index] for s in self.sliders}

    def figure(self, **values) -> Figure:
        """``draw`` at the given values (defaults for any slider not given)."""
        kwargs = {**self.defaults(), **values, **self.fixed}
        return self.draw(**kwargs)

    def sweep(self) -> int:
        """Draw every grid point (and close each figure); returns the number drawn."""
        count = 0
        for values in self.grid():
            fig = self.figure(**values)
            if not isinstance(fig, Figure):
                raise TypeError(f"draw must return a matplotlib Figure, got {type(fig).__name__}")
            plt.close(fig)
            count += 1
        return count

    def time_update(self, **values) -> float:
        """Seconds for one redraw to a PNG, as the live widget does it."""
        t0 = time.perf_counter()
        fig = self.figure(**values)
        _png(fig, self.dpi)
        return time.perf_counter() - t0

    # -- kernel-free version ---------------------------------------------------------------
    def static(self):
        """An ``IPython.display.HTML`` with precomputed frames and plain-JavaScript sliders."""
        from IPython.display import HTML

        return HTML(self.static_html())

    def static_html(self) -> str:
        frames = [
            base64.b64encode(_png(self.figure(**values), self.dpi)).decode("ascii")
            for values in self.grid()
        ]
        uid = "pgx-" + uuid.uuid4().hex[:10]
        sizes = [len(list(s.values)) for s in self.sliders]
        labels = [[s.fmt.format(v) for v in s.values] for s in self.sliders]
        start = [s.default_index for s in self.sliders]
        index = 0
        for i, n in zip(start, sizes):
            index = index * n + i
        controls = "".join(
            f'<label class="pg-explorable-control">{html.escape(s.label)} '
            f'<input type="range" min="0" max="{len(list(s.values)) - 1}" step="1" value="{i}" '
            f'data-slider="{k}" aria-label="{html.escape(s.label)}"> '
            f"<output>{html.escape(lab[i])}</output></label>"
            for k, (s, i, lab) in enumerate(zip(self.sliders, start, labels))
        )
        title = (
            f'<div class="pg-explorable-title">{html.escape(self.title)}</div>'
            if self.title
            else ""
        )
        return f"""<div class="pg-explorable" id="{uid}">{title}
<div class="pg-explorable-controls">{controls}</div>
<img class="pg-explorable-frame" alt="{html.escape(self.title or "interactive figure")}" src="data:image/png;base64,{frames[index]}" style="max-width:100%;height:auto">
<div class="pg-explorable-note">Precomputed for {len(frames)} slider settings; works without Python. Run the notebook for the live version.</div>
<script type="application/json" class="pg-explorable-data">{json.dumps({"frames": frames, "sizes": sizes, "labels": labels})}</script>
<script>(function() {{
  var root = document.getElementById("{uid}");
  var data = JSON.parse(root.querySelector(".pg-explorable-data").textContent);
  var inputs = root.querySelectorAll("input[type=range]");
  var img = root.querySelector(".pg-explorable-frame");
  function redraw() {{
    var idx = 0;
    inputs.forEach(function(inp, k) {{
      var i = parseInt(inp.value, 10);
      idx = idx * data.sizes[k] + i;
      inp.parentNode.querySelector("output").textContent = data.labels[k][i];
    }});
    img.src = "data:image/png;base64," + data.frames[idx];
  }}
  inputs.forEach(function(inp) {{ inp.addEventListener("input", redraw); }});
}})();</script>
</div>"""

    # -- live version ----------------------------------------------------------------------
    def live(self):
        """An ipywidgets box: one SelectionSlider per slider and an image that redraws.

        Each slider move calls ``draw`` and swaps the PNG of an ``ipywidgets.Image`` (no
        output clearing, so the page does not jump).
        """
        import ipywidgets as widgets

        controls = {
            s.name: widgets.SelectionSlider(
                options=[(s.fmt.format(v), v) for v in s.values],
                value=list(s.values)[s.default_index],
                description=s.label,
                continuous_update=False,
                layout=widgets.Layout(width="420px"),
            )
            for s in self.sliders
        }
        image = widgets.Image(format="png", layout=widgets.Layout(max_width="100%"))

        def redraw(_change=None) -> None:
            fig = self.figure(**{k: w.value for k, w in controls.items()})
            image.value = _png(fig, self.dpi)

        for w in controls.values():
            w.observe(redraw, names="value")
        redraw()
        return widgets.VBox(
            [widgets.HTML(f"<b>{html.escape(self.title)}</b>"), *controls.values(), image]
        )


def _png(fig: Figure, dpi: int) -> bytes:
    """The figure as PNG bytes (and close it)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()
