"""Chapter 5 widgets (pgcore.widgets.ppo): full slider sweeps, one timed update, and the helpers
checked against independent NumPy computations."""

from __future__ import annotations

import numpy as np
import pytest

from pgcore import AdaptiveKL, exact_batch, ppo_update
from pgcore.widgets import ppo as W


@pytest.mark.parametrize("make", [W.clip_explorable, W.beta_explorable], ids=["clip", "beta"])
def test_sweep_and_time(make, record_property):
    ex = make()
    n = ex.sweep()
    assert n == np.prod([len(s.values) for s in ex.sliders])
    seconds = ex.time_update()
    record_property("update_seconds", seconds)
    print(f"{ex.title}: one update {seconds:.3f} s")


def _clip_term_numpy(r, A, eps):
    """Piecewise form of one L^CLIP term, written independently of np.minimum/np.clip."""
    out = []
    for x in np.atleast_1d(r):
        if A >= 0:
            out.append((1 + eps) * A if x > 1 + eps else x * A)
        else:
            out.append((1 - eps) * A if x < 1 - eps else x * A)
    return np.array(out)


@pytest.mark.parametrize("A", [2.0, -0.5])
@pytest.mark.parametrize("eps", [0.1, 0.3])
def test_clip_term_matches_piecewise(A, eps):
    r = np.linspace(0, 2.5, 251)
    np.testing.assert_allclose(W.clip_term(r, A, eps), _clip_term_numpy(r, A, eps), atol=1e-12)


def _numpy_mean_kl(mdp, p_old, p_new):
    p_old, p_new = np.asarray(p_old), np.asarray(p_new)
    P = mdp.P.numpy()
    S = p_old.shape[0]
    P_pi = np.einsum("sa,sat->st", p_old, P)
    d = np.linalg.solve(np.eye(S) - mdp.gamma * P_pi.T, (1 - mdp.gamma) * mdp.mu0.numpy())
    return float(d @ (p_old * np.log(p_old / p_new)).sum(-1))


def test_clip_run_is_ppo_update_with_K_epochs():
    K = 10
    run = W.clip_run(0.2)
    mdp, policy = W.exact_problem()
    p_old = policy.probs().detach().numpy()
    batch = exact_batch(mdp, policy)
    ppo_update(
        policy,
        batch,
        objective="clip",
        clip=0.2,
        epochs=K,
        lr=W.TABULAR_LR,
        normalize_advantages=True,
    )
    p_new = policy.probs().detach().numpy()
    r = p_new.reshape(-1) / p_old.reshape(-1)
    np.testing.assert_allclose(run["ratios"][K], r, rtol=1e-10)
    assert run["kl"][0] == 0.0
    assert run["kl"][K] == pytest.approx(_numpy_mean_kl(mdp, p_old, p_new), rel=1e-9)
    assert run["max_ratio"][K] == pytest.approx(r.max(), rel=1e-12)


def test_clipping_does_not_cap_the_ratio_but_slows_the_kl():
    clipped, free = W.clip_run(0.2), W.clip_run(0.2, objective="none")
    assert clipped["max_ratio"][-1] > 1.2 + 0.1  # the ratio leaves the band
    assert clipped["kl"][-1] > clipped["kl"][3]  # and the KL keeps growing with K
    assert clipped["kl"][-1] < free["kl"][-1]  # but slower than without clipping


def test_kl_penalty_run_follows_the_adaptive_rule():
    run = W.kl_penalty_run("adaptive", 0.01)
    assert run["beta"][0] == 1.0
    for b, kl, b_next in zip(run["beta"], run["kl"], run["beta_next"]):
        rule = AdaptiveKL(b, 0.01)
        assert rule.update(kl) == b_next  # the rule, with the true KL
        expected = b / 2 if kl < 0.01 / 1.5 else (2 * b if kl > 0.015 else b)
        assert b_next == expected
    np.testing.assert_array_equal(run["beta"][1:], run["beta_next"][:-1])
    fixed = W.kl_penalty_run("fixed", 3.0)
    assert np.all(fixed["beta"] == 3.0)
    assert len(fixed["J"]) == len(fixed["kl"]) + 1
    with pytest.raises(ValueError):
        W.kl_penalty_run("sometimes", 1.0)


def test_optimal_performance_matches_numpy_value_iteration():
    mdp, _ = W.exact_problem()
    P, R = mdp.P.numpy(), mdp.R.numpy()
    V = np.zeros(mdp.n_states)
    for _ in range(3000):
        V = (R + mdp.gamma * P @ V).max(-1)
    assert W.optimal_performance(mdp) == pytest.approx(float(mdp.mu0.numpy() @ V), abs=1e-9)
    # and no policy on the runs beats it
    assert max(W.kl_penalty_run("fixed", 1.0)["J"]) <= W.optimal_performance(mdp) + 1e-9
