"""Find the decimal numbers a page's prose states (used by tests/test_prose_numbers.py).

The prose is everything outside code cells, YAML front matter, inline code and glue roles:
what a reader reads as text and maths. A decimal there must either come from a cell (glued,
so it is not in the prose source at all) or be listed, with its reason, in
``tests/prose_numbers/<page>.txt``: one ``value  # reason`` per line, for constants such as
the 0.5 of a definition, a paper's published score, or a convention like PPO's 1.5.
"""

from __future__ import annotations

import re
from pathlib import Path

ALLOW_DIR = Path(__file__).parent / "prose_numbers"

_FRONT_MATTER = re.compile(r"\A---\n.*?\n---\n", re.S)
_CODE_CELL = re.compile(r"^(`{3,}|~{3,})\{code-cell\}.*?^\1[ \t]*$", re.S | re.M)
_GLUE = re.compile(r"\{glue(?::\w+)?\}`[^`]*`")
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_URL = re.compile(r"https?://\S+")
_LABEL = re.compile(r"^\s*(\(\S+\)=|:(label|name|class|tags|width|align|figwidth)?:.*)$", re.M)
DECIMAL = re.compile(r"(?<![\w.\-/])(\d*\.\d+(?:[eE][-+]?\d+)?|\d+[eE][-+]?\d+)(?![\w.])")


def prose(text: str) -> str:
    """The reader-facing text of a MyST notebook: no front matter, code cells, glue roles,
    inline code, URLs or directive options."""
    for pattern in (_FRONT_MATTER, _CODE_CELL, _GLUE, _INLINE_CODE, _URL, _LABEL):
        text = pattern.sub(" ", text)
    return text


def stated_decimals(text: str) -> list[tuple[int, str]]:
    """(line number, number) for every decimal the prose of ``text`` states.

    Line numbers refer to ``text`` itself: removed parts are replaced by as many newlines as
    they held."""

    def blank(m: re.Match) -> str:
        return "\n" * m.group(0).count("\n") + " "

    for pattern in (_FRONT_MATTER, _CODE_CELL, _GLUE, _INLINE_CODE, _URL, _LABEL):
        text = pattern.sub(blank, text)
    out = []
    for lineno, line in enumerate(text.split("\n"), start=1):
        out += [(lineno, m.group(1)) for m in DECIMAL.finditer(line)]
    return out


def allowed(page: str) -> dict[str, str]:
    """The allow-list of ``page`` (a file stem): number → reason."""
    path = ALLOW_DIR / f"{page}.txt"
    if not path.exists():
        return {}
    out = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        value, _, reason = line.partition("#")
        if not reason.strip():
            raise ValueError(f"{path}: {value.strip()!r} is allowed without a reason")
        out[value.strip()] = reason.strip()
    return out


def unbacked(text: str, allow: dict[str, str]) -> list[tuple[int, str]]:
    """The decimals ``text`` states that the allow-list does not explain."""
    return [(n, v) for n, v in stated_decimals(text) if v not in allow]
