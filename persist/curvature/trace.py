"""Stochastic trace estimators on a symmetric matvec.

Hutchinson: for Rademacher ``v``, ``E[vᵀHv] = tr(H)``, so the probe mean estimates the trace and the
probe spread gives its standard error. Hutch++ (Meyer et al., 2021) spends a third of the budget on a
sketch ``Q`` of the top of the spectrum, takes ``tr(QᵀHQ)`` exactly and runs Hutchinson only on the
deflated rest; for the fast-decaying spectra of trained networks that removes most of the variance.
Probes come from a seeded CPU generator so a seed means the same probes on every device.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor

from persist.curvature._checks import at_least

Matvec = Callable[[Tensor], Tensor]


def rademacher(count: int, dim: int, seed: int, like: Tensor) -> Tensor:
    """``count`` x ``dim`` random signs from a seeded CPU generator, moved to ``like``'s device and dtype."""
    gen = torch.Generator().manual_seed(seed)
    signs = torch.randint(0, 2, (count, dim), generator=gen).mul_(2).sub_(1)
    return signs.to(device=like.device, dtype=like.dtype)


def hutchinson_trace(matvec: Matvec, like: Tensor, probes: int, seed: int) -> dict[str, float]:
    """Trace with its standard error over ``probes`` Rademacher probes (``like``: a flat vector of the space)."""
    at_least("trace_probes", probes, 2)
    dim = like.numel()
    samples = []
    for i in range(probes):
        v = rademacher(1, dim, seed + i, like)[0]  # one generator per probe: any prefix of probes is reproducible
        samples.append(torch.dot(v.double(), matvec(v).double()))
    trace, se = _mean_and_se(torch.stack(samples))
    return {"trace": trace, "trace_se": se, "matvecs": float(probes)}


def hutchpp_trace(matvec: Matvec, like: Tensor, matvecs: int, seed: int) -> dict[str, float]:
    """Hutch++ with ``matvecs`` products; the standard error is that of the deflated Hutchinson part.

    The sketch part ``tr(QᵀHQ)`` is exact given ``Q``, so all of the estimator's randomness is in the residual
    probes; their spread is the honest uncertainty conditional on the sketch.
    """
    at_least("trace_probes", matvecs, 6)
    dim, third = like.numel(), matvecs // 3
    sketch = rademacher(third, dim, seed, like)
    probes = rademacher(matvecs - 2 * third, dim, seed + 1, like)
    q, _ = torch.linalg.qr(torch.stack([matvec(s) for s in sketch], dim=1))
    low_rank = sum(float(torch.dot(q[:, j].double(), matvec(q[:, j]).double())) for j in range(q.shape[1]))
    residual = []
    for g in probes:
        g = g - q @ (q.T @ g)
        residual.append(torch.dot(g.double(), matvec(g).double()))
    rest, se = _mean_and_se(torch.stack(residual))
    return {"trace": low_rank + rest, "trace_se": se, "matvecs": float(2 * third + len(probes))}


def _mean_and_se(samples: Tensor) -> tuple[float, float]:
    mean = float(samples.mean())
    return mean, float(samples.std(correction=1)) / math.sqrt(len(samples))

