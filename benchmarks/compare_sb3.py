"""pgcore against Stable-Baselines3 (PPO) and sb3-contrib (TRPO), in one process, same machine.

For every task and seed this trains pgcore and the SB3 baseline (RL-Zoo tuned
hyperparameters, written out below) back to back, alternating which goes first, and stops
each run when the mean of its last 20 *training*-episode returns reaches the task's
threshold (475 CartPole-v1, −100 Acrobot-v1, −200 Pendulum-v1) or when the step budget
runs out. It records the environment steps, wall seconds and process CPU seconds to the
threshold, and prints and writes a table (per seed, medians, pgcore/SB3 ratios of the
medians) to ``benchmarks/results/``.

Both libraries run torch on one thread. Wall time on a shared machine is noisy; CPU time
is less so, and running the two libraries interleaved per seed keeps the ratio fair.

Usage::

    .venv/bin/pip install -r benchmarks/requirements.txt
    .venv/bin/python benchmarks/compare_sb3.py                 # all tasks, 5 seeds
    .venv/bin/python benchmarks/compare_sb3.py --tasks ppo-CartPole-v1 --seeds 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import pgcore
from pgcore.training import resolve_hparams, steps_to_threshold, train

WINDOW = 20


class _lin:
    """RL-Zoo's ``lin_<x>``: a schedule falling linearly from ``start`` to 0."""

    def __init__(self, start: float) -> None:
        self.start = start

    def __call__(self, progress_remaining: float) -> float:
        return progress_remaining * self.start

    def __repr__(self) -> str:
        return f"lin_{self.start:g}"


# RL-Zoo (rl-baselines3-zoo, hyperparams/ppo.yml and trpo.yml) tuned hyperparameters.
# ``normalize: true`` in the zoo means VecNormalize(norm_obs=True, norm_reward=True, gamma=γ).
ZOO: dict[str, dict[str, Any]] = {
    "PPO/CartPole-v1": {
        "n_envs": 8,
        "normalize": False,
        "kwargs": {
            "n_steps": 32,
            "batch_size": 256,
            "gae_lambda": 0.8,
            "gamma": 0.98,
            "n_epochs": 20,
            "ent_coef": 0.0,
            "learning_rate": _lin(1e-3),
            "clip_range": _lin(0.2),
        },
    },
    "PPO/Acrobot-v1": {
        "n_envs": 16,
        "normalize": True,
        "kwargs": {
            "n_steps": 256,
            "gae_lambda": 0.94,
            "gamma": 0.99,
            "n_epochs": 4,
            "ent_coef": 0.0,
        },
    },
    "PPO/Pendulum-v1": {
        "n_envs": 4,
        "normalize": False,
        "kwargs": {
            "n_steps": 1024,
            "gae_lambda": 0.95,
            "gamma": 0.9,
            "n_epochs": 10,
            "ent_coef": 0.0,
            "learning_rate": 1e-3,
            "clip_range": 0.2,
            "use_sde": True,
            "sde_sample_freq": 4,
        },
    },
    "TRPO/CartPole-v1": {
        "n_envs": 2,
        "normalize": False,
        "kwargs": {
            "n_steps": 512,
            "batch_size": 512,
            "cg_damping": 1e-3,
            "gae_lambda": 0.98,
            "gamma": 0.99,
            "learning_rate": 1e-3,
            "n_critic_updates": 20,
        },
    },
}

# MuJoCo: both libraries get the same hyperparameters, the PPO paper's (pgcore's preset for
# these tasks, pgcore.config.MUJOCO_TASKS): one environment, horizon 2048, 10 epochs of
# minibatch 64, Adam 3e-4 annealed to 0 (pgcore's anneal_lr), γ 0.99, λ 0.95, ε 0.2, 64-64 tanh
# networks with orthogonal init, log σ starting at 0, gradient norm clipped at 0.5, advantages
# normalised per minibatch, observations normalised (VecNormalize without reward
# normalisation). SB3's value term is vf_coef·MSE and pgcore's c_V·½·MSE, so SB3 gets
# vf_coef 0.25 for the same loss.
PAPER_MUJOCO: dict[str, Any] = {
    "n_envs": 1,
    "normalize": "obs",
    "kwargs": {
        "n_steps": 2048,
        "batch_size": 64,
        "n_epochs": 10,
        "learning_rate": _lin(3e-4),
        "gamma": 0.99,
        "gae_lambda": 0.95,
        "clip_range": 0.2,
        "ent_coef": 0.0,
        "vf_coef": 0.25,
        "max_grad_norm": 0.5,
        "policy_kwargs": {"net_arch": {"pi": [64, 64], "vf": [64, 64]}, "log_std_init": 0.0},
    },
}
ZOO["PPO/Hopper-v5"] = PAPER_MUJOCO
ZOO["PPO/HalfCheetah-v5"] = PAPER_MUJOCO

#: task name → (env id, threshold, step budget, pgcore algo, SB3 algorithm). A threshold of
#: +inf makes a fixed-budget task: every run trains for the whole budget and the table
#: compares the final return (mean of the last 20 training episodes) and the time.
TASKS: dict[str, tuple[str, float, int, str, str]] = {
    "ppo-CartPole-v1": ("CartPole-v1", 475.0, 100_000, "ppo-clip", "PPO"),
    "trpo-CartPole-v1": ("CartPole-v1", 475.0, 100_000, "trpo", "TRPO"),
    "ppo-Acrobot-v1": ("Acrobot-v1", -100.0, 100_000, "ppo-clip", "PPO"),
    "ppo-Pendulum-v1": ("Pendulum-v1", -200.0, 100_000, "ppo-clip", "PPO"),
    "ppo-Hopper-v5": ("Hopper-v5", float("inf"), 51_200, "ppo-clip", "PPO"),
    "ppo-HalfCheetah-v5": ("HalfCheetah-v5", float("inf"), 51_200, "ppo-clip", "PPO"),
    "ppo-CartPole-v1-mb256": ("CartPole-v1", 475.0, 100_000, "ppo-clip", "PPO"),
}
#: pgcore hyperparameters on top of its preset, per task. ``ppo-CartPole-v1-mb256`` is PPO
#: CartPole with the preset of the first benchmark run (2026-11-21: one minibatch of 256 per
#: epoch, where today's preset takes two of 128), which separates the speed of the code from
#: the change of preset.
PGCORE_OVERRIDES: dict[str, dict[str, Any]] = {"ppo-CartPole-v1-mb256": {"minibatch_size": 256}}


class _Clock:
    """Wall and CPU seconds since construction, and the moment a threshold was first met."""

    def __init__(self) -> None:
        self.wall0, self.cpu0 = time.perf_counter(), time.process_time()
        self.hit: dict[str, float] | None = None

    def mark(self, steps: int) -> None:
        if self.hit is None:
            self.hit = {
                "steps": steps,
                "wall": time.perf_counter() - self.wall0,
                "cpu": time.process_time() - self.cpu0,
            }


def run_pgcore(
    env_id: str, algo: str, threshold: float, budget: int, seed: int, **hparams: Any
) -> dict:
    clock = _Clock()

    def stop(row: dict, state) -> bool:
        hit = steps_to_threshold(state.history, threshold, WINDOW)
        if hit is not None:
            clock.mark(hit[0])
        return hit is not None

    result = train(
        env_id, algo, total_steps=budget, seed=seed, progress=False, callback=stop, **hparams
    )
    returns = [r for row in result.history for r in row["episode_returns"]]
    return {
        "reached": clock.hit is not None,
        **(clock.hit or {}),
        "total_steps": result.history[-1]["env_steps"],
        "total_wall": time.perf_counter() - clock.wall0,
        "total_cpu": time.process_time() - clock.cpu0,
        "final_return": float(np.mean(returns[-WINDOW:])) if returns else float("nan"),
        "episodes": len(returns),
    }


def run_sb3(env_id: str, algo: str, threshold: float, budget: int, seed: int) -> dict:
    from sb3_contrib import TRPO
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    clock = _Clock()
    zoo = ZOO[f"{algo}/{env_id}"]
    venv = make_vec_env(env_id, n_envs=zoo["n_envs"], seed=seed)
    if zoo["normalize"] == "obs":
        venv = VecNormalize(venv, norm_obs=True, norm_reward=False, gamma=zoo["kwargs"]["gamma"])
    elif zoo["normalize"]:
        venv = VecNormalize(venv, gamma=zoo["kwargs"]["gamma"])
    cls = {"PPO": PPO, "TRPO": TRPO}[algo]
    model = cls("MlpPolicy", venv, seed=seed, device="cpu", verbose=0, **zoo["kwargs"])

    class Stop(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.returns: list[float] = []

        def _on_step(self) -> bool:
            for info in self.locals["infos"]:
                if "episode" in info:
                    self.returns.append(float(info["episode"]["r"]))
                    if len(self.returns) >= WINDOW and np.mean(self.returns[-WINDOW:]) >= threshold:
                        clock.mark(self.num_timesteps)
                        return False
            return True

    stop = Stop()
    model.learn(total_timesteps=budget, callback=stop)
    venv.close()
    return {
        "reached": clock.hit is not None,
        **(clock.hit or {}),
        "total_steps": int(model.num_timesteps),
        "total_wall": time.perf_counter() - clock.wall0,
        "total_cpu": time.process_time() - clock.cpu0,
        "final_return": float(np.mean(stop.returns[-WINDOW:])) if stop.returns else float("nan"),
        "episodes": len(stop.returns),
    }


def _median(runs: list[dict], key: str) -> float:
    """Median over seeds, a run that never reached the threshold counting as +inf."""
    return float(statistics.median([r[key] if r["reached"] else float("inf") for r in runs]))


def _fmt(x: float, nd: int = 1) -> str:
    return "—" if not np.isfinite(x) else (f"{x:,.0f}" if nd == 0 else f"{x:.{nd}f}")


def budget_table(task: str, runs: list[dict]) -> str:
    """A fixed-budget task: final returns and times over the whole budget."""
    _, _, budget, algo, sb3_algo = TASKS[task]
    lines = [
        f"### {task}: pgcore {algo} vs {sb3_algo} (fixed budget {budget:,} steps, the same "
        "hyperparameters)",
        "",
        "| seed | pgcore final return | SB3 final return | pgcore wall s | SB3 wall s | "
        "pgcore CPU s | SB3 CPU s |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        p, s = r["pgcore"], r["sb3"]
        lines.append(
            f"| {r['seed']} | {p['final_return']:.1f} | {s['final_return']:.1f} | "
            f"{p['total_wall']:.1f} | {s['total_wall']:.1f} | {p['total_cpu']:.1f} | "
            f"{s['total_cpu']:.1f} |"
        )
    P, S = [r["pgcore"] for r in runs], [r["sb3"] for r in runs]
    med = {
        k: (statistics.median(p[k] for p in P), statistics.median(s[k] for s in S))
        for k in ("final_return", "total_wall", "total_cpu")
    }
    lines.append(
        "| **median** | " + " | ".join(f"{med[k][0]:.1f} | {med[k][1]:.1f}" for k in med) + " |"
    )
    lines.append(
        f"| **pgcore/SB3** | | | {med['total_wall'][0] / med['total_wall'][1]:.2f} | | "
        f"{med['total_cpu'][0] / med['total_cpu'][1]:.2f} | |"
    )
    lines.append(
        f"\nfinal return = mean of the last {WINDOW} training episodes (the stochastic policy); "
        f"range over seeds: pgcore {min(p['final_return'] for p in P):.1f} to "
        f"{max(p['final_return'] for p in P):.1f}, SB3 {min(s['final_return'] for s in S):.1f} "
        f"to {max(s['final_return'] for s in S):.1f}"
    )
    return "\n".join(lines)


def table(task: str, runs: list[dict]) -> str:
    env_id, threshold, budget, algo, sb3_algo = TASKS[task]
    if not np.isfinite(threshold):
        return budget_table(task, runs)
    lines = [
        f"### {task}: pgcore {algo} vs {sb3_algo} (threshold {threshold:g}, budget {budget:,})",
        "",
        "| seed | pgcore steps | SB3 steps | pgcore wall s | SB3 wall s | pgcore CPU s | SB3 CPU s |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        p, s = r["pgcore"], r["sb3"]
        cell = lambda d, k, nd: _fmt(d[k] if d["reached"] else float("inf"), nd)
        lines.append(
            f"| {r['seed']} | {cell(p, 'steps', 0)} | {cell(s, 'steps', 0)} | "
            f"{cell(p, 'wall', 1)} | {cell(s, 'wall', 1)} | {cell(p, 'cpu', 1)} | {cell(s, 'cpu', 1)} |"
        )
    P, S = [r["pgcore"] for r in runs], [r["sb3"] for r in runs]
    med = {k: (_median(P, k), _median(S, k)) for k in ("steps", "wall", "cpu")}
    lines.append(
        f"| **median** | {_fmt(med['steps'][0], 0)} | {_fmt(med['steps'][1], 0)} | "
        f"{_fmt(med['wall'][0])} | {_fmt(med['wall'][1])} | {_fmt(med['cpu'][0])} | {_fmt(med['cpu'][1])} |"
    )
    ratio = {
        k: (a / b if np.isfinite(a) and np.isfinite(b) else float("nan"))
        for k, (a, b) in med.items()
    }
    lines.append(
        f"| **pgcore/SB3** | {_fmt(ratio['steps'], 2)} | | {_fmt(ratio['wall'], 2)} | | "
        f"{_fmt(ratio['cpu'], 2)} | |"
    )
    lines.append(
        f"\nreached: pgcore {sum(p['reached'] for p in P)}/{len(P)}, "
        f"SB3 {sum(s['reached'] for s in S)}/{len(S)}"
    )
    return "\n".join(lines)


def warm_up() -> None:
    """Import and initialise both libraries once, so no timed run pays for lazy imports."""
    train("CartPole-v1", "ppo-clip", total_steps=512, progress=False)
    train("Pendulum-v1", "trpo", total_steps=512, progress=False)
    for key in ("PPO/CartPole-v1", "TRPO/CartPole-v1"):
        algo, env_id = key.split("/")
        run_sb3(env_id, algo, float("inf"), 1024, 0)


def write_summary(out: Path) -> str:
    """Rebuild ``summary.md`` from every ``<task>.json`` in ``out`` (tasks may be run by
    separate invocations)."""
    parts = ["# pgcore vs Stable-Baselines3\n"]
    for task in TASKS:
        path = out / f"{task}.json"
        if path.exists():
            data = json.loads(path.read_text())
            parts.append(table(task, data["runs"]) + f"\n\n{json.dumps(data['meta'])}\n")
    text = "\n".join(parts)
    (out / "summary.md").write_text(text)
    return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tasks", nargs="*", default=list(TASKS), choices=list(TASKS))
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    warm_up()
    import sb3_contrib
    import stable_baselines3

    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "gymnasium": gym.__version__,
        "stable_baselines3": stable_baselines3.__version__,
        "sb3_contrib": sb3_contrib.__version__,
        "pgcore": pgcore.__version__,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_at_start": os.getloadavg()[0],
    }
    for task in args.tasks:
        env_id, threshold, budget, algo, sb3_algo = TASKS[task]
        runs = []
        for seed in range(args.seeds):
            order = ["pgcore", "sb3"] if seed % 2 == 0 else ["sb3", "pgcore"]
            row: dict[str, Any] = {"seed": seed}
            for who in order:
                load = os.getloadavg()[0]
                if who == "pgcore":
                    over = PGCORE_OVERRIDES.get(task, {})
                    row[who] = run_pgcore(env_id, algo, threshold, budget, seed, **over)
                else:
                    row[who] = run_sb3(env_id, sb3_algo, threshold, budget, seed)
                r = row[who]
                r["load_average_at_start"] = load
                print(
                    f"{task} seed {seed} {who:6s} (load {load:.1f}): "
                    + (
                        f"{r['steps']:>7,} steps {r['wall']:6.1f} s wall {r['cpu']:6.1f} s cpu"
                        if r["reached"]
                        else f"{r['total_steps']:,} steps (threshold not reached), final return "
                        f"{r['final_return']:.1f}, {r['total_wall']:.1f} s wall "
                        f"{r['total_cpu']:.1f} s cpu"
                    ),
                    flush=True,
                )
            runs.append(row)
        print("\n" + table(task, runs) + "\n", flush=True)
        (out / f"{task}.json").write_text(
            json.dumps(
                {
                    "task": task,
                    "env_id": env_id,
                    "threshold": threshold,
                    "budget": budget,
                    "pgcore_algo": algo,
                    "pgcore_hparams": resolve_hparams(
                        env_id, algo, **PGCORE_OVERRIDES.get(task, {})
                    ),
                    "sb3_algo": sb3_algo,
                    "sb3_hparams": {
                        k: (repr(v) if isinstance(v, _lin) else v)
                        for k, v in ZOO[f"{sb3_algo}/{env_id}"]["kwargs"].items()
                    },
                    "meta": {**meta, "load_average_at_end": os.getloadavg()[0]},
                    "runs": runs,
                },
                indent=1,
                default=str,
            )
        )
    write_summary(out)


if __name__ == "__main__":
    main()
