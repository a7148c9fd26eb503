"""pgcore.training: the contract's signature and history keys, every algorithm on discrete and
continuous tasks, complete records, determinism (also across threads), save/load, resume,
evaluation, custom environments and models, the helpers, and a short run that learns CartPole.

Bad input, divergence, interrupted runs and the command line: tests/test_safety.py and
tests/test_cli.py; the configuration dataclasses: tests/test_config.py."""

from __future__ import annotations

import inspect
import math
import threading

import gymnasium as gym
import numpy as np
import pytest
import torch

import pgcore
from pgcore.training import (
    ALGOS,
    DEFAULTS,
    TrainResult,
    history_arrays,
    load,
    resolve_hparams,
    save,
    steps_to_threshold,
    train,
)

CONTRACT_KEYS = {"env_steps", "episode_returns", "kl", "entropy", "wall_time"}
ISSUE_KEYS = {"clipfrac", "beta", "value_loss", "explained_variance"}
TINY = {"num_envs": 2, "n_steps": 64}


def tiny(algo: str) -> dict:
    """A small batch (2 × 64 steps) with minibatches that fit in it."""
    mb = "minibatch_size" if algo.startswith("ppo") else "vf_minibatch_size"
    return {**TINY, mb: 64}


def _same(a, b) -> bool:
    """Equality that treats nan == nan (bitwise-identical floats compare equal)."""
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def _strip(history):
    return [{k: v for k, v in h.items() if k != "wall_time"} for h in history]


def test_contract_signature():
    assert pgcore.train is train
    sig = inspect.signature(train)
    params = sig.parameters
    assert list(params)[:2] == ["env_id", "algo"]
    assert params["total_steps"].kind is inspect.Parameter.KEYWORD_ONLY
    assert params["total_steps"].default is inspect.Parameter.empty
    assert params["seed"].kind is inspect.Parameter.KEYWORD_ONLY and params["seed"].default == 0
    assert any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    assert {"vpg", "npg", "trpo", "ppo-clip", "ppo-kl", "ppo-fixed-kl", "ppo-noclip"} <= set(ALGOS)


@pytest.mark.parametrize("algo", sorted(ALGOS))
@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_every_algo_runs_and_reports_history(algo, env_id):
    result = train(env_id, algo, total_steps=256, seed=1, progress=False, **tiny(algo))
    assert isinstance(result, TrainResult)
    h = result.history
    assert len(h) == 2 and [x["env_steps"] for x in h] == [128, 256]
    for row in h:
        assert CONTRACT_KEYS | ISSUE_KEYS <= set(row)
        assert all(isinstance(r, float) for r in row["episode_returns"])
        assert math.isfinite(row["kl"]) and row["kl"] >= 0
        assert math.isfinite(row["entropy"]) and math.isfinite(row["value_loss"])
        assert (row["clipfrac"] is None) == (not algo.startswith("ppo"))
        assert (row["beta"] is None) == (algo not in ("ppo-kl", "ppo-fixed-kl"))
        assert row["value_loss"] >= 0
        assert set(row) == set(h[0])  # one key set per run
    if algo == "trpo":
        assert {"accepted", "backtracks", "step_fraction", "predicted_kl", "cg_residual"} <= set(
            h[0]
        )
        assert isinstance(h[0]["accepted"], bool) and isinstance(h[0]["backtracks"], int)
    if algo.startswith("ppo"):
        assert {"approx_kl", "early_stopped", "beta_next", "clip_range"} <= set(h[0])
    assert h[1]["wall_time"] >= h[0]["wall_time"] > 0
    expected = pgcore.CategoricalMLPPolicy if env_id == "CartPole-v1" else pgcore.GaussianMLPPolicy
    assert isinstance(result.policy, expected)
    assert result.config["env_id"] == env_id and result.config["algo"] == algo


def test_trpo_respects_its_trust_region():
    result = train(
        "CartPole-v1",
        "trpo",
        total_steps=1024,
        seed=0,
        progress=False,
        max_kl=0.005,
        **tiny("trpo"),
    )
    assert all(h["kl"] <= 0.005 + 1e-9 for h in result.history)


def test_adaptive_beta_follows_the_rule():
    result = train(
        "CartPole-v1",
        "ppo-kl",
        total_steps=1024,
        seed=0,
        progress=False,
        beta=1.0,
        d_targ=0.01,
        **tiny("ppo-kl"),
    )
    beta = 1.0  # `beta` is the β an update used, `beta_next` the β after the rule
    for h in result.history:
        assert h["beta"] == pytest.approx(beta)
        d = h["kl"]
        beta = beta / 2 if d < 0.01 / 1.5 else (beta * 2 if d > 0.015 else beta)
        assert h["beta_next"] == pytest.approx(beta)
    assert len({h["beta"] for h in result.history}) > 1
    fixed = train(
        "CartPole-v1",
        "ppo-fixed-kl",
        total_steps=512,
        seed=0,
        progress=False,
        beta=3.0,
        **tiny("ppo-fixed-kl"),
    )
    assert [h["beta"] for h in fixed.history] == [3.0] * 4


@pytest.mark.parametrize(
    "env_id,algo",
    [
        ("CartPole-v1", "ppo-clip"),
        ("CartPole-v1", "trpo"),
        ("Pendulum-v1", "ppo-kl"),
        ("Acrobot-v1", "vpg"),
    ],
)
def test_same_seed_same_history(env_id, algo):
    a = train(env_id, algo, total_steps=384, seed=3, progress=False, **tiny(algo))
    b = train(env_id, algo, total_steps=384, seed=3, progress=False, **tiny(algo))
    assert _same(_strip(a.history), _strip(b.history))
    for pa, pb in zip(a.policy.state_dict().values(), b.policy.state_dict().values(), strict=True):
        assert torch.equal(pa, pb)
    c = train(env_id, algo, total_steps=384, seed=4, progress=False, **tiny(algo))
    assert not _same(_strip(a.history), _strip(c.history))


@pytest.mark.parametrize("validate", [True, False])
def test_train_restores_torch_settings_and_leaves_the_global_generator_alone(validate):
    threads = torch.get_num_threads()
    before = torch.distributions.Distribution._validate_args
    torch.distributions.Distribution.set_default_validate_args(validate)
    rng = torch.random.get_rng_state()
    try:
        train("CartPole-v1", "vpg", total_steps=128, progress=False, **tiny("vpg"))
        assert torch.get_num_threads() == threads
        assert torch.distributions.Distribution._validate_args is validate
        assert torch.equal(torch.random.get_rng_state(), rng)  # neither seeded nor drawn from
    finally:
        torch.distributions.Distribution.set_default_validate_args(before)


def test_the_global_seed_does_not_change_a_run():
    torch.manual_seed(123)
    a = train("CartPole-v1", "ppo-clip", total_steps=256, seed=5, progress=False, **tiny("ppo"))
    torch.manual_seed(456)
    b = train("CartPole-v1", "ppo-clip", total_steps=256, seed=5, progress=False, **tiny("ppo"))
    assert _same(_strip(a.history), _strip(b.history))


@pytest.mark.parametrize("algo", ["ppo-kl", "trpo"])
def test_runs_in_threads_equal_runs_alone(algo):
    """Two runs in parallel threads of one process give bitwise the histories and parameters
    they give alone, and the global settings are restored once both are done."""
    kw = {"total_steps": 256, "progress": False, **tiny(algo)}
    alone = [train("CartPole-v1", algo, seed=s, **kw) for s in (0, 1)]
    together: dict[int, TrainResult] = {}
    errors: list[BaseException] = []

    def run(s):
        try:
            together[s] = train("CartPole-v1", algo, seed=s, **kw)
        except BaseException as e:  # noqa: BLE001 - re-raised in the main thread
            errors.append(e)

    threads = [threading.Thread(target=run, args=(s,)) for s in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for s in (0, 1):
        assert _same(_strip(together[s].history), _strip(alone[s].history))
        for pa, pb in zip(
            together[s].policy.state_dict().values(),
            alone[s].policy.state_dict().values(),
            strict=True,
        ):
            assert torch.equal(pa, pb)
    assert torch.distributions.Distribution._validate_args == __debug__


def test_save_load_round_trip(tmp_path):
    result = train(
        "Pendulum-v1", "ppo-clip", total_steps=256, seed=0, progress=False, **tiny("ppo")
    )
    assert result.obs_rms is not None  # Pendulum normalises observations by default
    path = tmp_path / "run.pt"
    save(result, str(path))
    loaded = load(str(path))
    assert loaded.config == result.config
    assert _same(loaded.history, result.history)
    obs = np.random.default_rng(0).normal(size=(16, 3))
    np.testing.assert_array_equal(loaded.act(obs), result.act(obs))
    assert loaded.act(obs).shape == (16, 1) and loaded.act(obs[0]).shape == (1,)
    assert loaded.optimizer_state is not None and loaded.interrupted is False
    x = torch.randn(16, 3)
    with torch.no_grad():
        assert torch.equal(loaded.value_fn(x), result.value_fn(x))
        d1, d2 = loaded.policy.distribution(x), result.policy.distribution(x)
        assert torch.equal(d1.mean, d2.mean) and torch.equal(d1.stddev, d2.stddev)
    # the file is plain tensors and containers
    assert torch.load(str(path), weights_only=True)["format"] == "pgcore.train/1"


def test_load_rejects_foreign_files(tmp_path):
    path = tmp_path / "x.pt"
    torch.save({"hello": torch.zeros(1)}, str(path))
    with pytest.raises(ValueError, match="not a pgcore.train save file"):
        load(str(path))


def test_resolve_hparams_layers_defaults():
    cartpole = resolve_hparams("CartPole-v1", "trpo")
    assert cartpole["max_kl"] == DEFAULTS["CartPole-v1"]["trpo"]["max_kl"]
    assert cartpole["cg_iters"] == DEFAULTS["*"]["trpo"]["cg_iters"]
    assert resolve_hparams("Acrobot-v1", "trpo")["max_kl"] == DEFAULTS["*"]["trpo"]["max_kl"]
    assert resolve_hparams("Pendulum-v1", "ppo-clip")["normalize_obs"] is True
    assert resolve_hparams("CartPole-v1", "ppo-clip", lr=5e-4)["lr"] == 5e-4
    assert "max_kl" not in resolve_hparams("CartPole-v1", "ppo-clip")
    for env_id in ("CartPole-v1", "Acrobot-v1", "Pendulum-v1", "MountainCarContinuous-v0"):
        assert env_id in DEFAULTS


def test_history_arrays_and_steps_to_threshold():
    history = [
        {
            "env_steps": 100,
            "wall_time": 1.0,
            "kl": 0.01,
            "clipfrac": None,
            "beta": None,
            "entropy": 0.6,
            "value_loss": 1.0,
            "explained_variance": 0.1,
            "surrogate_gain": 0.0,
            "episode_returns": [1.0, 3.0],
            "episode_end_steps": [40, 90],
        },
        {
            "env_steps": 200,
            "wall_time": 2.0,
            "kl": 0.02,
            "clipfrac": None,
            "beta": None,
            "entropy": 0.5,
            "value_loss": 0.5,
            "explained_variance": 0.2,
            "surrogate_gain": 0.0,
            "episode_returns": [],
            "episode_end_steps": [],
        },
        {
            "env_steps": 300,
            "wall_time": 3.0,
            "kl": 0.03,
            "clipfrac": None,
            "beta": None,
            "entropy": 0.4,
            "value_loss": 0.2,
            "explained_variance": 0.3,
            "surrogate_gain": 0.0,
            "episode_returns": [5.0, 7.0],
            "episode_end_steps": [250, 260],
        },
    ]
    a = history_arrays(history, window=2)
    np.testing.assert_array_equal(a["env_steps"], [100, 200, 300])
    assert np.isnan(a["clipfrac"]).all()
    np.testing.assert_array_equal(a["episode_returns"], [1, 3, 5, 7])
    np.testing.assert_array_equal(a["episode_steps"], [40, 90, 250, 260])
    np.testing.assert_allclose(a["smoothed_returns"], [1, 2, 4, 6])
    np.testing.assert_allclose(a["mean_return"], [2, 2, 6])
    assert steps_to_threshold(history, 4.0, window=2) == (250, 3.0)
    assert steps_to_threshold(history, 6.5, window=2) is None


def test_callback_sees_the_row_and_the_models_and_stops_training():
    seen = []

    def callback(row, state):
        assert state.history[-1] is row and state.iteration == row["iteration"]
        assert state.env_steps == row["env_steps"]
        assert set(state.optimizers) == {"policy"}
        with torch.no_grad():
            dist = state.policy.distribution(torch.zeros(1, 4))
            seen.append((float(dist.probs[0, 0]), float(state.value_fn(torch.zeros(1, 4))[0])))
        return len(state.history) == 3

    result = train(
        "CartPole-v1",
        "ppo-clip",
        total_steps=10_000,
        progress=False,
        callback=callback,
        **tiny("ppo"),
    )
    assert len(result.history) == 3 and len(seen) == 3
    assert len(set(seen)) == 3  # the callback saw models that change between iterations


def test_value_loss_means_the_same_for_every_algorithm():
    """value_loss is E[(V − V^targ)²] for PPO (inside ppo_update) and for the separate fit of
    VPG/NPG/TRPO: with the value function frozen (vf_lr tiny, vf_coef 0) both equal the MSE
    of the initial value function on the first batch's targets."""
    from pgcore.batch import Batch
    from pgcore.rollouts import RolloutCollector

    captured = {}
    orig = RolloutCollector.collect

    def collect(self, policy, value_fn, *a, **k):
        batch, info = orig(self, policy, value_fn, *a, **k)
        captured.setdefault("mse", float(((batch.values - batch.returns) ** 2).mean()))
        assert isinstance(batch, Batch)
        return batch, info

    import pgcore.rollouts as rollouts

    losses = {}
    one_minibatch = [
        ("trpo", {"vf_lr": 1e-12, "vf_epochs": 1, "vf_minibatch_size": 128}),
        ("ppo-clip", {"vf_coef": 0.0, "epochs": 1, "minibatch_size": 128}),
    ]
    for algo, hp in one_minibatch:
        captured.clear()
        rollouts.RolloutCollector.collect = collect
        try:
            r = train("CartPole-v1", algo, total_steps=128, seed=0, progress=False, **TINY, **hp)
        finally:
            rollouts.RolloutCollector.collect = orig
        losses[algo] = (r.history[0]["value_loss"], captured["mse"])
    for algo, (reported, mse) in losses.items():
        assert reported == pytest.approx(mse, rel=1e-4), algo


def test_custom_env_factory_env_kwargs_policy_and_value_fn():
    made = []

    def factory(**kwargs):
        made.append(kwargs)
        return gym.make("CartPole-v1", **kwargs)

    policy = pgcore.CategoricalMLPPolicy(4, 2, (16,))
    value_fn = pgcore.ValueNetwork(4, (16,))
    before = [p.clone() for p in policy.parameters()]
    r = train(
        factory,
        "ppo-clip",
        total_steps=256,
        progress=False,
        env_kwargs={"max_episode_steps": 50},
        policy=policy,
        value_fn=value_fn,
        **tiny("ppo"),
    )
    assert made == [{"max_episode_steps": 50}] * 2
    assert r.policy is policy and r.value_fn is value_fn
    assert any(not torch.equal(a, b) for a, b in zip(before, policy.parameters(), strict=True))
    assert max(max(h["episode_lengths"], default=0) for h in r.history) <= 50
    assert r.config["env_id"] is None and r.config["custom_policy"].endswith("CategoricalMLPPolicy")


def test_module_colon_env_id_form():
    r = train(
        "gymnasium.envs.classic_control:CartPole-v1",
        "vpg",
        total_steps=128,
        progress=False,
        **tiny("vpg"),
    )
    assert r.history[-1]["env_steps"] == 128


def test_resume_continues_the_optimiser_and_beta(tmp_path):
    first = train("CartPole-v1", "ppo-kl", total_steps=256, seed=0, progress=False, **tiny("ppo"))
    path = tmp_path / "a.pt"
    save(first, str(path))
    loaded = load(str(path))
    assert loaded.optimizer_state["beta"] == first.history[-1]["beta_next"]
    resumed = train("CartPole-v1", "ppo-kl", total_steps=128, seed=1, progress=False, init=loaded)
    assert resumed.history[0]["beta"] == first.history[-1]["beta_next"]
    assert resumed.config["minibatch_size"] == 64  # the hyperparameters come from init
    step = resumed.optimizer_state["policy"]["state"][0]["step"]
    assert float(step) > float(first.optimizer_state["policy"]["state"][0]["step"])
    # the previous result is not changed by the resumed run
    for a, b in zip(loaded.policy.parameters(), first.policy.parameters(), strict=True):
        assert torch.equal(a, b)


def test_act_clips_and_refuses_wrong_sizes():
    r = train(
        "Pendulum-v1", "trpo", total_steps=128, progress=False, log_std_init=3.0, **tiny("trpo")
    )
    obs = np.random.default_rng(0).normal(size=(64, 3))
    a = r.act(obs, deterministic=False, generator=torch.Generator().manual_seed(0))
    assert a.shape == (64, 1) and np.all(np.abs(a) <= 2.0) and np.any(np.abs(a) == 2.0)
    for bad in (np.zeros(4), np.zeros((2, 2)), np.zeros((1, 2, 3))):
        with pytest.raises(ValueError, match="obs must have shape"):
            r.act(bad)


def test_evaluate_a_trained_cartpole_ppo_policy():
    """The CartPole PPO preset, seed 0, 32768 steps: deterministic evaluation reaches 475."""
    r = train("CartPole-v1", "ppo-clip", total_steps=32_768, seed=0, progress=False)
    mean, std = pgcore.evaluate(r, n_episodes=10)
    assert mean >= 475, (mean, std)
    assert pgcore.evaluate(r, n_episodes=10) == (mean, std)  # seeded: reproducible


def test_short_run_learns_cartpole():
    """A fixed seed, so it cannot flake: PPO-clip lifts CartPole's return several-fold."""
    result = train("CartPole-v1", "ppo-clip", total_steps=12_288, seed=0, progress=False)
    a = history_arrays(result.history)
    first = np.mean(result.history[0]["episode_returns"])
    assert first < 40
    assert a["mean_return"][-1] > 4 * first
    assert a["mean_return"][-1] > 150
