"""Property tests of the inequalities chapters 1 and 2 state, on random MDPs and policy pairs.

* Theorem (state-distribution mismatch, chapter 1): with ε = max_s TV(π'(·|s), π(·|s)),
  TV(p_t^{π'}, p_t^π) ≤ 1 − (1−ε)^t ≤ εt for every t, i.e. Σ_s |p_t^{π'} − p_t^π| ≤ 2εt.
* Theorem (surrogate error bound, chapter 1): with ε_A = max_{s,a} |A^π(s, a)|,
  |J(π') − J(π) − Ā(π')/(1−γ)| ≤ 4 ε_A γ ε² / ((1−γ)(1 − γ(1−ε))) ≤ 4 ε_A γ ε² / (1−γ)².
* Theorem (TRPO's lower bound, chapter 1): J(π') ≥ J(π) + Ā(π')/(1−γ) − C·KL_max(π‖π'),
  C = 4 ε_A γ / (1−γ)².
* Pinsker (chapter 2) in both KL directions, and the second-order agreement of the two
  directions of the mean KL.
* Corollary (policy improvement theorem, chapter 1): if ā(s) = Σ_a π'(a|s) A^π(s, a) ≥ 0 at
  every state, then V^{π'} ≥ V^π at every state.
* Proposition (chain rule for the trajectory KL, chapter 1): KL(p_τ‖q_τ) over T steps equals
  Σ_t E_{s∼p_t^{π'}}[KL(π'(·|s)‖π(·|s))], and E_q[W²] ≥ exp KL(p_τ‖q_τ) for the trajectory
  weight W = p_τ/q_τ; both checked against a brute-force enumeration of every trajectory.
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


@SETTINGS
@given(st.integers(1, 6), st.integers(1, 4), st.floats(0.0, 0.97), st.integers(0, 100_000))
def test_policy_improvement_theorem(S, A, gamma, seed):
    """Any π' that, state by state, picks actions with A^π ≥ 0 (or mixes them with π) has ā ≥ 0
    and raises V at every state; the greedy policy is one of them."""
    rng = np.random.default_rng(seed)
    mdp = pgcore.random_mdp(S, A, gamma=gamma, seed=seed)
    old = torch.softmax(torch.as_tensor(2.0 * rng.standard_normal((S, A))), -1)
    adv = mdp.advantages(old)
    # a random distribution over the actions with non-negative advantage at each state
    greedy = torch.nn.functional.one_hot(adv.argmax(-1), A).to(torch.float64)
    weights = torch.as_tensor(rng.random((S, A))) * ((adv >= 0) | (greedy > 0))
    target = weights / weights.sum(-1, keepdim=True)
    V_old = mdp.values(old)[0]
    for new in (greedy, target, bounds.mixture(old, target, float(rng.random()))):
        abar = (new * adv).sum(-1)
        assert (abar >= -1e-12).all()
        V_new = mdp.values(new)[0]
        assert (V_new >= V_old - 1e-9 * (1.0 + V_old.abs().max())).all()


def _trajectory_law(mdp, pi, T):
    """Brute force: the probability of every (s_0, a_0, ..., s_{T-1}, a_{T-1}), shape [S, A]*T."""
    P, mu0, pi = mdp.P.numpy(), mdp.mu0.numpy(), np.asarray(pi)
    S, A = pi.shape
    law = np.zeros((S, A) * T)
    for path in np.ndindex(*law.shape):
        s, a = path[0::2], path[1::2]
        prob = mu0[s[0]]
        for t in range(T):
            prob *= pi[s[t], a[t]]
            if t + 1 < T:
                prob *= P[s[t], a[t], s[t + 1]]
        law[path] = prob
    return law


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 3), st.integers(1, 3), st.integers(1, 3), st.integers(0, 100_000))
def test_trajectory_kl_chain_rule(S, A, T, seed):
    rng = np.random.default_rng(seed)
    mdp = pgcore.random_mdp(S, A, seed=seed)
    target = torch.softmax(torch.as_tensor(1.5 * rng.standard_normal((S, A))), -1)
    proposal = torch.softmax(torch.as_tensor(1.5 * rng.standard_normal((S, A))), -1)
    p_tau = _trajectory_law(mdp, target.numpy(), T)
    q_tau = _trajectory_law(mdp, proposal.numpy(), T)
    assert np.isclose(p_tau.sum(), 1.0) and np.isclose(q_tau.sum(), 1.0)
    m = p_tau > 0
    kl_tau = float(np.sum(p_tau[m] * np.log(p_tau[m] / q_tau[m])))
    p_t = mdp.state_distributions(target, T - 1)  # [T, S]
    chain = (p_t * pgcore.kl_categorical(target, proposal)).sum().item()
    assert abs(kl_tau - chain) <= 1e-10 * (1.0 + chain)
    second_moment = float(np.sum(p_tau[m] ** 2 / q_tau[m]))  # E_q[W²]
    assert second_moment >= np.exp(kl_tau) * (1 - 1e-10)


def test_trajectory_second_moments_do_not_multiply():
    """The review's two-step example: E_q[(w0 w1)²] = 1.78 but E_q[w0²]·E_q[w1²] = 7.47."""
    P = torch.zeros(3, 2, 3, dtype=torch.float64)
    P[0, 0, 1] = P[0, 1, 2] = 1.0
    P[1, :, 1] = P[2, :, 2] = 1.0
    mdp = pgcore.TabularMDP(P, torch.zeros(3, 2), torch.tensor([1.0, 0.0, 0.0]), 0.9)
    target = np.array([[0.9, 0.1], [0.5, 0.5], [0.9, 0.1]])
    proposal = np.array([[0.5, 0.5], [0.5, 0.5], [0.1, 0.9]])
    p_tau, q_tau = _trajectory_law(mdp, target, 2), _trajectory_law(mdp, proposal, 2)
    m = q_tau > 0
    second = float(np.sum(p_tau[m] ** 2 / q_tau[m]))
    w2 = (target**2 / proposal).sum(-1)
    q_states = mdp.state_distributions(torch.as_tensor(proposal), 1).numpy()
    product = float(q_states[0] @ w2) * float(q_states[1] @ w2)
    assert np.isclose(second, 0.5 * 1.8**2 + 0.5 * 0.2**2 * (0.81 / 0.1 + 0.01 / 0.9))
    assert np.isclose(product, 1.64 * (0.5 + 0.5 * (0.81 / 0.1 + 0.01 / 0.9)))
    assert round(second, 2) == 1.78 and round(product, 2) == 7.47
