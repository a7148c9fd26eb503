"""Chapter 1's identities and bounds, computed exactly on a finite MDP.

Everything takes [S, A] probability tensors ``pi_new`` (π') and ``pi_old`` (π) and is float64.
The book's surrogate is normalised like :func:`pgcore.surrogate` on an exact batch:

    Ā(π') = E_{s∼d^π, a∼π}[(π'(a|s)/π(a|s))·A^π(s, a)] = Σ_s d^π(s) Σ_a π'(a|s) A^π(s, a),

with d^π the normalised discounted occupancy (it sums to one). Then

* performance difference lemma:  J(π') − J(π) = (1/(1−γ))·E_{s∼d^{π'}, a∼π'}[A^π(s, a)];
* first-order match:             J(π') − J(π) = Ā(π')/(1−γ) + O(‖π' − π‖²);
* state mismatch (coupling):     D_TV(p_t^{π'}, p_t^π) ≤ 1 − (1−α)^t ≤ αt, where
  α = max_s D_TV(π'(·|s), π(·|s)) and D_TV = ½Σ|p − q|, so Σ_s |p_t^{π'}(s) − p_t^π(s)| ≤ 2αt;
* surrogate gap:                 |J(π') − J(π) − Ā(π')/(1−γ)|
                                   ≤ 4 A_max γ α² / ((1−γ)(1 − γ(1−α))) ≤ 4 A_max γ α² / (1−γ)²,
  with A_max = max_{s,a} |A^π(s, a)|  (Schulman et al. 2015, Theorem 1, in the book's units;
  the paper writes ε for A_max and the lecture ε for α);
* TRPO's lower bound:            J(π') ≥ M_π(π') = J(π) + Ā(π')/(1−γ) − C·D_KL^max(π‖π'),
  C = 4 A_max γ / (1−γ)², D_KL^max = max_s KL(π(·|s) ‖ π'(·|s)) (using D_TV² ≤ KL/2 ≤ KL).

Every function takes the new policy first, then the old one: ``f(pi_new, pi_old)``.
"""

from __future__ import annotations

import torch

from ._checks import check_in_unit_interval
from .divergences import kl_categorical, total_variation
from .tabular import TabularMDP

__all__ = [
    "surrogate_advantage",
    "performance_difference",
    "max_tv",
    "max_kl",
    "state_tv",
    "coupling_bound",
    "surrogate_gap",
    "surrogate_gap_bound",
    "trpo_penalty_coefficient",
    "trpo_lower_bound",
    "mixture",
]


def _pair(mdp: TabularMDP, pi_new, pi_old) -> tuple[torch.Tensor, torch.Tensor]:
    return mdp.check_policy(pi_new), mdp.check_policy(pi_old)


def surrogate_advantage(mdp: TabularMDP, pi_new, pi_old) -> torch.Tensor:
    """Ā(π') = Σ_s d^π(s) Σ_a π'(a|s) A^π(s, a): states from π, actions from π'.

    Equal to ``pgcore.surrogate(policy_new, exact_batch(mdp, policy_old))``. It is zero at π' = π.
    """
    pi_new, pi_old = _pair(mdp, pi_new, pi_old)
    d = mdp.occupancy(pi_old)
    adv = mdp.advantages(pi_old)
    return d @ (pi_new * adv).sum(-1)


def performance_difference(mdp: TabularMDP, pi_new, pi_old) -> tuple[torch.Tensor, torch.Tensor]:
    """Both sides of the performance difference lemma (Kakade & Langford 2002).

    Returns ``(lhs, rhs)`` with lhs = J(π') − J(π) and
    rhs = (1/(1−γ))·Σ_s d^{π'}(s) Σ_a π'(a|s) A^π(s, a). They are equal.
    """
    pi_new, pi_old = _pair(mdp, pi_new, pi_old)
    lhs = mdp.performance(pi_new) - mdp.performance(pi_old)
    d_new = mdp.occupancy(pi_new)
    rhs = d_new @ (pi_new * mdp.advantages(pi_old)).sum(-1) / (1.0 - mdp.gamma)
    return lhs, rhs


def max_tv(pi_new, pi_old) -> torch.Tensor:
    """α = max_s D_TV(π'(·|s), π(·|s)), with D_TV = ½Σ_a |π'(a|s) − π(a|s)|."""
    return total_variation(torch.as_tensor(pi_new), torch.as_tensor(pi_old)).max()


def max_kl(pi_new, pi_old) -> torch.Tensor:
    """D_KL^max(π‖π') = max_s KL(π(·|s) ‖ π'(·|s)): the KL in TRPO's direction, old policy π first.

    The arguments come in the order of every other function here, ``(pi_new, pi_old)``; the
    KL inside is KL(π_old ‖ π_new).
    """
    return kl_categorical(torch.as_tensor(pi_old), torch.as_tensor(pi_new)).max()


def state_tv(mdp: TabularMDP, pi_new, pi_old, horizon: int) -> torch.Tensor:
    """D_TV(p_t^{π'}, p_t^π) for t = 0..horizon, where p_t^π(s) = Pr(s_t = s) under π from μ₀."""
    pi_new, pi_old = _pair(mdp, pi_new, pi_old)
    return total_variation(
        mdp.state_distributions(pi_new, horizon), mdp.state_distributions(pi_old, horizon)
    )


def coupling_bound(eps, t) -> torch.Tensor:
    """1 − (1−α)^t: the coupling bound on D_TV(p_t^{π'}, p_t^π) when every state's D_TV is ≤ α = ``eps``."""
    eps = torch.as_tensor(eps, dtype=torch.float64)
    t = torch.as_tensor(t, dtype=torch.float64)
    if (eps < 0).any() or (eps > 1).any():
        raise ValueError(
            f"eps (α, a total variation distance) must lie in [0, 1], got {eps.tolist()!r}"
        )
    if (t < 0).any():
        raise ValueError(f"t must be non-negative, got {t.tolist()!r}")
    return 1.0 - (1.0 - eps) ** t


def surrogate_gap(mdp: TabularMDP, pi_new, pi_old) -> torch.Tensor:
    """J(π') − J(π) − Ā(π')/(1−γ): what the first-order surrogate misses (signed)."""
    pi_new, pi_old = _pair(mdp, pi_new, pi_old)
    true = mdp.performance(pi_new) - mdp.performance(pi_old)
    return true - surrogate_advantage(mdp, pi_new, pi_old) / (1.0 - mdp.gamma)


def _eps_adv(mdp: TabularMDP, pi_old: torch.Tensor) -> torch.Tensor:
    return mdp.advantages(pi_old).abs().max()


def surrogate_gap_bound(mdp: TabularMDP, pi_new, pi_old, *, loose: bool = False) -> torch.Tensor:
    """The bound on |J(π') − J(π) − Ā(π')/(1−γ)| from the coupling argument.

    4 A_max γ α² / ((1−γ)(1 − γ(1−α))), or with ``loose=True`` the simpler
    4 A_max γ α² / (1−γ)² of Schulman et al. (2015, Theorem 1); α = max_s D_TV(π'(·|s), π(·|s))
    and A_max = max_{s,a} |A^π(s, a)|.
    """
    pi_new, pi_old = _pair(mdp, pi_new, pi_old)
    g = mdp.gamma
    eps = max_tv(pi_new, pi_old)
    eps_a = _eps_adv(mdp, pi_old)
    denom = (1.0 - g) ** 2 if loose else (1.0 - g) * (1.0 - g * (1.0 - eps))
    return 4.0 * eps_a * g * eps**2 / denom


def trpo_penalty_coefficient(mdp: TabularMDP, pi_old) -> torch.Tensor:
    """C = 4 A_max γ / (1−γ)², with A_max = max_{s,a} |A^π(s, a)| (Schulman et al. 2015, Theorem 1)."""
    pi_old = mdp.check_policy(pi_old)
    return 4.0 * _eps_adv(mdp, pi_old) * mdp.gamma / (1.0 - mdp.gamma) ** 2


def trpo_lower_bound(mdp: TabularMDP, pi_new, pi_old) -> torch.Tensor:
    """M_π(π') = J(π) + Ā(π')/(1−γ) − C·D_KL^max(π‖π'): a minoriser of J(π'), equal to J(π) at π' = π."""
    pi_new, pi_old = _pair(mdp, pi_new, pi_old)
    return (
        mdp.performance(pi_old)
        + surrogate_advantage(mdp, pi_new, pi_old) / (1.0 - mdp.gamma)
        - trpo_penalty_coefficient(mdp, pi_old) * max_kl(pi_new, pi_old)
    )


def mixture(pi_old, pi_target, alpha: float) -> torch.Tensor:
    """(1−α)·π + α·π_target, the conservative-policy-iteration step (Kakade & Langford 2002).

    Every state's TV to π is α·TV(π_target(·|s), π(·|s)).
    """
    alpha = check_in_unit_interval("alpha", alpha)
    pi_old = torch.as_tensor(pi_old, dtype=torch.float64)
    pi_target = torch.as_tensor(pi_target, dtype=torch.float64)
    if pi_old.shape != pi_target.shape:
        raise ValueError(
            f"policies must have the same shape, got {tuple(pi_old.shape)} and {tuple(pi_target.shape)}"
        )
    return (1.0 - alpha) * pi_old + alpha * pi_target
