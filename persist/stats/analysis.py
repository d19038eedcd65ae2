"""Run every declared test of an analysis spec on one table.

Each predictor x outcome x method x subset is one row of ``AnalysisResult.results``, with the
coefficient, the interval the policy of :mod:`persist.stats.intervals` chose (and how it was
made), the asymptotic and permutation p-values, the family-wise corrected p-value, leave-one-out
influence, and the n and ties behind it. Missing values are dropped per test, never globally.
A declared test that cannot run (a missing column, n < min_n, a constant or heavily tied
column, an undefined partial correlation) is still a row, with the reason in ``note``, and
counts as p = 1 in its family.

Several rows per label (seeds of one architecture): the per-label-mean analysis is primary; its
intervals are made from the means (which carry the seed variation) and its permutations permute whole
architectures, and a mixed-effects model on the per-seed rows checks each primary hypothesis.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

from persist.errors import DataError
from persist.stats.correlation import correlate, not_testable_reason
from persist.stats.influence import leave_one_out
from persist.stats.intervals import Interval, confidence_interval
from persist.stats.multiple import correct_families
from persist.stats.permutation import permutation_matrix, permutation_test
from persist.stats.prediction import PredictionResult, predict_leave_one_out
from persist.stats.regression import COLUMNS as REGRESSION_COLUMNS
from persist.stats.regression import rank_regression
from persist.stats.spec import ALL, AnalysisSpec
from persist.stats.table import aggregate, complete_cases, prepare_rows, subset_rows, ties

RESULT_COLUMNS = [
    "subset", "family", "primary", "predictor", "outcome", "method", "covariates", "n", "r", "ci_low", "ci_high",
    "ci_method", "ci_undefined", "ci_note", "p", "p_perm", "p_corrected", "ties_x", "ties_y",
    "loo_r_min", "loo_r_max", "loo_most_influential", "loo_n_significant", "note",
]
MIXED_COLUMNS = ["subset", "predictor", "outcome", "method", "covariates", "n_rows", "n_groups", "coef", "se",
                 "z", "p", "converged", "note"]


@dataclass(frozen=True)
class AnalysisResult:
    """All outputs of one analysis; plain DataFrames so callers can log, print or plot them."""

    spec: AnalysisSpec
    table: pd.DataFrame  # the analysed table: renamed, aggregated to one row per label
    results: pd.DataFrame  # one row per declared test (RESULT_COLUMNS + p_<correction> per correction)
    influence: pd.DataFrame  # leave-one-out folds of every test
    regressions: pd.DataFrame  # rank regressions, one row per term
    prediction: PredictionResult | None
    notes: tuple[str, ...]
    # mixed-effects checks of the primary hypotheses (seeded tables only)
    mixed: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=MIXED_COLUMNS))
    rows_per_label: int = 1  # the largest number of table rows sharing a label (seeds)

    @property
    def p_column(self) -> str:
        """The p-value column the corrections were applied to."""
        return "p_perm" if self.spec.p_value == "permutation" else "p"


def run_analysis(table: pd.DataFrame, spec: AnalysisSpec) -> AnalysisResult:
    """Run the spec's correlations, corrections, influence, rank regressions, prediction and mixed checks."""
    rows, notes = prepare_rows(table, spec)
    df = aggregate(rows, spec, notes)
    per_label = int(rows.groupby(spec.label).size().max()) if len(rows) else 1
    seeds = rows if per_label > 1 else None
    present = set(df.columns)
    perms = _permutation_cache(spec)
    subsets = _available_subsets(df, spec, notes)
    results, folds = [], []
    for subset in subsets:
        sub = subset_rows(df, spec, subset)
        for outcome in spec.outcomes:
            for predictor in spec.predictors:
                for method in spec.methods or ():
                    covariates = spec.covariates if method == "partial_spearman" else ()
                    if predictor in covariates:
                        continue  # a measure cannot be tested while controlling for itself
                    base = _base_row(spec, subset, predictor, outcome, method, covariates)
                    missing = [c for c in (predictor, outcome, *covariates) if c not in present]
                    if missing:
                        results.append(base | {"note": f"not run: column(s) {', '.join(missing)} not in the table"})
                        continue
                    row, fold = _one_test(sub, spec, base, perms)
                    results.append(row)
                    folds.append(fold)
    return AnalysisResult(
        spec=spec,
        table=df,
        results=_finish_results(pd.DataFrame(results, columns=RESULT_COLUMNS), spec),
        influence=pd.concat([f for f in folds if not f.empty] or [pd.DataFrame()], ignore_index=True),
        regressions=_regressions(df, spec, subsets, present, notes),
        prediction=_prediction(df, spec, present, notes),
        notes=tuple(notes),
        mixed=_mixed_checks(seeds, spec, present) if seeds is not None else pd.DataFrame(columns=MIXED_COLUMNS),
        rows_per_label=per_label,
    )


def _base_row(spec: AnalysisSpec, subset: str, predictor: str, outcome: str, method: str,
              covariates: tuple[str, ...]) -> dict:
    return {
        "subset": subset, "family": spec.family_of(predictor, outcome, method, subset),
        "primary": spec.is_primary(predictor, outcome, method, subset),
        "predictor": predictor, "outcome": outcome, "method": method, "covariates": ", ".join(covariates),
        "n": 0, "ci_method": "none", "ci_undefined": np.nan, "ci_note": "", "note": "",
    }


def _one_test(
    sub: pd.DataFrame,
    spec: AnalysisSpec,
    row: dict,
    perms: Callable[[int], np.ndarray],
) -> tuple[dict, pd.DataFrame]:
    predictor, outcome, method = row["predictor"], row["outcome"], row["method"]
    columns = [predictor, outcome, *(c for c in row["covariates"].split(", ") if c)]
    data = complete_cases(sub, columns)
    x, y = data[predictor].to_numpy(float), data[outcome].to_numpy(float)
    z = tuple(data[c].to_numpy(float) for c in columns[2:])
    row = row | {"n": len(data), "ties_x": ties(x), "ties_y": ties(y)}
    if len(data) < spec.min_n:
        return row | {"note": f"n < min_n ({spec.min_n})", "ci_note": "not computed"}, pd.DataFrame()
    reason = not_testable_reason(x, y)
    if reason:
        return row | {"note": reason, "ci_note": "not computed"}, pd.DataFrame()
    est = correlate(x, y, method, z)
    if not np.isfinite(est.r):
        return row | {"note": est.note, "ci_note": "not computed"}, pd.DataFrame()
    interval = _interval(method, x, y, z, est.r, spec)
    infl = leave_one_out(x, y, data[spec.label].to_numpy(), method, z, spec.alpha)
    row |= {
        "r": est.r, "p": est.p, "ci_low": interval.low, "ci_high": interval.high, "ci_method": interval.method,
        "ci_undefined": interval.undefined_share, "ci_note": interval.note,
        "p_perm": permutation_test(method, x, y, z, permutations=perms(len(data))).p,
        "loo_r_min": infl.r_min, "loo_r_max": infl.r_max,
        "loo_most_influential": infl.most_influential, "loo_n_significant": f"{infl.n_significant}/{infl.n_folds}",
    }
    keys = {k: row[k] for k in ("subset", "predictor", "outcome", "method")}
    return row, infl.folds.assign(**keys)[[*keys, *infl.folds.columns]]


def _interval(method: str, x: np.ndarray, y: np.ndarray, z: tuple[np.ndarray, ...], r: float,
              spec: AnalysisSpec) -> Interval:
    """The policy's interval on the rows tested (per-architecture means when there are seeds)."""
    return confidence_interval(method, x, y, z, estimate=r, n_bootstrap=spec.n_bootstrap, seed=spec.seed,
                               confidence=spec.confidence, ci_method=spec.ci_method)


def _mixed_checks(seeds: pd.DataFrame, spec: AnalysisSpec, present: set[str]) -> pd.DataFrame:
    """Random-intercept (per label) model of rank(outcome) on rank(predictor) [+ rank(covariates)], per primary."""
    out = []
    for hyp in spec.primary:
        covariates = spec.covariates if hyp.method == "partial_spearman" else ()
        columns = [hyp.predictor, hyp.outcome, *covariates]
        row = {"subset": hyp.subset, "predictor": hyp.predictor, "outcome": hyp.outcome, "method": hyp.method,
               "covariates": ", ".join(covariates), "note": ""}
        if not set(columns) <= present:
            out.append(row | {"note": "not run: column(s) missing from the table"})
            continue
        data = complete_cases(subset_rows(seeds, spec, hyp.subset), columns)
        out.append(row | mixed_rank_slope(data, hyp.predictor, hyp.outcome, covariates, spec.label))
    return pd.DataFrame(out, columns=MIXED_COLUMNS)


def mixed_rank_slope(data: pd.DataFrame, predictor: str, outcome: str, covariates: tuple[str, ...],
                     label: str) -> dict:
    """statsmodels MixedLM: rank(outcome) ~ 1 + rank(predictor) + rank(covariates), random intercept per label.

    Ranks are taken over all rows (seeds included). The slope of rank(predictor) with its Wald z
    test checks the per-label-mean analysis while using every seed; it is a check, not the primary
    answer, because its normal-theory test is itself shaky at a few labels.
    """
    from statsmodels.regression.mixed_linear_model import MixedLM

    groups = data[label].to_numpy()
    info = {"n_rows": len(data), "n_groups": len(np.unique(groups))}
    ranks = data[[outcome, predictor, *covariates]].rank()
    if info["n_groups"] < 3 or (ranks.nunique() < 2).any():
        return info | {"note": "not run: fewer than 3 labels or a constant column"}
    design = np.column_stack([np.ones(len(data)), ranks[[predictor, *covariates]].to_numpy(float)])
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fit = MixedLM(ranks[outcome].to_numpy(float), design, groups).fit(reml=True)
    except (np.linalg.LinAlgError, ValueError) as exc:
        return info | {"note": f"not run: MixedLM failed ({type(exc).__name__})"}
    converged = bool(fit.converged) and not any("converge" in str(w.message).lower() for w in caught)
    return info | {"coef": float(fit.params[1]), "se": float(fit.bse[1]), "z": float(fit.tvalues[1]),
                   "p": float(fit.pvalues[1]), "converged": converged,
                   "note": "" if converged else "MixedLM did not converge cleanly: read with care"}


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


def _regressions(df: pd.DataFrame, spec: AnalysisSpec, subsets: list[str], present: set[str],
                 notes: list[str]) -> pd.DataFrame:
    frames = []
    for reg in spec.rank_regressions():
        missing = [c for c in (reg.outcome, *reg.predictors) if c not in present]
        if missing:
            notes.append(f"Regression {reg.outcome} ~ {' + '.join(reg.predictors)} not run: "
                         f"column(s) {', '.join(missing)} not in the table.")
            continue
        frames += [rank_regression(subset_rows(df, spec, subset), reg.outcome, reg.predictors).assign(subset=subset)
                   for subset in subsets]
    if not frames:
        return pd.DataFrame(columns=["subset", *REGRESSION_COLUMNS])
    out = pd.concat(frames, ignore_index=True)
    return out[["subset", *REGRESSION_COLUMNS]]


def _prediction(
    df: pd.DataFrame, spec: AnalysisSpec, present: set[str], notes: list[str]
) -> PredictionResult | None:
    pred = spec.prediction
    if pred is None:
        return None
    if pred.target not in present:
        notes.append(f"Prediction not run: the target '{pred.target}' is not in the table.")
        return None
    models = {}
    for name, cols in pred.models.items():
        missing = [c for c in cols if c not in present]
        if missing:
            notes.append(f"Prediction model '{name}' not run: column(s) {', '.join(missing)} not in the table.")
        else:
            models[name] = cols
    features = [pred.target, *dict.fromkeys(c for cols in models.values() for c in cols)]
    n_labels, needed = complete_cases(df, features)[spec.label].nunique(), max(3, spec.min_n)
    if not models or n_labels < needed:
        notes.append(f"Prediction skipped: {n_labels} {spec.label}(s) with complete values (needs {needed})"
                     + ("" if models else "; no model has all its columns") + ".")
        return None
    return predict_leave_one_out(df, pred.target, models, spec.label, pred.alphas, pred.transform)
