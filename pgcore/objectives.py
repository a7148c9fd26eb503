"""Surrogate objectives over a Batch: E[r·A], PPO's clipped surrogate, and the KL-penalised one.

With r(θ') = π_θ'(a|s) / π_old(a|s) and the batch expectation E[x] = Σ w·x / Σ w:

* surrogate            L(θ')      = E[r·A]                (the book's Ā(θ'))
* clipped surrogate    L^CLIP(θ') = E[min(r·A, clip(r, 1−ε, 1+ε)·A)]
* KL-penalised         L^KLPEN(θ') = E[r·A] − β·E_s[KL(π_old‖π_θ')]

On the exact batch (weights d^π(s)π(a|s)) the gradient of L at θ' = θ is (1−γ)∇J(θ): the
policy gradient theorem.
"""

from __future__ import annotations

import math

import torch
from torch.distributions import Distribution

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


def log_ratio(policy, batch: Batch) -> torch.Tensor:
    """log r = log π_θ'(a|s) − log π_old(a|s), shape [B]."""
    return policy.distribution(batch.obs).log_prob(batch.actions) - batch.logp_old


def ratio(policy, batch: Batch) -> torch.Tensor:
    """r(θ') = π_θ'(a|s) / π_old(a|s), shape [B]."""
    return log_ratio(policy, batch).exp()


def surrogate(policy, batch: Batch) -> torch.Tensor:
    """L(θ') = E[r(θ')·A]: the importance-sampled advantage of π_θ' under π_old's states."""
    return weighted_mean(ratio(policy, batch) * batch.advantages, batch.weights)


def _check_clip(clip: float) -> float:
    try:
        c = float(clip)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"clip must be a non-negative number, got {clip!r}") from exc
    if not math.isfinite(c) or c < 0:
        raise ValueError(f"clip must be a finite, non-negative number, got {clip!r}")
    return c


def clipped_surrogate(
    ratio: torch.Tensor,
    adv: torch.Tensor,
    clip: float,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """L^CLIP = weighted mean of min(r·A, clip(r, 1−ε, 1+ε)·A), with ε = ``clip`` ≥ 0."""
    c = _check_clip(clip)
    unclipped = ratio * adv
    clipped = torch.clamp(ratio, 1.0 - c, 1.0 + c) * adv
    return weighted_mean(torch.minimum(unclipped, clipped), weights)


def clip_fraction(ratio: torch.Tensor, clip: float, weights: torch.Tensor | None = None) -> torch.Tensor:
    """The (weighted) fraction of samples with |r − 1| > ε, the usual ``clipfrac`` diagnostic."""
    c = _check_clip(clip)
    return weighted_mean(((ratio - 1.0).abs() > c).to(ratio.dtype), weights)


def kl_penalized_surrogate(
    policy, batch: Batch, beta: float, old_dist: Distribution
) -> torch.Tensor:
    """L^KLPEN(θ') = E[r·A] − β·E_s[KL(π_old‖π_θ')], with ``old_dist`` = π_old(·|batch.obs)."""
    if not math.isfinite(beta) or beta < 0:
        raise ValueError(f"beta must be a finite, non-negative number, got {beta!r}")
    dist = policy.distribution(batch.obs)
    r = (dist.log_prob(batch.actions) - batch.logp_old).exp()
    return weighted_mean(r * batch.advantages, batch.weights) - beta * mean_kl(
        old_dist, dist, batch.weights
    )
