"""Property tests of the inequalities chapters 1 and 2 state, on random MDPs and policy pairs.

* Theorem (state-distribution mismatch, chapter 1): with ε = max_s TV(π'(·|s), π(·|s)),
  TV(p_t^{π'}, p_t^π) ≤ 1 − (1−ε)^t ≤ εt for every t, i.e. Σ_s |p_t^{π'} − p_t^π| ≤ 2εt.
* Theorem (surrogate error bound, chapter 1): with ε_A = max_{s,a} |A^π(s, a)|,
  |J(π') − J(π) − Ā(π')/(1−γ)| ≤ 4 ε_A γ ε² / ((1−γ)(1 − γ(1−ε))) ≤ 4 ε_A γ ε² / (1−γ)².
* Theorem (TRPO's lower bound, chapter 1): J(π') ≥ J(π) + Ā(π')/(1−γ) − C·KL_max(π‖π'),
  C = 4 ε_A γ / (1−γ)².
* Pinsker (chapter 2) in both KL directions, and the second-order agreement of the two
  directions of the mean KL.
"""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import pgcore
from pgcore import bounds

SETTINGS = settings(max_examples=60, deadline=None)

# (n_states, n_actions, gamma, seed, how far the new policy moves)
cases = st.tuples(
    st.integers(1, 7),
    st.integers(1, 4),
    st.floats(0.0, 0.97),
    st.integers(0, 100_000),
    st.sampled_from(["mixture", "random", "deterministic"]),
    st.floats(0.0, 1.0),
)


def _pair(case):
    S, A, gamma, seed, kind, alpha = case
    rng = np.random.default_rng(seed)
    mdp = pgcore.random_mdp(S, A, gamma=gamma, seed=seed)
    old = torch.softmax(torch.as_tensor(2.0 * rng.standard_normal((S, A))), -1)
    if kind == "random":
        new = torch.softmax(torch.as_tensor(2.0 * rng.standard_normal((S, A))), -1)
    elif kind == "deterministic":  # a mixture towards a deterministic (greedy-like) policy
        target = torch.nn.functional.one_hot(torch.as_tensor(rng.integers(0, A, S)), A).to(
            torch.float64
        )
        new = bounds.mixture(old, target, alpha)
    else:
        target = torch.softmax(torch.as_tensor(3.0 * rng.standard_normal((S, A))), -1)
        new = bounds.mixture(old, target, alpha)
    return mdp, old, new


@SETTINGS
@given(cases, st.integers(1, 60))
def test_state_distribution_mismatch_bound(case, horizon):
    mdp, old, new = _pair(case)
    eps = bounds.max_tv(new, old).item()
    t = torch.arange(horizon + 1, dtype=torch.float64)
    tv = bounds.state_tv(mdp, new, old, horizon)
    coupling = bounds.coupling_bound(eps, t)
    assert (tv <= coupling + 1e-12).all()
    assert (coupling <= eps * t + 1e-12).all()
    # the lecture's form: the sum of absolute differences is at most 2εt
    l1 = (
        (mdp.state_distributions(new, horizon) - mdp.state_distributions(old, horizon))
        .abs()
        .sum(-1)
    )
    assert (l1 <= 2 * eps * t + 1e-12).all()


@SETTINGS
@given(cases)
def test_surrogate_error_bound(case):
    mdp, old, new = _pair(case)
    gap = abs(bounds.surrogate_gap(mdp, new, old).item())
    tight = bounds.surrogate_gap_bound(mdp, new, old).item()
    loose = bounds.surrogate_gap_bound(mdp, new, old, loose=True).item()
    # the same inequality written out from the theorem's quantities
    g = mdp.gamma
    eps = bounds.max_tv(new, old).item()
    eps_a = mdp.advantages(old).abs().max().item()
    assert np.isclose(
        tight, 4 * eps_a * g * eps**2 / ((1 - g) * (1 - g * (1 - eps))), rtol=1e-12, atol=0
    )
    assert np.isclose(loose, 4 * eps_a * g * eps**2 / (1 - g) ** 2, rtol=1e-12, atol=0)
    scale = 1e-10 * (1.0 + abs(mdp.performance(old).item()))
    assert gap <= tight + scale
    assert tight <= loose + 1e-15


@SETTINGS
@given(cases)
def test_trpo_lower_bound_minorises_J(case):
    mdp, old, new = _pair(case)
    M = bounds.trpo_lower_bound(mdp, new, old).item()
    J_new = mdp.performance(new).item()
    assert M <= J_new + 1e-10 * (1.0 + abs(J_new))


@SETTINGS
@given(st.integers(1, 12), st.integers(0, 100_000), st.floats(0.05, 5.0))
def test_pinsker_both_directions(k, seed, conc):
    rng = np.random.default_rng(seed)
    p = torch.as_tensor(rng.dirichlet(conc * np.ones(k))).clamp_min(1e-15)
    q = torch.as_tensor(rng.dirichlet(conc * np.ones(k))).clamp_min(1e-15)
    p, q = p / p.sum(), q / q.sum()
    tv = pgcore.total_variation(p, q).item()
    assert tv <= np.sqrt(pgcore.kl_categorical(p, q).item() / 2) + 1e-12
    assert tv <= np.sqrt(pgcore.kl_categorical(q, p).item() / 2) + 1e-12


@SETTINGS
@given(st.integers(1, 5), st.integers(2, 4), st.integers(0, 100_000))
def test_kl_directions_agree_to_second_order(S, A, seed):
    """|KL(π‖π_h) − KL(π_h‖π)| / KL(π‖π_h) = O(h): halving h roughly halves the relative gap."""
    rng = np.random.default_rng(seed)
    mdp = pgcore.random_mdp(S, A, seed=seed)
    logits = torch.as_tensor(rng.standard_normal((S, A)))
    delta = torch.as_tensor(rng.standard_normal((S, A)))
    pi = torch.softmax(logits, -1)
    d = mdp.occupancy(pi)

    def rel_gap(h):
        new = torch.softmax(logits + h * delta, -1)
        fwd = (d * pgcore.kl_categorical(pi, new)).sum().item()
        rev = (d * pgcore.kl_categorical(new, pi)).sum().item()
        return abs(fwd - rev) / fwd, fwd

    r1, kl1 = rel_gap(1e-2)
    r2, _ = rel_gap(5e-3)
    if kl1 < 1e-9:  # direction (almost) in the softmax's null space: both KLs vanish
        return
    assert r1 < 0.1 and r2 < 0.1
    if r1 > 1e-3:  # a non-negligible third-order term halves with h
        assert r2 <= 0.6 * r1


@SETTINGS
@given(st.floats(0.0, 1.0), st.integers(1, 80))
def test_mismatch_bound_is_attained_by_the_trap_door(eps, horizon):
    """In state 0, π stays; π' falls into an absorbing state w.p. ε: TV_t = 1 − (1−ε)^t exactly."""
    P = torch.zeros(2, 2, 2, dtype=torch.float64)
    P[0, 0, 0] = P[0, 1, 1] = 1.0
    P[1, :, 1] = 1.0
    mdp = pgcore.TabularMDP(P, torch.zeros(2, 2), torch.tensor([1.0, 0.0]), 0.9)
    old = torch.tensor([[1.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
    new = torch.tensor([[1 - eps, eps], [1.0, 0.0]], dtype=torch.float64)
    t = torch.arange(horizon + 1, dtype=torch.float64)
    tv = bounds.state_tv(mdp, new, old, horizon)
    coupling = bounds.coupling_bound(bounds.max_tv(new, old).item(), t)
    assert torch.allclose(tv, coupling, atol=1e-12, rtol=0)
