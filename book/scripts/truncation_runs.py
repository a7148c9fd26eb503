"""Regenerate the time-limit ablation of the advantage chapter (``book/data/truncation/``).

CartPole-v1 ends an episode in two ways: the pole falls (*terminated*: the MDP has ended) or
500 steps pass (*truncated*: the clock ran out, the pole is still up). The correct rule
bootstraps a truncated step from the value of its final observation; the common bug treats it
like a termination. This script trains TRPO with both rules, ``pgcore.train(...,
bootstrap_truncated=True)`` (correct, the default) and ``bootstrap_truncated=False`` (the bug),
for the same seeds and hyperparameters (written out in ``CONFIG`` below), and after training
measures each run's value error: the critic's prediction V_φ(s_t) on the states of fresh
episodes against the discounted return that actually follows s_t, computed in an environment
whose time limit is extended by ``CONFIG["eval_extra_steps"]`` steps, so that the return of a
state near step 500 is not cut short by the clock (the tail beyond is below γ^extra).

Output:

* ``book/data/truncation/<rule>_seed<k>.npz`` for each rule (``ok``: bootstrap, ``bug``: no
  bootstrap) and seed: per-iteration arrays ``env_steps``, ``mean_return`` (mean of the last
  20 finished episodes), ``explained_variance``; per-episode arrays ``ep_return``,
  ``ep_length``, ``ep_end_step``; the value evaluation ``value_bias`` (mean of
  V_φ(s_t) − G_t), ``value_rmse``, ``value_bias_up`` and ``n_up`` (the same mean over the
  evaluation episodes in which the pole stays up, and their number), ``eval_return`` (mean
  undiscounted return over the first 500 steps of the evaluation episodes); and
  ``wall_seconds``. :func:`load_runs` merges them
  as ``<rule>_<name>`` arrays over seeds.
* ``book/data/truncation/runs.json``: task, algorithm, seeds, budget, hyperparameters and
  library versions.

Usage (from the repository root)::

    .venv/bin/python book/scripts/truncation_runs.py            # train and write the data
    .venv/bin/python book/scripts/truncation_runs.py --rule ok & \
    .venv/bin/python book/scripts/truncation_runs.py --rule bug # the same, on two cores
    .venv/bin/python book/scripts/truncation_runs.py --check    # re-run 3 iterations, compare

Training is deterministic on the CPU for a given seed, so ``--check`` (and the chapter's live
check) reproduce the stored first iterations exactly.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

DATA = Path(__file__).resolve().parents[1] / "data" / "truncation"

#: The ablation: task, algorithm, budget, seeds, the full hyperparameters, the evaluation.
CONFIG: dict = {
    "env_id": "CartPole-v1",
    "algo": "trpo",
    "total_steps": 80_000,
    "seeds": [0, 1, 2, 3, 4],
    # pgcore.training's tuned TRPO defaults for CartPole-v1, written out
    "hparams": {
        "num_envs": 8,
        "n_steps": 128,
        "gamma": 0.99,
        "lam": 0.98,
        "normalize_obs": False,
        "reward_scale": 1.0,
        "hidden": [64, 64],
        "log_std_init": 0.0,
        "normalize_advantages": True,
        "max_kl": 0.02,
        "cg_iters": 10,
        "damping": 0.01,
        "backtrack_iters": 10,
        "backtrack_coeff": 0.5,
        "vf_lr": 1e-3,
        "vf_epochs": 10,
        "vf_minibatch_size": 256,
    },
    "eval_episodes": 8,
    "eval_extra_steps": 500,
    "eval_seed": 12345,
}
RULES = {"ok": True, "bug": False}
ITER_KEYS = ("env_steps", "mean_return", "explained_variance")


def hparams() -> dict:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in CONFIG["hparams"].items()}


def train_one(seed: int, bootstrap_truncated: bool, total_steps: int | None = None):
    """One training run with the given truncation rule."""
    import pgcore

    steps = CONFIG["total_steps"] if total_steps is None else total_steps
    return pgcore.train(
        CONFIG["env_id"],
        CONFIG["algo"],
        total_steps=steps,
        seed=seed,
        progress=False,
        bootstrap_truncated=bootstrap_truncated,
        **hparams(),
    )


def history_table(history: list[dict]) -> dict[str, np.ndarray]:
    from pgcore.training import history_arrays

    arrays = history_arrays(history)
    out = {k: arrays[k] for k in ITER_KEYS}
    out["ep_return"] = np.array([r for h in history for r in h["episode_returns"]], dtype=float)
    out["ep_length"] = np.array([n for h in history for n in h["episode_lengths"]], dtype=np.int64)
    out["ep_end_step"] = np.array(
        [s for h in history for s in h["episode_end_steps"]], dtype=np.int64
    )
    return out


@torch.no_grad()
def value_error(
    result, gamma: float, episodes: int, extra_steps: int, seed: int
) -> dict[str, float]:
    """The critic's error on fresh episodes of the trained (stochastic) policy.

    Each episode runs for up to 500 + ``extra_steps`` steps (the time limit extended); for
    the states of its first 500 steps, G_t = Σ_k γᵏ R_{t+k} over the rest of the episode is an
    unbiased sample of V^π(s_t) up to a tail below γ^extra_steps·(max return). Returns the
    mean of V_φ(s_t) − G_t and its root mean square over all episodes (``value_bias``,
    ``value_rmse``); the same mean over the episodes in which the pole stays up until the
    extended limit (``value_bias_up``, with their number ``n_up``), which isolates the
    truncation effect from the critic's error near a fall; and the mean undiscounted return
    of the first 500 steps (``eval_return``).
    """
    import gymnasium as gym

    limit = gym.spec(CONFIG["env_id"]).max_episode_steps
    env = gym.make(CONFIG["env_id"], max_episode_steps=limit + extra_steps)
    gen_state = torch.get_rng_state()
    torch.manual_seed(seed)
    errors, returns, up = [], [], []
    try:
        for ep in range(episodes):
            obs, _ = env.reset(seed=seed + ep)
            states, rewards = [], []
            done = False
            while not done:
                states.append(np.asarray(obs, dtype=np.float64))
                x = np.asarray(obs, dtype=np.float64)[None]
                x = (
                    result.obs_rms.normalize(x)
                    if result.obs_rms is not None
                    else x.astype(np.float32)
                )
                action = result.policy.distribution(torch.from_numpy(x)).sample().item()
                obs, r, term, trunc, _ = env.step(action)
                rewards.append(float(r))
                done = term or trunc
            rewards = np.array(rewards)
            G = np.zeros(len(rewards))
            acc = 0.0
            for t in range(len(rewards) - 1, -1, -1):
                acc = rewards[t] + gamma * acc
                G[t] = acc
            n = min(limit, len(rewards))
            x = np.array(states[:n])
            x = result.obs_rms.normalize(x) if result.obs_rms is not None else x.astype(np.float32)
            V = result.value_fn(torch.from_numpy(x)).double().numpy()
            errors.append(V - G[:n])
            returns.append(rewards[:n].sum())
            up.append(bool(trunc) and not bool(term))
    finally:
        env.close()
        torch.set_rng_state(gen_state)
    e = np.concatenate(errors)
    e_up = np.concatenate(
        [err for err, u in zip(errors, up, strict=True) if u] or [np.full(1, np.nan)]
    )
    return {
        "value_bias": float(e.mean()),
        "value_bias_up": float(e_up.mean()),
        "n_up": float(sum(up)),
        "value_rmse": float(np.sqrt((e**2).mean())),
        "eval_return": float(np.mean(returns)),
    }


def run_one(rule: str, seed: int) -> dict[str, np.ndarray]:
    """Train one seed with one rule, evaluate its critic, write ``<rule>_seed<seed>.npz``."""
    import gymnasium

    flag = RULES[rule]
    t0 = time.perf_counter()
    result = train_one(seed, flag)
    table = history_table(result.history)
    ev = value_error(
        result,
        CONFIG["hparams"]["gamma"],
        CONFIG["eval_episodes"],
        CONFIG["eval_extra_steps"],
        CONFIG["eval_seed"],
    )
    wall = time.perf_counter() - t0
    print(
        f"{rule} (bootstrap_truncated={flag}) seed {seed}: final mean return "
        f"{table['mean_return'][-1]:.1f}, value bias {ev['value_bias']:+.2f}, {wall:.0f} s",
        flush=True,
    )
    data = {
        **table,
        **{k: np.array(v) for k, v in ev.items()},
        "seed": np.array(seed),
        "wall_seconds": np.array(wall),
    }
    DATA.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(DATA / f"{rule}_seed{seed}.npz", **data)
    meta = {
        **CONFIG,
        "rules": RULES,
        "torch": torch.__version__,
        "gymnasium": gymnasium.__version__,
        "numpy": np.__version__,
        "script": "book/scripts/truncation_runs.py",
    }
    (DATA / "runs.json").write_text(json.dumps(meta, indent=2) + "\n")
    return data


def load_runs(data_dir: str | Path = DATA) -> tuple[dict[str, np.ndarray], dict]:
    """The stored runs of both rules for the seeds of ``runs.json``, keyed ``<rule>_<name>``:
    per-iteration arrays stacked to [n_seeds, n_iterations], per-episode arrays concatenated
    (with ``<rule>_ep_seed``, the row of the seed), per-seed evaluations as [n_seeds]."""
    data_dir = Path(data_dir)
    meta = json.loads((data_dir / "runs.json").read_text())
    data: dict[str, np.ndarray] = {"seeds": np.array(meta["seeds"], dtype=np.int64)}
    for rule in RULES:
        runs = []
        for seed in meta["seeds"]:
            with np.load(data_dir / f"{rule}_seed{seed}.npz") as f:
                runs.append({k: f[k] for k in f.files})
        for k in ITER_KEYS:
            data[f"{rule}_{k}"] = np.stack([r[k] for r in runs])
        for k in ("ep_return", "ep_length", "ep_end_step"):
            data[f"{rule}_{k}"] = np.concatenate([r[k] for r in runs])
        data[f"{rule}_ep_seed"] = np.concatenate(
            [np.full(len(r["ep_return"]), i, dtype=np.int64) for i, r in enumerate(runs)]
        )
        for k in (
            "value_bias",
            "value_rmse",
            "value_bias_up",
            "n_up",
            "eval_return",
            "wall_seconds",
        ):
            data[f"{rule}_{k}"] = np.array([float(r[k]) for r in runs])
    return data, meta


def live_prefix(rule: str, n_iterations: int, data_dir: str | Path = DATA) -> tuple[dict, dict]:
    """Re-run the first ``n_iterations`` of the stored seed-0 run of ``rule``; return
    (live, stored) per-iteration tables."""
    data, meta = load_runs(data_dir)
    hp = CONFIG["hparams"]
    steps = n_iterations * hp["num_envs"] * hp["n_steps"]
    live = history_table(train_one(int(data["seeds"][0]), RULES[rule], total_steps=steps).history)
    stored = {k: data[f"{rule}_{k}"][0, :n_iterations] for k in ITER_KEYS}
    return {k: live[k] for k in ITER_KEYS}, stored


def compare(live: dict, stored: dict, atol: float = 1e-12) -> float:
    """Largest absolute difference over the per-iteration arrays (NaN = NaN); raises above atol."""
    worst = 0.0
    for k, v in stored.items():
        a, b = np.asarray(live[k], dtype=float), np.asarray(v, dtype=float)
        if a.shape != b.shape:
            raise AssertionError(f"{k}: live shape {a.shape} != stored shape {b.shape}")
        diff = np.where(np.isnan(a) & np.isnan(b), 0.0, np.abs(a - b))
        worst = max(worst, float(np.max(diff, initial=0.0)))
    if not worst <= atol:
        raise AssertionError(f"live run differs from the stored run by {worst}")
    return worst


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, nargs="*", default=None)
    p.add_argument(
        "--rule",
        choices=sorted(RULES),
        action="append",
        help="rule(s) to train (default: both; run one per process to use two cores)",
    )
    p.add_argument("--check", action="store_true", help="re-run the first iterations and compare")
    p.add_argument("--iterations", type=int, default=3)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    if args.check:
        for rule in RULES:
            print(
                f"{rule}: first {args.iterations} iterations match "
                f"(max |diff| {compare(*live_prefix(rule, args.iterations)):.3g})"
            )
    else:
        for rule in args.rule or list(RULES):
            for seed in CONFIG["seeds"] if args.seeds is None else args.seeds:
                run_one(rule, seed)


if __name__ == "__main__":
    sys.exit(main())
