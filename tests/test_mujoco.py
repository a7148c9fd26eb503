"""The MuJoCo tasks of the PPO paper's Table 1: presets, a short run of each algorithm family,
and classic control without MuJoCo installed (it is the optional extra ``pgcore[mujoco]``;
the book's pinned environment, requirements.txt, includes it)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from pgcore.config import MUJOCO_TASKS
from pgcore.training import evaluate, resolve_hparams, train


@pytest.mark.parametrize("env_id", MUJOCO_TASKS)
def test_presets_are_the_papers_settings(env_id):
    hp = resolve_hparams(env_id, "ppo-clip")
    paper = {"num_envs": 1, "n_steps": 2048, "epochs": 10, "minibatch_size": 64, "lr": 3e-4}
    paper |= {"gamma": 0.99, "lam": 0.95, "clip": 0.2, "normalize_obs": True}
    assert {k: hp[k] for k in paper} == paper
    trpo = resolve_hparams(env_id, "trpo")
    assert (trpo["n_steps"], trpo["max_kl"], trpo["lam"]) == (2048, 0.01, 0.95)


@pytest.mark.parametrize(("env_id", "algo"), [("Hopper-v5", "ppo-clip"), ("Swimmer-v5", "trpo")])
def test_short_runs_on_mujoco(env_id, algo):
    pytest.importorskip("mujoco")
    res = train(env_id, algo, total_steps=1024, seed=0, progress=False, n_steps=512)
    assert len(res.history) == 2 and res.config["action"] == "continuous"
    assert all(np.isfinite(row["kl"]) for row in res.history)
    mean, std = evaluate(res, env_id, n_episodes=2)
    assert np.isfinite(mean) and np.isfinite(std)


def test_action_clipping_matters_on_hopper_not_on_pendulum():
    """Why the switch ``clip_actions`` changes Hopper's runs and not Pendulum's (chapter 6,
    "Eight details on four tasks"): Pendulum clips the torque itself before computing its cost,
    while Hopper-v5 charges its control cost, 0.001·‖a‖², on the action as given (MuJoCo clamps
    only the actuator input)."""
    pytest.importorskip("mujoco")
    import gymnasium as gym

    for env_id, same in (("Pendulum-v1", True), ("Hopper-v5", False)):
        env = gym.make(env_id)
        high = env.action_space.high
        out = []
        for a in (3.0 * high, high):
            env.reset(seed=0)
            out.append(env.step(a.astype(env.action_space.dtype))[:2])
        (obs_far, r_far), (obs_edge, r_edge) = out
        assert np.array_equal(obs_far, obs_edge), env_id  # the dynamics see the clamped action
        assert bool(r_far == r_edge) is same, (env_id, r_far, r_edge)
        if not same:
            assert r_edge - r_far == pytest.approx(0.001 * (9 - 1) * np.sum(high**2)), env_id
        env.close()


def test_classic_control_needs_no_mujoco():
    """pgcore imports and trains CartPole with ``import mujoco`` failing; a MuJoCo task then
    fails before training with gymnasium's install hint."""
    code = textwrap.dedent(
        """
        import sys
        sys.modules["mujoco"] = None  # any `import mujoco` now raises ImportError
        import gymnasium, pgcore
        res = pgcore.train("CartPole-v1", "ppo-clip", total_steps=256, progress=False)
        assert len(res.history) == 1
        try:
            pgcore.train("Hopper-v5", "ppo-clip", total_steps=256, progress=False)
        except gymnasium.error.DependencyNotInstalled as e:
            assert "mujoco" in str(e).lower()
            print("refused")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "refused"
