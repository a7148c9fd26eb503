"""pgcore.config: the frozen per-family dataclasses, their docs, checks and presets."""

from __future__ import annotations

import dataclasses
import math

import pytest

from pgcore.config import (
    ALGOS,
    CONFIG_CLASSES,
    DEFAULTS,
    NPGConfig,
    PPOConfig,
    RolloutConfig,
    TRPOConfig,
    VPGConfig,
    config_class,
    field_docs,
    make_config,
    preset,
)
from pgcore.training import resolve_hparams


def test_every_field_has_a_doc_and_a_check():
    for cls in CONFIG_CLASSES.values():
        for f in dataclasses.fields(cls):
            assert f.metadata["doc"].strip(), (cls.__name__, f.name)
            assert callable(f.metadata["check"]), (cls.__name__, f.name)
    assert [name for name, *_ in field_docs("trpo")][-2:] == ["backtrack_iters", "backtrack_coeff"]


def test_families_and_classes():
    assert config_class("ppo-kl") is PPOConfig and config_class("npg") is NPGConfig
    assert config_class("trpo") is TRPOConfig and config_class("vpg") is VPGConfig
    assert issubclass(TRPOConfig, NPGConfig) and issubclass(PPOConfig, RolloutConfig)
    assert set(ALGOS) == {"vpg", "npg", "trpo", "ppo-clip", "ppo-kl", "ppo-fixed-kl", "ppo-noclip"}


def test_field_defaults_are_the_base_defaults():
    for fam, cls in CONFIG_CLASSES.items():
        base = {**DEFAULTS["*"]["*"], **DEFAULTS["*"][fam]}
        assert cls().to_dict() == base, fam


def test_presets_layer_the_task_overrides():
    cp = preset("CartPole-v1", "ppo-clip")
    assert (cp.n_steps, cp.gamma, cp.lam, cp.lr, cp.anneal_clip) == (32, 0.98, 0.8, 4e-3, True)
    assert preset("Pendulum-v1", "trpo").normalize_obs is True
    assert preset("Pendulum-v1", "trpo").gamma == 0.9
    assert preset("my/Unknown-v0", "trpo") == TRPOConfig()
    assert preset("gymnasium.envs.classic_control:CartPole-v1", "trpo").max_kl == 0.02
    assert preset(None, "vpg") == VPGConfig()


def test_configs_are_frozen_and_replace_checks_again():
    cfg = PPOConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.lr = 1.0  # type: ignore[misc]
    with pytest.raises(ValueError, match=r"clip must be .*got -0\.1"):
        dataclasses.replace(cfg, clip=-0.1)
    with pytest.raises(TypeError):
        PPOConfig(0.1)  # keyword-only


def test_values_are_normalised():
    import numpy as np

    cfg = PPOConfig(hidden=[32, np.int64(16)], num_envs=np.int64(4), lr=np.float32(0.5))
    assert cfg.hidden == (32, 16) and type(cfg.num_envs) is int and type(cfg.lr) is float
    assert PPOConfig(hidden=()).hidden == ()  # a linear policy


@pytest.mark.parametrize(
    "cls,kwargs,name",
    [
        (PPOConfig, {"hidden": 64}, "hidden"),
        (PPOConfig, {"hidden": "64"}, "hidden"),
        (PPOConfig, {"hidden": (-8,)}, "hidden"),
        (PPOConfig, {"hidden": (0,)}, "hidden"),
        (PPOConfig, {"hidden": (True,)}, "hidden"),
        (PPOConfig, {"num_envs": True}, "num_envs"),
        (PPOConfig, {"n_steps": 0}, "n_steps"),
        (PPOConfig, {"gamma": "0.9"}, "gamma"),
        (PPOConfig, {"gamma": 1.5}, "gamma"),
        (PPOConfig, {"lam": -0.1}, "lam"),
        (PPOConfig, {"log_std_init": math.nan}, "log_std_init"),
        (PPOConfig, {"lr": 0}, "lr"),
        (PPOConfig, {"lr": math.inf}, "lr"),
        (PPOConfig, {"normalize_obs": "yes"}, "normalize_obs"),
        (PPOConfig, {"normalize_advantages": 1}, "normalize_advantages"),
        (PPOConfig, {"minibatch_size": 2048}, "minibatch_size"),
        (PPOConfig, {"clip": -0.1}, "clip"),
        (PPOConfig, {"ent_coef": "0.01"}, "ent_coef"),
        (PPOConfig, {"vf_coef": -1.0}, "vf_coef"),
        (PPOConfig, {"max_grad_norm": 0.0}, "max_grad_norm"),
        (PPOConfig, {"target_kl": -1.0}, "target_kl"),
        (PPOConfig, {"clip_vloss": math.nan}, "clip_vloss"),
        (PPOConfig, {"beta": -1.0}, "beta"),
        (PPOConfig, {"d_targ": 0.0}, "d_targ"),
        (PPOConfig, {"anneal_lr": "false"}, "anneal_lr"),
        (PPOConfig, {"reward_scale": 0.0}, "reward_scale"),
        (VPGConfig, {"lr": -1.0}, "lr"),
        (VPGConfig, {"vf_minibatch_size": 4096}, "vf_minibatch_size"),
        (NPGConfig, {"damping": -1.0}, "damping"),
        (NPGConfig, {"max_kl": 0.0}, "max_kl"),
        (NPGConfig, {"cg_iters": 2.5}, "cg_iters"),
        (TRPOConfig, {"backtrack_coeff": 1.0}, "backtrack_coeff"),
        (TRPOConfig, {"backtrack_iters": 0}, "backtrack_iters"),
    ],
)
def test_bad_values_name_the_field_and_the_value(cls, kwargs, name):
    with pytest.raises(ValueError) as info:
        cls(**kwargs)
    msg = str(info.value)
    assert msg.startswith(name), msg
    assert repr(kwargs[name]) in msg or str(kwargs[name]) in msg, msg


def test_make_config_and_resolve_hparams():
    with pytest.raises(
        ValueError, match=r"unknown hyperparameter\(s\) \['max_kl'\] for algo 'ppo-clip'"
    ):
        make_config("CartPole-v1", "ppo-clip", max_kl=0.1)
    with pytest.raises(
        ValueError, match="config must be a TRPOConfig for algo 'trpo', got PPOConfig"
    ):
        make_config("CartPole-v1", "trpo", PPOConfig())
    with pytest.raises(ValueError, match="unknown algo 'a2c'"):
        make_config("CartPole-v1", "a2c")
    cfg = make_config("CartPole-v1", "trpo", TRPOConfig(max_kl=0.05), damping=0.2)
    assert (cfg.max_kl, cfg.damping, cfg.lam) == (0.05, 0.2, 0.95)  # config replaces the preset
    assert resolve_hparams("CartPole-v1", "trpo", max_kl=0.03)["max_kl"] == 0.03
    assert resolve_hparams("CartPole-v1", "trpo", config=cfg) == cfg.to_dict()
