"""Chapter 1's improvement-bound widget: every slider value draws, the curves obey the theory."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from pgcore import bounds  # noqa: E402
from pgcore.widgets.improvement import (  # noqa: E402
    ALPHAS,
    GAMMAS,
    default_problem,
    draw_improvement,
    improvement_curves,
    improvement_explorable,
    precompute_improvement,
)


@pytest.fixture(scope="module")
def explorer():
    return improvement_explorable()


def test_sweep_every_slider_value_without_exception(explorer):
    assert explorer.sweep() == len(ALPHAS) * len(GAMMAS)


def test_time_one_update(explorer, record_property):
    explorer.figure(alpha=0.05, gamma=0.9)
    plt.close("all")
    seconds = explorer.time_update(alpha=0.02, gamma=0.7)
    record_property("improvement_update_seconds", seconds)
    print(f"improvement widget: one update took {seconds:.3f} s")


def test_static_html_has_one_frame_per_grid_point():
    import json
    import re

    html = improvement_explorable(gammas=(0.5,), alphas=(0.01, 0.1)).static_html()
    data = json.loads(re.search(r'class="pg-explorable-data">(.*?)</script>', html, re.S).group(1))
    assert len(data["frames"]) == 2 and data["sizes"] == [2, 1]


@pytest.mark.parametrize("gamma", GAMMAS)
def test_curves_obey_the_theory(gamma):
    curves = precompute_improvement((gamma,))[gamma]
    a = curves.alphas
    assert a[0] == pytest.approx(1e-3) and a[-1] == pytest.approx(1.0)
    assert set(ALPHAS) <= set(np.round(a, 12))
    # the lower bound minorises the true gain, and the surrogate is first-order exact
    finite = np.isfinite(curves.lower_bound)
    assert (curves.lower_bound[finite] <= curves.true_gain[finite] + 1e-12).all()
    assert abs(curves.true_gain[0] - curves.surrogate_gain[0]) < 1e-3 * abs(curves.true_gain[0])
    # the greedy step improves J, and the bound certifies a small step but not a full one
    assert (curves.true_gain > 0).all()
    assert curves.certified[0] and not curves.certified[-1]
    assert 0 < curves.alpha_mm <= curves.alpha_certified_max < 1
    mdp, pi, greedy = default_problem(gamma)
    assert curves.C == pytest.approx(bounds.trpo_penalty_coefficient(mdp, pi).item())


def test_the_certified_region_shrinks_as_gamma_grows():
    curves = precompute_improvement(GAMMAS)
    widths = [curves[g].alpha_certified_max for g in GAMMAS]
    assert widths == sorted(widths, reverse=True) and widths[0] > widths[-1]


def test_improvement_curves_match_bounds_module():
    mdp, pi, greedy = default_problem(0.7)
    c = improvement_curves(mdp, pi, greedy, [0.1])
    pa = bounds.mixture(pi, greedy, 0.1)
    J0 = mdp.performance(pi).item()
    assert c.true_gain[0] == pytest.approx(mdp.performance(pa).item() - J0, abs=1e-14)
    assert c.lower_bound[0] == pytest.approx(
        bounds.trpo_lower_bound(mdp, pa, pi).item() - J0, abs=1e-12
    )


def test_draw_returns_a_figure_for_any_alpha_even_off_grid():
    curves = precompute_improvement((0.5,))
    fig = draw_improvement(0.0123, 0.5, curves=curves)
    assert isinstance(fig, Figure)
    plt.close(fig)
