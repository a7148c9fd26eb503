"""Chapter 1's figure: how far can a policy move before the improvement bound gives up?

The step is the conservative-policy-iteration mixture π_α = (1−α)·π + α·π⁺ between the current
policy π and its greedy policy π⁺ (Kakade & Langford 2002) on a small random MDP. For each α the
figure shows, as improvements over J(π):

* the true improvement            J(π_α) − J(π),
* the surrogate improvement       Ā(π_α)/(1−γ)  (states from π, actions from π_α),
* TRPO's lower bound              Ā(π_α)/(1−γ) − C·D̄_KL^max(π‖π_α), C = 4 A_max γ/(1−γ)²
  (Schulman et al. 2015, Theorem 1; A_max = max_{s,a} |A^π(s, a)|, the paper's ε),

and shades the α where the lower bound is positive: there the bound *guarantees* that the step
improves J. A second panel shows, for every discount γ, the largest certified step α*(γ).

Everything is exact (linear solves on the tabular MDP), vectorised over α, and cached per γ, so
the live figure recomputes for any (α, γ) in a few milliseconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import altair as alt
import numpy as np
import torch

from ..policies import TabularSoftmaxPolicy
from ..tabular import TabularMDP, random_mdp
from . import Explorable, Slider, linear_grid, log_grid, one_thread, pick_nearest, style

__all__ = [
    "ImprovementCurves",
    "default_problem",
    "improvement_curves",
    "curves_for",
    "improvement_tables",
    "improvement_explorable",
    "ALPHAS",
    "GAMMAS",
    "ALPHA_DEFAULT",
    "GAMMA_DEFAULT",
    "SERIES",
]

#: The α slider: 25 values evenly spaced in log α from 10⁻⁴ to 1 (the certified region is
#: small when γ is large, so the small steps need room).
ALPHAS = log_grid(1e-4, 1.0, 25)
#: The γ slider: 25 values evenly spaced from 0.5 to 0.95.
GAMMAS = linear_grid(0.5, 0.95, 25)
ALPHA_DEFAULT = pick_nearest(ALPHAS, 0.01)
GAMMA_DEFAULT = pick_nearest(GAMMAS, 0.725)
#: The dense α grid the curves are drawn on (the slider's values included).
DENSE_ALPHAS = log_grid(1e-4, 1.0, 121)
#: The curves' names, as the legend and the tooltips show them.
SERIES = ("true gain J(π_α) − J(π)", "surrogate Ā(π_α)/(1−γ)", "lower bound (TRPO)")
#: The improvement axis is symmetric-log from −Y_FLOOR up to Y_CEIL.
Y_FLOOR, Y_CEIL, Y_LINEAR = 1000.0, 10.0, 1e-3


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
    alpha_star: float = float("nan")

    @property
    def certified(self) -> np.ndarray:
        """Where the lower bound is positive, i.e. the bound guarantees J(π_α) > J(π)."""
        return self.lower_bound > 0

    @property
    def alpha_certified_max(self) -> float:
        """The largest α whose lower bound is positive: the exact root α* of the bound."""
        return self.alpha_star

    @property
    def alpha_mm(self) -> float:
        """The α on the grid that maximises the lower bound: the minorise-maximise step."""
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


def _kl_max(pi: np.ndarray, mix: np.ndarray) -> np.ndarray:
    """max_s KL(π(·|s) ‖ π_α(·|s)) for a batch of mixtures [N, S, A] (inf where π_α = 0 < π)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(pi > 0, pi * (np.log(pi) - np.log(mix)), 0.0)
    return terms.sum(-1).max(-1)


class MixturePath:
    """The mixture path π_α = (1−α)π + απ⁺ of one problem, evaluated exactly and fast (numpy).

    Everything that does not depend on α (A^π, d^π, J(π), C, the surrogate's slope) is computed
    once; :meth:`evaluate` is then one batched linear solve over the α it is given.
    """

    def __init__(self, mdp: TabularMDP, pi_old, pi_target) -> None:
        self.pi = mdp.check_policy(pi_old).detach().numpy()
        self.target = mdp.check_policy(pi_target).detach().numpy()
        self.P, self.R, self.mu0 = mdp.P.numpy(), mdp.R.numpy(), mdp.mu0.numpy()
        self.gamma = g = mdp.gamma
        self.S = mdp.n_states
        pi_t = torch.as_tensor(self.pi)
        adv = mdp.advantages(pi_t).numpy()
        d = mdp.occupancy(pi_t).numpy()
        self.J0 = mdp.performance(pi_t).item()
        self.eps_adv = float(np.abs(adv).max())
        self.C = 4.0 * self.eps_adv * g / (1.0 - g) ** 2
        # Ā(π_α)/(1−γ) = α · slope: the surrogate is linear in α
        self.slope = float(d @ ((self.target - self.pi) * adv).sum(-1)) / (1.0 - g)
        self.alpha_star = self._root()

    def mix(self, alphas: np.ndarray) -> np.ndarray:
        a = np.asarray(alphas, dtype=float)[:, None, None]
        return (1.0 - a) * self.pi + a * self.target

    def bound(self, alphas) -> np.ndarray:
        """The lower bound (as a gain over J(π)) at each α."""
        a = np.asarray(alphas, dtype=float)
        return a * self.slope - self.C * _kl_max(self.pi, self.mix(a))

    def evaluate(self, alphas) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(true gain, surrogate gain, lower bound) at each α."""
        a = np.asarray(alphas, dtype=float)
        mix = self.mix(a)
        P_pi = np.einsum("nsa,sat->nst", mix, self.P)
        r_pi = (mix * self.R).sum(-1)
        V = np.linalg.solve(np.eye(self.S) - self.gamma * P_pi, r_pi[..., None])[..., 0]
        surr = a * self.slope
        return V @ self.mu0 - self.J0, surr, surr - self.C * _kl_max(self.pi, mix)

    def _root(self) -> float:
        """α*: the bound is concave in α (linear minus a convex max of KLs) and 0 at α = 0, so
        its positive set is an interval (0, α*). Bracket α* by halving from 1, then bisect."""
        if self.bound([1.0])[0] > 0:
            return 1.0
        halvings = 2.0 ** -np.arange(41)
        ok = np.nonzero(self.bound(halvings) > 0)[0]
        if ok.size == 0:
            return 0.0
        lo = float(halvings[ok[0]])
        hi = 2.0 * lo
        for _ in range(6):  # 6 rounds of 16 points: the bracket shrinks by 17⁶
            grid = np.linspace(lo, hi, 18)[1:-1]
            pos = self.bound(grid) > 0
            k = int(np.nonzero(pos)[0].max()) + 1 if pos.any() else 0
            lo, hi = (float(grid[k - 1]) if k else lo), (float(grid[k]) if k < len(grid) else hi)
        return lo


def improvement_curves(mdp: TabularMDP, pi_old, pi_target, alphas) -> ImprovementCurves:
    """The three curves at every mixture weight in ``alphas``, exactly, and the root α* of the bound."""
    path = MixturePath(mdp, pi_old, pi_target)
    alphas = np.asarray(alphas, dtype=float)
    true, surr, low = path.evaluate(alphas)
    return ImprovementCurves(
        alphas, true, surr, low, path.C, path.eps_adv, path.gamma, path.alpha_star
    )


@lru_cache(maxsize=128)
def _path_cached(gamma: float, problem: tuple) -> MixturePath:
    return MixturePath(*default_problem(gamma, **dict(problem)))


@lru_cache(maxsize=128)
def _curves_cached(gamma: float, problem: tuple) -> ImprovementCurves:
    path = _path_cached(gamma, problem)
    alphas = np.asarray(DENSE_ALPHAS)
    true, surr, low = path.evaluate(alphas)
    return ImprovementCurves(
        alphas, true, surr, low, path.C, path.eps_adv, path.gamma, path.alpha_star
    )


def curves_for(gamma: float, **problem) -> ImprovementCurves:
    """The curves on the dense α grid for discount ``gamma`` (cached; any γ in [0, 1))."""
    return _curves_cached(float(gamma), tuple(sorted(problem.items())))


def _point(alpha: float, gamma: float, problem: dict) -> tuple:
    """(true, surrogate, lower bound) exactly at ``alpha`` (on or off the dense grid)."""
    path = _path_cached(float(gamma), tuple(sorted(problem.items())))
    true, surr, low = path.evaluate([alpha])
    return float(true[0]), float(surr[0]), float(low[0])


def improvement_tables(alpha: float, gamma: float, *, gamma_curve: dict, problem: dict) -> dict:
    """The figure's tables at (α, γ): the curves for γ, the certified region, the points at α,
    and α*(γ) over γ with the point at γ."""
    c = curves_for(gamma, **problem)
    true, surr, low = _point(alpha, gamma, problem)
    n = len(c.alphas)
    lo_fin = np.where(np.isfinite(c.lower_bound), c.lower_bound, np.nan)
    return {
        "curves": {
            "alpha": np.concatenate([c.alphas] * 3),
            "gain": np.concatenate([c.true_gain, c.surrogate_gain, lo_fin]),
            "series": np.repeat(np.array(SERIES), n),
        },
        "certified": {
            "lo": [float(c.alphas[0])],
            "hi": [max(float(c.alphas[0]), c.alpha_star)],
        },
        "marker": {
            "alpha": [float(alpha)] * 3,
            "gain": [true, surr, low if math.isfinite(low) else float("nan")],
            "series": list(SERIES),
        },
        "gamma_curve": gamma_curve,
        "gamma_marker": {"gamma": [float(gamma)], "alpha_star": [c.alpha_star], "C": [c.C]},
    }


def _nice_log_ticks(lo: float, hi: float) -> list[float]:
    """1-2-5 ticks from the decade below ``lo`` to the decade above ``hi``."""
    k0, k1 = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    ticks = [m * 10.0**k for k in range(k0, k1 + 1) for m in (1, 2, 5)]
    first = max(t for t in ticks if t <= lo)
    last = min(t for t in ticks if t >= hi)
    return [float(f"{t:.3g}") for t in ticks if first <= t <= last]


def _panels(star_ticks: list[float]):
    x = alt.X(
        "alpha:Q",
        title="step α (log scale)",
        scale=alt.Scale(type="log", domain=[ALPHAS[0], ALPHAS[-1]]),
        axis=alt.Axis(values=[1e-4, 1e-3, 1e-2, 1e-1, 1], format="~g"),
    )
    y_scale = alt.Scale(type="symlog", constant=Y_LINEAR, domain=[-Y_FLOOR, Y_CEIL], nice=False)
    y_axis = alt.Axis(values=[-1000, -10, -0.1, 0, 0.1, 10], format="~r")
    colours = alt.Scale(
        domain=list(SERIES), range=[style.PALETTE.blue, style.PALETTE.orange, style.PALETTE.red]
    )
    colour = alt.Color(
        "series:N",
        title=None,
        scale=colours,
        legend=alt.Legend(
            orient="bottom", direction="vertical", symbolType="stroke", symbolSize=300
        ),
    )
    dash = alt.StrokeDash(
        "series:N",
        title=None,
        scale=alt.Scale(domain=list(SERIES), range=[[1, 0], [7, 4], [2, 3]]),
        legend=alt.Legend(
            orient="bottom", direction="vertical", symbolType="stroke", symbolSize=300
        ),
    )
    tips = [
        alt.Tooltip("series:N", title="curve"),
        alt.Tooltip("alpha:Q", title="α", format=".3g"),
        alt.Tooltip("gain:Q", title="gain", format=".3g"),
    ]
    shade = (
        alt.Chart(alt.Data(name="certified"))
        .mark_rect(color=style.SHADE, opacity=0.2)
        .encode(
            x="lo:Q",
            x2="hi:Q",
            tooltip=[alt.Tooltip("hi:Q", title="certified up to α", format=".3g")],
        )
    )
    lines = (
        alt.Chart(alt.Data(name="curves"))
        .mark_line(clip=True, strokeWidth=2.5)
        .encode(
            x=x,
            y=alt.Y("gain:Q", title="improvement over J(π) (symlog)", scale=y_scale, axis=y_axis),
            color=colour,
            strokeDash=dash,
        )
    )
    hover = (
        alt.Chart(alt.Data(name="curves"))
        .mark_point(clip=True, opacity=0, size=80, filled=True)
        .encode(x="alpha:Q", y="gain:Q", tooltip=tips)
    )
    zero = (
        alt.Chart(alt.Data(name="certified"))
        .mark_rule(color=style.NEUTRAL, strokeWidth=1)
        .encode(y=alt.datum(0))
    )
    rule = (
        alt.Chart(alt.Data(name="marker"))
        .mark_rule(color=style.NEUTRAL, strokeDash=[3, 3], strokeWidth=1.5)
        .encode(x="alpha:Q")
    )
    points = (
        alt.Chart(alt.Data(name="marker"))
        .mark_point(size=90, filled=True, opacity=1, clip=True)
        .encode(x="alpha:Q", y="gain:Q", color=alt.Color("series:N", scale=colours), tooltip=tips)
    )
    gain_panel = alt.layer(shade, zero, lines, rule, hover, points).properties(
        height=style.PANEL_HEIGHT, title="Gain along the step π_α"
    )

    gx = alt.X("gamma:Q", title="discount γ", scale=alt.Scale(domain=[GAMMAS[0], GAMMAS[-1]]))
    gy = alt.Y(
        "alpha_star:Q",
        title="largest certified α (log scale)",
        scale=alt.Scale(type="log", domain=[star_ticks[0], star_ticks[-1]]),
        axis=alt.Axis(values=star_ticks, format="~r"),
    )
    gtips = [
        alt.Tooltip("gamma:Q", title="γ", format=".3g"),
        alt.Tooltip("alpha_star:Q", title="certified up to α", format=".3g"),
        alt.Tooltip("C:Q", title="C", format=".3g"),
    ]
    gline = (
        alt.Chart(alt.Data(name="gamma_curve"))
        .mark_line(color=style.PALETTE.green, strokeWidth=2.5)
        .encode(x=gx, y=gy)
    )
    ghover = (
        alt.Chart(alt.Data(name="gamma_curve"))
        .mark_point(opacity=0, size=80, filled=True)
        .encode(x="gamma:Q", y="alpha_star:Q", tooltip=gtips)
    )
    gpoint = (
        alt.Chart(alt.Data(name="gamma_marker"))
        .mark_point(size=90, filled=True, opacity=1, color=style.PALETTE.green)
        .encode(x="gamma:Q", y="alpha_star:Q", tooltip=gtips)
    )
    gamma_panel = alt.layer(gline, ghover, gpoint).properties(
        height=style.PANEL_HEIGHT, title="How far the bound lets you step"
    )
    return [gain_panel, gamma_panel]


def _readout(values: dict, tables: dict) -> str:
    a, g = values["alpha"], values["gamma"]
    true, surr, low = tables["marker"]["gain"]
    star = tables["gamma_marker"]["alpha_star"][0]
    verdict = "certified" if low > 0 else "not certified"
    low_text = f"{low:+.3g}" if math.isfinite(low) else "−∞"
    return (
        f"At α = {a:.3g}, γ = {g:.3g}: true gain {true:+.3g}, surrogate {surr:+.3g}, "
        f"lower bound {low_text} ({verdict}). At this γ the bound certifies steps up to "
        f"α = {star:.3g}."
    ).replace("-", "−")


def improvement_explorable(gammas=GAMMAS, alphas=ALPHAS, **problem) -> Explorable:
    """The chapter-1 figure: sliders for α (log) and γ (linear) over exact curves."""
    fine = np.linspace(min(gammas), max(gammas), 91)
    with one_thread():
        stars = [curves_for(float(gm), **problem) for gm in fine]
    gamma_curve = {
        "gamma": fine,
        "alpha_star": np.array([c.alpha_star for c in stars]),
        "C": np.array([c.C for c in stars]),
    }

    def compute(alpha, gamma):
        return improvement_tables(alpha, gamma, gamma_curve=gamma_curve, problem=problem)

    return Explorable(
        compute,
        _panels(
            _nice_log_ticks(
                float(gamma_curve["alpha_star"].min()), float(gamma_curve["alpha_star"].max())
            )
        ),
        [
            Slider(
                "alpha", "step α", alphas, default=pick_nearest(alphas, ALPHA_DEFAULT), scale="log"
            ),
            Slider(
                "gamma",
                "discount γ",
                gammas,
                default=pick_nearest(gammas, GAMMA_DEFAULT),
                fmt="{:.4g}",
                scale="linear",
            ),
        ],
        title="How far is safe? The true gain, the surrogate and TRPO's lower bound along a "
        "conservative policy-iteration step",
        alt=(
            "Left: the true improvement J(π_α) − J(π), the surrogate and TRPO's lower bound "
            "against the step α on a log scale, with the range of α where the bound is positive "
            "shaded. Right: the largest certified α against the discount γ, falling as γ grows."
        ),
        readout=_readout,
    )
