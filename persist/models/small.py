"""Small MLP and CNN: fast on a laptop CPU, used by the embedded default and the tests."""

from __future__ import annotations

import torch.nn as nn

from persist.errors import ConfigError
from persist.models.registry import register_model, scaled

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU}


def mlp_layers(widths: tuple[int, ...], activation: str = "relu") -> list[nn.Module]:
    """Linear layers of the given widths (input first, classes last) with an activation between them.

    The one MLP of the package: the registry's ``mlp`` and the initialization-quality study's template use it.
    """
    if len(widths) < 2 or min(widths) < 1:
        raise ConfigError(f"widths must list >= 2 positive layer sizes, got {widths}")
    if activation not in ACTIVATIONS:
        raise ConfigError(f"activation must be one of {sorted(ACTIVATIONS)}, got '{activation}'")
    layers: list[nn.Module] = []
    for i, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        if i:
            layers.append(ACTIVATIONS[activation]())
        layers.append(nn.Linear(fan_in, fan_out))
    return layers


@register_model("mlp")
def mlp(num_classes: int, in_channels: int, image_size: int, width: float) -> nn.Module:
    """Two hidden layers of 256 units at width 1."""
    hidden = scaled(256, width)
    model = nn.Sequential(nn.Flatten(), *mlp_layers((in_channels * image_size * image_size, hidden, hidden, num_classes)))
    model.classifier_path = "5"  # type: ignore[assignment]  # nn.Module.__setattr__ is typed for tensors/modules only
    return model


class SmallCNN(nn.Module):
    """Three conv-BN-ReLU blocks with two poolings, then global average pooling and a linear head."""

    def __init__(self, num_classes: int, in_channels: int, width: float) -> None:
        super().__init__()
        c1, c2, c3 = scaled(32, width), scaled(64, width), scaled(128, width)

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())

        self.features = nn.Sequential(
            block(in_channels, c1), nn.MaxPool2d(2), block(c1, c2), nn.MaxPool2d(2), block(c2, c3),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.fc = nn.Linear(c3, num_classes)
        self.classifier_path = "fc"

    def forward(self, x):
        return self.fc(self.features(x))


@register_model("cnn")
def cnn(num_classes: int, in_channels: int, image_size: int, width: float) -> nn.Module:
    return SmallCNN(num_classes, in_channels, width)
