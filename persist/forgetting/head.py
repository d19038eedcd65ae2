"""Widening the classifier for task-B classes without touching task A's logits."""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from persist.errors import ConfigError
from persist.models import get_classifier, set_classifier


def widen_classifier(model: nn.Module, num_new: int, generator: torch.Generator) -> None:
    """Append ``num_new`` output rows to the model's classifier, in place.

    Old rows and biases are copied exactly, so the task-A logits at step 0 are those of the task-A
    model and retention is measured against the model that was actually trained. New rows follow
    ``nn.Linear``'s default init, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases, drawn
    from the seeded CPU ``generator`` so the head is identical on every device.
    """
    if num_new < 1:
        raise ConfigError(f"num_new must be >= 1, got {num_new}")
    old = get_classifier(model)
    fan_in, num_old = old.in_features, old.out_features
    weight, bias = old.weight.detach(), None if old.bias is None else old.bias.detach()
    new = nn.Linear(fan_in, num_old + num_new, bias=bias is not None, device=weight.device, dtype=weight.dtype)
    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    with torch.no_grad():
        new.weight[:num_old] = weight
        new.weight[num_old:] = _uniform((num_new, fan_in), bound, generator).to(new.weight)
        if bias is not None:
            new.bias[:num_old] = bias
            new.bias[num_old:] = _uniform((num_new,), bound, generator).to(new.bias)
    new.weight.requires_grad_(old.weight.requires_grad)
    if bias is not None:
        new.bias.requires_grad_(old.bias.requires_grad)
    set_classifier(model, new)


def _uniform(shape: tuple[int, ...], bound: float, generator: torch.Generator) -> torch.Tensor:
    return (torch.rand(shape, generator=generator) * 2.0 - 1.0) * bound


def narrow_classifier(model: nn.Module, num_classes: int) -> None:
    """Keep the first ``num_classes`` output rows of the classifier, in place (the inverse of widening).

    A model after task B restricted to its task-A rows is the task-masked view of it: the landscape of
    task A can then put it in one plane with task-A models (``landscape.directions=modes``).
    """
    old = get_classifier(model)
    if not 1 <= num_classes <= old.out_features:
        raise ConfigError(f"cannot narrow a {old.out_features}-class head to {num_classes} classes")
    new = nn.Linear(old.in_features, num_classes, bias=old.bias is not None, device=old.weight.device,
                    dtype=old.weight.dtype)
    with torch.no_grad():
        new.weight.copy_(old.weight[:num_classes])
        if old.bias is not None:
            new.bias.copy_(old.bias[:num_classes])
    set_classifier(model, new)
