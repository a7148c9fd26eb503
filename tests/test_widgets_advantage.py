"""The advantage chapter's figure: the fast route is pgcore's gae, the tables and the guide hold."""

import math

import numpy as np
import pytest
import torch

from pgcore import advantage as adv
from pgcore.widgets.advantage import (
    GAMMAS,
    LAMS,
    PROBLEM,
    SCALES,
    SLIDER_LAMS,
    advantage_explorable,
    compute,
    default_problem,
    errors,
    moments,
    precompute,
)


@pytest.fixture(scope="module")
def grid():
    return precompute()


@pytest.fixture(scope="module")
def fig():
    return advantage_explorable()


def test_grids_are_fine_and_even(fig):
    lam, gamma, sigma = fig.sliders
    for s in (lam, gamma):
        v = np.array(s.values)
        assert s.scale == "linear" and len(v) >= 25
        np.testing.assert_allclose(np.diff(v), v[1] - v[0], atol=1e-12)
    assert SLIDER_LAMS[0] == 0.0 and SLIDER_LAMS[-1] == 1.0
    assert PROBLEM["gamma"] in GAMMAS and fig.defaults()["gamma"] == PROBLEM["gamma"]
    assert sigma.scale == "index" and list(sigma.values) == list(SCALES)


def test_sweep_every_grid_point(fig):
    assert fig.sweep() == len(SLIDER_LAMS) * len(GAMMAS) * len(SCALES)


def test_fast_moments_equal_pgcores_gae(grid):
    """The closed form Σ(γλ)ˡδ^V_l, linear in the critic, gives precompute's numbers exactly."""
    mom = moments(PROBLEM["gamma"], LAMS)
    for k, sigma in enumerate(SCALES):
        e = errors(mom, sigma)
        np.testing.assert_allclose(e["bias2"], grid.bias2[k], rtol=1e-9)
        np.testing.assert_allclose(e["variance"], grid.variance[k], rtol=1e-9)
        np.testing.assert_allclose(e["mean"], grid.mean[k], atol=1e-12)
        np.testing.assert_allclose(e["std"], grid.std[k], atol=1e-12)
    np.testing.assert_allclose(mom.A, grid.A, atol=1e-12)


def test_fast_moments_at_another_gamma_equal_pgcores_gae():
    gamma, lam, sigma = 0.8, 0.7, 0.5
    mdp, policy = default_problem({"gamma": gamma})
    pi = policy.probs().detach()
    V, Q = mdp.values(pi)
    s0, a0 = adv.all_pairs(mdp.n_states, mdp.n_actions, PROBLEM["n_per_pair"])
    traj = adv.sample_trajectories(
        mdp,
        pi,
        len(s0),
        PROBLEM["horizon"],
        seed=PROBLEM["sample_seed"],
        start_states=s0,
        start_actions=a0,
    )
    Vc = adv.noisy_critic(V.numpy(), sigma, seed=PROBLEM["noise_seed"])
    est, _ = adv.gae_estimates(traj, Vc, gamma, lam)
    m, v, _ = adv.pair_statistics(est[0], s0, a0, mdp.n_states, mdp.n_actions)
    bv = adv.bias_variance(m, v, (Q - V[:, None]).numpy(), pi.numpy(), mdp.occupancy(pi).numpy())
    e = errors(moments(gamma, [lam]), sigma)
    assert e["bias2"][0] == pytest.approx(bv.bias2, rel=1e-9)
    assert e["variance"][0] == pytest.approx(bv.variance, rel=1e-9)
    np.testing.assert_allclose(e["mean"][0], m, atol=1e-12)


def test_grid_point_matches_a_direct_measurement(grid):
    mdp, policy = default_problem()
    pi = policy.probs().detach()
    V, Q = mdp.values(pi)
    A = (Q - V[:, None]).numpy()
    d = mdp.occupancy(pi).numpy()
    s0, a0 = adv.all_pairs(mdp.n_states, mdp.n_actions, PROBLEM["n_per_pair"])
    traj = adv.sample_trajectories(
        mdp,
        pi,
        len(s0),
        PROBLEM["horizon"],
        seed=PROBLEM["sample_seed"],
        start_states=s0,
        start_actions=a0,
    )
    k, j = 1, 10
    Vc = V.numpy() + SCALES[k] * np.random.default_rng(PROBLEM["noise_seed"]).standard_normal(
        mdp.n_states
    )
    x = adv.gae_estimates(traj, Vc, PROBLEM["gamma"], LAMS[j])[0][0]
    w = d[:, None] * pi.numpy()
    mean, var = np.zeros_like(A), np.zeros_like(A)
    for s in range(mdp.n_states):
        for a in range(mdp.n_actions):
            sel = (s0 == s) & (a0 == a)
            mean[s, a], var[s, a] = x[sel].mean(), x[sel].var(ddof=1)
    b = mean - A
    bc = b - (pi.numpy() * b).sum(1, keepdims=True)
    assert grid.bias2[k, j] == pytest.approx((w * bc**2).sum(), rel=1e-10)
    assert grid.variance[k, j] == pytest.approx((w * var).sum(), rel=1e-10)
    np.testing.assert_allclose(grid.mse, grid.bias2 + grid.variance, rtol=1e-12)


def test_off_grid_compute_is_finite_and_consistent(fig):
    rng = np.random.default_rng(1)
    for _ in range(4):
        values = fig.random_values(rng)
        tables = fig.tables(**values)
        for table in tables.values():
            for col in table.values():
                if col.dtype.kind == "f":
                    assert np.all(np.isfinite(col))
        # the marker at an off-grid λ lies between the curve's values at its grid neighbours
        lam = values["lam"]
        j = int(np.searchsorted(SLIDER_LAMS, lam))
        mse = np.asarray(tables["curve"]["MSE"])
        lo, hi = sorted((mse[j - 1], mse[j]))
        assert 0.9 * lo <= tables["marker"]["MSE"][0] <= 1.1 * hi
    timing = fig.time_updates(10)
    print(
        f"advantage figure: update median {timing['median'] * 1e3:.0f} ms, worst {timing['worst'] * 1e3:.0f} ms"
    )
    assert timing["median"] < 1.0  # loose sanity bound; the book reports the measured time


def test_compute_rejects_values_outside_the_ranges():
    with pytest.raises(ValueError):
        compute(1.2, 0.9, 0.0)
    with pytest.raises(ValueError):
        compute(0.5, 1.0, 0.0)
    with pytest.raises(ValueError):
        compute(0.5, 0.9, -0.1)


def test_readout_and_alt_report_the_numbers(fig):
    t = fig.tables(lam=0.6, gamma=0.95, sigma=0.2)
    text = fig.readout_text({"lam": 0.6, "gamma": 0.95, "sigma": 0.2}, t)
    assert "λ = 0.6" in text and "γ = 0.95" in text and "σ = 0.2" in text
    assert f"{t['marker']['MSE'][0]:.3g}" in text and f"λ = {t['best']['lam'][0]:.2f}" in text
    assert "18 state-action pairs" in fig.alt and "σ = 0.2 and 0.8" in fig.alt


def test_the_guide_holds_on_the_grid(fig):
    best = {}
    for values, tables in fig.grid_tables():
        if values["lam"] == 0.0:
            best[values["gamma"], values["sigma"]] = tables["best"]["lam"][0]
    for g in GAMMAS:
        assert best[g, 0.0] == 0.0
        assert best[g, SCALES[0]] < best[g, SCALES[1]] < best[g, SCALES[2]]


def test_threads_restored():
    before = torch.get_num_threads()
    precompute(lams=(0.0, 1.0), scales=(0.0,), problem={"n_per_pair": 20, "horizon": 10})
    assert torch.get_num_threads() == before
    assert math.isfinite(compute(0.33, 0.877, 0.8)["marker"]["MSE"][0])
