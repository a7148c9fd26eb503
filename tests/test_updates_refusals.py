"""Bad inputs: each raises a ValueError naming the argument (and, for scalars, the value) before
any work, and changes nothing (parameters, optimiser state, β). Non-finite updates are undone."""

import copy
import dataclasses

import pytest
import torch

import pgcore as pg
from pgcore.examples import BernoulliPolicy, bernoulli_bandit
from tests.helpers import random_policy

NAN, INF = float("nan"), float("inf")


def _tabular(seed=0):
    mdp = pg.random_mdp(3, 3, gamma=0.9, seed=seed)
    pol = random_policy(3, 3, seed, 1.0)
    return mdp, pol, pg.exact_batch(mdp, pol)


def _warm_optimizer(pol, batch):
    """An Adam optimiser that has taken steps already, so its state is not empty."""
    opt = torch.optim.Adam(pol.parameters(), lr=0.01, eps=1e-5)
    pg.ppo_update(pol, batch, epochs=3, optimizer=opt)
    return opt


def _state(pol, opt=None, beta=None):
    return (
        copy.deepcopy(pol.state_dict()),
        None if opt is None else copy.deepcopy(opt.state_dict()),
        None if beta is None else beta.beta,
    )


def _assert_same(before, pol, opt=None, beta=None):
    params, opt_state, b = before
    for k, v in pol.state_dict().items():
        assert torch.equal(v, params[k]), k
    if opt is not None:
        now = opt.state_dict()
        assert now["param_groups"] == opt_state["param_groups"]
        assert now["state"].keys() == opt_state["state"].keys()
        for i, st in now["state"].items():
            for key, val in st.items():
                assert torch.equal(
                    torch.as_tensor(val), torch.as_tensor(opt_state["state"][i][key])
                ), key
    if beta is not None:
        assert beta.beta == b


# -- ppo_update: every hyperparameter ---------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(clip=-0.2), "clip"),
        (dict(clip=NAN), "clip"),
        (dict(clip="0.2"), "clip"),
        (dict(lr=0.0), "lr"),
        (dict(lr=-1e-3), "lr"),
        (dict(lr=INF), "lr"),
        (dict(epochs=0), "epochs"),
        (dict(epochs=2.5), "epochs"),
        (dict(epochs=True), "epochs"),
        (dict(minibatch_size=0), "minibatch_size"),
        (dict(minibatch_size=-4), "minibatch_size"),
        (dict(ent_coef=-0.01), "ent_coef"),
        (dict(ent_coef=NAN), "ent_coef"),
        (dict(vf_coef=-0.5), "vf_coef"),
        (dict(vf_coef=INF), "vf_coef"),
        (dict(max_grad_norm=0.0), "max_grad_norm"),
        (dict(max_grad_norm=-1.0), "max_grad_norm"),
        (dict(target_kl=0.0), "target_kl"),
        (dict(target_kl=NAN), "target_kl"),
        (dict(clip_vloss=0.0), "clip_vloss"),
        (dict(normalize_advantages="yes"), "normalize_advantages"),
        (dict(objective="fixed-kl", beta=-1.0), "beta"),
        (dict(objective="fixed-kl", beta=NAN), "beta"),
        (dict(objective="adaptive-kl", beta=1.0), "adaptive-kl"),
        (dict(objective="bogus"), "objective"),
        (dict(generator=0), "generator"),
        (dict(optimizer="adam"), "optimizer"),
    ],
)
def test_ppo_update_refuses_bad_hyperparameters_and_changes_nothing(kwargs, name):
    mdp, pol, batch = _tabular()
    opt = _warm_optimizer(pol, batch)
    before = _state(pol, opt)
    kwargs = {"optimizer": opt, **kwargs} if "lr" not in kwargs else kwargs
    with pytest.raises(ValueError, match=name):
        pg.ppo_update(pol, batch, **kwargs)
    _assert_same(before, pol, opt)


def test_ppo_update_non_finite_update_is_undone():
    """A learning rate far too large: Adam moves the logits by ~lr, the KL becomes infinite."""
    mdp, pol, batch = _tabular(seed=1)
    opt = _warm_optimizer(pol, batch)
    ak = pg.AdaptiveKL(beta=1.0, d_targ=0.01)
    for group in opt.param_groups:
        group["lr"] = 1e300
    before = _state(pol, opt, ak)
    with pytest.raises(pg.NonFiniteUpdateError) as err:
        pg.ppo_update(pol, batch, objective="adaptive-kl", beta=ak, epochs=5, optimizer=opt)
    msg = str(err.value)
    assert "learning rate" in msg and "1e+300" in msg and "restored" in msg
    assert isinstance(err.value, ValueError)
    _assert_same(before, pol, opt, ak)


def test_ppo_update_non_finite_with_its_own_optimizer():
    mdp, pol, batch = _tabular(seed=2)
    before = _state(pol)
    with pytest.raises(pg.NonFiniteUpdateError, match="learning rate"):
        pg.ppo_update(pol, batch, epochs=5, lr=1e300)
    _assert_same(before, pol)


def test_ppo_update_restores_on_an_exception_inside_the_loop():
    """A value network whose output has the wrong shape fails on the first minibatch: nothing moves."""
    torch.manual_seed(0)
    pol = pg.CategoricalMLPPolicy(3, 2)
    vf = torch.nn.Sequential(torch.nn.Linear(3, 1))  # returns [B, 1], not [B]
    obs = torch.randn(16, 3)
    with torch.no_grad():
        d = pol.distribution(obs)
        act = d.sample()
        batch = pg.Batch(
            obs,
            act,
            torch.randn(16),
            d.log_prob(act),
            torch.full((16,), 1 / 16),
            returns=torch.randn(16),
        )
    before_pol, before_vf = copy.deepcopy(pol.state_dict()), copy.deepcopy(vf.state_dict())
    with pytest.raises(ValueError, match="shape"):
        pg.ppo_update(pol, batch, value_fn=vf, lr=1e-2)
    assert all(torch.equal(v, before_pol[k]) for k, v in pol.state_dict().items())
    assert all(torch.equal(v, before_vf[k]) for k, v in vf.state_dict().items())


# -- vpg, npg, trpo ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "call, name",
    [
        (lambda p, b: pg.vpg_step(p, b, lr=NAN), "lr"),
        (lambda p, b: pg.vpg_step(p, b, lr="0.1"), "lr"),
        (lambda p, b: pg.natural_gradient_step(p, b, lr=0.0), "lr"),
        (lambda p, b: pg.natural_gradient_step(p, b, 0.01, cg_iters=True), "cg_iters"),
        (lambda p, b: pg.natural_gradient_step(p, b, 0.01, damping=NAN), "damping"),
        (lambda p, b: pg.trpo_step(p, b, max_kl="0.01"), "max_kl"),
        (lambda p, b: pg.trpo_step(p, b, max_kl=INF), "max_kl"),
        (lambda p, b: pg.trpo_step(p, b, 0.01, cg_iters=2.5), "cg_iters"),
        (lambda p, b: pg.trpo_step(p, b, 0.01, backtrack_coeff=0.0), "backtrack_coeff"),
        (lambda p, b: pg.trpo_step(p, b, 0.01, backtrack_coeff=1.0), "backtrack_coeff"),
        (lambda p, b: pg.trpo_step(p, b, 0.01, backtrack_coeff=NAN), "backtrack_coeff"),
        (lambda p, b: pg.trpo_step(p, b, 0.01, backtrack_iters=-1), "backtrack_iters"),
        (lambda p, b: pg.trpo_step(p, b, 0.01, damping=INF), "damping"),
        (lambda p, b: pg.trpo_step(p, "not a batch", 0.01), "batch"),
        (lambda p, b: pg.dual_gradient_descent(p, b, 0.01, dual_lr=1.0, lam0=-1.0), "lam0"),
        (lambda p, b: pg.dual_gradient_descent(p, b, 0.01, dual_lr=1.0, iters=0), "iters"),
    ],
)
def test_step_refusals_change_nothing(call, name):
    mdp, pol, batch = _tabular()
    before = _state(pol)
    with pytest.raises(ValueError, match=name):
        call(pol, batch)
    _assert_same(before, pol)


@pytest.mark.parametrize(
    "step",
    [
        lambda p, b: pg.vpg_step(p, b, lr=1e308),
        lambda p, b: pg.natural_gradient_step(p, b, lr=1e308),
    ],
)
def test_overflowing_step_raises_before_writing(step):
    mdp, pol, batch = _tabular(seed=3)
    batch = dataclasses.replace(batch, advantages=1e3 * batch.advantages)  # ‖lr·g‖ overflows
    before = _state(pol)
    with pytest.raises(pg.NonFiniteUpdateError, match="lr"):
        step(pol, batch)
    _assert_same(before, pol)


def test_npg_b4_example_takes_no_step_and_says_so():
    pol = BernoulliPolicy(25.0)
    info = pg.natural_gradient_step(pol, pg.exact_batch(bernoulli_bandit(), pol), lr=1.0)
    assert info["step_taken"] is False and pol.theta.item() == 25.0


# -- small APIs -------------------------------------------------------------------------------------
@pytest.mark.parametrize("fn", [pg.kl_categorical, pg.total_variation])
@pytest.mark.parametrize(
    "p, q, match",
    [
        ([-0.1, 1.1], [0.5, 0.5], "p has negative"),
        ([0.5, 0.5], [0.7, 0.7], "q rows must sum to 1"),
        ([NAN, 1.0], [0.5, 0.5], "p has non-finite"),
        ([0.5, 0.5], [0.2, 0.3, 0.5], "same shape"),
    ],
)
def test_divergences_refuse_non_distributions(fn, p, q, match):
    with pytest.raises(ValueError, match=match):
        fn(torch.tensor(p, dtype=torch.float64), torch.tensor(q, dtype=torch.float64))


def test_divergences_read_integer_inputs_as_probabilities():
    half = torch.tensor([0.5, 0.5], dtype=torch.float64)
    assert pg.kl_categorical(torch.tensor([1, 0]), half).item() == pytest.approx(0.6931471805599453)
    assert pg.kl_categorical(half, torch.tensor([1, 0])).item() == float("inf")
    assert pg.total_variation(torch.tensor([1, 0]), torch.tensor([0, 1])).item() == 1.0


@pytest.mark.parametrize(
    "args, match",
    [
        ((0.0, NAN, 0.0, 1.0), "std_p"),
        ((0.0, 1.0, 0.0, 0.0), "std_q"),
        ((0.0, -1.0, 0.0, 1.0), "std_p"),
        ((INF, 1.0, 0.0, 1.0), "mean_p"),
        ((0.0, 1.0, NAN, 1.0), "mean_q"),
    ],
)
def test_kl_gaussian_refuses(args, match):
    with pytest.raises(ValueError, match=match):
        pg.kl_gaussian(*(torch.tensor([a]) for a in args))


def test_clipped_surrogate_refuses_broadcasting():
    r, A = torch.ones(4, 1), torch.ones(4)
    with pytest.raises(ValueError, match="adv"):
        pg.clipped_surrogate(r, A, 0.2)
    with pytest.raises(ValueError, match="weights"):
        pg.clipped_surrogate(torch.ones(4), A, 0.2, torch.ones(3))
    with pytest.raises(ValueError, match="weights"):
        pg.clip_fraction(torch.ones(4), 0.2, torch.ones(4, 1))
    with pytest.raises(ValueError, match="clip"):
        pg.clipped_surrogate(torch.ones(4), A, -0.1)


@pytest.mark.parametrize(
    "b, kwargs, match",
    [
        (torch.tensor([1.0, NAN]), {}, "b has 1 non-finite"),
        (torch.ones(2), {"iters": 0}, "iters"),
        (torch.ones(2), {"iters": -1}, "iters"),
        (torch.ones(2), {"tol": NAN}, "tol"),
        (torch.ones(2), {"tol": -1.0}, "tol"),
        (torch.ones(2, 1), {}, "1-D"),
    ],
)
def test_conjugate_gradient_refuses_before_any_product(b, kwargs, match):
    calls = []

    def matvec(v):
        calls.append(1)
        return v

    with pytest.raises(ValueError, match=match):
        pg.conjugate_gradient(matvec, b, **kwargs)
    assert calls == []


def test_adaptive_kl_refusals_leave_beta():
    for bad in (dict(beta=INF), dict(beta="1"), dict(d_targ=True)):
        with pytest.raises(ValueError):
            pg.AdaptiveKL(**{"beta": 1.0, "d_targ": 0.01, **bad})
    ak = pg.AdaptiveKL(beta=1.0, d_targ=0.01)
    for bad in (NAN, -1.0, INF, "0.1"):
        with pytest.raises(ValueError, match="kl"):
            ak.update(bad)
        assert ak.beta == 1.0


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: pg.CategoricalMLPPolicy(3, 2, hidden=64), "hidden"),
        (lambda: pg.CategoricalMLPPolicy(3, 2, hidden="64"), "hidden"),
        (lambda: pg.CategoricalMLPPolicy(3, 2, hidden=(0,)), "hidden"),
        (lambda: pg.GaussianMLPPolicy(3, 1, hidden=(-8,)), "hidden"),
        (lambda: pg.GaussianMLPPolicy(3, 1, log_std_init=NAN), "log_std_init"),
        (lambda: pg.GaussianMLPPolicy(3, 0), "act_dim"),
        (lambda: pg.ValueNetwork(0), "obs_dim"),
        (lambda: pg.TabularSoftmaxPolicy(2.5, 2), "n_states"),
        (lambda: pg.random_mdp(3, 2, seed=-1), "seed"),
        (lambda: pg.random_mdp(3, 2, gamma="0.9"), "gamma"),
        (lambda: pg.random_mdp(0, 2), "n_states"),
        (lambda: pg.chain_mdp(slip=NAN), "slip"),
    ],
)
def test_constructors_refuse(make, match):
    with pytest.raises(ValueError, match=match):
        make()
