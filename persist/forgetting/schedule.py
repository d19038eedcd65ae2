"""The task-B training policy: evaluation steps, learning-rate schedule and optimizer, one for all architectures."""

from __future__ import annotations

import math
from typing import Iterable, Literal

import torch

from persist.errors import ConfigError

LrSchedule = Literal["constant", "cosine"]

def eval_schedule(eval_steps: Iterable[int], total_steps: int) -> tuple[int, ...]:
    """The evaluation steps actually used: 0, the requested steps within budget, and the last step.

    Step 0 and the final step are always included so that retention has its denominator, AURC spans
    the whole run, and backward transfer and final task-B accuracy refer to the end of training.
    """
    if total_steps < 1:
        raise ConfigError(f"steps must be >= 1, got {total_steps}")
    requested = sorted({int(s) for s in eval_steps})
    if requested and requested[0] < 0:
        raise ConfigError(f"eval_steps must be >= 0, got {requested[0]}")
    return tuple(sorted({0, total_steps, *(s for s in requested if s <= total_steps)}))


def learning_rate(step: int, base_lr: float, total_steps: int, schedule: LrSchedule) -> float:
    """LR for the optimizer step that produces ``step + 1`` (``step`` counts completed steps).

    A pure function of the step, so resuming needs no scheduler state. Cosine decays from
    ``base_lr`` at step 0 to 0 at ``total_steps``.
    """
    if schedule == "constant":
        return base_lr
    if schedule == "cosine":
        return 0.5 * base_lr * (1.0 + math.cos(math.pi * step / total_steps))
    raise ConfigError(f"lr_schedule must be 'constant' or 'cosine', got '{schedule}'")


OptimizerName = Literal["sgd", "adam", "adamw"]


def make_optimizer(
    params: Iterable[torch.nn.Parameter], name: OptimizerName, lr: float, momentum: float, weight_decay: float
) -> torch.optim.Optimizer:
    """The task-B optimizer; ``momentum`` applies to SGD only (Adam keeps its default betas)."""
    params = list(params)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    raise ConfigError(f"optimizer must be 'sgd', 'adam' or 'adamw', got '{name}'")


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
