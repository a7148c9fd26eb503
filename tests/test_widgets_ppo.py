"""Chapter 6 figures (pgcore.widgets.ppo): full grid sweeps, off-grid updates, read-outs and alt
text, the "try this" statements over the grids, the NumPy runs against pgcore's ppo_update, and the
helpers against independent NumPy computations."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pgcore import AdaptiveKL, exact_batch, ppo_update
from pgcore.widgets import DataFigure, Explorable
from pgcore.widgets import ppo as W


@pytest.fixture(scope="module")
def clip_fig() -> Explorable:
    return W.clip_explorable()


@pytest.fixture(scope="module")
def beta_fig() -> Explorable:
    return W.beta_explorable()


# -- the grids, off-grid values, timing ----------------------------------------------------------
def test_grids_are_fine_and_even():
    assert len(W.CLIP_GRID) >= 25 and len(W.D_TARG_GRID) >= 25 and len(W.BETA_GRID) >= 25
    assert np.allclose(np.diff(W.CLIP_GRID), W.CLIP_GRID[1] - W.CLIP_GRID[0])
    for grid in (W.D_TARG_GRID, W.BETA_GRID):
        assert np.allclose(np.diff(np.log(grid)), np.log(grid[1] / grid[0]))
    # the chapter's quoted settings lie on the grids
    for e in W.CLIP_VALUES:
        assert min(abs(g - e) for g in W.CLIP_GRID) < 1e-12
    assert 0.01 in W.D_TARG_GRID and 1.0 in W.BETA_GRID and 10.0 in W.BETA_GRID
    assert W.EPOCH_VALUES == tuple(range(31))


@pytest.mark.parametrize("name", ["clip", "beta"])
def test_sweep_covers_the_grid(name, clip_fig, beta_fig):
    fig = {"clip": clip_fig, "beta": beta_fig}[name]
    n = fig.sweep()
    assert n == np.prod([len(s.values) for s in fig.sliders])
    epochs = [s for s in fig.sliders if s.name == "epochs"]
    if epochs:
        assert epochs[0].play and epochs[0].scale == "index"


@pytest.mark.parametrize("name", ["clip", "beta"])
def test_off_grid_tables_are_finite_and_timed(name, clip_fig, beta_fig, record_property):
    fig = {"clip": clip_fig, "beta": beta_fig}[name]
    rng = np.random.default_rng(1)
    for _ in range(5):
        values = fig.random_values(rng)
        for tname, table in fig.tables(**values).items():
            for col, v in table.items():
                v = np.asarray(v)
                if v.dtype.kind == "f":
                    ok = np.isfinite(v) | np.isnan(v)
                    assert ok.all(), (tname, col)
                    # a gap (NaN) only at iteration 0 of the penalty runs
                    assert np.isnan(v).sum() <= 1, (tname, col)
    times = fig.time_updates(n=10, seed=2)
    record_property("update_median_s", times["median"])
    record_property("update_worst_s", times["worst"])
    print(f"{fig.title}: update median {times['median']:.3f} s, worst {times['worst']:.3f} s")
    assert times["median"] < 1.0  # a loose sanity bound (the budget, 0.1 s, is in the report)


def test_clip_compute_between_grid_points_interpolates():
    """An off-grid ε gives a run between its grid neighbours' (KL after 30 epochs grows with ε)."""
    lo, hi = W.CLIP_GRID[9], W.CLIP_GRID[10]
    mid = 0.5 * (lo + hi)
    kl = [W.clip_compute(e, 30)["now"]["kl"][0] for e in (lo, mid, hi)]
    assert kl[0] < kl[1] < kl[2]
    t = W.clip_compute(mid, 12.0)
    assert t["now"]["k"] == [12]
    with pytest.raises(ValueError):
        W.clip_compute(0.2, 31)


def test_readouts_and_alt_text_report_the_numbers(clip_fig, beta_fig):
    t = clip_fig.tables(clip=0.2, epochs=10)
    text = clip_fig.readout_text({"clip": 0.2, "epochs": 10}, t)
    run = W.clip_run(0.2)
    assert f"{run['max_ratio'][10]:.3f}" in text and f"{run['min_ratio'][10]:.3f}" in text
    assert f"{run['kl'][10]:.3g}" in text and "K = 10" in text and "ε = 0.2" in text
    assert "18" in clip_fig.alt and "L^CLIP" in clip_fig.alt
    t = beta_fig.tables(d_targ=0.01, beta=10.0)
    text = beta_fig.readout_text({"d_targ": 0.01, "beta": 10.0}, t)
    ad, fx = W.kl_penalty_run("adaptive", 0.01), W.kl_penalty_run("fixed", 10.0)
    assert f"{ad['beta'].max():.3g}" in text and f"{fx['J'][5]:.3f}" in text
    assert f"{ad['J_star']:.3f}" in text
    assert "d_targ/1.5" in beta_fig.alt and "log scale" in beta_fig.alt


def test_display_is_html_with_accessible_sliders(clip_fig):
    html = clip_fig.html()
    assert html.count('type="range"') == 2
    assert 'aria-valuetext="0.2"' in html and 'aria-valuetext="10"' in html
    assert "pg-play" in html  # the player over K
    assert "<svg" in html


# -- the "try this" statements of the chapter, over the grids --------------------------------------
def _clip_by_eps(fig):
    by_eps, pairs = {}, {}
    for values, tables in fig.grid_tables():
        by_eps.setdefault(values["clip"], (tables["trace"], tables["reference"]))
        pairs[values["clip"], values["epochs"]] = tables["pairs"]
    return by_eps, pairs


def test_clip_guide_ratios_leave_the_band_and_keep_climbing(clip_fig):
    by_eps, pairs = _clip_by_eps(clip_fig)
    for e, (trace, _ref) in by_eps.items():
        out = trace["r_max"] > 1 + e
        first = int(np.argmax(out))
        assert out.any() and first <= 6 and np.all(out[first:]), e
        assert np.all(np.diff(trace["r_max"][first:]) > 0), e
        # flat pairs mostly keep moving outwards
        moved = flat = 0
        for k in range(30):
            now, nxt = pairs[e, k], pairs[e, k + 1]
            is_flat = now["gradient"] == "flat: gradient zero"
            further = np.where(now["case"] == "A > 0", nxt["r"] > now["r"], nxt["r"] < now["r"])
            flat += is_flat.sum()
            moved += (is_flat & further).sum()
        assert flat > 0 and moved / flat >= 0.9, e


def test_clip_guide_kl_follows_no_clipping_until_a_pair_is_flat(clip_fig):
    by_eps, pairs = _clip_by_eps(clip_fig)
    kl_end = {}
    for e, (trace, ref) in by_eps.items():
        first_flat = next(
            k for k in range(31) if (pairs[e, k]["gradient"] == "flat: gradient zero").any()
        )
        np.testing.assert_allclose(
            trace["kl"][: first_flat + 1], ref["kl"][: first_flat + 1], rtol=1e-9, atol=1e-15
        )
        assert np.all(trace["kl"][first_flat + 1 :] < ref["kl"][first_flat + 1 :])
        assert np.all(np.diff(trace["kl"]) > 0)
        kl_end[e] = trace["kl"][30]
    eps = sorted(kl_end)
    assert all(kl_end[a] < kl_end[b] for a, b in zip(eps, eps[1:]))


def test_beta_guide_statements(beta_fig):
    ad_by, fx_by = {}, {}
    for values, tables in beta_fig.grid_tables():
        ad_by.setdefault(values["d_targ"], tables["adaptive"])
        fx_by.setdefault(values["beta"], tables["fixed"])
    d_grid, b_grid = sorted(ad_by), sorted(fx_by)
    used = {d: ad_by[d]["beta"][1:] for d in d_grid}
    max_beta = [used[d].max() for d in d_grid]
    assert all(a >= b for a, b in zip(max_beta, max_beta[1:])) and max_beta[0] > max_beta[-1]
    flips = [
        d for d in d_grid if len(set(used[d][-10:])) == 2 and np.all(np.diff(used[d][-10:]) != 0)
    ]
    settles = [d for d in d_grid if len(set(used[d][-10:])) == 1]
    assert flips and settles
    kl_max = [np.nanmax(fx_by[b]["kl"]) for b in b_grid]
    assert np.all(np.diff(kl_max) < 0)
    J5 = [fx_by[b]["J"][5] for b in b_grid if b <= 10.0]
    assert np.all(np.diff(J5) < 0)


# -- the NumPy runs are pgcore's ppo_update -----------------------------------------------------------
@pytest.mark.parametrize("clip", [0.1, 0.2, 0.37])
def test_fast_clip_run_matches_ppo_update(clip):
    slow, fast = W.clip_run(clip), W.fast_clip_run(clip)
    np.testing.assert_allclose(
        fast["ratios"].reshape(len(slow["kl"]), -1), slow["ratios"], atol=1e-9
    )
    np.testing.assert_allclose(fast["kl"], slow["kl"], atol=1e-12)
    np.testing.assert_allclose(fast["clipfrac"], slow["clipfrac"], atol=1e-12)
    np.testing.assert_allclose(fast["weights"].reshape(-1), slow["weights"], atol=1e-14)


def test_fast_unclipped_run_matches_ppo_update():
    slow, fast = W.clip_run(0.2, objective="none"), W.fast_clip_run(0.2, objective="none")
    np.testing.assert_allclose(
        fast["ratios"].reshape(len(slow["kl"]), -1), slow["ratios"], atol=1e-9
    )


@pytest.mark.parametrize(
    "mode,value", [("adaptive", 0.01), ("adaptive", 0.003), ("fixed", 10.0), ("fixed", 0.37)]
)
def test_fast_penalty_run_matches_ppo_update(mode, value):
    slow, fast = W.kl_penalty_run(mode, value), W.fast_kl_penalty_run(mode, value)
    np.testing.assert_array_equal(fast["beta"], slow["beta"])
    np.testing.assert_array_equal(fast["beta_next"], slow["beta_next"])
    np.testing.assert_allclose(fast["kl"], slow["kl"], atol=1e-12)
    np.testing.assert_allclose(fast["J"], slow["J"], atol=1e-10)
    assert fast["J_star"] == pytest.approx(slow["J_star"], abs=1e-10)


# -- the static figures -----------------------------------------------------------------------------
def test_static_figures_render():
    fig = W.lclip_figure(0.2)
    assert isinstance(fig, DataFigure) and fig.sweep() == 1
    curve = fig.tables()["curve"]
    pos = curve["case"] == "A > 0"
    assert np.max(curve["term"][pos]) == pytest.approx(1.2)
    assert "<svg" in fig.html()
    k = np.arange(4)
    cp = W.cartpole_kl_figure(
        {
            "ε = 0.2": {"max_ratio": [1, 1.1, 1.3, 1.6], "kl": [0, 1e-3, 3e-3, 9e-3]},
            "no clipping": {"max_ratio": [1, 1.2, 1.8, 3.0], "kl": [0, 2e-3, 9e-3, 3e-2]},
        },
        {"ε = 0.2": 0.2, "no clipping": None},
    )
    assert cp.tables()["clip"]["level"].tolist() == [1.2]
    ab = W.ablation_figure(
        {"base": (k, k * 10.0), "other": (k, k * 9.0)},
        {"base": [100, 120, 90], "other": [80, 130, 95]},
        20,
    )
    assert ab.tables()["means"]["score"].tolist() == pytest.approx([310 / 3, 305 / 3])
    t1 = W.table1_figure(
        {"a": {"ours": 0.5, "paper": 0.7, "lo": 0.2, "hi": 0.8}},
        {"a": (k, np.array([np.nan, 1e-3, 2e-3, 3e-3]))},
        "CartPole-v1",
    )
    assert t1.sweep() == 1
    spec = json.dumps(t1.payload())
    assert "lowest seed" in spec and "per-seed range" in spec
    t1i = W.table1_figure(
        {"a": {"ours": 0.5, "paper": 0.7, "lo": 0.4, "hi": 0.6}},
        {"a": (k, np.array([np.nan, 1e-3, 2e-3, 3e-3]))},
        "Hopper-v5",
        spread="interval",
        title="Table 1 on MuJoCo",
    )
    spec = json.dumps(t1i.payload())
    assert (
        "95 % interval, low" in spec and "lowest seed" not in spec and "Table 1 on MuJoCo" in spec
    )
    with pytest.raises(ValueError, match="spread must be"):
        W.table1_figure({}, {}, "Hopper-v5", spread="range")
    taus = np.linspace(0, 1, 5)
    pf = W.profile_figure(
        taus,
        {
            "a": {
                "frac": [1, 0.8, 0.5, 0.2, 0],
                "lo": [1, 0.6, 0.3, 0, 0],
                "hi": [1, 1, 0.7, 0.4, 0],
            },
            "b": {
                "frac": [1, 1, 0.9, 0.6, 0.1],
                "lo": [1, 0.9, 0.7, 0.4, 0],
                "hi": [1, 1, 1, 0.8, 0.3],
            },
        },
    )
    tab = pf.tables()["profile"]
    assert (
        tab["setting"].tolist() == ["a"] * 5 + ["b"] * 5
        and tab["tau"].tolist()[5:] == taus.tolist()
    )
    assert "fraction of runs" in pf.alt and "<svg" in pf.html()
    with pytest.raises(ValueError, match="increasing"):
        W.profile_figure([0, 0], {"a": {"frac": [1, 1], "lo": [1, 1], "hi": [1, 1]}})
    with pytest.raises(ValueError, match=r"profiles\['a'\]\['lo'\]"):
        W.profile_figure(taus, {"a": {"frac": [1] * 5, "lo": [1] * 4, "hi": [1] * 5}})
    with pytest.raises(ValueError, match="1 to"):
        W.profile_figure(taus, {})


# -- helpers against independent computations ----------------------------------------------------------
def _clip_term_numpy(r, A, eps):
    """Piecewise form of one L^CLIP term, written independently of np.minimum/np.clip."""
    out = []
    for x in np.atleast_1d(r):
        if A >= 0:
            out.append((1 + eps) * A if x > 1 + eps else x * A)
        else:
            out.append((1 - eps) * A if x < 1 - eps else x * A)
    return np.array(out)


@pytest.mark.parametrize("A", [2.0, -0.5])
@pytest.mark.parametrize("eps", [0.1, 0.3])
def test_clip_term_matches_piecewise(A, eps):
    r = np.linspace(0, 2.5, 251)
    np.testing.assert_allclose(W.clip_term(r, A, eps), _clip_term_numpy(r, A, eps), atol=1e-12)


def _numpy_mean_kl(mdp, p_old, p_new):
    p_old, p_new = np.asarray(p_old), np.asarray(p_new)
    P = mdp.P.numpy()
    S = p_old.shape[0]
    P_pi = np.einsum("sa,sat->st", p_old, P)
    d = np.linalg.solve(np.eye(S) - mdp.gamma * P_pi.T, (1 - mdp.gamma) * mdp.mu0.numpy())
    return float(d @ (p_old * np.log(p_old / p_new)).sum(-1))


def test_clip_run_is_ppo_update_with_K_epochs():
    K = 10
    run = W.clip_run(0.2)
    mdp, policy = W.exact_problem()
    p_old = policy.probs().detach().numpy()
    batch = exact_batch(mdp, policy)
    ppo_update(
        policy,
        batch,
        objective="clip",
        clip=0.2,
        epochs=K,
        lr=W.TABULAR_LR,
        normalize_advantages=True,
    )
    p_new = policy.probs().detach().numpy()
    r = p_new.reshape(-1) / p_old.reshape(-1)
    np.testing.assert_allclose(run["ratios"][K], r, rtol=1e-10)
    assert run["kl"][0] == 0.0
    assert run["kl"][K] == pytest.approx(_numpy_mean_kl(mdp, p_old, p_new), rel=1e-9)
    assert run["max_ratio"][K] == pytest.approx(r.max(), rel=1e-12)


def test_clipping_does_not_cap_the_ratio_but_slows_the_kl():
    clipped, free = W.clip_run(0.2), W.clip_run(0.2, objective="none")
    assert clipped["max_ratio"][-1] > 1.2 + 0.1  # the ratio leaves the band
    assert clipped["kl"][-1] > clipped["kl"][3]  # and the KL keeps growing with K
    assert clipped["kl"][-1] < free["kl"][-1]  # but slower than without clipping


def test_kl_penalty_run_follows_the_adaptive_rule():
    run = W.kl_penalty_run("adaptive", 0.01)
    assert run["beta"][0] == 1.0
    for b, kl, b_next in zip(run["beta"], run["kl"], run["beta_next"]):
        rule = AdaptiveKL(b, 0.01)
        assert rule.update(kl) == b_next  # the rule, with the true KL
        expected = b / 2 if kl < 0.01 / 1.5 else (2 * b if kl > 0.015 else b)
        assert b_next == expected
    np.testing.assert_array_equal(run["beta"][1:], run["beta_next"][:-1])
    fixed = W.kl_penalty_run("fixed", 3.0)
    assert np.all(fixed["beta"] == 3.0)
    assert len(fixed["J"]) == len(fixed["kl"]) + 1
    with pytest.raises(ValueError):
        W.kl_penalty_run("sometimes", 1.0)
    with pytest.raises(ValueError):
        W.fast_kl_penalty_run("sometimes", 1.0)


def test_optimal_performance_matches_numpy_value_iteration():
    mdp, _ = W.exact_problem()
    P, R = mdp.P.numpy(), mdp.R.numpy()
    V = np.zeros(mdp.n_states)
    for _ in range(3000):
        V = (R + mdp.gamma * P @ V).max(-1)
    assert W.optimal_performance(mdp) == pytest.approx(float(mdp.mu0.numpy() @ V), abs=1e-9)
    # and no policy on the runs beats it
    assert max(W.kl_penalty_run("fixed", 1.0)["J"]) <= W.optimal_performance(mdp) + 1e-9
