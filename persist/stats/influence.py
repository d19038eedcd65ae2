"""Leave-one-out influence (jackknife) of a rank correlation.

This is an influence diagnostic, not cross-validation: with n - 1 = 13 rows the coefficient
barely moves for most folds, so "14/14 folds significant" says little about generalization.
What it does show is whether one architecture carries the result (the largest |delta r|).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from persist.stats.correlation import correlate


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
    """Recompute the coefficient without each row; count folds with asymptotic p < alpha."""
    full = correlate(x, y, method, covariates).r
    rows = []
    for i in range(len(x)):
        keep = np.arange(len(x)) != i
        fold = correlate(x[keep], y[keep], method, tuple(c[keep] for c in covariates))
        rows.append((str(labels[i]), fold.r, fold.p, fold.r - full))
    folds = pd.DataFrame(rows, columns=["left_out", "r", "p", "delta_r"])
    delta = folds["delta_r"].abs()
    return Influence(
        folds=folds,
        most_influential=str(folds["left_out"].iloc[int(delta.idxmax())]) if delta.notna().any() else "",
        r_min=float(folds["r"].min()),
        r_max=float(folds["r"].max()),
        n_significant=int((folds["p"] < alpha).sum()),
        n_folds=len(folds),
    )
