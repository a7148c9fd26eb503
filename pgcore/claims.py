"""A claim is a computation: the two helpers that tie the book's prose to its cells.

The book promises that every sentence stating a result of its own computations is backed by
the cell next to it. A chapter does this in one of two ways:

* the value is **glued** and the prose shows it with ``{glue:text}`` (:func:`glue_values`
  glues several at once, for example the parameters of an experiment straight from the
  configuration that sets them, so that prose and code cannot drift);
* a hidden cell **asserts** the claim with :func:`claim`, passing the condition and the
  sentence it backs. When the computation stops supporting the sentence, the build fails and
  the error quotes the sentence::

      claim(np.all(np.diff(J_mm) >= 0), "MM never decreases J", worst=np.diff(J_mm).min())

Both are plain functions; ``claim`` works anywhere (a chapter, a script, a test), and
``glue_values`` is a thin wrapper around myst-nb's ``glue``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["ClaimError", "claim", "glue_values"]


class ClaimError(AssertionError):
    """A sentence of the book is no longer true of the computation that backs it."""


def _show(value: Any) -> str:
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.6g}"
    if isinstance(value, np.ndarray) and value.size > 8:
        return f"array(shape={value.shape}, min={value.min():.6g}, max={value.max():.6g})"
    return repr(value)


def claim(condition: Any, sentence: str, **evidence: Any) -> None:
    """Assert that ``condition`` holds, on behalf of ``sentence`` in the prose.

    ``condition`` is anything with a truth value (a bool, a NumPy or torch boolean scalar, or
    an array, which must be all true). ``sentence`` is the claim's own words, as the reader
    sees them. ``evidence`` (name=value) is shown in the error to help whoever must fix the
    text or the code. Raises :class:`ClaimError` (an ``AssertionError``) when the claim fails.
    """
    if not isinstance(sentence, str) or not sentence.strip():
        raise ValueError(f"sentence must be the non-empty text of the claim, got {sentence!r}")
    ok = np.all(np.asarray(condition.detach() if hasattr(condition, "detach") else condition))
    if not bool(ok):
        shown = ", ".join(f"{k}={_show(v)}" for k, v in evidence.items())
        raise ClaimError(
            f"The book says: “{sentence}” — but the computation no longer supports it"
            + (f" ({shown})." if shown else ".")
        )


def glue_values(prefix: str = "", /, **values: Any) -> None:
    """Glue each ``name=value`` for the prose as ``{glue:text}`prefix + name```, without
    displaying it. NumPy and torch scalars are glued as Python numbers."""
    from myst_nb import glue

    for name, value in values.items():
        if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
            value = value.item()
        glue(prefix + name, value, display=False)
