"""Chapter 2's dual-gradient-descent widget: every slider value draws, the runs behave."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import pgcore  # noqa: E402
from pgcore.widgets.dual import (  # noqa: E402
    DUAL_STEPS,
    EPSILONS,
    START,
    draw_dual,
    dual_explorable,
    precompute_dual,
    run_dual,
)


@pytest.fixture(scope="module")
def explorer():
    return dual_explorable()


def test_sweep_every_slider_value_without_exception(explorer):
    assert explorer.sweep() == len(EPSILONS) * len(DUAL_STEPS)


def test_time_one_update(explorer, record_property):
    explorer.figure(eps=0.05, dual_lr=10.0)
    plt.close("all")
    seconds = explorer.time_update(eps=0.02, dual_lr=3.0)
    record_property("dual_update_seconds", seconds)
    print(f"dual widget: one update took {seconds:.3f} s")


def test_every_grid_run_is_finite_and_ends_near_the_constraint(explorer):
    runs = explorer.fixed["runs"]
    assert set(runs) == {(float(e), float(a)) for e in EPSILONS for a in DUAL_STEPS}
    for run in runs.values():
        assert not run.diverged
        assert np.isfinite(run.lam).all() and (run.lam >= 0).all()
        np.testing.assert_allclose(run.probs.sum(1), 1.0, atol=1e-12)
        np.testing.assert_allclose(run.probs[0], START, atol=1e-12)
        assert 0.5 < run.final_kl_ratio < 5.0


def test_a_moderate_dual_step_settles_on_the_constraint():
    run = run_dual(0.02, 10.0)
    assert run.final_kl_ratio == pytest.approx(1.0, abs=0.01)
    assert np.std(run.lam[-10:]) < 1e-3 and run.lam[-1] > 0
    assert run.surrogate[-1] > 0


def test_run_matches_a_direct_call_of_dual_gradient_descent():
    run = run_dual(0.05, 3.0, iters=10)
    mdp = pgcore.three_armed_bandit()
    policy = pgcore.TabularSoftmaxPolicy.from_probs(torch.tensor([START], dtype=torch.float64))
    out = pgcore.dual_gradient_descent(
        policy, pgcore.exact_batch(mdp, policy), 0.05, dual_lr=3.0, iters=10, inner_steps=5, lr=0.5
    )
    np.testing.assert_allclose(run.lam, out["lam"])
    np.testing.assert_allclose(run.kl, out["kl"])
    np.testing.assert_allclose(run.probs[-1], policy.probs().detach().numpy()[0], atol=1e-12)


def test_a_huge_dual_step_is_reported_as_diverged_not_raised():
    runs = precompute_dual((0.1,), (1e6,), iters=10)
    run = runs[(0.1, 1e6)]
    assert run.diverged
    fig = draw_dual(0.1, 1e6, runs=runs)  # draws a message instead of traces
    plt.close(fig)


def test_precompute_restores_the_thread_count():
    before = torch.get_num_threads()
    precompute_dual((0.05,), (3.0,), iters=2)
    assert torch.get_num_threads() == before
