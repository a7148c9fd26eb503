"""The chapters as notebooks in JupyterLab (``make lab``, Binder), and the tools that keep them
in the form JupyterLab writes back.

The chapters are MyST Markdown notebooks (jupytext). In JupyterLab, jupyterlab-myst renders
their Markdown (directives, proofs, exercises, maths with KaTeX) and jupytext's contents
manager reads and writes the ``.md`` files. :class:`BookContentsManager` adds three things:

1. **Glued numbers.** The book shows computed numbers with ``{glue:text}`key:fmt```, which
   jupyterlab-myst does not know. On reading a chapter, every such role becomes
   ``{eval}`glue_text("key:fmt")```: jupyterlab-myst evaluates it in the kernel when the cell
   is run (Run All does), and ``pgcore.notebook.glue_text`` formats the value that the cells
   above glued exactly as the book does. On saving, the roles are turned back, so the file
   keeps ``{glue:text}``. (The kernel records glued values through the IPython extension
   ``pgcore.notebook``, which ``make lab`` and Binder load in every kernel.)
2. **Opening is not editing.** Saving a notebook whose cells are unchanged (autosave does this:
   GET the model, PUT it back, with the running kernel's kernelspec, jupyterlab-myst's
   ``user_expressions`` and other volatile metadata) leaves the file untouched; a real edit is
   written by jupytext, without the volatile metadata.
3. **Multi-line strings in cell metadata** (figure captions) stay YAML literal blocks (``|``),
   as the chapters write them, instead of jupytext's quoted flow strings.
4. **Citations and references to other chapters.** jupyterlab-myst knows neither the book's
   bibliography nor the labels of the other chapters, and would show ``{cite}`` keys and
   labels. On reading, each citation becomes "Schulman et al. (2015)" and each reference into
   another chapter (``{doc}``, ``{prf:ref}``, ``{ref}``, ``{numref}``, ``{eq}``) "Lemma
   “Performance difference” (Policy gradient as policy iteration)" or the chapter's title, as
   a link to the online page; the link's title keeps the original role, and saving turns the
   link back into it. References within the notebook are left to jupyterlab-myst.

The command line keeps the chapters in that form (``make chapters-normalise``)::

    python book/_ext/pgbook_lab.py macros [--check] [FILES]      # the macro cell, from _config.yml
    python book/_ext/pgbook_lab.py normalise [--check] [FILES]   # what jupytext writes back
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import jupytext
import nbformat
import yaml
from jupytext.myst import CompactDumper

REPO = Path(__file__).resolve().parents[2]
FMT = "md:myst"

# ------------------------------------------------------------------------------------------
# 3. jupytext's YAML: multi-line strings as literal blocks (applies to this process only)


def _represent_str(dumper, data: str):
    if "\n" in data:
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|")
    return dumper.represent_str(data)


CompactDumper.add_representer(str, _represent_str)

# ------------------------------------------------------------------------------------------
# 1. glue roles <-> eval expressions

GLUE_ROLE = re.compile(r"\{glue:text\}`([^`\"]+)`")
EVAL_ROLE = re.compile(r"\{eval\}`glue_text\(\"([^`\"]+)\", wait=True\)`")


# ```{glue:figure} key / options / blank line  <->  ```{figure} / options / blank line /
# {eval}`glue_figure("key")` / blank line  (the caption follows, unchanged)
GLUE_FIGURE = re.compile(r"^(`{3,}|:{3,})\{glue:figure\} (\S+)\n((?::[\w-]+:.*\n)*)\n", re.M)
EVAL_FIGURE = re.compile(
    r"^(`{3,}|:{3,})\{figure\}\n((?::[\w-]+:.*\n)*)\n\{eval\}`glue_figure\(\"(\S+)\", wait=True\)`\n\n",
    re.M,
)


def glue_to_eval(text: str) -> str:
    """A Markdown cell's glue roles and figures as jupyterlab-myst ``{eval}`` expressions."""
    text = GLUE_FIGURE.sub(
        lambda m: (
            f'{m.group(1)}{{figure}}\n{m.group(3)}\n{{eval}}`glue_figure("{m.group(2)}", wait=True)`\n\n'
        ),
        text,
    )
    return GLUE_ROLE.sub(lambda m: '{eval}`glue_text("' + m.group(1) + '", wait=True)`', text)


def eval_to_glue(text: str) -> str:
    """The inverse of :func:`glue_to_eval`."""
    text = EVAL_FIGURE.sub(
        lambda m: f"{m.group(1)}{{glue:figure}} {m.group(3)}\n{m.group(2)}\n", text
    )
    return EVAL_ROLE.sub(lambda m: "{glue:text}`" + m.group(1) + "`", text)


# ------------------------------------------------------------------------------------------
# 4. citations and references to other chapters, as links (sources only: no build needed)

XREF_ROLES = ("doc", "prf:ref", "ref", "numref", "eq")
CITE_ROLES = ("cite", "cite:p", "cite:t", "cite:ps", "cite:ts")
BOOK_ROLE = re.compile(r"\{(" + "|".join(map(re.escape, XREF_ROLES + CITE_ROLES)) + r")\}`([^`]*)`")
#: a link written by :func:`refs_to_links`: [text](url "{role}`content`")
BOOK_LINK = re.compile(r"\[[^\]\n]*\]\(\S+ \"(\{[\w:]+\}`[^`\n]*`)\"\)")
DIRECTIVE_LABEL = re.compile(
    r"^(?:`{3,}|:{3,})\{([\w:-]+)\}[ \t]*([^\n]*)\n((?::[\w-]+:[^\n]*\n)*)", re.M
)
KINDS = {
    "figure": "Figure", "glue:figure": "Figure", "math": "Equation", "exercise": "Exercise",
    "solution": "Solution",
}  # fmt: skip


class BookIndex:
    """Labels, titles and citations of the book's sources, for :func:`refs_to_links`."""

    def __init__(self, book: Path = REPO / "book", config: Path = REPO / "_config.yml"):
        cfg = yaml.safe_load(config.read_text(encoding="utf-8"))
        url = cfg.get("repository", {}).get("url", "")
        m = re.match(r"https://github\.com/([^/]+)/([^/]+?)/?$", url)
        self.base = f"https://{m.group(1)}.github.io/{m.group(2)}/" if m else ""
        self.titles: dict[str, str] = {}  # docname -> title
        self.labels: dict[str, tuple[str, str, str]] = {}  # label -> (docname, kind, title)
        for path in sorted(book.glob("*.md")):
            self._read(f"book/{path.stem}", path.read_text(encoding="utf-8"))
        self.bib = {}
        for bib in cfg.get("bibtex_bibfiles", []):
            self._read_bib(REPO / bib)

    def _read(self, doc: str, text: str) -> None:
        body = re.sub(r"^---\n.*?\n---\n", "", text, count=1, flags=re.S)
        code = re.compile(r"^```\{code-cell\}.*?^```", re.M | re.S)
        prose = code.sub("", body)
        h = re.search(r"^# (.+)$", prose, re.M)
        self.titles[doc] = h.group(1).strip() if h else doc.rsplit("/", 1)[-1]
        for m in DIRECTIVE_LABEL.finditer(prose):
            name, arg, opts = m.groups()
            label = re.search(r"^:(?:label|name):\s*(\S+)", opts, re.M)
            if label:
                kind = KINDS.get(name) or name.removeprefix("prf:").replace("-", " ").title()
                title = arg.strip() if not name.endswith("figure") else ""
                self.labels[label.group(1)] = (doc, kind, title)
        for m in re.finditer(r"^\(([\w-]+)\)=\n+#+ (.+)$", prose, re.M):
            self.labels[m.group(1)] = (doc, "Section", m.group(2).strip())
        for m in re.finditer(r"^\$\$ *\(([\w-]+)\)$", prose, re.M):
            self.labels[m.group(1)] = (doc, "Equation", "")

    def _read_bib(self, path: Path) -> None:
        from pybtex.database import parse_file

        for key, entry in parse_file(str(path)).entries.items():
            self.bib[key] = author_year(entry)

    def url(self, doc: str, anchor: str = "") -> str:
        return f"{self.base}{doc}.html" + (f"#{anchor}" if anchor else "")


def author_year(entry) -> tuple[str, str]:
    """("Schulman et al.", "2015") for a pybtex entry: one or two surnames, else "et al."."""
    persons = entry.persons.get("author") or entry.persons.get("editor") or []
    last = [" ".join(p.last_names) for p in persons]
    if not last:
        authors = entry.fields.get("organization", entry.fields.get("title", "?"))
    elif len(last) <= 2:
        authors = " and ".join(last)
    else:
        authors = f"{last[0]} et al."
    return authors.replace("{", "").replace("}", ""), entry.fields.get("year", "")


def _doc_of(target: str, here: str) -> str:
    target = target.removesuffix(".md")
    if target.startswith("/"):
        return target[1:]
    return str(Path(here).parent / target).replace("\\", "/")


def refs_to_links(text: str, index: BookIndex, here: str) -> str:
    """Citations and references to other chapters as links that keep their role (see 4.)."""

    def link(m: re.Match) -> str:
        role, content = m.group(1), m.group(2)
        explicit = re.match(r"^(.*?)\s*<([^<>]+)>$", content, re.S)
        text, target = (explicit.group(1), explicit.group(2)) if explicit else (None, content)
        if role in CITE_ROLES:
            found = [index.bib.get(k.strip()) for k in target.split(",") if k.strip()]
            if not found or None in found:
                return m.group(0)
            if role.startswith("cite:t"):
                shown = "; ".join(f"{who} ({year})" for who, year in found)
            else:
                shown = "(" + "; ".join(f"{who}, {year}" for who, year in found) + ")"
            url = index.url("book/bibliography")
        elif role == "doc":
            doc = _doc_of(target, here)
            if doc not in index.titles or doc == here:
                return m.group(0)
            shown, url = text or index.titles[doc], index.url(doc)
        else:
            if target not in index.labels or index.labels[target][0] == here:
                return m.group(0)  # within the notebook: jupyterlab-myst resolves it
            doc, kind, title = index.labels[target]
            if text:
                shown = text
            else:
                name = f"{kind} “{title}”" if title and kind != "Section" else title or kind
                shown = f"{name} ({index.titles[doc]})"
            url = index.url(doc, target)
        shown = shown.replace("[", "(").replace("]", ")")
        return f'[{shown}]({url} "{m.group(0)}")'

    return BOOK_ROLE.sub(link, text)


def links_to_refs(text: str) -> str:
    """The inverse of :func:`refs_to_links`."""
    return BOOK_LINK.sub(lambda m: m.group(1), text)


# ------------------------------------------------------------------------------------------
# 2. volatile metadata and the unchanged-notebook check

VOLATILE_CELL_KEYS = {
    "user_expressions",  # jupyterlab-myst's results of {eval}
    "execution",
    "ExecuteTime",
    "collapsed",
    "scrolled",
    "trusted",
    "jp-MarkdownHeadingCollapsed",
}


def _clean_cells(nb) -> None:
    for cell in nb.get("cells", []):
        meta = cell.get("metadata", {})
        for key in VOLATILE_CELL_KEYS & set(meta):
            del meta[key]
        if cell.get("cell_type") == "markdown":
            src = cell.get("source", "")
            src = "".join(src) if isinstance(src, list) else src
            cell["source"] = links_to_refs(eval_to_glue(src))


def _cells_key(nb) -> list:
    out = []
    for cell in nb.cells:
        meta = {k: v for k, v in cell.metadata.items() if k not in VOLATILE_CELL_KEYS}
        src = cell.source if isinstance(cell.source, str) else "".join(cell.source)
        out.append((cell.cell_type, src, meta))
    return out


def same_notebook(a, b) -> bool:
    """The same cells (type, source, non-volatile metadata) and the same kernel name."""
    kname = lambda nb: nb.metadata.get("kernelspec", {}).get("name")  # noqa: E731
    return _cells_key(a) == _cells_key(b) and kname(a) == kname(b)


def is_chapter(path: Path) -> bool:
    path = Path(path)
    if path.suffix != ".md" or not path.is_file():
        return False
    head = path.read_text(encoding="utf-8")[:2000]
    return head.startswith("---\n") and "jupytext:" in head and "kernelspec:" in head


try:
    from jupytext.async_contentsmanager import AsyncTextFileContentsManager
except ImportError:  # pragma: no cover - jupyter_server missing: CLI use only
    AsyncTextFileContentsManager = None

_INDEX: list[BookIndex] = []


def _book_index() -> BookIndex:
    if not _INDEX:
        _INDEX.append(BookIndex())
    return _INDEX[0]


if AsyncTextFileContentsManager is not None:

    class BookContentsManager(AsyncTextFileContentsManager):
        """jupytext's contents manager, with the three changes of the module docstring."""

        def _os_file(self, path: str) -> Path:
            return Path(self.root_dir, path.strip("/"))

        async def get(self, path, content=True, type=None, format=None, **kwargs):
            model = await super().get(path, content=content, type=type, format=format, **kwargs)
            if (
                content
                and model.get("type") == "notebook"
                and str(path).endswith(".md")
                and model.get("content") is not None
            ):
                here = Path(path.strip("/")).with_suffix("").as_posix()
                for cell in model["content"].get("cells", []):
                    if cell.get("cell_type") == "markdown":
                        cell["source"] = refs_to_links(
                            glue_to_eval(cell["source"]), _book_index(), here
                        )
            return model

        async def save(self, model, path=""):
            file = self._os_file(path)
            if model.get("type") == "notebook" and file.suffix == ".md":
                _clean_cells(model["content"])
                if is_chapter(file):
                    incoming = nbformat.from_dict(model["content"])
                    on_disk = jupytext.read(file, fmt=FMT)
                    if same_notebook(incoming, on_disk):
                        self.log.info("Unchanged notebook %s: not rewritten", path)
                        return await super().get(path, content=False)
                    # keep the file's kernelspec (the running kernel's display name is not
                    # part of the chapter)
                    if "kernelspec" in on_disk.metadata:
                        model["content"]["metadata"]["kernelspec"] = dict(
                            on_disk.metadata["kernelspec"]
                        )
            return await super().save(model, path)


# ------------------------------------------------------------------------------------------
# The macro cell: the book's LaTeX macros, defined inside every chapter notebook

MACRO_TAG = "remove-cell"
MACRO_MARK = "% The book's LaTeX macros"


def config_macros(config: Path = REPO / "_config.yml") -> dict[str, str]:
    """The macros of _config.yml (sphinx.config.mathjax3_config.tex.macros): name -> body."""
    cfg = yaml.safe_load(Path(config).read_text(encoding="utf-8"))
    macros = cfg["sphinx"]["config"]["mathjax3_config"]["tex"]["macros"]
    return {str(k): str(v) for k, v in macros.items()}


def macro_cell_source(macros: dict[str, str]) -> str:
    """A Markdown cell that defines ``macros`` for every renderer of a notebook:

    * a YAML front matter ``math:`` block, which jupyterlab-myst (KaTeX) reads from the first
      Markdown cell of a notebook;
    * ``\\def`` commands inside ``$$ $$``, for MathJax (plain JupyterLab, Jupyter Notebook,
      Colab, VS Code), where a definition holds for the rest of the page.

    The book removes the cell (tag ``remove-cell``): it defines the same macros in _config.yml.
    """
    front = "---\nmath:\n" + "".join(f"  '\\{k}': '{v}'\n" for k, v in macros.items()) + "---\n"
    defs = "\n".join(f"\\def\\{k}{{{v}}}" for k, v in macros.items())
    return f"{front}\n$$\n{MACRO_MARK} (_config.yml), for notebooks\n{defs}\n$$"


def parse_macro_cell(source: str) -> dict[str, str] | None:
    """The macros a macro cell defines, checking that its two halves agree; None if ``source``
    is not a macro cell."""
    if MACRO_MARK not in source or not source.startswith("---\n"):
        return None
    front = yaml.safe_load(source.split("---\n")[1])["math"]
    front = {k.lstrip("\\"): v for k, v in front.items()}
    defs = dict(re.findall(r"^\\def\\(\w+)\{(.*)\}$", source, re.M))
    if front != defs:
        raise ValueError(f"the macro cell's front matter and \\def lines differ: {front} {defs}")
    return front


def _split_header(text: str) -> tuple[str, str]:
    m = re.match(r"\A---\n.*?\n---\n", text, re.S)
    if not m:
        raise ValueError("no YAML header")
    return text[: m.end()], text[m.end() :]


def with_macro_cell(text: str, macros: dict[str, str]) -> str:
    """``text`` (a chapter) with its first cell the macro cell for ``macros`` (inserted, or
    replaced when it differs), written as jupytext writes it."""
    header, body = _split_header(text)
    cell = f'+++ {{"tags": ["{MACRO_TAG}"]}}\n\n{macro_cell_source(macros)}\n\n+++\n'
    existing = re.match(
        r"\A\n\+\+\+ \{\"tags\": \[\"" + MACRO_TAG + r"\"\]\}\n\n---\nmath:\n.*?\n\$\$\n\n\+\+\+\n",
        body,
        re.S,
    )
    if existing:
        body = body[existing.end() :].lstrip("\n")
    else:
        body = body.lstrip("\n")
        if body.startswith("+++"):  # the first cell already starts with a cell marker
            body = body.split("\n", 1)[1].lstrip("\n")
    return f"{header}\n{cell}\n{body}"


def roundtrip_text(path: Path) -> str:
    """What jupytext (as :class:`BookContentsManager` writes it) makes of ``path``."""
    nb = jupytext.read(path, fmt=FMT)
    return jupytext.writes(nb, fmt=FMT)


def _files(args: list[str]) -> list[Path]:
    if args:
        return [Path(a) for a in args]
    return [p for p in sorted((REPO / "book").glob("*.md")) if is_chapter(p)]


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("macros", "normalise"):
        print(__doc__)
        return 2
    cmd, check = argv[0], "--check" in argv
    files = _files([a for a in argv[1:] if a != "--check"])
    macros = config_macros()
    bad = []
    for path in files:
        text = path.read_text(encoding="utf-8")  # re-read just before writing
        new = with_macro_cell(text, macros) if cmd == "macros" else roundtrip_text(path)
        if new != text:
            bad.append(path)
            if not check:
                path.write_text(new, encoding="utf-8")
    verb = "would change" if check else "changed"
    for path in bad:
        print(f"{cmd}: {verb} {path}")
    return 1 if (check and bad) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
