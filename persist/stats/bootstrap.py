"""Paired bootstrap distributions and intervals for rank correlations.

Rows are resampled as whole (x, y, covariates) tuples: resampling x and y independently (the
``paired=False`` default of ``pingouin.compute_bootci``) destroys the very association being
measured and yields intervals centred on zero. With several seeds per architecture the rows
are the per-architecture means: resampling architectures with their seeds together carries the
seed-to-seed variation (it is in the means), and a second level that also resampled seeds within
each architecture under-covered in simulation (85-92% at 14 x 3; docs/statistics.md).

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
) -> np.ndarray:
    """(..., n_bootstrap) statistics of paired resamples; NaN marks an undefined resample.

    Rows are the last axis; leading axes are independent tables resampled with the same row
    indices (so many small tables cost one call).
    """
    rng = np.random.default_rng(seed)
    data = [np.asarray(v, float) for v in (x, y, *covariates)]
    statistic = STATISTICS[method]
    n = data[0].shape[-1]
    tables = int(np.prod(data[0].shape[:-1]))
    out = np.empty((*data[0].shape[:-1], n_bootstrap))
    step = _batch_size(n, tables)
    for start in range(0, n_bootstrap, step):
        size = min(step, n_bootstrap - start)
        idx = rng.integers(0, n, size=(size, n))
        out[..., start : start + size] = statistic(*(v[..., idx] for v in data))
    return out


def jackknife(method: str, x: np.ndarray, y: np.ndarray, covariates: tuple[np.ndarray, ...] = ()) -> np.ndarray:
    """(..., n) leave-one-out values of the statistic: entry i lacks row i."""
    data = [np.asarray(v, float) for v in (x, y, *covariates)]
    n = data[0].shape[-1]
    keep = np.flatnonzero(~np.eye(n, dtype=bool)).reshape(n, n - 1) % n  # row i: every index but i
    return STATISTICS[method](*(v[..., keep] for v in data))


def intervals_from_distribution(
    dist: np.ndarray,
    estimate: np.ndarray,
    jack: np.ndarray | None,
    confidence: float = 0.95,
    ci_method: str = "bca",
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(low, high, defined, undefined_share) of BCa or percentile intervals, one per leading index.

    BCa follows Efron & Tibshirani (1993, §14.3): the bias correction is the mid-rank share of the
    finite resamples below the estimate (as scipy computes it), the acceleration comes from the
    jackknife. Quantiles are linear interpolations of the finite resamples (numpy's default).
    ``defined`` is False (and low/high NaN) where BCa is undefined: every resample on one side of
    the estimate, or an undefined jackknife value. No other method is substituted.
    """
    dist = np.asarray(dist, float)
    finite = np.isfinite(dist)
    k = finite.sum(-1)
    share = 1.0 - k / dist.shape[-1]
    alpha = 1 - confidence
    q = np.broadcast_to(np.array([alpha / 2, 1 - alpha / 2]), (*dist.shape[:-1], 2))
    defined = k > 0
    if ci_method == "bca":
        assert jack is not None, "BCa needs the jackknife values"
        est = np.asarray(estimate, float)[..., None]
        with np.errstate(invalid="ignore", divide="ignore"):
            below = (np.count_nonzero(dist < est, -1) + np.count_nonzero(dist <= est, -1)) / (2 * k)
            z0 = ndtri(below)[..., None]
            u = jack.mean(-1, keepdims=True) - jack
            denom = np.sum(u**2, -1, keepdims=True) ** 1.5
            accel = np.where(denom > 0, np.sum(u**3, -1, keepdims=True) / (6 * np.where(denom > 0, denom, 1)), 0.0)
            zq = z0 + ndtri(q)
            q = ndtr(z0 + zq / (1 - accel * zq))
        defined &= np.all(np.isfinite(jack), -1) & (below > 0) & (below < 1) & np.all(np.isfinite(q), -1)
    ordered = np.sort(dist, -1)  # NaNs last
    pos = np.where(defined[..., None], q, 0.0) * np.maximum(k - 1, 0)[..., None]
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, np.maximum(k - 1, 0)[..., None])
    values = np.take_along_axis(ordered, lo, -1)
    values = values + (np.take_along_axis(ordered, hi, -1) - values) * (pos - lo)
    values = np.where(defined[..., None], values, np.nan)
    return values[..., 0], values[..., 1], defined, share


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
    estimate = STATISTICS[method](x, y, *covariates)
    dist = bootstrap_distribution(method, x, y, covariates, n_bootstrap, seed)
    jack = jackknife(method, x, y, covariates) if ci_method == "bca" else None
    low, high, defined, share = intervals_from_distribution(dist, estimate, jack, confidence, ci_method)
    return BootstrapInterval(float(low), float(high), ci_method if defined else "", float(share), n_bootstrap)


def _batch_size(n: int, tables: int) -> int:
    """Resamples per numpy call, keeping each call's arrays near 2 x 10^6 elements."""
    per_resample = n * n  # mid-ranks and Kendall's pair signs compare every pair
    return max(1, 2_000_000 // max(per_resample * tables, 1))
