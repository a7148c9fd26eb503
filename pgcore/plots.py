"""Geometry and summaries the figures share: the probability simplex in the plane, learning curves."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["simplex_xy", "mean_and_spread"]

_SQRT3_2 = math.sqrt(3.0) / 2.0


def simplex_xy(p) -> np.ndarray:
    """Barycentric → 2-D coordinates for 3-action distributions [..., 3] → [..., 2].

    The vertices e₁, e₂, e₃ go to (0, 0), (1, 0) and (½, √3/2).
    """
    p = np.asarray(p, dtype=float)
    if p.shape[-1] != 3:
        raise ValueError(f"simplex_xy needs distributions over 3 actions, got shape {p.shape}")
    return np.stack([p[..., 1] + 0.5 * p[..., 2], _SQRT3_2 * p[..., 2]], axis=-1)


def mean_and_spread(curves: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, min and max over seeds of equal-length curves (for a shaded learning curve)."""
    arr = np.vstack([np.asarray(c, dtype=float) for c in curves])
    return arr.mean(0), arr.min(0), arr.max(0)
