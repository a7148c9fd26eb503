"""pgcore: the small, tested library behind the Advanced Policy Gradients book.

Both worlds are one representation, a :class:`Batch` of weighted (state, action) pairs:
the exact world (:func:`exact_batch` on a :class:`TabularMDP`) and the sampled world
(rollouts from gymnasium). Every objective, update and diagnostic takes ``(policy, batch)``.
"""

from . import advantage  # the advantage estimators of the exact world (pgcore.advantage)
from .batch import Batch, exact_batch, normalize_advantages, weighted_mean
from .claims import claim, glue_values
from .config import NPGConfig, PPOConfig, RolloutConfig, TRPOConfig, VPGConfig
from .divergences import kl_categorical, kl_gaussian, mean_kl, total_variation
from .fisher import (
    conjugate_gradient,
    fisher_matrix,
    fisher_vector_product,
    flat_grad,
    flat_params,
    kl_hessian,
    set_flat_params,
)
from .objectives import clip_fraction, clipped_surrogate, kl_penalized_surrogate, ratio, surrogate
from .policies import CategoricalMLPPolicy, GaussianMLPPolicy, TabularSoftmaxPolicy, ValueNetwork
from .rollouts import RolloutCollector, RunningMeanStd, gae
from .tabular import TabularMDP, chain_mdp, random_mdp, three_armed_bandit, two_state_mdp
from .training import (
    TrainingDivergedError,
    TrainResult,
    TrainState,
    evaluate,
    history_arrays,
    load,
    resolve_hparams,
    save,
    train,
)
from .updates import (
    AdaptiveKL,
    NonFiniteUpdateError,
    dual_gradient_descent,
    natural_gradient_step,
    ppo_clip_update,
    ppo_kl_update,
    ppo_loss,
    ppo_update,
    trpo_step,
    update_diagnostics,
    vpg_step,
)

__version__ = "0.1.0"

__all__ = [
    "advantage",
    "NPGConfig",
    "PPOConfig",
    "RolloutConfig",
    "TRPOConfig",
    "TrainState",
    "TrainingDivergedError",
    "VPGConfig",
    "evaluate",
    "history_arrays",
    "load",
    "resolve_hparams",
    "save",
    "AdaptiveKL",
    "Batch",
    "RolloutCollector",
    "RunningMeanStd",
    "TrainResult",
    "CategoricalMLPPolicy",
    "GaussianMLPPolicy",
    "TabularMDP",
    "TabularSoftmaxPolicy",
    "ValueNetwork",
    "chain_mdp",
    "claim",
    "clip_fraction",
    "clipped_surrogate",
    "conjugate_gradient",
    "dual_gradient_descent",
    "exact_batch",
    "gae",
    "fisher_matrix",
    "fisher_vector_product",
    "flat_grad",
    "flat_params",
    "glue_values",
    "kl_categorical",
    "kl_gaussian",
    "kl_hessian",
    "kl_penalized_surrogate",
    "mean_kl",
    "natural_gradient_step",
    "NonFiniteUpdateError",
    "normalize_advantages",
    "ppo_loss",
    "update_diagnostics",
    "ppo_clip_update",
    "ppo_kl_update",
    "ppo_update",
    "random_mdp",
    "ratio",
    "set_flat_params",
    "surrogate",
    "three_armed_bandit",
    "total_variation",
    "train",
    "trpo_step",
    "two_state_mdp",
    "vpg_step",
    "weighted_mean",
]
