"""Rank correlations computed along an axis, so thousands of resamples cost one numpy call.

They are the statistics handed to ``scipy.stats.bootstrap(vectorized=True)``; each re-ranks
its input, as a rank statistic must when a resample repeats rows (repeats become ties).
Degenerate resamples (a constant column) give NaN rather than a fake 0.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata


def spearman(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """Spearman's rho: Pearson's r of mid-ranks (ties share their average rank, as in scipy)."""
    return pearson(rankdata(x, axis=axis), rankdata(y, axis=axis), axis=axis)


def kendall(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """Kendall's tau-b: sum of sign products over pairs, over the root of untied pair counts in x and y."""
    x, y = np.moveaxis(np.asarray(x, float), axis, -1), np.moveaxis(np.asarray(y, float), axis, -1)
    i, j = np.triu_indices(x.shape[-1], k=1)
    sx, sy = np.sign(x[..., j] - x[..., i]), np.sign(y[..., j] - y[..., i])
    with np.errstate(invalid="ignore", divide="ignore"):
        return (sx * sy).sum(-1) / np.sqrt((sx * sx).sum(-1) * (sy * sy).sum(-1))


def partial_spearman(x: np.ndarray, y: np.ndarray, *covariates: np.ndarray, axis: int = -1) -> np.ndarray:
    """Partial Spearman: the partial correlation of ranks, from the inverse covariance of [x, y, z...]."""
    ranks = [np.moveaxis(rankdata(v, axis=axis), axis, -1) for v in (x, y, *covariates)]
    a = np.stack(ranks, axis=-1)  # (..., n, m)
    a = a - a.mean(axis=-2, keepdims=True)
    precision = np.linalg.pinv(np.swapaxes(a, -1, -2) @ a, hermitian=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return -precision[..., 0, 1] / np.sqrt(precision[..., 0, 0] * precision[..., 1, 1])


def pearson(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    """Pearson's r along ``axis`` (NaN where either side is constant)."""
    a = a - a.mean(axis=axis, keepdims=True)
    b = b - b.mean(axis=axis, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (a * b).sum(axis) / np.sqrt((a * a).sum(axis) * (b * b).sum(axis))


STATISTICS = {"spearman": spearman, "kendall": kendall, "partial_spearman": partial_spearman}
