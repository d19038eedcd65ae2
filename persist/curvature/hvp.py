"""The loss of a model over a declared data subset as a pure function of its parameters.

Every curvature measure is a question about one function: the mean cross-entropy over a fixed subset,
evaluated in eval mode (no dropout noise, BatchNorm running statistics) so that repeated calls see the
same function. Hessian-vector products are forward-over-reverse (``jvp`` of ``grad``): that needs only
forward-mode formulas of the backward ops, so it works where double backward fails (the published code
lost every attention and hardsigmoid model to this). Attention runs on the math SDPA backend, and
hardsigmoid, the one common op whose backward has no forward-mode formula, as the identical
``relu6(x + 3) / 6``; both only inside :func:`measurement_mode`.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Callable, Iterator, cast

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor
from torch.func import functional_call, grad, grad_and_value, jvp, vmap
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.overrides import TorchFunctionMode

from persist.errors import ConfigError

Params = dict[str, Tensor]


@dataclass(frozen=True)
class Objective:
    """Mean cross-entropy of ``model`` over ``batches``; ``params`` are the trainable parameters it varies."""

    model: nn.Module
    params: Params
    buffers: dict[str, Tensor]
    batches: tuple[tuple[Tensor, Tensor], ...]

    @property
    def num_samples(self) -> int:
        return sum(len(yb) for _, yb in self.batches)

    @property
    def dim(self) -> int:
        return sum(p.numel() for p in self.params.values())

    def weights(self) -> list[float]:
        """Each batch's share of the subset, so batch means combine into the exact subset mean."""
        n = self.num_samples
        return [len(yb) / n for _, yb in self.batches]


def make_objective(model: nn.Module, x: Tensor, y: Tensor, batch_size: int) -> Objective:
    """Freeze the current parameters and the subset ``(x, y)`` into an :class:`Objective`.

    Frozen parameters (``requires_grad=False``) are constants, like buffers. The data move once to the
    parameters' device (floating inputs also to their dtype), so no measure copies data in its loop.
    """
    if len(x) != len(y):
        raise ConfigError(f"x and y must have the same length, got {len(x)} and {len(y)}")
    if len(x) == 0:
        raise ConfigError("x must hold at least one sample for a curvature measure")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    params = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
    if not params:
        raise ConfigError("model has no trainable parameters to measure curvature over")
    constants = {n: p.detach() for n, p in model.named_parameters() if not p.requires_grad}
    buffers = {**constants, **dict(model.named_buffers())}
    first = next(iter(params.values()))
    x = x.to(device=first.device, dtype=first.dtype if x.is_floating_point() else None)
    y = y.to(first.device)
    batches = tuple((x[i : i + batch_size], y[i : i + batch_size]) for i in range(0, len(x), batch_size))
    return Objective(model, params, buffers, batches)


def logits(obj: Objective, params: Params, x: Tensor) -> Tensor:
    """Model output with ``params`` substituted; losses downstream are computed in at least fp32."""
    out = functional_call(obj.model, (params, obj.buffers), (x,))
    return out.to(torch.promote_types(out.dtype, torch.float32))


def batch_loss(obj: Objective, params: Params, x: Tensor, y: Tensor) -> Tensor:
    """Mean cross-entropy of one batch."""
    return F.cross_entropy(logits(obj, params, x), y)


def subset_loss(obj: Objective, params: Params | None = None) -> Tensor:
    """Mean cross-entropy over the whole subset, accumulated on the device (one host sync by the caller)."""
    params = obj.params if params is None else params
    with torch.no_grad():
        terms = (w * batch_loss(obj, params, xb, yb) for (xb, yb), w in zip(obj.batches, obj.weights(), strict=True))
        return cast(Tensor, sum(terms))  # a Tensor: make_objective rejects an empty subset


def _batch_objective(obj: Objective, x: Tensor, y: Tensor) -> Callable[[Params], Tensor]:
    """The loss on one batch as a function of the parameters alone (what ``grad`` and ``jvp`` differentiate).

    A factory rather than a lambda in the loop, so each closure holds its own batch, not the loop variable.
    """
    return lambda p: batch_loss(obj, p, x, y)


def loss_and_gradient(obj: Objective, params: Params) -> tuple[Tensor, Params]:
    """Subset loss and its gradient, accumulated batch by batch so memory stays at one batch."""
    total, gsum = None, None
    for (xb, yb), w in zip(obj.batches, obj.weights(), strict=True):
        g, loss = grad_and_value(_batch_objective(obj, xb, yb))(params)
        total = w * loss if total is None else total + w * loss
        gsum = _axpy(w, g, gsum)
    assert total is not None and gsum is not None  # make_objective rejects an empty subset
    return total, gsum


def hessian_vector_product(f: Callable[[Params], Tensor], params: Params, v: Params) -> Params:
    """H(f) v at ``params`` by forward-over-reverse differentiation (no graph kept between calls)."""
    return jvp(grad(f), (params,), (v,))[1]


def hvp(obj: Objective, v: Params) -> Params:
    """Hessian of the subset loss times ``v``: the batch-weighted sum of per-batch products, exactly."""
    out: Params | None = None
    for (xb, yb), w in zip(obj.batches, obj.weights(), strict=True):
        out = _axpy(w, hessian_vector_product(_batch_objective(obj, xb, yb), obj.params, v), out)
    assert out is not None  # make_objective rejects an empty subset
    return out


def hvp_rows(obj: Objective, vs: Params) -> Params:
    """:func:`hvp` of K vectors at once (leading dim K), vmapped over the tangents.

    One traversal of the model serves all K products, which amortizes the per-op overhead that dominates
    small batches (about 5x per product on CPU at K = 8); memory for activation tangents grows with K.
    """
    out: Params | None = None
    for (xb, yb), w in zip(obj.batches, obj.weights(), strict=True):
        out = _axpy(w, vmap(partial(hessian_vector_product, _batch_objective(obj, xb, yb), obj.params))(vs), out)
    assert out is not None  # make_objective rejects an empty subset
    return out


def flatten(params: Params) -> Tensor:
    """One vector in the dict's order, for the linear algebra of trace and eigenvalue solvers."""
    return torch.cat([t.reshape(-1) for t in params.values()])


def unflatten(template: Params, flat: Tensor) -> Params:
    """Inverse of :func:`flatten` with ``template``'s names and shapes (views, no copies)."""
    sizes = [t.numel() for t in template.values()]
    return {n: c.view_as(t) for (n, t), c in zip(template.items(), torch.split(flat, sizes), strict=True)}


def flat_hvp(obj: Objective) -> Callable[[Tensor], Tensor]:
    """The Hessian as a matvec on flat vectors (what ARPACK asks for, one at a time)."""
    return lambda v: flatten(hvp(obj, unflatten(obj.params, v)))


def flat_hvp_rows(obj: Objective) -> Callable[[Tensor], Tensor]:
    """The Hessian applied to each row of a ``[K, dim]`` matrix (what the trace estimators batch)."""
    sizes = [t.numel() for t in obj.params.values()]

    def matmat(rows: Tensor) -> Tensor:
        blocks = torch.split(rows, sizes, dim=1)
        vs = {n: b.reshape(len(rows), *t.shape) for (n, t), b in zip(obj.params.items(), blocks, strict=True)}
        return torch.cat([t.reshape(len(rows), -1) for t in hvp_rows(obj, vs).values()], dim=1)

    return matmat


def _axpy(a: float, x: Params, y: Params | None) -> Params:
    if y is None:
        return {n: a * t for n, t in x.items()}
    return {n: y[n] + a * t for n, t in x.items()}


def _is_global(output_size) -> bool:
    """``adaptive_avg_pool2d`` to 1x1 (given as 1, (1, 1) or (1, None)-free forms) is a plain spatial mean."""
    size = output_size if isinstance(output_size, (tuple, list)) else (output_size, output_size)
    return all(s == 1 for s in size)


class _HardsigmoidComposite(TorchFunctionMode):
    """Evaluate ops whose derivatives vmap or forward-mode AD cannot batch as identical composites.

    * hardsigmoid as ``relu6(x + 3) / 6``: ``hardsigmoid_backward`` has no forward-mode (and no
      double-backward) formula, which is what made every MobileNet-V3 curvature metric fail in the
      published code; the composite's pieces all have one.
    * global ``adaptive_avg_pool2d`` (output 1x1) as ``x.mean((-2, -1), keepdim=True)``: the pool's
      backward calls ``as_strided_``, which has no vmap batching rule, so the batched HVPs of the trace
      and the per-sample Fisher gradients fell back to a slow per-sample loop on ConvNeXt, ResNets and
      the small CNN. The mean is the same number (one reduction over H x W) and maps cleanly.
    """

    _HARDSIGMOID = (F.hardsigmoid, torch._C._nn.hardsigmoid, torch._C._nn.hardsigmoid_)
    _ADAPTIVE_AVG = (F.adaptive_avg_pool2d, torch._C._nn.adaptive_avg_pool2d)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in self._HARDSIGMOID:  # in-place calls get a new tensor too; callers use the return value
            return F.relu6(args[0] + 3.0) / 6.0
        if func in self._ADAPTIVE_AVG:
            size = args[1] if len(args) > 1 else kwargs.get("output_size")
            if _is_global(size):
                return args[0].mean(dim=(-2, -1), keepdim=True)
        return func(*args, **kwargs)


@contextmanager
def measurement_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode, math attention and a full ``state_dict`` snapshot restored on exit, errors included.

    Measures never write to the model, but the snapshot makes that a guarantee rather than a hope: the
    published code left perturbed BatchNorm buffers behind and measured every later metric on them.
    """
    snapshot = {k: v.detach().clone() for k, v in model.state_dict().items()}
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with sdpa_kernel(SDPBackend.MATH), _HardsigmoidComposite():
            yield
    finally:
        model.load_state_dict(snapshot)
        for m, training in modes:
            m.training = training
