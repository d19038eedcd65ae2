"""Point estimates and asymptotic p-values of rank correlations, via pingouin.

Rank correlations are used throughout because n is small (one row per architecture), the
measures span orders of magnitude (parameter counts, curvature), and retention is floored at
zero: Pearson's r would be driven by the one or two largest values.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pingouin as pg


@dataclass(frozen=True)
class Correlation:
    """A coefficient with its asymptotic two-sided p-value (t approximation for Spearman)."""

    r: float
    p: float
    n: int


def correlate(
    x: np.ndarray, y: np.ndarray, method: str, covariates: tuple[np.ndarray, ...] = ()
) -> Correlation:
    """Spearman / Kendall tau-b (pingouin.corr) or partial Spearman (pingouin.partial_corr).

    Inputs must already be complete cases. A constant input yields NaN, not an error: the test
    is reported as undefined rather than silently dropped.
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    if _constant(x) or _constant(y) or any(_constant(c) for c in covariates):
        return Correlation(float("nan"), float("nan"), len(x))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if method == "partial_spearman":
            out = _partial(x, y, covariates)
        else:
            out = pg.corr(x, y, method=method)
    return Correlation(float(out["r"].iloc[0]), float(out["p_val"].iloc[0]), len(x))


def _partial(x: np.ndarray, y: np.ndarray, covariates: tuple[np.ndarray, ...]) -> pd.DataFrame:
    names = [f"_z{i}" for i in range(len(covariates))]
    data = pd.DataFrame({"_x": x, "_y": y, **dict(zip(names, covariates))})
    return pg.partial_corr(data, x="_x", y="_y", covar=names, method="spearman")


def _constant(v: np.ndarray) -> bool:
    return bool(np.ptp(v) == 0)
