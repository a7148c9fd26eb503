"""Regenerate the stored TRPO training runs of chapter 4 (``book/data/trpo/``).

Each task is trained with ``pgcore.train(env_id, "trpo", ...)`` for several seeds, with
the hyperparameters frozen in ``RUNS`` below (the full set, so that later changes to
``pgcore.training.DEFAULTS`` do not silently change what the stored runs mean). Training runs
on one torch thread and is deterministic on the CPU: the same seed gives the same history,
apart from the wall-clock times. For each task the script writes

* ``book/data/trpo/<env_id>.npz``: per-iteration arrays of shape [n_seeds, n_iterations]
  (``env_steps``, ``kl``, ``entropy``, ``surrogate_gain``, ``value_loss`` (the MSE of the value
  fit), ``explained_variance``, ``wall_time``, ``mean_return``: the mean of the last 20
  finished episodes; and the line search's ``accepted``, ``backtracks``, ``predicted_kl``,
  ``predicted_kl_undamped``, see ``ITER_KEYS``) and the finished episodes, flattened (``ep_return``, ``ep_end_step``,
  ``ep_seed``: the row of the seed, ``ep_iteration``);
* ``book/data/trpo/<env_id>.json``: the run's metadata (task, algorithm, step budget, seeds,
  the hyperparameters, library versions).

Usage (from the repository root)::

    .venv/bin/python book/scripts/trpo_runs.py                  # every task in RUNS
    .venv/bin/python book/scripts/trpo_runs.py --env CartPole-v1 # one task
    .venv/bin/python book/scripts/trpo_runs.py --check           # re-run the first iterations
                                                                 # of seed 0, compare bitwise

The chapter (``book/05_trpo.md``) reads these files with :func:`load_runs` and repeats the
first iterations of seed 0 live; ``tests/test_trpo_chapter.py`` checks that the two agree.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

DATA = Path(__file__).resolve().parents[1] / "data" / "trpo"

_COMMON = {
    "num_envs": 8,
    "n_steps": 128,
    "lam": 0.95,
    "reward_scale": 1.0,
    "hidden": [64, 64],
    "log_std_init": 0.0,
    "normalize_advantages": True,
    "cg_iters": 10,
    "damping": 0.1,
    "backtrack_iters": 10,
    "backtrack_coeff": 0.5,
    "vf_lr": 1e-3,
    "vf_minibatch_size": 256,
}

#: task → step budget, seeds and the full set of TRPO hyperparameters.
RUNS: dict[str, dict] = {
    "CartPole-v1": {
        "total_steps": 200_000,
        "seeds": [0, 1, 2, 3, 4],
        # pgcore.training's tuned TRPO defaults for CartPole-v1, written out
        "hparams": {
            **_COMMON,
            "gamma": 0.99,
            "lam": 0.98,
            "normalize_obs": False,
            "max_kl": 0.02,
            "damping": 0.01,
            "vf_epochs": 10,
        },
    },
    "Pendulum-v1": {
        "total_steps": 300_000,
        "seeds": [0, 1, 2, 3, 4],
        "hparams": {
            **_COMMON,
            "gamma": 0.9,
            "normalize_obs": True,
            "max_kl": 0.01,
            "n_steps": 256,
            "vf_epochs": 10,
        },
    },
}

#: per-iteration history keys stored as [n_seeds, n_iterations] arrays (``accepted``: 1.0 when
#: the line search accepted a step; ``backtracks``: how many times it shrank the step;
#: ``predicted_kl``: the quadratic model's KL ½ΔᵀFΔ of the accepted step with the damped F
#: (0 when none was accepted); ``predicted_kl_undamped``: the same with the undamped F, of the
#: full natural step)
ITER_KEYS = (
    "env_steps",
    "kl",
    "entropy",
    "surrogate_gain",
    "value_loss",
    "explained_variance",
    "wall_time",
    "mean_return",
    "accepted",
    "backtracks",
    "predicted_kl",
    "predicted_kl_undamped",
)


def hparams_for(env_id: str) -> dict:
    """The hyperparameters of the stored runs of ``env_id`` (lists turned into tuples)."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in RUNS[env_id]["hparams"].items()}


def history_table(history: list[dict]) -> dict[str, np.ndarray]:
    """The per-iteration arrays and the flattened episodes of one run's history."""
    from pgcore.training import history_arrays

    arrays = history_arrays(history)
    out = {k: arrays[k] for k in ITER_KEYS}
    out["ep_return"] = np.array([r for h in history for r in h["episode_returns"]], dtype=float)
    out["ep_end_step"] = np.array(
        [s for h in history for s in h["episode_end_steps"]], dtype=np.int64
    )
    out["ep_iteration"] = np.array(
        [i for i, h in enumerate(history) for _ in h["episode_returns"]], dtype=np.int64
    )
    return out


def run_task(env_id: str, seeds=None, progress: bool = False) -> dict[str, np.ndarray]:
    """Train every seed of ``env_id`` and write its .npz and .json to ``DATA``."""
    import gymnasium

    from pgcore.training import train

    spec = RUNS[env_id]
    seeds = list(spec["seeds"] if seeds is None else seeds)
    tables = []
    for seed in seeds:
        t0 = time.perf_counter()
        result = train(
            env_id,
            "trpo",
            total_steps=spec["total_steps"],
            seed=seed,
            progress=progress,
            **hparams_for(env_id),
        )
        tables.append(history_table(result.history))
        t = tables[-1]
        print(
            f"{env_id} seed {seed}: {len(t['kl'])} iterations, final mean return "
            f"{t['mean_return'][-1]:.1f}, max KL/δ {np.max(t['kl']) / spec['hparams']['max_kl']:.3f}, "
            f"{time.perf_counter() - t0:.0f} s",
            flush=True,
        )
    data = {k: np.stack([t[k] for t in tables]) for k in ITER_KEYS}
    data["seeds"] = np.array(seeds, dtype=np.int64)
    for k in ("ep_return", "ep_end_step", "ep_iteration"):
        data[k] = np.concatenate([t[k] for t in tables])
    data["ep_seed"] = np.concatenate(
        [np.full(len(t["ep_return"]), i, dtype=np.int64) for i, t in enumerate(tables)]
    )
    DATA.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(DATA / f"{env_id}.npz", **data)
    meta = {
        "env_id": env_id,
        "algo": "trpo",
        "total_steps": spec["total_steps"],
        "seeds": seeds,
        "hparams": spec["hparams"],
        "torch": torch.__version__,
        "gymnasium": gymnasium.__version__,
        "numpy": np.__version__,
        "script": "book/scripts/trpo_runs.py",
    }
    (DATA / f"{env_id}.json").write_text(json.dumps(meta, indent=2) + "\n")
    return data


def load_runs(env_id: str, data_dir: str | Path = DATA) -> tuple[dict[str, np.ndarray], dict]:
    """The stored arrays and metadata of ``env_id`` (as written by :func:`run_task`)."""
    data_dir = Path(data_dir)
    with np.load(data_dir / f"{env_id}.npz") as f:
        data = {k: f[k] for k in f.files}
    meta = json.loads((data_dir / f"{env_id}.json").read_text())
    return data, meta


def live_prefix(env_id: str, n_iterations: int, data_dir: str | Path = DATA) -> tuple[dict, dict]:
    """Re-run the first ``n_iterations`` of the stored seed-0 run; return (live, stored) tables."""
    from pgcore.training import train

    data, meta = load_runs(env_id, data_dir)
    hp = {k: tuple(v) if isinstance(v, list) else v for k, v in meta["hparams"].items()}
    steps = n_iterations * hp["num_envs"] * hp["n_steps"]
    live = history_table(
        train(
            env_id, "trpo", total_steps=steps, seed=int(data["seeds"][0]), progress=False, **hp
        ).history
    )
    row = 0
    stored = {k: data[k][row, :n_iterations] for k in ITER_KEYS}
    mask = (data["ep_seed"] == row) & (data["ep_iteration"] < n_iterations)
    for k in ("ep_return", "ep_end_step", "ep_iteration"):
        stored[k] = data[k][mask]
    return live, stored


def compare(live: dict, stored: dict, atol: float = 1e-12) -> dict[str, float]:
    """Largest absolute difference per key (wall time excluded); raises if any exceeds atol."""
    diffs = {}
    for k, v in stored.items():
        if k == "wall_time":
            continue
        a, b = np.asarray(live[k], dtype=float), np.asarray(v, dtype=float)
        if a.shape != b.shape:
            raise AssertionError(f"{k}: live shape {a.shape} != stored shape {b.shape}")
        both_nan = np.isnan(a) & np.isnan(b)
        diffs[k] = float(np.max(np.abs(np.where(both_nan, 0.0, a - b)), initial=0.0))
    bad = {k: d for k, d in diffs.items() if not d <= atol}
    if bad:
        raise AssertionError(f"live run differs from the stored run: {bad}")
    return diffs


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--env", choices=sorted(RUNS), action="append", help="task(s); default: all")
    p.add_argument("--seeds", type=int, nargs="*", default=None)
    p.add_argument(
        "--check",
        action="store_true",
        help="re-run the first iterations of seed 0 and compare with the stored data",
    )
    p.add_argument("--iterations", type=int, default=5, help="iterations compared by --check")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    for env_id in args.env or list(RUNS):
        if args.check:
            diffs = compare(*live_prefix(env_id, args.iterations))
            print(
                f"{env_id}: first {args.iterations} iterations match "
                f"(max |diff| {max(diffs.values()):.3g})"
            )
        else:
            run_task(env_id, args.seeds)


if __name__ == "__main__":
    sys.exit(main())
