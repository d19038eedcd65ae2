"""Leave-one-out influence (jackknife) of a rank correlation.

This is an influence diagnostic, not cross-validation: with n - 1 = 13 rows the coefficient
barely moves for most folds, so "14/14 folds significant" says little about generalization.
What it does show is whether one architecture carries the result (the largest |delta r|).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from persist.stats.rank_statistics import STATISTICS


@dataclass(frozen=True)
class Influence:
    """Per-fold coefficients plus the summary the report prints."""

    folds: pd.DataFrame  # columns: left_out, r, p, delta_r
    most_influential: str
    r_min: float
    r_max: float
    n_significant: int
    n_folds: int


def leave_one_out(
    x: np.ndarray,
    y: np.ndarray,
    labels: np.ndarray,
    method: str,
    covariates: tuple[np.ndarray, ...] = (),
    alpha: float = 0.05,
) -> Influence:
    """Recompute the coefficient without each row; count folds with asymptotic p < alpha.

    All n folds are one vectorized call (row i of the fold matrix lacks observation i); the
    p-values are the same asymptotic ones pingouin reports: a t test on n - 2 - k degrees of
    freedom for (partial) Spearman, scipy's tie-corrected test for Kendall.
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    statistic = STATISTICS[method]
    full = float(statistic(x, y, *covariates))
    fx, fy, fz = _folds(x), _folds(y), tuple(_folds(np.asarray(c, float)) for c in covariates)
    r = statistic(fx, fy, *fz)
    if method == "kendall":
        p = np.array([stats.kendalltau(a, b)[1] for a, b in zip(fx, fy, strict=True)])
    else:
        p = t_test_pvalue(r, len(x) - 1, len(covariates))
    folds = pd.DataFrame({"left_out": [str(v) for v in labels], "r": r, "p": p, "delta_r": r - full})
    delta = folds["delta_r"].abs()
    return Influence(
        folds=folds,
        most_influential=str(folds["left_out"].iloc[int(delta.idxmax())]) if delta.notna().any() else "",
        r_min=float(folds["r"].min()),
        r_max=float(folds["r"].max()),
        n_significant=int((folds["p"] < alpha).sum()),
        n_folds=len(folds),
    )


def t_test_pvalue(r: np.ndarray | float, n: int, n_covariates: int = 0) -> np.ndarray:
    """Two-sided p of a (partial) correlation from t = r sqrt(df / (1 - r^2)), df = n - 2 - k."""
    df = n - 2 - n_covariates
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.abs(r) * np.sqrt(df / (1 - np.asarray(r) ** 2))
    return 2 * stats.t.sf(t, df)


def _folds(v: np.ndarray) -> np.ndarray:
    """(n, n-1): row i is v without element i."""
    n = len(v)
    return np.broadcast_to(v, (n, n))[~np.eye(n, dtype=bool)].reshape(n, n - 1)
