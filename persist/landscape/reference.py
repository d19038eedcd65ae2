"""The straightforward per-node baseline the fast grid is checked and timed against.

Per node: write each parameter in a Python loop, loop over batches, ``.item()`` per batch, exactly how
a first implementation (and the published code) evaluates a landscape. Same nodes, same eval-mode
semantics and fp32 as :func:`persist.landscape.evaluate_grid`.
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from persist.landscape.directions import Directions
from persist.landscape.grid import LandscapeGrid, check_grid_args, check_directions, grid_axis
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
    """Loss and accuracy grid computed node by node, parameter by parameter, batch by batch."""
    began = time.perf_counter()
    check_grid_args(resolution, span, batch_size, 1, "fp32", "auto", None)
    device = check_same_device(model, x, y)
    dtype = next(model.parameters()).dtype
    check_directions(directions, parameter_layout(model))
    d1 = {n: t.to(device, dtype) for n, t in directions.d1.items()}
    d2 = {n: t.to(device, dtype) for n, t in directions.d2.items()}
    alphas = betas = grid_axis(resolution, span)
    loss = np.empty((resolution, resolution))
    accuracy = np.empty((resolution, resolution))
    with preserved_state(model), tf32_policy("fp32"):
        params = dict(model.named_parameters())
        theta = {n: p.detach().clone() for n, p in params.items()}
        for i, alpha in enumerate(alphas):
            for j, beta in enumerate(betas):
                a_t = torch.tensor(alpha, dtype=dtype, device=device)
                b_t = torch.tensor(beta, dtype=dtype, device=device)
                for name, p in params.items():
                    p.copy_(theta[name] + a_t * d1[name] + b_t * d2[name])
                total, correct = 0.0, 0
                for start in range(0, len(x), batch_size):
                    xb, yb = x[start:start + batch_size], y[start:start + batch_size]
                    logits = model(xb).float()
                    total += F.cross_entropy(logits, yb, reduction="sum").item()
                    correct += (logits.argmax(1) == yb).sum().item()
                loss[i, j], accuracy[i, j] = total / len(x), correct / len(x)
    loss, nonfinite = nonfinite_to_inf(loss)
    seconds = time.perf_counter() - began
    meta = {"resolution": resolution, "span": float(span), "batch_size": batch_size, "method": "reference",
            "precision": "fp32", "num_samples": len(x), **nonfinite, "device": str(device),
            "seconds": seconds, "seconds_per_node": seconds / resolution**2, "directions": directions.record}
    return LandscapeGrid(alphas, betas, loss, accuracy, meta)
