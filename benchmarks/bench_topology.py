"""Lower-star persistence (H0 + H1) of loss-like grids: persist vs the published construction.

    python benchmarks/bench_topology.py            # 51, 201, 501, 1001 (about 1-2 minutes on 2 CPU cores)
    python benchmarks/bench_topology.py --quick    # 51 and 201, fewer repeats

The baseline, measured in the same run, is the published PERSIST construction: a per-vertex Python loop
filling a scipy lil_matrix with the 8-neighbour max-edges, then ripser (maxdim=1, no vertex births).
Fields are smooth random landscapes (white noise blurred at sigma = n / 25), like a loss slice.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import numpy as np
import ripser
from scipy import sparse
from scipy.ndimage import gaussian_filter

from persist.errors import PersistError
from persist.topology import lower_star_diagrams

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="51 and 201 only, fewer repeats")
    args = parser.parse_args()
    plan = [(51, 5), (201, 3)] if args.quick else [(51, 7), (201, 5), (501, 3), (1001, 3)]
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
