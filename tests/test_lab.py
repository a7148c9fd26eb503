"""`make lab`: JupyterLab starts on 127.0.0.1, opens a chapter's .md as a notebook through
jupytext, and shuts down cleanly when asked to."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from .conftest import REPO, chapter_notebooks

STARTUP_TIMEOUT = 60
SHUTDOWN_TIMEOUT = 15


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, token: str, method: str = "GET"):
    req = urllib.request.Request(url, method=method, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        body = r.read()
        return r.status, (json.loads(body) if body else None)


@pytest.fixture()
def lab_server(tmp_path):
    if shutil.which("make") is None:
        pytest.fail("make is not installed", pytrace=False)
    port, token = _free_port(), secrets.token_hex(16)
    env = {
        **os.environ,
        "JUPYTER_TOKEN": token,
        # keep the test's runtime files and user settings out of the user's home
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces"),
        "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "user-settings"),
    }
    log = open(tmp_path / "lab.log", "wb")
    # `-o setup`: the environment is already set up (make test did it); only run JupyterLab.
    proc = subprocess.Popen(
        ["make", "--no-print-directory", "-o", "setup", "lab", f"LAB_PORT={port}"],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # its own process group, so a failed test can stop all of it
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            if proc.poll() is not None:
                pytest.fail(
                    f"`make lab` exited with {proc.returncode} before serving:\n"
                    + (tmp_path / "lab.log").read_text(errors="replace")[-3000:],
                    pytrace=False,
                )
            try:
                status, _ = _get(f"{base}/api/status", token)
                if status == 200:
                    break
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"JupyterLab did not answer on {base} within {STARTUP_TIMEOUT} s")
            time.sleep(0.3)
        yield base, token, proc, tmp_path / "lab.log"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=SHUTDOWN_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()


def test_lab_opens_a_chapter_as_notebook_and_shuts_down(lab_server):
    base, token, proc, log_path = lab_server
    chapters = chapter_notebooks()
    assert chapters, "no jupytext chapter notebooks under book/"
    chapter = chapters[0].relative_to(REPO).as_posix()

    # the server refuses requests without the token
    with pytest.raises(urllib.error.HTTPError) as excinfo:
        urllib.request.urlopen(f"{base}/api/contents/{chapter}?type=notebook", timeout=10)
    assert excinfo.value.code in (401, 403)

    status, model = _get(f"{base}/api/contents/{chapter}?type=notebook&content=1", token)
    assert status == 200
    assert model["type"] == "notebook", model["type"]
    cells = model["content"]["cells"]
    assert any(c["cell_type"] == "code" for c in cells), "the chapter has no code cells"
    assert model["content"]["metadata"]["kernelspec"]["name"].startswith("python")

    # JupyterLab's page is served, and .md opens as a notebook by default in the UI
    status, settings = _get(
        f"{base}/lab/api/settings/@jupyterlab/docmanager-extension:plugin", token
    )
    assert status == 200
    # overrides.json (written by `make lab`) changes the schema's default
    viewers = settings["schema"]["properties"]["defaultViewers"].get("default", {})
    assert viewers.get("markdown") == "Jupytext Notebook", viewers

    # clean shutdown through the API
    status, _ = _get(f"{base}/api/shutdown", token, method="POST")
    assert status == 200
    try:
        rc = proc.wait(timeout=SHUTDOWN_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"JupyterLab still running {SHUTDOWN_TIMEOUT} s after /api/shutdown")
    assert rc == 0, f"make lab exited with {rc}:\n{Path(log_path).read_text()[-2000:]}"
