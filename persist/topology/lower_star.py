"""Lower-star (sublevel-set) persistence of loss grids.

Each grid node is a vertex born at its loss value; a cell enters when its last vertex does. Two
connectivities are offered, and the choice changes H0 and H1 near saddles, so it is recorded in ``meta``:

* full (``3**n - 1`` neighbours: 2 in 1D, 8 in 2D, 26 in 3D, 80 in 4D; the default): nodes sharing a
  corner are adjacent. This is GUDHI's cubical T-construction (``top_dimensional_cells=grid``) and, by the
  nerve lemma (grid cubes that meet pairwise meet all together), the flag complex of the ``3**n - 1``
  neighbour graph that ripser builds; the published PERSIST construction uses this graph in 2D.
* face (``2n`` neighbours: 4 in 2D, 6 in 3D, 8 in 4D): GUDHI's V-construction (``vertices=grid``). In 1D
  both are the path graph, and the full one is reported.

Grids of 1 to 4 dimensions are accepted (the landscape phase's ``dims``); an n-D grid has H0..H_{n-1}.

Conventions, identical across backends:

* ``+inf`` marks a node that never enters the filtration (a failed or masked evaluation). The diagram is
  that of the finite part of the grid, so a class that could only die by entering a ``+inf`` node is
  reported as essential (``death = inf``); each connected finite region contributes one essential H0 bar.
  NaN and ``-inf`` are rejected: they have no place in a sublevel filtration.
* Zero-length bars (births and deaths at the same value, i.e. ties) carry no information and are dropped.
* Rows are sorted by birth, then death, so two backends give identical arrays.
"""

from __future__ import annotations

import itertools
import math
from typing import Callable

import gudhi
import numpy as np
import ripser
from scipy import sparse

from persist.errors import ConfigError, DataError
from persist.registry import Registry
from persist.topology.diagrams import Diagrams, as_diagram

Backend = Callable[[np.ndarray, int, int], dict[int, np.ndarray]]
BACKENDS: Registry[Backend] = Registry("persistence backend")

NDIMS = (1, 2, 3, 4)
FULL_CONNECTIVITY = {n: 3**n - 1 for n in NDIMS}
FACE_CONNECTIVITY = {n: 2 * n for n in NDIMS}
_RIPSER_EXACT_LEVELS = 2**24  # ripser stores values as float32, exact for integer ranks below 2**24
_RIPSER_MAX_INDEX = 2**55 - 1  # ripser numbers simplices in 55 bits and aborts the process beyond


def lower_star_diagrams(
    grid: np.ndarray,
    connectivity: int | None = None,
    backend: str = "gudhi",
    max_dim: int | None = None,
) -> Diagrams:
    """Persistence diagrams H0..H``max_dim`` of the sublevel-set filtration of ``grid``.

    Vertex births are the grid values themselves, which is what makes H0 count basins and measure their
    depths (saddle minus minimum); leaving births at 0, as the published code did, turns H0 into a sum of
    spanning-tree edge weights (see :func:`persist.topology.h0_zero_birth_total`).

    Args:
        grid: 1D to 4D array of loss values; ``+inf`` marks nodes outside the filtration.
        connectivity: ``3**n - 1`` (full) or ``2n`` (face) for an n-D grid: 8 or 4 in 2D, 26 or 6 in 3D,
            80 or 8 in 4D; ``None`` means the full one.
        backend: ``"gudhi"`` (any dimension, both connectivities; the fast default) or ``"ripser"`` (the
            flag complex of the neighbour graph, any dimension; exact for every H_k with the full
            connectivity, for H0 only with the face one; small grids only, since ripser's simplex indices
            overflow, e.g. H1 above about 600k nodes). Both give identical arrays.
        max_dim: highest homology dimension; ``None`` means ``grid.ndim - 1`` (H0, H1 and, in 3D, H2).

    Returns:
        :class:`Diagrams`: ``{k: (n_k, 2) float64}`` with ``meta`` recording the convention used.
    """
    values = validated_grid(grid)
    connectivity = _resolved_connectivity(values.ndim, connectivity)
    max_dim = _resolved_max_dim(values.ndim, max_dim)
    bars = BACKENDS.get(backend)(values, connectivity, max_dim)
    diagrams = {k: _cleaned(bars.get(k, np.empty((0, 2)))) for k in range(max_dim + 1)}
    meta = {
        "filtration": "lower_star",
        "connectivity": connectivity,
        "construction": "T" if connectivity == FULL_CONNECTIVITY[values.ndim] else "V",
        "ndim": values.ndim,
        "backend": backend,
        "max_dim": max_dim,
        "shape": list(values.shape),
        "inf_vertices": int(np.isinf(values).sum()),
    }
    return Diagrams(diagrams, meta)


def validated_grid(grid: np.ndarray) -> np.ndarray:
    """Return ``grid`` as a contiguous float64 1D-4D array, rejecting values a filtration cannot hold."""
    values = np.ascontiguousarray(grid, dtype=np.float64)
    if values.ndim not in FULL_CONNECTIVITY:
        raise DataError(f"grid must be a 1D to 4D array, got {values.ndim}D with shape {values.shape}")
    if values.size == 0:
        raise DataError(f"grid is empty (shape {values.shape})")
    if np.isnan(values).any():
        raise DataError("grid contains NaN; mark failed evaluations with +inf so they never enter the filtration")
    if np.isneginf(values).any():
        raise DataError("grid contains -inf, which no sublevel filtration can hold")
    return values


def grid_offsets(ndim: int, connectivity: int) -> list[tuple[int, ...]]:
    """Half of the neighbour offsets of a grid node (the lexicographically positive ones), faces first.

    Each undirected edge is one offset from its lower-index end, so ``u < v`` in row-major order.
    """
    faces = [tuple(int(i == axis) for i in range(ndim)) for axis in reversed(range(ndim))]
    if connectivity == FACE_CONNECTIVITY[ndim]:
        return faces
    others = [o for o in itertools.product((-1, 0, 1), repeat=ndim) if _first_nonzero(o) > 0 and o not in faces]
    return faces + sorted(others, key=lambda o: (sum(map(abs, o)), tuple(-x for x in o)))


def _first_nonzero(offset: tuple[int, ...]) -> int:
    return next((x for x in offset if x), 0)


def grid_edges(shape: tuple[int, ...], connectivity: int) -> tuple[np.ndarray, np.ndarray]:
    """Edges ``(u, v)`` with ``u < v`` between neighbouring nodes of a row-major 1D-4D grid.

    Returned in the upper-triangle orientation because ripser reads only the upper triangle of a sparse
    distance matrix.
    """
    index = np.arange(math.prod(shape)).reshape(shape)
    us, vs = [], []
    for offset in grid_offsets(len(shape), connectivity):
        lower = tuple(slice(max(0, -d), n - max(0, d)) for d, n in zip(offset, shape, strict=True))
        upper = tuple(slice(max(0, d), n - max(0, -d)) for d, n in zip(offset, shape, strict=True))
        us.append(index[lower].ravel())
        vs.append(index[upper].ravel())
    return np.concatenate(us), np.concatenate(vs)


@BACKENDS.register("gudhi")
def _gudhi_backend(values: np.ndarray, connectivity: int, max_dim: int) -> dict[int, np.ndarray]:
    if connectivity == FULL_CONNECTIVITY[values.ndim]:
        complex_ = gudhi.CubicalComplex(top_dimensional_cells=values)
    else:
        complex_ = gudhi.CubicalComplex(vertices=values)
    complex_.compute_persistence()
    return {k: complex_.persistence_intervals_in_dimension(k) for k in range(max_dim + 1)}


@BACKENDS.register("ripser")
def _ripser_backend(values: np.ndarray, connectivity: int, max_dim: int) -> dict[int, np.ndarray]:
    if connectivity != FULL_CONNECTIVITY[values.ndim] and max_dim > 0:
        raise ConfigError(
            f"backend='ripser' with connectivity={connectivity} is exact for H0 only (its flag complex has no "
            "triangles); pass max_dim=0 or use backend='gudhi'"
        )
    flat = values.ravel()
    finite = np.isfinite(flat)
    n_nodes = int(finite.sum())
    if n_nodes == 0:
        return {}
    if math.comb(n_nodes, max_dim + 2) > _RIPSER_MAX_INDEX:
        raise ConfigError(
            f"backend='ripser' cannot index the simplices of H{max_dim} on {n_nodes} nodes "
            "(ripser numbers simplices in 55 bits and aborts beyond, e.g. above about 600k nodes for H1); "
            "use backend='gudhi' or a lower max_dim"
        )
    # Ripser casts to float32, which merges nearby losses; feeding it integer ranks (exact in float32)
    # and mapping them back makes the result exact.
    levels, ranks = np.unique(flat[finite], return_inverse=True)
    if levels.size >= _RIPSER_EXACT_LEVELS:
        raise ConfigError(
            f"backend='ripser' is exact only below 2**24 distinct grid values, got {levels.size}; use backend='gudhi'"
        )
    births = ranks.astype(np.float64) + 1.0  # ranks start at 1: a stored 0 would read as a missing edge
    compact = np.cumsum(finite) - 1  # +inf nodes never enter, so they are left out of the complex
    u, v = grid_edges(values.shape, connectivity)
    keep = finite[u] & finite[v]
    u, v = compact[u[keep]], compact[v[keep]]
    nodes = np.arange(births.size)
    matrix = sparse.coo_matrix(
        (np.concatenate([births, np.maximum(births[u], births[v])]), (np.r_[nodes, u], np.r_[nodes, v])),
        shape=(births.size, births.size),
    )
    dgms = ripser.ripser(matrix, distance_matrix=True, maxdim=max_dim)["dgms"]
    return {k: _from_ranks(d, levels) for k, d in enumerate(dgms)}


def _from_ranks(ranked: np.ndarray, levels: np.ndarray) -> np.ndarray:
    out = np.full(ranked.shape, np.inf)
    finite = np.isfinite(ranked)
    out[finite] = levels[np.rint(ranked[finite]).astype(np.int64) - 1]
    return out


def _cleaned(bars: np.ndarray) -> np.ndarray:
    arr = as_diagram(bars)
    arr = arr[np.isfinite(arr[:, 0]) & (arr[:, 1] > arr[:, 0])]
    return arr[np.lexsort((arr[:, 1], arr[:, 0]))]


def _resolved_connectivity(ndim: int, connectivity: int | None) -> int:
    if connectivity is None:
        return FULL_CONNECTIVITY[ndim]
    allowed = (FULL_CONNECTIVITY[ndim], FACE_CONNECTIVITY[ndim])
    if connectivity not in allowed:
        raise ConfigError(f"connectivity must be {allowed[0]} or {allowed[1]} for a {ndim}D grid, got {connectivity!r}")
    return int(connectivity)


def _resolved_max_dim(ndim: int, max_dim: int | None) -> int:
    if max_dim is None:
        return ndim - 1
    if not 0 <= max_dim < ndim:
        raise ConfigError(f"max_dim must be between 0 and {ndim - 1} for a {ndim}D grid, got {max_dim!r}")
    return int(max_dim)
