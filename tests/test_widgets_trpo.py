"""Tests of pgcore.widgets.trpo: the chapter-4 line-search helpers and widget."""

from __future__ import annotations

import copy

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch

import pgcore
from pgcore.widgets import trpo as tw


def _np_mlp_probs(policy: tw.OneHotMLPPolicy) -> np.ndarray:
    """softmax(W2 tanh(W1 e_s + b1) + b2) for every state, in NumPy."""
    lin = [m for m in policy.net if isinstance(m, torch.nn.Linear)]
    h = np.eye(policy.n_states)
    for k, layer in enumerate(lin):
        h = h @ layer.weight.detach().numpy().T + layer.bias.detach().numpy()
        if k < len(lin) - 1:
            h = np.tanh(h)
    e = np.exp(h - h.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def _np_mean_kl(d, p, q):
    return float(np.sum(d * np.sum(p * (np.log(p) - np.log(q)), axis=1)))


def test_one_hot_mlp_matches_numpy_and_is_seeded():
    pol = tw.OneHotMLPPolicy(5, 3, hidden=(16,), seed=3, out_gain=2.0)
    probs = tw.policy_probs(pol, 5).numpy()
    np.testing.assert_allclose(probs, _np_mlp_probs(pol), rtol=0, atol=1e-13)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-14)
    same = tw.OneHotMLPPolicy(5, 3, hidden=(16,), seed=3, out_gain=2.0)
    other = tw.OneHotMLPPolicy(5, 3, hidden=(16,), seed=4, out_gain=2.0)
    assert torch.equal(tw.policy_probs(same, 5), tw.policy_probs(pol, 5))
    assert not torch.equal(tw.policy_probs(other, 5), tw.policy_probs(pol, 5))
    # building a policy does not disturb the global torch RNG
    torch.manual_seed(0)
    a = torch.rand(3)
    torch.manual_seed(0)
    tw.OneHotMLPPolicy(5, 3, seed=9)
    assert torch.equal(torch.rand(3), a)


def test_line_search_profile_against_numpy():
    mdp = pgcore.random_mdp(5, 3, gamma=0.9, seed=0)
    pol = tw.OneHotMLPPolicy(5, 3, seed=1)
    before = copy.deepcopy(pol.state_dict())
    fr = [0.0, 0.25, 0.5, 1.0]
    prof = tw.line_search_profile(mdp, pol, 0.3, fr)
    # the policy is left unchanged
    for k, v in pol.state_dict().items():
        assert torch.equal(v, before[k])
    assert prof["kl"][0] == 0.0 and prof["gain"][0] == pytest.approx(0.0, abs=1e-15)
    # the full step is the natural-gradient step: its KL matches natural_gradient_step's
    assert prof["kl"][-1] == pytest.approx(prof["full_step_kl"], rel=1e-10)
    np.testing.assert_allclose(prof["model_kl"], 0.3 * np.array(fr) ** 2)
    # recompute the full step's KL and J independently
    work = copy.deepcopy(pol)
    pgcore.natural_gradient_step(work, pgcore.exact_batch(mdp, pol), 0.3)
    p_old, p_new = _np_mlp_probs(pol), _np_mlp_probs(work)
    d_old = mdp.occupancy(torch.from_numpy(p_old)).numpy()
    assert prof["kl"][-1] == pytest.approx(_np_mean_kl(d_old, p_old, p_new), rel=1e-9)
    J = lambda p: mdp.performance(torch.from_numpy(p)).item()
    assert prof["dJ"][-1] == pytest.approx(J(p_new) - J(p_old), rel=1e-9)
    # surrogate gain at the full step = Σ d(s) Σ_a (π_new − π_old) A_old
    A = mdp.advantages(torch.from_numpy(p_old)).numpy()
    assert prof["gain"][-1] == pytest.approx(
        float(np.sum(d_old[:, None] * (p_new - p_old) * A)), rel=1e-8
    )


def test_line_search_profile_agrees_with_trpo_step_decision():
    mdp = pgcore.random_mdp(5, 3, gamma=0.9, seed=0)
    start = tw.widget_start(6)  # a peaked policy whose full step fails at large δ
    fr = 0.5 ** np.arange(10)
    prof = tw.line_search_profile(mdp, start, 10.0, fr)
    info = prof["trpo"]
    ok = (prof["kl"] <= 10.0) & (prof["gain"] > 0)
    assert info["accepted"] == bool(ok.any())
    if info["accepted"]:
        assert info["backtracks"] == int(np.argmax(ok))
        assert info["backtracks"] >= 1  # this case needs the line search


def test_backtrack_sweep_shapes_and_guarantees():
    mdp = pgcore.random_mdp(5, 3, gamma=0.9, seed=0)
    deltas = [0.01, 3.0]
    sw = tw.backtrack_sweep(
        mdp, lambda s: tw.OneHotMLPPolicy(5, 3, seed=s), deltas, seeds=[0, 1], iters=3
    )
    for key in (
        "backtracks",
        "accepted",
        "attempted",
        "kl_ratio",
        "kl",
        "J",
        "dJ",
        "dJ_full",
        "worst_case",
    ):
        assert sw[key].shape == (2, 2, 3), key
    acc = sw["accepted"]
    # accepted steps respect the trust region and Achiam et al.'s worst case
    kl_ok = sw["kl"] <= np.array(deltas)[:, None, None] + 1e-15
    assert kl_ok[acc].all()
    assert (sw["dJ"][acc] >= sw["worst_case"][acc] - 1e-12).all()
    # J is a running record: J[t] − J[t−1] = dJ[t]
    np.testing.assert_allclose(np.diff(sw["J"], axis=2), sw["dJ"][:, :, 1:], atol=1e-12)
    # rejected steps change nothing
    assert (sw["dJ"][~acc] == 0).all()


def test_widget_sweeps_every_slider_and_times_one_update(record_property):
    ex = tw.line_search_explorable()
    n = ex.sweep()
    assert n == len(tw.WIDGET_DELTAS) * len(tw.WIDGET_ITERS)
    assert n <= 40
    t = ex.time_update(delta=tw.WIDGET_DELTAS[-1], n=tw.WIDGET_ITERS[-1])
    record_property("trpo_line_search_update_seconds", t)
    print(f"line-search widget: one update {t:.3f} s")
