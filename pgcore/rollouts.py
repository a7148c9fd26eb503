"""The sampled world: rollouts from gymnasium vector environments into a :class:`~pgcore.batch.Batch`.

Three pieces:

* :func:`gae`, generalised advantage estimation with the time-limit distinction between
  *terminated* (the MDP ended: no bootstrap) and *truncated* (the clock ran out: bootstrap
  from the value of the final observation);
* :class:`RunningMeanStd`, the running observation normaliser;
* :class:`RolloutCollector`, which steps a vector environment with a policy and returns a
  ``Batch`` with weights 1/N, the old log-probabilities, the values and the GAE advantages.

Autoreset. Gymnasium 1.x vector environments reset a finished sub-environment in the
*next* call to ``step`` (``AutoresetMode.NEXT_STEP``, the default, and the only mode that
CartPole's native vector environment offers). So the observation returned on a terminal
step is the real final observation, and the following step is a *reset step*: its action
is ignored, its reward is 0 and it returns the first observation of the new episode. The
collector therefore (a) bootstraps every step, truncated ones included, from the value of
the observation that ``step`` returned, which is the true successor, and (b) drops the reset
steps from the batch. Reset steps still count towards the environment-step budget, so the
reported ``env_steps`` never flatter pgcore.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor, nn
from torch.distributions import Bernoulli, Categorical, Distribution, Independent, Normal

from pgcore.batch import Batch

__all__ = [
    "gae",
    "RunningMeanStd",
    "RolloutCollector",
    "make_vector_env",
    "resolve_env_id",
    "sample_action",
]


def _as_tensor(x: Tensor | np.ndarray, name: str) -> Tensor:
    if isinstance(x, Tensor):
        return x
    if isinstance(x, np.ndarray):
        return torch.from_numpy(x)
    raise TypeError(f"{name} must be a torch.Tensor or numpy array, got {type(x).__name__}")


def gae(
    rewards: Tensor,
    values: Tensor,
    next_values: Tensor,
    terminated: Tensor,
    truncated: Tensor,
    gamma: float,
    lam: float,
) -> tuple[Tensor, Tensor]:
    r"""Generalised advantage estimation (Schulman et al., 2016) with truncation handled.

    For each time step t (arrays are time-major, shape [T] or [T, N] for N environments):

    .. math::
        \delta_t = r_t + \gamma\,(1 - \mathrm{term}_t)\,V(s'_t) - V(s_t), \qquad
        \hat A_t = \delta_t + \gamma\lambda\,(1 - \mathrm{done}_t)\,\hat A_{t+1},

    with ``done = terminated or truncated`` and :math:`\hat A_T = 0`. ``next_values[t]`` is
    :math:`V(s'_t)`, the value of step t's real successor; on a truncated step that is the
    value of the final observation, so the bootstrap survives the time limit while the
    λ-recursion (which would otherwise run into the next episode) is cut.
    Returns ``(advantages, returns)`` with ``returns = advantages + values`` (the TD(λ)
    targets for the value function), in the dtype of ``rewards``.

    Raises ``ValueError`` when the shapes differ or are not [T] / [T, N], or when γ or λ
    lies outside [0, 1].
    """
    arrays = {
        "rewards": _as_tensor(rewards, "rewards"),
        "values": _as_tensor(values, "values"),
        "next_values": _as_tensor(next_values, "next_values"),
        "terminated": _as_tensor(terminated, "terminated"),
        "truncated": _as_tensor(truncated, "truncated"),
    }
    shape = arrays["rewards"].shape
    if len(shape) not in (1, 2):
        raise ValueError(f"gae: rewards must have shape [T] or [T, N], got {tuple(shape)}")
    bad = {k: tuple(v.shape) for k, v in arrays.items() if v.shape != shape}
    if bad:
        raise ValueError(
            f"gae: shape mismatch, rewards has shape {tuple(shape)} but "
            + ", ".join(f"{k} has {s}" for k, s in bad.items())
        )
    if not (0.0 <= gamma <= 1.0) or not (0.0 <= lam <= 1.0):
        raise ValueError(f"gae: gamma and lam must lie in [0, 1], got gamma={gamma}, lam={lam}")
    dtype = arrays["rewards"].dtype if arrays["rewards"].is_floating_point() else torch.float32
    # The backward recursion is a sequential loop over T: NumPy float64 keeps it cheap.
    r, v, nv = (
        arrays[k].detach().cpu().double().numpy() for k in ("rewards", "values", "next_values")
    )
    term = arrays["terminated"].detach().cpu().numpy().astype(bool)
    done = term | arrays["truncated"].detach().cpu().numpy().astype(bool)
    delta = r + gamma * np.where(term, 0.0, nv) - v
    carry = gamma * lam * (~done)
    adv = np.empty_like(delta)
    last = np.zeros_like(delta[0])
    for t in range(delta.shape[0] - 1, -1, -1):
        last = delta[t] + carry[t] * last
        adv[t] = last
    advantages = torch.from_numpy(adv).to(dtype)
    return advantages, advantages + arrays["values"].detach().to(dtype)


class RunningMeanStd:
    r"""Running mean and variance of a stream of vectors (Chan et al.'s parallel update).

    Merging a batch with moments (μ_B, σ²_B, n_B) into (μ, σ², n):

    .. math::
        \mu' = \mu + \Delta\,\tfrac{n_B}{n + n_B},\quad
        \sigma'^2 = \frac{n\sigma^2 + n_B\sigma_B^2 + \Delta^2\,n n_B/(n + n_B)}{n + n_B},
        \quad \Delta = \mu_B - \mu.

    :meth:`normalize` maps x to clip((x − μ)/sqrt(σ² + ε), −clip, clip).
    """

    def __init__(self, dim: int, clip: float = 10.0, eps: float = 1e-8) -> None:
        self.mean = np.zeros(dim, dtype=np.float64)
        self.var = np.ones(dim, dtype=np.float64)
        self.count = 1e-4
        self.clip = clip
        self.eps = eps

    def update(self, x: np.ndarray) -> None:
        """Merge a batch ``x`` of shape [B, dim] into the running moments."""
        x = np.asarray(x, dtype=np.float64).reshape(-1, self.mean.shape[0])
        n_b = x.shape[0]
        mean_b, var_b = x.mean(axis=0), x.var(axis=0)
        delta = mean_b - self.mean
        total = self.count + n_b
        self.mean = self.mean + delta * n_b / total
        self.var = (
            self.count * self.var + n_b * var_b + delta**2 * self.count * n_b / total
        ) / total
        self.count = total

    def normalize(self, x: np.ndarray) -> np.ndarray:
        """Return clip((x − μ)/sqrt(σ² + ε)) as float32."""
        z = (x - self.mean) / np.sqrt(self.var + self.eps)
        return np.clip(z, -self.clip, self.clip).astype(np.float32)

    def state_dict(self) -> dict[str, Tensor | float]:
        """Tensors and floats only, so that ``torch.load(weights_only=True)`` can read it."""
        return {
            "mean": torch.from_numpy(self.mean.copy()),
            "var": torch.from_numpy(self.var.copy()),
            "count": float(self.count),
            "clip": float(self.clip),
            "eps": float(self.eps),
        }

    def load_state_dict(self, state: dict[str, Tensor | float]) -> None:
        self.mean = state["mean"].numpy().astype(np.float64)
        self.var = state["var"].numpy().astype(np.float64)
        self.count, self.clip, self.eps = (
            float(state["count"]),
            float(state["clip"]),
            float(state["eps"]),
        )


def sample_action(dist: Distribution, generator: torch.Generator | None) -> Tensor:
    """A sample of ``dist`` drawn from ``generator`` (not from torch's global generator).

    Supports the distributions pgcore's policies return: ``Categorical``, ``Normal``,
    ``Bernoulli`` and ``Independent`` wrappers of them. The draws are
    ``torch.multinomial(probs)``, ``loc + scale·randn`` and ``rand < probs``. Raises
    ``TypeError`` for any other distribution."""
    base = dist.base_dist if isinstance(dist, Independent) else dist
    with torch.no_grad():
        if isinstance(base, Categorical):
            probs = base.probs
            flat = probs.reshape(-1, probs.shape[-1])
            idx = torch.multinomial(flat, 1, generator=generator)
            return idx.reshape(probs.shape[:-1])
        if isinstance(base, Normal):
            loc, scale = torch.broadcast_tensors(base.loc, base.scale)
            noise = torch.randn(loc.shape, generator=generator, dtype=loc.dtype)
            return loc + scale * noise
        if isinstance(base, Bernoulli):
            probs = base.probs
            u = torch.rand(probs.shape, generator=generator, dtype=probs.dtype)
            return (u < probs).to(probs.dtype)
    raise TypeError(
        f"cannot sample {type(dist).__name__} from a run-owned generator: pgcore samples "
        "Categorical, Normal, Bernoulli and Independent(...) of them"
    )


def resolve_env_id(env_id: str) -> str:
    """The registered id of ``env_id``; the ``"module:EnvId"`` form imports ``module`` first
    (which registers the environment), as ``gymnasium.make`` does. ``ValueError`` for an id
    gymnasium does not know or a module that cannot be imported."""
    if not isinstance(env_id, str) or not env_id:
        raise ValueError(f"env must be a gymnasium env id or a callable, got {env_id!r}")
    name = env_id
    if ":" in env_id:
        module, name = env_id.split(":", 1)
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise ValueError(f"unknown env id {env_id!r}: cannot import {module!r} ({e})") from None
    try:
        gym.spec(name)
    except gym.error.Error as e:
        raise ValueError(f"unknown env id {env_id!r}: {e}") from None
    return name


def make_vector_env(
    env: str | Callable[..., gym.Env],
    num_envs: int,
    env_kwargs: Mapping[str, Any] | None = None,
) -> gym.vector.VectorEnv:
    """``num_envs`` copies of ``env`` as one vector environment (autoreset ``NEXT_STEP``, see
    the module docstring).

    ``env`` is a gymnasium id (``"CartPole-v1"`` or ``"module:EnvId"``) or a callable returning
    a ``gymnasium.Env``; ``env_kwargs`` go to ``gymnasium.make`` or to the callable. An id
    uses gymnasium's native vectorised environment where one exists (CartPole) and no
    ``env_kwargs`` are given, else a ``SyncVectorEnv``."""
    kwargs = dict(env_kwargs or {})
    if isinstance(env, str):
        env_id = resolve_env_id(env)
        spec = gym.spec(env_id)
        if spec.vector_entry_point is not None and not kwargs:
            return gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point")
        return gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="sync", **kwargs)
    if not callable(env):
        raise ValueError(f"env must be a gymnasium env id or a callable, got {env!r}")

    def thunk() -> gym.Env:
        made = env(**kwargs)
        if not isinstance(made, gym.Env):
            raise ValueError(
                f"env: the callable {env!r} returned {type(made).__name__}, not a gymnasium.Env"
            )
        return made

    return gym.vector.SyncVectorEnv([thunk] * num_envs)


class RolloutCollector:
    """Steps a vector environment with a policy; :meth:`collect` returns one iteration's data.

    The collector keeps the environment state between calls (an episode may span two
    iterations) and accounts for episode returns itself: ``collect`` reports the
    undiscounted returns of the episodes that finished during that call.

    ``reward_scale`` multiplies the rewards that enter GAE (and so the value targets);
    the reported episode returns are always the environment's own. With ``return_rms`` (a
    :class:`RunningMeanStd` of dimension 1) the rewards are also divided by the running
    standard deviation of the discounted return, the *reward scaling* of Engstrom et al.
    (2020):

        R_t = γ·R_{t−1}·(1 − done_{t−1}) + r_t,   r̃_t = r_t / sqrt(Var[R] + 10⁻⁸),

    where R runs on across iterations per environment and the variance is that of every R_t
    seen so far, this rollout's included (merged at its end, so one scale serves the whole
    batch). The mean of R is not subtracted and nothing is clipped: the rewards keep their
    sign and their ratios.

    With ``normalize_obs`` the policy and value function see observations normalised by a
    :class:`RunningMeanStd` that is frozen during a rollout and updated with the rollout's
    raw observations at its end, so every observation in a batch, and its bootstrap value,
    uses the same statistics.

    Actions are sampled with :func:`sample_action` from ``generator`` (default: a new
    ``torch.Generator`` seeded with ``seed``), never from torch's global generator, so runs
    in several threads of one process do not disturb each other. ``obs_rms`` continues an
    existing normaliser (it is updated in place). ``bootstrap_truncated=False`` hands GAE
    every truncated step as terminated (no bootstrap from the final observation): the common
    time-limit bug, for ablations only. Continuous actions are clipped to the action space's
    bounds before ``env.step`` unless ``clip_actions=False``; the batch keeps the unclipped
    sample and its log-probability either way.
    """

    def __init__(
        self,
        env: gym.vector.VectorEnv,
        seed: int,
        normalize_obs: bool = False,
        reward_scale: float = 1.0,
        generator: torch.Generator | None = None,
        obs_rms: RunningMeanStd | None = None,
        bootstrap_truncated: bool = True,
        clip_actions: bool = True,
        return_rms: RunningMeanStd | None = None,
    ) -> None:
        self.env = env
        self.return_rms = return_rms
        self.bootstrap_truncated = bool(bootstrap_truncated)
        self.clip_actions = bool(clip_actions)
        self.generator = torch.Generator().manual_seed(seed) if generator is None else generator
        self.reward_scale = reward_scale
        self.num_envs = env.num_envs
        self.discrete = isinstance(env.single_action_space, gym.spaces.Discrete)
        obs_dim = int(np.prod(env.single_observation_space.shape))
        self.obs_rms = None
        if normalize_obs:
            self.obs_rms = obs_rms if obs_rms is not None else RunningMeanStd(obs_dim)
        if not self.discrete:
            self.low = env.single_action_space.low
            self.high = env.single_action_space.high
        obs, _ = env.reset(seed=seed)
        self.obs = np.asarray(obs, dtype=np.float64).reshape(self.num_envs, obs_dim)
        self.autoreset = np.zeros(self.num_envs, dtype=bool)
        self.ep_return = np.zeros(self.num_envs, dtype=np.float64)
        self.ep_length = np.zeros(self.num_envs, dtype=np.int64)
        self.disc_return = np.zeros(self.num_envs, dtype=np.float64)
        self.env_steps = 0

    def _policy_input(self, obs: np.ndarray) -> Tensor:
        x = self.obs_rms.normalize(obs) if self.obs_rms is not None else obs.astype(np.float32)
        return torch.from_numpy(x)

    @torch.no_grad()
    def collect(
        self, policy: nn.Module, value_fn: nn.Module, n_steps: int, gamma: float, lam: float
    ) -> tuple[Batch, dict[str, list[float] | int]]:
        """Run ``n_steps`` vector steps and return ``(batch, info)``.

        ``batch`` holds the real transitions (reset steps removed) with weights 1/N,
        ``logp_old`` = log π_old(a|s), ``values`` = V(s), GAE ``advantages`` and
        ``returns`` = advantages + values. ``info`` has ``episode_returns``,
        ``episode_lengths`` and ``episode_end_steps`` (the cumulative step count at which
        each episode finished) for the episodes finished in this call, and ``env_steps``,
        the cumulative number of environment steps (n_steps · num_envs per call, reset
        steps included).
        """
        T, N = n_steps, self.num_envs
        obs_buf = np.empty((T + 1, *self.obs.shape), dtype=np.float64)
        x_buf: list[Tensor] = []
        act_buf: list[Tensor] = []
        logp_buf = torch.empty(T, N)
        rew = np.empty((T, N), dtype=np.float64)
        term = np.empty((T, N), dtype=bool)
        trunc = np.empty((T, N), dtype=bool)
        valid = np.empty((T, N), dtype=bool)
        ep_returns: list[float] = []
        ep_lengths: list[int] = []
        ep_end_steps: list[int] = []
        for t in range(T):
            obs_buf[t] = self.obs
            x = self._policy_input(self.obs)
            dist = policy.distribution(x)
            action = sample_action(dist, self.generator)
            logp_buf[t] = dist.log_prob(action)
            x_buf.append(x)
            act_buf.append(action)
            a_np = action.numpy()
            if not self.discrete and self.clip_actions:
                a_np = np.clip(a_np, self.low, self.high)
            obs, r, te, tr, _ = self.env.step(a_np)
            valid[t] = ~self.autoreset
            rew[t], term[t], trunc[t] = r, te, tr
            done = te | tr
            self.ep_return += r
            self.ep_length += 1
            for i in np.flatnonzero(done):
                ep_returns.append(float(self.ep_return[i]))
                ep_lengths.append(int(self.ep_length[i]))
                ep_end_steps.append(self.env_steps + (t + 1) * N)
            # The reset step that follows a done step is not counted in the next episode.
            self.ep_return[done] = 0.0
            self.ep_length[done] = -1
            self.autoreset = done
            self.obs = np.asarray(obs, dtype=np.float64).reshape(self.obs.shape)
        obs_buf[T] = self.obs
        # V(s_0..s_T) in one forward pass after the loop: the value network does not act, so
        # it need not run at every step (s_T bootstraps the last step, and a truncated step's
        # next observation is its final one under NEXT_STEP autoreset)
        x_all = torch.stack([*x_buf, self._policy_input(self.obs)])
        val_buf = value_fn(x_all.reshape((T + 1) * N, -1)).reshape(T + 1, N)
        values = val_buf[:T]
        learn_rew = rew * self.reward_scale
        if self.return_rms is not None:
            learn_rew = learn_rew / self._return_std(rew, term | trunc, valid, gamma)
        adv, ret = gae(
            torch.from_numpy(learn_rew).float(),
            values,
            val_buf[1:],
            torch.from_numpy(term if self.bootstrap_truncated else term | trunc),
            torch.from_numpy(trunc),
            gamma,
            lam,
        )
        mask = torch.from_numpy(valid).reshape(-1)
        n = int(mask.sum())
        batch = Batch(
            obs=x_all[:T].reshape(T * N, -1)[mask],
            actions=torch.stack(act_buf).reshape(T * N, *act_buf[0].shape[1:])[mask],
            advantages=adv.reshape(-1)[mask],
            logp_old=logp_buf.reshape(-1)[mask],
            weights=torch.full((n,), 1.0 / n),
            returns=ret.reshape(-1)[mask],
            values=values.reshape(-1)[mask],
        )
        if self.obs_rms is not None:
            self.obs_rms.update(obs_buf[:T][valid])
        self.env_steps += T * N
        info = {
            "episode_returns": ep_returns,
            "episode_lengths": ep_lengths,
            "episode_end_steps": ep_end_steps,
            "env_steps": self.env_steps,
        }
        return batch, info

    def _return_std(
        self, rew: np.ndarray, done: np.ndarray, valid: np.ndarray, gamma: float
    ) -> float:
        """Run the discounted returns R_t through this rollout's rewards, merge the real
        steps' R_t into ``return_rms`` and return sqrt(Var[R] + ε)."""
        R = np.empty_like(rew)
        acc = self.disc_return
        for t in range(rew.shape[0]):
            acc = gamma * acc + rew[t]
            R[t] = acc
            acc = np.where(done[t], 0.0, acc)
        self.disc_return = acc
        self.return_rms.update(R[valid])
        return float(np.sqrt(self.return_rms.var[0] + self.return_rms.eps))
