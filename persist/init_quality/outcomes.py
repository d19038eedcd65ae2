"""Stage 4: train every initialization for the same budget and record its test loss (the target).

All inits train at once as rows of one (N, P) tensor: the vmapped losses are summed, so one backward
gives each row its own gradient, and SGD's element-wise update keeps the runs independent. Every
init sees the same minibatch order, so outcomes differ only through the initialization.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from persist.data import iterate_batches
from persist.errors import ConfigError
from persist.init_quality.target import DigitsTask, TargetNetwork


@dataclass(frozen=True)
class InitTrainingConfig:
    epochs: int = 20
    lr: float = 0.05
    momentum: float = 0.9
    batch_size: int = 64
    clip_norm: float = 5.0  # per-init gradient-norm clip so large-scale inits stay finite; 0 disables

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"training.{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ConfigError(f"training.lr must be > 0, got {self.lr}")
        if not 0 <= self.momentum < 1:
            raise ConfigError(f"training.momentum must be in [0, 1), got {self.momentum}")
        if self.clip_norm < 0:
            raise ConfigError(f"training.clip_norm must be >= 0, got {self.clip_norm}")


def _clip_rows_(g: Tensor, max_norm: float) -> None:
    """Scale each row of g to norm <= max_norm, in place and without a host sync."""
    g.mul_((max_norm / (g.norm(dim=1, keepdim=True) + 1e-12)).clamp(max=1.0))


def train_inits(
    net: TargetNetwork,
    inits: Tensor,
    task: DigitsTask,
    cfg: InitTrainingConfig,
    generator: torch.Generator,
    progress: bool = False,
) -> Tensor:
    """Minibatch SGD with momentum from every row of ``inits`` (N, P); returns the final rows."""
    w = inits.detach().clone().to(task.x_train.device).requires_grad_(True)
    opt = torch.optim.SGD([w], lr=cfg.lr, momentum=cfg.momentum)
    for _ in tqdm(range(cfg.epochs), desc="train inits", disable=not progress, leave=False):
        for xb, yb in iterate_batches(task.x_train, task.y_train, cfg.batch_size, generator, shuffle=True):
            loss = net.losses(w, xb, yb).sum()  # rows stay independent
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.clip_norm > 0 and w.grad is not None:
                _clip_rows_(w.grad, cfg.clip_norm)
            opt.step()
    return w.detach()


def evaluate_outcomes(
    net: TargetNetwork, params: Tensor, task: DigitsTask, chunk_size: int = 512
) -> dict[str, np.ndarray]:
    """Per-row final train loss, test loss and test accuracy, as host arrays."""
    with torch.no_grad():
        out = {
            "train_loss": net.losses(params, task.x_train, task.y_train, chunk_size),
            "test_loss": net.losses(params, task.x_test, task.y_test, chunk_size),
            "test_accuracy": net.accuracies(params, task.x_test, task.y_test, chunk_size),
        }
    return {k: v.cpu().numpy().astype(np.float64) for k, v in out.items()}
