"""The look of the book's figures: one place for fonts, sizes, colours and the Vega-Lite config.

Both renderers read this module: the SVG first paint that :meth:`pgcore.widgets.Explorable.display`
renders at build time (vl-convert) and the live Vega views in the browser (``pgfigure.js``
receives :func:`vega_config` for light and dark mode in each figure's JSON), so the two match.

Use it in every panel::

    from pgcore.widgets import style
    alt.Chart(alt.Data(name="curve"), height=style.PANEL_HEIGHT, title="Gain along the step")
        .mark_line(color=style.PALETTE.blue)

* :data:`PALETTE`: mid-luminance colours that keep at least 3:1 contrast on the light page and on
  pydata-sphinx-theme's dark page (so no colour needs changing in dark mode). Index it
  (``PALETTE[0]``), or use a name (``PALETTE.blue`` or ``PALETTE["blue"]``).
* :data:`NEUTRAL`: a grey for reference lines and "other" marks (never hard-code black or white).
* :data:`TEXT`: the text colour of the light config. The SVG first paint replaces it by
  ``currentColor``, so static text follows the page's own text colour in either mode.
"""

from __future__ import annotations

import copy
import json

__all__ = [
    "FONT",
    "LABEL_SIZE",
    "TITLE_SIZE",
    "PANEL_TITLE_SIZE",
    "PANEL_HEIGHT",
    "PANEL_WIDTH",
    "PANEL_MIN_WIDTH",
    "PANEL_MAX_WIDTH",
    "PANEL_GAP",
    "PALETTE",
    "NEUTRAL",
    "SHADE",
    "TEXT",
    "TEXT_DARK",
    "vega_config",
    "browser_style",
    "legend",
    "log_axis",
    "log_y",
]

#: The page's sans-serif stack (pydata-sphinx-theme uses the system UI font).
FONT = (
    'system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", "Noto Sans", '
    '"Liberation Sans", Arial, sans-serif'
)
#: Axis labels, legend labels, text marks (CSS px; the body text is 16 px).
LABEL_SIZE = 13
#: Axis titles and legend titles (CSS px).
TITLE_SIZE = 14
#: Panel titles (CSS px).
PANEL_TITLE_SIZE = 15
#: The plotting area's height of one panel (CSS px). Set it on every panel.
PANEL_HEIGHT = 220
#: The width of a panel in the build-time SVG (the browser sets it per device).
PANEL_WIDTH = 340
#: In the browser: a panel is never narrower than this unless the screen is,
PANEL_MIN_WIDTH = 280
#: and never wider than this, so two or three sit side by side on a laptop and stack on a phone.
PANEL_MAX_WIDTH = 460
#: Horizontal and vertical gap between panels (CSS px).
PANEL_GAP = 16


class _Palette(tuple):
    """A tuple of colours that can also be read by name (``PALETTE.blue``, ``PALETTE["blue"]``)."""

    def __new__(cls, named: dict[str, str]):
        obj = super().__new__(cls, named.values())
        obj._names = dict(named)
        return obj

    def __getitem__(self, key):
        if isinstance(key, str):
            try:
                return self._names[key]
            except KeyError:
                raise KeyError(
                    f"no colour {key!r} in the palette; have {list(self._names)}"
                ) from None
        return super().__getitem__(key)

    def __getattr__(self, name: str) -> str:
        try:
            return self.__dict__["_names"][name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._names)


#: Categorical colours (relative luminance 0.12–0.30: ≥ 3:1 against white and against #121212).
PALETTE = _Palette(
    {
        "blue": "#3f7fd0",
        "orange": "#d9730d",
        "green": "#3d9a50",
        "red": "#e0524f",
        "purple": "#9b6fd1",
        "teal": "#1f9e99",
        "brown": "#a8794d",
        "pink": "#d45d9c",
    }
)
#: Reference lines, zero lines, de-emphasised marks.
NEUTRAL = "#8a8f98"
#: Fill for a shaded region (use with opacity ≈ 0.15–0.25).
SHADE = PALETTE.green
#: Text colour in light mode (replaced by ``currentColor`` in the static SVG).
TEXT = "#1f2328"
#: Text colour in dark mode (contrast ≥ 12:1 on the theme's dark background).
TEXT_DARK = "#e6e8eb"
_GRID = "#8a8f98"


def vega_config(dark: bool = False) -> dict:
    """The Vega-Lite ``config`` for light (default) or dark mode: fonts, sizes, colours."""
    text = TEXT_DARK if dark else TEXT
    # the labels and titles of axes and legends alike
    lettering = {
        "labelFont": FONT,
        "titleFont": FONT,
        "labelFontSize": LABEL_SIZE,
        "titleFontSize": TITLE_SIZE,
        "titleFontWeight": "normal",
        "labelColor": text,
        "titleColor": text,
    }
    axis = {
        **lettering,
        "domainColor": _GRID,
        "tickColor": _GRID,
        "gridColor": _GRID,
        "gridOpacity": 0.25,
        "labelLimit": 220,
        "titleLimit": 600,
        "labelOverlap": "greedy",
        "labelSeparation": 6,
        "labelFlush": True,
        "titlePadding": 6,
        "aria": False,
    }
    legend = {
        **lettering,
        "labelLimit": 400,
        "orient": "bottom",
        "direction": "vertical",
        "symbolStrokeWidth": 2.5,
        "aria": False,
    }
    return copy.deepcopy(
        {
            "background": None,
            "font": FONT,
            "padding": 4,
            "view": {"stroke": None, "continuousHeight": PANEL_HEIGHT},
            # the figure's container carries the alt text and read-out (role="img"): no ARIA
            # description per mark, axis or legend (it would only weigh the page down)
            "aria": False,
            "mark": {"aria": False},
            "axis": axis,
            # about one tick label per 70 px of width (Vega-Lite's default crowds 13 px labels)
            "axisX": {"tickCount": {"expr": "ceil(width/70)"}},
            "legend": legend,
            "header": {"labelColor": text, "titleColor": text, "labelFontSize": LABEL_SIZE},
            "title": {
                "font": FONT,
                "fontSize": PANEL_TITLE_SIZE,
                "fontWeight": 600,
                "color": text,
                "subtitleColor": text,
                "subtitleFontSize": LABEL_SIZE,
                "anchor": "start",
                "limit": 0,
            },
            "text": {"font": FONT, "fontSize": LABEL_SIZE, "color": text},
            "range": {"category": list(PALETTE)},
            "line": {"strokeWidth": 2.5},
            "point": {"size": 60, "filled": True},
            "rule": {"color": NEUTRAL},
            "style": {"guide-label": {"fill": text}, "guide-title": {"fill": text}},
        }
    )


def browser_style() -> dict:
    """What ``pgfigure.js`` needs besides the configs: the panel widths and gap."""
    return {
        "minWidth": PANEL_MIN_WIDTH,
        "maxWidth": PANEL_MAX_WIDTH,
        "gap": PANEL_GAP,
        "height": PANEL_HEIGHT,
        "text": TEXT,
        "textDark": TEXT_DARK,
    }


_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def pow10_label(e: int) -> str:
    """The tick label of 10^e: a plain number from 0.001 to 1000, ``10⁻⁵`` beyond."""
    return format(10.0**e, "g") if -3 <= e <= 3 else "10" + str(e).translate(_SUPERSCRIPT)


def log_axis(lo: int, hi: int, step: int = 1):
    """A log-scale axis with a labelled tick (and grid line) at every ``step``-th power of ten,
    10^lo … 10^hi, labelled by :func:`pow10_label`."""
    import altair as alt

    exps = range(lo, hi + 1, step)
    expr = "".join(
        f"abs(log(datum.value) / LN10 - ({e})) < 0.01 ? '{pow10_label(e)}' : " for e in exps
    )
    return alt.Axis(values=[10.0**e for e in exps], labelExpr=expr + "''")


def log_y(col: str, title: str, lo: int, hi: int, step: int = 1):
    """A log-scale y channel on ``col`` with the ticks of :func:`log_axis`."""
    import altair as alt

    return alt.Y(col, title=title, scale=alt.Scale(type="log"), axis=log_axis(lo, hi, step))


def legend(*layers):
    """Layers ``(label, colour, chart)`` of one panel that share one colour legend of the labels."""
    import altair as alt

    scale = alt.Scale(domain=[lab for lab, _, _ in layers], range=[c for _, c, _ in layers])
    return [
        ch.transform_calculate(series=json.dumps(lab)).encode(
            color=alt.Color("series:N", scale=scale, title=None)
        )
        for lab, _, ch in layers
    ]
