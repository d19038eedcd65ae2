"""Extreme Hessian eigenvalues by Lanczos (ARPACK through scipy), with convergence reported, never assumed.

``which='LA'`` gives the signed largest eigenvalues (``'SA'`` the most negative). Plain power iteration (the published metric) converges
to the largest *magnitude*, which is a different number whenever a negative eigenvalue dominates; that one
is computed separately with ``which='LM'`` and reported under its own name. Each returned pair is checked
by an explicit residual ``‖Hu − λu‖``; a pair counts as converged only if ARPACK converged it at ``tol``
and its explicit residual is within ``10·tol·|λ|`` (the slack covers float32 products, whose rounding
makes the operator slightly non-symmetric). When ARPACK gives up, one more run at ``100·tol`` supplies an
estimate that is reported with ``converged = 0``; if that fails too the value is NaN.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigsh
from torch import Tensor

from persist.errors import ConfigError

Matvec = Callable[[Tensor], Tensor]
_DENSE_DIM = 32  # below this, k matvecs of the identity give the exact matrix and ARPACK is pointless


@dataclass(frozen=True)
class EigenResult:
    """Eigenvalues (largest first for 'LA', by magnitude for 'LM'), explicit residual norms, convergence."""

    values: np.ndarray
    residuals: np.ndarray
    converged: np.ndarray
    matvecs: int
    vectors: np.ndarray | None = None  # (dim, k) unit eigenvectors, float64, in the order of ``values``


def extreme_eigenvalues(
    matvec: Matvec,
    like: Tensor,
    k: int = 1,
    which: str = "LA",
    tol: float = 1e-3,
    maxiter: int = 50,
    ncv: int | None = None,
    seed: int = 0,
) -> EigenResult:
    """Top-``k`` eigenvalues of a symmetric matvec on vectors shaped like ``like``, in float64 on the host."""
    if which not in ("LA", "LM", "SA"):
        raise ConfigError(f"which must be 'LA', 'LM' or 'SA', got {which!r}")
    dim = like.numel()
    if k < 1 or k >= dim:
        raise ConfigError(f"top_k must be in [1, {dim - 1}] for {dim} parameters, got {k}")
    if not tol > 0:
        raise ConfigError(f"eigen_tol must be > 0, got {tol}")
    counter = _CountingOperator(matvec, like)
    if dim <= _DENSE_DIM:
        values, vectors, arpack_ok = _dense(counter, dim, k, which)
    else:
        values, vectors, arpack_ok = _arpack(counter, k, which, tol, maxiter, ncv, seed)
    residuals = np.array([_residual(counter, lam, u) for lam, u in zip(values, vectors.T, strict=True)])
    converged = arpack_ok & (residuals <= 10 * tol * np.maximum(np.abs(values), np.finfo(float).tiny))
    return EigenResult(values, residuals, converged, counter.calls, vectors)


class _CountingOperator(LinearOperator):
    """float64 numpy in, torch matvec in the model's dtype and device, float64 numpy out."""

    def __init__(self, matvec: Matvec, like: Tensor) -> None:
        super().__init__(dtype=np.float64, shape=(like.numel(), like.numel()))
        self.fn, self.like, self.calls = matvec, like, 0

    def _matvec(self, v: np.ndarray) -> np.ndarray:
        self.calls += 1
        t = torch.from_numpy(np.ascontiguousarray(v, dtype=np.float64).reshape(-1))
        return self.fn(t.to(device=self.like.device, dtype=self.like.dtype)).double().cpu().numpy()


def _order(values: np.ndarray, which: str) -> np.ndarray:
    key = {"LM": -np.abs(values), "LA": -values, "SA": values}[which]
    return np.argsort(key, kind="stable")


def _dense(op: _CountingOperator, dim: int, k: int, which: str):
    h = op.matmat(np.eye(dim))
    values, vectors = np.linalg.eigh((h + h.T) / 2)
    idx = _order(values, which)[:k]
    return values[idx], vectors[:, idx], np.ones(k, dtype=bool)


def _arpack(op: _CountingOperator, k: int, which: str, tol: float, maxiter: int, ncv: int | None, seed: int):
    v0 = np.random.default_rng(seed).standard_normal(op.shape[0])
    ok = True
    for attempt_tol in (tol, 100 * tol):
        try:
            values, vectors = eigsh(op, k=k, which=which, tol=attempt_tol, maxiter=maxiter, ncv=ncv, v0=v0)
            break
        except ArpackNoConvergence:
            ok = False
    else:
        return np.full(k, np.nan), np.full((op.shape[0], k), np.nan), np.zeros(k, dtype=bool)
    idx = _order(values, which)
    return values[idx], vectors[:, idx], np.full(k, ok)


def _residual(op: _CountingOperator, lam: float, u: np.ndarray) -> float:
    if not np.isfinite(lam):
        return float("nan")
    return float(np.linalg.norm(op.matvec(u) - lam * u) / np.linalg.norm(u))
