"""Parameter vectors and conjugate gradient: the vector tools behind the natural gradient.

* ``flat_params`` / ``set_flat_params``: a module's trainable parameters as one vector θ, and back;
* ``flat_grad``: ∇_θ y as one vector;
* ``conjugate_gradient``: x ≈ M⁻¹b for a symmetric PSD M given only x ↦ Mx (for the natural
  gradient, M = F + κI applied by :func:`pgcore.fisher.fisher_vector_product`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from ._checks import check_finite_tensor, check_int, check_non_negative

__all__ = ["flat_params", "set_flat_params", "flat_grad", "conjugate_gradient"]


def flat_params(module: torch.nn.Module) -> torch.Tensor:
    """All trainable parameters as one detached vector θ."""
    return (
        parameters_to_vector([p for p in module.parameters() if p.requires_grad]).detach().clone()
    )


def set_flat_params(module: torch.nn.Module, theta: torch.Tensor) -> None:
    """Write the vector θ back into the module's trainable parameters (in place)."""
    with torch.no_grad():
        vector_to_parameters(theta, [p for p in module.parameters() if p.requires_grad])


def flat_grad(y: torch.Tensor, module: torch.nn.Module, **kwargs) -> torch.Tensor:
    """∇_θ y as one vector (unused parameters get zeros)."""
    params = [p for p in module.parameters() if p.requires_grad]
    grads = torch.autograd.grad(y, params, allow_unused=True, **kwargs)
    return torch.cat(
        [(torch.zeros_like(p) if g is None else g).reshape(-1) for p, g in zip(params, grads)]
    )


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

    ``b`` must be a finite 1-D tensor, ``iters`` a positive integer and ``tol`` a finite number
    ≥ 0 (ValueError otherwise, before any product is computed).
    """
    if not isinstance(b, torch.Tensor) or b.ndim != 1:
        raise ValueError(
            f"b must be a 1-D tensor, got {type(b).__name__} "
            f"{tuple(b.shape) if isinstance(b, torch.Tensor) else ''}"
        )
    check_finite_tensor("b", b)
    iters = check_int("iters", iters)
    tol = check_non_negative("tol", tol)
    x = torch.zeros_like(b)
    r = b.clone()
    p = r.clone()
    rr = r @ r
    if rr.sqrt() < tol:
        return x
    for k in range(iters):
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
