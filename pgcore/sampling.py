"""Importance sampling over a finite set of actions: the estimator, its exact moments, a sampler.

To estimate E_{a∼p}[f(a)] from samples a₁..a_N ∼ q (the proposal, e.g. the old policy), reweight:

    Ĵ = (1/N) Σᵢ w(aᵢ) f(aᵢ),   w(a) = p(a)/q(a).

It is unbiased whenever q(a) > 0 wherever p(a)f(a) ≠ 0, and its variance is

    Var Ĵ = (E_q[w² f²] − (E_p f)²)/N = (Σ_a p(a)² f(a)²/q(a) − (Σ_a p(a) f(a))²)/N,

which blows up when q puts little mass where p does. With f = 1 the second moment of the
weights is E_q[w²] = Σ p²/q = 1 + χ²(p‖q) = exp(D₂(p‖q)) ≥ exp(KL(p‖q)) (Jensen), so the
variance grows at least exponentially in the KL between target and proposal.
"""

from __future__ import annotations

import torch

__all__ = [
    "importance_weights",
    "is_estimates",
    "is_mean",
    "is_variance",
    "weight_second_moment",
]


def _check(p: torch.Tensor, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    p = torch.as_tensor(p, dtype=torch.float64)
    q = torch.as_tensor(q, dtype=torch.float64)
    if p.shape != q.shape or p.ndim != 1:
        raise ValueError(
            f"p and q must be 1-D with the same shape, got {tuple(p.shape)} and {tuple(q.shape)}"
        )
    if (p < 0).any() or (q < 0).any():
        raise ValueError("p and q must be non-negative")
    if ((q == 0) & (p > 0)).any():
        raise ValueError(
            "q must be positive wherever p is: importance sampling needs q(a) > 0 where p(a) > 0"
        )
    return p, q


def importance_weights(p, q) -> torch.Tensor:
    """w(a) = p(a)/q(a) for every action (0 where both are 0)."""
    p, q = _check(p, q)
    return torch.where(q > 0, p / q.clamp_min(1e-300), torch.zeros((), dtype=p.dtype))


def is_mean(f, p) -> torch.Tensor:
    """The target E_{a∼p}[f(a)] = Σ_a p(a) f(a)."""
    return torch.as_tensor(p, dtype=torch.float64) @ torch.as_tensor(f, dtype=torch.float64)


def is_variance(f, p, q, n: int = 1) -> torch.Tensor:
    """The exact variance of the N-sample estimator: (Σ p² f²/q − (Σ p f)²)/N."""
    p, q = _check(p, q)
    f = torch.as_tensor(f, dtype=torch.float64)
    w = importance_weights(p, q)
    second = (q * (w * f) ** 2).sum()
    return (second - (p @ f) ** 2) / int(n)


def weight_second_moment(p, q) -> torch.Tensor:
    """E_q[w²] = Σ p²/q = 1 + χ²(p‖q) ≥ exp(KL(p‖q))."""
    p, q = _check(p, q)
    w = importance_weights(p, q)
    return (q * w**2).sum()


def is_estimates(
    f, p, q, n: int, repeats: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``repeats`` independent N-sample importance-sampling estimates of E_p[f], shape [repeats]."""
    p, q = _check(p, q)
    if int(n) < 1 or int(repeats) < 1:
        raise ValueError("n and repeats must be positive integers")
    f = torch.as_tensor(f, dtype=torch.float64)
    w = importance_weights(p, q)
    a = torch.multinomial(q, int(n) * int(repeats), replacement=True, generator=generator)
    return (w[a] * f[a]).reshape(int(repeats), int(n)).mean(-1)
