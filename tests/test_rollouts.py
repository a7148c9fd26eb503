"""GAE against a hand-written NumPy reference, the running normaliser, and rollout collection
from gymnasium vector environments (NEXT_STEP autoreset, truncation bootstrapping)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

from pgcore import CategoricalMLPPolicy, GaussianMLPPolicy, ValueNetwork, gae
from pgcore.rollouts import RolloutCollector, RunningMeanStd, make_vector_env


def gae_reference(r, v, nv, term, trunc, gamma, lam):
    """Element by element: δ = r + γ(1−term)V' − V; A_t = δ_t + γλ(1−done_t)A_{t+1}."""
    r, v, nv = (np.asarray(a, dtype=np.float64) for a in (r, v, nv))
    term, trunc = np.asarray(term, dtype=bool), np.asarray(trunc, dtype=bool)
    squeeze = r.ndim == 1
    if squeeze:
        r, v, nv, term, trunc = (a[:, None] for a in (r, v, nv, term, trunc))
    T, N = r.shape
    adv = np.zeros((T, N))
    for n in range(N):
        following = 0.0
        for t in reversed(range(T)):
            delta = r[t, n] + (0.0 if term[t, n] else gamma * nv[t, n]) - v[t, n]
            cont = 0.0 if (term[t, n] or trunc[t, n]) else 1.0
            following = delta + gamma * lam * cont * following
            adv[t, n] = following
    ret = adv + v
    return (adv[:, 0], ret[:, 0]) if squeeze else (adv, ret)


def _random_episode_data(T: int, N: int | None, seed: int):
    rng = np.random.default_rng(seed)
    shape = (T,) if N is None else (T, N)
    r = rng.normal(size=shape)
    v = rng.normal(size=shape)
    nv = rng.normal(size=shape)
    u = rng.random(size=shape)
    term, trunc = u < 0.1, (u >= 0.1) & (u < 0.2)
    return r, v, nv, term, trunc


@pytest.mark.parametrize("N", [None, 1, 4])
@pytest.mark.parametrize("gamma,lam", [(0.99, 0.95), (0.9, 0.0), (1.0, 1.0), (0.5, 0.7)])
def test_gae_matches_reference(N, gamma, lam):
    r, v, nv, term, trunc = _random_episode_data(37, N, seed=int(gamma * 100 + lam * 10))
    adv, ret = gae(
        *(torch.tensor(a) for a in (r, v, nv)), torch.tensor(term), torch.tensor(trunc), gamma, lam
    )
    ref_adv, ref_ret = gae_reference(r, v, nv, term, trunc, gamma, lam)
    assert adv.shape == ret.shape == r.shape
    assert adv.dtype == torch.float64
    np.testing.assert_allclose(adv.numpy(), ref_adv, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ret.numpy(), ref_ret, rtol=1e-12, atol=1e-12)


def test_gae_accepts_float_flags_and_keeps_float32():
    r, v, nv, term, trunc = _random_episode_data(20, 3, seed=1)
    t32 = lambda a: torch.tensor(a, dtype=torch.float32)
    adv, ret = gae(t32(r), t32(v), t32(nv), t32(term), t32(trunc), 0.99, 0.95)
    assert adv.dtype == ret.dtype == torch.float32
    ref_adv, _ = gae_reference(
        r.astype(np.float32), v.astype(np.float32), nv.astype(np.float32), term, trunc, 0.99, 0.95
    )
    np.testing.assert_allclose(adv.numpy(), ref_adv, rtol=1e-5, atol=1e-5)


def test_gae_truncation_bootstraps_from_final_observation():
    # One environment, episode 1 is truncated at t=2, episode 2 terminates at t=4.
    r = torch.ones(5, dtype=torch.float64)
    v = torch.tensor([1.0, 2.0, 3.0, 10.0, 20.0], dtype=torch.float64)
    nv = torch.tensor([2.0, 3.0, 7.0, 20.0, 99.0], dtype=torch.float64)  # 7 = V(final obs)
    term = torch.tensor([0, 0, 0, 0, 1], dtype=torch.bool)
    trunc = torch.tensor([0, 0, 1, 0, 0], dtype=torch.bool)
    gamma, lam = 0.9, 0.8
    adv, ret = gae(r, v, nv, term, trunc, gamma, lam)
    d2 = 1 + gamma * 7.0 - 3.0  # bootstrapped from the final observation, λ-recursion cut
    d1 = 1 + gamma * 3.0 - 2.0
    d0 = 1 + gamma * 2.0 - 1.0
    d4 = 1 - 20.0  # terminated: no bootstrap (V' = 99 ignored)
    d3 = 1 + gamma * 20.0 - 10.0
    expected = [
        d0 + gamma * lam * (d1 + gamma * lam * d2),
        d1 + gamma * lam * d2,
        d2,
        d3 + gamma * lam * d4,
        d4,
    ]
    np.testing.assert_allclose(adv.numpy(), expected, rtol=1e-12)
    np.testing.assert_allclose(ret.numpy(), np.array(expected) + v.numpy(), rtol=1e-12)


def test_gae_lambda_one_gamma_one_is_reward_to_go_minus_value():
    r = torch.tensor([1.0, 2.0, 3.0, 4.0])
    v = torch.tensor([0.5, 0.5, 0.5, 0.5])
    z = torch.zeros(4, dtype=torch.bool)
    term = torch.tensor([False, False, False, True])
    nv = torch.tensor([0.5, 0.5, 0.5, 123.0])  # V(s_{t+1}); the last is cut by termination
    adv, ret = gae(r, v, nv, term, z, 1.0, 1.0)
    np.testing.assert_allclose(ret.numpy(), [10.0, 9.0, 7.0, 4.0])


@pytest.mark.parametrize("bad", ["values", "next_values", "terminated", "truncated"])
def test_gae_shape_mismatch_names_the_argument(bad):
    args = {k: torch.zeros(6, 2) for k in ("rewards", "values", "next_values")}
    args["terminated"] = torch.zeros(6, 2, dtype=torch.bool)
    args["truncated"] = torch.zeros(6, 2, dtype=torch.bool)
    args[bad] = args[bad][:5]
    with pytest.raises(ValueError, match=bad):
        gae(**args, gamma=0.99, lam=0.95)


def test_gae_rejects_bad_rank_and_coefficients():
    z = torch.zeros(2, 2, 2)
    with pytest.raises(ValueError, match=r"\[T\] or \[T, N\]"):
        gae(z, z, z, z, z, 0.9, 0.9)
    z = torch.zeros(3)
    with pytest.raises(ValueError, match="gamma"):
        gae(z, z, z, z, z, 1.5, 0.9)


def test_running_mean_std_matches_numpy():
    rng = np.random.default_rng(0)
    data = rng.normal(3.0, 2.0, size=(1000, 3))
    rms = RunningMeanStd(3)
    for chunk in np.array_split(data, 7):
        rms.update(chunk)
    np.testing.assert_allclose(rms.mean, data.mean(0), rtol=1e-6)
    np.testing.assert_allclose(rms.var, data.var(0), rtol=1e-3)
    z = rms.normalize(data)
    assert z.dtype == np.float32 and np.abs(z).max() <= rms.clip
    restored = RunningMeanStd(3)
    restored.load_state_dict(rms.state_dict())
    np.testing.assert_array_equal(restored.normalize(data), z)


# -- a deterministic toy environment: obs = [steps taken], reward 1 ------------------------
class CounterEnv(gym.Env):
    """obs = [t]; reward 1; terminates at t = ``end`` if ``terminate`` else runs forever
    (the registration's TimeLimit truncates it)."""

    def __init__(self, end: int = 5, terminate: bool = False):
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (1,), np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.end, self.terminate, self.t = end, terminate, 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.array([0.0], dtype=np.float32), {}

    def step(self, action):
        self.t += 1
        return (
            np.array([self.t], dtype=np.float32),
            1.0,
            self.terminate and self.t >= self.end,
            False,
            {},
        )


gym.register("pgcoretest/Counter-v0", entry_point=CounterEnv, max_episode_steps=5)
gym.register(
    "pgcoretest/CounterTerm-v0",
    entry_point=CounterEnv,
    kwargs={"terminate": True},
    max_episode_steps=100,
)


class Identity(nn.Module):
    """V(s) = s[0]: the value function used to check the bootstrap targets exactly."""

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return obs[:, 0]


@pytest.mark.parametrize(
    "env_id,terminate", [("pgcoretest/Counter-v0", False), ("pgcoretest/CounterTerm-v0", True)]
)
def test_collector_bootstraps_truncation_and_drops_reset_steps(env_id, terminate):
    torch.manual_seed(0)
    env = make_vector_env(env_id, 3)
    collector = RolloutCollector(env, seed=0)
    policy = CategoricalMLPPolicy(1, 2)
    gamma = 0.9
    batch, info = collector.collect(policy, Identity(), n_steps=14, gamma=gamma, lam=0.0)
    # each env: 5 real steps, 1 reset step, 5 real, 1 reset, 2 real → 12 real steps of 14
    assert len(batch) == 3 * 12 and info["env_steps"] == 3 * 14
    assert info["episode_returns"] == [5.0] * 6 and info["episode_lengths"] == [5] * 6
    assert sorted(set(info["episode_end_steps"])) == [3 * 5, 3 * 11]
    t = batch.obs[:, 0].double()
    assert set(t.tolist()) <= {0.0, 1.0, 2.0, 3.0, 4.0}  # never the final obs t = 5
    # λ = 0: Â = r + γ(1 − term)V(s') − V(s) with V(s) = t and s' = t + 1
    last = t == 4.0
    expected = 1.0 + gamma * (t + 1) - t
    if terminate:
        expected = torch.where(last, 1.0 - t, expected)
    np.testing.assert_allclose(batch.advantages.double().numpy(), expected.numpy(), rtol=1e-6)
    np.testing.assert_allclose(
        batch.returns.numpy(), (batch.advantages + batch.values).numpy(), rtol=1e-6
    )
    assert torch.allclose(batch.weights.sum(), torch.tensor(1.0))


def test_collector_episode_spans_iterations():
    env = make_vector_env("pgcoretest/Counter-v0", 2)
    collector = RolloutCollector(env, seed=0)
    policy, vf = CategoricalMLPPolicy(1, 2), Identity()
    _, info1 = collector.collect(policy, vf, n_steps=3, gamma=0.9, lam=0.9)
    _, info2 = collector.collect(policy, vf, n_steps=3, gamma=0.9, lam=0.9)
    assert info1["episode_returns"] == [] and info2["episode_returns"] == [5.0, 5.0]
    assert info2["episode_end_steps"] == [10, 10] and info2["env_steps"] == 12


def test_cartpole_uses_native_vector_env_and_batch_shapes():
    env = make_vector_env("CartPole-v1", 4)
    assert type(env).__name__ == "CartPoleVectorEnv"
    torch.manual_seed(0)
    collector = RolloutCollector(env, seed=0, normalize_obs=True)
    policy, vf = CategoricalMLPPolicy(4, 2), ValueNetwork(4)
    batch, info = collector.collect(policy, vf, n_steps=64, gamma=0.99, lam=0.95)
    n = len(batch)
    assert n <= 256 and info["env_steps"] == 256
    assert batch.obs.shape == (n, 4) and batch.obs.dtype == torch.float32
    assert batch.actions.shape == (n,) and batch.actions.dtype == torch.long
    for field in ("advantages", "logp_old", "weights", "returns", "values"):
        assert getattr(batch, field).shape == (n,)
    assert not batch.logp_old.requires_grad
    # each reset step is one step after a finished episode: 256 − n of them, at most one each
    assert 256 - n <= len(info["episode_returns"])
    # CartPole pays 1 per step, so the return of an episode is its length
    assert info["episode_returns"] == [float(x) for x in info["episode_lengths"]]
    with torch.no_grad():
        np.testing.assert_allclose(
            policy.distribution(batch.obs).log_prob(batch.actions).numpy(),
            batch.logp_old.numpy(),
            rtol=1e-5,
            atol=1e-6,
        )
    assert collector.obs_rms.count > 200  # updated after the rollout


def test_sync_fallback_and_gaussian_actions():
    env = make_vector_env("Pendulum-v1", 2)
    assert isinstance(env, gym.vector.SyncVectorEnv)
    torch.manual_seed(0)
    collector = RolloutCollector(env, seed=0)
    policy, vf = GaussianMLPPolicy(3, 1, log_std_init=1.0), ValueNetwork(3)
    batch, info = collector.collect(policy, vf, n_steps=201, gamma=0.9, lam=0.95)
    # Pendulum only truncates (200 steps): one reset step per env
    assert len(batch) == 2 * 200 and info["episode_lengths"] == [200, 200]
    assert batch.actions.shape == (400, 1)
    assert batch.actions.abs().max() > 2.0  # stored unclipped; the env got clipped actions


def test_sample_action_draws_from_the_given_generator_only():
    from torch.distributions import Beta, Categorical, Independent, Normal

    from pgcore.rollouts import sample_action

    rng = torch.random.get_rng_state()
    probs = torch.tensor([[0.2, 0.8], [0.9, 0.1]]).repeat(10_000, 1)
    a = sample_action(Categorical(probs=probs), torch.Generator().manual_seed(0))
    assert a.shape == (20_000,) and a.dtype == torch.long
    assert abs(a[0::2].float().mean().item() - 0.8) < 0.02
    assert abs(a[1::2].float().mean().item() - 0.1) < 0.02
    b = sample_action(Categorical(probs=probs), torch.Generator().manual_seed(0))
    assert torch.equal(a, b)
    loc, scale = torch.tensor([1.0, -2.0]), torch.tensor([0.5, 3.0])
    dist = Independent(Normal(loc.expand(20_000, 2), scale.expand(20_000, 2)), 1)
    x = sample_action(dist, torch.Generator().manual_seed(1))
    assert x.shape == (20_000, 2)
    torch.testing.assert_close(x.mean(0), loc, atol=0.06, rtol=0)
    torch.testing.assert_close(x.std(0), scale, atol=0.06, rtol=0)
    assert torch.equal(torch.random.get_rng_state(), rng)
    with pytest.raises(TypeError, match="cannot sample Beta"):
        sample_action(Beta(torch.ones(2), torch.ones(2)), None)


def test_collector_is_independent_of_the_global_generator():
    def batch(global_seed):
        torch.manual_seed(global_seed)
        env = make_vector_env("CartPole-v1", 2)
        policy = CategoricalMLPPolicy(4, 2)
        torch.manual_seed(0)  # the same weights in both runs
        policy = CategoricalMLPPolicy(4, 2)
        value = ValueNetwork(4)
        torch.manual_seed(global_seed)
        b, _ = RolloutCollector(env, seed=3).collect(policy, value, 16, 0.99, 0.95)
        env.close()
        return b

    a, b = batch(1), batch(2)
    assert torch.equal(a.actions, b.actions) and torch.equal(a.obs, b.obs)


def test_make_vector_env_from_a_callable_with_kwargs():
    made = []

    def factory(**kw):
        made.append(kw)
        return gym.make("CartPole-v1", **kw)

    env = make_vector_env(factory, 3, {"max_episode_steps": 7})
    assert env.num_envs == 3 and made == [{"max_episode_steps": 7}] * 3
    env.close()
    with pytest.raises(ValueError, match="unknown env id"):
        make_vector_env("no_such_module:X-v0", 1)


def test_bootstrap_truncated_false_treats_the_time_limit_as_termination():
    """The time-limit bug, kept for the ablation: a truncated step gets no bootstrap."""
    env = make_vector_env("pgcoretest/Counter-v0", 2)
    collector = RolloutCollector(env, seed=0, bootstrap_truncated=False)
    batch, _ = collector.collect(CategoricalMLPPolicy(1, 2), Identity(), 7, gamma=0.9, lam=0.0)
    env.close()
    t = batch.obs[:, 0].double()
    expected = torch.where(t == 4.0, 1.0 - t, 1.0 + 0.9 * (t + 1) - t)
    np.testing.assert_allclose(batch.advantages.double().numpy(), expected.numpy(), rtol=1e-6)


class Zero(nn.Module):
    """V ≡ 0: GAE is then linear in the rewards, so scaled and unscaled targets compare."""

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.zeros(obs.shape[0])


def test_reward_scaling_divides_by_the_std_of_the_discounted_return():
    gamma = 0.9
    runs = {}
    for scaled in (False, True):
        env = make_vector_env("pgcoretest/Counter-v0", 2)
        rms = RunningMeanStd(1) if scaled else None
        collector = RolloutCollector(env, seed=0, return_rms=rms)
        batch, _ = collector.collect(CategoricalMLPPolicy(1, 2), Zero(), 8, gamma, 1.0)
        runs[scaled] = (batch, collector)
    # each env: steps 0-4 real (R = 1, 1 + γ, ..., Σ_{k<5} γᵏ), 5 the reset step, 6-7 real
    # (a new episode: R = 1, 1 + γ); the reset step is not merged
    R = np.cumsum(gamma ** np.arange(5))
    seen = np.concatenate([R, R[:2], R, R[:2]])
    rms = runs[True][1].return_rms
    np.testing.assert_allclose(rms.mean, [seen.mean()], rtol=1e-4)
    np.testing.assert_allclose(rms.var, [seen.var()], rtol=1e-4)
    std = np.sqrt(rms.var[0] + rms.eps)
    np.testing.assert_allclose(
        runs[True][0].returns.numpy() * std, runs[False][0].returns.numpy(), rtol=1e-5
    )
    # the running discounted return continues into the next rollout, episode by episode
    np.testing.assert_allclose(runs[True][1].disc_return, [R[1], R[1]])


def test_reward_scaling_leaves_the_reported_returns_alone():
    env = make_vector_env("pgcoretest/Counter-v0", 2)
    collector = RolloutCollector(env, seed=0, return_rms=RunningMeanStd(1))
    _, info = collector.collect(CategoricalMLPPolicy(1, 2), Zero(), 12, 0.99, 0.95)
    assert info["episode_returns"] == [5.0] * 4
