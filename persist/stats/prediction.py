"""Leave-one-architecture-out prediction: does topology predict forgetting out of sample?

A correlation across 14 models can be driven by a confound the models share; the honest
question is whether adding a measure improves prediction of an unseen architecture over a
parameter-count-only baseline. Each outer fold holds out every row of one architecture;
ridge's penalty is chosen inside the training fold only (RidgeCV's efficient leave-one-out
over ``alphas``), so the held-out architecture never influences its own prediction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from sklearn.base import RegressorMixin, clone
from sklearn.dummy import DummyRegressor
from sklearn.linear_model import RidgeCV
from sklearn.metrics import mean_absolute_error, r2_score
from sklearn.model_selection import LeaveOneGroupOut
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import QuantileTransformer, StandardScaler

from persist.errors import DataError
from persist.stats.table import complete_cases

INTERCEPT = "intercept_only"
SCORE_COLUMNS = ["model", "features", "n", "r2", "spearman", "spearman_p", "mae", "median_alpha", "note"]
INFORMATION_TOL = 1e-6  # relative to the target's standard deviation


@dataclass(frozen=True)
class PredictionResult:
    """Out-of-sample scores per model and the held-out predictions behind them."""

    scores: pd.DataFrame  # model, features, n, r2, spearman, spearman_p, mae, median_alpha, note
    predictions: pd.DataFrame  # label, target, one column per model


def predict_leave_one_out(
    table: pd.DataFrame,
    target: str,
    models: Mapping[str, tuple[str, ...]],
    label: str,
    alphas: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0, 100.0, 1000.0),
    transform: str = "rank",
) -> PredictionResult:
    """Held-out predictions and scores for each feature set plus an intercept-only floor.

    All models use the same rows (complete on the target and every feature), so their scores
    are comparable. ``transform="rank"`` maps each feature to its quantile within the training
    fold (no log-scale choice, no leakage); ``"standard"`` only standardizes.
    R^2 is 1 - SSE/SST around the mean of all targets. The intercept-only model predicts the
    mean of the other rows, so its R^2 is the floor 1 - (n/(n-1))^2; its Spearman is left NaN
    because those predictions are perfectly anti-ranked by construction. A model whose held-out
    predictions equal intercept-only's (up to ``INFORMATION_TOL`` x the target's spread: a
    constant or all-zero feature) carries no information and gets no scores, only a note: its
    Spearman would be the same artefactual -1.
    """
    features = list(dict.fromkeys(f for fs in models.values() for f in fs))
    data = complete_cases(table, [target, *features])
    groups = data[label].to_numpy()
    if len(np.unique(groups)) < 3:
        raise DataError(f"prediction of '{target}' needs >= 3 {label}s with complete values, got {len(data)} rows")
    y = data[target].to_numpy(float)
    preds = {INTERCEPT: _held_out(DummyRegressor(), np.zeros((len(y), 1)), y, groups)[0]}
    alphas_chosen: dict[str, list[float]] = {INTERCEPT: []}
    for name, cols in models.items():
        estimator = _ridge(alphas, transform, _min_train_size(groups))
        preds[name], alphas_chosen[name] = _held_out(estimator, data[list(cols)].to_numpy(float), y, groups)
    scores = pd.DataFrame(
        [_score(name, models.get(name, ()), y, yhat, alphas_chosen[name], preds[INTERCEPT])
         for name, yhat in preds.items()],
        columns=SCORE_COLUMNS,
    )
    predictions = pd.DataFrame({label: groups, target: y, **preds})
    return PredictionResult(scores=scores, predictions=predictions)


def _ridge(alphas: tuple[float, ...], transform: str, n_train: int) -> Pipeline:
    steps: list = [StandardScaler(), RidgeCV(alphas=np.asarray(alphas, float))]
    if transform == "rank":
        steps.insert(0, QuantileTransformer(n_quantiles=max(2, min(1000, n_train))))
    return make_pipeline(*steps)


def _held_out(
    estimator: RegressorMixin, x: np.ndarray, y: np.ndarray, groups: np.ndarray
) -> tuple[np.ndarray, list[float]]:
    yhat = np.empty_like(y)
    chosen = []
    for train, test in LeaveOneGroupOut().split(x, y, groups):
        fitted = clone(estimator).fit(x[train], y[train])
        yhat[test] = fitted.predict(x[test])
        ridge = fitted[-1] if isinstance(fitted, Pipeline) else None
        if ridge is not None:
            chosen.append(float(ridge.alpha_))
    return yhat, chosen


def _min_train_size(groups: np.ndarray) -> int:
    _, counts = np.unique(groups, return_counts=True)
    return int(len(groups) - counts.max())


def _score(
    name: str, features: tuple[str, ...], y: np.ndarray, yhat: np.ndarray, alphas: list[float], floor: np.ndarray
) -> dict:
    row = {"model": name, "features": ", ".join(features) if features else "(none)", "n": len(y),
           "median_alpha": float(np.median(alphas)) if alphas else np.nan, "note": ""}
    scale = max(float(np.std(y)), np.finfo(float).tiny)
    if name != INTERCEPT and np.max(np.abs(yhat - floor)) <= INFORMATION_TOL * scale:
        return row | {"r2": np.nan, "spearman": np.nan, "spearman_p": np.nan, "mae": np.nan,
                      "note": "predictions equal intercept-only (no information in the features): not scored"}
    rho, p = (np.nan, np.nan) if name == INTERCEPT or np.ptp(yhat) == 0 else spearmanr(yhat, y)
    return row | {"r2": float(r2_score(y, yhat)), "spearman": float(rho), "spearman_p": float(p),
                  "mae": float(mean_absolute_error(y, yhat))}
