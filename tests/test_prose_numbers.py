"""Every decimal a page states in prose comes from a cell (glue) or is a listed constant."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.prose_check import allowed, stated_decimals, unbacked

BOOK = Path(__file__).resolve().parents[1] / "book"
PAGES = sorted(p for p in BOOK.glob("*.md"))


@pytest.mark.parametrize("page", PAGES, ids=[p.stem for p in PAGES])
def test_prose_states_no_unbacked_decimal(page):
    bad = unbacked(page.read_text(), allowed(page.stem))
    assert not bad, (
        f"{page.name} states decimals that no cell produces: "
        + ", ".join(f"line {n}: {v}" for n, v in bad)
        + ". Glue them from the cell that computes them, or list a constant with its reason in "
        f"tests/prose_numbers/{page.stem}.txt."
    )


@pytest.mark.parametrize("page", PAGES, ids=[p.stem for p in PAGES])
def test_allow_list_has_no_stale_entry(page):
    stated = {v for _, v in stated_decimals(page.read_text())}
    stale = sorted(set(allowed(page.stem)) - stated)
    assert not stale, (
        f"tests/prose_numbers/{page.stem}.txt allows numbers the page no longer states: {stale}"
    )


PLANTED = """---
kernelspec:
  name: python3
---
# A page

```{code-cell} ipython3
kl = 0.0123  # a cell may compute anything
glue("kl", kl)
```

The mean KL after ten epochs is 0.0123, and the glued one is {glue:text}`kl:.4f`.
The clip is $\\epsilon = 0.2$, and `lr=3e-4` is code.
"""


def test_the_test_catches_a_planted_unglued_result():
    """A planted hard-typed result is caught, with its line; glued values and code are not."""
    assert unbacked(PLANTED, {}) == [(12, "0.0123"), (13, "0.2")]
    assert unbacked(PLANTED, {"0.2": "PPO's clip, a convention"}) == [(12, "0.0123")]
    assert unbacked(PLANTED.replace("is 0.0123", "is {glue:text}`kl:.4f`"), {"0.2": "c"}) == []


def test_allow_list_needs_reasons(tmp_path, monkeypatch):
    import tests.prose_check as pn

    (tmp_path / "page.txt").write_text("0.5  # the ½ of a definition\n1.5\n")
    monkeypatch.setattr(pn, "ALLOW_DIR", tmp_path)
    with pytest.raises(ValueError, match="without a reason"):
        pn.allowed("page")
