"""Chapter 1's figure (pgcore.widgets.improvement): the grid, off-grid values, timing, and the
curves against the bounds module and the theory."""

import math

import numpy as np
import pytest
import torch

from pgcore import bounds
from pgcore.widgets.improvement import (
    ALPHAS,
    DENSE_ALPHAS,
    GAMMAS,
    SERIES,
    MixturePath,
    curves_for,
    default_problem,
    improvement_curves,
    improvement_explorable,
)


@pytest.fixture(scope="module")
def fig():
    return improvement_explorable()


def test_sliders_are_fine_even_grids(fig):
    alpha, gamma = fig.sliders
    assert (alpha.name, alpha.scale, len(alpha.values)) == ("alpha", "log", 25)
    assert (gamma.name, gamma.scale, len(gamma.values)) == ("gamma", "linear", 25)
    assert alpha.values == ALPHAS and gamma.values == GAMMAS
    assert np.allclose(np.diff(np.log(ALPHAS)), np.log(1e4) / 24)
    assert set(ALPHAS) <= set(DENSE_ALPHAS)  # every slider α lies on the drawn curves


def test_sweep_every_grid_point(fig):
    assert fig.sweep() == 25 * 25
    p = fig.payload()
    # the curves and the certified region depend on γ only: stored once per γ
    idx = np.array(p["grid"]["index"])
    names = p["names"]
    assert len(set(idx[:, names.index("curves")])) == 25
    assert len(set(idx[:, names.index("gamma_curve")])) == 1


def test_off_grid_values_give_finite_tables(fig):
    a = math.sqrt(ALPHAS[7] * ALPHAS[8])
    g = 0.5 * (GAMMAS[3] + GAMMAS[4])
    t = fig.tables(alpha=a, gamma=g)
    for name, table in t.items():
        for col, v in table.items():
            if v.dtype.kind == "f":
                assert np.isfinite(v[~np.isnan(v)]).all(), (name, col)
    assert t["marker"]["alpha"][0] == a and t["gamma_marker"]["gamma"][0] == g
    mdp, pi, greedy = default_problem(g)
    pa = bounds.mixture(pi, greedy, a)
    J0 = mdp.performance(pi).item()
    true, surr, low = t["marker"]["gain"]
    assert true == pytest.approx(mdp.performance(pa).item() - J0, abs=1e-12)
    assert low == pytest.approx(bounds.trpo_lower_bound(mdp, pa, pi).item() - J0, abs=1e-10)
    assert list(t["marker"]["series"]) == list(SERIES)


def test_time_update_off_grid(fig, record_property):
    fig.time_update(alpha=0.02, gamma=0.71)  # warm up
    stats = fig.time_updates(n=12, seed=1)
    record_property("improvement_update_median_s", stats["median"])
    record_property("improvement_update_worst_s", stats["worst"])
    print(
        f"improvement: update median {stats['median'] * 1e3:.1f} ms, worst {stats['worst'] * 1e3:.1f} ms"
    )
    assert (
        stats["worst"] < 1.0
    )  # a loose sanity bound; the budget (0.1 s) is reported, not asserted


def test_readout_reports_the_setting(fig):
    t = fig.tables(alpha=1.0, gamma=0.95)
    text = fig.readout_text({"alpha": 1.0, "gamma": 0.95}, t)
    assert text.startswith("At α = 1, γ = 0.95: true gain +") and "(not certified)" in text
    assert "lower bound −∞" in text  # the greedy policy leaves the support: the KL is infinite


@pytest.mark.parametrize("gamma", [GAMMAS[0], GAMMAS[12], GAMMAS[-1], 0.8123])
def test_curves_obey_the_theory(gamma):
    c = curves_for(gamma)
    finite = np.isfinite(c.lower_bound)
    # the lower bound minorises the true gain; the surrogate is first-order exact
    assert (c.lower_bound[finite] <= c.true_gain[finite] + 1e-12).all()
    assert abs(c.true_gain[0] - c.surrogate_gain[0]) < 1e-3 * abs(c.true_gain[0])
    # the greedy mixture improves J everywhere; the bound certifies exactly (0, α*)
    assert (c.true_gain > 0).all()
    assert 0 < c.alpha_star < 1 and not c.certified[-1]
    assert (c.lower_bound[c.alphas < c.alpha_star * (1 - 1e-6)] > 0).all()
    assert (c.lower_bound[c.alphas > c.alpha_star * (1 + 1e-6)] <= 0).all()
    path = MixturePath(*default_problem(gamma))
    assert (
        path.bound([c.alpha_star * (1 - 1e-5)])[0] > 0 >= path.bound([c.alpha_star * (1 + 1e-5)])[0]
    )
    mdp, pi, _ = default_problem(gamma)
    assert c.C == pytest.approx(bounds.trpo_penalty_coefficient(mdp, pi).item())


def test_certified_region_shrinks_as_gamma_grows():
    stars = [curves_for(g).alpha_star for g in GAMMAS]
    assert all(a > b for a, b in zip(stars, stars[1:])) and stars[-1] > 0


def test_vectorised_curves_match_the_bounds_module():
    mdp, pi, greedy = default_problem(0.7)
    alphas = [1e-3, 0.1, 0.5]
    c = improvement_curves(mdp, pi, greedy, alphas)
    J0 = mdp.performance(pi).item()
    for k, a in enumerate(alphas):
        pa = bounds.mixture(pi, greedy, a)
        assert c.true_gain[k] == pytest.approx(mdp.performance(pa).item() - J0, abs=1e-13)
        s = bounds.surrogate_advantage(mdp, pa, pi).item() / (1 - mdp.gamma)
        assert c.surrogate_gain[k] == pytest.approx(s, abs=1e-13)
        assert c.lower_bound[k] == pytest.approx(
            bounds.trpo_lower_bound(mdp, pa, pi).item() - J0, abs=1e-11
        )
    assert torch.equal(default_problem(0.7)[2], greedy)
