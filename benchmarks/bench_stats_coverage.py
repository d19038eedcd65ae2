"""Coverage of the intervals the analysis reports, at the sample sizes of a study (n = 7 and 14).

For each cell (n, continuous or quantized data, latent correlation, statistic) the script draws
R independent tables, asks the interval policy (persist.stats.intervals) for each table's
interval and counts how often it contains the population value of the statistic. The population
value is that of a 400,000-row sample of the same distribution (Kendall: 100,000 rows), which for
quantized data is the tie-aware (mid-rank / tau-b) value the sample statistic estimates.

Data: z ~ N(0, 1); (e1, e2) bivariate normal with correlation rho; x = 0.6 z + 0.8 e1,
y = 0.6 z + 0.8 e2; the partial correlation controls for z. Quantized: round(1.2 v) for x, y and
z (about 7 distinct values, many ties). Rows with an undefined estimate or no interval ("none",
e.g. |r| = 1) are counted but not scored. The reference rows show what the policy does *not*
report (the bootstrap for every table, Fisher z for tied or small-n Kendall), to show why.

    .venv/bin/python benchmarks/bench_stats_coverage.py            # R = 1000, B = 999: a few minutes
    .venv/bin/python benchmarks/bench_stats_coverage.py --quick    # R = 400, B = 499
    .venv/bin/python benchmarks/bench_stats_coverage.py --fisher-z-only   # the two Spearman variances, n = 7-14
    .venv/bin/python benchmarks/bench_stats_coverage.py --seeds           # n = 14 architectures x 3 seeds
"""

from __future__ import annotations

import argparse
import time
import zlib

import numpy as np
from scipy import stats

from persist.stats.bootstrap import bootstrap_distribution, intervals_from_distribution, jackknife
from persist.stats.intervals import MIN_KENDALL_N, SMALL_DF, confidence_intervals
from persist.stats.rank_statistics import STATISTICS

METHODS = ("spearman", "kendall", "partial_spearman")
RHOS = (0.0, 0.6, 0.9)
CHUNK = 100  # tables per bootstrap call; each chunk has its own resampling seed


def draw(rng: np.random.Generator, count: int, n: int, rho: float, quantized: bool) -> tuple[np.ndarray, ...]:
    z = rng.normal(size=(count, n))
    e1 = rng.normal(size=(count, n))
    e2 = rho * e1 + np.sqrt(1 - rho**2) * rng.normal(size=(count, n))
    x, y = 0.6 * z + 0.8 * e1, 0.6 * z + 0.8 * e2
    if quantized:
        x, y, z = (np.round(1.2 * v) for v in (x, y, z))
    return x, y, z


def population_value(method: str, rho: float, quantized: bool) -> float:
    rng = np.random.default_rng(12345)
    size = 100_000 if method == "kendall" else 400_000
    x, y, z = (v[0] for v in draw(rng, 1, size, rho, quantized))
    if method == "kendall":
        return float(stats.kendalltau(x, y)[0])
    return float(STATISTICS[method](x, y, *((z,) if method == "partial_spearman" else ())))


def wilson(hits: int, total: int) -> tuple[float, float]:
    if total == 0:
        return float("nan"), float("nan")
    p, z = hits / total, 1.96
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * np.sqrt(p * (1 - p) / total + z * z / (4 * total**2)) / (1 + z * z / total)
    return centre - half, centre + half


def cell(n: int, quantized: bool, rho: float, method: str, reps: int, boot: int, ci_method: str) -> dict:
    truth = population_value(method, rho, quantized)
    rng = np.random.default_rng(zlib.crc32(repr((n, quantized, rho, method)).encode()))
    x, y, z = draw(rng, reps, n, rho, quantized)
    cov = (z,) if method == "partial_spearman" else ()
    r = STATISTICS[method](x, y, *cov)
    ok = np.isfinite(r)
    tallies: dict[str, list] = {}
    reference: dict[str, list] = {}
    for start in range(0, reps, CHUNK):
        part = np.flatnonzero(ok[start : start + CHUNK]) + start
        if part.size == 0:
            continue
        data = (x[part], y[part], *(c[part] for c in cov))
        ivs = confidence_intervals(method, data[0], data[1], data[2:], estimates=r[part], n_bootstrap=boot,
                                   seed=start, ci_method=ci_method)
        for iv in ivs:
            t = tallies.setdefault(iv.method, [0, 0, 0.0])
            t[1] += 1
            if iv.method != "none":
                t[0] += iv.low <= truth <= iv.high
                t[2] += iv.high - iv.low
        _reference(method, n, data, r[part], truth, boot, start, ci_method, reference)
        if n >= 12 and ci_method == "bca":  # the policy's other bootstrap method, for specs that choose it
            for iv in confidence_intervals(method, data[0], data[1], data[2:], estimates=r[part], n_bootstrap=boot,
                                           seed=start, ci_method="percentile"):
                if iv.method == "fisher_z":
                    continue  # the same Fisher z row as above
                t = tallies.setdefault(f"{iv.method} (ci_method: percentile)", [0, 0, 0.0])
                t[1] += 1
                if iv.method != "none":
                    t[0] += iv.low <= truth <= iv.high
                    t[2] += iv.high - iv.low
    return {"n": n, "data": "quantized" if quantized else "continuous", "rho": rho, "method": method,
            "truth": truth, "undefined": int((~ok).sum()), "tallies": tallies, "reference": reference}


def _reference(method, n, data, r, truth, boot, seed, ci_method, out) -> None:
    """Intervals the policy does not report, scored the same way, to show why it does not."""
    dist = bootstrap_distribution(method, data[0], data[1], data[2:], boot, seed)  # the bootstrap for every table
    jack = jackknife(method, data[0], data[1], data[2:]) if ci_method == "bca" else None
    low, high, defined, _ = intervals_from_distribution(dist, r, jack, 0.95, ci_method)
    label = "refused: n < 12" if n < 12 else "every table; the policy's where Fisher z does not apply"
    t = out.setdefault(f"{ci_method} ({label})", [0, 0, 0.0])
    t[1] += int(defined.sum())
    t[0] += int(((low <= truth) & (truth <= high) & defined).sum())
    t[2] += float(np.nansum(high - low))
    if method == "kendall":  # Kendall's Fisher z where the policy refuses it (ties, n < MIN_KENDALL_N)
        half = 1.959963984540054 * np.sqrt(0.437 / (n - 4))
        for a, b, ri in zip(data[0], data[1], r, strict=True):
            tied = len(np.unique(a)) < n or len(np.unique(b)) < n
            if abs(ri) >= 1 or not (tied or n < MIN_KENDALL_N):
                continue
            name = "fisher_z (refused: tied Kendall)" if tied else f"fisher_z (refused: Kendall n < {MIN_KENDALL_N})"
            low, high = np.tanh(np.arctanh(ri) - half), np.tanh(np.arctanh(ri) + half)
            t = out.setdefault(name, [0, 0, 0.0])
            t[1] += 1
            t[0] += low <= truth <= high
            t[2] += high - low


def fisher_z_variances(reps: int) -> None:
    """Coverage of the Fisher z interval under Bonett-Wright's variance (1 + r^2/2) and Fieller's constant
    1.06, Spearman and partial Spearman at n = 7-14: the comparison behind the policy's ``SMALL_DF``."""
    print(f"R = {reps} tables per cell; Fisher z for every finite |r| < 1\n")
    print("| n | df | data | latent rho | statistic | population value | Bonett-Wright | Fieller 1.06 | policy |")
    print("|---|---|---|---|---|---|---|---|---|")
    half = 1.959963984540054
    for n in (7, 8, 9, 10, 14):
        for quantized in (False, True):
            for rho in RHOS:
                for method in ("spearman", "partial_spearman"):
                    truth = population_value(method, rho, quantized)
                    rng = np.random.default_rng(zlib.crc32(repr((n, quantized, rho, method, "fz")).encode()))
                    x, y, z = draw(rng, reps, n, rho, quantized)
                    cov = (z,) if method == "partial_spearman" else ()
                    r = STATISTICS[method](x, y, *cov)
                    r = r[np.isfinite(r) & (np.abs(r) < 1)]
                    df = n - 3 - len(cov)
                    cover = []
                    for var in (1 + r * r / 2, np.full_like(r, 1.06)):
                        w = half * np.sqrt(var / df)
                        cover.append(np.mean((np.tanh(np.arctanh(r) - w) <= truth) & (truth <= np.tanh(np.arctanh(r) + w))))
                    policy = "Fieller" if df <= SMALL_DF else "BW"
                    print(f"| {n} | {df} | {'quantized' if quantized else 'continuous'} | {rho:.1f} | {method} | "
                          f"{truth:+.3f} | {cover[0]:.1%} | {cover[1]:.1%} | {policy} |", flush=True)


SEEDS = 3
SEED_NOISE = 0.5  # sd of the seed-to-seed variation of x and y around their architecture's value


def draw_seeded(rng: np.random.Generator, count: int, n: int, rho: float, quantized: bool) -> tuple[np.ndarray, ...]:
    """(count, n x SEEDS) rows: architecture values from :func:`draw`, plus seed noise on x and y
    (the covariate, a parameter count, is the same for every seed of an architecture)."""
    x, y, z = (np.repeat(v, SEEDS, axis=-1) for v in draw(rng, count, n, rho, False))
    x = x + SEED_NOISE * rng.normal(size=x.shape)
    y = y + SEED_NOISE * rng.normal(size=y.shape)
    if quantized:
        x, y, z = (np.round(1.2 * v) for v in (x, y, z))
    return x, y, z


def seeded(reps: int, boot: int) -> None:
    """Coverage of the interval of the per-architecture-mean coefficient with 3 seeds per architecture;
    the target is that coefficient's population value (400,000 architectures)."""
    print(f"R = {reps} tables per cell, B = {boot} resamples of whole architectures, n = 14 architectures x "
          f"{SEEDS} seeds\n")
    print("| data | latent rho | statistic | population value | interval | intervals | coverage | Wilson 95% | 93-97%? |")
    print("|---|---|---|---|---|---|---|---|---|")
    n = 14
    for quantized in (False, True):
        for rho in (0.0, 0.6):
            for method in ("spearman", "partial_spearman"):
                cov = method == "partial_spearman"
                big = draw_seeded(np.random.default_rng(12345), 1, 400_000, rho, quantized)
                means = [v[0].reshape(-1, SEEDS).mean(-1) for v in big]
                truth = float(STATISTICS[method](means[0], means[1], *((means[2],) if cov else ())))
                rng = np.random.default_rng(zlib.crc32(repr((quantized, rho, method, "two-level")).encode()))
                x, y, z = (v.reshape(reps, n, SEEDS).mean(-1) for v in draw_seeded(rng, reps, n, rho, quantized))
                tallies: dict[str, list[int]] = {}
                for start in range(0, reps, CHUNK):
                    part = slice(start, start + CHUNK)
                    for iv in confidence_intervals(method, x[part], y[part], (z[part],) if cov else (),
                                                   n_bootstrap=boot, seed=start):
                        t = tallies.setdefault(iv.method, [0, 0])
                        t[1] += 1
                        t[0] += bool(iv.low <= truth <= iv.high)
                for name, (hits, total) in sorted(tallies.items()):
                    lo, hi = wilson(hits, total)
                    flag = "(no interval)" if name == "none" else "ok" if 0.93 <= hits / total <= 0.97 else (
                        "CI overlaps 93-97" if lo <= 0.97 and hi >= 0.93 else "OUT")
                    cover = "–" if name == "none" else f"{hits / total:.1%}"
                    print(f"| {'quantized' if quantized else 'continuous'} | {rho:.1f} | {method} | {truth:+.3f} | "
                          f"{name} | {total} | {cover} | [{lo:.1%}, {hi:.1%}] | {flag} |", flush=True)


def rows_of(result: dict) -> list[str]:
    lines = []
    for kind, source in (("policy", result["tallies"]), ("reference", result["reference"])):
        for name, (hits, total, width) in sorted(source.items()):
            lo, hi = wilson(hits, total)
            if name.startswith("none"):
                cov = "–"
                flag = "(no interval)"
            else:
                cov = f"{hits / total:.1%}" if total else "–"
                flag = "" if kind == "reference" else ("ok" if 0.93 <= hits / total <= 0.97 else
                                                       "CI overlaps 93-97" if lo <= 0.97 and hi >= 0.93 else "OUT")
            ci = f"[{lo:.1%}, {hi:.1%}]" if total and not name.startswith("none") else ""
            mean_width = f"{width / total:.2f}" if total and not name.startswith("none") else ""
            label = name if kind == "policy" else f"_{name}_"
            lines.append(f"| {result['n']} | {result['data']} | {result['rho']:.1f} | {result['method']} | "
                         f"{result['truth']:+.3f} | {label} | {total} | {cov} | {ci} | {mean_width} | {flag} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="R = 400 tables per cell, B = 499 resamples")
    parser.add_argument("--ci-method", default="bca", choices=("bca", "percentile"))
    parser.add_argument("--seeds", action="store_true",
                        help="coverage with 3 seeds per architecture, interval of the architecture means (R = 400)")
    parser.add_argument("--fisher-z-only", action="store_true",
                        help="compare the two Spearman Fisher z variances at n = 7-14 (R = 4000, seconds)")
    args = parser.parse_args()
    if args.fisher_z_only:
        fisher_z_variances(4000)
        return
    if args.seeds:
        seeded(400, 999)
        return
    reps, boot = (400, 499) if args.quick else (1000, 999)
    started = time.perf_counter()
    print(f"R = {reps} tables per cell, B = {boot} bootstrap resamples, bootstrap method {args.ci_method}\n")
    print("| n | data | latent rho | statistic | population value | interval | intervals | coverage "
          "| Wilson 95% | mean width | 93-97%? |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for n in (7, 14):
        for quantized in (False, True):
            for rho in RHOS:
                for method in METHODS:
                    for line in rows_of(cell(n, quantized, rho, method, reps, boot, args.ci_method)):
                        print(line, flush=True)
    print(f"\n{time.perf_counter() - started:.0f} s in total")


if __name__ == "__main__":
    main()
