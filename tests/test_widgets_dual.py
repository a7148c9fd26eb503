"""Chapter 2's dual-gradient-descent figure: the NumPy runs equal dual_gradient_descent, every grid
setting computes, off-grid settings compute, and the chapter's "try this" statements hold."""

import math

import numpy as np
import pytest
import torch

import pgcore
from pgcore.widgets import Explorable
from pgcore.widgets.dual import (
    DELTAS,
    DUAL_STEPS,
    INNER_LR,
    INNER_STEPS,
    ITERS,
    REWARDS,
    START,
    dual_explorable,
    kl_ball,
    run_dual,
    run_dual_batch,
)


@pytest.fixture(scope="module")
def fig():
    return dual_explorable()


def _reference(delta, dual_step, iters=ITERS):
    """pgcore.dual_gradient_descent itself, on the same bandit and start."""
    mdp = pgcore.three_armed_bandit(REWARDS)
    policy = pgcore.TabularSoftmaxPolicy.from_probs(torch.tensor([START], dtype=torch.float64))
    out = pgcore.dual_gradient_descent(
        policy,
        pgcore.exact_batch(mdp, policy),
        delta,
        dual_lr=dual_step,
        iters=iters,
        inner_steps=INNER_STEPS,
        lr=INNER_LR,
    )
    probs = np.vstack(
        [START] + [torch.softmax(th.reshape(1, 3), -1).numpy() for th in out["theta"]]
    )
    return out, probs


@pytest.mark.parametrize(
    "delta, dual_step", [(0.02, 10.0), (0.005, 1.0), (0.05, 3.0), (0.0137, 4.4)]
)
def test_numpy_runs_equal_dual_gradient_descent(delta, dual_step):
    run = run_dual(delta, dual_step)
    out, probs = _reference(delta, dual_step)
    np.testing.assert_allclose(run.beta, out["beta"], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(run.kl, out["kl"], rtol=1e-9, atol=1e-14)
    np.testing.assert_allclose(run.surrogate, out["surrogate"], rtol=1e-9, atol=1e-14)
    np.testing.assert_allclose(run.probs, probs, atol=1e-12)


def test_an_oscillating_run_still_equals_dual_gradient_descent():
    # the largest δ and step oscillate: rounding differences grow, but stay small over the run
    run = run_dual(max(DELTAS), max(DUAL_STEPS))
    out, _ = _reference(max(DELTAS), max(DUAL_STEPS))
    np.testing.assert_allclose(run.beta, out["beta"], rtol=1e-6)
    np.testing.assert_allclose(run.kl, out["kl"], rtol=1e-6)


def test_the_batch_equals_single_runs():
    batch = run_dual_batch([0.01, 0.08], [2.0, 25.0])
    for r in batch:
        single = run_dual(r.delta, r.dual_step)
        np.testing.assert_allclose(r.kl, single.kl, rtol=1e-10)
        np.testing.assert_allclose(r.beta, single.beta, rtol=1e-10)


def test_a_huge_dual_step_is_reported_as_diverged_not_raised():
    run = run_dual(0.1, 1e9)  # β overflows after a few dozen dual steps
    assert run.diverged and not np.isfinite(run.beta).all()
    assert not run_dual(0.1, 30.0).diverged


def test_invalid_radius_or_step_raise():
    with pytest.raises(ValueError):
        run_dual(0.0, 1.0)
    with pytest.raises(ValueError):
        run_dual(0.01, -1.0)
    with pytest.raises(ValueError):
        run_dual(math.inf, 1.0)


def test_kl_ball_lies_on_the_radius():
    for delta in (0.005, 0.03, 0.1):
        pts = kl_ball(START, delta)
        p = np.asarray(START)
        kl = (p * np.log(p / pts)).sum(-1)
        np.testing.assert_allclose(kl, delta, rtol=1e-9)
        np.testing.assert_allclose(pts.sum(-1), 1.0, atol=1e-12)
        assert (pts > 0).all()
        np.testing.assert_allclose(pts[0], pts[-1], atol=1e-12)  # a closed curve


def test_sliders_are_fine_log_grids(fig):
    assert isinstance(fig, Explorable)
    delta, step = fig.sliders
    assert (delta.name, step.name) == ("delta", "dual_step")
    assert delta.scale == step.scale == "log"
    assert len(delta.values) >= 25 and len(step.values) >= 25
    assert "δ" in delta.label and "η_β" in step.label


def test_sweep_every_grid_setting(fig):
    assert fig.sweep() == len(DELTAS) * len(DUAL_STEPS)
    for values, tables in fig.grid_tables():
        run = fig.fixed["runs"][(values["delta"], values["dual_step"])]
        assert not run.diverged
        assert (run.beta >= 0).all()
        np.testing.assert_allclose(run.probs.sum(1), 1.0, atol=1e-12)
        np.testing.assert_allclose(tables["trace"]["kl"], run.kl, rtol=1e-3)
        np.testing.assert_allclose(tables["radius"]["delta"], [values["delta"]])


def test_off_grid_settings_compute_finite_tables(fig):
    rng = np.random.default_rng(1)
    for _ in range(5):
        values = fig.random_values(rng)
        assert (values["delta"], values["dual_step"]) not in fig.fixed["runs"]
        tables = fig.tables(**values)
        for name, table in tables.items():
            for col, arr in table.items():
                if arr.dtype.kind == "f":
                    assert np.isfinite(arr).all(), (name, col)
        text = fig.readout_text(values, tables)
        assert f"{values['delta']:.3g}" in text and f"{values['dual_step']:.3g}" in text


def test_time_update_is_fast(fig, record_property):
    timing = fig.time_updates(12)
    record_property("dual_update_median_s", timing["median"])
    record_property("dual_update_worst_s", timing["worst"])
    print(f"dual figure update: median {timing['median']:.3f} s, worst {timing['worst']:.3f} s")
    assert timing["median"] < 1.0  # loose sanity bound; the budget is 0.1 s


def test_readout_and_alt_text(fig):
    values = fig.defaults()
    tables = fig.tables(**values)
    text = fig.readout_text(values, tables)
    run = fig.fixed["runs"][(values["delta"], values["dual_step"])]
    assert f"D̄_KL = {run.final_kl_ratio:.3f} δ" in text
    assert f"peaks at {run.ratio.max():.2f} δ" in text
    assert "β" in fig.alt and "simplex" in fig.alt and "δ" in fig.alt


def test_the_guide_holds_over_the_grid(fig):
    """The chapter's "try this" statements, over every setting the figure shows."""
    runs = fig.fixed["runs"]
    deltas, steps = sorted({d for d, _ in runs}), sorted({e for _, e in runs})
    lo, hi, tol = steps[0], steps[-1], 1e-3
    # the smallest dual step overshoots the most, and small δ are still above δ at the end
    assert all(
        runs[(d, lo)].ratio.max() == max(runs[(d, e)].ratio.max() for e in steps) for d in deltas
    )
    slow = [d for d in deltas if runs[(d, lo)].ratio[-1] > 1 + tol]
    assert slow and slow == deltas[: len(slow)]
    # the largest step oscillates at the largest δ
    top = runs[(deltas[-1], hi)]
    assert top.crossings >= 10 and abs(top.ratio[-1] - 1) > 10 * tol
    # for small δ no crossing at any step, and larger steps settle sooner
    calm = [d for d in deltas if all(runs[(d, e)].crossings == 0 for e in steps)]
    assert calm and calm == deltas[: len(calm)]
    for d in calm:
        settle = [runs[(d, e)].settled_at() for e in steps]
        assert all(b <= a for a, b in zip(settle, settle[1:])) and settle[-1] < math.inf
    # some runs settle on the boundary of the ball
    assert any(abs(r.ratio[-1] - 1) < tol for r in runs.values())
