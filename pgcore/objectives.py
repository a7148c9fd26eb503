"""Surrogate objectives over a Batch: E[r·A], PPO's clipped surrogate, and the KL-penalised one.

With r(θ') = π_θ'(a|s) / π_old(a|s) and the batch expectation E[x] = Σ w·x / Σ w:

* surrogate            L(θ')      = E[r·A]                (the book's Ā(θ'))
* clipped surrogate    L^CLIP(θ') = E[min(r·A, clip(r, 1−ε, 1+ε)·A)]
* KL-penalised         L^KLPEN(θ') = E[r·A] − β·E_s[KL(π_old‖π_θ')]

On the exact batch (weights d^π(s)π(a|s)) the gradient of L at θ' = θ is (1−γ)∇J(θ): the
policy gradient theorem.
"""

from __future__ import annotations

import torch
from torch.distributions import Distribution

from ._checks import check_non_negative
from .batch import Batch, weighted_mean
from .divergences import mean_kl

__all__ = [
    "log_ratio",
    "ratio",
    "surrogate",
    "clipped_surrogate",
    "kl_penalized_surrogate",
    "clip_fraction",
]


def log_ratio(policy, batch: Batch, *, dist: Distribution | None = None) -> torch.Tensor:
    """log r = log π_θ'(a|s) − log π_old(a|s), shape [B].

    ``dist`` is π_θ'(·|batch.obs) if already computed (it saves a forward pass).
    """
    if dist is None:
        dist = policy.distribution(batch.obs)
    return dist.log_prob(batch.actions) - batch.logp_old


def ratio(policy, batch: Batch, *, dist: Distribution | None = None) -> torch.Tensor:
    """r(θ') = π_θ'(a|s) / π_old(a|s), shape [B]."""
    return log_ratio(policy, batch, dist=dist).exp()


def surrogate(policy, batch: Batch) -> torch.Tensor:
    """L(θ') = E[r(θ')·A]: the importance-sampled advantage of π_θ' under π_old's states."""
    return weighted_mean(ratio(policy, batch) * batch.advantages, batch.weights)


def _check_same_shape(ratio: torch.Tensor, other: torch.Tensor | None, name: str) -> None:
    """``ratio`` and ``other`` must have the same shape: no broadcasting (r[B, 1]·A[B] is [B, B])."""
    if other is not None and tuple(ratio.shape) != tuple(other.shape):
        raise ValueError(
            f"ratio has shape {tuple(ratio.shape)} but {name} has shape {tuple(other.shape)}; "
            "they must be equal (no broadcasting)"
        )


def clipped_surrogate(
    ratio: torch.Tensor,
    adv: torch.Tensor,
    clip: float,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """L^CLIP = E[min(r·A, clip(r, 1−ε, 1+ε)·A)], the weighted mean over the batch, with ε = ``clip`` ≥ 0.

    ``ratio``, ``adv`` and ``weights`` (if given) must all have the same shape.
    """
    c = check_non_negative("clip", clip)
    _check_same_shape(ratio, adv, "adv")
    _check_same_shape(ratio, weights, "weights")
    unclipped = ratio * adv
    clipped = torch.clamp(ratio, 1.0 - c, 1.0 + c) * adv
    return weighted_mean(torch.minimum(unclipped, clipped), weights)


def clip_fraction(
    ratio: torch.Tensor, clip: float, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """E[1{|r − 1| > ε}]: the (weighted) fraction of samples with |r − 1| > ε, the usual ``clipfrac``."""
    c = check_non_negative("clip", clip)
    _check_same_shape(ratio, weights, "weights")
    return weighted_mean(((ratio - 1.0).abs() > c).to(ratio.dtype), weights)


def kl_penalized_surrogate(
    policy, batch: Batch, beta: float, old_dist: Distribution, *, dist: Distribution | None = None
) -> torch.Tensor:
    """L^KLPEN(θ') = E[r·A] − β·E_s[KL(π_old‖π_θ')], with ``old_dist`` = π_old(·|batch.obs).

    ``dist`` is π_θ'(·|batch.obs) if already computed (it saves a forward pass).
    """
    beta = check_non_negative("beta", beta)
    if dist is None:
        dist = policy.distribution(batch.obs)
    r = (dist.log_prob(batch.actions) - batch.logp_old).exp()
    return weighted_mean(r * batch.advantages, batch.weights) - beta * mean_kl(
        old_dist, dist, batch.weights
    )
