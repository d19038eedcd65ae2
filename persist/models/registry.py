"""Model registry: every architecture is built the same way and exposes its classifier the same way.

Builders have the signature ``builder(num_classes, in_channels, image_size, width) -> nn.Module`` and
must set ``model.classifier_path`` to the dotted name of the final ``nn.Linear``. The forgetting phase
widens that layer for task-B classes, so one uniform accessor replaces per-architecture guessing
(the published code looked for ``fc`` then ``head`` and broke on Sequential heads).
"""

from __future__ import annotations

from typing import Callable

import torch.nn as nn

from persist.architectures import CATALOG, ArchInfo, add_architecture
from persist.errors import ModelError
from persist.registry import Registry

Builder = Callable[..., nn.Module]
_MODELS: Registry[Builder] = Registry("architecture", ModelError)


def register_model(name: str | None = None, info: ArchInfo | None = None) -> Callable[[Builder], Builder]:
    """Register a builder under ``name`` (default: the function's name).

    Its metadata (family, input kind, studies) comes from :data:`persist.architectures.CATALOG`, or from
    ``info`` for an architecture defined elsewhere; a builder with neither is refused, so every registered
    architecture has a family.
    """
    register = _MODELS.register(name)

    def wrap(fn: Builder) -> Builder:
        key = name or fn.__name__
        if info is not None:
            add_architecture(key, info)
        elif key not in CATALOG:
            raise ValueError(f"architecture '{key}' has no metadata: add it to persist/architectures.py or pass info=")
        return register(fn)

    return wrap


def list_models() -> list[str]:
    """Names of all registered architectures, sorted."""
    return _MODELS.names()


def create_model(
    name: str, num_classes: int, in_channels: int = 3, image_size: int = 32, width: float = 1.0
) -> nn.Module:
    """Build a registered architecture; ``width`` scales channel/hidden sizes for CPU-sized variants."""
    if num_classes < 1:
        raise ModelError(f"num_classes must be >= 1, got {num_classes}")
    if width <= 0:
        raise ModelError(f"model width must be > 0, got {width}")
    model = _MODELS.get(name)(num_classes=num_classes, in_channels=in_channels, image_size=image_size, width=width)
    head = get_classifier(model)
    if head.out_features != num_classes:
        raise ModelError(
            f"architecture '{name}' built a classifier with {head.out_features} outputs, not {num_classes}")
    model.arch_name = name  # type: ignore[assignment]  # nn.Module.__setattr__ is typed for tensors/modules only
    return model


def get_classifier(model: nn.Module) -> nn.Linear:
    """The final linear layer producing the logits."""
    path = getattr(model, "classifier_path", None)
    if path is None:
        raise ModelError(f"model {type(model).__name__} has no classifier_path; build it with create_model")
    layer = model.get_submodule(path)
    if not isinstance(layer, nn.Linear):
        raise ModelError(f"classifier '{path}' of {type(model).__name__} is {type(layer).__name__}, not Linear")
    return layer


def set_classifier(model: nn.Module, layer: nn.Linear) -> None:
    """Replace the final linear layer in place (used to widen the head for new classes)."""
    parent_name, _, child = str(model.classifier_path).rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, layer)


def default_shape(name: str) -> dict[str, int]:
    """The task shape an architecture is listed at: CIFAR-100 task A (50 classes, 3x32x32) for images,
    MNIST-1D task A (5 classes, 1x40) for signals."""
    if CATALOG[name].input == "1d":
        return {"num_classes": 5, "in_channels": 1, "image_size": 40}
    return {"num_classes": 50, "in_channels": 3, "image_size": 32}


def measured_parameters(name: str) -> int:
    """Parameter count at width 1 and :func:`default_shape`, measured on the meta device (no memory, no init)."""
    import torch

    with torch.device("meta"):
        return count_parameters(create_model(name, width=1.0, **default_shape(name)))


def count_parameters(model: nn.Module) -> int:
    """Trainable parameter count measured from the model (never typed in; buffers excluded)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def scaled(channels: int, width: float, minimum: int = 4) -> int:
    """Scale a channel count by ``width``, rounding to a multiple of 4 so grouped layers stay valid."""
    return max(minimum, int(round(channels * width / 4.0)) * 4) if width != 1.0 else channels
