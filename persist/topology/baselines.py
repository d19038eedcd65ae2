"""Grid-level baselines that any topological claim about a landscape has to beat.

If a topological summary only tracks how high the loss rises over the slice window, the mean grid value
explains it just as well; these baselines make that comparison explicit. The published PERSIST "H0" is
kept here, under its own name, because it turns out to be such a mean-loss proxy.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import minimum_spanning_tree

from persist.errors import DataError
from persist.topology.lower_star import grid_edges, validated_grid


def grid_baselines(grid: np.ndarray) -> dict[str, float]:
    """Mean, minimum and maximum loss of the finite nodes, and ``grid_mean_above_min`` (flatness).

    ``grid_mean_above_min`` is how far the loss rises, on average, over the slice window: small for a
    flat basin, large for a sharp one. It is the plain baseline for every persistence total.
    """
    values = validated_grid(grid)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        raise DataError("grid has no finite value")
    return {
        "grid_mean": float(finite.mean()),
        "grid_min": float(finite.min()),
        "grid_max": float(finite.max()),
        "grid_mean_above_min": float(finite.mean() - finite.min()),
    }


def h0_zero_birth_total(grid: np.ndarray) -> float:
    """The published PERSIST "H0": H0 total persistence with every vertex born at 0 (compatibility only).

    The published code gave ripser the 8-neighbour graph with edge weights ``max(f(u), f(v))`` but left
    the diagonal (vertex births) empty, so all births were 0 and H0 became single-linkage clustering of
    the edge weights: the n - 1 finite bars are ``(0, w)`` for the minimum-spanning-tree edges ``w``, and
    the total is the MST weight. Kruskal's merges pair every vertex but the global minimum with one MST
    edge, which gives the identity

        h0_zero_birth_total = sum(grid) - min(grid) + (true lower-star H0 total persistence),

    and the true H0 total (sum over non-global minima of saddle minus minimum) is tiny next to
    ``sum(grid) ~ n * mean loss``. So this number is essentially ``(n - 1) * mean loss``, a flatness
    proxy, not a count of basins. It is computed here from the MST, independently of the identity.
    """
    values = validated_grid(grid)
    if values.ndim != 2 or not np.isfinite(values).all():
        raise DataError("grid must be a finite 2D array for h0_zero_birth_total (the published construction)")
    u, v = grid_edges(values.shape, 8)
    flat = values.ravel()
    weight = np.maximum(flat[u], flat[v])
    # A spanning tree always has n - 1 edges, so shifting every weight by a constant keeps the MST; the
    # shift makes weights >= 1, because scipy reads a zero weight as a missing edge.
    shift = 1.0 - weight.min() if weight.size else 0.0
    graph = sparse.coo_matrix((weight + shift, (u, v)), shape=(flat.size, flat.size))
    tree = minimum_spanning_tree(graph)
    return float(tree.sum() - (flat.size - 1) * shift)
