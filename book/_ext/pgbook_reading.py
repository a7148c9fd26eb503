"""Post-build steps that make every page light and quick on a phone (issue 11, items 2 and 3).

Run by Sphinx when the HTML build finishes (``build-finished``), and on an existing build with
``python book/_ext/pgbook_reading.py _build/html`` (idempotent: a page already processed is left
as it is).

1. **Maths typeset at build time.** MathJax 3 (the vendored npm package) runs in node
   (``prerender_maths.js``) on every formula of a page, with the page's own MathJax configuration
   (Sphinx's ``mathjax3_config``: the book's macros), and its CommonHTML output replaces the TeX
   in the page, with MathJax's stylesheet for the characters the page uses. The reader's browser
   then shows finished maths with the first paint: it neither downloads MathJax (264 kB gzipped)
   nor spends seconds of a phone's CPU typesetting, and there is never raw TeX on screen. Every
   formula keeps MathJax's assistive MathML (screen readers read it), and no formula is a tab stop
   (there is no MathJax menu). The fonts a page's formulas use are preloaded.

2. **No icon JavaScript.** pydata-sphinx-theme loads Font Awesome twice: ``fontawesome.js``
   (every icon of Font Awesome as SVG, 543 kB gzipped) and the same icons as web fonts in its CSS
   (another 275 kB). The script goes; the web fonts are cut down to the icons the built pages use
   (a few kB) and the theme's ``@font-face`` rules point at the cut-down fonts.

3. **One stylesheet, no script in the way.** The theme's 14 stylesheets become one file (each
   request is a round trip on a phone), its synchronous scripts are deferred, and its script
   preloads go (they competed with the stylesheet and the fonts for the first paint).

A page whose maths cannot be typeset (a TeX error) fails the build, as MathJax's red error box
would otherwise reach the reader.
"""

from __future__ import annotations

import html
import json
import logging
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
NODE_SCRIPT = HERE / "prerender_maths.js"
MATHJAX_FONTS_SRC = "_static/mathjax/output/chtml/fonts/woff-v2"
#: MathJax's fonts cut down to the characters the book's formulas use (written by subset_maths_fonts)
MATHJAX_FONTS = "_static/pgbook-mathfonts"
MARKER = '<meta name="pgbook-maths" content="typeset at build time">'

_CONFIG = re.compile(r"<script>window\.MathJax = (\{.*?\})</script>\s*", re.S)
_MATHJAX_SCRIPT = re.compile(r'<script defer="defer" src="[^"]*_static/mathjax/[^"]*"></script>\s*')
_INLINE = re.compile(r'(<span class="math notranslate nohighlight">)\\\((.*?)\\\)(</span>)', re.S)
_DISPLAY = re.compile(
    r'(<div class="[^"]*\bmath notranslate nohighlight"[^>]*>\s*(?:<span class="eqno">.*?</span>)?)'
    r"\\\[(.*?)\\\](\s*</div>)",
    re.S,
)
_FA_SCRIPT = re.compile(
    r'<script defer src="[^"]*_static/scripts/fontawesome\.js[^"]*"></script>\s*'
)


# fontTools reports every table it prunes at INFO level, which Sphinx's log would show
logging.getLogger("fontTools").setLevel(logging.ERROR)


class MathsError(RuntimeError):
    pass


def _root_prefix(page: Path, outdir: Path) -> str:
    depth = len(page.relative_to(outdir).parts) - 1
    return "../" * depth


def _typeset(items: list[dict], config: dict, font_url: str, mathjax_dir: Path) -> dict:
    proc = subprocess.run(
        ["node", str(NODE_SCRIPT), str(mathjax_dir), font_url],
        input=json.dumps({"config": config, "math": items}),
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise MathsError(f"MathJax in node failed: {proc.stderr.strip()[-2000:]}")
    return json.loads(proc.stdout)


def prerender_page(page: Path, outdir: Path, mathjax_dir: Path) -> int:
    """Typeset one page's maths in place; returns the number of formulas (0: nothing to do)."""
    text = page.read_text(encoding="utf-8")
    if MARKER in text:
        return 0
    config_match = _CONFIG.search(text)
    if not config_match:
        return 0  # the page does not load MathJax (no maths)
    config = json.loads(config_match.group(1))

    items: list[dict] = []

    def collect(display: bool):
        def repl(m: re.Match) -> str:
            items.append({"tex": html.unescape(m.group(2)), "display": display})
            return f"{m.group(1)}\x00PGMATH{len(items) - 1}\x00{m.group(3)}"

        return repl

    body = _DISPLAY.sub(collect(True), text)
    body = _INLINE.sub(collect(False), body)
    # a maths element whose TeX the patterns above did not recognise would stay raw TeX
    left = re.findall(
        r'class="[^"]*\bmath notranslate nohighlight"[^>]*>(?:(?!</(?:span|div)>).)*?\\[(\[]',
        body,
        re.S,
    )
    prefix = _root_prefix(page, outdir)
    if items:
        out = _typeset(items, config, prefix + MATHJAX_FONTS, mathjax_dir)
        if out["errors"]:
            raise MathsError(f"{page.name}: MathJax could not typeset: {out['errors'][:3]}")
        body = re.sub(r"\x00PGMATH(\d+)\x00", lambda m: out["html"][int(m.group(1))], body)
        css = out["css"]
    else:
        css = ""
    if left:
        raise MathsError(
            f"{page.name}: {len(left)} maths elements in a form the build-time typesetting does "
            f"not recognise (they would stay raw TeX): {[x[:80] for x in left[:3]]}"
        )
    body = _CONFIG.sub("", body, count=1)
    body = _MATHJAX_SCRIPT.sub("", body, count=1)
    head = [MARKER]
    if items:
        head += [
            f'<link rel="preload" as="font" type="font/woff" crossorigin href="{url}">'
            for url in _fonts_used(css, body)
        ]
        head.append(f'<style id="MJX-CHTML-styles">{css}</style>')
    body = body.replace("</head>", "\n".join(head) + "\n</head>", 1)
    page.write_text(body, encoding="utf-8")
    return len(items)


_FONT_FACE = re.compile(r'@font-face[^{]*\{\s*font-family: ([\w-]+);\s*src: url\("([^"]+)"\)')


def _fonts_used(css: str, body: str) -> list[str]:
    """The URLs of the fonts the page's formulas use, to preload: they are requested with the page
    instead of after its layout. MathJax's stylesheet declares every font of its TeX set; a
    character names its font by a class (``TEX-I`` for MJXTEX-I), MJXTEX and MJXZERO by default."""
    faces = dict(_FONT_FACE.findall(css))
    used = {"MJXZERO", "MJXTEX"} | {
        f"MJXTEX-{v}" for v in re.findall(r'<mjx-c class="[^"]*\bTEX-([A-Z0-9]+)"', body)
    }
    return [url for family, url in faces.items() if family in used]


def prerender_maths(outdir: Path, mathjax_dir: Path, workers: int = 2) -> dict[str, int]:
    pages = sorted(Path(outdir).rglob("*.html"))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        counts = list(pool.map(lambda p: prerender_page(p, outdir, mathjax_dir), pages))
    subset_maths_fonts(outdir)
    return {str(p.relative_to(outdir)): n for p, n in zip(pages, counts) if n}


_CSS_CONTENT = re.compile(r'content: "((?:[^"\\]|\\[0-9A-Fa-f]{1,6} ?|\\.)*)"')


def _css_string(raw: str) -> str:
    return re.sub(
        r"\\([0-9A-Fa-f]{1,6}) ?|\\(.)",
        lambda m: chr(int(m.group(1), 16)) if m.group(1) else m.group(2),
        raw,
    )


def subset_maths_fonts(outdir: Path) -> list[str]:
    """Write MathJax's fonts, cut down to the characters of every page's maths stylesheet."""
    outdir = Path(outdir)
    chars: set[int] = set()
    for page in outdir.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        start = text.find('<style id="MJX-CHTML-styles">')
        if start < 0:
            continue
        css = text[start : text.find("</style>", start)]
        for raw in _CSS_CONTENT.findall(css):
            chars |= {ord(c) for c in _css_string(raw)}
    if not chars:
        return []
    from fontTools import subset
    from fontTools.ttLib import TTFont

    src, dst = outdir / MATHJAX_FONTS_SRC, outdir / MATHJAX_FONTS
    dst.mkdir(parents=True, exist_ok=True)
    made = []
    for font_file in sorted(src.glob("*.woff")):
        options = subset.Options()
        options.flavor = "woff"
        options.notdef_outline = True
        options.layout_features = ["*"]
        options.drop_tables += ["FFTM"]
        font = TTFont(str(font_file))
        subsetter = subset.Subsetter(options)
        subsetter.populate(unicodes=sorted(chars | {0x20, 0xA0}))
        subsetter.subset(font)
        if not font.getBestCmap():  # none of its characters is used (MathJax_Zero): keep it whole
            shutil.copyfile(font_file, dst / font_file.name)
            continue
        font.flavor = "woff"
        font.save(str(dst / font_file.name))
        made.append(font_file.name)
    return made


# -- one stylesheet --------------------------------------------------------------------------------
#: On a slow connection every request costs a round trip (562 ms on DevTools' Slow 4G) and HTTP/1.1
#: opens six connections at most: the theme's 14 render-blocking stylesheets (one of them an
#: @import) took three rounds before the first paint. They become one file, in the same order.
_STYLESHEET = re.compile(
    r'<link (?:rel="stylesheet" (?:type="text/css" )?href="([^"]+)"|href="([^"]+)" rel="stylesheet")'
    r"\s*/?>\s*"
)
_IMPORT = re.compile(r"""@import\s+(?:url\(\s*)?["']?([^"')\s]+)["']?\s*\)?[^;]*;""")
_URL = re.compile(r"""url\(\s*(["']?)([^"')]+)\1\s*\)""")
BUNDLE_PREFIX = "_static/pgbook-styles."


def _inline_css(path: Path, static: Path, seen: set[Path]) -> str:
    """``path``'s CSS with its @imports inlined and its url()s relative to ``static``."""
    path = path.resolve()
    if path in seen:
        return ""
    seen.add(path)
    text = path.read_text(encoding="utf-8")
    text = re.sub(r"/\*# sourceMappingURL=[^*]*\*/|@charset [^;]*;", "", text)

    def url(m: re.Match) -> str:
        ref = m.group(2)
        if re.match(r"^(?:[a-z]+:|/|#)", ref):
            return m.group(0)
        target = (path.parent / ref.split("?")[0].split("#")[0]).resolve()
        tail = ref[len(ref.split("?")[0].split("#")[0]) :]
        return f'url("{os.path.relpath(target, static).replace(os.sep, "/")}{tail}")'

    def imp(m: re.Match) -> str:
        return _inline_css((path.parent / m.group(1).split("?")[0]), static, seen)

    return _URL.sub(url, _IMPORT.sub(imp, text))


def bundle_styles(outdir: Path) -> int:
    """Replace each page's stylesheet links by one stylesheet with the same rules, in order."""
    import hashlib

    outdir = Path(outdir).resolve()
    static = outdir / "_static"
    bundles: dict[tuple[Path, ...], str] = {}
    n = 0
    for page in sorted(outdir.rglob("*.html")):
        text = page.read_text(encoding="utf-8")
        head_end = text.find("</head>")
        links = list(_STYLESHEET.finditer(text, 0, head_end))
        if len(links) < 2:
            continue
        files = tuple(
            (page.parent / (m.group(1) or m.group(2)).split("?")[0]).resolve() for m in links
        )
        if any(not f.is_file() or static not in f.parents for f in files):
            continue  # a stylesheet from elsewhere: leave the page as it is
        if files not in bundles:
            css = "\n".join(_inline_css(f, static, set()) for f in files)
            name = f"{BUNDLE_PREFIX}{hashlib.sha256(css.encode()).hexdigest()[:12]}.css"
            (outdir / name).write_text(css, encoding="utf-8")
            bundles[files] = name
        href = os.path.relpath(outdir / bundles[files], page.parent).replace(os.sep, "/")
        first, rest = links[0], links[1:]
        out = text[: first.start()] + f'<link rel="stylesheet" href="{href}" />\n'
        pos = first.end()
        for m in rest:
            out += text[pos : m.start()]
            pos = m.end()
        page.write_text(out + text[pos:], encoding="utf-8")
        n += 1
    return n


# -- icons -----------------------------------------------------------------------------------------
_FA_RULE = re.compile(r'((?:\.fa-[a-z0-9-]+:(?:before|after),?)+)\{content:"\\([0-9a-f]+)"\}')
_FA_FACE = re.compile(r"src:url\(\.\./vendor/fontawesome/webfonts/(fa-[a-z]+-\d+)\.woff2\)[^;}]*")


def slim_icons(outdir: Path) -> list[str]:
    """Drop fontawesome.js from every page; cut the icon fonts to the icons the pages use."""
    outdir = Path(outdir)
    css_path = outdir / "_static" / "styles" / "pydata-sphinx-theme.css"
    fonts = outdir / "_static" / "vendor" / "fontawesome" / "webfonts"
    if not css_path.is_file() or not fonts.is_dir():
        return []
    used: set[str] = set()
    for page in outdir.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        used |= set(re.findall(r"\bfa-[a-z0-9-]+", text))
        new = _FA_SCRIPT.sub("", text)
        if new != text:
            page.write_text(new, encoding="utf-8")
    for js in (outdir / "_static").rglob("*.js"):
        if js.name != "fontawesome.js":
            used |= set(
                re.findall(r"\bfa-[a-z0-9-]+", js.read_text(encoding="utf-8", errors="ignore"))
            )
    css = css_path.read_text(encoding="utf-8")
    codepoints = set()
    for selectors, code in _FA_RULE.findall(css):
        names = set(re.findall(r"\.(fa-[a-z0-9-]+):", selectors))
        if names & used:
            codepoints.add(int(code, 16))
    # icons the stylesheets draw themselves (admonition and proof titles, dropdown arrows):
    # every private-use character in a CSS string other than the class table above
    for sheet in (outdir / "_static").rglob("*.css"):
        text = _FA_RULE.sub("", sheet.read_text(encoding="utf-8", errors="ignore"))
        codepoints |= {int(c, 16) for c in re.findall(r'"\\([ef][0-9a-f]{3})"', text)}
        codepoints |= {ord(c) for c in re.findall("[\ue000-\uf8ff]", text)}
    if not codepoints:
        return []

    from fontTools import subset
    from fontTools.ttLib import TTFont

    made = []
    for name in sorted(set(_FA_FACE.findall(css))):
        source = fonts / f"{name}.ttf"
        target = fonts / f"{name}.pgbook.woff"
        if not source.is_file():
            continue
        options = subset.Options()
        options.flavor = "woff"
        options.layout_features = []
        options.notdef_outline = True
        font = TTFont(str(source))
        subsetter = subset.Subsetter(options)
        subsetter.populate(unicodes=sorted(codepoints))
        subsetter.subset(font)
        font.flavor = "woff"
        font.save(str(target))
        made.append(target.name)
    css = _FA_FACE.sub(
        lambda m: (
            f'src:url(../vendor/fontawesome/webfonts/{m.group(1)}.pgbook.woff) format("woff")'
        ),
        css,
    )
    css_path.write_text(css, encoding="utf-8")
    return made


# -- render-blocking scripts -----------------------------------------------------------------------
#: Scripts the theme and extensions put in <head> without ``defer``: each blocks the first paint
#: until it has arrived (one round trip each on a phone). None of them is needed before the page is
#: parsed: they act on DOMContentLoaded or later, and deferred scripts keep their order. (Sphinx's
#: documentation_options.js stays: inline scripts use it at once.)
DEFERRABLE = (
    "doctools.js",
    "sphinx_highlight.js",
    "clipboard.min.js",
    "copybutton.js",
    "sphinx-book-theme.js",
    "togglebutton.js",
    "design-tabs.js",
    "searchtools.js",
    "language_data.js",
    "searchindex.js",
)
_SYNC_SCRIPT = re.compile(
    r'<script((?: data-[a-z-]+="[^"]*")*) src="([^"]*?([^/"?]+)(?:\?[^"]*)?)"></script>'
)
#: The theme also preloads its two deferred scripts (30 kB gzipped): on a slow connection they took
#: bandwidth from the stylesheet and the maths fonts that the first paint waits for.
_SCRIPT_PRELOAD = re.compile(r'<link rel="preload" as="script" href="[^"]*" />\s*')


def defer_scripts(outdir: Path) -> int:
    n = 0
    for page in Path(outdir).rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        head_end = text.find("</head>")
        if head_end < 0:
            continue

        def repl(m: re.Match) -> str:
            nonlocal n
            if m.group(3) not in DEFERRABLE:
                return m.group(0)
            n += 1
            return f'<script defer{m.group(1)} src="{m.group(2)}"></script>'

        head = _SCRIPT_PRELOAD.sub("", _SYNC_SCRIPT.sub(repl, text[:head_end]))
        if head != text[:head_end]:
            page.write_text(head + text[head_end:], encoding="utf-8")
    return n


# -- accessibility ---------------------------------------------------------------------------------
#: A formula too wide for the screen scrolls sideways (pgbook.css); a keyboard can scroll it only if
#: it can take the focus (WCAG 2.1.1). Formulas are not tab stops, except exactly those that overflow
#: at the current width (none on a laptop, a few on a phone); they are named as scroll regions.
SCROLL_FOCUS_JS = """<script>(() => {
  const sides = el => {
    const more = [];
    if (el.scrollLeft > 1) more.push('left');
    if (el.scrollLeft + el.clientWidth < el.scrollWidth - 1) more.push('right');
    el.dataset.pgMore = more.join(' ');
  };
  const mark = () => {
    for (const el of document.querySelectorAll('span.math, mjx-container[display="true"]')) {
      const over = el.scrollWidth > el.clientWidth + 1;
      if (over && !el.hasAttribute('tabindex')) {
        el.tabIndex = 0; el.dataset.pgScroll = '';
        el.setAttribute('role', 'region'); el.setAttribute('aria-label', 'formula (scrolls sideways)');
      } else if (!over && 'pgScroll' in el.dataset) {
        el.removeAttribute('tabindex'); delete el.dataset.pgScroll; delete el.dataset.pgMore;
        el.removeAttribute('role'); el.removeAttribute('aria-label');
      }
      if (over) sides(el);
    }
  };
  document.addEventListener('scroll', e => {
    if (e.target.dataset && 'pgScroll' in e.target.dataset) sides(e.target);
  }, true);
  let queued = false;
  const later = () => { if (!queued) { queued = true; requestAnimationFrame(() => { queued = false; mark(); }); } };
  document.addEventListener('DOMContentLoaded', mark);
  addEventListener('load', mark);
  addEventListener('resize', later);
  document.addEventListener('toggle', later, true);
  document.addEventListener('click', later);
})();</script>"""
SCROLL_MARKER = "el.dataset.pgScroll"

#: Accessible names that differ from the visible label (axe label-content-name-mismatch, WCAG
#: 2.5.3): speech-input users say the words they see. Without the aria-label the name is the text.
_NAME_MISMATCH = (
    # myst-nb's hidden-code toggle: shows "Show code cell source", was named "Toggle hidden content"
    ('<summary aria-label="Toggle hidden content">', "<summary>"),
)
_SEARCH_BUTTON = re.compile(
    r'(<button class="btn search-button-field search-button__button[^"]*"[^>]*?) aria-label="Search"'
)


def accessibility(outdir: Path) -> None:
    for page in Path(outdir).rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        new = text
        for old, repl in _NAME_MISMATCH:
            new = new.replace(old, repl)
        # the theme's search field shows "Search this book... Ctrl+K", named "Search"
        new = _SEARCH_BUTTON.sub(r"\1", new)
        if "mjx-container" in new and SCROLL_MARKER not in new:
            new = new.replace("</body>", SCROLL_FOCUS_JS + "\n</body>", 1)
        if new != text:
            page.write_text(new, encoding="utf-8")


def postprocess(outdir: Path, mathjax_dir: Path) -> None:
    slim_icons(outdir)
    bundle_styles(outdir)
    defer_scripts(outdir)
    prerender_maths(outdir, mathjax_dir)
    accessibility(outdir)


def _on_build_finished(app, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    mathjax_dir = Path(app.srcdir) / "node_modules" / "mathjax"
    if not (mathjax_dir / "es5" / "node-main.js").is_file():
        raise MathsError(f"{mathjax_dir} missing: run `make venv` (npm ci)")
    postprocess(Path(app.outdir), mathjax_dir)


def setup(app):
    # after every other build-finished step (they may rewrite pages too)
    app.connect("build-finished", _on_build_finished, priority=990)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "0.1"}


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "_build/html")
    repo = Path(__file__).resolve().parents[2]
    slim = slim_icons(target)
    bundle_styles(target)
    defer_scripts(target)
    counts = prerender_maths(target, repo / "node_modules" / "mathjax", workers=os.cpu_count() or 2)
    accessibility(target)
    print(f"icon fonts: {slim}; formulas typeset: {counts}")
