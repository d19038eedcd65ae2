"""Lower-star persistence: known critical points, an independent Betti-number oracle, backend agreement."""

import pickle

import numpy as np
import pytest
import ripser
from scipy import ndimage, sparse

from persist.errors import ConfigError, DataError
from persist.topology import (
    betti_curve,
    grid_baselines,
    h0_zero_birth_total,
    lower_star_diagrams,
    split_essential,
    summarize,
)

BACKEND_CONFIGS = [("gudhi", 8), ("ripser", 8), ("gudhi", 4)]


def gaussian_wells(depths, centres, sigma=0.2, n=121):
    x = np.linspace(-3, 3, n)
    xx, yy = np.meshgrid(x, x, indexing="ij")
    grid = np.zeros_like(xx)
    for (cx, cy), depth in zip(centres, depths, strict=True):
        grid -= depth * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma**2))
    return grid


def radial_shell(ndim, n, radius, half_width):
    """Zero on a band |r - radius| <= half_width, rising linearly away from it; the centre is a node."""
    axes = np.meshgrid(*[np.linspace(-2, 2, n)] * ndim, indexing="ij")
    r = np.sqrt(sum(a**2 for a in axes))
    return np.maximum(0.0, np.abs(r - radius) - half_width)


def random_fields(kind, count=25, seed=0):
    rng = np.random.default_rng(seed)
    for _ in range(count):
        shape = tuple(rng.integers(1, 16, size=2))
        if kind == "uniform":
            grid = rng.normal(size=shape)
        elif kind == "quantized":  # heavy ties
            grid = rng.integers(0, 3, size=shape).astype(float)
        elif kind == "near_ties":  # distinct in float64, equal in float32
            grid = 1.0 + 1e-9 * rng.integers(0, 40, size=shape)
        else:  # "with_inf": masked nodes never enter the filtration
            grid = rng.integers(0, 5, size=shape).astype(float)
            grid[rng.random(shape) < 0.25] = np.inf
        yield grid


# ---------------------------------------------------------------- known answers


def test_separated_gaussian_wells_give_one_h0_bar_per_well_with_its_depth():
    depths = [1.0, 0.7, 0.4]
    grid = gaussian_wells(depths, [(-1.5, -1.5), (1.5, -1.5), (0.0, 1.5)])
    for backend, connectivity in BACKEND_CONFIGS:
        diagrams = lower_star_diagrams(grid, connectivity, backend, max_dim=0 if connectivity == 4 else None)
        finite, essential = split_essential(diagrams[0])
        # The saddles sit on the flat background (0 up to Gaussian tails below 1e-11).
        assert np.allclose(np.sort(finite[:, 1] - finite[:, 0]), [0.4, 0.7], atol=1e-9)
        assert np.allclose(np.sort(finite[:, 0]), [-0.7, -0.4], atol=1e-12)
        assert essential.tolist() == [grid.min()] and np.isclose(grid.min(), -1.0)
    # Float tails create H1 bars of ~1e-15, the reason a noise floor is needed.
    summary = summarize(lower_star_diagrams(grid), eps=1e-9)
    assert summary["h0_count_above_eps"] == 2 and summary["h1_count_above_eps"] == 0
    assert summary["h1_total_below_eps"] < 1e-12


def test_ring_valley_gives_exactly_one_loop_dying_at_the_centre():
    grid = radial_shell(2, 81, radius=1.2, half_width=0.15)
    centre = grid[40, 40]
    assert np.isclose(centre, 1.05) and centre == grid[np.hypot(*np.indices(grid.shape) - 40) < 20].max()
    for backend, connectivity in [("gudhi", 8), ("ripser", 8), ("gudhi", 4)]:
        diagrams = lower_star_diagrams(grid, connectivity, backend)
        assert diagrams[1].tolist() == [[0.0, centre]]
        assert diagrams[0].tolist() == [[0.0, np.inf]]


def test_hollow_shell_in_3d_gives_one_h2_void():
    grid = radial_shell(3, 25, radius=1.2, half_width=0.2)
    centre = grid[12, 12, 12]
    for connectivity in (26, 6):
        diagrams = lower_star_diagrams(grid, connectivity)
        assert diagrams[2].tolist() == [[0.0, centre]]
        assert diagrams[1].shape == (0, 2)
        assert diagrams[0].tolist() == [[0.0, np.inf]]
        assert diagrams.meta["construction"] == ("T" if connectivity == 26 else "V")


@pytest.mark.parametrize("ramp", [lambda x, y: x + 2 * y, lambda x, y: x + y, lambda x, y: 3 * x - 0 * y])
def test_monotone_ramp_has_no_finite_bars(ramp):
    grid = ramp(*np.meshgrid(np.arange(20.0), np.arange(30.0), indexing="ij"))
    for backend, connectivity in BACKEND_CONFIGS:
        diagrams = lower_star_diagrams(grid, connectivity, backend, max_dim=0 if connectivity == 4 else None)
        assert diagrams[0].tolist() == [[grid.min(), np.inf]]
        assert all(diagrams[k].shape == (0, 2) for k in diagrams if k > 0)


def test_inf_nodes_never_enter_and_cut_classes_become_essential():
    # Two basins separated by a wall of +inf: both H0 classes are essential; a finite ring around an
    # +inf hole is an essential loop.
    grid = np.array([[0.0, np.inf, 1.0], [2.0, np.inf, 3.0]])
    assert lower_star_diagrams(grid)[0].tolist() == [[0.0, np.inf], [1.0, np.inf]]
    ring = np.full((5, 5), 1.0)
    ring[2, 2] = np.inf
    diagrams = lower_star_diagrams(ring, backend="ripser")
    assert diagrams[1].tolist() == [[1.0, np.inf]]
    assert diagrams.meta["inf_vertices"] == 1
    assert lower_star_diagrams(np.full((3, 3), np.inf))[0].shape == (0, 2)


# ------------------------------------------------------ oracle and agreement


def betti_by_labelling(grid, t, connectivity):
    """Betti numbers of {grid <= t} from connected-component labelling alone (no persistence code).

    b0 counts components of the sublevel set; b1 counts bounded components of its complement under the
    dual connectivity (8/4 in 2D), i.e. holes, by Alexander duality.
    """
    full = np.ones((3, 3), dtype=bool)
    cross = ndimage.generate_binary_structure(2, 1)
    inside = grid <= t
    b0 = ndimage.label(inside, structure=full if connectivity == 8 else cross)[1]
    outside = np.pad(~inside, 1, constant_values=True)
    b1 = ndimage.label(outside, structure=cross if connectivity == 8 else full)[1] - 1
    return b0, b1


@pytest.mark.parametrize("kind", ["uniform", "quantized", "with_inf"])
@pytest.mark.parametrize("connectivity", [8, 4])
def test_betti_curves_match_component_labelling(kind, connectivity):
    for grid in random_fields(kind, count=12, seed=1):
        diagrams = lower_star_diagrams(grid, connectivity)
        thresholds = np.unique(grid[np.isfinite(grid)])
        expected = np.array([betti_by_labelling(grid, t, connectivity) for t in thresholds])
        assert np.array_equal(betti_curve(diagrams[0], thresholds), expected[:, 0])
        assert np.array_equal(betti_curve(diagrams[1], thresholds), expected[:, 1])


@pytest.mark.parametrize("kind", ["uniform", "quantized", "near_ties", "with_inf"])
def test_ripser_and_gudhi_agree_exactly(kind):
    for grid in random_fields(kind):
        full = [lower_star_diagrams(grid, 8, b) for b in ("gudhi", "ripser")]
        face = [lower_star_diagrams(grid, 4, b, max_dim=0) for b in ("gudhi", "ripser")]
        for a, b in (full, face):
            assert a.keys() == b.keys()
            for k in a:
                assert np.array_equal(a[k], b[k]), (kind, grid.shape, k)


def test_ripser_keeps_float64_resolution():
    # Births 1 and 1 + 1e-9 are one float32 value; the rank mapping keeps them apart.
    grid = np.array([[1.0, 3.0, 1.0 + 1e-9]])
    expected = [[1.0, np.inf], [1.0 + 1e-9, 3.0]]
    assert lower_star_diagrams(grid, backend="ripser")[0].tolist() == expected


def test_meta_records_the_convention():
    meta = lower_star_diagrams(np.zeros((3, 4)), connectivity=4, backend="ripser", max_dim=0).meta
    assert meta == {
        "filtration": "lower_star", "connectivity": 4, "construction": "V", "backend": "ripser",
        "ndim": 2, "max_dim": 0, "shape": [3, 4], "inf_vertices": 0,
    }  # fmt: skip
    assert lower_star_diagrams(np.zeros((3, 3, 3))).meta["connectivity"] == 26
    diagrams = lower_star_diagrams(np.array([[0.0, 2.0, 1.0]]))
    restored = pickle.loads(pickle.dumps(diagrams))
    assert restored.meta == diagrams.meta and restored[0].tolist() == [[0.0, np.inf], [1.0, 2.0]]


# ------------------------------------------------------ the published H0


def published_h0(grid):
    """The published construction, literally: 8-neighbour max-edges in a lil_matrix, no diagonal."""
    h, w = grid.shape
    matrix = sparse.lil_matrix((h * w, h * w))
    for i in range(h):
        for j in range(w):
            for di, dj in [(0, 1), (1, -1), (1, 0), (1, 1)]:
                if 0 <= i + di < h and 0 <= j + dj < w:
                    u, v = i * w + j, (i + di) * w + j + dj
                    matrix[u, v] = matrix[v, u] = max(grid[i, j], grid[i + di, j + dj])
    h0 = ripser.ripser(matrix.tocsr(), distance_matrix=True, maxdim=0)["dgms"][0]
    return h0[np.isfinite(h0[:, 1]), 1].sum()


def test_h0_zero_birth_total_reproduces_the_published_construction():
    grid = np.random.default_rng(2).uniform(0.5, 5.0, size=(12, 15))
    assert np.isclose(h0_zero_birth_total(grid), published_h0(grid), rtol=1e-6)  # ripser is float32


@pytest.mark.parametrize("kind", ["uniform", "quantized"])
def test_published_h0_is_sum_minus_min_plus_true_h0(kind):
    for grid in random_fields(kind, count=10, seed=3):
        true_h0 = summarize(lower_star_diagrams(grid))["h0_total_persistence"]
        assert np.isclose(h0_zero_birth_total(grid), grid.sum() - grid.min() + true_h0, rtol=1e-12, atol=1e-9)


def test_grid_baselines_ignore_masked_nodes():
    grid = np.array([[1.0, 2.0], [6.0, np.inf]])
    assert grid_baselines(grid) == {"grid_mean": 3.0, "grid_min": 1.0, "grid_max": 6.0, "grid_mean_above_min": 2.0}


# ------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    "grid, kwargs, error, message",
    [
        (np.array([[0.0, np.nan]]), {}, DataError, "grid contains NaN"),
        (np.array([[0.0, -np.inf]]), {}, DataError, "grid contains -inf"),
        (np.zeros((2,) * 5), {}, DataError, "grid must be a 1D to 4D array"),
        (np.zeros((0, 3)), {}, DataError, "grid is empty"),
        (np.zeros((3, 3)), {"connectivity": 6}, ConfigError, "connectivity must be 8 or 4"),
        (np.zeros((3, 3, 3)), {"connectivity": 8}, ConfigError, "connectivity must be 26 or 6"),
        (np.zeros((3, 3)), {"max_dim": 2}, ConfigError, "max_dim must be between 0 and 1"),
        (np.zeros((3, 3)), {"backend": "dionysus"}, ConfigError, "unknown persistence backend 'dionysus'"),
        (np.zeros((3, 3, 3)), {"backend": "ripser", "connectivity": 6}, ConfigError, "connectivity=6 is exact for H0"),
        (np.zeros((3, 3)), {"backend": "ripser", "connectivity": 4}, ConfigError, "exact for H0 only"),
        (np.zeros((776, 776)), {"backend": "ripser"}, ConfigError, "cannot index the simplices of H1"),
    ],
)
def test_bad_input_raises_one_line_error_naming_the_parameter(grid, kwargs, error, message):
    with pytest.raises(error, match=message) as info:
        lower_star_diagrams(grid, **kwargs)
    assert "\n" not in str(info.value)


def test_h0_zero_birth_total_rejects_masked_grids():
    with pytest.raises(DataError, match="finite 2D array"):
        h0_zero_birth_total(np.array([[0.0, np.inf]]))
