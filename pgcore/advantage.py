r"""Estimating the advantage on the exact world: sampled trajectories, critics, GAE, and its errors.

A :class:`~pgcore.tabular.TabularMDP` knows the true advantage ``mdp.advantages(pi)``, so an
estimator of it can be *measured*: its bias and its variance, not only described. This module
provides the pieces the chapter on advantage estimation uses:

* :func:`sample_trajectories`: many trajectories at once (time-major arrays), optionally
  started from chosen (state, action) pairs (:func:`all_pairs`), so that the estimate at t = 0
  of each trajectory is a sample of the estimator *at that pair*;
* :func:`gae_estimates` (which calls :func:`pgcore.gae`, the one GAE implementation) and
  :func:`n_step_advantages`, the estimators, with a critic ``V`` given as an [S] array and the
  horizon end treated as a time-limit truncation (bootstrap from ``V`` of the last state);
* :func:`pair_statistics` and :func:`bias_variance`: the per-pair mean and variance of the
  estimates and the d^π·π-weighted bias², variance and mean squared error against A^π;
  :func:`expected_gae` gives the estimator's mean in closed form, to check the sampled one;
* critics with a controlled error: the exact V^π, :func:`noisy_critic` (V^π plus fixed noise of
  a chosen size), :func:`fit_tabular_critic` (a critic fitted on TD(λ) targets from a few
  trajectories) and :func:`trust_region_value_update` (the value-function trust region of
  Schulman et al. 2016, which for one-hot features is a shrinkage towards the old critic);
* :func:`critic_error_bound`: how far a critic error e moves the surrogate of a policy change,
  against the bound 2·E_{s∼d}[D_TV(s)]·‖e‖∞ ≤ 2·max_s D_TV(s)·‖e‖∞;
* :class:`CorridorEnv`, a tiny gymnasium environment with exact values for the time-limit
  example.

Everything is float64 NumPy, vectorised over trajectories.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch

from .rollouts import gae
from .tabular import TabularMDP

__all__ = [
    "Trajectories",
    "all_pairs",
    "sample_trajectories",
    "gae_estimates",
    "n_step_advantages",
    "pair_statistics",
    "bias_variance",
    "BiasVariance",
    "expected_gae",
    "noisy_critic",
    "fit_tabular_critic",
    "tabular_least_squares",
    "explained_variance",
    "trust_region_value_update",
    "critic_error_bound",
    "softmax_gradient_variance",
    "CorridorEnv",
]


def _np(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


@dataclass
class Trajectories:
    """N trajectories of T steps, time-major.

    ``states`` [T+1, N] (the last row is the state after the last step), ``actions`` [T, N],
    ``rewards`` [T, N] = R(s_t, a_t).
    """

    states: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray

    @property
    def horizon(self) -> int:
        return self.actions.shape[0]

    @property
    def n(self) -> int:
        return self.actions.shape[1]


def all_pairs(n_states: int, n_actions: int, n_per_pair: int) -> tuple[np.ndarray, np.ndarray]:
    """Start states and first actions listing every (s, a) pair ``n_per_pair`` times
    (pair-major: the first ``n_per_pair`` entries are (0, 0))."""
    s = np.repeat(np.arange(n_states), n_actions * n_per_pair)
    a = np.tile(np.repeat(np.arange(n_actions), n_per_pair), n_states)
    return s, a


def _categorical(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One sample per row of ``probs`` [N, K] by the inverse CDF."""
    cdf = np.cumsum(probs, axis=1)
    u = rng.random(probs.shape[0]) * cdf[:, -1]
    return np.minimum((cdf <= u[:, None]).sum(axis=1), probs.shape[1] - 1)


def sample_trajectories(
    mdp: TabularMDP,
    pi,
    n: int,
    horizon: int,
    *,
    seed: int = 0,
    start_states: np.ndarray | None = None,
    start_actions: np.ndarray | None = None,
) -> Trajectories:
    """Sample ``n`` trajectories of ``horizon`` steps from ``mdp`` under the policy ``pi``
    (an [S, A] probability array or tensor).

    Start states are drawn from μ₀ unless ``start_states`` [n] is given; the first action is
    drawn from π unless ``start_actions`` [n] is given (then only later actions follow π).
    Deterministic in ``seed``.
    """
    if int(n) != n or n < 1 or int(horizon) != horizon or horizon < 1:
        raise ValueError(
            f"n and horizon must be positive integers, got n={n!r}, horizon={horizon!r}"
        )
    n, horizon = int(n), int(horizon)
    pi = _np(mdp.check_policy(torch.as_tensor(_np(pi))))
    P, R, mu0 = _np(mdp.P), _np(mdp.R), _np(mdp.mu0)
    rng = np.random.default_rng(seed)
    states = np.empty((horizon + 1, n), dtype=np.int64)
    actions = np.empty((horizon, n), dtype=np.int64)
    if start_states is None:
        states[0] = _categorical(rng, np.broadcast_to(mu0, (n, mu0.size)))
    else:
        start_states = np.asarray(start_states, dtype=np.int64)
        if start_states.shape != (n,):
            raise ValueError(f"start_states must have shape [{n}], got {start_states.shape}")
        states[0] = start_states
    if start_actions is not None:
        start_actions = np.asarray(start_actions, dtype=np.int64)
        if start_actions.shape != (n,):
            raise ValueError(f"start_actions must have shape [{n}], got {start_actions.shape}")
    for t in range(horizon):
        s = states[t]
        actions[t] = (
            start_actions if (t == 0 and start_actions is not None) else _categorical(rng, pi[s])
        )
        states[t + 1] = _categorical(rng, P[s, actions[t]])
    rewards = R[states[:-1], actions]
    return Trajectories(states, actions, rewards)


def _critic_arrays(traj: Trajectories, V) -> tuple[torch.Tensor, ...]:
    V = _np(V)
    T, N = traj.horizon, traj.n
    values = torch.from_numpy(V[traj.states[:-1]])
    next_values = torch.from_numpy(V[traj.states[1:]])
    terminated = torch.zeros(T, N, dtype=torch.bool)
    truncated = torch.zeros(T, N, dtype=torch.bool)
    truncated[-1] = True  # the horizon is a time limit: bootstrap from V of the last state
    return torch.from_numpy(traj.rewards), values, next_values, terminated, truncated


def gae_estimates(traj: Trajectories, V, gamma: float, lam: float) -> tuple[np.ndarray, np.ndarray]:
    """GAE(γ, λ) advantages and TD(λ) returns [T, N] on ``traj`` with the critic ``V`` [S].

    Calls :func:`pgcore.gae`; the last step is marked *truncated*, so the estimate bootstraps
    from V of the final state (the MDP itself never terminates).
    """
    r, v, nv, term, trunc = _critic_arrays(traj, V)
    adv, ret = gae(r, v, nv, term, trunc, gamma, lam)
    return adv.numpy(), ret.numpy()


def n_step_advantages(traj: Trajectories, V, gamma: float, n: int) -> np.ndarray:
    r"""The n-step estimator Â⁽ⁿ⁾_t = Σ_{k<n} γᵏ R_{t+k} + γⁿ V(s_{t+n}) − V(s_t), [T, N].

    Near the horizon the window is cut at T (bootstrap from V(s_T)), as GAE does.
    """
    if int(n) != n or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    V = _np(V)
    T = traj.horizon
    out = np.empty_like(traj.rewards)
    for t in range(T):
        m = min(int(n), T - t)
        disc = gamma ** np.arange(m)
        out[t] = (
            disc @ traj.rewards[t : t + m] + gamma**m * V[traj.states[t + m]] - V[traj.states[t]]
        )
    return out


def pair_statistics(
    estimates: np.ndarray, states: np.ndarray, actions: np.ndarray, n_states: int, n_actions: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per (s, a): the mean, the (unbiased) variance and the count of ``estimates`` [N] whose
    pair is (``states``, ``actions``). Pairs with fewer than two samples get NaN."""
    idx = np.asarray(states) * n_actions + np.asarray(actions)
    size = n_states * n_actions
    x = np.asarray(estimates, dtype=np.float64)
    count = np.bincount(idx, minlength=size).astype(np.float64)
    total = np.bincount(idx, weights=x, minlength=size)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / count
        sq = np.bincount(idx, weights=(x - mean[idx]) ** 2, minlength=size)
        var = np.where(count > 1, sq / (count - 1), np.nan)
        mean = np.where(count > 0, mean, np.nan)
    shape = (n_states, n_actions)
    return mean.reshape(shape), var.reshape(shape), count.reshape(shape)


@dataclass
class BiasVariance:
    """Weighted error summary of an advantage estimator against the exact A^π.

    ``bias2`` = Σ w·b̃², with b̃(s,a) = b(s,a) − Σ_a' π(a'|s) b(s,a') the bias that reaches the
    policy gradient (a state-only offset does not); ``bias2_total`` = Σ w·b² (raw bias);
    ``variance`` = Σ w·Var; ``mse`` = bias2 + variance. w = d^π(s)·π(a|s).
    """

    bias2: float
    bias2_total: float
    variance: float
    mse: float
    bias: np.ndarray
    centred_bias: np.ndarray


def bias_variance(
    mean: np.ndarray, var: np.ndarray, A: np.ndarray, pi: np.ndarray, d: np.ndarray
) -> BiasVariance:
    """Bias², variance and MSE of an estimator with per-pair ``mean`` and ``var`` [S, A]
    against the exact advantage ``A`` [S, A], weighted by d(s)·π(a|s)."""
    mean, var, A, pi, d = (_np(x) for x in (mean, var, A, pi, d))
    w = d[:, None] * pi
    b = mean - A
    bc = b - (pi * b).sum(axis=1, keepdims=True)
    bias2 = float((w * bc**2).sum())
    variance = float((w * var).sum())
    return BiasVariance(bias2, float((w * b**2).sum()), variance, bias2 + variance, b, bc)


def expected_gae(
    mdp: TabularMDP, pi, V, gamma: float, lam: float, horizon: int | None = None
) -> np.ndarray:
    r"""E[Â^{GAE}_0 | s_0 = s, a_0 = a] in closed form, [S, A].

    With the expected TD residuals δ̄(s,a) = R(s,a) + γ Σ_{s'} P(s'|s,a) V(s') − V(s) and
    δ̄_π = Σ_a π(a|·) δ̄(·, a), the mean is δ̄(s,a) + Σ_{l≥1} (γλ)ˡ P(·|s,a) P_π^{l−1} δ̄_π,
    summed to ``horizon``−1 (the estimate of :func:`gae_estimates` at t = 0 on trajectories of
    that horizon) or to infinity (``horizon=None``). The γ of the MDP is used for the
    transitions; ``gamma`` is the estimator's discount.
    """
    pi, V, P, R = _np(pi), _np(V), _np(mdp.P), _np(mdp.R)
    delta = R + gamma * P @ V - V[:, None]
    delta_pi = (pi * delta).sum(axis=1)
    P_pi = np.einsum("sa,sat->st", pi, P)
    gl = gamma * lam
    if horizon is None:
        tail = np.linalg.solve(np.eye(V.size) - gl * P_pi, delta_pi)
        return delta + gl * P @ tail
    tail = np.zeros_like(V)
    for _ in range(int(horizon) - 1):  # Horner: tail = Σ_{l=0}^{H-2} (γλ P_π)^l δ̄_π
        tail = delta_pi + gl * P_pi @ tail
    return delta + gl * P @ tail


def noisy_critic(V, scale: float, seed: int = 0) -> np.ndarray:
    """V + scale·z with z ~ N(0, I) fixed by ``seed``: a critic whose error has RMS ``scale``
    per state (in expectation)."""
    V = _np(V)
    z = np.random.default_rng(seed).standard_normal(V.shape)
    return V + float(scale) * z


def tabular_least_squares(
    states: np.ndarray, targets: np.ndarray, n_states: int, fallback
) -> np.ndarray:
    """argmin_V Σ_n (V(s_n) − y_n)² over tabular V: the per-state mean of the targets;
    unvisited states keep ``fallback`` [S]."""
    s = np.asarray(states).ravel()
    y = np.asarray(targets, dtype=np.float64).ravel()
    count = np.bincount(s, minlength=n_states)
    total = np.bincount(s, weights=y, minlength=n_states)
    return np.where(count > 0, total / np.maximum(count, 1), _np(fallback))


def explained_variance(predictions: np.ndarray, targets: np.ndarray) -> float:
    """1 − Var[y − V] / Var[y] (NaN when the targets do not vary)."""
    y = np.asarray(targets, dtype=np.float64).ravel()
    v = np.asarray(predictions, dtype=np.float64).ravel()
    var = y.var()
    return float("nan") if var == 0 else float(1.0 - (y - v).var() / var)


def fit_tabular_critic(
    traj: Trajectories, n_states: int, gamma: float, lam: float, iters: int = 10, V_init=None
) -> tuple[np.ndarray, list[float]]:
    """Fit a tabular critic by regression on TD(λ) targets, repeated ``iters`` times.

    Each round computes the TD(λ) returns V^targ = Â^{GAE} + V with the current critic (via
    :func:`gae_estimates`) and refits V by least squares (:func:`tabular_least_squares`).
    Returns the critic and the explained variance of each round's fit on its own targets.
    """
    V = np.zeros(n_states) if V_init is None else _np(V_init).copy()
    ev = []
    for _ in range(int(iters)):
        _, targets = gae_estimates(traj, V, gamma, lam)
        V = tabular_least_squares(traj.states[:-1], targets, n_states, V)
        ev.append(explained_variance(V[traj.states[:-1]], targets))
    return V, ev


def trust_region_value_update(
    V_old, states: np.ndarray, targets: np.ndarray, n_states: int, eps: float
) -> tuple[np.ndarray, float]:
    r"""The value-function trust region of Schulman et al. (2016), for a tabular critic.

    Solve min_V Σ_n (V(s_n) − y_n)² subject to
    (1/N) Σ_n (V(s_n) − V_old(s_n))² / (2σ²) ≤ ε, with σ² = (1/N) Σ_n (V_old(s_n) − y_n)².
    With one-hot features both quadratics use the same metric (the visit counts), so the
    solution is V_old + c·(V_LS − V_old) with V_LS the least-squares fit and
    c = min(1, sqrt(2σ²ε / ((1/N) Σ_n (V_LS(s_n) − V_old(s_n))²))). Returns (V, c).
    """
    V_old = _np(V_old)
    s = np.asarray(states).ravel()
    y = np.asarray(targets, dtype=np.float64).ravel()
    V_ls = tabular_least_squares(s, y, n_states, V_old)
    sigma2 = np.mean((V_old[s] - y) ** 2)
    move = np.mean((V_ls[s] - V_old[s]) ** 2)
    c = 1.0 if move <= 2 * sigma2 * eps else float(np.sqrt(2 * sigma2 * eps / move))
    return V_old + c * (V_ls - V_old), c


def critic_error_bound(d, pi_old, pi_new, e) -> dict[str, float]:
    r"""The surrogate error a critic error ``e`` [S, A] causes on the change π_old → π_new.

    ``error`` = Σ_s d(s) Σ_a (π_new − π_old)(a|s) e(s,a), the difference between the
    surrogate gain computed with Â = A + e and with A. Bounds:
    ``bound_mean_tv`` = 2·E_{s∼d}[D_TV(s)]·‖e‖∞, ``bound_max_tv`` = 2·max_s D_TV(s)·‖e‖∞ and
    ``bound_kl`` = ‖e‖∞·sqrt(2·D̄_KL) (Pinsker and Jensen), with D̄_KL = E_{s∼d}[KL(π_old‖π_new)].
    """
    d, p, q, e = (_np(x) for x in (d, pi_old, pi_new, e))
    tv = 0.5 * np.abs(q - p).sum(axis=1)
    e_inf = np.abs(e).max()
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_s = np.where(p > 0, p * (np.log(p) - np.log(q)), 0.0).sum(axis=1)
    return {
        "error": float((d * ((q - p) * e).sum(axis=1)).sum()),
        "bound_mean_tv": float(2 * (d * tv).sum() * e_inf),
        "bound_max_tv": float(2 * tv.max() * e_inf),
        "bound_kl": float(e_inf * np.sqrt(2 * (d * kl_s).sum())),
        "e_inf": float(e_inf),
    }


def softmax_gradient_variance(pi, weights, mean, second_moment) -> float:
    r"""Total variance (trace of the covariance) of the one-sample policy-gradient estimate
    g = ∇_θ log π_θ(a|s) · X for a tabular softmax policy (θ = the [S, A] logits).

    (s, a) is drawn with probability ``weights`` [S, A] (summing to one) and, given (s, a), the
    weight X (a return, an advantage estimate…) has mean ``mean`` [S, A] and second moment
    ``second_moment`` [S, A]. With ∇_θ log π(a|s) = e_a − π(·|s) in row s (zero elsewhere),
    E‖g‖² = Σ w(s,a) ‖e_a − π(·|s)‖² E[X²|s,a] and the variance is E‖g‖² − ‖E g‖².
    """
    pi, w, m, q = (_np(x) for x in (pi, weights, mean, second_moment))
    n_actions = pi.shape[1]
    score = np.eye(n_actions)[None, :, :] - pi[:, None, :]  # [S, a, a']: e_a − π(·|s)
    sq_norm = (score**2).sum(axis=2)
    mean_g = np.einsum("sa,sab->sb", w * m, score)
    return float((w * sq_norm * q).sum() - (mean_g**2).sum())


class CorridorEnv(gym.Env):
    r"""A corridor of ``length`` cells: every step moves one cell right and pays 1; reaching
    the last cell ends the episode (*terminated*). One action, so there is no policy to learn:
    the point is the values, which are exact. Observation: the cell index.

    From cell i the discounted return is V(i) = (1 − γ^{L−i}) / (1 − γ) with L = ``length``,
    and V(L) = 0 (the terminal cell). :meth:`values` returns them. Wrap it in
    ``gymnasium.wrappers.TimeLimit`` to add a time limit (*truncated*).
    """

    metadata = {"render_modes": []}

    def __init__(self, length: int = 8):
        if int(length) != length or length < 1:
            raise ValueError(f"length must be a positive integer, got {length!r}")
        self.length = int(length)
        self.observation_space = gym.spaces.Discrete(self.length + 1)
        self.action_space = gym.spaces.Discrete(1)
        self.pos = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.pos = 0
        return self.pos, {}

    def step(self, action):
        self.pos += 1
        return self.pos, 1.0, self.pos >= self.length, False, {}

    def values(self, gamma: float) -> np.ndarray:
        """V(i) for i = 0 … L (V(L) = 0)."""
        i = np.arange(self.length + 1)
        return (1.0 - gamma ** (self.length - i)) / (1.0 - gamma)
