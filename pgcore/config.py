"""Typed, validated training configuration: one frozen dataclass per algorithm family.

* :class:`RolloutConfig`: what every algorithm shares (rollouts, GAE, networks, advantage
  normalisation);
* :class:`VPGConfig`, :class:`NPGConfig`, :class:`TRPOConfig` (NPG plus the line search) and
  :class:`PPOConfig` (every ``ppo-*`` algorithm) add their own fields.

Every field carries its documentation in ``field.metadata["doc"]`` (``python -m pgcore --algo
trpo --help`` prints them) and its check in ``field.metadata["check"]``. ``__post_init__``
checks every value (type, range, finiteness; ``True`` is not an integer) and raises a
``ValueError`` that names the field and the value, so a bad configuration fails before any
environment is built. Instances are immutable; derive variants with
``dataclasses.replace(cfg, lr=1e-3)``, which checks again.

Presets: :data:`DEFAULTS` holds the base values and the per-task overrides (read-only);
:func:`preset` turns them into a config instance for an (environment, algorithm) pair, and
:func:`make_config` applies keyword overrides on top, rejecting unknown names.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any

import numpy as np

from pgcore._checks import (
    check_bool,
    check_finite,
    check_fraction,
    check_in_unit_interval,
    check_int,
    check_non_negative,
    check_positive,
)

__all__ = [
    "ALGOS",
    "DEFAULTS",
    "MUJOCO_TASKS",
    "RolloutConfig",
    "VPGConfig",
    "NPGConfig",
    "TRPOConfig",
    "PPOConfig",
    "CONFIG_CLASSES",
    "family",
    "config_class",
    "preset",
    "make_config",
    "field_docs",
]

#: algo name → the PPO objective it uses (None for the non-PPO algorithms)
ALGOS: Mapping[str, str | None] = MappingProxyType(
    {
        "vpg": None,
        "npg": None,
        "trpo": None,
        "ppo-clip": "clip",
        "ppo-kl": "adaptive-kl",
        "ppo-fixed-kl": "fixed-kl",
        "ppo-noclip": "none",
    }
)


# ---------------------------------------------------------------------------------------------
# checks: each takes (name, value) and returns the normalised value or raises ValueError
# ---------------------------------------------------------------------------------------------


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def check_positive_int(name: str, value: Any) -> int:
    """A positive integer (``True`` is refused)."""
    return check_int(name, value, minimum=1)


def check_hidden(name: str, value: Any) -> tuple[int, ...]:
    """A tuple (or list) of positive integers: the widths of the hidden layers."""
    if not isinstance(value, (tuple, list)) or not all(_is_int(h) and h > 0 for h in value):
        raise ValueError(
            f"{name} must be a tuple of positive integers such as (64, 64), got {value!r}"
        )
    return tuple(int(h) for h in value)


def check_log_std(name: str, value: Any) -> str:
    """'parameter' or 'network'."""
    if value not in ("parameter", "network"):
        raise ValueError(f"{name} must be 'parameter' or 'network', got {value!r}")
    return value


def optional(check: Callable[[str, Any], Any]) -> Callable[[str, Any], Any]:
    """``check`` that also accepts None (the option is off)."""

    def _check(name: str, value: Any) -> Any:
        return None if value is None else check(name, value)

    _check.__doc__ = f"None, or {(check.__doc__ or '').strip()}"
    _check.optional_of = check  # type: ignore[attr-defined]
    return _check


def _f(default: Any, doc: str, check: Callable[[str, Any], Any]) -> Any:
    return field(default=default, metadata={"doc": doc, "check": check})


# ---------------------------------------------------------------------------------------------
# the dataclasses
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class RolloutConfig:
    """The fields every algorithm shares: rollouts, GAE, networks, advantage normalisation."""

    num_envs: int = _f(
        8, "parallel environments (a gymnasium vector environment)", check_positive_int
    )
    n_steps: int = _f(
        128, "vector steps per iteration; a batch holds num_envs·n_steps steps", check_positive_int
    )
    gamma: float = _f(0.99, "discount γ", check_in_unit_interval)
    lam: float = _f(0.95, "GAE λ", check_in_unit_interval)
    normalize_obs: bool = _f(False, "normalise observations by a running mean and std", check_bool)
    reward_scale: float = _f(
        1.0,
        "constant factor on the rewards used for learning (reported returns are unscaled)",
        check_positive,
    )
    scale_rewards: bool = _f(
        False,
        "divide the rewards used for learning by the running standard deviation of the "
        "discounted return Σγᵏr (Engstrom et al. 2020's reward scaling; no mean subtracted, no "
        "clipping; reported returns are unscaled)",
        check_bool,
    )
    hidden: tuple[int, ...] = _f(
        (64, 64), "hidden-layer widths of the tanh MLPs (policy and value)", check_hidden
    )
    log_std_init: float = _f(
        0.0, "initial log σ of Gaussian policies (continuous actions)", check_finite
    )
    log_std: str = _f(
        "parameter",
        "log σ of Gaussian policies: 'parameter' (one state-independent vector) or 'network' "
        "(the output of a second MLP, so σ depends on the state)",
        check_log_std,
    )
    normalize_advantages: bool = _f(
        True,
        "standardise advantages, Â ← (Â − mean)/std (per minibatch in PPO, per batch otherwise)",
        check_bool,
    )
    bootstrap_truncated: bool = _f(
        True,
        "bootstrap a truncated step (time limit) from V(final observation); False treats "
        "truncation as termination, the common bug, kept for the time-limit ablation",
        check_bool,
    )
    ortho_init: bool = _f(
        True,
        "orthogonal initialisation of the default MLPs (gain √2 on hidden layers, 0.01 on the "
        "policy head, 1 on the value head, zero biases); False: PyTorch's default nn.Linear "
        "initialisation (uniform, bound 1/√fan_in)",
        check_bool,
    )
    clip_actions: bool = _f(
        True,
        "clip continuous actions to the action space's bounds before the environment sees them "
        "(the log-probabilities stay those of the unclipped sample); False passes the sample "
        "as drawn",
        check_bool,
    )

    def __post_init__(self) -> None:
        for f in fields(self):
            value = f.metadata["check"](f.name, getattr(self, f.name))
            object.__setattr__(self, f.name, value)
        self._check_together()

    @property
    def batch_steps(self) -> int:
        """num_envs · n_steps: the environment steps of one iteration."""
        return self.num_envs * self.n_steps

    def _check_minibatch(self, name: str) -> None:
        value = getattr(self, name)
        if value is not None and value > self.batch_steps:
            raise ValueError(
                f"{name}={value!r} is larger than the batch, num_envs·n_steps = "
                f"{self.num_envs}·{self.n_steps} = {self.batch_steps}"
            )

    def _check_together(self) -> None:
        """Checks that involve several fields (subclasses extend this)."""

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (``hidden`` stays a tuple)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True, kw_only=True)
class _ValueFitConfig(RolloutConfig):
    """The separate value fit of VPG, NPG and TRPO."""

    vf_lr: float = _f(1e-3, "Adam learning rate of the value fit", check_positive)
    vf_epochs: int = _f(5, "epochs of the value fit per iteration", check_positive_int)
    vf_minibatch_size: int = _f(
        256, "minibatch size of the value fit (at most num_envs·n_steps)", check_positive_int
    )

    def _check_together(self) -> None:
        super()._check_together()
        self._check_minibatch("vf_minibatch_size")


@dataclass(frozen=True, kw_only=True)
class VPGConfig(_ValueFitConfig):
    """Vanilla policy gradient: θ ← θ + η ĝ."""

    lr: float = _f(0.5, "step size η of the policy-gradient step", check_positive)


@dataclass(frozen=True, kw_only=True)
class NPGConfig(_ValueFitConfig):
    """Natural policy gradient: θ ← θ + sqrt(2δ / ĝᵀF⁻¹ĝ) F⁻¹ĝ, F⁻¹ĝ by conjugate gradient."""

    max_kl: float = _f(0.01, "trust-region radius δ (mean KL of the step)", check_positive)
    cg_iters: int = _f(10, "conjugate-gradient iterations k", check_positive_int)
    damping: float = _f(0.1, "CG damping κ: solve (F + κI)x = g", check_non_negative)


@dataclass(frozen=True, kw_only=True)
class TRPOConfig(NPGConfig):
    """TRPO: the natural step plus a backtracking line search on D̄_KL ≤ δ and gain > 0."""

    backtrack_iters: int = _f(10, "maximum number of backtracks n_bt", check_positive_int)
    backtrack_coeff: float = _f(
        0.5,
        "backtracking coefficient c: the step shrinks by c per backtrack",
        check_fraction,
    )


@dataclass(frozen=True, kw_only=True)
class PPOConfig(RolloutConfig):
    """Every ``ppo-*`` algorithm: K epochs of minibatch Adam on a surrogate, value fitted jointly."""

    lr: float = _f(3e-4, "Adam learning rate η (policy and value)", check_positive)
    anneal_lr: bool = _f(True, "anneal the learning rate linearly to 0 over the run", check_bool)
    epochs: int = _f(10, "epochs K over each batch", check_positive_int)
    minibatch_size: int = _f(256, "minibatch size (at most num_envs·n_steps)", check_positive_int)
    clip: float = _f(0.2, "clip range ε (ppo-clip)", check_positive)
    anneal_clip: bool = _f(False, "anneal ε linearly to 0 over the run", check_bool)
    beta: float = _f(1.0, "KL penalty β: initial (ppo-kl) or fixed (ppo-fixed-kl)", check_positive)
    d_targ: float = _f(0.01, "target KL d_targ of the adaptive β rule (ppo-kl)", check_positive)
    ent_coef: float = _f(0.0, "entropy bonus coefficient c_H", check_non_negative)
    vf_coef: float = _f(0.5, "value-loss coefficient c_V", check_non_negative)
    clip_vloss: float | None = _f(
        None, "clip the value change around the old values (None: off)", optional(check_positive)
    )
    max_grad_norm: float | None = _f(
        0.5, "clip the global gradient norm (None: off)", optional(check_positive)
    )
    target_kl: float | None = _f(
        None,
        "stop the epochs once a minibatch's approx KL exceeds 1.5·target_kl (None: off)",
        optional(check_positive),
    )
    adam_eps: float = _f(
        1e-5,
        "ε of the joint Adam, added to √v̂ in its denominator (PyTorch's default is 1e-8)",
        check_positive,
    )

    def _check_together(self) -> None:
        super()._check_together()
        self._check_minibatch("minibatch_size")


#: family → its config class
CONFIG_CLASSES: Mapping[str, type[RolloutConfig]] = MappingProxyType(
    {"vpg": VPGConfig, "npg": NPGConfig, "trpo": TRPOConfig, "ppo": PPOConfig}
)


def family(algo: str) -> str:
    """ "vpg", "npg", "trpo" or "ppo"; ``ValueError`` for an unknown algo."""
    if not isinstance(algo, str) or algo not in ALGOS:
        raise ValueError(f"unknown algo {algo!r}; choose one of {sorted(ALGOS)}")
    return "ppo" if ALGOS[algo] is not None else algo


def config_class(algo: str) -> type[RolloutConfig]:
    """The config dataclass of ``algo``."""
    return CONFIG_CLASSES[family(algo)]


#: the seven MuJoCo tasks of the PPO paper's Table 1 (gymnasium's v5 versions; ``pip install
#: pgcore[mujoco]``)
MUJOCO_TASKS = (
    "HalfCheetah-v5",
    "Hopper-v5",
    "InvertedDoublePendulum-v5",
    "InvertedPendulum-v5",
    "Reacher-v5",
    "Swimmer-v5",
    "Walker2d-v5",
)

#: Their preset: the PPO paper's MuJoCo settings (Schulman et al. 2017, Table 3: horizon 2048
#: on one environment, 10 epochs of minibatch 64, Adam 3·10⁻⁴, γ 0.99, λ 0.95, ε 0.2) with
#: the observation normalisation of its code (OpenAI Baselines' ``ppo1``); TRPO and NPG with
#: the same batch, the trust region δ = 0.01 of Schulman et al. (2015) and CG damping 0.1.
#: Everything else keeps pgcore's base values (for PPO: the learning rate annealed to 0,
#: gradient norm clipped at 0.5, the state-independent log σ starting at 0). A starting
#: point, not tuned here.
_MUJOCO = {
    "*": {"num_envs": 1, "n_steps": 2048, "gamma": 0.99, "lam": 0.95, "normalize_obs": True},
    "ppo": {"lr": 3e-4, "epochs": 10, "minibatch_size": 64, "clip": 0.2},
    "trpo": {"max_kl": 0.01, "damping": 0.1, "vf_epochs": 10, "vf_minibatch_size": 64},
    "npg": {"max_kl": 0.01, "damping": 0.1, "vf_epochs": 10, "vf_minibatch_size": 64},
}


def _freeze(d: Mapping) -> Mapping:
    return MappingProxyType({k: _freeze(v) if isinstance(v, Mapping) else v for k, v in d.items()})


#: Default hyperparameters (read-only). ``DEFAULTS["*"]`` holds the base values for each
#: algorithm family ("*" for every algorithm, then "vpg", "npg", "trpo", "ppo");
#: ``DEFAULTS[env_id]`` overrides them per task in the same layout. Tuned on the benchmark of
#: ``benchmarks/compare_sb3.py``; the base values equal the dataclass field defaults.
DEFAULTS: Mapping[str, Mapping[str, Mapping[str, Any]]] = _freeze(
    {
        "*": {
            "*": {f.name: f.default for f in fields(RolloutConfig)},
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
                "adam_eps": 1e-5,
            },
        },
        "CartPole-v1": {
            # RL-Zoo's PPO settings (n_steps 32 × 8 envs, γ 0.98, λ 0.8, lr and clip annealed)
            # with half the epochs, a 4× larger learning rate and two minibatches per epoch
            # (median steps to a return of 475 over seeds 100-109: 21.5k, against 29.5k with
            # one full-batch minibatch).
            "ppo": {
                "num_envs": 8,
                "n_steps": 32,
                "gamma": 0.98,
                "lam": 0.8,
                "lr": 4e-3,
                "epochs": 10,
                "minibatch_size": 128,
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
        **{env_id: _MUJOCO for env_id in MUJOCO_TASKS},
    }
)


def _preset_values(env_id: str | None, algo: str) -> dict[str, Any]:
    fam = family(algo)
    allowed = {f.name for f in fields(CONFIG_CLASSES[fam])}
    out: dict[str, Any] = {}
    key = env_id.split(":", 1)[-1] if isinstance(env_id, str) else None
    for layer in (DEFAULTS["*"], DEFAULTS.get(key, {}) if key is not None else {}):
        for part in ("*", fam):
            out.update(layer.get(part, {}))
    return {k: v for k, v in out.items() if k in allowed}


def preset(env_id: str | None, algo: str) -> RolloutConfig:
    """The tuned configuration of ``algo`` on ``env_id`` (base values where the task has no
    preset; ``env_id`` None, or a ``module:EnvId`` string, is looked up by its EnvId)."""
    return config_class(algo)(**_preset_values(env_id, algo))


def make_config(
    env_id: str | None, algo: str, config: RolloutConfig | None = None, **overrides: Any
) -> RolloutConfig:
    """``config`` (default: :func:`preset`) with ``overrides`` applied, checked.

    ``ValueError`` for an unknown algo, a config of another family, an unknown override name
    (the message lists the valid names) or a bad value (the message names the field)."""
    cls = config_class(algo)
    if config is None:
        config = preset(env_id, algo)
    elif type(config) is not cls:
        raise ValueError(
            f"config must be a {cls.__name__} for algo {algo!r}, got {type(config).__name__}"
        )
    allowed = {f.name for f in fields(cls)}
    unknown = sorted(set(overrides) - allowed)
    if unknown:
        raise ValueError(
            f"unknown hyperparameter(s) {unknown} for algo {algo!r}; valid keys: {sorted(allowed)}"
        )
    return dataclasses.replace(config, **overrides) if overrides else config


def field_docs(algo: str) -> list[tuple[str, str, Any, str]]:
    """(name, type, base default, doc) for every field of ``algo``'s config, in order."""
    cls = config_class(algo)
    return [(f.name, str(f.type), f.default, f.metadata["doc"]) for f in fields(cls)]
