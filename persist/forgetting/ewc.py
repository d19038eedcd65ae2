"""Elastic weight consolidation (Kirkpatrick et al., 2017) with a diagonal Fisher from per-sample gradients.

The Fisher is the mean *squared per-sample* gradient of the task-A log-likelihood, computed with
``torch.func.vmap(grad(...))``; the square of a batch-mean gradient (what the published "Fisher
trace" computed) is a different, much smaller quantity.

The widened head: the Fisher is computed on the task-A model (task-A classes only, before widening)
and zero-padded for the new task-B rows, so those rows have no anchor and train freely, while the
old rows and biases are anchored like every other task-A parameter.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call, grad, vmap

from persist.errors import ConfigError

FisherLabels = Literal["empirical", "sampled"]


def diagonal_fisher(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int = 256,
    labels: FisherLabels = "empirical",
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """Diagonal Fisher per trainable parameter, in eval mode, averaged over the samples of ``x``.

    ``labels="empirical"`` uses the true labels (the common EWC implementation); ``"sampled"`` draws
    labels from the model's own predictive distribution with the CPU ``generator``, which gives the
    true Fisher in expectation.
    """
    if labels not in ("empirical", "sampled"):
        raise ConfigError(f"fisher_labels must be 'empirical' or 'sampled', got '{labels}'")
    if len(x) == 0:
        raise ConfigError("fisher_samples must be >= 1 (no task-A samples for the Fisher)")
    params = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
    buffers = {n: b.detach() for n, b in model.named_buffers()}

    def nll(p: dict[str, torch.Tensor], xi: torch.Tensor, yi: torch.Tensor) -> torch.Tensor:
        logits = functional_call(model, (p, buffers), (xi.unsqueeze(0),))
        return F.cross_entropy(logits.float(), yi.unsqueeze(0))

    per_sample_grads = vmap(grad(nll), in_dims=(None, 0, 0))
    fisher = {n: torch.zeros_like(p, dtype=torch.float32) for n, p in params.items()}
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(x), batch_size):
            xb, yb = x[start : start + batch_size], y[start : start + batch_size]
            if labels == "sampled":
                yb = _sample_labels(model, xb, generator)
            for name, g in per_sample_grads(params, xb, yb).items():
                fisher[name] += g.float().pow(2).sum(0)
    finally:
        model.train(was_training)
    return {n: f / len(x) for n, f in fisher.items()}


@torch.no_grad()
def _sample_labels(model: nn.Module, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    probs = F.softmax(model(x).float(), dim=1).cpu()
    return torch.multinomial(probs, 1, generator=generator).squeeze(1).to(x.device)


def pad_fisher(fisher: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Zero-pad Fisher entries whose parameter grew along dim 0 (the widened head's new rows)."""
    params = dict(model.named_parameters())
    padded = {}
    for name, f in fisher.items():
        if name not in params:
            raise ConfigError(f"fisher has parameter '{name}' that the model lacks")
        target = params[name].shape
        if f.shape == target:
            padded[name] = f
        elif f.shape[1:] == target[1:] and f.shape[0] < target[0]:
            padded[name] = torch.cat([f, f.new_zeros((target[0] - f.shape[0], *target[1:]))])
        else:
            raise ConfigError(f"fisher shape {tuple(f.shape)} for '{name}' does not fit parameter {tuple(target)}")
    return padded


def ewc_penalty(
    model: nn.Module, anchor: dict[str, torch.Tensor], fisher: dict[str, torch.Tensor], strength: float
) -> torch.Tensor:
    """``strength / 2 * sum_i F_i (theta_i - theta*_i)^2`` over the parameters that have a Fisher entry.

    Differentiable, stays on the device (no host sync), and is exactly 0 at the anchor.
    """
    terms = [
        (fisher[name] * (p - anchor[name]).pow(2)).sum() for name, p in model.named_parameters() if name in fisher
    ]
    if not terms:
        raise ConfigError("ewc fisher shares no parameter names with the model")
    return 0.5 * strength * torch.stack(terms).sum()
