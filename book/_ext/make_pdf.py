"""The whole book as one PDF, printed from the built HTML by headless Chromium (`make pdf`).

    python book/_ext/make_pdf.py [HTML_DIR]          (default: _build/html)

Every page of ``_toc.yml``, in order, is loaded from HTML_DIR (served on 127.0.0.1, no network),
printed to A4 with the same headless Chromium the browser tests use, and the pages are joined
with pypdf into ``HTML_DIR/_static/advanced-policy-gradients.pdf``, with a bookmark per page.
The book links that file (``book/intro.md``, ``book/running.md``). Nothing is executed again:
the PDF shows exactly the built pages.

What the print shows: the page's text, maths, figures (each at its first setting; the read-out
under an interactive figure says which), tables and code; the theme's navigation, buttons and
sliders are left out; collapsed content (hidden code cells, solutions) is opened, as the theme
does when a reader prints; code wraps at the margin instead of being cut (book/_assets/pgbook.css,
``@media print``); links to other pages of the book become plain text (their local address would
be meaningless in a file).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PDF_NAME = "advanced-policy-gradients.pdf"
CHROMIUM = os.environ.get("PGBOOK_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]

#: For the printed book only: the reader's controls, which do nothing on paper.
PRINT_CSS = """
.bd-header-article, .header-article-items, .prev-next-area, .bd-footer-content,
.bd-footer-article, footer, .pg-figure-controls, .pg-play, .copybtn, .headerlink,
#pst-skip-link, .bd-sidebar-primary, .bd-sidebar-secondary, .toggle-button,
button.toggle-button, .cell_input .copybtn { display: none !important; }
.bd-main .bd-content .bd-article-container { max-width: 100% !important; }
"""

FOOTER = (
    '<div style="font-size:8px;width:100%;padding:0 12mm;display:flex;'
    'justify-content:space-between;color:#555;font-family:sans-serif">'
    "<span>{title}</span><span>Advanced Policy Gradients · "
    '<span class="pageNumber"></span>/<span class="totalPages"></span></span></div>'
)


def toc_docnames(repo: Path = REPO) -> list[str]:
    import yaml

    toc = yaml.safe_load((repo / "_toc.yml").read_text(encoding="utf-8"))
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


def _serve(directory: Path):
    import functools
    import http.server
    import threading

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(directory))
    )
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def print_page(browser, url: str, base: str) -> tuple[bytes, str]:
    """One page as PDF bytes, and its title."""
    context = browser.new_context(viewport={"width": 1100, "height": 1400}, color_scheme="light")
    context.add_init_script(
        "try { localStorage.setItem('mode', 'light'); localStorage.setItem('theme', 'light'); } catch (e) {}"
    )
    page = context.new_page()
    page.set_default_timeout(180_000)  # a long chapter on a busy machine
    page.route(
        "**/*",
        lambda r: r.continue_() if r.request.url.startswith((base, "data:")) else r.abort(),
    )
    try:
        page.goto(url, wait_until="load")
        page.add_style_tag(content=PRINT_CSS)
        title = page.evaluate(
            """async (base) => {
                 // what the theme does before printing: open collapsed content
                 window.dispatchEvent(new Event('beforeprint'));
                 // and print it as plain blocks: Chromium does not break an open <details>
                 // across pages (a long code cell came out as blank pages)
                 for (const d of document.querySelectorAll('details')) {
                   const div = document.createElement('div');
                   div.className = d.className;
                   for (const c of [...d.childNodes]) if (c.nodeName !== 'SUMMARY') div.appendChild(c);
                   d.replaceWith(div);
                 }
                 // links to other pages of the book: plain text in the PDF
                 for (const a of document.querySelectorAll('a[href]')) {
                   const url = new URL(a.getAttribute('href'), location.href);
                   if (url.href.startsWith(base) && !(url.pathname === location.pathname && url.hash))
                     a.removeAttribute('href');
                 }
                 // figures still loading their data draw their first setting (inline SVG)
                 await document.fonts.ready;
                 await Promise.all([...document.images].map(i => { i.loading = 'eager';
                   return i.decode().catch(() => null); }));
                 const h1 = document.querySelector('main h1, article h1, h1');
                 return (h1 ? h1.textContent : document.title).replace(/[#¶]\\s*$/, '').trim();
               }""",
            base,
        )
        pdf = page.pdf(
            format="A4",
            print_background=True,
            margin={"top": "14mm", "bottom": "16mm", "left": "12mm", "right": "12mm"},
            display_header_footer=True,
            header_template="<span></span>",
            footer_template=FOOTER.format(title=title.replace("&", "&amp;").replace("<", "&lt;")),
        )
        return pdf, title
    finally:
        context.close()


def build_pdf(html_dir: Path, out: Path | None = None, docs: list[str] | None = None) -> Path:
    import io

    from playwright.sync_api import sync_playwright
    from pypdf import PdfReader, PdfWriter

    html_dir = Path(html_dir).resolve()
    docs = docs or toc_docnames()
    missing = [d for d in docs if not (html_dir / f"{d}.html").is_file()]
    if missing:
        raise SystemExit(f"pages missing from {html_dir}: {missing} (build the book first)")
    out = out or html_dir / "_static" / PDF_NAME
    server, base = _serve(html_dir)
    writer = PdfWriter()
    t0 = time.perf_counter()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            try:
                for doc in docs:
                    pdf, title = print_page(browser, base + f"{doc}.html", base)
                    reader = PdfReader(io.BytesIO(pdf))
                    first = len(writer.pages)
                    for pg in reader.pages:
                        writer.add_page(pg)
                    writer.add_outline_item(title=title, page_number=first)
                    print(f"  {doc}: {len(reader.pages)} pages", flush=True)
            finally:
                browser.close()
    finally:
        server.shutdown()
        server.server_close()
    writer.add_metadata({"/Title": "Advanced Policy Gradients", "/Author": "The pgcore authors"})
    writer.page_mode = "/UseOutlines"
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "wb") as fh:
        writer.write(fh)
    print(
        f"{out}: {len(writer.pages)} pages, {out.stat().st_size / 1e6:.1f} MB, "
        f"{time.perf_counter() - t0:.0f} s"
    )
    return out


if __name__ == "__main__":
    build_pdf(Path(sys.argv[1] if len(sys.argv) > 1 else REPO / "_build" / "html"))
