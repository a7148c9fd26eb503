"""Property tests (hypothesis) of the identities the book states, on random MDPs and policies."""

import math

import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import pgcore as pg
from tests.helpers import mdp_and_policy, random_policy

SETTINGS = settings(max_examples=40, deadline=None)


@SETTINGS
@given(mdp_and_policy(), st.integers(0, 2**31 - 1))
def test_performance_difference_lemma(mp, seed):
    """J(π') − J(π) = 1/(1−γ) · E_{s∼d^{π'}, a∼π'}[A^π(s, a)]."""
    mdp, pol = mp
    pi = pol.probs().detach()
    pi2 = random_policy(mdp.n_states, mdp.n_actions, seed, 2.0).probs().detach()
    lhs = mdp.performance(pi2) - mdp.performance(pi)
    rhs = (mdp.occupancy(pi2)[:, None] * pi2 * mdp.advantages(pi)).sum() / (1 - mdp.gamma)
    assert abs(lhs.item() - rhs.item()) <= 1e-9 * (1 + abs(lhs.item()))


@SETTINGS
@given(mdp_and_policy())
def test_policy_gradient_theorem_on_the_exact_batch(mp):
    """∇_θ' E_{d^π, π}[r(θ')·A^π] at θ' = θ equals (1−γ)·∇_θ J(θ)."""
    mdp, pol = mp
    batch = pg.exact_batch(mdp, pol)
    (g_surr,) = torch.autograd.grad(pg.surrogate(pol, batch), pol.logits)
    (g_J,) = torch.autograd.grad(mdp.performance(pol.probs()), pol.logits)
    torch.testing.assert_close(g_surr, (1 - mdp.gamma) * g_J, atol=1e-10, rtol=1e-7)


@SETTINGS
@given(st.integers(2, 6), st.integers(0, 2**31 - 1), st.floats(0.1, 4.0))
def test_pinsker(n, seed, scale):
    """TV(p, q) = ½Σ|p − q| ≤ sqrt(KL(p‖q)/2), and also with the arguments swapped."""
    g = torch.Generator().manual_seed(seed)
    p = torch.softmax(scale * torch.randn(n, generator=g, dtype=torch.float64), -1)
    q = torch.softmax(scale * torch.randn(n, generator=g, dtype=torch.float64), -1)
    tv = pg.total_variation(p, q).item()
    assert tv <= math.sqrt(pg.kl_categorical(p, q).item() / 2) + 1e-12
    assert tv <= math.sqrt(pg.kl_categorical(q, p).item() / 2) + 1e-12


@SETTINGS
@given(mdp_and_policy(max_states=4, max_actions=3), st.integers(0, 2**31 - 1))
def test_kl_is_half_delta_F_delta_to_second_order(mp, seed):
    """E_s KL(π_θ‖π_{θ+Δ}) = ½ΔᵀFΔ + O(‖Δ‖³): the relative error shrinks linearly with ‖Δ‖."""
    mdp, pol = mp
    batch = pg.exact_batch(mdp, pol)
    F = pg.fisher_matrix(pol, batch.obs, batch.weights)
    direction = torch.randn(
        F.shape[0], generator=torch.Generator().manual_seed(seed), dtype=torch.float64
    )
    theta = pg.flat_params(pol)
    old = pol.distribution(batch.obs)
    errors, quads = [], []
    for t in (1e-2, 1e-3):
        delta = t * direction
        moved = pg.TabularSoftmaxPolicy(
            mdp.n_states, mdp.n_actions, logits=(theta + delta).reshape(pol.logits.shape)
        )
        kl = pg.mean_kl(old, moved.distribution(batch.obs), batch.weights).item()
        quad = 0.5 * (delta @ F @ delta).item()
        if quad < 1e-12:  # Δ (almost) in F's null space (per-state constant logits): KL is ~0 too
            assert abs(kl - quad) < 1e-13
            assume(False)  # below float64's resolution of the KL: nothing more to check
        errors.append(abs(kl - quad) / quad)
        quads.append(quad)
    # third order: ×10 smaller Δ → about ×10 smaller relative error, down to float64 round-off:
    # the KL is a sum of O(1) terms, so its absolute error is ~1e-15 (relative: 1e-15/quad)
    floor = 1e-5 + 1e-14 / quads[1]
    assert errors[1] < 0.2 * errors[0] + floor
    assert errors[1] < 0.05


@SETTINGS
@given(mdp_and_policy(max_states=4, max_actions=3), st.floats(1e-4, 1e-1))
def test_tabular_natural_gradient_is_multiplicative_weights(mp, eps):
    """NPG with trust region ε on the exact batch: π' ∝ π·exp(α·A), α = sqrt(2ε / E_{d,π}[A²])."""
    mdp, pol = mp
    batch = pg.exact_batch(mdp, pol)
    mean_sq = batch.mean(batch.advantages**2).item()
    assume(mean_sq >= 1e-12)
    pi = pol.probs().detach()
    A = mdp.advantages(pi)
    info = pg.natural_gradient_step(
        pol, batch, max_kl=eps, cg_iters=4 * mdp.n_states * mdp.n_actions
    )
    alpha = math.sqrt(2 * eps / mean_sq)
    expected = pi * torch.exp(alpha * A)
    expected = expected / expected.sum(-1, keepdim=True)
    torch.testing.assert_close(pol.probs().detach(), expected, atol=1e-6, rtol=1e-5)
    assert info["step_size"] > 0


@SETTINGS
@given(mdp_and_policy(max_states=4, max_actions=3), st.floats(1e-5, 1e-3))
def test_trpo_stays_in_the_trust_region_and_improves_J(mp, eps):
    mdp, pol = mp
    batch = pg.exact_batch(mdp, pol)
    J0 = mdp.performance(pol.probs()).item()
    info = pg.trpo_step(pol, batch, max_kl=eps, cg_iters=4 * mdp.n_states * mdp.n_actions)
    J1 = mdp.performance(pol.probs()).item()
    if info["accepted"]:
        assert info["kl"] <= eps
        assert info["surrogate_gain"] > 0
        assert J1 > J0 - 1e-12
        if info["gFinvg"] > 1e-6:  # a real step: the improvement is first order, the error second
            assert J1 > J0
    else:
        assert J1 == J0


@SETTINGS
@given(mdp_and_policy(max_states=4, max_actions=3), st.floats(1e-4, 1e-1))
def test_natural_step_predicted_kl_equals_eps(mp, eps):
    """The trust-region scaling makes ½ΔᵀFΔ = ε exactly, with F as used by CG."""
    mdp, pol = mp
    batch = pg.exact_batch(mdp, pol)
    F = pg.fisher_matrix(pol, batch.obs, batch.weights)
    theta = pg.flat_params(pol)
    info = pg.natural_gradient_step(pol, batch, max_kl=eps, cg_iters=20)
    assume(info["step_taken"])
    delta = pg.flat_params(pol) - theta
    assert 0.5 * (delta @ F @ delta).item() == pytest_approx(eps)


def pytest_approx(x, rel=1e-6):
    import pytest

    return pytest.approx(x, rel=rel)
