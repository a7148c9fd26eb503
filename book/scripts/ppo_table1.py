"""Regenerate book/data/ppo/table1.json: a small-scale replication of Table 1 of the PPO paper.

Schulman et al. (2017), Table 1, compares surrogate objectives: no clipping or penalty; the
clipped objective with ε ∈ {0.1, 0.2, 0.3}; the adaptive KL penalty with d_targ ∈ {0.003,
0.01, 0.03}; and a fixed KL penalty with β ∈ {0.3, 1, 3, 10}. Each row's score is the mean
return over the last 100 training episodes, normalised per environment so that a random
policy scores 0 and the best setting scores 1, then averaged over environments and seeds.

Here every row is trained with ``pgcore.train`` on classic-control tasks (ENVS) for a
small budget and a few seeds; the rest of the configuration is pgcore's per-task default
(as of this writing, pinned in BASE so that later retuning of pgcore.training does not change the
runs) with the clip range and the learning rate held constant (no annealing), so that ε is the
only thing that changes between the clipping rows. The script stores the raw per-run
scores and, per iteration of every run, the exact mean KL, the approximate KL ``approx_kl``,
and for the KL-penalty rows the β used (``beta``) and, for adaptive KL, the β after the rule
(``beta_next``); the chapter does the normalisation.
It also stores, at full precision, the first iterations of one run (the "live slice"),
which the chapter re-runs and the tests compare bitwise.

Deterministic: torch runs on one thread and every run is seeded. Runs are cached one file
each in --cache (delete it to start over). Usage::

    .venv/bin/python book/scripts/ppo_table1.py            # full sweep (≈ 20 min of training on one thread of a busy 2-core machine)
    .venv/bin/python book/scripts/ppo_table1.py --seeds 1  # a quick look
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from pgcore.training import history_arrays, resolve_hparams, train

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "book" / "data" / "ppo" / "table1.json"

#: Every hyperparameter of each task, pinned here (pgcore's per-task defaults of 2026-11-21
#: 06:00 UTC) so that the stored runs do not change when pgcore.training's DEFAULTS are retuned.
_PPO_COMMON = {
    "reward_scale": 1.0,
    "hidden": [64, 64],
    "log_std_init": 0.0,
    "normalize_advantages": True,
    "clip": 0.2,
    "beta": 1.0,
    "d_targ": 0.01,
    "ent_coef": 0.0,
    "vf_coef": 0.5,
    "clip_vloss": None,
    "max_grad_norm": 0.5,
    "target_kl": None,
}
BASE = {
    "CartPole-v1": {
        **_PPO_COMMON,
        "num_envs": 8,
        "n_steps": 32,
        "gamma": 0.98,
        "lam": 0.8,
        "normalize_obs": False,
        "lr": 1e-3,
        "epochs": 20,
        "minibatch_size": 256,
    },
    "Acrobot-v1": {
        **_PPO_COMMON,
        "num_envs": 8,
        "n_steps": 128,
        "gamma": 0.99,
        "lam": 0.95,
        "normalize_obs": True,
        "lr": 3e-4,
        "epochs": 10,
        "minibatch_size": 256,
    },
}
#: environment → training budget in environment steps
ENVS = {"CartPole-v1": 30_000, "Acrobot-v1": 50_000}
SEEDS = (0, 1, 2)
#: what every run shares, on top of pgcore's per-task defaults
COMMON = {"anneal_lr": False, "anneal_clip": False}
#: Table 1's rows: (label, algo, hyperparameters)
ROWS = [
    ("No clipping or penalty", "ppo-noclip", {}),
    ("Clipping, ε = 0.1", "ppo-clip", {"clip": 0.1}),
    ("Clipping, ε = 0.2", "ppo-clip", {"clip": 0.2}),
    ("Clipping, ε = 0.3", "ppo-clip", {"clip": 0.3}),
    ("Adaptive KL, d_targ = 0.003", "ppo-kl", {"d_targ": 0.003}),
    ("Adaptive KL, d_targ = 0.01", "ppo-kl", {"d_targ": 0.01}),
    ("Adaptive KL, d_targ = 0.03", "ppo-kl", {"d_targ": 0.03}),
    ("Fixed KL, β = 0.3", "ppo-fixed-kl", {"beta": 0.3}),
    ("Fixed KL, β = 1", "ppo-fixed-kl", {"beta": 1.0}),
    ("Fixed KL, β = 3", "ppo-fixed-kl", {"beta": 3.0}),
    ("Fixed KL, β = 10", "ppo-fixed-kl", {"beta": 10.0}),
]
#: The paper's Table 1 (average normalised score over 21 runs: 7 MuJoCo tasks × 3 seeds).
PAPER = {
    "No clipping or penalty": -0.39,
    "Clipping, ε = 0.1": 0.76,
    "Clipping, ε = 0.2": 0.82,
    "Clipping, ε = 0.3": 0.70,
    "Adaptive KL, d_targ = 0.003": 0.68,
    "Adaptive KL, d_targ = 0.01": 0.74,
    "Adaptive KL, d_targ = 0.03": 0.71,
    "Fixed KL, β = 0.3": 0.62,
    "Fixed KL, β = 1": 0.71,
    "Fixed KL, β = 3": 0.72,
    "Fixed KL, β = 10": 0.69,
}
#: The live slice: the first SLICE_ITERS iterations of this run, stored at full precision.
SLICE = {"env_id": "CartPole-v1", "label": "Clipping, ε = 0.2", "seed": 0, "iterations": 20}
LAST_EPISODES = 100
RANDOM_EPISODES = 100


def row_hparams(label: str, env_id: str) -> tuple[str, dict]:
    """(algo, the full hyperparameters) of a Table 1 row on a task."""
    for lab, algo, hp in ROWS:
        if lab == label:
            return algo, {**BASE[env_id], **COMMON, **hp}
    raise KeyError(label)


def slice_run(n_iters: int | None = None) -> list[dict]:
    """Train the live slice: the first ``SLICE['iterations']`` iterations of its run.

    Returns the history rows without ``wall_time`` (the only non-deterministic entry)."""
    algo, hp = row_hparams(SLICE["label"], SLICE["env_id"])
    n = SLICE["iterations"] if n_iters is None else n_iters
    cfg = resolve_hparams(SLICE["env_id"], algo, **hp)
    per_iter = cfg["num_envs"] * cfg["n_steps"]
    res = train(
        SLICE["env_id"], algo, total_steps=n * per_iter, seed=SLICE["seed"], progress=False, **hp
    )
    return [_exact_row(h) for h in res.history]


def _exact_row(h: dict) -> dict:
    keys = (
        "iteration",
        "env_steps",
        "episode_returns",
        "kl",
        "clipfrac",
        "entropy",
        "value_loss",
        "surrogate_gain",
    )
    return {k: h[k] for k in keys}


def random_policy_return(env_id: str, episodes: int = RANDOM_EPISODES, seed: int = 12345) -> float:
    """Mean undiscounted return of the uniformly random policy over ``episodes`` episodes."""
    env = gym.make(env_id)
    env.action_space.seed(seed)
    total = []
    for ep in range(episodes):
        env.reset(seed=seed + ep)
        ret, done = 0.0, False
        while not done:
            _, r, term, trunc, _ = env.step(env.action_space.sample())
            ret += float(r)
            done = term or trunc
        total.append(ret)
    env.close()
    return float(np.mean(total))


def _sig(x, digits: int = 4):
    return None if x is None or not np.isfinite(x) else float(f"{x:.{digits}g}")


def one_run(env_id: str, label: str, seed: int, steps: int) -> dict:
    algo, hp = row_hparams(label, env_id)
    t0 = time.perf_counter()
    res = train(env_id, algo, total_steps=steps, seed=seed, progress=False, **hp)
    arr = history_arrays(res.history)
    returns = arr["episode_returns"]
    out = {
        "env_id": env_id,
        "label": label,
        "algo": algo,
        "seed": seed,
        "hparams": hp,
        "total_steps": int(res.history[-1]["env_steps"]),
        "score": float(np.mean(returns[-LAST_EPISODES:])),
        "n_episodes": int(len(returns)),
        "env_steps": [int(h["env_steps"]) for h in res.history],
        "kl": [_sig(v) for v in arr["kl"]],
        # β used in each iteration's update, and (adaptive KL) β after the rule
        "beta": [_sig(v) for v in arr["beta"]] if algo in ("ppo-kl", "ppo-fixed-kl") else None,
        "beta_next": [_sig(v) for v in arr["beta_next"]] if algo == "ppo-kl" else None,
        # the whole-batch estimate E[(r − 1) − log r] after the update
        "approx_kl": [_sig(v) for v in arr["approx_kl"]],
        "mean_return": [_sig(v) for v in arr["mean_return"]],
        "seconds": round(time.perf_counter() - t0, 1),
    }
    if env_id == SLICE["env_id"] and label == SLICE["label"] and seed == SLICE["seed"]:
        out["slice"] = [_exact_row(h) for h in res.history[: SLICE["iterations"]]]
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, default=len(SEEDS))
    p.add_argument("--out", type=Path, default=OUT)
    p.add_argument("--cache", type=Path, default=Path("/tmp/ppo_table1_cache"))
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    args.cache.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    runs = []
    jobs = [(e, lab, s) for e in ENVS for (lab, _, _) in ROWS for s in SEEDS[: args.seeds]]
    for i, (env_id, label, seed) in enumerate(jobs):
        key = f"{env_id}_{ROWS.index(next(r for r in ROWS if r[0] == label))}_{seed}.json"
        path = args.cache / key
        if path.exists():
            run = json.loads(path.read_text())
        else:
            run = one_run(env_id, label, seed, ENVS[env_id])
            path.write_text(json.dumps(run))
        runs.append(run)
        print(
            f"[{i + 1}/{len(jobs)}] {env_id:12s} {label:30s} seed {seed}: score {run['score']:8.1f} "
            f"({run['seconds']:.0f} s)",
            flush=True,
        )
    data = {
        "description": "PPO Table 1 replication on classic control; see book/scripts/ppo_table1.py",
        "envs": ENVS,
        "seeds": list(SEEDS[: args.seeds]),
        "base": BASE,
        "common": COMMON,
        "rows": [
            {"label": lab, "algo": algo, "hparams": {**COMMON, **hp}} for lab, algo, hp in ROWS
        ],
        "paper": PAPER,
        "last_episodes": LAST_EPISODES,
        "random_return": {e: random_policy_return(e) for e in ENVS},
        "random_episodes": RANDOM_EPISODES,
        "slice": SLICE,
        "runs": runs,
        "total_seconds": round(sum(r["seconds"] for r in runs), 1),
        "wall_seconds_this_call": round(time.perf_counter() - start, 1),
        "machine": f"{platform.machine()}, torch {torch.__version__}, 1 thread",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, ensure_ascii=False, separators=(",", ":")))
    print(
        f"wrote {args.out} ({args.out.stat().st_size / 1e3:.0f} kB), "
        f"{data['total_seconds']:.0f} s of training"
    )


if __name__ == "__main__":
    main()
