"""Unit and property tests of pgcore.bounds (chapter 1's identities and bounds)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import pgcore
from pgcore import bounds

SETTINGS = settings(max_examples=40, deadline=None)


def _policy(rng: np.random.Generator, S: int, A: int, scale: float = 1.0) -> torch.Tensor:
    return torch.softmax(torch.as_tensor(scale * rng.standard_normal((S, A))), -1)


mdp_cases = st.tuples(
    st.integers(1, 6),  # states
    st.integers(1, 4),  # actions
    st.floats(0.0, 0.95),  # gamma
    st.integers(0, 10_000),  # seed
)


# -- identities -----------------------------------------------------------------------------
@SETTINGS
@given(mdp_cases)
def test_performance_difference_lemma_holds(case):
    S, A, gamma, seed = case
    rng = np.random.default_rng(seed)
    mdp = pgcore.random_mdp(S, A, gamma=gamma, seed=seed)
    lhs, rhs = bounds.performance_difference(mdp, _policy(rng, S, A, 2.0), _policy(rng, S, A, 2.0))
    assert abs(lhs.item() - rhs.item()) <= 1e-10 * (1.0 + abs(lhs.item()))


@SETTINGS
@given(mdp_cases)
def test_surrogate_advantage_matches_pgcore_surrogate_on_exact_batch(case):
    S, A, gamma, seed = case
    rng = np.random.default_rng(seed)
    mdp = pgcore.random_mdp(S, A, gamma=gamma, seed=seed)
    old = pgcore.TabularSoftmaxPolicy(S, A, logits=torch.as_tensor(rng.standard_normal((S, A))))
    new = pgcore.TabularSoftmaxPolicy(S, A, logits=torch.as_tensor(rng.standard_normal((S, A))))
    batch = pgcore.exact_batch(mdp, old)
    with torch.no_grad():
        ours = bounds.surrogate_advantage(mdp, new.probs(), old.probs()).item()
        theirs = pgcore.surrogate(new, batch).item()
    assert ours == pytest.approx(theirs, abs=1e-12, rel=1e-10)


@SETTINGS
@given(mdp_cases)
def test_surrogate_is_zero_at_the_old_policy_and_gap_is_zero(case):
    S, A, gamma, seed = case
    rng = np.random.default_rng(seed)
    mdp = pgcore.random_mdp(S, A, gamma=gamma, seed=seed)
    pi = _policy(rng, S, A)
    assert abs(bounds.surrogate_advantage(mdp, pi, pi).item()) < 1e-12
    assert abs(bounds.surrogate_gap(mdp, pi, pi).item()) < 1e-12
    assert bounds.trpo_lower_bound(mdp, pi, pi).item() == pytest.approx(
        mdp.performance(pi).item(), abs=1e-12
    )


@SETTINGS
@given(mdp_cases, st.floats(0.0, 1.0))
def test_mixture_scales_the_per_state_tv(case, alpha):
    S, A, _, seed = case
    rng = np.random.default_rng(seed)
    pi, target = _policy(rng, S, A), _policy(rng, S, A, 3.0)
    mixed = bounds.mixture(pi, target, alpha)
    assert torch.allclose(mixed.sum(-1), torch.ones(S, dtype=torch.float64))
    tv = pgcore.total_variation(mixed, pi)
    assert torch.allclose(tv, alpha * pgcore.total_variation(target, pi), atol=1e-12)


def test_first_order_match_gradient_is_one_minus_gamma_times_grad_J():
    mdp = pgcore.random_mdp(4, 3, gamma=0.8, seed=3)
    old = torch.softmax(
        torch.randn(4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0)), -1
    )
    logits = old.log().clone().requires_grad_(True)
    surr = bounds.surrogate_advantage(mdp, torch.softmax(logits, -1), old)
    g_surr = torch.autograd.grad(surr, logits)[0]
    logits2 = old.log().clone().requires_grad_(True)
    g_J = torch.autograd.grad(mdp.performance(torch.softmax(logits2, -1)), logits2)[0]
    assert torch.allclose(g_surr, (1 - mdp.gamma) * g_J, atol=1e-12)


# -- simple values --------------------------------------------------------------------------
def test_max_tv_and_max_kl_take_the_worst_state():
    p = torch.tensor([[0.5, 0.5], [1.0, 0.0]], dtype=torch.float64)
    q = torch.tensor([[0.5, 0.5], [0.75, 0.25]], dtype=torch.float64)
    assert bounds.max_tv(p, q).item() == pytest.approx(0.25)
    # (pi_new, pi_old) like every function in bounds: KL(old ‖ new) = KL(p ‖ q) with p old
    assert bounds.max_kl(q, p).item() == pytest.approx(np.log(1 / 0.75))
    assert bounds.max_kl(p, q).item() == float("inf")  # KL(q‖p): q puts mass where p has none


def test_coupling_bound_values_and_validation():
    assert torch.allclose(
        bounds.coupling_bound(0.5, torch.arange(4)),
        torch.tensor([0.0, 0.5, 0.75, 0.875], dtype=torch.float64),
    )
    assert bounds.coupling_bound(0.0, 10).item() == 0.0
    with pytest.raises(ValueError, match="eps"):
        bounds.coupling_bound(1.5, 3)
    with pytest.raises(ValueError, match="non-negative"):
        bounds.coupling_bound(0.1, -1)


def test_mixture_validation():
    pi = torch.full((2, 2), 0.5, dtype=torch.float64)
    with pytest.raises(ValueError, match="alpha"):
        bounds.mixture(pi, pi, 1.5)
    with pytest.raises(ValueError, match="shape"):
        bounds.mixture(pi, torch.full((2, 3), 1 / 3, dtype=torch.float64), 0.5)


def test_bounds_reject_policies_of_the_wrong_shape():
    mdp = pgcore.random_mdp(3, 2, seed=0)
    with pytest.raises(ValueError):
        bounds.surrogate_advantage(mdp, torch.full((3, 3), 1 / 3), torch.full((3, 2), 0.5))


def test_trap_door_attains_the_coupling_bound():
    eps = 0.1
    P = torch.zeros(2, 2, 2, dtype=torch.float64)
    P[0, 0, 0] = P[0, 1, 1] = 1.0
    P[1, :, 1] = 1.0
    mdp = pgcore.TabularMDP(P, torch.zeros(2, 2), torch.tensor([1.0, 0.0]), 0.9)
    old = torch.tensor([[1.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
    new = torch.tensor([[1 - eps, eps], [1.0, 0.0]], dtype=torch.float64)
    tv = bounds.state_tv(mdp, new, old, 20)
    assert torch.allclose(tv, bounds.coupling_bound(eps, torch.arange(21)), atol=1e-14)


def test_penalty_coefficient_value():
    mdp = pgcore.random_mdp(3, 2, gamma=0.5, seed=1)
    pi = torch.full((3, 2), 0.5, dtype=torch.float64)
    eps_a = mdp.advantages(pi).abs().max().item()
    assert bounds.trpo_penalty_coefficient(mdp, pi).item() == pytest.approx(4 * eps_a * 0.5 / 0.25)


def test_gap_bound_loose_is_at_least_tight():
    mdp = pgcore.random_mdp(4, 3, gamma=0.9, seed=2)
    rng = np.random.default_rng(0)
    pi, new = _policy(rng, 4, 3), _policy(rng, 4, 3)
    assert bounds.surrogate_gap_bound(mdp, new, pi) <= bounds.surrogate_gap_bound(
        mdp, new, pi, loose=True
    )
