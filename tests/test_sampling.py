"""Unit and property tests of pgcore.sampling (importance sampling over actions)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import pgcore
from pgcore import sampling

SETTINGS = settings(max_examples=50, deadline=None)

cases = st.tuples(st.integers(1, 8), st.integers(0, 10_000), st.floats(0.1, 3.0))


def _pair(k, seed, scale):
    rng = np.random.default_rng(seed)
    p = torch.softmax(torch.as_tensor(scale * rng.standard_normal(k)), -1)
    q = torch.softmax(torch.as_tensor(scale * rng.standard_normal(k)), -1)
    f = torch.as_tensor(rng.standard_normal(k))
    return p, q, f


@SETTINGS
@given(cases)
def test_estimator_is_unbiased_exactly(case):
    p, q, f = _pair(*case)
    w = sampling.importance_weights(p, q)
    assert (q * w * f).sum().item() == pytest.approx(sampling.is_mean(f, p).item(), abs=1e-12)


@SETTINGS
@given(cases, st.integers(1, 50))
def test_variance_formula_matches_the_definition(case, n):
    p, q, f = _pair(*case)
    w = sampling.importance_weights(p, q)
    mu = (p * f).sum()
    direct = (q * (w * f - mu) ** 2).sum() / n
    assert sampling.is_variance(f, p, q, n).item() == pytest.approx(
        direct.item(), rel=1e-9, abs=1e-12
    )


@SETTINGS
@given(cases)
def test_weight_second_moment_is_at_least_exp_kl(case):
    p, q, _ = _pair(*case)
    m2 = sampling.weight_second_moment(p, q).item()
    assert m2 >= np.exp(pgcore.kl_categorical(p, q).item()) * (1 - 1e-12)
    assert m2 >= 1.0 - 1e-12  # = 1 + chi-square


def test_variance_is_zero_for_identical_distributions_and_constant_f():
    p = torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64)
    assert sampling.is_variance(torch.ones(3), p, p, 10).item() == pytest.approx(0.0, abs=1e-15)


def test_sampled_estimates_agree_with_exact_moments():
    p = torch.tensor([0.7, 0.2, 0.1], dtype=torch.float64)
    q = torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64)
    f = torch.tensor([1.0, -1.0, 2.0], dtype=torch.float64)
    est = sampling.is_estimates(
        f, p, q, n=20, repeats=20000, generator=torch.Generator().manual_seed(0)
    )
    var = sampling.is_variance(f, p, q, n=20).item()
    assert est.shape == (20000,)
    # the mean is within 5 standard errors, the variance within 5%
    assert abs(est.mean().item() - sampling.is_mean(f, p).item()) < 5 * np.sqrt(var / 20000)
    assert est.var().item() == pytest.approx(var, rel=0.05)


def test_bad_inputs_raise():
    p = torch.tensor([0.5, 0.5], dtype=torch.float64)
    with pytest.raises(ValueError, match="positive wherever"):
        sampling.importance_weights(p, torch.tensor([1.0, 0.0]))
    with pytest.raises(ValueError, match="same shape"):
        sampling.importance_weights(p, torch.tensor([1.0]))
    with pytest.raises(ValueError, match="non-negative"):
        sampling.importance_weights(torch.tensor([1.5, -0.5]), p)
    with pytest.raises(ValueError, match="positive integers"):
        sampling.is_estimates(torch.ones(2), p, p, n=0, repeats=1)


def test_zero_target_mass_is_allowed_where_the_proposal_is_zero():
    p = torch.tensor([1.0, 0.0], dtype=torch.float64)
    q = torch.tensor([1.0, 0.0], dtype=torch.float64)
    assert torch.equal(
        sampling.importance_weights(p, q), torch.tensor([1.0, 0.0], dtype=torch.float64)
    )
