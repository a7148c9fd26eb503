"""Chapter 6 (PPO) figures: the clip ε and the KL penalty (β, d_targ), on the exact world.

Both interactive figures move a tabular softmax policy on a small random MDP with full-batch
Adam on the exact batch (every state-action pair, weighted by d^π(s)·π(a|s), with its exact
advantage), so every number is free of sampling noise:

* :func:`clip_explorable` (sliders ε and K, with a player over K): one L^CLIP term against r
  for A > 0 and A < 0 with the exact world's pairs placed at their ratios after K epochs, the
  largest and smallest ratio after each epoch, and the true mean KL(π_old‖π) after each epoch.
  Clipping zeroes the gradient of a clipped term, but it does not stop the ratios (or the KL)
  from moving on.
* :func:`beta_explorable` (sliders d_targ and fixed β): PPO with the adaptive KL penalty
  against a fixed penalty, iteration by iteration: the β each update used, its KL and J(π).

Two implementations of the same update live here. :func:`clip_run` and :func:`kl_penalty_run`
call pgcore's own :func:`~pgcore.updates.ppo_update` (PyTorch); the chapter's tables and the
tests use them. The figures must recompute in well under 0.1 s for any slider value, which
PyTorch's per-call overhead does not allow, so they use :func:`fast_clip_run` and
:func:`fast_kl_penalty_run`: the same full-batch Adam on the same loss, transcribed in NumPy
with the softmax gradient written out. ``tests/test_widgets_ppo.py`` checks that the two agree
to 1e-9 on ratios, KL, J and β.

The static figures of the chapter (the clipped objective, the CartPole epochs experiment, the
ablation and the Table 1 replication) are built by the ``*_figure`` functions from the
chapter's own data.
"""

from __future__ import annotations

from functools import lru_cache

import altair as alt
import numpy as np
import torch

from pgcore.batch import exact_batch
from pgcore.objectives import ratio
from pgcore.policies import TabularSoftmaxPolicy
from pgcore.tabular import TabularMDP, random_mdp
from pgcore.updates import AdaptiveKL, ppo_update, update_diagnostics
from pgcore.widgets import DataFigure, Explorable, Slider, linear_grid, log_grid, style

__all__ = [
    "EXACT_WORLD",
    "TABULAR_LR",
    "exact_problem",
    "clip_term",
    "clip_run",
    "kl_penalty_run",
    "optimal_performance",
    "fast_clip_run",
    "fast_kl_penalty_run",
    "clip_compute",
    "beta_compute",
    "clip_explorable",
    "beta_explorable",
    "lclip_figure",
    "cartpole_kl_figure",
    "ablation_figure",
    "table1_figure",
    "CLIP_VALUES",
    "CLIP_GRID",
    "EPOCH_VALUES",
    "D_TARG_GRID",
    "BETA_GRID",
    "PENALTY_ITERS",
    "PENALTY_EPOCHS",
]

#: The exact world of the chapter: a random MDP and the initial policy's logit scale and seed.
EXACT_WORLD = {"n_states": 6, "n_actions": 3, "gamma": 0.9, "seed": 5, "logit_scale": 0.5}
#: Adam's step size η for the tabular logits in both figures.
TABULAR_LR = 0.05

#: The clip ranges of the chapter's exact-MDP table.
CLIP_VALUES = (0.1, 0.2, 0.3, 0.5)
#: The clip figure's ε grid: 28 values 0.05, 0.0667, …, 0.5 (step 1/60; 0.1, 0.2, 0.3, 0.5 on it).
CLIP_GRID = linear_grid(0.05, 0.5, 28)
#: The clip figure's epochs K = 0 … 30 (the player steps through them).
EPOCH_VALUES = tuple(range(31))
#: The penalty figure's d_targ grid: 25 values, evenly spaced in log from 0.001 to 0.1.
D_TARG_GRID = log_grid(0.001, 0.1, 25)
#: The penalty figure's fixed-β grid: 25 values, evenly spaced in log from 0.1 to 100.
BETA_GRID = log_grid(0.1, 100.0, 25)
#: Iterations and epochs per iteration of the penalty runs.
PENALTY_ITERS, PENALTY_EPOCHS = 20, 10

_A_POS, _A_NEG = "A > 0", "A < 0"
_FLAT, _SLOPED = "flat: gradient zero", "sloped: gradient A"
_ADAPTIVE, _FIXED = "adaptive β (d_targ)", "fixed β"


# -- the exact world, PyTorch (pgcore's ppo_update) ---------------------------------------------
def exact_problem() -> tuple[TabularMDP, TabularSoftmaxPolicy]:
    """The chapter's exact world: (MDP, a fresh copy of the initial policy π_old)."""
    w = EXACT_WORLD
    mdp = random_mdp(w["n_states"], w["n_actions"], gamma=w["gamma"], seed=w["seed"])
    gen = torch.Generator().manual_seed(w["seed"])
    logits = w["logit_scale"] * torch.randn(
        w["n_states"], w["n_actions"], generator=gen, dtype=torch.float64
    )
    return mdp, TabularSoftmaxPolicy(w["n_states"], w["n_actions"], logits=logits)


def clip_term(r, adv: float, clip: float) -> np.ndarray:
    """One L^CLIP term, min(r·A, clip(r, 1−ε, 1+ε)·A), for an array of ratios r."""
    r = np.asarray(r, dtype=float)
    return np.minimum(r * adv, np.clip(r, 1.0 - clip, 1.0 + clip) * adv)


@lru_cache(maxsize=64)
def clip_run(
    clip: float,
    max_epochs: int = max(EPOCH_VALUES),
    lr: float = TABULAR_LR,
    objective: str = "clip",
) -> dict:
    """K = 0 … ``max_epochs`` epochs of PPO-clip on the exact batch of the initial policy.

    Each epoch is one full-batch Adam step on L^CLIP (advantages normalised, as in
    training) through :func:`pgcore.updates.ppo_update`; the optimiser and π_old (the
    batch's ``logp_old``) are shared by all epochs, so stopping after K epochs gives the
    same policy as ``ppo_update(..., epochs=K)``. Returns arrays over k = 0 … max_epochs:
    ``kl`` (true mean KL(π_old‖π_k)), ``max_ratio``, ``min_ratio``, ``clipfrac`` (weighted
    fraction with |r − 1| > ε), ``J`` (true performance), ``surrogate`` (E[r·A] − E[A]),
    and ``ratios`` [k, pairs] with the pairs' ``adv`` and ``weights``. With
    ``objective="none"`` the same loop maximises E[r·A] unclipped (``clip`` then only sets
    the band that ``clipfrac`` counts).
    """
    mdp, policy = exact_problem()
    batch = exact_batch(mdp, policy)
    with torch.no_grad():
        old_dist = policy.distribution(batch.obs)
    opt = torch.optim.Adam(policy.parameters(), lr=lr, eps=1e-5)
    rec: dict[str, list] = {
        k: [] for k in ("kl", "max_ratio", "min_ratio", "clipfrac", "J", "surrogate", "ratios")
    }

    def record() -> None:
        diag = update_diagnostics(policy, batch, old_dist, clip=clip)
        with torch.no_grad():
            r = ratio(policy, batch)
            rec["kl"].append(diag["kl"])
            rec["max_ratio"].append(diag["ratio_max"])
            rec["min_ratio"].append(diag["ratio_min"])
            rec["clipfrac"].append(diag["clipfrac"])
            rec["J"].append(float(mdp.performance(policy.probs())))
            rec["surrogate"].append(float((batch.weights * r * batch.advantages).sum()))
            rec["ratios"].append(r.numpy().copy())

    record()
    for _ in range(max_epochs):
        ppo_update(
            policy,
            batch,
            objective=objective,
            clip=clip,
            epochs=1,
            optimizer=opt,
            normalize_advantages=True,
        )
        record()
    out = {k: np.asarray(v) for k, v in rec.items()}
    out["adv"] = batch.advantages.numpy().copy()
    out["weights"] = batch.weights.numpy().copy()
    out["J_old"] = out["J"][0]
    return out


@lru_cache(maxsize=64)
def kl_penalty_run(
    mode: str,
    value: float,
    iters: int = PENALTY_ITERS,
    epochs: int = PENALTY_EPOCHS,
    lr: float = TABULAR_LR,
    beta0: float = 1.0,
) -> dict:
    """``iters`` iterations of PPO with a KL penalty on the exact world.

    ``mode`` is ``"adaptive"`` (``value`` = d_targ, β starts at ``beta0`` and follows
    :class:`~pgcore.updates.AdaptiveKL`) or ``"fixed"`` (``value`` = β). Each iteration
    builds the exact batch of the current policy and runs ``epochs`` full-batch Adam steps
    of :func:`~pgcore.updates.ppo_update` (advantages normalised). Returns arrays:
    ``beta`` (the β used in iteration i, length iters), ``beta_next`` (β after the rule),
    ``kl`` (true mean KL(π_old‖π_new) of iteration i) and ``J`` (J before iteration 0 and
    after each iteration, length iters + 1), plus ``J_star``, the optimal performance.
    """
    if mode not in ("adaptive", "fixed"):
        raise ValueError(f"mode must be 'adaptive' or 'fixed', got {mode!r}")
    mdp, policy = exact_problem()
    coef: float | AdaptiveKL = AdaptiveKL(beta0, value) if mode == "adaptive" else float(value)
    betas, betas_next, kls, Js = [], [], [], [float(mdp.performance(policy.probs().detach()))]
    for _ in range(iters):
        batch = exact_batch(mdp, policy)
        betas.append(coef.beta if isinstance(coef, AdaptiveKL) else coef)
        info = ppo_update(
            policy,
            batch,
            objective="adaptive-kl" if mode == "adaptive" else "fixed-kl",
            beta=coef,
            epochs=epochs,
            lr=lr,
            normalize_advantages=True,
        )
        betas_next.append(info["beta_next"])
        kls.append(info["kl"])
        Js.append(float(mdp.performance(policy.probs().detach())))
    return {
        "beta": np.asarray(betas),
        "beta_next": np.asarray(betas_next),
        "kl": np.asarray(kls),
        "J": np.asarray(Js),
        "J_star": optimal_performance(mdp),
    }


def optimal_performance(mdp: TabularMDP, iters: int = 2000) -> float:
    """J* by value iteration (to convergence within 1e-12)."""
    V = torch.zeros(mdp.n_states, dtype=torch.float64)
    for _ in range(iters):
        Q = mdp.R + mdp.gamma * torch.einsum("sat,t->sa", mdp.P, V)
        V_new = Q.max(-1).values
        if (V_new - V).abs().max() < 1e-12:
            V = V_new
            break
        V = V_new
    return float(mdp.mu0 @ V)


# -- the exact world, NumPy (the figures) ---------------------------------------------------------
@lru_cache(maxsize=1)
def _world() -> dict:
    """The exact world as NumPy arrays (P, R, μ₀, γ, the initial logits) and J*."""
    mdp, policy = exact_problem()
    P, R, mu0, gamma = (
        mdp.P.numpy().copy(),
        mdp.R.numpy().copy(),
        mdp.mu0.numpy().copy(),
        float(mdp.gamma),
    )
    V = np.zeros(len(mu0))  # value iteration, as optimal_performance (in NumPy: no torch overhead)
    for _ in range(2000):
        V_new = (R + gamma * P @ V).max(-1)
        done = np.abs(V_new - V).max() < 1e-12
        V = V_new
        if done:
            break
    return {
        "P": P,
        "R": R,
        "mu0": mu0,
        "gamma": gamma,
        "logits": policy.logits.detach().numpy().copy(),
        "J_star": float(mu0 @ V),
    }


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(-1, keepdims=True))
    return z / z.sum(-1, keepdims=True)


def _evaluate(pi: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """(A^π [S, A], d^π [S], J(π)) by exact linear solves, as pgcore.tabular does."""
    w = _world()
    P, R, g = w["P"], w["R"], w["gamma"]
    S = P.shape[0]
    P_pi = np.einsum("sa,sat->st", pi, P)
    V = np.linalg.solve(np.eye(S) - g * P_pi, (pi * R).sum(-1))
    Q = R + g * np.einsum("sat,t->sa", P, V)
    d = np.linalg.solve(np.eye(S) - g * P_pi.T, (1.0 - g) * w["mu0"])
    return Q - V[:, None], d, float(w["mu0"] @ V)


def _normalized(adv: np.ndarray, w: np.ndarray) -> np.ndarray:
    """pgcore.normalize_advantages with weights w: (A − E_w A) / (Std_w A + 1e-8)."""
    mean = (w * adv).sum() / w.sum()
    std = np.sqrt((w * (adv - mean) ** 2).sum() / w.sum())
    return (adv - mean) / (std + 1e-8)


def _mean_kl(p_old: np.ndarray, p: np.ndarray, d: np.ndarray) -> float:
    """Σ_s d(s) KL(π_old(·|s) ‖ π(·|s))."""
    return float(d @ (p_old * (np.log(p_old) - np.log(p))).sum(-1))


class _Adam:
    """torch.optim.Adam's update (β₁ = 0.9, β₂ = 0.999, eps = 1e-5, as ppo_update builds it)."""

    def __init__(self, lr: float, shape: tuple[int, ...]):
        self.lr, self.t = lr, 0
        self.m, self.v = np.zeros(shape), np.zeros(shape)

    def ascend(self, theta: np.ndarray, grad: np.ndarray) -> np.ndarray:
        """One step that minimises −objective, given the objective's gradient ``grad``."""
        self.t += 1
        self.m = 0.9 * self.m - 0.1 * grad
        self.v = 0.999 * self.v + 0.001 * grad * grad
        denom = np.sqrt(self.v) / np.sqrt(1.0 - 0.999**self.t) + 1e-5
        return theta - (self.lr / (1.0 - 0.9**self.t)) * self.m / denom


def _softmax_grad(pi: np.ndarray, c: np.ndarray) -> np.ndarray:
    """∂/∂θ of Σ_{s,a} c(s,a)·log π_θ(a|s) held at fixed c: c − π·Σ_a c (per state)."""
    return c - pi * c.sum(-1, keepdims=True)


@lru_cache(maxsize=512)
def fast_clip_run(
    clip: float, max_epochs: int = max(EPOCH_VALUES), objective: str = "clip"
) -> dict:
    """:func:`clip_run` in NumPy: K = 0 … ``max_epochs`` full-batch Adam epochs on L^CLIP.

    Returns ``ratios`` [K + 1, S, A], ``kl`` and ``clipfrac`` over k = 0 … max_epochs,
    and the exact world's ``adv`` (A^{π_old}), ``norm_adv`` (normalised, as the loss uses it)
    and ``weights`` d^{π_old}(s)·π_old(a|s). Each step's gradient is that of the weighted
    mean of min(r·Â, clip(r, 1−ε, 1+ε)·Â) (torch.minimum splits a tie evenly, as here).
    """
    if objective not in ("clip", "none"):
        raise ValueError(f"objective must be 'clip' or 'none', got {objective!r}")
    clip = float(clip)
    theta = _world()["logits"].copy()
    p_old = _softmax(theta)
    adv, d, _ = _evaluate(p_old)
    w = d[:, None] * p_old
    a_hat = _normalized(adv, w)
    opt = _Adam(TABULAR_LR, theta.shape)
    ratios, kls = [np.ones_like(p_old)], [0.0]
    for _ in range(max_epochs):
        pi = _softmax(theta)
        r = pi / p_old
        if objective == "clip":
            unclipped, clipped = r * a_hat, np.clip(r, 1.0 - clip, 1.0 + clip) * a_hat
            inside = (r >= 1.0 - clip) & (r <= 1.0 + clip)
            g_clipped = np.where(inside, a_hat, 0.0)
            dterm = np.where(
                unclipped < clipped,
                a_hat,
                np.where(unclipped > clipped, g_clipped, 0.5 * (a_hat + g_clipped)),
            )
        else:
            dterm = a_hat
        grad = _softmax_grad(pi, w * dterm * r) / w.sum()
        theta = opt.ascend(theta, grad)
        pi = _softmax(theta)
        ratios.append(pi / p_old)
        kls.append(_mean_kl(p_old, pi, d))
    ratios_arr = np.asarray(ratios)
    outside = np.abs(ratios_arr - 1.0) > clip
    return {
        "ratios": ratios_arr,
        "kl": np.asarray(kls),
        "clipfrac": (outside * w).sum((1, 2)) / w.sum(),
        "adv": adv,
        "norm_adv": a_hat,
        "weights": w,
    }


@lru_cache(maxsize=512)
def fast_kl_penalty_run(
    mode: str, value: float, iters: int = PENALTY_ITERS, epochs: int = PENALTY_EPOCHS
) -> dict:
    """:func:`kl_penalty_run` in NumPy (same return keys; β₀ = 1, η = TABULAR_LR).

    Each iteration: the exact batch of the current policy, then ``epochs`` full-batch steps of
    a fresh Adam on E[r·Â] − β·Σ_s d(s)·KL(π_old(·|s) ‖ π(·|s)); the adaptive rule then sees the
    true mean KL of the update.
    """
    if mode not in ("adaptive", "fixed"):
        raise ValueError(f"mode must be 'adaptive' or 'fixed', got {mode!r}")
    value = float(value)
    theta = _world()["logits"].copy()
    rule = AdaptiveKL(1.0, value) if mode == "adaptive" else None
    beta = 1.0 if rule is not None else value
    betas, nexts, kls, Js = [], [], [], []
    for _ in range(iters):
        p_old = _softmax(theta)
        adv, d, J = _evaluate(p_old)  # J(π_old): the J after the previous update
        Js.append(J)
        w = d[:, None] * p_old
        a_hat = _normalized(adv, w)
        opt = _Adam(TABULAR_LR, theta.shape)
        betas.append(beta)
        wa = w * a_hat / (p_old * w.sum())  # c(s, a) = wa·π: the surrogate's weight on log π
        pen = beta * (d / w.sum())[:, None]
        for _ in range(epochs):
            z = np.exp(theta - theta.max(-1, keepdims=True))
            pi = z / z.sum(-1, keepdims=True)
            c = wa * pi
            grad = c - pi * (c.sum(-1, keepdims=True) + pen) + pen * p_old
            theta = opt.ascend(theta, grad)
        pi = _softmax(theta)
        kl = _mean_kl(p_old, pi, d)
        if rule is not None:
            beta = rule.update(kl)
        nexts.append(beta)
        kls.append(kl)
    Js.append(_evaluate(_softmax(theta))[2])
    return {
        "beta": np.asarray(betas),
        "beta_next": np.asarray(nexts),
        "kl": np.asarray(kls),
        "J": np.asarray(Js),
        "J_star": _world()["J_star"],
    }


# -- figure (a): the clip ε and the epochs K --------------------------------------------------------
_R_MAX = 2.6  # the ratio axis of the clip figure
_K_DOMAIN = (-0.6, max(EPOCH_VALUES) + 0.6)  # the epoch axis, with room for the marker at K
_EPS_COLOR = {_A_POS: style.PALETTE.blue, _A_NEG: style.PALETTE.red}


@lru_cache(maxsize=512)
def _term_curves(clip: float) -> dict:
    """One L^CLIP term against r for A = +1 and A = −1 (kinks at 1 ± ε included)."""
    r = np.unique(np.concatenate([np.linspace(0.0, _R_MAX, 53), [1.0 - clip, 1.0 + clip]]))
    return {
        "r": np.concatenate([r, r]),
        "term": np.concatenate([clip_term(r, 1.0, clip), clip_term(r, -1.0, clip)]),
        "case": np.array([_A_POS] * len(r) + [_A_NEG] * len(r)),
    }


@lru_cache(maxsize=1)
def _unclipped_lines() -> dict:
    r = np.array([0.0, _R_MAX])
    return {
        "r": np.concatenate([r, r]),
        "value": np.concatenate([r, -r]),
        "case": np.array([_A_POS, _A_POS, _A_NEG, _A_NEG]),
    }


@lru_cache(maxsize=1)
def _no_clip_reference() -> dict:
    run = fast_clip_run(0.2, objective="none")
    k = np.arange(len(run["kl"]))
    flat = run["ratios"].reshape(len(k), -1)
    return {
        "k": k,
        "kl": run["kl"],
        "r_max": flat.max(1),  # leaves the top of the axis (the marks are clipped)
        "r_min": flat.min(1),
    }


def clip_compute(clip: float, epochs: float) -> dict:
    """The clip figure's tables at ε = ``clip`` after K = ``epochs`` epochs (K rounded)."""
    K = int(round(float(epochs)))
    if not 0 <= K <= max(EPOCH_VALUES):
        raise ValueError(f"epochs must be in 0 … {max(EPOCH_VALUES)}, got {epochs!r}")
    run = fast_clip_run(float(clip))
    S, A = run["adv"].shape
    r = run["ratios"][K].reshape(-1)
    a_hat = run["norm_adv"].reshape(-1)
    sign = np.where(a_hat >= 0, 1.0, -1.0)
    flat = np.where(sign > 0, r > 1.0 + clip, r < 1.0 - clip)
    all_r = run["ratios"].reshape(len(run["kl"]), -1)
    ks = np.arange(len(run["kl"]))
    return {
        "curve": _term_curves(clip),
        "unclipped": _unclipped_lines(),
        "band": {
            "lo": [1.0 - clip],
            "hi": [1.0 + clip],
            "k0": [_K_DOMAIN[0]],
            "k1": [_K_DOMAIN[1]],
        },
        "pairs": {
            "s": np.repeat(np.arange(S), A),
            "a": np.tile(np.arange(A), S),
            "r": r,
            "term": clip_term(r, 1.0, clip) * (sign > 0) + clip_term(r, -1.0, clip) * (sign < 0),
            "adv": run["adv"].reshape(-1),
            "norm_adv": a_hat,
            "weight": run["weights"].reshape(-1),
            "case": np.where(sign > 0, _A_POS, _A_NEG),
            "gradient": np.where(flat, _FLAT, _SLOPED),
        },
        "trace": {"k": ks, "r_max": all_r.max(1), "r_min": all_r.min(1), "kl": run["kl"]},
        "reference": _no_clip_reference(),
        "now": {
            "k": [K],
            "r_max": [r.max()],
            "r_min": [r.min()],
            "kl": [run["kl"][K]],
            "kl_none": [_no_clip_reference()["kl"][K]],
            "clipfrac": [run["clipfrac"][K]],
            "n_out": [int((np.abs(r - 1.0) > clip).sum())],
            "n_flat": [int(flat.sum())],
        },
    }


def _clip_readout(values: dict, t: dict) -> str:
    eps, now = float(values["clip"]), t["now"]
    K = int(now["k"][0])
    n = len(t["pairs"]["r"])
    return (
        f"ε = {eps:.3g}, after K = {K} epoch{'s' if K != 1 else ''}: largest ratio "
        f"{now['r_max'][0]:.3f}, smallest {now['r_min'][0]:.3f} (band {1 - eps:.3g} to "
        f"{1 + eps:.3g}); {int(now['n_out'][0])} of {n} state-action pairs "
        f"({100 * now['clipfrac'][0]:.0f}% of the weight) lie outside it, "
        f"{int(now['n_flat'][0])} on a flat part where their gradient is zero. True mean KL "
        f"{now['kl'][0]:.3g}; without clipping {now['kl_none'][0]:.3g}."
    )


def _case_color():
    return alt.Color(
        "case:N",
        title="advantage",
        scale=alt.Scale(domain=[_A_POS, _A_NEG], range=[_EPS_COLOR[_A_POS], _EPS_COLOR[_A_NEG]]),
    )


def _clip_panels() -> list:
    x_r = alt.X(
        "r:Q",
        title="ratio r = π(a|s) / π_old(a|s)",
        scale=alt.Scale(domain=[0, _R_MAX], nice=False),
    )
    band = (
        alt.Chart(alt.Data(name="band"))
        .mark_rect(color=style.SHADE, opacity=0.18)
        .encode(x=alt.X("lo:Q", scale=alt.Scale(domain=[0, _R_MAX], nice=False)), x2="hi:Q")
    )
    unclipped = (
        alt.Chart(alt.Data(name="unclipped"))
        .mark_line(strokeDash=[3, 3], strokeWidth=1.5, color=style.NEUTRAL, clip=True)
        .encode(x="r:Q", y="value:Q", detail="case:N")
    )
    curve = (
        alt.Chart(alt.Data(name="curve"))
        .mark_line(clip=True)
        .encode(
            x=x_r,
            y=alt.Y(
                "term:Q",
                title="L^CLIP term for |A| = 1",
                scale=alt.Scale(domain=[-_R_MAX, 1.6], nice=False),
            ),
            color=_case_color(),
            tooltip=[
                alt.Tooltip("case:N", title="advantage"),
                alt.Tooltip("r:Q", title="r", format=".3f"),
                alt.Tooltip("term:Q", title="term", format=".3f"),
            ],
        )
    )
    pairs = (
        alt.Chart(alt.Data(name="pairs"))
        .mark_point(filled=True, opacity=0.85, stroke=style.NEUTRAL, strokeWidth=0.5, clip=True)
        .encode(
            x="r:Q",
            y="term:Q",
            color=_case_color(),
            size=alt.Size(
                "weight:Q",
                title="weight d(s)·π_old(a|s)",
                scale=alt.Scale(range=[30, 400]),
                legend=None,
            ),
            tooltip=[
                alt.Tooltip("s:Q", title="state s"),
                alt.Tooltip("a:Q", title="action a"),
                alt.Tooltip("r:Q", title="ratio r", format=".3f"),
                alt.Tooltip("adv:Q", title="advantage A", format=".3f"),
                alt.Tooltip("norm_adv:Q", title="normalised Â", format=".2f"),
                alt.Tooltip("weight:Q", title="weight d(s)·π_old(a|s)", format=".3f"),
                alt.Tooltip("gradient:N", title="its term"),
            ],
        )
    )
    p1 = alt.layer(band, unclipped, curve, pairs).properties(
        height=style.PANEL_HEIGHT, title="One L^CLIP term per pair"
    )

    x_k = alt.X(
        "k:Q",
        title="epoch k",
        scale=alt.Scale(domain=list(_K_DOMAIN), nice=False),
        axis=alt.Axis(values=list(range(0, max(EPOCH_VALUES) + 1, 5))),
    )
    series = alt.Color(
        "series:N",
        title=None,
        scale=alt.Scale(
            domain=["largest r", "smallest r", "no clipping"],
            range=[style.PALETTE.blue, style.PALETTE.red, style.NEUTRAL],
        ),
    )
    band2 = (
        alt.Chart(alt.Data(name="band"))
        .mark_rect(color=style.SHADE, opacity=0.18)
        .encode(
            x=alt.X("k0:Q", scale=alt.Scale(domain=list(_K_DOMAIN), nice=False)),
            x2="k1:Q",
            y=alt.Y("lo:Q", scale=alt.Scale(domain=[0, _R_MAX], nice=False)),
            y2="hi:Q",
        )
    )
    ref2 = (
        alt.Chart(alt.Data(name="reference"))
        .transform_fold(["r_max", "r_min"], as_=["which", "r"])
        .transform_calculate(series="'no clipping'")
        .mark_line(strokeDash=[4, 3], strokeWidth=1.5, clip=True)
        .encode(x="k:Q", y="r:Q", detail="which:N", color=series)
    )
    trace2 = (
        alt.Chart(alt.Data(name="trace"))
        .transform_fold(["r_max", "r_min"], as_=["which", "r"])
        .transform_calculate(series="datum.which == 'r_max' ? 'largest r' : 'smallest r'")
        .mark_line(clip=True)
        .encode(
            x=x_k,
            y=alt.Y("r:Q", title="ratio r after k epochs"),
            color=series,
            tooltip=[
                alt.Tooltip("k:Q", title="epoch k"),
                alt.Tooltip("r_max:Q", title="largest r", format=".3f"),
                alt.Tooltip("r_min:Q", title="smallest r", format=".3f"),
            ],
        )
    )
    now2 = (
        alt.Chart(alt.Data(name="now"))
        .transform_fold(["r_max", "r_min"], as_=["which", "r"])
        .mark_point(filled=True, size=90, color=style.PALETTE.orange, clip=True)
        .encode(
            x="k:Q",
            y="r:Q",
            tooltip=[
                alt.Tooltip("k:Q", title="K"),
                alt.Tooltip("r_max:Q", title="largest r", format=".3f"),
                alt.Tooltip("r_min:Q", title="smallest r", format=".3f"),
            ],
        )
    )
    p2 = alt.layer(band2, ref2, trace2, now2).properties(
        height=style.PANEL_HEIGHT, title="Ratios leave [1−ε, 1+ε]"
    )

    kl_color = alt.Color(
        "series:N",
        title=None,
        scale=alt.Scale(
            domain=["this ε", "no clipping"], range=[style.PALETTE.blue, style.NEUTRAL]
        ),
    )
    ref3 = (
        alt.Chart(alt.Data(name="reference"))
        .transform_calculate(series="'no clipping'")
        .mark_line(strokeDash=[4, 3], strokeWidth=1.5)
        .encode(
            x="k:Q",
            y="kl:Q",
            color=kl_color,
            tooltip=[
                alt.Tooltip("k:Q", title="epoch k"),
                alt.Tooltip("kl:Q", title="KL, no clipping", format=".4f"),
            ],
        )
    )
    trace3 = (
        alt.Chart(alt.Data(name="trace"))
        .transform_calculate(series="'this ε'")
        .mark_line()
        .encode(
            x=x_k,
            y=alt.Y(
                "kl:Q",
                title="mean KL(π_old ‖ π) after k epochs",
                scale=alt.Scale(domain=[0, 0.7], nice=False),
            ),
            color=kl_color,
            tooltip=[
                alt.Tooltip("k:Q", title="epoch k"),
                alt.Tooltip("kl:Q", title="KL, this ε", format=".4f"),
            ],
        )
    )
    now3 = (
        alt.Chart(alt.Data(name="now"))
        .mark_point(filled=True, size=90, color=style.PALETTE.orange)
        .encode(
            x="k:Q",
            y="kl:Q",
            tooltip=[
                alt.Tooltip("k:Q", title="K"),
                alt.Tooltip("kl:Q", title="KL after K epochs", format=".4f"),
                alt.Tooltip("kl_none:Q", title="without clipping", format=".4f"),
                alt.Tooltip("clipfrac:Q", title="weight outside the band", format=".0%"),
            ],
        )
    )
    p3 = alt.layer(ref3, trace3, now3).properties(
        height=style.PANEL_HEIGHT, title="The true KL keeps growing"
    )
    return [p1, p2, p3]


def clip_explorable() -> Explorable:
    """Figure (a): the clip ε and the number of epochs K (a player steps through K)."""
    S, A = EXACT_WORLD["n_states"], EXACT_WORLD["n_actions"]
    return Explorable(
        clip_compute,
        _clip_panels(),
        [
            Slider("clip", "clip range ε", CLIP_GRID, default=0.2, fmt="{:.3g}"),
            Slider(
                "epochs", "epochs K", EPOCH_VALUES, default=10, fmt="{:d}", scale="index", play=True
            ),
        ],
        title="PPO-clip on an exact MDP: K epochs of full-batch Adam on L^CLIP",
        alt=(
            "Three panels. Left: one term of the clipped objective L^CLIP against the ratio r, "
            "for a positive advantage (rising, then flat above 1+ε) and a negative one (flat "
            "below 1−ε, then falling), with the band [1−ε, 1+ε] shaded and the "
            f"{S * A} state-action pairs of the exact world drawn at their ratios after K "
            "epochs. Middle: the largest and smallest ratio after each epoch, with the band "
            "and, dashed, the same without clipping. Right: the true mean KL from π_old after "
            "each epoch, for this ε and without clipping."
        ),
        readout=_clip_readout,
    )


# -- figure (b): adaptive d_targ against a fixed β ------------------------------------------------
def _penalty_table(run: dict, rule: str) -> dict:
    n = len(run["kl"])
    nan = np.array([np.nan])
    return {
        "i": np.arange(n + 1),
        "beta": np.concatenate([nan, run["beta"]]),
        "kl": np.concatenate([nan, run["kl"]]),
        "J": run["J"],
        "rule": np.array([rule] * (n + 1)),
    }


@lru_cache(maxsize=512)
def _adaptive_table(d_targ: float) -> dict:
    run = fast_kl_penalty_run("adaptive", d_targ)
    t = _penalty_table(run, _ADAPTIVE)
    band = (run["kl"] >= d_targ / 1.5) & (run["kl"] <= 1.5 * d_targ)
    t["in_band"] = np.concatenate([[False], band])
    return t


@lru_cache(maxsize=512)
def _fixed_table(beta: float) -> dict:
    return _penalty_table(fast_kl_penalty_run("fixed", beta), _FIXED)


def beta_compute(d_targ: float, beta: float) -> dict:
    """The penalty figure's tables: the adaptive run for ``d_targ``, the fixed run for ``beta``."""
    d_targ, beta = float(d_targ), float(beta)
    if d_targ <= 0 or beta < 0:
        raise ValueError(f"need d_targ > 0 and β ≥ 0, got {d_targ!r}, {beta!r}")
    return {
        "adaptive": _adaptive_table(d_targ),
        "fixed": _fixed_table(beta),
        "band": {
            "lo": [d_targ / 1.5],
            "hi": [1.5 * d_targ],
            "i0": [0.5],
            "i1": [PENALTY_ITERS + 0.5],
        },
        "optimum": {"J_star": [_world()["J_star"]], "label": ["optimal J*"]},
    }


_J_AT = 5  # the iteration the read-out reports J after (the chapter's J_at)


def _beta_readout(values: dict, t: dict) -> str:
    d, b = float(values["d_targ"]), float(values["beta"])
    ad, fx = t["adaptive"], t["fixed"]
    used = ad["beta"][1:]
    n = len(used)
    return (
        f"Adaptive rule, d_targ = {d:.3g}: the β used climbs from {used[0]:.3g} to "
        f"{used.max():.3g} and ends at {used[-1]:.3g}; {int(ad['in_band'].sum())} of {n} updates "
        f"land in [d_targ/1.5, 1.5·d_targ]; J = {ad['J'][_J_AT]:.3f} after {_J_AT} updates, "
        f"{ad['J'][-1]:.3f} after {n}. Fixed β = {b:.3g}: update KL from "
        f"{np.nanmin(fx['kl']):.2g} to {np.nanmax(fx['kl']):.2g}; J = {fx['J'][_J_AT]:.3f} "
        f"after {_J_AT} updates, {fx['J'][-1]:.3f} after {n} (J* = {t['optimum']['J_star'][0]:.3f})."
    )


def _log_range(values) -> tuple[int, int]:
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    return int(np.floor(np.log10(v.min()))), int(np.ceil(np.log10(v.max())))


def _log_scale(values) -> alt.Scale:
    """A log scale from the power of 10 below the data to the one above."""
    lo, hi = _log_range(values)
    return alt.Scale(type="log", domain=[10.0**lo, 10.0**hi], nice=False)


def _log_axis(values) -> alt.Axis:
    lo, hi = _log_range(values)
    return style.log_axis(lo, hi, 1 if hi - lo <= 5 else 2)


def _beta_panels() -> list:
    x_i = alt.X(
        "i:Q",
        title="iteration",
        scale=alt.Scale(domain=[0, PENALTY_ITERS], nice=False),
        axis=alt.Axis(tickMinStep=1),
    )
    rule = alt.Color(
        "rule:N",
        title=None,
        scale=alt.Scale(
            domain=[_ADAPTIVE, _FIXED], range=[style.PALETTE.blue, style.PALETTE.orange]
        ),
    )
    dash = alt.StrokeDash(
        "rule:N", title=None, scale=alt.Scale(domain=[_ADAPTIVE, _FIXED], range=[[1, 0], [6, 3]])
    )

    def lines(field: str, title: str, scale: alt.Scale, fmt: str, step: bool, axis=alt.Undefined):
        layers = []
        for name in ("adaptive", "fixed"):
            base = alt.Chart(alt.Data(name=name)).transform_filter(f"isValid(datum.{field})")
            mark = (
                base.mark_line(interpolate="step-after", clip=True)
                if step
                else base.mark_line(clip=True, point=alt.OverlayMarkDef(size=30, filled=True))
            )
            layers.append(
                mark.encode(
                    x=x_i,
                    y=alt.Y(f"{field}:Q", title=title, scale=scale, axis=axis),
                    color=rule,
                    strokeDash=dash,
                    tooltip=[
                        alt.Tooltip("rule:N", title="rule"),
                        alt.Tooltip("i:Q", title="iteration"),
                        alt.Tooltip(f"{field}:Q", title=title, format=fmt),
                    ],
                )
            )
        return layers

    beta_scale = alt.Scale(type="log", domain=[5e-6, 200], nice=False)
    p1 = alt.layer(
        *lines(
            "beta",
            "β used by the update",
            beta_scale,
            ".3g",
            step=True,
            axis=style.log_axis(-5, 1, 2),
        )
    ).properties(height=style.PANEL_HEIGHT, title="The penalty β of each update")
    band = (
        alt.Chart(alt.Data(name="band"))
        .mark_rect(color=style.SHADE, opacity=0.2)
        .encode(
            x=alt.X("i0:Q", scale=alt.Scale(domain=[0, PENALTY_ITERS], nice=False)),
            x2="i1:Q",
            y=alt.Y("lo:Q", scale=alt.Scale(type="log", domain=[1e-8, 1], nice=False)),
            y2="hi:Q",
            tooltip=[
                alt.Tooltip("lo:Q", title="d_targ/1.5", format=".3g"),
                alt.Tooltip("hi:Q", title="1.5·d_targ", format=".3g"),
            ],
        )
    )
    kl_scale = alt.Scale(type="log", domain=[1e-8, 1], nice=False)
    kl_lines = lines(
        "kl", "mean KL(π_old ‖ π_new)", kl_scale, ".3g", step=False, axis=style.log_axis(-8, 0, 2)
    )
    p2 = alt.layer(band, *kl_lines).properties(
        height=style.PANEL_HEIGHT, title="KL of each update (band: target)"
    )
    j_lo = 5.3
    optimum = (
        alt.Chart(alt.Data(name="optimum"))
        .mark_rule(strokeDash=[2, 2], strokeWidth=1.5, color=style.NEUTRAL)
        .encode(
            y=alt.Y("J_star:Q", scale=alt.Scale(domain=[j_lo, 8.5], nice=False)),
            tooltip=[alt.Tooltip("J_star:Q", title="optimal J*", format=".3f")],
        )
    )
    j_scale = alt.Scale(domain=[j_lo, 8.5], nice=False)
    p3 = alt.layer(
        optimum, *lines("J", "J(π) after the update", j_scale, ".3f", step=False)
    ).properties(height=style.PANEL_HEIGHT, title="The policy's return (dotted: J*)")
    return [p1, p2, p3]


def beta_explorable() -> Explorable:
    """Figure (b): d_targ of the adaptive penalty against a fixed β."""
    return Explorable(
        beta_compute,
        _beta_panels(),
        [
            Slider(
                "d_targ", "KL target d_targ", D_TARG_GRID, default=0.01, fmt="{:.3g}", scale="log"
            ),
            Slider("beta", "fixed penalty β", BETA_GRID, default=10.0, fmt="{:.3g}", scale="log"),
        ],
        title="PPO with a KL penalty on an exact MDP: adaptive β (target d_targ) against a fixed β",
        alt=(
            f"Three panels over {PENALTY_ITERS} iterations of {PENALTY_EPOCHS} full-batch Adam "
            "epochs each. Left: the penalty β each update used, on a log scale, for the adaptive "
            "rule (starting at 1, doubled or halved after each update) and for the fixed β. "
            "Middle: the true mean KL of each update on a log scale, with the band "
            "[d_targ/1.5, 1.5·d_targ] shaded. Right: the policy's return J after each update, "
            "with the optimal J* dotted."
        ),
        readout=_beta_readout,
    )


# -- the chapter's static figures -------------------------------------------------------------------
def lclip_figure(clip: float) -> DataFigure:
    """One L^CLIP term against r for A = +1 (left panel) and A = −1 (right panel)."""
    tables = {
        "curve": _term_curves(clip),
        "unclipped": _unclipped_lines(),
        "band": {"lo": [1.0 - clip], "hi": [1.0 + clip]},
        "start": {"r": [1.0, 1.0], "term": [1.0, -1.0], "case": [_A_POS, _A_NEG]},
    }
    panels = []
    for case, title in ((_A_POS, "A > 0 (A = +1)"), (_A_NEG, "A < 0 (A = −1)")):
        x = alt.X("r:Q", title="probability ratio r", scale=alt.Scale(domain=[0, 2], nice=False))
        y = alt.Y("term:Q", title="min(r·A, clip(r, 1−ε, 1+ε)·A)", scale=alt.Scale(domain=[-2, 2]))
        sel = f"datum.case == '{case}'"
        band = (
            alt.Chart(alt.Data(name="band"))
            .mark_rect(color=style.SHADE, opacity=0.18)
            .encode(x=alt.X("lo:Q", scale=alt.Scale(domain=[0, 2], nice=False)), x2="hi:Q")
        )
        unclipped = (
            alt.Chart(alt.Data(name="unclipped"))
            .transform_filter(sel)
            .mark_line(strokeDash=[3, 3], strokeWidth=1.5, color=style.NEUTRAL, clip=True)
            .encode(x="r:Q", y="value:Q")
        )
        curve = (
            alt.Chart(alt.Data(name="curve"))
            .transform_filter(sel)
            .mark_line(color=_EPS_COLOR[case], clip=True)
            .encode(
                x=x,
                y=y,
                tooltip=[
                    alt.Tooltip("r:Q", title="r", format=".3f"),
                    alt.Tooltip("term:Q", title="L^CLIP term", format=".3f"),
                ],
            )
        )
        start = (
            alt.Chart(alt.Data(name="start"))
            .transform_filter(sel)
            .mark_point(filled=True, size=70, color=style.NEUTRAL)
            .encode(x="r:Q", y="term:Q", tooltip=[alt.Tooltip("r:Q", title="start: r")])
        )
        panels.append(
            alt.layer(band, unclipped, curve, start).properties(
                height=style.PANEL_HEIGHT, title=title
            )
        )
    return DataFigure(
        tables,
        panels,
        title=f"One term of L^CLIP against the ratio r, ε = {clip:g}",
        alt=(
            f"Two panels, ε = {clip:g}. For A = +1 the term equals r up to r = {1 + clip:g} and "
            f"stays at {1 + clip:g} beyond. For A = −1 it is flat at {-(1 - clip):g} for r below "
            f"{1 - clip:g} and equals −r above. The band [{1 - clip:g}, {1 + clip:g}] is shaded, "
            "the unclipped r·A is dashed, and a dot marks r = 1, where every update starts."
        ),
    )


def cartpole_kl_figure(traces: dict, clips: dict) -> DataFigure:
    """The CartPole epochs experiment: largest ratio and mean KL against the epoch, per setting.

    ``traces`` maps a setting label to {"max_ratio": [K + 1], "kl": [K + 1]}; ``clips`` maps a
    label to its ε (or None for no clipping).
    """
    labels = list(traces)
    colors = [style.PALETTE.blue, style.PALETTE.orange, style.PALETTE.green, style.PALETTE.red]
    k = np.arange(len(next(iter(traces.values()))["kl"]))
    trace = {
        "k": np.concatenate([k[1:]] * len(labels)),
        "setting": np.concatenate([[lab] * (len(k) - 1) for lab in labels]),
        "max_ratio": np.concatenate([np.asarray(traces[lab]["max_ratio"])[1:] for lab in labels]),
        "kl": np.concatenate([np.asarray(traces[lab]["kl"])[1:] for lab in labels]),
    }
    with_clip = [lab for lab in labels if clips[lab] is not None]
    tables = {
        "trace": trace,
        "clip": {"setting": with_clip, "level": [1.0 + clips[lab] for lab in with_clip]},
    }
    color = alt.Color(
        "setting:N", title=None, scale=alt.Scale(domain=labels, range=colors[: len(labels)])
    )
    x = alt.X("k:Q", title="epoch K", scale=alt.Scale(domain=[1, int(k[-1])], nice=False))

    def panel(field: str, title: str, ptitle: str, extra=(), log=False):
        values = np.asarray(trace[field], dtype=float)
        y = (
            alt.Y(f"{field}:Q", title=title, scale=_log_scale(values), axis=_log_axis(values))
            if log
            else alt.Y(f"{field}:Q", title=title, scale=alt.Scale(zero=False))
        )
        line = (
            alt.Chart(alt.Data(name="trace"))
            .mark_line(point=True)
            .encode(
                x=x,
                y=y,
                color=color,
                tooltip=[
                    alt.Tooltip("setting:N"),
                    alt.Tooltip("k:Q", title="epoch K"),
                    alt.Tooltip(f"{field}:Q", title=title, format=".4g"),
                ],
            )
        )
        return alt.layer(*extra, line).properties(height=style.PANEL_HEIGHT, title=ptitle)

    rules = (
        alt.Chart(alt.Data(name="clip"))
        .mark_rule(strokeDash=[2, 3], strokeWidth=1.5)
        .encode(
            y="level:Q",
            color=color,
            tooltip=[alt.Tooltip("setting:N"), alt.Tooltip("level:Q", title="1 + ε", format=".2f")],
        )
    )
    return DataFigure(
        tables,
        [
            panel(
                "max_ratio",
                "largest ratio r in the batch",
                "Largest ratio (dotted: 1 + ε)",
                [rules],
            ),
            panel("kl", "mean KL(π_old ‖ π) over the batch", "True mean KL", log=True),
        ],
        title="K epochs of minibatch PPO on one CartPole-v1 batch",
        alt=(
            "Two panels against the number of epochs K, one line per setting ("
            + ", ".join(labels)
            + "). Left: the largest ratio in the batch, with dotted lines at 1 + ε. Right, on a log "
            "scale: the "
            "mean KL(π_old‖π) over the batch. After the last epoch every clipped line is above its "
            "1 + ε and below the unclipped line."
        ),
    )


def ablation_figure(curves: dict, scores: dict, window: int) -> DataFigure:
    """The code-level ablation: learning curves (mean over seeds) and every seed's score.

    ``curves`` maps a variant to (env_steps, mean return over seeds); ``scores`` maps a
    variant to its per-seed scores.
    """
    labels = list(curves)
    colors = list(style.PALETTE)[: len(labels)]
    color = alt.Color("variant:N", title=None, scale=alt.Scale(domain=labels, range=colors))
    steps = [np.asarray(curves[lab][0], dtype=float) for lab in labels]
    tables = {
        "curves": {
            "steps": np.concatenate(steps),
            "mean_return": np.concatenate(
                [np.asarray(curves[lab][1], dtype=float) for lab in labels]
            ),
            "variant": np.concatenate([[lab] * len(s) for lab, s in zip(labels, steps)]),
        },
        "scores": {
            "variant": np.concatenate([[lab] * len(scores[lab]) for lab in labels]),
            "seed": np.concatenate([np.arange(len(scores[lab])) for lab in labels]),
            "score": np.concatenate([np.asarray(scores[lab], dtype=float) for lab in labels]),
        },
        "means": {"variant": labels, "score": [float(np.mean(scores[lab])) for lab in labels]},
    }
    curve = (
        alt.Chart(alt.Data(name="curves"))
        .mark_line(strokeWidth=2)
        .encode(
            x=alt.X("steps:Q", title="environment steps"),
            y=alt.Y("mean_return:Q", title=f"mean return, last {window} episodes"),
            color=color,
            tooltip=[
                alt.Tooltip("variant:N"),
                alt.Tooltip("steps:Q", title="steps", format=","),
                alt.Tooltip("mean_return:Q", title="mean over seeds", format=".1f"),
            ],
        )
        .properties(height=style.PANEL_HEIGHT, title="Learning curves (mean over seeds)")
    )
    y = alt.Y("variant:N", title=None, sort=labels, axis=alt.Axis(labelLimit=260))
    dots = (
        alt.Chart(alt.Data(name="scores"))
        .mark_point(filled=True, size=70, opacity=0.8)
        .encode(
            x=alt.X("score:Q", title="score"),
            y=y,
            color=alt.Color("variant:N", scale=alt.Scale(domain=labels, range=colors), legend=None),
            tooltip=[
                alt.Tooltip("variant:N"),
                alt.Tooltip("seed:Q", title="seed index"),
                alt.Tooltip("score:Q", format=".1f"),
            ],
        )
    )
    means = (
        alt.Chart(alt.Data(name="means"))
        .mark_tick(thickness=2.5, size=22, color=style.NEUTRAL)
        .encode(
            x="score:Q",
            y=y,
            tooltip=[alt.Tooltip("variant:N"), alt.Tooltip("score:Q", title="mean", format=".1f")],
        )
    )
    spread = alt.layer(means, dots).properties(
        height=style.PANEL_HEIGHT, title="Every seed's score (tick: mean)"
    )
    return DataFigure(
        tables,
        [curve, spread],
        title="PPO-clip on CartPole-v1, one code-level detail changed at a time",
        alt=(
            f"Two panels. Left: learning curves of {len(labels)} variants ("
            + ", ".join(labels)
            + f"), the mean over seeds of the running mean return of the last {window} "
            "episodes, against environment steps. Right: each seed's score per variant, with the "
            "mean as a tick; the seeds of one variant spread as widely as the variants differ."
        ),
    )


def details_figure(estimates: dict, improvement: dict) -> DataFigure:
    """The code-level details with interval estimates (rliable): IQM and P(improvement).

    ``estimates`` maps a variant to {"iqm", "lo", "hi", "tasks"}: the interquartile mean of its
    normalised scores with a 95 % stratified-bootstrap interval, over the named tasks;
    ``improvement`` maps a variant other than the baseline to {"p", "lo", "hi"}: the probability
    that a run with the change scores higher than a baseline run of the same task, with its
    interval.
    """
    labels = list(estimates)
    rows = lambda d, keys: {  # noqa: E731
        "variant": list(d),
        **{k: [d[v][k] for v in d] for k in keys},
    }
    tables = {
        "iqm": rows(estimates, ("iqm", "lo", "hi", "tasks")),
        "poi": rows(improvement, ("p", "lo", "hi")),
        "half": {"x": [0.5]},
    }
    # every row keeps its label (Vega would drop one it judges too close to the next)
    y = alt.Y(
        "variant:N", title=None, sort=labels, axis=alt.Axis(labelLimit=260, labelOverlap=False)
    )
    height = 24 * len(labels)

    def panel(
        name: str, est: str, title: str, x_title: str, extra: list, domain=None
    ) -> alt.LayerChart:
        tip = [
            alt.Tooltip("variant:N"),
            alt.Tooltip(f"{est}:Q", title=x_title, format=".2f"),
            alt.Tooltip("lo:Q", title="95 % interval from", format=".2f"),
            alt.Tooltip("hi:Q", title="to", format=".2f"),
            *extra,
        ]
        base = alt.Chart(alt.Data(name=name))
        bar = base.mark_rule(strokeWidth=3, color=style.PALETTE.blue, opacity=0.55).encode(
            x=alt.X(
                "lo:Q", title=x_title, scale=alt.Scale(domain=domain) if domain else alt.Undefined
            ),
            x2="hi:Q",
            y=y,
            tooltip=tip,
        )
        point = base.mark_point(filled=True, size=70, color=style.PALETTE.blue).encode(
            x=f"{est}:Q", y=y, tooltip=tip
        )
        return alt.layer(bar, point).properties(height=height, title=title)

    iqm = panel(
        "iqm",
        "iqm",
        "IQM of the normalised score",
        "IQM, normalised score",
        [alt.Tooltip("tasks:N", title="tasks")],
    )
    half = (
        alt.Chart(alt.Data(name="half"))
        .mark_rule(strokeDash=[4, 3], color=style.NEUTRAL)
        .encode(x="x:Q")
    )
    poi = alt.layer(
        half,
        panel("poi", "p", "P(change beats the baseline)", "P(improvement)", [], domain=[0, 1]),
    ).properties(height=height)
    return DataFigure(
        tables,
        [iqm, poi],
        title="Code-level details of PPO, one at a time, with 95 % intervals",
        alt=(
            f"Two panels with one row per variant ({', '.join(labels)}). Left: the interquartile "
            "mean of the normalised scores with a 95 % stratified-bootstrap interval. Right: for "
            "each change, the probability that a run with it scores higher than a baseline run "
            "of the same task, with its interval and a dashed line at one half (no difference)."
        ),
    )


#: The colours of the settings in the Table 1 figures, in order (the KL panel of
#: :func:`table1_figure` and :func:`profile_figure` give the same setting the same colour).
SETTING_COLORS = tuple(
    style.PALETTE[c] for c in ("red", "blue", "green", "orange", "purple", "teal", "brown", "pink")
)


def profile_figure(taus, profiles: dict, title: str = "Performance profiles") -> DataFigure:
    """Performance profiles (rliable): for each threshold τ, the fraction of runs whose
    normalised score exceeds τ, with a 95 % stratified-bootstrap band.

    ``taus`` is the increasing grid of thresholds; ``profiles`` maps a setting (at most eight)
    to {"frac", "lo", "hi"}, arrays over ``taus``; settings take :data:`SETTING_COLORS` in order.
    """
    taus = np.asarray(taus, dtype=float)
    labels = list(profiles)
    if not 1 <= len(labels) <= len(SETTING_COLORS):
        raise ValueError(
            f"profile_figure: profiles needs 1 to {len(SETTING_COLORS)} settings, got {len(labels)}"
        )
    if taus.ndim != 1 or len(taus) < 2 or np.any(np.diff(taus) <= 0):
        raise ValueError(f"profile_figure: taus must be an increasing 1-D grid, got {taus!r}")
    for lab, prof in profiles.items():
        for k in ("frac", "lo", "hi"):
            if np.shape(prof[k]) != taus.shape:
                raise ValueError(
                    f"profile_figure: profiles[{lab!r}][{k!r}] has shape {np.shape(prof[k])}, "
                    f"taus {taus.shape}"
                )
    col = lambda k: np.concatenate([np.asarray(profiles[lab][k], float) for lab in labels])  # noqa: E731
    tables = {
        "profile": {
            "tau": np.tile(taus, len(labels)),
            "frac": col("frac"),
            "lo": col("lo"),
            "hi": col("hi"),
            "setting": np.repeat(labels, len(taus)),
        }
    }
    color = alt.Color(
        "setting:N",
        title=None,
        sort=labels,
        scale=alt.Scale(domain=labels, range=list(SETTING_COLORS[: len(labels)])),
        legend=alt.Legend(
            orient="bottom", columns=1, labelLimit=280, symbolType="stroke", symbolOpacity=1
        ),
    )
    x = alt.X("tau:Q", title="normalised score τ")
    tip = [
        alt.Tooltip("setting:N"),
        alt.Tooltip("tau:Q", title="τ", format=".2f"),
        alt.Tooltip("frac:Q", title="fraction of runs above τ", format=".2f"),
        alt.Tooltip("lo:Q", title="95 % interval from", format=".2f"),
        alt.Tooltip("hi:Q", title="to", format=".2f"),
    ]
    base = alt.Chart(alt.Data(name="profile"))
    band = base.mark_area(opacity=0.18).encode(x=x, y="lo:Q", y2="hi:Q", color=color)
    line = base.mark_line(strokeWidth=2).encode(
        x=x,
        y=alt.Y("frac:Q", title="fraction of runs with score > τ", scale=alt.Scale(domain=[0, 1])),
        color=color,
        tooltip=tip,
    )
    points = base.mark_point(filled=True, size=18, opacity=0).encode(
        x=x, y="frac:Q", color=color, tooltip=tip
    )
    panel = alt.layer(band, line, points).properties(
        height=style.PANEL_HEIGHT, title="Fraction of runs above τ"
    )
    return DataFigure(
        tables,
        [panel],
        title=title,
        alt=(
            f"One panel: for each of {', '.join(labels)}, the fraction of runs whose normalised "
            f"score exceeds a threshold τ from {taus[0]:g} to {taus[-1]:g}, a falling line with "
            "a shaded 95 % bootstrap band."
        ),
    )


def table1_figure(
    scores: dict,
    kl_curves: dict,
    env_id: str,
    *,
    spread: str = "seeds",
    title: str = "A small replication of the PPO paper's Table 1",
) -> DataFigure:
    """The Table 1 replication: normalised scores (ours and the paper's) and KL per iteration.

    ``scores`` maps a setting to {"ours": mean, "paper": value, "lo", "hi"}: with
    ``spread="seeds"`` the lowest and highest seed's score, with ``spread="interval"`` the ends
    of a 95 % interval of ``ours``; ``kl_curves`` maps a setting to (env_steps, mean KL per
    update).
    """
    if spread not in ("seeds", "interval"):
        raise ValueError(f"table1_figure: spread must be 'seeds' or 'interval', got {spread!r}")
    lo_title, hi_title, spread_alt = {
        "seeds": ("lowest seed", "highest seed", "our per-seed range"),
        "interval": ("95 % interval, low", "95 % interval, high", "our 95 % interval"),
    }[spread]
    labels = list(scores)
    ours_lab, paper_lab = "ours", "paper"
    tables = {
        "scores": {
            "setting": labels * 2,
            "source": [ours_lab] * len(labels) + [paper_lab] * len(labels),
            "score": [scores[lab]["ours"] for lab in labels]
            + [scores[lab]["paper"] for lab in labels],
        },
        "spread": {
            "setting": labels,
            "source": [ours_lab] * len(labels),
            "lo": [scores[lab]["lo"] for lab in labels],
            "hi": [scores[lab]["hi"] for lab in labels],
        },
        "kl": {
            "steps": np.concatenate(
                [np.asarray(kl_curves[lab][0], dtype=float) for lab in kl_curves]
            ),
            "kl": np.concatenate([np.asarray(kl_curves[lab][1], dtype=float) for lab in kl_curves]),
            "setting": np.concatenate([[lab] * len(kl_curves[lab][0]) for lab in kl_curves]),
        },
    }
    src = alt.Color(
        "source:N",
        title=None,
        scale=alt.Scale(domain=[ours_lab, paper_lab], range=[style.PALETTE.blue, style.NEUTRAL]),
    )
    y = alt.Y("setting:N", title=None, sort=labels, axis=alt.Axis(labelLimit=260))
    y_off = alt.YOffset("source:N", scale=alt.Scale(domain=[ours_lab, paper_lab]))
    bars = (
        alt.Chart(alt.Data(name="scores"))
        .mark_bar()
        .encode(
            x=alt.X("score:Q", title="normalised score"),
            y=y,
            yOffset=y_off,
            color=src,
            tooltip=[
                alt.Tooltip("setting:N"),
                alt.Tooltip("source:N"),
                alt.Tooltip("score:Q", format=".2f"),
            ],
        )
    )
    spread = (
        alt.Chart(alt.Data(name="spread"))
        .mark_rule(strokeWidth=2.5, color=style.PALETTE.orange)
        .encode(
            x="lo:Q",
            x2="hi:Q",
            y=y,
            yOffset=y_off,
            tooltip=[
                alt.Tooltip("setting:N"),
                alt.Tooltip("lo:Q", title=lo_title, format=".2f"),
                alt.Tooltip("hi:Q", title=hi_title, format=".2f"),
            ],
        )
    )
    p1 = alt.layer(bars, spread).properties(height=2 * 14 * len(labels), title="Normalised score")
    kl_labels = list(kl_curves)
    kl_all = np.asarray(tables["kl"]["kl"])
    if len(kl_labels) > len(SETTING_COLORS):
        raise ValueError(
            f"table1_figure: kl_curves holds {len(kl_labels)} settings, at most "
            f"{len(SETTING_COLORS)} can be told apart"
        )
    p2 = (
        alt.Chart(alt.Data(name="kl"))
        .transform_filter("isValid(datum.kl) && datum.kl > 0")
        .mark_line(strokeWidth=1.8)
        .encode(
            x=alt.X("steps:Q", title=f"environment steps ({env_id})"),
            y=alt.Y(
                "kl:Q",
                title="KL(π_old ‖ π_new) of the update",
                scale=_log_scale(kl_all),
                axis=_log_axis(kl_all),
            ),
            color=alt.Color(
                "setting:N",
                title=None,
                scale=alt.Scale(domain=kl_labels, range=list(SETTING_COLORS[: len(kl_labels)])),
            ),
            tooltip=[
                alt.Tooltip("setting:N"),
                alt.Tooltip("steps:Q", format=","),
                alt.Tooltip("kl:Q", title="KL (mean over seeds)", format=".3g"),
            ],
        )
        .properties(height=style.PANEL_HEIGHT, title=f"KL per update on {env_id}")
    )
    return DataFigure(
        tables,
        [p1, p2],
        title=title,
        alt=(
            f"Two panels. Left: for each of the {len(labels)} settings, a bar for our average "
            f"normalised score and a bar for the paper's, with a line spanning {spread_alt}. "
            f"Right: the KL of each policy update during the {env_id} runs (mean over "
            "seeds, log scale) for " + ", ".join(kl_labels) + "."
        ),
    )
