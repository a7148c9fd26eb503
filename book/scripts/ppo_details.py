"""Regenerate book/data/ppo/details.json: the code-level details of Engstrom et al. (2020),
one at a time, on four tasks (two discrete, two continuous) and five seeds.

Each task starts from a pinned copy of pgcore's PPO-clip preset for it (BASE; the MuJoCo task
uses the PPO paper's settings). VARIANTS then change one detail each: an entropy bonus, KL early
stopping, reward scaling by the running standard deviation of the discounted return (in place
of a constant reward factor), PyTorch's default initialisation instead of the orthogonal one,
value clipping, PyTorch's default Adam ε, and, on the continuous tasks only, a state-dependent
log σ and unclipped actions. The score of a run is the mean undiscounted return of its final
policy over EVAL_EPISODES deterministic episodes (``pgcore.evaluate``); the chapter normalises
scores as the PPO paper does (random policy 0, best variant 1) and aggregates them with rliable.
Stored per run: the score, the mean training return and the exact KL, approx KL and entropy
of every iteration, whether KL early stopping fired, and the training time.

Deterministic: torch runs on one thread per process and every run is seeded, so the result
does not depend on --workers. Runs are cached one file each in --cache, so an interrupted
sweep resumes where it stopped. Usage::

    .venv/bin/python book/scripts/ppo_details.py              # 41 min on 2 cores
    .venv/bin/python book/scripts/ppo_details.py --seeds 1    # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

from pgcore.training import evaluate, history_arrays, resolve_hparams, train

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _sweep import parallel_runs, sig, write_json  # noqa: E402
from ppo_table1 import RANDOM_EPISODES, random_policy_return  # noqa: E402  (Table 1's baseline)

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "book" / "data" / "ppo" / "details.json"
#: Environment steps per run: about where pgcore's presets first reach the benchmark thresholds
#: on the classic tasks; 15 iterations of 2048 steps on Hopper (the paper trained for 1M).
TASKS = {"CartPole-v1": 12_800, "Acrobot-v1": 25_600, "Pendulum-v1": 51_200, "Hopper-v5": 30_720}
CONTINUOUS = ("Pendulum-v1", "Hopper-v5")
SEEDS = (0, 1, 2, 3, 4)
EVAL_EPISODES = 10
EVAL_SEED = 10_000

_COMMON = {
    "hidden": [64, 64],
    "log_std_init": 0.0,
    "log_std": "parameter",
    "normalize_advantages": True,
    "bootstrap_truncated": True,
    "ortho_init": True,
    "clip_actions": True,
    "scale_rewards": False,
    "clip": 0.2,
    "beta": 1.0,
    "d_targ": 0.01,
    "ent_coef": 0.0,
    "vf_coef": 0.5,
    "clip_vloss": None,
    "max_grad_norm": 0.5,
    "target_kl": None,
    "adam_eps": 1e-5,
    "anneal_lr": True,
    "epochs": 10,
}
#: pgcore's PPO-clip presets of 2026-12-01 (commit 83f0d54), pinned so that retuning
#: pgcore.config's presets does not change the stored runs.
BASE = {
    "CartPole-v1": {
        **_COMMON,
        "num_envs": 8,
        "n_steps": 32,
        "gamma": 0.98,
        "lam": 0.8,
        "normalize_obs": False,
        "reward_scale": 1.0,
        "lr": 0.004,
        "minibatch_size": 128,
        "anneal_clip": True,
    },
    "Acrobot-v1": {
        **_COMMON,
        "num_envs": 8,
        "n_steps": 64,
        "gamma": 0.99,
        "lam": 0.95,
        "normalize_obs": True,
        "reward_scale": 0.1,
        "lr": 0.001,
        "minibatch_size": 256,
        "anneal_clip": False,
    },
    "Pendulum-v1": {
        **_COMMON,
        "num_envs": 4,
        "n_steps": 256,
        "gamma": 0.9,
        "lam": 0.95,
        "normalize_obs": True,
        "reward_scale": 0.1,
        "lr": 0.001,
        "minibatch_size": 64,
        "anneal_clip": False,
    },
    "Hopper-v5": {
        **_COMMON,
        "num_envs": 1,
        "n_steps": 2048,
        "gamma": 0.99,
        "lam": 0.95,
        "normalize_obs": True,
        "reward_scale": 1.0,
        "lr": 0.0003,
        "minibatch_size": 64,
        "anneal_clip": False,
    },
}
#: (label, change relative to the task's BASE, continuous tasks only)
VARIANTS = [
    ("baseline", {}, False),
    ("entropy bonus 0.01", {"ent_coef": 0.01}, False),
    ("KL early stopping 0.01", {"target_kl": 0.01}, False),
    ("reward scaling", {"scale_rewards": True, "reward_scale": 1.0}, False),
    ("default initialisation", {"ortho_init": False}, False),
    ("value clipping 0.2", {"clip_vloss": 0.2}, False),
    ("Adam ε 1e-8", {"adam_eps": 1e-8}, False),
    ("state-dependent σ", {"log_std": "network"}, True),
    ("no action clipping", {"clip_actions": False}, True),
]


def jobs(n_seeds: int = len(SEEDS)) -> list[tuple[str, str, int]]:
    """Every (task, variant label, seed) of the sweep, in a fixed order."""
    return [
        (env_id, label, seed)
        for env_id in TASKS
        for label, _, continuous_only in VARIANTS
        if env_id in CONTINUOUS or not continuous_only
        for seed in SEEDS[:n_seeds]
    ]


def run_hparams(env_id: str, label: str) -> dict:
    """The full configuration of one variant on one task."""
    change = next(ch for lab, ch, _ in VARIANTS if lab == label)
    return {**BASE[env_id], **change}


def one_run(job: tuple[str, str, int]) -> dict:
    env_id, label, seed = job
    hp = run_hparams(env_id, label)
    t0 = time.perf_counter()
    res = train(env_id, "ppo-clip", total_steps=TASKS[env_id], seed=seed, progress=False, **hp)
    seconds = time.perf_counter() - t0
    mean, std = evaluate(res, n_episodes=EVAL_EPISODES, deterministic=True, seed=EVAL_SEED)
    arr = history_arrays(res.history)
    return {
        "env_id": env_id,
        "label": label,
        "seed": seed,
        "score": float(mean),
        "score_std": float(std),
        "total_steps": int(res.history[-1]["env_steps"]),
        "mean_return": [sig(v) for v in arr["mean_return"]],
        "kl": [sig(v) for v in arr["kl"]],
        "approx_kl": [sig(v) for v in arr["approx_kl"]],
        "entropy": [sig(v) for v in arr["entropy"]],
        "epochs_run": [int(h["epochs_run"]) for h in res.history],
        "seconds": round(seconds, 1),
    }


def _cached(arg: tuple[Path, tuple[str, str, int]]) -> dict:
    """The run of ``job``, from the cache or trained (and then cached)."""
    cache, job = arg
    env_id, label, seed = job
    index = [lab for lab, _, _ in VARIANTS].index(label)
    path = cache / f"{env_id}_{index}_{seed}.json"
    if path.exists():
        return json.loads(path.read_text())
    run = one_run(job)
    write_json(path, run)
    return run


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, default=len(SEEDS))
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.add_argument("--out", type=Path, default=OUT)
    p.add_argument("--cache", type=Path, default=Path("/tmp/ppo_details_cache"))
    args = p.parse_args(argv)
    for env_id in TASKS:  # the presets may move on; the pinned copy must still be a valid config
        resolve_hparams(env_id, "ppo-clip", **BASE[env_id])
    args.cache.mkdir(parents=True, exist_ok=True)
    todo = jobs(args.seeds)
    start = time.perf_counter()
    runs = []
    for i, run in enumerate(parallel_runs(_cached, [(args.cache, j) for j in todo], args.workers)):
        runs.append(run)
        print(
            f"[{i + 1}/{len(todo)}] {run['env_id']:12s} {run['label']:24s} seed {run['seed']}: "
            f"score {run['score']:8.1f} ({run['seconds']:.0f} s)",
            flush=True,
        )
    data = {
        "description": "PPO code-level details on four tasks; see book/scripts/ppo_details.py",
        "tasks": TASKS,
        "continuous": list(CONTINUOUS),
        "seeds": list(SEEDS[: args.seeds]),
        "base": BASE,
        "variants": [{"label": lab, "change": ch, "continuous_only": c} for lab, ch, c in VARIANTS],
        "eval_episodes": EVAL_EPISODES,
        "eval_seed": EVAL_SEED,
        "random_return": {e: random_policy_return(e) for e in TASKS},
        "random_episodes": RANDOM_EPISODES,
        "runs": runs,
        "total_seconds": round(sum(r["seconds"] for r in runs), 1),
        "wall_seconds_this_call": round(time.perf_counter() - start, 1),
        "machine": f"{platform.machine()}, torch {torch.__version__}, 1 thread per run, "
        f"{args.workers} workers",
    }
    write_json(args.out, data)
    print(
        f"wrote {args.out} ({args.out.stat().st_size / 1e3:.0f} kB), "
        f"{data['total_seconds']:.0f} s of training"
    )


if __name__ == "__main__":
    main()
