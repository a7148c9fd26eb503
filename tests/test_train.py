"""pgcore.train: the contract's signature and history keys, every algorithm on discrete and
continuous tasks, determinism, save/load, bad input, the helpers, the CLI, and a short run
that learns CartPole."""

from __future__ import annotations

import inspect
import math
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch

import pgcore
from pgcore.train import (
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
    result = train(env_id, algo, total_steps=256, seed=1, progress=False, **TINY)
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
    assert h[1]["wall_time"] >= h[0]["wall_time"] > 0
    expected = pgcore.CategoricalMLPPolicy if env_id == "CartPole-v1" else pgcore.GaussianMLPPolicy
    assert isinstance(result.policy, expected)
    assert result.config["env_id"] == env_id and result.config["algo"] == algo


def test_trpo_respects_its_trust_region():
    result = train(
        "CartPole-v1", "trpo", total_steps=1024, seed=0, progress=False, max_kl=0.005, **TINY
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
        **TINY,
    )
    beta = 1.0
    for h in result.history:
        d = h["kl"]
        beta = beta / 2 if d < 0.01 / 1.5 else (beta * 2 if d > 0.015 else beta)
        assert h["beta"] == pytest.approx(beta)
    fixed = train(
        "CartPole-v1", "ppo-fixed-kl", total_steps=512, seed=0, progress=False, beta=3.0, **TINY
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
    a = train(env_id, algo, total_steps=384, seed=3, progress=False, **TINY)
    b = train(env_id, algo, total_steps=384, seed=3, progress=False, **TINY)
    assert _same(_strip(a.history), _strip(b.history))
    for pa, pb in zip(a.policy.state_dict().values(), b.policy.state_dict().values(), strict=True):
        assert torch.equal(pa, pb)
    c = train(env_id, algo, total_steps=384, seed=4, progress=False, **TINY)
    assert not _same(_strip(a.history), _strip(c.history))


def test_train_restores_torch_settings():
    threads = torch.get_num_threads()
    train("CartPole-v1", "vpg", total_steps=128, progress=False, **TINY)
    assert torch.get_num_threads() == threads
    assert torch.distributions.Distribution._validate_args == __debug__


def test_save_load_round_trip(tmp_path):
    result = train("Pendulum-v1", "ppo-clip", total_steps=256, seed=0, progress=False, **TINY)
    assert result.obs_rms is not None  # Pendulum normalises observations by default
    path = tmp_path / "run.pt"
    save(result, str(path))
    loaded = load(str(path))
    assert loaded.config == result.config
    assert _same(loaded.history, result.history)
    obs = np.random.default_rng(0).normal(size=(16, 3))
    np.testing.assert_array_equal(loaded.act(obs), result.act(obs))
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


class DictActionEnv(gym.Env):
    observation_space = gym.spaces.Box(-1, 1, (2,), np.float32)
    action_space = gym.spaces.Dict({"a": gym.spaces.Discrete(2), "b": gym.spaces.Discrete(3)})

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(2, np.float32), {}

    def step(self, action):
        return np.zeros(2, np.float32), 0.0, False, False, {}


gym.register("pgcoretest/DictAction-v0", entry_point=DictActionEnv, max_episode_steps=10)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"algo": "a2c"}, "unknown algo 'a2c'"),
        ({"env_id": "NoSuchEnv-v0"}, "unknown env id 'NoSuchEnv-v0'"),
        ({"total_steps": 0}, "total_steps must be a positive integer"),
        ({"total_steps": -5}, "total_steps must be a positive integer"),
        ({"total_steps": 1.5}, "total_steps must be a positive integer"),
        ({"env_id": "pgcoretest/DictAction-v0"}, "action space Dict.* is not supported"),
        ({"lr_typo": 1e-3}, r"unknown hyperparameter\(s\) \['lr_typo'\]"),
        ({"max_kl": 0.01}, r"unknown hyperparameter\(s\) \['max_kl'\] for algo 'ppo-clip'"),
        ({"num_envs": 0}, "num_envs must be a positive integer"),
        ({"gamma": 1.5}, "gamma and lam"),
    ],
)
def test_bad_input_fails_before_any_work(kwargs, match, monkeypatch):
    calls = []
    import pgcore.rollouts as rollouts

    monkeypatch.setattr(
        rollouts.RolloutCollector,
        "collect",
        lambda *a, **k: calls.append(1) or (_ for _ in ()).throw(AssertionError),
    )
    args = {"env_id": "CartPole-v1", "algo": "ppo-clip", "total_steps": 1000}
    args.update(kwargs)
    env_id, algo, total_steps = args.pop("env_id"), args.pop("algo"), args.pop("total_steps")
    with pytest.raises(ValueError, match=match):
        train(env_id, algo, total_steps=total_steps, progress=False, **args)
    assert calls == []


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


def test_callback_stops_training():
    result = train(
        "CartPole-v1",
        "ppo-clip",
        total_steps=10_000,
        progress=False,
        callback=lambda h: len(h) == 3,
        **TINY,
    )
    assert len(result.history) == 3


def test_short_run_learns_cartpole():
    """A fixed seed, so it cannot flake: PPO-clip lifts CartPole's return several-fold."""
    result = train("CartPole-v1", "ppo-clip", total_steps=12_288, seed=0, progress=False)
    a = history_arrays(result.history)
    first = np.mean(result.history[0]["episode_returns"])
    assert first < 40
    assert a["mean_return"][-1] > 4 * first
    assert a["mean_return"][-1] > 150


def test_cli_runs_and_saves(tmp_path):
    path = tmp_path / "cli.pt"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pgcore.train",
            "--env",
            "CartPole-v1",
            "--algo",
            "trpo",
            "--steps",
            "256",
            "--seed",
            "1",
            "--no-progress",
            "--save",
            str(path),
            "--set",
            "num_envs=2",
            "n_steps=64",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "CartPole-v1 trpo seed=1: 256 steps, 2 iterations" in proc.stdout
    assert "RuntimeWarning" not in proc.stderr
    assert load(str(path)).config["num_envs"] == 2
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "pgcore.train",
            "--env",
            "Nope-v0",
            "--algo",
            "trpo",
            "--steps",
            "100",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and "unknown env id 'Nope-v0'" in bad.stderr
