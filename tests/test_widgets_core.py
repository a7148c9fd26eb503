"""pgcore.widgets: figures drawn from data (Slider, Explorable, DataFigure), their HTML block,
the live widget, the vendored browser files and the Sphinx step that moves grids out of pages."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import re
import sys
from pathlib import Path

import altair as alt
import numpy as np
import pytest
from bs4 import BeautifulSoup

from pgcore.widgets import (
    STATIC_DIR,
    DataFigure,
    Explorable,
    Slider,
    linear_grid,
    log_grid,
    style,
)

REPO = Path(__file__).resolve().parent.parent
XS = np.linspace(0.0, 1.0, 11)


# -- a small figure used throughout ------------------------------------------------------------
def _compute(a, b, offset=0.0):
    """'curve' depends on b only; 'marker' on both; 'note' on neither."""
    return {
        "curve": {"x": XS, "y": b * XS + offset},
        "marker": {"x": [a], "y": [a * b + offset], "label": ["</script> at a"]},
        "note": {"k": [1, 2], "v": [0.5, float("nan")]},
    }


def _panels():
    line = (
        alt.Chart(alt.Data(name="curve"))
        .mark_line(color=style.PALETTE.blue)
        .encode(
            x=alt.X("x:Q", title="step α"), y=alt.Y("y:Q", title="gain"), tooltip=["x:Q", "y:Q"]
        )
    )
    dot = (
        alt.Chart(alt.Data(name="marker"))
        .mark_point(color=style.PALETTE.red)
        .encode(x="x:Q", y="y:Q")
    )
    bars = (
        alt.Chart(alt.Data(name="note"), height=style.PANEL_HEIGHT, title="Note")
        .mark_bar(color=style.PALETTE.green)
        .encode(x="k:O", y="v:Q")
    )
    return [alt.layer(line, dot, height=style.PANEL_HEIGHT, title="Gain"), bars]


A_VALUES = linear_grid(0.0, 1.0, 25)
B_VALUES = log_grid(0.1, 10.0, 25)


def _figure(**kw):
    return Explorable(
        _compute,
        _panels(),
        [
            Slider("a", "step α", A_VALUES, default=0.5, scale="linear"),
            Slider("b", "scale β", B_VALUES, default=1.0, scale="log", play=True, fmt="{:.2g}"),
        ],
        title="Demo <figure>",
        alt="A line and a point.",
        readout=lambda v, t: (
            f"At α = {v['a']:.3g}, β = {v['b']:.2g}: y = {t['marker']['y'][0]:.4g}."
        ),
        fixed={"offset": 0.25},
        **kw,
    )


@pytest.fixture(scope="module")
def fig():
    return _figure()


@pytest.fixture(scope="module")
def html(fig):
    return fig.html()


# -- grids and sliders -------------------------------------------------------------------------
def test_grids_are_evenly_spaced_on_their_scale():
    lin = np.array(linear_grid(0.5, 0.95, 25))
    assert len(lin) == 25 and lin[0] == 0.5 and lin[-1] == 0.95
    assert np.allclose(np.diff(lin), 0.45 / 24)
    lg = np.array(log_grid(1e-4, 1.0, 25))
    assert lg[0] == 1e-4 and lg[-1] == 1.0 and np.allclose(np.diff(np.log10(lg)), 4 / 24)
    with pytest.raises(ValueError, match="0 < lo < hi"):
        log_grid(0.0, 1.0)
    with pytest.raises(ValueError, match="lo < hi"):
        linear_grid(1.0, 1.0)


@pytest.mark.parametrize(
    ("values", "scale", "pattern"),
    [
        ([0.1, 0.2, 0.5], "linear", r"slider 'eps'.*at least 25 values.*got 3"),
        (
            list(linear_grid(0, 1, 25))[:-1] + [1.5],
            "linear",
            r"slider 'eps'.*value .* breaks the even spacing",
        ),
        (list(linear_grid(0.1, 1, 25)), "log", r"slider 'eps'.*value 0\.1375 .*log scale"),
        ([0.0] + list(log_grid(0.1, 1, 24)), "log", r"slider 'eps'.*positive values, got 0"),
        (list(linear_grid(0, 1, 25))[::-1], "linear", r"slider 'eps'.*must increase"),
        (list(linear_grid(0, 1, 25)), "cubic", r"slider 'eps'.*scale must be one of"),
    ],
)
def test_slider_rejects_a_bad_grid_naming_the_slider_and_value(values, scale, pattern):
    with pytest.raises(ValueError, match=pattern):
        Slider("eps", "clip ε", values, scale=scale)


def test_slider_default_and_formatting():
    s = Slider("g", "discount γ", linear_grid(0.5, 0.95, 25), default=0.725, fmt="{:.3g}")
    assert s.default == 0.725 and s.default_index == 12
    assert s.format(0.725) == "0.725" and s.lo == 0.5 and s.hi == 0.95
    with pytest.raises(
        ValueError, match=r"slider 'g': default 0\.7 is not one of its values \(nearest 0\.70625"
    ):
        Slider("g", "discount γ", linear_grid(0.5, 0.95, 25), default=0.7)
    named = Slider("case", "case", ["small", "large"], scale="index", fmt="{:.2f}")
    assert named.format("small") == "small" and named.default == "small"
    assert Slider("n", "iteration", [0, 1, 5, 6], scale="index", play=True).play


def test_a_slider_without_scale_is_linear_and_its_grid_is_checked_at_once():
    with pytest.raises(ValueError, match=r"slider 'eps'.*at least 25 values"):
        Slider("eps", "ε", [0.1, 0.2, 0.5], default=0.2)
    assert Slider("eps", "ε", linear_grid(0.1, 0.5, 25)).scale == "linear"


# -- tables, grid, dedup -----------------------------------------------------------------------
def test_sweep_grid_tables_and_order(fig):
    assert fig.sweep() == 25 * 25 == fig.n_grid()
    grid = list(fig.grid_tables())
    assert len(grid) == 625
    (v0, t0), (v1, _) = grid[0], grid[1]
    assert v0 == {"a": 0.0, "b": 0.1} and v1 == {"a": 0.0, "b": B_VALUES[1]}  # last slider fastest
    assert set(t0) == {"curve", "marker", "note"} and t0["marker"]["y"][0] == pytest.approx(0.25)


def test_identical_tables_are_stored_once(fig):
    p = fig.payload()
    # 25 curves (one per β) + 625 markers, of which the 25 at α = 0 are one, + 1 note
    assert len(p["grid"]["tables"]) == 25 + (625 - 24) + 1
    idx = np.array(p["grid"]["index"])
    assert idx.shape == (625, 3) and len(set(idx[:, 2])) == 1
    assert len(set(idx[:, 0])) == 25 and len(set(idx[:, 1])) == 625 - 24
    assert p["names"] == ["curve", "marker", "note"]
    start = p["start"]
    assert p["sliders"][0]["values"][p["sliders"][0]["default"]] == 0.5
    for name, i in zip(p["names"], idx[start]):
        assert p["first"]["tables"][name] == p["grid"]["tables"][i]
    assert p["grid"]["tables"][idx[0, 2]]["v"] == [0.5, None]  # NaN is a gap (null)
    assert len(p["grid"]["readouts"]) == 625 and p["first"]["readout"].startswith(
        "At α = 0.5, β = 1:"
    )


def test_off_grid_values_compute_finite_tables(fig):
    t = fig.tables(a=0.123456, b=0.777)
    assert t["marker"]["x"][0] == 0.123456
    assert np.isfinite(t["curve"]["y"]).all() and t["curve"]["y"][-1] == pytest.approx(0.777 + 0.25)
    seconds = fig.time_update(a=0.3, b=2.5)
    assert 0 < seconds < 1
    stats = fig.time_updates(n=10)
    assert len(stats["times"]) == 10 and stats["worst"] >= stats["median"] > 0


@pytest.mark.parametrize(
    ("bad", "pattern"),
    [
        ({"curve": {"x": [1.0, math.inf]}}, r"table 'curve', column 'x' has inf at row 1"),
        ({"curve": {"x": [1, 2], "y": [1]}}, r"table 'curve' has columns of different lengths"),
        ({"curve": {"x": np.zeros((2, 2))}}, r"column 'x' has shape \(2, 2\)"),
    ],
)
def test_bad_tables_are_reported(bad, pattern):
    f = Explorable(
        lambda a: bad,
        [alt.Chart(alt.Data(name="curve")).mark_line().encode(x="x:Q")],
        [Slider("a", "a", linear_grid(0, 1, 25), scale="linear")],
        title="bad",
        alt="a",
        readout=None,
    )
    with pytest.raises(ValueError, match=pattern):
        f.sweep()


def test_panels_must_read_named_tables():
    with pytest.raises(ValueError, match="inline data"):
        Explorable(
            lambda: {"t": {"x": [1]}},
            [alt.Chart(alt.Data(values=[{"x": 1}])).mark_point().encode(x="x:Q")],
            [],
            title="t",
            alt="a",
            readout=None,
        )
    f = Explorable(
        lambda: {"t": {"x": [1]}},
        [alt.Chart(alt.Data(name="missing")).mark_point().encode(x="x:Q")],
        [],
        title="t",
        alt="a",
        readout=None,
    )
    with pytest.raises(ValueError, match=r"panels read tables \['missing'\]"):
        f.sweep()


# -- the HTML block ----------------------------------------------------------------------------
def test_display_html_structure(fig, html):
    soup = BeautifulSoup(html, "html.parser")
    root = soup.select_one("div.pg-figure")
    assert root is not None and root["data-pg-figure"] == fig.payload()["id"]
    assert root.select_one(".pg-figure-title").get_text() == "Demo <figure>"
    inputs = root.select('input[type="range"]')
    assert [i["aria-valuetext"] for i in inputs] == ["0.5", "1"]
    assert [(i["min"], i["max"], i["value"]) for i in inputs] == [
        ("0", "24", "12"),
        ("0", "24", "12"),
    ]
    for inp in inputs:
        label = root.select_one(f'label[for="{inp["id"]}"]')
        assert label is not None and label.get_text() in ("step α", "scale β")
        assert inp.find_next_sibling("output").get_text() == inp["aria-valuetext"]
    assert len(root.select("button.pg-play")) == 1  # only β has play=True
    readout = root.select_one(".pg-figure-readout")
    assert (
        readout["aria-live"] == "polite" and readout.get_text() == fig.payload()["first"]["readout"]
    )
    panels = root.select_one(".pg-figure-panels")
    assert panels["role"] == "img"
    assert panels["aria-label"] == f"A line and a point. {readout.get_text()}"
    svgs = panels.select(".pg-panel > svg")
    assert len(svgs) == 2
    texts = " ".join(t.get_text() for t in svgs[0].find_all("text"))
    assert "step α" in texts and "gain" in texts and "Gain" in texts
    # static text follows the page's colour (light and dark), no hard-coded text colour
    assert 'fill="currentColor"' in str(svgs[0]) and style.TEXT not in str(svgs[0])
    data = json.loads(root.select_one("script.pg-figure-data").string)
    assert data["id"] == fig.payload()["id"] and "grid" in data


def test_json_cannot_close_its_script_tag(html):
    block = re.search(r'class="pg-figure-data">(.*?)</script>', html, re.S).group(1)
    assert "</script" not in block and "<\\/script> at a" in block
    assert json.loads(block)["first"]["tables"]["marker"]["label"] == ["</script> at a"]


def test_two_figures_on_a_page_have_unique_svg_ids():
    soup = BeautifulSoup(
        _figure().html()
        + DataFigure(
            {"t": {"x": [1, 2], "y": [3, 4]}},
            [
                alt.Chart(alt.Data(name="t"), height=100, title="T")
                .mark_line()
                .encode(x="x:Q", y="y:Q")
            ],
            title="static",
            alt="two points",
        ).html(),
        "html.parser",
    )
    ids = [el["id"] for el in soup.find_all(id=True)]
    assert len(ids) == len(set(ids))
    for use in soup.find_all(attrs={"clip-path": True}):
        ref = re.search(r"url\(#([^)]+)\)", use["clip-path"]).group(1)
        assert soup.find(id=ref) is not None


def test_data_figure_has_no_controls():
    f = DataFigure(
        {"t": {"x": [1, 2], "y": [3, 4]}},
        [alt.Chart(alt.Data(name="t"), height=100, title="T").mark_line().encode(x="x:Q", y="y:Q")],
        title="static",
        alt="two points",
        readout="The line rises from 3 to 4.",
    )
    assert f.sweep() == 1
    soup = BeautifulSoup(f.html(), "html.parser")
    assert not soup.select("input") and soup.select_one(".pg-figure-readout").get_text().startswith(
        "The line"
    )
    assert len(f.payload()["grid"]["index"]) == 1


# -- style -------------------------------------------------------------------------------------
def _luminance(hex_colour: str) -> float:
    rgb = [int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def _contrast(a: str, b: str) -> float:
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


@pytest.mark.parametrize("background", ["#ffffff", "#14181e"])  # the theme's light and dark pages
def test_palette_reads_on_light_and_dark(background):
    for colour in [*style.PALETTE, style.NEUTRAL]:
        assert _contrast(colour, background) >= 3.0, (colour, background)
    text = style.TEXT if background == "#ffffff" else style.TEXT_DARK
    assert _contrast(text, background) >= 4.5
    assert style.PALETTE.blue == style.PALETTE["blue"] == style.PALETTE[0]


def test_vega_config_text_sizes():
    for dark in (False, True):
        c = style.vega_config(dark)
        assert c["axis"]["labelFontSize"] >= 12 and c["axis"]["titleFontSize"] >= 12
        assert c["title"]["fontSize"] >= 14 and c["legend"]["labelFontSize"] >= 12
    assert style.vega_config(True)["axis"]["labelColor"] == style.TEXT_DARK


# -- the live widget ---------------------------------------------------------------------------
def test_live_widget_recomputes_off_grid(fig):
    import ipywidgets as widgets

    from pgcore.widgets._live import FigureWidget

    box = fig.live()
    a, b = box.controls["a"], box.controls["b"]
    assert isinstance(a, widgets.FloatSlider) and (a.min, a.max, a.value) == (0.0, 1.0, 0.5)
    assert isinstance(b, widgets.FloatLogSlider) and (b.min, b.max) == pytest.approx((-1.0, 1.0))
    assert a.step < (A_VALUES[1] - A_VALUES[0]) / 10  # continuous, not the grid
    view = box.figure
    assert isinstance(view, FigureWidget) and view.panels == fig.panels
    assert view.tables["marker"]["x"] == [0.5]
    a.value = 0.3141  # a simulated slider move, off the grid
    assert view.tables["marker"]["x"] == [0.3141]
    assert view.tables["marker"]["y"][0] == pytest.approx(0.3141 * 1.0 + 0.25, rel=1e-5)
    assert view.readout.startswith("At α = 0.314, β = 1:")
    b.value = 3.0
    assert view.tables["curve"]["y"][-1] == pytest.approx(3.25)
    assert "vega" in view.lib and "vegaLite" in view.lib and "export default" in view._esm


def test_live_index_slider_steps_through_values():
    import ipywidgets as widgets

    f = Explorable(
        lambda n: {"t": {"x": [n], "y": [2 * n]}},
        [alt.Chart(alt.Data(name="t")).mark_point().encode(x="x:Q", y="y:Q")],
        [Slider("n", "iteration n", [0, 1, 5, 6], scale="index", play=True, fmt="{:d}")],
        title="t",
        alt="a",
        readout=None,
    )
    box = f.live()
    w = box.controls["n"]
    assert isinstance(w, widgets.SelectionSlider) and list(w.options) == [
        ("0", 0),
        ("1", 1),
        ("5", 5),
        ("6", 6),
    ]
    w.value = 5
    assert box.figure.tables["t"]["y"] == [10]


def test_live_widget_shows_a_compute_error_and_keeps_the_drawing():
    def compute(a):
        if a > 0.5:
            raise RuntimeError("diverged")
        return {"t": {"x": [a]}}

    f = Explorable(
        compute,
        [alt.Chart(alt.Data(name="t")).mark_point().encode(x="x:Q")],
        [Slider("a", "a", linear_grid(0, 1, 25), scale="linear")],
        title="t",
        alt="a",
        readout=None,
    )
    box = f.live()
    box.controls["a"].value = 0.9
    assert box.figure.tables["t"]["x"] == [0.0] and "RuntimeError: diverged" in box.figure.readout


# -- browser files -----------------------------------------------------------------------------
VENDORED = {
    "vega.min.js": "node_modules/vega/build/vega.min.js",
    "vega-lite.min.js": "node_modules/vega-lite/build/vega-lite.min.js",
    "LICENSE-vega": "node_modules/vega/LICENSE",
    "LICENSE-vega-lite": "node_modules/vega-lite/LICENSE",
}


@pytest.mark.parametrize("name", sorted(VENDORED))
def test_committed_vendor_files_equal_node_modules(name):
    committed = STATIC_DIR / name
    assert committed.is_file(), f"{committed} is missing (run the vendor step: make setup)"
    source = REPO / VENDORED[name]
    if not source.is_file():
        pytest.skip(f"{source} absent (no node_modules)")
    digest = lambda p: hashlib.sha256(p.read_bytes()).hexdigest()
    assert digest(committed) == digest(source), (
        f"{committed} differs from {source}: run the vendor step"
    )


def test_vendored_versions_match_package_lock():
    lock = json.loads((REPO / "package-lock.json").read_text())["packages"]
    for pkg, file in (("vega", "vega.min.js"), ("vega-lite", "vega-lite.min.js")):
        version = lock[f"node_modules/{pkg}"]["version"]
        head = (STATIC_DIR / file).read_text(encoding="utf-8")[:2000]
        if pkg == "vega-lite":
            assert f'"{version}"' in head, (pkg, version)
        else:
            assert (STATIC_DIR / file).stat().st_size > 100_000
    assert "pgcore.widgets" in (REPO / "pyproject.toml").read_text()


def test_package_data_is_declared():
    import tomllib

    cfg = tomllib.loads((REPO / "pyproject.toml").read_text())
    globs = cfg["tool"]["setuptools"]["package-data"]["pgcore.widgets"]
    for name in ("pgfigure.js", *VENDORED):
        assert any(Path("static", name).match(g) for g in globs), name


# -- the Sphinx step: grids move out of the page -----------------------------------------------
def _load_ext():
    spec = importlib.util.spec_from_file_location(
        "pgfigures_sphinx", REPO / "book/_ext/pgfigures_sphinx.py"
    )
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("pgfigures_sphinx", mod)
    spec.loader.exec_module(mod)
    return mod


def test_split_page_moves_the_grid_to_a_lazy_file(fig, html, tmp_path):
    ext = _load_ext()
    page = tmp_path / "book" / "chapter.html"
    page.parent.mkdir()
    page.write_text(f"<html><body><p>text</p>{html}</body></html>", encoding="utf-8")
    assert ext.split_page(page, tmp_path) == 1
    new = page.read_text(encoding="utf-8")
    payload = json.loads(re.search(r'class="pg-figure-data">(.*?)</script>', new, re.S).group(1))
    assert (
        "grid" not in payload and payload["src"] == f"../_static/figdata/{fig.payload()['id']}.json"
    )
    grid = json.loads((page.parent / payload["src"]).read_text(encoding="utf-8"))
    assert grid == fig.payload()["grid"]
    assert payload["first"] == fig.payload()["first"] and len(new) < len(html) / 2
    assert ext.split_page(page, tmp_path) == 0  # idempotent


def test_display_has_a_plain_text_alternative(fig):
    from IPython.core.formatters import format_display_data

    bundle = format_display_data(fig.display())[0]
    assert bundle["text/html"].startswith('<div class="pg-figure"')
    assert bundle["text/plain"] == "\n".join(
        ["Demo <figure>", "A line and a point.", fig.payload()["first"]["readout"]]
    )
