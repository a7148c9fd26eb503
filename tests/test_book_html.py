"""The built book as a reader sees it: headless Chromium, offline, pages served on 127.0.0.1.

The book is taken from $PGBOOK_HTML, or _build/html by default; `make test` points it at the
book its own build just produced. A missing book is a failure, never a skip.

Every request that leaves 127.0.0.1 is blocked and counted as a failure: the book must work
with no network (vendored MathJax; the widgets are plain JavaScript).
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections import deque
from pathlib import Path

import pytest
import yaml
from bs4 import BeautifulSoup

from .conftest import REPO, built_book_dir, is_chapter_notebook, toc_docnames

pytestmark = pytest.mark.browser

# Console messages that come from third-party code, not from our content. Each entry is
# (message type, regular expression, reason). Anything else at level warning or error fails.
# Empty: every page loads only Sphinx, the theme, MathJax and our own inline scripts, and
# none of them logs a warning.
KNOWN_NOISE: list[tuple[str, str, str]] = []

MAX_BOOK_MB = 50


TOC_DOCS = toc_docnames(REPO)
CHAPTER_DOCS = [d for d in TOC_DOCS if is_chapter_notebook(REPO / f"{d}.md")]


def _is_noise(kind: str, text: str) -> bool:
    return any(kind == k and re.search(rx, text) for k, rx, _ in KNOWN_NOISE)


def _open(browser, base: str):
    """A new page with offline routing and message collection."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    log = {"console": [], "errors": [], "failed": [], "external": [], "http": []}

    def on_route(route):
        url = route.request.url
        if url.startswith(base) or url.startswith(("data:", "blob:", "about:")):
            route.continue_()
        else:
            log["external"].append(url)
            route.abort()

    page.route("**/*", on_route)
    page.on(
        "console",
        lambda m: (
            log["console"].append((m.type, m.text))
            if m.type in ("error", "warning") and not _is_noise(m.type, m.text)
            else None
        ),
    )
    page.on("pageerror", lambda e: log["errors"].append(str(e)))
    page.on(
        "requestfailed",
        lambda r: (
            log["failed"].append(f"{r.url} ({r.failure})") if r.url.startswith(base) else None
        ),
    )
    page.on(
        "response",
        lambda r: log["http"].append(f"{r.status} {r.url}") if r.status >= 400 else None,
    )
    return context, page, log


def _wait_for_mathjax(page) -> str:
    """Wait until MathJax (when the page loads it) has typeset the page."""
    return page.evaluate(
        """async () => {
             if (!document.querySelector('script[src*="mathjax/"]')) return 'no maths';
             for (let i = 0; i < 300; i++) {
               if (window.MathJax && MathJax.startup && MathJax.startup.promise) break;
               await new Promise(r => setTimeout(r, 100));
             }
             await MathJax.startup.promise;
             return 'typeset';
           }"""
    )


# ------------------------------------------------------------------------------------------


def test_build_dir_exists():
    path = built_book_dir()
    assert (path / "index.html").is_file(), (
        f"No built book at {path}: run `make book` (or set PGBOOK_HTML)."
    )


def test_toc_pages_were_built(book_dir):
    missing = [d for d in TOC_DOCS if not (book_dir / f"{d}.html").is_file()]
    assert not missing, f"pages in _toc.yml missing from the build: {missing}"


@pytest.mark.parametrize("doc", TOC_DOCS)
def test_page_renders_offline(doc, book_dir, book_server, browser):
    """No console errors, maths typeset, images loaded, kernel-free widgets respond."""
    if not (book_dir / f"{doc}.html").is_file():
        pytest.fail(f"{doc}.html was not built", pytrace=False)
    context, page, log = _open(browser, book_server)
    try:
        page.goto(book_server + f"{doc}.html", wait_until="load")
        _wait_for_mathjax(page)
        page.wait_for_timeout(300)  # let late scripts (theme, search index) settle

        # -- maths -----------------------------------------------------------------------
        n_math_src = page.locator(".math, .amsmath").count()
        n_mjx = page.locator("mjx-container").count()
        if n_math_src:
            assert n_mjx > 0, f"{doc}: {n_math_src} maths elements but nothing typeset"
        visible = page.evaluate(
            """() => {
                 const main = document.querySelector('main') || document.body;
                 const clone = main.cloneNode(true);
                 clone.querySelectorAll('pre, code, script, style, textarea, mjx-container')
                      .forEach(e => e.remove());
                 return clone.textContent;
               }"""
        )
        for raw in ("$$", "\\begin{"):
            assert raw not in visible, f"{doc}: raw TeX {raw!r} visible in the page text"
        errors_in_math = page.locator("mjx-merror").count()
        assert errors_in_math == 0, f"{doc}: {errors_in_math} MathJax errors: " + "; ".join(
            page.locator("mjx-merror").all_text_contents()[:5]
        )

        # display equations fit the text column (MathJax 3 does not break lines: a wider
        # equation is cut off and has to be scrolled sideways; split it with aligned/split)
        too_wide = page.evaluate(
            """() => {
                 const out = [];
                 for (const el of document.querySelectorAll('mjx-container[display="true"]')) {
                   if (el.scrollWidth > el.clientWidth + 2) {
                     const tex = el.querySelector('mjx-assistive-mml');
                     out.push(`${el.scrollWidth - el.clientWidth}px too wide: ` +
                              (tex ? tex.textContent : '').slice(0, 90));
                   }
                 }
                 return out;
               }"""
        )
        assert not too_wide, f"{doc}: display equations wider than the text column: {too_wide}"

        # -- images ----------------------------------------------------------------------
        broken = page.evaluate(
            """async () => {
                 const imgs = [...document.images];
                 await Promise.all(imgs.map(i => { i.loading = 'eager';
                   return i.decode().catch(() => null); }));
                 return imgs.filter(i => !(i.complete && i.naturalWidth > 0))
                            .map(i => (i.currentSrc || i.src).slice(0, 120));
               }"""
        )
        assert not broken, f"{doc}: images that did not load: {broken}"

        # -- kernel-free widgets (pgcore.widgets.Explorable.static) ----------------------
        explorables = page.locator("div.pg-explorable")
        for i in range(explorables.count()):
            widget = explorables.nth(i)
            img = widget.locator("img.pg-explorable-frame")
            assert img.count() == 1, f"{doc}: explorable #{i} has {img.count()} frame images"
            sliders = widget.locator('input[type="range"]')
            assert sliders.count() >= 1, f"{doc}: explorable #{i} has no slider"
            for k in range(sliders.count()):
                slider = sliders.nth(k)
                before = img.get_attribute("src")
                lo, hi = int(slider.get_attribute("min") or 0), int(slider.get_attribute("max"))
                if hi == lo:
                    continue
                new = hi if int(slider.input_value()) != hi else lo
                slider.evaluate(
                    "(el, v) => { el.value = String(v);"
                    " el.dispatchEvent(new Event('input', {bubbles: true})); }",
                    new,
                )
                after = img.get_attribute("src")
                assert after != before, (
                    f"{doc}: explorable #{i}, slider {k}: the image did not change "
                    f"when the slider moved to {new}"
                )

        # -- matplotlib to_jshtml() animations, if any -----------------------------------
        anims = page.locator("div.animation")
        for i in range(anims.count()):
            anim = anims.nth(i)
            img, slider = anim.locator("img").first, anim.locator('input[type="range"]').first
            before = img.get_attribute("src")
            hi = int(slider.get_attribute("max"))
            slider.evaluate(
                "(el, v) => { el.value = String(v);"
                " el.dispatchEvent(new Event('input', {bubbles: true})); }",
                hi,
            )
            assert img.get_attribute("src") != before, f"{doc}: animation #{i} did not change"

        # -- no embedded ipywidgets: live widgets need a kernel, so their cells do not
        # run in the build (skip-execution); no widget state, no widget manager
        html = page.content()
        for marker in (
            "application/vnd.jupyter.widget-state+json",
            "application/vnd.jupyter.widget-view+json",
            "embed-amd",
            "require.js",
        ):
            assert marker not in html, f"{doc}: page embeds ipywidgets machinery ({marker})"

        # -- console and network ---------------------------------------------------------
        assert not log["external"], f"{doc}: requests left 127.0.0.1: {log['external'][:5]}"
        assert not log["errors"], f"{doc}: uncaught page errors: {log['errors'][:5]}"
        assert not log["http"], f"{doc}: HTTP errors: {log['http'][:5]}"
        assert not log["failed"], f"{doc}: failed requests: {log['failed'][:5]}"
        assert not log["console"], f"{doc}: console errors/warnings: {log['console'][:5]}"
    finally:
        context.close()


@pytest.mark.parametrize("doc", CHAPTER_DOCS or ["(no chapter notebooks yet)"])
def test_chapter_has_launch_and_download_buttons(doc, book_dir):
    if not CHAPTER_DOCS:
        pytest.fail("no chapter notebooks in _toc.yml exist under book/", pytrace=False)
    soup = BeautifulSoup((book_dir / f"{doc}.html").read_text(encoding="utf-8"), "html.parser")
    hrefs = [a.get("href", "") for a in soup.find_all("a")]
    cfg = yaml.safe_load((REPO / "_config.yml").read_text(encoding="utf-8"))
    repo = urllib.parse.urlparse(cfg["repository"]["url"]).path.strip("/")
    branch = cfg["repository"].get("branch", "main")
    binder = [h for h in hrefs if h.startswith(f"https://mybinder.org/v2/gh/{repo}/{branch}")]
    colab = [h for h in hrefs if h.startswith(f"https://colab.research.google.com/github/{repo}")]
    assert binder and f"{doc}.md" in binder[0], f"{doc}: no Binder launch button: {binder}"
    colab_branch = cfg["sphinx"]["config"].get("pgbook_colab_branch")
    assert colab, f"{doc}: no Colab launch button"
    if colab_branch:  # Colab cannot open .md: the button opens the executed .ipynb
        assert colab[0].endswith(f"/blob/{colab_branch}/{doc}.ipynb"), colab[0]
    name = doc.split("/")[-1]
    assert any(
        h.endswith(f"_sources/{doc}.md") or h.endswith(f"{name}.md")
        for h in hrefs
        if "_sources" in h
    ), f"{doc}: no .md download button"
    assert any(h.endswith(".ipynb") and "_sources" in h for h in hrefs), (
        f"{doc}: no .ipynb download button"
    )
    repo_links = [h for h in hrefs if h == cfg["repository"]["url"]]
    assert repo_links, f"{doc}: no repository button"
    # the downloadable notebook starts with the Colab setup cell
    nb = json.loads((book_dir / "_sources" / f"{doc}.ipynb").read_text(encoding="utf-8"))
    first = nb["cells"][0]
    assert "pgbook-colab-setup" in first.get("metadata", {}).get("tags", []), first
    assert cfg["repository"]["url"] in "".join(first["source"])


def test_internal_links_resolve(book_dir, book_server):
    """Crawl every HTML page reachable from index.html; every internal link and anchor exists."""
    base = book_server
    seen_pages: dict[str, BeautifulSoup] = {}
    checked: dict[str, int] = {}
    problems: list[str] = []
    queue = deque([base + "index.html"] + [base + f"{d}.html" for d in TOC_DOCS])

    def fetch(url: str) -> tuple[int, bytes]:
        if url in checked and url not in seen_pages:
            return checked[url], b""
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                status, body = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, body = e.code, b""
        checked[url] = status
        return status, body

    anchors: list[tuple[str, str, str]] = []  # (source page, target page, fragment)
    while queue:
        url = queue.popleft()
        if url in seen_pages:
            continue
        status, body = fetch(url)
        if status != 200:
            problems.append(f"{status} {url}")
            continue
        soup = BeautifulSoup(body, "html.parser")
        seen_pages[url] = soup
        for tag in soup.find_all(["a", "link", "img", "script"]):
            ref = tag.get("href") or tag.get("src")
            if not ref or ref.startswith(("mailto:", "javascript:", "data:", "tel:")):
                continue
            target = urllib.parse.urljoin(url, ref)
            if not target.startswith(base):
                continue  # external: not crawled (the book must not need them to render)
            target_page, _, fragment = target.partition("#")
            target_page = target_page.split("?")[0]
            if target_page.endswith("/"):
                target_page += "index.html"
            if target_page.endswith(".html") and "/_static/" not in target_page:
                if target_page not in seen_pages:
                    queue.append(target_page)
                if fragment:
                    anchors.append((url, target_page, urllib.parse.unquote(fragment)))
            elif target_page not in checked:
                st, _ = fetch(target_page)
                if st != 200:
                    problems.append(f"{st} {target_page} (linked from {url})")

    for src, page, frag in anchors:
        soup = seen_pages.get(page)
        if soup is None:
            continue  # already reported as a missing page
        if soup.find(id=frag) is None and soup.find(attrs={"name": frag}) is None:
            problems.append(f"missing anchor #{frag} in {page} (linked from {src})")

    assert len(seen_pages) >= len(TOC_DOCS), "the crawl reached fewer pages than the toc lists"
    assert not problems, "broken internal links:\n" + "\n".join(sorted(set(problems))[:40])


def test_dark_mode_toggle(book_server, browser):
    context, page, log = _open(browser, book_server)
    try:
        page.goto(book_server + f"{TOC_DOCS[0]}.html", wait_until="load")
        html = page.locator("html")
        before = (html.get_attribute("data-theme"), html.get_attribute("data-mode"))
        button = page.locator(".theme-switch-button:visible").first
        seen = {before[0]}
        for _ in range(3):  # the switch cycles auto -> light -> dark (order depends on the OS)
            button.click()
            seen.add(html.get_attribute("data-theme"))
        assert {"light", "dark"} <= seen, f"data-theme only took the values {seen}"
        assert not log["errors"] and not log["console"], (log["errors"], log["console"])
    finally:
        context.close()


def test_search_page_finds_results(book_server, browser):
    context, page, log = _open(browser, book_server)
    try:
        page.goto(book_server + "search.html?q=policy", wait_until="load")
        page.wait_for_selector("#search-results ul.search li", timeout=20_000)
        n = page.locator("#search-results ul.search li").count()
        assert n > 0
        assert not log["errors"], log["errors"]
        assert not log["external"], log["external"]
    finally:
        context.close()


def test_book_size_is_small(book_dir):
    total = sum(p.stat().st_size for p in Path(book_dir).rglob("*") if p.is_file())
    assert total < MAX_BOOK_MB * 1024**2, (
        f"the built book is {total / 1024**2:.1f} MB, over the {MAX_BOOK_MB} MB budget"
    )


@pytest.mark.parametrize("doc", TOC_DOCS)
def test_first_paint_needs_few_requests(doc, book_dir):
    """What the first paint waits for on a slow connection: one stylesheet (the theme's 14 in
    one file, book/_ext/pgbook_reading.py), no synchronous script, no script preload; and every
    font the page's maths uses is preloaded, none that it does not use."""
    text = (book_dir / f"{doc}.html").read_text(encoding="utf-8")
    head = text[: text.index("</head>")]
    sheets = re.findall(r'<link[^>]*rel="stylesheet"[^>]*>', head)
    assert len(sheets) == 1, f"{doc}: {len(sheets)} stylesheets: {sheets[:4]}"
    sync = [
        m
        for m in re.findall(r"<script\b[^>]*\bsrc=[^>]*>", head)
        if not re.search(r"\b(defer|async)\b", m) and "documentation_options" not in m
    ]
    assert not sync, f"{doc}: render-blocking scripts {sync}"
    assert 'rel="preload" as="script"' not in head
    preloaded = set(re.findall(r'rel="preload" as="font"[^>]*href="[^"]*/([^/"]+\.woff)"', head))
    if "<mjx-container" not in text:
        assert not preloaded, f"{doc}: fonts preloaded on a page without maths: {preloaded}"
        return
    faces = dict(re.findall(r'font-family: (MJX[\w-]+);\s*src: url\("[^"]*/([^/"]+\.woff)"', head))
    used = {"MJXZERO", "MJXTEX"} | {
        f"MJXTEX-{v}" for v in re.findall(r'<mjx-c class="[^"]*\bTEX-([A-Z0-9]+)"', text)
    }
    assert preloaded == {faces[f] for f in used if f in faces}, doc


# ==========================================================================================
# Reading on every device (issue 11): page weight, maths on a phone, accessibility, the
# figures as a reader sees them, and the whole-book PDF. Each page is loaded once per width
# and colour mode (`_reading`), and the tests below read that one measurement.

WIDTHS = {"desktop": (1280, 900), "phone": (390, 844)}
MODES = ("light", "dark")
#: Chromium DevTools' "Slow 4G" network preset (SDK.NetworkManager.Slow4GConditions, called
#: "Fast 3G" until May 2024): 1.6 Mbit/s × 0.9 down = 180,000 B/s, 750 kbit/s × 0.9 up =
#: 84,375 B/s, latency 150 ms × 3.75 = 562.5 ms.
SLOW_4G = {
    "offline": False,
    "latency": 562.5,
    "downloadThroughput": 180_000,
    "uploadThroughput": 84_375,
}
#: DevTools' CPU throttling for a phone: "4× slowdown".
PHONE_CPU_SLOWDOWN = 4
MAX_FIRST_LOAD_BYTES = 1_000_000
TYPESET_BUDGET_MS = 5_000
MIN_FIGURE_TEXT_PX = 12
MIN_CONTINUOUS_VALUES = 25
AXE = REPO / "node_modules" / "axe-core" / "axe.min.js"
PDF_NAME = "advanced-policy-gradients.pdf"

#: axe-core violations (impact serious or critical) that the theme causes, not our content or
#: configuration: (rule id, regular expression on the element's selector, reason). An entry
#: that matches nothing on any page fails `test_axe_allow_list_is_not_stale`.
THEME_AXE_ALLOWED: list[tuple[str, str, str]] = [
    (
        "aria-required-children",
        r"^\.citation-list$",
        "Sphinx/docutils writes the bibliography as role=list whose entries carry the DPUB-ARIA "
        "role doc-biblioentry (axe expects listitem children); Sphinx's markup, not our content",
    ),
]

#: Measurements for the closing summary (conftest.pytest_terminal_summary prints them).
READING_METRICS: dict[str, dict] = {}

_READINGS: dict[tuple[str, str, str], dict] = {}
_AXE_USED: set[int] = set()
_AXE_RUNS: set[tuple[str, str, str]] = set()

_SET_MODE = (
    "try {{ localStorage.setItem('mode', '{0}'); localStorage.setItem('theme', '{0}'); }}"
    " catch (e) {{}}"
)

_PROBE_JS = r"""
() => {
  const visible = el => el.getClientRects().length > 0 && !el.closest('details:not([open])');
  const article = document.querySelector('main') || document.body;
  const label = el => {
    const mml = el.querySelector && el.querySelector('mjx-assistive-mml');
    return ((mml || el).textContent || '').replace(/\s+/g, ' ').trim().slice(0, 80);
  };
  const scrolls = el => ['auto', 'scroll'].includes(getComputedStyle(el).overflowX);
  // maths: clipped (wider than its box, and the box does not scroll), or out of the viewport with
  // no scrolling ancestor; overflowing maths that scrolls must show the cue (an inner shadow on the hidden side)
  const clipped = [], noCue = [], scrolling = [];
  for (const el of article.querySelectorAll('span.math, mjx-container[display="true"]')) {
    if (!visible(el)) continue;
    if (el.scrollWidth > el.clientWidth + 1) {
      if (!scrolls(el)) clipped.push(label(el));
      else {
        scrolling.push(label(el));
        if (!('pgScroll' in el.dataset) || getComputedStyle(el).boxShadow === 'none') noCue.push(label(el));
      }
    }
  }
  for (const el of article.querySelectorAll('mjx-container')) {
    if (!visible(el)) continue;
    const r = el.getBoundingClientRect();
    if (r.right <= innerWidth + 1 && r.left >= -1) continue;
    let a = el, ok = false;
    while ((a = a.parentElement) && a !== document.body) if (scrolls(a)) { ok = true; break; }
    if (!ok) clipped.push(label(el));
  }
  // formulas are not tab stops, except one too wide for the screen: a scroll box, which the
  // keyboard must reach to scroll it (WCAG 2.1.1)
  const maths = [...document.querySelectorAll('mjx-container, span.math')];
  const overflows = m => m.scrollWidth > m.clientWidth + 1 && scrolls(m);
  const tabStops = maths.filter(m => m.tabIndex >= 0 && !overflows(m)).length;
  const unreachable = maths.filter(m => visible(m) && overflows(m) && m.tabIndex < 0).map(label);
  const pageOverflow = document.documentElement.scrollWidth - innerWidth;
  // images outside the data-drawn figures
  const bad = /(^|\/)[^\s\/]+\.(png|jpe?g|gif|svg|webp)$|_images\/|^[0-9a-f]{16,}$/i;
  const images = [...article.querySelectorAll('img')].filter(i => !i.closest('header, nav, .bd-header-article'))
    .map(i => ({src: (i.getAttribute('src') || '').slice(0, 80), alt: i.getAttribute('alt'),
                role: i.getAttribute('role')}))
    .map(i => Object.assign(i, {ok: i.role === 'presentation' ||
                                    (!!i.alt && i.alt.trim().length >= 10 && !bad.test(i.alt.trim()))}));
  // data-drawn figures
  const figures = [...article.querySelectorAll('.pg-figure')].map((f, k) => {
    let data = null;
    const script = f.querySelector('script.pg-figure-data');
    try { data = script ? JSON.parse(script.textContent) : null; } catch (e) { data = null; }
    const texts = [...f.querySelectorAll('svg text')].filter(t => t.textContent.trim() && visible(t));
    const sizes = texts.map(t => {
      const m = t.getScreenCTM();
      return parseFloat(getComputedStyle(t).fontSize) * (m ? Math.hypot(m.a, m.b) : 1);
    });
    const small = texts.filter((t, i) => sizes[i] < %(min_px)s).map((t, i) => t.textContent.trim().slice(0, 30));
    const panels = f.querySelector('[role="img"]');
    const sliders = [...f.querySelectorAll('input[type="range"]')].map((s, i) => ({
      min: +s.min, max: +s.max, value: s.value, valuetext: s.getAttribute('aria-valuetext'),
      disabled: s.disabled,
      scale: data && data.sliders && data.sliders[+(s.dataset.slider || i)] ? data.sliders[+(s.dataset.slider || i)].scale : null,
      labels: data && data.sliders && data.sliders[+(s.dataset.slider || i)] ? data.sliders[+(s.dataset.slider || i)].labels : null,
      name: (s.labels && s.labels[0] ? s.labels[0].textContent : s.id).trim()}));
    const title = (f.querySelector('.pg-figure-title') || {}).textContent || `figure ${k + 1}`;
    return {title: title.trim().slice(0, 60), nText: texts.length,
            minText: sizes.length ? Math.min(...sizes) : null, small,
            alt: panels ? panels.getAttribute('aria-label') : null, sliders,
            hasData: !!data};
  });
  const otherSliders = [...article.querySelectorAll('input[type="range"]')].filter(s => !s.closest('.pg-figure'))
    .map(s => ({id: s.id, valuetext: s.getAttribute('aria-valuetext')}));
  return {clipped, noCue, scrolling: scrolling.length, tabStops, unreachable, pageOverflow, images, figures, otherSliders};
}
""".replace("%(min_px)s", str(MIN_FIGURE_TEXT_PX))

_AXE_JS = """async () => {
  const r = await axe.run(document, {resultTypes: ['violations']});
  return r.violations.filter(v => ['serious', 'critical'].includes(v.impact)).map(v => ({
    id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.map(n => ({target: n.target.join(' '), html: n.html.slice(0, 160)}))}));
}"""


def _new_context(browser, base, width, height, mode, **kw):
    context = browser.new_context(
        viewport={"width": width, "height": height}, color_scheme=mode, **kw
    )
    context.add_init_script(_SET_MODE.format(mode))
    page = context.new_page()
    page.set_default_timeout(120_000)
    page.route(
        "**/*",
        lambda r: (
            r.continue_() if r.request.url.startswith((base, "data:", "blob:")) else r.abort()
        ),
    )
    return context, page


#: Two animation frames, or 200 ms if the page renders no frame (seen once in CI: headless
#: Chromium stopped producing frames for a page, and an await on requestAnimationFrame alone hung
#: the test run until it was killed).
NEXT_FRAME = (
    "const nextFrame = () => new Promise(r => { "
    "requestAnimationFrame(() => requestAnimationFrame(r)); setTimeout(r, 200); });"
)


def _upgrade_figures(page) -> bool:
    """Bring each figure near the viewport (they upgrade lazily); True when every slider is live."""
    page.evaluate(
        """async () => {
             """
        + NEXT_FRAME
        + """
             for (const f of document.querySelectorAll('.pg-figure')) {
               f.scrollIntoView({block: 'center'});
               await nextFrame();
             }
             window.scrollTo(0, 0);
           }"""
    )
    page.wait_for_load_state("networkidle")
    if not page.locator(".pg-figure").count():
        return True
    try:
        page.wait_for_function(
            "() => ![...document.querySelectorAll('.pg-figure input[type=range]')].some(s => s.disabled)",
            timeout=30_000,
        )
        return True
    except Exception:
        return False


def _reading(browser, base, doc, width_name, mode) -> dict:
    key = (doc, width_name, mode)
    if key in _READINGS:
        return _READINGS[key]
    if not (built_book_dir() / f"{doc}.html").is_file():
        pytest.fail(f"{doc}.html was not built", pytrace=False)
    width, height = WIDTHS[width_name]
    context, page = _new_context(browser, base, width, height, mode)
    try:
        page.goto(base + f"{doc}.html", wait_until="load")
        _wait_for_mathjax(page)
        theme = page.evaluate("document.documentElement.dataset.theme")
        assert theme == mode, f"{doc}: the page is in {theme!r} mode, wanted {mode!r}"
        live = _upgrade_figures(page)
        result = page.evaluate(_PROBE_JS)
        result["live"] = live
        result["valuetext_after_move"] = _move_sliders(page) if live else []
        page.add_script_tag(path=str(AXE))
        result["axe"] = page.evaluate(_AXE_JS)
    finally:
        context.close()
    _READINGS[key] = result
    return result


def _move_sliders(page) -> list[dict]:
    """Press End on each figure slider; report the value text before and after."""
    out = []
    sliders = page.locator(".pg-figure input[type=range]")
    for k in range(sliders.count()):
        s = sliders.nth(k)
        if s.is_disabled() or s.get_attribute("max") == s.get_attribute("min"):
            continue
        before = s.get_attribute("aria-valuetext")
        s.focus()
        key = "Home" if s.input_value() == s.get_attribute("max") else "End"
        s.press(key)
        out.append(
            {
                "before": before,
                "after": s.get_attribute("aria-valuetext"),
                "value": s.input_value(),
                "output": s.evaluate(
                    "el => { const o = el.parentElement.querySelector('output');"
                    " return o ? o.textContent : null; }"
                ),
            }
        )
    return out


READING_CASES = [(d, w, m) for d in TOC_DOCS for w in WIDTHS for m in MODES]
_ids = [f"{d.split('/')[-1]}-{w}-{m}" for d, w, m in READING_CASES]


@pytest.mark.parametrize(("doc", "width", "mode"), READING_CASES, ids=_ids)
def test_maths_reachable_not_tab_stops(doc, width, mode, book_server, browser):
    """No formula is clipped out of reach; long ones scroll with a visible cue and can take the
    keyboard focus (to scroll them); no other formula is a tab stop; the page itself never
    scrolls sideways."""
    r = _reading(browser, book_server, doc, width, mode)
    assert not r["clipped"], f"{doc} at {width}: formulas clipped out of reach: {r['clipped'][:5]}"
    assert not r["noCue"], f"{doc} at {width}: scrolling formulas without the cue: {r['noCue'][:5]}"
    assert r["tabStops"] == 0, f"{doc}: {r['tabStops']} formulas that fit are tab stops"
    assert not r["unreachable"], (
        f"{doc} at {width}: scrolling formulas the keyboard cannot reach: {r['unreachable'][:5]}"
    )
    assert r["pageOverflow"] <= 1, (
        f"{doc} at {width}: the page scrolls sideways by {r['pageOverflow']} px"
    )
    READING_METRICS.setdefault(doc, {})[f"scrolling maths ({width})"] = r["scrolling"]


@pytest.mark.parametrize("doc", TOC_DOCS)
def test_maths_reachable_at_320px(doc, book_server, browser):
    """WCAG reflow: at 320 CSS px no formula is clipped out of reach."""
    context, page = _new_context(browser, book_server, 320, 640, "light")
    try:
        page.goto(book_server + f"{doc}.html", wait_until="load")
        _wait_for_mathjax(page)
        r = page.evaluate(_PROBE_JS)
    finally:
        context.close()
    assert not r["clipped"], f"{doc} at 320 px: formulas clipped out of reach: {r['clipped'][:5]}"
    assert not r["noCue"], f"{doc} at 320 px: scrolling formulas without the cue: {r['noCue'][:5]}"
    assert r["pageOverflow"] <= 1, (
        f"{doc} at 320 px: the page scrolls sideways by {r['pageOverflow']} px"
    )


@pytest.mark.parametrize(("doc", "width", "mode"), READING_CASES, ids=_ids)
def test_images_and_figures_have_alt_text(doc, width, mode, book_server, browser):
    """Every content image has alt text that says what it shows (not empty, not a file name or
    hash); every data-drawn figure has a text alternative."""
    r = _reading(browser, book_server, doc, width, mode)
    bad = [(i["src"], i["alt"]) for i in r["images"] if not i["ok"]]
    assert not bad, f"{doc}: images without a real alt text (src, alt): {bad}"
    no_alt = [f["title"] for f in r["figures"] if not f["alt"] or len(f["alt"].strip()) < 20]
    assert not no_alt, f"{doc}: figures without a text alternative: {no_alt}"


@pytest.mark.parametrize(("doc", "width", "mode"), READING_CASES, ids=_ids)
def test_sliders_announce_their_value(doc, width, mode, book_server, browser):
    """Every slider has aria-valuetext = the value it shows (not an index), kept up to date when
    it moves; every continuous slider offers at least 25 values."""
    r = _reading(browser, book_server, doc, width, mode)
    assert not r["otherSliders"], f"{doc}: sliders outside the book's figures: {r['otherSliders']}"
    if not r["figures"]:
        return
    assert r["live"], f"{doc}: the figures' sliders were still disabled 30 s after coming into view"
    problems = []
    for f in r["figures"]:
        assert f["hasData"], f"{doc}: figure {f['title']!r} has no JSON data in the page"
        for s in f["sliders"]:
            n = s["max"] - s["min"] + 1
            if not s["valuetext"]:
                problems.append(f"{f['title']} / {s['name']}: no aria-valuetext")
            elif s["labels"] and s["valuetext"] != s["labels"][int(s["value"])]:
                problems.append(
                    f"{f['title']} / {s['name']}: aria-valuetext {s['valuetext']!r} "
                    f"is not the value {s['labels'][int(s['value'])]!r}"
                )
            if s["scale"] in ("linear", "log") and n < MIN_CONTINUOUS_VALUES:
                problems.append(
                    f"{f['title']} / {s['name']}: {n} values (< {MIN_CONTINUOUS_VALUES})"
                )
            if s["labels"] and len(s["labels"]) != n:
                problems.append(
                    f"{f['title']} / {s['name']}: {n} slider steps, {len(s['labels'])} values"
                )
    for m in r["valuetext_after_move"]:
        if m["after"] == m["before"] or (
            m["output"] is not None and m["after"] != m["output"].strip()
        ):
            problems.append(
                f"after a key press: aria-valuetext {m['before']!r} -> {m['after']!r}, "
                f"shown {m['output']!r}"
            )
    assert not problems, f"{doc} ({width}, {mode}): " + "; ".join(problems)


@pytest.mark.parametrize(("doc", "width", "mode"), READING_CASES, ids=_ids)
def test_figure_text_size(doc, width, mode, book_server, browser):
    """Every text of a figure is at least 12 CSS px at this width (body text is 16 px)."""
    r = _reading(browser, book_server, doc, width, mode)
    small = [
        (f["title"], round(f["minText"], 1), f["small"][:3])
        for f in r["figures"]
        if f["minText"] is not None and f["minText"] < MIN_FIGURE_TEXT_PX
    ]
    assert not small, f"{doc} at {width}: figure text under {MIN_FIGURE_TEXT_PX} px: {small}"
    for f in r["figures"]:
        READING_METRICS.setdefault(doc, {})[f"min figure text px ({width})"] = min(
            READING_METRICS.get(doc, {}).get(f"min figure text px ({width})", 99),
            round(f["minText"] or 99, 1),
        )


def _reveal_figures(page) -> None:
    """Open the collapsed blocks (solutions, hidden cells) that hold a figure."""
    page.evaluate(
        """() => {
             for (const f of document.querySelectorAll('.pg-figure')) {
               const box = f.closest('.toggle-hidden');
               if (box) (box.querySelector('button.toggle-button') || box).click();
               for (let d = f.closest('details'); d; d = d.parentElement.closest('details'))
                 d.open = true;
             }
           }"""
    )


@pytest.mark.parametrize("doc", TOC_DOCS)
def test_figures_hover_read_out(doc, book_server, browser):
    """Hovering a plotted mark of each live figure shows its values (Vega's tooltip)."""
    context, page = _new_context(browser, book_server, 1280, 900, "light")
    try:
        page.goto(book_server + f"{doc}.html", wait_until="load")
        figures = page.locator(".pg-figure")
        if not figures.count():
            return
        _reveal_figures(page)
        assert _upgrade_figures(page), f"{doc}: figures did not come alive"
        missing = []
        for k in range(figures.count()):
            fig = figures.nth(k)
            fig.scroll_into_view_if_needed()
            marks = fig.locator(
                ", ".join(
                    f"svg g.mark-{m} path"
                    for m in ("symbol", "rect", "area", "rule", "line", "trail", "arc")
                )
            )
            found = False
            for j in range(min(marks.count(), 40)):
                mark = marks.nth(j)
                try:
                    mark.hover(timeout=2_000, force=True)
                except Exception:
                    continue
                found = page.evaluate(
                    """() => [...document.querySelectorAll(
                                 '[role="tooltip"], .pg-tooltip, #vg-tooltip-element')]
                               .some(t => t.textContent.trim() && /\\d/.test(t.textContent)
                                          && getComputedStyle(t).display !== 'none'
                                          && getComputedStyle(t).visibility !== 'hidden')"""
                )
                if found:
                    break
            if not found:
                missing.append(
                    fig.locator(".pg-figure-title").first.text_content()
                    if fig.locator(".pg-figure-title").count()
                    else f"figure {k + 1}"
                )
        assert not missing, f"{doc}: no hover read-out on: {missing}"
    finally:
        context.close()


@pytest.mark.parametrize(("doc", "width", "mode"), READING_CASES, ids=_ids)
def test_axe_no_serious_violations(doc, width, mode, book_server, browser):
    """axe-core (npm, pinned): no serious or critical violation except the listed theme ones."""
    assert AXE.is_file(), f"{AXE} missing: run `make venv` (npm ci)"
    r = _reading(browser, book_server, doc, width, mode)
    _AXE_RUNS.add((doc, width, mode))
    ours = []
    for v in r["axe"]:
        for node in v["nodes"]:
            allowed = [
                k
                for k, (rule, rx, _) in enumerate(THEME_AXE_ALLOWED)
                if rule == v["id"] and re.search(rx, node["target"])
            ]
            if allowed:
                _AXE_USED.update(allowed)
            else:
                ours.append(f"{v['id']} ({v['impact']}): {node['target']} {node['html'][:100]}")
    assert not ours, f"{doc} ({width}, {mode}): axe violations:\n" + "\n".join(ours[:15])


#: Where the allowed theme violations occur (the allow-list test reads these pages only, so that
#: it shares their readings with the per-page tests on one xdist worker: see conftest).
AXE_ALLOWED_DOCS = ("book/bibliography",)


@pytest.mark.xdist_group("book/bibliography")
def test_axe_allow_list_is_not_stale(book_server, browser):
    """Every allowed theme violation still occurs (else remove it from the list)."""
    for case in [c for c in READING_CASES if c[0] in AXE_ALLOWED_DOCS]:
        if case not in _AXE_RUNS:
            r = _reading(browser, book_server, *case)
            for v in r["axe"]:
                for node in v["nodes"]:
                    _AXE_USED.update(
                        k
                        for k, (rule, rx, _) in enumerate(THEME_AXE_ALLOWED)
                        if rule == v["id"] and re.search(rx, node["target"])
                    )
    stale = [THEME_AXE_ALLOWED[k] for k in range(len(THEME_AXE_ALLOWED)) if k not in _AXE_USED]
    assert not stale, f"allowed axe violations that no longer occur (remove them): {stale}"


# -- page weight and the time to readable maths on a phone ----------------------------------------


def _transfer_log(context, page):
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    sizes: dict[str, int] = {}
    urls: dict[str, str] = {}
    cdp.on(
        "Network.requestWillBeSent", lambda e: urls.__setitem__(e["requestId"], e["request"]["url"])
    )
    cdp.on(
        "Network.loadingFinished",
        lambda e: sizes.__setitem__(e["requestId"], e["encodedDataLength"]),
    )
    return cdp, sizes, urls


@pytest.mark.parametrize("width", list(WIDTHS))
@pytest.mark.parametrize("doc", TOC_DOCS)
def test_page_weight(doc, width, gzip_server, browser):
    """At most 1 MB transferred (gzip, as a static host serves the book) for the first load of a
    page without scrolling; the total after scrolling to the end is reported."""
    w, h = WIDTHS[width]
    context, page = _new_context(browser, gzip_server, w, h, "light")
    try:
        cdp, sizes, urls = _transfer_log(context, page)
        page.goto(gzip_server + f"{doc}.html", wait_until="load")
        _wait_for_mathjax(page)
        page.evaluate("document.fonts.ready.then(() => true)")
        page.wait_for_load_state("networkidle")
        first = sum(sizes.values())
        biggest = sorted(((n, urls.get(k, "?")) for k, n in sizes.items()), reverse=True)[:5]
        page.evaluate(
            """async () => {
                 """
            + NEXT_FRAME
            + """
                 for (let y = 0; y < document.documentElement.scrollHeight; y += innerHeight / 2) {
                   window.scrollTo(0, y);
                   await nextFrame();
                 }
               }"""
        )
        page.wait_for_load_state("networkidle")
        total = sum(sizes.values())
    finally:
        context.close()
    READING_METRICS.setdefault(doc, {})[f"first load kB ({width})"] = round(first / 1000)
    READING_METRICS.setdefault(doc, {})[f"after scrolling kB ({width})"] = round(total / 1000)
    assert first <= MAX_FIRST_LOAD_BYTES, (
        f"{doc} at {width}: {first / 1000:.0f} kB transferred before scrolling "
        f"(budget {MAX_FIRST_LOAD_BYTES / 1000:.0f} kB); largest: "
        + ", ".join(f"{n / 1000:.0f} kB {u.split('/')[-1][:60]}" for n, u in biggest)
    )


#: Records, in the page, when its maths is readable: typeset (at build time, or by MathJax in
#: the browser if a page still loads it), painted, and with no MathJax font still loading. It
#: checks at every frame (requestAnimationFrame), so the time is that of the frame that shows it,
#: and every 50 ms in case frames stop.
_MATHS_READY_PROBE = """
(() => {
  const mathjaxDone = () => !window.MathJax || !MathJax.startup || !MathJax.startup.promise
      ? !document.querySelector('script[src*="mathjax/"]') : window.__pgMathjaxDone;
  const fontsLoading = () => [...document.fonts].some(f => /^MJX/.test(f.family) && f.status === 'loading');
  const check = (t) => {
    if (window.__pgMathsReady !== undefined) return true;
    if (window.MathJax && MathJax.startup && MathJax.startup.promise && !window.__pgHooked) {
      window.__pgHooked = true;
      MathJax.startup.promise.then(() => { window.__pgMathjaxDone = true; });
    }
    const painted = performance.getEntriesByName('first-contentful-paint').length > 0;
    if (document.querySelector('mjx-container') && painted && mathjaxDone() && !fontsLoading()) {
      window.__pgMathsReady = t;
      return true;
    }
    return false;
  };
  const frame = (t) => { if (!check(t)) requestAnimationFrame(frame); };
  requestAnimationFrame(frame);
  const timer = setInterval(() => {  // should frames stop, a timer still looks
    if (check(performance.now())) clearInterval(timer);
  }, 50);
})();
"""


MATHS_DOCS = [
    d
    for d in TOC_DOCS
    if "$" in (REPO / f"{d}.md").read_text(encoding="utf-8")
    or "{math}" in (REPO / f"{d}.md").read_text(encoding="utf-8")
]


@pytest.mark.throttled
@pytest.mark.parametrize("doc", MATHS_DOCS)
def test_maths_readable_within_5s_on_slow_4g_phone(doc, gzip_server, browser):
    """On DevTools' Slow 4G network with its 4× CPU slowdown, a phone (390 × 844) shows the
    page's maths typeset, in its fonts, within 5 s of navigation. (`make test` runs these alone,
    after the other browser tests: the CPU slowdown is relative to a host with nothing else to
    do, as a phone would be.)"""
    context, page = _new_context(
        browser,
        gzip_server,
        390,
        844,
        "light",
        is_mobile=True,
        has_touch=True,
        device_scale_factor=3,
    )
    try:
        context.add_init_script(_MATHS_READY_PROBE)
        cdp = context.new_cdp_session(page)
        cdp.send("Network.enable")
        cdp.send("Network.emulateNetworkConditions", SLOW_4G)
        cdp.send("Emulation.setCPUThrottlingRate", {"rate": PHONE_CPU_SLOWDOWN})
        page.goto(gzip_server + f"{doc}.html", wait_until="commit")
        page.wait_for_function(
            "() => window.__pgMathsReady !== undefined", timeout=120_000, polling=100
        )
        t = page.evaluate(
            "() => ({ready: window.__pgMathsReady, fcp: performance.getEntriesByName("
            "'first-contentful-paint')[0].startTime})"
        )
    finally:
        context.close()
    READING_METRICS.setdefault(doc, {})["maths readable ms (Slow 4G, 4x CPU)"] = round(t["ready"])
    READING_METRICS.setdefault(doc, {})["first paint ms (Slow 4G, 4x CPU)"] = round(t["fcp"])
    assert t["ready"] <= TYPESET_BUDGET_MS, (
        f"{doc}: maths readable after {t['ready'] / 1000:.1f} s on the throttled phone "
        f"(first paint {t['fcp'] / 1000:.1f} s; budget {TYPESET_BUDGET_MS / 1000:.0f} s)"
    )


# -- the whole-book PDF -----------------------------------------------------------------------------


def test_book_pdf(book_dir):
    """`make book` (make pdf) prints every page of the toc into one PDF, linked from the book;
    every chapter title is in it, and code wraps instead of being cut (the end of each
    chapter's longest code line is in the PDF's text)."""
    from pypdf import PdfReader

    pdf = book_dir / "_static" / PDF_NAME
    assert pdf.is_file(), f"{pdf} missing: `make book` runs `make pdf`"
    reader = PdfReader(str(pdf))
    n_pages = len(reader.pages)
    text = "\n".join(p.extract_text() or "" for p in reader.pages)
    squashed = re.sub(r"\s+", "", text)
    READING_METRICS.setdefault("(whole book PDF)", {}).update(
        pages=n_pages, MB=round(pdf.stat().st_size / 1e6, 1)
    )
    assert n_pages >= 3 * len(TOC_DOCS), f"the PDF has only {n_pages} pages"
    # a block Chromium cannot break across pages comes out as blank pages (it did, for long
    # code cells): every page has something besides its footer line
    blank = [
        k + 1
        for k, p in enumerate(reader.pages)
        if not (p.extract_text() or "").strip().rpartition("\n")[0].strip()
    ]
    assert not blank, f"blank pages in the PDF: {blank}"
    problems = []
    linked = False
    for doc in TOC_DOCS:
        soup = BeautifulSoup((book_dir / f"{doc}.html").read_text(encoding="utf-8"), "html.parser")
        if soup.find("a", href=re.compile(re.escape(f"_static/{PDF_NAME}") + "$")):
            linked = True
        h1 = soup.select_one("main h1") or soup.find("h1")
        title = re.sub(r"[#¶]\s*$", "", h1.get_text(" ", strip=True)).strip()
        title = re.sub(r"^\d+(\.\d+)*\.?\s*", "", title)  # the section number
        if re.sub(r"\s+", "", title) not in squashed:
            problems.append(f"{doc}: title {title!r} not in the PDF")
        lines = [
            line.rstrip()
            for pre in soup.select("div.highlight pre")
            for line in pre.get_text().splitlines()
        ]
        if lines:
            longest = max(lines, key=len)
            tail = re.sub(r"\s+", "", longest)[-16:]
            if len(longest) > 60 and tail not in squashed:
                problems.append(
                    f"{doc}: the end of its longest code line ({longest[-40:]!r}) is not in the PDF"
                )
    assert not problems, "\n".join(problems)
    assert linked, f"no page links _static/{PDF_NAME}"
