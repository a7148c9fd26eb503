"""The trust-region δ widget: vanilla PG, NPG and TRPO on the 3-action simplex.

The world is :func:`pgcore.three_armed_bandit` (one state, three actions, γ = 0), so a policy
is a point π on the probability simplex and J(π) = Σ_a π(a) R(a). From one starting policy,
three update rules run for a few iterations, each on the exact batch of its current policy:

* vanilla PG, :func:`pgcore.vpg_step` with a fixed step size η (δ does not enter);
* NPG, :func:`pgcore.natural_gradient_step` with ``max_kl`` = δ (½ΔᵀFΔ = δ per step);
* TRPO, :func:`pgcore.trpo_step` with ``max_kl`` = δ (the natural step, then a line search
  that enforces the true KL(π_old‖π) ≤ δ).

The figure shows the simplex with the KL ball {π : KL(π_start‖π) = δ} around the starting
policy (dotted balls around TRPO's later iterates), the three paths, and side panels with the
true J and the true per-step KL along each path. Moving δ redraws the ball and the paths.

The Python names keep their historical spelling (chapter 3 and the tests use them): the slider
keyword ``eps``, ``EPS_VALUES`` and ``eps_values`` all hold the radius δ.
"""

from __future__ import annotations

from functools import lru_cache

import matplotlib.pyplot as plt
import matplotlib.ticker as mticker
import matplotlib.tri as mtri
import numpy as np
import torch

from ..batch import exact_batch
from ..divergences import kl_categorical
from ..plots import draw_simplex, simplex_xy
from ..policies import TabularSoftmaxPolicy
from ..tabular import three_armed_bandit
from ..updates import natural_gradient_step, trpo_step, vpg_step
from . import Explorable, Slider, simplex_grid

__all__ = [
    "EPS_VALUES",
    "DEFAULT_START",
    "DEFAULT_REWARDS",
    "METHODS",
    "run_paths",
    "kl_ball",
    "draw_trust_region",
    "trust_region_explorable",
]

EPS_VALUES = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
DEFAULT_REWARDS = (1.0, 0.6, 0.0)
DEFAULT_START = (0.1, 0.2, 0.7)
METHODS = ("vanilla PG", "NPG", "TRPO")
_COLORS = {"vanilla PG": "tab:gray", "NPG": "tab:blue", "TRPO": "tab:red"}
_MARKERS = {"vanilla PG": "s", "NPG": "o", "TRPO": "^"}


@lru_cache(maxsize=256)
def _paths_cached(eps: float, iters: int, lr: float, rewards: tuple, start: tuple) -> dict:
    mdp = three_armed_bandit(rewards)
    out = {}
    for method in METHODS:
        policy = TabularSoftmaxPolicy.from_probs(torch.tensor([start], dtype=torch.float64))
        probs = [policy.probs().detach()[0].numpy().copy()]
        J = [mdp.performance(policy.probs().detach()).item()]
        kls, infos = [], []
        for _ in range(iters):
            batch = exact_batch(mdp, policy)
            if method == "vanilla PG":
                info = vpg_step(policy, batch, lr=lr)
            elif method == "NPG":
                info = natural_gradient_step(policy, batch, max_kl=eps, cg_iters=10)
            else:
                info = trpo_step(policy, batch, max_kl=eps, cg_iters=10)
            p = policy.probs().detach()
            probs.append(p[0].numpy().copy())
            J.append(mdp.performance(p).item())
            kls.append(info["kl"])
            infos.append({k: v for k, v in info.items() if isinstance(v, int | float | bool)})
        out[method] = {
            "probs": np.array(probs),
            "J": np.array(J),
            "kl": np.array(kls),
            "info": infos,
        }
    return out


def run_paths(
    eps: float,
    *,
    iters: int = 6,
    lr: float = 2.0,
    rewards=DEFAULT_REWARDS,
    start=DEFAULT_START,
) -> dict:
    """The three paths for the trust-region radius δ = ``eps`` (cached); ``lr`` is VPG's η.

    Returns {method: {"probs": [iters+1, 3], "J": [iters+1], "kl": [iters] (true
    KL(π_k‖π_{k+1}) of each step), "info": [the update's diagnostics per step]}}.
    """
    if not np.isfinite(eps) or eps <= 0:
        raise ValueError(f"eps (the radius δ) must be positive and finite, got {eps!r}")
    return _paths_cached(
        float(eps), int(iters), float(lr), tuple(map(float, rewards)), tuple(map(float, start))
    )


@lru_cache(maxsize=4)
def _simplex_grid(n: int = 100):
    """The whole simplex grid [N, 3] (coordinates ≥ 10⁻⁴) and a Delaunay triangulation of its 2-D image."""
    P = simplex_grid(n, interior=False)
    xy = simplex_xy(P)
    return P, mtri.Triangulation(xy[:, 0], xy[:, 1])


def kl_ball(center, grid: int = 100) -> tuple[np.ndarray, mtri.Triangulation]:
    """KL(center‖π) at interior grid points π of the simplex, and their triangulation."""
    P, tri = _simplex_grid(grid)
    c = torch.as_tensor(np.asarray(center, float))
    kl = kl_categorical(c.expand(len(P), 3), torch.as_tensor(P)).numpy()
    return kl, tri


def draw_trust_region(
    eps: float = 0.05,
    *,
    iters: int = 6,
    lr: float = 2.0,
    rewards=DEFAULT_REWARDS,
    start=DEFAULT_START,
):
    """The figure for one radius δ = ``eps``: the simplex with the KL ball and the paths, J and KL per step."""
    paths = run_paths(eps, iters=iters, lr=lr, rewards=rewards, start=start)
    fig, axes = plt.subplots(1, 3, figsize=(11.5, 3.9), gridspec_kw={"width_ratios": [1.35, 1, 1]})
    ax, axJ, axK = axes
    draw_simplex(
        ax, labels=(f"a₁ (R={rewards[0]:g})", f"a₂ (R={rewards[1]:g})", f"a₃ (R={rewards[2]:g})")
    )

    # J is linear on the simplex: its level lines are straight.
    Pc, tric = _simplex_grid(12)  # J is linear: contours on a coarse triangulation are exact
    ax.tricontourf(tric, Pc @ np.asarray(rewards, float), levels=10, cmap="Greens", alpha=0.35)
    P, tri = _simplex_grid()

    kl, _ = kl_ball(start)
    ax.tricontour(tri, kl, levels=[eps], colors="k", linewidths=1.6)
    for p in paths["TRPO"]["probs"][1:-1]:
        klp, tri_c = kl_ball(p, grid=60)
        ax.tricontour(
            tri_c, klp, levels=[eps], colors=_COLORS["TRPO"], linewidths=0.7, linestyles=":"
        )

    for m in METHODS:
        xy = simplex_xy(paths[m]["probs"])
        ax.plot(
            xy[:, 0], xy[:, 1], "-", marker=_MARKERS[m], ms=4, color=_COLORS[m], lw=1.4, label=m
        )
    x0 = simplex_xy(np.asarray(start, float))
    ax.plot(*x0, "k*", ms=11, zorder=5)
    ax.set_title(f"KL ball KL(π₀‖π) = δ = {eps:g} around π₀ (★)", fontsize=10)

    it = np.arange(iters + 1)
    for m in METHODS:
        axJ.plot(it, paths[m]["J"], marker=_MARKERS[m], ms=4, color=_COLORS[m], label=m)
        axK.semilogy(
            it[1:],
            np.maximum(paths[m]["kl"], 1e-12),
            marker=_MARKERS[m],
            ms=4,
            color=_COLORS[m],
            label=m,
        )
    axJ.axhline(max(rewards), color="0.5", lw=0.8, ls="--")
    axJ.set_xlabel("iteration k")
    axJ.set_ylabel("true J(π_k)")
    axJ.set_title("performance along each path")
    axJ.set_ylim(min(rewards) - 0.02, max(rewards) + 0.05)
    axJ.legend(fontsize=8, loc="lower right")
    axK.axhline(eps, color="k", lw=1.2, ls="--", label="δ")
    axK.set_xlabel("iteration k")
    axK.set_ylabel("KL(π_old ‖ π_new) of step k")
    axK.set_title("true KL of each step")
    axK.set_ylim(1e-4, 20)
    # plain-text tick labels: mathtext (the default on log axes) triples the redraw time
    axK.set_yticks([1e-4, 1e-3, 1e-2, 1e-1, 1, 10])
    axK.yaxis.set_major_formatter(mticker.FuncFormatter(lambda v, _: f"{v:g}"))
    axK.yaxis.set_minor_formatter(mticker.NullFormatter())
    axK.legend(fontsize=8, loc="upper right")
    fig.subplots_adjust(left=0.02, right=0.99, bottom=0.14, top=0.9, wspace=0.3)
    return fig


def trust_region_explorable(
    eps_values=EPS_VALUES,
    default: float = 0.05,
    *,
    iters: int = 6,
    lr: float = 2.0,
    rewards=DEFAULT_REWARDS,
    start=DEFAULT_START,
) -> Explorable:
    """The δ widget: one slider over the radii ``eps_values``."""
    return Explorable(
        draw=draw_trust_region,
        sliders=[Slider("eps", "trust region δ", tuple(eps_values), default=default)],
        title="Trust region δ: vanilla PG, NPG and TRPO on the 3-action simplex",
        fixed={"iters": iters, "lr": lr, "rewards": tuple(rewards), "start": tuple(start)},
    )
