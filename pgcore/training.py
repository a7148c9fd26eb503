"""Train VPG, NPG, TRPO and the PPO family on gymnasium tasks with pgcore's update rules.

``train(env, algo, *, total_steps, seed=0, **hparams)`` alternates two phases:

1. collect ``num_envs × n_steps`` environment steps with :class:`~pgcore.rollouts.RolloutCollector`
   into a :class:`~pgcore.batch.Batch` (weights 1/N, GAE advantages with truncation
   handled, the old log-probabilities and values);
2. update the policy with the *same* function the exact world uses
   (:func:`~pgcore.updates.vpg_step`, :func:`~pgcore.updates.natural_gradient_step`,
   :func:`~pgcore.updates.trpo_step` or :func:`~pgcore.updates.ppo_update`), and fit the
   value function with Adam: for VPG/NPG/TRPO a few epochs of minibatch regression
   min_φ E[(V_φ(s) − V^targ)²] on the GAE targets V^targ = Â + V_old; for PPO the joint loss
   −L^surr + c_V·L^V − c_H·H inside ``ppo_update``.

Algorithms (``ALGOS``):

==================  ==============================================================
``"vpg"``           θ ← θ + η ĝ (vanilla policy gradient on the surrogate)
``"npg"``           θ ← θ + sqrt(2δ / ĝᵀF⁻¹ĝ) F⁻¹ĝ (natural gradient, CG for F⁻¹ĝ)
``"trpo"``          the natural step plus a backtracking line search on D̄_KL ≤ δ and gain > 0
``"ppo-clip"``      K epochs of Adam on L^CLIP = E[min(rÂ, clip(r, 1−ε, 1+ε)Â)]
``"ppo-kl"``        K epochs on E[rÂ] − β D̄_KL, β adapted (÷2 if d < d_targ/1.5, ×2 if d > 1.5 d_targ)
``"ppo-fixed-kl"``  the same with a fixed β
``"ppo-noclip"``    K epochs on E[rÂ] with neither clipping nor penalty (PPO Table 1, row 1)
==================  ==============================================================

Configuration: the hyperparameters are the fields of the frozen dataclasses of
:mod:`pgcore.config` (:class:`~pgcore.config.VPGConfig`, :class:`~pgcore.config.NPGConfig`,
:class:`~pgcore.config.TRPOConfig`, :class:`~pgcore.config.PPOConfig`), each with its doc and
its check; ``DEFAULTS`` holds the base values and the per-task presets (CartPole-v1,
Acrobot-v1, Pendulum-v1, MountainCarContinuous-v0). Pass them as keywords
(``train(..., lr=1e-3)``) or as a whole object (``train(..., config=PPOConfig(...))``, then
keywords override its fields); :func:`resolve_hparams` shows the values a run will use.

These reach the benchmark thresholds of ``benchmarks/compare_sb3.py`` (mean of the last 20
training-episode returns ≥ 475 on CartPole-v1, −100 on Acrobot-v1, −200 on Pendulum-v1)
within 100k steps; see ``benchmarks/README.md`` for the measured steps and seconds.

No global state. Every random draw comes from generators the run owns, seeded from ``seed``:
model initialisation, action sampling and minibatch order (torch's global generator is
neither seeded nor used), and the environments are reset with ``reset(seed=seed)``. A run
sets torch to one thread in its own thread (fastest for these small networks) and switches
off the argument validation of ``torch.distributions`` (a quarter of the rollout time) while
any run is active; both settings are restored exactly when the last run returns. For a given
seed, two runs on the CPU give bitwise-identical histories apart from ``wall_time``, alone or
in parallel threads of one process.

Safe runs. After every update the run checks that the losses, the KL and every parameter
are finite; if not, it restores the models to their state before that update and raises
:class:`TrainingDivergedError`, naming the iteration and the likely cause. Ctrl-C
(KeyboardInterrupt) ends a run cleanly: the models are restored to the last completed
iteration and ``train`` returns the result so far with ``interrupted=True``. :func:`save`
writes a temporary file in the target directory and renames it over the target.

Command line: ``python -m pgcore --help`` (see :func:`main`).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import math
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from pgcore._checks import check_int
from pgcore.batch import Batch, normalize_advantages
from pgcore.config import (
    ALGOS,
    DEFAULTS,
    PPOConfig,
    RolloutConfig,
    TRPOConfig,
    config_class,
    family,
    make_config,
)
from pgcore.loggers import open_loggers
from pgcore.policies import CategoricalMLPPolicy, GaussianMLPPolicy, ValueNetwork
from pgcore.rollouts import (
    RolloutCollector,
    RunningMeanStd,
    make_vector_env,
    resolve_env_id,
    sample_action,
)
from pgcore.updates import (
    AdaptiveKL,
    clone_state,
    natural_gradient_step,
    ppo_update,
    trpo_step,
    vpg_step,
)

__all__ = [
    "ALGOS",
    "DEFAULTS",
    "TrainResult",
    "TrainState",
    "TrainingDivergedError",
    "train",
    "evaluate",
    "resolve_hparams",
    "history_arrays",
    "steps_to_threshold",
    "save",
    "load",
    "main",
]

#: the largest seed (exclusive): seeds are non-negative 63-bit integers
SEED_LIMIT = 2**63
#: history keys every row has (None where they do not apply to the algorithm)
BASE_KEYS = (
    "iteration",
    "env_steps",
    "episode_returns",
    "episode_lengths",
    "episode_end_steps",
    "kl",
    "clipfrac",
    "beta",
    "entropy",
    "value_loss",
    "explained_variance",
    "surrogate_gain",
    "lr",
    "epochs_run",
    "wall_time",
)


class TrainingDivergedError(FloatingPointError):
    """A loss, the KL or a parameter became non-finite: the run was stopped."""


@dataclass
class TrainResult:
    """What :func:`train` returns.

    ``policy`` and ``value_fn`` take *normalised* observations when ``obs_rms`` is set;
    :meth:`act` applies the normalisation for you. ``history`` is one dict per iteration
    (see :func:`train`), ``config`` the full resolved configuration (a plain dict: the
    hyperparameters, the task and the spaces), ``optimizer_state`` what :func:`train`
    needs to resume (``init=result``): the optimisers' state dicts and the adaptive β.
    ``return_rms`` holds the statistics of the discounted return with ``scale_rewards``
    (None otherwise). ``interrupted`` is True when the run was stopped by Ctrl-C.
    """

    policy: nn.Module
    value_fn: nn.Module
    history: list[dict[str, Any]]
    config: dict[str, Any]
    obs_rms: RunningMeanStd | None = field(default=None)
    optimizer_state: dict[str, Any] | None = field(default=None)
    interrupted: bool = False
    return_rms: RunningMeanStd | None = field(default=None)

    @torch.no_grad()
    def act(
        self,
        obs: np.ndarray,
        deterministic: bool = True,
        generator: torch.Generator | None = None,
    ) -> np.ndarray:
        """Actions for raw observations: one observation [obs_dim] gives one action, a batch
        [B, obs_dim] gives B actions. The mode (arg-max or mean) when ``deterministic``,
        else a sample drawn from ``generator``. Continuous actions are clipped to the action
        space's bounds, as in training (unless the run set ``clip_actions=False``). ``ValueError`` for an observation of the wrong size."""
        dim = self.config["obs_dim"]
        x = np.asarray(obs, dtype=np.float64)
        single = x.ndim == 1
        if x.ndim not in (1, 2) or x.shape[-1] != dim:
            raise ValueError(
                f"obs must have shape [{dim}] or [B, {dim}] for this policy, got {x.shape}"
            )
        x = x[None] if single else x
        z = self.obs_rms.normalize(x) if self.obs_rms is not None else x.astype(np.float32)
        dist = self.policy.distribution(torch.from_numpy(z))
        a = (dist.mode if deterministic else sample_action(dist, generator)).numpy()
        if self.config["action"] == "continuous" and self.config.get("clip_actions", True):
            a = np.clip(a, self.config["action_low"], self.config["action_high"])
        return a[0] if single else a


@dataclass
class TrainState:
    """What a ``callback(row, state)`` sees after each iteration: the models (being trained,
    so read them, do not replace them), the optimisers by name (``"policy"`` for PPO's joint
    Adam, ``"value"`` for the value fit of VPG/NPG/TRPO), the iteration, the cumulative
    environment steps, the history so far, the configuration and the observation normaliser."""

    policy: nn.Module
    value_fn: nn.Module
    optimizers: dict[str, torch.optim.Optimizer]
    iteration: int
    env_steps: int
    history: list[dict[str, Any]]
    config: dict[str, Any]
    obs_rms: RunningMeanStd | None


def resolve_hparams(
    env_id: str | None, algo: str, *, config: RolloutConfig | None = None, **hparams: Any
) -> dict[str, Any]:
    """The hyperparameters a run of ``algo`` on ``env_id`` uses, as a dict: the task's preset
    (or ``config``), then ``hparams``. ``ValueError`` for an unknown algo or key or a bad value."""
    return make_config(env_id, algo, config, **hparams).to_dict()


# ---------------------------------------------------------------------------------------------
# checks before any work
# ---------------------------------------------------------------------------------------------


def _check_seed(seed: Any) -> int:
    ok = isinstance(seed, (int, np.integer)) and not isinstance(seed, (bool, np.bool_))
    if not ok or not 0 <= seed < SEED_LIMIT:
        raise ValueError(f"seed must be an integer with 0 <= seed < 2**63, got {seed!r}")
    return int(seed)


def _check_env_arg(env: Any, env_kwargs: Any) -> tuple[str | None, dict[str, Any]]:
    """(registered env id or None for a callable, env_kwargs as a dict)."""
    if env_kwargs is None:
        kwargs: dict[str, Any] = {}
    elif isinstance(env_kwargs, Mapping) and all(isinstance(k, str) for k in env_kwargs):
        kwargs = dict(env_kwargs)
    else:
        raise ValueError(f"env_kwargs must be a dict with string keys, got {env_kwargs!r}")
    if isinstance(env, str):
        resolve_env_id(env)
        return env, kwargs
    if isinstance(env, gym.Env) or isinstance(env, gym.vector.VectorEnv):
        raise ValueError(
            f"env must be a gymnasium env id or a callable returning a gymnasium.Env, got the "
            f"instance {env!r}: pass its id, or a function that builds a new one"
        )
    if not callable(env):
        raise ValueError(
            f"env must be a gymnasium env id or a callable returning a gymnasium.Env, got {env!r}"
        )
    return None, kwargs


def _check_module(name: str, module: Any, method: str | None) -> None:
    if module is None:
        return
    if not isinstance(module, nn.Module):
        raise ValueError(f"{name} must be a torch.nn.Module, got {module!r}")
    if method is not None and not callable(getattr(module, method, None)):
        raise ValueError(f"{name} must have a {method}(obs) method, got {type(module).__name__}")


def _check_spaces(env: gym.vector.VectorEnv, name: str) -> dict[str, Any]:
    """The policy's shape from the spaces; ``ValueError`` for spaces pgcore cannot handle."""
    obs_space, act_space = env.single_observation_space, env.single_action_space
    if not (isinstance(obs_space, gym.spaces.Box) and len(obs_space.shape) == 1):
        raise ValueError(
            f"{name}: observation space {obs_space} is not supported (pgcore needs a flat Box)"
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
            "action_low": [float(x) for x in act_space.low],
            "action_high": [float(x) for x in act_space.high],
        }
    raise ValueError(
        f"{name}: action space {act_space} is not supported "
        "(pgcore handles Discrete and flat Box action spaces)"
    )


def _check_models(policy: nn.Module, value_fn: nn.Module, shapes: dict[str, Any]) -> None:
    """A forward pass on a dummy batch: the shapes the update rules need."""
    x = torch.zeros(3, shapes["obs_dim"])
    try:
        with torch.no_grad():
            dist = policy.distribution(x)
            a = sample_action(dist, torch.Generator().manual_seed(0))
            logp = dist.log_prob(a)
            v = value_fn(x)
    except Exception as e:  # noqa: BLE001 - reported with the cause
        raise ValueError(
            f"policy/value_fn do not accept observations of shape [B, {shapes['obs_dim']}]: {e}"
        ) from e
    if tuple(logp.shape) != (3,):
        raise ValueError(
            f"policy.distribution(obs).log_prob(a) must have shape [B], got {tuple(logp.shape)}"
        )
    if tuple(v.shape) != (3,):
        raise ValueError(f"value_fn(obs) must have shape [B], got {tuple(v.shape)}")
    want = () if shapes["action"] == "discrete" else (shapes["act_dim"],)
    if tuple(a.shape[1:]) != want:
        raise ValueError(
            f"policy actions have shape {tuple(a.shape[1:])} per step, the action space needs {want}"
        )


# ---------------------------------------------------------------------------------------------
# models and the run-owned random streams
# ---------------------------------------------------------------------------------------------


def _generators(seed: int) -> dict[str, torch.Generator]:
    """Independent generators for initialisation, action sampling and minibatch order."""
    states = np.random.SeedSequence(seed).generate_state(3, dtype=np.uint64)
    names = ("init", "sample", "shuffle")
    return {n: torch.Generator().manual_seed(int(s)) for n, s in zip(names, states, strict=True)}


def _init_mlp(net: nn.Sequential, out_gain: float, gen: torch.Generator) -> None:
    """pgcore's MLP initialisation (orthogonal: √2 hidden, ``out_gain`` head; zero bias),
    drawn from ``gen``."""
    linears = [m for m in net if isinstance(m, nn.Linear)]
    for i, layer in enumerate(linears):
        gain = out_gain if i == len(linears) - 1 else math.sqrt(2)
        nn.init.orthogonal_(layer.weight, gain, generator=gen)
        nn.init.zeros_(layer.bias)


def _default_init_mlp(net: nn.Sequential, gen: torch.Generator) -> None:
    """PyTorch's default ``nn.Linear`` initialisation (weights and biases uniform in
    ±1/√fan_in, i.e. Kaiming-uniform with a = √5), drawn from ``gen``."""
    for layer in (m for m in net if isinstance(m, nn.Linear)):
        nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=gen)
        bound = 1.0 / math.sqrt(layer.in_features)
        nn.init.uniform_(layer.bias, -bound, bound, generator=gen)


def _build_models(
    config: dict[str, Any], gen: torch.Generator | None = None
) -> tuple[nn.Module, ValueNetwork]:
    """The default tanh MLPs for ``config``'s spaces. They are built on the meta device (no
    draw from torch's global generator) and initialised from ``gen`` (zeros when None: a
    model about to receive a state dict)."""
    hidden = tuple(config["hidden"])
    with torch.device("meta"):
        if config["action"] == "discrete":
            policy: nn.Module = CategoricalMLPPolicy(config["obs_dim"], config["n_actions"], hidden)
        else:
            policy = GaussianMLPPolicy(
                config["obs_dim"],
                config["act_dim"],
                hidden,
                log_std=config.get("log_std", "parameter"),
            )
        value_fn = ValueNetwork(config["obs_dim"], hidden)
    policy.to_empty(device="cpu")
    value_fn.to_empty(device="cpu")
    with torch.no_grad():
        for p in (*policy.parameters(), *value_fn.parameters()):
            p.zero_()
        if gen is not None:
            head = policy.net if config["action"] == "discrete" else policy.mean
            nets = [(head, 0.01), (value_fn.net, 1.0)]
            if getattr(policy, "log_std_kind", "parameter") == "network":
                nets.append((policy.log_std_net, 0.01))
            for net, gain in nets:
                if config.get("ortho_init", True):
                    _init_mlp(net, gain, gen)
                else:
                    _default_init_mlp(net, gen)
        if config["action"] != "discrete":
            if policy.log_std_kind == "parameter":
                policy.log_std.fill_(float(config["log_std_init"]))
            else:
                policy.log_std_net[-1].bias.fill_(float(config["log_std_init"]))
    return policy, value_fn


# ---------------------------------------------------------------------------------------------
# global torch settings, restored exactly
# ---------------------------------------------------------------------------------------------

_SETTINGS_LOCK = threading.Lock()
_ACTIVE_RUNS = 0
_SAVED_VALIDATE: bool | None = None


@contextmanager
def _torch_settings():
    """One torch thread in the calling thread (a per-thread setting: restored on exit), and
    ``Distribution`` argument validation off while any run is active (a process-wide class
    attribute: saved by the first run to start, restored by the last to finish)."""
    global _ACTIVE_RUNS, _SAVED_VALIDATE
    threads = torch.get_num_threads()
    with _SETTINGS_LOCK:
        if _ACTIVE_RUNS == 0:
            _SAVED_VALIDATE = torch.distributions.Distribution._validate_args
            torch.distributions.Distribution.set_default_validate_args(False)
        _ACTIVE_RUNS += 1
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        with _SETTINGS_LOCK:
            _ACTIVE_RUNS -= 1
            if _ACTIVE_RUNS == 0:
                torch.distributions.Distribution.set_default_validate_args(bool(_SAVED_VALIDATE))


# ---------------------------------------------------------------------------------------------
# one update per family
# ---------------------------------------------------------------------------------------------


def _fit_value(
    value_fn: nn.Module,
    opt: torch.optim.Optimizer,
    batch: Batch,
    epochs: int,
    minibatch_size: int,
    gen: torch.Generator,
) -> float:
    """Minibatch Adam on E[(V_φ(s) − V^targ)²]; returns the mean of the minibatch losses over
    every epoch (the MSE, as PPO's ``value_loss``)."""
    n = len(batch)
    losses: list[float] = []
    for _ in range(epochs):
        perm = torch.randperm(n, generator=gen)
        for start in range(0, n, minibatch_size):
            idx = perm[start : start + minibatch_size]
            loss = ((value_fn(batch.obs[idx]) - batch.returns[idx]) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
    return sum(losses) / len(losses)


class _Updater:
    """The update of one algorithm family, built once before the loop."""

    optimizers: dict[str, torch.optim.Optimizer]

    def update(self, batch: Batch, frac: float) -> dict[str, Any]:
        raise NotImplementedError

    def state(self) -> dict[str, Any]:
        return {name: opt.state_dict() for name, opt in self.optimizers.items()}

    def load(self, state: dict[str, Any]) -> None:
        for name, opt in self.optimizers.items():
            opt.load_state_dict(state[name])


class _PolicyGradientUpdater(_Updater):
    """VPG, NPG, TRPO: one policy step on the (normalised) batch, then the value fit."""

    def __init__(self, algo, cfg, policy, value_fn, gen):
        self.algo, self.cfg, self.policy, self.value_fn, self.gen = algo, cfg, policy, value_fn, gen
        self.optimizers = {
            "value": torch.optim.Adam(value_fn.parameters(), lr=cfg.vf_lr, foreach=True)
        }

    def update(self, batch: Batch, frac: float) -> dict[str, Any]:
        cfg = self.cfg
        pb = normalize_advantages(batch) if cfg.normalize_advantages else batch
        if self.algo == "vpg":
            stats = dict(vpg_step(self.policy, pb, cfg.lr), lr=cfg.lr)
        elif self.algo == "npg":
            stats = natural_gradient_step(
                self.policy, pb, cfg.max_kl, cg_iters=cfg.cg_iters, damping=cfg.damping
            )
        else:
            stats = trpo_step(
                self.policy,
                pb,
                cfg.max_kl,
                cg_iters=cfg.cg_iters,
                damping=cfg.damping,
                backtrack_iters=cfg.backtrack_iters,
                backtrack_coeff=cfg.backtrack_coeff,
            )
        stats = dict(stats)
        stats["value_loss"] = _fit_value(
            self.value_fn,
            self.optimizers["value"],
            batch,
            cfg.vf_epochs,
            cfg.vf_minibatch_size,
            self.gen,
        )
        return stats


class _PPOUpdater(_Updater):
    """The PPO family: ``ppo_update`` with the joint Adam, annealing and the β state."""

    def __init__(self, algo, cfg, policy, value_fn, gen):
        self.cfg, self.policy, self.value_fn, self.gen = cfg, policy, value_fn, gen
        self.objective = ALGOS[algo]
        params = list(policy.parameters()) + list(value_fn.parameters())
        self.optimizers = {
            "policy": torch.optim.Adam(params, lr=cfg.lr, eps=cfg.adam_eps, foreach=True)
        }
        self.beta: float | AdaptiveKL = (
            AdaptiveKL(cfg.beta, cfg.d_targ) if self.objective == "adaptive-kl" else cfg.beta
        )

    def state(self) -> dict[str, Any]:
        out = super().state()
        if isinstance(self.beta, AdaptiveKL):
            out["beta"] = float(self.beta.beta)
        return out

    def load(self, state: dict[str, Any]) -> None:
        super().load(state)
        if isinstance(self.beta, AdaptiveKL) and "beta" in state:
            self.beta.beta = float(state["beta"])

    def update(self, batch: Batch, frac: float) -> dict[str, Any]:
        cfg = self.cfg
        lr = cfg.lr * (frac if cfg.anneal_lr else 1.0)
        clip = cfg.clip * (frac if cfg.anneal_clip else 1.0)
        opt = self.optimizers["policy"]
        for group in opt.param_groups:
            group["lr"] = lr
        stats = dict(
            ppo_update(
                self.policy,
                batch,
                objective=self.objective,
                clip=clip,
                beta=self.beta,
                epochs=cfg.epochs,
                minibatch_size=cfg.minibatch_size,
                lr=lr,
                optimizer=opt,
                value_fn=self.value_fn,
                vf_coef=cfg.vf_coef,
                clip_vloss=cfg.clip_vloss,
                ent_coef=cfg.ent_coef,
                max_grad_norm=cfg.max_grad_norm,
                target_kl=cfg.target_kl,
                normalize_advantages=cfg.normalize_advantages,
                generator=self.gen,
            )
        )
        stats["lr"] = lr
        stats["clip_range"] = clip if self.objective == "clip" else None
        if self.objective in ("clip", "none"):
            stats["beta"] = None
            stats["beta_next"] = None
        return stats


def _likely_cause(algo: str, cfg: RolloutConfig) -> str:
    if isinstance(cfg, PPOConfig):
        return f"the learning rate lr={cfg.lr!r} is probably too large"
    if isinstance(cfg, TRPOConfig) or algo == "npg":
        return (
            f"the trust region max_kl={cfg.max_kl!r} is probably too large "
            f"or the damping={cfg.damping!r} too small"
        )
    return f"the step size lr={cfg.lr!r} is probably too large"


def _scalar(value: Any) -> Any:
    """A plain Python bool/int/float for a scalar entry, ``_SKIP`` for anything else."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, torch.Tensor) and value.numel() == 1 and value.ndim == 0:
        return value.item()
    return _SKIP


_SKIP = object()
#: update entries that must be finite after every update
_MUST_BE_FINITE = ("kl", "entropy", "surrogate_gain", "value_loss", "approx_kl")


def _non_finite(stats: dict[str, Any], models: tuple[nn.Module, ...]) -> list[str]:
    bad = [
        f"{k}={stats[k]!r}"
        for k in _MUST_BE_FINITE
        if isinstance(stats.get(k), float) and not math.isfinite(stats[k])
    ]
    for model, name in zip(models, ("policy", "value_fn"), strict=False):
        for pname, p in model.named_parameters():
            if not torch.isfinite(p).all():
                bad.append(f"{name}.{pname} has non-finite entries")
                break
    return bad


def _snapshot(policy, value_fn, updater) -> tuple:
    """Copies (cloned tensors) of the models' and the updater's state, for :func:`_restore`."""
    return (
        clone_state(policy.state_dict()),
        clone_state(value_fn.state_dict()),
        clone_state(updater.state()),
    )


def _restore(snap, policy, value_fn, updater) -> None:
    policy.load_state_dict(snap[0])
    value_fn.load_state_dict(snap[1])
    updater.load(snap[2])


def _explained_variance(values: torch.Tensor, returns: torch.Tensor) -> float:
    """1 − Var[V^targ − V] / Var[V^targ] (nan when the targets do not vary)."""
    var = float(returns.var(unbiased=False))
    return float("nan") if var == 0.0 else 1.0 - float((returns - values).var(unbiased=False)) / var


def _last_mean(returns: list[float], window: int = 20) -> float:
    return float(np.mean(returns[-window:])) if returns else float("nan")


# ---------------------------------------------------------------------------------------------
# train
# ---------------------------------------------------------------------------------------------


def _plain_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """env_kwargs as save-file-safe values (anything else by its repr)."""
    ok = (str, int, float, bool, type(None))
    return {k: v if isinstance(v, ok) else repr(v) for k, v in kwargs.items()}


def train(
    env_id: str | Callable[..., gym.Env],
    algo: str,
    *,
    total_steps: int,
    seed: int = 0,
    config: RolloutConfig | None = None,
    env_kwargs: Mapping[str, Any] | None = None,
    policy: nn.Module | None = None,
    value_fn: nn.Module | None = None,
    init: TrainResult | None = None,
    progress: bool = True,
    callback: Callable[[dict[str, Any], TrainState], bool | None] | None = None,
    log_dir: str | os.PathLike | None = None,
    **hparams: Any,
) -> TrainResult:
    """Train ``algo`` on ``env_id`` for at least ``total_steps`` environment steps.

    ``env_id`` (the contract's name; it may also be an environment factory) is a gymnasium id
    (``"CartPole-v1"``, or ``"module:EnvId"`` to import the module that registers it) or a
    callable returning a new ``gymnasium.Env`` (called once per parallel environment, with
    ``env_kwargs``). The hyperparameters are the task's preset (see :mod:`pgcore.config`), or
    ``config``, or ``init``'s, with ``hparams`` on top.

    ``policy`` and ``value_fn`` replace the default tanh MLPs: any ``nn.Module`` with
    ``distribution(obs) -> torch.distributions.Distribution`` (``log_prob(actions)`` of shape
    [B]; Categorical, Normal or Independent(Normal) for sampling) and ``value_fn(obs)`` of
    shape [B]. They are trained in place. ``init`` resumes from a previous result of the
    same algorithm family: copies of its models, its optimiser state, its β, its
    observation normaliser and its return statistics (``scale_rewards``); the new run's
    history and step count start at zero.

    The run has ⌈total_steps / (num_envs · n_steps)⌉ iterations. ``history`` gets one dict
    per iteration with ``iteration``, ``env_steps`` (cumulative), ``episode_returns``,
    ``episode_lengths`` and ``episode_end_steps`` (the episodes that finished in the
    iteration, and the cumulative step at which each finished), ``explained_variance`` (of
    the old values for the targets V^targ), ``wall_time`` (seconds since the call started),
    and every scalar the update returned, with one meaning per key across algorithms:
    ``kl`` (the exact mean KL(π_old‖π_new) over the batch), ``entropy``, ``surrogate_gain``,
    ``value_loss`` (the mean squared error E[(V − V^targ)²] of the value fit, averaged over
    its minibatches), ``lr`` (the step size or learning rate used; VPG and PPO), PPO's
    ``clipfrac``, ``approx_kl``, ``epochs_run``, ``early_stopped``, ``clip_range``, ``beta``
    (the β used, KL-penalty variants) and ``beta_next``, NPG/TRPO's ``cg_iters``,
    ``cg_residual``, ``grad_norm``, ``predicted_kl``, and TRPO's ``accepted``,
    ``backtracks``, ``step_fraction`` (see the update functions). Entries that do not apply
    are None.

    Every argument is checked before any environment is built: a bad value raises
    ``ValueError`` naming the argument and the value. ``progress=False`` hides the tqdm bar.
    ``callback(row, state)`` runs after every iteration with the new row and a
    :class:`TrainState`; training stops early when it returns True. ``log_dir`` receives
    ``progress.csv`` (one row per iteration, flushed) and TensorBoard event files when
    ``tensorboard`` is installed (:mod:`pgcore.loggers`). A non-finite loss, KL or parameter
    raises :class:`TrainingDivergedError`; Ctrl-C returns the result so far
    (``interrupted=True``).
    """
    fam = family(algo)
    total_steps = check_int("total_steps", total_steps, minimum=1)
    seed = _check_seed(seed)
    env = env_id
    env_id, kwargs = _check_env_arg(env, env_kwargs)
    if init is not None:
        if not isinstance(init, TrainResult):
            raise ValueError(f"init must be a TrainResult, got {init!r}")
        if family(init.config["algo"]) != fam:
            raise ValueError(
                f"init: a {init.config['algo']!r} result cannot resume as {algo!r} "
                "(the algorithm family must be the same)"
            )
        if policy is not None or value_fn is not None:
            raise ValueError("give either init or policy/value_fn, not both")
        if config is None:
            known = {f.name for f in dataclasses.fields(config_class(algo))}
            base = {k: v for k, v in init.config.items() if k in known}
            config = config_class(algo)(**{**base, "hidden": tuple(base["hidden"])})
    cfg = make_config(env_id, algo, config, **hparams)
    _check_module("policy", policy, "distribution")
    _check_module("value_fn", value_fn, None)
    if callback is not None and not callable(callback):
        raise ValueError(f"callback must be callable, got {callback!r}")
    if not isinstance(progress, bool):
        raise ValueError(f"progress must be True or False, got {progress!r}")
    if log_dir is not None and not isinstance(log_dir, (str, os.PathLike)):
        raise ValueError(f"log_dir must be a path, got {log_dir!r}")
    loggers = []
    if log_dir is not None:
        try:
            loggers = open_loggers(log_dir)
        except OSError as e:
            raise ValueError(f"log_dir={str(log_dir)!r} cannot be written: {e}") from None

    try:
        name = env_id if env_id is not None else getattr(env, "__name__", type(env).__name__)
        try:
            venv = make_vector_env(env, cfg.num_envs, kwargs)
        except TypeError as e:
            if kwargs:
                raise ValueError(f"env_kwargs={kwargs!r} rejected by {name}: {e}") from e
            raise
        try:
            shapes = _check_spaces(venv, name)
            run_config = {
                "env_id": env_id,
                "env_kwargs": _plain_kwargs(kwargs),
                "algo": algo,
                "total_steps": total_steps,
                "seed": seed,
                **shapes,
                **cfg.to_dict(),
                "hidden": list(cfg.hidden),
                "custom_policy": None if policy is None else _qualname(policy),
                "custom_value_fn": None if value_fn is None else _qualname(value_fn),
            }
            with _torch_settings():
                return _run(
                    venv, algo, cfg, run_config, policy, value_fn, init, progress, callback, loggers
                )
        finally:
            venv.close()
    finally:
        for logger in loggers:
            logger.close()


def _qualname(obj: Any) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def _run(
    env: gym.vector.VectorEnv,
    algo: str,
    cfg: RolloutConfig,
    config: dict[str, Any],
    policy: nn.Module | None,
    value_fn: nn.Module | None,
    init: TrainResult | None,
    progress: bool,
    callback,
    loggers: list,
) -> TrainResult:
    start = time.perf_counter()
    gens = _generators(config["seed"])
    obs_rms = None
    return_rms = RunningMeanStd(1) if cfg.scale_rewards else None
    if init is not None:
        if init.config["obs_dim"] != config["obs_dim"] or init.config["action"] != config["action"]:
            raise ValueError("init: its policy was trained on different observation/action spaces")
        policy, value_fn = copy.deepcopy(init.policy), copy.deepcopy(init.value_fn)
        obs_rms = copy.deepcopy(init.obs_rms)
        if return_rms is not None and init.return_rms is not None:
            return_rms = copy.deepcopy(init.return_rms)
    if policy is None or value_fn is None:
        default_policy, default_value = _build_models(config, gens["init"])
        policy = default_policy if policy is None else policy
        value_fn = default_value if value_fn is None else value_fn
    _check_models(policy, value_fn, config)
    updater: _Updater = (_PPOUpdater if family(algo) == "ppo" else _PolicyGradientUpdater)(
        algo, cfg, policy, value_fn, gens["shuffle"]
    )
    if init is not None and init.optimizer_state is not None:
        updater.load(copy.deepcopy(init.optimizer_state))
    collector = RolloutCollector(
        env,
        config["seed"],
        normalize_obs=cfg.normalize_obs,
        reward_scale=cfg.reward_scale,
        generator=gens["sample"],
        obs_rms=obs_rms,
        bootstrap_truncated=cfg.bootstrap_truncated,
        clip_actions=cfg.clip_actions,
        return_rms=return_rms,
    )
    per_iter = cfg.batch_steps
    n_iters = math.ceil(config["total_steps"] / per_iter)
    history: list[dict[str, Any]] = []
    keys: list[str] = list(BASE_KEYS)
    all_returns: list[float] = []
    interrupted = False
    bar = tqdm(
        total=n_iters * per_iter,
        unit="step",
        disable=not progress,
        desc=f"{config['env_id'] or 'env'} {algo}",
        dynamic_ncols=True,
    )
    try:
        for it in range(n_iters):
            frac = 1.0 - it / n_iters
            batch, info = collector.collect(policy, value_fn, cfg.n_steps, cfg.gamma, cfg.lam)
            ev = _explained_variance(batch.values, batch.returns)
            snap = _snapshot(policy, value_fn, updater)
            try:
                stats = updater.update(batch, frac)
            except KeyboardInterrupt:
                _restore(snap, policy, value_fn, updater)
                raise
            except (ValueError, FloatingPointError, OverflowError, RuntimeError) as e:
                _restore(snap, policy, value_fn, updater)
                raise TrainingDivergedError(
                    f"iteration {it} (after {info['env_steps']} environment steps): the {algo} "
                    f"update failed ({type(e).__name__}: {e}); {_likely_cause(algo, cfg)}. "
                    f"The models were restored to their state before iteration {it}."
                ) from e
            scalars = {k: _scalar(v) for k, v in stats.items()}
            scalars = {k: v for k, v in scalars.items() if v is not _SKIP}
            bad = _non_finite(scalars, (policy, value_fn))
            if bad:
                _restore(snap, policy, value_fn, updater)
                raise TrainingDivergedError(
                    f"iteration {it} (after {info['env_steps']} environment steps): the {algo} "
                    f"update produced non-finite values ({'; '.join(bad)}); "
                    f"{_likely_cause(algo, cfg)}. The models were restored to their state before "
                    f"iteration {it}."
                )
            all_returns += info["episode_returns"]
            row: dict[str, Any] = dict.fromkeys(keys)
            row.update(scalars)
            row.update(
                iteration=it,
                env_steps=info["env_steps"],
                episode_returns=info["episode_returns"],
                episode_lengths=info["episode_lengths"],
                episode_end_steps=info["episode_end_steps"],
                explained_variance=ev,
                wall_time=time.perf_counter() - start,
            )
            new = [k for k in row if k not in keys]
            if new:
                keys += new
                for old in history:
                    for k in new:
                        old.setdefault(k, None)
            history.append(row)
            for logger in loggers:
                logger.write(row)
            bar.update(per_iter)
            bar.set_postfix(
                ret=f"{_last_mean(all_returns):.1f}", kl=f"{row['kl']:.2e}", refresh=False
            )
            if callback is not None:
                state = TrainState(
                    policy,
                    value_fn,
                    dict(updater.optimizers),
                    it,
                    info["env_steps"],
                    history,
                    config,
                    collector.obs_rms,
                )
                if callback(row, state):
                    break
    except KeyboardInterrupt:
        interrupted = True
        steps = history[-1]["env_steps"] if history else 0
        print(
            f"pgcore: interrupted by Ctrl-C after {len(history)} iteration(s) "
            f"({steps} environment steps); returning the run so far",
            file=sys.stderr,
        )
    finally:
        bar.close()
    return TrainResult(
        policy,
        value_fn,
        history,
        copy.deepcopy(config),
        collector.obs_rms,
        optimizer_state=copy.deepcopy(updater.state()),
        interrupted=interrupted,
        return_rms=collector.return_rms,
    )


# ---------------------------------------------------------------------------------------------
# evaluation
# ---------------------------------------------------------------------------------------------


def evaluate(
    result: TrainResult,
    env: str | Callable[..., gym.Env] | None = None,
    n_episodes: int = 10,
    deterministic: bool = True,
    seed: int = 0,
    env_kwargs: Mapping[str, Any] | None = None,
) -> tuple[float, float]:
    """The mean and standard deviation of the undiscounted return of ``result``'s policy over
    ``n_episodes`` episodes on ``env`` (default: the run's own env id and env_kwargs).

    Episode i starts from ``reset(seed=seed + i)``; actions are :meth:`TrainResult.act`
    (the mode when ``deterministic``, else samples from a generator seeded with ``seed``).
    Nothing global is touched and ``result`` is not changed."""
    if not isinstance(result, TrainResult):
        raise ValueError(f"result must be a TrainResult, got {result!r}")
    n_episodes = check_int("n_episodes", n_episodes, minimum=1)
    seed = _check_seed(seed)
    if not isinstance(deterministic, bool):
        raise ValueError(f"deterministic must be True or False, got {deterministic!r}")
    if env is None:
        env = result.config.get("env_id")
        if env is None:
            raise ValueError("env: the run was trained on a callable; pass env= to evaluate")
        if env_kwargs is None:
            env_kwargs = result.config.get("env_kwargs") or None
    env_id, kwargs = _check_env_arg(env, env_kwargs)
    one = gym.make(resolve_env_id(env_id), **kwargs) if env_id is not None else env(**kwargs)
    gen = torch.Generator().manual_seed(seed)
    returns = []
    try:
        for i in range(n_episodes):
            obs, _ = one.reset(seed=seed + i)
            total, done = 0.0, False
            while not done:
                action = result.act(obs, deterministic=deterministic, generator=gen)
                if result.config["action"] == "discrete":
                    action = int(action)
                obs, r, term, trunc, _ = one.step(action)
                total += float(r)
                done = bool(term or trunc)
            returns.append(total)
    finally:
        one.close()
    return float(np.mean(returns)), float(np.std(returns))


def history_arrays(history: list[dict[str, Any]], window: int = 20) -> dict[str, np.ndarray]:
    """Plot-ready NumPy arrays from a training history.

    Per iteration (length I): every scalar entry of the rows as a float array (None → nan,
    booleans → 0/1), always including ``env_steps``, ``wall_time``, ``kl``, ``clipfrac``,
    ``beta``, ``entropy``, ``value_loss``, ``explained_variance`` and ``surrogate_gain``;
    and ``mean_return``, the mean of the last ``window`` finished episodes up to that
    iteration (nan before the first). Per finished episode (length E):
    ``episode_steps`` (the step at which it finished), ``episode_returns`` and
    ``smoothed_returns`` (the mean of the last ``window`` episodes).
    """
    out: dict[str, np.ndarray] = {}
    keys = [
        "env_steps",
        "wall_time",
        "kl",
        "clipfrac",
        "beta",
        "entropy",
        "value_loss",
        "explained_variance",
        "surrogate_gain",
    ]
    for h in history:
        keys += [k for k in h if k not in keys]
    scalar = (type(None), bool, int, float, np.bool_, np.integer, np.floating)
    for key in keys:
        if key.startswith("episode_") or not all(isinstance(h.get(key), scalar) for h in history):
            continue
        out[key] = np.array(
            [np.nan if h.get(key) is None else float(h[key]) for h in history], dtype=float
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


# ---------------------------------------------------------------------------------------------
# save and load
# ---------------------------------------------------------------------------------------------

_FORMAT = "pgcore.train/1"


def save(result: TrainResult, path: str | os.PathLike) -> None:
    """Write the models' state dicts, the observation normaliser, the optimiser state, the
    config and the history to ``path`` (readable by ``torch.load(path, weights_only=True)``).

    The file is written to a temporary file in the same directory and renamed over ``path``
    (``os.replace``), so an interrupted save leaves any previous file intact. ``ValueError``
    if a parameter is not finite (a diverged model is never saved)."""
    for model, name in ((result.policy, "policy"), (result.value_fn, "value_fn")):
        for pname, p in model.state_dict().items():
            if p.is_floating_point() and not torch.isfinite(p).all():
                raise ValueError(f"refusing to save: {name}.{pname} has non-finite entries")
    state = {
        "format": _FORMAT,
        "config": result.config,
        "policy": result.policy.state_dict(),
        "value_fn": result.value_fn.state_dict(),
        "obs_rms": None if result.obs_rms is None else result.obs_rms.state_dict(),
        "optimizer_state": result.optimizer_state,
        "return_rms": None if result.return_rms is None else result.return_rms.state_dict(),
        "interrupted": bool(result.interrupted),
        "history": result.history,
    }
    target = Path(path)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(state, tmp)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load(
    path: str | os.PathLike, policy: nn.Module | None = None, value_fn: nn.Module | None = None
) -> TrainResult:
    """Read a run written by :func:`save` (with ``weights_only=True``: no code is unpickled).

    A run trained with a custom ``policy``/``value_fn`` needs a module of the same
    architecture to load the weights into (``ValueError`` otherwise)."""
    state = torch.load(path, weights_only=True)
    if not isinstance(state, dict) or state.get("format") != _FORMAT:
        raise ValueError(f"{path} is not a pgcore.train save file")
    config = state["config"]
    for given, key in ((policy, "custom_policy"), (value_fn, "custom_value_fn")):
        if given is None and config.get(key):
            raise ValueError(
                f"{path} was trained with a custom model ({config[key]}): pass "
                f"{key.removeprefix('custom_')}= a module of that architecture"
            )
    default_policy, default_value = _build_models(config)
    policy = default_policy if policy is None else policy
    value_fn = default_value if value_fn is None else value_fn
    policy.load_state_dict(state["policy"])
    value_fn.load_state_dict(state["value_fn"])
    obs_rms = None
    if state["obs_rms"] is not None:
        obs_rms = RunningMeanStd(config["obs_dim"])
        obs_rms.load_state_dict(state["obs_rms"])
    return_rms = None
    if state.get("return_rms") is not None:
        return_rms = RunningMeanStd(1)
        return_rms.load_state_dict(state["return_rms"])
    return TrainResult(
        policy,
        value_fn,
        state["history"],
        config,
        obs_rms,
        optimizer_state=state.get("optimizer_state"),
        interrupted=bool(state.get("interrupted", False)),
        return_rms=return_rms,
    )


# ---------------------------------------------------------------------------------------------
# the command line
# ---------------------------------------------------------------------------------------------

_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


def parse_value(key: str, text: str, type_name: str) -> Any:
    """``text`` as a value of the field type ``type_name`` (as written in :mod:`pgcore.config`:
    "int", "float", "bool", "float | None", "tuple[int, ...]"). ``ValueError`` naming the key
    and the text otherwise."""
    t = text.strip()
    low = t.lower()
    optional_ = type_name.endswith("| None")
    base = type_name.removesuffix("| None").strip()
    if optional_ and low in ("none", "null", "off"):
        return None
    try:
        if base == "bool":
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
            raise ValueError
        if base == "str":
            return t
        if base == "int":
            return int(t)
        if base == "float":
            return float(t)
        if base.startswith("tuple"):
            inner = t.strip("()[] ")
            return tuple(int(x) for x in inner.split(",") if x.strip()) if inner else ()
    except ValueError:
        pass
    expect = {
        "bool": "true/false (also 1/0, yes/no, on/off)",
        "int": "an integer",
        "float": "a number (nan and inf are numbers too)",
    }.get(base, "comma-separated integers such as 64,64" if base.startswith("tuple") else base)
    if optional_:
        expect += ", or none"
    raise ValueError(f"--set {key}={text!r}: {key} expects {expect}")


def _parse_set(groups: list[list[str]], algo: str) -> dict[str, Any]:
    types = {f.name: str(f.type) for f in dataclasses.fields(config_class(algo))}
    out: dict[str, Any] = {}
    for item in (x for g in groups for x in g):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep:
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
        if key not in types:
            raise ValueError(
                f"--set {item!r}: unknown hyperparameter {key!r} for algo {algo!r}; "
                f"valid keys: {sorted(types)}"
            )
        if key in out:
            raise ValueError(f"--set {key} is given twice; give each hyperparameter once")
        out[key] = parse_value(key, value, types[key])
    return out


def _parse_env_kwargs(items: list[str]) -> dict[str, Any]:
    import ast

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--env-kwarg expects KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key.strip()] = value
    return out


def _hparam_help(algo: str | None, env_id: str | None) -> str:
    if algo not in ALGOS:
        return (
            "hyperparameters: set with --set KEY=VALUE (repeatable); "
            "`python -m pgcore --algo ALGO --help` lists those of ALGO with their defaults"
        )
    try:
        defaults = make_config(env_id, algo).to_dict()
    except ValueError:
        defaults, env_id = make_config(None, algo).to_dict(), None
    lines = [
        f"hyperparameters of {algo} (--set KEY=VALUE; defaults for "
        f"{env_id or 'any task without a preset'}; booleans true/false, none for off, "
        "tuples as 64,64):"
    ]
    for f in dataclasses.fields(config_class(algo)):
        value = defaults[f.name]
        shown = ",".join(map(str, value)) if isinstance(value, tuple) else value
        lines.append(f"  {f.name} ({f.type}, default {shown})")
        lines.append(f"      {f.metadata['doc']}")
    return "\n".join(lines)


def _check_save_path(path: str) -> None:
    target = Path(path)
    parent = target.parent if str(target.parent) else Path(".")
    if target.is_dir():
        raise ValueError(f"--save {path!r} is a directory, not a file path")
    if not parent.is_dir():
        raise ValueError(f"--save {path!r}: the directory {str(parent)!r} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"--save {path!r}: the directory {str(parent)!r} is not writable")


def _build_parser(algo: str | None, env_id: str | None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m pgcore",
        description="Train, resume, evaluate and save a pgcore policy on a gymnasium task.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_hparam_help(algo, env_id),
    )
    p.add_argument("--env", help="gymnasium env id (e.g. CartPole-v1, or module:EnvId)")
    p.add_argument("--algo", choices=sorted(ALGOS), help="the algorithm")
    p.add_argument(
        "--steps", type=int, help="environment step budget (omit with --load to only evaluate)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the run and of --eval (default 0)")
    p.add_argument(
        "--save", default=None, help="write the run to this file (checked before training)"
    )
    p.add_argument("--load", default=None, help="a saved run: resume it with --steps, or --eval it")
    p.add_argument(
        "--eval",
        type=int,
        default=None,
        metavar="N",
        help="evaluate the final policy for N deterministic episodes",
    )
    p.add_argument(
        "--log-dir", default=None, help="write progress.csv (and TensorBoard files) here"
    )
    p.add_argument(
        "--set",
        action="append",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="set a hyperparameter; repeatable, values accumulate, a key given twice is an error",
    )
    p.add_argument(
        "--env-kwarg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="keyword argument for gymnasium.make (repeatable)",
    )
    bar = p.add_mutually_exclusive_group()
    bar.add_argument(
        "--progress",
        dest="progress",
        action="store_true",
        default=None,
        help="show the progress bar (default: only when stderr is a terminal)",
    )
    bar.add_argument("--no-progress", dest="progress", action="store_false", help="hide it")
    return p


def main(argv: list[str] | None = None) -> TrainResult:
    """``python -m pgcore``: train (or resume with ``--load``), print a summary, optionally
    evaluate (``--eval N``) and save (``--save``). Exit codes: 0 done, 1 the run diverged
    (nothing saved), 2 bad arguments (nothing run), 130 interrupted by Ctrl-C (the run so far
    saved when ``--save`` was given)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--algo")
    pre.add_argument("--env")
    known, _ = pre.parse_known_args(argv)
    p = _build_parser(known.algo, known.env)
    args = p.parse_args(argv)
    try:
        return _main(p, args)
    except KeyboardInterrupt:
        print("pgcore: interrupted by Ctrl-C", file=sys.stderr)
        raise SystemExit(130) from None


def _main(p: argparse.ArgumentParser, args: argparse.Namespace) -> TrainResult:
    try:
        if args.save:
            _check_save_path(args.save)
        loaded = load(args.load) if args.load else None
        algo = args.algo or (loaded.config["algo"] if loaded else None)
        env = args.env or (loaded.config.get("env_id") if loaded else None)
        if algo is None or env is None:
            raise ValueError("--env and --algo are required (unless --load gives them)")
        if args.steps is None and loaded is None:
            raise ValueError("--steps is required (unless --load gives a run to evaluate)")
        if args.eval is not None and args.eval < 1:
            raise ValueError(f"--eval must be a positive number of episodes, got {args.eval}")
        hparams = _parse_set(args.set, algo)
        env_kwargs = _parse_env_kwargs(args.env_kwarg)
        progress = sys.stderr.isatty() if args.progress is None else args.progress
        if args.steps is not None:
            result = train(
                env,
                algo,
                total_steps=args.steps,
                seed=args.seed,
                progress=progress,
                init=loaded,
                env_kwargs=env_kwargs or None,
                log_dir=args.log_dir,
                **hparams,
            )
        else:
            if hparams:
                raise ValueError("--set needs --steps (it configures training)")
            result = loaded
    except ValueError as e:
        p.error(str(e))
    except TrainingDivergedError as e:
        print(f"pgcore: error: {e}\npgcore: nothing was saved", file=sys.stderr)
        raise SystemExit(1) from None
    h = result.history
    if args.steps is not None and h:
        arrays = history_arrays(h)
        last = arrays["mean_return"][-1]
        print(
            f"{env} {algo} seed={args.seed}: {h[-1]['env_steps']} steps, "
            f"{len(h)} iterations, {len(arrays['episode_returns'])} episodes, "
            f"{h[-1]['wall_time']:.1f} s"
        )
        print(
            f"  mean return of the last 20 episodes: {last:.1f} "
            f"(best {np.nanmax(arrays['mean_return']):.1f}); final KL {h[-1]['kl']:.4g}, "
            f"entropy {h[-1]['entropy']:.3f}"
        )
    if args.eval is not None and not result.interrupted:
        try:
            mean, std = evaluate(
                result, env, n_episodes=args.eval, seed=args.seed, env_kwargs=env_kwargs or None
            )
        except ValueError as e:
            p.error(str(e))
        print(f"  evaluation over {args.eval} deterministic episodes: {mean:.1f} ± {std:.1f}")
    if args.save:
        save(result, args.save)
        print(f"  saved to {args.save}" + (" (interrupted run)" if result.interrupted else ""))
    if result.interrupted:
        raise SystemExit(130)
    return result
