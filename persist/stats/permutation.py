"""Permutation p-values for rank correlations, vectorized over permutations.

With n = 14 architectures and heavy ties (several models with H1 = 0 or retention 0), the
t approximation behind the usual Spearman p-value is shaky; a permutation test is exact up to
Monte Carlo error. Ranks are computed once and the permuted rank vectors form a matrix, so
10,000 permutations are a single matrix product instead of 10,000 ``spearmanr`` calls.

Conventions:
- two-sided: a permuted statistic counts when ``|r*| >= |r|`` (up to 1e-12 for rounding);
- p = (k + 1) / (B + 1), the observed labelling counted as one permutation, so p >= 1/(B+1)
  and the test is valid (never p = 0, unlike the published code);
- one seeded permutation matrix per sample size, shared by every test of that size, so a
  test's p-value does not depend on which other tests ran before it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
from scipy.stats import rankdata

from persist.stats.rank_statistics import partial_spearman, rank_residuals

_TOL = 1e-12
_CHUNK_ELEMENTS = 4_000_000


@dataclass(frozen=True)
class PermutationTest:
    """Observed statistic, its permutation p-value and the number of permutations B."""

    statistic: float
    p: float
    n_permutations: int


def permutation_matrix(n: int, n_permutations: int, seed: int) -> np.ndarray:
    """(B, n) row permutations of range(n), reproducible from ``seed`` alone."""
    rng = np.random.default_rng(seed)
    return rng.permuted(np.tile(np.arange(n), (n_permutations, 1)), axis=1)


def permutation_test(
    method: str,
    x: np.ndarray,
    y: np.ndarray,
    covariates: tuple[np.ndarray, ...] = (),
    n_permutations: int = 10_000,
    seed: int = 0,
    permutations: np.ndarray | None = None,
) -> PermutationTest:
    """Two-sided permutation test of a Spearman, Kendall tau-b or partial Spearman coefficient.

    For ``partial_spearman`` the Freedman-Lane scheme is used on ranks: y's ranks are regressed
    on the covariates' ranks, the residuals are permuted and added back to the fitted values,
    and the partial correlation is recomputed. Algebraically the permuted statistic is
    corr(e_x, M P e_y), with M the residual-maker of [1, rank(Z)]. Freedman-Lane keeps the
    covariate's effect on y intact under the null, which permuting y itself would destroy, and
    has the best size and power among residual schemes (Anderson & Legendre 1999; Winkler et al.
    2014). Pass ``permutations`` (from :func:`permutation_matrix`) to reuse one matrix.
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    if permutations is None:
        permutations = permutation_matrix(len(x), n_permutations, seed)
    observed, null_of = _NULLS[method](x, y, tuple(np.asarray(c, float) for c in covariates))
    if not np.isfinite(observed):
        return PermutationTest(float("nan"), float("nan"), len(permutations))
    exceed = sum(int(np.sum(np.abs(null_of(chunk)) >= abs(observed) - _TOL)) for chunk in _chunks(permutations))
    return PermutationTest(float(observed), (exceed + 1) / (len(permutations) + 1), len(permutations))


NullFn = Callable[[np.ndarray], np.ndarray]


def _spearman_null(x: np.ndarray, y: np.ndarray, _: tuple[np.ndarray, ...]) -> tuple[float, NullFn]:
    zx, zy = _unit(rankdata(x)), _unit(rankdata(y))
    return float(zx @ zy), lambda perm: zy[perm] @ zx


def _kendall_null(x: np.ndarray, y: np.ndarray, _: tuple[np.ndarray, ...]) -> tuple[float, NullFn]:
    i, j = np.triu_indices(len(x), k=1)
    sx, sy = np.sign(x[j] - x[i]), np.sign(y[j] - y[i])
    # tau-b's denominator counts untied pairs in x and in y; permuting y leaves both unchanged
    denom = np.sqrt((sx @ sx) * (sy @ sy))
    if denom == 0:
        return float("nan"), lambda perm: np.full(len(perm), np.nan)

    def null(perm: np.ndarray) -> np.ndarray:
        yp = y[perm]
        return np.sign(yp[:, j] - yp[:, i]) @ sx / denom

    return float(sx @ sy / denom), null


def _partial_null(x: np.ndarray, y: np.ndarray, covariates: tuple[np.ndarray, ...]) -> tuple[float, NullFn]:
    design = np.column_stack([np.ones(len(x)), *(rankdata(c) for c in covariates)])
    resid = np.eye(len(x)) - design @ np.linalg.pinv(design)  # symmetric residual-maker M
    ex, ey = rank_residuals(x, covariates), rank_residuals(y, covariates)  # = M rank(x), M rank(y)
    observed = float(partial_spearman(x, y, *covariates))  # the point estimate's code, NaN if undefined
    ex_unit = _unit(ex)

    def null(perm: np.ndarray) -> np.ndarray:
        e = ey[perm] @ resid  # rows: M P e_y (M symmetric)
        with np.errstate(invalid="ignore", divide="ignore"):
            return (e @ ex_unit) / np.linalg.norm(e, axis=1)

    return observed, null


def _unit(v: np.ndarray) -> np.ndarray:
    """Centred and scaled to unit norm (NaN for a constant vector), so a dot product is Pearson's r."""
    v = v - v.mean()
    with np.errstate(invalid="ignore", divide="ignore"):
        return v / np.linalg.norm(v)


def _chunks(perms: np.ndarray) -> Iterator[np.ndarray]:
    n = perms.shape[1]
    width = n * max(n - 1, 1)  # kendall gathers ~n^2/2 pair signs per permutation
    step = max(1, _CHUNK_ELEMENTS // width)
    for start in range(0, len(perms), step):
        yield perms[start : start + step]


_NULLS = {"spearman": _spearman_null, "kendall": _kendall_null, "partial_spearman": _partial_null}
