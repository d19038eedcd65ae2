"""Persistence of a function sampled at scattered points: a kNN-graph lower-star filtration and Rips.

:func:`persist.topology.lower_star_diagrams` needs the loss on a grid. Samples drawn at random in a
slice (the local landscapes of :mod:`persist.init_quality`) have no grid, so their neighbourhoods come
from a k-nearest-neighbour graph instead; the filtration is still the lower-star one (vertex born at
its value, every higher simplex at the max of its vertices).
"""

from __future__ import annotations

import gudhi
import numpy as np
from ripser import ripser
from sklearn.neighbors import NearestNeighbors


def knn_edges(points: np.ndarray, k: int) -> np.ndarray:
    """Undirected edges (m, 2), i < j, of the symmetric k-nearest-neighbour graph (union of both ways)."""
    k = min(k, len(points) - 1)
    _, idx = NearestNeighbors(n_neighbors=k + 1).fit(points).kneighbors(points)
    pairs = np.stack([np.repeat(np.arange(len(points)), k), idx[:, 1:].ravel()], axis=1)
    return np.unique(np.sort(pairs, axis=1), axis=0)


def graph_sublevel_diagrams(values: np.ndarray, edges: np.ndarray, clique_dim: int = 2) -> list[np.ndarray]:
    """H0 and H1 diagrams of the lower-star filtration of ``values`` on a graph's clique complex.

    Vertex i is born at values[i], an edge at the max of its endpoints, and (``clique_dim=2``) each
    triangle of the graph at the max of its edges, which is what ``SimplexTree.expansion`` assigns.
    Each diagram is (n_bars, 2) float64 with ``inf`` deaths for essential classes.
    """
    values = np.asarray(values, dtype=np.float64)
    edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    st = gudhi.SimplexTree()
    st.insert_batch(np.arange(len(values))[None, :], values)
    st.insert_batch(edges.T, np.maximum(values[edges[:, 0]], values[edges[:, 1]]))
    if clique_dim == 2:
        st.expansion(2)
    st.compute_persistence(persistence_dim_max=True)  # else the bare graph (dim 1) reports no H1
    return [st.persistence_intervals_in_dimension(d).reshape(-1, 2) for d in (0, 1)]


def rips_diagrams(cloud: np.ndarray) -> list[np.ndarray]:
    """H0 and H1 Vietoris-Rips diagrams of a point cloud (n, d)."""
    return [d.astype(np.float64) for d in ripser(cloud, maxdim=1)["dgms"]]
