"""The GitHub Actions workflow cannot run here: check that it parses and mirrors `make test`."""

from __future__ import annotations

from pathlib import Path

import yaml

from .conftest import REPO

WORKFLOW = REPO / ".github" / "workflows" / "book.yml"


def _load() -> dict:
    assert WORKFLOW.is_file(), f"missing {WORKFLOW}"
    return yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))


def _triggers(doc: dict) -> dict:
    # YAML 1.1 reads the bare key `on` as the boolean True
    return doc.get("on", doc.get(True)) or {}


def _steps(doc: dict):
    for job in doc["jobs"].values():
        yield from job.get("steps", [])


def test_workflow_parses_and_triggers_on_push_and_pull_request():
    doc = _load()
    triggers = _triggers(doc)
    assert "push" in triggers and "pull_request" in triggers, triggers


def test_workflow_tests_with_make_test_and_nothing_else():
    doc = _load()
    runs = [s["run"].strip() for s in doc["jobs"]["test"]["steps"] if "run" in s]
    assert runs == ["make test"], f"the test job should run exactly `make test`, got {runs}"
    # the other jobs only publish what the test job built, and only from main
    for name, job in doc["jobs"].items():
        if name != "test":
            assert job.get("needs") == "test", name
            assert "refs/heads/main" in job["if"] and "push" in job["if"], name


def test_colab_branch_matches_the_book_config():
    doc = _load()
    config = yaml.safe_load((REPO / "_config.yml").read_text(encoding="utf-8"))
    branch = config["sphinx"]["config"]["pgbook_colab_branch"]
    script = "\n".join(s.get("run", "") for s in doc["jobs"]["notebooks"]["steps"])
    assert f"-b {branch}" in script and script.rstrip().endswith(branch), script


def test_ci_run_calls_make_test():
    script = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    commands = [
        line.strip()
        for line in script.splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    assert "set -euo pipefail" in commands
    assert commands[-1] == "make test", commands


def test_workflow_uses_the_pinned_toolchain():
    doc = _load()
    steps = list(_steps(doc))
    py = [s for s in steps if str(s.get("uses", "")).startswith("actions/setup-python")]
    node = [s for s in steps if str(s.get("uses", "")).startswith("actions/setup-node")]
    assert py and str(py[0]["with"]["python-version"]) == "3.11"
    assert node and str(node[0]["with"]["node-version"]) == "20"


def test_workflow_publishes_the_built_book_from_main_only():
    doc = _load()
    steps = list(_steps(doc))
    upload = [
        s for s in steps if str(s.get("uses", "")).startswith("actions/upload-pages-artifact")
    ]
    deploy = [s for s in steps if str(s.get("uses", "")).startswith("actions/deploy-pages")]
    assert upload and upload[0]["with"]["path"] == "_build/html"
    assert deploy
    deploy_job = doc["jobs"]["deploy"]
    assert "refs/heads/main" in deploy_job["if"]
    assert deploy_job["permissions"] == {"pages": "write", "id-token": "write"}


def test_makefile_has_the_documented_targets():
    text = (REPO / "Makefile").read_text(encoding="utf-8")
    for target in ("venv", "setup", "book", "serve", "test", "lab", "clean"):
        assert f"\n{target}:" in text or f"\n{target} " in text or f" {target}:" in text, target
    assert "|| true" not in text, "the Makefile must not swallow exit codes"
    assert Path(REPO / "requirements.txt").read_text().rstrip().endswith("-e .")
