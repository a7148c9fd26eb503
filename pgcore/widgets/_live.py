"""The live version of a figure (:meth:`pgcore.widgets.Explorable.live`): ipywidgets sliders that
are continuous over each slider's range, and an anywidget that draws the figure's Vega-Lite
panels in the front end with the same code as the book (``static/pgfigure.js``).

Each move calls the figure's ``compute`` in the kernel and sends the new tables (and read-out)
to the front end, which swaps them into its Vega views. Vega and Vega-Lite come from the
package's own static files, sent once per widget as text and evaluated in the page (no CDN),
so the widget works offline in JupyterLab, in Colab and in the classic notebook.
"""

from __future__ import annotations

import html
import math
import sys
from functools import lru_cache

import anywidget
import ipywidgets as widgets
import traitlets

from . import STATIC_DIR, Explorable, _dumps, _table_json, style

__all__ = ["FigureWidget", "live_figure", "live_controls"]

_ESM_TAIL = """
export default {
  render(ctx) { return globalThis.pgFigure.renderWidget(ctx); },
};
"""


@lru_cache(maxsize=1)
def _esm() -> str:
    return (STATIC_DIR / "pgfigure.js").read_text(encoding="utf-8") + _ESM_TAIL


@lru_cache(maxsize=1)
def _lib() -> dict:
    return {
        "vega": (STATIC_DIR / "vega.min.js").read_text(encoding="utf-8"),
        "vegaLite": (STATIC_DIR / "vega-lite.min.js").read_text(encoding="utf-8"),
    }


class FigureWidget(anywidget.AnyWidget):
    """Vega views of a figure's panels; set ``tables`` (and ``readout``) to redraw."""

    _esm = traitlets.Unicode(_esm()).tag(sync=True)
    panels = traitlets.List().tag(sync=True)
    config = traitlets.Dict().tag(sync=True)
    # not "style": DOMWidget views treat a synced "style" as a Style widget model
    figstyle = traitlets.Dict().tag(sync=True)
    alt = traitlets.Unicode("").tag(sync=True)
    tables = traitlets.Dict().tag(sync=True)
    readout = traitlets.Unicode("").tag(sync=True)
    lib = traitlets.Dict().tag(sync=True)


def _enable_colab_widgets() -> None:
    """On Colab, third-party widgets (anywidget) need Colab's custom widget manager."""
    if "google.colab" not in sys.modules:
        return
    try:
        from google.colab import output
    except ImportError:
        return
    output.enable_custom_widget_manager()


def live_controls(fig: Explorable) -> dict[str, widgets.Widget]:
    """One ipywidgets slider per figure slider: continuous over [min, max] on its scale, or
    stepping through the values for ``scale="index"``."""
    controls: dict[str, widgets.Widget] = {}
    # one label width for every slider, so that the sliders line up
    width = max((len(s.label) for s in fig.sliders), default=0) + 2
    common = dict(
        continuous_update=True,
        style={"description_width": f"{width}ch"},
        layout=widgets.Layout(width="100%", max_width="560px"),
    )
    for s in fig.sliders:
        common["description"] = s.label
        if s.scale == "index":
            w = widgets.SelectionSlider(
                options=[(s.format(v), v) for v in s.values], value=s.default, **common
            )
        elif s.scale == "log":
            lo, hi = math.log10(float(s.lo)), math.log10(float(s.hi))
            w = widgets.FloatLogSlider(
                value=float(s.default),
                base=10,
                min=lo,
                max=hi,
                step=(hi - lo) / 1000,
                readout_format=".3g",
                **common,
            )
        else:
            lo, hi = float(s.lo), float(s.hi)
            w = widgets.FloatSlider(
                value=float(s.default),
                min=lo,
                max=hi,
                step=(hi - lo) / 1000,
                readout_format=".4g",
                **common,
            )
        controls[s.name] = w
    return controls


def live_figure(fig: Explorable) -> widgets.VBox:
    """The live figure: a title, the sliders and the Vega views, in a VBox.

    The box has attributes ``controls`` (name → slider), ``figure`` (the :class:`FigureWidget`)
    and ``redraw`` (call it to recompute at the sliders' values).
    """
    _enable_colab_widgets()
    values = fig.defaults()
    tables = fig.tables(**values)
    view = FigureWidget(
        panels=fig.panels,
        config={"light": style.vega_config(False), "dark": style.vega_config(True)},
        figstyle=style.browser_style(),
        alt=fig.alt,
        tables={n: _table_json(t) for n, t in tables.items()},
        readout=fig.readout_text(values, tables),
        lib=_lib(),
    )
    controls = live_controls(fig)

    def redraw(_change=None) -> None:
        current = {k: w.value for k, w in controls.items()}
        try:
            new = fig.tables(**current)
            text = fig.readout_text(current, new)
        except Exception as err:  # show it where the reader looks, keep the last good drawing
            view.readout = f"Could not compute this setting: {type(err).__name__}: {err}"
            return
        payload = {n: _table_json(t) for n, t in new.items()}
        _dumps(payload)  # fails loudly on a value JSON cannot carry
        with view.hold_sync():
            view.tables = payload
            view.readout = text

    for w in controls.values():
        w.observe(redraw, names="value")
    title = widgets.HTML(f"<b>{html.escape(fig.title)}</b>") if fig.title else None
    box = widgets.VBox([*([title] if title else []), *controls.values(), view])
    box.controls = controls
    box.figure = view
    box.redraw = redraw
    return box
