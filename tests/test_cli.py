"""The command line, ``python -m pgcore``: discoverable hyperparameters, typed ``--set``,
checks before any work, ``--load`` / ``--eval``, and the progress bar off when stderr is not
a terminal. Most tests call :func:`pgcore.training.main` in-process; one runs the module."""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys

import pytest

import pgcore.training as training
from pgcore.config import config_class
from pgcore.training import load, main, parse_value

SMALL = ["--set", "num_envs=2", "n_steps=64"]


@pytest.fixture
def built(monkeypatch):
    """The list of environments built (each call of make_vector_env appends its env)."""
    calls = []
    real = training.make_vector_env

    def counting(env, *a, **k):
        calls.append(env)
        return real(env, *a, **k)

    monkeypatch.setattr(training, "make_vector_env", counting)
    return calls


def _exit(argv, capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(argv)
    out, err = capsys.readouterr()
    return info.value.code, out, err


@pytest.mark.parametrize(
    "algo,env,expected",
    [
        (
            "trpo",
            None,
            [
                "backtrack_coeff (float, default 0.5)",
                "trust-region radius δ",
                "max_kl (float, default 0.01)",
                "vf_minibatch_size",
            ],
        ),
        ("trpo", "CartPole-v1", ["max_kl (float, default 0.02)", "defaults for CartPole-v1"]),
        (
            "ppo-clip",
            "CartPole-v1",
            [
                "lr (float, default 0.004)",
                "anneal_lr (bool, default True)",
                "clip_vloss (float | None, default None)",
                "hidden (tuple[int, ...], default 64,64)",
            ],
        ),
    ],
)
def test_help_lists_every_hyperparameter_of_the_algorithm(algo, env, expected, capsys):
    argv = ["--algo", algo, "--help"] + (["--env", env] if env else [])
    code, out, _ = _exit(argv, capsys)
    assert code == 0
    for text in expected:
        assert text in out, text
    for f in dataclasses.fields(config_class(algo)):
        assert f"  {f.name} (" in out and f.metadata["doc"] in out, f.name
    assert "--load" in out and "--eval" in out and "--set" in out


@pytest.mark.parametrize(
    "text,type_name,value",
    [
        ("false", "bool", False),
        ("True", "bool", True),
        ("0", "bool", False),
        ("yes", "bool", True),
        ("no", "bool", False),
        ("on", "bool", True),
        ("7", "int", 7),
        ("100_000", "int", 100_000),
        ("1e-3", "float", 1e-3),
        ("inf", "float", math.inf),
        ("-inf", "float", -math.inf),
        ("none", "float | None", None),
        ("0.5", "float | None", 0.5),
        ("64,64", "tuple[int, ...]", (64, 64)),
        ("(32, 16)", "tuple[int, ...]", (32, 16)),
        ("8", "tuple[int, ...]", (8,)),
        ("", "tuple[int, ...]", ()),
    ],
)
def test_set_values_are_parsed_by_the_field_type(text, type_name, value):
    assert parse_value("key", text, type_name) == value
    assert math.isnan(parse_value("key", "nan", "float"))


@pytest.mark.parametrize(
    "text,type_name,message",
    [
        ("maybe", "bool", "--set key='maybe': key expects true/false"),
        ("1.5", "int", "--set key='1.5': key expects an integer"),
        ("fast", "float", "--set key='fast': key expects a number"),
        ("64;64", "tuple[int, ...]", "key expects comma-separated integers"),
        ("x", "float | None", "a number (nan and inf are numbers too), or none"),
    ],
)
def test_bad_set_values_are_refused(text, type_name, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_value("key", text, type_name)


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--set", "anneal_lr=maybe"], "--set anneal_lr='maybe': anneal_lr expects true/false"),
        (["--set", "lr=nan"], "lr must be a positive, finite number, got nan"),
        (["--set", "lr=1e999"], "lr must be a positive, finite number, got inf"),
        (["--set", "hidden=64,-8"], "hidden must be a tuple of positive integers"),
        (["--set", "lr=1e-3", "--set", "lr=2e-3"], "--set lr is given twice"),
        (["--set", "max_kl=0.1"], "unknown hyperparameter 'max_kl' for algo 'ppo-clip'"),
        (["--set", "lr"], "--set expects KEY=VALUE, got 'lr'"),
        (["--set", "minibatch_size=4096"], "minibatch_size=4096 is larger than the batch"),
        (["--save", "/nonexistent/dir/x.pt"], "the directory '/nonexistent/dir' does not exist"),
        (["--seed", "-1"], "seed must be an integer with 0 <= seed"),
        (["--eval", "0"], "--eval must be a positive number of episodes"),
        (["--env-kwarg", "oops"], "--env-kwarg expects KEY=VALUE"),
    ],
)
def test_bad_command_lines_fail_before_any_environment_is_built(argv, message, built, capsys):
    base = ["--env", "CartPole-v1", "--algo", "ppo-clip", "--steps", "256"]
    code, _, err = _exit(base + argv, capsys)
    assert code == 2
    assert message in " ".join(err.split()), err
    assert built == []


def test_unknown_env_and_missing_arguments(built, capsys):
    code, _, err = _exit(["--env", "Nope-v0", "--algo", "trpo", "--steps", "100"], capsys)
    assert code == 2 and "unknown env id 'Nope-v0'" in err
    code, _, err = _exit(["--env", "CartPole-v1", "--algo", "trpo"], capsys)
    assert code == 2 and "--steps is required" in err
    assert built == []


def test_save_path_that_is_a_directory_or_not_writable(tmp_path, built, capsys):
    code, _, err = _exit(
        ["--env", "CartPole-v1", "--algo", "vpg", "--steps", "128", "--save", str(tmp_path)], capsys
    )
    assert code == 2 and "is a directory" in err
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        import os

        if not os.access(locked, os.W_OK):  # root can write anywhere
            code, _, err = _exit(
                [
                    "--env",
                    "CartPole-v1",
                    "--algo",
                    "vpg",
                    "--steps",
                    "128",
                    "--save",
                    str(locked / "x.pt"),
                ],
                capsys,
            )
            assert code == 2 and "is not writable" in err
    finally:
        locked.chmod(0o700)
    assert built == []


def test_typed_set_accumulates_and_configures_the_run(tmp_path, capsys):
    path = tmp_path / "run.pt"
    result = main(
        [
            "--env",
            "gymnasium.envs.classic_control:CartPole-v1",
            "--algo",
            "ppo-clip",
            "--steps",
            "384",
            "--seed",
            "1",
            "--save",
            str(path),
            "--set",
            "num_envs=2",
            "n_steps=64",
            "--set",
            "minibatch_size=64",
            "anneal_lr=false",
            "hidden=32,32",
            "clip_vloss=none",
        ]
    )
    out, err = capsys.readouterr()
    cfg = result.config
    assert (cfg["num_envs"], cfg["n_steps"], cfg["minibatch_size"]) == (2, 64, 64)
    assert cfg["anneal_lr"] is False and cfg["hidden"] == [32, 32]
    assert [h["lr"] for h in result.history] == [cfg["lr"]] * 3  # not annealed
    assert "CartPole-v1 ppo-clip seed=1: 384 steps, 3 iterations" in out
    assert f"saved to {path}" in out
    assert "step/s" not in err and "it/s" not in err  # no progress bar: stderr is not a tty
    assert load(path).config == cfg


def test_inf_target_kl_is_refused_but_none_is_off(capsys, built):
    code, _, err = _exit(
        ["--env", "CartPole-v1", "--algo", "ppo-clip", "--steps", "256", "--set", "target_kl=inf"],
        capsys,
    )
    assert code == 2 and "target_kl must be a positive, finite number, got inf" in err
    assert built == []


def test_load_eval_and_resume(tmp_path, capsys):
    path = tmp_path / "run.pt"
    main(
        [
            "--env",
            "CartPole-v1",
            "--algo",
            "trpo",
            "--steps",
            "256",
            "--save",
            str(path),
            *SMALL,
            "vf_minibatch_size=64",
        ]
    )
    capsys.readouterr()
    evaluated = main(["--load", str(path), "--eval", "2"])
    out, _ = capsys.readouterr()
    assert "evaluation over 2 deterministic episodes:" in out
    assert evaluated.history == load(path).history
    resumed = main(["--load", str(path), "--steps", "128", "--save", str(path)])
    out, _ = capsys.readouterr()
    assert "CartPole-v1 trpo seed=0: 128 steps, 1 iterations" in out
    assert resumed.config["num_envs"] == 2  # the loaded run's hyperparameters
    assert load(path).history == resumed.history


def test_a_diverging_run_exits_1_and_saves_nothing(tmp_path, capsys):
    path = tmp_path / "nan.pt"
    code, _, err = _exit(
        [
            "--env",
            "CartPole-v1",
            "--algo",
            "vpg",
            "--steps",
            "1024",
            "--save",
            str(path),
            *SMALL,
            "vf_minibatch_size=64",
            "lr=1e30",
        ],
        capsys,
    )
    assert code == 1
    assert "iteration 0" in err and "lr=1e+30" in err and "nothing was saved" in err
    assert not path.exists()


def test_module_runs_as_a_program():
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pgcore",
            "--env",
            "CartPole-v1",
            "--algo",
            "vpg",
            "--steps",
            "128",
            *SMALL,
            "vf_minibatch_size=64",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "CartPole-v1 vpg seed=0: 128 steps, 1 iterations" in proc.stdout
    assert "Warning" not in proc.stderr and "step/s" not in proc.stderr
