"""The diagnostics the updates report: TRPO's line-search record, NPG's step, PPO's β, approx KL
and value loss. Each value is checked against an independent computation."""

import torch

import pgcore as pg
from pgcore.examples import BernoulliPolicy, bernoulli_bandit
from tests.helpers import random_policy


def _tabular(seed=0, scale=1.0):
    mdp = pg.random_mdp(3, 3, gamma=0.9, seed=seed)
    pol = random_policy(3, 3, seed, scale)
    return mdp, pol, pg.exact_batch(mdp, pol)


def _half_quadratic(F, step):
    return 0.5 * float(step @ F @ step)


# -- TRPO ---------------------------------------------------------------------------------------
def test_trpo_accepted_step_reports_both_models():
    mdp, pol, batch = _tabular(seed=3)
    F = pg.fisher_matrix(pol, batch.obs, batch.weights)
    theta0 = pg.flat_params(pol)
    info = pg.trpo_step(pol, batch, max_kl=0.05, cg_iters=20, damping=0.1)
    step = pg.flat_params(pol) - theta0
    assert info["accepted"] is True and info["step_taken"] is True
    assert isinstance(info["backtracks"], int) and info["backtracks"] >= 0
    assert info["step_fraction"] == 0.5 ** info["backtracks"]
    # damped model: ½Δᵀ(F + κI)Δ = c²ᵏδ; undamped model: ½ΔᵀFΔ of the step actually taken
    damped = _half_quadratic(F + 0.1 * torch.eye(len(step), dtype=F.dtype), step)
    assert abs(info["predicted_kl"] - damped) < 1e-8 * damped
    assert abs(info["predicted_kl"] - 0.05 * info["step_fraction"] ** 2) < 1e-15
    undamped = _half_quadratic(F, step)
    assert abs(info["predicted_kl_undamped"] - undamped) < 1e-8 * undamped
    assert info["predicted_kl_undamped"] < info["predicted_kl"]  # κ > 0 shrinks the model


def test_trpo_undamped_equals_damped_without_damping():
    mdp, pol, batch = _tabular(seed=3)
    info = pg.trpo_step(pol, batch, max_kl=0.01, cg_iters=20)
    assert info["accepted"]
    assert abs(info["predicted_kl_undamped"] - info["predicted_kl"]) < 1e-10 * info["predicted_kl"]


def test_trpo_backtracks_count_the_shrinkings():
    mdp, pol, batch = _tabular(seed=0)
    theta0 = pg.flat_params(pol)
    info = pg.trpo_step(pol, batch, max_kl=1.0, cg_iters=20)
    assert info["accepted"] and info["backtracks"] >= 1
    # the accepted step is c^k times the full step of natural_gradient_step with the same δ
    ref = copy_of(pol, theta0)
    ng = pg.natural_gradient_step(ref, batch, max_kl=1.0, cg_iters=20)
    full = pg.flat_params(ref) - theta0
    torch.testing.assert_close(
        pg.flat_params(pol) - theta0, 0.5 ** info["backtracks"] * full, rtol=1e-12, atol=1e-14
    )
    assert ng["backtracks"] == 0 and ng["accepted"] is True


def copy_of(pol, theta):
    import copy

    other = copy.deepcopy(pol)
    pg.set_flat_params(other, theta)
    return other


def test_trpo_rejection_reports_the_tries_and_the_full_step_model():
    mdp, pol, batch = _tabular(seed=0)
    theta0 = pg.flat_params(pol)
    F = pg.fisher_matrix(pol, batch.obs, batch.weights)
    info = pg.trpo_step(pol, batch, max_kl=1.0, cg_iters=20, backtrack_iters=1)
    assert info["accepted"] is False and info["step_taken"] is False
    assert info["backtracks"] == 1 and info["step_fraction"] == 0.0 and info["predicted_kl"] == 0.0
    assert torch.equal(pg.flat_params(pol), theta0)
    ref = copy_of(pol, theta0)
    pg.natural_gradient_step(ref, batch, max_kl=1.0, cg_iters=20)
    full = pg.flat_params(ref) - theta0
    assert abs(info["predicted_kl_undamped"] - _half_quadratic(F, full)) < 1e-8


# -- NPG: a step that did not happen is not reported (b4) ---------------------------------------
def test_npg_reports_no_step_when_cg_returns_zero():
    """σ'(25) ≈ 1.4e-11 is below CG's tolerance, so x = 0 although F⁻¹∇J = 1."""
    mdp, pol = bernoulli_bandit(), BernoulliPolicy(25.0)
    batch = pg.exact_batch(mdp, pol)
    for kwargs in (dict(lr=0.5), dict(max_kl=0.01)):
        info = pg.natural_gradient_step(pol, batch, **kwargs)
        assert info["step_taken"] is False and info["accepted"] is False
        assert info["step_size"] == 0.0 and info["predicted_kl"] == 0.0
        assert pol.theta.item() == 25.0
    info = pg.trpo_step(pol, batch, max_kl=0.01)
    assert info["accepted"] is False and pol.theta.item() == 25.0


def test_npg_reports_no_step_when_the_parameters_do_not_change():
    mdp, pol, batch = _tabular(seed=1)
    theta0 = pg.flat_params(pol)
    info = pg.natural_gradient_step(pol, batch, lr=1e-300)
    assert info["step_taken"] is False and torch.equal(pg.flat_params(pol), theta0)


def test_npg_step_keys():
    mdp, pol, batch = _tabular(seed=1)
    info = pg.natural_gradient_step(pol, batch, max_kl=0.02, cg_iters=20)
    assert info["step_taken"] is True and info["accepted"] is True and info["backtracks"] == 0
    assert abs(info["predicted_kl"] - 0.02) < 1e-12
    assert abs(info["predicted_kl_undamped"] - 0.02) < 1e-10  # κ = 0: the two models agree


# -- PPO ----------------------------------------------------------------------------------------
def _k3(policy, batch):
    with torch.no_grad():
        logr = policy.distribution(batch.obs).log_prob(batch.actions) - batch.logp_old
        return float((batch.weights * ((logr.exp() - 1) - logr)).sum() / batch.weights.sum())


def test_ppo_approx_kl_is_the_whole_batch_estimate_after_the_update():
    mdp, pol, batch = _tabular(seed=2)
    info = pg.ppo_update(pol, batch, epochs=5, lr=0.05)
    assert abs(info["approx_kl"] - _k3(pol, batch)) < 1e-12
    assert "last_minibatch_approx_kl" in info
    assert info["last_minibatch_approx_kl"] != info["approx_kl"]  # measured before the last step


def test_ppo_reports_the_beta_used_and_the_next_one():
    mdp, pol, batch = _tabular(seed=6)
    ak = pg.AdaptiveKL(beta=1.0, d_targ=1e-4)
    info = pg.ppo_update(pol, batch, objective="adaptive-kl", beta=ak, epochs=20, lr=0.1)
    assert info["beta"] == 1.0 and info["beta_next"] == 2.0 == ak.beta
    info = pg.ppo_update(
        pol, pg.exact_batch(mdp, pol), objective="adaptive-kl", beta=ak, epochs=20, lr=0.1
    )
    assert info["beta"] == 2.0 and info["beta_next"] == ak.beta
    info = pg.ppo_update(
        pol, pg.exact_batch(mdp, pol), objective="fixed-kl", beta=3.0, epochs=2, lr=0.1
    )
    assert info["beta"] == 3.0 == info["beta_next"]


def test_ppo_value_loss_is_the_weighted_mse_without_the_half():
    torch.manual_seed(0)
    pol, vf = pg.CategoricalMLPPolicy(3, 2), pg.ValueNetwork(3)
    obs = torch.randn(40, 3)
    w = torch.rand(40) + 0.1
    with torch.no_grad():
        d = pol.distribution(obs)
        act = d.sample()
        returns = torch.randn(40)
        batch = pg.Batch(
            obs, act, torch.randn(40), d.log_prob(act), w, returns=returns, values=vf(obs)
        )
        mse = float((w * (vf(obs) - returns) ** 2).sum() / w.sum())
    opt = torch.optim.Adam(list(pol.parameters()) + list(vf.parameters()), lr=1e-3, eps=1e-5)
    info = pg.ppo_update(pol, batch, epochs=1, optimizer=opt, value_fn=vf, clip_vloss=0.2)
    assert abs(info["value_loss"] - mse) < 1e-6 * mse  # one full-batch step: measured before it


def test_ppo_loss_matches_its_formula():
    mdp, pol, batch = _tabular(seed=4)
    with torch.no_grad():
        old_dist = pol.distribution(batch.obs)
    with torch.no_grad():
        pg.set_flat_params(
            pol,
            pg.flat_params(pol)
            + 0.3 * torch.randn(9, dtype=torch.float64, generator=torch.Generator().manual_seed(0)),
        )
    r = pg.ratio(pol, batch)
    A, w = batch.advantages, batch.weights
    loss, stats = pg.ppo_loss(pol, batch, objective="clip", clip=0.2, ent_coef=0.01)
    ent = pol.distribution(batch.obs).entropy()
    ref = (
        -(w * torch.minimum(r * A, r.clamp(0.8, 1.2) * A)).sum() / w.sum()
        - 0.01 * (w * ent).sum() / w.sum()
    )
    torch.testing.assert_close(loss, ref, rtol=1e-12, atol=1e-14)
    assert abs(stats["clipfrac"] - float((w * ((r - 1).abs() > 0.2)).sum() / w.sum())) < 1e-12
    loss, _ = pg.ppo_loss(pol, batch, objective="fixed-kl", beta=2.0, old_dist=old_dist)
    ref = -(w * r * A).sum() / w.sum() + 2.0 * pg.mean_kl(old_dist, pol.distribution(batch.obs), w)
    torch.testing.assert_close(loss, ref, rtol=1e-12, atol=1e-14)


def test_update_diagnostics_on_the_exact_batch():
    mdp, pol, batch = _tabular(seed=5)
    with torch.no_grad():
        old_dist = pol.distribution(batch.obs)
    p_old = pol.probs().detach()
    pg.vpg_step(pol, batch, lr=1.0)
    diag = pg.update_diagnostics(pol, batch, old_dist, clip=0.1)
    p = pol.probs().detach()
    d = mdp.occupancy(p_old)
    assert abs(diag["kl"] - float((d * pg.kl_categorical(p_old, p)).sum())) < 1e-12
    # on the exact batch (every action, weight d·π_old) the k3 estimate is the exact KL
    assert abs(diag["approx_kl"] - diag["kl"]) < 1e-12
    assert diag["ratio_max"] >= 1.0 >= diag["ratio_min"]
    assert 0.0 <= diag["clipfrac"] <= 1.0
