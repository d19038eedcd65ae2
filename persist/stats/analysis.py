"""Run every declared test of an analysis spec on one table.

Each predictor x outcome x method x subset is one row of ``AnalysisResult.results``, with the
coefficient, a paired bootstrap CI, the asymptotic and permutation p-values, the family-wise
corrected p-value, leave-one-out influence, and the n and ties behind it. Missing values are
dropped per test, never globally, so a measure that failed for one architecture does not
shrink every other test.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from persist.errors import DataError
from persist.stats.bootstrap import bootstrap_ci
from persist.stats.correlation import correlate
from persist.stats.influence import leave_one_out
from persist.stats.multiple import correct_families
from persist.stats.permutation import permutation_matrix, permutation_test
from persist.stats.prediction import PredictionResult, predict_leave_one_out
from persist.stats.regression import COLUMNS as REGRESSION_COLUMNS
from persist.stats.regression import rank_regression
from persist.stats.spec import ALL, AnalysisSpec
from persist.stats.table import complete_cases, prepare_table, subset_rows, ties

RESULT_COLUMNS = [
    "subset", "family", "predictor", "outcome", "method", "covariates", "n", "r", "ci_low", "ci_high",
    "p", "p_perm", "p_corrected", "ties_x", "ties_y",
    "loo_r_min", "loo_r_max", "loo_most_influential", "loo_n_significant", "note",
]


@dataclass(frozen=True)
class AnalysisResult:
    """All outputs of one analysis; plain DataFrames so callers can log, print or plot them."""

    spec: AnalysisSpec
    table: pd.DataFrame  # the analysed table: renamed, aggregated to one row per label
    results: pd.DataFrame  # one row per test (RESULT_COLUMNS + p_<correction> per correction)
    influence: pd.DataFrame  # leave-one-out folds of every test
    regressions: pd.DataFrame  # rank regressions, one row per term
    prediction: PredictionResult | None
    notes: tuple[str, ...]

    @property
    def p_column(self) -> str:
        """The p-value column the corrections were applied to."""
        return "p_perm" if self.spec.p_value == "permutation" else "p"


def run_analysis(table: pd.DataFrame, spec: AnalysisSpec) -> AnalysisResult:
    """Run the spec's correlations, corrections, influence, rank regressions and prediction."""
    df, notes = prepare_table(table, spec)
    present = set(df.columns)
    perms = _permutation_cache(spec)
    subsets = _available_subsets(df, spec, notes)
    partial_covariates = tuple(c for c in spec.covariates if c in present)
    methods = list(spec.methods)
    if "partial_spearman" in methods and (not partial_covariates or len(partial_covariates) < len(spec.covariates)):
        # a "partial" test that controls for fewer covariates than declared would be mislabelled
        methods.remove("partial_spearman")
        missing = sorted(set(spec.covariates) - present)
        notes.append(f"partial correlations skipped: covariate column(s) {', '.join(missing) or '(none declared)'} "
                     "missing from the table")
    rows, folds = [], []
    for subset in subsets:
        sub = subset_rows(df, spec, subset)
        for outcome in (o for o in spec.outcomes if o in present):
            for predictor in (p for p in spec.predictors if p in present):
                for method in methods:
                    covariates = partial_covariates if method == "partial_spearman" else ()
                    if predictor in covariates:
                        continue  # a measure cannot be tested while controlling for itself
                    row, fold = _one_test(sub, spec, subset, predictor, outcome, method, covariates, perms)
                    rows.append(row)
                    folds.append(fold)
    results = _finish_results(pd.DataFrame(rows, columns=RESULT_COLUMNS), spec)
    return AnalysisResult(
        spec=spec,
        table=df,
        results=results,
        influence=pd.concat([f for f in folds if not f.empty] or [pd.DataFrame()], ignore_index=True),
        regressions=_regressions(df, spec, subsets, present),
        prediction=_prediction(df, spec, present, notes),
        notes=tuple(notes),
    )


def _one_test(
    sub: pd.DataFrame,
    spec: AnalysisSpec,
    subset: str,
    predictor: str,
    outcome: str,
    method: str,
    covariates: tuple[str, ...],
    perms: Callable[[int], np.ndarray],
) -> tuple[dict, pd.DataFrame]:
    data = complete_cases(sub, [predictor, outcome, *covariates])
    x, y = data[predictor].to_numpy(float), data[outcome].to_numpy(float)
    z = tuple(data[c].to_numpy(float) for c in covariates)
    row = {
        "subset": subset, "family": spec.family_of(predictor, outcome, method, subset),
        "predictor": predictor, "outcome": outcome, "method": method,
        "covariates": ", ".join(covariates), "n": len(data), "ties_x": ties(x), "ties_y": ties(y), "note": "",
    }
    if len(data) < spec.min_n:
        row["note"] = f"n < min_n ({spec.min_n})"
        return row, pd.DataFrame()
    est = correlate(x, y, method, z)
    if not np.isfinite(est.r):
        row["note"] = "undefined (a constant column)"
        return row, pd.DataFrame()
    lo, hi = bootstrap_ci(method, x, y, z, spec.n_bootstrap, spec.seed, spec.confidence, spec.ci_method)
    infl = leave_one_out(x, y, data[spec.label].to_numpy(), method, z, spec.alpha)
    row |= {
        "r": est.r, "p": est.p, "ci_low": lo, "ci_high": hi,
        "p_perm": permutation_test(method, x, y, z, permutations=perms(len(data))).p,
        "loo_r_min": infl.r_min, "loo_r_max": infl.r_max,
        "loo_most_influential": infl.most_influential, "loo_n_significant": f"{infl.n_significant}/{infl.n_folds}",
    }
    keys = {"subset": subset, "predictor": predictor, "outcome": outcome, "method": method}
    return row, infl.folds.assign(**keys)[[*keys, *infl.folds.columns]]


def _permutation_cache(spec: AnalysisSpec) -> Callable[[int], np.ndarray]:
    """One permutation matrix per sample size, built on first use from the spec's seed."""
    cache: dict[int, np.ndarray] = {}

    def get(n: int) -> np.ndarray:
        if n not in cache:
            cache[n] = permutation_matrix(n, spec.n_permutations, spec.seed)
        return cache[n]

    return get


def _finish_results(results: pd.DataFrame, spec: AnalysisSpec) -> pd.DataFrame:
    p_column = "p_perm" if spec.p_value == "permutation" else "p"
    results = correct_families(results, p_column, spec.corrections)
    if spec.corrections:
        results["p_corrected"] = results[f"p_{spec.corrections[0]}"]
    return results


def _available_subsets(df: pd.DataFrame, spec: AnalysisSpec, notes: list[str]) -> list[str]:
    """Declared subsets whose filter columns exist; absent ones are skipped only if the spec allows it."""
    out = [ALL]
    for subset in spec.subsets:
        missing = [c for c in subset.where if c not in df.columns]
        if missing and spec.missing_columns == "error":
            raise DataError(f"subset '{subset.name}' filters on column '{missing[0]}', which the table lacks")
        if missing:
            notes.append(f"Subset '{subset.name}' skipped: the table lacks column '{missing[0]}'.")
        else:
            out.append(subset.name)
    return out


def _regressions(df: pd.DataFrame, spec: AnalysisSpec, subsets: list[str], present: set[str]) -> pd.DataFrame:
    frames = [
        rank_regression(subset_rows(df, spec, subset), reg.outcome, reg.predictors).assign(subset=subset)
        for subset in subsets
        for reg in spec.rank_regressions()
        if {reg.outcome, *reg.predictors} <= present
    ]
    if not frames:
        return pd.DataFrame(columns=["subset", *REGRESSION_COLUMNS])
    out = pd.concat(frames, ignore_index=True)
    return out[["subset", *REGRESSION_COLUMNS]]


def _prediction(
    df: pd.DataFrame, spec: AnalysisSpec, present: set[str], notes: list[str]
) -> PredictionResult | None:
    pred = spec.prediction
    if pred is None or pred.target not in present:
        return None
    models = {name: cols for name, cols in pred.models.items() if set(cols) <= present}
    features = [pred.target, *dict.fromkeys(c for cols in models.values() for c in cols)]
    n_labels, needed = complete_cases(df, features)[spec.label].nunique(), max(3, spec.min_n)
    if not models or n_labels < needed:
        notes.append(f"Prediction skipped: {n_labels} {spec.label}(s) with complete values (needs {needed}).")
        return None
    return predict_leave_one_out(df, pred.target, models, spec.label, pred.alphas, pred.transform)
