"""Permutation p-values: vectorized rank-matrix path vs a scipy loop (the published code's approach).

Workload: 20 predictor x outcome pairs, n = 14 rows, 10,000 permutations each (200,000
correlations). The scipy baseline (one ``spearmanr``/``kendalltau`` call per permutation) is
timed on fewer permutations and extrapolated linearly to 10,000; the vectorized path runs the
full 10,000. Both see the same permutations, and their p-values are checked to agree exactly.

    .venv/bin/python benchmarks/bench_stats.py           # ~1 min on a 2-core CPU
    .venv/bin/python benchmarks/bench_stats.py --quick   # ~10 s
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from persist.stats import load_spec, permutation_matrix, permutation_test, run_analysis

N, PAIRS, B = 14, 20, 10_000
ROOT = Path(__file__).resolve().parents[1]


def make_pairs(seed: int = 0) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(PAIRS):
        z = rng.normal(size=N)
        x = np.round(np.maximum(0, z + rng.normal(size=N)), 1)  # ties, as with H1 = 0
        out.append((x, z + 0.5 * rng.normal(size=N), rng.normal(size=N)))
    return out


def vectorized(method: str, pairs, n_perm: int) -> list[float]:
    perms = permutation_matrix(N, n_perm, seed=0)
    cov = lambda z: (z,) if method == "partial_spearman" else ()  # noqa: E731
    return [permutation_test(method, x, y, cov(z), permutations=perms).p for x, y, z in pairs]


def scipy_loop(method: str, pairs, n_perm: int) -> list[float]:
    perms = permutation_matrix(N, n_perm, seed=0)
    fn = stats.spearmanr if method == "spearman" else stats.kendalltau
    out = []
    for x, y, _ in pairs:
        observed = abs(fn(x, y)[0])
        k = sum(abs(fn(x, y[p])[0]) >= observed - 1e-12 for p in perms)
        out.append((k + 1) / (n_perm + 1))
    return out


def median_time(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and baseline permutations")
    args = parser.parse_args()
    repeats, base_perm = (3, 100) if args.quick else (5, 500)
    pairs = make_pairs()
    print(f"{PAIRS} pairs, n = {N}, B = {B:,} permutations; baseline timed on {base_perm} and scaled x{B // base_perm}")
    print(f"{'method':<18}{'vectorized (s)':>16}{'scipy loop (s, extrap.)':>26}{'speed-up':>10}")
    for method in ("spearman", "kendall"):
        t_vec, _ = median_time(lambda method=method: vectorized(method, pairs, B), repeats)
        t_loop, p_loop = median_time(lambda method=method: scipy_loop(method, pairs, base_perm), max(1, repeats // 2))
        assert np.allclose(vectorized(method, pairs, base_perm), p_loop), "vectorized and loop p-values differ"
        t_full = t_loop * B / base_perm
        print(f"{method:<18}{t_vec:>16.3f}{t_full:>26.1f}{t_full / t_vec:>9.0f}x")
    t_part, _ = median_time(lambda: vectorized("partial_spearman", pairs, B), repeats)
    print(f"{'partial (F-L)':<18}{t_part:>16.3f}{'-':>26}{'-':>10}")

    spec = load_spec(ROOT / "analysis" / "persist-published.yaml")
    table = pd.read_csv(ROOT / "tests" / "data" / "persist_published.csv")
    t_run, res = median_time(lambda: run_analysis(table, spec), max(1, repeats // 2))
    print(f"run_analysis on the published table ({len(res.results)} tests, 10k perms, 2k BCa bootstrap, "
          f"LOO, regression, prediction): {t_run:.2f} s")


if __name__ == "__main__":
    main()
