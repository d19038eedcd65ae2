"""Stochastic trace estimators on a symmetric operator applied to rows.

Hutchinson: for Rademacher ``v``, ``E[vᵀHv] = tr(H)``, so the probe mean estimates the trace and the
probe spread gives its standard error. Hutch++ (Meyer et al., 2021) spends a third of the budget on a
sketch ``Q`` of the top of the spectrum, takes ``tr(QᵀHQ)`` exactly and runs Hutchinson only on the
deflated rest; for the fast-decaying spectra of trained networks that removes most of the variance.
Probes are drawn one at a time, in order, from one seeded CPU generator: a seed means the same probes on
every device and for every ``probe_batch``, and different seeds give independent probes.
"""

from __future__ import annotations

import math
from typing import Callable, Iterator

import torch
from torch import Tensor

from persist.curvature._checks import at_least

Matmat = Callable[[Tensor], Tensor]  # H applied to each row of a [K, dim] matrix


def rademacher_rows(count: int, like: Tensor, gen: torch.Generator) -> Tensor:
    """``count`` random-sign rows shaped like the flat vector ``like``, on its device and dtype."""
    rows = [torch.randint(0, 2, (like.numel(),), generator=gen, dtype=torch.int8) for _ in range(count)]
    return torch.stack(rows).mul_(2).sub_(1).to(device=like.device, dtype=like.dtype)


def quadratic_forms(matmat: Matmat, rows: Tensor, probe_batch: int) -> Tensor:
    """``vᵀHv`` for every row ``v``, ``probe_batch`` rows per operator call, in float64."""
    return torch.cat([(chunk.double() * matmat(chunk).double()).sum(1) for chunk in torch.split(rows, probe_batch)])


def hutchinson_trace(matmat: Matmat, like: Tensor, probes: int, seed: int, probe_batch: int = 4) -> dict[str, float]:
    """Trace with its standard error over ``probes`` Rademacher probes (``like``: a flat vector of the space)."""
    at_least("trace_probes", probes, 2)
    at_least("probe_batch", probe_batch, 1)
    gen = torch.Generator().manual_seed(seed)
    chunks = (rademacher_rows(k, like, gen) for k in _chunks(probes, probe_batch))
    samples = torch.cat([quadratic_forms(matmat, rows, probe_batch) for rows in chunks])
    trace, se = _mean_and_se(samples)
    return {"trace": trace, "trace_se": se, "matvecs": float(probes)}


def hutchpp_trace(matmat: Matmat, like: Tensor, matvecs: int, seed: int, probe_batch: int = 4) -> dict[str, float]:
    """Hutch++ with ``matvecs`` products; the standard error is that of the deflated Hutchinson part.

    The sketch part ``tr(QᵀHQ)`` is exact given ``Q``, so all of the estimator's randomness is in the residual
    probes; their spread is the honest uncertainty conditional on the sketch.
    """
    at_least("trace_probes", matvecs, 6)
    at_least("probe_batch", probe_batch, 1)
    gen = torch.Generator().manual_seed(seed)
    third = matvecs // 3
    sketch = rademacher_rows(third, like, gen)
    products = torch.cat([matmat(chunk) for chunk in torch.split(sketch, probe_batch)])
    q = torch.linalg.qr(products.T).Q.T  # orthonormal rows spanning H·sketch
    low_rank = float(quadratic_forms(matmat, q, probe_batch).sum())
    probes = rademacher_rows(matvecs - 2 * third, like, gen)
    deflated = probes - (probes @ q.T) @ q
    rest, se = _mean_and_se(quadratic_forms(matmat, deflated, probe_batch))
    return {"trace": low_rank + rest, "trace_se": se, "matvecs": float(matvecs)}


def _chunks(total: int, size: int) -> Iterator[int]:
    for start in range(0, total, size):
        yield min(size, total - start)


def _mean_and_se(samples: Tensor) -> tuple[float, float]:
    return float(samples.mean()), float(samples.std(correction=1)) / math.sqrt(len(samples))
