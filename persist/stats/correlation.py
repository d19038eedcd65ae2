"""Point estimates and asymptotic p-values of rank correlations, and why a test is undefined.

Rank correlations are used throughout because n is small (one row per architecture), the
measures span orders of magnitude (parameter counts, curvature), and retention is floored at
zero: Pearson's r would be driven by the one or two largest values.

The partial Spearman coefficient is the one of :mod:`persist.stats.rank_statistics` (residuals of
ranks on [1, rank(Z)]), the same code the permutation test, the bootstrap and the leave-one-out
influence use, so the four can never disagree on a sign or on whether the test is defined.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pingouin as pg

from persist.stats.influence import t_test_pvalue
from persist.stats.rank_statistics import partial_spearman, partial_undefined_reason


@dataclass(frozen=True)
class Correlation:
    """A coefficient with its asymptotic two-sided p-value (t approximation for Spearman)."""

    r: float
    p: float
    n: int
    note: str = ""  # why r is NaN, when it is


def correlate(
    x: np.ndarray, y: np.ndarray, method: str, covariates: tuple[np.ndarray, ...] = ()
) -> Correlation:
    """Spearman / Kendall tau-b (pingouin.corr) or partial Spearman (rank residuals, t test on n-2-k df).

    Inputs must already be complete cases. An undefined test yields NaN with the reason in
    ``note``, not an error: it is reported as not computed rather than silently dropped.
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    reason = undefined_reason(x, y, method, covariates)
    if reason:
        return Correlation(float("nan"), float("nan"), len(x), reason)
    if method == "partial_spearman":
        r = float(partial_spearman(x, y, *covariates))
        return Correlation(r, float(t_test_pvalue(r, len(x), len(covariates))), len(x))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = pg.corr(x, y, method=method)
    return Correlation(float(out["r"].iloc[0]), float(out["p_val"].iloc[0]), len(x))


def undefined_reason(x: np.ndarray, y: np.ndarray, method: str, covariates: tuple[np.ndarray, ...] = ()) -> str:
    """Why the coefficient of this sample cannot be computed ("" when it can)."""
    for name, v in (("predictor", x), ("outcome", y), *(("covariate", c) for c in covariates)):
        if np.ptp(v) == 0:
            return f"undefined: the {name} is constant"
    if method == "partial_spearman":
        reason = partial_undefined_reason(x, y, covariates)
        return f"undefined: {reason}" if reason else ""
    return ""


def not_testable_reason(x: np.ndarray, y: np.ndarray) -> str:
    """A test is not testable when x or y has >= n - 2 equal values (at most two others differ).

    Such a coefficient is decided by two observations; a number for it, and an interval, would be
    read as evidence it cannot carry. The test stays in its family (as p = 1 for the correction).
    """
    n = len(x)
    for name, v in (("predictor", x), ("outcome", y)):
        _, counts = np.unique(v, return_counts=True)
        if n and counts.max() >= n - 2 and counts.max() < n:
            return f"not testable: {counts.max()} of {n} values of the {name} are tied (>= n - 2)"
    return ""
