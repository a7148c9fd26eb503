"""The errata appendix's structure: numbered items, each naming its source document and line.

These checks read ``book/errata.md`` as text and need neither pgcore nor a kernel. The
numerical demonstrations are the page's own cells, which the book build executes.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

PAGE = Path(__file__).resolve().parents[1] / "book" / "errata.md"

# How ../shared/seeds/README.md says each source document is cited.
DOCUMENTS = (
    "the CampusAI notes on CS285 lecture 9",
    "the CS/STAT 184 notes, policy-gradient chapter",
    "the Chula trust-region slides",
    "the HSE lecture 6 slides",
    "the Chinese CS285 lecture 9 notes",
)
_ITEM = re.compile(r"^### (\d+)\. (.+)$", re.M)
_CELL = re.compile(r"^```\{code-cell\}.*?^```$", re.S | re.M)


def items(text: str) -> list[tuple[int, str, str]]:
    """(number, title, body) for every numbered item of the page, code cells removed."""
    text = _CELL.sub("", text)
    heads = list(_ITEM.finditer(text))
    return [
        (
            int(h.group(1)),
            h.group(2),
            text[h.end() : heads[i + 1].start() if i + 1 < len(heads) else len(text)],
        )
        for i, h in enumerate(heads)
    ]


def names_a_document(text: str) -> bool:
    flat = " ".join(text.split()).lower()
    return any(doc.lower().removeprefix("the ") in flat for doc in DOCUMENTS)


ITEMS = items(PAGE.read_text(encoding="utf-8"))


def test_items_are_numbered_consecutively_and_many():
    numbers = [n for n, _, _ in ITEMS]
    assert numbers == list(range(1, len(numbers) + 1)), numbers
    assert len(numbers) > 20


@pytest.mark.parametrize("number,title,body", ITEMS, ids=[str(n) for n, _, _ in ITEMS])
def test_each_item_names_its_source_and_line(number, title, body):
    if "**Source.**" in body:
        source = body.split("**Source.**", 1)[1].split("\n\n", 1)[0]
        assert names_a_document(source), (
            f"item {number} ({title}) names no source document: {source!r}"
        )
        assert re.search(r"\blines? \d+", source), (
            f"item {number} ({title}) gives no line: {source!r}"
        )
        assert "**The notes write.**" in body and "**Correct.**" in body, f"item {number} ({title})"
    else:  # the table of typos: every row names its document (or "same") and its lines
        rows = [
            r
            for r in body.splitlines()
            if r.startswith("| ") and not r.startswith(("| where", "| ---"))
        ]
        assert rows, f"item {number} ({title}) has neither a source paragraph nor a table"
        for row in rows:
            where = row.split("|")[1]
            assert names_a_document(where) or where.strip().startswith("same"), row
            assert re.search(r"\blines? \d+", where), row


def test_every_source_document_is_cited():
    text = PAGE.read_text(encoding="utf-8")
    for doc in DOCUMENTS:
        assert doc.lower() in " ".join(text.split()).lower(), doc
