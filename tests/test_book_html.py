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

from .conftest import REPO, built_book_dir, is_chapter_notebook

pytestmark = pytest.mark.browser

# Console messages that come from third-party code, not from our content. Each entry is
# (message type, regular expression, reason). Anything else at level warning or error fails.
# Empty: every page loads only Sphinx, the theme, MathJax and our own inline scripts, and
# none of them logs a warning.
KNOWN_NOISE: list[tuple[str, str, str]] = []

MAX_BOOK_MB = 50


def _toc_docnames() -> list[str]:
    toc = yaml.safe_load((REPO / "_toc.yml").read_text(encoding="utf-8"))
    names = [toc["root"]]

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                names.append(entry["file"])
            walk(entry.get("sections"))

    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    walk(toc.get("chapters"))
    return names


TOC_DOCS = _toc_docnames()
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
                 const items = (window.MathJax && MathJax.startup && MathJax.startup.document)
                   ? Array.from(MathJax.startup.document.math) : [];
                 for (const m of items) {
                   const el = m.typesetRoot;
                   if (!el || el.getAttribute('display') !== 'true') continue;
                   if (el.scrollWidth > el.clientWidth + 2)
                     out.push(`${el.scrollWidth - el.clientWidth}px too wide: ${m.math.slice(0, 90)}`);
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


@pytest.mark.parametrize("doc", CHAPTER_DOCS or ["(no chapter notebooks yet)"])
def test_phone_reading_maths_reachable_and_not_tab_stops(doc, book_server, browser):
    """At 390 px (a phone), no inline formula is clipped out of reach: each one either fits or
    scrolls sideways; and equations are not keyboard tab stops (a keyboard user reaches the
    figures' sliders without tabbing through every equation)."""
    if doc.startswith("("):
        pytest.fail("no chapter notebooks in the toc")
    context = browser.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    page.route(
        "**/*",
        lambda r: r.continue_() if r.request.url.startswith(book_server) else r.abort(),
    )
    try:
        page.goto(book_server + f"{doc}.html", wait_until="load")
        _wait_for_mathjax(page)
        res = page.evaluate(
            """() => {
                 const clipped = [];
                 for (const s of document.querySelectorAll('span.math')) {
                   const cs = getComputedStyle(s);
                   if (s.scrollWidth > s.clientWidth + 1 && !['auto', 'scroll'].includes(cs.overflowX))
                     clipped.push(s.textContent.slice(0, 60));
                 }
                 const tabbable = document.querySelectorAll('mjx-container[tabindex="0"]').length;
                 return {clipped, tabbable, n: document.querySelectorAll('span.math').length};
               }"""
        )
        assert res["n"] > 0, "no inline maths found on a chapter page"
        assert not res["clipped"], f"{doc}: inline formulas clipped at 390 px: {res['clipped'][:5]}"
        assert res["tabbable"] == 0, f"{doc}: {res['tabbable']} equations are tab stops"
    finally:
        context.close()
