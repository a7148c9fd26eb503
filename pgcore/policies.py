"""Policies and value networks. Every policy has ``distribution(obs)``.

``distribution(obs)`` returns a ``torch.distributions.Distribution`` whose
``log_prob(actions)`` has shape [B]; the update rules in :mod:`pgcore.updates` use nothing
else, which is what lets one update rule move a tabular policy and train a neural one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.distributions import Categorical, Independent, Normal

from ._checks import check_finite, check_int

__all__ = [
    "TabularSoftmaxPolicy",
    "CategoricalMLPPolicy",
    "GaussianMLPPolicy",
    "ValueNetwork",
    "mlp",
    "orthogonal_init",
]


class TabularSoftmaxPolicy(nn.Module):
    """π_θ(a|s) = exp θ_{s,a} / Σ_{a'} exp θ_{s,a'}, one logit per (state, action).

    The normaliser sums over actions only, state by state. The parameter ``logits`` is an
    [S, A] float64 tensor (zeros, i.e. uniform, by default).
    """

    def __init__(self, n_states: int, n_actions: int, logits: torch.Tensor | None = None):
        super().__init__()
        self.n_states, self.n_actions = (
            check_int("n_states", n_states),
            check_int("n_actions", n_actions),
        )
        if logits is None:
            logits = torch.zeros(self.n_states, self.n_actions, dtype=torch.float64)
        else:
            logits = torch.as_tensor(logits, dtype=torch.float64).clone()
            if logits.shape != (self.n_states, self.n_actions):
                raise ValueError(
                    f"logits must have shape {(self.n_states, self.n_actions)}, got {tuple(logits.shape)}"
                )
            if not torch.isfinite(logits).all():
                raise ValueError("logits must be finite")
        self.logits = nn.Parameter(logits)

    @classmethod
    def from_probs(cls, probs: torch.Tensor) -> TabularSoftmaxPolicy:
        """The softmax policy whose probabilities are ``probs`` (logits = log probs)."""
        probs = torch.as_tensor(probs, dtype=torch.float64)
        if probs.ndim != 2 or (probs <= 0).any():
            raise ValueError("probs must be an [S, A] tensor with strictly positive entries")
        return cls(probs.shape[0], probs.shape[1], logits=probs.log())

    def probs(self) -> torch.Tensor:
        """π_θ as an [S, A] tensor (differentiable in θ)."""
        return torch.softmax(self.logits, dim=-1)

    def distribution(self, obs: torch.Tensor) -> Categorical:
        """Categorical over actions at the state indices ``obs`` (a LongTensor [B])."""
        obs = torch.as_tensor(obs, dtype=torch.long)
        return Categorical(logits=self.logits[obs])


def _check_hidden(hidden) -> tuple[int, ...]:
    """``hidden`` as a tuple of positive layer widths (a list or tuple; () means no hidden layer)."""
    if isinstance(hidden, str) or not isinstance(hidden, Sequence):
        raise ValueError(
            f"hidden must be a tuple of positive layer widths such as (64, 64), got {hidden!r}"
        )
    for h in hidden:
        if isinstance(h, bool) or not isinstance(h, int) or h < 1:
            raise ValueError(f"hidden must be a tuple of positive integer widths, got {hidden!r}")
    return tuple(int(h) for h in hidden)


def orthogonal_init(layer: nn.Linear, gain: float) -> nn.Linear:
    """Orthogonal weights with ``gain`` and zero bias, as in the PPO implementations."""
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.zeros_(layer.bias)
    return layer


def mlp(in_dim: int, out_dim: int, hidden: Sequence[int], out_gain: float) -> nn.Sequential:
    """A tanh MLP with orthogonal init: √2 on hidden layers, ``out_gain`` on the head."""
    layers: list[nn.Module] = []
    d = in_dim
    for h in hidden:
        layers += [orthogonal_init(nn.Linear(d, h), math.sqrt(2)), nn.Tanh()]
        d = h
    layers.append(orthogonal_init(nn.Linear(d, out_dim), out_gain))
    return nn.Sequential(*layers)


class CategoricalMLPPolicy(nn.Module):
    """π_θ(·|s) = Categorical(softmax(f_θ(s))) for discrete action spaces."""

    def __init__(self, obs_dim: int, n_actions: int, hidden: Sequence[int] = (64, 64)):
        super().__init__()
        self.obs_dim, self.n_actions = (
            check_int("obs_dim", obs_dim),
            check_int("n_actions", n_actions),
        )
        self.hidden = _check_hidden(hidden)
        self.net = mlp(self.obs_dim, self.n_actions, self.hidden, out_gain=0.01)

    def distribution(self, obs: torch.Tensor) -> Categorical:
        return Categorical(logits=self.net(obs))


#: the two parametrisations of a Gaussian policy's log σ
LOG_STD_KINDS = ("parameter", "network")


class GaussianMLPPolicy(nn.Module):
    """π_θ(·|s) = N(μ_θ(s), diag σ²).

    ``log_std="parameter"`` (the default): log σ is one state-independent parameter vector
    ``log_std``, initialised to ``log_std_init``. ``log_std="network"``: log σ_θ(s) is the
    output of a second tanh MLP ``log_std_net`` (head gain 0.01, head bias ``log_std_init``),
    so the spread depends on the state.
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden: Sequence[int] = (64, 64),
        log_std_init: float = 0.0,
        log_std: str = "parameter",
    ):
        super().__init__()
        self.obs_dim, self.act_dim = check_int("obs_dim", obs_dim), check_int("act_dim", act_dim)
        self.hidden = _check_hidden(hidden)
        log_std_init = check_finite("log_std_init", log_std_init)
        if log_std not in LOG_STD_KINDS:
            raise ValueError(f"log_std must be one of {LOG_STD_KINDS}, got {log_std!r}")
        self.log_std_kind = log_std
        self.mean = mlp(self.obs_dim, self.act_dim, self.hidden, out_gain=0.01)
        if log_std == "parameter":
            self.log_std = nn.Parameter(torch.full((self.act_dim,), log_std_init))
        else:
            self.log_std_net = mlp(self.obs_dim, self.act_dim, self.hidden, out_gain=0.01)
            with torch.no_grad():
                self.log_std_net[-1].bias.fill_(log_std_init)

    def distribution(self, obs: torch.Tensor) -> Independent:
        mean = self.mean(obs)
        if self.log_std_kind == "parameter":
            return Independent(Normal(mean, self.log_std.exp().expand_as(mean)), 1)
        return Independent(Normal(mean, self.log_std_net(obs).exp()), 1)


class ValueNetwork(nn.Module):
    """V_φ(s): a tanh MLP returning shape [B]."""

    def __init__(self, obs_dim: int, hidden: Sequence[int] = (64, 64)):
        super().__init__()
        self.obs_dim, self.hidden = check_int("obs_dim", obs_dim), _check_hidden(hidden)
        self.net = mlp(self.obs_dim, 1, self.hidden, out_gain=1.0)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs).squeeze(-1)
