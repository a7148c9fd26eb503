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

3. Portable notebooks. Every executed ``.ipynb`` the build offers for download (and that
   the workflow publishes for Colab) is rewritten by ``pgbook_portable`` (next to this file):
   MyST resolved into plain Markdown from Sphinx's own numbers and titles (glued values,
   "Theorem 3.1" links, citations, quoted admonitions and proofs), outputs kept, and a first
   cell that, on Colab only, clones the repository and installs pgcore from it (not editable)
   with what the notebook imports that Colab lacks.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any


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


def _write_portable_notebooks(app, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    if not app.config.html_theme_options.get("repository_url", ""):
        return
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from pgbook_portable import write_portable_notebooks

    write_portable_notebooks(app)


def setup(app) -> dict[str, Any]:
    app.add_config_value("pgbook_colab_branch", "", "html")
    # late priority: after the extensions that add per-page scripts and header buttons
    app.connect("html-page-context", _dedupe_scripts, priority=900)
    app.connect("html-page-context", _colab_to_notebook_branch, priority=900)
    app.connect("build-finished", _write_portable_notebooks)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "0.3"}
