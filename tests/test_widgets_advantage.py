"""The advantage chapter's widget: every slider value draws, the measurements are what they claim."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from pgcore import advantage as adv  # noqa: E402
from pgcore.widgets.advantage import (  # noqa: E402
    LAMS,
    PROBLEM,
    SCALES,
    STATIC_LAMS,
    advantage_explorable,
    default_problem,
    draw_bias_variance,
    precompute,
)


@pytest.fixture(scope="module")
def explorer():
    return advantage_explorable()


def test_sweep_every_slider_value_without_exception(explorer):
    assert explorer.sweep() == len(LAMS) * len(SCALES)


def test_time_one_update(explorer, record_property):
    explorer.figure(lam=0.5, scale=SCALES[-1])
    plt.close("all")
    seconds = explorer.time_update(lam=0.25, scale=SCALES[1])
    record_property("advantage_update_seconds", seconds)
    print(f"advantage widget: one update took {seconds:.3f} s")


def test_lambda_grid_is_fine_and_even():
    lams = np.array(LAMS)
    assert len(lams) >= 25 and lams[0] == 0.0 and lams[-1] == 1.0
    np.testing.assert_allclose(np.diff(lams), lams[1] - lams[0], atol=1e-12)
    assert all(np.isclose(lams, v).any() for v in STATIC_LAMS)
    assert STATIC_LAMS[-1] == 1.0


def test_static_explorable_uses_the_subset_and_rejects_off_grid_values(explorer):
    grid = explorer.fixed["grid"]
    small = advantage_explorable(grid, slider_lams=STATIC_LAMS)
    assert list(small.sliders[0].values) == list(STATIC_LAMS)
    with pytest.raises(ValueError, match="not on the precomputed grid"):
        advantage_explorable(grid, slider_lams=[0.123])


def test_grid_point_matches_a_direct_measurement(explorer):
    grid = explorer.fixed["grid"]
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
    est, _ = adv.gae_estimates(traj, Vc, PROBLEM["gamma"], LAMS[j])
    x = est[0]
    w = d[:, None] * pi.numpy()
    mean = np.zeros_like(A)
    var = np.zeros_like(A)
    for s in range(mdp.n_states):
        for a in range(mdp.n_actions):
            sel = (s0 == s) & (a0 == a)
            mean[s, a], var[s, a] = x[sel].mean(), x[sel].var(ddof=1)
    b = mean - A
    bc = b - (pi.numpy() * b).sum(1, keepdims=True)
    assert grid.bias2[k, j] == pytest.approx((w * bc**2).sum(), rel=1e-10)
    assert grid.variance[k, j] == pytest.approx((w * var).sum(), rel=1e-10)
    np.testing.assert_allclose(grid.A, A, atol=1e-12)


def test_the_chapter_statements_hold_on_the_grid(explorer):
    grid = explorer.fixed["grid"]
    assert grid.best_lam(0) == 0.0
    assert all(grid.best_lam(k) < grid.best_lam(k + 1) for k in range(len(SCALES) - 1))
    assert grid.variance[:, -1].max() / grid.variance[:, -1].min() < 1.01
    np.testing.assert_allclose(grid.mse, grid.bias2 + grid.variance, rtol=1e-12)


def test_draw_picks_the_nearest_grid_point_and_precompute_restores_threads(explorer):
    before = torch.get_num_threads()
    small = precompute(lams=(0.0, 1.0), scales=(0.0,), problem={"n_per_pair": 20, "horizon": 10})
    assert torch.get_num_threads() == before
    assert small.bias2.shape == (1, 2)
    fig = draw_bias_variance(0.9, 0.1, grid=small)  # nearest: λ = 1, σ = 0
    assert "λ = 1" in fig._suptitle.get_text()
    plt.close(fig)
