"""The Explorable front ends: kernel-free HTML and the live ipywidgets version share one draw."""

import json
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from pgcore.widgets import Explorable, Slider  # noqa: E402

CALLS = []


def _draw(a, b, c=0.0):
    CALLS.append((a, b, c))
    fig, ax = plt.subplots(figsize=(2, 1.5))
    ax.plot([0, 1], [a, b])
    ax.set_title(f"{a}-{b}-{c}")
    return fig


def _explorable():
    return Explorable(
        _draw,
        [Slider("a", "a", [0.0, 1.0, 2.0], default=1.0), Slider("b", "β", [0.5, 1.5])],
        title="demo",
        fixed={"c": 3.0},
    )


def test_sweep_visits_the_whole_grid():
    CALLS.clear()
    assert _explorable().sweep() == 6
    assert sorted(CALLS) == sorted((a, b, 3.0) for a in (0.0, 1.0, 2.0) for b in (0.5, 1.5))


def test_static_html_has_one_frame_per_grid_point_and_starts_at_the_default():
    html = _explorable().static_html()
    data = json.loads(re.search(r'class="pg-explorable-data">(.*?)</script>', html, re.S).group(1))
    assert len(data["frames"]) == 6 and data["sizes"] == [3, 2]
    assert len(set(data["frames"])) == 6  # every grid point draws a different picture
    assert html.count('type="range"') == 2
    first = re.search(r'src="data:image/png;base64,([^"]+)"', html).group(1)
    assert first == data["frames"][1 * 2 + 0]  # a = 1.0 (default), b = 0.5 (first)
    assert "β" in html and "demo" in html


def test_live_widget_builds_and_redraws():
    w = _explorable().live()
    sliders = [c for c in w.children if hasattr(c, "options")]
    assert len(sliders) == 2
    image = w.children[-1]
    before = image.value
    assert before[:8] == b"\x89PNG\r\n\x1a\n"
    CALLS.clear()
    sliders[0].value = 2.0
    assert CALLS and CALLS[-1][0] == 2.0
    assert image.value != before


def test_time_update_and_validation():
    assert _explorable().time_update(a=2.0) > 0
    with pytest.raises(ValueError, match="default"):
        Slider("a", "a", [1.0, 2.0], default=3.0)
    with pytest.raises(ValueError, match="at least one"):
        Slider("a", "a", [])
    with pytest.raises(ValueError, match="unique"):
        Explorable(_draw, [Slider("a", "a", [1.0]), Slider("a", "b", [2.0])])
