"""Regenerate book/data/ppo/table1_mujoco.json: Table 1 of the PPO paper on its own tasks.

The paper's eleven surrogate settings (the rows of book/scripts/ppo_table1.py) on the seven
MuJoCo tasks of its Table 1 (gymnasium's v5 versions), three seeds each, with the paper's
MuJoCo settings: one environment, horizon 2048, 10 epochs of minibatches of 64, Adam at
3·10⁻⁴ held constant, γ = 0.99, λ = 0.95, separate 64-64 tanh networks for π and V, no entropy
bonus (pgcore's MuJoCo preset, pinned in BASE, with the learning rate not annealed). The paper
trained for one million steps; BUDGET is what this machine allows. A run's score is, as in the
paper, the mean return of its last LAST_EPISODES training episodes; the chapter normalises
(random policy 0, best setting 1) and compares with the paper.

The output file is rewritten after every finished run and holds every run finished so far
("complete": false until the last), so the sweep resumes after an interruption: runs already in
the file are not trained again. The jobs are ordered seed by seed, so a partial file covers
every (task, setting) once before any gets a second seed. Deterministic: one torch thread per
process and seeded runs, so the file does not depend on --workers. Usage::

    .venv/bin/python book/scripts/ppo_table1_mujoco.py        # ≈ 3 h on 2 cores; resumable
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import gymnasium
import mujoco
import numpy as np
import torch

from pgcore.config import MUJOCO_TASKS
from pgcore.training import history_arrays, resolve_hparams, train

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _sweep import parallel_runs, sig, write_json  # noqa: E402
from ppo_table1 import (  # noqa: E402  (the rows, the paper's scores, the random baseline)
    LAST_EPISODES,
    PAPER,
    RANDOM_EPISODES,
    ROWS,
    random_policy_return,
)

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "book" / "data" / "ppo" / "table1_mujoco.json"
TASKS = MUJOCO_TASKS
#: environment steps per run: 25 iterations of 2048 (the paper: 1,000,000)
BUDGET = 51_200
SEEDS = (0, 1, 2)
#: pgcore's PPO preset for the MuJoCo tasks (commit 83f0d54), pinned, with the paper's
#: constant learning rate and clip range.
BASE = {
    "num_envs": 1,
    "n_steps": 2048,
    "gamma": 0.99,
    "lam": 0.95,
    "normalize_obs": True,
    "reward_scale": 1.0,
    "scale_rewards": False,
    "hidden": [64, 64],
    "log_std_init": 0.0,
    "log_std": "parameter",
    "normalize_advantages": True,
    "bootstrap_truncated": True,
    "ortho_init": True,
    "clip_actions": True,
    "lr": 3e-4,
    "anneal_lr": False,
    "epochs": 10,
    "minibatch_size": 64,
    "clip": 0.2,
    "anneal_clip": False,
    "beta": 1.0,
    "d_targ": 0.01,
    "ent_coef": 0.0,
    "vf_coef": 0.5,
    "clip_vloss": None,
    "max_grad_norm": 0.5,
    "target_kl": None,
    "adam_eps": 1e-5,
}


def jobs(n_seeds: int = len(SEEDS)) -> list[tuple[str, str, int]]:
    """Every (task, row label, seed), seed-major: all of seed 0 first."""
    return [(t, lab, s) for s in SEEDS[:n_seeds] for t in TASKS for lab, _, _ in ROWS]


def row_hparams(label: str) -> tuple[str, dict]:
    """(algo, the full hyperparameters) of a Table 1 row."""
    algo, change = next((algo, hp) for lab, algo, hp in ROWS if lab == label)
    return algo, {**BASE, **change}


def one_run(job: tuple[str, str, int]) -> dict:
    env_id, label, seed = job
    algo, hp = row_hparams(label)
    t0 = time.perf_counter()
    res = train(env_id, algo, total_steps=BUDGET, seed=seed, progress=False, **hp)
    arr = history_arrays(res.history)
    returns = arr["episode_returns"]
    return {
        "env_id": env_id,
        "label": label,
        "seed": seed,
        "score": float(np.mean(returns[-LAST_EPISODES:])),
        "n_episodes": int(len(returns)),
        "total_steps": int(res.history[-1]["env_steps"]),
        "mean_return": [sig(v) for v in arr["mean_return"]],
        "kl": [sig(v) for v in arr["kl"]],
        "seconds": round(time.perf_counter() - t0, 1),
    }


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, default=len(SEEDS))
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.add_argument("--out", type=Path, default=OUT)
    p.add_argument(
        "--max-runs", type=int, default=None, help="stop after this many new runs (then resume)"
    )
    args = p.parse_args(argv)
    for lab, algo, _ in ROWS:  # the pinned configuration must still be valid
        resolve_hparams(TASKS[0], algo, **row_hparams(lab)[1])
    old = json.loads(args.out.read_text()) if args.out.exists() else {}
    if old and (old["budget"], old["base"]) != (BUDGET, BASE):
        raise SystemExit(f"{args.out} holds runs of another configuration: move it away first")
    done = {(r["env_id"], r["label"], r["seed"]): r for r in old.get("runs", [])}
    every = jobs(args.seeds)
    todo = [j for j in every if j not in done][: args.max_runs]
    data = {
        "description": "PPO Table 1 on the paper's MuJoCo tasks; see book/scripts/ppo_table1_mujoco.py",
        "tasks": list(TASKS),
        "budget": BUDGET,
        "seeds": list(SEEDS[: args.seeds]),
        "base": BASE,
        "rows": [{"label": lab, "algo": algo, "change": hp} for lab, algo, hp in ROWS],
        "paper": PAPER,
        "last_episodes": LAST_EPISODES,
        "random_return": old.get("random_return") or {t: random_policy_return(t) for t in TASKS},
        "random_episodes": RANDOM_EPISODES,
        "machine": f"{platform.machine()}, torch {torch.__version__}, 1 thread per run",
        # the live slice of the chapter reproduces a run to the digit only with these versions
        "versions": {m.__name__: m.__version__ for m in (torch, mujoco, gymnasium)},
    }
    print(f"{len(done)} runs stored, {len(todo)} to train", flush=True)
    if not todo and old:  # nothing to train: refresh the description (versions, rows, paper)
        write_json(args.out, {**old, **data})
    for i, run in enumerate(parallel_runs(one_run, todo, args.workers)):
        done[run["env_id"], run["label"], run["seed"]] = run
        runs = [done[j] for j in every if j in done]
        data.update(
            runs=runs,
            complete=len(runs) == len(every),
            total_seconds=round(sum(r["seconds"] for r in runs), 1),
        )
        write_json(args.out, data)
        print(
            f"[{i + 1}/{len(todo)}] {run['env_id']:26s} {run['label']:28s} seed {run['seed']}: "
            f"score {run['score']:9.1f} ({run['seconds']:.0f} s)",
            flush=True,
        )


if __name__ == "__main__":
    main()
