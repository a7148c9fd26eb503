"""The trust-region δ figure: the closed-form paths are pgcore's updates, the tables and the guide hold."""

import math

import numpy as np
import pytest
import torch

import pgcore as pg
from pgcore.plots import simplex_xy
from pgcore.widgets.trust_region import (
    DEFAULT_START,
    DELTAS,
    METHODS,
    compute,
    kl_ball,
    paths,
    run_paths,
    trust_region_explorable,
)


@pytest.fixture(scope="module")
def fig():
    return trust_region_explorable()


def test_grid_is_log_spaced_with_25_values_and_an_iteration_player(fig):
    delta, k = fig.sliders
    assert delta.scale == "log" and len(delta.values) >= 25
    np.testing.assert_allclose(
        np.diff(np.log(delta.values)), math.log(DELTAS[1] / DELTAS[0]), rtol=1e-9
    )
    assert k.scale == "index" and k.play and list(k.values) == list(range(fig.fixed["iters"] + 1))


def test_sweep_every_grid_point(fig):
    assert fig.sweep() == len(DELTAS) * (fig.fixed["iters"] + 1)


@pytest.mark.parametrize("delta", [0.002, 0.0123, 0.05, 0.3, 1.0])
def test_closed_form_paths_are_pgcores_updates(delta):
    fast, ref = paths(delta, iters=6), run_paths(delta, iters=6)
    for m in METHODS:
        # the runs agree until a policy reaches a vertex in floating point (large δ, late steps)
        ok = ref[m]["probs"].min(1) > 1e-9
        n = int(np.argmin(ok)) if not ok.all() else len(ok)
        np.testing.assert_allclose(fast[m]["probs"][:n], ref[m]["probs"][:n], atol=1e-10)
        np.testing.assert_allclose(fast[m]["J"][:n], ref[m]["J"][:n], atol=1e-10)
        np.testing.assert_allclose(
            fast[m]["kl"][: n - 1], ref[m]["kl"][: n - 1], rtol=1e-8, atol=1e-14
        )
    bt = [i["backtracks"] for i in ref["TRPO"]["info"]]
    n = int(np.argmin(ref["TRPO"]["probs"].min(1) > 1e-9)) or 7
    assert list(fast["TRPO"]["backtracks"][: n - 1]) == bt[: n - 1]


@pytest.mark.parametrize("delta", [0.005, 0.05, 0.5])
def test_paths_follow_their_update_rules(delta):
    P = paths(delta, iters=4)
    r = np.array([1.0, 0.6, 0.0])
    for m in METHODS:
        np.testing.assert_allclose(P[m]["probs"].sum(1), 1.0, atol=1e-12)
        np.testing.assert_allclose(P[m]["J"], P[m]["probs"] @ r, atol=1e-12)
    assert np.all(P["TRPO"]["kl"] <= delta * (1 + 1e-12))
    # the first NPG step is the multiplicative-weights update with η = sqrt(2δ / E[A²])
    from pgcore.examples import tabular_npg_policy

    mdp = pg.three_armed_bandit()
    pi0 = torch.tensor([DEFAULT_START], dtype=torch.float64)
    np.testing.assert_allclose(
        P["NPG"]["probs"][1], tabular_npg_policy(mdp, pi0, max_kl=delta)[0].numpy(), atol=1e-10
    )
    np.testing.assert_allclose(P["vanilla PG"]["probs"], paths(0.5, iters=4)["vanilla PG"]["probs"])


@pytest.mark.parametrize("delta", [0.002, 0.05, 1.0])
def test_kl_ball_is_the_level_set(delta):
    c = np.array(DEFAULT_START)
    pts = kl_ball(c, delta)
    kl = pg.kl_categorical(torch.as_tensor(c).expand(len(pts), 3), torch.as_tensor(pts)).numpy()
    np.testing.assert_allclose(kl, delta, rtol=1e-6)
    assert np.all(pts > 0) and np.allclose(pts.sum(1), 1)


def test_off_grid_compute_is_finite_and_fast(fig):
    rng = np.random.default_rng(0)
    for _ in range(5):
        values = fig.random_values(rng)
        assert not any(math.isclose(values["delta"], d) for d in DELTAS)
        for table in fig.tables(**values).values():
            for col in table.values():
                if col.dtype.kind == "f":
                    assert np.all(np.isfinite(col) | np.isnan(col))
    timing = fig.time_updates(10)
    print(
        f"trust-region figure: update median {timing['median'] * 1e3:.0f} ms, worst {timing['worst'] * 1e3:.0f} ms"
    )
    assert timing["median"] < 1.0  # loose sanity bound; the book reports the measured time


def test_tables_show_the_chosen_iteration():
    t = compute(0.05, 2)
    assert set(t["path"]["k"]) == {0, 1, 2} and list(t["now"]["k"]) == [2, 2, 2]
    trpo2 = paths(0.05)["TRPO"]["probs"][2]
    ball = np.c_[t["ballk"]["x"], t["ballk"]["y"]]
    assert np.linalg.norm(ball.mean(0) - simplex_xy(trpo2)) < 0.1
    with pytest.raises(ValueError):
        compute(0.05, 7)
    with pytest.raises(ValueError):
        paths(0.0)
    with pytest.raises(ValueError):
        paths(float("nan"))


def test_readout_and_alt_report_the_numbers(fig):
    text = fig.readout_text({"delta": 0.05, "k": 3}, fig.tables(delta=0.05, k=3))
    P = paths(0.05)
    assert "δ = 0.05" in text and f"{P['NPG']['J'][3]:.3f}" in text and "step 3" in text
    assert "KL ball" in fig.alt and "simplex" in fig.alt
    start = fig.readout_text({"delta": 0.05, "k": 0}, fig.tables(delta=0.05, k=0))
    assert "π₀" in start


def test_the_guide_holds_on_the_grid(fig):
    ends = {}
    for values, tables in fig.grid_tables():
        s = tables["steps"]
        trpo = np.asarray(s["kl"])[np.asarray(s["method"]) == "TRPO"]
        assert np.all(trpo <= values["delta"] * (1 + 1e-12))
        if values["k"] == fig.fixed["iters"]:
            ends[values["delta"]] = dict(zip(tables["now"]["method"], tables["now"]["J"]))
    npg = [ends[d]["NPG"] for d in DELTAS]
    assert np.all(np.diff(npg) >= -1e-12)
