"""The advantage chapter's figure: the bias, variance and MSE of GAE(γ, λ) against the exact A^π.

On a small random MDP with a fixed softmax policy, trajectories start from every (state,
action) pair, so the GAE estimate at t = 0 of each trajectory is one sample of the estimator
at that pair. The critic is V^π plus fixed Gaussian noise of a chosen size σ ("the critic's
error"). The figure (:func:`advantage_explorable`) has sliders for λ, the discount γ and the
critic's error; γ is part of the problem, so moving it recomputes V^π, A^π and the weights
d^π(s)π(a|s) of that discounted problem (the trajectories, which do not depend on γ, are
sampled once). Panels: bias², variance and MSE against λ for the chosen γ and critic (with the
chosen λ marked), the estimates at each pair against the true advantage, and the best λ against
γ for every critic.

Two routes compute the same numbers:

* :func:`precompute` measures with :func:`pgcore.advantage.gae_estimates` (pgcore's ``gae``)
  over a λ grid and a few critics at the problem's γ: the chapter's static figure and claims;
* the figure uses the closed form of the estimate at t = 0, Â₀ = Σₜ (γλ)ᵗ δ^V_t, which is
  linear in the critic: for V = V^π + σz it is Â₀[V^π] + σ·Â₀[z] (z's "TD residuals" carry no
  reward), so per (γ, λ) five per-pair moments give the mean and the variance for every σ.
  The tests check it against :func:`precompute`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import altair as alt
import numpy as np
import torch

from .. import advantage as adv
from ..policies import TabularSoftmaxPolicy
from ..tabular import TabularMDP, random_mdp
from . import Explorable, Slider, linear_grid, one_thread, style

__all__ = [
    "PROBLEM",
    "LAMS",
    "SCALES",
    "SLIDER_LAMS",
    "GAMMAS",
    "BiasVarianceGrid",
    "default_problem",
    "precompute",
    "GaeMoments",
    "moments",
    "errors",
    "compute",
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
#: λ grid of :func:`precompute` (41 evenly spaced values in [0, 1]) and the critic's errors σ
#: (std of the noise on V^π): the exact critic and two noisy ones.
LAMS = linear_grid(0.0, 1.0, 41)
SCALES = (0.0, 0.2, 0.8)
#: The figure's grids: λ in steps of 0.04, γ in steps of 0.01 (the problem's γ = 0.95 included).
SLIDER_LAMS = linear_grid(0.0, 1.0, 26)
GAMMAS = linear_grid(0.75, 0.99, 25)
#: The critics' colours in the figure.
CRITIC_COLORS = (style.PALETTE.teal, style.PALETTE.orange, style.PALETTE.purple)


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
    """Sample the trajectories once, then measure GAE with pgcore's ``gae`` for every (critic error, λ)."""
    p = {**PROBLEM, **(problem or {})}
    with one_thread():
        mdp, policy = default_problem(p)
        pi = policy.probs().detach()
        V, Q = mdp.values(pi)
        A = (Q - V[:, None]).numpy()
        d = mdp.occupancy(pi).numpy()
        pi_np = pi.numpy()
        S, nA = mdp.n_states, mdp.n_actions
        s0, a0, traj = _trajectories(p)
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


def _trajectories(p: dict):
    """The pair-started trajectories of the experiment (they do not depend on γ)."""
    key = tuple(sorted((k, v) for k, v in p.items() if k != "gamma"))
    return _trajectories_cached(key)


@lru_cache(maxsize=2)
def _trajectories_cached(key: tuple):
    p = dict(key)
    mdp, policy = default_problem({**p, "gamma": PROBLEM["gamma"]})
    s0, a0 = adv.all_pairs(mdp.n_states, mdp.n_actions, p["n_per_pair"])
    traj = adv.sample_trajectories(
        mdp,
        policy.probs().detach(),
        len(s0),
        p["horizon"],
        seed=p["sample_seed"],
        start_states=s0,
        start_actions=a0,
    )
    return s0, a0, traj


@dataclass(frozen=True)
class GaeMoments:
    """Per-pair moments of Â₀ = Â₀[V^π] + σ·Â₀[z] at one γ, for the λ values ``lams`` [L].

    ``m_v``, ``m_z`` [L, S, A]: means of the two parts; ``var_v``, ``var_z``, ``cov`` [L, S, A]:
    their (unbiased) variances and covariance. For the critic V^π + σz the per-pair mean is
    m_v + σ m_z and the variance var_v + 2σ cov + σ² var_z. ``A`` [S, A] = A^π at this γ,
    ``pi`` [S, A], ``d`` [S] = d^π at this γ.
    """

    gamma: float
    lams: np.ndarray
    m_v: np.ndarray
    m_z: np.ndarray
    var_v: np.ndarray
    var_z: np.ndarray
    cov: np.ndarray
    A: np.ndarray
    pi: np.ndarray
    d: np.ndarray


def _residuals(gamma: float, problem: dict, dtype=np.float64):
    """The TD residuals of V^π (with rewards) and of z (without), stacked [2N, T], and A, π, d."""
    key = tuple(sorted(problem.items()))
    return _residuals_cached(float(gamma), key, np.dtype(dtype).name)


@lru_cache(maxsize=2)
def _layout(key: tuple):
    """The trajectories as contiguous trajectory-major arrays: rewards, s_t and s_{t+1}, [N, T]."""
    _, _, traj = _trajectories(dict(key))
    s = traj.states
    return (
        np.ascontiguousarray(traj.rewards.T),
        np.ascontiguousarray(s[:-1].T),
        np.ascontiguousarray(s[1:].T),
    )


@lru_cache(maxsize=4)
def _residuals_cached(gamma: float, key: tuple, dtype: str):
    problem = dict(key)
    mdp, policy = default_problem({**problem, "gamma": gamma})
    pi = policy.probs().detach()
    V, Q = mdp.values(pi)
    V, A = V.numpy(), (Q - V[:, None]).numpy()
    d = mdp.occupancy(pi).numpy()
    z = np.random.default_rng(problem["noise_seed"]).standard_normal(V.shape)
    R, s0, s1 = _layout(key)
    D = np.empty((2, *R.shape), dtype=dtype)
    D[0] = R + (gamma * V)[s1] - V[s0]
    D[1] = (gamma * z)[s1] - z[s0]
    return D.reshape(2 * R.shape[0], R.shape[1]), A, pi.numpy(), d


def moments(gamma: float, lams, problem: dict | None = None, *, single: bool = False) -> GaeMoments:
    """:class:`GaeMoments` at discount ``gamma`` for the λ values ``lams``.

    ``single=True`` forms the estimates in float32 (twice as fast; the live figure uses it off
    the grid, where the moments then agree with float64 to about six digits).
    """
    p = {**PROBLEM, **(problem or {})}
    lams = np.atleast_1d(np.asarray(lams, dtype=float))
    dtype = np.float32 if single else np.float64
    D, A, pi, d = _residuals(float(gamma), p, dtype)
    T = D.shape[1]
    W = ((gamma * lams[None, :]) ** np.arange(T)[:, None]).astype(dtype)  # [T, L]; 0⁰ = 1
    E = (D @ W).astype(np.float64)  # [2N, L]: Â₀ of each trajectory, for V^π then for z
    S, nA, n = pi.shape[0], pi.shape[1], p["n_per_pair"]
    ev, ez = E.reshape(2, S * nA, n, -1)  # pair-major: see adv.all_pairs
    m_v, m_z = ev.mean(1), ez.mean(1)
    cv, cz = ev - m_v[:, None], ez - m_z[:, None]
    shape = (S, nA, len(lams))

    def pairs(x):
        return np.moveaxis(x.reshape(shape), -1, 0)

    return GaeMoments(
        float(gamma),
        lams,
        pairs(m_v),
        pairs(m_z),
        pairs(np.einsum("pnl,pnl->pl", cv, cv) / (n - 1)),
        pairs(np.einsum("pnl,pnl->pl", cz, cz) / (n - 1)),
        pairs(np.einsum("pnl,pnl->pl", cv, cz) / (n - 1)),
        A,
        pi,
        d,
    )


@lru_cache(maxsize=64)
def _grid_moments(gamma: float) -> GaeMoments:
    return moments(gamma, SLIDER_LAMS)


def errors(mom: GaeMoments, sigma: float) -> dict:
    """bias², variance, MSE [L] and the per-pair mean, std [L, S, A] for the critic V^π + σz."""
    mean = mom.m_v + sigma * mom.m_z
    var = np.maximum(mom.var_v + 2 * sigma * mom.cov + sigma**2 * mom.var_z, 0.0)
    w = mom.d[:, None] * mom.pi
    b = mean - mom.A
    bc = b - (mom.pi * b).sum(-1, keepdims=True)
    bias2 = (w * bc**2).sum((-2, -1))
    variance = (w * var).sum((-2, -1))
    return {
        "bias2": bias2,
        "variance": variance,
        "mse": bias2 + variance,
        "mean": mean,
        "std": np.sqrt(var),
    }


@lru_cache(maxsize=1)
def _best_lams() -> dict:
    """The best λ of the slider grid at every γ of the grid, for every critic (a fixed table)."""
    rows = {"gamma": [], "critic": [], "best_lam": [], "mse": []}
    for g in GAMMAS:
        mom = _grid_moments(float(g))
        for sigma in SCALES:
            e = errors(mom, sigma)
            j = int(np.argmin(e["mse"]))
            rows["gamma"].append(float(g))
            rows["critic"].append(_critic_name(sigma))
            rows["best_lam"].append(float(SLIDER_LAMS[j]))
            rows["mse"].append(float(e["mse"][j]))
    return rows


def _critic_name(sigma: float) -> str:
    return "exact V^π (σ = 0)" if sigma == 0 else f"V^π + noise, σ = {sigma:g}"


def _sig(x, digits: int = 4) -> np.ndarray:
    """Round to ``digits`` significant digits (keeps the page's JSON small)."""
    x = np.asarray(x, dtype=float)
    with np.errstate(divide="ignore"):
        mag = np.where(x == 0, 0, np.floor(np.log10(np.abs(np.where(x == 0, 1, x)))))
    scale = 10.0 ** (digits - 1 - mag)
    return np.round(x * scale) / scale


def compute(lam: float, gamma: float, sigma: float) -> dict:
    """The figure's tables at (λ, γ, σ); any λ ∈ [0, 1], γ ∈ (0, 1), σ ≥ 0."""
    if not (0.0 <= lam <= 1.0 and 0.0 < gamma < 1.0 and sigma >= 0.0):
        raise ValueError(
            f"need 0 ≤ λ ≤ 1, 0 < γ < 1, σ ≥ 0; got λ={lam!r}, γ={gamma!r}, σ={sigma!r}"
        )
    j = [i for i, v in enumerate(SLIDER_LAMS) if math.isclose(v, lam, abs_tol=1e-12)]
    if any(math.isclose(gamma, g, abs_tol=1e-12) for g in GAMMAS):
        mom = _grid_moments(float(gamma))
        e = errors(mom, sigma)
        here = errors(moments(gamma, [lam], single=True), sigma) if not j else None
    else:  # off the grid (the live figure): one pass for the λ grid and the chosen λ
        mom = moments(gamma, (*SLIDER_LAMS, lam), single=True)
        both = errors(mom, sigma)
        e = {k: v[:-1] for k, v in both.items()}
        here = {k: v[-1:] for k, v in both.items()}
    here = {k: v[j[0]] for k, v in e.items()} if j else {k: v[0] for k, v in here.items()}
    jb = int(np.argmin(e["mse"]))
    S, nA = mom.A.shape
    A = mom.A.ravel()
    rank = np.empty(S * nA, dtype=int)
    rank[np.argsort(A, kind="stable")] = np.arange(1, S * nA + 1)
    return {
        "curve": {
            "lam": SLIDER_LAMS,
            "bias²": _sig(e["bias2"]),
            "variance": _sig(e["variance"]),
            "MSE": _sig(e["mse"]),
        },
        "best": {"lam": [SLIDER_LAMS[jb]], "mse": [float(e["mse"][jb])]},
        "marker": {
            "lam": [float(lam)],
            "bias²": [float(here["bias2"])],
            "variance": [float(here["variance"])],
            "MSE": [float(here["mse"])],
        },
        "truth": {
            "pair": np.arange(1, S * nA + 1),  # the pairs in the order of "pairs" (row numbers)
            "rank": rank,
            "label": [f"s = {i // nA}, a = {i % nA}" for i in range(S * nA)],
            "A": A,
        },
        "pairs": {"mean": _sig(here["mean"].ravel(), 3), "std": _sig(here["std"].ravel(), 3)},
        "best_lams": _best_lams(),
        "here": {
            "gamma": [float(gamma)],
            "best_lam": [SLIDER_LAMS[jb]],
            "critic": [_critic_name(sigma)],
        },
    }


def _panels() -> list:
    names = ["MSE", "variance", "bias²"]
    q_scale = alt.Scale(
        domain=names, range=[style.PALETTE.purple, style.PALETTE.blue, style.PALETTE.red]
    )
    lam_x = alt.X("lam:Q", title="GAE λ", scale=alt.Scale(domain=[0, 1]))
    y_err = alt.Y(
        "value:Q",
        title="weighted error of Â (log scale)",
        scale=alt.Scale(type="log", domain=[1e-5, 10], clamp=True),
        axis=alt.Axis(format="~g", values=[1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1, 10]),
    )
    curves = (
        alt.Chart(alt.Data(name="curve"))
        .transform_fold(names, as_=["quantity", "value"])
        .mark_line()
        .encode(
            lam_x,
            y_err,
            alt.Color(
                "quantity:N",
                scale=q_scale,
                legend=alt.Legend(title=None, orient="bottom", direction="horizontal"),
            ),
            tooltip=[
                alt.Tooltip("quantity:N", title="quantity"),
                alt.Tooltip("lam:Q", title="λ", format=".2f"),
                alt.Tooltip("value:Q", title="value", format=".4g"),
            ],
        )
    )
    rule = (
        alt.Chart(alt.Data(name="marker"))
        .mark_rule(color=style.NEUTRAL, strokeDash=[4, 3])
        .encode(x="lam:Q")
    )
    dots = (
        alt.Chart(alt.Data(name="marker"))
        .transform_fold(names, as_=["quantity", "value"])
        .mark_point(size=70, filled=True)
        .encode(
            x="lam:Q",
            y=alt.Y("value:Q", scale=alt.Scale(type="log")),
            color=alt.Color("quantity:N", scale=q_scale, legend=None),
            tooltip=[
                alt.Tooltip("quantity:N", title="at the chosen λ"),
                alt.Tooltip("lam:Q", title="λ", format=".3f"),
                alt.Tooltip("value:Q", title="value", format=".4g"),
            ],
        )
    )
    star = (
        alt.Chart(alt.Data(name="best"))
        .mark_point(shape="diamond", size=160, filled=True, color=style.PALETTE.purple)
        .encode(
            x="lam:Q",
            y=alt.Y("mse:Q", scale=alt.Scale(type="log")),
            tooltip=[
                alt.Tooltip("lam:Q", title="λ with the least MSE", format=".2f"),
                alt.Tooltip("mse:Q", title="MSE there", format=".4g"),
            ],
        )
    )
    p1 = alt.layer(curves, rule, dots, star).properties(
        title="Errors of GAE over λ", height=style.PANEL_HEIGHT
    )

    lookup = alt.LookupData(data=alt.Data(name="truth"), key="pair", fields=["rank", "label", "A"])
    base = (
        alt.Chart(alt.Data(name="pairs"))
        .transform_window(pair="row_number()")
        .transform_lookup(lookup="pair", from_=lookup)
        .transform_calculate(lo="datum.mean - datum.std", hi="datum.mean + datum.std")
    )
    n_pairs = PROBLEM["n_states"] * PROBLEM["n_actions"]
    x_rank = alt.X(
        "rank:Q",
        title="(s, a) pairs, sorted by A^π(s, a)",
        axis=alt.Axis(labels=False, ticks=False),
        scale=alt.Scale(domain=[0, n_pairs + 1], nice=False),
    )
    bars = base.mark_rule(color=style.PALETTE.blue, strokeWidth=2).encode(
        x_rank, alt.Y("lo:Q", title="advantage"), y2="hi:Q"
    )
    tip = [
        alt.Tooltip("label:N", title="pair"),
        alt.Tooltip("A:Q", title="exact A^π(s, a)", format=".3f"),
        alt.Tooltip("mean:Q", title="mean of Â", format=".3f"),
        alt.Tooltip("std:Q", title="std of Â", format=".3f"),
    ]
    means = base.mark_point(filled=True, size=45, color=style.PALETTE.blue).encode(
        x_rank, y="mean:Q", tooltip=tip
    )
    truth = (
        alt.Chart(alt.Data(name="truth"))
        .mark_tick(color=style.NEUTRAL, thickness=3, size=14, orient="horizontal")
        .encode(
            x_rank,
            y="A:Q",
            tooltip=[
                alt.Tooltip("label:N", title="pair"),
                alt.Tooltip("A:Q", title="exact A^π(s, a)", format=".3f"),
            ],
        )
    )
    p2 = alt.layer(bars, truth, means).properties(
        title="Estimates at this λ", height=style.PANEL_HEIGHT
    )

    c_scale = alt.Scale(domain=[_critic_name(s) for s in SCALES], range=list(CRITIC_COLORS))
    lines = (
        alt.Chart(alt.Data(name="best_lams"))
        .mark_line(point=True, interpolate="step-after")
        .encode(
            alt.X(
                "gamma:Q",
                title="discount γ",
                scale=alt.Scale(domain=[GAMMAS[0], GAMMAS[-1]], nice=False),
            ),
            alt.Y("best_lam:Q", title="λ with the least MSE", scale=alt.Scale(domain=[0, 1])),
            alt.Color(
                "critic:N",
                scale=c_scale,
                legend=alt.Legend(title=None, orient="bottom", direction="vertical"),
            ),
            tooltip=[
                alt.Tooltip("critic:N", title="critic"),
                alt.Tooltip("gamma:Q", title="γ", format=".2f"),
                alt.Tooltip("best_lam:Q", title="best λ", format=".2f"),
                alt.Tooltip("mse:Q", title="MSE there", format=".4g"),
            ],
        )
    )
    here = (
        alt.Chart(alt.Data(name="here"))
        .mark_point(size=220, filled=False, strokeWidth=3, color=style.NEUTRAL)
        .encode(
            x="gamma:Q",
            y="best_lam:Q",
            tooltip=[
                alt.Tooltip("critic:N", title="this critic"),
                alt.Tooltip("best_lam:Q", title="best λ", format=".2f"),
            ],
        )
    )
    p3 = alt.layer(lines, here).properties(
        title="Best λ against γ, per critic", height=style.PANEL_HEIGHT
    )
    return [p1, p2, p3]


def _readout(values: dict, tables: dict) -> str:
    lam, gamma, sigma = (float(values[k]) for k in ("lam", "gamma", "sigma"))
    b2, var, mse = (float(tables["marker"][k][0]) for k in ("bias²", "variance", "MSE"))
    best = tables["best"]
    return (
        f"At λ = {lam:.3g}, γ = {gamma:.3g}, critic error σ = {sigma:g}: bias² {b2:.3g}, "
        f"variance {var:.3g}, MSE {mse:.3g}. For this critic and γ the smallest MSE is "
        f"{best['mse'][0]:.3g}, at λ = {best['lam'][0]:.2f}."
    )


def advantage_explorable(
    lam_default: float = 0.6, gamma_default: float = PROBLEM["gamma"], sigma_default: float = 0.2
) -> Explorable:
    """The chapter's figure: sliders for λ, γ and the critic's error σ."""
    return Explorable(
        compute,
        _panels(),
        [
            Slider(
                "lam",
                "GAE λ",
                SLIDER_LAMS,
                default=min(SLIDER_LAMS, key=lambda v: abs(v - lam_default)),
                fmt="{:.2f}",
                scale="linear",
            ),
            Slider(
                "gamma",
                "discount γ",
                GAMMAS,
                default=min(GAMMAS, key=lambda v: abs(v - gamma_default)),
                fmt="{:.2f}",
                scale="linear",
            ),
            Slider(
                "sigma", "critic error σ", SCALES, default=sigma_default, fmt="{:g}", scale="index"
            ),
        ],
        title="GAE against the exact advantage: bias, variance and MSE over λ and γ",
        alt=(
            f"Three panels. Left: bias², variance and mean squared error of the GAE estimate against "
            "λ for the chosen discount γ and critic, with the chosen λ marked and a diamond at the "
            "least MSE. Middle: at the chosen λ, the mean plus and minus one standard deviation of "
            f"the estimate at each of the {PROBLEM['n_states'] * PROBLEM['n_actions']} state-action pairs, sorted by the exact advantage, "
            "which is drawn as a grey tick. Right: the λ with the least MSE against γ, one line "
            f"per critic (exact, and noise of σ = {' and '.join(f'{s:g}' for s in SCALES[1:])}), with the current setting circled."
        ),
        readout=_readout,
    )
