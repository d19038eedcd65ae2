"""Noise floors and the grid_topology entry point: planted basins under noise of known size, the bootstrap's
resampling, floor selection and fallback, and the 2-D phase metrics kept unchanged."""

from dataclasses import replace

import numpy as np
import pytest

from persist.config import TopologyConfig
from persist.errors import ConfigError, DataError
from persist.topology import (
    aggregate_summaries,
    bootstrap_distances,
    bootstrap_floor,
    bootstrap_grids,
    bottleneck_floor,
    diagram_distance,
    grid_baselines,
    grid_topology,
    h0_zero_birth_total,
    inputs_needed,
    lower_star_diagrams,
    noise_floor,
    requested_floor,
    summarize,
)

N = 21
CENTRES = [(-0.45, -0.4), (0.45, -0.35), (0.0, 0.5)]
DEPTHS = [0.6, 0.4, 0.25]


def planted_field():
    """A quartic bowl (loss 0.5 at the centre, 8.5 in the corners) with three Gaussian wells.

    Noise-free, its H0 has exactly the three wells: the global one (essential) and two finite bars of
    persistence 0.21 and 0.13, and no H1. Returns the field and the grid index of each well's minimum.
    """
    x = np.linspace(-1, 1, N)
    xx, yy = np.meshgrid(x, x, indexing="ij")
    f = 0.5 + 2.0 * (xx**2 + yy**2) ** 2
    for (cx, cy), depth in zip(CENTRES, DEPTHS, strict=True):
        f -= depth * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * 0.12**2))
    near = [np.where((xx - cx) ** 2 + (yy - cy) ** 2 < 0.05, f, np.inf) for cx, cy in CENTRES]
    return f, np.array([np.unravel_index(np.argmin(g), f.shape) for g in near])


def test_planted_field_has_exactly_the_planted_bars():
    f, _ = planted_field()
    diagrams = lower_star_diagrams(f)
    life = diagrams[0][:, 1] - diagrams[0][:, 0]
    assert len(diagrams[0]) == 3 and np.isinf(life).sum() == 1
    assert np.allclose(np.sort(life[np.isfinite(life)]), [0.1255, 0.2117], atol=1e-3)
    assert len(diagrams[1]) == 0


def test_floors_flag_planted_basins_and_not_noise_at_the_stated_rates():
    """20 draws of 100 examples each, per-example loss = f * Gamma(4, 1/4) (mean f, sd f / 2, so the noise
    grows with the loss as cross-entropy's does). A well counts as found when the merge tree pruned at the
    floor keeps a minimum within 2 nodes of it; a noise bar is flagged when it keeps any other minimum or
    any H1 bar (the field has none).
    """
    f, wells = planted_field()
    rng = np.random.default_rng(0)
    reps, m = 20, 100
    cfg = TopologyConfig(floor="bootstrap", bootstrap_samples=50, bootstrap_alpha=0.05)
    found = {name: 0 for name in ("stability", "bottleneck", "bootstrap", "none")}
    noise = dict.fromkeys(found, 0)
    for rep in range(reps):
        per_example = f[..., None] * rng.gamma(4.0, 0.25, size=f.shape + (m,))
        halves = per_example[..., : m // 2].mean(-1), per_example[..., m // 2 :].mean(-1)
        topo = grid_topology(per_example.mean(-1), halves, per_example, replace(cfg, bootstrap_seed=rep))
        assert topo.floor_used == "bootstrap" and topo.fallback == ""
        floors = {"stability": (topo.floors["stability"],) * 2, "none": (0.0, 0.0),
                  "bottleneck": (topo.floors["bottleneck_h0"], topo.floors["bottleneck_h1"]),
                  "bootstrap": (topo.floors["bootstrap_h0"], topo.floors["bootstrap_h1"])}
        h1_life = np.diff(topo.diagrams[1], axis=1)[:, 0]
        for name, (eps0, eps1) in floors.items():
            minima = topo.merge_tree.pruned(eps0).minima()
            dist = np.abs(minima[:, None, :] - wells[None, :, :]).max(axis=2)  # (kept minima, wells)
            found[name] += bool((dist <= 2).any(axis=0).all())
            noise[name] += bool((dist > 2).all(axis=1).any() or (h1_life > eps1).any())
        assert topo.summary["h0_count_above_bootstrap"] == topo.summary["h0_count_above_eps"]
    rate = {name: (found[name] / reps, noise[name] / reps) for name in found}
    # Without a floor every draw has noise bars, so the rates below can fail.
    assert rate["none"] == (1.0, 1.0)
    # Bootstrap at alpha = 0.05: every planted well found, noise flagged at most at about alpha.
    assert rate["bootstrap"][0] >= 0.95 and rate["bootstrap"][1] <= 0.10
    # Twice the halves' bottleneck distance is one draw, not a quantile: it misses a shallow well now and then
    # and lets a noise loop through more often (over 100 draws: 0.92 found, 0.16 with a noise bar).
    assert rate["bottleneck"][0] >= 0.75 and rate["bottleneck"][1] <= 0.20
    # The stability floor, set by the noisiest node on the high-loss rim, hides every well (issue 15).
    assert rate["stability"] == (0.0, 0.0)


def test_bootstrap_grids_are_means_over_resampled_examples():
    # example i has loss 10**i at every node, so a resampled mean encodes how often each example was drawn
    n = 4
    per_example = np.broadcast_to(10.0 ** np.arange(n), (3, 2, n)).copy()
    grids = list(bootstrap_grids(per_example, samples=40, seed=1, chunk=7))
    assert len(grids) == 40
    for grid in grids:
        assert np.allclose(grid, grid[0, 0], rtol=1e-12)
        counts = [int(d) for d in f"{round(grid[0, 0] * n):0{n}d}"[::-1]]
        assert sum(counts) == n
    draws = {tuple(np.round(g, 9).ravel()) for g in grids}
    assert len(draws) > 10  # resamples differ
    again = list(bootstrap_grids(per_example, samples=40, seed=1, chunk=40))
    # the chunk size changes nothing
    assert all(np.allclose(a, b, rtol=1e-12) for a, b in zip(grids, again, strict=True))


def test_sup_norm_bootstrap_distance_bounds_the_bottleneck_one():
    f, _ = planted_field()
    per_example = f[..., None] * np.random.default_rng(1).gamma(4.0, 0.25, size=f.shape + (40,))
    bottleneck = bootstrap_distances(per_example, 30, "bottleneck", dims=(0, 1), seed=3)
    sup = bootstrap_distances(per_example, 30, "sup", dims=(0, 1), seed=3)
    assert bottleneck.shape == sup.shape == (30, 2)
    assert (bottleneck <= sup + 1e-12).all() and (bottleneck < sup).any()
    floors = bootstrap_floor(bottleneck, 0.1, (0, 1))
    assert floors[0] == pytest.approx(2 * np.quantile(bottleneck[:, 0], 0.9))


def test_bottleneck_floor_is_twice_the_halves_distance_per_dimension():
    rng = np.random.default_rng(2)
    a, b = rng.random((12, 12)), rng.random((12, 12))
    da, db = lower_star_diagrams(a), lower_star_diagrams(b)
    floors = bottleneck_floor(da, db, (0, 1))
    assert floors == {k: 2 * diagram_distance(da[k], db[k]) for k in (0, 1)}
    assert 0 < floors[0] <= noise_floor(a, b)  # the stability theorem: d_B <= max |a - b|


# ------------------------------------------------------------ grid_topology


def old_phase_summary(loss, halves):
    """What persist/phases/landscape.py computed per 2-D slice before grid_topology existed."""
    eps = noise_floor(*halves)
    summary = summarize(lower_star_diagrams(loss, 8, "gudhi"), eps=eps)
    summary.update(grid_baselines(loss))
    summary["h0_zero_birth_total"] = h0_zero_birth_total(loss)
    summary["noise_floor"] = eps
    summary["nonfinite_nodes"] = 0.0
    return summary


def test_2d_summary_keeps_the_phase_metrics_bit_for_bit():
    f, _ = planted_field()
    rng = np.random.default_rng(4)
    halves = tuple(f * rng.gamma(4.0, 0.25, size=f.shape + (30,)).mean(-1) for _ in range(2))
    loss = (halves[0] + halves[1]) / 2
    topo = grid_topology(loss, halves, None, TopologyConfig(floor="stability"))  # the floor the old phase used
    old = old_phase_summary(loss, halves)
    assert {k: topo.summary[k] for k in old} == old
    assert topo.floor_used == "stability" and topo.noise_floor == old["noise_floor"]
    for k in (0, 1):
        assert np.array_equal(topo.diagrams[k], lower_star_diagrams(loss)[k])
    assert aggregate_summaries([topo.summary, topo.summary])["h1_count_above_bottleneck_mean"] >= 0


@pytest.mark.parametrize("ndim", [1, 3, 4])
def test_summary_has_every_homology_dimension_of_the_grid(ndim):
    rng = np.random.default_rng(ndim)
    shape = (25,) if ndim == 1 else (7,) * ndim
    halves = (1 + rng.random(shape), 1 + rng.random(shape))
    topo = grid_topology((halves[0] + halves[1]) / 2, halves, None, TopologyConfig(floor="bottleneck"))
    assert sorted(topo.diagrams) == list(range(ndim))
    for k in range(ndim):
        assert f"h{k}_count_above_eps" in topo.summary and f"h{k}_total_above_bottleneck" in topo.summary
        assert topo.summary[f"noise_floor_h{k}"] == topo.floors[f"bottleneck_h{k}"] == topo.eps[k]
    assert f"h{ndim}_count" not in topo.summary and "h0_zero_birth_total" not in topo.summary
    assert np.isnan(topo.summary["h0_count_above_bootstrap"])  # not measured, but the key is always there
    assert topo.summary["merge_tree_minima"] == len(topo.merge_tree.leaves)
    assert topo.summary["basins_above_eps"] == topo.summary["h0_count_above_eps"] + 1
    assert topo.meta()["eps"] == {f"h{k}": topo.eps[k] for k in range(ndim)}


def test_log_loss_filtration_is_the_log_of_the_loss_diagrams():
    rng = np.random.default_rng(5)
    loss = np.exp(rng.normal(size=(9, 8, 7)))
    topo = grid_topology(loss, None, None, TopologyConfig(filtration="log_loss", floor="none"))
    plain = lower_star_diagrams(loss)
    for k in range(3):  # a monotone map of the values maps the sublevel filtration, bar by bar
        assert np.allclose(topo.diagrams[k], np.log(plain[k]), rtol=0, atol=1e-12)
    assert topo.summary["grid_mean"] == pytest.approx(loss.mean())  # baselines stay in loss units
    assert "log(loss)" in topo.meta()["filtration_values"]
    with pytest.raises(DataError, match="needs positive losses"):
        grid_topology(np.zeros((3, 3)), None, None, TopologyConfig(filtration="log_loss"))


def test_an_unavailable_floor_falls_back_and_says_why():
    rng = np.random.default_rng(6)
    halves = (rng.random((9, 9)), rng.random((9, 9)))
    loss = (halves[0] + halves[1]) / 2
    topo = grid_topology(loss, halves, None, TopologyConfig(floor="bootstrap"))
    assert topo.floor_used == "bottleneck" and "per-example losses" in topo.fallback
    assert topo.eps == {0: topo.floors["bottleneck_h0"], 1: topo.floors["bottleneck_h1"]}
    topo = grid_topology(loss, None, None, TopologyConfig(floor="bootstrap"))
    assert topo.floor_used == "none" and topo.eps == {0: 0.0, 1: 0.0} and topo.fallback.endswith("used none")
    assert topo.floors == {"none": 0.0}
    topo = grid_topology(loss, None, None, TopologyConfig(noise_floor=0.25))
    assert (topo.floor_used, topo.eps, topo.fallback) == ("fixed", {0: 0.25, 1: 0.25}, "")
    with pytest.raises(DataError, match="per_example shape"):
        grid_topology(loss, None, np.ones((9, 8, 3)), TopologyConfig(floor="bootstrap"))


@pytest.mark.parametrize(
    "cfg, floor, needs",
    [
        (TopologyConfig(), "bottleneck", (True, False)),  # the default: free, and it does not hide structure
        (TopologyConfig(floor="stability"), "stability", (True, False)),
        (TopologyConfig(noise_floor=0.1), "fixed", (False, False)),  # the older spelling of a fixed floor
        (TopologyConfig(floor="fixed", noise_floor=0.0), "fixed", (False, False)),
        (TopologyConfig(noise_source="none"), "none", (False, False)),  # the older spelling of no floor
        (TopologyConfig(floor="bottleneck"), "bottleneck", (True, False)),
        (TopologyConfig(floor="bootstrap"), "bootstrap", (True, True)),
        (TopologyConfig(floor="bootstrap", noise_source="none"), "bootstrap", (False, True)),
    ],
)
def test_floor_choice_reconciles_the_older_fields(cfg, floor, needs):
    assert requested_floor(cfg) == floor
    assert inputs_needed(cfg) == needs


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"floor": "median"}, "topology.floor must be one of"),
        ({"floor": "fixed"}, "needs topology.noise_floor >= 0"),
        ({"floor": "bootstrap", "noise_floor": 0.1}, "gives a fixed floor"),
        ({"noise_source": "halves"}, "noise_source must be"),
        ({"filtration": "sqrt"}, "topology.filtration must be"),
        ({"connectivity": 6}, "connectivity must be one of 8, 4"),
        ({"floor": "bootstrap", "bootstrap_alpha": 1.5}, "bootstrap_alpha"),
        ({"floor": "bootstrap", "bootstrap_distance": "wasserstein"}, "bootstrap_distance"),
    ],
)
def test_bad_topology_settings_raise_one_line_naming_the_field(settings, message):
    with pytest.raises(ConfigError, match=message):  # refused when the config is built, before any grid
        TopologyConfig(**settings)


def test_log_loss_floors_do_not_change_when_the_loss_is_rescaled():
    # log(c L) = log c + log L shifts every bar's ends alike, so log-loss floors are scale-free; loss floors scale
    f, _ = planted_field()
    per_example = f[..., None] * np.random.default_rng(8).gamma(4.0, 0.25, size=f.shape + (16,))
    topos = {}
    for scale in (1.0, 7.0):
        losses = scale * per_example
        halves = losses[..., :8].mean(-1), losses[..., 8:].mean(-1)
        for filtration in ("loss", "log_loss"):
            cfg = TopologyConfig(floor="bootstrap", filtration=filtration, bootstrap_samples=8)
            topos[scale, filtration] = grid_topology(losses.mean(-1), halves, losses, cfg)
    for name in ("stability", "bottleneck_h0", "bootstrap_h0", "bootstrap_h1"):
        assert topos[7.0, "log_loss"].floors[name] == pytest.approx(topos[1.0, "log_loss"].floors[name], rel=1e-9)
        assert topos[7.0, "loss"].floors[name] == pytest.approx(7 * topos[1.0, "loss"].floors[name], rel=1e-9)
    assert topos[1.0, "log_loss"].floors["bootstrap_h0"] > 0
    assert topos[1.0, "log_loss"].meta()["floor_used"] == "bootstrap"
    for topo in topos.values():  # one number per floor name, the largest over dimensions
        assert topo.floors[topo.floor_used] == topo.noise_floor == max(topo.eps.values())
        assert topo.floors["bottleneck"] == max(topo.floors["bottleneck_h0"], topo.floors["bottleneck_h1"])
