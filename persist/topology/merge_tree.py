"""Merge tree of the sublevel-set filtration of an n-D grid, from one union-find sweep that also gives H0.

As the level ``t`` rises, the sublevel set ``{f <= t}`` grows: a component (basin) is born at each local
minimum and two components merge at a saddle. The merge tree records exactly that: leaves are the minima
(at their loss), internal nodes the merge saddles (at their loss), and the elder rule (the younger basin,
the one with the higher minimum, dies at the merge) pairs every internal node with one leaf, which is the
H0 diagram: a finite bar ``(younger minimum, saddle)`` per internal node and an essential bar per root.
So the tree holds strictly more than H0 (which basins merge with which, and how large they are), which is
what the topological landscape profile (:func:`persist.plots.topology.plot_landscape_profile`) draws.

The sweep runs Kruskal's algorithm on the edges of a minimum spanning tree of the neighbour graph with
edge weights ``max(f(u), f(v))`` (the level at which the edge enters): the spanning tree's edges, in
increasing order, are exactly the merges of the full graph, and scipy finds it in compiled code. Weights
are dense ranks of the values, exact in float64 (scipy reads weight 0 as a missing edge, and shifting
real values could merge nearby losses).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import minimum_spanning_tree

from persist.topology.diagrams import as_diagram
from persist.topology.lower_star import _resolved_connectivity, grid_edges, validated_grid


@dataclass(frozen=True)
class MergeTree:
    """A merge forest (one tree per connected finite region of the grid) as flat arrays, one entry per node.

    Attributes:
        height: filtration value of the node: the minimum's value (leaf) or the merge saddle's (internal).
        parent: index of the parent node, ``-1`` for a root.
        vertex: flat (row-major) grid index of the minimum (leaf) or of the saddle vertex (internal).
        birth: lowest value in the node's subtree (the minimum of the branch that continues upward).
        size: grid nodes in the node's component when it merges into its parent (roots: the whole
            region), the basin size the landscape profile uses as width. Nodes at exactly the merge level
            (the saddle itself, plateaus) are counted on whichever side the sweep reached first.
        shape: shape of the grid.

    Internal nodes are binary: ``k`` basins meeting at one saddle give ``k - 1`` nodes at the same height.
    """

    height: np.ndarray
    parent: np.ndarray
    vertex: np.ndarray
    birth: np.ndarray
    size: np.ndarray
    shape: tuple[int, ...]

    @property
    def n_nodes(self) -> int:
        return int(self.height.size)

    def children(self) -> list[list[int]]:
        """Children of each node, elder (lower birth) first."""
        out: list[list[int]] = [[] for _ in range(self.n_nodes)]
        for node in np.argsort(self.birth, kind="stable"):
            if self.parent[node] >= 0:
                out[self.parent[node]].append(int(node))
        return out

    @property
    def leaves(self) -> np.ndarray:
        """Leaf node indices (the minima), in node order."""
        has_child = np.zeros(self.n_nodes, dtype=bool)
        has_child[self.parent[self.parent >= 0]] = True
        return np.flatnonzero(~has_child)

    @property
    def roots(self) -> np.ndarray:
        return np.flatnonzero(self.parent < 0)

    def minima(self) -> np.ndarray:
        """Grid coordinates ``(n_leaves, ndim)`` of the minima (leaves)."""
        return np.column_stack(np.unravel_index(self.vertex[self.leaves], self.shape))

    def h0_diagram(self) -> np.ndarray:
        """The H0 diagram the tree encodes: ``(younger branch birth, merge height)`` per internal node and
        ``(birth, inf)`` per root, sorted like :func:`persist.topology.lower_star_diagrams`."""
        rows = []
        for node, kids in enumerate(self.children()):
            rows += [(self.birth[k], self.height[node]) for k in kids[1:]]
        rows += [(self.birth[r], np.inf) for r in self.roots]
        arr = as_diagram(rows)
        return arr[np.lexsort((arr[:, 1], arr[:, 0]))]

    def branch_persistence(self) -> np.ndarray:
        """Per node, the lifetime of the branch that ends at it: ``parent height - birth`` for a younger
        child, the parent's own value for an elder child (the branch continues), ``inf`` on a root's branch."""
        out = np.full(self.n_nodes, np.inf)
        kids = self.children()
        for node, children in enumerate(kids):
            for k in children[1:]:
                out[k] = self.height[node] - self.birth[k]
        # an elder child's branch continues through its parent: propagate from the top down (a parent is
        # always created after its children, so decreasing index is top-down even among equal heights)
        for node in reversed(range(self.n_nodes)):
            if kids[node]:
                out[kids[node][0]] = out[node]
        return out

    def pruned(self, min_persistence: float) -> MergeTree:
        """The tree without branches of persistence ``<= min_persistence`` (noise basins).

        A pruned younger branch takes its whole subtree with it (every branch inside it is shorter), and
        its parent saddle disappears, the elder child taking the parent's place and size. The remaining
        branches keep their births and deaths, so the pruned tree's H0 is the bars above the threshold.
        """
        persistence = self.branch_persistence()
        kids = self.children()
        keep = np.ones(self.n_nodes, dtype=bool)
        parent = self.parent.copy()
        size = self.size.copy()
        for node in reversed(range(self.n_nodes)):  # top-down, so removals see the final parents
            if not keep[node] or not kids[node]:
                continue
            if all(persistence[k] <= min_persistence for k in kids[node][1:]):
                for k in kids[node][1:]:
                    keep[_subtree(kids, k)] = False
                elder = kids[node][0]
                parent[elder] = parent[node]
                size[elder] = size[node]
                keep[node] = False
            else:
                for k in kids[node][1:]:
                    if persistence[k] <= min_persistence:
                        keep[_subtree(kids, k)] = False
        index = np.cumsum(keep) - 1
        new_parent = np.where(parent[keep] >= 0, index[np.maximum(parent[keep], 0)], -1)
        return MergeTree(self.height[keep], new_parent, self.vertex[keep], self.birth[keep], size[keep], self.shape)

    def top(self, n_leaves: int) -> MergeTree:
        """The tree pruned to (about) its ``n_leaves`` most persistent branches, for drawing."""
        persistence = np.sort(self.branch_persistence()[self.leaves])[::-1]
        if persistence.size <= n_leaves:
            return self
        return self.pruned(float(persistence[n_leaves]))


def merge_tree(grid: np.ndarray, connectivity: int | None = None) -> MergeTree:
    """Merge tree of the sublevel filtration of a 1D-4D grid (``+inf`` nodes never enter).

    Args:
        grid: loss values (or any filtration values); ``+inf`` marks nodes outside the filtration.
        connectivity: as in :func:`persist.topology.lower_star_diagrams` (``None``: the full ``3**n - 1``).
    """
    values = validated_grid(grid)
    connectivity = _resolved_connectivity(values.ndim, connectivity)
    flat = values.ravel()
    finite = np.isfinite(flat)
    _, rank = np.unique(flat[finite], return_inverse=True)
    ranks = np.full(flat.size, -1, dtype=np.int64)
    ranks[finite] = rank
    u, v = grid_edges(values.shape, connectivity)
    keep = finite[u] & finite[v]
    u, v = u[keep], v[keep]
    weight = np.maximum(ranks[u], ranks[v]) + 1.0
    graph = sparse.coo_matrix((weight, (u, v)), shape=(flat.size, flat.size))
    tree = minimum_spanning_tree(graph).tocoo()
    order = np.lexsort((tree.col, tree.row, tree.data))
    return _sweep(flat, finite, tree.row[order], tree.col[order], values.shape)


def _sweep(flat: np.ndarray, finite: np.ndarray, us: np.ndarray, vs: np.ndarray, shape: tuple[int, ...]) -> MergeTree:
    """Kruskal with the elder rule over spanning-tree edges sorted by entry level (plain lists: the loop
    runs once per grid node, and Python indexes lists several times faster than numpy arrays)."""
    n = flat.size
    value: list[float] = flat.tolist()
    root = list(range(n))
    size = [1] * n
    low = list(range(n))  # per component root: vertex of the component's minimum
    node_of = [-1] * n  # per component root: its current merge-tree node, -1 before its first real merge
    height: list[float] = []
    parent: list[int] = []
    vertex: list[int] = []
    birth: list[float] = []
    sizes: list[int] = []

    def find(x: int) -> int:
        while root[x] != x:
            root[x] = root[root[x]]
            x = root[x]
        return x

    def add(h: float, v: int, b: float) -> int:
        height.append(h)
        parent.append(-1)
        vertex.append(v)
        birth.append(b)
        sizes.append(0)
        return len(height) - 1

    def node(component: int) -> int:
        if node_of[component] < 0:  # a basin that has never merged: its leaf
            m = low[component]
            node_of[component] = add(value[m], m, value[m])
        return node_of[component]

    for a, b in zip(us.tolist(), vs.tolist(), strict=True):
        ra, rb = find(a), find(b)
        saddle = a if value[a] >= value[b] else b
        level = value[saddle]
        elder, younger = (ra, rb) if (value[low[ra]], low[ra]) <= (value[low[rb]], low[rb]) else (rb, ra)
        if value[low[younger]] < level:  # a real merge: the younger basin dies here with positive lifetime
            kids = (node(elder), node(younger))
            new = add(level, saddle, value[low[elder]])
            for k, component in zip(kids, (elder, younger), strict=True):
                parent[k] = new
                sizes[k] = size[component]
            node_of[elder] = new
        root[younger] = elder
        size[elder] += size[younger]
    for component in np.flatnonzero((np.asarray(root) == np.arange(n)) & finite).tolist():  # one per region
        sizes[node(component)] = size[component]
    return MergeTree(
        np.asarray(height, dtype=np.float64),
        np.asarray(parent, dtype=np.int64),
        np.asarray(vertex, dtype=np.int64),
        np.asarray(birth, dtype=np.float64),
        np.asarray(sizes, dtype=np.int64),
        tuple(shape),
    )


def _subtree(kids: list[list[int]], node: int) -> list[int]:
    out, stack = [], [node]
    while stack:
        x = stack.pop()
        out.append(x)
        stack.extend(kids[x])
    return out
