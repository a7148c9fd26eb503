"""pgcore.examples: the Bernoulli and Gaussian examples and the closed forms of chapter 3,
checked against independent NumPy computations and against pgcore's generic code."""

import math

import numpy as np
import pytest
import torch

import pgcore as pg
from pgcore.examples import (
    BernoulliPolicy,
    GaussianExample,
    bernoulli_ascent,
    bernoulli_bandit,
    bernoulli_fisher,
    bernoulli_grad,
    bernoulli_J,
    bernoulli_natural_grad,
    sigmoid,
    step_size_forms,
    tabular_npg_alpha,
    tabular_npg_policy,
)

THETAS = [-6.0, -1.5, 0.0, 0.7, 3.0, 8.0]


def test_sigmoid_matches_numpy_and_does_not_overflow():
    x = np.array([-800.0, -3.0, 0.0, 2.0, 800.0])
    with np.errstate(over="ignore"):
        ref = 1.0 / (1.0 + np.exp(-x))
    np.testing.assert_allclose(sigmoid(x), ref, rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("theta", THETAS)
def test_bernoulli_closed_forms(theta):
    p = 1.0 / (1.0 + math.exp(-theta))
    assert bernoulli_J(theta) == pytest.approx(p, rel=1e-12)
    # ∇J by central differences of J
    h = 1e-5
    fd = (bernoulli_J(theta + h) - bernoulli_J(theta - h)) / (2 * h)
    assert bernoulli_grad(theta) == pytest.approx(fd, rel=1e-6, abs=1e-12)
    # F = E[(d/dθ log π)²]: d log π(1)/dθ = 1 − p, d log π(0)/dθ = −p
    F = p * (1 - p) ** 2 + (1 - p) * p**2
    assert bernoulli_fisher(theta) == pytest.approx(F, rel=1e-10)
    assert bernoulli_natural_grad(theta) == pytest.approx(1.0, rel=1e-10)


@pytest.mark.parametrize("theta", [-2.0, 0.0, 1.3])
def test_bernoulli_policy_agrees_with_pgcore(theta):
    pol = BernoulliPolicy(theta)
    mdp = bernoulli_bandit()
    batch = pg.exact_batch(mdp, pol)
    F = pg.fisher_matrix(pol, batch.obs, batch.weights)
    H = pg.kl_hessian(pol, batch.obs, batch.weights)
    assert F.item() == pytest.approx(bernoulli_fisher(theta), rel=1e-10)
    assert H.item() == pytest.approx(bernoulli_fisher(theta), rel=1e-8)
    # the surrogate gradient on the exact batch is (1 − γ)∇J = ∇J (γ = 0)
    g = pg.flat_grad(pg.surrogate(pol, batch), pol)
    assert g.item() == pytest.approx(bernoulli_grad(theta), rel=1e-10)
    assert mdp.performance(pol.distribution(torch.arange(1)).probs).item() == pytest.approx(
        bernoulli_J(theta)
    )
    # natural_gradient_step with lr η moves θ by exactly η (the natural gradient is 1)
    pg.natural_gradient_step(pol, batch, lr=0.5)
    assert pol.theta.item() == pytest.approx(theta + 0.5, rel=1e-9)


def test_bernoulli_ascent():
    nat = bernoulli_ascent(-4.0, 0.5, 10, natural=True)
    np.testing.assert_allclose(nat, -4.0 + 0.5 * np.arange(11))
    van = bernoulli_ascent(-4.0, 0.5, 10, natural=False)
    p = 1 / (1 + np.exp(4.0))
    assert van[1] == pytest.approx(-4.0 + 0.5 * p * (1 - p))
    assert np.all(np.diff(van) > 0) and van[-1] < nat[-1]


def test_gaussian_closed_forms_against_finite_differences():
    ex = GaussianExample(k_star=1.0, s_var=0.25)
    k, s = 0.3, 0.7
    h = 1e-6
    fd = [(ex.J(k + h, s) - ex.J(k - h, s)) / (2 * h), (ex.J(k, s + h) - ex.J(k, s - h)) / (2 * h)]
    np.testing.assert_allclose(ex.grad(k, s), fd, rtol=1e-6)
    np.testing.assert_allclose(ex.fisher(k, s), np.diag([0.25 / s**2, 2 / s**2]))
    np.testing.assert_allclose(
        ex.natural_grad(k, s), np.linalg.solve(ex.fisher(k, s), ex.grad(k, s))
    )
    # broadcasting over a grid
    K, S = np.meshgrid(np.linspace(-1, 2, 4), np.linspace(0.1, 1, 3))
    assert ex.natural_grad(K, S).shape == (3, 4, 2)
    assert ex.fisher(K, S).shape == (3, 4, 2, 2)


@pytest.mark.parametrize("s_var", [0.25, 3.0])
def test_gaussian_natural_field_is_a_fixed_rescaling_of_the_vanilla_one(s_var):
    """F⁻¹∇J = σ²·diag(1/s_var, 1/2)·∇J: the two fields differ by a constant matrix times σ²,
    the ratio of their slopes is 2/s_var everywhere and cond(F) does not depend on σ."""
    ex = GaussianExample(k_star=0.5, s_var=s_var)
    K, S = np.meshgrid(np.linspace(-2, 3, 11), np.geomspace(1e-3, 2.0, 9))
    van, nat = ex.grad(K, S), ex.natural_grad(K, S)
    np.testing.assert_allclose(nat[..., 0], S**2 / s_var * van[..., 0], rtol=1e-12)
    np.testing.assert_allclose(nat[..., 1], S**2 / 2 * van[..., 1], rtol=1e-12)
    off = K != ex.k_star  # where the k-components vanish both slopes are infinite
    van, nat = van[off], nat[off]
    slope_ratio = (van[:, 1] / van[:, 0]) / (nat[:, 1] / nat[:, 0])
    np.testing.assert_allclose(slope_ratio, 2 / s_var, rtol=1e-12)
    cond = np.linalg.cond(ex.fisher(K, S))
    np.testing.assert_allclose(cond, max(s_var, 2) / min(s_var, 2), rtol=1e-9)


def test_gaussian_J_by_monte_carlo():
    ex = GaussianExample(k_star=1.0, s_var=0.25)
    rng = np.random.default_rng(0)
    n = 400_000
    k, sig = -0.5, 0.4
    s = rng.normal(0, 0.5, n)
    a = k * s + sig * rng.normal(size=n)
    mc = np.mean(-((a - 1.0 * s) ** 2))
    assert mc == pytest.approx(ex.J(k, sig), abs=5 * np.std(-((a - s) ** 2)) / math.sqrt(n))


def test_gaussian_kl_second_order_is_fisher():
    ex = GaussianExample(s_var=0.25)
    k, s = 0.2, 0.3
    d = np.array([0.3, -0.2])
    F = ex.fisher(k, s)
    errs = []
    for t in (1e-2, 1e-3):
        kl = ex.kl(k, s, k + t * d[0], s + t * d[1])
        quad = 0.5 * t**2 * d @ F @ d
        errs.append(abs(kl - quad) / quad)
    assert errs[1] < 0.2 * errs[0]


@pytest.mark.parametrize("k,sigma", [(0.3, 0.5), (-1.0, 0.1), (2.0, 1.5)])
def test_gaussian_fisher_against_monte_carlo_and_autograd(k, sigma):
    ex = GaussianExample(k_star=1.0, s_var=0.25)
    F = ex.fisher(k, sigma)
    mc = ex.fisher_mc(k, sigma, n=100_000, seed=1)
    # standard errors of E[score²] are a few % of the diagonal at n = 1e5
    np.testing.assert_allclose(np.diag(mc), np.diag(F), rtol=0.05)
    assert abs(mc[0, 1]) < 0.05 * math.sqrt(F[0, 0] * F[1, 1])
    H = ex.fisher_autograd(k, sigma, n=100_000, seed=1)
    np.testing.assert_allclose(H[1, 1], F[1, 1], rtol=1e-10)  # exact: no s in the σ-σ entry
    np.testing.assert_allclose(H[0, 0], F[0, 0], rtol=0.02)  # MC over s only
    assert abs(H[0, 1]) < 1e-10


def _np_tabular_npg(P, R, mu0, gamma, pi, alpha):
    """Independent NumPy: solve for V, Q, d, then π ∝ π exp(α A)."""
    S, A = R.shape
    P_pi = np.einsum("sa,sat->st", pi, P)
    V = np.linalg.solve(np.eye(S) - gamma * P_pi, (pi * R).sum(1))
    Q = R + gamma * P @ V
    Adv = Q - V[:, None]
    d = np.linalg.solve(np.eye(S) - gamma * P_pi.T, (1 - gamma) * mu0)
    new = pi * np.exp(alpha * Adv)
    return new / new.sum(1, keepdims=True), float((d[:, None] * pi * Adv**2).sum())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tabular_npg_closed_form_against_numpy_and_pgcore(seed):
    mdp = pg.random_mdp(3, 4, gamma=0.8, seed=seed)
    pol = pg.TabularSoftmaxPolicy(
        3,
        4,
        logits=torch.randn(
            3, 4, generator=torch.Generator().manual_seed(seed), dtype=torch.float64
        ),
    )
    pi = pol.probs().detach()
    eps = 0.02
    ref, ea2 = _np_tabular_npg(
        mdp.P.numpy(),
        mdp.R.numpy(),
        mdp.mu0.numpy(),
        mdp.gamma,
        pi.numpy(),
        math.sqrt(2 * eps / 1.0),
    )
    alpha = tabular_npg_alpha(mdp, pi, eps)
    assert alpha == pytest.approx(math.sqrt(2 * eps / ea2), rel=1e-10)
    ref, _ = _np_tabular_npg(
        mdp.P.numpy(), mdp.R.numpy(), mdp.mu0.numpy(), mdp.gamma, pi.numpy(), alpha
    )
    np.testing.assert_allclose(tabular_npg_policy(mdp, pi, max_kl=eps).numpy(), ref, atol=1e-12)
    np.testing.assert_allclose(tabular_npg_policy(mdp, pi, alpha=alpha).numpy(), ref, atol=1e-12)
    info = pg.natural_gradient_step(pol, pg.exact_batch(mdp, pol), max_kl=eps, cg_iters=48)
    np.testing.assert_allclose(pol.probs().detach().numpy(), ref, atol=1e-8)
    assert info["gFinvg"] == pytest.approx(ea2, rel=1e-8)
    with pytest.raises(ValueError):
        tabular_npg_policy(mdp, pi)
    with pytest.raises(ValueError):
        tabular_npg_policy(mdp, pi, max_kl=eps, alpha=1.0)


def test_step_size_forms():
    rng = np.random.default_rng(0)
    M = rng.normal(size=(4, 4))
    F = M @ M.T + 0.1 * np.eye(4)
    g = rng.normal(size=4)
    delta = 0.01
    forms = step_size_forms(g, F, delta)
    gFinvg = g @ np.linalg.solve(F, g)
    gFg = g @ F @ g
    assert set(forms) == {
        "sqrt(2eps/gFinvg)",
        "sqrt(eps/gFinvg)",
        "sqrt(2eps/gFg)",
        "sqrt(eps/gFg)",
    }
    assert forms["sqrt(2eps/gFinvg)"]["quad_kl"] == pytest.approx(delta, rel=1e-10)
    assert forms["sqrt(eps/gFinvg)"]["quad_kl"] == pytest.approx(delta / 2, rel=1e-10)
    assert forms["sqrt(2eps/gFg)"]["quad_kl"] == pytest.approx(delta * gFinvg / gFg, rel=1e-8)
    # the CS/STAT 184 form, both mistakes at once: ½·δ·(gᵀF⁻¹g)/(gᵀFg)
    assert forms["sqrt(eps/gFg)"]["quad_kl"] == pytest.approx(0.5 * delta * gFinvg / gFg, rel=1e-8)
    assert forms["sqrt(eps/gFg)"]["alpha"] == pytest.approx(math.sqrt(delta / gFg), rel=1e-12)
    np.testing.assert_allclose(
        forms["sqrt(2eps/gFinvg)"]["delta"], math.sqrt(2 * delta / gFinvg) * np.linalg.solve(F, g)
    )
    with pytest.raises(ValueError):
        step_size_forms(g, F, 0.0)
    with pytest.raises(ValueError):
        step_size_forms(np.zeros(4), F, delta)


def test_step_size_forms_singular_fisher_uses_the_pseudo_inverse():
    """F = diag(2, 0) and g = (1, 0) ∈ range(F): F⁺g = (½, 0), and every form steps along it."""
    F = np.diag([2.0, 0.0])
    g = np.array([1.0, 0.0])
    forms = step_size_forms(g, F, 0.02)
    np.testing.assert_allclose(
        forms["sqrt(2eps/gFinvg)"]["delta"], [math.sqrt(2 * 0.02 / 0.5) * 0.5, 0.0]
    )
    assert forms["sqrt(2eps/gFinvg)"]["quad_kl"] == pytest.approx(0.02, rel=1e-12)
