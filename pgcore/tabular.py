"""The exact world: finite discounted MDPs with closed-form, differentiable quantities.

Notation (the book's): states s, actions a, transition kernel P(s'|s,a), reward R(s,a),
initial distribution μ₀, discount 0 ≤ γ < 1, and a stochastic policy π given as an [S, A]
tensor of probabilities π(a|s). Everything is float64 and differentiable in ``pi``:

* V^π = (I − γ P_π)⁻¹ R_π, with P_π[s, s'] = Σ_a π(a|s) P(s'|s,a) and R_π[s] = Σ_a π(a|s) R(s,a)
* Q^π(s,a) = R(s,a) + γ Σ_{s'} P(s'|s,a) V^π(s')
* A^π(s,a) = Q^π(s,a) − V^π(s)
* d^π(s) = (1−γ) Σ_t γᵗ Pr(s_t = s), the normalised discounted occupancy, which solves
  dᵀ = (1−γ) μ₀ᵀ (I − γ P_π)⁻¹ and sums to one
* J(π) = μ₀ · V^π
"""

from __future__ import annotations

import numpy as np
import torch

from ._checks import check_int, check_number

__all__ = [
    "TabularMDP",
    "random_mdp",
    "three_armed_bandit",
    "two_state_mdp",
    "chain_mdp",
]

_DTYPE = torch.float64
_ATOL = 1e-8


def _as_tensor(x, name: str) -> torch.Tensor:
    try:
        t = torch.as_tensor(x, dtype=_DTYPE)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ValueError(f"{name} must be a numeric array, got {type(x).__name__}") from exc
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} has non-finite entries (NaN or inf)")
    return t


def _check_gamma(gamma) -> float:
    g = check_number("gamma", gamma)
    if not (0.0 <= g < 1.0):
        raise ValueError(f"gamma must be in [0, 1), got {gamma!r}")
    return g


class TabularMDP:
    """A finite discounted MDP ``(P, R, mu0, gamma)``.

    Args:
        P: transition probabilities P[s, a, s'] = Pr(s_{t+1}=s' | s_t=s, a_t=a), shape [S, A, S].
        R: expected rewards R[s, a], shape [S, A].
        mu0: initial-state distribution μ₀[s], shape [S].
        gamma: discount factor, 0 ≤ γ < 1.

    Raises:
        ValueError: if a shape does not match, an entry is negative or not finite, a row of P
            or mu0 does not sum to one, or gamma is outside [0, 1).
    """

    def __init__(self, P, R, mu0, gamma: float):
        P = _as_tensor(P, "P")
        R = _as_tensor(R, "R")
        mu0 = _as_tensor(mu0, "mu0")
        if P.ndim != 3 or P.shape[0] != P.shape[2]:
            raise ValueError(f"P must have shape [S, A, S], got {tuple(P.shape)}")
        S, A = P.shape[0], P.shape[1]
        if S == 0 or A == 0:
            raise ValueError(f"P must have at least one state and one action, got {tuple(P.shape)}")
        if R.shape != (S, A):
            raise ValueError(f"R must have shape [S, A] = {(S, A)}, got {tuple(R.shape)}")
        if mu0.shape != (S,):
            raise ValueError(f"mu0 must have shape [S] = {(S,)}, got {tuple(mu0.shape)}")
        if (P < 0).any():
            raise ValueError("P has negative entries; transition probabilities must be ≥ 0")
        row_sums = P.sum(-1)
        if not torch.allclose(row_sums, torch.ones_like(row_sums), atol=1e-6, rtol=0):
            s, a = divmod(int((row_sums - 1).abs().argmax()), A)
            raise ValueError(
                f"P is not stochastic: row P[{s}, {a}, :] sums to {row_sums[s, a].item():.6g}, not 1"
            )
        if (mu0 < 0).any():
            raise ValueError("mu0 has negative entries")
        if abs(mu0.sum().item() - 1.0) > 1e-6:
            raise ValueError(f"mu0 must sum to 1, got {mu0.sum().item():.6g}")
        gamma = _check_gamma(gamma)
        self.P, self.R, self.mu0, self.gamma = P, R, mu0, gamma
        self.n_states, self.n_actions = S, A

    def __repr__(self) -> str:
        return (
            f"TabularMDP(n_states={self.n_states}, n_actions={self.n_actions}, gamma={self.gamma})"
        )

    # -- policy-dependent quantities -------------------------------------------------------
    def check_policy(self, pi) -> torch.Tensor:
        """Return ``pi`` as a float64 tensor after checking it is an [S, A] stochastic matrix."""
        if not isinstance(pi, torch.Tensor):
            pi = torch.as_tensor(pi, dtype=_DTYPE)
        if pi.shape != (self.n_states, self.n_actions):
            raise ValueError(
                f"pi must have shape [S, A] = {(self.n_states, self.n_actions)}, got {tuple(pi.shape)}"
            )
        pd = pi.detach()
        if not torch.isfinite(pd).all() or (pd < 0).any():
            raise ValueError("pi must have finite, non-negative entries")
        sums = pd.sum(-1)
        if not torch.allclose(sums, torch.ones_like(sums), atol=1e-6, rtol=0):
            raise ValueError(f"each row of pi must sum to 1, got row sums {sums.tolist()}")
        return pi.to(_DTYPE)

    def transition_matrix(self, pi) -> torch.Tensor:
        """P_π[s, s'] = Σ_a π(a|s) P(s'|s,a)."""
        pi = self.check_policy(pi)
        return torch.einsum("sa,sat->st", pi, self.P)

    def values(self, pi) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (V^π [S], Q^π [S, A]) by solving (I − γP_π) V = R_π exactly."""
        pi = self.check_policy(pi)
        P_pi = torch.einsum("sa,sat->st", pi, self.P)
        r_pi = (pi * self.R).sum(-1)
        eye = torch.eye(self.n_states, dtype=_DTYPE)
        V = torch.linalg.solve(eye - self.gamma * P_pi, r_pi)
        Q = self.R + self.gamma * torch.einsum("sat,t->sa", self.P, V)
        return V, Q

    def advantages(self, pi) -> torch.Tensor:
        """A^π(s,a) = Q^π(s,a) − V^π(s), shape [S, A]."""
        V, Q = self.values(pi)
        return Q - V[:, None]

    def occupancy(self, pi) -> torch.Tensor:
        """d^π(s) = (1−γ) Σ_t γᵗ Pr(s_t = s): solves (I − γP_πᵀ) d = (1−γ) μ₀; sums to 1."""
        pi = self.check_policy(pi)
        P_pi = torch.einsum("sa,sat->st", pi, self.P)
        eye = torch.eye(self.n_states, dtype=_DTYPE)
        return torch.linalg.solve(eye - self.gamma * P_pi.T, (1.0 - self.gamma) * self.mu0)

    def performance(self, pi) -> torch.Tensor:
        """J(π) = μ₀ · V^π (a scalar tensor)."""
        V, _ = self.values(pi)
        return self.mu0 @ V

    def state_distributions(self, pi, horizon: int) -> torch.Tensor:
        """Pr(s_t = s) for t = 0..horizon, shape [horizon + 1, S] (p_{t+1} = p_t P_π)."""
        horizon = check_int("horizon", horizon, minimum=0)
        P_pi = self.transition_matrix(pi)
        rows = [self.mu0]
        for _ in range(horizon):
            rows.append(rows[-1] @ P_pi)
        return torch.stack(rows)


def random_mdp(n_states: int, n_actions: int, gamma: float = 0.9, seed: int = 0) -> TabularMDP:
    """A random MDP, deterministic in ``seed``.

    Transition rows and μ₀ are Dirichlet(1) draws and rewards are uniform on [0, 1), all from
    ``numpy.random.default_rng(seed)``.
    """
    S, A = check_int("n_states", n_states), check_int("n_actions", n_actions)
    seed = check_int("seed", seed, minimum=0)
    _check_gamma(gamma)
    rng = np.random.default_rng(seed)
    P = rng.dirichlet(np.ones(S), size=(S, A))
    R = rng.uniform(0.0, 1.0, size=(S, A))
    mu0 = rng.dirichlet(np.ones(S))
    return TabularMDP(P, R, mu0, gamma)


def three_armed_bandit(rewards=(1.0, 0.6, 0.0), gamma: float = 0.0) -> TabularMDP:
    """One state, three actions with deterministic rewards: a policy is a point on the simplex.

    With γ = 0 the performance is J(π) = Σ_a π(a) R(a) and A(a) = R(a) − J(π).
    """
    r = torch.as_tensor(rewards, dtype=_DTYPE)
    if r.shape != (3,):
        raise ValueError(f"rewards must have 3 entries, got shape {tuple(r.shape)}")
    P = torch.ones(1, 3, 1, dtype=_DTYPE)
    return TabularMDP(P, r[None, :], torch.ones(1, dtype=_DTYPE), gamma)


def two_state_mdp(gamma: float = 0.9) -> TabularMDP:
    """Two states, two actions: action 0 "stay", action 1 "switch" (with 10% slip).

    Staying in state 1 pays 1 per step, state 0 pays nothing, and switching costs 0.1, so a
    good policy switches out of state 0 and stays in state 1. It starts in state 0.
    """
    P = torch.zeros(2, 2, 2, dtype=_DTYPE)
    for s in range(2):
        P[s, 0, s] = 1.0  # stay
        P[s, 1, 1 - s] = 0.9  # switch, with a 10% slip
        P[s, 1, s] = 0.1
    R = torch.tensor([[0.0, -0.1], [1.0, 0.9]], dtype=_DTYPE)
    mu0 = torch.tensor([1.0, 0.0], dtype=_DTYPE)
    return TabularMDP(P, R, mu0, gamma)


def chain_mdp(n_states: int = 6, slip: float = 0.1, gamma: float = 0.95) -> TabularMDP:
    """A chain 0 … n−1 with actions left (0) and right (1), each slipping the other way w.p. ``slip``.

    Being in state 0 pays a small reward 0.1 and being at the far right pays 1, so a myopic
    policy drifts left while the optimal one walks right. Episodes start in state 1.
    """
    n = check_int("n_states", n_states, minimum=3)
    slip = check_number("slip", slip)
    if not (0.0 <= slip < 0.5):
        raise ValueError(f"slip must be in [0, 0.5), got {slip!r}")
    P = torch.zeros(n, 2, n, dtype=_DTYPE)
    for s in range(n):
        left, right = max(s - 1, 0), min(s + 1, n - 1)
        P[s, 0, left] += 1.0 - slip
        P[s, 0, right] += slip
        P[s, 1, right] += 1.0 - slip
        P[s, 1, left] += slip
    R = torch.zeros(n, 2, dtype=_DTYPE)
    R[0, :] = 0.1
    R[n - 1, :] = 1.0
    mu0 = torch.zeros(n, dtype=_DTYPE)
    mu0[1] = 1.0
    return TabularMDP(P, R, mu0, gamma)
