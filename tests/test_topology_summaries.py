"""Summaries, vectorizations, distances and the noise floor on hand-made diagrams with known answers."""

import numpy as np
import persim
import pytest
from scipy.optimize import linear_sum_assignment
from scipy.stats import entropy

from persist.errors import ConfigError, DataError
from persist.topology import (
    NoiseFloor,
    aggregate_summaries,
    betti_curve,
    diagram_distance,
    lower_star_diagrams,
    noise_floor,
    pairwise_distances,
    persistence_entropy,
    persistence_image,
    persistence_landscape,
    summarize,
    total_persistence,
)

INF = np.inf
# lifetimes 2.0, 0.5, 0.1 and one essential bar born at -1
H0 = np.array([[-1.0, INF], [1.0, 3.0], [2.0, 2.5], [0.5, 0.6]])
H1 = np.array([[2.0, 2.25]])


def test_summaries_of_a_hand_made_diagram():
    s = summarize({0: H0, 1: H1}, eps=0.3, p=2)
    assert s["h0_count"] == 3 and s["h0_essential_count"] == 1 and s["h0_essential_birth"] == -1.0
    assert np.isclose(s["h0_total_persistence"], 2.6)
    assert np.isclose(s["h0_persistence_norm_p2"], np.sqrt(4 + 0.25 + 0.01))
    assert s["h0_max_lifetime"] == 2.0
    assert np.isclose(s["h0_persistence_entropy"], entropy([2.0, 0.5, 0.1]))
    assert (s["h0_count_above_eps"], s["h0_count_below_eps"]) == (2, 1)
    assert np.isclose(s["h0_total_above_eps"], 2.5) and np.isclose(s["h0_total_below_eps"], 0.1)
    assert (s["h1_count"], s["h1_total_persistence"], s["h1_persistence_entropy"]) == (1, 0.25, 0.0)
    assert s["h1_essential_count"] == 0 and "h1_essential_birth" not in s


def test_essential_bars_enter_totals_only_when_closed():
    closed = summarize({0: H0}, dims=(0,), essential_death=4.0)
    assert np.isclose(closed["h0_total_persistence"], 2.6 + 5.0) and closed["h0_count"] == 4
    assert closed["h0_essential_count"] == 1  # still reported


def test_missing_dimension_counts_as_empty_and_keys_are_stable():
    s = summarize({0: np.array([[0.0, INF]])}, dims=(0, 1, 2), p=3)
    assert s["h2_count"] == 0 and s["h2_persistence_norm_p3"] == 0 and s["h2_persistence_entropy"] == 0
    assert np.isnan(summarize({}, dims=(0,))["h0_essential_birth"])


def test_total_persistence_norms():
    assert np.isclose(total_persistence(H0), 2.6)
    assert np.isclose(total_persistence(H0, p=3), (8 + 0.125 + 0.001) ** (1 / 3))
    assert total_persistence(H0, p=np.inf) == 2.0
    assert persistence_entropy(np.array([[0.0, 1.0]] * 4)) == pytest.approx(np.log(4))
    with pytest.raises(ConfigError, match="p must be >= 1"):
        total_persistence(H0, p=0.5)
    with pytest.raises(ConfigError, match="eps must be"):
        summarize({0: H0}, eps=-1.0)


def test_aggregate_summaries_mean_and_sample_sd():
    out = aggregate_summaries([{"a": 1.0, "b": 2.0}, {"a": 3.0, "b": 2.0}, {"a": 5.0, "b": 2.0}])
    assert out == {"a_mean": 3.0, "a_sd": 2.0, "b_mean": 2.0, "b_sd": 0.0}
    assert np.isnan(aggregate_summaries([{"a": 1.0}])["a_sd"])
    with pytest.raises(DataError, match=r"summaries\[1\] keys differ"):
        aggregate_summaries([{"a": 1.0}, {"b": 1.0}])


# ---------------------------------------------------------------- vectors


def test_betti_curve_counts_bars_alive_at_each_threshold():
    thresholds = [-2.0, -1.0, 0.55, 1.0, 2.2, 2.5, 3.0, 9.0]
    assert betti_curve(H0, thresholds).tolist() == [0, 1, 2, 2, 3, 2, 1, 1]


def landscape_by_definition(diagram, t, depth):
    tents = np.clip(np.minimum(t[None] - diagram[:, :1], diagram[:, 1:] - t[None]), 0, None)
    out = np.zeros((depth, t.size))
    ranked = -np.sort(-tents, axis=0)[:depth]
    out[: len(ranked)] = ranked
    return out


def test_landscape_values_and_repeated_bars():
    t = np.array([0.0, 0.5, 1.0, 1.5, 2.0])
    assert persistence_landscape(np.array([[0.0, 2.0], [0.0, INF]]), t, depth=2).tolist() == [
        [0.0, 0.5, 1.0, 0.5, 0.0],
        [0.0] * 5,
    ]
    rng = np.random.default_rng(0)
    grid = np.linspace(-1, 10, 223)
    for _ in range(20):  # integer bars repeat often, which breaks persim's exact landscapes
        births = rng.integers(0, 5, size=8).astype(float)
        diagram = np.c_[births, births + rng.integers(1, 5, size=8)]
        assert np.allclose(persistence_landscape(diagram, grid, 4), landscape_by_definition(diagram, grid, 4))


def test_persistence_image_mass_and_peak():
    diagram = np.array([[1.0, 3.0], [2.0, 2.5], [0.0, INF]])
    centred = (-1.025, 3.975)  # pixel centres at -1 + 0.05 i
    image = persistence_image(diagram, birth_range=centred, pers_range=centred, pixel_size=0.05, sigma=0.1)
    assert image.shape == (100, 100)
    assert np.isclose(image.sum(), 2.0 + 0.5, rtol=1e-6)  # unit-mass kernels weighted by lifetime
    assert np.unravel_index(image.argmax(), image.shape) == (40, 60)  # pixel holding (birth 1, lifetime 2)
    empty = persistence_image(np.empty((0, 2)), (0, 1), (0, 1), 0.25, 0.1)
    assert empty.shape == (4, 4) and not empty.any()
    with pytest.raises(ConfigError, match="birth_range"):
        persistence_image(diagram, (1, 0), (0, 1), 0.1, 0.1)


# --------------------------------------------------------------- distances


def wasserstein_by_assignment(a, b, order):
    """Exact W_order with L-infinity ground metric: optimal assignment with diagonal copies."""
    n, m = len(a), len(b)
    cost = np.zeros((n + m, n + m))
    cost[:n, :m] = np.abs(a[:, None, :] - b[None, :, :]).max(axis=2) ** order
    cost[:n, m:] = ((a[:, 1] - a[:, 0]) / 2)[:, None] ** order
    cost[n:, :m] = ((b[:, 1] - b[:, 0]) / 2)[None, :] ** order
    rows, cols = linear_sum_assignment(cost)
    return cost[rows, cols].sum() ** (1 / order)


def random_diagram(rng, n):
    births = rng.random(n)
    return np.c_[births, births + rng.random(n)]


def test_distances_by_hand():
    assert diagram_distance([[0, 1]], [[0, 1.2]]) == pytest.approx(0.2)
    assert diagram_distance([[0, 1]], np.empty((0, 2))) == pytest.approx(0.5)
    both = ([[0, 1], [0, 2]], [[0, 1.1]])
    # Wasserstein prefers (0,1)-(0,1.1) and (0,2)-diagonal: 0.1 + 1.0 < 0.9 + 0.5; bottleneck the other.
    assert diagram_distance(*both, "wasserstein") == pytest.approx(1.1, rel=1e-5)
    assert diagram_distance(*both) == pytest.approx(0.9)


def test_essential_bars_are_matched_not_dropped():
    a = np.array([[0.0, INF], [1.0, 2.0]])
    b = np.array([[0.3, INF], [1.0, 2.0]])
    assert diagram_distance(a, b) == pytest.approx(0.3)
    assert diagram_distance(a, b, "wasserstein", order=2) == pytest.approx(0.3, rel=1e-5)
    assert diagram_distance(a, b[1:]) == INF
    with pytest.warns(UserWarning, match="non-finite"):
        assert persim.bottleneck(a, b[1:]) == 0.0  # what dropping them reports


def test_finite_distances_match_independent_implementations():
    rng = np.random.default_rng(4)
    for _ in range(10):
        a, b = random_diagram(rng, rng.integers(0, 9)), random_diagram(rng, rng.integers(1, 9))
        assert diagram_distance(a, b) == pytest.approx(persim.bottleneck(a, b), abs=1e-12)
        for order in (1.0, 2.0):
            exact = wasserstein_by_assignment(a, b, order)
            assert diagram_distance(a, b, "wasserstein", order) == pytest.approx(exact, rel=1e-5)


def test_pairwise_distances_and_stability_under_perturbation():
    rng = np.random.default_rng(5)
    base = rng.random((20, 20))
    slices = [lower_star_diagrams(base + 0.01 * rng.standard_normal(base.shape)) for _ in range(3)]
    matrix = pairwise_distances(slices, dim=1)
    assert np.allclose(matrix, matrix.T) and not np.diag(matrix).any()
    assert matrix[0, 2] == diagram_distance(slices[0][1], slices[2][1])
    # Stability theorem: bottleneck distance <= sup-norm difference of the grids.
    other = base + rng.uniform(-0.02, 0.02, base.shape)
    da, db = lower_star_diagrams(base), lower_star_diagrams(other)
    for k in (0, 1):
        assert diagram_distance(da[k], db[k]) <= np.abs(base - other).max() + 1e-12
    with pytest.raises(ConfigError, match="metric must be one of"):
        diagram_distance(H0, H0, metric="heat")


# --------------------------------------------------------------- noise floor


def test_noise_floor_is_twice_the_largest_discrepancy():
    a = np.array([[1.0, 2.0], [3.0, INF]])
    b = np.array([[1.1, 1.95], [3.0, INF]])
    assert noise_floor(a, b) == pytest.approx(0.2)
    floor = NoiseFloor.measured(a, b)
    assert floor.value == pytest.approx(0.2) and floor.source.startswith("measured")
    assert NoiseFloor.given(0.05) == NoiseFloor(0.05, "given")
    with pytest.raises(DataError, match="grid_b shape"):
        noise_floor(a, b[:1])
    with pytest.raises(DataError, match="different nodes"):
        noise_floor(a, np.ones((2, 2)))
    with pytest.raises(ConfigError, match="noise floor must be"):
        NoiseFloor.given(-1.0)


def test_bars_above_the_noise_floor_survive_reevaluation():
    rng = np.random.default_rng(6)
    x = np.linspace(0, 4 * np.pi, 40)
    landscape = np.sin(x)[:, None] * np.cos(x)[None, :]
    a = landscape + 0.01 * rng.standard_normal(landscape.shape)
    b = landscape + 0.01 * rng.standard_normal(landscape.shape)
    eps = noise_floor(a, b)
    counts = [summarize(lower_star_diagrams(g), eps=eps) for g in (a, b)]
    assert counts[0]["h0_count"] != counts[1]["h0_count"]  # raw counts are noise-dominated
    for key in ("h0_count_above_eps", "h1_count_above_eps"):
        assert counts[0][key] == counts[1][key] > 0
