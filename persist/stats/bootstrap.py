"""Paired bootstrap distributions and intervals for rank correlations.

Rows are resampled as whole (x, y, covariates) tuples: resampling x and y independently (the
``paired=False`` default of ``pingouin.compute_bootci``) destroys the very association being
measured and yields intervals centred on zero. With several seeds per architecture the
resampling has two levels (architectures, then seeds within each drawn architecture), so
seed-to-seed variation reaches the interval.

A resample can be undefined (a constant column, a zero partial residual). Those resamples are
exactly the ones missing the rare distinct values, so an interval of the finite ones alone is
conditional and biased: this module counts them and returns the share, and
:mod:`persist.stats.intervals` decides whether the bootstrap may be used at all.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr, ndtri

from persist.stats.rank_statistics import STATISTICS


@dataclass(frozen=True)
class BootstrapInterval:
    """A bootstrap interval, the method that made it and the share of undefined resamples."""

    low: float
    high: float
    method: str  # "bca" or "percentile" (or "" when no interval could be formed)
    undefined_share: float
    n_resamples: int


def bootstrap_distribution(
    method: str,
    x: np.ndarray,
    y: np.ndarray,
    covariates: tuple[np.ndarray, ...] = (),
    n_bootstrap: int = 2000,
    seed: int = 0,
    groups: np.ndarray | None = None,
) -> np.ndarray:
    """(n_bootstrap,) statistics of paired resamples; NaN marks an undefined resample.

    Without ``groups`` rows are resampled. With ``groups`` (one label per row) the statistic is
    computed on group means: groups are drawn with replacement, then each drawn group's rows are
    drawn with replacement within it (a two-level bootstrap), and the drawn rows are averaged.
    """
    rng = np.random.default_rng(seed)
    data = [np.asarray(v, float) for v in (x, y, *covariates)]
    statistic = STATISTICS[method]
    out = np.empty(n_bootstrap)
    n = len(data[0]) if groups is None else len(np.unique(groups))
    step = _batch_size(n, method)
    for start in range(0, n_bootstrap, step):
        size = min(step, n_bootstrap - start)
        if groups is None:
            idx = rng.integers(0, n, size=(size, n))
            samples = [v[idx] for v in data]
        else:
            samples = _two_level_means(data, np.asarray(groups), size, rng)
        out[start : start + size] = statistic(*samples)
    return out


def group_means(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Mean of ``values`` within each group, groups in sorted order of their labels."""
    _, inverse = np.unique(groups, return_inverse=True)
    return np.bincount(inverse, weights=np.asarray(values, float)) / np.bincount(inverse)


def interval_from_distribution(
    dist: np.ndarray,
    estimate: float,
    jackknife: np.ndarray | None,
    confidence: float = 0.95,
    ci_method: str = "bca",
) -> BootstrapInterval:
    """BCa (Efron & Tibshirani 1993, §14.3) or percentile interval of the finite resamples.

    The bias correction uses the mid-rank share of resamples below the estimate (as scipy does);
    the acceleration comes from the jackknife values. Returns NaNs with method "" when BCa is
    undefined (every resample on one side of the estimate, or an undefined jackknife value):
    it is never silently replaced by another method.
    """
    finite = dist[np.isfinite(dist)]
    share = 1.0 - finite.size / dist.size if dist.size else 1.0
    none = BootstrapInterval(float("nan"), float("nan"), "", share, dist.size)
    if finite.size == 0:
        return none
    alpha = 1 - confidence
    q = np.array([alpha / 2, 1 - alpha / 2])
    if ci_method == "bca":
        below = (np.count_nonzero(finite < estimate) + np.count_nonzero(finite <= estimate)) / (2 * finite.size)
        if jackknife is None or not np.all(np.isfinite(jackknife)) or not 0 < below < 1:
            return none
        z0 = ndtri(below)
        u = jackknife.mean() - jackknife
        denom = np.sum(u**2) ** 1.5
        accel = np.sum(u**3) / (6 * denom) if denom > 0 else 0.0
        zq = z0 + ndtri(q)
        q = ndtr(z0 + zq / (1 - accel * zq))
        if not np.all(np.isfinite(q)):
            return none
    low, high = np.quantile(finite, q)
    return BootstrapInterval(float(low), float(high), ci_method, share, dist.size)


def bootstrap_ci(
    method: str,
    x: np.ndarray,
    y: np.ndarray,
    covariates: tuple[np.ndarray, ...] = (),
    n_bootstrap: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
    ci_method: str = "bca",
) -> BootstrapInterval:
    """Paired (one-level) bootstrap interval of ``method``'s coefficient, with its undefined share."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    covariates = tuple(np.asarray(c, float) for c in covariates)
    if n_bootstrap == 0:
        return BootstrapInterval(float("nan"), float("nan"), "", float("nan"), 0)
    statistic = STATISTICS[method]
    estimate = float(statistic(x, y, *covariates))
    dist = bootstrap_distribution(method, x, y, covariates, n_bootstrap, seed)
    jack = statistic(*(_folds(v) for v in (x, y, *covariates))) if ci_method == "bca" else None
    return interval_from_distribution(dist, estimate, jack, confidence, ci_method)


def _two_level_means(data: list[np.ndarray], groups: np.ndarray, size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Group means of ``size`` two-level resamples: (size, n_groups) per variable."""
    labels, inverse = np.unique(groups, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    counts = np.bincount(inverse)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    n_groups, width = len(labels), int(counts.max())
    drawn = rng.integers(0, n_groups, size=(size, n_groups))  # level 1: groups
    pick = np.floor(rng.random((size, n_groups, width)) * counts[drawn][..., None]).astype(int)
    rows = order[starts[drawn][..., None] + pick]  # level 2: rows within each drawn group
    used = np.arange(width) < counts[drawn][..., None]  # a group of m rows averages m draws
    return [np.where(used, v[rows], 0.0).sum(-1) / counts[drawn] for v in data]


def _folds(v: np.ndarray) -> np.ndarray:
    """(n, n-1): row i is v without element i."""
    n = len(v)
    return np.broadcast_to(v, (n, n))[~np.eye(n, dtype=bool)].reshape(n, n - 1)


def _batch_size(n: int, method: str) -> int:
    """Resamples per numpy call, keeping each call's arrays near 10^6 elements."""
    per_resample = n * (n - 1) // 2 if method == "kendall" else n
    return max(1, 1_000_000 // max(per_resample, 1))
