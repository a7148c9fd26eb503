"""Small Sphinx fixes and features for the Advanced Policy Gradients book (see _config.yml).

1. Duplicate inline scripts. Sphinx 7.4 registers an inline script that an extension adds
   after ``Builder.init()`` (sphinx-thebe's ``const THEBE_JS_URL = ...``, sphinx-togglebutton's
   ``var togglebuttonSelector = ...``) twice: once with ``filename=None`` and once, in
   ``prepare_writing``, with ``filename=''``. The two do not compare equal, so every page
   carried both copies, and the second ``const THEBE_JS_URL`` threw "SyntaxError: Identifier
   'THEBE_JS_URL' has already been declared" in the browser console. We drop the second copy
   of any script whose file name (``None`` and ``''`` counting as the same), priority and
   attributes repeat an earlier one.

2. Colab. Colab opens ``.ipynb`` files from GitHub, not MyST Markdown, so sphinx-book-theme's
   Colab button (which links the chapter's ``.md``) cannot work as is. With
   ``pgbook_colab_branch`` set, the button links ``book/<chapter>.ipynb`` on that branch
   instead; the GitHub workflow publishes the executed notebooks there from main.

3. Downloadable notebooks. Every executed ``.ipynb`` the build offers for download (and that
   the workflow publishes for Colab) starts with a setup cell that, on Colab only, clones the
   repository (the chapters read stored runs from ``book/data``), installs ``pgcore`` from it
   and moves into ``book/``. Elsewhere the cell does nothing.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

SETUP_TAG = "pgbook-colab-setup"


def _dedupe_scripts(
    app, pagename: str, templatename: str, context: dict[str, Any], doctree
) -> None:
    scripts = context.get("script_files")
    if not isinstance(scripts, list):
        return
    seen: set[tuple] = set()
    unique = []
    for js in scripts:
        filename = getattr(js, "filename", js) or ""
        attributes = getattr(js, "attributes", {}) or {}
        key = (
            str(filename),
            getattr(js, "priority", None),
            tuple(sorted((str(k), str(v)) for k, v in attributes.items())),
        )
        if key in seen:
            continue
        seen.add(key)
        unique.append(js)
    scripts[:] = unique


def _walk_buttons(buttons):
    for button in buttons or []:
        if isinstance(button, dict):
            yield button
            yield from _walk_buttons(button.get("buttons"))


def _colab_to_notebook_branch(app, pagename, templatename, context, doctree) -> None:
    branch = app.config.pgbook_colab_branch
    if not branch:
        return
    for button in _walk_buttons(context.get("header_buttons")):
        url = button.get("url", "")
        if "colab.research.google.com/github/" in url:
            # .../github/<org>/<repo>/blob/<branch>/<path>.md -> .../blob/<colab branch>/<path>.ipynb
            new = re.sub(r"/blob/[^/]+/(.+)\.(md|ipynb)$", rf"/blob/{branch}/\1.ipynb", url)
            button["url"] = new


def _setup_cell_source(repo_url: str) -> str:
    return (
        "# Setup on Colab: fetch the book's repository (the chapters read stored runs from\n"
        "# book/data), install pgcore from it, and work in book/. Elsewhere this does nothing.\n"
        "import sys\n"
        'if "google.colab" in sys.modules:\n'
        f"    !git clone -q --depth 1 {repo_url} /content/apg\n"
        "    %pip install -q /content/apg\n"
        "    %cd /content/apg/book\n"
    )


def _add_setup_cell_to_notebooks(app, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    repo_url = app.config.html_theme_options.get("repository_url", "")
    if not repo_url:
        return
    import nbformat

    for path in Path(app.outdir, "_sources").rglob("*.ipynb"):
        nb = nbformat.read(path, as_version=4)
        if nb.cells and SETUP_TAG in nb.cells[0].get("metadata", {}).get("tags", []):
            continue
        cell = nbformat.v4.new_code_cell(
            _setup_cell_source(repo_url), metadata={"tags": [SETUP_TAG]}
        )
        if (nb.nbformat, nb.nbformat_minor) < (4, 5):
            cell.pop("id", None)  # cell ids exist from nbformat 4.5 on
        nb.cells.insert(0, cell)
        nbformat.write(nb, path)


def setup(app) -> dict[str, Any]:
    app.add_config_value("pgbook_colab_branch", "", "html")
    # late priority: after the extensions that add per-page scripts and header buttons
    app.connect("html-page-context", _dedupe_scripts, priority=900)
    app.connect("html-page-context", _colab_to_notebook_branch, priority=900)
    app.connect("build-finished", _add_setup_cell_to_notebooks)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "0.2"}
