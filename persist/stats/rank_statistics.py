"""Rank correlations computed along an axis, so thousands of resamples cost one numpy call.

They are the statistics handed to the bootstrap, the permutation test and the leave-one-out
influence, so all of them use the same code: each re-ranks its input, as a rank statistic must
when a resample repeats rows (repeats become ties). Degenerate samples give NaN rather than a fake
value: a constant column, or (for a partial correlation) a variable the covariates determine.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from scipy.stats import rankdata as _scipy_rankdata

# a residual whose norm is below this share of its centred ranks' norm is zero up to rounding
_ZERO_RESIDUAL = 1e-9
# up to this many observations, mid-ranks come from pairwise comparisons (no per-call sorting overhead)
_PAIRWISE_MAX_N = 64


def rankdata(a: np.ndarray, axis: int = -1) -> np.ndarray:
    """Mid-ranks along ``axis`` (ties share their average rank), equal to ``scipy.stats.rankdata``.

    At the sample sizes of a study (n <= 64) they are counted from pairwise comparisons, which for
    thousands of small resamples is an order of magnitude faster than sorting each one.
    """
    a = np.moveaxis(np.asarray(a, float), axis, -1)
    if a.shape[-1] > _PAIRWISE_MAX_N:
        return np.moveaxis(_scipy_rankdata(a, axis=-1), -1, axis)
    less = np.count_nonzero(a[..., None, :] < a[..., :, None], axis=-1)
    equal = np.count_nonzero(a[..., None, :] == a[..., :, None], axis=-1)
    return np.moveaxis(less + (equal + 1) / 2, -1, axis)


def spearman(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """Spearman's rho: Pearson's r of mid-ranks (ties share their average rank, as in scipy)."""
    return pearson(rankdata(x, axis=axis), rankdata(y, axis=axis), axis=axis)


def kendall(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """Kendall's tau-b: sum of sign products over pairs, over the root of untied pair counts in x and y."""
    x, y = np.moveaxis(np.asarray(x, float), axis, -1), np.moveaxis(np.asarray(y, float), axis, -1)
    i, j = np.triu_indices(x.shape[-1], k=1)
    sx, sy = np.sign(x[..., j] - x[..., i]), np.sign(y[..., j] - y[..., i])
    with np.errstate(invalid="ignore", divide="ignore"):
        return (sx * sy).sum(-1) / np.sqrt((sx * sx).sum(-1) * (sy * sy).sum(-1))


def rank_residuals(values: np.ndarray, covariates: tuple[np.ndarray, ...], axis: int = -1) -> np.ndarray:
    """Residuals of rank(values) after least squares on [1, rank(z) for z in covariates], along ``axis``.

    The fit is float64 least squares (closed form for one covariate, the pseudo-inverse of the
    design otherwise), so a design made singular by a resample (a covariate constant within it)
    still projects onto its column space.
    Residuals that are zero up to rounding are set exactly to 0, so callers can test ``== 0``.
    """
    r = np.moveaxis(rankdata(np.asarray(values, float), axis=axis), axis, -1)
    if len(covariates) == 1:  # the common case in closed form: centre, then remove the slope on rank(z)
        zc = np.moveaxis(rankdata(np.asarray(covariates[0], float), axis=axis), axis, -1)
        zc = zc - zc.mean(-1, keepdims=True)
        rc = r - r.mean(-1, keepdims=True)
        zz = (zc * zc).sum(-1, keepdims=True)
        slope = np.where(zz > 0, (zc * rc).sum(-1, keepdims=True) / np.where(zz > 0, zz, 1.0), 0.0)
        resid = rc - slope * zc
    else:
        design = _design(covariates, r.shape, axis)
        resid = r - (design @ (np.linalg.pinv(design) @ r[..., None]))[..., 0]
    centred = np.linalg.norm(r - r.mean(-1, keepdims=True), axis=-1, keepdims=True)
    small = np.linalg.norm(resid, axis=-1, keepdims=True) <= _ZERO_RESIDUAL * np.maximum(centred, 1.0)
    return np.where(small, 0.0, resid)


def partial_spearman(x: np.ndarray, y: np.ndarray, *covariates: np.ndarray, axis: int = -1) -> np.ndarray:
    """Partial Spearman: Pearson's r of the residuals of rank(x) and rank(y) on [1, rank(Z)].

    NaN when either residual is zero, i.e. x or y is a (weakly) monotone function of the
    covariates' ranks: there is nothing left to correlate. Perfectly concordant x and y give +1
    and discordant ones -1 whatever the covariates (the precision-matrix formula on a singular
    rank covariance got the sign wrong).
    """
    ex, ey = rank_residuals(x, covariates, axis), rank_residuals(y, covariates, axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (ex * ey).sum(-1) / np.sqrt((ex * ex).sum(-1) * (ey * ey).sum(-1))
    return np.clip(r, -1.0, 1.0)


def partial_undefined_reason(x: np.ndarray, y: np.ndarray, covariates: tuple[np.ndarray, ...]) -> str:
    """Why a partial Spearman of one sample is NaN ("" when it is defined)."""
    for name, v in (("predictor", x), ("outcome", y)):
        if not np.any(rank_residuals(v, covariates)):
            return f"the {name}'s ranks are a linear function of the covariates' ranks (zero residual)"
    return ""


def pearson(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    """Pearson's r along ``axis`` (NaN where either side is constant)."""
    a = a - a.mean(axis=axis, keepdims=True)
    b = b - b.mean(axis=axis, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.clip((a * b).sum(axis) / np.sqrt((a * a).sum(axis) * (b * b).sum(axis)), -1.0, 1.0)


def _design(covariates: tuple[np.ndarray, ...], shape: tuple[int, ...], axis: int) -> np.ndarray:
    """(..., n, 1 + k) design [1, rank(z_1), ..., rank(z_k)] broadcast to the batch shape of ``shape``."""
    columns = [np.ones(shape)]
    columns += [np.broadcast_to(np.moveaxis(rankdata(np.asarray(c, float), axis=axis), axis, -1), shape)
                for c in covariates]
    return np.stack(columns, axis=-1)


STATISTICS: dict[str, Callable[..., np.ndarray]] = {
    "spearman": spearman, "kendall": kendall, "partial_spearman": partial_spearman,
}
