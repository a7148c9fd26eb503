"""Chapter 5's stored runs: present, small, complete, and reproduced exactly by a live slice."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "book" / "data" / "ppo"
SCRIPT = ROOT / "book" / "scripts" / "ppo_table1.py"

PAPER = {  # DESIGN §1: the PPO paper's Table 1
    "No clipping or penalty": -0.39,
    "Clipping, ε = 0.1": 0.76,
    "Clipping, ε = 0.2": 0.82,
    "Clipping, ε = 0.3": 0.70,
    "Adaptive KL, d_targ = 0.003": 0.68,
    "Adaptive KL, d_targ = 0.01": 0.74,
    "Adaptive KL, d_targ = 0.03": 0.71,
    "Fixed KL, β = 0.3": 0.62,
    "Fixed KL, β = 1": 0.71,
    "Fixed KL, β = 3": 0.72,
    "Fixed KL, β = 10": 0.69,
}


def _load(name: str) -> dict:
    path = DATA / name
    assert path.exists(), f"{path} is missing: run book/scripts/{name.replace('.json', '')}"
    return json.loads(path.read_text())


def _script(name: str = "ppo_table1"):
    spec = importlib.util.spec_from_file_location(name, SCRIPT.with_name(f"{name}.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_stored_data_is_small():
    total = sum(p.stat().st_size for p in DATA.glob("*.json"))
    assert total < 1_000_000, f"book/data/ppo holds {total} bytes"


def test_table1_is_complete_and_matches_the_script():
    data = _load("table1.json")
    mod = _script()
    assert data["paper"] == PAPER
    assert [r["label"] for r in data["rows"]] == [lab for lab, _, _ in mod.ROWS]
    assert len(data["seeds"]) >= 3
    for env in data["envs"]:
        assert env in data["random_return"]
        for row in data["rows"]:
            seeds = sorted(
                r["seed"] for r in data["runs"] if r["env_id"] == env and r["label"] == row["label"]
            )
            assert seeds == data["seeds"], (env, row["label"])
    assert data["base"] == mod.BASE and data["envs"] == mod.ENVS
    for r in data["runs"]:
        algo, hp = mod.row_hparams(
            r["label"], r["env_id"]
        )  # pinned, independent of training.DEFAULTS
        assert (r["algo"], r["hparams"]) == (algo, hp), (r["env_id"], r["label"])
        assert r["total_steps"] >= data["envs"][r["env_id"]]
        assert r["n_episodes"] > 0 and r["score"] == r["score"]  # not nan


def test_stored_beta_is_the_beta_used_by_each_update():
    """Chapter 5 reads ``beta`` as the β an update USED (its "median β used by an update"): the
    first adaptive β is the initial one, a fixed β never changes, the adaptive rule only halves
    or doubles, and ``beta_next`` (if stored) is the next iteration's β."""
    data = _load("table1.json")
    for r in data["runs"]:
        if r["algo"] not in ("ppo-kl", "ppo-fixed-kl"):
            continue
        beta, beta0 = r["beta"], r["hparams"]["beta"]
        assert beta[0] == beta0, (r["env_id"], r["label"], r["seed"], beta[:3])
        if r["algo"] == "ppo-fixed-kl":
            assert set(beta) == {beta0}, (r["env_id"], r["label"])
        else:
            # stored to 4 significant digits, so compare the factors to 1e-3
            factors = [b / a for a, b in zip(beta, beta[1:])]
            assert all(min(abs(f / g - 1) for g in (0.5, 1.0, 2.0)) < 1e-3 for f in factors), (
                r["env_id"],
                r["label"],
                factors,
            )
        if r.get("beta_next") is not None:
            assert r["beta_next"][:-1] == beta[1:], (r["env_id"], r["label"])


def test_ablation_has_three_code_level_details():
    data = _load("ablation.json")
    changed = {k for v in data["variants"] for k in v["hparams"]}
    assert len(changed) >= 3, changed
    assert data["variants"][0]["hparams"] == {}
    assert len(data["seeds"]) >= 3
    assert len(data["runs"]) == len(data["variants"]) * len(data["seeds"])


def test_details_are_complete_and_match_the_script():
    """The code-level details (issue 14): at least three tasks, one of them continuous control,
    at least five seeds, every (task, variant, seed) of the script exactly once, each with the
    script's pinned configuration and a finite score."""
    data = _load("details.json")
    mod = _script("ppo_details")
    assert data["tasks"] == mod.TASKS and data["base"] == mod.BASE
    assert data["continuous"] == list(mod.CONTINUOUS) and set(mod.CONTINUOUS) <= set(mod.TASKS)
    assert len(data["tasks"]) >= 3 and len(data["seeds"]) >= 5
    assert [(v["label"], v["change"], v["continuous_only"]) for v in data["variants"]] == [
        (lab, ch, c) for lab, ch, c in mod.VARIANTS
    ]
    assert data["variants"][0]["change"] == {}
    assert [(r["env_id"], r["label"], r["seed"]) for r in data["runs"]] == mod.jobs(
        len(data["seeds"])
    )
    assert set(data["random_return"]) == set(data["tasks"])
    for r in data["runs"]:
        assert r["total_steps"] >= data["tasks"][r["env_id"]], r
        assert math.isfinite(r["score"]) and math.isfinite(r["score_std"]), r
        # one stored value per iteration
        n = len(r["epochs_run"])
        assert len(r["kl"]) == len(r["entropy"]) == len(r["mean_return"]) == n, r["label"]


def test_mujoco_table1_is_complete_and_matches_the_script():
    """Table 1 on the MuJoCo tasks (chapter 7): every job of the script, in its order, with its
    budget, configuration and seeds, and the library versions the live slice compares with."""
    data = _load("table1_mujoco.json")
    mod = _script("ppo_table1_mujoco")
    assert (data["budget"], data["base"], data["paper"]) == (mod.BUDGET, mod.BASE, PAPER)
    assert data["tasks"] == list(mod.TASKS) and len(data["tasks"]) == 7
    assert data["seeds"] == list(mod.SEEDS) and len(data["seeds"]) >= 3
    assert [r["label"] for r in data["rows"]] == [lab for lab, _, _ in mod.ROWS]
    keys = [(r["env_id"], r["label"], r["seed"]) for r in data["runs"]]
    assert keys == mod.jobs(), "runs missing or out of the script's order"
    assert data["complete"] is True
    assert set(data["versions"]) == {"torch", "mujoco", "gymnasium"}
    for r in data["runs"]:
        assert r["total_steps"] >= mod.BUDGET and math.isfinite(r["score"]), r


def test_live_slice_reproduces_the_stored_run_exactly():
    data = _load("table1.json")
    mod = _script()
    spec = data["slice"]
    assert spec == mod.SLICE
    stored = next(
        r
        for r in data["runs"]
        if r["env_id"] == spec["env_id"]
        and r["label"] == spec["label"]
        and r["seed"] == spec["seed"]
    )["slice"]
    live = json.loads(json.dumps(mod.slice_run()))  # the same float round trip as the stored file
    assert len(live) == len(stored) == spec["iterations"]
    for i, (a, b) in enumerate(zip(live, stored)):
        assert a == b, f"iteration {i} differs: {a} != {b}"


@pytest.mark.parametrize(
    "name", ["ppo_table1.py", "ppo_ablation.py", "ppo_details.py", "ppo_table1_mujoco.py"]
)
def test_scripts_are_importable(name):
    spec = importlib.util.spec_from_file_location(name[:-3], ROOT / "book" / "scripts" / name)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert callable(mod.main)
