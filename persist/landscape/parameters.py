"""Flat views of a model's named parameters, and a guard that leaves the model exactly as found.

Grid nodes and path points are parameter *vectors*; keeping them flat lets a whole chunk of nodes be
built with three tensor ops (no per-parameter Python loop), then viewed back as named tensors for
``torch.func.functional_call`` or written into the model with one ``torch._foreach_copy_``.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Mapping

import torch
import torch.nn as nn

from persist.errors import ConfigError


@dataclass(frozen=True)
class FlatLayout:
    """Names and shapes of a set of tensors laid end to end in one flat vector."""

    names: tuple[str, ...]
    shapes: tuple[torch.Size, ...]

    @classmethod
    def of(cls, tensors: Mapping[str, torch.Tensor]) -> "FlatLayout":
        return cls(tuple(tensors), tuple(t.shape for t in tensors.values()))

    @property
    def numels(self) -> list[int]:
        return [s.numel() for s in self.shapes]

    @property
    def size(self) -> int:
        return sum(self.numels)

    def flatten(self, tensors: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """One new contiguous vector (a copy, so later in-place writes to the sources do not reach it)."""
        return torch.cat([tensors[name].detach().reshape(-1) for name in self.names])

    def unflatten(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """Named views of ``flat`` (shape ``(..., size)``) with shapes ``(..., *shape)``; no copy."""
        lead = flat.shape[:-1]
        parts = flat.split(self.numels, dim=-1)
        return {
            name: part.view(*lead, *shape) for name, part, shape in zip(self.names, parts, self.shapes, strict=True)
        }


def combine(coefs: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """Rows ``coefs @ basis``: K parameter vectors from a few basis vectors in one GEMM.

    E.g. ``[1, a, b] @ [theta*; d1; d2]``. One matrix product is 5-20x faster than broadcast
    elementwise ops over ``(K, P)`` and exact where it matters (a coefficient row ``[1, 0, 0]`` gives
    ``theta*`` bit for bit). TF32 is held off for it, so only the forward pass ever uses reduced precision.
    """
    saved = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        return coefs @ basis
    finally:
        torch.backends.cuda.matmul.allow_tf32 = saved


def parameter_layout(model: nn.Module) -> FlatLayout:
    """Layout of ``model.named_parameters()`` (buffers are never part of a direction)."""
    params = dict(model.named_parameters())
    if not params:
        raise ConfigError(f"model {type(model).__name__} has no parameters to perturb")
    dtypes = {p.dtype for p in params.values()}
    if len(dtypes) != 1 or not next(iter(dtypes)).is_floating_point:
        raise ConfigError(f"model parameters must share one floating dtype, got {sorted(map(str, dtypes))}")
    return FlatLayout.of(params)


def model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def check_same_device(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.device:
    """The device everything runs on; mixing devices is a user error, not something to copy around."""
    device = model_device(model)
    if x.device != device or y.device != device:
        raise ConfigError(
            f"x is on {x.device} and y on {y.device} but the model is on {device}; move all to one device")
    if len(x) != len(y) or len(x) == 0:
        raise ConfigError(f"x and y must be non-empty with equal lengths, got {len(x)} and {len(y)}")
    return device


@contextmanager
def preserved_state(model: nn.Module) -> Iterator[None]:
    """Eval mode inside; afterwards the full ``state_dict`` (buffers too) and train/eval flag are restored.

    The published code evaluated landscapes in train mode and left BN running statistics overwritten
    by thousands of momentum updates; snapshotting everything makes any such leak impossible.
    """
    was_training = model.training
    snapshot = {k: v.detach().clone() for k, v in model.state_dict().items()}
    model.eval()
    try:
        yield
    finally:
        model.load_state_dict(snapshot)
        model.train(was_training)
