"""Chapter 5 (PPO) explorables: the clip ε and the KL penalty (β, d_targ), on the exact world.

Both widgets move a tabular softmax policy on a small random MDP with pgcore's own
:func:`~pgcore.updates.ppo_update` on the exact batch (:func:`~pgcore.batch.exact_batch`),
so every number is free of sampling noise:

* :func:`clip_explorable` (sliders ε and K): one L^CLIP term against r for A > 0 and A < 0,
  the ratios r(s, a) after K epochs of PPO-clip, and the true mean KL(π_old‖π) after each
  epoch. Clipping zeroes the gradient of a clipped term, but it does not stop the ratios
  (or the KL) from moving on.
* :func:`beta_explorable` (sliders d_targ and fixed β): PPO with the adaptive KL penalty
  against a fixed penalty, iteration by iteration: β, the KL of each update and J(π).

The runs are cached (:func:`clip_run`, :func:`kl_penalty_run`), so a redraw only plots.
"""

from __future__ import annotations

from functools import lru_cache

import matplotlib.pyplot as plt
import numpy as np
import torch

from pgcore.batch import exact_batch
from pgcore.objectives import ratio
from pgcore.policies import TabularSoftmaxPolicy
from pgcore.tabular import TabularMDP, random_mdp
from pgcore.updates import AdaptiveKL, ppo_update, update_diagnostics
from pgcore.widgets import Explorable, Slider

__all__ = [
    "EXACT_WORLD",
    "exact_problem",
    "clip_term",
    "clip_run",
    "kl_penalty_run",
    "clip_explorable",
    "beta_explorable",
    "CLIP_VALUES",
    "EPOCH_VALUES",
    "D_TARG_VALUES",
    "BETA_VALUES",
]

#: The exact world of chapter 5: a random MDP and the initial policy's logit scale and seed.
EXACT_WORLD = {"n_states": 6, "n_actions": 3, "gamma": 0.9, "seed": 5, "logit_scale": 0.5}
#: Adam's step size for the tabular logits in both widgets.
TABULAR_LR = 0.05

CLIP_VALUES = (0.1, 0.2, 0.3, 0.5)
EPOCH_VALUES = (1, 3, 10, 30)
D_TARG_VALUES = (0.003, 0.01, 0.03)
BETA_VALUES = (0.3, 1.0, 3.0, 10.0)


def exact_problem() -> tuple[TabularMDP, TabularSoftmaxPolicy]:
    """The chapter's exact world: (MDP, a fresh copy of the initial policy π_old)."""
    w = EXACT_WORLD
    mdp = random_mdp(w["n_states"], w["n_actions"], gamma=w["gamma"], seed=w["seed"])
    gen = torch.Generator().manual_seed(w["seed"])
    logits = w["logit_scale"] * torch.randn(
        w["n_states"], w["n_actions"], generator=gen, dtype=torch.float64
    )
    return mdp, TabularSoftmaxPolicy(w["n_states"], w["n_actions"], logits=logits)


def clip_term(r, adv: float, clip: float) -> np.ndarray:
    """One L^CLIP term, min(r·A, clip(r, 1−ε, 1+ε)·A), for an array of ratios r."""
    r = np.asarray(r, dtype=float)
    return np.minimum(r * adv, np.clip(r, 1.0 - clip, 1.0 + clip) * adv)


@lru_cache(maxsize=64)
def clip_run(
    clip: float,
    max_epochs: int = max(EPOCH_VALUES),
    lr: float = TABULAR_LR,
    objective: str = "clip",
) -> dict:
    """K = 0 … ``max_epochs`` epochs of PPO-clip on the exact batch of the initial policy.

    Each epoch is one full-batch Adam step on L^CLIP (advantages normalised, as in
    training) through :func:`pgcore.updates.ppo_update`; the optimiser and π_old (the
    batch's ``logp_old``) are shared by all epochs, so stopping after K epochs gives the
    same policy as ``ppo_update(..., epochs=K)``. Returns arrays over k = 0 … max_epochs:
    ``kl`` (true mean KL(π_old‖π_k)), ``max_ratio``, ``min_ratio``, ``clipfrac`` (weighted
    fraction with |r − 1| > ε), ``J`` (true performance), ``surrogate`` (E[r·A] − E[A]),
    and ``ratios`` [k, pairs] with the pairs' ``adv`` and ``weights``. With
    ``objective="none"`` the same loop maximises E[r·A] unclipped (``clip`` then only sets
    the band that ``clipfrac`` counts).
    """
    mdp, policy = exact_problem()
    batch = exact_batch(mdp, policy)
    with torch.no_grad():
        old_dist = policy.distribution(batch.obs)
    opt = torch.optim.Adam(policy.parameters(), lr=lr, eps=1e-5)
    rec: dict[str, list] = {
        k: [] for k in ("kl", "max_ratio", "min_ratio", "clipfrac", "J", "surrogate", "ratios")
    }

    def record() -> None:
        diag = update_diagnostics(policy, batch, old_dist, clip=clip)
        with torch.no_grad():
            r = ratio(policy, batch)
            rec["kl"].append(diag["kl"])
            rec["max_ratio"].append(diag["ratio_max"])
            rec["min_ratio"].append(diag["ratio_min"])
            rec["clipfrac"].append(diag["clipfrac"])
            rec["J"].append(float(mdp.performance(policy.probs())))
            rec["surrogate"].append(float((batch.weights * r * batch.advantages).sum()))
            rec["ratios"].append(r.numpy().copy())

    record()
    for _ in range(max_epochs):
        ppo_update(
            policy,
            batch,
            objective=objective,
            clip=clip,
            epochs=1,
            optimizer=opt,
            normalize_advantages=True,
        )
        record()
    out = {k: np.asarray(v) for k, v in rec.items()}
    out["adv"] = batch.advantages.numpy().copy()
    out["weights"] = batch.weights.numpy().copy()
    out["J_old"] = out["J"][0]
    return out


@lru_cache(maxsize=64)
def kl_penalty_run(
    mode: str,
    value: float,
    iters: int = 20,
    epochs: int = 10,
    lr: float = TABULAR_LR,
    beta0: float = 1.0,
) -> dict:
    """``iters`` iterations of PPO with a KL penalty on the exact world.

    ``mode`` is ``"adaptive"`` (``value`` = d_targ, β starts at ``beta0`` and follows
    :class:`~pgcore.updates.AdaptiveKL`) or ``"fixed"`` (``value`` = β). Each iteration
    builds the exact batch of the current policy and runs ``epochs`` full-batch Adam steps
    of :func:`~pgcore.updates.ppo_update` (advantages normalised). Returns arrays:
    ``beta`` (the β used in iteration i, length iters), ``beta_next`` (β after the rule),
    ``kl`` (true mean KL(π_old‖π_new) of iteration i) and ``J`` (J before iteration 0 and
    after each iteration, length iters + 1), plus ``J_star``, the optimal performance.
    """
    if mode not in ("adaptive", "fixed"):
        raise ValueError(f"mode must be 'adaptive' or 'fixed', got {mode!r}")
    mdp, policy = exact_problem()
    coef: float | AdaptiveKL = AdaptiveKL(beta0, value) if mode == "adaptive" else float(value)
    betas, betas_next, kls, Js = [], [], [], [float(mdp.performance(policy.probs().detach()))]
    for _ in range(iters):
        batch = exact_batch(mdp, policy)
        betas.append(coef.beta if isinstance(coef, AdaptiveKL) else coef)
        info = ppo_update(
            policy,
            batch,
            objective="adaptive-kl" if mode == "adaptive" else "fixed-kl",
            beta=coef,
            epochs=epochs,
            lr=lr,
            normalize_advantages=True,
        )
        betas_next.append(info["beta_next"])
        kls.append(info["kl"])
        Js.append(float(mdp.performance(policy.probs().detach())))
    return {
        "beta": np.asarray(betas),
        "beta_next": np.asarray(betas_next),
        "kl": np.asarray(kls),
        "J": np.asarray(Js),
        "J_star": optimal_performance(mdp),
    }


def optimal_performance(mdp: TabularMDP, iters: int = 2000) -> float:
    """J* by value iteration (to convergence within 1e-12)."""
    V = torch.zeros(mdp.n_states, dtype=torch.float64)
    for _ in range(iters):
        Q = mdp.R + mdp.gamma * torch.einsum("sat,t->sa", mdp.P, V)
        V_new = Q.max(-1).values
        if (V_new - V).abs().max() < 1e-12:
            V = V_new
            break
        V = V_new
    return float(mdp.mu0 @ V)


# -- drawing --------------------------------------------------------------------------------
def _draw_clip_panel(ax, clip: float) -> None:
    r = np.linspace(0.0, 2.0, 401)
    ax.axvspan(1 - clip, 1 + clip, color="0.9", zorder=0, label="[1−ε, 1+ε]")
    ax.plot(r, r, ls=":", color="0.5", lw=1)
    ax.plot(r, -r, ls=":", color="0.5", lw=1, label="r·A (unclipped)")
    ax.plot(r, clip_term(r, 1.0, clip), color="C0", lw=2, label="A = +1")
    ax.plot(r, clip_term(r, -1.0, clip), color="C3", lw=2, label="A = −1")
    ax.set_xlabel("ratio r = π(a|s) / π_old(a|s)")
    ax.set_ylabel("min(r·A, clip(r, 1−ε, 1+ε)·A)")
    ax.set_title(f"one term of $L^{{\\rm CLIP}}$, ε = {clip:g}")
    ax.set_xlim(0, 2)
    ax.legend(loc="lower left", fontsize=7)


def _draw_clip(clip: float, epochs: int) -> plt.Figure:
    run = clip_run(clip)
    fig, axes = plt.subplots(1, 3, figsize=(10.5, 3.3))
    _draw_clip_panel(axes[0], clip)

    ax = axes[1]
    r, adv, w = run["ratios"][epochs], run["adv"], run["weights"]
    size = 15 + 400 * w / w.max()
    out = np.abs(r - 1) > clip
    ax.axhspan(1 - clip, 1 + clip, color="0.9", zorder=0)
    ax.scatter(adv[~out], r[~out], s=size[~out], color="C0", alpha=0.7, label="|r − 1| ≤ ε")
    ax.scatter(adv[out], r[out], s=size[out], color="C1", alpha=0.8, label="|r − 1| > ε")
    ax.axhline(1.0, color="0.4", lw=0.8)
    ax.axvline(0.0, color="0.4", lw=0.8)
    ax.set_ylim(0, max(2.0, 1.05 * float(run["max_ratio"].max())))
    ax.set_xlabel("exact advantage A(s, a)")
    ax.set_ylabel(f"ratio r(s, a) after K = {epochs} epochs")
    ax.set_title(f"max r = {run['max_ratio'][epochs]:.2f}, min r = {run['min_ratio'][epochs]:.2f}")
    ax.legend(loc="upper left", fontsize=7)

    ax = axes[2]
    k = np.arange(len(run["kl"]))
    for c in CLIP_VALUES:
        other = clip_run(c)
        ax.plot(
            k,
            other["kl"],
            color="0.75" if c != clip else "C0",
            lw=1 if c != clip else 2,
            label=None if c != clip else f"ε = {clip:g}",
        )
    ax.plot([epochs], [run["kl"][epochs]], "o", color="C1", label=f"after K = {epochs}")
    ax.set_yscale("symlog", linthresh=1e-4)
    ax.set_xlabel("epoch k (full-batch Adam steps)")
    ax.set_ylabel("true mean KL(π_old ‖ π_k)")
    ax.set_title(f"KL after K epochs = {run['kl'][epochs]:.3g}  (grey: other ε)")
    ax.legend(loc="upper left", fontsize=7)
    fig.subplots_adjust(wspace=0.38, left=0.06, right=0.99, bottom=0.16, top=0.9)
    return fig


def clip_explorable() -> Explorable:
    """Widget (a): the clip ε and the number of epochs K."""
    return Explorable(
        draw=_draw_clip,
        sliders=[
            Slider("clip", "clip ε", CLIP_VALUES, default=0.2, fmt="{:g}"),
            Slider("epochs", "epochs K", EPOCH_VALUES, default=10, fmt="{:d}"),
        ],
        title="PPO-clip on an exact MDP: the clipped objective, the ratios after K epochs, and the true KL",
    )


def _draw_beta(d_targ: float, beta: float) -> plt.Figure:
    ad = kl_penalty_run("adaptive", d_targ)
    fx = kl_penalty_run("fixed", beta)
    it = np.arange(len(ad["kl"]))
    fig, axes = plt.subplots(1, 3, figsize=(10.5, 3.3))
    ax = axes[0]
    ax.step(it, ad["beta"], where="post", color="C0", lw=2, label=f"adaptive (d_targ = {d_targ:g})")
    ax.step(it, fx["beta"], where="post", color="C3", lw=2, ls="--", label=f"fixed β = {beta:g}")
    ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel("penalty coefficient β")
    ax.set_title("β used in each iteration")
    ax.legend(fontsize=7)

    ax = axes[1]
    ax.axhspan(d_targ / 1.5, 1.5 * d_targ, color="C0", alpha=0.15, label="[d_targ/1.5, 1.5·d_targ]")
    ax.plot(it, ad["kl"], "o-", ms=3, color="C0", label="adaptive β")
    ax.plot(it, fx["kl"], "s--", ms=3, color="C3", label="fixed β")
    ax.set_yscale("log")
    ax.set_ylim(1e-6, 1.0)
    ax.set_xlabel("iteration")
    ax.set_ylabel("true mean KL(π_old ‖ π_new)")
    ax.set_title("KL of each update")
    ax.legend(fontsize=7)

    ax = axes[2]
    ax.axhline(ad["J_star"], color="0.4", lw=1, ls=":", label="optimal J*")
    ax.plot(np.arange(len(ad["J"])), ad["J"], color="C0", lw=2, label="adaptive β")
    ax.plot(np.arange(len(fx["J"])), fx["J"], color="C3", lw=2, ls="--", label="fixed β")
    ax.set_xlabel("iteration")
    ax.set_ylabel("performance J(π)")
    ax.set_title("the policy's return")
    ax.legend(fontsize=7)
    fig.subplots_adjust(wspace=0.38, left=0.06, right=0.99, bottom=0.16, top=0.9)
    return fig


def beta_explorable() -> Explorable:
    """Widget (b): d_targ of the adaptive penalty against a fixed β."""
    return Explorable(
        draw=_draw_beta,
        sliders=[
            Slider("d_targ", "d_targ", D_TARG_VALUES, default=0.01, fmt="{:g}"),
            Slider("beta", "fixed β", BETA_VALUES, default=1.0, fmt="{:g}"),
        ],
        title="PPO with a KL penalty on an exact MDP: adaptive β (d_targ) against fixed β",
    )
