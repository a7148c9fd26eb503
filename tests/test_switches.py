"""The code-level switches of PPO/TRPO implementations (Engstrom et al. 2020) as config fields:
orthogonal initialisation, action clipping, Adam's ε, the log-σ parametrisation and reward
scaling. Their defaults keep today's behaviour (bitwise: tests/test_fingerprints.py)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from pgcore.config import make_config
from pgcore.training import _build_models, load, parse_value, resolve_hparams, save, train


def test_defaults_are_todays_behaviour():
    hp = resolve_hparams("Pendulum-v1", "ppo-clip")
    assert hp["ortho_init"] is True and hp["clip_actions"] is True
    assert hp["log_std"] == "parameter" and hp["adam_eps"] == 1e-5
    assert "adam_eps" not in resolve_hparams("CartPole-v1", "trpo")  # PPO's joint Adam only


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("ortho_init", "yes"),
        ("ortho_init", 1),
        ("clip_actions", "false"),
        ("log_std", "state"),
        ("log_std", 0),
        ("adam_eps", 0.0),
        ("adam_eps", -1e-8),
        ("adam_eps", float("nan")),
        ("adam_eps", "1e-5"),
    ],
)
def test_bad_switch_values_are_refused_by_name(key, value):
    with pytest.raises(ValueError, match=key):
        make_config("Pendulum-v1", "ppo-clip", **{key: value})


def test_adam_eps_reaches_the_optimiser():
    seen = {}

    def grab(row, state):
        seen["eps"] = state.optimizers["policy"].param_groups[0]["eps"]
        return True

    train("CartPole-v1", "ppo-clip", total_steps=256, adam_eps=1e-3, progress=False, callback=grab)
    assert seen["eps"] == 1e-3


def _config(**over):
    cfg = make_config("Pendulum-v1", "ppo-clip", **over).to_dict()
    return {**cfg, "obs_dim": 3, "action": "continuous", "act_dim": 1}


def test_ortho_init_switch():
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    ortho, _ = _build_models(_config(), gen())
    plain, _ = _build_models(_config(ortho_init=False), gen())
    w_o, w_p = ortho.mean[0].weight, plain.mean[0].weight  # [64, 3]: orthogonal columns × √2
    assert torch.allclose(w_o.T @ w_o, 2.0 * torch.eye(3), atol=1e-5)
    assert not torch.allclose(w_p.T @ w_p, 2.0 * torch.eye(3), atol=1e-2)
    bound = 1 / np.sqrt(3)  # PyTorch's default: uniform in ±1/√fan_in, biases included
    assert w_p.abs().max() <= bound and plain.mean[0].bias.abs().max() <= bound
    assert plain.mean[0].bias.abs().max() > 0 and ortho.mean[0].bias.abs().max() == 0


def test_log_std_network_trains_saves_and_loads(tmp_path):
    r = train(
        "Pendulum-v1",
        "ppo-clip",
        total_steps=1024,
        log_std="network",
        log_std_init=-0.5,
        progress=False,
    )
    assert not hasattr(r.policy, "log_std") and hasattr(r.policy, "log_std_net")
    obs = torch.tensor([[1.0, 0.0, 0.0], [-1.0, 0.0, 3.0]])
    scale = r.policy.distribution(obs).base_dist.scale
    assert scale[0, 0] != scale[1, 0]  # σ depends on the state
    fresh, _ = _build_models(_config(log_std="network", log_std_init=-0.5), torch.Generator())
    assert torch.allclose(
        fresh.distribution(obs).base_dist.scale, torch.tensor(np.exp(-0.5)).float(), rtol=0.05
    )
    save(r, tmp_path / "run.pt")
    back = load(tmp_path / "run.pt")
    assert torch.equal(back.policy.distribution(obs).base_dist.scale, scale)


class _Record(gym.Wrapper):
    actions: list = []

    def step(self, action):
        _Record.actions.append(np.asarray(action, dtype=float).copy())
        return super().step(action)


@pytest.mark.parametrize("clip", [True, False])
def test_clip_actions_switch(clip):
    _Record.actions = []
    train(
        lambda: _Record(gym.make("Pendulum-v1")),
        "ppo-clip",
        total_steps=512,
        num_envs=2,
        n_steps=256,
        minibatch_size=256,
        log_std_init=1.5,  # σ ≈ 4.5 against bounds ±2: many samples fall outside
        clip_actions=clip,
        progress=False,
    )
    biggest = np.abs(np.concatenate(_Record.actions)).max()
    assert (biggest <= 2.0) if clip else (biggest > 2.0)


def test_cli_parses_the_log_std_choice():
    assert parse_value("log_std", "network", "str") == "network"


def test_scale_rewards_is_off_by_default_and_refuses_non_booleans():
    assert resolve_hparams("Hopper-v5", "ppo-clip")["scale_rewards"] is False
    for bad in ("yes", 1, None):
        with pytest.raises(ValueError, match="scale_rewards"):
            make_config("CartPole-v1", "trpo", scale_rewards=bad)


def test_scale_rewards_statistics_are_saved_loaded_and_resumed(tmp_path):
    res = train("Pendulum-v1", "ppo-clip", total_steps=1024, scale_rewards=True, progress=False)
    rms = res.return_rms
    # Pendulum's rewards lie in [−16.3, 0]: the discounted returns (γ = 0.9) have a spread
    assert rms is not None and rms.count > 1000 and rms.var[0] > 1.0
    save(res, tmp_path / "run.pt")
    back = load(tmp_path / "run.pt")
    np.testing.assert_array_equal(back.return_rms.var, rms.var)
    assert back.return_rms.count == rms.count
    more = train("Pendulum-v1", "ppo-clip", total_steps=1024, init=back, progress=False)
    assert more.return_rms.count == rms.count + 1024 - 4  # one reset step per env (its time limit)
    assert train("Pendulum-v1", "ppo-clip", total_steps=1024, progress=False).return_rms is None
