"""Independent NumPy reference implementations and hypothesis strategies for the tests."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import strategies as st

import pgcore as pg


def np_values(P, R, pi, gamma):
    """V and Q by iterating the Bellman equation to convergence (independent of pgcore's solve)."""
    S, A = R.shape
    V = np.zeros(S)
    for _ in range(5000):
        Q = R + gamma * P @ V  # [S, A]
        V_new = (pi * Q).sum(1)
        if np.max(np.abs(V_new - V)) < 1e-14:
            V = V_new
            break
        V = V_new
    Q = R + gamma * P @ V
    return V, Q


def np_occupancy(P, mu0, pi, gamma, horizon=4000):
    """(1−γ) Σ_t γᵗ Pr(s_t = s) by summing the series."""
    P_pi = np.einsum("sa,sat->st", pi, P)
    p = mu0.copy()
    d = np.zeros_like(mu0)
    g = 1.0
    for _ in range(horizon):
        d += g * p
        p = p @ P_pi
        g *= gamma
    return (1 - gamma) * d


def mdp_arrays(mdp):
    return mdp.P.numpy(), mdp.R.numpy(), mdp.mu0.numpy(), mdp.gamma


def random_policy(
    n_states: int, n_actions: int, seed: int, scale: float = 1.0
) -> pg.TabularSoftmaxPolicy:
    g = torch.Generator().manual_seed(seed)
    logits = scale * torch.randn(n_states, n_actions, generator=g, dtype=torch.float64)
    return pg.TabularSoftmaxPolicy(n_states, n_actions, logits=logits)


@st.composite
def mdp_and_policy(draw, max_states: int = 5, max_actions: int = 4):
    """A random MDP (γ ∈ [0, 0.95]) and a random softmax policy on it."""
    S = draw(st.integers(1, max_states))
    A = draw(st.integers(2, max_actions))
    gamma = draw(st.floats(0.0, 0.95))
    seed = draw(st.integers(0, 2**31 - 1))
    scale = draw(st.floats(0.0, 3.0))
    mdp = pg.random_mdp(S, A, gamma=gamma, seed=seed)
    return mdp, random_policy(S, A, seed + 1, scale)
