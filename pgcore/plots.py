"""Plot helpers shared by the chapters: one style, the probability simplex, learning curves."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np

__all__ = ["use_book_style", "simplex_xy", "draw_simplex", "mean_and_spread"]

_SQRT3_2 = math.sqrt(3.0) / 2.0


def use_book_style() -> None:
    """The book's matplotlib defaults: readable sizes, light grid, no top/right spines."""
    plt.rcParams.update(
        {
            "figure.figsize": (7.0, 3.6),
            "figure.dpi": 100,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.titlesize": 11,
            "axes.labelsize": 10,
            "legend.fontsize": 9,
            "legend.frameon": False,
            "savefig.bbox": "tight",
        }
    )


def simplex_xy(p) -> np.ndarray:
    """Barycentric → 2-D coordinates for 3-action distributions [..., 3] → [..., 2].

    The vertices e₁, e₂, e₃ go to (0, 0), (1, 0) and (½, √3/2).
    """
    p = np.asarray(p, dtype=float)
    if p.shape[-1] != 3:
        raise ValueError(f"simplex_xy needs distributions over 3 actions, got shape {p.shape}")
    return np.stack([p[..., 1] + 0.5 * p[..., 2], _SQRT3_2 * p[..., 2]], axis=-1)


def draw_simplex(ax, labels=("a₁", "a₂", "a₃")) -> None:
    """Draw the triangle outline with vertex labels and no axes."""
    corners = simplex_xy(np.eye(3))
    ax.plot(*np.vstack([corners, corners[:1]]).T, color="0.3", lw=1)
    offsets = [(-0.05, -0.05), (0.05, -0.05), (0.0, 0.05)]
    for (x, y), (dx, dy), lab in zip(corners, offsets, labels):
        ax.text(x + dx, y + dy, lab, ha="center", va="center")
    ax.set_aspect("equal")
    ax.set_xlim(-0.1, 1.1)
    ax.set_ylim(-0.1, _SQRT3_2 + 0.1)
    ax.axis("off")


def mean_and_spread(curves: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, min and max over seeds of equal-length curves (for a shaded learning curve)."""
    arr = np.vstack([np.asarray(c, dtype=float) for c in curves])
    return arr.mean(0), arr.min(0), arr.max(0)
