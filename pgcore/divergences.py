"""Divergences between action distributions: KL, total variation, and their batch means.

* KL(p‖q) = Σ_a p(a) log(p(a)/q(a)), with 0·log 0 = 0 and +∞ where q(a) = 0 < p(a).
* D_TV(p, q) = ½ Σ_a |p(a) − q(a)| (the book's only definition of total variation).
* Pinsker: D_TV(p, q) ≤ sqrt(KL(p‖q) / 2).
* D̄_KL = E_s[KL(π_old(·|s) ‖ π(·|s))], the batch mean (:func:`mean_kl`).
"""

from __future__ import annotations

import torch
from torch.distributions import Distribution, kl_divergence

from ._checks import check_probabilities
from .batch import weighted_mean

__all__ = ["kl_categorical", "total_variation", "kl_gaussian", "mean_kl"]


_ROW_ATOL = 1e-5  # how far a row sum may be from 1 (float32 softmax rows are within ~1e-7·A)


def _two_distributions(p, q) -> tuple[torch.Tensor, torch.Tensor]:
    """p and q as rows of probability distributions of one common floating dtype, or ValueError.

    Integer or boolean inputs are converted to float64 (so ``[1, 0]`` is the point mass); two
    floating inputs are promoted to their common dtype. Every entry must be finite and ≥ 0 and
    every row (last axis) must sum to 1 within 1e-5; p and q must have the same shape.
    """
    p, q = torch.as_tensor(p), torch.as_tensor(q)
    if p.is_floating_point() and q.is_floating_point():
        dtype = torch.promote_types(p.dtype, q.dtype)
    elif p.is_floating_point() or q.is_floating_point():
        dtype = p.dtype if p.is_floating_point() else q.dtype
    else:
        dtype = torch.float64
    if p.shape != q.shape:
        raise ValueError(
            f"p and q must have the same shape, got {tuple(p.shape)} and {tuple(q.shape)}"
        )
    p = check_probabilities("p", p.to(dtype), atol=_ROW_ATOL)
    q = check_probabilities("q", q.to(dtype), atol=_ROW_ATOL)
    return p, q


def kl_categorical(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """KL(p‖q) = Σ_a p(a) log(p(a)/q(a)) along the last axis (0·log 0 = 0; +∞ where q = 0 < p).

    p and q are rows of probability distributions (finite, ≥ 0, summing to 1) of the same
    shape; anything else raises ValueError. Integer inputs are read as float64.
    """
    p, q = _two_distributions(p, q)
    return (torch.xlogy(p, p) - torch.xlogy(p, q)).sum(-1)


def total_variation(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """D_TV(p, q) = ½ Σ_a |p(a) − q(a)| along the last axis; it lies in [0, 1].

    p and q are checked as in :func:`kl_categorical`.
    """
    p, q = _two_distributions(p, q)
    return 0.5 * (p - q).abs().sum(-1)


def kl_gaussian(
    mean_p: torch.Tensor, std_p: torch.Tensor, mean_q: torch.Tensor, std_q: torch.Tensor
) -> torch.Tensor:
    """KL(N(μ_p, diag σ_p²) ‖ N(μ_q, diag σ_q²)), summed over the last axis.

    Σ_i log(σ_q/σ_p) + (σ_p² + (μ_p − μ_q)²) / (2σ_q²) − ½.

    Every input must be finite and the standard deviations > 0 (ValueError otherwise); integer
    inputs are read as float64.
    """
    args = {"mean_p": mean_p, "std_p": std_p, "mean_q": mean_q, "std_q": std_q}
    for name, x in args.items():
        t = torch.as_tensor(x)
        if not t.is_floating_point():
            t = t.to(torch.float64)
        if not torch.isfinite(t).all():
            raise ValueError(f"{name} has non-finite entries (NaN or ±inf): {x!r}")
        if name.startswith("std") and (t <= 0).any():
            raise ValueError(f"{name} must be strictly positive, got {x!r}")
        args[name] = t
    mean_p, std_p, mean_q, std_q = args.values()
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
