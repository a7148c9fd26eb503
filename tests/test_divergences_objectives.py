"""Divergences and surrogate objectives against hand-computed values."""

import math

import numpy as np
import pytest
import torch
from torch.distributions import Categorical, Independent, Normal, kl_divergence

import pgcore as pg


def test_kl_categorical_matches_numpy_and_conventions():
    p = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    q = torch.tensor([0.2, 0.2, 0.6], dtype=torch.float64)
    expected = float(np.sum(p.numpy() * np.log(p.numpy() / q.numpy())))
    assert pg.kl_categorical(p, q).item() == pytest.approx(expected, abs=1e-14)
    # 0 log 0 = 0
    p0 = torch.tensor([0.0, 0.5, 0.5], dtype=torch.float64)
    assert pg.kl_categorical(p0, q).item() == pytest.approx(
        0.5 * math.log(0.5 / 0.2) + 0.5 * math.log(0.5 / 0.6), abs=1e-14
    )
    # +inf where q = 0 < p
    assert pg.kl_categorical(q, p0).item() == math.inf
    assert pg.kl_categorical(p, p).item() == 0.0
    # batched along the last axis
    assert pg.kl_categorical(torch.stack([p, q]), torch.stack([q, p])).shape == (2,)


def test_total_variation_definition():
    p = torch.tensor([0.5, 0.3, 0.2])
    q = torch.tensor([0.2, 0.2, 0.6])
    assert pg.total_variation(p, q).item() == pytest.approx(0.5 * (0.3 + 0.1 + 0.4))
    assert pg.total_variation(p, torch.tensor([0.0, 0.0, 1.0])).item() == pytest.approx(0.8)


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="same shape"):
        pg.kl_categorical(torch.ones(3) / 3, torch.ones(2) / 2)
    with pytest.raises(ValueError, match="same shape"):
        pg.total_variation(torch.ones(3) / 3, torch.ones(2) / 2)


def test_kl_gaussian_matches_torch_and_closed_form():
    mp, sp = torch.tensor([0.0, 1.0]), torch.tensor([1.0, 0.5])
    mq, sq = torch.tensor([0.5, -1.0]), torch.tensor([2.0, 0.5])
    ref = kl_divergence(Independent(Normal(mp, sp), 1), Independent(Normal(mq, sq), 1))
    assert pg.kl_gaussian(mp, sp, mq, sq).item() == pytest.approx(ref.item(), rel=1e-6)
    # 1-D closed form
    one = math.log(2.0) + (1.0 + 0.25) / 8.0 - 0.5
    assert pg.kl_gaussian(mp[:1], sp[:1], mq[:1], sq[:1]).item() == pytest.approx(one, rel=1e-6)
    with pytest.raises(ValueError, match="strictly positive"):
        pg.kl_gaussian(mp, torch.tensor([0.0, 1.0]), mq, sq)


def test_mean_kl_is_weighted():
    p = Categorical(probs=torch.tensor([[0.5, 0.5], [0.9, 0.1]], dtype=torch.float64))
    q = Categorical(probs=torch.tensor([[0.5, 0.5], [0.5, 0.5]], dtype=torch.float64))
    kl1 = pg.kl_categorical(p.probs[1], q.probs[1]).item()
    w = torch.tensor([3.0, 1.0], dtype=torch.float64)
    assert pg.mean_kl(p, q, w).item() == pytest.approx(kl1 / 4)
    assert pg.mean_kl(p, q).item() == pytest.approx(kl1 / 2)


def test_clipped_surrogate_cases_by_hand():
    r = torch.tensor([0.5, 1.0, 1.5, 0.5, 1.0, 1.5])
    A = torch.tensor([1.0, 1.0, 1.0, -1.0, -1.0, -1.0])
    eps = 0.2
    # min(r A, clip(r) A): A>0 → min(r, clip) ; A<0 → -max(r, clip)
    expected = [0.5, 1.0, 1.2, -0.8, -1.0, -1.5]
    terms = [pg.clipped_surrogate(r[i : i + 1], A[i : i + 1], eps).item() for i in range(6)]
    np.testing.assert_allclose(terms, expected, atol=1e-7)
    assert pg.clipped_surrogate(r, A, eps).item() == pytest.approx(np.mean(expected), abs=1e-7)
    w = torch.tensor([1.0, 0, 0, 0, 0, 3.0])
    assert pg.clipped_surrogate(r, A, eps, w).item() == pytest.approx((0.5 - 4.5) / 4, abs=1e-7)
    # clip = 0 is allowed (a pessimistic bound at r=1)
    assert pg.clipped_surrogate(torch.tensor([1.0]), torch.tensor([2.0]), 0.0).item() == 2.0


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf"), "x", None])
def test_clipped_surrogate_rejects_bad_clip(bad):
    with pytest.raises(ValueError, match="clip"):
        pg.clipped_surrogate(torch.ones(2), torch.ones(2), bad)


def test_clip_fraction():
    r = torch.tensor([0.7, 0.9, 1.0, 1.1, 1.3])
    assert pg.clip_fraction(r, 0.2).item() == pytest.approx(2 / 5)


def test_surrogate_and_ratio_on_exact_batch():
    mdp = pg.random_mdp(3, 2, seed=0)
    pol = pg.TabularSoftmaxPolicy(3, 2, logits=torch.randn(3, 2, dtype=torch.float64))
    batch = pg.exact_batch(mdp, pol)
    # at θ' = θ the ratio is 1 and the surrogate is E_{d,π}[A] = 0
    assert torch.allclose(pg.ratio(pol, batch), torch.ones(len(batch), dtype=torch.float64))
    assert abs(pg.surrogate(pol, batch).item()) < 1e-14


def test_kl_penalized_surrogate():
    mdp = pg.random_mdp(3, 2, seed=1)
    pol = pg.TabularSoftmaxPolicy(3, 2)
    batch = pg.exact_batch(mdp, pol)
    old = pol.distribution(batch.obs)
    new = pg.TabularSoftmaxPolicy(
        3, 2, logits=torch.tensor([[1.0, 0], [0, 1], [0.5, 0]], dtype=torch.float64)
    )
    val = pg.kl_penalized_surrogate(new, batch, 2.0, old)
    expected = pg.surrogate(new, batch) - 2.0 * pg.mean_kl(
        old, new.distribution(batch.obs), batch.weights
    )
    assert val.item() == pytest.approx(expected.item(), abs=1e-14)
    with pytest.raises(ValueError, match="beta"):
        pg.kl_penalized_surrogate(new, batch, -1.0, old)
