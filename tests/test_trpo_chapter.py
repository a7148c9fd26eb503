"""Chapter 4 (TRPO): the stored training runs, their reproducibility, and the chapter's structure."""

from __future__ import annotations

import ast
import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
CHAPTER = ROOT / "book" / "05_trpo.md"
DATA = ROOT / "book" / "data" / "trpo"
SCRIPT = ROOT / "book" / "scripts" / "trpo_runs.py"
TASKS = ("CartPole-v1", "Pendulum-v1")


@pytest.fixture(scope="module")
def runs_module():
    spec = importlib.util.spec_from_file_location("trpo_runs", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_stored_data_is_small_and_complete(runs_module):
    total = sum(f.stat().st_size for f in DATA.iterdir() if f.is_file())
    assert total < 1_000_000, f"book/data/trpo is {total} bytes"
    for env_id in TASKS:
        data, meta = runs_module.load_runs(env_id)
        spec = runs_module.RUNS[env_id]
        assert meta["env_id"] == env_id and meta["algo"] == "trpo"
        assert meta["hparams"] == spec["hparams"], (
            "stored runs were made with other hyperparameters"
        )
        assert meta["seeds"] == spec["seeds"] and meta["total_steps"] == spec["total_steps"]
        n_seeds = len(spec["seeds"])
        per_iter = spec["hparams"]["num_envs"] * spec["hparams"]["n_steps"]
        n_iters = -(-spec["total_steps"] // per_iter)
        for k in runs_module.ITER_KEYS:
            assert data[k].shape == (n_seeds, n_iters), k
        np.testing.assert_array_equal(data["env_steps"][0], per_iter * np.arange(1, n_iters + 1))
        assert len(data["ep_return"]) == len(data["ep_end_step"]) == len(data["ep_seed"])


@pytest.mark.parametrize("env_id", TASKS)
def test_stored_kl_never_exceeds_delta(runs_module, env_id):
    data, meta = runs_module.load_runs(env_id)
    assert np.all(data["kl"] <= meta["hparams"]["max_kl"])
    assert np.all(data["kl"] >= 0)


LINE_SEARCH_KEYS = ("accepted", "backtracks", "predicted_kl", "predicted_kl_undamped")


@pytest.mark.parametrize("env_id", TASKS)
def test_stored_line_search_diagnostics_are_consistent(runs_module, env_id):
    """The line-search record the chapter reads: accepted steps have KL ≤ δ, rejected ones
    kept the old policy (KL 0, every trial used), and the damped model of an accepted step
    after j backtracks is exactly c^(2j)·δ, with the undamped model below it (κ > 0)."""
    data, meta = runs_module.load_runs(env_id)
    hp = meta["hparams"]
    for k in LINE_SEARCH_KEYS:
        assert data[k].shape == data["kl"].shape, k
    acc = data["accepted"].astype(bool)
    bt = data["backtracks"]
    assert np.all(data["kl"][acc] <= hp["max_kl"])
    assert np.all(data["kl"][~acc] == 0.0)
    assert np.all(bt[~acc] == hp["backtrack_iters"])
    assert np.all((bt[acc] >= 0) & (bt[acc] < hp["backtrack_iters"]))
    expected = hp["max_kl"] * hp["backtrack_coeff"] ** (2 * bt[acc])
    np.testing.assert_allclose(data["predicted_kl"][acc], expected, rtol=1e-9)
    assert hp["damping"] > 0
    assert np.all(data["predicted_kl_undamped"][acc] < data["predicted_kl"][acc])


def test_backtracking_claims_of_the_chapter(runs_module):
    """The chapter says: the CartPole runs backtrack far more often than the Pendulum runs
    (they have the larger δ), and a KL below δ/2 usually means the line search backtracked."""
    frac, n_below, n_below_bt = {}, 0, 0
    deltas = {}
    for env_id in TASKS:
        data, meta = runs_module.load_runs(env_id)
        deltas[env_id] = meta["hparams"]["max_kl"]
        backtracked = data["backtracks"] > 0
        frac[env_id] = backtracked.mean()
        below = data["accepted"].astype(bool) & (data["kl"] / deltas[env_id] < 0.5)
        n_below += int(below.sum())
        n_below_bt += int((below & backtracked).sum())
    assert frac["CartPole-v1"] > 3 * frac["Pendulum-v1"]
    assert deltas["CartPole-v1"] > deltas["Pendulum-v1"]
    assert n_below_bt > n_below / 2


def test_cartpole_runs_match_the_chapter_text(runs_module):
    """The chapter says: every CartPole seed reaches a 20-episode mean of 475, and progress is
    not monotonic (at least one seed falls back below 450 after first reaching 475)."""
    data, _ = runs_module.load_runs("CartPole-v1")
    mr = data["mean_return"]
    assert (np.nanmax(mr, axis=1) >= 475.0).all()
    low_after = [row[np.argmax(row >= 475) :].min() for row in mr]
    assert min(low_after) < 450.0


@pytest.mark.parametrize("env_id,n_iterations", [("CartPole-v1", 3), ("Pendulum-v1", 1)])
def test_live_prefix_matches_stored_run(runs_module, env_id, n_iterations):
    live, stored = runs_module.live_prefix(env_id, n_iterations)
    diffs = runs_module.compare(live, stored, atol=1e-12)
    assert max(diffs.values()) <= 1e-12
    assert len(stored["kl"]) == n_iterations


def test_compare_detects_a_difference(runs_module):
    data, _ = runs_module.load_runs("CartPole-v1")
    stored = {k: data[k][0, :3] for k in runs_module.ITER_KEYS}
    changed = {k: v.copy() for k, v in stored.items()}
    changed["kl"][1] += 1e-9
    with pytest.raises(AssertionError, match="kl"):
        runs_module.compare(changed, stored)


def test_training_is_deterministic(runs_module):
    from pgcore.training import train

    hp = runs_module.hparams_for("CartPole-v1")
    a = runs_module.history_table(
        train("CartPole-v1", "trpo", total_steps=2048, seed=3, progress=False, **hp).history
    )
    b = runs_module.history_table(
        train("CartPole-v1", "trpo", total_steps=2048, seed=3, progress=False, **hp).history
    )
    for k in a:
        if k != "wall_time":
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_chapter_structure():
    text = CHAPTER.read_text()
    assert "Fischer" not in text
    assert text.count(":::{exercise}") >= 3
    assert text.count(":::{solution}") == text.count(":::{exercise}")
    assert text.count(":class: dropdown") >= 3
    assert ":::{prf:algorithm}" in text
    assert ":pyobject: trpo_step" in text
    for key in ("schulman2015trpo", "schulman2016gae", "kakade2002approximately", "achiam2017cpo"):
        assert key in text
    # the book's notation (NOTATION.md): n_bt, not J, for the number of trials; D̄ always with KL;
    # no ε outside PPO's clip (CPO's ε is ā_max); step sizes are η, not α
    assert "J-1" not in text and "$J =$" not in text
    assert not re.search(r"\\bar D(?!_\{\\mathrm\{KL\}\})", text)
    assert "\\varepsilon" not in text and "\\epsilon_A" not in text
    assert "\\alpha" not in text
    # every glue:text reference has a glue() call that defines it
    used = set(re.findall(r"\{glue:(?:text|figure)\}`?\s*([A-Za-z0-9_]+)", text))
    used |= set(re.findall(r"```\{glue:figure\}\s+([A-Za-z0-9_]+)", text))
    defined = glued_names(text)
    assert used <= defined, used - defined


def glued_names(text: str) -> set[str]:
    """Every name the chapter's code cells glue: glue("name", ...), glue_num("name", ...) and
    glue_values("prefix", name=...) (read with ast, so multi-line calls count)."""
    names: set[str] = set()
    for cell in re.findall(r"^```\{code-cell\}[^\n]*\n(.*?)^```", text, re.S | re.M):
        code = "\n".join(
            line for line in cell.splitlines() if not line.lstrip().startswith(("%", ":"))
        )
        for node in ast.walk(ast.parse(code)):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.args):
                continue
            first = node.args[0]
            if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
                continue
            if node.func.id in ("glue", "glue_num"):
                names.add(first.value)
            elif node.func.id == "glue_values":
                names |= {first.value + kw.arg for kw in node.keywords if kw.arg}
    return names


def test_glued_names_reads_every_form():
    text = (
        "```{code-cell} ipython3\n:tags: [hide-cell]\n%matplotlib inline\nglue('a', 1)\n"
        "glue_num('b', 2)\nglue_values('ch4_', c=3,\n            d=4)\n```\n"
    )
    assert glued_names(text) == {"a", "b", "ch4_c", "ch4_d"}


def test_metadata_json_is_valid():
    for env_id in TASKS:
        meta = json.loads((DATA / f"{env_id}.json").read_text())
        assert meta["script"] == "book/scripts/trpo_runs.py"


def test_chapter_figures_are_drawn_from_data():
    """Every figure of the chapter is a numbered, captioned pgcore figure (tables + Vega-Lite
    panels, shown with .display()), none is a matplotlib image, and the line-search figure has
    its live cell for a kernel."""
    text = CHAPTER.read_text()
    assert "matplotlib" not in text and "plt." not in text
    figures = re.findall(r"```\{glue:figure\} (\S+)\n:name: (\S+)\n\n(.+?)\n```", text, re.S)
    assert len(figures) == 5
    for name, label, caption in figures:
        assert re.search(rf'glue\("{name}", \w+\.display\(\), display=False\)', text), name
        assert label.startswith("ch4-fig-") and len(caption.split()) >= 15, label
    live = re.search(
        r"```\{code-cell\} ipython3\n:tags: \[([^\]]*)\]\n\nline_search\.live\(\)", text
    )
    assert live and set(live.group(1).split(", ")) == {
        "remove-output",
        "skip-execution",
        "nbval-ignore-output",
    }
