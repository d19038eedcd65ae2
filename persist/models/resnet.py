"""ResNets with the CIFAR stem: a 3x3 stride-1 conv and no max-pool, so a 32x32 input ends on a 4x4 map.

torchvision's ``ResNet`` class hard-codes the 64-128-256-512 stage widths, which rules out both the
``width`` multiplier and ResNet-18 Wide (the study's 2x-width basic-block ResNet-18). So the stages are
assembled here from torchvision's own ``BasicBlock``/``Bottleneck``, with torchvision's module names
(``conv1``, ``bn1``, ``layer1``..``layer4``, ``fc``) and its initialisation; at width 1 ``resnet18`` and
``resnet50`` have exactly the study's layers (torchvision ResNet with the stem swapped).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
from torchvision.models.resnet import BasicBlock, Bottleneck

from persist.models.registry import register_model, scaled

ResidualBlock = type[BasicBlock] | type[Bottleneck]


def kaiming_conv_init(model: nn.Module) -> None:
    """He-normal (fan-out) conv weights and zero conv biases: how torchvision initialises ResNet and VGG.

    Needed where the study took torchvision's initialisation but the layers are assembled here.
    """
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)


def _stage(block: ResidualBlock, inplanes: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
    """One stage; the first block projects the shortcut when the shape changes (torchvision's rule)."""
    outplanes = planes * block.expansion
    downsample = None
    if stride != 1 or inplanes != outplanes:
        downsample = nn.Sequential(
            nn.Conv2d(inplanes, outplanes, 1, stride=stride, bias=False), nn.BatchNorm2d(outplanes)
        )
    layers = [block(inplanes, planes, stride, downsample)]
    layers += [block(outplanes, planes) for _ in range(1, blocks)]
    return nn.Sequential(*layers)


class CifarResNet(nn.Module):
    """Four residual stages (strides 1, 2, 2, 2) behind a 3x3 stride-1 stem, then GAP and a linear head."""

    layer1: nn.Sequential  # registered by name in __init__
    layer2: nn.Sequential
    layer3: nn.Sequential
    layer4: nn.Sequential

    def __init__(
        self, block: ResidualBlock, layers: Sequence[int], widths: Sequence[int], num_classes: int, in_channels: int
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        inplanes = widths[0]
        for index, (planes, blocks) in enumerate(zip(widths, layers, strict=True)):
            stage = _stage(block, inplanes, planes, blocks, stride=1 if index == 0 else 2)
            self.add_module(f"layer{index + 1}", stage)
            inplanes = planes * block.expansion
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(inplanes, num_classes)
        self.classifier_path = "fc"
        kaiming_conv_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def _resnet(
    block: ResidualBlock, layers: Sequence[int], base: int, num_classes: int, in_channels: int, width: float
) -> CifarResNet:
    widths = [scaled(base * 2**i, width) for i in range(4)]
    return CifarResNet(block, layers, widths, num_classes, in_channels)


@register_model("resnet18")
def resnet18(num_classes: int, in_channels: int, image_size: int, width: float) -> nn.Module:
    """ResNet-18 (basic blocks, 64-512): the study's mid-size CNN reference."""
    return _resnet(BasicBlock, (2, 2, 2, 2), 64, num_classes, in_channels, width)


@register_model("resnet50")
def resnet50(num_classes: int, in_channels: int, image_size: int, width: float) -> nn.Module:
    """ResNet-50 (bottlenecks, 2048 features): depth and bottlenecks at about twice ResNet-18's parameters."""
    return _resnet(Bottleneck, (3, 4, 6, 3), 64, num_classes, in_channels, width)


@register_model("resnet18_wide")
def resnet18_wide(num_classes: int, in_channels: int, image_size: int, width: float) -> nn.Module:
    """ResNet-18 at twice the width (128-1024, stem 128): the study's largest model, same depth as ResNet-18."""
    return _resnet(BasicBlock, (2, 2, 2, 2), 128, num_classes, in_channels, width)
