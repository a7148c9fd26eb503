"""Chapter 1's explorable: how far can a policy move before the improvement bound gives up?

The step is the conservative-policy-iteration mixture π_α = (1−α)·π + α·π⁺ between the current
policy π and its greedy policy π⁺ (Kakade & Langford 2002) on a small random MDP. For each α
the figure shows, as improvements over J(π):

* the true improvement            J(π_α) − J(π),
* the surrogate improvement       Ā(π_α)/(1−γ)  (states from π, actions from π_α),
* TRPO's lower bound              Ā(π_α)/(1−γ) − C·D_KL^max(π‖π_α), C = 4 A_max γ/(1−γ)²
  (Schulman et al. 2015, Theorem 1; A_max = max_{s,a} |A^π(s, a)|, the paper's ε),

and shades the α where the lower bound is positive: there the bound *guarantees* that the step
improves J. A second slider sets the discount γ, which controls how conservative C is.
"""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import FormatStrFormatter

from .. import bounds
from ..policies import TabularSoftmaxPolicy
from ..tabular import TabularMDP, random_mdp
from . import Explorable, Slider, pick_nearest

__all__ = [
    "ImprovementCurves",
    "default_problem",
    "improvement_curves",
    "precompute_improvement",
    "draw_improvement",
    "improvement_explorable",
    "ALPHAS",
    "GAMMAS",
]

#: The slider's mixture weights (log-spaced: the certified region is small when γ is large).
ALPHAS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
#: The slider's discounts.
GAMMAS = (0.5, 0.7, 0.9)


@dataclass
class ImprovementCurves:
    """J, the surrogate and the lower bound along the mixture path, as gains over J(π)."""

    alphas: np.ndarray
    true_gain: np.ndarray
    surrogate_gain: np.ndarray
    lower_bound: np.ndarray
    C: float
    eps_adv: float
    gamma: float

    @property
    def certified(self) -> np.ndarray:
        """Where the lower bound is positive, i.e. the bound guarantees J(π_α) > J(π)."""
        return self.lower_bound > 0

    @property
    def alpha_certified_max(self) -> float:
        """The largest α on the grid whose lower bound is positive (0 if there is none)."""
        ok = self.alphas[self.certified]
        return float(ok.max()) if ok.size else 0.0

    @property
    def alpha_mm(self) -> float:
        """The α that maximises the lower bound: the minorise-maximise step."""
        finite = np.where(np.isfinite(self.lower_bound), self.lower_bound, -np.inf)
        return float(self.alphas[int(np.argmax(finite))])


def default_problem(gamma: float = 0.9, *, n_states: int = 5, n_actions: int = 3, seed: int = 1):
    """(mdp, π, π⁺): a random MDP, a random softmax policy π and its greedy policy π⁺.

    The transitions and rewards of ``random_mdp`` do not depend on γ, so changing ``gamma``
    changes only the discount of the same MDP.
    """
    mdp = random_mdp(n_states, n_actions, gamma=gamma, seed=seed)
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n_states, n_actions, generator=g, dtype=torch.float64)
    pi = TabularSoftmaxPolicy(n_states, n_actions, logits=logits).probs().detach()
    greedy = torch.nn.functional.one_hot(mdp.advantages(pi).argmax(-1), n_actions).to(torch.float64)
    return mdp, pi, greedy


def improvement_curves(mdp: TabularMDP, pi_old, pi_target, alphas) -> ImprovementCurves:
    """Evaluate the three curves at every mixture weight in ``alphas`` (exactly)."""
    alphas = np.asarray(alphas, dtype=float)
    pi_old = mdp.check_policy(pi_old).detach()
    pi_target = mdp.check_policy(pi_target).detach()
    J0 = mdp.performance(pi_old).item()
    C = bounds.trpo_penalty_coefficient(mdp, pi_old).item()
    eps_adv = mdp.advantages(pi_old).abs().max().item()
    true, surr, low = [], [], []
    with torch.no_grad():
        for a in alphas:
            pa = bounds.mixture(pi_old, pi_target, float(a))
            true.append(mdp.performance(pa).item() - J0)
            s = bounds.surrogate_advantage(mdp, pa, pi_old).item() / (1.0 - mdp.gamma)
            surr.append(s)
            low.append(s - C * bounds.max_kl(pa, pi_old).item())
    return ImprovementCurves(
        alphas, np.array(true), np.array(surr), np.array(low), C, eps_adv, mdp.gamma
    )


def precompute_improvement(
    gammas=GAMMAS, n_points: int = 121, **problem
) -> dict[float, ImprovementCurves]:
    """The curves for each γ on a dense log-spaced α grid from 10⁻³ to 1 (the slider values included)."""
    dense = np.unique(np.concatenate([np.logspace(-3, 0, n_points), ALPHAS]))
    out = {}
    for gamma in gammas:
        mdp, pi, greedy = default_problem(gamma, **problem)
        out[float(gamma)] = improvement_curves(mdp, pi, greedy, dense)
    return out


def draw_improvement(
    alpha: float, gamma: float, *, curves: dict[float, ImprovementCurves]
) -> Figure:
    """One frame: the three curves for ``gamma`` with the step α marked and the certified region shaded."""
    c = curves[float(gamma)]
    i = int(np.argmin(np.abs(c.alphas - alpha)))
    fig, ax = plt.subplots(figsize=(7.4, 3.9))
    fig.subplots_adjust(left=0.1, right=0.98, bottom=0.14, top=0.9)
    ok = c.certified
    if ok.any():
        ax.axvspan(
            c.alphas[0],
            c.alpha_certified_max,
            color="tab:green",
            alpha=0.12,
            label="bound certifies improvement",
        )
    lb = np.where(np.isfinite(c.lower_bound), c.lower_bound, np.nan)
    ax.plot(c.alphas, c.true_gain, color="k", lw=2, label=r"true $J(\pi_\alpha)-J(\pi)$")
    ax.plot(
        c.alphas,
        c.surrogate_gain,
        color="tab:blue",
        ls="--",
        lw=1.6,
        label=r"surrogate $\bar A(\pi_\alpha)/(1-\gamma)$",
    )
    ax.plot(
        c.alphas,
        lb,
        color="tab:red",
        lw=1.6,
        label=r"lower bound $\bar A/(1-\gamma) - C\,D_{\mathrm{KL}}^{\max}$",
    )
    ax.axhline(0.0, color="0.4", lw=0.8)
    ax.axvline(c.alphas[i], color="0.3", ls=":", lw=1.2)
    for y, col in ((c.true_gain[i], "k"), (c.surrogate_gain[i], "tab:blue"), (lb[i], "tab:red")):
        if np.isfinite(y):
            ax.plot([c.alphas[i]], [y], "o", color=col, ms=5)
    ax.set_xscale("log")
    ax.set_yscale("symlog", linthresh=1e-3)
    top = max(np.nanmax(c.surrogate_gain), np.nanmax(c.true_gain))
    ax.set_ylim(-100.0, 3.0 * top)
    ax.set_xlim(c.alphas[0], c.alphas[-1])
    ax.set_xlabel("mixture weight α in π_α = (1−α)π + απ⁺  (log scale)")
    ax.set_ylabel("improvement over J(π)  (symlog)")
    verdict = "certified safe" if ok[i] else "not certified"
    # Plain-text title and tick labels: mathtext that changes every frame is slow to typeset.
    ax.set_title(
        f"γ = {c.gamma:g}, C = {c.C:.3g};  at α = {c.alphas[i]:.3g}: true gain {c.true_gain[i]:+.3g}, "
        f"bound {lb[i]:+.3g} ({verdict})",
        fontsize=10,
    )
    ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax.minorticks_off()
    ax.legend(loc="lower left", fontsize=8)
    return fig


def improvement_explorable(gammas=GAMMAS, alphas=ALPHAS, **problem) -> Explorable:
    """The chapter-1 widget: sliders for α and γ over precomputed curves (kernel-free or live)."""
    curves = precompute_improvement(gammas, **problem)
    return Explorable(
        draw=draw_improvement,
        sliders=[
            Slider("alpha", "step α", list(alphas), default=pick_nearest(alphas, 0.01)),
            Slider("gamma", "discount γ", list(gammas), default=pick_nearest(gammas, 0.7)),
        ],
        title="Improvement bound: true J, surrogate and TRPO's lower bound along a policy-iteration step",
        fixed={"curves": curves},
    )
