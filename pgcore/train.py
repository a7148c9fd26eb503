"""Train VPG, NPG, TRPO and the PPO family on gymnasium tasks with pgcore's update rules.

``train(env_id, algo, *, total_steps, seed=0, **hparams)`` alternates two phases:

1. collect ``num_envs × n_steps`` environment steps with :class:`~pgcore.rollouts.RolloutCollector`
   into a :class:`~pgcore.batch.Batch` (weights 1/N, GAE advantages with truncation
   handled, the old log-probabilities and values);
2. update the policy with the *same* function the exact world uses
   (:func:`~pgcore.updates.vpg_step`, :func:`~pgcore.updates.natural_gradient_step`,
   :func:`~pgcore.updates.trpo_step` or :func:`~pgcore.updates.ppo_update`), and fit the
   value function with Adam: for VPG/NPG/TRPO a few epochs of minibatch regression
   min_φ E[(V_φ(s) − R̂)²] on the GAE returns R̂ = Â + V_old; for PPO the joint loss
   −L^surr + c_v·L^V − c_H·H inside ``ppo_update``.

Algorithms (``ALGOS``):

==================  ==============================================================
``"vpg"``           θ ← θ + α ĝ (vanilla policy gradient on the surrogate)
``"npg"``           θ ← θ + sqrt(2δ / ĝᵀF⁻¹ĝ) F⁻¹ĝ (natural gradient, CG for F⁻¹ĝ)
``"trpo"``          the natural step plus a backtracking line search on KL ≤ δ and gain > 0
``"ppo-clip"``      K epochs of Adam on L^CLIP = E[min(rÂ, clip(r, 1−ε, 1+ε)Â)]
``"ppo-kl"``        K epochs on E[rÂ] − β KL(π_old‖π), β adapted (÷2 if d < d_targ/1.5, ×2 if d > 1.5 d_targ)
``"ppo-fixed-kl"``  the same with a fixed β
``"ppo-noclip"``    K epochs on E[rÂ] with neither clipping nor penalty (PPO Table 1, row 1)
==================  ==============================================================

Hyperparameters (``**hparams``, every key below; unknown keys raise ``ValueError``):

* rollouts: ``num_envs``, ``n_steps`` (per environment per iteration), ``gamma``, ``lam``
  (GAE λ), ``normalize_obs`` (running mean/std), ``reward_scale`` (a constant factor on the
  rewards used for learning), ``hidden`` (MLP widths), ``log_std_init`` (Gaussian policies);
* all algorithms: ``normalize_advantages`` (Â ← (Â − mean)/std; per minibatch in PPO,
  per batch otherwise);
* VPG: ``lr`` (the step size α); NPG/TRPO: ``max_kl`` (δ), ``cg_iters``, ``damping``,
  and for TRPO ``backtrack_iters``, ``backtrack_coeff``;
* value function of VPG/NPG/TRPO: ``vf_lr``, ``vf_epochs``, ``vf_minibatch_size``;
* PPO: ``lr`` (Adam, shared by policy and value), ``anneal_lr`` (linear to 0),
  ``epochs`` (K), ``minibatch_size``, ``clip`` (ε), ``anneal_clip`` (linear to 0),
  ``beta`` (initial or fixed β), ``d_targ``, ``ent_coef``, ``vf_coef``, ``clip_vloss``,
  ``max_grad_norm``, ``target_kl`` (stop the epochs early once the mean KL exceeds it).

``DEFAULTS`` holds the base values (``DEFAULTS["*"]``) and per-task overrides for
CartPole-v1, Acrobot-v1, Pendulum-v1 and MountainCarContinuous-v0; :func:`resolve_hparams`
shows the values a run will use. Explicit ``hparams`` win over both. In short:

==============  ==========================================================================
base            8 envs × 128 steps, γ 0.99, λ 0.95, (64, 64) tanh MLPs, advantage
                normalisation; PPO: Adam 3e-4 annealed, 10 epochs, minibatch 256, ε 0.2,
                grad-norm 0.5, c_v 0.5; TRPO/NPG: δ 0.01, 10 CG steps, damping 0.1;
                VPG: step size 0.5; value fit (VPG/NPG/TRPO): Adam 1e-3, 5 epochs of
                minibatch 256
CartPole-v1     PPO: 8 envs × 32 steps, γ 0.98, λ 0.8, lr 4e-3 and ε annealed, 10 epochs;
                TRPO and NPG: δ 0.02, damping 0.01, λ 0.98, 10 value epochs; VPG: step 1.0
Acrobot-v1      observation normalisation, rewards × 0.1; PPO: 8 envs × 64 steps, lr 1e-3
Pendulum-v1     γ 0.9, observation normalisation, rewards × 0.1; PPO: 4 envs × 256 steps,
                lr 1e-3, minibatch 64
MountainCar…    observation normalisation
==============  ==========================================================================

These reach the benchmark thresholds of ``benchmarks/compare_sb3.py`` (mean of the last 20
training-episode returns ≥ 475 on CartPole-v1, −100 on Acrobot-v1, −200 on Pendulum-v1)
within 100k steps; see ``benchmarks/README.md`` for the measured steps and seconds.

Threads: ``train`` runs torch on one thread (``torch.set_num_threads(1)``), which is
fastest for these small networks and makes runs reproducible, and switches off the argument
validation of ``torch.distributions`` (a quarter of the rollout time); it restores both
settings when it returns. Determinism: for a given seed two runs on the CPU give
bitwise-identical histories, apart from ``wall_time``.

Command line::

    python -m pgcore.train --env CartPole-v1 --algo ppo-clip --steps 100000 --seed 0 \\
        [--save run.pt] [--no-progress] [--set key=value ...]
"""

from __future__ import annotations

import argparse
import ast
import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from pgcore.batch import Batch
from pgcore.policies import CategoricalMLPPolicy, GaussianMLPPolicy, ValueNetwork
from pgcore.rollouts import RolloutCollector, RunningMeanStd, make_vector_env
from pgcore.updates import AdaptiveKL, natural_gradient_step, ppo_update, trpo_step, vpg_step

__all__ = [
    "ALGOS",
    "DEFAULTS",
    "TrainResult",
    "train",
    "resolve_hparams",
    "history_arrays",
    "steps_to_threshold",
    "save",
    "load",
    "main",
]

#: algo name → the PPO objective it uses (None for the non-PPO algorithms)
ALGOS: dict[str, str | None] = {
    "vpg": None,
    "npg": None,
    "trpo": None,
    "ppo-clip": "clip",
    "ppo-kl": "adaptive-kl",
    "ppo-fixed-kl": "fixed-kl",
    "ppo-noclip": "none",
}

_ROLLOUT_KEYS = (
    "num_envs",
    "n_steps",
    "gamma",
    "lam",
    "normalize_obs",
    "reward_scale",
    "hidden",
    "log_std_init",
    "normalize_advantages",
)
_VF_KEYS = ("vf_lr", "vf_epochs", "vf_minibatch_size")
_ALGO_KEYS: dict[str, tuple[str, ...]] = {
    "vpg": ("lr", *_VF_KEYS),
    "npg": ("max_kl", "cg_iters", "damping", *_VF_KEYS),
    "trpo": ("max_kl", "cg_iters", "damping", "backtrack_iters", "backtrack_coeff", *_VF_KEYS),
    "ppo": (
        "lr",
        "anneal_lr",
        "epochs",
        "minibatch_size",
        "clip",
        "anneal_clip",
        "beta",
        "d_targ",
        "ent_coef",
        "vf_coef",
        "clip_vloss",
        "max_grad_norm",
        "target_kl",
    ),
}

#: Default hyperparameters. ``DEFAULTS["*"]`` are the base values for each algorithm family
#: ("*" for every algorithm, then "vpg", "npg", "trpo", "ppo"); ``DEFAULTS[env_id]`` overrides
#: them per task in the same layout. Tuned on the benchmark of ``benchmarks/compare_sb3.py``.
DEFAULTS: dict[str, dict[str, dict[str, Any]]] = {
    "*": {
        "*": {
            "num_envs": 8,
            "n_steps": 128,
            "gamma": 0.99,
            "lam": 0.95,
            "normalize_obs": False,
            "reward_scale": 1.0,
            "hidden": (64, 64),
            "log_std_init": 0.0,
            "normalize_advantages": True,
        },
        "vpg": {"lr": 0.5, "vf_lr": 1e-3, "vf_epochs": 5, "vf_minibatch_size": 256},
        "npg": {
            "max_kl": 0.01,
            "cg_iters": 10,
            "damping": 0.1,
            "vf_lr": 1e-3,
            "vf_epochs": 5,
            "vf_minibatch_size": 256,
        },
        "trpo": {
            "max_kl": 0.01,
            "cg_iters": 10,
            "damping": 0.1,
            "backtrack_iters": 10,
            "backtrack_coeff": 0.5,
            "vf_lr": 1e-3,
            "vf_epochs": 5,
            "vf_minibatch_size": 256,
        },
        "ppo": {
            "lr": 3e-4,
            "anneal_lr": True,
            "epochs": 10,
            "minibatch_size": 256,
            "clip": 0.2,
            "anneal_clip": False,
            "beta": 1.0,
            "d_targ": 0.01,
            "ent_coef": 0.0,
            "vf_coef": 0.5,
            "clip_vloss": None,
            "max_grad_norm": 0.5,
            "target_kl": None,
        },
    },
    "CartPole-v1": {
        # RL-Zoo's PPO settings (n_steps 32 × 8 envs, γ 0.98, λ 0.8, lr and clip annealed)
        # with half the epochs and a 4× larger learning rate.
        "ppo": {
            "num_envs": 8,
            "n_steps": 32,
            "gamma": 0.98,
            "lam": 0.8,
            "lr": 4e-3,
            "epochs": 10,
            "minibatch_size": 256,
            "anneal_clip": True,
        },
        "trpo": {"max_kl": 0.02, "damping": 0.01, "lam": 0.98, "vf_epochs": 10},
        "npg": {"max_kl": 0.02, "damping": 0.01, "lam": 0.98, "vf_epochs": 10},
        "vpg": {"lr": 1.0},
    },
    "Acrobot-v1": {
        "*": {"normalize_obs": True, "reward_scale": 0.1},
        "ppo": {"num_envs": 8, "n_steps": 64, "lr": 1e-3, "epochs": 10, "minibatch_size": 256},
    },
    "Pendulum-v1": {
        "*": {"gamma": 0.9, "normalize_obs": True, "reward_scale": 0.1},
        "ppo": {"num_envs": 4, "n_steps": 256, "lr": 1e-3, "epochs": 10, "minibatch_size": 64},
    },
    "MountainCarContinuous-v0": {
        "*": {"normalize_obs": True},
    },
}


@dataclass
class TrainResult:
    """What :func:`train` returns.

    ``policy`` and ``value_fn`` take *normalised* observations when ``obs_rms`` is set;
    :meth:`act` applies the normalisation for you. ``history`` is one dict per iteration
    (see :func:`train`), ``config`` the full resolved configuration.
    """

    policy: nn.Module
    value_fn: ValueNetwork
    history: list[dict[str, Any]]
    config: dict[str, Any]
    obs_rms: RunningMeanStd | None = field(default=None)

    @torch.no_grad()
    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """Actions for a batch of raw observations [B, obs_dim]: the mode (arg-max or
        mean) when ``deterministic``, else a sample."""
        obs = np.asarray(obs, dtype=np.float64).reshape(-1, self.config["obs_dim"])
        x = self.obs_rms.normalize(obs) if self.obs_rms is not None else obs.astype(np.float32)
        dist = self.policy.distribution(torch.from_numpy(x))
        return (dist.mode if deterministic else dist.sample()).numpy()


def resolve_hparams(env_id: str, algo: str, **hparams: Any) -> dict[str, Any]:
    """The hyperparameters a run of ``algo`` on ``env_id`` uses: base defaults, then the
    task's overrides, then ``hparams``. Raises ``ValueError`` for an unknown algo or key."""
    if algo not in ALGOS:
        raise ValueError(f"unknown algo {algo!r}; choose one of {sorted(ALGOS)}")
    family = "ppo" if ALGOS[algo] is not None else algo
    allowed = set(_ROLLOUT_KEYS) | set(_ALGO_KEYS[family])
    unknown = sorted(set(hparams) - allowed)
    if unknown:
        raise ValueError(
            f"unknown hyperparameter(s) {unknown} for algo {algo!r}; valid keys: {sorted(allowed)}"
        )
    out: dict[str, Any] = {}
    for layer in (DEFAULTS["*"], DEFAULTS.get(env_id, {})):
        for part in ("*", family):
            out.update(layer.get(part, {}))
    out.update(hparams)
    return {k: v for k, v in out.items() if k in allowed}


def _validate(env_id: str, total_steps: int, seed: int, hp: dict[str, Any]) -> None:
    """``ValueError`` for a bad step budget, seed, integer or discount setting, or env id."""
    if (
        isinstance(total_steps, bool)
        or not isinstance(total_steps, (int, np.integer))
        or total_steps <= 0
    ):
        raise ValueError(f"total_steps must be a positive integer, got {total_steps!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    for key in (
        "num_envs",
        "n_steps",
        "epochs",
        "minibatch_size",
        "vf_epochs",
        "vf_minibatch_size",
        "cg_iters",
        "backtrack_iters",
    ):
        if key in hp and (not isinstance(hp[key], (int, np.integer)) or hp[key] <= 0):
            raise ValueError(f"{key} must be a positive integer, got {hp[key]!r}")
    if not (0.0 <= hp["gamma"] <= 1.0 and 0.0 <= hp["lam"] <= 1.0):
        raise ValueError(f"gamma and lam must lie in [0, 1], got {hp['gamma']}, {hp['lam']}")
    try:
        gym.spec(env_id)
    except gym.error.Error as e:
        raise ValueError(f"unknown env id {env_id!r}: {e}") from None


def _check_spaces(env: gym.vector.VectorEnv, env_id: str) -> dict[str, Any]:
    """The policy's shape from the spaces; ``ValueError`` for spaces pgcore cannot handle."""
    obs_space, act_space = env.single_observation_space, env.single_action_space
    if not (isinstance(obs_space, gym.spaces.Box) and len(obs_space.shape) == 1):
        raise ValueError(
            f"{env_id}: observation space {obs_space} is not supported (pgcore needs a flat Box)"
        )
    if isinstance(act_space, gym.spaces.Discrete):
        return {
            "obs_dim": int(obs_space.shape[0]),
            "action": "discrete",
            "n_actions": int(act_space.n),
        }
    if isinstance(act_space, gym.spaces.Box) and len(act_space.shape) == 1:
        return {
            "obs_dim": int(obs_space.shape[0]),
            "action": "continuous",
            "act_dim": int(act_space.shape[0]),
        }
    raise ValueError(
        f"{env_id}: action space {act_space} is not supported "
        "(pgcore handles Discrete and flat Box action spaces)"
    )


def _build_models(config: dict[str, Any]) -> tuple[nn.Module, ValueNetwork]:
    hidden = tuple(config["hidden"])
    if config["action"] == "discrete":
        policy: nn.Module = CategoricalMLPPolicy(config["obs_dim"], config["n_actions"], hidden)
    else:
        policy = GaussianMLPPolicy(
            config["obs_dim"], config["act_dim"], hidden, log_std_init=config["log_std_init"]
        )
    return policy, ValueNetwork(config["obs_dim"], hidden)


def _normalized(batch: Batch) -> Batch:
    """The batch with advantages standardised: Â ← (Â − E_w[Â]) / (Std_w[Â] + 1e-8)."""
    mean = batch.mean(batch.advantages)
    std = batch.mean((batch.advantages - mean) ** 2).sqrt()
    return Batch(
        batch.obs,
        batch.actions,
        (batch.advantages - mean) / (std + 1e-8),
        batch.logp_old,
        batch.weights,
        batch.returns,
        batch.values,
    )


def _fit_value(
    value_fn: ValueNetwork,
    opt: torch.optim.Optimizer,
    batch: Batch,
    epochs: int,
    minibatch_size: int,
    gen: torch.Generator,
) -> float:
    """Minibatch Adam on L(φ) = E[(V_φ(s) − R̂)²]; returns the last epoch's mean loss."""
    n = len(batch)
    for _ in range(epochs):
        perm = torch.randperm(n, generator=gen)
        total = 0.0
        for start in range(0, n, minibatch_size):
            idx = perm[start : start + minibatch_size]
            loss = ((value_fn(batch.obs[idx]) - batch.returns[idx]) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
    return total / n


def _explained_variance(values: torch.Tensor, returns: torch.Tensor) -> float:
    """1 − Var[R̂ − V] / Var[R̂] (nan when the returns do not vary)."""
    var = float(returns.var(unbiased=False))
    return float("nan") if var == 0.0 else 1.0 - float((returns - values).var(unbiased=False)) / var


def _last_mean(returns: list[float], window: int = 20) -> float:
    return float(np.mean(returns[-window:])) if returns else float("nan")


def train(
    env_id: str,
    algo: str,
    *,
    total_steps: int,
    seed: int = 0,
    progress: bool = True,
    callback: Callable[[list[dict[str, Any]]], bool] | None = None,
    **hparams: Any,
) -> TrainResult:
    """Train ``algo`` on the gymnasium task ``env_id`` for at least ``total_steps`` steps.

    The run has ⌈total_steps / (num_envs · n_steps)⌉ iterations. ``history`` gets one dict
    per iteration with ``iteration``, ``env_steps`` (cumulative), ``episode_returns`` and
    ``episode_lengths`` (the episodes that finished in the iteration),
    ``episode_end_steps`` (the cumulative step at which each of them finished), ``kl``
    (the exact mean KL(π_old‖π_new) over the batch), ``clipfrac`` (PPO), ``beta`` (the KL
    penalty, PPO-KL variants), ``entropy``, ``value_loss``, ``explained_variance`` (of the
    old values for the GAE returns), ``surrogate_gain``, ``lr`` and ``epochs_run`` (PPO),
    and ``wall_time`` (seconds since the start of the call). Entries that do not apply to
    ``algo`` are None.

    All inputs are checked before any work: an unknown ``algo``, env id or hyperparameter,
    a non-positive ``total_steps`` or an unsupported observation/action space raise
    ``ValueError``. ``progress=False`` hides the tqdm bar. ``callback(history)``, if given,
    runs after every iteration; training stops early when it returns True. The run seeds
    torch's global generator with ``seed`` (actions are sampled from it) and the
    environments with ``reset(seed=seed)``. See the module docstring for the
    hyperparameters and ``DEFAULTS``.
    """
    hp = resolve_hparams(env_id, algo, **hparams)
    _validate(env_id, total_steps, seed, hp)
    env = make_vector_env(env_id, hp["num_envs"])
    try:
        shapes = _check_spaces(env, env_id)
    except ValueError:
        env.close()
        raise
    config = {
        "env_id": env_id,
        "algo": algo,
        "total_steps": int(total_steps),
        "seed": int(seed),
        **shapes,
        **hp,
        "hidden": list(hp["hidden"]),
    }
    threads, validate = torch.get_num_threads(), torch.distributions.Distribution._validate_args
    torch.set_num_threads(1)
    torch.distributions.Distribution.set_default_validate_args(False)
    try:
        return _run(env, config, progress, callback)
    finally:
        torch.set_num_threads(threads)
        torch.distributions.Distribution.set_default_validate_args(validate)
        env.close()


def _run(
    env: gym.vector.VectorEnv,
    config: dict[str, Any],
    progress: bool,
    callback: Callable[[list[dict[str, Any]]], bool] | None,
) -> TrainResult:
    start = time.perf_counter()
    algo, seed = config["algo"], config["seed"]
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    policy, value_fn = _build_models(config)
    collector = RolloutCollector(
        env, seed, normalize_obs=config["normalize_obs"], reward_scale=config["reward_scale"]
    )
    objective = ALGOS[algo]
    if objective is None:
        vf_opt = torch.optim.Adam(value_fn.parameters(), lr=config["vf_lr"], foreach=True)
    else:
        params = list(policy.parameters()) + list(value_fn.parameters())
        opt = torch.optim.Adam(params, lr=config["lr"], eps=1e-5, foreach=True)
        beta: float | AdaptiveKL = (
            AdaptiveKL(config["beta"], config["d_targ"])
            if objective == "adaptive-kl"
            else config["beta"]
        )
    per_iter = config["num_envs"] * config["n_steps"]
    n_iters = math.ceil(config["total_steps"] / per_iter)
    history: list[dict[str, Any]] = []
    all_returns: list[float] = []
    bar = tqdm(
        total=n_iters * per_iter,
        unit="step",
        disable=not progress,
        desc=f"{config['env_id']} {algo}",
        dynamic_ncols=True,
    )
    for it in range(n_iters):
        frac = 1.0 - it / n_iters
        batch, info = collector.collect(
            policy, value_fn, config["n_steps"], config["gamma"], config["lam"]
        )
        ev = _explained_variance(batch.values, batch.returns)
        row: dict[str, Any] = {"clipfrac": None, "beta": None, "lr": None, "epochs_run": None}
        if objective is None:
            pb = _normalized(batch) if config["normalize_advantages"] else batch
            if algo == "vpg":
                stats = vpg_step(policy, pb, config["lr"])
            elif algo == "npg":
                stats = natural_gradient_step(
                    policy,
                    pb,
                    config["max_kl"],
                    cg_iters=config["cg_iters"],
                    damping=config["damping"],
                )
            else:
                stats = trpo_step(
                    policy,
                    pb,
                    config["max_kl"],
                    cg_iters=config["cg_iters"],
                    damping=config["damping"],
                    backtrack_iters=config["backtrack_iters"],
                    backtrack_coeff=config["backtrack_coeff"],
                )
            value_loss = _fit_value(
                value_fn, vf_opt, batch, config["vf_epochs"], config["vf_minibatch_size"], gen
            )
        else:
            lr = config["lr"] * (frac if config["anneal_lr"] else 1.0)
            for group in opt.param_groups:
                group["lr"] = lr
            stats = ppo_update(
                policy,
                batch,
                objective=objective,
                clip=config["clip"] * (frac if config["anneal_clip"] else 1.0),
                beta=beta,
                epochs=config["epochs"],
                minibatch_size=config["minibatch_size"],
                lr=lr,
                optimizer=opt,
                value_fn=value_fn,
                vf_coef=config["vf_coef"],
                clip_vloss=config["clip_vloss"],
                ent_coef=config["ent_coef"],
                max_grad_norm=config["max_grad_norm"],
                target_kl=config["target_kl"],
                normalize_advantages=config["normalize_advantages"],
                generator=gen,
            )
            value_loss = stats["value_loss"]
            row.update(
                clipfrac=float(stats["clipfrac"]),
                lr=lr,
                epochs_run=int(stats["epochs_run"]),
                beta=None if objective in ("clip", "none") else float(stats["beta"]),
            )
        all_returns += info["episode_returns"]
        row.update(
            iteration=it,
            env_steps=info["env_steps"],
            episode_returns=info["episode_returns"],
            episode_lengths=info["episode_lengths"],
            episode_end_steps=info["episode_end_steps"],
            kl=float(stats["kl"]),
            entropy=float(stats["entropy"]),
            value_loss=float(value_loss),
            explained_variance=ev,
            surrogate_gain=float(stats["surrogate_gain"]),
            wall_time=time.perf_counter() - start,
        )
        history.append(row)
        bar.update(per_iter)
        bar.set_postfix(ret=f"{_last_mean(all_returns):.1f}", kl=f"{row['kl']:.2e}", refresh=False)
        if callback is not None and callback(history):
            break
    bar.close()
    return TrainResult(policy, value_fn, history, copy.deepcopy(config), collector.obs_rms)


def history_arrays(history: list[dict[str, Any]], window: int = 20) -> dict[str, np.ndarray]:
    """Plot-ready NumPy arrays from a training history.

    Per iteration (length I): ``env_steps``, ``wall_time``, ``kl``, ``clipfrac``, ``beta``,
    ``entropy``, ``value_loss``, ``explained_variance``, ``surrogate_gain`` (None → nan),
    and ``mean_return``, the mean of the last ``window`` finished episodes up to that
    iteration (nan before the first). Per finished episode (length E):
    ``episode_steps`` (the step at which it finished), ``episode_returns`` and
    ``smoothed_returns`` (the mean of the last ``window`` episodes).
    """
    out: dict[str, np.ndarray] = {}
    for key in (
        "env_steps",
        "wall_time",
        "kl",
        "clipfrac",
        "beta",
        "entropy",
        "value_loss",
        "explained_variance",
        "surrogate_gain",
    ):
        out[key] = np.array(
            [np.nan if h.get(key) is None else h[key] for h in history], dtype=float
        )
    returns = np.array([r for h in history for r in h["episode_returns"]], dtype=float)
    out["episode_returns"] = returns
    out["episode_steps"] = np.array(
        [s for h in history for s in h["episode_end_steps"]], dtype=float
    )
    csum = np.concatenate([[0.0], np.cumsum(returns)])
    idx = np.arange(1, len(returns) + 1)
    lo = np.maximum(idx - window, 0)
    out["smoothed_returns"] = (csum[idx] - csum[lo]) / (idx - lo)
    counts = np.cumsum([len(h["episode_returns"]) for h in history])
    out["mean_return"] = np.array(
        [out["smoothed_returns"][c - 1] if c > 0 else np.nan for c in counts], dtype=float
    )
    return out


def steps_to_threshold(
    history: list[dict[str, Any]], threshold: float, window: int = 20
) -> tuple[int, float] | None:
    """The first (env step, wall seconds) at which the mean of the last ``window`` finished
    training episodes is ≥ ``threshold``, or None if it never is. The step is the one at
    which the deciding episode finished; the wall time is the end of that iteration."""
    returns: list[float] = []
    for h in history:
        for r, s in zip(h["episode_returns"], h["episode_end_steps"], strict=True):
            returns.append(r)
            if len(returns) >= window and np.mean(returns[-window:]) >= threshold:
                return int(s), float(h["wall_time"])
    return None


def save(result: TrainResult, path: str) -> None:
    """Write the policy and value state_dicts, the observation normaliser, the config and
    the history to ``path`` (readable by ``torch.load(path, weights_only=True)``)."""
    torch.save(
        {
            "format": "pgcore.train/1",
            "config": result.config,
            "policy": result.policy.state_dict(),
            "value_fn": result.value_fn.state_dict(),
            "obs_rms": None if result.obs_rms is None else result.obs_rms.state_dict(),
            "history": result.history,
        },
        path,
    )


def load(path: str) -> TrainResult:
    """Read a run written by :func:`save` (with ``weights_only=True``: no code is unpickled)."""
    state = torch.load(path, weights_only=True)
    if not isinstance(state, dict) or state.get("format") != "pgcore.train/1":
        raise ValueError(f"{path} is not a pgcore.train save file")
    config = state["config"]
    policy, value_fn = _build_models(config)
    policy.load_state_dict(state["policy"])
    value_fn.load_state_dict(state["value_fn"])
    obs_rms = None
    if state["obs_rms"] is not None:
        obs_rms = RunningMeanStd(config["obs_dim"])
        obs_rms.load_state_dict(state["obs_rms"])
    return TrainResult(policy, value_fn, state["history"], config, obs_rms)


def _parse_set(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set expects key=value, got {item!r}")
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value
    return out


def main(argv: list[str] | None = None) -> TrainResult:
    """The command line: train, print a summary, optionally save."""
    p = argparse.ArgumentParser(prog="python -m pgcore.train", description=__doc__.split("\n")[0])
    p.add_argument("--env", required=True, help="gymnasium env id, e.g. CartPole-v1")
    p.add_argument("--algo", required=True, choices=sorted(ALGOS))
    p.add_argument("--steps", type=int, required=True, help="environment step budget")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save", default=None, help="write the trained run to this path")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="override a hyperparameter, e.g. --set lr=1e-3 epochs=4",
    )
    args = p.parse_args(argv)
    try:
        result = train(
            args.env,
            args.algo,
            total_steps=args.steps,
            seed=args.seed,
            progress=not args.no_progress,
            **_parse_set(args.set),
        )
    except ValueError as e:
        p.error(str(e))
    h = result.history
    arrays = history_arrays(h)
    last = arrays["mean_return"][-1]
    print(
        f"{args.env} {args.algo} seed={args.seed}: {h[-1]['env_steps']} steps, "
        f"{len(h)} iterations, {len(arrays['episode_returns'])} episodes, "
        f"{h[-1]['wall_time']:.1f} s"
    )
    print(
        f"  mean return of the last 20 episodes: {last:.1f} "
        f"(best {np.nanmax(arrays['mean_return']):.1f}); final KL {h[-1]['kl']:.4g}, "
        f"entropy {h[-1]['entropy']:.3f}"
    )
    if args.save:
        save(result, args.save)
        print(f"  saved to {args.save}")
    return result


if __name__ == "__main__":
    main()
