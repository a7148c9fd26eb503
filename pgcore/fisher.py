"""The Fisher information matrix, Fisher-vector products, and conjugate gradient.

F(θ) = E_{s, a∼π_θ}[∇ log π_θ(a|s) ∇ log π_θ(a|s)ᵀ] is also the Hessian at θ' = θ of the mean
KL, E_s[KL(π_θ(·|s) ‖ π_θ'(·|s))], so that KL ≈ ½ ΔᵀFΔ for a small step Δ. Here E_s is the
batch expectation, so on the exact batch F is weighted by d^π(s).
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from .divergences import mean_kl

__all__ = [
    "flat_params",
    "set_flat_params",
    "flat_grad",
    "fisher_matrix",
    "kl_hessian",
    "fisher_vector_product",
    "conjugate_gradient",
]


def flat_params(module: torch.nn.Module) -> torch.Tensor:
    """All trainable parameters as one detached vector θ."""
    return parameters_to_vector([p for p in module.parameters() if p.requires_grad]).detach().clone()


def set_flat_params(module: torch.nn.Module, theta: torch.Tensor) -> None:
    """Write the vector θ back into the module's trainable parameters (in place)."""
    with torch.no_grad():
        vector_to_parameters(theta, [p for p in module.parameters() if p.requires_grad])


def flat_grad(y: torch.Tensor, module: torch.nn.Module, **kwargs) -> torch.Tensor:
    """∇_θ y as one vector (unused parameters get zeros)."""
    params = [p for p in module.parameters() if p.requires_grad]
    grads = torch.autograd.grad(y, params, allow_unused=True, **kwargs)
    return torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1) for p, g in zip(params, grads)])


def fisher_matrix(policy, obs: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """F = E_s Σ_a π(a|s) ∇log π(a|s) ∇log π(a|s)ᵀ, the expected outer product of the score.

    Exact for distributions with enumerable support (categorical policies): every action is
    enumerated, so there is no sampling. Returns a [P, P] matrix, P = number of parameters.
    """
    dist = policy.distribution(obs)
    if not dist.has_enumerate_support:
        raise ValueError("fisher_matrix needs a distribution with enumerable support; use kl_hessian")
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


def kl_hessian(policy, obs: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """∇²_θ' E_s[KL(π_θ‖π_θ')] at θ' = θ, row by row with autograd; it equals the Fisher matrix."""
    with torch.no_grad():
        old_dist = copy.deepcopy(policy).distribution(obs)
    kl = mean_kl(old_dist, policy.distribution(obs), weights)
    g = flat_grad(kl, policy, create_graph=True)
    rows = [flat_grad(g[i], policy, retain_graph=True) for i in range(g.numel())]
    return torch.stack(rows)


def fisher_vector_product(
    policy, obs: torch.Tensor, weights: torch.Tensor | None = None, damping: float = 0.0
) -> Callable[[torch.Tensor], torch.Tensor]:
    """v ↦ (F + damping·I) v by double backprop through the mean KL, never forming F.

    F v = ∇_θ'((∇_θ' E_s[KL(π_θ‖π_θ')])ᵀ v) at θ' = θ. The first gradient is built once and
    reused, so each product costs about one extra backward pass.
    """
    with torch.no_grad():
        old_dist = copy.deepcopy(policy).distribution(obs)
    kl = mean_kl(old_dist, policy.distribution(obs), weights)
    grad_kl = flat_grad(kl, policy, create_graph=True)

    def fvp(v: torch.Tensor) -> torch.Tensor:
        v = v.to(grad_kl.dtype)
        hv = flat_grad(grad_kl @ v, policy, retain_graph=True)
        return hv + damping * v

    return fvp


def conjugate_gradient(
    matvec: Callable[[torch.Tensor], torch.Tensor],
    b: torch.Tensor,
    iters: int = 10,
    tol: float = 1e-10,
    callback: Callable[[int, torch.Tensor, float], None] | None = None,
) -> torch.Tensor:
    """Approximately solve M x = b for symmetric PSD M, given only x ↦ M x.

    Standard CG from x₀ = 0. It stops early once the residual norm ‖b − Mx‖₂ is below
    ``tol``, and also when a search direction has pᵀMp ≤ 0 (M singular along p): on a
    singular PSD system whose b lies in the range of M the iterates stay finite. After each
    iteration ``callback(k, x, residual_norm)`` is called if given.
    """
    x = torch.zeros_like(b)
    r = b.clone()
    p = r.clone()
    rr = r @ r
    if rr.sqrt() < tol:
        return x
    for k in range(int(iters)):
        Mp = matvec(p)
        pMp = p @ Mp
        if not torch.isfinite(pMp) or pMp <= 1e-30 * rr:
            break
        alpha = rr / pMp
        x = x + alpha * p
        r = r - alpha * Mp
        rr_new = r @ r
        if callback is not None:
            callback(k + 1, x, rr_new.sqrt().item())
        if rr_new.sqrt() < tol:
            break
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x
