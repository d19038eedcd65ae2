"""Turn a tracking-derived (or published) table into one row per unit of analysis.

The unit of a cross-architecture study is the architecture: several seeds or slices of one
architecture are not independent observations, so they are averaged before any test
(counting them as separate rows would be pseudo-replication and shrink every p-value). The
per-seed rows are kept too (:func:`prepare_rows`) for the mixed-effects check; the seed-to-seed
variation reaches the intervals through the means themselves.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from persist.errors import DataError
from persist.stats.spec import ALL, AnalysisSpec


def prepare_table(table: pd.DataFrame, spec: AnalysisSpec) -> tuple[pd.DataFrame, list[str]]:
    """Rename, check and aggregate ``table``; return it with notes on anything dropped or averaged."""
    rows, notes = prepare_rows(table, spec)
    return aggregate(rows, spec, notes), notes


def prepare_rows(table: pd.DataFrame, spec: AnalysisSpec) -> tuple[pd.DataFrame, list[str]]:
    """Rename and check ``table`` and make the spec's columns numeric, one row per run (not aggregated)."""
    df = table.rename(columns=dict(spec.columns))
    if spec.label not in df.columns:
        raise DataError(f"table has no label column '{spec.label}' (set 'label' or map it in 'columns')")
    notes: list[str] = []
    needed = _needed_columns(spec)
    missing = [c for c in needed if c not in df.columns]
    if missing and spec.missing_columns == "error":
        raise DataError(f"table lacks column '{missing[0]}' named in the spec (missing: {', '.join(missing)})")
    if missing:
        notes.append(f"Skipped, not in the table: {', '.join(missing)}.")
    present = [c for c in needed if c in df.columns]
    for col in present:
        df[col] = _numeric(df[col], col)
    return df, notes


def subset_rows(df: pd.DataFrame, spec: AnalysisSpec, subset: str) -> pd.DataFrame:
    """The rows of one declared subset (``all`` keeps every row)."""
    if subset == ALL:
        return df
    where = next(s.where for s in spec.subsets if s.name == subset)
    keep = np.ones(len(df), dtype=bool)
    for col, allowed in where.items():
        if col not in df.columns:
            raise DataError(f"subset '{subset}' filters on column '{col}', which the table lacks")
        keep &= df[col].isin(allowed).to_numpy()
    return df[keep]


def complete_cases(df: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Rows with every one of ``columns`` finite; missing values are dropped per test, not globally."""
    values = df[columns].to_numpy(dtype=float)
    return df[np.isfinite(values).all(axis=1)]


def ties(values: np.ndarray) -> int:
    """Observations that share their value with at least one other (5 zeros count as 5)."""
    _, counts = np.unique(values, return_counts=True)
    return int(counts[counts > 1].sum())


def _needed_columns(spec: AnalysisSpec) -> list[str]:
    names = [*spec.predictors, *spec.covariates, *spec.outcomes]
    for reg in spec.rank_regressions():
        names += [reg.outcome, *reg.predictors]
    if spec.prediction is not None:
        names.append(spec.prediction.target)
        for features in spec.prediction.models.values():
            names += list(features)
    return list(dict.fromkeys(names))


def _numeric(col: pd.Series, name: str) -> pd.Series:
    out = pd.to_numeric(col, errors="coerce")
    bad = col.notna() & out.isna()
    if bad.any():
        raise DataError(f"column '{name}' holds non-numeric value {col[bad].iloc[0]!r}")
    return out.astype(float).replace([np.inf, -np.inf], np.nan)


def aggregate(df: pd.DataFrame, spec: AnalysisSpec, notes: list[str]) -> pd.DataFrame:
    """One row per ``spec.label``: the mean (or median) of the spec's numeric columns; a note says so."""
    numeric = [c for c in _needed_columns(spec) if c in df.columns]
    counts = df.groupby(spec.label, sort=False).size()
    if (counts == 1).all():
        return df.reset_index(drop=True)
    if spec.aggregate == "none":
        raise DataError(f"label '{spec.label}' repeats (e.g. '{counts.idxmax()}'); set 'aggregate' to mean or median")
    grouped = df.groupby(spec.label, sort=False)
    others = [c for c in df.columns if c not in numeric and c != spec.label]
    out = grouped[numeric].agg(spec.aggregate)
    if others:
        out = out.join(grouped[others].first())
    low, high = int(counts.min()), int(counts.max())
    notes.append(f"Rows sharing a value of `{spec.label}` were reduced by their {spec.aggregate} "
                 f"({low if low == high else f'{low}-{high}'} rows per `{spec.label}`).")
    return out.reset_index()
