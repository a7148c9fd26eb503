"""pgcore._checks, the shared validators: what each accepts, and that each refusal names the
argument and the value it got."""

import math

import numpy as np
import pytest
import torch

from pgcore import _checks as C


@pytest.mark.parametrize(
    "check, good, expected",
    [
        (C.check_number, float("nan"), "nan"),
        (C.check_finite, -3, -3.0),
        (C.check_positive, np.float32(0.5), 0.5),
        (C.check_positive, torch.tensor(2.0), 2.0),
        (C.check_non_negative, 0, 0.0),
        (C.check_fraction, 0.5, 0.5),
        (C.check_in_unit_interval, 1, 1.0),
        (C.check_in_unit_interval, 0.0, 0.0),
    ],
)
def test_accepts_and_converts(check, good, expected):
    out = check("x", good)
    assert type(out) is float
    assert (math.isnan(out) and expected == "nan") or out == expected


@pytest.mark.parametrize(
    "check, bad",
    [
        (C.check_number, "1.0"),
        (C.check_number, True),
        (C.check_number, None),
        (C.check_finite, float("inf")),
        (C.check_finite, float("nan")),
        (C.check_positive, 0.0),
        (C.check_positive, -1e-9),
        (C.check_positive, float("inf")),
        (C.check_positive, "0.1"),
        (C.check_positive, torch.tensor([1.0, 2.0])),
        (C.check_non_negative, -0.1),
        (C.check_non_negative, float("nan")),
        (C.check_fraction, 0.0),
        (C.check_fraction, 1.0),
        (C.check_fraction, float("nan")),
        (C.check_in_unit_interval, 1.5),
        (C.check_in_unit_interval, -0.01),
        (C.check_in_unit_interval, float("nan")),
    ],
)
def test_scalar_refusals_name_argument_and_value(check, bad):
    with pytest.raises(ValueError) as err:
        check("my_arg", bad)
    assert "my_arg" in str(err.value) and repr(bad)[:8] in str(err.value)


def test_check_int():
    assert C.check_int("n", 3) == 3 and type(C.check_int("n", 10.0)) is int
    assert C.check_int("n", np.int64(4)) == 4
    assert C.check_int("n", 0, minimum=0) == 0
    assert C.check_int("n", -5, minimum=None) == -5
    for bad, kw in [
        (0, {}),
        (-1, {}),
        (1.5, {}),
        (True, {}),
        ("3", {}),
        (float("nan"), {}),
        (None, {}),
        (5, {"maximum": 4}),
        (2, {"minimum": 3}),
    ]:
        with pytest.raises(ValueError, match="n must be"):
            C.check_int("n", bad, **kw)


def test_check_bool():
    assert C.check_bool("flag", True) is True
    for bad in ("yes", "false", 0, 1, None):
        with pytest.raises(ValueError, match="flag must be True or False"):
            C.check_bool("flag", bad)


def test_check_finite_tensor():
    t = torch.ones(3)
    assert C.check_finite_tensor("v", t) is t
    with pytest.raises(ValueError, match="v has 2 non-finite"):
        C.check_finite_tensor("v", torch.tensor([1.0, float("nan"), float("inf")]))
    with pytest.raises(ValueError, match="v must be a tensor"):
        C.check_finite_tensor("v", [1.0])


def test_check_probabilities():
    p = C.check_probabilities("p", torch.tensor([[1, 0], [0, 1]]))
    assert p.dtype == torch.float64
    q = torch.tensor([0.25, 0.75], dtype=torch.float32)
    assert C.check_probabilities("q", q).dtype == torch.float32
    for bad, match in [
        ([-0.1, 1.1], "negative"),
        ([0.2, 0.2], "sum to 1"),
        ([float("nan"), 1.0], "non-finite"),
        (0.5, "scalar"),
    ]:
        with pytest.raises(ValueError, match=f"p .*{match}|p {match}|p must .*{match}"):
            C.check_probabilities("p", torch.tensor(bad))
