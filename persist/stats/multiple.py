"""Multiple-comparison corrections over declared families of tests.

A correction only means something over a family fixed before the data are seen. Holm controls
the family-wise error rate like Bonferroni but is uniformly more powerful; Benjamini-Hochberg
controls the false discovery rate, the better fit for an exploratory screen of many measures.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pingouin as pg

_PINGOUIN = {"holm": "holm", "bonferroni": "bonf", "fdr_bh": "fdr_bh"}


def adjust_pvalues(p: np.ndarray, method: str) -> np.ndarray:
    """Adjusted p-values (pingouin.multicomp) of the finite entries.

    NaNs (tests that could not run: n < min_n, a constant or heavily tied column, a missing
    column) count as p = 1: the family was declared before the data, and dropping the tests the
    data made undefined would shrink it after the fact. Their own adjusted value stays NaN.
    """
    p = np.asarray(p, float)
    out = np.full_like(p, np.nan)
    finite = np.isfinite(p)
    if finite.any():
        out[finite] = pg.multicomp(np.where(finite, p, 1.0), method=_PINGOUIN[method])[1][finite]
    return out


def correct_families(results: pd.DataFrame, p_column: str, methods: tuple[str, ...]) -> pd.DataFrame:
    """Add ``p_<method>`` columns, each adjusted within the rows sharing a non-empty ``family``.

    Rows outside every family (family == "") are exploratory and keep NaN: correcting them
    against an ad-hoc set would give a false sense of control. Undefined rows count as p = 1.
    """
    out = results.copy()
    for method in methods:
        column = np.full(len(out), np.nan)
        for family, idx in out.groupby("family", sort=False).indices.items():
            if family:
                column[idx] = adjust_pvalues(out[p_column].to_numpy()[idx], method)
        out[f"p_{method}"] = column
    return out
