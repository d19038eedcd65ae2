"""n-D lower-star persistence and merge trees against independent oracles: a pure-Python union-find over the
(3^n - 1)-neighbour graph, ripser's flag complex, GUDHI called directly, and the Euler characteristic of
the sublevel sets counted cell by cell."""

import itertools

import gudhi
import numpy as np
import pytest
from matplotlib.figure import Figure
from scipy import ndimage

from persist.topology import lower_star_diagrams, merge_tree
from persist.topology.merge_tree import MergeTree

SHAPES = {1: (17,), 2: (9, 11), 3: (6, 5, 7), 4: (4, 3, 5, 4)}


def fields(ndim, seed=0):
    """A continuous random field, a plateau field (heavy ties) and a plateau field with +inf holes."""
    rng = np.random.default_rng(seed + ndim)
    shape = SHAPES[ndim]
    plateau = rng.integers(0, 3, size=shape).astype(float)
    holes = plateau.copy()
    holes[rng.random(shape) < 0.2] = np.inf
    return {"random": rng.normal(size=shape), "plateau": plateau, "holes": holes}


def union_find_h0(grid):
    """H0 of the sublevel filtration by the textbook vertex sweep over all 3^n - 1 neighbours (elder rule)."""
    shape = grid.shape
    offsets = [o for o in itertools.product((-1, 0, 1), repeat=grid.ndim) if any(o)]
    parent, birth, bars = {}, {}, []

    def find(x):
        while parent[x] != x:
            x = parent[x]
        return x

    order = sorted((v, idx) for idx, v in np.ndenumerate(grid) if np.isfinite(v))
    for value, idx in order:
        parent[idx], birth[idx] = idx, value
        for o in offsets:
            nb = tuple(i + d for i, d in zip(idx, o, strict=True))
            if nb in parent and all(0 <= i < n for i, n in zip(nb, shape, strict=True)):
                a, b = find(idx), find(nb)
                if a == b:
                    continue
                young, old = (a, b) if birth[a] > birth[b] else (b, a)
                if birth[young] < value:
                    bars.append((birth[young], value))
                parent[young] = old
    roots = {find(x) for x in parent}
    bars += [(birth[r], np.inf) for r in roots]
    arr = np.array(bars, dtype=float).reshape(-1, 2)
    return arr[np.lexsort((arr[:, 1], arr[:, 0]))]


def euler_of_sublevel(grid, t, construction):
    """Euler characteristic of a cubical sublevel set, counting cells on the doubled grid.

    T-construction: grid values sit on top cells (odd coordinates); a cell is present when any top cell
    containing it is (a 3-wide max filter). V-construction: values sit on vertices (even coordinates); a
    cell is present when all its vertices are (a 3-wide min filter).
    """
    big_shape = tuple(2 * n + 1 if construction == "T" else 2 * n - 1 for n in grid.shape)
    below = np.isfinite(grid) & (grid <= t)
    step = slice(1, None, 2) if construction == "T" else slice(0, None, 2)
    if construction == "T":
        big = np.zeros(big_shape, dtype=bool)
        big[(step,) * grid.ndim] = below
        present = ndimage.maximum_filter(big, size=3, mode="constant", cval=False)
    else:
        big = np.ones(big_shape, dtype=bool)
        cells = np.zeros(big_shape, dtype=bool)
        cells[(step,) * grid.ndim] = True
        big[(step,) * grid.ndim] = below
        # a cell at (some) odd coordinates is present iff every vertex around it is
        present = ndimage.minimum_filter(np.where(cells, big, True), size=3, mode="constant", cval=True)
        present &= ~cells | big
    dims = sum(np.indices(big_shape)[axis] % 2 for axis in range(grid.ndim))
    return int(np.sum(np.where(present, (-1) ** dims, 0)))


def euler_of_diagrams(diagrams, t):
    return sum((-1) ** k * int(np.sum((d[:, 0] <= t) & (t < d[:, 1]))) for k, d in diagrams.items())


@pytest.mark.parametrize("ndim", [1, 2, 3, 4])
@pytest.mark.parametrize("kind", ["random", "plateau", "holes"])
def test_h0_equals_union_find_gudhi_and_the_merge_tree(ndim, kind):
    grid = fields(ndim)[kind]
    expected = union_find_h0(grid)
    ours = lower_star_diagrams(grid)
    assert np.array_equal(ours[0], expected)
    assert np.array_equal(merge_tree(grid).h0_diagram(), expected)
    complex_ = gudhi.CubicalComplex(top_dimensional_cells=grid)
    complex_.compute_persistence()
    for k in range(ndim):
        direct = complex_.persistence_intervals_in_dimension(k)
        direct = direct[direct[:, 1] > direct[:, 0]] if len(direct) else np.empty((0, 2))
        assert np.array_equal(ours[k], direct[np.lexsort((direct[:, 1], direct[:, 0]))])


@pytest.mark.parametrize("ndim", [3, 4])
@pytest.mark.parametrize("kind", ["random", "plateau", "holes"])
def test_every_dimension_equals_ripsers_flag_complex_of_the_full_neighbour_graph(ndim, kind):
    grid = fields(ndim, seed=1)[kind][(slice(0, 4),) * ndim]  # ripser's flag complex grows fast in 4-D
    gudhi_d = lower_star_diagrams(grid)
    ripser_d = lower_star_diagrams(grid, backend="ripser")
    assert sorted(gudhi_d) == list(range(ndim))
    for k in range(ndim):
        assert np.array_equal(gudhi_d[k], ripser_d[k]), k
    assert sum(len(d) for d in gudhi_d.values()) > 0


@pytest.mark.parametrize("ndim", [2, 3, 4])
@pytest.mark.parametrize("kind", ["random", "plateau", "holes"])
@pytest.mark.parametrize("construction", ["T", "V"])
def test_euler_characteristic_of_every_sublevel_set_matches_a_direct_cell_count(ndim, kind, construction):
    grid = fields(ndim, seed=2)[kind]
    connectivity = 3**ndim - 1 if construction == "T" else 2 * ndim
    diagrams = lower_star_diagrams(grid, connectivity)
    levels = np.unique(grid[np.isfinite(grid)])
    checked = 0
    for t in np.concatenate([levels, [levels.min() - 1]]):
        assert euler_of_diagrams(diagrams, t) == euler_of_sublevel(grid, t, construction), t
        checked += 1
    assert checked == levels.size + 1
    # the whole finite grid: Betti numbers are those of the union of its cubes
    assert euler_of_sublevel(np.zeros(SHAPES[ndim]), 0.0, construction) == 1


@pytest.mark.parametrize("ndim, n", [(3, 21), (4, 9)])
def test_a_spherical_valley_encloses_one_void_in_the_top_dimension(ndim, n):
    axes = np.meshgrid(*[np.linspace(-2, 2, n)] * ndim, indexing="ij")
    r = np.sqrt(sum(a**2 for a in axes))
    grid = np.maximum(0.0, np.abs(r - 1.2) - 0.35)  # zero on a shell, rising away from it
    centre = grid[(n // 2,) * ndim]
    diagrams = lower_star_diagrams(grid)
    assert diagrams[0].tolist() == [[0.0, np.inf]]
    assert diagrams[ndim - 1].tolist() == [[0.0, centre]] and centre > 0.5
    assert all(len(diagrams[k]) == 0 for k in range(1, ndim - 1))


# ------------------------------------------------------------------ merge tree


@pytest.mark.parametrize("ndim", [1, 2, 3, 4])
def test_merge_tree_leaves_are_the_local_minima_and_merge_heights_the_h0_deaths(ndim):
    grid = ndimage.gaussian_filter(np.random.default_rng(ndim).random((9,) * ndim), 0.8)
    tree = merge_tree(grid)
    is_min = grid == ndimage.minimum_filter(grid, size=3, mode="constant", cval=np.inf)
    assert sorted(map(tuple, tree.minima())) == sorted(zip(*np.nonzero(is_min), strict=True))
    leaves = tree.leaves
    assert np.array_equal(tree.height[leaves], grid.ravel()[tree.vertex[leaves]])
    internal = np.setdiff1d(np.arange(tree.n_nodes), leaves)
    h0 = lower_star_diagrams(grid)[0]
    assert np.array_equal(np.sort(tree.height[internal]), np.sort(h0[np.isfinite(h0[:, 1]), 1]))
    assert len(leaves) == len(h0) > 3
    # every merge sits above both of its children, and the root holds the whole grid
    kids = tree.parent >= 0
    assert (tree.height[tree.parent[kids]] >= tree.height[kids]).all()
    assert tree.roots.tolist() == [tree.n_nodes - 1] and tree.size[tree.roots[0]] == grid.size


def test_merge_tree_of_three_wells_knows_which_basins_merge_and_their_sizes():
    grid = np.array([0.0, 1.0, 2.0, 5.0, 0.5, 3.0, 1.5, 4.0])  # wells at 0, 0.5, 1.5; saddles 5 and 3
    tree = merge_tree(grid)
    assert sorted(tree.height[tree.leaves].tolist()) == [0.0, 0.5, 1.5]
    (low_merge,) = np.flatnonzero(tree.height == 3.0)
    assert sorted(tree.height[tree.parent == low_merge].tolist()) == [0.5, 1.5]
    assert tree.size[tree.parent == low_merge].sum() == 3  # {0.5} and {1.5}, plus the saddle 3 on one side
    assert tree.size[low_merge] == 4  # {0.5, 3, 1.5, 4} just before level 5
    assert tree.h0_diagram().tolist() == [[0.0, np.inf], [0.5, 5.0], [1.5, 3.0]]


def test_pruning_removes_exactly_the_short_branches():
    grid = ndimage.gaussian_filter(np.random.default_rng(7).random((15, 15, 15)), 1.0)
    tree = merge_tree(grid)
    h0 = tree.h0_diagram()
    for threshold in (0.0, 0.005, 0.02, 1.0):
        kept = h0[h0[:, 1] - h0[:, 0] > threshold]
        pruned = tree.pruned(threshold)
        assert np.array_equal(pruned.h0_diagram(), kept)
        assert pruned.size[pruned.roots].tolist() == [grid.size]
    assert len(tree.top(5).leaves) == 5


def test_merge_forest_has_one_root_per_finite_region():
    grid = np.array([[0.0, 1.0, np.inf, 2.0, 0.5], [1.0, 3.0, np.inf, 0.2, 4.0]])
    tree = merge_tree(grid)
    assert sorted(tree.h0_diagram().tolist()) == sorted(lower_star_diagrams(grid)[0].tolist())
    assert sorted(tree.size[tree.roots].tolist()) == [4, 4]


def test_landscape_profile_renders_one_marker_per_shown_basin():
    from persist.plots.topology import plot_landscape_profile

    grid = ndimage.gaussian_filter(np.random.default_rng(3).random((13, 13, 13)), 1.0)
    tree = merge_tree(grid)
    fig = plot_landscape_profile(tree, eps=0.01, max_leaves=12, title="3-D grid")
    assert isinstance(fig, Figure)
    markers = sum(len(c.get_offsets()) for c in fig.axes[0].collections[1:])
    assert markers == 12 < len(tree.leaves)
    fig.canvas.draw()  # renders without error
    empty = MergeTree(np.zeros(1), np.array([-1]), np.zeros(1, int), np.zeros(1), np.ones(1, int), (1,))
    assert isinstance(plot_landscape_profile(empty), Figure)
