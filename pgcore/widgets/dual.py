"""Chapter 2's explorable: dual gradient descent on the KL-constrained surrogate.

On the three-armed bandit (one state, so a policy is a point on the probability simplex),
:func:`pgcore.updates.dual_gradient_descent` solves

    max_θ' Ā(θ')  s.t.  D̄_KL(θ') = KL(π_old ‖ π_θ') ≤ δ

by alternating a few gradient-ascent steps on the Lagrangian 𝓛(θ', β) = Ā(θ') − β(D̄_KL − δ)
with the dual step β ← max(0, β + η_β(D̄_KL − δ)). Sliders set the radius δ and the dual step
η_β; the figure shows the β trace, the KL trace against δ, and the policy's path on the simplex
with the KL ball {p : KL(π_old‖p) = δ}. Every grid point is one short run, precomputed.

The Python names keep their historical spelling: ``eps`` is δ, ``dual_lr`` is η_β and ``lam``
is β (chapter 2 and the tests call them so).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from ..batch import exact_batch
from ..divergences import kl_categorical
from ..plots import draw_simplex, simplex_xy
from ..policies import TabularSoftmaxPolicy
from ..tabular import three_armed_bandit
from ..updates import dual_gradient_descent
from . import Explorable, Slider, one_thread, pick_nearest, simplex_grid

__all__ = [
    "DualRun",
    "run_dual",
    "precompute_dual",
    "draw_dual",
    "dual_explorable",
    "EPSILONS",
    "DUAL_STEPS",
    "START",
]

#: The sliders' grids: the KL radius δ (``EPSILONS``) and the dual step size η_β.
EPSILONS = (0.005, 0.01, 0.02, 0.05, 0.1)
DUAL_STEPS = (1.0, 3.0, 10.0, 30.0)
#: π_old on the bandit with rewards (1, 0.6, 0): most mass on the worst arm.
START = (0.2, 0.3, 0.5)


@dataclass
class DualRun:
    """The traces of one run: radius δ (``eps``), dual step η_β (``dual_lr``), β after each dual
    step (``lam``), D̄_KL (``kl``) and the surrogate gain. ``probs`` has one row per outer
    iteration, starting at π_old."""

    eps: float
    dual_lr: float
    lam: np.ndarray
    kl: np.ndarray
    surrogate: np.ndarray
    probs: np.ndarray
    diverged: bool

    @property
    def final_kl_ratio(self) -> float:
        """D̄_KL / δ at the last iteration (1 means the constraint is exactly active)."""
        return float(self.kl[-1] / self.eps) if len(self.kl) else math.nan


def run_dual(
    eps: float,
    dual_lr: float,
    *,
    start=START,
    rewards=(1.0, 0.6, 0.0),
    iters: int = 40,
    inner_steps: int = 5,
    lr: float = 0.5,
) -> DualRun:
    """One run of :func:`pgcore.updates.dual_gradient_descent` on the bandit from π_old = ``start``.

    ``eps`` is the radius δ and ``dual_lr`` the dual step η_β. A dual step that is too large can
    make β, and then the logits, blow up; the run is then
    reported with ``diverged=True`` (and empty traces) instead of raising.
    """
    with one_thread():
        return _run_dual(eps, dual_lr, start, rewards, iters, inner_steps, lr)


def _run_dual(eps, dual_lr, start, rewards, iters, inner_steps, lr) -> DualRun:
    mdp = three_armed_bandit(rewards)
    policy = TabularSoftmaxPolicy.from_probs(torch.tensor([start], dtype=torch.float64))
    p0 = policy.probs().detach().numpy()[0]
    batch = exact_batch(mdp, policy)
    try:
        out = dual_gradient_descent(
            policy, batch, eps, dual_lr=dual_lr, iters=iters, inner_steps=inner_steps, lr=lr
        )
    except ValueError:
        empty = np.zeros(0)
        return DualRun(float(eps), float(dual_lr), empty, empty, empty, p0[None, :], True)
    probs = np.vstack([p0] + [torch.softmax(th.reshape(1, 3), -1).numpy() for th in out["theta"]])
    lam, kl = np.array(out["lam"]), np.array(out["kl"])
    diverged = not (np.isfinite(lam).all() and np.isfinite(kl).all())
    return DualRun(float(eps), float(dual_lr), lam, kl, np.array(out["surrogate"]), probs, diverged)


def precompute_dual(
    epsilons=EPSILONS, dual_steps=DUAL_STEPS, **kwargs
) -> dict[tuple[float, float], DualRun]:
    """Every grid point's run, keyed by (δ, η_β)."""
    return {(float(e), float(a)): run_dual(e, a, **kwargs) for e in epsilons for a in dual_steps}


def draw_dual(eps: float, dual_lr: float, *, runs: dict[tuple[float, float], DualRun]) -> Figure:
    """One frame: β trace, KL trace with δ, and the path on the simplex inside the KL ball."""
    run = runs[(float(eps), float(dual_lr))]
    fig, axes = plt.subplots(1, 3, figsize=(9.6, 3.4), gridspec_kw={"width_ratios": [1, 1, 1.05]})
    fig.subplots_adjust(left=0.06, right=0.99, bottom=0.16, top=0.84, wspace=0.3)
    ax_lam, ax_kl, ax_s = axes
    it = np.arange(1, len(run.lam) + 1)
    if run.diverged:
        for ax in (ax_lam, ax_kl):
            ax.text(
                0.5,
                0.5,
                "diverged:\nthe dual step is too large",
                ha="center",
                va="center",
                transform=ax.transAxes,
                color="tab:red",
            )
    else:
        ax_lam.plot(it, run.lam, color="tab:purple", lw=1.6)
        ax_kl.plot(it, run.kl, color="tab:orange", lw=1.6, label="KL(π_old‖π)")
        ax_kl.set_ylim(0, 1.1 * max(run.kl.max(), run.eps))
    ax_kl.axhline(run.eps, color="k", ls="--", lw=1, label="δ")
    ax_lam.set_xlabel("outer iteration")
    ax_lam.set_ylabel("β")
    ax_lam.set_title("Lagrange multiplier β", fontsize=10)
    ax_kl.set_xlabel("outer iteration")
    ax_kl.set_ylabel("mean KL  D̄_KL")
    ax_kl.set_title("constraint: KL against δ", fontsize=10)
    ax_kl.legend(loc="upper right", fontsize=8)

    draw_simplex(ax_s, labels=("", "", ""))
    pts = simplex_grid(120, interior=True)
    p_old = run.probs[0]
    kl = kl_categorical(
        torch.as_tensor(np.broadcast_to(p_old, pts.shape).copy()), torch.as_tensor(pts)
    ).numpy()
    xy = simplex_xy(pts)
    ax_s.tricontour(
        xy[:, 0], xy[:, 1], kl, levels=[run.eps], colors="k", linestyles="--", linewidths=1
    )
    path = simplex_xy(run.probs)
    ax_s.plot(path[:, 0], path[:, 1], "-", color="tab:blue", lw=1, alpha=0.7)
    ax_s.plot(path[1:, 0], path[1:, 1], ".", color="tab:blue", ms=3)
    ax_s.plot(*path[0], "o", color="k", ms=5, label="π_old")
    if len(path) > 1:
        ax_s.plot(*path[-1], "*", color="tab:red", ms=10, label="final π")
    # Zoom on the KL ball and the path; an arrow points to the best arm.
    box = np.vstack([path, xy[kl <= run.eps]]) if (kl <= run.eps).any() else path
    lo, hi = box.min(0), box.max(0)
    half = 0.6 * max(hi - lo) + 0.03
    mid = 0.5 * (lo + hi)
    ax_s.set_xlim(mid[0] - half, mid[0] + half)
    ax_s.set_ylim(mid[1] - half, mid[1] + half)
    ax_s.axis("on")
    ax_s.set_xticks([])
    ax_s.set_yticks([])
    ax_s.grid(False)
    ax_s.text(0.02, 0.03, "↙ towards a₁ (R = 1)", transform=ax_s.transAxes, fontsize=8, color="0.3")
    ax_s.legend(loc="best", fontsize=8)
    ax_s.set_title("simplex path (zoomed); KL ball dashed", fontsize=10)
    if run.diverged:
        head = f"δ = {run.eps:g}, dual step η_β = {run.dual_lr:g}: diverged"
    else:
        head = (
            f"δ = {run.eps:g}, dual step η_β = {run.dual_lr:g}:  final KL/δ = {run.final_kl_ratio:.3f},  "
            f"final β = {run.lam[-1]:.3f},  surrogate gain = {run.surrogate[-1]:.4f}"
        )
    fig.suptitle(head, fontsize=10.5)
    return fig


def dual_explorable(epsilons=EPSILONS, dual_steps=DUAL_STEPS, **kwargs) -> Explorable:
    """The chapter-2 widget: sliders for the radius δ and the dual step η_β over precomputed runs."""
    runs = precompute_dual(epsilons, dual_steps, **kwargs)
    return Explorable(
        draw=draw_dual,
        sliders=[
            Slider("eps", "KL radius δ", list(epsilons), default=pick_nearest(epsilons, 0.02)),
            Slider(
                "dual_lr", "dual step η_β", list(dual_steps), default=pick_nearest(dual_steps, 10.0)
            ),
        ],
        title="Dual gradient descent: β and the KL settle at the constraint",
        fixed={"runs": runs},
        dpi=88,
    )
