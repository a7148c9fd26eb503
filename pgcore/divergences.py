"""Divergences between action distributions: KL, total variation, and their batch means.

* KL(p‖q) = Σ_a p(a) log(p(a)/q(a)), with 0·log 0 = 0 and +∞ where q(a) = 0 < p(a).
* TV(p, q) = ½ Σ_a |p(a) − q(a)| (the book's only definition of total variation).
* Pinsker: TV(p, q) ≤ sqrt(KL(p‖q) / 2).
"""

from __future__ import annotations

import torch
from torch.distributions import Distribution, kl_divergence

from .batch import weighted_mean

__all__ = ["kl_categorical", "total_variation", "kl_gaussian", "mean_kl"]


def kl_categorical(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """KL(p‖q) = Σ p log(p/q) along the last axis (0·log 0 = 0; +∞ where q = 0 < p)."""
    p = torch.as_tensor(p)
    q = torch.as_tensor(q, dtype=p.dtype)
    if p.shape != q.shape:
        raise ValueError(f"p and q must have the same shape, got {tuple(p.shape)} and {tuple(q.shape)}")
    return (torch.xlogy(p, p) - torch.xlogy(p, q)).sum(-1)


def total_variation(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """TV(p, q) = ½ Σ |p − q| along the last axis; it lies in [0, 1]."""
    p = torch.as_tensor(p)
    q = torch.as_tensor(q, dtype=p.dtype)
    if p.shape != q.shape:
        raise ValueError(f"p and q must have the same shape, got {tuple(p.shape)} and {tuple(q.shape)}")
    return 0.5 * (p - q).abs().sum(-1)


def kl_gaussian(
    mean_p: torch.Tensor, std_p: torch.Tensor, mean_q: torch.Tensor, std_q: torch.Tensor
) -> torch.Tensor:
    """KL(N(μ_p, diag σ_p²) ‖ N(μ_q, diag σ_q²)), summed over the last axis.

    Σ_i log(σ_q/σ_p) + (σ_p² + (μ_p − μ_q)²) / (2σ_q²) − ½.
    """
    mean_p, std_p, mean_q, std_q = (torch.as_tensor(x) for x in (mean_p, std_p, mean_q, std_q))
    if (std_p <= 0).any() or (std_q <= 0).any():
        raise ValueError("standard deviations std_p and std_q must be strictly positive")
    var_p, var_q = std_p**2, std_q**2
    return (torch.log(std_q / std_p) + (var_p + (mean_p - mean_q) ** 2) / (2 * var_q) - 0.5).sum(-1)


def mean_kl(
    old: Distribution, new: Distribution, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """E_s[KL(π_old(·|s) ‖ π_new(·|s))]: the batch-weighted mean of the per-row KL.

    This is the direction TRPO constrains (old first). Both arguments are distributions over
    the same batch of observations.
    """
    return weighted_mean(kl_divergence(old, new), weights)
