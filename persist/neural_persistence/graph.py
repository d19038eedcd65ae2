"""Exact 0-dimensional persistence of one layer's bipartite weight graph (Rieck et al. 2019, Alg. 1).

Under the descending filtration every vertex is born at 1 and an edge of normalized weight w merges two
components exactly when it belongs to a maximum spanning forest, so the diagram is {(1, w) : w in MSF}.
Only the *multiset* of spanning-forest weights matters, and it is the same for every maximum spanning
forest, which is why two different algorithms below give the same values.

Two back ends:

- ``"boruvka"`` (default): Borůvka on dense torch tensors, on the weights' device, with no Python loop
  over edges. Round one lets every vertex pick its heaviest edge (one row max, one column max);
  afterwards every component contains a vertex of the smaller side, so the graph contracts to a dense
  s x s matrix (s = min(rows, cols)) of the heaviest edge between components, and at most
  ceil(log2 s) + 1 dense rounds finish it. Ties break towards the lowest index (torch's max), a total
  order, so picked edges never close a cycle. On accelerators the sizes stay fixed and nothing syncs with
  the host; on the CPU the matrix shrinks as components merge.
- ``"kruskal"``: scipy's compiled minimum spanning tree on 2 - w (csgraph reads 0 as "no edge"; 2 - w
  lies in [1, 2]); the weights are then read back from the input, not from the transformed values.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import minimum_spanning_tree

from persist.errors import ConfigError

METHODS = ("auto", "boruvka", "kruskal")
_NO_EDGE = -1.0  # normalized weights are >= 0, so -1 marks an absent edge


def _check_weights(w: torch.Tensor) -> None:
    if w.ndim != 2 or w.shape[0] == 0 or w.shape[1] == 0:
        raise ConfigError(f"weights must be a non-empty 2-D matrix, got shape {tuple(w.shape)}")


def _pointer_jump(parent: torch.Tensor, n_vertices: int) -> torch.Tensor:
    """Follow parent pointers to the roots; log2 steps suffice for any forest depth."""
    for _ in range(max(1, math.ceil(math.log2(max(n_vertices, 2)))) + 1):
        parent = parent[parent]
    return parent


def _bipartite_round(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """First Borůvka round on an s x b matrix (s <= b): picked weights and component labels in [0, s)."""
    s, b = a.shape
    row_best, row_pick = a.max(dim=1)
    col_best, col_pick = a.max(dim=0)
    small = torch.arange(s, device=a.device)
    parent = torch.cat([row_pick + s, col_pick])
    mutual = col_pick[row_pick] == small  # 2-cycles: the smaller-side vertex becomes the root
    parent[:s] = torch.where(mutual, small, parent[:s])
    ids = torch.arange(s + b, device=a.device)
    picked = torch.where(parent != ids, torch.cat([row_best, col_best]), _NO_EDGE)
    labels = _pointer_jump(parent, s + b)
    return picked, labels[:s], labels[s:]


def _contract(c: torch.Tensor, row_labels: torch.Tensor, col_labels: torch.Tensor, n: int) -> torch.Tensor:
    """Heaviest edge between every pair of components, as a dense symmetric n x n matrix."""
    by_col = torch.full((c.shape[0], n), _NO_EDGE, dtype=c.dtype, device=c.device)
    by_col.scatter_reduce_(1, col_labels.expand(c.shape[0], -1), c, "amax")
    out = torch.full((n, n), _NO_EDGE, dtype=c.dtype, device=c.device)
    out.scatter_reduce_(0, row_labels[:, None].expand(-1, n), by_col, "amax")
    out = torch.maximum(out, out.T)
    out.fill_diagonal_(_NO_EDGE)
    return out


def _dense_round(c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One Borůvka round on a dense symmetric graph (-1 = no edge); absent vertices simply stay roots."""
    n = c.shape[0]
    ids = torch.arange(n, device=c.device)
    best, pick = c.max(dim=1)
    pick = torch.where(best >= 0, pick, ids)
    mutual = (pick[pick] == ids) & (ids < pick)
    parent = torch.where(mutual, ids, pick)
    picked = torch.where(parent != ids, best, _NO_EDGE)
    return picked, _pointer_jump(parent, n)


def _relabel(labels: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Renumber component labels 0..n'-1 so the contracted matrix shrinks (one host sync)."""
    unique, inverse = torch.unique(labels, return_inverse=True)
    return inverse, unique.numel()


def _compacts(device: torch.device) -> bool:
    return device.type == "cpu"


def _boruvka(w: torch.Tensor) -> torch.Tensor:
    a = (w if w.shape[0] <= w.shape[1] else w.T).contiguous()  # reductions along a strided dim are slow
    s = a.shape[0]
    picked, row_labels, col_labels = _bipartite_round(a)
    found = [picked]
    # On the CPU a host sync is free, so shrink the matrix as components merge (total work O(s^2));
    # on accelerators keep the s x s size fixed and run a fixed number of rounds, with no sync at all.
    compact = _compacts(a.device)
    n = s
    if compact:
        labels, n = _relabel(torch.cat([row_labels, col_labels]))
        row_labels, col_labels = labels[:s], labels[s:]
    c = _contract(a, row_labels, col_labels, n)
    for _ in range(math.ceil(math.log2(max(n, 2))) + 1):
        if compact and n == 1:
            break
        picked, labels = _dense_round(c)
        found.append(picked)
        if compact:
            labels, n = _relabel(labels)
        c = _contract(c, labels, labels, n)
    n_edges = sum(w.shape) - 1  # a complete bipartite graph is connected
    return torch.cat(found).sort(descending=True).values[:n_edges]


def _kruskal_tree(weights: np.ndarray, heads: np.ndarray, tails: np.ndarray, n_vertices: int) -> coo_matrix:
    """scipy's compiled Kruskal on 2 - w: a minimum tree of 2 - w is a maximum tree of w, and 2 - w lies in
    [1, 2], so zero weights stay edges (csgraph reads a stored 0 as "no edge")."""
    graph = coo_matrix((2.0 - weights, (heads, tails)), shape=(n_vertices, n_vertices)).tocsr()
    return minimum_spanning_tree(graph).tocoo()


def sparse_spanning_forest_weights(
    weights: np.ndarray, heads: np.ndarray, tails: np.ndarray, n_vertices: int
) -> np.ndarray:
    """Maximum-spanning-forest weights (descending) of a simple graph given as an edge list, weights in [0, 1].

    Used for graphs that are not complete bipartite, such as an unrolled convolution. Weights are read
    back from the input by edge id, not recovered from 2 - w, so no rounding enters.
    """
    tree = _kruskal_tree(weights, heads, tails, n_vertices)
    ids = coo_matrix((np.arange(1, weights.size + 1), (heads, tails)), shape=tree.shape).tocsr()
    edge = np.asarray((ids + ids.T)[tree.row, tree.col]).ravel() - 1
    return np.sort(weights[edge])[::-1].copy()


def _kruskal(w: torch.Tensor) -> torch.Tensor:
    a = w.detach().cpu().to(torch.float64).numpy()
    m, k = a.shape
    tree = _kruskal_tree(a.ravel(), np.repeat(np.arange(m), k), np.tile(np.arange(k), m) + m, m + k)
    rows, cols = np.minimum(tree.row, tree.col), np.maximum(tree.row, tree.col) - m
    deaths = np.sort(a[rows, cols])[::-1].copy()
    return torch.from_numpy(deaths).to(device=w.device, dtype=w.dtype)


def spanning_forest_weights(w: torch.Tensor, method: str = "auto") -> torch.Tensor:
    """Normalized weights of a maximum spanning forest of the complete bipartite graph, descending.

    These are the death values of the layer's finite persistence pairs (1, w); there are rows + cols - 1.
    ``w`` must already hold |w| / w_max (entries in [0, 1]). ``auto`` is Borůvka: about 10x faster than
    Kruskal on the CPU (docs/benchmarks/np.md), and on an accelerator it never leaves the device.
    """
    _check_weights(w)
    if method not in METHODS:
        raise ConfigError(f"method must be one of {', '.join(METHODS)}, got '{method}'")
    w = w.detach()
    if method == "kruskal":
        return _kruskal(w)
    return _boruvka(w)


def persistence_diagram(w: torch.Tensor, method: str = "auto") -> np.ndarray:
    """The layer's finite 0-dimensional diagram as an (n - 1) x 2 array of (birth 1, death w) pairs."""
    deaths = spanning_forest_weights(w, method).detach().cpu().to(torch.float64).numpy()
    return np.column_stack([np.ones_like(deaths), deaths])


def layer_persistence(deaths: torch.Tensor, p: float) -> torch.Tensor:
    """p-norm of the diagram: (sum (1 - w)^p)^(1/p), summed in float64 whatever the weight dtype."""
    lifetimes = 1.0 - deaths.to(torch.float64)
    if math.isinf(p):
        return lifetimes.max()
    return lifetimes.pow(p).sum().pow(1.0 / p)


def persistence_upper_bound(n_pairs: int, p: float) -> float:
    """Theorem 1 of the paper: every lifetime is at most 1, so NP <= n_pairs^(1/p) (n_pairs = n - 1 for a
    connected layer of n neurons); dividing by it puts layers of different sizes on one [0, 1] scale."""
    return 1.0 if math.isinf(p) else n_pairs ** (1.0 / p)
