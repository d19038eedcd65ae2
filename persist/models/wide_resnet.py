"""Wide ResNets (WRN-28-k) as the study built them: the ladder that varies width at fixed depth.

The study's block deviates from Zagoruyko & Komodakis (2016) in two ways, both kept here so results stay
comparable with it: the stride sits on the *second* 3x3 conv, and the 1x1 projection shortcut reads the raw
block input instead of the pre-activated one. Convolutions carry no bias and keep PyTorch's default
initialisation (the study used no Kaiming init). A 32x32 input ends on an 8x8 map.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from persist.errors import ModelError
from persist.models.registry import register_model, scaled

DROPOUT = 0.3


class WideBasicBlock(nn.Module):
    """Pre-activation block: BN-ReLU-conv, dropout, BN-ReLU-conv(stride), plus the shortcut."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, dropout: float) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.dropout = nn.Dropout(dropout)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.dropout(self.conv1(F.relu(self.bn1(x))))
        out = self.conv2(F.relu(self.bn2(out)))
        return out + self.shortcut(x)


class WideResNet(nn.Module):
    """Stem conv, three stages of (depth-4)/6 blocks at 16k-32k-64k channels, final BN-ReLU, GAP, linear head."""

    def __init__(
        self, depth: int, widen: int, num_classes: int, in_channels: int, width: float, dropout: float = DROPOUT
    ) -> None:
        super().__init__()
        if (depth - 4) % 6:
            raise ModelError(f"WRN depth must be 6n+4, got {depth}")
        blocks = (depth - 4) // 6
        channels = [scaled(c, width) for c in (16, 16 * widen, 32 * widen, 64 * widen)]
        self.conv1 = nn.Conv2d(in_channels, channels[0], 3, padding=1, bias=False)
        stages = []
        for index, (cin, cout) in enumerate(zip(channels, channels[1:], strict=False)):
            stride = 1 if index == 0 else 2
            layers = [WideBasicBlock(cin, cout, stride, dropout)]
            layers += [WideBasicBlock(cout, cout, 1, dropout) for _ in range(1, blocks)]
            stages.append(nn.Sequential(*layers))
        self.layer1, self.layer2, self.layer3 = stages
        self.bn = nn.BatchNorm2d(channels[-1])
        self.fc = nn.Linear(channels[-1], num_classes)
        self.classifier_path = "fc"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer3(self.layer2(self.layer1(self.conv1(x))))
        x = F.relu(self.bn(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


@register_model("wrn28_1")
def wrn28_1(num_classes: int, in_channels: int, image_size: int, width: float) -> nn.Module:
    """WRN-28-1 (16-16-32-64): the bottom of the study's width ladder (widths vary, depth is fixed at 28)."""
    return WideResNet(28, 1, num_classes, in_channels, width)


@register_model("wrn28_2")
def wrn28_2(num_classes: int, in_channels: int, image_size: int, width: float) -> nn.Module:
    """WRN-28-2 (16-32-64-128): a rung of the study's width ladder at fixed depth."""
    return WideResNet(28, 2, num_classes, in_channels, width)


@register_model("wrn28_4")
def wrn28_4(num_classes: int, in_channels: int, image_size: int, width: float) -> nn.Module:
    """WRN-28-4 (16-64-128-256): a rung of the study's width ladder at fixed depth."""
    return WideResNet(28, 4, num_classes, in_channels, width)


@register_model("wrn28_6")
def wrn28_6(num_classes: int, in_channels: int, image_size: int, width: float) -> nn.Module:
    """WRN-28-6 (16-96-192-384): a rung of the study's width ladder at fixed depth."""
    return WideResNet(28, 6, num_classes, in_channels, width)


@register_model("wrn28_8")
def wrn28_8(num_classes: int, in_channels: int, image_size: int, width: float) -> nn.Module:
    """WRN-28-8 (16-128-256-512): a rung of the study's width ladder at fixed depth."""
    return WideResNet(28, 8, num_classes, in_channels, width)


@register_model("wrn28_10")
def wrn28_10(num_classes: int, in_channels: int, image_size: int, width: float) -> nn.Module:
    """WRN-28-10 (16-160-320-640): the top of the study's width ladder, the classic CIFAR WRN."""
    return WideResNet(28, 10, num_classes, in_channels, width)
