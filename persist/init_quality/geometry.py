"""Baseline geometry at an initialization: gradient norm and Hessian trace, batched over inits.

Both use torch.func: per-init gradients are ``vmap(grad(loss))``, and Hessian-vector products are
forward-over-reverse (``jvp`` of ``grad``), which needs no double backward and no Hessian in memory.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor
from torch.func import grad, jvp, vmap

from persist.init_quality.target import TargetNetwork


def gradient_norms(net: TargetNetwork, params: Tensor, x: Tensor, y: Tensor, chunk_size: int | None = None) -> Tensor:
    """Euclidean norm of the full-batch loss gradient at every row of ``params`` (B, P) -> (B,)."""
    grads = vmap(grad(net.loss), in_dims=(0, None, None), chunk_size=chunk_size)(params, x, y)
    return grads.norm(dim=-1)


def rademacher_probes(n: int, dim: int, generator: torch.Generator) -> Tensor:
    """(n, dim) random signs: E[v v^T] = I, the lowest-variance Hutchinson probe."""
    return torch.randint(0, 2, (n, dim), generator=generator).float() * 2 - 1


def hessian_traces(
    net: TargetNetwork, params: Tensor, x: Tensor, y: Tensor, probes: Tensor, chunk_size: int | None = None
) -> Tensor:
    """Hutchinson estimate mean_v v^T H v of tr(H) at every row of ``params`` (B, P) -> (B,).

    The same probes (n, P) serve every init (common random numbers), so differences between inits
    are not blurred by independent probe noise.
    """
    probes = probes.to(params)

    def hvp(w: Tensor, v: Tensor) -> Tensor:
        return jvp(lambda u: grad(net.loss)(u, x, y), (w,), (v,))[1]

    def trace(w: Tensor) -> Tensor:
        return vmap(lambda v: (v * hvp(w, v)).sum())(probes).mean()

    with warnings.catch_warnings():  # torch's first jvp loads its decompositions via deprecated jit.script
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*deprecated", category=FutureWarning)
        return vmap(trace, chunk_size=chunk_size)(params)
