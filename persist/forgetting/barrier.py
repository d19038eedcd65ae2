"""The task-A loss barrier on the straight path from the widened task-A solution to the task-B solution.

Default ``logits="masked"``: task-A loss over the task-A logits only. Along the path the new rows'
logits grow for every input, so the class-incremental loss mostly tracks head bias toward task B;
the masked loss asks whether the *task-A function* survives between the two solutions (the
multi-head view of linear mode connectivity). ``logits="all"`` gives the class-incremental path.
The barrier is the largest rise of the path loss above the chord joining the endpoint losses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Mapping

import numpy as np
import torch
import torch.nn as nn

from persist.errors import ConfigError

BarrierLogits = Literal["masked", "all"]


@dataclass(frozen=True)
class BarrierResult:
    """Task-A loss and accuracy at ``ts`` (0 = task-A solution after widening, 1 = after task B)."""

    ts: np.ndarray
    loss: np.ndarray
    accuracy: np.ndarray
    barrier: float  # max over t of loss(t) - [(1 - t) loss(0) + t loss(1)], floored at 0
    t_max: float  # where that maximum is reached
    logits: str

    def summary(self) -> dict[str, float]:
        return {"barrier": self.barrier, "barrier_t": self.t_max, "barrier_loss_start": float(self.loss[0]),
                "barrier_loss_end": float(self.loss[-1]), "barrier_loss_max": float(np.max(self.loss))}


def task_barrier(
    model: nn.Module,
    start: Mapping[str, torch.Tensor],
    end: Mapping[str, torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    num_task_a: int,
    logits: BarrierLogits = "masked",
    num_points: int = 21,
    batch_size: int = 512,
) -> BarrierResult:
    """Evaluate task-A data (labels 0..num_task_a-1) along ``(1 - t) start + t end`` on the widened ``model``.

    ``start``/``end`` are typically ``ForgettingResult.initial_state`` and ``.final_state``. The
    model's state is left as found (the path evaluator restores it).
    """
    from persist.landscape.path import evaluate_path  # the landscape layer is optional for forgetting users

    if logits not in ("masked", "all"):
        raise ConfigError(f"barrier logits must be 'masked' or 'all', got '{logits}'")
    if num_task_a < 1:
        raise ConfigError(f"num_task_a must be >= 1, got {num_task_a}")
    handle = model.register_forward_hook(lambda _m, _i, out: out[..., :num_task_a]) if logits == "masked" else None
    try:
        path = evaluate_path(model, start, end, x, y, num_points=num_points, batch_size=batch_size)
    finally:
        if handle is not None:
            handle.remove()
    if not np.isfinite(path.loss).all():  # a diverged point is an infinite barrier, never a dropped one
        peak = int(np.argmax(~np.isfinite(path.loss)))
        return BarrierResult(path.ts, path.loss, path.accuracy, float("inf"), float(path.ts[peak]), logits)
    excess = path.loss - ((1 - path.ts) * path.loss[0] + path.ts * path.loss[-1])
    peak = int(np.argmax(excess))
    return BarrierResult(path.ts, path.loss, path.accuracy, float(max(excess[peak], 0.0)), float(path.ts[peak]), logits)
