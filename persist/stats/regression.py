"""Rank regression and variance inflation: how much two collinear predictors say jointly.

With topology and parameter count correlated (rho(H1, params) = -0.56 in the published table),
a marginal correlation cannot tell which one carries the signal. OLS on ranks with t-tests
gives each predictor's effect adjusted for the others, and VIF says how much collinearity
inflates those standard errors (VIF = 1 / (1 - R^2_j) of predictor j on the others).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pingouin as pg
from statsmodels.stats.outliers_influence import variance_inflation_factor

from persist.stats.table import complete_cases

COLUMNS = ["outcome", "model", "term", "coef", "se", "t", "p", "r2", "adj_r2", "n", "vif"]


def rank_regression(table: pd.DataFrame, outcome: str, predictors: tuple[str, ...]) -> pd.DataFrame:
    """rank(outcome) ~ 1 + rank(predictors) by OLS on complete cases; one row per term.

    Mid-ranks make the fit invariant to monotone transforms of each measure (no choice of log
    scale for parameter counts), and the t-test of a coefficient is the test of the
    corresponding partial rank correlation.
    """
    data = complete_cases(table, [outcome, *predictors])
    model = f"{outcome} ~ {' + '.join(predictors)}"
    n = len(data)
    if n <= len(predictors) + 1:
        return pd.DataFrame([{"outcome": outcome, "model": model, "term": "", "n": n}], columns=COLUMNS)
    ranks = data[[outcome, *predictors]].rank()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = pg.linear_regression(ranks[list(predictors)], ranks[outcome])
    vif = dict(zip(predictors, variance_inflation(ranks[list(predictors)].to_numpy()), strict=True))
    return pd.DataFrame(
        {
            "outcome": outcome,
            "model": model,
            "term": fit["names"].to_numpy(),
            "coef": fit["coef"].to_numpy(),
            "se": fit["se"].to_numpy(),
            "t": fit["T"].to_numpy(),
            "p": fit["pval"].to_numpy(),
            "r2": fit["r2"].to_numpy(),
            "adj_r2": fit["adj_r2"].to_numpy(),
            "n": n,
            "vif": [vif.get(name, np.nan) for name in fit["names"]],
        },
        columns=COLUMNS,
    )


def variance_inflation(x: np.ndarray) -> list[float]:
    """VIF of each column of ``x`` (statsmodels, with an intercept); 1.0 for a single predictor."""
    design = np.column_stack([np.ones(len(x)), x])
    with warnings.catch_warnings(), np.errstate(divide="ignore"):
        warnings.simplefilter("ignore")
        return [float(variance_inflation_factor(design, j)) for j in range(1, design.shape[1])]
