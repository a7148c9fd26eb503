"""The Fisher information matrix and Fisher-vector products.

F(θ) = E_{s, a∼π_θ}[∇ log π_θ(a|s) ∇ log π_θ(a|s)ᵀ] is also the Hessian at θ' = θ of the mean
KL, E_s[KL(π_θ(·|s) ‖ π_θ'(·|s))], so that KL ≈ ½ ΔᵀFΔ for a small step Δ. Here E_s is the
batch expectation, so on the exact batch F is weighted by d^π(s).

The parameter-vector tools (``flat_params``, ``set_flat_params``, ``flat_grad``) and
``conjugate_gradient`` live in :mod:`pgcore.flat`; they are re-exported here.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch.distributions import Distribution

from .divergences import mean_kl
from .flat import conjugate_gradient, flat_grad, flat_params, set_flat_params  # re-exported

__all__ = [
    "flat_params",
    "set_flat_params",
    "flat_grad",
    "fisher_matrix",
    "kl_hessian",
    "fisher_vector_product",
    "conjugate_gradient",
]


def fisher_matrix(policy, obs: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """F = E_s Σ_a π(a|s) ∇log π(a|s) ∇log π(a|s)ᵀ, the expected outer product of the score.

    Exact for distributions with enumerable support (categorical policies): every action is
    enumerated, so there is no sampling. Returns a [P, P] matrix, P = number of parameters.
    """
    dist = policy.distribution(obs)
    if not dist.has_enumerate_support:
        raise ValueError(
            "fisher_matrix needs a distribution with enumerable support; use kl_hessian"
        )
    w = torch.ones(len(obs), dtype=torch.float64) if weights is None else weights.to(torch.float64)
    w = w / w.sum()
    actions = dist.enumerate_support()  # [A, B]
    logp = dist.log_prob(actions)  # [A, B]
    probs = logp.detach().exp()
    n = sum(p.numel() for p in policy.parameters() if p.requires_grad)
    F = torch.zeros(n, n, dtype=torch.float64)
    for a in range(actions.shape[0]):
        for i in range(len(obs)):
            c = (w[i] * probs[a, i]).item()
            if c == 0.0:
                continue
            g = flat_grad(logp[a, i], policy, retain_graph=True).to(torch.float64)
            F += c * torch.outer(g, g)
    return F


def _kl_from_frozen(
    policy, obs: torch.Tensor, weights: torch.Tensor | None, old_dist: Distribution | None
) -> torch.Tensor:
    """E_s[KL(π_θ(·|s) ‖ π_θ'(·|s))] as a function of the policy's parameters θ', with π_θ frozen.

    π_θ is ``old_dist`` if given (it must be detached), else a frozen copy of the policy now.
    """
    if old_dist is None:
        with torch.no_grad():
            old_dist = copy.deepcopy(policy).distribution(obs)
    return mean_kl(old_dist, policy.distribution(obs), weights)


def kl_hessian(
    policy,
    obs: torch.Tensor,
    weights: torch.Tensor | None = None,
    *,
    old_dist: Distribution | None = None,
) -> torch.Tensor:
    """∇²_θ' E_s[KL(π_θ‖π_θ')] at θ' = θ, row by row with autograd; it equals the Fisher matrix."""
    kl = _kl_from_frozen(policy, obs, weights, old_dist)
    g = flat_grad(kl, policy, create_graph=True)
    rows = [flat_grad(g[i], policy, retain_graph=True) for i in range(g.numel())]
    return torch.stack(rows)


def fisher_vector_product(
    policy,
    obs: torch.Tensor,
    weights: torch.Tensor | None = None,
    damping: float = 0.0,
    *,
    old_dist: Distribution | None = None,
) -> Callable[[torch.Tensor], torch.Tensor]:
    """v ↦ (F + κI) v by double backprop through the mean KL, never forming F (κ = ``damping``).

    F v = ∇_θ'((∇_θ' E_s[KL(π_θ‖π_θ')])ᵀ v) at θ' = θ. The first gradient is built once and
    reused, so each product costs about one extra backward pass. ``old_dist`` is π_θ(·|obs)
    detached from the graph, if the caller already has it (otherwise it is computed from a
    frozen copy of the policy).
    """
    kl = _kl_from_frozen(policy, obs, weights, old_dist)
    grad_kl = flat_grad(kl, policy, create_graph=True)

    def fvp(v: torch.Tensor) -> torch.Tensor:
        v = v.to(grad_kl.dtype)
        hv = flat_grad(grad_kl @ v, policy, retain_graph=True)
        return hv + damping * v

    return fvp
