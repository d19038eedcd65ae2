"""Paired bootstrap confidence intervals for rank correlations.

Rows are resampled as whole (x, y, covariates) tuples: resampling x and y independently (the
``paired=False`` default of ``pingouin.compute_bootci``) destroys the very association being
measured and yields intervals centred on zero. BCa is the default because rank correlations
near +-1 have skewed sampling distributions that percentile intervals cover poorly.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.stats import bootstrap

from persist.stats.rank_statistics import STATISTICS

_SCIPY_METHODS = {"bca": "BCa", "percentile": "percentile", "basic": "basic"}


def bootstrap_ci(
    method: str,
    x: np.ndarray,
    y: np.ndarray,
    covariates: tuple[np.ndarray, ...] = (),
    n_bootstrap: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
    ci_method: str = "bca",
) -> tuple[float, float]:
    """(low, high) of a paired bootstrap CI of ``method``'s coefficient; NaN when none can be formed.

    When BCa is undefined (e.g. every resample gives the same value) the percentile interval of
    the finite resamples is returned instead, so a perfect correlation reports [1, 1], not NaN.
    """
    if n_bootstrap == 0:
        return float("nan"), float("nan")
    data = (np.asarray(x, float), np.asarray(y, float), *(np.asarray(c, float) for c in covariates))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = bootstrap(
            data,
            STATISTICS[method],
            paired=True,
            vectorized=True,
            n_resamples=n_bootstrap,
            confidence_level=confidence,
            method=_SCIPY_METHODS[ci_method],
            rng=np.random.default_rng(seed),
            batch=_batch_size(len(data[0]), method),
        )
    low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
    if np.isfinite(low) and np.isfinite(high):
        return low, high
    dist = res.bootstrap_distribution[np.isfinite(res.bootstrap_distribution)]
    if dist.size == 0:
        return float("nan"), float("nan")
    tail = 50 * (1 - confidence)
    low, high = np.percentile(dist, [tail, 100 - tail])
    return float(low), float(high)


def _batch_size(n: int, method: str) -> int:
    """Resamples per numpy call, keeping each call's arrays near 10^7 elements."""
    per_resample = n * (n - 1) // 2 if method == "kendall" else n
    return max(1, 10_000_000 // max(per_resample, 1))
