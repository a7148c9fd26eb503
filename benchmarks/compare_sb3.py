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

# task name → (env id, threshold, step budget, pgcore algo, SB3 algorithm)
TASKS: dict[str, tuple[str, float, int, str, str]] = {
    "ppo-CartPole-v1": ("CartPole-v1", 475.0, 100_000, "ppo-clip", "PPO"),
    "trpo-CartPole-v1": ("CartPole-v1", 475.0, 100_000, "trpo", "TRPO"),
    "ppo-Acrobot-v1": ("Acrobot-v1", -100.0, 100_000, "ppo-clip", "PPO"),
    "ppo-Pendulum-v1": ("Pendulum-v1", -200.0, 100_000, "ppo-clip", "PPO"),
}


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


def run_pgcore(env_id: str, algo: str, threshold: float, budget: int, seed: int) -> dict:
    clock = _Clock()

    def stop(row: dict, state) -> bool:
        hit = steps_to_threshold(state.history, threshold, WINDOW)
        if hit is not None:
            clock.mark(hit[0])
        return hit is not None

    result = train(env_id, algo, total_steps=budget, seed=seed, progress=False, callback=stop)
    return {
        "reached": clock.hit is not None,
        **(clock.hit or {}),
        "total_steps": result.history[-1]["env_steps"],
        "total_wall": time.perf_counter() - clock.wall0,
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
    if zoo["normalize"]:
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

    model.learn(total_timesteps=budget, callback=Stop())
    venv.close()
    return {
        "reached": clock.hit is not None,
        **(clock.hit or {}),
        "total_steps": int(model.num_timesteps),
        "total_wall": time.perf_counter() - clock.wall0,
    }


def _median(runs: list[dict], key: str) -> float:
    """Median over seeds, a run that never reached the threshold counting as +inf."""
    return float(statistics.median([r[key] if r["reached"] else float("inf") for r in runs]))


def _fmt(x: float, nd: int = 1) -> str:
    return "—" if not np.isfinite(x) else (f"{x:,.0f}" if nd == 0 else f"{x:.{nd}f}")


def table(task: str, runs: list[dict]) -> str:
    env_id, threshold, budget, algo, sb3_algo = TASKS[task]
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
                fn = run_pgcore if who == "pgcore" else run_sb3
                load = os.getloadavg()[0]
                row[who] = fn(
                    env_id, algo if who == "pgcore" else sb3_algo, threshold, budget, seed
                )
                r = row[who]
                r["load_average_at_start"] = load
                print(
                    f"{task} seed {seed} {who:6s} (load {load:.1f}): "
                    + (
                        f"{r['steps']:>7,} steps {r['wall']:6.1f} s wall {r['cpu']:6.1f} s cpu"
                        if r["reached"]
                        else f"not reached in {r['total_steps']:,} steps"
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
                    "pgcore_hparams": resolve_hparams(env_id, algo),
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
