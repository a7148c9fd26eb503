"""Policy updates. Each takes ``(policy, batch, ...)``, moves the policy in place, returns diagnostics.

The same functions move a tabular policy on an exact batch and train a neural policy on
rollouts. ``policy`` must be the policy that produced ``batch`` (π_old) when called: its
current distribution is snapshotted as π_old for the KL terms.

Every update returns a dict with at least

* ``kl``: the true mean KL, E_s[KL(π_old(·|s) ‖ π_new(·|s))], after the update (the direction
  TRPO constrains),
* ``surrogate_gain``: L(θ_new) − L(θ_old) = E[r·A] − E[A],
* ``entropy``: the mean entropy of π_new,

and, where it applies, ``clipfrac`` and ``approx_kl`` (PPO), ``beta`` (PPO-KL), and
``accepted``/``backtracks`` (TRPO). A refused update (bad argument) raises ``ValueError``
before anything changes.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn
from torch.distributions import Distribution

from .batch import Batch, weighted_mean
from .divergences import mean_kl
from .fisher import (
    conjugate_gradient,
    fisher_vector_product,
    flat_grad,
    flat_params,
    set_flat_params,
)
from .objectives import clip_fraction, clipped_surrogate, surrogate

__all__ = [
    "AdaptiveKL",
    "vpg_step",
    "natural_gradient_step",
    "trpo_step",
    "ppo_update",
    "ppo_clip_update",
    "ppo_kl_update",
    "dual_gradient_descent",
    "PPO_OBJECTIVES",
]

PPO_OBJECTIVES = ("clip", "adaptive-kl", "fixed-kl", "none")


# -- argument checks (all run before any parameter changes) ---------------------------------
def _positive(name: str, value) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a positive, finite number, got {value!r}") from exc
    if not math.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be a positive, finite number, got {value!r}")
    return v


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _non_negative(name: str, value) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a finite number ≥ 0, got {value!r}") from exc
    if not math.isfinite(v) or v < 0:
        raise ValueError(f"{name} must be a finite number ≥ 0, got {value!r}")
    return v


def _check_batch(batch: Batch) -> None:
    if len(batch) == 0:
        raise ValueError("batch is empty: an update needs at least one (state, action) pair")
    if not torch.isfinite(batch.advantages).all():
        bad = int((~torch.isfinite(batch.advantages)).sum())
        raise ValueError(f"batch.advantages has {bad} non-finite entries (NaN or inf)")
    if not torch.isfinite(batch.logp_old).all():
        raise ValueError("batch.logp_old has non-finite entries")
    if batch.weights.sum() <= 0:
        raise ValueError("batch.weights sum to zero: there is nothing to average over")


# -- shared pieces --------------------------------------------------------------------------
def _snapshot(policy: nn.Module, batch: Batch) -> tuple[nn.Module, Distribution]:
    """A frozen copy of π_old and its distribution on the batch's observations."""
    old = copy.deepcopy(policy)
    for p in old.parameters():
        p.requires_grad_(False)
    with torch.no_grad():
        old_dist = old.distribution(batch.obs)
    return old, old_dist


@torch.no_grad()
def _diagnostics(policy: nn.Module, batch: Batch, old_dist: Distribution) -> dict:
    """kl, surrogate_gain and entropy of the current policy against π_old on ``batch``."""
    dist = policy.distribution(batch.obs)
    r = (dist.log_prob(batch.actions) - batch.logp_old).exp()
    gain = weighted_mean(r * batch.advantages, batch.weights) - weighted_mean(batch.advantages, batch.weights)
    return {
        "kl": mean_kl(old_dist, dist, batch.weights).item(),
        "surrogate_gain": gain.item(),
        "entropy": weighted_mean(dist.entropy(), batch.weights).item(),
    }


def _natural_direction(policy: nn.Module, batch: Batch, cg_iters: int, damping: float) -> dict:
    """g = ∇L(θ), x ≈ F⁻¹g by conjugate gradient, and xᵀFx (≈ gᵀF⁻¹g)."""
    g = flat_grad(surrogate(policy, batch), policy)
    fvp = fisher_vector_product(policy, batch.obs, batch.weights, damping)
    residuals: list[float] = []
    x = conjugate_gradient(fvp, g, iters=cg_iters, callback=lambda k, x, res: residuals.append(res))
    xFx = (x @ fvp(x)).item()
    return {"g": g, "x": x, "xFx": xFx, "cg_iters": len(residuals),
            "cg_residual": residuals[-1] if residuals else g.norm().item()}


# -- vanilla policy gradient ----------------------------------------------------------------
def vpg_step(policy: nn.Module, batch: Batch, lr: float) -> dict:
    """θ ← θ + lr·g with g = ∇_θ E[r(θ)·A] at θ_old = E[∇log π(a|s)·A]: plain gradient ascent."""
    lr = _positive("lr", lr)
    _check_batch(batch)
    _, old_dist = _snapshot(policy, batch)
    g = flat_grad(surrogate(policy, batch), policy)
    set_flat_params(policy, flat_params(policy) + lr * g)
    return {**_diagnostics(policy, batch, old_dist), "grad_norm": g.norm().item()}


# -- natural gradient and TRPO --------------------------------------------------------------
def natural_gradient_step(
    policy: nn.Module,
    batch: Batch,
    max_kl: float | None = None,
    *,
    lr: float | None = None,
    cg_iters: int = 10,
    damping: float = 0.0,
) -> dict:
    """θ ← θ + α·F⁻¹g, the natural policy gradient step.

    With ``max_kl`` = ε (trust region), α = sqrt(2ε / (gᵀF⁻¹g)), so the predicted KL
    ½ΔᵀFΔ equals ε exactly. With ``lr`` = η instead, α = η (a fixed learning rate).
    F is the batch-weighted Fisher plus ``damping``·I, the same matrix in CG and in the
    scaling, and gᵀF⁻¹g is evaluated as xᵀFx with x the CG solution. If the direction is
    zero or F has no curvature along it, no step is taken (``step_taken`` is False).
    """
    if (max_kl is None) == (lr is None):
        raise ValueError("give exactly one of max_kl (trust-region size ε) or lr (fixed step size)")
    if max_kl is not None:
        max_kl = _positive("max_kl", max_kl)
    else:
        lr = _positive("lr", lr)
    cg_iters = _positive_int("cg_iters", cg_iters)
    damping = _non_negative("damping", damping)
    _check_batch(batch)

    _, old_dist = _snapshot(policy, batch)
    theta0 = flat_params(policy)
    nd = _natural_direction(policy, batch, cg_iters, damping)
    info = {"cg_iters": nd["cg_iters"], "cg_residual": nd["cg_residual"], "grad_norm": nd["g"].norm().item(),
            "gFinvg": nd["xFx"]}
    if max_kl is not None:
        if not (math.isfinite(nd["xFx"]) and nd["xFx"] > 0):
            return {**_diagnostics(policy, batch, old_dist), **info, "step_taken": False,
                    "step_size": 0.0, "predicted_kl": 0.0}
        alpha = math.sqrt(2.0 * max_kl / nd["xFx"])
    else:
        alpha = lr
    set_flat_params(policy, theta0 + alpha * nd["x"])
    return {**_diagnostics(policy, batch, old_dist), **info, "step_taken": True, "step_size": alpha,
            "predicted_kl": 0.5 * alpha**2 * nd["xFx"]}


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
    """The natural step Δ = sqrt(2δ/(gᵀF⁻¹g))·F⁻¹g, then a backtracking line search.

    Try θ_old + cᵏΔ for k = 0, 1, …, ``backtrack_iters``−1 (c = ``backtrack_coeff``) and accept
    the first whose true mean KL(π_old‖π) is ≤ δ = ``max_kl`` and whose surrogate
    improvement L(θ) − L(θ_old) is positive. If none qualifies the parameters are restored
    and ``accepted`` is False. ``backtracks`` is the accepted k (or ``backtrack_iters``).
    """
    max_kl = _positive("max_kl", max_kl)
    cg_iters = _positive_int("cg_iters", cg_iters)
    damping = _non_negative("damping", damping)
    backtrack_iters = _positive_int("backtrack_iters", backtrack_iters)
    backtrack_coeff = float(backtrack_coeff)
    if not 0.0 < backtrack_coeff < 1.0:
        raise ValueError(f"backtrack_coeff must be in (0, 1), got {backtrack_coeff!r}")
    _check_batch(batch)

    _, old_dist = _snapshot(policy, batch)
    theta0 = flat_params(policy)
    nd = _natural_direction(policy, batch, cg_iters, damping)
    info = {"cg_iters": nd["cg_iters"], "cg_residual": nd["cg_residual"], "grad_norm": nd["g"].norm().item(),
            "gFinvg": nd["xFx"]}
    if not (math.isfinite(nd["xFx"]) and nd["xFx"] > 0):
        return {**_diagnostics(policy, batch, old_dist), **info, "accepted": False,
                "backtracks": backtrack_iters, "step_fraction": 0.0, "predicted_kl": 0.0}
    full_step = math.sqrt(2.0 * max_kl / nd["xFx"]) * nd["x"]
    expected = (nd["g"] @ full_step).item()  # first-order predicted surrogate improvement
    for k in range(backtrack_iters):
        frac = backtrack_coeff**k
        set_flat_params(policy, theta0 + frac * full_step)
        diag = _diagnostics(policy, batch, old_dist)
        if diag["kl"] <= max_kl and diag["surrogate_gain"] > 0:
            return {**diag, **info, "accepted": True, "backtracks": k, "step_fraction": frac,
                    "predicted_kl": max_kl * frac**2, "expected_improvement": expected * frac}
    set_flat_params(policy, theta0)
    return {**_diagnostics(policy, batch, old_dist), **info, "accepted": False,
            "backtracks": backtrack_iters, "step_fraction": 0.0, "predicted_kl": 0.0,
            "expected_improvement": 0.0}


# -- PPO ------------------------------------------------------------------------------------
class AdaptiveKL:
    """The adaptive KL coefficient of the PPO paper (Schulman et al. 2017, §4).

    After each policy update with measured mean KL d:
    d < d_targ/1.5 → β ← β/2;  d > 1.5·d_targ → β ← 2β;  otherwise β is unchanged.
    """

    def __init__(self, beta: float = 1.0, d_targ: float = 0.01):
        self.beta = _non_negative("beta", beta)
        self.d_targ = _positive("d_targ", d_targ)

    def update(self, kl: float) -> float:
        """Apply the rule for the measured KL ``kl`` and return the new β."""
        kl = _non_negative("kl", kl)
        if kl < self.d_targ / 1.5:
            self.beta /= 2.0
        elif kl > 1.5 * self.d_targ:
            self.beta *= 2.0
        return self.beta

    def __repr__(self) -> str:
        return f"AdaptiveKL(beta={self.beta:g}, d_targ={self.d_targ:g})"


def _normalize(adv: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    if adv.numel() < 2:
        return adv
    mean = weighted_mean(adv, w)
    std = weighted_mean((adv - mean) ** 2, w).sqrt()
    return (adv - mean) / (std + 1e-8)


def ppo_update(
    policy: nn.Module,
    batch: Batch,
    *,
    objective: str = "clip",
    clip: float = 0.2,
    beta: float | AdaptiveKL = 1.0,
    epochs: int = 10,
    minibatch_size: int | None = None,
    lr: float = 3e-4,
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
    """K epochs of minibatch Adam on a PPO surrogate (Schulman et al. 2017).

    ``objective`` selects the surrogate maximised on each minibatch:

    * ``"clip"``: L^CLIP = E[min(r·A, clip(r, 1−ε, 1+ε)·A)] with ε = ``clip``;
    * ``"adaptive-kl"``: E[r·A] − β·E_s[KL(π_old‖π)], then β is updated once by the
      :class:`AdaptiveKL` rule with the final mean KL (``beta`` must be an AdaptiveKL);
    * ``"fixed-kl"``: the same penalty with a fixed β = ``beta``;
    * ``"none"``: E[r·A] with neither clipping nor penalty.

    With ``value_fn``, the loss is the CleanRL-style joint loss
    −surrogate + vf_coef·½E[(V(s) − R)²] − ent_coef·E[H(π(·|s))] (value error clipped to
    ``clip_vloss`` around the old values if given); ``optimizer`` must then cover the value
    parameters too. ``target_kl`` stops the epochs early once a minibatch's approx_kl
    E[(r − 1) − log r] exceeds 1.5·target_kl (the Stable-Baselines3 rule). Advantages are
    normalised per minibatch when ``normalize_advantages`` is set. Minibatch order comes from
    ``torch.randperm(generator=generator)``.
    """
    if objective not in PPO_OBJECTIVES:
        raise ValueError(f"objective must be one of {PPO_OBJECTIVES}, got {objective!r}")
    clip = _non_negative("clip", clip)
    epochs = _positive_int("epochs", epochs)
    if minibatch_size is not None:
        minibatch_size = _positive_int("minibatch_size", minibatch_size)
    if objective == "adaptive-kl" and not isinstance(beta, AdaptiveKL):
        raise ValueError(f"objective 'adaptive-kl' needs beta=AdaptiveKL(...), got {beta!r}")
    beta_now = beta.beta if isinstance(beta, AdaptiveKL) else _non_negative("beta", beta)
    vf_coef = _non_negative("vf_coef", vf_coef)
    ent_coef = _non_negative("ent_coef", ent_coef)
    if clip_vloss is not None:
        clip_vloss = _positive("clip_vloss", clip_vloss)
    if max_grad_norm is not None:
        max_grad_norm = _positive("max_grad_norm", max_grad_norm)
    if target_kl is not None:
        target_kl = _positive("target_kl", target_kl)
    if optimizer is None:
        lr = _positive("lr", lr)
    _check_batch(batch)
    if value_fn is not None and batch.returns is None:
        raise ValueError("value_fn was given but batch.returns is None: there is no value target")
    if value_fn is not None and clip_vloss is not None and batch.values is None:
        raise ValueError("clip_vloss needs batch.values (the old value estimates)")

    old, old_dist = _snapshot(policy, batch)
    params: list[nn.Parameter] = list(policy.parameters())
    if value_fn is not None:
        params += list(value_fn.parameters())
    if optimizer is None:
        optimizer = torch.optim.Adam(params, lr=lr, eps=1e-5)
    kl_penalty = objective in ("adaptive-kl", "fixed-kl")

    n = len(batch)
    mb = n if minibatch_size is None else min(minibatch_size, n)
    clipfracs: list[float] = []
    approx_kl = 0.0
    value_losses: list[float] = []
    epochs_run = 0
    stopped = False
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator) if mb < n else torch.arange(n)
        for start in range(0, n, mb):
            idx = order[start : start + mb]
            obs, w = batch.obs[idx], batch.weights[idx]
            dist = policy.distribution(obs)
            logr = dist.log_prob(batch.actions[idx]) - batch.logp_old[idx]
            r = logr.exp()
            adv = batch.advantages[idx]
            if normalize_advantages:
                adv = _normalize(adv, w)
            with torch.no_grad():
                approx_kl = weighted_mean((r - 1.0) - logr, w).item()
                clipfracs.append(clip_fraction(r, clip, w).item())
            if target_kl is not None and approx_kl > 1.5 * target_kl:
                stopped = True
                break
            if objective == "clip":
                objective_value = clipped_surrogate(r, adv, clip, w)
            else:
                objective_value = weighted_mean(r * adv, w)
            if kl_penalty:
                objective_value = objective_value - beta_now * mean_kl(old.distribution(obs), dist, w)
            loss = -objective_value
            if ent_coef > 0:
                loss = loss - ent_coef * weighted_mean(dist.entropy(), w)
            if value_fn is not None:
                v = value_fn(obs)
                target = batch.returns[idx]
                err = (v - target) ** 2
                if clip_vloss is not None:
                    v_old = batch.values[idx]
                    v_clipped = v_old + torch.clamp(v - v_old, -clip_vloss, clip_vloss)
                    err = torch.maximum(err, (v_clipped - target) ** 2)
                value_loss = 0.5 * weighted_mean(err, w)
                value_losses.append(value_loss.item())
                loss = loss + vf_coef * value_loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if max_grad_norm is not None:
                nn.utils.clip_grad_norm_(params, max_grad_norm)
            optimizer.step()
        if stopped:
            break
        epochs_run += 1

    out = _diagnostics(policy, batch, old_dist)
    out.update(
        clipfrac=sum(clipfracs) / len(clipfracs) if clipfracs else 0.0,
        approx_kl=approx_kl,
        epochs_run=epochs_run,
        early_stopped=stopped,
        beta=beta_now,
    )
    if value_losses:
        out["value_loss"] = sum(value_losses) / len(value_losses)
    if isinstance(beta, AdaptiveKL) and kl_penalty:
        out["beta"] = beta.update(out["kl"])
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
    """Solve max_θ L(θ) s.t. E_s[KL(π_old‖π_θ)] ≤ ε by dual gradient descent on the Lagrangian

        𝓛(θ, λ) = L(θ) − λ·(E_s[KL(π_old‖π_θ)] − ε).

    Each outer iteration takes ``inner_steps`` gradient-ascent steps θ ← θ + lr·∇_θ𝓛 at fixed
    λ, then the dual step λ ← max(0, λ + dual_lr·(KL − ε)). Returns the traces ``lam``,
    ``kl``, ``surrogate`` (L(θ) − L(θ_old)) and ``theta`` (flat parameters) after each outer
    iteration, plus the final diagnostics.
    """
    max_kl = _positive("max_kl", max_kl)
    dual_lr = _positive("dual_lr", dual_lr)
    iters = _positive_int("iters", iters)
    inner_steps = _positive_int("inner_steps", inner_steps)
    lr = _positive("lr", lr)
    lam = _non_negative("lam0", lam0)
    _check_batch(batch)

    _, old_dist = _snapshot(policy, batch)
    base = weighted_mean(batch.advantages, batch.weights).item()
    trace: dict[str, list] = {"lam": [], "kl": [], "surrogate": [], "theta": []}
    for _ in range(iters):
        for _ in range(inner_steps):
            dist = policy.distribution(batch.obs)
            r = (dist.log_prob(batch.actions) - batch.logp_old).exp()
            kl = mean_kl(old_dist, dist, batch.weights)
            lagrangian = weighted_mean(r * batch.advantages, batch.weights) - lam * (kl - max_kl)
            g = flat_grad(lagrangian, policy)
            set_flat_params(policy, flat_params(policy) + lr * g)
        with torch.no_grad():
            dist = policy.distribution(batch.obs)
            kl_now = mean_kl(old_dist, dist, batch.weights).item()
            surr = weighted_mean(
                (dist.log_prob(batch.actions) - batch.logp_old).exp() * batch.advantages, batch.weights
            ).item()
        lam = max(0.0, lam + dual_lr * (kl_now - max_kl))
        trace["lam"].append(lam)
        trace["kl"].append(kl_now)
        trace["surrogate"].append(surr - base)
        trace["theta"].append(flat_params(policy))
    return {**_diagnostics(policy, batch, old_dist), **trace}
