"""TRPO's backtracking line search on the exact world (the TRPO chapter, book/05_trpo.md).

Three pieces:

* :class:`OneHotMLPPolicy`, a small tanh MLP on one-hot state features. On a tabular MDP it
  is a *nonlinear* policy class with shared parameters, so the quadratic model of the KL
  and the linear model of the surrogate can be badly wrong for a large trust region, which
  is what the line search is for. (With the tabular softmax the natural step is benign.)
* :func:`line_search_profile` and :func:`backtrack_sweep`, which measure, with pgcore's own
  :func:`~pgcore.updates.natural_gradient_step` and :func:`~pgcore.updates.trpo_step`, the
  true KL, surrogate gain and performance along the natural direction, and how often the
  line search backtracks as the trust-region size δ grows.
* The chapter's figures, drawn from data by Vega-Lite (:mod:`pgcore.widgets`).
  :func:`line_search_explorable` is the interactive one: sliders for δ (log grid) and for the
  starting policy (the MLP after n TRPO iterations, with a player), drawing the KL and the gains
  along the step, the trial points θ_old + cʲΔ and the one the line search accepts. Its tables
  (:func:`widget_tables`) are computed for any δ by a batched evaluation along the natural
  direction, which does not depend on δ; the tests check them against
  :func:`line_search_profile` and :func:`~pgcore.updates.trpo_step`. :func:`sweep_figure`,
  :func:`cost_figure`, :func:`curves_figure` and :func:`kl_figure` are the static figures.
"""

from __future__ import annotations

import copy
import functools
import math

import numpy as np
import torch
from torch import nn
from torch.distributions import Categorical

from pgcore.batch import exact_batch, policy_table
from pgcore.fisher import flat_params, set_flat_params
from pgcore.policies import mlp
from pgcore.tabular import TabularMDP, random_mdp
from pgcore.updates import _natural_direction, natural_gradient_step, trpo_step, update_diagnostics

from . import DataFigure, Explorable, Slider, log_grid, style

__all__ = [
    "OneHotMLPPolicy",
    "policy_probs",
    "line_search_profile",
    "backtrack_sweep",
    "line_search_explorable",
    "WIDGET_DELTAS",
    "WIDGET_ITERS",
]


class OneHotMLPPolicy(nn.Module):
    """π_θ(·|s) = softmax(f_θ(e_s)): a tanh MLP (float64) on the one-hot vector of state s.

    ``seed`` fixes the initial weights (orthogonal init as in :func:`pgcore.policies.mlp`,
    with ``out_gain`` on the last layer: larger gains give less uniform starting policies).
    ``distribution(obs)`` takes state indices, so :func:`~pgcore.batch.exact_batch` and every
    update rule accept it like a tabular policy.
    """

    def __init__(
        self, n_states: int, n_actions: int, hidden=(16,), seed: int = 0, out_gain: float = 1.0
    ):
        super().__init__()
        self.n_states, self.n_actions = int(n_states), int(n_actions)
        state = torch.random.get_rng_state()
        torch.manual_seed(seed)
        try:
            self.net = mlp(self.n_states, self.n_actions, tuple(hidden), out_gain=out_gain).double()
        finally:
            torch.random.set_rng_state(state)

    def distribution(self, obs: torch.Tensor) -> Categorical:
        obs = torch.as_tensor(obs, dtype=torch.long)
        x = nn.functional.one_hot(obs, self.n_states).to(torch.float64)
        return Categorical(logits=self.net(x))


def policy_probs(policy: nn.Module, n_states: int) -> torch.Tensor:
    """The [S, A] table π(a|s) of any policy with ``distribution(state indices)`` (detached).

    The same as :func:`pgcore.batch.policy_table`, under the name chapter 4 uses.
    """
    return policy_table(policy, n_states)


def line_search_profile(
    mdp: TabularMDP,
    policy: nn.Module,
    max_kl: float,
    fractions,
    *,
    cg_iters: int = 10,
    damping: float = 0.0,
    backtrack_iters: int = 10,
    backtrack_coeff: float = 0.5,
) -> dict:
    """What the line search sees along the natural step Δ = sqrt(2δ/gᵀF⁻¹g)·F⁻¹g.

    Δ is the step of :func:`natural_gradient_step` (on a copy of ``policy``) on the exact
    batch. For each step fraction ξ in ``fractions`` the returned arrays hold, at θ_old + ξΔ,
    the true mean KL(π_old‖π) under d^π_old (``kl``), the surrogate gain L(θ) − L(θ_old)
    (``gain``), and the true improvement J(θ) − J(θ_old) (``dJ``). ``model_kl`` is the
    quadratic model ξ²δ. ``trpo`` is the dict that :func:`trpo_step` returns for the same
    policy and batch (``backtracks``, ``accepted``, ``step_fraction``, ...), and ``dJ_trpo``
    the true improvement of its step. ``policy`` is left unchanged.
    """
    fractions = np.asarray(fractions, dtype=float)
    batch = exact_batch(mdp, policy)
    S = mdp.n_states
    J0 = mdp.performance(policy_probs(policy, S)).item()
    theta0 = flat_params(policy)
    work = copy.deepcopy(policy)
    ng = natural_gradient_step(work, batch, max_kl, cg_iters=cg_iters, damping=damping)
    step = flat_params(work) - theta0
    with torch.no_grad():
        old_dist = policy.distribution(batch.obs)
    kl, gain, dJ = [], [], []
    for c in fractions:
        set_flat_params(work, theta0 + float(c) * step)
        diag = update_diagnostics(work, batch, old_dist)
        kl.append(diag["kl"])
        gain.append(diag["surrogate_gain"])
        dJ.append(mdp.performance(policy_probs(work, S)).item() - J0)
    trial = copy.deepcopy(policy)
    info = trpo_step(
        trial,
        batch,
        max_kl,
        cg_iters=cg_iters,
        damping=damping,
        backtrack_iters=backtrack_iters,
        backtrack_coeff=backtrack_coeff,
    )
    return {
        "fractions": fractions,
        "kl": np.array(kl),
        "gain": np.array(gain),
        "dJ": np.array(dJ),
        "model_kl": max_kl * fractions**2 if ng["step_taken"] else np.zeros_like(fractions),
        "full_step_kl": ng["kl"],
        "full_step_gain": ng["surrogate_gain"],
        "step_taken": ng["step_taken"],
        "trpo": info,
        "dJ_trpo": mdp.performance(policy_probs(trial, S)).item() - J0,
    }


def backtrack_sweep(mdp: TabularMDP, make_policy, deltas, seeds, iters: int, **trpo_kwargs) -> dict:
    """Run ``iters`` TRPO iterations on the exact batch from each starting policy, for each δ.

    ``make_policy(seed)`` builds a starting policy. Returns arrays of shape
    [len(deltas), len(seeds), iters]: ``backtracks`` (k of the accepted step, or
    ``backtrack_iters`` when no step qualified), ``accepted``, ``attempted`` (False when the
    natural direction was zero, i.e. the policy had already converged), ``kl_ratio`` (the
    true KL of the *full* natural step divided by δ, measured on a copy with
    :func:`natural_gradient_step`), ``full_gain_ok`` (the full step's surrogate gain was
    positive), ``kl`` (KL of the accepted step), ``J`` (performance after the iteration),
    ``dJ`` (its change in the iteration), ``dJ_full`` (the change the full natural step, with no
    line search, would have made) and ``worst_case``, the lower bound
    −sqrt(2δ)·γ·ā_max/(1−γ)² of Achiam et al. (2017, Prop. 1) on that change, with
    ā_max = max_s |E_{a∼π_new}[A^{π_old}(s, a)]| (the CPO paper's ε); it applies to every step
    whose mean KL is ≤ δ and whose surrogate gain is ≥ 0, so to every step the line search accepts.
    """
    deltas, seeds = list(deltas), list(seeds)
    shape = (len(deltas), len(seeds), int(iters))
    out = {
        k: np.zeros(shape)
        for k in ("backtracks", "kl_ratio", "kl", "J", "dJ", "dJ_full", "worst_case")
    }
    out.update({k: np.zeros(shape, dtype=bool) for k in ("accepted", "attempted", "full_gain_ok")})
    ng_kwargs = {k: v for k, v in trpo_kwargs.items() if k in ("cg_iters", "damping")}
    for i, delta in enumerate(deltas):
        for j, seed in enumerate(seeds):
            policy = make_policy(seed)
            for t in range(int(iters)):
                batch = exact_batch(mdp, policy)
                pi_old = policy_probs(policy, mdp.n_states)
                adv_old = mdp.advantages(pi_old)
                J_old = mdp.performance(pi_old).item()
                work = copy.deepcopy(policy)
                info = trpo_step(policy, batch, delta, **trpo_kwargs)
                pi_new = policy_probs(policy, mdp.n_states)
                if info["accepted"] and info["backtracks"] == 0:
                    # the accepted step is the full natural step θ_old + 1·Δ, bit for bit the
                    # candidate natural_gradient_step would take: reuse its measurements
                    ng = {
                        "step_taken": True,
                        "kl": info["kl"],
                        "surrogate_gain": info["surrogate_gain"],
                    }
                    J_full = mdp.performance(pi_new).item()
                else:
                    ng = natural_gradient_step(work, batch, delta, **ng_kwargs)
                    J_full = mdp.performance(policy_probs(work, mdp.n_states)).item()
                a_bar_max = (pi_new * adv_old).sum(-1).abs().max().item()
                out["backtracks"][i, j, t] = info["backtracks"]
                out["accepted"][i, j, t] = info["accepted"]
                out["attempted"][i, j, t] = ng["step_taken"]
                out["kl_ratio"][i, j, t] = ng["kl"] / delta if ng["step_taken"] else np.nan
                out["full_gain_ok"][i, j, t] = ng["surrogate_gain"] > 0
                out["kl"][i, j, t] = info["kl"]
                out["J"][i, j, t] = mdp.performance(pi_new).item()
                out["dJ"][i, j, t] = out["J"][i, j, t] - J_old
                out["dJ_full"][i, j, t] = J_full - J_old
                out["worst_case"][i, j, t] = (
                    -np.sqrt(2 * delta) * mdp.gamma * a_bar_max / (1 - mdp.gamma) ** 2
                )
    out["deltas"] = np.array(deltas, dtype=float)
    return out


# -- the widget -----------------------------------------------------------------------------
#: δ values of the widget's slider: 25 values evenly spaced in log δ from 0.01 to 10.
WIDGET_DELTAS = log_grid(0.01, 10.0, 25)
#: the widget's starting policies: the one-hot MLP (seed 0) after n TRPO iterations with
#: δ = WIDGET_START_DELTA, for every n from 0 to 6.
WIDGET_ITERS = tuple(range(7))
WIDGET_START_DELTA = 0.1
#: the step fractions ξ = k/32 of the drawn curves (they include the trial points 1, ½, …, 1/32)
WIDGET_FRACTIONS = np.linspace(0.0, 1.0, 33)
#: the line search's settings (pgcore's trpo_step defaults) and how many trials are drawn
WIDGET_C, WIDGET_NBT = 0.5, 10
#: KL/δ above this is drawn at this value (the read-out reports the true value)
WIDGET_KL_CAP = 10.0


@functools.cache
def _widget_mdp() -> TabularMDP:
    return random_mdp(5, 3, gamma=0.9, seed=0)


@functools.cache
def widget_start(n: int) -> OneHotMLPPolicy:
    """The widget's starting policy after ``n`` exact TRPO iterations (δ = WIDGET_START_DELTA)."""
    mdp = _widget_mdp()
    if n == 0:
        return OneHotMLPPolicy(mdp.n_states, mdp.n_actions, hidden=(16,), seed=0)
    policy = copy.deepcopy(widget_start(n - 1))
    trpo_step(policy, exact_batch(mdp, policy), WIDGET_START_DELTA)
    return policy


class _Line:
    """Everything along the natural direction of one starting policy that does not depend on δ.

    The direction x ≈ F⁻¹g (conjugate gradient, as in :func:`trpo_step`, no damping) and xᵀFx
    do not depend on δ: the full step for a radius δ is Δ = sqrt(2δ/xᵀFx)·x, formed exactly as
    :func:`trpo_step` forms it. :meth:`evaluate` measures many points θ_old + ξΔ at once (a
    batched forward pass of the MLP and batched linear solves), with the same formulas as
    :func:`~pgcore.updates.update_diagnostics` and :meth:`TabularMDP.performance`.
    """

    def __init__(self, mdp: TabularMDP, policy: OneHotMLPPolicy):
        self.mdp = mdp
        batch = exact_batch(mdp, policy)
        with torch.no_grad():
            old_dist = policy.distribution(batch.obs)
        nd = _natural_direction(copy.deepcopy(policy), batch, 10, 0.0, old_dist=old_dist)
        self.x, self.xFx = nd["x"], nd["xFx"]
        self.has_step = bool((self.x != 0).any()) and math.isfinite(self.xFx) and self.xFx > 0
        self.theta0 = flat_params(policy)
        # the MLP's layers in order: ("linear", weight shape, bias shape) or ("tanh",)
        self.layers = [
            ("linear", m.weight.shape, m.bias.shape) if isinstance(m, nn.Linear) else ("tanh",)
            for m in policy.net
        ]
        p0 = policy_probs(policy, mdp.n_states)
        self.logp0 = torch.log(p0)
        self.p0 = p0
        self.d0 = mdp.occupancy(p0)
        self.A0 = mdp.advantages(p0)
        self.J0 = mdp.performance(p0).item()
        self.w = self.d0[:, None] * p0  # the exact batch's weights d(s)π_old(a|s)

    def full_step(self, delta: float) -> torch.Tensor:
        if not self.has_step:
            return torch.zeros_like(self.theta0)
        return math.sqrt(2.0 * delta / self.xFx) * self.x

    def logits(self, thetas: torch.Tensor) -> torch.Tensor:
        """The MLP's logits [P, S, A] for each parameter vector in ``thetas`` [P, D] (one-hot states)."""
        P, k = thetas.shape[0], 0
        h = torch.eye(self.mdp.n_states, dtype=torch.float64).expand(P, -1, -1)
        for layer in self.layers:
            if layer[0] == "tanh":
                h = torch.tanh(h)
                continue
            nw, nb = layer[1].numel(), layer[2].numel()
            W = thetas[:, k : k + nw].reshape(P, *layer[1])
            b = thetas[:, k + nw : k + nw + nb]
            k += nw + nb
            h = torch.einsum("psi,pji->psj", h, W) + b[:, None, :]
        return h

    @torch.no_grad()
    def evaluate(self, thetas: torch.Tensor) -> dict:
        """True mean KL(π_old‖π), surrogate gain and J(θ) − J(θ_old) at each row of ``thetas``."""
        logp = torch.log_softmax(self.logits(thetas), dim=-1)
        p = logp.exp()
        t = self.p0 * (self.logp0 - logp)  # as torch's Categorical KL: inf where π rounds to 0
        t = torch.where(p == 0, torch.full_like(t, math.inf), t)
        t = torch.where(self.p0 == 0, torch.zeros_like(t), t)
        kl = (self.w * t.sum(-1, keepdim=True)).sum((-2, -1)) / self.w.sum()
        r = (logp - self.logp0).exp()
        gain = (self.w * r * self.A0).sum((-2, -1)) / self.w.sum() - (
            self.w * self.A0
        ).sum() / self.w.sum()
        mdp = self.mdp
        P_pi = torch.einsum("psa,sat->pst", p, mdp.P)
        R_pi = (p * mdp.R).sum(-1)
        eye = torch.eye(mdp.n_states, dtype=torch.float64)
        V = torch.linalg.solve(eye - mdp.gamma * P_pi, R_pi[..., None])[..., 0]
        dJ = V @ mdp.mu0 - self.J0
        return {"kl": kl.numpy(), "gain": gain.numpy(), "dJ": dJ.numpy()}


@functools.cache
def _widget_line(n: int) -> _Line:
    return _Line(_widget_mdp(), widget_start(int(n)))


def widget_tables(delta: float, n: int) -> dict:
    """The tables the line-search figure draws for radius ``delta`` and starting policy ``n``.

    ``curve``: along θ_old + ξΔ for ξ = k/32, the true mean KL divided by δ (``kl_ratio``, capped
    at WIDGET_KL_CAP for drawing), its quadratic model ξ² (``model``), the surrogate gain scaled by
    1/(1 − γ) (``gain``) and the true change of J (``dJ``). ``trials``: the line search's trial
    points ξ = cʲ up to the accepted one (all n_bt of them if none is accepted), with their
    ``outcome``. ``verdict`` (one row): ``accepted``, ``backtracks``, ``step_fraction``, and the
    uncapped KL/δ, gain and dJ of the full step (``*_full``) and of the accepted step (``*_acc``;
    0 when rejected); a KL that is infinite in floating point is reported as NaN in ``kl_full``
    with ``kl_full_inf`` = 1. ``ref``: the reference levels (KL/δ = 1, gain = 0).
    """
    delta, n = float(delta), int(n)
    line = _widget_line(n)
    scale = 1.0 / (1.0 - line.mdp.gamma)
    trial_xi = WIDGET_C ** np.arange(WIDGET_NBT)
    xi = np.concatenate([WIDGET_FRACTIONS, trial_xi])
    full = line.full_step(delta)
    fr = torch.as_tensor(xi, dtype=torch.float64)
    thetas = line.theta0[None, :] + fr[:, None] * full[None, :]
    ev = line.evaluate(thetas)
    kl, gain, dJ = ev["kl"] / delta, ev["gain"], ev["dJ"]
    m = len(WIDGET_FRACTIONS)
    t_kl, t_gain = ev["kl"][m:], gain[m:]
    ok = (t_kl <= delta) & (t_gain > 0) if line.has_step else np.zeros(WIDGET_NBT, dtype=bool)
    accepted = bool(ok.any())
    bt = int(np.argmax(ok)) if accepted else WIDGET_NBT
    shown = np.arange(bt + 1 if accepted else WIDGET_NBT)
    outcome = np.where(shown == bt, "accepted", "rejected")
    model = WIDGET_FRACTIONS**2 if line.has_step else np.zeros(m)
    full_kl = kl[m]
    j = bt if accepted else 0
    return {
        "curve": {
            "xi": WIDGET_FRACTIONS,
            "kl_ratio": np.minimum(kl[:m], WIDGET_KL_CAP),
            "model": model,
            "gain": scale * gain[:m],
            "dJ": dJ[:m],
        },
        "trials": {
            "j": shown,
            "xi": trial_xi[shown],
            "kl_ratio": np.minimum(kl[m:][shown], WIDGET_KL_CAP),
            "gain": scale * gain[m:][shown],
            "dJ": dJ[m:][shown],
            "outcome": outcome,
        },
        "verdict": {
            "accepted": np.array([accepted]),
            "backtracks": np.array([bt]),
            "step_fraction": np.array([trial_xi[bt] if accepted else 0.0]),
            "kl_full": np.array([full_kl if np.isfinite(full_kl) else np.nan]),
            "kl_full_inf": np.array([int(np.isinf(full_kl))]),
            "gain_full": np.array([scale * gain[m]]),
            "dJ_full": np.array([dJ[m]]),
            "kl_acc": np.array([kl[m + j] if accepted else 0.0]),
            "gain_acc": np.array([scale * gain[m + j] if accepted else 0.0]),
            "dJ_acc": np.array([dJ[m + j] if accepted else 0.0]),
        },
        "ref": {"kl": np.array([1.0]), "zero": np.array([0.0])},
    }


def _line_search_readout(values: dict, tables: dict) -> str:
    v = {k: float(c[0]) for k, c in tables["verdict"].items()}
    head = f"δ = {values['delta']:.2g}, policy after {int(values['n'])} TRPO iterations:"
    kl_full = "infinite in floating point" if v["kl_full_inf"] else f"{v['kl_full']:.3g} δ"
    full = (
        f" the full step has KL {kl_full}, scaled surrogate gain {v['gain_full']:+.3g} and "
        f"change in J {v['dJ_full']:+.3g};"
    )
    if v["accepted"]:
        k = int(v["backtracks"])
        return (
            f"{head}{full} the line search accepts ξ = {v['step_fraction']:.3g} after {k} "
            f"backtrack{'s' if k != 1 else ''} (KL {v['kl_acc']:.3g} δ, change in J "
            f"{v['dJ_acc']:+.3g})."
        )
    return f"{head}{full} no trial is accepted, so the policy stays where it is."


def _line_search_panels() -> list:
    import altair as alt

    x = alt.X(
        "xi:Q",
        title="step fraction ξ (θ = θ_old + ξΔ)",
        scale=alt.Scale(domain=[0, 1], nice=False, padding=0),
        axis=alt.Axis(values=[0, 0.25, 0.5, 0.75, 1], format=".2~f"),
    )
    curve = alt.Chart(alt.Data(name="curve"))
    trials = alt.Chart(alt.Data(name="trials"))
    ref = alt.Chart(alt.Data(name="ref"))
    trial_tip = [
        alt.Tooltip("j:Q", title="backtracks j"),
        alt.Tooltip("xi:Q", title="ξ = cʲ", format=".4g"),
        alt.Tooltip("kl_ratio:Q", title="KL / δ", format=".3g"),
        alt.Tooltip("gain:Q", title="surrogate gain / (1 − γ)", format=".3g"),
        alt.Tooltip("dJ:Q", title="J(θ) − J(θ_old)", format=".3g"),
        alt.Tooltip("outcome:N", title="trial"),
    ]
    outcome_scale = alt.Scale(
        domain=["rejected", "accepted"], range=[style.PALETTE.red, style.PALETTE.green]
    )
    shape_scale = alt.Scale(domain=["rejected", "accepted"], range=["circle", "diamond"])
    outcome = alt.Color("outcome:N", title="trial", scale=outcome_scale)
    shape = alt.Shape("outcome:N", title="trial", scale=shape_scale)

    def series(fields: dict, colors: list, title: str, dashes: list):
        """Two curves of the "curve" table as lines, with invisible points as hover targets."""
        names = list(fields.values())
        folded = curve.transform_fold(list(fields), as_=["key", "value"]).transform_calculate(
            series=" : ".join(f"datum.key == '{k}' ? '{n}'" for k, n in fields.items()) + " : ''"
        )
        y = alt.Y("value:Q", title=title)
        color = alt.Color("series:N", title=None, scale=alt.Scale(domain=names, range=colors))
        lines = folded.mark_line().encode(
            x=x,
            y=y,
            color=color,
            strokeDash=alt.StrokeDash(
                "series:N", title=None, scale=alt.Scale(domain=names, range=dashes)
            ),
        )
        hover = folded.mark_point(opacity=0, size=80).encode(
            x=x,
            y=y,
            color=alt.Color("series:N", scale=alt.Scale(domain=names, range=colors), legend=None),
            tooltip=[
                alt.Tooltip("xi:Q", title="ξ", format=".3g"),
                alt.Tooltip("series:N", title="curve"),
                alt.Tooltip("value:Q", title="value", format=".4g"),
            ],
        )
        return alt.layer(lines, hover)

    kl_lines = series(
        {"kl_ratio": "true mean KL / δ", "model": "quadratic model ξ²"},
        [style.PALETTE.blue, style.PALETTE.blue],
        "mean KL(π_old ‖ π) / δ",
        [[1, 0], [6, 4]],
    )
    gain_lines = series(
        {"gain": "surrogate gain / (1 − γ)", "dJ": "true change J(θ) − J(θ_old)"},
        [style.PALETTE.orange, style.PALETTE.purple],
        "change in J (predicted, true)",
        [[1, 0], [1, 0]],
    )
    pts = dict(size=110, filled=True, opacity=1)
    kl_panel = (
        alt.layer(
            ref.mark_rule(strokeDash=[3, 3]).encode(y="kl:Q"),
            kl_lines,
            trials.mark_point(**pts).encode(
                x=x, y="kl_ratio:Q", color=outcome, shape=shape, tooltip=trial_tip
            ),
        )
        .resolve_scale(color="independent", shape="independent", strokeDash="independent")
        .properties(height=style.PANEL_HEIGHT, title="KL along the step")
    )
    # the trial markers' legend is in the KL panel (two legends side by side do not fit a phone)
    gain_panel = (
        alt.layer(
            ref.mark_rule(strokeDash=[3, 3]).encode(y="zero:Q"),
            gain_lines,
            trials.mark_point(**pts).encode(
                x=x,
                y="gain:Q",
                color=alt.Color("outcome:N", scale=outcome_scale, legend=None),
                shape=alt.Shape("outcome:N", scale=shape_scale, legend=None),
                tooltip=trial_tip,
            ),
        )
        .resolve_scale(color="independent", shape="independent", strokeDash="independent")
        .properties(height=style.PANEL_HEIGHT, title="Gain along the step")
    )
    return [kl_panel, gain_panel]


def line_search_explorable() -> Explorable:
    """δ and the starting policy → the KL and the gains along the natural step, with the trials."""
    return Explorable(
        widget_tables,
        _line_search_panels(),
        [
            Slider(
                "delta",
                "trust-region radius δ",
                WIDGET_DELTAS,
                default=WIDGET_DELTAS[20],
                fmt="{:.2g}",
                scale="log",
            ),
            Slider(
                "n",
                "policy after n iterations",
                WIDGET_ITERS,
                default=6,
                fmt="{:d}",
                scale="index",
                play=True,
            ),
        ],
        title="TRPO's line search along the natural step (one-hot MLP policy, random 5-state MDP)",
        alt=(
            "Two panels along the natural step θ_old + ξΔ, for step fractions ξ from 0 to 1. Left: "
            "the true mean KL divided by δ (values above "
            f"{WIDGET_KL_CAP:g} drawn at {WIDGET_KL_CAP:g}) and its quadratic model ξ², with a "
            "reference line at 1. Right: the surrogate gain scaled by 1/(1 − γ) and the true change "
            "in J, with a line at 0. Markers: the line search's trial points ξ = 1, ½, ¼, …, "
            "rejected or accepted."
        ),
        readout=_line_search_readout,
    )


# -- the chapter's static figures, drawn from data ------------------------------------------
def _per_delta(sweep: dict, values: np.ndarray) -> np.ndarray:
    """Mean of ``values`` [δ, start, iteration] over the iterations that attempted a step, per δ."""
    att = sweep["attempted"]
    return np.array([values[i][att[i]].mean() for i in range(len(sweep["deltas"]))])


def sweep_tables(sweeps: dict, kl_cap: float) -> dict:
    """The table the backtracking-sweep figure draws, from :func:`backtrack_sweep` results.

    ``sweeps`` maps a policy-class name to a sweep. One row per (class, δ): the mean number of
    backtracks per iteration and the fraction of iterations with no accepted step (both over
    the iterations that attempted a step), and the median and interquartile range of the true
    KL of the full natural step divided by δ, over starts and iterations (an infinite KL counts
    as ``kl_cap``).
    """
    cols = {
        k: [] for k in ("policy", "delta", "backtracks", "rejected", "kl_med", "kl_lo", "kl_hi")
    }
    for name, sw in sweeps.items():
        deltas = np.asarray(sw["deltas"], dtype=float)
        ratio = np.minimum(sw["kl_ratio"].reshape(len(deltas), -1), kl_cap)
        lo, med, hi = np.nanpercentile(ratio, [25, 50, 75], axis=1)
        cols["policy"] += [name] * len(deltas)
        cols["delta"] += list(deltas)
        cols["backtracks"] += list(_per_delta(sw, sw["backtracks"]))
        cols["rejected"] += list(_per_delta(sw, ~sw["accepted"]))
        cols["kl_med"] += list(med)
        cols["kl_lo"] += list(lo)
        cols["kl_hi"] += list(hi)
    return {"sweep": {k: np.asarray(v) for k, v in cols.items()}, "ref": {"one": np.array([1.0])}}


def sweep_figure(sweeps: dict, kl_cap: float) -> DataFigure:
    """Backtracks, rejected steps and the full step's KL/δ against δ, per policy class."""
    import altair as alt

    tables = sweep_tables(sweeps, kl_cap)
    names = list(sweeps)
    data = alt.Chart(alt.Data(name="sweep"))
    sw = tables["sweep"]
    decades = np.arange(
        np.floor(np.log10(sw["delta"].min())), np.ceil(np.log10(sw["delta"].max())) + 1
    )
    x = alt.X(
        "delta:Q",
        title="trust-region radius δ",
        scale=alt.Scale(type="log"),
        axis=alt.Axis(values=list(10.0**decades), format="~g"),
    )
    legend = dict(title="policy class", legend=alt.Legend(symbolOpacity=1))
    color = alt.Color(
        "policy:N", scale=alt.Scale(domain=names, range=list(style.PALETTE[: len(names)])), **legend
    )
    shape = alt.Shape(
        "policy:N", scale=alt.Scale(domain=names, range=["square", "circle"]), **legend
    )
    tip = [
        alt.Tooltip("policy:N", title="policy"),
        alt.Tooltip("delta:Q", title="δ", format=".3g"),
        alt.Tooltip("backtracks:Q", title="mean backtracks", format=".3g"),
        alt.Tooltip("rejected:Q", title="fraction rejected", format=".0%"),
        alt.Tooltip("kl_med:Q", title="median KL / δ (full step)", format=".3g"),
        alt.Tooltip("kl_lo:Q", title="25th percentile", format=".3g"),
        alt.Tooltip("kl_hi:Q", title="75th percentile", format=".3g"),
    ]

    def lines(y, panel_title: str, *under):
        return alt.layer(
            *under,
            data.mark_line().encode(x=x, y=y, color=color),
            data.mark_point(filled=True, size=70, opacity=1).encode(
                x=x, y=y, color=color, shape=shape, tooltip=tip
            ),
        ).properties(height=style.PANEL_HEIGHT, title=panel_title)

    kl_top = np.ceil(np.log10(max(float(np.nanmax(sw["kl_hi"])), 1.0)))
    kl_bottom = np.floor(np.log10(float(np.nanmin(sw["kl_lo"]))))
    kl_y = alt.Y(
        "kl_med:Q",
        title="true KL of the full step / δ",
        scale=alt.Scale(type="log"),
        axis=alt.Axis(values=list(10.0 ** np.arange(kl_bottom, kl_top + 1)), format="~g"),
    )
    panels = [
        lines(alt.Y("backtracks:Q", title="mean backtracks per iteration"), "Backtracks"),
        lines(
            alt.Y("rejected:Q", title="fraction of iterations", axis=alt.Axis(format="~%")),
            "No step accepted",
        ),
        lines(
            kl_y,
            "Full step's KL (median, IQR)",
            alt.Chart(alt.Data(name="ref")).mark_rule(strokeDash=[3, 3]).encode(y="one:Q"),
            data.mark_rule(strokeWidth=3, opacity=0.45).encode(
                x=x, y="kl_lo:Q", y2="kl_hi:Q", color=color
            ),
        ),
    ]
    worst = {n: float(sw["backtracks"][sw["policy"] == n][-1]) for n in names}
    readout = (
        "At the largest δ: "
        + "; ".join(f"{n} {b:.2f} backtracks per iteration" for n, b in worst.items())
        + "."
    )
    return DataFigure(
        tables,
        panels,
        title="TRPO's line search on the exact world, against δ",
        alt=(
            "Three panels against the trust-region radius δ (log scale), one line per policy class "
            f"({', '.join(names)}): the mean number of backtracks per iteration; the fraction of "
            "iterations in which no trial step was accepted; and the true mean KL of the full natural "
            "step divided by δ (median, with the interquartile range as a vertical bar, log scale, "
            "reference line at 1)."
        ),
        readout=readout,
    )


def cost_figure(profiles: dict, parts: list, cg_iters: int, damping: float) -> DataFigure:
    """Wall time of the parts of one TRPO iteration, and CG's relative residual, per policy.

    ``profiles`` maps a label to a dict with ``times`` (part → seconds) and ``residuals``.
    """
    import altair as alt

    labels = list(profiles)
    times = {"part": [], "policy": [], "ms": []}
    cg = {"iteration": [], "policy": [], "residual": []}
    for label, prof in profiles.items():
        for part in parts:
            times["part"].append(part)
            times["policy"].append(label)
            times["ms"].append(1e3 * prof["times"][part])
        res = np.asarray(prof["residuals"], dtype=float)
        cg["iteration"] += list(range(1, len(res) + 1))
        cg["policy"] += [label] * len(res)
        cg["residual"] += list(res)
    tables = {
        "times": {k: np.asarray(v) for k, v in times.items()},
        "cg": {k: np.asarray(v) for k, v in cg.items()},
    }
    color = alt.Color(
        "policy:N",
        title="policy",
        scale=alt.Scale(domain=labels, range=list(style.PALETTE[: len(labels)])),
    )
    ms = tables["times"]["ms"]
    ms_decades = 10.0 ** np.arange(np.floor(np.log10(ms.min())), np.ceil(np.log10(ms.max())) + 1)
    bars = (
        alt.Chart(alt.Data(name="times"))
        .mark_point(filled=True, size=90, opacity=1)
        .encode(
            y=alt.Y("part:N", title=None, sort=parts, axis=alt.Axis(labelLimit=260)),
            yOffset=alt.YOffset("policy:N", sort=labels, scale=alt.Scale(paddingOuter=0.5)),
            x=alt.X(
                "ms:Q",
                title="wall time (ms)",
                scale=alt.Scale(type="log", domain=[float(ms_decades[0]), float(ms_decades[-1])]),
                axis=alt.Axis(values=list(ms_decades), format="~g"),
            ),
            color=alt.Color(
                "policy:N",
                scale=alt.Scale(domain=labels, range=list(style.PALETTE[: len(labels)])),
                legend=None,
            ),
            shape=alt.Shape(
                "policy:N", scale=alt.Scale(domain=labels, range=["circle", "square"]), legend=None
            ),
            tooltip=[
                alt.Tooltip("part:N", title="part"),
                alt.Tooltip("policy:N", title="policy"),
                alt.Tooltip("ms:Q", title="ms", format=".3g"),
            ],
        )
        .properties(height=style.PANEL_HEIGHT + 40, title="One TRPO iteration, by part")
    )
    res = tables["cg"]["residual"]
    res_decades = 10.0 ** np.arange(np.floor(np.log10(res.min())), np.ceil(np.log10(res.max())) + 1)
    cg_y = alt.Y(
        "residual:Q",
        title="‖g − (F + κI)x‖ / ‖g‖",
        scale=alt.Scale(type="log"),
        axis=alt.Axis(values=list(res_decades), format="~e"),
    )
    cg_x = alt.X(
        "iteration:Q", title="CG iteration (= Fisher-vector products)", axis=alt.Axis(tickMinStep=1)
    )
    cg_tip = [
        alt.Tooltip("policy:N", title="policy"),
        alt.Tooltip("iteration:Q", title="CG iteration"),
        alt.Tooltip("residual:Q", title="relative residual", format=".2e"),
    ]
    cg_panel = alt.layer(
        alt.Chart(alt.Data(name="cg")).mark_line().encode(x=cg_x, y=cg_y, color=color),
        alt.Chart(alt.Data(name="cg"))
        .mark_point(filled=True, size=60, opacity=1)
        .encode(
            x=cg_x,
            y=cg_y,
            color=color,
            shape=alt.Shape(
                "policy:N",
                title="policy",
                scale=alt.Scale(domain=labels, range=["circle", "square"]),
            ),
            tooltip=cg_tip,
        ),
    ).properties(height=style.PANEL_HEIGHT, title=f"CG residual, damping κ = {damping:g}")
    final = {label: float(prof["residuals"][-1]) for label, prof in profiles.items()}
    readout = (
        f"Relative CG residual after {cg_iters} iterations: "
        + "; ".join(f"{label} {r:.1e}" for label, r in final.items())
        + "."
    )
    return DataFigure(
        tables,
        [bars, cg_panel],
        title="What one TRPO iteration costs on CartPole",
        alt=(
            "First panel: the wall time in milliseconds, on a log scale, of each part of one TRPO "
            f"iteration ({', '.join(parts)}), a marker for each of {' and '.join(labels)}. Second: the "
            f"relative residual of conjugate gradient over its {cg_iters} iterations, log scale, for "
            "the same two policies."
        ),
        readout=readout,
    )


def curves_figure(runs: dict, solved: dict, window: int) -> DataFigure:
    """Learning curves of stored runs: each seed, the mean over seeds and the min–max band.

    ``runs`` maps an environment id to ``(data, meta)`` as ``trpo_runs.load_runs`` returns them;
    ``solved`` maps it to the "solved" level drawn as a dotted line; ``window`` is the number of
    episodes each point averages.
    """
    import altair as alt

    seeds = {"env": [], "step": [], "seed": [], "ret": []}
    band = {"env": [], "step": [], "mean": [], "lo": [], "hi": []}
    level = {"env": [], "level": []}
    for env_id, (data, meta) in runs.items():
        steps, curves = data["env_steps"][0], np.asarray(data["mean_return"], dtype=float)
        for row, seed in enumerate(meta["seeds"]):
            seeds["env"] += [env_id] * len(steps)
            seeds["step"] += list(steps)
            seeds["seed"] += [f"seed {seed}"] * len(steps)
            seeds["ret"] += list(curves[row])
        band["env"] += [env_id] * len(steps)
        band["step"] += list(steps)
        band["mean"] += list(curves.mean(0))
        band["lo"] += list(curves.min(0))
        band["hi"] += list(curves.max(0))
        level["env"].append(env_id)
        level["level"].append(float(solved[env_id]))
    tables = {
        "seeds": {k: np.asarray(v) for k, v in seeds.items()},
        "band": {k: np.asarray(v) for k, v in band.items()},
        "solved": {k: np.asarray(v) for k, v in level.items()},
    }
    x = alt.X("step:Q", title="environment steps", axis=alt.Axis(format="~s"))
    y_title = f"mean return (last {window} episodes)"
    panels = []
    for env_id, (_data, meta) in runs.items():
        keep = alt.datum.env == env_id
        n_seeds = len(meta["seeds"])
        series = alt.Color(
            "series:N",
            title=None,
            scale=alt.Scale(
                domain=[f"mean of {n_seeds} seeds", "each seed"],
                range=[style.PALETTE.blue, style.NEUTRAL],
            ),
            legend=alt.Legend(symbolOpacity=1, symbolType="stroke"),
        )
        panels.append(
            alt.layer(
                alt.Chart(alt.Data(name="band"))
                .transform_filter(keep)
                .mark_area(opacity=0.2, color=style.PALETTE.blue)
                .encode(x=x, y=alt.Y("lo:Q", title=y_title), y2="hi:Q"),
                alt.Chart(alt.Data(name="seeds"))
                .transform_filter(keep)
                .transform_calculate(series="'each seed'")
                .mark_line(strokeWidth=1, opacity=0.6)
                .encode(x=x, y="ret:Q", detail="seed:N", color=series),
                alt.Chart(alt.Data(name="band"))
                .transform_filter(keep)
                .transform_calculate(series=f"'mean of {n_seeds} seeds'")
                .mark_line()
                .encode(x=x, y="mean:Q", color=series),
                alt.Chart(alt.Data(name="band"))
                .transform_filter(keep)
                .mark_point(opacity=0, size=60)
                .encode(
                    x=x,
                    y="mean:Q",
                    tooltip=[
                        alt.Tooltip("step:Q", title="steps", format=","),
                        alt.Tooltip("mean:Q", title="mean over seeds", format=".1f"),
                        alt.Tooltip("lo:Q", title="lowest seed", format=".1f"),
                        alt.Tooltip("hi:Q", title="highest seed", format=".1f"),
                    ],
                ),
                alt.Chart(alt.Data(name="solved"))
                .transform_filter(keep)
                .mark_rule(strokeDash=[2, 3], strokeWidth=1.5)
                .encode(y="level:Q", tooltip=[alt.Tooltip("level:Q", title='"solved" level')]),
            ).properties(
                height=style.PANEL_HEIGHT, title=f"{env_id}, TRPO δ = {meta['hparams']['max_kl']:g}"
            )
        )
    finals = {
        env_id: np.asarray(data["mean_return"], dtype=float)[:, -1].mean()
        for env_id, (data, _) in runs.items()
    }
    return DataFigure(
        tables,
        panels,
        title="TRPO learning curves (stored runs)",
        alt=(
            "One panel per task ("
            + ", ".join(runs)
            + f"): the mean return of the last {window} training episodes against environment steps, "
            "a grey line per seed, the mean over seeds as a blue line with the min–max range over "
            "seeds shaded in blue, "
            'and a dotted line at the task\'s "solved" level.'
        ),
        readout="Final mean return over seeds: "
        + "; ".join(f"{env_id} {v:.0f}" for env_id, v in finals.items())
        + ".",
    )


def kl_figure(runs: dict) -> DataFigure:
    """The batch mean KL of every accepted step of the stored runs, divided by δ, per iteration."""
    import altair as alt

    cols = {"env": [], "iteration": [], "seed": [], "ratio": [], "backtracks": []}
    for env_id, (data, meta) in runs.items():
        delta = meta["hparams"]["max_kl"]
        acc = data["accepted"].astype(bool)
        for row, seed in enumerate(meta["seeds"]):
            it = np.flatnonzero(acc[row])
            cols["env"] += [env_id] * len(it)
            cols["iteration"] += list(it)
            cols["seed"] += [f"seed {seed}"] * len(it)
            cols["ratio"] += list(data["kl"][row][it] / delta)
            cols["backtracks"] += list(data["backtracks"][row][it].astype(int))
    tables = {"kl": {k: np.asarray(v) for k, v in cols.items()}, "ref": {"one": np.array([1.0])}}
    cols["line search"] = np.where(
        np.asarray(cols["backtracks"]) == 0,
        "accepted at once",
        np.where(np.asarray(cols["backtracks"]) == 1, "after 1 backtrack", "after 2 or more"),
    )
    tables["kl"]["line search"] = cols["line search"]
    kinds = ["accepted at once", "after 1 backtrack", "after 2 or more"]
    color = alt.Color(
        "line search:N",
        title="step taken",
        scale=alt.Scale(
            domain=kinds, range=[style.PALETTE.blue, style.PALETTE.orange, style.PALETTE.purple]
        ),
        legend=alt.Legend(symbolOpacity=1),
    )
    y = alt.Y(
        "ratio:Q",
        title="KL(π_old ‖ π_new) / δ",
        scale=alt.Scale(domain=[0, 1.05], nice=False),
    )
    panels = [
        alt.layer(
            alt.Chart(alt.Data(name="ref")).mark_rule(strokeDash=[3, 3]).encode(y="one:Q"),
            alt.Chart(alt.Data(name="kl"))
            .transform_filter(alt.datum.env == env_id)
            .mark_circle(size=14, opacity=0.7)
            .encode(
                x=alt.X("iteration:Q", title="iteration"),
                y=y,
                color=color,
                tooltip=[
                    alt.Tooltip("seed:N", title="seed"),
                    alt.Tooltip("iteration:Q", title="iteration"),
                    alt.Tooltip("ratio:Q", title="KL / δ", format=".3f"),
                    alt.Tooltip("backtracks:Q", title="backtracks"),
                ],
            ),
        ).properties(
            height=style.PANEL_HEIGHT, title=f"{env_id}, δ = {meta['hparams']['max_kl']:g}"
        )
        for env_id, (_, meta) in runs.items()
    ]
    ratio = tables["kl"]["ratio"]
    return DataFigure(
        tables,
        panels,
        title="The KL of every accepted TRPO step, divided by δ",
        alt=(
            "One panel per task ("
            + ", ".join(runs)
            + "): a dot per accepted step of every seed, at its iteration and its batch mean KL "
            "divided by δ, on a scale from 0 to 1.05 with a dashed line at 1; the colour says "
            "whether the step was accepted at once, after one backtrack or after more."
        ),
        readout=f"Over {len(ratio)} accepted steps: largest KL/δ {ratio.max():.4f}, median {np.median(ratio):.2f}.",
    )
