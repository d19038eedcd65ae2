"""Lower-star persistence of loss-like grids: persist vs the published construction, in 2-D and n-D.

    python benchmarks/bench_topology.py            # 2-D 51..1001, then n-D 21^3, 31^3, 11^4 (a few minutes)
    python benchmarks/bench_topology.py --quick    # 2-D 51 and 201, n-D 21^3 only, fewer repeats
    python benchmarks/bench_topology.py --nd-only  # the n-D part only

2-D baseline, measured in the same run: the published PERSIST construction, a per-vertex Python loop
filling a scipy lil_matrix with the 8-neighbour max-edges, then ripser (maxdim=1, no vertex births).
Fields are smooth random landscapes (white noise blurred at sigma = n / 25), like a loss slice.

n-D (H0..H_{n-1} of 3-D and 4-D grids), baselines measured in the same run: ripser on the flag complex of
the (3^n - 1)-neighbour graph (the published construction generalized, with vertex births; exact, so the
diagrams must agree), and for the merge tree a per-node Python union-find sweep over the 3^n - 1
neighbours (how a naive merge-tree code does it). Fields are blurred at sigma = n / 10. The bootstrap
floor's cost is reported per resample (one diagram and one bottleneck distance per dimension), for 64
examples whose losses vary smoothly over the grid.
"""

from __future__ import annotations

import argparse
import itertools
import math
import statistics
import time

import numpy as np
import ripser
from scipy import sparse
from scipy.ndimage import gaussian_filter

from persist.errors import PersistError
from persist.topology import bootstrap_distances, lower_star_diagrams, merge_tree


def published(grid: np.ndarray) -> list[np.ndarray]:
    h, w = grid.shape
    matrix = sparse.lil_matrix((h * w, h * w))
    for i in range(h):
        for j in range(w):
            for di, dj in ((0, 1), (1, -1), (1, 0), (1, 1)):
                if 0 <= i + di < h and 0 <= j + dj < w:
                    u, v = i * w + j, (i + di) * w + j + dj
                    matrix[u, v] = matrix[v, u] = max(grid[i, j], grid[i + di, j + dj])
    return ripser.ripser(matrix.tocsr(), distance_matrix=True, maxdim=1)["dgms"]


def field(n: int, seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).random((n, n))
    return 1.0 + 10.0 * gaussian_filter(noise, sigma=n / 25)


def median_time(fn, grid: np.ndarray, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn(grid)
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def same_bars(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal up to ripser's float32 rounding (H1 is unaffected by the published code's missing births)."""
    a, b = np.sort(a, axis=0), np.sort(b, axis=0)
    return a.shape == b.shape and np.allclose(a, b, rtol=1e-6)


def ripser_can_index(n_nodes: int) -> bool:
    """ripser numbers 2-simplices in 55 bits and aborts the whole process (SIGABRT) beyond that."""
    return math.comb(n_nodes, 3) <= 2**55 - 1


def naive_h0(grid: np.ndarray) -> int:
    """Per-node Python union-find over the 3^n - 1 neighbours (elder rule); returns the number of H0 bars."""
    offsets = [np.array(o) for o in itertools.product((-1, 0, 1), repeat=grid.ndim) if any(o)]
    shape = np.array(grid.shape)
    parent: dict[tuple, tuple] = {}
    birth: dict[tuple, float] = {}
    bars = 0

    def find(x: tuple) -> tuple:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for flat in np.argsort(grid, axis=None, kind="stable"):
        idx = np.unravel_index(flat, grid.shape)
        node = tuple(int(i) for i in idx)
        value = grid[node]
        parent[node], birth[node] = node, value
        for o in offsets:
            nb = np.add(node, o)
            if (nb < 0).any() or (nb >= shape).any() or tuple(nb) not in parent:
                continue
            a, b = find(node), find(tuple(int(i) for i in nb))
            if a != b:
                young, old = (a, b) if birth[a] > birth[b] else (b, a)
                bars += birth[young] < value
                parent[young] = old
    return bars + 1


def nd_field(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).random(shape)
    return 1.0 + 10.0 * gaussian_filter(noise, sigma=shape[0] / 10)


def smooth_per_example(grid: np.ndarray, n: int, seed: int = 1) -> np.ndarray:
    """Per-example losses ``f * (1 + z_i / 2)`` with ``z_i`` a smooth unit-variance field per example: an
    example's loss varies smoothly over parameter space, as a network's does (independent per-node noise
    would instead give thousands of noise bars, which makes each bottleneck distance far slower)."""
    sigma = (grid.shape[0] / 10,) * grid.ndim + (0,)
    z = gaussian_filter(np.random.default_rng(seed).standard_normal(grid.shape + (n,)), sigma=sigma)
    return grid[..., None] * np.clip(1 + 0.5 * z / z.std(), 0.05, None)


def run_nd(quick: bool) -> None:
    plan = [((21,) * 3, 3)] if quick else [((21,) * 3, 5), ((31,) * 3, 3), ((11,) * 4, 3)]
    print(f"\n{'grid':>12} {'method':<34} {'median s':>9} {'speed-up':>9}  notes (speed-up vs the baseline above it)")
    for shape, repeats in plan:
        grid = nd_field(shape)
        label = "x".join(map(str, shape))
        ours, dgms = median_time(lower_star_diagrams, grid, repeats)
        counts = "/".join(str(len(dgms[k])) for k in sorted(dgms))
        try:
            base, base_dgms = median_time(lambda g: lower_star_diagrams(g, backend="ripser"), grid, 1)
            same = all(np.array_equal(base_dgms[k], dgms[k]) for k in dgms)
            print(f"{label:>12} {'ripser flag complex (baseline)':<34} {base:>9.3f} {'1.0x':>9}  1 repeat")
            ratio = f"{base / ours:.1f}x"
        except PersistError as error:
            print(f"{label:>12} {'ripser flag complex (baseline)':<34} {'-':>9} {'-':>9}  refused: {error}")
            ratio, same = "n/a", "n/a"
        print(f"{label:>12} {'persist gudhi, H0..H' + str(grid.ndim - 1):<34} {ours:>9.3f} {ratio:>9}  "
              f"{repeats} repeats; bars per dim {counts}; equals ripser: {same}")
        naive, n_bars = median_time(naive_h0, grid, 1)
        tree_s, tree = median_time(merge_tree, grid, repeats)
        print(f"{label:>12} {'naive Python union-find H0':<34} {naive:>9.3f} {'1.0x':>9}  1 repeat")
        print(f"{label:>12} {'persist merge tree (H0 + tree)':<34} {tree_s:>9.3f} {naive / tree_s:>8.1f}x  "
              f"{repeats} repeats; {len(tree.leaves)} minima, naive finds {n_bars}; "
              f"H0 equals gudhi: {np.array_equal(tree.h0_diagram(), dgms[0])}")
        per_example = smooth_per_example(grid, 64)
        samples = 5
        start = time.perf_counter()
        bootstrap_distances(per_example, samples, "bottleneck", dims=tuple(range(grid.ndim)))
        per_sample = (time.perf_counter() - start) / samples
        print(f"{label:>12} {'bootstrap floor, per resample':<34} {per_sample:>9.3f} {'':>9}  "
              f"{samples} resamples of 64 examples; {per_sample / ours:.1f}x one diagram")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2-D 51 and 201, n-D 21^3 only, fewer repeats")
    parser.add_argument("--nd-only", action="store_true", help="only the 3-D and 4-D grids")
    args = parser.parse_args()
    if not args.nd_only:
        run_2d(args.quick)
    run_nd(args.quick)


def run_2d(quick: bool) -> None:
    plan = [(51, 5), (201, 3)] if quick else [(51, 7), (201, 5), (501, 3), (1001, 3)]
    methods = {
        "persist gudhi (default)": lambda g: lower_star_diagrams(g),
        "persist ripser backend": lambda g: lower_star_diagrams(g, backend="ripser"),
    }
    print(f"{'grid':>10} {'method':<26} {'median s':>10} {'speed-up':>9}  notes (speed-up vs published, same run)")
    for n, repeats in plan:
        grid = field(n)
        base, base_dgms = None, None
        if ripser_can_index(n * n):
            base, base_dgms = median_time(published, grid, repeats)
            print(f"{n:>4}x{n:<5} {'published (loop + ripser)':<26} {base:>10.4f} {'1.0x':>9}  {repeats} repeats")
        else:
            print(f"{n:>4}x{n:<5} {'published (loop + ripser)':<26} {'-':>10} {'-':>9}  "
                  "skipped: ripser aborts (simplex index overflow) above ~600k nodes with H1")
        for name, fn in methods.items():
            try:
                seconds, dgms = median_time(fn, grid, repeats)
            except PersistError as error:
                print(f"{n:>4}x{n:<5} {name:<26} {'-':>10} {'-':>9}  refused: {error}")
                continue
            ratio = f"{base / seconds:.1f}x" if base else "n/a"
            agree = f"; H1 equals published: {same_bars(base_dgms[1], dgms[1])}" if base else ""
            print(f"{n:>4}x{n:<5} {name:<26} {seconds:>10.4f} {ratio:>9}  "
                  f"{repeats} repeats; {len(dgms[0])} H0 / {len(dgms[1])} H1 bars{agree}")


if __name__ == "__main__":
    main()
