"""Argument validators shared by every pgcore module.

Each ``check_*(name, value, ...)`` returns the value converted to a plain Python type, or raises
``ValueError`` whose message names the argument and repeats the value it got, e.g.
``"clip must be a finite number ≥ 0, got -0.2"``. They are called before any work is done, so a
refused call changes nothing.

Scalars must be real numbers: ``bool`` and ``str`` are refused (``"0.1"`` is not a number here),
as are NaN and ±∞. A one-element tensor is accepted and read with ``.item()``.
"""

from __future__ import annotations

import math
import numbers

import torch

__all__ = [
    "check_number",
    "check_finite",
    "check_positive",
    "check_non_negative",
    "check_int",
    "check_fraction",
    "check_in_unit_interval",
    "check_bool",
    "check_finite_tensor",
    "check_probabilities",
]


def _real(name: str, value, what: str) -> float:
    """``value`` as a float if it is a real number (not bool, not str), else ValueError."""
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.dtype == torch.bool:
        return float(value.item())
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be {what}, got {value!r} of type {type(value).__name__}")
    return float(value)


def check_number(name: str, value) -> float:
    """Any real number, NaN and ±∞ included (for arguments where those have a meaning)."""
    return _real(name, value, "a real number")


def check_finite(name: str, value) -> float:
    """A finite real number."""
    v = _real(name, value, "a finite number")
    if not math.isfinite(v):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return v


def check_positive(name: str, value) -> float:
    """A finite real number > 0."""
    v = _real(name, value, "a positive, finite number")
    if not math.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be a positive, finite number, got {value!r}")
    return v


def check_non_negative(name: str, value) -> float:
    """A finite real number ≥ 0."""
    v = _real(name, value, "a finite number ≥ 0")
    if not math.isfinite(v) or v < 0:
        raise ValueError(f"{name} must be a finite number ≥ 0, got {value!r}")
    return v


def check_int(name: str, value, minimum: int | None = 1, maximum: int | None = None) -> int:
    """An integer in [``minimum``, ``maximum``] (either bound may be None).

    ``bool`` is refused; a float is accepted only if it is integral (``10.0`` → 10).
    """
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_floating_point():
        value = int(value.item())
    ok = not isinstance(value, bool) and (
        isinstance(value, numbers.Integral)
        or (
            isinstance(value, numbers.Real)
            and math.isfinite(float(value))
            and float(value).is_integer()
        )
    )
    if not ok:
        raise ValueError(f"{name} must be an integer, got {value!r}")
    v = int(value)
    if minimum is not None and v < minimum:
        if minimum == 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
        raise ValueError(f"{name} must be an integer ≥ {minimum}, got {value!r}")
    if maximum is not None and v > maximum:
        raise ValueError(f"{name} must be an integer ≤ {maximum}, got {value!r}")
    return v


def check_fraction(name: str, value) -> float:
    """A real number strictly between 0 and 1."""
    v = _real(name, value, "a number in (0, 1)")
    if not 0.0 < v < 1.0:
        raise ValueError(f"{name} must be in (0, 1), got {value!r}")
    return v


def check_in_unit_interval(name: str, value) -> float:
    """A real number in [0, 1]."""
    v = _real(name, value, "a number in [0, 1]")
    if not 0.0 <= v <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")
    return v


def check_bool(name: str, value) -> bool:
    """A real ``bool`` (``"yes"``, ``"false"``, 0 and 1 are refused)."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return value


def check_finite_tensor(name: str, value: torch.Tensor) -> torch.Tensor:
    """A tensor with no NaN or ±∞ entry (returned unchanged)."""
    if not isinstance(value, torch.Tensor):
        raise ValueError(f"{name} must be a tensor, got {type(value).__name__}")
    if not torch.isfinite(value).all():
        bad = int((~torch.isfinite(value)).sum())
        raise ValueError(f"{name} has {bad} non-finite entries (NaN or ±inf)")
    return value


def check_probabilities(name: str, value, atol: float = 1e-6) -> torch.Tensor:
    """Rows of probability distributions along the last axis: finite, ≥ 0, each summing to 1.

    Integer and boolean tensors are converted to float64 (``[1, 0]`` is a valid distribution);
    a floating tensor keeps its dtype. Returns the (converted) tensor.
    """
    t = torch.as_tensor(value)
    if t.is_complex():
        raise ValueError(f"{name} must be real probabilities, got dtype {t.dtype}")
    if not t.is_floating_point():
        t = t.to(torch.float64)
    if t.ndim == 0:
        raise ValueError(
            f"{name} must have a last axis holding a distribution, got a scalar {value!r}"
        )
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} has non-finite entries: {value!r}")
    if (t < 0).any():
        raise ValueError(f"{name} has negative entries (min {t.min().item():.3g}): {value!r}")
    sums = t.sum(-1)
    err = (sums - 1.0).abs().max().item() if sums.numel() else 0.0
    if err > atol:
        raise ValueError(f"{name} rows must sum to 1 (largest error {err:.3g}): {value!r}")
    return t
