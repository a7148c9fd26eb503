"""A Batch of weighted (state, action) pairs: the one representation of both worlds.

An expectation over a batch is ``Σ wᵢ xᵢ / Σ wᵢ``. In the exact world the weights are
d^π(s)·π(a|s) over every (s, a) and the advantages are exact; in the sampled world they are
1/N over rollout steps and the advantages are GAE estimates.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch

from .tabular import TabularMDP

__all__ = ["Batch", "exact_batch", "normalize_advantages", "policy_table", "weighted_mean"]


def weighted_mean(x: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Σ wᵢ xᵢ / Σ wᵢ (the plain mean when ``weights`` is None).

    Terms with zero weight contribute exactly zero, even where x is not finite.
    """
    if weights is None:
        return x.mean()
    w = weights if weights.dtype == x.dtype else weights.to(x.dtype)
    prod = torch.where(w > 0, w * x, 0.0 if x.is_floating_point() else 0)
    return prod.sum() / w.sum()


@dataclass
class Batch:
    """The old policy's data, fixed during an update (all tensors are detached).

    Attributes:
        obs: observations [B, ...] (state indices in the exact world).
        actions: actions [B] (or [B, act_dim] for continuous actions).
        advantages: Â(s, a) [B].
        logp_old: log π_old(a|s) [B].
        weights: non-negative weights [B]; expectations are Σ w·x / Σ w.
        returns: optional value targets [B].
        values: optional old value estimates V(s) [B].
    """

    obs: torch.Tensor
    actions: torch.Tensor
    advantages: torch.Tensor
    logp_old: torch.Tensor
    weights: torch.Tensor
    returns: torch.Tensor | None = None
    values: torch.Tensor | None = None

    def __post_init__(self) -> None:
        n = None
        for f in fields(self):
            t = getattr(self, f.name)
            if t is None:
                continue
            if not isinstance(t, torch.Tensor):
                t = torch.as_tensor(t)
            t = t.detach()
            setattr(self, f.name, t)
            if t.ndim == 0:
                raise ValueError(f"Batch.{f.name} must have a leading batch dimension")
            if n is None:
                n = t.shape[0]
            elif t.shape[0] != n:
                raise ValueError(
                    f"Batch.{f.name} has {t.shape[0]} rows but obs has {n}; all fields must match"
                )
        for name in ("advantages", "logp_old", "weights"):
            if getattr(self, name).ndim != 1:
                raise ValueError(f"Batch.{name} must be one-dimensional [B]")
        if (self.weights < 0).any() or not torch.isfinite(self.weights).all():
            raise ValueError("Batch.weights must be finite and non-negative")

    def __len__(self) -> int:
        return self.obs.shape[0]

    @classmethod
    def _from_checked(cls, **values: torch.Tensor | None) -> Batch:
        """A Batch of tensors derived row-wise from a checked Batch (its rows, or a field
        replaced by one of the same shape): built without repeating ``__post_init__``'s checks,
        which such tensors pass by construction."""
        batch = cls.__new__(cls)
        for name in _FIELDS:
            setattr(batch, name, values.get(name))
        return batch

    def subset(self, idx: torch.Tensor) -> Batch:
        """The rows ``idx`` of every field (a minibatch); ``idx`` is a one-dimensional index or
        boolean mask. The rows of a checked batch are valid, so they are not checked again."""
        idx = torch.as_tensor(idx)
        if idx.ndim != 1:
            raise ValueError(
                f"Batch.subset needs a one-dimensional index, got shape {tuple(idx.shape)}"
            )
        return Batch._from_checked(
            **{name: t[idx] for name in _FIELDS if (t := getattr(self, name)) is not None}
        )

    def mean(self, x: torch.Tensor) -> torch.Tensor:
        """The batch expectation of ``x``: Σ w·x / Σ w."""
        return weighted_mean(x, self.weights)


_FIELDS = tuple(f.name for f in fields(Batch))


def normalize_advantages(batch: Batch) -> Batch:
    """The batch with its advantages standardised with the batch weights w:

        Â ← (Â − E_w[Â]) / (Std_w[Â] + 10⁻⁸),  Std_w[Â] = sqrt(E_w[(Â − E_w[Â])²]).

    The weighted moments make this right in both worlds (d^π·π weights on the exact batch, 1/N
    on rollouts). A batch with fewer than two rows is returned unchanged (its standard deviation
    is zero). Every other field is kept (the same tensors); ``batch`` itself is not modified.
    """
    adv = batch.advantages
    if adv.numel() < 2:
        return batch
    mean = weighted_mean(adv, batch.weights)
    std = weighted_mean((adv - mean) ** 2, batch.weights).sqrt()
    # the same rows with a new advantage column of the same shape: no need to re-check them
    values = {name: getattr(batch, name) for name in _FIELDS}
    return Batch._from_checked(**{**values, "advantages": (adv - mean) / (std + 1e-8)})


def policy_table(policy, n_states: int) -> torch.Tensor:
    """The [S, A] float64 table π(a|s) of any policy with ``distribution(state indices)`` (detached)."""
    with torch.no_grad():
        return policy.distribution(torch.arange(n_states)).probs.to(torch.float64)


def exact_batch(mdp: TabularMDP, policy) -> Batch:
    """Every (s, a) with weight d^π(s)·π(a|s) and the exact advantage A^π(s, a).

    ``policy`` is anything with ``distribution(states)`` on state indices (for example a
    :class:`~pgcore.policies.TabularSoftmaxPolicy`). Pairs with π(a|s) = 0 are left out:
    they carry no weight and their log-probability is −∞. The weights sum to one, so
    ``batch.mean(x)`` is E_{s∼d^π, a∼π}[x(s, a)]. ``values`` holds V^π(s) and ``returns``
    holds Q^π(s, a).
    """
    S, A = mdp.n_states, mdp.n_actions
    pi = policy_table(policy, S)
    with torch.no_grad():
        V, Q = mdp.values(pi)
        adv = Q - V[:, None]
        d = mdp.occupancy(pi)
    obs = torch.arange(S).repeat_interleave(A)
    actions = torch.arange(A).repeat(S)
    p = pi.reshape(-1)
    keep = p > 0
    return Batch(
        obs=obs[keep],
        actions=actions[keep],
        advantages=adv.reshape(-1)[keep],
        logp_old=p[keep].log(),
        weights=(d[:, None] * pi).reshape(-1)[keep],
        returns=Q.reshape(-1)[keep],
        values=V[obs][keep],
    )
