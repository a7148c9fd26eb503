"""A Colab simulation: every portable notebook of the built book runs in a fresh environment.

The environment is a new virtual environment outside the repository holding only what Colab
preinstalls that the book uses (torch, numpy, pandas, matplotlib, ipywidgets, ipykernel). A fake
``google.colab`` module on the kernel's PYTHONPATH makes the notebooks' setup cell (which tries
``import google.colab``) believe it runs on Colab, and ``PGBOOK_REPO`` points its ``git clone`` at a snapshot of this working tree
(the cell defaults to the GitHub repository). Each notebook then runs from its own directory
outside the repository: the setup cell clones, installs pgcore (not editable) and what the
notebook imports that Colab lacks, and every cell must run without an error.

Run after ``make book`` (``make test`` does):  PGBOOK_HTML=_build/html pytest tests/test_colab.py
With pytest-xdist each worker builds its own environment (pip installs must not race).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from .conftest import REPO

HTML = os.environ.get("PGBOOK_HTML")
PINS = ("torch", "numpy", "pandas", "matplotlib", "ipywidgets", "ipykernel")
CELL_TIMEOUT = 900


def _portable_notebooks() -> list[Path]:
    if not HTML:
        return []
    return sorted(Path(HTML, "_sources").rglob("*.ipynb"))


def _pins() -> list[str]:
    text = (REPO / "requirements.txt").read_text()
    out = []
    for name in PINS:
        m = re.search(rf"^{name}==(\S+)$", text, re.M | re.I)
        assert m, f"{name} is not pinned in requirements.txt"
        out.append(f"{name}=={m.group(1)}")
    return out


@pytest.fixture(scope="session")
def colab(tmp_path_factory):
    """(fresh venv, kernel name, env for the kernel, repository snapshot URL)."""
    if not HTML:
        pytest.fail("PGBOOK_HTML is not set: run `make book` first (make test does)", pytrace=False)
    base = tmp_path_factory.mktemp("colab")
    assert REPO not in base.parents
    # 1. a snapshot of the working tree as a git repository (what `git clone` will fetch)
    snap = base / "repo"
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=REPO, check=True, capture_output=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for rel in filter(None, files):
        src = REPO / rel
        if src.is_file():
            (snap / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, snap / rel)
    git = [
        "git",
        "-c",
        "user.name=test",
        "-c",
        "user.email=test@localhost",
        "-c",
        "init.defaultBranch=main",
    ]
    subprocess.run([*git, "init", "-q"], cwd=snap, check=True)
    subprocess.run([*git, "add", "-A"], cwd=snap, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "snapshot"], cwd=snap, check=True)
    # 2. a fresh venv with only Colab's preinstalled packages (torch first: the CPU build)
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    pip = [str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    pins = _pins()
    subprocess.run([*pip, pins[0]], check=True)
    subprocess.run([*pip, *pins[1:]], check=True)
    subprocess.run(
        [str(py), "-m", "ipykernel", "install", "--prefix", str(venv), "--name", "colabsim"],
        check=True, capture_output=True,
    )  # fmt: skip
    # 3. "on Colab": a google.colab module on the kernel's path
    fake = base / "fake_colab" / "google" / "colab"
    fake.mkdir(parents=True)
    (fake.parent / "__init__.py").write_text("")
    (fake / "__init__.py").write_text('"""Stands in for Colab in tests/test_colab.py."""\n')
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PGBOOK_ROOT", "JUPYTER_PATH")
    }
    env.update(
        PATH=f"{venv / 'bin'}:{env.get('PATH', '')}",
        PYTHONPATH=str(base / "fake_colab"),
        PGBOOK_REPO=f"file://{snap}",
        JUPYTER_PATH=str(venv / "share" / "jupyter"),
        MPLBACKEND="agg",
    )
    return venv, env


@pytest.mark.parametrize("nb_path", _portable_notebooks(), ids=lambda p: p.stem)
def test_portable_notebook_runs_on_simulated_colab(colab, nb_path, tmp_path, record_property):
    from jupyter_client.kernelspec import KernelSpecManager
    from nbclient import NotebookClient

    venv, env = colab
    nb = nbformat.read(nb_path, as_version=4)
    first = nb.cells[0]
    assert "pgbook-colab-setup" in first.metadata.get("tags", []), "no setup cell"
    assert "-e " not in first.source and "--editable" not in first.source
    work = tmp_path / "work"
    work.mkdir()
    old = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)  # the kernel inherits this environment; JUPYTER_PATH finds its spec
    try:
        spec = KernelSpecManager().get_kernel_spec("colabsim")
        assert Path(spec.argv[0]).parent == venv / "bin", spec.argv  # the fresh venv's Python
        client = NotebookClient(
            nb,
            timeout=CELL_TIMEOUT,
            kernel_name="colabsim",
            resources={"metadata": {"path": str(work)}},
        )
        t0 = time.perf_counter()
        client.execute()
        record_property("seconds", round(time.perf_counter() - t0, 1))
    finally:
        os.environ.clear()
        os.environ.update(old)
    errors = [
        o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"
    ]
    assert not errors, errors[:1]
    # %pip reports a failed install as text, not as an error, and the notebooks of one session
    # share the simulated runtime (Colab gives each its own): read the setup cell's output
    setup_out = "".join(o.get("text", "") for o in first.outputs if o.output_type == "stream")
    assert "ERROR:" not in setup_out, setup_out[-2000:]
    assert (work / "apg" / "book" / "data").is_dir(), "the setup cell did not clone the repository"
    site = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import pgcore, sys; print(pgcore.__file__)"],
        env={**env, "PYTHONPATH": ""}, cwd=work, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "site-packages" in site, f"pgcore is not a regular (non-editable) install: {site}"
