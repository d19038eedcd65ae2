"""Small MLP and CNN: fast on a laptop CPU, used by the embedded default and the tests."""

from __future__ import annotations

import torch.nn as nn

from persist.models.registry import register_model, scaled


@register_model("mlp")
def mlp(num_classes: int, in_channels: int, image_size: int, width: float) -> nn.Module:
    """Two hidden layers of 256 units at width 1."""
    hidden = scaled(256, width)
    model = nn.Sequential(
        nn.Flatten(),
        nn.Linear(in_channels * image_size * image_size, hidden),
        nn.ReLU(),
        nn.Linear(hidden, hidden),
        nn.ReLU(),
        nn.Linear(hidden, num_classes),
    )
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
