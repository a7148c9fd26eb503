"""The trust-region δ figure: vanilla PG, NPG and TRPO on the 3-action simplex.

The world is :func:`pgcore.three_armed_bandit` (one state, three actions, γ = 0), so a policy
is a point π on the probability simplex and J(π) = Σ_a π(a) R(a). From one starting policy π₀,
three update rules run for a few iterations, each on the exact batch of its current policy:

* vanilla PG, :func:`pgcore.vpg_step` with a fixed step size η (δ does not enter);
* NPG, :func:`pgcore.natural_gradient_step` with ``max_kl`` = δ (½ΔᵀFΔ = δ per step);
* TRPO, :func:`pgcore.trpo_step` with ``max_kl`` = δ (the natural step, then a line search
  that enforces the true KL(π_old‖π) ≤ δ).

The figure (:func:`trust_region_explorable`) has two sliders, the radius δ and the iteration
k (with a player): the simplex with the KL ball {π : KL(π₀‖π) = δ} around π₀, the ball around
TRPO's current policy π_k, the three paths up to k, and side panels with the true J and the true
KL of every step.

For a bandit the three rules have closed forms on the logits θ (π = softmax θ, A = R − J(π)):
the gradient of the surrogate is π·A, and F⁺g = A up to a constant, so the natural step is
θ + η·A with η = sqrt(2δ / E_π[A²]). :func:`paths` uses them (microseconds per δ, so the live
figure recomputes at any δ); :func:`run_paths` runs pgcore's own update functions and is the
reference the tests compare :func:`paths` with.
"""

from __future__ import annotations

import math
from functools import lru_cache

import altair as alt
import numpy as np
import torch

from ..batch import exact_batch
from ..plots import simplex_xy
from ..policies import TabularSoftmaxPolicy
from ..tabular import three_armed_bandit
from ..updates import natural_gradient_step, trpo_step, vpg_step
from . import Explorable, Slider, log_grid, one_thread, style

__all__ = [
    "DELTAS",
    "DEFAULT_DELTA",
    "DEFAULT_START",
    "DEFAULT_REWARDS",
    "METHODS",
    "COLORS",
    "paths",
    "run_paths",
    "kl_ball",
    "compute",
    "trust_region_explorable",
]

#: The δ grid: 25 values evenly spaced in log δ from 0.002 to 1.
DELTAS = log_grid(0.002, 1.0, 25)
DEFAULT_DELTA = min(DELTAS, key=lambda v: abs(math.log(v / 0.05)))
DEFAULT_REWARDS = (1.0, 0.6, 0.0)
DEFAULT_START = (0.1, 0.2, 0.7)
METHODS = ("vanilla PG", "NPG", "TRPO")
COLORS = {"vanilla PG": style.PALETTE.orange, "NPG": style.PALETTE.blue, "TRPO": style.PALETTE.red}
#: The line search of :func:`pgcore.trpo_step` (its defaults): c and n_bt.
BACKTRACK_COEFF, BACKTRACK_ITERS = 0.5, 10


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def _kl_logits(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """KL(softmax a ‖ softmax b), from the logits (finite even when a probability underflows)."""
    la, lb = _log_softmax(a), _log_softmax(b)
    return np.sum(np.exp(la) * (la - lb), axis=-1)


@lru_cache(maxsize=512)
def _paths_cached(delta, iters, lr, rewards, start, c, n_bt) -> dict:
    R = np.asarray(rewards, float)
    out = {}
    for m in METHODS:
        theta = np.log(np.asarray(start, float))
        p = np.exp(_log_softmax(theta))
        probs, J, kls, bts = [p], [p @ R], [], []
        for _ in range(iters):
            A = R - p @ R
            old, bt = theta, 0
            ea2 = p @ A**2
            if m == "vanilla PG":
                theta = theta + lr * p * A
            elif not (ea2 > 0 and math.isfinite(ea2)):
                bt = n_bt if m == "TRPO" else 0  # no curvature: no step (as pgcore does)
            elif m == "NPG":
                theta = theta + math.sqrt(2 * delta / ea2) * A
            else:
                full = math.sqrt(2 * delta / ea2) * A
                for bt in range(n_bt):
                    cand = theta + c**bt * full
                    q = np.exp(_log_softmax(cand))
                    if _kl_logits(old, cand) <= delta and q @ A - p @ A > 0:
                        theta = cand
                        break
                else:
                    bt = n_bt
            kls.append(float(_kl_logits(old, theta)))
            bts.append(bt)
            p = np.exp(_log_softmax(theta))
            probs.append(p)
            J.append(float(p @ R))
        out[m] = {
            "probs": np.array(probs),
            "J": np.array(J),
            "kl": np.array(kls),
            "backtracks": np.array(bts),
        }
    return out


def paths(
    delta: float,
    *,
    iters: int = 6,
    lr: float = 2.0,
    rewards=DEFAULT_REWARDS,
    start=DEFAULT_START,
    backtrack_coeff: float = BACKTRACK_COEFF,
    backtrack_iters: int = BACKTRACK_ITERS,
) -> dict:
    """The three paths for the radius δ = ``delta`` in closed form (cached); ``lr`` is VPG's η.

    Returns {method: {"probs": [iters+1, 3], "J": [iters+1], "kl": [iters] (the true
    KL(π_k‖π_{k+1}) of each step), "backtracks": [iters] (TRPO's accepted k, n_bt if rejected;
    0 for the other rules)}}.
    """
    if not (math.isfinite(delta) and delta > 0):
        raise ValueError(f"the radius δ must be positive and finite, got {delta!r}")
    return _paths_cached(
        float(delta),
        int(iters),
        float(lr),
        tuple(map(float, rewards)),
        tuple(map(float, start)),
        float(backtrack_coeff),
        int(backtrack_iters),
    )


def run_paths(
    delta: float,
    *,
    iters: int = 6,
    lr: float = 2.0,
    rewards=DEFAULT_REWARDS,
    start=DEFAULT_START,
) -> dict:
    """The same paths with pgcore's update functions (the reference for :func:`paths`).

    Returns {method: {"probs", "J", "kl", "info": [the update's diagnostics per step]}}.
    """
    if not (math.isfinite(delta) and delta > 0):
        raise ValueError(f"the radius δ must be positive and finite, got {delta!r}")
    mdp = three_armed_bandit(tuple(map(float, rewards)))
    out = {}
    with one_thread():
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
                    info = natural_gradient_step(policy, batch, max_kl=delta, cg_iters=10)
                else:
                    info = trpo_step(policy, batch, max_kl=delta, cg_iters=10)
                p = policy.probs().detach()
                probs.append(p[0].numpy().copy())
                J.append(mdp.performance(p).item())
                kls.append(info["kl"])
                infos.append(info)
            out[method] = {
                "probs": np.array(probs),
                "J": np.array(J),
                "kl": np.array(kls),
                "info": infos,
            }
    return out


def kl_ball(center, delta: float, n: int = 73) -> np.ndarray:
    """The curve {π : KL(center‖π) = δ} on the simplex, [n, 3] (closed: last row = first).

    Along each ray π = center + r·v from the centre the KL grows from 0 to ∞ at the simplex's
    edge (it is convex in π and 0 at the centre), so bisection finds the radius on every ray.
    """
    c = np.clip(np.asarray(center, float), 1e-9, None)
    c = c / c.sum()
    phi = np.linspace(0.0, 2 * math.pi, n)
    # directions in the plane Σπ = 0, as the 2-D picture's unit vectors mapped back
    dx, dy = np.cos(phi), np.sin(phi)
    v3 = dy / (math.sqrt(3) / 2)
    v2 = dx - 0.5 * v3
    v = np.stack([-v2 - v3, v2, v3], axis=-1)
    with np.errstate(divide="ignore"):
        rmax = np.min(np.where(v < 0, c / np.where(v < 0, -v, 1.0), np.inf), axis=-1)
    lo, hi = np.zeros(n), rmax.copy()
    for _ in range(48):
        mid = 0.5 * (lo + hi)
        q = np.clip(c + mid[:, None] * v, 1e-300, None)
        kl = np.sum(c * (np.log(c) - np.log(q)), axis=-1)
        inside = kl < delta
        lo, hi = np.where(inside, mid, lo), np.where(inside, hi, mid)
    pts = c + lo[:, None] * v
    pts[-1] = pts[0]
    return pts


@lru_cache(maxsize=4)
def _static_tables(rewards: tuple) -> dict:
    corners = simplex_xy(np.eye(3))
    edges = np.vstack([corners, corners[:1]])
    R = np.asarray(rewards, float)
    # J is linear on the simplex: its level sets are straight segments between two edges
    levels = {"J": [], "x": [], "y": [], "end": []}
    for level in np.round(np.arange(R.min() + 0.1, R.max() - 0.05, 0.1), 10):
        ends = []
        for i, j in ((0, 1), (1, 2), (2, 0)):
            if (R[i] - level) * (R[j] - level) < 0 or R[i] == level:
                u = (level - R[j]) / (R[i] - R[j]) if R[i] != R[j] else 0.0
                ends.append(u * corners[i] + (1 - u) * corners[j])
        for e, xy in enumerate(ends[:2]):
            levels["J"].append(float(level))
            levels["x"].append(float(xy[0]))
            levels["y"].append(float(xy[1]))
            levels["end"].append(e)
    labels = [f"a{'₁₂₃'[i]} (R = {R[i]:g})" for i in range(3)]
    label_xy = corners + np.array([[-0.02, -0.075], [0.02, -0.075], [0.0, 0.05]])
    return {
        "edges": {"x": edges[:, 0], "y": edges[:, 1], "order": np.arange(4)},
        "levels": levels,
        "corners": {
            "x": label_xy[:, 0],
            "y": label_xy[:, 1],
            "label": labels,
            "align": ["left", "right", "center"],
        },
    }


def compute(
    delta: float,
    k: int,
    *,
    iters: int = 6,
    lr: float = 2.0,
    rewards=DEFAULT_REWARDS,
    start=DEFAULT_START,
) -> dict:
    """The figure's tables at radius δ = ``delta`` and iteration ``k`` (0 … ``iters``)."""
    k = int(round(k))
    if not 0 <= k <= iters:
        raise ValueError(f"the iteration k must be in 0…{iters}, got {k!r}")
    P = paths(delta, iters=iters, lr=lr, rewards=rewards, start=start)
    tables = dict(_static_tables(tuple(map(float, rewards))))

    ball0 = simplex_xy(kl_ball(start, delta))
    tables["ball0"] = {"x": ball0[:, 0], "y": ball0[:, 1], "order": np.arange(len(ball0))}
    center = P["TRPO"]["probs"][k]
    ballk = simplex_xy(kl_ball(center, delta))
    tables["ballk"] = {"x": ballk[:, 0], "y": ballk[:, 1], "order": np.arange(len(ballk))}

    path = {c: [] for c in ("method", "k", "x", "y", "p1", "p2", "p3", "J", "kl")}
    curve = {c: [] for c in ("method", "k", "J")}
    steps = {c: [] for c in ("method", "k", "kl", "backtracks")}
    now = {c: [] for c in ("method", "k", "x", "y", "J", "kl")}
    for m in METHODS:
        probs, J, kl = P[m]["probs"], P[m]["J"], P[m]["kl"]
        xy = simplex_xy(probs)
        for i in range(iters + 1):
            curve["method"].append(m)
            curve["k"].append(i)
            curve["J"].append(J[i])
            if i >= 1:
                steps["method"].append(m)
                steps["k"].append(i)
                steps["kl"].append(kl[i - 1])
                steps["backtracks"].append(int(P[m]["backtracks"][i - 1]))
            if i <= k:
                path["method"].append(m)
                path["k"].append(i)
                path["x"].append(xy[i, 0])
                path["y"].append(xy[i, 1])
                for a in range(3):
                    path[f"p{a + 1}"].append(probs[i, a])
                path["J"].append(J[i])
                path["kl"].append(kl[i - 1] if i >= 1 else 0.0)
        now["method"].append(m)
        now["k"].append(k)
        now["x"].append(xy[k, 0])
        now["y"].append(xy[k, 1])
        now["J"].append(J[k])
        now["kl"].append(kl[k - 1] if k >= 1 else np.nan)
    tables["path"] = path
    tables["now"] = now
    tables["curve"] = curve
    tables["steps"] = steps
    tables["cursor"] = {"k": [k], "delta": [float(delta)]}
    x0 = simplex_xy(np.asarray(start, float))
    tables["start"] = {"x": [x0[0]], "y": [x0[1]], "label": ["π₀"]}
    return tables


def _color(title=None):
    return alt.Color(
        "method:N",
        scale=alt.Scale(domain=list(METHODS), range=[COLORS[m] for m in METHODS]),
        legend=alt.Legend(title=title),
    )


def _panels(iters: int, rewards) -> list:
    R = np.asarray(rewards, float)
    x_scale = alt.Scale(domain=[-0.095, 1.095], nice=False)
    y_scale = alt.Scale(domain=[-0.12, 0.93], nice=False)
    no_axis = None
    X = lambda: alt.X("x:Q", scale=x_scale, axis=no_axis)  # noqa: E731
    Y = lambda: alt.Y("y:Q", scale=y_scale, axis=no_axis)  # noqa: E731
    levels = (
        alt.Chart(alt.Data(name="levels"))
        .mark_line(color=style.SHADE, strokeWidth=1.2, opacity=0.55)
        .encode(
            X(),
            Y(),
            detail="J:Q",
            order="end:Q",
            tooltip=[alt.Tooltip("J:Q", title="J(π) on this line", format=".1f")],
        )
    )
    edges = (
        alt.Chart(alt.Data(name="edges"))
        .mark_line(color=style.NEUTRAL, strokeWidth=1.5)
        .encode(X(), Y(), order="order:Q")
    )
    corners = alt.layer(
        *[
            alt.Chart(alt.Data(name="corners"))
            .transform_filter(alt.datum.align == a)
            .mark_text(align=a, baseline="middle")
            .encode(X(), Y(), text="label:N")
            for a in ("left", "right", "center")
        ]
    )
    ball0 = (
        alt.Chart(alt.Data(name="ball0"))
        .mark_line(color=style.NEUTRAL, strokeWidth=2.5)
        .encode(X(), Y(), order="order:Q")
    )
    ballk = (
        alt.Chart(alt.Data(name="ballk"))
        .mark_line(color=COLORS["TRPO"], strokeWidth=1.5, strokeDash=[4, 3])
        .encode(X(), Y(), order="order:Q")
    )
    tip = [
        alt.Tooltip("method:N", title="rule"),
        alt.Tooltip("k:Q", title="iteration k"),
        alt.Tooltip("p1:Q", title="π(a₁)", format=".3f"),
        alt.Tooltip("p2:Q", title="π(a₂)", format=".3f"),
        alt.Tooltip("p3:Q", title="π(a₃)", format=".3f"),
        alt.Tooltip("J:Q", title="J(π)", format=".3f"),
        alt.Tooltip("kl:Q", title="KL of the step into it", format=".3g"),
    ]
    path_line = (
        alt.Chart(alt.Data(name="path"))
        .mark_line(strokeWidth=2)
        .encode(X(), Y(), _color("update rule"), detail="method:N", order="k:Q")
    )
    path_pts = (
        alt.Chart(alt.Data(name="path"))
        .mark_point(size=40, filled=True)
        .encode(
            X(), Y(), _color("update rule"), shape=alt.Shape("method:N", legend=None), tooltip=tip
        )
    )
    now = (
        alt.Chart(alt.Data(name="now"))
        .mark_point(size=140, filled=False, strokeWidth=2.5)
        .encode(X(), Y(), _color("update rule"))
    )
    start = (
        alt.Chart(alt.Data(name="start"))
        .mark_point(shape="diamond", size=120, filled=True, color=style.NEUTRAL)
        .encode(X(), Y(), tooltip=[alt.Tooltip("label:N", title="starting policy")])
    )
    simplex = alt.layer(
        levels, edges, corners, ball0, ballk, path_line, path_pts, now, start
    ).properties(
        title="Policies on the simplex",
        height=300,  # with the x and y windows above, equal aspect at the book's panel width
    )

    k_axis = alt.Axis(title="iteration k", tickMinStep=1, values=list(range(iters + 1)))
    cursor = (
        alt.Chart(alt.Data(name="cursor"))
        .mark_rule(color=style.NEUTRAL, strokeDash=[4, 3])
        .encode(x="k:Q")
    )
    J_lines = (
        alt.Chart(alt.Data(name="curve"))
        .mark_line(point=True)
        .encode(
            alt.X("k:Q", axis=k_axis, scale=alt.Scale(domain=[0, iters])),
            alt.Y(
                "J:Q", title="true J(πₖ)", scale=alt.Scale(domain=[float(R.min()), float(R.max())])
            ),
            _color(None).legend(None),
            tooltip=[
                alt.Tooltip("method:N", title="rule"),
                alt.Tooltip("k:Q", title="iteration k"),
                alt.Tooltip("J:Q", title="J(πₖ)", format=".4f"),
            ],
        )
    )
    J_now = (
        alt.Chart(alt.Data(name="now"))
        .mark_point(size=140, filled=False, strokeWidth=2.5)
        .encode(x="k:Q", y="J:Q", color=_color(None).legend(None))
    )
    J_panel = alt.layer(cursor, J_lines, J_now).properties(
        title="Performance along each path", height=style.PANEL_HEIGHT
    )

    kl_lines = (
        alt.Chart(alt.Data(name="steps"))
        .mark_line(point=True)
        .encode(
            alt.X("k:Q", axis=k_axis, scale=alt.Scale(domain=[0, iters])),
            alt.Y(
                "kl:Q",
                title="KL(πₖ₋₁ ‖ πₖ) of step k",
                scale=alt.Scale(type="log", domain=[1e-4, 20], clamp=True),
                axis=alt.Axis(format="~g", values=[1e-4, 1e-3, 1e-2, 1e-1, 1, 10]),
            ),
            _color(None).legend(None),
            tooltip=[
                alt.Tooltip("method:N", title="rule"),
                alt.Tooltip("k:Q", title="step k"),
                alt.Tooltip("kl:Q", title="true KL of the step", format=".3g"),
                alt.Tooltip("backtracks:Q", title="TRPO backtracks"),
            ],
        )
    )
    delta_rule = (
        alt.Chart(alt.Data(name="cursor"))
        .mark_rule(color=style.NEUTRAL, strokeWidth=2)
        .encode(y="delta:Q", tooltip=[alt.Tooltip("delta:Q", title="radius δ", format=".3g")])
    )
    kl_now = (
        alt.Chart(alt.Data(name="now"))
        .mark_point(size=140, filled=False, strokeWidth=2.5)
        .encode(x="k:Q", y="kl:Q", color=_color(None).legend(None))
    )
    kl_panel = alt.layer(cursor, delta_rule, kl_lines, kl_now).properties(
        title="True KL of each step (grey line: δ)", height=style.PANEL_HEIGHT
    )
    return [simplex, J_panel, kl_panel]


def _readout(values: dict, tables: dict) -> str:
    delta, k = float(values["delta"]), int(round(values["k"]))
    now = tables["now"]
    J = dict(zip(now["method"], now["J"]))
    kl = dict(zip(now["method"], now["kl"]))
    text = f"At δ = {delta:.3g}, iteration {k}: J = " + ", ".join(
        f"{J[m]:.3f} ({m})" for m in METHODS
    )
    if k == 0:
        return text + " (all start at π₀)."
    steps = tables["steps"]
    bt = [
        b
        for m, i, b in zip(steps["method"], steps["k"], steps["backtracks"])
        if m == "TRPO" and i == k
    ][0]
    if bt == 0:
        trpo = f"TRPO took step {k} in full"
    elif bt >= BACKTRACK_ITERS:
        trpo = f"TRPO rejected step {k}"
    else:
        trpo = f"TRPO shrank step {k} {bt} time{'s' if bt != 1 else ''}"
    return (
        text
        + f". True KL of step {k}: "
        + ", ".join(f"{kl[m]:.3g} ({m})" for m in METHODS)
        + f"; {trpo}."
    )


def trust_region_explorable(
    deltas=DELTAS,
    default: float = DEFAULT_DELTA,
    *,
    iters: int = 6,
    lr: float = 2.0,
    rewards=DEFAULT_REWARDS,
    start=DEFAULT_START,
) -> Explorable:
    """The figure: sliders for the radius δ (log scale) and the iteration k (with a player)."""
    return Explorable(
        compute,
        _panels(iters, rewards),
        [
            Slider("delta", "trust-region radius δ", tuple(deltas), default=default, scale="log"),
            Slider(
                "k",
                "iteration k",
                tuple(range(iters + 1)),
                default=iters,
                fmt="{:d}",
                scale="index",
                play=True,
            ),
        ],
        title="Trust region δ: vanilla PG, NPG and TRPO on the 3-action simplex",
        alt=(
            "Three panels. Left: the probability simplex of a three-armed bandit with the actions "
            "a₁, a₂, a₃ at the corners, straight green level lines of J, the KL ball of radius δ "
            "around the starting policy π₀ (grey), the ball around TRPO's current policy (red, "
            "dashed), and the paths of vanilla PG (orange), NPG (blue) and TRPO (red) up to "
            "iteration k. Middle: the true J of each path against the iteration. Right: the true "
            "KL of each step on a log scale, with δ as a grey line."
        ),
        readout=_readout,
        fixed={"iters": iters, "lr": lr, "rewards": tuple(rewards), "start": tuple(start)},
    )
