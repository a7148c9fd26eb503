"""pgcore.advantage: every function against an independent NumPy computation."""

import gymnasium as gym
import numpy as np
import pytest
import torch

import pgcore
from pgcore import advantage as adv


@pytest.fixture(scope="module")
def world():
    mdp = pgcore.random_mdp(4, 3, gamma=0.9, seed=1)
    g = torch.Generator().manual_seed(3)
    pi = torch.softmax(torch.randn(4, 3, generator=g, dtype=torch.float64), -1)
    V, Q = mdp.values(pi)
    return mdp, pi.numpy(), V.numpy(), (Q - V[:, None]).numpy(), mdp.occupancy(pi).numpy()


def _gae_reference(rewards, states, V, gamma, lam):
    """Backward recursion over one trajectory, last step bootstrapped from V(s_T)."""
    T = len(rewards)
    out = np.zeros(T)
    acc = 0.0
    for t in reversed(range(T)):
        delta = rewards[t] + gamma * V[states[t + 1]] - V[states[t]]
        acc = delta + gamma * lam * acc
        out[t] = acc
    return out


# -- sampling ------------------------------------------------------------------------------
def test_sampling_is_deterministic_and_respects_the_start(world):
    mdp, pi, *_ = world
    s0 = np.array([0, 1, 2, 3, 3])
    a0 = np.array([2, 2, 1, 0, 1])
    t1 = adv.sample_trajectories(mdp, pi, 5, 7, seed=4, start_states=s0, start_actions=a0)
    t2 = adv.sample_trajectories(mdp, pi, 5, 7, seed=4, start_states=s0, start_actions=a0)
    assert t1.states.shape == (8, 5) and t1.actions.shape == (7, 5) and t1.rewards.shape == (7, 5)
    np.testing.assert_array_equal(t1.states, t2.states)
    np.testing.assert_array_equal(t1.states[0], s0)
    np.testing.assert_array_equal(t1.actions[0], a0)
    np.testing.assert_array_equal(t1.rewards, mdp.R.numpy()[t1.states[:-1], t1.actions])
    t3 = adv.sample_trajectories(mdp, pi, 5, 7, seed=5, start_states=s0, start_actions=a0)
    assert not np.array_equal(t1.states, t3.states)


def test_sampled_frequencies_match_mu0_pi_and_P(world):
    mdp, pi, *_ = world
    n = 40_000
    traj = adv.sample_trajectories(mdp, pi, n, 1, seed=0)
    mu0, P = mdp.mu0.numpy(), mdp.P.numpy()
    freq_s = np.bincount(traj.states[0], minlength=4) / n
    assert np.abs(freq_s - mu0).max() < 5 * np.sqrt(0.25 / n)
    s, a, s1 = traj.states[0], traj.actions[0], traj.states[1]
    for state in range(4):
        sel = s == state
        freq_a = np.bincount(a[sel], minlength=3) / sel.sum()
        assert np.abs(freq_a - pi[state]).max() < 5 * np.sqrt(0.25 / sel.sum())
        for action in range(3):
            sel2 = sel & (a == action)
            freq = np.bincount(s1[sel2], minlength=4) / sel2.sum()
            assert np.abs(freq - P[state, action]).max() < 5 * np.sqrt(0.25 / sel2.sum())


def test_all_pairs_lists_every_pair(world):
    s, a = adv.all_pairs(3, 2, 4)
    assert len(s) == 24
    counts = np.zeros((3, 2), int)
    np.add.at(counts, (s, a), 1)
    assert (counts == 4).all()
    np.testing.assert_array_equal(s[:4], 0)
    np.testing.assert_array_equal(a[:4], 0)


def test_sampling_rejects_bad_arguments(world):
    mdp, pi, *_ = world
    with pytest.raises(ValueError, match="positive integers"):
        adv.sample_trajectories(mdp, pi, 0, 5)
    with pytest.raises(ValueError, match="start_states"):
        adv.sample_trajectories(mdp, pi, 3, 5, start_states=np.array([0, 1]))
    with pytest.raises(ValueError):
        adv.sample_trajectories(mdp, np.ones((4, 3)), 3, 5)  # not a policy


# -- estimators ----------------------------------------------------------------------------
@pytest.mark.parametrize("lam", [0.0, 0.3, 0.95, 1.0])
def test_gae_estimates_match_a_reference_recursion(world, lam):
    mdp, pi, V, *_ = world
    traj = adv.sample_trajectories(mdp, pi, 6, 12, seed=2)
    Vc = V + np.random.default_rng(0).normal(0, 0.5, 4)
    est, ret = adv.gae_estimates(traj, Vc, 0.9, lam)
    for i in range(6):
        ref = _gae_reference(traj.rewards[:, i], traj.states[:, i], Vc, 0.9, lam)
        np.testing.assert_allclose(est[:, i], ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ret, est + Vc[traj.states[:-1]], rtol=1e-12)


@pytest.mark.parametrize("n", [1, 3, 20])
def test_n_step_advantages_match_the_definition(world, n):
    mdp, pi, V, *_ = world
    traj = adv.sample_trajectories(mdp, pi, 3, 8, seed=6)
    Vc = V + 0.3
    out = adv.n_step_advantages(traj, Vc, 0.9, n)
    for i in range(3):
        for t in range(8):
            m = min(n, 8 - t)
            ref = sum(0.9**k * traj.rewards[t + k, i] for k in range(m))
            ref += 0.9**m * Vc[traj.states[t + m, i]] - Vc[traj.states[t, i]]
            assert out[t, i] == pytest.approx(ref, rel=1e-12, abs=1e-12)
    with pytest.raises(ValueError):
        adv.n_step_advantages(traj, Vc, 0.9, 0)


def test_gae_is_the_exponential_average_of_n_step_estimators(world):
    mdp, pi, V, *_ = world
    traj = adv.sample_trajectories(mdp, pi, 5, 10, seed=7)
    Vc = V + np.random.default_rng(1).normal(0, 1, 4)
    lam, T = 0.7, 10
    est, _ = adv.gae_estimates(traj, Vc, 0.9, lam)
    nstep = np.stack([adv.n_step_advantages(traj, Vc, 0.9, n) for n in range(1, T + 1)])
    for t in range(T):
        m = T - t
        mix = ((1 - lam) * lam ** np.arange(m - 1)) @ nstep[: m - 1, t] + lam ** (m - 1) * nstep[
            m - 1, t
        ]
        np.testing.assert_allclose(est[t], mix, rtol=1e-11, atol=1e-11)


# -- statistics ----------------------------------------------------------------------------
def test_pair_statistics_match_numpy():
    rng = np.random.default_rng(0)
    s = rng.integers(0, 3, 200)
    a = rng.integers(0, 2, 200)
    x = rng.normal(size=200)
    mean, var, count = adv.pair_statistics(x, s, a, 3, 2)
    for i in range(3):
        for j in range(2):
            sel = (s == i) & (a == j)
            assert count[i, j] == sel.sum()
            assert mean[i, j] == pytest.approx(x[sel].mean(), rel=1e-12)
            assert var[i, j] == pytest.approx(x[sel].var(ddof=1), rel=1e-10)
    m, v, c = adv.pair_statistics(np.array([1.0]), np.array([0]), np.array([0]), 2, 1)
    assert c[1, 0] == 0 and np.isnan(m[1, 0]) and np.isnan(v[0, 0])


def test_bias_variance_matches_a_hand_computation():
    rng = np.random.default_rng(2)
    pi = rng.dirichlet(np.ones(3), size=2)
    d = np.array([0.3, 0.7])
    A = rng.normal(size=(2, 3))
    mean = A + rng.normal(size=(2, 3))
    var = rng.uniform(0.1, 1, size=(2, 3))
    bv = adv.bias_variance(mean, var, A, pi, d)
    b = mean - A
    bias2 = var_sum = total = 0.0
    for s in range(2):
        avg = sum(pi[s, a] * b[s, a] for a in range(3))
        for a in range(3):
            w = d[s] * pi[s, a]
            bias2 += w * (b[s, a] - avg) ** 2
            total += w * b[s, a] ** 2
            var_sum += w * var[s, a]
    assert bv.bias2 == pytest.approx(bias2, rel=1e-12)
    assert bv.bias2_total == pytest.approx(total, rel=1e-12)
    assert bv.variance == pytest.approx(var_sum, rel=1e-12)
    assert bv.mse == pytest.approx(bias2 + var_sum, rel=1e-12)
    # a state-only offset does not count as (centred) bias
    shifted = adv.bias_variance(mean + np.array([[5.0], [-2.0]]), var, A, pi, d)
    assert shifted.bias2 == pytest.approx(bv.bias2, rel=1e-10)
    assert shifted.bias2_total != pytest.approx(bv.bias2_total)


# -- the exact mean of GAE -----------------------------------------------------------------
@pytest.mark.parametrize("horizon", [None, 1, 6])
@pytest.mark.parametrize("lam", [0.0, 0.6, 1.0])
def test_expected_gae_with_the_exact_critic_is_the_advantage(world, lam, horizon):
    mdp, pi, V, A, _ = world
    np.testing.assert_allclose(
        adv.expected_gae(mdp, pi, V, 0.9, lam, horizon=horizon), A, atol=1e-12
    )


@pytest.mark.parametrize("lam", [0.0, 0.5, 0.9])
def test_expected_gae_matches_explicit_state_propagation(world, lam):
    mdp, pi, V, *_ = world
    P, R = mdp.P.numpy(), mdp.R.numpy()
    Vc = V + np.array([0.5, -1.0, 2.0, 0.0])
    H = 7
    ref = np.zeros((4, 3))
    for s in range(4):
        for a in range(3):
            total = R[s, a] + 0.9 * P[s, a] @ Vc - Vc[s]
            dist = P[s, a].copy()  # distribution of s_1
            for l in range(1, H):
                exp_delta = sum(
                    dist[x]
                    * sum(pi[x, b] * (R[x, b] + 0.9 * P[x, b] @ Vc - Vc[x]) for b in range(3))
                    for x in range(4)
                )
                total += (0.9 * lam) ** l * exp_delta
                dist = sum(dist[x] * sum(pi[x, b] * P[x, b] for b in range(3)) for x in range(4))
            ref[s, a] = total
    np.testing.assert_allclose(
        adv.expected_gae(mdp, pi, Vc, 0.9, lam, horizon=H), ref, rtol=1e-12, atol=1e-12
    )
    # the infinite-horizon form is the limit
    far = adv.expected_gae(mdp, pi, Vc, 0.9, lam, horizon=400)
    np.testing.assert_allclose(adv.expected_gae(mdp, pi, Vc, 0.9, lam), far, atol=1e-10)


def test_expected_gae_matches_the_sampled_mean(world):
    mdp, pi, V, *_ = world
    Vc = adv.noisy_critic(V, 1.0, seed=3)
    s0, a0 = adv.all_pairs(4, 3, 4000)
    traj = adv.sample_trajectories(mdp, pi, len(s0), 15, seed=8, start_states=s0, start_actions=a0)
    est, _ = adv.gae_estimates(traj, Vc, 0.9, 0.5)
    mean, var, count = adv.pair_statistics(est[0], s0, a0, 4, 3)
    z = (mean - adv.expected_gae(mdp, pi, Vc, 0.9, 0.5, horizon=15)) / np.sqrt(var / count)
    assert np.abs(z).max() < 5


# -- critics -------------------------------------------------------------------------------
def test_noisy_critic_scales_one_fixed_noise(world):
    V = world[2]
    np.testing.assert_array_equal(adv.noisy_critic(V, 0.0, seed=1), V)
    a, b = adv.noisy_critic(V, 0.5, seed=1), adv.noisy_critic(V, 2.0, seed=1)
    np.testing.assert_allclose((b - V) / 2.0, (a - V) / 0.5, rtol=1e-12)
    np.testing.assert_allclose(a - V, 0.5 * np.random.default_rng(1).standard_normal(4), rtol=1e-12)


def test_tabular_least_squares_is_the_one_hot_regression():
    rng = np.random.default_rng(4)
    s = rng.integers(0, 3, 50)  # state 3 never visited
    y = rng.normal(size=50)
    fallback = np.array([9.0, 9.0, 9.0, 7.0])
    V = adv.tabular_least_squares(s, y, 4, fallback)
    X = np.eye(3)[s]
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    np.testing.assert_allclose(V[:3], coef, rtol=1e-12)
    assert V[3] == 7.0


def test_explained_variance_formula():
    y = np.array([1.0, 2.0, 4.0, 7.0])
    v = np.array([1.5, 2.0, 3.0, 6.0])
    assert adv.explained_variance(v, y) == pytest.approx(1 - np.var(y - v) / np.var(y), rel=1e-12)
    assert adv.explained_variance(y, y) == 1.0
    assert np.isnan(adv.explained_variance(v, np.ones(4)))


def test_fit_tabular_critic_converges_to_v_pi(world):
    mdp, pi, V, _, d = world
    traj = adv.sample_trajectories(mdp, pi, 400, 80, seed=9)
    V_fit, ev = adv.fit_tabular_critic(traj, 4, 0.9, 0.8, iters=15)
    assert np.abs(V_fit - V).max() < 0.05 * np.abs(V).max()
    assert len(ev) == 15 and all(np.isfinite(ev))
    # one round is least squares on the λ-returns of the initial critic
    one, _ = adv.fit_tabular_critic(traj, 4, 0.9, 0.8, iters=1, V_init=np.ones(4))
    _, targets = adv.gae_estimates(traj, np.ones(4), 0.9, 0.8)
    np.testing.assert_allclose(
        one, adv.tabular_least_squares(traj.states[:-1], targets, 4, np.ones(4))
    )


def test_trust_region_value_update_solves_the_constrained_regression():
    rng = np.random.default_rng(5)
    s = rng.integers(0, 4, 60)
    y = rng.normal(3.0, 1.0, 60)
    V_old = np.array([2.0, 4.0, 3.5, 1.0])
    eps = 0.02
    V, c = adv.trust_region_value_update(V_old, s, y, 4, eps)
    sigma2 = np.mean((V_old[s] - y) ** 2)
    radius = 2 * sigma2 * eps
    assert 0 < c < 1
    assert np.mean((V[s] - V_old[s]) ** 2) == pytest.approx(radius, rel=1e-9)  # active constraint
    loss = lambda W: np.sum((W[s] - y) ** 2)
    # no feasible point does better (random points on and inside the constraint boundary)
    for _ in range(2000):
        u = rng.normal(size=4)
        scale = np.sqrt(radius / np.mean(u[s] ** 2)) * rng.uniform(0, 1) ** 0.25
        assert loss(V_old + scale * u) >= loss(V) - 1e-9
    # a generous radius gives the least-squares fit
    V_big, c_big = adv.trust_region_value_update(V_old, s, y, 4, 1e6)
    assert c_big == 1.0
    np.testing.assert_allclose(V_big, adv.tabular_least_squares(s, y, 4, V_old))


# -- the bad critic ------------------------------------------------------------------------
def test_critic_error_bound_matches_numpy_and_holds():
    rng = np.random.default_rng(6)
    for _ in range(200):
        p = rng.dirichlet(np.ones(3), size=4)
        q = rng.dirichlet(np.ones(3), size=4)
        d = rng.dirichlet(np.ones(4))
        e = rng.normal(size=(4, 3)) * rng.uniform(0.1, 5)
        out = adv.critic_error_bound(d, p, q, e)
        err = sum(d[s] * sum((q[s, a] - p[s, a]) * e[s, a] for a in range(3)) for s in range(4))
        tv = 0.5 * np.abs(q - p).sum(1)
        kl = (p * np.log(p / q)).sum(1)
        assert out["error"] == pytest.approx(err, rel=1e-12, abs=1e-14)
        assert out["bound_mean_tv"] == pytest.approx(2 * d @ tv * np.abs(e).max(), rel=1e-12)
        assert out["bound_kl"] == pytest.approx(np.abs(e).max() * np.sqrt(2 * d @ kl), rel=1e-12)
        assert abs(err) <= out["bound_mean_tv"] + 1e-12 <= out["bound_max_tv"] + 2e-12
        assert abs(err) <= out["bound_kl"] + 1e-12
    attained = adv.critic_error_bound(d, p, q, np.sign(q - p))
    assert attained["error"] == pytest.approx(attained["bound_mean_tv"], rel=1e-12)


def test_softmax_gradient_variance_matches_explicit_enumeration():
    rng = np.random.default_rng(7)
    S, A = 2, 3
    pi = rng.dirichlet(np.ones(A), size=S)
    w = rng.dirichlet(np.ones(S * A)).reshape(S, A)
    m = rng.normal(size=(S, A))
    sd = rng.uniform(0.1, 2, size=(S, A))
    # X takes m ± sd with probability ½ each; enumerate every outcome with autograd scores
    logits = torch.tensor(np.log(pi), requires_grad=True)
    outcomes, probs = [], []
    for s in range(S):
        for a in range(A):
            score = (
                torch.autograd.grad(torch.log_softmax(logits, -1)[s, a], logits)[0].numpy().ravel()
            )
            for x in (m[s, a] - sd[s, a], m[s, a] + sd[s, a]):
                outcomes.append(score * x)
                probs.append(w[s, a] / 2)
    G, p = np.array(outcomes), np.array(probs)
    mean = p @ G
    ref = p @ ((G - mean) ** 2).sum(1)
    got = adv.softmax_gradient_variance(pi, w, m, m**2 + sd**2)
    assert got == pytest.approx(ref, rel=1e-10)


# -- the corridor --------------------------------------------------------------------------
def test_corridor_values_and_flags():
    env = adv.CorridorEnv(6)
    gamma = 0.8
    V = env.values(gamma)
    for start in range(6):
        ret, k = 0.0, 0
        env.reset()
        env.pos = start
        done = False
        while not done:
            _, r, term, trunc, _ = env.step(0)
            ret += gamma**k * r
            k += 1
            done = term or trunc
        assert ret == pytest.approx(V[start], rel=1e-12)
        assert term and not trunc
    assert V[6] == 0.0
    limited = gym.wrappers.TimeLimit(adv.CorridorEnv(6), max_episode_steps=3)
    limited.reset(seed=0)
    flags = [limited.step(0)[2:4] for _ in range(3)]
    assert flags == [(False, False), (False, False), (False, True)]
    with pytest.raises(ValueError):
        adv.CorridorEnv(0)


# -- the truncation rule on a hand-computable rollout ---------------------------------------
class _TableValue(torch.nn.Module):
    """V(obs) = table[obs] for the corridor's integer observations."""

    def __init__(self, table):
        super().__init__()
        self.table = torch.as_tensor(table, dtype=torch.float32)

    def forward(self, x):
        return self.table[x[:, 0].long()]


def _corridor_batch(length, limit, gamma, n_steps, **collector_kwargs):
    def make():
        return gym.wrappers.TimeLimit(adv.CorridorEnv(length), max_episode_steps=limit)

    env = gym.vector.SyncVectorEnv([make])
    collector = pgcore.RolloutCollector(env, seed=0, **collector_kwargs)
    policy = pgcore.CategoricalMLPPolicy(1, 1, hidden=(4,))
    V = adv.CorridorEnv(length).values(gamma)
    batch, info = collector.collect(policy, _TableValue(V), n_steps, gamma, 1.0)
    env.close()
    return batch, info, V


def test_collector_targets_on_the_corridor_are_the_exact_values():
    """Truncated after 5 of 8 cells: with the exact critic and the correct rule every λ-return
    is the exact value of its cell (and every advantage zero), across the autoreset."""
    batch, info, V = _corridor_batch(8, 5, 0.9, 12)
    cells = batch.obs[:, 0].long().numpy()
    assert info["episode_lengths"] == [5, 5]  # two cut episodes; the reset steps are dropped
    np.testing.assert_array_equal(cells, [0, 1, 2, 3, 4, 0, 1, 2, 3, 4])
    np.testing.assert_allclose(batch.returns.numpy(), V[cells], rtol=1e-6)
    np.testing.assert_allclose(batch.advantages.numpy(), 0.0, atol=1e-5)


def test_collector_without_the_truncation_bootstrap_gives_the_truncated_sums():
    """The same rollout with ``bootstrap_truncated=False`` (the time-limit bug): by hand, the
    λ = 1 target of cell t is Σ_{k<5−t} γᵏ = (1 − γ^{5−t}) / (1 − γ) instead of V(t)."""
    gamma = 0.9
    batch, _, V = _corridor_batch(8, 5, gamma, 12, bootstrap_truncated=False)
    cells = batch.obs[:, 0].long().numpy()
    by_hand = np.array([sum(gamma**k for k in range(5 - t)) for t in cells])
    np.testing.assert_allclose(batch.returns.numpy(), by_hand, rtol=1e-6)
    np.testing.assert_allclose(batch.advantages.numpy(), by_hand - V[cells], rtol=1e-5, atol=1e-5)
    assert not np.allclose(by_hand, V[cells])
