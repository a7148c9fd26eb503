"""Portable notebooks: the executed chapters with their MyST resolved into plain Markdown.

Colab, plain Jupyter, VS Code and GitHub render Markdown cells as CommonMark + maths, not
MyST. At the end of an HTML build, every executed chapter notebook the book offers for
download (``_sources/**/*.ipynb``, which the GitHub workflow also publishes for Colab) is
rewritten from Sphinx's own data (numbers, titles, labels), so that it reads like the page:

* glued values (``{glue:text}``) become their numbers, glued figures become images
  (attachments) or HTML with their caption, ``Figure 3.1``-style numbers included;
* cross-references (``{prf:ref}``, ``{ref}``, ``{numref}``, ``{eq}``, ``{doc}``) become
  "Theorem 3.1"-style text linking the online page; citations become "Schulman et al.,
  2015" linking the online bibliography;
* admonitions, proofs, exercises and solutions become quoted blocks with a bold heading;
* labels and directive options disappear; the macro cell keeps only its ``\\def`` lines;
* the outputs stay; a first cell installs, on Colab only, what the notebook imports that Colab
  lacks, and the repository (pgcore, non-editable, and the stored runs in book/data).
"""

from __future__ import annotations

import ast
import base64
import json
import re
import sys
from ast import literal_eval
from pathlib import Path
from typing import Any

from pgbook_lab import author_year

from pgcore.notebook import format_plain_text

SETUP_TAG = "pgbook-colab-setup"
# What Colab preinstalls among what the book imports (the Colab simulation test installs
# exactly these into its fresh environment).
COLAB_HAS = {"torch", "numpy", "pandas", "matplotlib", "ipywidgets", "IPython", "ipykernel"}
PIP_NAMES = {"myst_nb": "myst-nb", "vl_convert": "vl-convert-python", "yaml": "pyyaml"}

ADMONITIONS = {
    "note": "Note", "tip": "Tip", "hint": "Hint", "important": "Important",
    "warning": "Warning", "caution": "Caution", "attention": "Attention", "danger": "Danger",
    "error": "Error", "seealso": "See also", "admonition": "",
}  # fmt: skip


class Resolver:
    """Numbers, titles and URLs of the built book, from the Sphinx environment."""

    def __init__(self, app, docname: str, glue: dict[str, Any], base_url: str):
        self.app, self.env, self.doc, self.glue = app, app.env, docname, glue
        self.base = base_url.rstrip("/") + "/"
        self.fignum = getattr(self.env, "toc_fignumbers", {})
        self.std = self.env.domaindata.get("std", {})
        self.attachments: dict[str, dict[str, str]] = {}
        self.warnings: list[str] = []
        self._cites = None

    # -- links --------------------------------------------------------------------------
    def url(self, docname: str, anchor: str = "") -> str:
        return self.base + docname + ".html" + (f"#{anchor}" if anchor else "")

    def number(self, docname: str, labelid: str) -> tuple[str, str] | None:
        for kind, numbers in self.fignum.get(docname, {}).items():
            if labelid in numbers:
                return kind, ".".join(map(str, numbers[labelid]))
        return None

    def title(self, docname: str) -> str:
        t = self.env.titles.get(docname)
        return t.astext() if t is not None else docname

    # -- roles --------------------------------------------------------------------------
    def glue_text(self, spec: str) -> str:
        key, sep, fmt = spec.rpartition(":")
        if not sep:
            key, fmt = spec, ""
        out = self.glue.get(key)
        if out is None or "text/plain" not in out.get("data", {}):
            self.warnings.append(f"glue {key!r} not found")
            return spec
        return format_plain_text(out["data"]["text/plain"], fmt)

    def ref(self, role: str, content: str) -> str:
        m = re.match(r"^(.*?)\s*<([^<>]+)>$", content, re.S)
        text, target = (m.group(1), m.group(2)) if m else (None, content.strip())
        if role == "doc":
            doc = str(Path(self.doc).parent / target) if not target.startswith("/") else target[1:]
            doc = re.sub(r"^\./", "", doc).removesuffix(".md")
            return f"[{text or self.title(doc)}]({self.url(doc)})"
        if role == "eq":
            objs = self.env.domaindata.get("math", {}).get("objects", {})
            if target in objs:
                doc, num = objs[target]
                return f"[({num})]({self.url(doc, 'equation-' + target)})"
        if role == "prf:ref":
            prf = getattr(self.env, "proof_list", {}).get(target)
            if prf:
                num = self.number(prf["docname"], target)
                name = prf.get("realtype", "").replace("prf:", "").title()
                label = text or f"{name} {num[1] if num else ''}".strip()
                return f"[{label}]({self.url(prf['docname'], target)})"
        labels = self.std.get("labels", {})
        anon = self.std.get("anonlabels", {})
        if target in labels or target in anon:
            doc, labelid = (labels.get(target) or anon[target])[:2]
            sect = labels[target][2] if target in labels else ""
            num = self.number(doc, labelid)
            if role == "numref" and num:
                fmt = self.app.config.numfig_format.get(num[0], "%s")
                label = (text or fmt).replace("{number}", num[1]).replace("%s", num[1])
            else:
                label = text or sect or (f"{num[0].title()} {num[1]}" if num else target)
            return f"[{label}]({self.url(doc, labelid)})"
        ex = getattr(self.env, "sphinx_exercise_registry", {}).get(target)
        if ex:
            num = self.number(ex["docname"], target)
            label = text or f"Exercise {num[1] if num else ''}".strip()
            return f"[{label}]({self.url(ex['docname'], target)})"
        self.warnings.append(f"{role} {target!r} not resolved")
        return text or target

    def cite(self, role: str, keys: str) -> str:
        if self._cites is None:
            self._cites = {}
            try:
                dom = self.env.get_domain("cite")
                bib_doc = next(
                    (d for d in self.env.found_docs if d.endswith("bibliography")), "bibliography"
                )
                for c in dom.citations:
                    self._cites[c.key] = (bib_doc, c.citation_id, author_year(c.entry))
            except Exception as exc:  # pragma: no cover - no bibtex in this build
                self.warnings.append(f"citations: {exc}")
        parts = []
        for key in [k.strip() for k in keys.split(",") if k.strip()]:
            if key in self._cites:
                doc, cid, (authors, year) = self._cites[key]
                text = f"{authors} ({year})" if role == "cite:t" else f"{authors}, {year}"
                parts.append(f"[{text}]({self.url(doc, cid)})")
            else:
                parts.append(key)
        joined = "; ".join(parts)
        return joined if role == "cite:t" else f"[{joined}]"

    def glue_figure(self, key: str) -> tuple[str, str]:
        """(Markdown for the glued output, kind) and registers an attachment for images."""
        out = self.glue.get(key, {}).get("data", {})
        for mime, ext in (("image/png", "png"), ("image/jpeg", "jpg"), ("image/svg+xml", "svg")):
            if mime in out:
                name = f"{key}.{ext}"
                data = out[mime]
                if mime == "image/svg+xml":
                    data = base64.b64encode(
                        ("".join(data) if isinstance(data, list) else data).encode()
                    ).decode()
                self.attachments[name] = {mime: data}
                return f"![{key}](attachment:{name})", "image"
        if "text/html" in out:
            html = out["text/html"]
            html = "".join(html) if isinstance(html, list) else html
            html = re.sub(r"<script\b.*?</script>", "", html, flags=re.S)
            return html.strip(), "html"
        if "text/plain" in out:
            return f"`{out['text/plain']}`", "text"
        self.warnings.append(f"glue figure {key!r} not found")
        return "", "missing"


# ------------------------------------------------------------------------------------------
# MyST -> Markdown

ROLE = re.compile(r"\{([\w:+-]+)\}`([^`]*)`")
FENCE_OPEN = re.compile(
    r"^(?P<indent> {0,3})(?P<fence>`{3,}|:{3,})\{(?P<name>[\w:+-]+)\}(?P<arg>[^\n]*)$"
)


def convert_roles(text: str, res: Resolver) -> str:
    def role(m: re.Match) -> str:
        name, content = m.group(1), m.group(2)
        if name in ("glue:text", "glue"):
            return res.glue_text(content)
        if name in ("cite", "cite:p", "cite:t", "cite:ps", "cite:ts"):
            return res.cite("cite:t" if name.startswith("cite:t") else "cite", content)
        if name in ("ref", "numref", "doc", "eq", "prf:ref", "any", "std:ref"):
            return res.ref(name, content)
        if name == "math":
            return f"${content}$"
        if name in ("sub", "sup"):
            return f"<{name}>{content}</{name}>"
        return content  # abbr, term, kbd, ...: the text itself

    # roles and inline code spans, left to right: code spans are left alone
    def token(m: re.Match) -> str:
        return role(m) if m.group(1) is not None else m.group(0)

    return re.sub(r"\{([\w:+-]+)\}`([^`]*)`|``.+?``|`[^`\n]+`", token, text)


def _quote(body: str) -> str:
    return "\n".join(
        ("> " + line) if line.strip() else ">" for line in body.strip("\n").split("\n")
    )


def convert_markdown(text: str, res: Resolver) -> str:
    """A MyST Markdown cell as plain Markdown (recursive over directives)."""
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if re.match(r"^\s*\([\w:.-]+\)=\s*$", line):  # a label target
            i += 1
            continue
        m = FENCE_OPEN.match(line)
        if not m:
            out.append(line)
            i += 1
            continue
        fence, name, arg = m.group("fence"), m.group("name"), m.group("arg").strip()
        j, depth = i + 1, 1
        while j < len(lines):
            if FENCE_OPEN.match(lines[j]) and lines[j].lstrip().startswith(fence):
                depth += 1
            elif lines[j].strip() == fence:
                depth -= 1
                if depth == 0:
                    break
            j += 1
        body = lines[i + 1 : j]
        opts: dict[str, str] = {}
        while body and re.match(r"^:[\w-]+:", body[0]):
            k, _, v = body.pop(0)[1:].partition(":")
            opts[k] = v.strip()
        if body and body[0].startswith("---"):  # YAML options block
            end = body.index("---", 1) if "---" in body[1:] else 0
            body = body[end + 1 :]
        inner = "\n".join(body)
        out.append(convert_directive(name, arg, opts, inner, res))
        i = j + 1
    return convert_roles("\n".join(out), res)


def convert_directive(name: str, arg: str, opts: dict[str, str], body: str, res: Resolver) -> str:
    label = opts.get("label") or opts.get("name") or ""
    if name in ("math",):
        return f"$$\n{body.strip()}\n$$"
    if name in ("code-block", "code", "sourcecode"):
        return f"```{arg}\n{body}\n```"
    if name == "glue:figure":
        shown, _ = res.glue_figure(arg)
        num = res.number(res.doc, label) if label else None
        head = f"**Figure {num[1]}.** " if num else ""
        caption = convert_markdown(body, res).strip()
        return f"{shown}\n\n{head}{caption}".strip()
    if name == "figure":
        num = res.number(res.doc, label) if label else None
        head = f"**Figure {num[1]}.** " if num else ""
        src = arg if re.match(r"^https?://", arg) else res.base + str(Path(res.doc).parent / arg)
        return f"![{opts.get('alt', '')}]({src})\n\n{head}{convert_markdown(body, res).strip()}"
    if name.startswith("prf:"):
        kind = name[4:]
        inner = convert_markdown(body, res)
        if kind == "proof":
            return _quote(f"*Proof.* {inner.strip()} ∎")
        num = res.number(res.doc, label) if label else None
        head = f"**{kind.title()}{' ' + num[1] if num else ''}{f' ({arg})' if arg else ''}.**"
        return _quote(f"{head} {inner.strip()}")
    if name in ("exercise", "solution"):
        inner = convert_markdown(body, res)
        if name == "exercise":
            num = res.number(res.doc, label) if label else None
            head = f"**Exercise{' ' + num[1] if num else ''}{f' ({arg})' if arg else ''}.**"
            return _quote(f"{head} {inner.strip()}")
        target = res.ref("ref", arg) if arg else "the exercise"
        return f"<details><summary>Solution to {target}</summary>\n\n{inner.strip()}\n\n</details>"
    if name in ADMONITIONS:
        title = arg if name == "admonition" else ADMONITIONS[name]
        inner = convert_markdown(body, res)
        return _quote(f"**{title}.** {inner.strip()}" if title else inner)
    if name in ("bibliography", "toctree", "tableofcontents"):
        return ""
    inner = convert_markdown(body, res)  # dropdown, tab-set, card, ... : the content
    return _quote(f"**{arg}**\n\n{inner}" if arg else inner)


# ------------------------------------------------------------------------------------------
# The Colab setup cell


def source_imports(src: str) -> set[str]:
    """The absolute imports of Python source (IPython's % and ! lines skipped)."""
    src = "\n".join(ln for ln in src.split("\n") if not ln.lstrip().startswith(("%", "!")))
    try:
        tree = ast.parse(src)
    except SyntaxError:
        return set()
    mods: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            mods |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            mods.add(node.module)
    return mods


def notebook_imports(nb, scripts: Path | None = None) -> set[str]:
    """What the notebook's code cells import. A module of the book's ``scripts`` folder (which
    the chapters import from the cloned repository) is not a package: it is replaced by what
    it imports in turn."""
    mods: set[str] = set()
    for cell in nb.cells:
        if cell.cell_type == "code":
            mods |= source_imports(cell.source)
    seen: set[str] = set()
    while scripts is not None:
        local = {m for m in mods if (scripts / f"{m}.py").is_file()} - seen
        if not local:
            break
        seen |= local
        for m in local:
            mods |= source_imports((scripts / f"{m}.py").read_text())
    return mods - seen


def pgcore_requirements(repo: Path) -> tuple[set[str], set[str]]:
    """(names of pgcore's dependencies, names of its optional extras)"""
    import tomllib

    project = tomllib.loads((repo / "pyproject.toml").read_text())["project"]
    name = lambda req: re.split(r"[<>=!~\[; ]", req, maxsplit=1)[0].lower().replace("-", "_")  # noqa: E731
    deps = {name(r) for r in project.get("dependencies", [])}
    return deps, set(project.get("optional-dependencies", {}))


def setup_cell_source(nb, repo_url: str, repo: Path) -> str:
    mods = notebook_imports(nb, repo / "book" / "scripts")
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    if "glue_values" in code:  # pgcore.glue_values glues through myst-nb (imported lazily)
        mods.add("myst_nb")
    tops = {m.split(".")[0] for m in mods}
    deps, extras = pgcore_requirements(repo)
    # pgcore's extras the notebook needs: the figures for pgcore.widgets, the simulator (and
    # imageio, which gymnasium's MuJoCo tasks import) for a notebook that imports mujoco
    needs = {
        "figures": any(m.startswith("pgcore.widgets") for m in mods),
        "mujoco": "mujoco" in tops,
    }
    wanted = [e for e, needed in needs.items() if needed and e in extras]
    stdlib = set(sys.stdlib_module_names)
    extra = sorted(
        PIP_NAMES.get(t, t.replace("_", "-"))
        for t in tops
        if t not in stdlib
        and t not in COLAB_HAS
        and t != "pgcore"
        and t.lower() not in deps
        and t not in wanted
    )
    target = "./apg" + (f"[{','.join(wanted)}]" if wanted else "")
    pip = " ".join([f'"{target}"', *extra])
    return (
        "# Setup, on Colab only: clone the book's repository (pgcore and the stored runs in\n"
        "# book/data), install pgcore from it (not editable) and what this notebook imports that\n"
        "# Colab lacks. Elsewhere this cell does nothing: install the repository as README says.\n"
        "import os\n"
        "\n"
        "try:\n"
        "    import google.colab  # noqa: F401  (importable only on Colab)\n"
        "\n"
        "    ON_COLAB = True\n"
        "except ImportError:\n"
        "    ON_COLAB = False\n"
        "if ON_COLAB:\n"
        f'    REPO_URL = os.environ.get("PGBOOK_REPO", "{repo_url}")\n'
        '    if not os.path.isdir("apg"):\n'
        "        !git clone -q --depth 1 {REPO_URL} apg\n"
        f"    %pip install -q {pip}\n"
        '    os.environ["PGBOOK_ROOT"] = os.path.abspath("apg")\n'
    )


# ------------------------------------------------------------------------------------------


def portable_notebook(nb, res: Resolver, repo_url: str, repo: Path):
    import nbformat

    cells = []
    for cell in nb.cells:
        tags = cell.get("metadata", {}).get("tags", [])
        if SETUP_TAG in tags:
            continue
        if cell.cell_type == "markdown":
            src = cell.source
            if "% The book's LaTeX macros" in src:  # the macro cell: MathJax's \def lines only
                src = src[src.index("$$") :]
                cells.append(nbformat.v4.new_markdown_cell(src))
                continue
            if "remove-cell" in tags:
                continue
            res.attachments = {}
            new = nbformat.v4.new_markdown_cell(convert_markdown(src, res).strip("\n"))
            if res.attachments:
                new["attachments"] = res.attachments
            cells.append(new)
        else:
            cell = nbformat.from_dict(dict(cell))
            cell.metadata = {k: v for k, v in cell.metadata.items() if k in ("tags",)}
            cells.append(cell)
    setup = nbformat.v4.new_code_cell(
        setup_cell_source(nb, repo_url, repo), metadata={"tags": [SETUP_TAG]}
    )
    out = nbformat.v4.new_notebook(cells=[setup, *cells])
    out.metadata = {k: v for k, v in nb.metadata.items() if k in ("kernelspec", "language_info")}
    out.metadata["colab"] = {"provenance": []}
    return out


def online_base_url(app) -> str:
    base = getattr(app.config, "html_baseurl", "") or ""
    if base:
        return base
    repo = app.config.html_theme_options.get("repository_url", "")
    m = re.match(r"https://github\.com/([^/]+)/([^/]+?)/?$", repo)
    return f"https://{m.group(1)}.github.io/{m.group(2)}/" if m else ""


def write_portable_notebooks(app) -> list[Path]:
    """Rewrite every ``_sources/**/*.ipynb`` of the HTML build as a portable notebook."""
    import nbformat

    repo_url = app.config.html_theme_options.get("repository_url", "")
    repo = Path(app.srcdir)
    base = online_base_url(app)
    execute_dir = Path(app.outdir).parent / "jupyter_execute"
    done = []
    for path in sorted(Path(app.outdir, "_sources").rglob("*.ipynb")):
        docname = path.relative_to(Path(app.outdir, "_sources")).with_suffix("").as_posix()
        nb = nbformat.read(path, as_version=4)
        if nb.metadata.get("pgbook_portable"):
            continue
        glue_file = execute_dir / f"{docname}.glue.json"
        glue = json.loads(glue_file.read_text()) if glue_file.exists() else {}
        glue = {k: (literal_eval(v) if isinstance(v, str) else v) for k, v in glue.items()}
        res = Resolver(app, docname, glue, base)
        out = portable_notebook(nb, res, repo_url, repo)
        out.metadata["pgbook_portable"] = True
        if res.warnings:
            from sphinx.util import logging

            logging.getLogger(__name__).info(
                "portable notebook %s: %s", docname, "; ".join(sorted(set(res.warnings))[:10])
            )
        nbformat.write(out, path)
        done.append(path)
    return done
