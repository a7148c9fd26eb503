"""Shared pytest configuration.

1. Notebook validation of the chapters. nbval reads only ``.ipynb``; the chapters are MyST
   Markdown notebooks (jupytext ``.md``) and no ``.ipynb`` copies live in git. The plugin below
   hands nbval every ``book/**/*.md`` file whose YAML header has a jupytext section and a
   kernelspec, converted in memory by jupytext. Run it with::

       pytest --nbval-lax tests book                       # everything, chapters included
       pytest --nbval-lax tests/conftest.py book/06_ppo.md  # one chapter only (make nbval)

   (``tests`` or this file must be among the arguments, so that this conftest is loaded.) ``--nbval-lax``
   checks that every cell runs without error and does not compare outputs, which differ from
   run to run for figures and widgets. Under strict ``--nbval``, tag such cells
   ``nbval-ignore-output``. With pytest-xdist use ``--dist loadfile`` so that a notebook's
   cells stay in one kernel on one worker. ``_build`` and other generated folders are never
   collected.

2. Fixtures for the browser tests (``tests/test_book_html.py``): the built book served over
   HTTP on 127.0.0.1 and a headless Debian Chromium driven by playwright.
"""

from __future__ import annotations

import functools
import http.server
import os
import sys
import threading
from collections import defaultdict
from pathlib import Path

import pytest
from hypothesis import settings

# Property tests draw their examples deterministically (the same examples on every run), so a
# CI run cannot turn red by chance; `pytest --hypothesis-profile=explore` searches afresh.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("explore", deadline=None, max_examples=500)
settings.load_profile("ci")


@pytest.fixture(autouse=True)
def _torch_one_thread():
    """Every test runs torch on one thread (fastest for tiny tensors, as in pgcore.train)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


REPO = Path(__file__).resolve().parent.parent

# The book's pages in _toc order: the PDF script (book/_ext/make_pdf.py) is the one definition.
sys.path.insert(0, str(REPO / "book" / "_ext"))
from make_pdf import toc_docnames  # noqa: E402, F401  (re-exported for the tests)

BOOK_SRC = REPO / "book"
_SKIP_PARTS = {
    "_build",
    "_vendor",
    "_assets",
    "_ext",
    ".ipynb_checkpoints",
    "node_modules",
    ".venv",
}

CHROMIUM = os.environ.get("PGBOOK_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


# --------------------------------------------------------------------------------------------
# 1. nbval on jupytext notebooks


def is_chapter_notebook(path: Path) -> bool:
    """A MyST/jupytext notebook under book/: a YAML header with `jupytext:` and `kernelspec:`."""
    path = Path(path).resolve()
    if path.suffix != ".md" or not path.is_file():
        return False
    try:
        rel = path.relative_to(BOOK_SRC)
    except ValueError:
        return False
    if _SKIP_PARTS.intersection(rel.parts):
        return False
    text = path.read_text(encoding="utf-8")
    if not text.startswith("---"):
        return False
    end = text.find("\n---", 3)
    header = text[3:end] if end > 0 else ""
    return "jupytext:" in header and "kernelspec:" in header


def chapter_notebooks() -> list[Path]:
    return sorted(p for p in BOOK_SRC.rglob("*.md") if is_chapter_notebook(p))


class _JupytextNbvalPlugin:
    """Collects chapter .md notebooks as nbval notebook files (only with --nbval/--nbval-lax)."""

    def pytest_collect_file(self, file_path: Path, parent):
        opt = parent.config.option
        if not (getattr(opt, "nbval", False) or getattr(opt, "nbval_lax", False)):
            return None
        if not is_chapter_notebook(file_path):
            return None
        return JupytextNotebookFile.from_parent(parent, path=file_path)

    def pytest_ignore_collect(self, collection_path: Path, config):
        try:
            rel = Path(collection_path).resolve().relative_to(REPO)
        except ValueError:
            return None
        if _SKIP_PARTS.intersection(rel.parts):
            return True
        return None


def _make_notebook_file_class():
    from nbval.plugin import IPyNbCell, IPyNbFile, find_comment_markers, find_metadata_tags

    class JupytextNotebookFile(IPyNbFile):
        """nbval's notebook collector, reading the notebook through jupytext."""

        def collect(self):
            import jupytext

            self.nb = jupytext.read(str(self.path))
            cell_num = 0
            for cell in self.nb.cells:
                if cell.cell_type != "code":
                    continue
                options = defaultdict(bool, find_metadata_tags(cell.metadata))
                options.update(dict(find_comment_markers(cell.source)))
                options.setdefault("check", self.compare_outputs)
                item = IPyNbCell.from_parent(
                    self, name=f"Cell {cell_num}", cell_num=cell_num, cell=cell, options=options
                )
                item.add_marker(pytest.mark.notebook)
                yield item
                cell_num += 1

    return JupytextNotebookFile


try:
    JupytextNotebookFile = _make_notebook_file_class()
except ImportError:  # nbval not installed: notebook validation unavailable
    JupytextNotebookFile = None


def pytest_configure(config):
    config.addinivalue_line("markers", "notebook: a cell of a chapter notebook, run by nbval")
    config.addinivalue_line("markers", "browser: a test that drives headless Chromium")
    config.addinivalue_line(
        "markers", "throttled: a timed page load on an emulated phone (run alone, not in parallel)"
    )
    # Registered as a plugin object, not as conftest hooks: conftest hooks only see files under
    # tests/, and the notebooks live in book/.
    if JupytextNotebookFile is not None and not config.pluginmanager.has_plugin("nbval-jupytext"):
        config.pluginmanager.register(_JupytextNbvalPlugin(), "nbval-jupytext")


# --------------------------------------------------------------------------------------------
# 2. the built book, served locally, and a headless browser


def built_book_dir() -> Path:
    return Path(os.environ.get("PGBOOK_HTML", REPO / "_build" / "html")).resolve()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest's output clean
        pass


#: What a static host (GitHub Pages, Netlify, nginx's gzip_types) compresses: text, not images
#: or fonts (woff/woff2/png are compressed already).
GZIP_TYPES = (
    "text/",
    "application/javascript",
    "application/json",
    "image/svg+xml",
    "application/xml",
)


class GzipHandler(_QuietHandler):
    """Serves files like a static host: gzip (level 6) for text types when the client accepts it.

    Compressed bodies are cached per path, so repeated page loads cost no CPU."""

    _cache: dict[tuple[str, float], bytes] = {}
    _lock = threading.Lock()

    def send_head(self):
        path = self.translate_path(self.path)
        ctype = self.guess_type(path)
        wants_gzip = "gzip" in self.headers.get("Accept-Encoding", "")
        if (
            not wants_gzip
            or os.path.isdir(path)
            or not os.path.isfile(path)
            or not ctype.startswith(GZIP_TYPES)
        ):
            return super().send_head()
        import gzip
        import io

        key = (path, os.path.getmtime(path))
        with self._lock:
            body = self._cache.get(key)
        if body is None:
            body = gzip.compress(Path(path).read_bytes(), compresslevel=6, mtime=0)
            with self._lock:
                self._cache[key] = body
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Encoding", "gzip")
        self.send_header("Vary", "Accept-Encoding")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        return io.BytesIO(body)


def serve_directory(directory: Path, handler=_QuietHandler):
    """Start a threaded HTTP server for ``directory`` on 127.0.0.1; returns (server, base URL)."""
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(handler, directory=str(directory))
    )
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


@pytest.fixture(scope="session")
def book_dir() -> Path:
    """The built HTML book: $PGBOOK_HTML or _build/html. Fails (never skips) when missing."""
    path = built_book_dir()
    if not (path / "index.html").is_file():
        pytest.fail(
            f"No built book at {path} (index.html missing). Run `make book` first, or set "
            "PGBOOK_HTML to the directory of a built book. `make test` builds it for you.",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="session")
def book_server(book_dir: Path):
    """Serve the built book on 127.0.0.1 (a free port); yields the base URL, ending in '/'."""
    server, base = serve_directory(book_dir)
    try:
        yield base
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="session")
def gzip_server(book_dir: Path):
    """The built book served as a static host serves it (gzip for text types); the base URL."""
    server, base = serve_directory(book_dir, GzipHandler)
    try:
        yield base
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="session")
def browser():
    """Headless Debian Chromium (never a playwright-downloaded browser)."""
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"{CHROMIUM} not found: install Debian's chromium (`apt-get install chromium`; "
            "`make test` does it when run as root). Never `playwright install`.",
            pytrace=False,
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def pytest_terminal_summary(terminalreporter):
    """After the browser tests: the per-page measurements (weight, maths timing, figure text)."""
    import sys

    module = sys.modules.get("tests.test_book_html")
    metrics = getattr(module, "READING_METRICS", None)
    if not metrics:
        return
    terminalreporter.section("reading on every device: measurements")
    for doc, values in metrics.items():
        terminalreporter.write_line(
            f"{doc}: " + ", ".join(f"{k} = {v}" for k, v in sorted(values.items()))
        )


def pytest_collection_modifyitems(config, items):
    """Under xdist (`--dist loadgroup`), the browser tests of one page run on one worker, so they
    share that page's readings (tests/test_book_html.py caches one per page, width and mode)."""
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        module = getattr(item, "module", None)  # notebook cells (nbval) have none
        if module is not None and module.__name__.endswith("test_book_html") and "doc" in params:
            item.add_marker(pytest.mark.xdist_group(str(params["doc"])))
