"""The interval policy: which interval a test reports, and why, at small n.

Measured by ``benchmarks/bench_stats_coverage.py`` (docs/statistics.md): at n = 7 a bootstrap of
a rank correlation is a resample of 7 rows, many of them undefined or tied, and its intervals
under-cover; the Fisher z interval with Bonett and Wright's (2000) standard error holds its level
there. The policy, stated in every report:

1. Bootstrap (the spec's ``ci_method``, BCa or percentile) only when n >= ``MIN_BOOTSTRAP_N`` and
   fewer than ``MAX_UNDEFINED_SHARE`` of the resamples are undefined, and only when the interval
   it gives contains the point estimate.
2. Otherwise a Fisher z interval: z = atanh(r) +- z_(1-alpha/2) se, with
   se = sqrt((1 + r^2/2) / (n - 3 - k)) for Spearman (k = number of covariates of a partial
   correlation) and se = sqrt(0.437 / (n - 4)) for Kendall's tau. Kendall's standard error holds
   for untied data only (with ties it under-covers, 85-90% at n = 14 in the simulation), so a tied
   Kendall test gets no Fisher z interval.
3. Otherwise none (|r| = 1, too few degrees of freedom, tied Kendall), with the reason.

Every interval carries the method that made it; a method is never relabelled.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import ndtri

from persist.stats.bootstrap import BootstrapInterval, bootstrap_distribution, group_means, interval_from_distribution
from persist.stats.rank_statistics import STATISTICS

MIN_BOOTSTRAP_N = 12
MAX_UNDEFINED_SHARE = 0.05
FISHER_Z = "fisher_z"
POLICY = (
    f"Intervals: bootstrap (paired; two-level when {{label}}s have several rows) only when n >= {MIN_BOOTSTRAP_N}, "
    f"fewer than {MAX_UNDEFINED_SHARE:.0%} of resamples are undefined and the interval contains the estimate; "
    "otherwise a Fisher z interval with Bonett-Wright standard error (sqrt((1 + r^2/2)/(n - 3 - k)) for "
    "Spearman with k covariates, sqrt(0.437/(n - 4)) for Kendall without ties); otherwise none, with the reason. "
    "Column ci_method names the method used, ci_undefined the share of undefined bootstrap resamples."
)


@dataclass(frozen=True)
class Interval:
    """An interval, the method that made it, the share of undefined resamples, and any reason."""

    low: float
    high: float
    method: str  # bca | percentile | two_level_bca | two_level_percentile | fisher_z | none
    undefined_share: float  # NaN when no bootstrap was run
    note: str = ""


def fisher_z_interval(
    r: float, n: int, method: str, n_covariates: int = 0, confidence: float = 0.95, tied: bool = False
) -> Interval:
    """Fisher z interval with the Bonett-Wright standard error, or "none" with the reason.

    ``tied`` says whether x or y has ties; it matters only for Kendall's tau.
    """
    if method == "kendall" and tied:
        return Interval(np.nan, np.nan, "none", np.nan, "Kendall's Fisher z standard error assumes no ties")
    df = n - 4 if method == "kendall" else n - 3 - n_covariates
    if df < 1:
        return Interval(np.nan, np.nan, "none", np.nan, f"too few rows for a Fisher z interval (n = {n})")
    if not np.isfinite(r) or abs(r) >= 1:
        return Interval(np.nan, np.nan, "none", np.nan, "|r| = 1: no interval method is valid at the boundary")
    var = 0.437 if method == "kendall" else 1 + r * r / 2
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
    groups: np.ndarray | None = None,
) -> Interval:
    """The interval the policy reports for one test (see the module docstring).

    With ``groups`` the rows are seeds of the group's architecture: the estimate is the
    coefficient of the group means and the bootstrap has two levels; n counts groups.
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    covariates = tuple(np.asarray(c, float) for c in covariates)
    data = (x, y, *covariates)
    if groups is not None:
        data = tuple(group_means(v, groups) for v in data)
    statistic = STATISTICS[method]
    r = float(statistic(*data)) if estimate is None else float(estimate)
    n = len(data[0])
    tied = any(len(np.unique(v)) < n for v in data[:2])
    fallback = fisher_z_interval(r, n, method, len(covariates), confidence, tied)
    if n_bootstrap == 0:
        return fallback
    boot = _bootstrap(method, x, y, covariates, data, r, n_bootstrap, seed, confidence, ci_method, groups)
    share = boot.undefined_share
    if n < MIN_BOOTSTRAP_N:
        reason = f"bootstrap not used: n = {n} < {MIN_BOOTSTRAP_N}"
    elif share >= MAX_UNDEFINED_SHARE:
        reason = f"bootstrap not used: {share:.1%} of resamples undefined (>= {MAX_UNDEFINED_SHARE:.0%})"
    elif not boot.method:
        reason = f"bootstrap not used: {ci_method} undefined (resamples all on one side of the estimate)"
    elif boot.low == boot.high:
        reason = "bootstrap not used: every defined resample gave the same value"
    elif not boot.low - 1e-12 <= r <= boot.high + 1e-12:
        reason = "bootstrap not used: its interval excluded the estimate"
    else:
        prefix = "two_level_" if groups is not None else ""
        return Interval(boot.low, boot.high, prefix + boot.method, share)
    note = reason if not fallback.note else f"{reason}; {fallback.note}"
    return Interval(fallback.low, fallback.high, fallback.method, share, note)


def _bootstrap(
    method: str, x: np.ndarray, y: np.ndarray, covariates: tuple[np.ndarray, ...], data: tuple[np.ndarray, ...],
    r: float, n_bootstrap: int, seed: int, confidence: float, ci_method: str, groups: np.ndarray | None,
) -> BootstrapInterval:
    dist = bootstrap_distribution(method, x, y, covariates, n_bootstrap, seed, groups)
    jack = None
    if ci_method == "bca":
        n = len(data[0])
        keep = ~np.eye(n, dtype=bool)
        jack = STATISTICS[method](*(np.broadcast_to(v, (n, n))[keep].reshape(n, n - 1) for v in data))
    return interval_from_distribution(dist, r, jack, confidence, ci_method)

