"""TRPO's backtracking line search on the exact world (chapter 4).

Two pieces:

* :class:`OneHotMLPPolicy`, a small tanh MLP on one-hot state features. On a tabular MDP it
  is a *nonlinear* policy class with shared parameters, so the quadratic model of the KL
  and the linear model of the surrogate can be badly wrong for a large trust region, which
  is what the line search is for. (With the tabular softmax the natural step is benign.)
* :func:`line_search_profile` and :func:`backtrack_sweep`, which measure, with pgcore's own
  :func:`~pgcore.updates.natural_gradient_step` and :func:`~pgcore.updates.trpo_step`, the
  true KL, surrogate gain and performance along the natural direction, and how often the
  line search backtracks as the trust-region size δ grows.

:func:`line_search_explorable` is the chapter's widget: a slider for δ and one for the
starting policy, drawing the KL and the gain along the step, the trial points θ_old + cᵏΔ
and the one the line search accepts.
"""

from __future__ import annotations

import copy
import functools

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn
from torch.distributions import Categorical

from pgcore.batch import exact_batch, policy_table
from pgcore.fisher import flat_params, set_flat_params
from pgcore.policies import mlp
from pgcore.tabular import TabularMDP, random_mdp
from pgcore.updates import natural_gradient_step, trpo_step, update_diagnostics

from . import Explorable, Slider

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
                ng = natural_gradient_step(work, batch, delta, **ng_kwargs)
                J_full = mdp.performance(policy_probs(work, mdp.n_states)).item()
                info = trpo_step(policy, batch, delta, **trpo_kwargs)
                pi_new = policy_probs(policy, mdp.n_states)
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
#: δ values of the widget's slider (log-spaced).
WIDGET_DELTAS = tuple(float(f"{d:.2g}") for d in np.logspace(-2, 1, 8))
#: the widget's starting policies: the one-hot MLP (seed 0) after n TRPO iterations with
#: δ = WIDGET_START_DELTA.
WIDGET_ITERS = (0, 1, 5, 6)
WIDGET_START_DELTA = 0.1
_FRACTIONS = np.linspace(0.0, 1.0, 31)


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


@functools.cache
def widget_profile(delta: float, n: int) -> dict:
    """The line-search profile the widget draws for radius ``delta`` and starting policy ``n``."""
    fr = np.union1d(_FRACTIONS, 0.5 ** np.arange(6))
    return line_search_profile(_widget_mdp(), widget_start(int(n)), float(delta), fr)


def _draw_line_search(delta: float, n: int) -> plt.Figure:
    prof = widget_profile(float(delta), int(n))
    info = prof["trpo"]
    c = prof["fractions"]
    scale = 1.0 / (1.0 - _widget_mdp().gamma)
    kl, gain = prof["kl"] / delta, scale * prof["gain"]
    # the trial points ξ = 0.5^k up to the accepted one (or the first few, if none was accepted)
    trials = 0.5 ** np.arange(min(int(info["backtracks"]) + 1, 6))
    idx = np.array([int(np.argmin(np.abs(c - f))) for f in trials])
    ok = np.zeros(len(trials), dtype=bool)
    if info["accepted"]:
        ok[int(info["backtracks"])] = True

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9.0, 3.9))
    fig.subplots_adjust(left=0.08, right=0.98, top=0.84, bottom=0.33, wspace=0.25)
    ax1.plot(c, kl, color="C0", label="true KL / δ")
    ax1.plot(c, prof["model_kl"] / delta, color="C0", ls="--", label="quadratic model ξ²")
    ax1.axhline(1.0, color="k", lw=0.8)
    ax2.plot(c, gain, color="C1", label="surrogate gain / (1 − γ)")
    ax2.plot(c, prof["dJ"], color="C2", label="true gain J(θ) − J(θ_old)")
    ax2.axhline(0.0, color="k", lw=0.8)
    for ax, y in ((ax1, kl), (ax2, gain)):
        ax.plot(trials[~ok], y[idx[~ok]], "o", ms=7, mfc="none", color="C3", label="rejected trial")
        ax.plot(trials[ok], y[idx[ok]], "o", ms=7, color="C2", label="accepted trial")
        ax.set_xlabel("step fraction ξ (θ = θ_old + ξΔ)")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, fontsize=8)
    ax1.set_ylim(0, max(2.0, min(float(np.nanmax(kl)) * 1.05, 20.0)))
    ax1.set_ylabel("mean KL(π_old‖π) / δ")
    ax2.set_ylabel("improvement")
    verdict = (
        f"accepted after {info['backtracks']} backtrack(s), ξ = {info['step_fraction']:.3g}"
        if info["accepted"]
        else "no trial accepted: step rejected"
    )
    fig.suptitle(f"δ = {delta:.2g}, policy after {n} TRPO iterations: {verdict}", fontsize=10)
    return fig


def line_search_explorable() -> Explorable:
    """δ and the starting policy → the KL and the gains along the natural step, with the trials."""
    return Explorable(
        draw=_draw_line_search,
        sliders=[
            Slider("delta", "δ (max KL)", WIDGET_DELTAS, default=WIDGET_DELTAS[3], fmt="{:.2g}"),
            Slider("n", "policy after n iterations", WIDGET_ITERS, default=0, fmt="{:d}"),
        ],
        title="TRPO's line search along the natural step (one-hot MLP policy, random 5-state MDP)",
    )
