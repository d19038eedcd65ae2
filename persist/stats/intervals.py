"""The interval policy: which interval a test reports, and why, at small n.

Chosen on the coverage simulation of ``benchmarks/bench_stats_coverage.py`` (docs/statistics.md):
at n = 7 a paired bootstrap of a rank correlation resamples 7 rows, many resamples are undefined or
tied, and its BCa intervals cover below 93% in 12 of 18 cells (partial Spearman down to 80%). At
n = 14 BCa covers 93.3-98.3%, while the Fisher z intervals below cover 93-97% wherever their variance
applies. The policy, stated in every report:

1. A Fisher z interval wherever a published variance applies: z = atanh(r) +- z_(1-alpha/2)
   sqrt(v / df), df = n - 3 - k for Spearman (k = number of covariates of a partial correlation),
   n - 4 for Kendall's tau. For Spearman v = 1 + r^2/2 (Bonett and Wright 2000); with ``SMALL_DF`` or
   fewer degrees of freedom their r^2/2 term over-widens the interval (up to 98.2% coverage at n = 7)
   and the older constant v = 1.06 (Fieller, Hartley and Pearson 1957) is used, which covers
   92.9-96.5% there. For Kendall v = 0.437, only for untied data (with ties it under-covers, 86-91%
   at n = 14) and n >= ``MIN_KENDALL_N`` (below, tau takes few values and the interval covers 91-99%).
2. Otherwise the bootstrap (the spec's ``ci_method``, BCa or percentile; tied Kendall is its main
   case) only when n >= ``MIN_BOOTSTRAP_N``, fewer than ``MAX_UNDEFINED_SHARE`` of the resamples are
   undefined, and the interval contains the point estimate.
3. Otherwise none (|r| = 1, too few rows, tied Kendall below n = 12), with the reason.

Every interval carries the method that made it; a method is never relabelled.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy.special import ndtri

from persist.stats.bootstrap import bootstrap_distribution, intervals_from_distribution, jackknife
from persist.stats.rank_statistics import STATISTICS

MIN_BOOTSTRAP_N = 12
MAX_UNDEFINED_SHARE = 0.05
SMALL_DF = 4  # Spearman Fisher z: at most this many df -> Fieller's constant variance, else Bonett-Wright
MIN_KENDALL_N = 10
FISHER_Z = "fisher_z"
POLICY = (
    "Intervals: Fisher z with standard error sqrt(v/df) where a published variance applies: Spearman with k "
    f"covariates df = n - 3 - k and v = 1 + r^2/2 (Bonett-Wright), or v = 1.06 (Fieller-Hartley-Pearson) when "
    f"df <= {SMALL_DF}; Kendall without ties and n >= {MIN_KENDALL_N} v = 0.437, df = n - 4. Otherwise a paired "
    f"bootstrap (of the per-{{label}} means when {{label}}s have several rows) only when n >= {MIN_BOOTSTRAP_N}, "
    f"fewer than {MAX_UNDEFINED_SHARE:.0%} of resamples are undefined and the interval contains the estimate; "
    "otherwise none, with the reason. Column ci_method names the method used, ci_undefined the share of "
    "undefined bootstrap resamples."
)


@dataclass(frozen=True)
class Interval:
    """An interval, the method that made it, the share of undefined resamples, and any reason."""

    low: float
    high: float
    method: str  # bca | percentile | fisher_z | none
    undefined_share: float  # NaN when no bootstrap was run
    note: str = ""


def fisher_z_interval(
    r: float, n: int, method: str, n_covariates: int = 0, confidence: float = 0.95, tied: bool = False
) -> Interval:
    """Fisher z interval with the standard error the module docstring states, or "none" with the reason.

    ``tied`` says whether x or y has ties; it matters only for Kendall's tau.
    """
    if method == "kendall" and tied:
        return Interval(np.nan, np.nan, "none", np.nan, "Kendall's Fisher z standard error assumes no ties")
    if method == "kendall" and n < MIN_KENDALL_N:
        return Interval(np.nan, np.nan, "none", np.nan,
                        f"Kendall's Fisher z interval is unreliable below n = {MIN_KENDALL_N} (n = {n})")
    df = n - 4 if method == "kendall" else n - 3 - n_covariates
    if df < 1:
        return Interval(np.nan, np.nan, "none", np.nan, f"too few rows for a Fisher z interval (n = {n})")
    if not np.isfinite(r) or abs(r) >= 1:
        return Interval(np.nan, np.nan, "none", np.nan, "|r| = 1: no interval method is valid at the boundary")
    var = 0.437 if method == "kendall" else 1.06 if df <= SMALL_DF else 1 + r * r / 2
    half = ndtri(0.5 + confidence / 2) * np.sqrt(var / df)
    z = np.arctanh(r)
    return Interval(float(np.tanh(z - half)), float(np.tanh(z + half)), FISHER_Z, np.nan)


def confidence_interval(
    method: str,
    x: np.ndarray,
    y: np.ndarray,
    covariates: tuple[np.ndarray, ...] = (),
    *,
    estimate: float | None = None,
    n_bootstrap: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
    ci_method: str = "bca",
) -> Interval:
    """The interval the policy reports for one test (see the module docstring).

    With several seeds per architecture, pass the per-architecture means: they carry the seed variation,
    and their intervals cover 93-97% in the simulation, where a two-level bootstrap (architectures, then
    seeds within each) covered 85-92% (docs/statistics.md).
    """
    covariates = tuple(np.asarray(c, float) for c in covariates)
    return confidence_intervals(method, np.asarray(x, float)[None], np.asarray(y, float)[None],
                                tuple(c[None] for c in covariates),
                                estimates=None if estimate is None else np.array([estimate]),
                                n_bootstrap=n_bootstrap, seed=seed, confidence=confidence,
                                ci_method=ci_method)[0]


def confidence_intervals(
    method: str,
    x: np.ndarray,
    y: np.ndarray,
    covariates: tuple[np.ndarray, ...] = (),
    *,
    estimates: np.ndarray | None = None,
    n_bootstrap: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
    ci_method: str = "bca",
) -> list[Interval]:
    """The policy's interval for each of many tables of the same size: x, y, covariates are (T, n)."""
    data = tuple(np.asarray(v, float) for v in (x, y, *covariates))
    r = STATISTICS[method](*data) if estimates is None else np.asarray(estimates, float)
    n = data[0].shape[-1]
    ordered = [np.sort(v, -1) for v in data[:2]]
    tied = np.any([np.any(np.diff(v, axis=-1) == 0, -1) for v in ordered], 0)
    out = [fisher_z_interval(float(ri), n, method, len(data) - 2, confidence, bool(t))
           for ri, t in zip(r, tied, strict=True)]
    rest = [i for i, iv in enumerate(out) if iv.method != FISHER_Z]
    if not rest:
        return out
    if n < MIN_BOOTSTRAP_N or not n_bootstrap:
        reason = f"n = {n} < {MIN_BOOTSTRAP_N}" if n < MIN_BOOTSTRAP_N else "n_bootstrap = 0"
        return [iv if iv.method == FISHER_Z else replace(iv, note=f"{iv.note}; no bootstrap: {reason}") for iv in out]
    sub = tuple(v[rest] for v in data)
    dist = bootstrap_distribution(method, sub[0], sub[1], sub[2:], n_bootstrap, seed)
    jack = jackknife(method, sub[0], sub[1], sub[2:]) if ci_method == "bca" else None
    low, high, defined, share = intervals_from_distribution(dist, r[rest], jack, confidence, ci_method)
    for k, i in enumerate(rest):
        if share[k] >= MAX_UNDEFINED_SHARE:
            reason = f"{share[k]:.1%} of resamples undefined (>= {MAX_UNDEFINED_SHARE:.0%})"
        elif not defined[k]:
            reason = f"{ci_method} undefined (resamples all on one side of the estimate)"
        elif low[k] == high[k]:
            reason = "every defined resample gave the same value"
        elif not low[k] - 1e-12 <= r[i] <= high[k] + 1e-12:
            reason = "its interval excluded the estimate"
        else:
            out[i] = Interval(float(low[k]), float(high[k]), ci_method, float(share[k]), out[i].note)
            continue
        out[i] = replace(out[i], undefined_share=float(share[k]), note=f"{out[i].note}; no bootstrap: {reason}")
    return out
