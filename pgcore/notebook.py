"""Running the book's chapters as notebooks: where the book's files are, and glued numbers.

1. :func:`book_dir` finds the book's folder (``book/``: stored runs under ``book/data``, the
   scripts that made them under ``book/scripts``) without relying on the current directory or
   on an editable install. In order:

   * the environment variable ``PGBOOK_ROOT`` (the repository's root), which the Colab setup
     cell of the downloadable notebooks sets after cloning the repository;
   * the checkout next to the imported ``pgcore`` (an editable install, ``make lab``, Binder);
   * the current directory and its parents (a non-editable install run inside a clone).

   The stored runs are not package data on purpose: the scripts that regenerate them write
   them to ``book/data``, the chapters also import those scripts from ``book/scripts``, and a
   ``pgcore`` wheel stays a library, without half a megabyte of one book's results.

2. An IPython extension (``%load_ext pgcore.notebook``; ``make lab`` and Binder load it in
   every kernel) that records each value a cell glues with myst-nb's ``glue`` (also through
   :func:`pgcore.glue_values`), and :func:`glue_text`, which formats a recorded value exactly
   as the book's ``{glue:text}`` role does. JupyterLab shows the chapters' ``{glue:text}``
   roles as ``{eval}`` expressions calling it, and ``{glue:figure}`` directives as figures
   whose body calls :func:`glue_figure` (``book/_ext/pgbook_lab.py``), so a number or a
   figure appears once the cell that glues it has run.

3. :func:`html_table`, the chapters' plain tables (no pandas on the reader's side).
"""

from __future__ import annotations

import os
from ast import literal_eval
from pathlib import Path
from typing import Any

__all__ = [
    "book_dir",
    "data_dir",
    "format_plain_text",
    "glue_figure",
    "glue_text",
    "glued_values",
    "html_table",
]

GLUE_PREFIX = "application/papermill.record/"
_GLUED: dict[str, dict[str, Any]] = {}


def _is_book(path: Path) -> bool:
    return (path / "data").is_dir() and (path / "scripts").is_dir()


def book_dir() -> Path:
    """The book's folder (``<repository>/book``), found as the module docstring says."""
    env = os.environ.get("PGBOOK_ROOT")
    if env:
        book = Path(env).expanduser().resolve() / "book"
        if not _is_book(book):
            raise FileNotFoundError(f"PGBOOK_ROOT={env!r} has no book/data and book/scripts")
        return book
    candidates = [Path(__file__).resolve().parents[1] / "book"]
    here = Path.cwd().resolve()
    candidates += [p / "book" for p in (here, *here.parents)] + [here]
    for cand in candidates:
        if _is_book(cand):
            return cand
    raise FileNotFoundError(
        "The book's folder (book/data, book/scripts) was not found: run the notebook inside a "
        "clone of the repository, or set PGBOOK_ROOT to the clone's root."
    )


def data_dir(*parts: str) -> Path:
    """``book/data/<parts...>``, e.g. ``data_dir("ppo")``."""
    return book_dir().joinpath("data", *parts)


def html_table(header: list, rows: list[list], align: list[str] | None = None):
    """A plain HTML table for a notebook cell's output (escaped; the theme styles ``table``).

    ``header`` is a list of column titles and ``rows`` a list of rows of cells; ``align`` gives
    each column's ``text-align`` (default: the first column left, the others right, for
    numbers). Returns an ``IPython.display.HTML``.
    """
    import html

    from IPython.display import HTML

    ncol = len(header)
    align = align or ["left"] + ["right"] * (ncol - 1)
    if len(align) != ncol or any(len(r) != ncol for r in rows):
        raise ValueError(
            f"html_table: every row and align need {ncol} cells (the header's), got "
            f"align={len(align)} and rows of {sorted({len(r) for r in rows})}"
        )
    cell = lambda tag, c, a: f'<{tag} style="text-align:{a}">{html.escape(str(c))}</{tag}>'  # noqa: E731
    th = "".join(cell("th", h, a) for h, a in zip(header, align))
    body = "".join(
        "<tr>" + "".join(cell("td", c, a) for c, a in zip(r, align)) + "</tr>" for r in rows
    )
    return HTML(f'<table class="table"><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>')


# ------------------------------------------------------------------------------------------
# Glued values in a live kernel


def glued_values() -> dict[str, dict[str, Any]]:
    """The mime bundles glued so far in this kernel, by name (a copy)."""
    return dict(_GLUED)


def format_plain_text(text: str, fmt_spec: str) -> str:
    """A glued ``text/plain`` value formatted as ``{glue:text}`key:fmt``` shows it.

    The same rules as myst-nb's (``myst_nb.core.variables.format_plain_text``); the portable
    notebooks of the build (book/_ext/pgbook_portable.py) use this function too.
    """
    try:
        value = literal_eval(text)
    except (SyntaxError, ValueError):
        value = text
    if fmt_spec == "":
        return str(value)
    kind = fmt_spec[-1]
    if kind == "s":
        value = str(value)
    elif kind in "bcdoxX":
        value = int(value)
    elif kind in "eEfFgGn%":
        value = float(value)
    return format(value, fmt_spec)


class _Text(str):
    """A string shown without quotes (its repr is itself), for an ``{eval}`` result."""

    def __repr__(self) -> str:
        return str(self)


_PENDING: dict[str, list[tuple[str, Any]]] = {}


def _pending(key: str, kind: str, fmt: str = "", fail: bool = True):
    """A widget that shows the value once it is glued (JupyterLab may evaluate a Markdown
    cell's expressions before the code cells queued ahead of it have run)."""
    if fail:
        raise KeyError(f"nothing glued as {key!r} yet: run the cells above first")
    import ipywidgets

    w = ipywidgets.Label("…") if kind == "text" else ipywidgets.Output()
    _PENDING.setdefault(key, []).append((kind + ":" + fmt, w))
    return w


def _fill(key: str) -> None:
    for spec, w in _PENDING.pop(key, []):
        kind, _, fmt = spec.partition(":")
        try:
            if kind == "text":
                w.value = format_plain_text(_GLUED[key].get("text/plain", ""), fmt)
            else:
                w.append_display_data(_Bundle(_GLUED[key]))
        except Exception as err:  # a bad format: show it, never break the glue call
            if kind == "text":
                w.value = f"({type(err).__name__}: {err})"


def glue_text(spec: str, wait: bool = False):
    """The text ``{glue:text}`spec``` shows in the book, for ``spec`` = ``key`` or
    ``key:format``, from the value glued under ``key`` in this kernel. With ``wait`` (as the
    JupyterLab view calls it), a value not glued yet is a placeholder widget that shows the
    text as soon as the cell that glues it runs."""
    key, sep, fmt = spec.rpartition(":")
    if not sep:
        key, fmt = spec, ""
    if key not in _GLUED:
        return _pending(key, "text", fmt, fail=not wait)
    data = _GLUED[key]
    plain = data.get("text/plain")
    if plain is None:
        raise KeyError(f"{key!r} was glued without a text/plain representation")
    return _Text(format_plain_text(plain, fmt))


class _Bundle:
    """A glued output shown again (its stored mime bundle), for an ``{eval}`` result."""

    def __init__(self, data: dict[str, Any]):
        self._data = data

    def _repr_mimebundle_(self, include=None, exclude=None):
        return dict(self._data)


def glue_figure(key: str, wait: bool = False):
    """The output glued under ``key`` (a figure, an HTML block), shown again: what the book's
    ``{glue:figure}`` directive shows (``wait``: as for :func:`glue_text`)."""
    if key not in _GLUED:
        return _pending(key, "figure", fail=not wait)
    return _Bundle(_GLUED[key])


def _record(data: Any, metadata: Any) -> None:
    if not isinstance(data, dict) or not isinstance(metadata, dict):
        return
    scrap = metadata.get("scrapbook")
    if not isinstance(scrap, dict) or "name" not in scrap:
        return
    prefix = scrap.get("mime_prefix", "")
    _GLUED[scrap["name"]] = {
        k[len(prefix) :] if prefix and k.startswith(prefix) else k: v for k, v in data.items()
    }
    if scrap["name"] in _PENDING:
        _fill(scrap["name"])


def load_ipython_extension(ipython) -> None:
    """Record glued values (``%load_ext pgcore.notebook``) and define ``glue_text``."""
    pub = ipython.display_pub
    if not getattr(pub, "_pgbook_recording", False):
        original = pub.publish

        def publish(data, metadata=None, *args, **kwargs):
            _record(data, metadata)
            return original(data, metadata, *args, **kwargs)

        pub.publish = publish
        pub._pgbook_recording = True
    ipython.push({"glue_text": glue_text, "glue_figure": glue_figure}, interactive=False)
