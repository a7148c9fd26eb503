"""The advantage chapter's explorable: the bias, variance and MSE of GAE(γ, λ) against the exact A^π.

On a small random MDP with a fixed softmax policy, trajectories start from every (state,
action) pair, so the GAE estimate at t = 0 of each trajectory is one sample of the estimator
at that pair. The critic is V^π plus fixed Gaussian noise of a chosen size ("the critic's
error"). Sliders set λ and the critic's error; the figure shows, for that critic, the bias²,
the variance and the mean squared error over the whole λ grid (with the chosen λ marked), and
at the chosen λ the estimates at each pair against the true advantage.

Everything is precomputed once per critic on one common set of trajectories (:func:`precompute`),
so a redraw only plots arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from .. import advantage as adv
from ..policies import TabularSoftmaxPolicy
from ..tabular import TabularMDP, random_mdp
from . import Explorable, Slider

__all__ = [
    "PROBLEM",
    "LAMS",
    "STATIC_LAMS",
    "SCALES",
    "BiasVarianceGrid",
    "default_problem",
    "precompute",
    "draw_bias_variance",
    "advantage_explorable",
]

#: The experiment: a random MDP, a random softmax policy, and the sampling budget.
PROBLEM = {
    "n_states": 6,
    "n_actions": 3,
    "gamma": 0.95,
    "mdp_seed": 3,
    "policy_seed": 0,
    "n_per_pair": 300,
    "horizon": 100,
    "sample_seed": 1,
    "noise_seed": 2,
}
#: λ grid (41 evenly spaced values in [0, 1]) and the critic's error (std of the noise on V^π).
LAMS = tuple(float(x) for x in np.linspace(0.0, 1.0, 41))
#: The λ values of the kernel-free (static) figure: every fifth grid value, 0, 0.125, …, 1.
STATIC_LAMS = LAMS[::5]
SCALES = (0.0, 0.2, 0.8)


def default_problem(problem: dict | None = None) -> tuple[TabularMDP, TabularSoftmaxPolicy]:
    """The MDP and the (fixed) policy of the experiment."""
    p = {**PROBLEM, **(problem or {})}
    mdp = random_mdp(p["n_states"], p["n_actions"], gamma=p["gamma"], seed=p["mdp_seed"])
    g = torch.Generator().manual_seed(p["policy_seed"])
    logits = torch.randn(p["n_states"], p["n_actions"], generator=g, dtype=torch.float64)
    return mdp, TabularSoftmaxPolicy(p["n_states"], p["n_actions"], logits=logits)


@dataclass
class BiasVarianceGrid:
    """Measured errors of GAE over (critic error, λ).

    ``bias2``, ``variance``, ``mse`` [K, L] (K critic errors, L λ values; bias² is the part
    that reaches the policy gradient, see :class:`pgcore.advantage.BiasVariance`);
    ``mean``, ``std`` [K, L, S, A] per pair; ``A`` [S, A] the exact advantage;
    ``weights`` [S, A] = d^π(s)π(a|s); ``critics`` [K, S].
    """

    lams: np.ndarray
    scales: np.ndarray
    bias2: np.ndarray
    variance: np.ndarray
    mse: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    A: np.ndarray
    weights: np.ndarray
    critics: np.ndarray
    problem: dict

    def best_lam(self, k: int) -> float:
        """The λ with the smallest MSE for critic ``k``."""
        return float(self.lams[int(np.argmin(self.mse[k]))])


def precompute(lams=LAMS, scales=SCALES, problem: dict | None = None) -> BiasVarianceGrid:
    """Sample the trajectories once, then measure GAE for every (critic error, λ)."""
    p = {**PROBLEM, **(problem or {})}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        mdp, policy = default_problem(p)
        pi = policy.probs().detach()
        V, Q = mdp.values(pi)
        A = (Q - V[:, None]).numpy()
        d = mdp.occupancy(pi).numpy()
        pi_np = pi.numpy()
        S, nA = mdp.n_states, mdp.n_actions
        s0, a0 = adv.all_pairs(S, nA, p["n_per_pair"])
        traj = adv.sample_trajectories(
            mdp, pi, len(s0), p["horizon"], seed=p["sample_seed"], start_states=s0, start_actions=a0
        )
        K, L = len(scales), len(lams)
        out = {k: np.empty((K, L)) for k in ("bias2", "variance", "mse")}
        mean = np.empty((K, L, S, nA))
        std = np.empty((K, L, S, nA))
        critics = np.empty((K, S))
        for i, scale in enumerate(scales):
            critics[i] = adv.noisy_critic(V.numpy(), scale, seed=p["noise_seed"])
            for j, lam in enumerate(lams):
                est, _ = adv.gae_estimates(traj, critics[i], p["gamma"], lam)
                m, v, _ = adv.pair_statistics(est[0], s0, a0, S, nA)
                bv = adv.bias_variance(m, v, A, pi_np, d)
                out["bias2"][i, j], out["variance"][i, j], out["mse"][i, j] = (
                    bv.bias2,
                    bv.variance,
                    bv.mse,
                )
                mean[i, j], std[i, j] = m, np.sqrt(v)
    finally:
        torch.set_num_threads(threads)
    return BiasVarianceGrid(
        np.asarray(lams, dtype=float),
        np.asarray(scales, dtype=float),
        out["bias2"],
        out["variance"],
        out["mse"],
        mean,
        std,
        A,
        d[:, None] * pi_np,
        critics,
        p,
    )


def draw_bias_variance(lam: float, scale: float, *, grid: BiasVarianceGrid) -> Figure:
    """One frame: bias², variance and MSE against λ for the chosen critic, and the estimates
    at each (s, a) pair for the chosen λ."""
    k = int(np.argmin(np.abs(grid.scales - scale)))
    j = int(np.argmin(np.abs(grid.lams - lam)))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(8.0, 3.0), gridspec_kw={"width_ratios": [1, 1.1]})
    fig.subplots_adjust(left=0.08, right=0.99, bottom=0.15, top=0.82, wspace=0.3)
    ax1.plot(grid.lams, grid.mse[k], color="k", lw=1.8, label="MSE")
    ax1.plot(grid.lams, grid.variance[k], color="tab:blue", lw=1.4, label="variance")
    ax1.plot(grid.lams, grid.bias2[k], color="tab:red", lw=1.4, label="bias²")
    jb = int(np.argmin(grid.mse[k]))
    ax1.plot(
        grid.lams[jb],
        grid.mse[k, jb],
        "*",
        color="k",
        ms=9,
        label=f"min MSE (λ = {grid.lams[jb]:.3g})",
    )
    ax1.axvline(grid.lams[j], color="0.5", ls="--", lw=1)
    ax1.set_ylim(0, 1.15 * max(grid.mse[k].max(), 1e-3))
    ax1.set_xlabel("λ")
    ax1.set_ylabel("weighted error of Â")
    ax1.legend(loc="upper left", fontsize=8)
    ax1.set_title("errors of GAE over λ (this critic)", fontsize=10)

    A = grid.A.ravel()
    order = np.argsort(A)
    x = np.arange(A.size)
    m, s = grid.mean[k, j].ravel()[order], grid.std[k, j].ravel()[order]
    ax2.errorbar(
        x, m, yerr=s, fmt="o", color="tab:blue", ms=3.5, lw=1, capsize=0, label="mean ± std of Â"
    )
    ax2.plot(x, A[order], "_", color="k", ms=12, mew=2, label="exact A^π(s, a)")
    lim = np.abs(grid.mean[k]).max() + np.nanmax(grid.std[k])
    ax2.set_ylim(-lim, lim)
    ax2.set_xticks([])
    ax2.set_xlabel("(s, a) pairs, sorted by A^π")
    ax2.set_ylabel("advantage")
    ax2.legend(loc="upper left", fontsize=8)
    ax2.set_title(f"estimates at λ = {grid.lams[j]:.3g}", fontsize=10)
    fig.suptitle(
        f"critic error σ = {grid.scales[k]:g}, λ = {grid.lams[j]:.3g}:  bias² {grid.bias2[k, j]:.4f},  "
        f"variance {grid.variance[k, j]:.4f},  MSE {grid.mse[k, j]:.4f}",
        fontsize=10,
    )
    return fig


def advantage_explorable(
    grid: BiasVarianceGrid | None = None, slider_lams=None, problem: dict | None = None
) -> Explorable:
    """The chapter's widget: sliders for λ and the critic's error over precomputed measurements.

    ``grid`` defaults to :func:`precompute` on ``LAMS`` × ``SCALES``. The λ slider offers
    ``slider_lams`` (default: every λ of the grid); the curves always show the whole grid. The
    chapter's kernel-free figure uses ``STATIC_LAMS`` to keep the page small.
    """
    grid = precompute(problem=problem) if grid is None else grid
    lams = [float(v) for v in (grid.lams if slider_lams is None else slider_lams)]
    missing = [v for v in lams if not np.isclose(grid.lams, v).any()]
    if missing:
        raise ValueError(f"slider λ values {missing} are not on the precomputed grid")
    lam_default = min(lams, key=lambda v: abs(v - 0.6))
    scale_default = min(grid.scales, key=lambda v: abs(v - 0.2))
    return Explorable(
        draw=draw_bias_variance,
        sliders=[
            Slider("lam", "GAE λ", lams, default=float(lam_default), fmt="{:.3g}"),
            Slider(
                "scale",
                "critic error σ",
                [float(v) for v in grid.scales],
                default=float(scale_default),
            ),
        ],
        title="GAE against the exact advantage: bias, variance and MSE over λ",
        fixed={"grid": grid},
        dpi=64,
    )
