"""Stage 5: does topology predict initialization quality better than cheap baselines?

Every (feature set, model) pair is scored by nested cross-validation repeated over several seeds:
the outer K-fold gives out-of-fold predictions for every init, hyperparameters are tuned only inside
each outer training fold, and one seed fixes the same outer folds for every pair, so pairs are
compared on identical splits (paired differences across seeds). Scores are R^2 (0 = predicting the
training mean; negative = worse) and Spearman's rho of the out-of-fold predictions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.stats import spearmanr
from sklearn.base import BaseEstimator
from sklearn.ensemble import RandomForestRegressor
from sklearn.inspection import permutation_importance
from sklearn.linear_model import RidgeCV
from sklearn.metrics import r2_score
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from tqdm.auto import tqdm

from persist.errors import ConfigError, DataError

MODELS = ("ridge", "forest")


@dataclass(frozen=True)
class PredictionConfig:
    models: tuple[str, ...] = MODELS
    outer_folds: int = 5
    inner_folds: int = 3
    seeds: int = 5  # repeats of the whole nested CV with reshuffled folds
    forest_trees: int = 100
    forest_leaf_grid: tuple[int, ...] = (1, 5)  # min_samples_leaf tried in the inner CV; one value skips it
    importance_repeats: int = 5  # permutations per feature per outer test fold

    def __post_init__(self) -> None:
        unknown = set(self.models) - set(MODELS)
        if not self.models or unknown:
            raise ConfigError(f"prediction.models must be a non-empty subset of {MODELS}, got {self.models}")
        for name in ("outer_folds", "inner_folds"):
            if getattr(self, name) < 2:
                raise ConfigError(f"prediction.{name} must be >= 2, got {getattr(self, name)}")
        if not self.forest_leaf_grid or min(self.forest_leaf_grid) < 1:
            raise ConfigError(f"prediction.forest_leaf_grid must list integers >= 1, got {self.forest_leaf_grid}")
        for name in ("seeds", "forest_trees", "importance_repeats"):
            if getattr(self, name) < 1:
                raise ConfigError(f"prediction.{name} must be >= 1, got {getattr(self, name)}")


def make_model(name: str, cfg: PredictionConfig, seed: int) -> BaseEstimator:
    """An estimator that tunes itself on the data it is fitted to (the inner loop of nested CV).

    ridge: z-scored features, alpha by efficient leave-one-out inside the training fold.
    forest: random forest, min_samples_leaf by inner K-fold grid search (fixed if the grid has one value).
    """
    if name == "ridge":
        return make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-3, 3, 13)))
    forest = RandomForestRegressor(n_estimators=cfg.forest_trees, max_features=0.5, random_state=seed, n_jobs=1)
    if len(cfg.forest_leaf_grid) == 1:
        return forest.set_params(min_samples_leaf=cfg.forest_leaf_grid[0])
    inner = KFold(cfg.inner_folds, shuffle=True, random_state=seed)
    return GridSearchCV(forest, {"min_samples_leaf": list(cfg.forest_leaf_grid)}, cv=inner, scoring="r2")


def seed_sd(values: np.ndarray) -> float:
    """Sample standard deviation over seeds (0 with a single seed)."""
    return float(values.std(ddof=1)) if len(values) > 1 else 0.0


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    return float(spearmanr(a, b).statistic) if np.ptp(a) > 0 and np.ptp(b) > 0 else 0.0


@dataclass(frozen=True)
class Score:
    """Out-of-fold scores of one (feature set, model) pair, one entry per seed."""

    feature_set: str
    model: str
    r2: np.ndarray
    spearman: np.ndarray
    importance: dict[str, float] = field(default_factory=dict)  # mean drop in R^2 per feature


def nested_cv(
    x: np.ndarray, y: np.ndarray, columns: list[str], model: str, cfg: PredictionConfig, importance: bool = False
) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """Per-seed out-of-fold R^2 and Spearman; optionally permutation importance on outer test folds."""
    if len(y) < 2 * cfg.outer_folds:
        raise DataError(f"need >= {2 * cfg.outer_folds} initializations for {cfg.outer_folds}-fold CV, got {len(y)}")
    r2, rho, drops = [], [], np.zeros(x.shape[1])
    for seed in range(cfg.seeds):
        pred = np.empty_like(y)
        for train, test in KFold(cfg.outer_folds, shuffle=True, random_state=seed).split(x):
            est = make_model(model, cfg, seed).fit(x[train], y[train])
            pred[test] = est.predict(x[test])
            if importance:
                res = permutation_importance(
                    est, x[test], y[test], n_repeats=cfg.importance_repeats, random_state=seed, scoring="r2"
                )
                drops += res.importances_mean
        r2.append(r2_score(y, pred))
        rho.append(_spearman(y, pred))
    n_fits = cfg.seeds * cfg.outer_folds
    imp = {c: float(v / n_fits) for c, v in zip(columns, drops, strict=True)} if importance else {}
    return np.array(r2), np.array(rho), imp


def score_feature_sets(
    table: np.ndarray,
    names: list[str],
    y: np.ndarray,
    feature_sets: dict[str, list[str]],
    cfg: PredictionConfig,
    importance_for: tuple[str, ...] = (),
    progress: bool = False,
) -> list[Score]:
    """Nested-CV scores for every feature set x model; permutation importance for the named sets."""
    if not np.isfinite(y).all():
        raise DataError("quality targets must be finite (a training run diverged?)")
    if not np.isfinite(table).all():
        raise DataError("features must be finite")
    index = {n: i for i, n in enumerate(names)}
    scores = []
    pairs = [(s, m) for s in feature_sets for m in cfg.models]
    for set_name, model in tqdm(pairs, desc="nested CV", disable=not progress, leave=False):
        columns = feature_sets[set_name]
        x = table[:, [index[c] for c in columns]]
        r2, rho, imp = nested_cv(x, y, columns, model, cfg, importance=set_name in importance_for)
        scores.append(Score(set_name, model, r2, rho, imp))
    return scores


@dataclass(frozen=True)
class Comparison:
    """Best-of-group R^2 for two groups of feature sets, compared seed by seed."""

    challenger: Score
    incumbent: Score
    diff_mean: float
    diff_sd: float

    @property
    def wins(self) -> bool:
        """Better on average by more than one seed-to-seed standard deviation of the difference."""
        return self.diff_mean > 0 and self.diff_mean > self.diff_sd


def compare(scores: list[Score], challengers: set[str], incumbents: set[str]) -> Comparison:
    """Best challenger vs best incumbent (each chosen by mean R^2 over seeds and models)."""

    def best(group: set[str]) -> Score:
        pool = [s for s in scores if s.feature_set in group]
        if not pool:
            raise DataError(f"no scores for feature sets {sorted(group)}")
        return max(pool, key=lambda s: s.r2.mean())

    a, b = best(challengers), best(incumbents)
    diff = a.r2 - b.r2
    return Comparison(a, b, float(diff.mean()), seed_sd(diff))


def verdict(c: Comparison, what: str, against: str) -> str:
    """One plain sentence; says so when topology does not win."""
    head = (f"{what} ({c.challenger.feature_set}/{c.challenger.model}, R^2 {c.challenger.r2.mean():.3f}) vs "
            f"{against} ({c.incumbent.feature_set}/{c.incumbent.model}, R^2 {c.incumbent.r2.mean():.3f}): "
            f"difference {c.diff_mean:+.3f} ± {c.diff_sd:.3f} (sd over seeds).")
    if c.wins:
        return f"{head} {what} does better, by more than the seed-to-seed spread."
    return f"{head} {what} does NOT beat {against}."
