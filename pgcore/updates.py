"""Policy updates. Each takes ``(policy, batch, ...)``, moves the policy in place, returns diagnostics.

The same functions move a tabular policy on an exact batch and train a neural policy on
rollouts. ``policy`` must be the policy that produced ``batch`` (π_old) when called: its
current distribution is snapshotted as π_old for the KL terms. Notation (the book's): r the
probability ratio π_θ(a|s)/π_old(a|s), Ā(θ) = E[r·A] the surrogate, D̄_KL the mean
KL(π_old‖π_θ), δ the trust-region radius, η a step size, ε PPO's clip, β the KL penalty,
κ the CG damping, c the backtracking coefficient, n_bt the maximum number of backtracks.

Every update returns a dict with at least the keys of :func:`update_diagnostics`, measured
after the update:

* ``kl``: D̄_KL = E_s[KL(π_old(·|s) ‖ π_new(·|s))] (the direction TRPO constrains),
* ``surrogate_gain``: Ā(θ_new) − Ā(θ_old) = E[r·A] − E[A],
* ``entropy``: the mean entropy of π_new,
* ``approx_kl``: the sample estimate E[(r − 1) − log r] of the same KL,

and, where it applies, the line-search record (``accepted``, ``backtracks``, ``predicted_kl``,
``predicted_kl_undamped``: NPG and TRPO), ``clipfrac`` and ``value_loss`` (PPO), and ``beta`` /
``beta_next`` (PPO-KL). A refused update raises ``ValueError`` and changes nothing: the
arguments are checked before any work, and an update whose result would not be finite is
undone (parameters, optimiser state and β) before :class:`NonFiniteUpdateError` is raised.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn
from torch.distributions import Distribution

from ._checks import check_fraction, check_int, check_non_negative, check_positive
from .batch import Batch, weighted_mean
from .batch import normalize_advantages as _normalize_advantages
from .divergences import mean_kl
from .fisher import (
    conjugate_gradient,
    fisher_vector_product,
    flat_grad,
    flat_params,
    set_flat_params,
)
from .objectives import (
    clip_fraction,
    clipped_surrogate,
    kl_penalized_surrogate,
    log_ratio,
    surrogate,
)

__all__ = [
    "AdaptiveKL",
    "NonFiniteUpdateError",
    "update_diagnostics",
    "vpg_step",
    "natural_gradient_step",
    "trpo_step",
    "ppo_loss",
    "ppo_update",
    "ppo_clip_update",
    "ppo_kl_update",
    "dual_gradient_descent",
    "PPO_OBJECTIVES",
]

PPO_OBJECTIVES = ("clip", "adaptive-kl", "fixed-kl", "none")


class NonFiniteUpdateError(ValueError):
    """An update would have produced a non-finite loss, parameter or KL.

    The update is undone before this is raised: parameters, optimiser state and β are exactly
    as they were before the call. The usual cause is a step size (learning rate) that is too
    large for the scale of the advantages.
    """


# -- argument checks (all run before any parameter changes) ---------------------------------
def _check_batch(batch: Batch) -> None:
    if not isinstance(batch, Batch):
        raise ValueError(f"batch must be a pgcore.Batch, got {type(batch).__name__}")
    if len(batch) == 0:
        raise ValueError("batch is empty: an update needs at least one (state, action) pair")
    if not torch.isfinite(batch.advantages).all():
        bad = int((~torch.isfinite(batch.advantages)).sum())
        raise ValueError(f"batch.advantages has {bad} non-finite entries (NaN or inf)")
    if not torch.isfinite(batch.logp_old).all():
        bad = int((~torch.isfinite(batch.logp_old)).sum())
        raise ValueError(f"batch.logp_old has {bad} non-finite entries (NaN or inf)")
    if batch.weights.sum() <= 0:
        raise ValueError("batch.weights sum to zero: there is nothing to average over")


# -- shared pieces --------------------------------------------------------------------------
def clone_state(state):
    """A copy of a (nested) state dict in which every tensor is cloned and every dict, list and
    tuple rebuilt; other leaves (numbers, strings, None) are shared, being immutable.

    It is what ``copy.deepcopy`` gives for the state dicts of modules and optimisers (whose
    ``state_dict()`` returns references to the live tensors), at a fraction of the cost."""
    if isinstance(state, torch.Tensor):
        return state.detach().clone()
    if isinstance(state, dict):
        return {k: clone_state(v) for k, v in state.items()}
    if isinstance(state, list):
        return [clone_state(v) for v in state]
    if isinstance(state, tuple):
        return tuple(clone_state(v) for v in state)
    return state


def all_finite(tensors) -> bool:
    """True when every entry of every tensor in ``tensors`` is finite: one check on the
    concatenated entries instead of one per tensor."""
    tensors = [t.detach().reshape(-1) for t in tensors]
    return bool(torch.isfinite(torch.cat(tensors)).all()) if tensors else True


def _snapshot(policy: nn.Module, batch: Batch) -> tuple[nn.Module, Distribution]:
    """A frozen copy of π_old and its distribution on the batch's observations."""
    old = copy.deepcopy(policy)
    for p in old.parameters():
        p.requires_grad_(False)
    with torch.no_grad():
        old_dist = old.distribution(batch.obs)
    return old, old_dist


@torch.no_grad()
def update_diagnostics(
    policy: nn.Module, batch: Batch, old_dist: Distribution, *, clip: float | None = None
) -> dict:
    """What an update did, measured on ``batch`` for the current policy π against π_old.

    ``old_dist`` is π_old(·|batch.obs) (the distribution before the update); ``batch.logp_old``
    holds log π_old(a|s). With r = π(a|s)/π_old(a|s) and E the batch expectation Σw·x/Σw:

    * ``kl`` = D̄_KL = E_s[KL(π_old(·|s) ‖ π(·|s))], computed exactly from the distributions;
    * ``approx_kl`` = E[(r − 1) − log r], the sample estimate of the same KL from the ratios
      of the batch's own actions (≥ 0 term by term; Schulman's k3 estimator);
    * ``surrogate_gain`` = Ā(θ) − Ā(θ_old) = E[r·A] − E[A];
    * ``entropy`` = E_s[H(π(·|s))];
    * ``ratio_max``, ``ratio_min``: the extreme ratios over the rows with positive weight;
    * ``clipfrac`` = E[1{|r − 1| > ε}] if ``clip`` = ε is given.

    All values are Python floats. The updates, the widgets and the chapters call this one
    function, so the exact and the sampled worlds report the same numbers the same way.
    """
    dist = policy.distribution(batch.obs)
    logr = log_ratio(policy, batch, dist=dist)
    r = logr.exp()
    w = batch.weights
    gain = weighted_mean(r * batch.advantages, w) - weighted_mean(batch.advantages, w)
    live = r[w > 0]
    out = {
        "kl": mean_kl(old_dist, dist, w).item(),
        "surrogate_gain": gain.item(),
        "entropy": weighted_mean(dist.entropy(), w).item(),
        "approx_kl": weighted_mean((r - 1.0) - logr, w).item(),
        "ratio_max": live.max().item() if live.numel() else 1.0,
        "ratio_min": live.min().item() if live.numel() else 1.0,
    }
    if clip is not None:
        out["clipfrac"] = clip_fraction(r, clip, w).item()
    return out


def _natural_direction(
    policy: nn.Module,
    batch: Batch,
    cg_iters: int,
    damping: float,
    old_dist: Distribution | None = None,
) -> dict:
    """g = ∇Ā(θ), x ≈ (F + κI)⁻¹g by conjugate gradient, xᵀ(F + κI)x (≈ gᵀ(F + κI)⁻¹g) and xᵀFx."""
    g = flat_grad(surrogate(policy, batch), policy)
    fvp = fisher_vector_product(policy, batch.obs, batch.weights, damping, old_dist=old_dist)
    residuals: list[float] = []
    x = conjugate_gradient(fvp, g, iters=cg_iters, callback=lambda k, x, res: residuals.append(res))
    Mx = fvp(x)
    return {
        "g": g,
        "x": x,
        "xFx": (x @ Mx).item(),
        "xFx_undamped": (x @ (Mx - damping * x)).item(),
        "cg_iters": len(residuals),
        "cg_residual": residuals[-1] if residuals else g.norm().item(),
    }


# -- vanilla policy gradient ----------------------------------------------------------------
def vpg_step(policy: nn.Module, batch: Batch, lr: float) -> dict:
    """θ ← θ + η·g with g = ∇_θ Ā(θ) at θ_old = E[∇log π(a|s)·A]: plain gradient ascent.

    η = ``lr``. If θ + η·g is not finite the parameters are left unchanged and
    :class:`NonFiniteUpdateError` is raised.
    """
    lr = check_positive("lr", lr)
    _check_batch(batch)
    _, old_dist = _snapshot(policy, batch)
    g = flat_grad(surrogate(policy, batch), policy)
    candidate = flat_params(policy) + lr * g
    if not torch.isfinite(candidate).all():
        raise NonFiniteUpdateError(
            f"vpg_step: the step lr·g is not finite (lr={lr!r}, ‖g‖={g.norm().item():.3g}); "
            "the parameters are unchanged. Likely cause: the learning rate lr is too large."
        )
    set_flat_params(policy, candidate)
    return {**update_diagnostics(policy, batch, old_dist), "grad_norm": g.norm().item()}


# -- natural gradient and TRPO --------------------------------------------------------------
def _natural_step(
    policy: nn.Module,
    batch: Batch,
    *,
    max_kl: float | None,
    lr: float | None,
    cg_iters: int,
    damping: float,
    line_search: bool,
    backtrack_iters: int = 10,
    backtrack_coeff: float = 0.5,
) -> dict:
    """The natural step θ ← θ_old + Δ, Δ = η·x with x ≈ (F + κI)⁻¹g, shared by NPG and TRPO.

    η = sqrt(2δ / xᵀ(F + κI)x) for a trust region δ = ``max_kl`` (the model KL ½Δᵀ(F + κI)Δ is
    then δ), or η = ``lr``. With ``line_search``, θ_old + cᵏΔ is tried for k = 0, 1, …,
    n_bt − 1 and the first with D̄_KL ≤ δ and a positive surrogate gain is kept (TRPO);
    otherwise θ_old + Δ is taken (NPG). The arguments are already checked.
    """
    _, old_dist = _snapshot(policy, batch)
    theta0 = flat_params(policy)
    nd = _natural_direction(policy, batch, cg_iters, damping, old_dist=old_dist)
    x, xFx, xFx_u = nd["x"], nd["xFx"], nd["xFx_undamped"]
    info = {
        "cg_iters": nd["cg_iters"],
        "cg_residual": nd["cg_residual"],
        "grad_norm": nd["g"].norm().item(),
        "gFinvg": xFx,
    }

    def result(
        diag: dict,
        *,
        moved: bool,
        eta: float,
        frac: float,
        backtracks: int,
        model_eta: float,
        expected: float = 0.0,
    ) -> dict:
        # model_eta: the multiplier of x whose model KLs are reported (the taken step, or for a
        # rejected line search the full step Δ)
        return {
            **diag,
            **info,
            "step_taken": moved,
            "accepted": moved,
            "backtracks": backtracks,
            "step_size": eta * frac,
            "step_fraction": frac,
            "predicted_kl": (max_kl * frac**2 if line_search else 0.5 * eta**2 * xFx)
            if moved
            else 0.0,
            "predicted_kl_undamped": 0.5 * model_eta**2 * xFx_u,
            "expected_improvement": expected * frac if moved else 0.0,
        }

    # No step when CG found no direction (g = 0 or ‖g‖ below CG's tolerance), or, for a trust
    # region, when there is no curvature along x (the step length is then undefined).
    no_direction = not bool((x != 0).any())
    no_curvature = max_kl is not None and not (math.isfinite(xFx) and xFx > 0)
    if no_direction or no_curvature:
        return result(
            update_diagnostics(policy, batch, old_dist),
            moved=False,
            eta=0.0,
            frac=0.0,
            backtracks=backtrack_iters if line_search else 0,
            model_eta=0.0,
        )
    eta = math.sqrt(2.0 * max_kl / xFx) if max_kl is not None else lr
    full_step = eta * x
    expected = (nd["g"] @ full_step).item()  # first-order predicted surrogate improvement gᵀΔ

    if not line_search:
        candidate = theta0 + full_step
        finite = bool(torch.isfinite(candidate).all())
        if not finite and lr is not None:
            raise NonFiniteUpdateError(
                f"natural_gradient_step: the step lr·F⁻¹g is not finite (lr={lr!r}); the parameters "
                "are unchanged. Likely cause: the learning rate lr is too large."
            )
        # no step either when it is not finite (with a trust region) or below the parameters'
        # resolution
        if not finite or torch.equal(candidate, theta0):
            return result(
                update_diagnostics(policy, batch, old_dist),
                moved=False,
                eta=0.0,
                frac=0.0,
                backtracks=0,
                model_eta=0.0,
            )
        set_flat_params(policy, candidate)
        return result(
            update_diagnostics(policy, batch, old_dist),
            moved=True,
            eta=eta,
            frac=1.0,
            backtracks=0,
            model_eta=eta,
            expected=expected,
        )

    for k in range(backtrack_iters):
        frac = backtrack_coeff**k
        candidate = theta0 + frac * full_step
        if not torch.isfinite(candidate).all():
            continue
        set_flat_params(policy, candidate)
        diag = update_diagnostics(policy, batch, old_dist)
        if diag["kl"] <= max_kl and diag["surrogate_gain"] > 0:
            return result(
                diag,
                moved=True,
                eta=eta,
                frac=frac,
                backtracks=k,
                model_eta=eta * frac,
                expected=expected,
            )
    set_flat_params(policy, theta0)
    return result(
        update_diagnostics(policy, batch, old_dist),
        moved=False,
        eta=0.0,
        frac=0.0,
        backtracks=backtrack_iters,
        model_eta=eta,
    )


def natural_gradient_step(
    policy: nn.Module,
    batch: Batch,
    max_kl: float | None = None,
    *,
    lr: float | None = None,
    cg_iters: int = 10,
    damping: float = 0.0,
) -> dict:
    """θ ← θ + η·(F + κI)⁻¹g, the natural policy gradient step (κ = ``damping``).

    With ``max_kl`` = δ (trust region), η = sqrt(2δ / (gᵀ(F + κI)⁻¹g)), so the model KL
    ½Δᵀ(F + κI)Δ equals δ exactly. With ``lr`` = η instead, η is a fixed step size. F is the
    batch-weighted Fisher; the same matrix F + κI is used in CG and in the scaling, and
    gᵀ(F + κI)⁻¹g is evaluated as xᵀ(F + κI)x with x the CG solution.

    Besides :func:`update_diagnostics` the dict holds ``step_taken`` (= ``accepted``): False,
    with the parameters unchanged, when CG returned x = 0 (‖g‖ below CG's tolerance), when F
    has no curvature along x, or when θ + Δ equals θ in floating point; ``backtracks`` (always
    0); ``step_size`` η; ``predicted_kl`` ½Δᵀ(F + κI)Δ and ``predicted_kl_undamped`` ½ΔᵀFΔ of
    the step taken (0 when none was); ``gFinvg``, ``cg_iters``, ``cg_residual``, ``grad_norm``.
    With ``lr``, a non-finite θ + Δ raises :class:`NonFiniteUpdateError` before anything is
    written.
    """
    if (max_kl is None) == (lr is None):
        raise ValueError(
            "give exactly one of max_kl (trust-region radius δ) or lr (fixed step size η)"
        )
    if max_kl is not None:
        max_kl = check_positive("max_kl", max_kl)
    else:
        lr = check_positive("lr", lr)
    cg_iters = check_int("cg_iters", cg_iters)
    damping = check_non_negative("damping", damping)
    _check_batch(batch)
    return _natural_step(
        policy, batch, max_kl=max_kl, lr=lr, cg_iters=cg_iters, damping=damping, line_search=False
    )


def trpo_step(
    policy: nn.Module,
    batch: Batch,
    max_kl: float,
    *,
    cg_iters: int = 10,
    damping: float = 0.0,
    backtrack_iters: int = 10,
    backtrack_coeff: float = 0.5,
) -> dict:
    """The natural step Δ = sqrt(2δ / xᵀ(F + κI)x)·x, x ≈ (F + κI)⁻¹g, then a backtracking line search.

    Try θ_old + cᵏΔ for k = 0, 1, …, n_bt − 1 (c = ``backtrack_coeff``, n_bt =
    ``backtrack_iters``) and accept the first whose true D̄_KL = E_s[KL(π_old‖π)] is ≤ δ =
    ``max_kl`` and whose surrogate gain Ā(θ) − Ā(θ_old) is positive. If none qualifies the
    parameters are restored.

    Besides :func:`update_diagnostics` the dict holds ``accepted`` (= ``step_taken``);
    ``backtracks``: the accepted k, i.e. the number of shrinkings before the accepted step
    (n_bt when nothing was accepted, including when no step could be formed because x = 0 or
    F has no curvature along x); ``step_fraction`` cᵏ (0 when rejected); ``predicted_kl`` the
    damped model ½(cᵏΔ)ᵀ(F + κI)(cᵏΔ) = c²ᵏδ of the accepted step (0 when rejected);
    ``predicted_kl_undamped`` ½(cᵏΔ)ᵀF(cᵏΔ), the same model without κ, which is what the true
    KL approaches for small steps; for a rejected step it is that of the full step Δ (0 when no
    step could be formed); ``expected_improvement`` gᵀ(cᵏΔ), the first-order gain; and
    ``gFinvg``, ``cg_iters``, ``cg_residual``, ``grad_norm``.
    """
    max_kl = check_positive("max_kl", max_kl)
    cg_iters = check_int("cg_iters", cg_iters)
    damping = check_non_negative("damping", damping)
    backtrack_iters = check_int("backtrack_iters", backtrack_iters)
    backtrack_coeff = check_fraction("backtrack_coeff", backtrack_coeff)
    _check_batch(batch)
    return _natural_step(
        policy,
        batch,
        max_kl=max_kl,
        lr=None,
        cg_iters=cg_iters,
        damping=damping,
        line_search=True,
        backtrack_iters=backtrack_iters,
        backtrack_coeff=backtrack_coeff,
    )


# -- PPO ------------------------------------------------------------------------------------
class AdaptiveKL:
    """The adaptive KL coefficient β of the PPO paper (Schulman et al. 2017, §4).

    After each policy update with measured mean KL d = D̄_KL:
    d < d_targ/1.5 → β ← β/2;  d > 1.5·d_targ → β ← 2β;  otherwise β is unchanged.
    """

    def __init__(self, beta: float = 1.0, d_targ: float = 0.01):
        self.beta = check_non_negative("beta", beta)
        self.d_targ = check_positive("d_targ", d_targ)

    def update(self, kl: float) -> float:
        """Apply the rule for the measured KL ``kl`` and return the new β."""
        kl = check_non_negative("kl", kl)
        if kl < self.d_targ / 1.5:
            self.beta /= 2.0
        elif kl > 1.5 * self.d_targ:
            self.beta *= 2.0
        return self.beta

    def __repr__(self) -> str:
        return f"AdaptiveKL(beta={self.beta:g}, d_targ={self.d_targ:g})"


def ppo_loss(
    policy: nn.Module,
    minibatch: Batch,
    *,
    objective: str = "clip",
    clip: float = 0.2,
    beta: float = 0.0,
    old_dist: Distribution | None = None,
    ent_coef: float = 0.0,
    value_fn: nn.Module | None = None,
    vf_coef: float = 0.5,
    clip_vloss: float | None = None,
) -> tuple[torch.Tensor, dict]:
    """The PPO loss on one minibatch, to be minimised, and its statistics.

        loss = −L(θ) − c_H·E[H(π_θ(·|s))] + c_V·½E[(V(s) − V^targ)²]

    with the surrogate L chosen by ``objective``: ``"clip"``, L^CLIP = E[min(r·A,
    clip(r, 1−ε, 1+ε)·A)] (ε = ``clip``); ``"adaptive-kl"`` / ``"fixed-kl"``, L^KLPEN =
    E[r·A] − β·E_s[KL(π_old‖π_θ)] (β = ``beta``, ``old_dist`` = π_old(·|minibatch.obs));
    ``"none"``, E[r·A]. The entropy term is added when c_H = ``ent_coef`` > 0, the value term
    when ``value_fn`` is given (c_V = ``vf_coef``; V^targ = ``minibatch.returns``; with
    ``clip_vloss`` the squared error is CleanRL's max of the unclipped and the clipped one, V
    clipped to ``minibatch.values`` ± ``clip_vloss``). The advantages are used as given
    (normalise them first with :func:`pgcore.normalize_advantages` if wanted).

    The stats, measured before any step: ``approx_kl`` = E[(r − 1) − log r], ``clipfrac`` =
    E[1{|r − 1| > ε}], and with ``value_fn`` ``value_loss`` = E[(V − V^targ)²] (the plain
    weighted MSE, unclipped, without the ½).
    """
    if objective not in PPO_OBJECTIVES:
        raise ValueError(f"objective must be one of {PPO_OBJECTIVES}, got {objective!r}")
    if objective in ("adaptive-kl", "fixed-kl") and old_dist is None:
        raise ValueError(f"objective {objective!r} needs old_dist = π_old(·|minibatch.obs)")
    dist = policy.distribution(minibatch.obs)
    logr = log_ratio(policy, minibatch, dist=dist)
    r = logr.exp()
    adv, w = minibatch.advantages, minibatch.weights
    with torch.no_grad():
        stats = {
            "approx_kl": weighted_mean((r - 1.0) - logr, w).item(),
            "clipfrac": clip_fraction(r, clip, w).item(),
        }
    if objective == "clip":
        surr = clipped_surrogate(r, adv, clip, w)
    elif objective == "none":
        surr = weighted_mean(r * adv, w)
    else:
        surr = kl_penalized_surrogate(policy, minibatch, beta, old_dist, dist=dist)
    loss = -surr
    if ent_coef > 0:
        loss = loss - ent_coef * weighted_mean(dist.entropy(), w)
    if value_fn is not None:
        v = value_fn(minibatch.obs)
        target = minibatch.returns
        if v.shape != target.shape:
            raise ValueError(
                f"value_fn(obs) has shape {tuple(v.shape)} but the returns have shape "
                f"{tuple(target.shape)}; they must match"
            )
        sq = (v - target) ** 2
        err = sq
        if clip_vloss is not None:
            v_old = minibatch.values
            v_clipped = v_old + torch.clamp(v - v_old, -clip_vloss, clip_vloss)
            err = torch.maximum(sq, (v_clipped - target) ** 2)
        loss = loss + vf_coef * (0.5 * weighted_mean(err, w))
        with torch.no_grad():
            stats["value_loss"] = weighted_mean(sq, w).item()
    return loss, stats


def _lr_of(optimizer: torch.optim.Optimizer) -> str:
    lrs = sorted({g.get("lr") for g in optimizer.param_groups if "lr" in g})
    return ", ".join(f"{v!r}" for v in lrs) if lrs else "?"


def ppo_update(
    policy: nn.Module,
    batch: Batch,
    *,
    objective: str = "clip",
    clip: float = 0.2,
    beta: float | AdaptiveKL = 1.0,
    epochs: int = 10,
    minibatch_size: int | None = None,
    lr: float | None = 3e-4,
    optimizer: torch.optim.Optimizer | None = None,
    value_fn: nn.Module | None = None,
    vf_coef: float = 0.5,
    clip_vloss: float | None = None,
    ent_coef: float = 0.0,
    max_grad_norm: float | None = None,
    target_kl: float | None = None,
    normalize_advantages: bool = False,
    generator: torch.Generator | None = None,
) -> dict:
    """K epochs of minibatch Adam on the PPO loss :func:`ppo_loss` (Schulman et al. 2017).

    ``objective`` selects the surrogate maximised on each minibatch:

    * ``"clip"``: L^CLIP = E[min(r·A, clip(r, 1−ε, 1+ε)·A)] with ε = ``clip``;
    * ``"adaptive-kl"``: E[r·A] − β·E_s[KL(π_old‖π)], then β is updated once by the
      :class:`AdaptiveKL` rule with the final D̄_KL (``beta`` must be an AdaptiveKL);
    * ``"fixed-kl"``: the same penalty with a fixed β = ``beta``;
    * ``"none"``: E[r·A] with neither clipping nor penalty.

    With ``value_fn``, the loss is the CleanRL-style joint loss
    −surrogate + c_V·½E[(V(s) − V^targ)²] − c_H·E[H(π(·|s))] (c_V = ``vf_coef``, c_H =
    ``ent_coef``; value error clipped to ``clip_vloss`` around the old values if given);
    ``optimizer`` must then cover the value parameters too. Without ``optimizer`` a fresh Adam
    (η = ``lr``, eps 1e-5) is used. ``target_kl`` stops the epochs early once a minibatch's
    approx KL E[(r − 1) − log r], measured before its step, exceeds 1.5·target_kl (the
    Stable-Baselines3 rule). Advantages are normalised per minibatch with
    :func:`pgcore.normalize_advantages` when ``normalize_advantages`` is set. Minibatch order
    comes from ``torch.randperm(generator=generator)`` (no permutation when the minibatch is
    the whole batch). A ``minibatch_size`` of at least ``len(batch)`` (or None) means one
    full-batch step per epoch: rollout batches lose their reset steps, so a minibatch size
    equal to the nominal num_envs·n_steps must stay valid.

    Returns :func:`update_diagnostics` of the whole batch after the update (so ``approx_kl`` is
    E[(r − 1) − log r] over the whole batch after the last step, ``kl`` the exact D̄_KL), plus
    ``clipfrac`` (mean over the minibatches of E[1{|r − 1| > ε}] before each step),
    ``last_minibatch_approx_kl`` (the minibatch statistic the target_kl rule tests, for the last
    minibatch seen), ``epochs_run``, ``early_stopped``, ``beta`` (the β used in this update),
    ``beta_next`` (β after the adaptive rule; equal to ``beta`` when β is fixed) and, with
    ``value_fn``, ``value_loss``: E[(V − V^targ)²] (the weighted MSE, without the ½), averaged
    over the minibatch steps and measured before each step.

    If a loss, a parameter or the final KL is not finite, the parameters (policy and value),
    the optimiser's state and β are restored to their values at the call and
    :class:`NonFiniteUpdateError` is raised.
    """
    if objective not in PPO_OBJECTIVES:
        raise ValueError(f"objective must be one of {PPO_OBJECTIVES}, got {objective!r}")
    clip = check_non_negative("clip", clip)
    epochs = check_int("epochs", epochs)
    _check_batch(batch)
    n = len(batch)
    if minibatch_size is not None:
        minibatch_size = check_int("minibatch_size", minibatch_size)
    if objective == "adaptive-kl" and not isinstance(beta, AdaptiveKL):
        raise ValueError(f"objective 'adaptive-kl' needs beta=AdaptiveKL(...), got {beta!r}")
    beta_now = beta.beta if isinstance(beta, AdaptiveKL) else check_non_negative("beta", beta)
    vf_coef = check_non_negative("vf_coef", vf_coef)
    ent_coef = check_non_negative("ent_coef", ent_coef)
    if clip_vloss is not None:
        clip_vloss = check_positive("clip_vloss", clip_vloss)
    if max_grad_norm is not None:
        max_grad_norm = check_positive("max_grad_norm", max_grad_norm)
    if target_kl is not None:
        target_kl = check_positive("target_kl", target_kl)
    if optimizer is None or lr is not None:
        lr = check_positive("lr", lr)
    if not isinstance(normalize_advantages, bool):
        raise ValueError(
            f"normalize_advantages must be True or False, got {normalize_advantages!r}"
        )
    if optimizer is not None and not isinstance(optimizer, torch.optim.Optimizer):
        raise ValueError(
            f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}"
        )
    if generator is not None and not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    if value_fn is not None and batch.returns is None:
        raise ValueError("value_fn was given but batch.returns is None: there is no value target")
    if value_fn is not None and clip_vloss is not None and batch.values is None:
        raise ValueError("clip_vloss needs batch.values (the old value estimates)")

    old, old_dist = _snapshot(policy, batch)
    params: list[nn.Parameter] = list(policy.parameters())
    if value_fn is not None:
        params += list(value_fn.parameters())
    own_optimizer = optimizer is None
    if optimizer is None:
        optimizer = torch.optim.Adam(params, lr=lr, eps=1e-5)
    kl_penalty = objective in ("adaptive-kl", "fixed-kl")

    # everything a refused update must put back
    watched = {id(p): p for p in params}
    for group in optimizer.param_groups:
        watched.update({id(p): p for p in group["params"]})
    saved_params = [(p, p.detach().clone()) for p in watched.values()]
    saved_optimizer = None if own_optimizer else clone_state(optimizer.state_dict())

    def refuse(what: str) -> NonFiniteUpdateError:
        with torch.no_grad():
            for p, v in saved_params:
                p.copy_(v)
        if saved_optimizer is not None:
            optimizer.load_state_dict(saved_optimizer)
        return NonFiniteUpdateError(
            f"ppo_update: {what}; the parameters, the optimiser state and β were restored. Likely "
            f"cause: the learning rate ({_lr_of(optimizer)}) is too large for the scale of the "
            "advantages or returns."
        )

    mb = n if minibatch_size is None else min(minibatch_size, n)
    clipfracs: list[float] = []
    last_mb_kl = 0.0
    value_losses: list[float] = []
    epochs_run = 0
    stopped = False
    try:
        for epoch in range(epochs):
            order = torch.randperm(n, generator=generator) if mb < n else torch.arange(n)
            for start in range(0, n, mb):
                minibatch = batch.subset(order[start : start + mb])
                if normalize_advantages:
                    minibatch = _normalize_advantages(minibatch)
                loss, stats = ppo_loss(
                    policy,
                    minibatch,
                    objective=objective,
                    clip=clip,
                    beta=beta_now,
                    old_dist=old.distribution(minibatch.obs) if kl_penalty else None,
                    ent_coef=ent_coef,
                    value_fn=value_fn,
                    vf_coef=vf_coef,
                    clip_vloss=clip_vloss,
                )
                last_mb_kl = stats["approx_kl"]
                clipfracs.append(stats["clipfrac"])
                if target_kl is not None and last_mb_kl > 1.5 * target_kl:
                    stopped = True
                    break
                loss_value = loss.item()
                if not math.isfinite(loss_value):
                    raise refuse(f"the loss became non-finite ({loss_value}) in epoch {epoch + 1}")
                if "value_loss" in stats:
                    value_losses.append(stats["value_loss"])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if max_grad_norm is not None:
                    nn.utils.clip_grad_norm_(params, max_grad_norm, foreach=True)
                optimizer.step()
            if stopped:
                break
            epochs_run += 1
        # A gradient step leaves a non-finite parameter non-finite (inf − x is inf or NaN), so
        # one check at the end refuses the same updates as a check after every step would.
        if not all_finite(params):
            raise refuse(f"a parameter became non-finite within the {epochs_run} epoch(s) run")
        out = update_diagnostics(policy, batch, old_dist)
        if not math.isfinite(out["kl"]):
            raise refuse(
                f"the KL between the old and the new policy is {out['kl']} after the update"
            )
    except NonFiniteUpdateError:
        raise
    except BaseException:
        refuse("interrupted")
        raise

    # a KL of −1e-17 is rounding: the rule reads it as 0 (both halve β)
    beta_next = (
        beta.update(max(out["kl"], 0.0))
        if isinstance(beta, AdaptiveKL) and kl_penalty
        else beta_now
    )
    out.update(
        clipfrac=sum(clipfracs) / len(clipfracs) if clipfracs else 0.0,
        last_minibatch_approx_kl=last_mb_kl,
        epochs_run=epochs_run,
        early_stopped=stopped,
        beta=beta_now,
        beta_next=beta_next,
    )
    if value_losses:
        out["value_loss"] = sum(value_losses) / len(value_losses)
    return out


def ppo_clip_update(policy: nn.Module, batch: Batch, clip: float = 0.2, **kwargs) -> dict:
    """PPO-clip: :func:`ppo_update` with ``objective="clip"``."""
    return ppo_update(policy, batch, objective="clip", clip=clip, **kwargs)


def ppo_kl_update(policy: nn.Module, batch: Batch, beta: float | AdaptiveKL, **kwargs) -> dict:
    """PPO with a KL penalty: adaptive β if ``beta`` is an :class:`AdaptiveKL`, else fixed β."""
    objective = "adaptive-kl" if isinstance(beta, AdaptiveKL) else "fixed-kl"
    return ppo_update(policy, batch, objective=objective, beta=beta, **kwargs)


# -- dual gradient descent ------------------------------------------------------------------
def dual_gradient_descent(
    policy: nn.Module,
    batch: Batch,
    max_kl: float,
    *,
    dual_lr: float,
    iters: int = 50,
    inner_steps: int = 5,
    lr: float = 0.5,
    lam0: float = 0.0,
) -> dict:
    """Solve max_θ Ā(θ) s.t. D̄_KL(θ) ≤ δ by dual gradient descent on the Lagrangian

        𝓛(θ, β) = Ā(θ) − β·(D̄_KL(θ) − δ),   D̄_KL(θ) = E_s[KL(π_old‖π_θ)].

    Each outer iteration takes ``inner_steps`` gradient-ascent steps θ ← θ + η·∇_θ𝓛 at fixed
    β (η = ``lr``), then the dual step β ← max(0, β + η_β·(D̄_KL − δ)) with η_β = ``dual_lr``,
    starting from β = ``lam0``. Returns the traces ``beta`` (β after each dual step, also under
    its historical key ``lam``), ``kl``, ``surrogate`` (Ā(θ) − Ā(θ_old)) and ``theta`` (flat
    parameters) after each outer iteration, plus the final :func:`update_diagnostics`.
    """
    max_kl = check_positive("max_kl", max_kl)
    dual_lr = check_positive("dual_lr", dual_lr)
    iters = check_int("iters", iters)
    inner_steps = check_int("inner_steps", inner_steps)
    lr = check_positive("lr", lr)
    beta = check_non_negative("lam0", lam0)
    _check_batch(batch)

    _, old_dist = _snapshot(policy, batch)
    trace: dict[str, list] = {"lam": [], "kl": [], "surrogate": [], "theta": []}
    for _ in range(iters):
        for _ in range(inner_steps):
            dist = policy.distribution(batch.obs)
            r = (dist.log_prob(batch.actions) - batch.logp_old).exp()
            kl = mean_kl(old_dist, dist, batch.weights)
            lagrangian = weighted_mean(r * batch.advantages, batch.weights) - beta * (kl - max_kl)
            g = flat_grad(lagrangian, policy)
            set_flat_params(policy, flat_params(policy) + lr * g)
        diag = update_diagnostics(policy, batch, old_dist)
        beta = max(0.0, beta + dual_lr * (diag["kl"] - max_kl))
        trace["lam"].append(beta)
        trace["kl"].append(diag["kl"])
        trace["surrogate"].append(diag["surrogate_gain"])
        trace["theta"].append(flat_params(policy))
    return {**update_diagnostics(policy, batch, old_dist), **trace, "beta": trace["lam"]}
