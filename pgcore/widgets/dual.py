"""Chapter 2's interactive figure: dual gradient descent on the KL-constrained surrogate.

On the three-armed bandit (one state, so a policy is a point on the probability simplex), dual
gradient descent solves

    max_θ' Ā(θ')  s.t.  D̄_KL(θ') = KL(π_old ‖ π_θ') ≤ δ

by alternating a few gradient-ascent steps on the Lagrangian 𝓛(θ', β) = Ā(θ') − β(D̄_KL − δ)
with the dual step β ← max(0, β + η_β(D̄_KL − δ)). The sliders set the radius δ and the dual
step η_β; the panels show β's trace, the KL's trace against δ, and the policy's path on the
simplex with the KL ball {p : KL(π_old‖p) = δ}.

The runs are :func:`run_dual_batch`, a NumPy copy of the loop of
:func:`pgcore.updates.dual_gradient_descent` for a one-state softmax policy, vectorised over
many (δ, η_β) at once so that the whole slider grid takes a fraction of a second;
``tests/test_widgets_dual.py`` checks it against ``dual_gradient_descent`` itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import altair as alt
import numpy as np

from ..plots import simplex_xy
from . import Explorable, Slider, log_grid, pick_nearest, style

__all__ = [
    "DualRun",
    "run_dual",
    "run_dual_batch",
    "kl_ball",
    "dual_tables",
    "dual_explorable",
    "DELTAS",
    "DUAL_STEPS",
    "START",
    "REWARDS",
    "ITERS",
    "INNER_STEPS",
    "INNER_LR",
]

#: The sliders' grids: the KL radius δ and the dual step size η_β (log scales, 25 values each).
DELTAS = log_grid(0.005, 0.1, 25)
DUAL_STEPS = log_grid(1.0, 30.0, 25)
#: π_old on the bandit with rewards ``REWARDS``: most mass on the worst arm.
START = (0.2, 0.3, 0.5)
REWARDS = (1.0, 0.6, 0.0)
#: Outer iterations (dual steps), gradient steps on θ' per dual step, and their step size η.
ITERS, INNER_STEPS, INNER_LR = 40, 5, 0.5

_SQRT3_2 = math.sqrt(3.0) / 2.0


@dataclass
class DualRun:
    """The traces of one run: radius ``delta`` (δ), dual step ``dual_step`` (η_β), ``beta`` (β after
    each dual step), ``kl`` (D̄_KL after each outer iteration), ``surrogate`` (Ā(θ') − Ā(θ_old)).
    ``probs`` has one row per outer iteration, starting at π_old. ``diverged`` is True if a
    value stopped being finite."""

    delta: float
    dual_step: float
    beta: np.ndarray
    kl: np.ndarray
    surrogate: np.ndarray
    probs: np.ndarray
    diverged: bool

    @property
    def ratio(self) -> np.ndarray:
        """D̄_KL / δ after each outer iteration (1 means the constraint is exactly active)."""
        return self.kl / self.delta

    @property
    def final_kl_ratio(self) -> float:
        return float(self.ratio[-1]) if len(self.kl) else math.nan

    @property
    def crossings(self) -> int:
        """How many times the KL trace crosses δ."""
        return int(np.sum(np.diff(np.sign(self.kl - self.delta)) != 0))

    def settled_at(self, band: float = 0.05) -> float:
        """The first outer iteration (0-based) from which D̄_KL stays within ``band``·δ of δ
        (``inf`` if it never does)."""
        ok = np.abs(self.ratio - 1) < band
        return next((i for i in range(len(ok)) if ok[i:].all()), math.inf)


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def run_dual_batch(
    deltas,
    dual_steps,
    *,
    start=START,
    rewards=REWARDS,
    iters: int = ITERS,
    inner_steps: int = INNER_STEPS,
    lr: float = INNER_LR,
) -> list[DualRun]:
    """Dual gradient descent on the bandit from π_old = ``start``, one run per pair
    (``deltas[i]``, ``dual_steps[i]``), all at once.

    The loop is that of :func:`pgcore.updates.dual_gradient_descent` for a one-state softmax
    policy with logits z and exact advantages A(a) = R(a) − Σ π_old R: ``inner_steps`` steps
    z ← z + η ∇𝓛 with ∇_z Ā = π⊙(A − ⟨π, A⟩) and ∇_z KL(π_old‖π) = π − π_old, then
    β ← max(0, β + η_β (KL − δ)), starting from β = 0.
    """
    deltas = np.atleast_1d(np.asarray(deltas, dtype=float))
    steps = np.atleast_1d(np.asarray(dual_steps, dtype=float))
    deltas, steps = np.broadcast_arrays(deltas, steps)
    if np.any(~np.isfinite(deltas) | (deltas <= 0)) or np.any(~np.isfinite(steps) | (steps <= 0)):
        raise ValueError("run_dual_batch: δ and η_β must be positive and finite")
    n = deltas.size
    p = np.asarray(start, dtype=float)
    p = p / p.sum()
    R = np.asarray(rewards, dtype=float)
    A = R - p @ R
    logp = np.log(p)
    z = np.tile(logp, (n, 1))
    beta = np.zeros(n)
    B, K, S = np.empty((iters, n)), np.empty((iters, n)), np.empty((iters, n))
    P = np.empty((iters + 1, n, 3))
    P[0] = p
    with np.errstate(all="ignore"):
        for k in range(iters):
            for _ in range(inner_steps):
                pi = np.exp(_log_softmax(z))
                z = z + lr * (pi * (A - (pi @ A)[:, None]) - beta[:, None] * (pi - p))
            logpi = _log_softmax(z)
            pi = np.exp(logpi)
            kl = (p * (logp - logpi)).sum(-1)
            beta = np.maximum(0.0, beta + steps * (kl - deltas))
            B[k], K[k], S[k], P[k + 1] = beta, kl, pi @ A, pi
    runs = []
    for i in range(n):
        ok = bool(
            np.isfinite(B[:, i]).all() and np.isfinite(K[:, i]).all() and np.isfinite(P[:, i]).all()
        )
        runs.append(
            DualRun(
                float(deltas.flat[i]),
                float(steps.flat[i]),
                B[:, i].copy(),
                K[:, i].copy(),
                S[:, i].copy(),
                P[:, i].copy(),
                not ok,
            )
        )
    return runs


def run_dual(delta: float, dual_step: float, **kwargs) -> DualRun:
    """One run of :func:`run_dual_batch` (radius δ = ``delta``, dual step η_β = ``dual_step``)."""
    return run_dual_batch([delta], [dual_step], **kwargs)[0]


@lru_cache(maxsize=256)
def _kl_ball(p_old: tuple, delta: float, n: int) -> np.ndarray:
    p = np.asarray(p_old, dtype=float)
    phi = np.linspace(0.0, 2 * np.pi, n)
    # Unit directions in the plane Σ = 0 (orthonormal basis u, v of that plane).
    u = np.array([1.0, -1.0, 0.0]) / math.sqrt(2.0)
    v = np.array([1.0, 1.0, -2.0]) / math.sqrt(6.0)
    d = np.cos(phi)[:, None] * u + np.sin(phi)[:, None] * v
    # Largest step that stays inside the simplex, then bisect KL(p_old ‖ p_old + ρ d) = δ
    # (the KL increases along each ray and tends to +inf at the boundary).
    with np.errstate(divide="ignore"):
        rho_max = np.min(np.where(d < 0, -p / d, np.inf), axis=1)
    lo, hi = np.zeros(n), rho_max * (1 - 1e-12)
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        q = p + mid[:, None] * d
        kl = (p * (np.log(p) - np.log(q))).sum(-1)
        lo, hi = np.where(kl < delta, mid, lo), np.where(kl < delta, hi, mid)
    pts = p + (0.5 * (lo + hi))[:, None] * d
    pts.setflags(write=False)
    return pts


def kl_ball(p_old, delta: float, n: int = 73) -> np.ndarray:
    """``n`` points [n, 3] on the closed curve {p : KL(p_old ‖ p) = δ} in the simplex (the last
    repeats the first). The array is cached and shared: do not modify it."""
    return _kl_ball(tuple(float(x) for x in p_old), float(delta), int(n))


def _sig(x, digits: int = 4) -> np.ndarray:
    """Round to ``digits`` significant digits (what the figure's data need; keeps the page small)."""
    x = np.asarray(x, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        mag = np.where(x == 0, 0, np.floor(np.log10(np.abs(x))))
    scale = 10.0 ** (digits - 1 - mag)
    return np.round(x * scale) / scale


def dual_tables(run: DualRun) -> dict[str, dict[str, np.ndarray]]:
    """The figure's tables for one run: the traces, the radius, the path and the KL ball."""
    it = np.arange(1, len(run.kl) + 1)
    probs = run.probs
    xy = simplex_xy(probs)
    ball = simplex_xy(kl_ball(probs[0], run.delta))
    return {
        "trace": {"iteration": it, "beta": _sig(run.beta), "kl": _sig(run.kl)},
        "radius": {"delta": [run.delta]},
        "path": {
            "iteration": np.arange(len(probs)),
            "x": _sig(xy[:, 0], 4),
            "y": _sig(xy[:, 1], 4),
        },
        "final": {"x": _sig(xy[-1:, 0], 4), "y": _sig(xy[-1:, 1], 4), "label": ["final π"]},
        "start": {"x": xy[:1, 0], "y": xy[:1, 1], "label": ["π_old"]},
        "ball": {"order": np.arange(len(ball)), "x": _sig(ball[:, 0], 4), "y": _sig(ball[:, 1], 4)},
    }


def _panels() -> list:
    P = style.PALETTE
    it_x = alt.X(
        "iteration:Q", title="outer iteration", scale=alt.Scale(domain=[0, ITERS], nice=False)
    )
    trace = alt.Chart(alt.Data(name="trace"))
    tips = [
        alt.Tooltip("iteration:Q", title="iteration"),
        alt.Tooltip("beta:Q", title="β", format=".4g"),
        alt.Tooltip("kl:Q", title="D̄_KL", format=".4g"),
    ]
    beta_panel = (
        alt.layer(
            trace.mark_line(color=P.purple),
            trace.mark_point(color=P.purple, filled=True, size=18, opacity=0.6),
        )
        .encode(it_x, alt.Y("beta:Q", title="multiplier β"), tooltip=tips)
        .properties(height=style.PANEL_HEIGHT, title="Lagrange multiplier β")
    )
    radius = (
        alt.Chart(alt.Data(name="radius"))
        .mark_rule(color=style.NEUTRAL, strokeDash=[6, 4], strokeWidth=2)
        .encode(y="delta:Q", tooltip=[alt.Tooltip("delta:Q", title="radius δ", format=".3g")])
    )
    kl_panel = alt.layer(
        radius,
        trace.mark_line(color=P.orange).encode(
            it_x, alt.Y("kl:Q", title="mean KL D̄_KL"), tooltip=tips
        ),
        trace.mark_point(color=P.orange, filled=True, size=18, opacity=0.6).encode(
            it_x, y="kl:Q", tooltip=tips
        ),
    ).properties(height=style.PANEL_HEIGHT, title="D̄_KL against the radius δ (dashed)")
    # The simplex panel: a fixed window around π_old that holds the largest ball and every path,
    # so that moving δ visibly grows or shrinks the ball.
    x_s = alt.X(
        "x:Q",
        title="simplex x",
        scale=alt.Scale(domain=list(_WINDOW[0]), nice=False, zero=False),
        axis=None,
    )
    y_s = alt.Y(
        "y:Q",
        title="simplex y",
        scale=alt.Scale(domain=list(_WINDOW[1]), nice=False, zero=False),
        axis=None,
    )
    # π from the simplex coordinates (the data carry x, y only): π(a₃) = y/(√3/2), π(a₂) = x − π(a₃)/2.
    path = (
        alt.Chart(alt.Data(name="path"))
        .transform_calculate(
            p3=f"datum.y / {_SQRT3_2!r}", p2=f"datum.x - datum.y / {2 * _SQRT3_2!r}"
        )
        .transform_calculate(p1="1 - datum.p2 - datum.p3")
    )
    path_tips = [
        alt.Tooltip("iteration:Q", title="iteration"),
        alt.Tooltip("p1:Q", title="π(a₁)", format=".3f"),
        alt.Tooltip("p2:Q", title="π(a₂)", format=".3f"),
        alt.Tooltip("p3:Q", title="π(a₃)", format=".3f"),
    ]
    simplex_panel = alt.layer(
        alt.Chart(alt.Data(name="ball"))
        .mark_line(color=style.NEUTRAL, strokeDash=[6, 4], strokeWidth=2, clip=True)
        .encode(x_s, y_s, order="order:Q"),
        path.mark_line(color=P.blue, strokeWidth=1.5, opacity=0.8, clip=True).encode(
            x_s, y_s, order="iteration:Q"
        ),
        path.mark_point(color=P.blue, filled=True, size=22, clip=True).encode(
            x_s, y_s, tooltip=path_tips
        ),
        alt.Chart(alt.Data(name="start"))
        .mark_point(shape="circle", filled=True, size=110, color=style.NEUTRAL)
        .encode(x_s, y_s, tooltip=[alt.Tooltip("label:N", title="policy")]),
        alt.Chart(alt.Data(name="final"))
        .mark_point(shape="diamond", filled=True, size=160, color=P.red, clip=True)
        .encode(x_s, y_s, tooltip=[alt.Tooltip("label:N", title="policy")]),
        alt.Chart(alt.Data(name="start"))
        .mark_text(align="left", dx=9, dy=-9)
        .encode(x_s, y_s, text="label:N"),
        alt.Chart(alt.Data(name="arrow"))
        .mark_text(align="left", baseline="bottom")
        .encode(x_s, y_s, text="label:N"),
    ).properties(height=style.PANEL_HEIGHT, title="Path on the simplex; KL ball dashed")
    return [beta_panel, kl_panel, simplex_panel]


def _window() -> tuple[tuple[float, float], tuple[float, float]]:
    """The simplex panel's x and y ranges: every path of the grid and the largest ball, plus a
    margin, widened to the panel's aspect ratio (so the ball is not drawn squashed)."""
    d_grid, s_grid = np.meshgrid(DELTAS, DUAL_STEPS, indexing="ij")
    runs = run_dual_batch(d_grid.ravel(), s_grid.ravel())
    xy = np.concatenate(
        [simplex_xy(kl_ball(START, max(DELTAS)))] + [simplex_xy(r.probs) for r in runs]
    )
    lo, hi = xy.min(0), xy.max(0)
    pad = 0.06 * (hi - lo).max()
    lo, hi = lo - pad, hi + pad
    mid, half_y = 0.5 * (lo + hi), 0.5 * (hi[1] - lo[1])
    half_x = max(0.5 * (hi[0] - lo[0]), half_y * style.PANEL_WIDTH / style.PANEL_HEIGHT)
    return (float(mid[0] - half_x), float(mid[0] + half_x)), (float(lo[1]), float(hi[1]))


_WINDOW = _window()


def _readout(values: dict, tables: dict) -> str:
    r = np.asarray(tables["trace"]["kl"]) / values["delta"]
    k = int(np.argmax(r))
    near = np.abs(r - 1) < 0.05
    settled = next((i for i in range(len(r)) if near[i:].all()), None)
    x, y = tables["path"]["x"][-1], tables["path"]["y"][-1]
    p3 = y / _SQRT3_2
    p2 = x - p3 / 2
    when = (
        f"it stays within 5% of δ from iteration {settled + 1} on"
        if settled is not None
        else "it has not settled within 5% of δ by the end"
    )
    return (
        f"At δ = {values['delta']:.3g} and η_β = {values['dual_step']:.3g}: the KL peaks at "
        f"{r[k]:.2f} δ (iteration {k + 1}), {when}; after {len(r)} dual steps D̄_KL = {r[-1]:.3f} δ "
        f"and β = {tables['trace']['beta'][-1]:.3g}. Final policy π = ({1 - p2 - p3:.3f}, {p2:.3f}, {p3:.3f})."
    )


def dual_explorable(deltas=DELTAS, dual_steps=DUAL_STEPS) -> Explorable:
    """The chapter-2 figure: sliders for the radius δ and the dual step η_β.

    ``fig.fixed["runs"]`` holds every grid run (computed at once), keyed by (δ, η_β);
    ``compute`` uses it on the grid and runs :func:`run_dual` off the grid (live)."""
    d_grid, s_grid = np.meshgrid(
        np.asarray(deltas, float), np.asarray(dual_steps, float), indexing="ij"
    )
    runs = {(r.delta, r.dual_step): r for r in run_dual_batch(d_grid.ravel(), s_grid.ravel())}
    arrow_xy = (_WINDOW[0][0] + 0.01, _WINDOW[1][0] + 0.01)

    def compute(delta, dual_step, runs):
        run = runs.get((float(delta), float(dual_step)))
        if run is None:
            run = run_dual(delta, dual_step)
        tables = dual_tables(run)
        tables["arrow"] = {
            "x": [arrow_xy[0]],
            "y": [arrow_xy[1]],
            "label": ["↙ towards a₁ (R = 1)"],
        }
        return tables

    return Explorable(
        compute,
        _panels(),
        [
            Slider(
                "delta",
                "KL radius δ",
                tuple(deltas),
                default=pick_nearest(deltas, 0.02),
                scale="log",
            ),
            Slider(
                "dual_step",
                "dual step η_β",
                tuple(dual_steps),
                default=pick_nearest(dual_steps, 10.0),
                scale="log",
            ),
        ],
        title="Dual gradient descent: β and the KL settle at the constraint",
        alt=(
            "Three panels for dual gradient descent on a three-armed bandit. Left: the Lagrange "
            "multiplier β after each of the outer iterations. Middle: the mean KL divergence from "
            "the old policy after each iteration, with the radius δ as a dashed line. Right: the "
            "policy's path on the probability simplex, from the old policy towards the best arm, "
            "with the KL ball of radius δ around the old policy dashed."
        ),
        readout=_readout,
        fixed={"runs": runs},
    )
