# The two commands:
#   make book   set up (.venv + vendored JS), build the HTML book with every notebook executed,
#               and print it into one PDF (make pdf)
#   make test   set up, then run everything: pgcore tests, nbval on every chapter, the book
#               build, and the browser tests against that freshly built book
# Other targets: make venv | serve | lab | nbval [NB=book/06_ppo.md] | bench | clean | distclean
#
# Everything is idempotent: the setup steps re-run only when requirements.txt, pyproject.toml,
# package.json or package-lock.json change (stamp files), and an existing .venv is reused.

SHELL       := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON   ?= python3
VENV     := .venv
BIN      := $(abspath $(VENV))/bin
PY       := $(BIN)/python
PIP      := $(PY) -m pip
PIPFLAGS := --disable-pip-version-check --no-input
TORCH    := torch==2.13.0

BUILD    := _build
HTML     := $(BUILD)/html
VENDOR   := book/_vendor
NPM_MODS := node_modules

PY_STAMP     := $(VENV)/.installed
VENDOR_STAMP := $(VENDOR)/.installed

CHROMIUM ?= /usr/bin/chromium
export PGBOOK_CHROMIUM := $(CHROMIUM)

HOST ?= 127.0.0.1
PORT ?= 8000
LAB_PORT ?= 8888

# Notebook validation runs the chapters in parallel, one whole notebook per worker.
NBVAL_WORKERS ?= 2
PYTEST        := $(PY) -m pytest

# Tools installed in the venv come first on PATH (jupyter kernels, jupytext, ...).
export PATH := $(BIN):$(PATH)
# Keep Jupyter quiet in CI. (Do not set MPLBACKEND: it would override the kernels' inline backend.)
export PYDEVD_DISABLE_FILE_VALIDATION := 1
export JUPYTER_PLATFORM_DIRS := 1

.PHONY: help venv setup book pdf serve test test-py test-html test-colab nbval lab bench chromium clean distclean

help:
	@echo "make book    build the HTML book into $(HTML) (creates .venv and vendored JS on first run)"
	@echo "make test    pgcore tests + nbval on every chapter + book build + browser tests"
	@echo "make pdf     print the built book into $(HTML)/_static/advanced-policy-gradients.pdf (make book does it)"
	@echo "make serve   serve $(HTML) on http://$(HOST):$(PORT)/"
	@echo "make lab     JupyterLab on $(HOST) with jupytext: book/*.md open as notebooks"
	@echo "make nbval   validate the chapter notebooks only (NB=book/06_ppo.md for one)"
	@echo "make bench   benchmarks (see benchmarks/README.md)"
	@echo "make clean   remove $(BUILD) and caches;  make distclean also removes .venv, node_modules, $(VENDOR)"

# ---------------------------------------------------------------------------------------------
# Setup
venv setup: $(PY_STAMP) $(VENDOR_STAMP)

# torch first, from the pinned CPU build, so that nothing else pulls a CUDA build.
$(PY_STAMP): requirements.txt pyproject.toml
	@test -x $(PY) || { echo "Creating $(VENV) with $(PYTHON)"; $(PYTHON) -m venv $(VENV); }
	$(PIP) install $(PIPFLAGS) $(TORCH)
	$(PIP) install $(PIPFLAGS) -r requirements.txt
	@touch $@

# MathJax 3, pinned by package-lock.json and copied into $(VENDOR) (out of git) so that the
# built book typesets offline. (No widget manager: pages show kernel-free widgets only.)
$(VENDOR_STAMP): package.json package-lock.json
	npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	rm -rf $(VENDOR)
	mkdir -p $(VENDOR)/mathjax
	mkdir -p $(VENDOR)/mathjax/input $(VENDOR)/mathjax/output
	cd $(NPM_MODS)/mathjax/es5 && cp -R tex-chtml.js a11y adaptors sre ui ../../../$(VENDOR)/mathjax/ \
	  && cp -R input/tex ../../../$(VENDOR)/mathjax/input/ && cp -R output/chtml ../../../$(VENDOR)/mathjax/output/
	cp $(NPM_MODS)/mathjax/LICENSE $(VENDOR)/mathjax/
	# Vega and Vega-Lite for the figures: committed package data (pgcore/widgets/static), refreshed
	# here from the pinned node_modules (tests/test_widgets_core.py checks the copies are equal)
	cp $(NPM_MODS)/vega/build/vega.min.js $(NPM_MODS)/vega-lite/build/vega-lite.min.js pgcore/widgets/static/
	cp $(NPM_MODS)/vega/LICENSE pgcore/widgets/static/LICENSE-vega
	cp $(NPM_MODS)/vega-lite/LICENSE pgcore/widgets/static/LICENSE-vega-lite
	@touch $@

# Debian's chromium for the browser tests (CI runs as root; never `playwright install`).
# CHROMIUM may name another Chromium-based browser already installed (e.g. google-chrome).
chromium:
	@if [ ! -x "$(CHROMIUM)" ]; then \
	  echo "Installing Debian's chromium for the browser tests"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; \
	fi
	@"$(CHROMIUM)" --version 2>/dev/null

# ---------------------------------------------------------------------------------------------
# The book.  Execution is forced (config: execute_notebooks: force): Jupyter Book's cache keys
# only on code cells, not on pgcore, so cached outputs could hide a broken chapter.
book: setup chromium
	rm -rf $(HTML) $(BUILD)/jupyter_execute $(BUILD)/.doctrees
	$(BIN)/jupyter-book build . --all --builder html -W -n --keep-going
	@$(MAKE) --no-print-directory pdf
	@echo
	@echo "The book is in $(abspath $(HTML))/index.html"
	@echo "Serve it with:  make serve   (http://$(HOST):$(PORT)/)"

# The whole book as one PDF, printed from the built pages by headless Chromium (nothing is
# executed again): $(HTML)/_static/advanced-policy-gradients.pdf, linked from the book.
pdf: setup chromium
	@test -f $(HTML)/index.html || { echo "No book in $(HTML): run 'make book' first"; exit 1; }
	$(PY) book/_ext/make_pdf.py $(HTML)

serve:
	@test -f $(HTML)/index.html || { echo "No book in $(HTML): run 'make book' first"; exit 1; }
	@echo "Serving $(HTML) on http://$(HOST):$(PORT)/  (Ctrl-C to stop)"
	$(PY) -m http.server $(PORT) --bind $(HOST) --directory $(HTML)

# ---------------------------------------------------------------------------------------------
# Tests.  Exit codes propagate: nothing here ignores a failure.
#   0. ruff (lint, and the formatting that `ruff format` writes) on the Python sources;
#   1. pgcore's unit/property tests, the repo tests and nbval on every chapter notebook
#      (--nbval-lax: every cell must run without error; outputs are not compared), in parallel
#      with one notebook per worker (--dist loadfile);
#   2. the book build (execution forced, -W -n --keep-going, raise_on_error);
#   3. the browser tests against the book that step 2 produced.
#   Notebook tests (issue 10): between 1 and 2, every chapter in JupyterLab as `make lab` runs
#   it (tests/test_lab_browser.py); after 2, the Colab simulation (tests/test_colab.py: every
#   portable notebook of the build in a fresh venv). The timed phone loads run last, alone.
NB_TESTS_LATER := --ignore=tests/test_lab_browser.py --ignore=tests/test_colab.py \
                  --ignore=tests/test_figures_browser.py
test: setup chromium
	$(PY) -m ruff check pgcore tests benchmarks book/scripts
	$(PY) -m ruff format --check pgcore tests benchmarks book/scripts
	$(PYTEST) -n $(NBVAL_WORKERS) --dist loadfile --nbval-lax -p no:cacheprovider \
	  --ignore=tests/test_book_html.py $(NB_TESTS_LATER) tests book
	$(PYTEST) -n $(NBVAL_WORKERS) --dist load -p no:cacheprovider tests/test_lab_browser.py
	$(MAKE) --no-print-directory book
	PGBOOK_HTML=$(abspath $(HTML)) $(PYTEST) -n $(NBVAL_WORKERS) --dist load -p no:cacheprovider tests/test_colab.py
	PGBOOK_HTML=$(abspath $(HTML)) $(PYTEST) -n $(NBVAL_WORKERS) --dist loadgroup -p no:cacheprovider \
	  -m "not throttled" tests/test_book_html.py tests/test_figures_browser.py
	PGBOOK_HTML=$(abspath $(HTML)) $(PYTEST) -p no:cacheprovider -m throttled tests/test_book_html.py

test-py: setup
	$(PYTEST) -n $(NBVAL_WORKERS) --dist loadfile -p no:cacheprovider --ignore=tests/test_book_html.py \
	  $(NB_TESTS_LATER) tests

# The Colab simulation alone (make test runs it too): every portable notebook of the build in a
# fresh venv with only what Colab preinstalls.
test-colab: setup
	PGBOOK_HTML=$(abspath $(HTML)) $(PYTEST) -n $(NBVAL_WORKERS) --dist load -p no:cacheprovider tests/test_colab.py

test-html: setup chromium
	PGBOOK_HTML=$(abspath $(HTML)) $(PYTEST) -p no:cacheprovider tests/test_book_html.py \
	  tests/test_figures_browser.py

# tests/conftest.py is passed so that it loads: it teaches nbval to read the jupytext .md files.
NB ?= book
nbval: setup
	$(PYTEST) -n $(NBVAL_WORKERS) --dist loadfile --nbval-lax -p no:cacheprovider tests/conftest.py $(NB)

# ---------------------------------------------------------------------------------------------
# JupyterLab on 127.0.0.1 with jupytext: double-clicking a book/*.md chapter opens it as a
# notebook (the default viewer for Markdown/MyST is "Jupytext Notebook"), jupyterlab-myst renders
# its MyST (directives, proofs, maths with the macros of the chapter's first cell), and the live
# widgets work. book/_ext/pgbook_lab.py's contents manager shows {glue:text} roles as {eval}
# expressions (numbers after Run All) and leaves an unchanged chapter untouched on save; the
# kernel spec below loads pgcore.notebook, which records glued values. The token is random
# unless JUPYTER_TOKEN is set. LAB_DIR holds the generated settings and kernel spec.
LAB_DIR      := $(VENV)/share/pgbook-lab
LAB_ROOT     ?= $(CURDIR)
LAB_SETTINGS := $(VENV)/share/jupyter/lab/settings/overrides.json
lab: setup
	@mkdir -p $(dir $(LAB_SETTINGS)) $(LAB_DIR)/kernels/python3
	@printf '%s\n' '{"@jupyterlab/docmanager-extension:plugin": {"defaultViewers": {"markdown": "Jupytext Notebook", "myst": "Jupytext Notebook"}}}' > $(LAB_SETTINGS)
	@printf '%s\n' '{"argv": ["$(PY)", "-m", "ipykernel_launcher", "-f", "{connection_file}", "--InteractiveShellApp.extra_extensions=pgcore.notebook"], "display_name": "Python 3 (ipykernel)", "language": "python", "metadata": {"debugger": true}}' > $(LAB_DIR)/kernels/python3/kernel.json
	JUPYTER_PATH=$(abspath $(LAB_DIR)) PYTHONPATH=$(CURDIR)/book/_ext \
	$(BIN)/jupyter lab --ip=$(HOST) --port=$(LAB_PORT) --no-browser \
	  --ServerApp.port_retries=0 --ServerApp.root_dir=$(LAB_ROOT) --ServerApp.default_url=/lab/tree/book \
	  --ServerApp.contents_manager_class=pgbook_lab.BookContentsManager \
	  $(if $(filter 0,$(shell id -u)),--allow-root)

# The chapters in the form JupyterLab writes back, with their macro cell from _config.yml
# (tests/test_notebooks.py checks both): run after editing a chapter outside JupyterLab.
chapters-normalise: setup
	$(PY) book/_ext/pgbook_lab.py macros
	$(PY) book/_ext/pgbook_lab.py normalise

# Benchmarks against Stable-Baselines3 (not tests; see benchmarks/README.md). Their extra
# requirements are kept out of requirements.txt. Pass options with BENCH_ARGS="--seeds 3".
BENCH_ARGS ?=
bench: setup
	$(PIP) install $(PIPFLAGS) -r benchmarks/requirements.txt
	$(PY) benchmarks/compare_sb3.py $(BENCH_ARGS)

clean:
	rm -rf $(BUILD) .pytest_cache .hypothesis .jupyter_cache
	find . -name __pycache__ -type d -not -path './.venv/*' -not -path './node_modules/*' -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) $(NPM_MODS) $(VENDOR)
