"""Loss along the straight line between two parameter vectors (e.g. the task-A -> task-B barrier).

Buffers: floating buffers present in both ``start`` and ``end`` (BN running mean/var) are interpolated
with the parameters, so t=0 and t=1 are exactly the two models; any other buffer (integer counters,
or one missing from ``end``) is taken from ``start``, and buffers missing from both keep the model's
own values. Points are ``[1 - t, t] @ [start; end]``, exact at both endpoints.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np
import torch
import torch.nn as nn

from persist.errors import ConfigError
from persist.landscape.nodes import (
    METHODS,
    PRECISIONS,
    Method,
    NodeEvaluator,
    Precision,
    check_choice,
    check_positive,
    choose_method,
    nonfinite_to_inf,
    tf32_policy,
)
from persist.landscape.parameters import FlatLayout, check_same_device, combine, parameter_layout, preserved_state


@dataclass(frozen=True)
class PathResult:
    """Loss and accuracy at ``ts`` in [0, 1]; ``meta`` records how they were measured."""

    ts: np.ndarray
    loss: np.ndarray
    accuracy: np.ndarray
    meta: dict = field(default_factory=dict)

    @property
    def barrier(self) -> float:
        """Largest rise of the loss above the straight line joining the endpoint losses (0 if none)."""
        chord = (1 - self.ts) * self.loss[0] + self.ts * self.loss[-1]
        return float(max(np.max(self.loss - chord), 0.0))


def _check_endpoint(name: str, state: Mapping[str, torch.Tensor], layout: FlatLayout) -> None:
    for key, shape in zip(layout.names, layout.shapes, strict=True):
        if key not in state:
            raise ConfigError(f"{name} lacks parameter '{key}' of the model")
        if state[key].shape != shape:
            raise ConfigError(f"{name}['{key}'] has shape {tuple(state[key].shape)}, the model {tuple(shape)}")


def _pin_buffers(model: nn.Module, start: Mapping[str, torch.Tensor], end: Mapping[str, torch.Tensor]) -> list[str]:
    """Copy ``start``'s fixed buffers into the model; return the floating buffers to interpolate."""
    varying = []
    for name, buf in model.named_buffers():
        if name in start and name in end and buf.is_floating_point():
            varying.append(name)
        elif name in start:
            buf.copy_(start[name])
    return varying


def _path_nodes(ts: np.ndarray, params: FlatLayout, buffers: FlatLayout | None, start: Mapping[str, torch.Tensor],
                end: Mapping[str, torch.Tensor], device: torch.device, dtype: torch.dtype):
    """``nodes(lo, hi)`` -> parameters (and varying buffers) of points lo..hi as ``[1 - t, t] @ [start; end]``,
    which reproduces both endpoints bit for bit."""
    coefs = torch.tensor(np.stack([1.0 - ts, ts], axis=1), dtype=dtype, device=device)
    param_basis = torch.stack([params.flatten(s).to(device, dtype) for s in (start, end)])
    buffer_basis = None
    if buffers is not None:
        buffer_basis = torch.stack([buffers.flatten(s).to(device, dtype) for s in (start, end)])

    def nodes(lo: int, hi: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        return (combine(coefs[lo:hi], param_basis),
                None if buffer_basis is None else combine(coefs[lo:hi], buffer_basis))

    return nodes


@torch.no_grad()
def evaluate_path(
    model: nn.Module,
    start: Mapping[str, torch.Tensor],
    end: Mapping[str, torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    num_points: int = 21,
    batch_size: int = 512,
    *,
    method: Method = "auto",
    points_per_step: int = 8,
    precision: Precision = "fp32",
) -> PathResult:
    """Mean cross-entropy and accuracy at ``num_points`` evenly spaced points of ``(1-t)*start + t*end``.

    Evaluated like a grid: eval mode, fp32 loss sums on the device, the model's state restored after.
    """
    check_positive("batch_size", batch_size)
    check_positive("points_per_step", points_per_step)
    check_choice("method", method, METHODS)
    check_choice("precision", precision, tuple(PRECISIONS))
    if not isinstance(num_points, int) or num_points < 2:
        raise ConfigError(f"num_points must be an integer >= 2, got {num_points!r}")
    device = check_same_device(model, x, y)
    layout = parameter_layout(model)
    _check_endpoint("start", start, layout)
    _check_endpoint("end", end, layout)
    ts = np.linspace(0.0, 1.0, num_points)
    began = time.perf_counter()
    with preserved_state(model), tf32_policy(precision) as tf32:
        varying = _pin_buffers(model, start, end)
        buffers = FlatLayout.of({n: b for n, b in model.named_buffers() if n in varying}) if varying else None
        evaluator = NodeEvaluator(model, layout, x, y, batch_size, precision, buffers)
        nodes = _path_nodes(ts, layout, buffers, start, end, device, next(model.parameters()).dtype)
        steps = [(lo, min(lo + points_per_step, num_points)) for lo in range(0, num_points, points_per_step)]
        chosen: Method = method
        probe: dict[str, float | str] = {}
        probed: tuple | None = None
        if method == "auto":
            chosen, probe, probed = choose_method(evaluator, *nodes(*steps[0]))
        parts = [probed if k == 0 and probed is not None else evaluator.run(chosen, *nodes(*step))[:2]
                 for k, step in enumerate(steps)]
        loss = torch.cat([p[0] for p in parts]).cpu().numpy().astype(np.float64) / len(x)
        accuracy = torch.cat([p[1] for p in parts]).cpu().numpy().astype(np.float64) / len(x)
    loss, nonfinite = nonfinite_to_inf(loss)
    meta = {"method": chosen, "method_requested": method, "auto": probe, "precision": precision,
            "points_per_step": points_per_step, "batch_size": batch_size, "num_samples": len(x),
            "interpolated_buffers": varying, **nonfinite, **tf32,
            "seconds": time.perf_counter() - began}
    return PathResult(ts, loss, accuracy, meta)
