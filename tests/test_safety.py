"""Safe runs: every bad input fails before any environment is built and changes nothing; a
diverging run stops with a clear error and leaves finite models; saves are atomic; the CSV log
matches the history; Ctrl-C leaves a loadable checkpoint."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time

import gymnasium as gym
import numpy as np
import pytest
import torch

import pgcore
import pgcore.training as training
from pgcore.loggers import read_csv
from pgcore.training import TrainingDivergedError, load, save, train

TINY = {"num_envs": 2, "n_steps": 64}


class Counter:
    """An environment factory that counts how often it is called."""

    def __init__(self, env_id: str = "CartPole-v1") -> None:
        self.env_id, self.calls = env_id, 0

    def __call__(self, **kwargs):
        self.calls += 1
        return gym.make(self.env_id, **kwargs)


class DictActionEnv(gym.Env):
    observation_space = gym.spaces.Box(-1, 1, (2,), np.float32)
    action_space = gym.spaces.Dict({"a": gym.spaces.Discrete(2), "b": gym.spaces.Discrete(3)})

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(2, np.float32), {}

    def step(self, action):
        return np.zeros(2, np.float32), 0.0, False, False, {}


# (algo, keyword arguments of train, the argument the message must name, the value it must show)
BAD = [
    ("ppo-clip", {"clip": -0.1}, "clip", "-0.1"),
    ("trpo", {"max_kl": 0.0}, "max_kl", "0.0"),
    ("npg", {"damping": -1.0}, "damping", "-1.0"),
    ("trpo", {"backtrack_coeff": 1.5}, "backtrack_coeff", "1.5"),
    ("ppo-clip", {"ent_coef": -0.01}, "ent_coef", "-0.01"),
    ("ppo-clip", {"ent_coef": "0.01"}, "ent_coef", "'0.01'"),
    ("ppo-clip", {"vf_coef": -0.5}, "vf_coef", "-0.5"),
    ("ppo-clip", {"max_grad_norm": -1.0}, "max_grad_norm", "-1.0"),
    ("ppo-clip", {"target_kl": 0.0}, "target_kl", "0.0"),
    ("vpg", {"lr": 0.0}, "lr", "0.0"),
    ("vpg", {"lr": -1.0}, "lr", "-1.0"),
    ("ppo-clip", {"lr": 0}, "lr", "0"),
    ("ppo-clip", {"lr": 1e999}, "lr", "inf"),
    ("ppo-clip", {"hidden": 64}, "hidden", "64"),
    ("ppo-clip", {"hidden": "64"}, "hidden", "'64'"),
    ("ppo-clip", {"hidden": (-8,)}, "hidden", "(-8,)"),
    ("ppo-clip", {"hidden": (0,)}, "hidden", "(0,)"),
    ("ppo-clip", {"num_envs": True}, "num_envs", "True"),
    ("ppo-clip", {"num_envs": 0}, "num_envs", "0"),
    ("ppo-clip", {"gamma": "0.9"}, "gamma", "'0.9'"),
    ("ppo-clip", {"gamma": 1.5}, "gamma", "1.5"),
    ("ppo-clip", {"seed": 2**64}, "seed", str(2**64)),
    ("ppo-clip", {"seed": -1}, "seed", "-1"),
    ("ppo-clip", {"seed": True}, "seed", "True"),
    ("ppo-clip", {"log_std_init": math.nan}, "log_std_init", "nan"),
    ("ppo-clip", {"normalize_obs": "yes"}, "normalize_obs", "'yes'"),
    ("ppo-clip", {"minibatch_size": 1024}, "minibatch_size", "1024"),
    ("trpo", {"vf_minibatch_size": 1024}, "vf_minibatch_size", "1024"),
    ("ppo-clip", {"total_steps": 0}, "total_steps", "0"),
    ("ppo-clip", {"total_steps": 1.5}, "total_steps", "1.5"),
    ("a2c", {}, "algo", "'a2c'"),
    ("ppo-clip", {"lr_typo": 1e-3}, "lr_typo", "lr_typo"),
    ("ppo-clip", {"max_kl": 0.01}, "max_kl", "max_kl"),
    ("ppo-clip", {"env_kwargs": ["x"]}, "env_kwargs", "['x']"),
    ("ppo-clip", {"policy": "mlp"}, "policy", "'mlp'"),
    ("ppo-clip", {"value_fn": 3}, "value_fn", "3"),
    ("ppo-clip", {"init": "run.pt"}, "init", "'run.pt'"),
    ("ppo-clip", {"callback": 1}, "callback", "1"),
    ("ppo-clip", {"config": pgcore.TRPOConfig()}, "config", "TRPOConfig"),
]


@pytest.mark.parametrize("algo,kwargs,name,shown", BAD, ids=[f"{a}-{n}-{s}" for a, _, n, s in BAD])
def test_bad_input_fails_before_any_environment_is_built(algo, kwargs, name, shown, tmp_path):
    factory = Counter()
    threads, validate = torch.get_num_threads(), torch.distributions.Distribution._validate_args
    rng = torch.random.get_rng_state()
    args = {"total_steps": 1000, "seed": 0, **TINY, **kwargs}
    if algo == "a2c" or "minibatch" in name or name in ("num_envs", "total_steps"):
        pass
    elif algo.startswith("ppo"):
        args.setdefault("minibatch_size", 64)
    elif algo in ("vpg", "npg", "trpo"):
        args.setdefault("vf_minibatch_size", 64)
    if name == "num_envs":
        args["minibatch_size"] = 64
    log_dir = tmp_path / "logs"
    with pytest.raises(ValueError) as info:
        train(factory, algo, progress=False, log_dir=log_dir, **args)
    msg = str(info.value)
    assert name in msg and shown in msg, msg
    assert factory.calls == 0
    assert not log_dir.exists()
    assert torch.get_num_threads() == threads
    assert torch.distributions.Distribution._validate_args is validate
    assert torch.equal(torch.random.get_rng_state(), rng)


@pytest.mark.parametrize(
    "env,match",
    [
        ("NoSuchEnv-v0", "unknown env id 'NoSuchEnv-v0'"),
        ("no_such_module:CartPole-v1", "unknown env id 'no_such_module:CartPole-v1'"),
        (gym.make("CartPole-v1"), "got the instance"),
        (42, "env must be a gymnasium env id or a callable"),
    ],
)
def test_bad_env_fails_before_any_environment_is_built(env, match, monkeypatch):
    built = []
    monkeypatch.setattr(training, "make_vector_env", lambda *a, **k: built.append(a))
    with pytest.raises(ValueError, match=match):
        train(env, "trpo", total_steps=100, progress=False)
    assert built == []


def test_unsupported_spaces_are_refused_before_any_step():
    steps = []

    class Env(DictActionEnv):
        def step(self, action):
            steps.append(action)
            return super().step(action)

    with pytest.raises(ValueError, match=r"action space Dict.* is not supported"):
        train(lambda: gym.wrappers.TimeLimit(Env(), 10), "trpo", total_steps=100, progress=False)
    assert steps == []


def test_factory_must_return_an_env():
    with pytest.raises(ValueError, match="returned int, not a gymnasium.Env"):
        train(lambda: 3, "vpg", total_steps=100, progress=False)


def test_a_policy_of_the_wrong_shape_is_refused_before_any_step():
    factory = Counter()
    with pytest.raises(ValueError, match=r"observations of shape \[B, 4\]"):
        train(
            factory,
            "vpg",
            total_steps=128,
            progress=False,
            vf_minibatch_size=64,
            policy=pgcore.CategoricalMLPPolicy(3, 2),
            **TINY,
        )


@pytest.mark.parametrize("algo,hp", [("vpg", {"lr": 1e30}), ("ppo-clip", {"lr": 1e30})])
def test_a_diverging_run_stops_with_a_clear_error_and_finite_models(algo, hp):
    policy = pgcore.CategoricalMLPPolicy(4, 2)
    before = {k: v.clone() for k, v in policy.state_dict().items()}
    mb = {"minibatch_size": 64} if algo.startswith("ppo") else {"vf_minibatch_size": 64}
    with pytest.raises(TrainingDivergedError) as info:
        train(
            "CartPole-v1", algo, total_steps=1024, progress=False, policy=policy, **TINY, **mb, **hp
        )
    msg = str(info.value)
    assert "iteration 0" in msg and "lr" in msg and "1e+30" in msg, msg
    for k, v in policy.state_dict().items():  # restored to the state before the failed update
        assert torch.equal(v, before[k]), k
    assert torch.distributions.Distribution._validate_args == __debug__


def test_save_is_atomic_and_refuses_non_finite_models(tmp_path, monkeypatch):
    run = train("CartPole-v1", "vpg", total_steps=128, progress=False, vf_minibatch_size=64, **TINY)
    path = tmp_path / "run.pt"
    save(run, path)
    good = path.read_bytes()

    def broken_save(obj, f, *a, **k):
        with open(f, "wb") as fh:
            fh.write(b"partial")
        raise KeyboardInterrupt  # as if Ctrl-C arrived in the middle of writing

    monkeypatch.setattr(training.torch, "save", broken_save)
    with pytest.raises(KeyboardInterrupt):
        save(run, path)
    monkeypatch.undo()
    assert path.read_bytes() == good
    assert sorted(os.listdir(tmp_path)) == ["run.pt"]  # no temporary file left behind
    assert load(path).history == run.history
    with torch.no_grad():
        next(run.policy.parameters())[0, 0] = float("nan")
    with pytest.raises(ValueError, match="refusing to save: policy"):
        save(run, tmp_path / "nan.pt")
    assert not (tmp_path / "nan.pt").exists()


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


@pytest.mark.parametrize("algo", ["trpo", "ppo-kl"])
def test_csv_log_matches_the_history(algo, tmp_path):
    mb = {"minibatch_size": 64} if algo.startswith("ppo") else {"vf_minibatch_size": 64}
    seen = []

    def callback(row, state):  # the file is complete up to this row while the run goes on
        seen.append(len(read_csv(tmp_path / "progress.csv")) == len(state.history))

    run = train(
        "CartPole-v1",
        algo,
        total_steps=384,
        progress=False,
        log_dir=tmp_path,
        callback=callback,
        **TINY,
        **mb,
    )
    rows = read_csv(tmp_path / "progress.csv")
    assert all(seen) and len(seen) == 3
    assert _same(rows, run.history)


def test_ctrl_c_ends_the_cli_run_with_a_loadable_checkpoint(tmp_path):
    """SIGINT in the middle of a run: a one-line message, exit code 130, and a checkpoint."""
    path, logs = tmp_path / "run.pt", tmp_path / "logs"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pgcore",
            "--env",
            "CartPole-v1",
            "--algo",
            "ppo-clip",
            "--steps",
            "10000000",
            "--save",
            str(path),
            "--log-dir",
            str(logs),
            "--set",
            "num_envs=2",
            "n_steps=64",
            "minibatch_size=64",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONFAULTHANDLER": "1"},  # SIGABRT below prints every stack
        # a process started in the background by a non-interactive shell (a CI runner's
        # `make test &`) ignores SIGINT, and Python then never raises KeyboardInterrupt: the run
        # went on for 30 minutes. Ctrl-C in a terminal reaches a run with the default action.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.default_int_handler),
    )
    csv = logs / "progress.csv"

    def stacks() -> str:  # where the run is, should it hang
        proc.send_signal(signal.SIGABRT)
        return proc.communicate(timeout=60)[1][-4000:]

    deadline = time.monotonic() + 180
    while not (csv.exists() and len(csv.read_text().splitlines()) >= 3):  # header + 2 rows
        assert proc.poll() is None, proc.communicate()
        if time.monotonic() > deadline:
            pytest.fail(f"no two iterations logged within 180 s; the run's stacks:\n{stacks()}")
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    try:
        out, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the run did not end within 120 s of SIGINT; its stacks:\n{stacks()}")
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    lines = [x for x in err.splitlines() if x.strip()]
    assert len(lines) == 1 and "interrupted by Ctrl-C" in lines[0], err
    run = load(path)
    assert run.interrupted and len(run.history) >= 2
    assert "(interrupted run)" in out
    for p in run.policy.parameters():
        assert torch.isfinite(p).all()


def test_tensorboard_files_when_tensorboard_is_installed(tmp_path, monkeypatch):
    """With ``tensorboard`` importable, log_dir also gets event files: every numeric entry as
    train/<key> at step env_steps (a stand-in SummaryWriter records the calls here)."""
    import types

    import pgcore.loggers as loggers

    calls = []

    class Writer:
        def __init__(self, log_dir):
            calls.append(("init", log_dir))

        def add_scalar(self, tag, value, step):
            calls.append((tag, value, step))

        def flush(self):
            pass

        def close(self):
            calls.append(("close",))

    monkeypatch.setitem(
        sys.modules, "torch.utils.tensorboard", types.SimpleNamespace(SummaryWriter=Writer)
    )
    monkeypatch.setattr(loggers, "tensorboard_available", lambda: True)
    run = train(
        "CartPole-v1",
        "trpo",
        total_steps=256,
        progress=False,
        log_dir=tmp_path,
        vf_minibatch_size=64,
        **TINY,
    )
    assert calls[0] == ("init", str(tmp_path)) and calls[-1] == ("close",)
    kl = [(v, s) for tag, *rest in calls[1:-1] if tag == "train/kl" for v, s in [rest]]
    assert kl == [(h["kl"], h["env_steps"]) for h in run.history]
    assert any(c[0] == "train/accepted" for c in calls[1:-1])
    assert (tmp_path / "progress.csv").exists()
