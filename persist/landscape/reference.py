"""The straightforward per-node baseline the fast grid is checked and timed against.

Per node: write each parameter in a Python loop, loop over batches, ``.item()`` per batch, exactly how
a first implementation (and the published code) evaluates a landscape. Same nodes, same eval-mode
semantics and fp32 as :func:`persist.landscape.evaluate_grid`.
"""

from __future__ import annotations

import itertools
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from persist.landscape.directions import Directions
from persist.landscape.grid import LandscapeGrid, check_directions, check_grid_args, grid_axes
from persist.landscape.nodes import nonfinite_to_inf, tf32_policy
from persist.landscape.parameters import check_same_device, parameter_layout, preserved_state


@torch.no_grad()
def evaluate_grid_reference(
    model: nn.Module,
    directions: Directions,
    x: torch.Tensor,
    y: torch.Tensor,
    resolution: int = 51,
    span: float = 1.0,
    batch_size: int = 512,
) -> LandscapeGrid:
    """Loss and accuracy grid (any number of directions) computed node by node, parameter by parameter,
    batch by batch."""
    began = time.perf_counter()
    check_grid_args(resolution, span, batch_size, 1, "fp32", "auto", None)
    device = check_same_device(model, x, y)
    dtype = next(model.parameters()).dtype
    check_directions(directions, parameter_layout(model))
    vectors = [{n: t.to(device, dtype) for n, t in v.items()} for v in directions.vectors]
    axes = grid_axes(directions, resolution, span)
    shape = tuple(len(a) for a in axes)
    loss = np.empty(shape)
    accuracy = np.empty(shape)
    with preserved_state(model), tf32_policy("fp32"):
        params = dict(model.named_parameters())
        theta = {n: p.detach().clone() for n, p in params.items()}
        for index in itertools.product(*(range(n) for n in shape)):
            coords = [torch.tensor(a[i], dtype=dtype, device=device) for a, i in zip(axes, index, strict=True)]
            for name, p in params.items():
                p.copy_(theta[name] + sum(c * v[name] for c, v in zip(coords, vectors, strict=True)))
            total, correct = 0.0, 0
            for start in range(0, len(x), batch_size):
                xb, yb = x[start:start + batch_size], y[start:start + batch_size]
                logits = model(xb).float()
                total += F.cross_entropy(logits, yb, reduction="sum").item()
                correct += (logits.argmax(1) == yb).sum().item()
            loss[index], accuracy[index] = total / len(x), correct / len(x)
    loss, nonfinite = nonfinite_to_inf(loss)
    seconds = time.perf_counter() - began
    meta = {"resolution": resolution, "span": float(span), "dims": len(axes), "batch_size": batch_size,
            "method": "reference", "precision": "fp32", "num_samples": len(x), **nonfinite, "device": str(device),
            "seconds": seconds, "seconds_per_node": seconds / loss.size, "directions": directions.record}
    return LandscapeGrid(axes, loss, accuracy, meta)
