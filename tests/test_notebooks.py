"""The chapters as notebooks, without a browser: the macro cell agrees with _config.yml, the
chapters are in the form JupyterLab writes back (open + save changes nothing), the glue roles
survive JupyterLab's {eval} view, pgcore finds the book's data anywhere, the portable-notebook
conversion resolves MyST, and the Binder configuration pins the CPU build of torch."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest

from .conftest import REPO, chapter_notebooks

sys.path.insert(0, str(REPO / "book" / "_ext"))
import pgbook_lab  # noqa: E402
import pgbook_portable  # noqa: E402

CHAPTERS = chapter_notebooks()
IDS = [p.name for p in CHAPTERS]


def test_there_are_chapters():
    assert len(CHAPTERS) >= 6, CHAPTERS


@pytest.mark.parametrize("path", CHAPTERS, ids=IDS)
def test_macro_cell_is_first_and_matches_config(path):
    nb = jupytext.read(path)
    first = nb.cells[0]
    assert first.cell_type == "markdown" and "remove-cell" in first.metadata.get("tags", []), (
        f"{path.name}: the first cell must be the macro cell "
        "(python book/_ext/pgbook_lab.py macros writes it)"
    )
    assert pgbook_lab.parse_macro_cell(first.source) == pgbook_lab.config_macros()


def test_macro_cell_parser_catches_disagreement():
    src = pgbook_lab.macro_cell_source({"E": r"\mathbb{E}", "F": r"\mathbf{F}"})
    assert pgbook_lab.parse_macro_cell(src) == {"E": r"\mathbb{E}", "F": r"\mathbf{F}"}
    with pytest.raises(ValueError):
        pgbook_lab.parse_macro_cell(src.replace(r"\def\F{\mathbf{F}}", r"\def\F{\mathbf{G}}"))


@pytest.mark.parametrize("path", CHAPTERS, ids=IDS)
def test_chapter_is_in_the_form_jupytext_writes_back(path):
    text = path.read_text(encoding="utf-8")
    assert pgbook_lab.roundtrip_text(path) == text, (
        f"{path.name} changes when JupyterLab saves it: run `make chapters-normalise`"
    )


@pytest.mark.parametrize("path", CHAPTERS, ids=IDS)
def test_glue_roles_and_eval_view_are_inverse(path):
    text = path.read_text(encoding="utf-8")
    view = pgbook_lab.glue_to_eval(text)
    assert pgbook_lab.eval_to_glue(view) == text
    md = "\n".join(c.source for c in jupytext.read(path).cells if c.cell_type == "markdown")
    assert "{glue:text}`" not in pgbook_lab.glue_to_eval(md)
    assert "{glue:figure}" not in pgbook_lab.glue_to_eval(md)


@pytest.mark.parametrize("path", CHAPTERS, ids=IDS)
def test_citations_and_references_to_other_chapters_become_links_and_back(path):
    """In JupyterLab every citation and every reference into another chapter reads as text
    ("Schulman et al. (2015)", "Lemma “Performance difference” (Policy gradient as policy
    iteration)") linking the online book; saving restores the role exactly."""
    index = pgbook_lab.BookIndex()
    here = f"book/{path.stem}"
    text = path.read_text(encoding="utf-8")
    view = pgbook_lab.refs_to_links(text, index, here)
    assert pgbook_lab.links_to_refs(view) == text
    left = pgbook_lab.BOOK_ROLE.findall(pgbook_lab.BOOK_LINK.sub("", view))
    for role, content in left:
        target = re.sub(r"^.*<([^<>]+)>$", r"\1", content)
        assert role not in pgbook_lab.CITE_ROLES, f"citation {content!r} not resolved"
        assert role != "doc", f"{{doc}} {content!r} not resolved"
        assert index.labels.get(target, (here,))[0] == here, (
            f"{{{role}}} {content!r} points into another chapter and was not resolved"
        )
    for m in pgbook_lab.BOOK_LINK.finditer(view):
        shown = m.group(0)[1 : m.group(0).index("](")]
        assert shown and "`" not in shown, m.group(0)  # no role, no label


def test_a_citation_and_a_reference_read_as_text():
    index = pgbook_lab.BookIndex()
    out = pgbook_lab.refs_to_links(
        "{cite:t}`schulman2015trpo` and {prf:ref}`lem-ch1-pdl`", index, "book/05_trpo"
    )
    assert out.startswith("[Schulman et al. (2015)](https://"), out
    assert "[Lemma “Performance difference” (Policy gradient as policy iteration)](" in out, out
    assert "01_policy_iteration.html#lem-ch1-pdl" in out


def _contents_manager(root: Path):
    return pgbook_lab.BookContentsManager(root_dir=str(root))


def test_open_and_save_leaves_a_chapter_unchanged(tmp_path):
    """What autosave does: GET the model, PUT it back with the running kernel's metadata."""
    path = CHAPTERS[0]
    (tmp_path / "book").mkdir()
    copy = tmp_path / "book" / path.name
    copy.write_bytes(path.read_bytes())
    cm = _contents_manager(tmp_path)
    rel = f"book/{path.name}"

    async def roundtrip(edit=None):
        model = await cm.get(rel, content=True, type="notebook")
        nb = model["content"]
        assert any("{eval}`glue_text(" in c["source"] for c in nb["cells"]), "no {eval} view"
        nb["metadata"]["kernelspec"] = {
            "display_name": "Python 3 (ipykernel)",
            "language": "python",
            "name": "python3",
        }
        nb["metadata"]["language_info"] = {"name": "python", "version": "3.11.7"}
        for cell in nb["cells"]:
            if cell["cell_type"] == "markdown" and "{eval}" in cell["source"]:
                cell["metadata"]["user_expressions"] = [{"expression": "1", "result": {}}]
            cell["metadata"]["execution"] = {"iopub.status.idle": "2026-01-01T00:00:00Z"}
        if edit:
            edit(nb)
        await cm.save({"type": "notebook", "format": "json", "content": nb}, rel)

    asyncio.run(roundtrip())
    assert copy.read_bytes() == path.read_bytes(), "opening and saving changed the chapter"

    # a real edit is written, the glue roles stay, no volatile metadata is written
    def edit(nb):
        md = next(
            c for c in nb["cells"] if c["cell_type"] == "markdown" and "{eval}" in c["source"]
        )
        md["source"] += "\n\nA new sentence."

    asyncio.run(roundtrip(edit))
    new = copy.read_text(encoding="utf-8")
    assert "A new sentence." in new
    assert "user_expressions" not in new and "language_info" not in new
    assert "glue_text(" not in new
    assert new.count("{glue:text}`") == path.read_text(encoding="utf-8").count("{glue:text}`")
    changed = [ln for ln in new.splitlines() if ln not in path.read_text().splitlines()]
    assert changed == ["A new sentence."], changed[:5]


# --------------------------------------------------------------------------------------------
# pgcore.notebook


def test_book_dir_from_env_checkout_and_cwd(tmp_path, monkeypatch):
    from pgcore import notebook

    monkeypatch.delenv("PGBOOK_ROOT", raising=False)
    assert notebook.book_dir() == REPO / "book"  # the checkout next to pgcore
    clone = tmp_path / "clone"
    (clone / "book" / "data").mkdir(parents=True)
    (clone / "book" / "scripts").mkdir()
    monkeypatch.setenv("PGBOOK_ROOT", str(clone))
    assert notebook.book_dir() == clone / "book"
    assert notebook.data_dir("ppo") == clone / "book" / "data" / "ppo"
    monkeypatch.setenv("PGBOOK_ROOT", str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="PGBOOK_ROOT"):
        notebook.book_dir()


def test_glue_text_formats_like_the_book():
    from IPython.core.interactiveshell import InteractiveShell
    from myst_nb import glue

    from pgcore import glue_values, notebook

    shell = InteractiveShell.instance()
    notebook.load_ipython_extension(shell)
    glue_values("tnb_", x=0.123456, n=7)
    glue("tnb_s", "text", display=False)
    assert shell.user_ns["glue_text"]("tnb_x:.2f") == "0.12"
    assert repr(notebook.glue_text("tnb_x:.1%")) == "12.3%"  # shown without quotes
    assert notebook.glue_text("tnb_n") == "7" and notebook.glue_text("tnb_s") == "text"
    assert pgbook_portable.format_plain_text("0.123456", ".2f") == "0.12"
    with pytest.raises(KeyError, match="run the cells above"):
        notebook.glue_text("tnb_missing")
    # JupyterLab may evaluate a Markdown cell before the cell that glues: a placeholder fills in
    early = notebook.glue_text("tnb_late:.3f", wait=True)
    assert early.value == "…"
    glue_values("tnb_", late=2.0)
    assert early.value == "2.000"


def test_html_table_escapes_aligns_and_refuses_ragged_rows():
    from pgcore.notebook import html_table

    out = html_table(["a<b", "n"], [["x & y", 1.5], ["z", 2]]).data
    assert '<th style="text-align:left">a&lt;b</th>' in out
    assert '<td style="text-align:left">x &amp; y</td><td style="text-align:right">1.5</td>' in out
    assert out.count("<tr>") == 3
    assert 'text-align:center">2<' in html_table(["a", "n"], [["z", 2]], ["left", "center"]).data
    with pytest.raises(ValueError, match="2 cells"):
        html_table(["a", "n"], [["only one"]])
    with pytest.raises(ValueError, match="align=1"):
        html_table(["a", "n"], [["z", 2]], ["left"])


# --------------------------------------------------------------------------------------------
# portable notebooks (the conversion itself; the Colab test runs the built ones)


class _StubResolver(pgbook_portable.Resolver):
    def __init__(self, glue):
        self.doc, self.glue, self.base = "book/x", glue, "https://example.org/apg/"
        self.fignum = {"book/x": {"figure": {"fig-x": (3, 1)}, "theorem": {"thm-x": (3, 2)}}}
        self.std = {"labels": {"sec-x": ("book/y", "sec-x", "A section")}, "anonlabels": {}}
        self.attachments, self.warnings, self._cites = {}, [], {}

    def title(self, docname):
        return {"book/y": "Chapter Y"}.get(docname, docname)


def test_myst_to_markdown():
    res = _StubResolver(
        {"k": {"data": {"text/plain": "0.98765"}}, "f": {"data": {"image/png": "iVBOR"}}}
    )
    src = (
        "(sec-here)=\n## Title\n\nValue {glue:text}`k:.2f`, see {ref}`sec-x` and {doc}`y`.\n\n"
        ":::{note}\nA note with {glue:text}`k:.1f`.\n:::\n\n"
        "```{glue:figure} f\n:name: fig-x\n\nThe caption.\n```\n"
    )
    out = pgbook_portable.convert_markdown(src, res)
    assert "(sec-here)=" not in out and "{" not in out.replace("{ref}", "?"), out
    assert "Value 0.99" in out
    assert "[A section](https://example.org/apg/book/y.html#sec-x)" in out
    assert "[Chapter Y](https://example.org/apg/book/y.html)" in out
    assert "> **Note.** A note with 1.0." in out
    assert "![f](attachment:f.png)" in out and "**Figure 3.1.** The caption." in out
    assert res.attachments == {"f.png": {"image/png": "iVBOR"}}


def test_setup_cell_installs_what_colab_lacks():
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell(
                "%matplotlib inline\nimport json\nimport numpy as np\nimport torch\n"
                "from myst_nb import glue\nimport gymnasium as gym\nimport pgcore\n"
                "from pgcore.widgets import ppo"
            )
        ]
    )
    src = pgbook_portable.setup_cell_source(nb, "https://github.com/o/r", REPO)
    pip = next(ln for ln in src.splitlines() if "%pip install" in ln)
    assert '"./apg[figures]"' in pip and "myst-nb" in pip
    for preinstalled in ("numpy", "torch", "json", "gymnasium"):  # Colab's, stdlib, pgcore's
        assert preinstalled not in pip
    assert "import google.colab" in src and "if ON_COLAB:" in src and "PGBOOK_ROOT" in src
    # a notebook that imports mujoco gets pgcore's mujoco extra (mujoco and imageio); a module of
    # book/scripts is not installed but stands for what it imports (ppo_table1_mujoco: mujoco)
    for cell in ("import mujoco", "import trpo_runs\nimport ppo_table1_mujoco"):
        nb.cells[1:] = [nbformat.v4.new_code_cell(cell)]
        src = pgbook_portable.setup_cell_source(nb, "https://github.com/o/r", REPO)
        pip = next(ln for ln in src.splitlines() if "%pip install" in ln)
        assert '"./apg[figures,mujoco]"' in pip and " mujoco" not in pip, pip
        assert not re.search(r"trpo|ppo|sweep|rliable", pip), pip  # rliable: in the cell, not here
    compile(re.sub(r"^(\s*)[!%].*$", r"\1pass", src, flags=re.M), "setup", "exec")


# --------------------------------------------------------------------------------------------
# Binder


def _makefile_torch() -> str:
    m = re.search(r"^TORCH\s*:=\s*torch==(\S+)", (REPO / "Makefile").read_text(), re.M)
    assert m, "TORCH not found in the Makefile"
    return m.group(1)


def test_binder_pins_the_cpu_torch_and_the_book_requirements():
    reqs = [
        ln.strip()
        for ln in (REPO / "binder" / "requirements.txt").read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in reqs
    assert f"torch=={_makefile_torch()}+cpu" in reqs
    assert "-r ../requirements.txt" in reqs
    pinned = re.search(r"^torch==(\S+)$", (REPO / "requirements.txt").read_text(), re.M)
    assert pinned and pinned.group(1) == _makefile_torch()
    assert (REPO / "binder" / "runtime.txt").read_text().strip() == "python-3.11"


def test_binder_post_build_configures_lab_like_make_lab(tmp_path):
    import json

    post = REPO / "binder" / "postBuild"
    assert os.access(post, os.X_OK)
    prefix, site = tmp_path / "env", tmp_path / "site"
    (prefix / "bin").mkdir(parents=True)
    site.mkdir()
    fake_python = prefix / "bin" / "python"
    fake_python.write_text(f"#!/bin/sh\necho {site}\n")
    fake_python.chmod(0o755)
    subprocess.run(
        ["bash", str(post)],
        cwd=REPO,
        env={**os.environ, "NB_PYTHON_PREFIX": str(prefix)},
        check=True,
    )
    overrides = json.loads((prefix / "share/jupyter/lab/settings/overrides.json").read_text())
    viewers = overrides["@jupyterlab/docmanager-extension:plugin"]["defaultViewers"]
    assert viewers["markdown"] == "Jupytext Notebook"
    server = json.loads((prefix / "etc/jupyter/jupyter_server_config.d/pgbook.json").read_text())
    assert server["ServerApp"]["contents_manager_class"] == "pgbook_lab.BookContentsManager"
    kernel = json.loads((prefix / "share/jupyter/kernels/python3/kernel.json").read_text())
    assert "--InteractiveShellApp.extra_extensions=pgcore.notebook" in kernel["argv"]
    assert (site / "pgbook_ext.pth").read_text().strip() == str(REPO / "book" / "_ext")
    # the same three settings as `make lab`
    make = (REPO / "Makefile").read_text()
    for needle in ("Jupytext Notebook", "pgbook_lab.BookContentsManager", "pgcore.notebook"):
        assert needle in make
