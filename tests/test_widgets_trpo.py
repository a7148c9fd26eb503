"""Tests of pgcore.widgets.trpo: the TRPO chapter's line-search helpers and its figures."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import pgcore
from pgcore.widgets import trpo as tw


def _np_mlp_probs(policy: tw.OneHotMLPPolicy) -> np.ndarray:
    """softmax(W2 tanh(W1 e_s + b1) + b2) for every state, in NumPy."""
    lin = [m for m in policy.net if isinstance(m, torch.nn.Linear)]
    h = np.eye(policy.n_states)
    for k, layer in enumerate(lin):
        h = h @ layer.weight.detach().numpy().T + layer.bias.detach().numpy()
        if k < len(lin) - 1:
            h = np.tanh(h)
    e = np.exp(h - h.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def _np_mean_kl(d, p, q):
    return float(np.sum(d * np.sum(p * (np.log(p) - np.log(q)), axis=1)))


def test_one_hot_mlp_matches_numpy_and_is_seeded():
    pol = tw.OneHotMLPPolicy(5, 3, hidden=(16,), seed=3, out_gain=2.0)
    probs = tw.policy_probs(pol, 5).numpy()
    np.testing.assert_allclose(probs, _np_mlp_probs(pol), rtol=0, atol=1e-13)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-14)
    same = tw.OneHotMLPPolicy(5, 3, hidden=(16,), seed=3, out_gain=2.0)
    other = tw.OneHotMLPPolicy(5, 3, hidden=(16,), seed=4, out_gain=2.0)
    assert torch.equal(tw.policy_probs(same, 5), tw.policy_probs(pol, 5))
    assert not torch.equal(tw.policy_probs(other, 5), tw.policy_probs(pol, 5))
    # building a policy does not disturb the global torch RNG
    torch.manual_seed(0)
    a = torch.rand(3)
    torch.manual_seed(0)
    tw.OneHotMLPPolicy(5, 3, seed=9)
    assert torch.equal(torch.rand(3), a)


def test_line_search_profile_against_numpy():
    mdp = pgcore.random_mdp(5, 3, gamma=0.9, seed=0)
    pol = tw.OneHotMLPPolicy(5, 3, seed=1)
    before = copy.deepcopy(pol.state_dict())
    fr = [0.0, 0.25, 0.5, 1.0]
    prof = tw.line_search_profile(mdp, pol, 0.3, fr)
    # the policy is left unchanged
    for k, v in pol.state_dict().items():
        assert torch.equal(v, before[k])
    assert prof["kl"][0] == 0.0 and prof["gain"][0] == pytest.approx(0.0, abs=1e-15)
    # the full step is the natural-gradient step: its KL matches natural_gradient_step's
    assert prof["kl"][-1] == pytest.approx(prof["full_step_kl"], rel=1e-10)
    np.testing.assert_allclose(prof["model_kl"], 0.3 * np.array(fr) ** 2)
    # recompute the full step's KL and J independently
    work = copy.deepcopy(pol)
    pgcore.natural_gradient_step(work, pgcore.exact_batch(mdp, pol), 0.3)
    p_old, p_new = _np_mlp_probs(pol), _np_mlp_probs(work)
    d_old = mdp.occupancy(torch.from_numpy(p_old)).numpy()
    assert prof["kl"][-1] == pytest.approx(_np_mean_kl(d_old, p_old, p_new), rel=1e-9)
    J = lambda p: mdp.performance(torch.from_numpy(p)).item()
    assert prof["dJ"][-1] == pytest.approx(J(p_new) - J(p_old), rel=1e-9)
    # surrogate gain at the full step = Σ d(s) Σ_a (π_new − π_old) A_old
    A = mdp.advantages(torch.from_numpy(p_old)).numpy()
    assert prof["gain"][-1] == pytest.approx(
        float(np.sum(d_old[:, None] * (p_new - p_old) * A)), rel=1e-8
    )


def test_line_search_profile_agrees_with_trpo_step_decision():
    mdp = pgcore.random_mdp(5, 3, gamma=0.9, seed=0)
    start = tw.widget_start(6)  # a peaked policy whose full step fails at large δ
    fr = 0.5 ** np.arange(10)
    prof = tw.line_search_profile(mdp, start, 10.0, fr)
    info = prof["trpo"]
    ok = (prof["kl"] <= 10.0) & (prof["gain"] > 0)
    assert info["accepted"] == bool(ok.any())
    if info["accepted"]:
        assert info["backtracks"] == int(np.argmax(ok))
        assert info["backtracks"] >= 1  # this case needs the line search


def test_backtrack_sweep_shapes_and_guarantees():
    mdp = pgcore.random_mdp(5, 3, gamma=0.9, seed=0)
    deltas = [0.01, 3.0]
    sw = tw.backtrack_sweep(
        mdp, lambda s: tw.OneHotMLPPolicy(5, 3, seed=s), deltas, seeds=[0, 1], iters=3
    )
    for key in (
        "backtracks",
        "accepted",
        "attempted",
        "kl_ratio",
        "kl",
        "J",
        "dJ",
        "dJ_full",
        "worst_case",
    ):
        assert sw[key].shape == (2, 2, 3), key
    acc = sw["accepted"]
    # accepted steps respect the trust region and Achiam et al.'s worst case
    kl_ok = sw["kl"] <= np.array(deltas)[:, None, None] + 1e-15
    assert kl_ok[acc].all()
    assert (sw["dJ"][acc] >= sw["worst_case"][acc] - 1e-12).all()
    # J is a running record: J[t] − J[t−1] = dJ[t]
    np.testing.assert_allclose(np.diff(sw["J"], axis=2), sw["dJ"][:, :, 1:], atol=1e-12)
    # rejected steps change nothing
    assert (sw["dJ"][~acc] == 0).all()


def test_backtrack_sweep_reuses_the_full_step_only_when_it_is_the_accepted_one():
    """When the line search accepts the full step, the sweep reports its measurements as the
    full natural step's: they must equal what natural_gradient_step measures on a copy."""
    mdp = pgcore.random_mdp(5, 3, gamma=0.9, seed=0)
    make = lambda s: tw.OneHotMLPPolicy(5, 3, seed=s)
    deltas = [0.01, 1.0, 10.0]
    sw = tw.backtrack_sweep(mdp, make, deltas, seeds=[0], iters=3)
    for i, delta in enumerate(deltas):
        pol = make(0)
        for t in range(3):
            batch = pgcore.exact_batch(mdp, pol)
            J_old = mdp.performance(tw.policy_probs(pol, 5)).item()
            work = copy.deepcopy(pol)
            ng = pgcore.natural_gradient_step(work, batch, delta)
            J_full = mdp.performance(tw.policy_probs(work, 5)).item()
            pgcore.trpo_step(pol, batch, delta)
            assert sw["attempted"][i, 0, t] == ng["step_taken"]
            assert sw["kl_ratio"][i, 0, t] == ng["kl"] / delta
            assert sw["full_gain_ok"][i, 0, t] == (ng["surrogate_gain"] > 0)
            assert sw["dJ_full"][i, 0, t] == J_full - J_old
    assert (sw["backtracks"] == 0).any() and (sw["backtracks"] > 0).any()  # both branches ran


# -- the line-search figure ----------------------------------------------------------------
@pytest.fixture(scope="module")
def line_search():
    fig = tw.line_search_explorable()
    assert fig.sweep() == len(tw.WIDGET_DELTAS) * len(tw.WIDGET_ITERS)
    return fig


def _verdicts(fig):
    return {
        (v["delta"], v["n"]): {k: c[0] for k, c in t["verdict"].items()}
        for v, t in fig.grid_tables()
    }


def test_line_search_grid_is_fine_and_the_iteration_slider_plays(line_search):
    delta, n = line_search.sliders
    assert delta.scale == "log" and len(delta.values) >= 25
    assert delta.values[0] == 0.01 and delta.values[-1] == 10.0
    ratios = np.diff(np.log(delta.values))
    np.testing.assert_allclose(ratios, ratios[0], rtol=1e-6)
    assert n.scale == "index" and n.play and list(n.values) == list(range(7))


@pytest.mark.parametrize("n", [0, 1, 5, 6])
@pytest.mark.parametrize("delta", [0.0123, 0.41, 7.7])  # off the grid
def test_line_search_tables_match_pgcores_own_functions(delta, n):
    """The vectorised curves equal line_search_profile's (update_diagnostics, performance), and
    the accepted trial is trpo_step's, at values between grid points."""
    t = tw.widget_tables(delta, n)
    prof = tw.line_search_profile(tw._widget_mdp(), tw.widget_start(n), delta, tw.WIDGET_FRACTIONS)
    c = t["curve"]
    np.testing.assert_allclose(
        c["kl_ratio"], np.minimum(prof["kl"] / delta, tw.WIDGET_KL_CAP), rtol=1e-9, atol=1e-12
    )
    np.testing.assert_allclose(c["gain"], prof["gain"] / (1 - 0.9), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(c["dJ"], prof["dJ"], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(c["model"], prof["model_kl"] / delta, rtol=1e-12)
    v = {k: col[0] for k, col in t["verdict"].items()}
    info = prof["trpo"]
    assert bool(v["accepted"]) == info["accepted"]
    assert v["backtracks"] == info["backtracks"]
    assert v["step_fraction"] == pytest.approx(info["step_fraction"], rel=1e-12)
    assert v["dJ_acc"] == pytest.approx(prof["dJ_trpo"], rel=1e-9, abs=1e-12)
    for table in t.values():
        for col in table.values():
            col = np.asarray(col)
            if col.dtype.kind == "f":
                assert not np.isinf(col).any()
    # the trials drawn are c^j up to the accepted one, which is the only "accepted" marker
    tr = t["trials"]
    np.testing.assert_allclose(tr["xi"], tw.WIDGET_C ** np.asarray(tr["j"]))
    if info["accepted"]:
        assert list(tr["outcome"]).count("accepted") == 1 and tr["outcome"][-1] == "accepted"


def test_line_search_decisions_equal_trpo_step_over_the_whole_grid(line_search):
    mdp = tw._widget_mdp()
    for (delta, n), v in _verdicts(line_search).items():
        pol = copy.deepcopy(tw.widget_start(n))
        info = pgcore.trpo_step(pol, pgcore.exact_batch(mdp, pol), delta)
        assert (bool(v["accepted"]), int(v["backtracks"])) == (
            info["accepted"],
            info["backtracks"],
        ), (
            delta,
            n,
        )


def test_line_search_update_is_fast_and_readout_reports_numbers(line_search, record_property):
    times = line_search.time_updates(12)
    record_property("trpo_line_search_update_median_s", times["median"])
    record_property("trpo_line_search_update_worst_s", times["worst"])
    print(
        f"line-search figure: time_update median {times['median']:.4f} s, worst {times['worst']:.4f} s"
    )
    assert times["median"] < 1.0
    values = {"delta": 3.3, "n": 6}
    text = line_search.readout_text(values, line_search.tables(**values))
    assert text.startswith("δ = 3.3, policy after 6 TRPO iterations")
    assert "accepts ξ = 0.25 after 2 backtracks" in text
    assert "ξ²" in line_search.alt and "trial points" in line_search.alt


def test_line_search_guide_statements_hold_over_the_grid(line_search):
    """The chapter's "try this" bullets: play at the default δ; the peaked policy at large δ;
    the smallest δ with the policy after one iteration."""
    ver = _verdicts(line_search)
    deltas, iters = tw.WIDGET_DELTAS, tw.WIDGET_ITERS
    d0, last = line_search.defaults()["delta"], max(iters)
    assert all(ver[d0, n]["accepted"] and ver[d0, n]["backtracks"] == 0 for n in iters[:-1])
    v = ver[d0, last]
    assert v["gain_full"] < 0 and v["dJ_full"] < 0 and v["backtracks"] > 0 and v["dJ_acc"] > 0
    falls = np.array(
        [ver[d, last]["gain_full"] < 0 and ver[d, last]["dJ_full"] < 0 for d in deltas]
    )
    first = int(np.argmax(falls))
    assert falls.any() and falls[first:].all()
    for d in deltas[first:]:
        v = ver[d, last]
        assert v["accepted"] and v["backtracks"] > 0 and v["gain_acc"] > 0 and v["dJ_acc"] > 0
    hair = ver[deltas[0], 1]
    assert (
        1 < hair["kl_full"] < 1.01
        and hair["backtracks"] == 1
        and 0 < hair["dJ_acc"] < hair["dJ_full"]
    )


def test_line_search_display_has_slider_values_and_first_paint(line_search):
    html = line_search.display().data
    assert html.count('type="range"') == 2 and "aria-valuetext=" in html
    assert html.count("<svg") == 2 and "pg-play" in html


# -- the static figures ----------------------------------------------------------------------
def test_sweep_figure_tables_are_the_sweeps_means():
    mdp = pgcore.random_mdp(5, 3, gamma=0.9, seed=0)
    sweeps = {
        "one-hot MLP": tw.backtrack_sweep(
            mdp, lambda s: tw.OneHotMLPPolicy(5, 3, seed=s), [0.01, 10.0], seeds=[0, 1], iters=2
        )
    }
    fig = tw.sweep_figure(sweeps, 1e6)
    assert fig.sweep() == 1
    t = fig.tables()["sweep"]
    sw = sweeps["one-hot MLP"]
    for i in range(2):
        att = sw["attempted"][i]
        assert t["backtracks"][i] == pytest.approx(sw["backtracks"][i][att].mean())
        assert t["rejected"][i] == pytest.approx((~sw["accepted"][i][att]).mean())
    assert np.all(t["kl_lo"] <= t["kl_med"]) and np.all(t["kl_med"] <= t["kl_hi"])
    assert "backtracks per iteration" in fig.readout_text({}, fig.tables())


def test_stored_run_figures_show_every_accepted_step():
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "book" / "scripts" / "trpo_runs.py"
    spec = importlib.util.spec_from_file_location("trpo_runs", script)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    runs = {e: mod.load_runs(e) for e in ("CartPole-v1", "Pendulum-v1")}
    kl = tw.kl_figure(runs)
    t = kl.tables()["kl"]
    assert len(t["ratio"]) == sum(int(d["accepted"].sum()) for d, _ in runs.values())
    assert t["ratio"].max() <= 1.0
    bt = np.asarray(t["backtracks"])
    assert set(np.asarray(t["line search"])[bt == 0]) == {"accepted at once"}
    curves = tw.curves_figure(runs, {"CartPole-v1": 475.0, "Pendulum-v1": -200.0}, 20)
    c = curves.tables()
    n_points = sum(d["mean_return"].size for d, _ in runs.values())
    assert len(c["seeds"]["ret"]) == n_points
    assert np.all(c["band"]["lo"] <= c["band"]["mean"]) and np.all(
        c["band"]["mean"] <= c["band"]["hi"]
    )
    assert "CartPole-v1" in curves.alt and "Final mean return" in curves.readout_text({}, c)


def test_cost_figure_reports_every_part_and_cg_iteration():
    parts = ["a", "b"]
    profiles = {
        "initial policy": {"times": {"a": 1e-3, "b": 2e-2}, "residuals": [0.5, 1e-3, 1e-6]},
        "trained policy": {"times": {"a": 2e-3, "b": 3e-2}, "residuals": [0.7, 0.2, 0.1]},
    }
    fig = tw.cost_figure(profiles, parts, 3, 0.01)
    t = fig.tables()
    np.testing.assert_allclose(t["times"]["ms"], [1.0, 20.0, 2.0, 30.0])
    assert list(t["cg"]["iteration"]) == [1, 2, 3, 1, 2, 3]
    assert "1.0e-06" in fig.readout_text({}, t) and "1.0e-01" in fig.readout_text({}, t)
