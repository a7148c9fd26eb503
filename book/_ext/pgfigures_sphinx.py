"""The book's figures in the HTML build (pgcore.widgets: Explorable.display(), DataFigure.display()).

1. Serves ``pgcore/widgets/static`` (pgfigure.js and the vendored vega.min.js, vega-lite.min.js
   with their licences) as static files, so they land in ``_build/html/_static/``.
2. Adds ``pgfigure.js`` (``defer``) to the pages that contain a figure, and only to those. The
   script loads Vega and Vega-Lite itself, from next to it, when a figure nears the viewport.
3. After the build, moves each figure's precomputed grid out of the page: the JSON block of a
   figure keeps what the first paint needs (the panels, the sliders, the tables of the default
   setting) and points (``"src"``) to ``_static/figdata/<figure id>.json``, which pgfigure.js
   fetches when the figure is about to be used. The page stays light; the grid loads lazily.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pgcore.widgets as pgw

FIGURE_MARK = 'class="pg-figure"'
_DATA = re.compile(
    r'(<script type="application/json" class="pg-figure-data">)(.*?)(</script>)', re.S
)


def _add_static_path(app, config) -> None:
    static = str(pgw.STATIC_DIR)
    if static not in config.html_static_path:
        config.html_static_path.append(static)


def _add_script(app, pagename, templatename, context, doctree) -> None:
    body = context.get("body", "") or ""
    if FIGURE_MARK in body:
        app.add_js_file("pgfigure.js", defer="defer")


def _dumps(obj) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False).replace(
        "</", "<\\/"
    )


def split_page(page: Path, outdir: Path) -> int:
    """Move the grids of ``page``'s figures into ``_static/figdata``; returns how many moved."""
    text = page.read_text(encoding="utf-8")
    if "pg-figure-data" not in text:
        return 0
    figdata = outdir / "_static" / "figdata"
    moved = 0

    def repl(m: re.Match) -> str:
        nonlocal moved
        payload = json.loads(m.group(2))
        grid = payload.pop("grid", None)
        if grid is None:
            return m.group(0)
        figdata.mkdir(parents=True, exist_ok=True)
        target = figdata / f"{payload['id']}.json"
        target.write_text(_dumps(grid), encoding="utf-8")
        payload["src"] = Path(os.path.relpath(target, page.parent)).as_posix()
        moved += 1
        return m.group(1) + _dumps(payload) + m.group(3)

    new = _DATA.sub(repl, text)
    if moved:
        page.write_text(new, encoding="utf-8")
    return moved


def _split_all(app, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    outdir = Path(app.outdir)
    for page in outdir.rglob("*.html"):
        if "_static" in page.relative_to(outdir).parts:
            continue
        split_page(page, outdir)


def setup(app):
    app.connect("config-inited", _add_static_path)
    app.connect("html-page-context", _add_script)
    app.connect("build-finished", _split_all)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
