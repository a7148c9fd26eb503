"""TabularMDP: exact quantities against independent NumPy values, and input validation."""

import numpy as np
import pytest
import torch

import pgcore as pg
from tests.helpers import mdp_arrays, np_occupancy, np_values, random_policy


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_values_match_bellman_iteration(seed):
    mdp = pg.random_mdp(5, 3, gamma=0.9, seed=seed)
    pol = random_policy(5, 3, seed)
    pi = pol.probs().detach()
    V, Q = mdp.values(pi)
    V_np, Q_np = np_values(*mdp_arrays(mdp)[:2], pi.numpy(), mdp.gamma)
    np.testing.assert_allclose(V.numpy(), V_np, atol=1e-10)
    np.testing.assert_allclose(Q.numpy(), Q_np, atol=1e-10)
    np.testing.assert_allclose(mdp.advantages(pi).numpy(), Q_np - V_np[:, None], atol=1e-10)
    assert torch.allclose(
        (pi * mdp.advantages(pi)).sum(1), torch.zeros(5, dtype=torch.float64), atol=1e-12
    )


@pytest.mark.parametrize("seed", [0, 3])
def test_occupancy_matches_series_and_sums_to_one(seed):
    mdp = pg.random_mdp(4, 2, gamma=0.8, seed=seed)
    pi = random_policy(4, 2, seed).probs().detach()
    d = mdp.occupancy(pi)
    P, _, mu0, gamma = mdp_arrays(mdp)
    np.testing.assert_allclose(d.numpy(), np_occupancy(P, mu0, pi.numpy(), gamma), atol=1e-12)
    assert d.sum().item() == pytest.approx(1.0, abs=1e-12)
    assert (d >= 0).all()


def test_performance_is_mu0_dot_v_and_equals_reward_over_occupancy():
    mdp = pg.random_mdp(6, 3, gamma=0.9, seed=7)
    pi = random_policy(6, 3, 7).probs().detach()
    V, _ = mdp.values(pi)
    J = mdp.performance(pi)
    assert J.item() == pytest.approx((mdp.mu0 @ V).item(), abs=1e-14)
    # J = E_{s∼d, a∼π}[R] / (1 − γ)
    d = mdp.occupancy(pi)
    assert J.item() == pytest.approx(
        ((d[:, None] * pi * mdp.R).sum() / (1 - mdp.gamma)).item(), abs=1e-10
    )


def test_state_distributions_rows_are_distributions_and_match_matrix_powers():
    mdp = pg.random_mdp(4, 2, seed=1)
    pi = random_policy(4, 2, 1).probs().detach()
    p = mdp.state_distributions(pi, 5)
    assert p.shape == (6, 4)
    np.testing.assert_allclose(p.sum(1).numpy(), np.ones(6), atol=1e-12)
    P_pi = mdp.transition_matrix(pi).numpy()
    np.testing.assert_allclose(
        p[5].numpy(), mdp.mu0.numpy() @ np.linalg.matrix_power(P_pi, 5), atol=1e-12
    )


def test_quantities_are_differentiable_in_pi():
    mdp = pg.random_mdp(3, 2, seed=0)
    pol = random_policy(3, 2, 0)
    J = mdp.performance(pol.probs())
    (g,) = torch.autograd.grad(J, pol.logits)
    # finite differences on one logit
    eps = 1e-6
    logits = pol.logits.detach().clone()
    logits[1, 0] += eps
    J2 = mdp.performance(torch.softmax(logits, -1))
    assert g[1, 0].item() == pytest.approx((J2 - J).item() / eps, rel=1e-4)


def test_random_mdp_is_deterministic_in_seed():
    a, b, c = pg.random_mdp(4, 3, seed=5), pg.random_mdp(4, 3, seed=5), pg.random_mdp(4, 3, seed=6)
    assert torch.equal(a.P, b.P) and torch.equal(a.R, b.R) and torch.equal(a.mu0, b.mu0)
    assert not torch.equal(a.P, c.P)


def test_named_mdps():
    bandit = pg.three_armed_bandit()
    pi = torch.tensor([[0.2, 0.3, 0.5]], dtype=torch.float64)
    assert bandit.performance(pi).item() == pytest.approx(0.2 * 1.0 + 0.3 * 0.6)
    np.testing.assert_allclose(
        bandit.advantages(pi).numpy(), [[1.0 - 0.38, 0.6 - 0.38, -0.38]], atol=1e-12
    )
    two = pg.two_state_mdp()
    best = torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=torch.float64)  # switch, then stay
    worst = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    assert two.performance(best) > two.performance(worst)
    chain = pg.chain_mdp(6)
    right = torch.tensor([[0.0, 1.0]] * 6, dtype=torch.float64)
    left = torch.tensor([[1.0, 0.0]] * 6, dtype=torch.float64)
    assert chain.performance(right) > chain.performance(left)


# -- validation -----------------------------------------------------------------------------
def _good():
    mdp = pg.random_mdp(3, 2, seed=0)
    return mdp.P.clone(), mdp.R.clone(), mdp.mu0.clone()


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda P, R, mu0, g: (P[:, :, :2], R, mu0, g), "P must have shape"),
        (lambda P, R, mu0, g: (P, R[:, :1], mu0, g), "R must have shape"),
        (lambda P, R, mu0, g: (P, R, mu0[:2], g), "mu0 must have shape"),
        (lambda P, R, mu0, g: (P * 1.1, R, mu0, g), "not stochastic"),
        (lambda P, R, mu0, g: (P, R, mu0 * 0.5, g), "mu0 must sum to 1"),
        (lambda P, R, mu0, g: (P, R, mu0, 1.0), "gamma must be in"),
        (lambda P, R, mu0, g: (P, R, mu0, -0.1), "gamma must be in"),
        (lambda P, R, mu0, g: (P, R, mu0, float("nan")), "gamma must be in"),
        (lambda P, R, mu0, g: (P, R, mu0, "0.9x"), "gamma must be a real number"),
        (lambda P, R, mu0, g: (P, R * float("nan"), mu0, g), "R has non-finite"),
        (
            lambda P, R, mu0, g: (P, R, torch.tensor([1.5, -0.5, 0.0], dtype=torch.float64), g),
            "negative",
        ),
    ],
)
def test_invalid_mdp_raises(mutate, match):
    P, R, mu0 = _good()
    with pytest.raises(ValueError, match=match):
        pg.TabularMDP(*mutate(P, R, mu0, 0.9))


def test_negative_transition_probability_raises():
    P, R, mu0 = _good()
    P[0, 0, 0] = -0.2
    P[0, 0, 1] += (
        0.2 + P[0, 0, 0].abs()
    )  # keep the row summing to 1 is impossible with a negative; any
    with pytest.raises(ValueError, match="negative|stochastic"):
        pg.TabularMDP(P, R, mu0, 0.9)


def test_invalid_policy_raises():
    mdp = pg.random_mdp(3, 2, seed=0)
    with pytest.raises(ValueError, match="pi must have shape"):
        mdp.values(torch.ones(3, 3) / 3)
    with pytest.raises(ValueError, match="sum to 1"):
        mdp.values(torch.ones(3, 2))
    with pytest.raises(ValueError, match="non-negative"):
        mdp.occupancy(torch.tensor([[1.5, -0.5]] * 3))


def test_random_mdp_rejects_bad_sizes():
    with pytest.raises(ValueError, match="n_states"):
        pg.random_mdp(0, 2)
    with pytest.raises(ValueError, match="n_actions"):
        pg.random_mdp(2, 1.5)
