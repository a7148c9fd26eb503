"""The trust-region ε widget: every slider value draws, the paths obey their rules, one update is timed."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import pgcore as pg  # noqa: E402
from pgcore.widgets.trust_region import (  # noqa: E402
    DEFAULT_START,
    EPS_VALUES,
    METHODS,
    draw_trust_region,
    kl_ball,
    run_paths,
    trust_region_explorable,
)


def test_sweep_every_eps_without_exception():
    ex = trust_region_explorable()
    assert ex.sweep() == len(EPS_VALUES)


def test_time_one_update(record_property):
    ex = trust_region_explorable()
    ex.figure(eps=0.05)  # warm the caches the live widget also warms
    plt.close("all")
    seconds = ex.time_update(eps=0.02)
    record_property("trust_region_update_seconds", seconds)
    print(f"trust-region widget: one update took {seconds:.3f} s")


def test_static_html_has_every_frame():
    html = trust_region_explorable(eps_values=(0.01, 0.1), default=0.1).static_html()
    import json
    import re

    data = json.loads(re.search(r'class="pg-explorable-data">(.*?)</script>', html, re.S).group(1))
    assert len(data["frames"]) == 2 and data["sizes"] == [2]


@pytest.mark.parametrize("eps", [0.005, 0.05, 0.5])
def test_paths_follow_their_update_rules(eps):
    paths = run_paths(eps, iters=4)
    mdp = pg.three_armed_bandit()
    r = np.array([1.0, 0.6, 0.0])
    for m in METHODS:
        P = paths[m]["probs"]
        assert P.shape == (5, 3)
        np.testing.assert_allclose(P.sum(1), 1.0, atol=1e-12)
        np.testing.assert_allclose(paths[m]["J"], P @ r, atol=1e-12)
    # TRPO's accepted steps satisfy the true KL constraint; NPG's predicted KL is ε
    for info, kl in zip(paths["TRPO"]["info"], paths["TRPO"]["kl"]):
        if info["accepted"]:
            assert kl <= eps
    for info in paths["NPG"]["info"]:
        assert info["predicted_kl"] == pytest.approx(eps, rel=1e-8)
    # the first NPG step from π₀ is the multiplicative-weights update with α = sqrt(2ε / E[A²])
    from pgcore.examples import tabular_npg_policy

    pi0 = torch.tensor([DEFAULT_START], dtype=torch.float64)
    np.testing.assert_allclose(
        paths["NPG"]["probs"][1], tabular_npg_policy(mdp, pi0, max_kl=eps)[0].numpy(), atol=1e-8
    )
    # vanilla PG does not depend on ε
    np.testing.assert_allclose(
        paths["vanilla PG"]["probs"], run_paths(0.5, iters=4)["vanilla PG"]["probs"]
    )


def test_kl_ball_values():
    kl, tri = kl_ball(DEFAULT_START, grid=20)
    assert len(kl) == len(tri.x) and np.all(kl >= -1e-12)


def test_bad_eps_raises():
    with pytest.raises(ValueError):
        run_paths(0.0)
    with pytest.raises(ValueError):
        run_paths(float("nan"))


def test_draw_returns_a_figure():
    fig = draw_trust_region(0.1, iters=3)
    assert len(fig.axes) == 3
    plt.close(fig)
