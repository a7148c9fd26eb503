"""Property tests (hypothesis) of chapter 3's identities, on random MDPs, policies and networks.

* the tabular natural-gradient step is the multiplicative-weights update
  π' ∝ π·exp(η·A) with η = sqrt(2δ / E_{d,π}[A²]) (trust region, radius δ) or a fixed η,
  and gᵀF⁻¹g = E_{d,π}[A²];
* the KL is ½ΔᵀFΔ to second order: the relative error vanishes linearly in ‖Δ‖ (third-order
  remainder), for tabular and for neural policies;
* the trust-region scaling makes ½ΔᵀFΔ = δ exactly, with F (+ κ·I, κ = damping) the matrix CG uses;
* a policy gradient always lies in the range of the Fisher matrix of its batch, so the
  natural step exists even when F is singular;
* of the step sizes notes print, only sqrt(2δ/gᵀF⁻¹g) hits the target.
"""

import math

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import pgcore as pg
from pgcore.examples import step_size_forms, tabular_npg_alpha, tabular_npg_policy
from tests.helpers import mdp_and_policy

SETTINGS = settings(max_examples=30, deadline=None)


def _exact_cg_iters(mdp) -> int:
    # exact CG needs at most rank(F) ≤ S·A iterations; give it a margin for round-off
    return 3 * mdp.n_states * mdp.n_actions


@SETTINGS
@given(mdp_and_policy(max_states=4, max_actions=4), st.floats(1e-4, 0.2))
def test_trust_region_npg_is_multiplicative_weights(mp, max_kl):
    mdp, pol = mp
    batch = pg.exact_batch(mdp, pol)
    pi = pol.probs().detach()
    d, A = mdp.occupancy(pi), mdp.advantages(pi)
    ea2 = (d[:, None] * pi * A**2).sum().item()
    assume(ea2 > 1e-10)
    # the occupancy of some state may be tiny: CG then needs the residual to be very small
    assume(batch.weights.min().item() > 1e-6)
    closed = tabular_npg_policy(mdp, pi, max_kl=max_kl)
    info = pg.natural_gradient_step(pol, batch, max_kl=max_kl, cg_iters=_exact_cg_iters(mdp))
    assert info["gFinvg"] == pytest.approx(ea2, rel=1e-6)
    assert info["step_size"] == pytest.approx(math.sqrt(2 * max_kl / ea2), rel=1e-6)
    assert tabular_npg_alpha(mdp, pi, max_kl) == pytest.approx(info["step_size"], rel=1e-6)
    torch.testing.assert_close(pol.probs().detach(), closed, atol=1e-7, rtol=1e-6)


@SETTINGS
@given(mdp_and_policy(max_states=4, max_actions=4), st.floats(0.01, 3.0))
def test_fixed_rate_npg_and_the_one_minus_gamma_normalisation(mp, eta):
    """lr = η on the surrogate gives π ∝ π·exp(η·A); the J-form step θ ← θ + η'·F⁻¹∇J gives
    π ∝ π·exp(η'·A/(1−γ)), so the two agree when lr = η'/(1−γ)."""
    mdp, pol = mp
    batch = pg.exact_batch(mdp, pol)
    assume(batch.weights.min().item() > 1e-6)
    pi = pol.probs().detach()
    A = mdp.advantages(pi)
    assume(A.abs().max().item() > 1e-8)
    pol2 = pg.TabularSoftmaxPolicy(mdp.n_states, mdp.n_actions, logits=pol.logits.detach())
    pg.natural_gradient_step(pol, batch, lr=eta, cg_iters=_exact_cg_iters(mdp))
    torch.testing.assert_close(
        pol.probs().detach(), tabular_npg_policy(mdp, pi, alpha=eta), atol=1e-7, rtol=1e-6
    )
    # J-form: F⁻¹∇J with ∇J from autograd of the exact J, F from pgcore, pseudo-inverse
    eta_J = eta * (1 - mdp.gamma)
    (gJ,) = torch.autograd.grad(mdp.performance(pol2.probs()), pol2.logits)
    F = pg.fisher_matrix(pol2, batch.obs, batch.weights)
    nat = torch.linalg.pinv(F, hermitian=True) @ gJ.reshape(-1)
    moved = torch.softmax(pol2.logits.detach() + eta_J * nat.reshape(pi.shape), -1)
    expected = tabular_npg_policy(mdp, pi, alpha=eta_J / (1 - mdp.gamma))
    torch.testing.assert_close(moved, expected, atol=1e-6, rtol=1e-5)


def _relative_errors(kl_at, quad_at, ts=(1e-1, 1e-2, 1e-3)):
    return [abs(kl_at(t) - quad_at(t)) / quad_at(t) for t in ts]


def _assert_shrinks(errs):
    """O(t) relative error: at the smallest step it is far below the larger steps' errors.

    Comparing with the max of the two larger steps (not step by step) is robust to a
    third- and fourth-order term cancelling at one step size; 1e-6 is the float64 round-off
    floor of a KL of about 1e-10.
    """
    assert errs[2] <= 0.25 * max(errs[0], errs[1]) + 1e-6
    assert errs[2] < 1e-2


@SETTINGS
@given(mdp_and_policy(max_states=3, max_actions=3), st.integers(0, 2**31 - 1))
def test_kl_is_quadratic_with_third_order_remainder_tabular(mp, seed):
    mdp, pol = mp
    batch = pg.exact_batch(mdp, pol)
    F = pg.fisher_matrix(pol, batch.obs, batch.weights)
    v = torch.randn(F.shape[0], generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    v = v / v.norm()
    vFv = (v @ F @ v).item()
    assume(vFv > 1e-3)
    theta = pg.flat_params(pol)
    old = pol.distribution(batch.obs)

    def kl_at(t):
        q = pg.TabularSoftmaxPolicy(
            mdp.n_states, mdp.n_actions, logits=(theta + t * v).reshape(pol.logits.shape)
        )
        return pg.mean_kl(old, q.distribution(batch.obs), batch.weights).item()

    errs = _relative_errors(kl_at, lambda t: 0.5 * t * t * vFv)
    _assert_shrinks(errs)


@SETTINGS
@given(st.integers(0, 2**31 - 1), st.integers(2, 4), st.integers(1, 3))
def test_kl_is_quadratic_with_third_order_remainder_mlp(seed, n_actions, obs_dim):
    torch.manual_seed(seed)
    pol = pg.CategoricalMLPPolicy(obs_dim, n_actions, hidden=(5,)).double()
    # a larger head than the PPO init (0.01), so that the policy is not uniform
    with torch.no_grad():
        pol.net[-1].weight.mul_(100.0)
    obs = torch.randn(6, obs_dim, dtype=torch.float64)
    F = pg.fisher_matrix(pol, obs)
    v = torch.randn(F.shape[0], dtype=torch.float64)
    v = v / v.norm()
    vFv = (v @ F @ v).item()
    assume(vFv > 1e-3)
    theta = pg.flat_params(pol)
    with torch.no_grad():
        old = pol.distribution(obs)

    def kl_at(t):
        pg.set_flat_params(pol, theta + t * v)
        with torch.no_grad():
            kl = pg.mean_kl(old, pol.distribution(obs)).item()
        pg.set_flat_params(pol, theta)
        return kl

    errs = _relative_errors(kl_at, lambda t: 0.5 * t * t * vFv)
    _assert_shrinks(errs)


@SETTINGS
@given(mdp_and_policy(max_states=4, max_actions=3), st.floats(1e-5, 1.0))
def test_trust_region_scaling_is_exact_tabular(mp, max_kl):
    mdp, pol = mp
    batch = pg.exact_batch(mdp, pol)
    F = pg.fisher_matrix(pol, batch.obs, batch.weights)
    theta = pg.flat_params(pol)
    info = pg.natural_gradient_step(pol, batch, max_kl=max_kl, cg_iters=_exact_cg_iters(mdp))
    assume(info["step_taken"])
    step = pg.flat_params(pol) - theta
    assert 0.5 * (step @ F @ step).item() == pytest.approx(max_kl, rel=1e-7)
    assert info["predicted_kl"] == pytest.approx(max_kl, rel=1e-12)


@SETTINGS
@given(
    st.integers(0, 2**31 - 1),
    st.floats(1e-4, 0.1),
    st.sampled_from([0.0, 1e-3, 0.1]),
    st.integers(1, 12),
)
def test_trust_region_scaling_is_exact_mlp_with_damping(seed, max_kl, damping, cg_iters):
    """With a neural policy, sampled advantages, damping and a truncated CG, still
    ½Δᵀ(F + κI)Δ = δ exactly (κ = damping): the scaling uses the same matrix and the CG output."""
    torch.manual_seed(seed)
    pol = pg.CategoricalMLPPolicy(3, 3, hidden=(4,)).double()
    obs = torch.randn(10, 3, dtype=torch.float64)
    with torch.no_grad():
        actions = pol.distribution(obs).sample()
        logp = pol.distribution(obs).log_prob(actions)
    batch = pg.Batch(
        obs,
        actions,
        torch.randn(10, dtype=torch.float64),
        logp,
        torch.full((10,), 0.1, dtype=torch.float64),
    )
    F = pg.fisher_matrix(pol, obs) + damping * torch.eye(
        pg.flat_params(pol).numel(), dtype=torch.float64
    )
    theta = pg.flat_params(pol)
    info = pg.natural_gradient_step(pol, batch, max_kl=max_kl, cg_iters=cg_iters, damping=damping)
    assume(info["step_taken"])
    step = pg.flat_params(pol) - theta
    assert 0.5 * (step @ F @ step).item() == pytest.approx(max_kl, rel=1e-6)


@SETTINGS
@given(st.integers(0, 2**31 - 1), st.integers(2, 6), st.floats(1e-4, 1.0))
def test_only_the_right_step_size_hits_the_target(seed, n, max_kl):
    g = torch.Generator().manual_seed(seed)
    M = torch.randn(n, n, generator=g, dtype=torch.float64)
    F = (M @ M.T + 0.05 * torch.eye(n, dtype=torch.float64)).numpy()
    grad = torch.randn(n, generator=g, dtype=torch.float64).numpy()
    forms = step_size_forms(grad, F, max_kl)
    assert forms["sqrt(2eps/gFinvg)"]["quad_kl"] == pytest.approx(max_kl, rel=1e-8)
    assert forms["sqrt(eps/gFinvg)"]["quad_kl"] == pytest.approx(max_kl / 2, rel=1e-8)
    x = np.linalg.solve(F, grad)
    expected = max_kl * (grad @ x) / (grad @ F @ grad)
    assert forms["sqrt(2eps/gFg)"]["quad_kl"] == pytest.approx(expected, rel=1e-6)
    # reparametrise θ = c·φ: g_φ = c·g, F_φ = c²·F. The right form still hits δ (it is
    # invariant); the gᵀFg form's KL changes by 1/c⁴, so it cannot be right in every unit.
    c = 3.0
    forms_c = step_size_forms(c * grad, c**2 * F, max_kl)
    assert forms_c["sqrt(2eps/gFinvg)"]["quad_kl"] == pytest.approx(max_kl, rel=1e-8)
    assert forms_c["sqrt(2eps/gFg)"]["quad_kl"] == pytest.approx(expected / c**4, rel=1e-6)
    # both mistakes at once (the CS/STAT 184 notes' form): half of the gᵀFg form's KL
    assert forms["sqrt(eps/gFg)"]["quad_kl"] == pytest.approx(expected / 2, rel=1e-6)


@SETTINGS
@given(st.integers(0, 2**31 - 1), st.integers(2, 4), st.integers(3, 12))
def test_the_policy_gradient_lies_in_the_range_of_the_fisher(seed, n_actions, batch_size):
    """g = Σ w_i ∇log π(a_i|s_i)·A_i is a combination of scores at the batch's states, and F is
    Σ_s w_s Σ_a π(a|s) ∇log π ∇log πᵀ over the same states: range(F) is the span of those
    scores, so F F⁺ g = g even though F is singular (rank ≤ B(|A|−1) < P here)."""
    torch.manual_seed(seed)
    pol = pg.CategoricalMLPPolicy(obs_dim=3, n_actions=n_actions, hidden=(8,)).double()
    with torch.no_grad():
        pol.net[-1].weight.mul_(20.0)
    obs = torch.randn(batch_size, 3, dtype=torch.float64)
    with torch.no_grad():
        act = pol.distribution(obs).sample()
        logp = pol.distribution(obs).log_prob(act)
    w = torch.full((batch_size,), 1 / batch_size, dtype=torch.float64)
    batch = pg.Batch(obs, act, torch.randn(batch_size, dtype=torch.float64), logp, w)
    g = pg.flat_grad(pg.surrogate(pol, batch), pol).numpy()
    F = pg.fisher_matrix(pol, obs, w).numpy()
    assert np.linalg.matrix_rank(F) <= batch_size * (n_actions - 1) < F.shape[0]
    proj = F @ np.linalg.pinv(F, hermitian=True, rcond=1e-10) @ g
    np.testing.assert_allclose(proj, g, atol=1e-8 * max(1.0, np.abs(g).max()))
