"""Evaluation in eval mode with losses accumulated in fp32 on the device (one host sync at the end)."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


@torch.no_grad()
def evaluate(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int = 512,
    class_mask: slice | None = None,
) -> dict[str, float]:
    """Mean cross-entropy and top-1 accuracy; ``class_mask`` restricts logits (task-masked accuracy).

    The model's train/eval state is restored afterwards, so callers inside a training loop are safe.
    """
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), dtype=torch.float32, device=x.device)
    correct = torch.zeros((), dtype=torch.int64, device=x.device)
    for start in range(0, len(x), batch_size):
        xb, yb = x[start : start + batch_size], y[start : start + batch_size]
        logits = model(xb).float()
        if class_mask is not None:
            logits = logits[:, class_mask]
        loss_sum += F.cross_entropy(logits, yb, reduction="sum")
        correct += (logits.argmax(1) == yb).sum()
    model.train(was_training)
    n = max(len(x), 1)
    return {"loss": float(loss_sum) / n, "accuracy": float(correct) / n}
