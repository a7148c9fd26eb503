"""Worked examples of the natural-gradient chapter, with their closed forms.

* **Bernoulli**: one state, two actions, reward 1 for action 1 and 0 for action 0, and a
  one-parameter policy π_θ(1) = σ(θ). Then J(θ) = σ(θ), ∇J = σ(1−σ), F = σ(1−σ), and the
  natural gradient F⁻¹∇J = 1 for every θ.
* **Gaussian**: a one-step contextual problem, s ∼ N(0, s_var), a ∼ N(k·s, σ²) with
  θ = (k, σ) and log π(a|s) = −(k·s − a)²/(2σ²) − log σ − ½ log 2π, and the objective
  J(k, σ) = E[−(a − k*·s)²] = −s_var·(k − k*)² − σ². Its Fisher is F = diag(s_var/σ², 2/σ²).
  The natural gradient is F⁻¹∇J = σ²·diag(1/s_var, 1/2)·∇J: a fixed rescaling of the vanilla
  gradient (the ratio of their slopes is 2/s_var at every (k, σ)), times σ².
* **Tabular softmax**: the natural gradient step in closed form, the multiplicative-weights
  update π'(a|s) ∝ π(a|s)·exp(η·A(s, a)).
* **Step-size forms**: the trust-region step size η = sqrt(2δ/(gᵀF⁻¹g)) and the wrong forms
  that lecture notes print (δ is the KL radius, ``max_kl`` in code; the notes write ε).

Everything here is a closed form that the chapter checks against pgcore's generic code
(fisher_matrix, kl_hessian, natural_gradient_step), and the tests check against NumPy.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.distributions import Categorical, Normal

from .tabular import TabularMDP

__all__ = [
    "sigmoid",
    "BernoulliPolicy",
    "bernoulli_bandit",
    "bernoulli_J",
    "bernoulli_grad",
    "bernoulli_fisher",
    "bernoulli_natural_grad",
    "bernoulli_ascent",
    "GaussianExample",
    "tabular_npg_policy",
    "tabular_npg_alpha",
    "step_size_forms",
]


# -- Bernoulli --------------------------------------------------------------------------------
def sigmoid(x):
    """σ(x) = 1 / (1 + e^{−x}) (NumPy, elementwise)."""
    x = np.asarray(x, dtype=float)
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # overflow-free


class BernoulliPolicy(nn.Module):
    """A two-action policy with one parameter θ: π_θ(1) = σ(θ), π_θ(0) = 1 − σ(θ).

    ``distribution(obs)`` is a Categorical with logits (0, θ) at every observation, so it
    works with :func:`pgcore.exact_batch`, :func:`pgcore.fisher_matrix` and every update.
    """

    def __init__(self, theta: float = 0.0):
        super().__init__()
        self.theta = nn.Parameter(torch.tensor([float(theta)], dtype=torch.float64))

    def distribution(self, obs: torch.Tensor) -> Categorical:
        obs = torch.as_tensor(obs)
        logits = torch.cat([torch.zeros(1, dtype=torch.float64), self.theta])
        return Categorical(logits=logits.expand(len(obs), 2))


def bernoulli_bandit() -> TabularMDP:
    """One state, two actions, R = (0, 1), γ = 0: J(π) = π(1)."""
    P = torch.ones(1, 2, 1, dtype=torch.float64)
    R = torch.tensor([[0.0, 1.0]], dtype=torch.float64)
    return TabularMDP(P, R, torch.ones(1, dtype=torch.float64), 0.0)


def bernoulli_J(theta):
    """J(θ) = σ(θ)."""
    return sigmoid(theta)


def bernoulli_grad(theta):
    """∇J(θ) = σ(θ)(1 − σ(θ))."""
    p = sigmoid(theta)
    return p * (1.0 - p)


def bernoulli_fisher(theta):
    """F(θ) = E[(∂_θ log π)²] = σ(1−σ)·(1−σ)² + (1−σ)·σ² = σ(θ)(1 − σ(θ))."""
    p = sigmoid(theta)
    return p * (1.0 - p)


def bernoulli_natural_grad(theta):
    """F⁻¹∇J = 1, whatever θ."""
    return bernoulli_grad(theta) / bernoulli_fisher(theta)


def bernoulli_ascent(theta0: float, lr: float, steps: int, natural: bool) -> np.ndarray:
    """θ_0, …, θ_steps of gradient ascent on J = σ(θ): θ ← θ + lr·∇J, or θ ← θ + lr·F⁻¹∇J."""
    thetas = [float(theta0)]
    for _ in range(int(steps)):
        th = thetas[-1]
        step = bernoulli_natural_grad(th) if natural else bernoulli_grad(th)
        thetas.append(th + lr * float(step))
    return np.array(thetas)


# -- Gaussian ---------------------------------------------------------------------------------
class GaussianExample:
    """s ∼ N(0, s_var), a ∼ N(k·s, σ²), J(k, σ) = E[−(a − k*·s)²] = −s_var(k − k*)² − σ².

    All methods are NumPy and broadcast over arrays of k and σ (σ > 0).
    """

    def __init__(self, k_star: float = 1.0, s_var: float = 0.25):
        if not s_var > 0:
            raise ValueError(f"s_var must be positive, got {s_var!r}")
        self.k_star, self.s_var = float(k_star), float(s_var)

    def J(self, k, sigma):
        k, sigma = np.asarray(k, float), np.asarray(sigma, float)
        return -self.s_var * (k - self.k_star) ** 2 - sigma**2

    def grad(self, k, sigma):
        """(∂J/∂k, ∂J/∂σ) = (−2·s_var·(k − k*), −2σ), stacked on the last axis."""
        k, sigma = np.broadcast_arrays(np.asarray(k, float), np.asarray(sigma, float))
        return np.stack([-2.0 * self.s_var * (k - self.k_star), -2.0 * sigma], axis=-1)

    def fisher(self, k, sigma):
        """F = diag(E[s²]/σ², 2/σ²) = diag(s_var/σ², 2/σ²), shape [..., 2, 2]."""
        k, sigma = np.broadcast_arrays(np.asarray(k, float), np.asarray(sigma, float))
        F = np.zeros(k.shape + (2, 2))
        F[..., 0, 0] = self.s_var / sigma**2
        F[..., 1, 1] = 2.0 / sigma**2
        return F

    def natural_grad(self, k, sigma):
        """F⁻¹∇J = (σ²/s_var · ∂J/∂k, σ²/2 · ∂J/∂σ) = (−2σ²(k − k*), −σ³)."""
        g = self.grad(k, sigma)
        sigma = np.broadcast_to(np.asarray(sigma, float), g.shape[:-1])
        return np.stack([sigma**2 / self.s_var * g[..., 0], sigma**2 / 2.0 * g[..., 1]], axis=-1)

    def kl(self, k, sigma, k2, sigma2):
        """The mean KL E_s[KL(π_old‖π_new)] from (k, σ) to (k2, σ2):
        E_s[KL(N(k s, σ²) ‖ N(k2 s, σ2²))] = log(σ2/σ) + (σ² + s_var(k − k2)²)/(2σ2²) − ½."""
        return (
            np.log(sigma2 / sigma) + (sigma**2 + self.s_var * (k - k2) ** 2) / (2 * sigma2**2) - 0.5
        )

    def fisher_mc(self, k: float, sigma: float, n: int = 100_000, seed: int = 0) -> np.ndarray:
        """A Monte Carlo estimate of E[∇log π ∇log πᵀ], the score computed by torch autograd."""
        gen = torch.Generator().manual_seed(seed)
        s = torch.randn(n, generator=gen, dtype=torch.float64) * math.sqrt(self.s_var)
        theta = torch.tensor([k, sigma], dtype=torch.float64)
        with torch.no_grad():
            a = k * s + sigma * torch.randn(n, generator=gen, dtype=torch.float64)
        # the per-sample scores ∇_θ log π(a_i|s_i), an [n, 2] Jacobian by autograd
        jac = torch.func.jacfwd(lambda th: Normal(th[0] * s, th[1]).log_prob(a))(theta)
        jac = jac.detach()  # [n, 2]
        return (jac.T @ jac / n).numpy()

    def fisher_autograd(
        self, k: float, sigma: float, n: int = 100_000, seed: int = 0
    ) -> np.ndarray:
        """The Hessian of D̄_KL(θ') = E_s[KL(π_θ‖π_θ')] at θ' = θ by autograd (the KL in closed form,
        the s-expectation by Monte Carlo over ``n`` states)."""
        gen = torch.Generator().manual_seed(seed)
        s = torch.randn(n, generator=gen, dtype=torch.float64) * math.sqrt(self.s_var)
        old = Normal(k * s, torch.full_like(s, sigma))

        def mean_kl(th):
            return torch.distributions.kl_divergence(
                old, Normal(th[0] * s, th[1].expand_as(s))
            ).mean()

        theta = torch.tensor([k, sigma], dtype=torch.float64)
        return torch.autograd.functional.hessian(mean_kl, theta).numpy()


# -- tabular softmax --------------------------------------------------------------------------
def _occupancy_and_advantages(mdp: TabularMDP, pi: torch.Tensor):
    pi = mdp.check_policy(pi).detach()
    return mdp.occupancy(pi), mdp.advantages(pi), pi


def tabular_npg_alpha(mdp: TabularMDP, pi: torch.Tensor, max_kl: float) -> float:
    """η = sqrt(2δ / E_{s∼d^π, a∼π}[A^π(s, a)²]): the trust-region step size in closed form.

    For the tabular softmax, gᵀF⁻¹g = E_{d,π}[A²] (g the surrogate gradient on the exact
    batch, F the d-weighted Fisher), so this is sqrt(2δ / (gᵀF⁻¹g)) with δ = ``max_kl``.
    (The name keeps the α of earlier versions; the book writes η for step sizes.)
    """
    d, A, pi = _occupancy_and_advantages(mdp, pi)
    ea2 = float((d[:, None] * pi * A**2).sum())
    if not ea2 > 0:
        raise ValueError("E[A²] = 0: every advantage is zero, there is no direction to step in")
    return math.sqrt(2.0 * float(max_kl) / ea2)


def tabular_npg_policy(
    mdp: TabularMDP, pi: torch.Tensor, *, max_kl: float | None = None, alpha: float | None = None
) -> torch.Tensor:
    """π'(a|s) ∝ π(a|s)·exp(η·A^π(s, a)), normalised over actions a only (state by state).

    This is the natural gradient step of a tabular softmax policy on the exact batch,
    θ ← θ + η·F⁻¹g with g the surrogate gradient (= (1−γ)∇J): F⁻¹g = A up to a constant per
    state, which the softmax ignores. Give either the step size η as ``alpha`` or the KL
    radius δ as ``max_kl``, in which case η = :func:`tabular_npg_alpha`.
    """
    if (max_kl is None) == (alpha is None):
        raise ValueError("give exactly one of max_kl or alpha")
    d, A, pi = _occupancy_and_advantages(mdp, pi)
    if alpha is None:
        alpha = tabular_npg_alpha(mdp, pi, max_kl)
    logits = pi.log() + float(alpha) * A
    return torch.softmax(logits, dim=-1)


# -- the trust-region step size and its misprints ------------------------------------------------
def step_size_forms(g: np.ndarray, F: np.ndarray, max_kl: float) -> dict:
    """The step Δ = η·F⁻¹g for four step sizes η, with the quadratic KL model ½ΔᵀFΔ of each.

    δ = ``max_kl`` is the KL radius (the notes write ε). The keys name the forms as the notes
    print them, with ``eps`` for the radius:

    * ``"sqrt(2eps/gFinvg)"``: η = sqrt(2δ / gᵀF⁻¹g), the right one: ½ΔᵀFΔ = δ exactly;
    * ``"sqrt(eps/gFinvg)"``: the 2 dropped: ½ΔᵀFΔ = δ/2;
    * ``"sqrt(2eps/gFg)"``: gᵀFg in the denominator (the CampusAI notes on CS285 lecture 9):
      ½ΔᵀFΔ = δ·(gᵀF⁻¹g)/(gᵀFg), anything;
    * ``"sqrt(eps/gFg)"``: both mistakes at once (the CS/STAT 184 notes):
      ½ΔᵀFΔ = ½·δ·(gᵀF⁻¹g)/(gᵀFg).

    F⁻¹ is the pseudo-inverse (F may be singular, as for a tabular softmax; g must lie in the
    range of F). Returns {name: {"alpha", "delta", "quad_kl"}}, where "alpha" is the step
    size η (the key keeps its earlier name).
    """
    g = np.asarray(g, dtype=float)
    F = np.asarray(F, dtype=float)
    max_kl = float(max_kl)
    if not (math.isfinite(max_kl) and max_kl > 0):
        raise ValueError(f"max_kl must be a positive, finite number, got {max_kl!r}")
    x = np.linalg.pinv(F, hermitian=True) @ g
    gFinvg = float(g @ x)
    gFg = float(g @ F @ g)
    if not (gFinvg > 0 and gFg > 0):
        raise ValueError("gᵀF⁺g and gᵀFg must be positive: g is zero or outside the range of F")
    out = {}
    for name, eta in (
        ("sqrt(2eps/gFinvg)", math.sqrt(2 * max_kl / gFinvg)),
        ("sqrt(eps/gFinvg)", math.sqrt(max_kl / gFinvg)),
        ("sqrt(2eps/gFg)", math.sqrt(2 * max_kl / gFg)),
        ("sqrt(eps/gFg)", math.sqrt(max_kl / gFg)),
    ):
        delta = eta * x
        out[name] = {"alpha": eta, "delta": delta, "quad_kl": 0.5 * float(delta @ F @ delta)}
    return out
