"""torchvision families adapted to 32x32 inputs as the study adapted them.

Each builder constructs the torchvision class, so blocks, initialisation, dropout and stochastic depth are
torchvision's, then swaps the ImageNet stem (which downsamples 2-4x at once, too much for 32x32) for a 3x3
stride-1 conv, and replaces the head where the study did. The swapped stem is also where ``in_channels``
enters, since torchvision hard-codes 3; it keeps PyTorch's default initialisation.

``width`` scales channels with the registry's ``scaled`` rule, except for EfficientNet and MobileNet-V3,
which use torchvision's own ``width_mult`` (channels rounded to multiples of 8), the knob those families
were designed with.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.models import mobilenet_v3_small as tv_mobilenet_v3_small
from torchvision.models.convnext import CNBlockConfig, ConvNeXt
from torchvision.models.densenet import DenseNet
from torchvision.models.efficientnet import EfficientNet, _efficientnet_conf
from torchvision.models.regnet import BlockParams, RegNet
from torchvision.models.shufflenetv2 import ShuffleNetV2
from torchvision.models.vgg import cfgs as vgg_layouts
from torchvision.models.vgg import make_layers

from persist.models.registry import register_model, scaled
from persist.models.resnet import kaiming_conv_init


def _stem_conv(in_channels: int, out_channels: int, bias: bool = False) -> nn.Conv2d:
    """3x3 stride-1 conv that keeps the full 32x32 resolution where an ImageNet stem would shrink it."""
    return nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=bias)


@register_model("densenet121")
def densenet121(num_classes: int, in_channels: int, image_size: int, width: float) -> nn.Module:
    """DenseNet-121 (growth 32, blocks 6-12-24-16) without pool0: three transitions leave a 4x4 map.

    The study also swapped norm0 for a fresh default BN, which is what torchvision's norm0 already is.
    8x8 inputs end on a 1x1 map, so no pooling needs skipping.
    """
    model = DenseNet(
        growth_rate=scaled(32, width),
        block_config=(6, 12, 24, 16),
        num_init_features=scaled(64, width),
        num_classes=num_classes,
    )
    features = model.features
    features.conv0 = _stem_conv(in_channels, features.conv0.out_channels)
    del features.pool0
    model.classifier_path = "classifier"
    return model


@register_model("efficientnet_b0")
def efficientnet_b0(num_classes: int, in_channels: int, image_size: int, width: float) -> nn.Module:
    """EfficientNet-B0 with a stride-1 stem (2x2 final map); head GAP, dropout 0.2, linear.

    Keeps torchvision's 16 stochastic-depth blocks (p rising to 0.2) and the stem's BN, which is the default
    BN the study put there. The B0 layout comes from torchvision's private ``_efficientnet_conf`` because
    the public builder fixes ``width_mult`` at 1.
    """
    setting, last_channel = _efficientnet_conf("efficientnet_b0", width_mult=width, depth_mult=1.0)
    model = EfficientNet(
        setting, dropout=0.2, stochastic_depth_prob=0.2, num_classes=num_classes, last_channel=last_channel
    )
    stem = model.features[0]
    stem[0] = _stem_conv(in_channels, stem[0].out_channels)
    model.classifier_path = "classifier.1"
    return model


def _vgg16_layout(width: float, image_size: int) -> list[int | str]:
    """VGG-16's layout at ``width``, without the max-pools that would shrink the map below 1x1.

    At 32x32 all five pools stay (final map 1x1); at 8x8 the last two are skipped.
    """
    layout: list[int | str] = []
    size = image_size
    for entry in vgg_layouts["D"]:
        if entry != "M":
            layout.append(scaled(int(entry), width))
        elif size >= 2:
            layout.append("M")
            size //= 2
    return layout


@register_model("vgg16_bn")
def vgg16_bn(num_classes: int, in_channels: int, image_size: int, width: float) -> nn.Module:
    """VGG-16-BN conv features (13 convs) with GAP and one linear layer in place of the 4096-wide FC stack.

    Only torchvision's layer builder is reused (its VGG class would allocate the 100M-parameter FC stack),
    so the convs get torchvision's VGG initialisation here.
    """
    features = make_layers(_vgg16_layout(width, image_size), batch_norm=True)
    features[0] = nn.Conv2d(in_channels, features[0].out_channels, 3, padding=1)
    model = nn.Sequential(
        OrderedDict(
            features=features,
            pool=nn.AdaptiveAvgPool2d(1),
            flatten=nn.Flatten(),
            fc=nn.Linear(scaled(512, width), num_classes),
        )
    )
    kaiming_conv_init(model)
    model.classifier_path = "fc"  # type: ignore[assignment]  # nn.Module.__setattr__ is typed for tensors/modules only
    return model


@register_model("convnext_tiny")
def convnext_tiny(num_classes: int, in_channels: int, image_size: int, width: float) -> nn.Module:
    """ConvNeXt-Tiny (96-768, 3-3-9-3) with a 3x3 stride-1 stem instead of the 4x4 patchify (4x4 final map).

    Keeps the stem's bias and LayerNorm2d and the 18 stochastic-depth blocks (p up to 0.1); the study
    dropped the LayerNorm before the head, so the head is GAP, flatten, linear.
    """
    c = [scaled(channels, width) for channels in (96, 192, 384, 768)]
    setting = [
        CNBlockConfig(c[0], c[1], 3),
        CNBlockConfig(c[1], c[2], 3),
        CNBlockConfig(c[2], c[3], 9),
        CNBlockConfig(c[3], None, 3),
    ]
    model = ConvNeXt(setting, stochastic_depth_prob=0.1, num_classes=num_classes)
    model.features[0][0] = _stem_conv(in_channels, c[0], bias=True)
    model.classifier[0] = nn.Identity()
    model.classifier_path = "classifier.2"
    return model


class Hardsigmoid(nn.Module):
    """``relu6(x + 3) / 6``: the same values as ``nn.Hardsigmoid``, but differentiable twice under torch.func.

    ``hardsigmoid_backward`` has no forward-mode derivative, so jvp-over-grad Hessian-vector products
    fail on MobileNet-V3's squeeze-excitation gates; relu6 has one.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu6(x + 3.0) / 6.0


def _replace_hardsigmoid(model: nn.Module) -> None:
    targets = [
        (parent, name)
        for parent in model.modules()
        for name, child in parent.named_children()
        if isinstance(child, nn.Hardsigmoid)
    ]
    for parent, name in targets:
        setattr(parent, name, Hardsigmoid())


@register_model("mobilenet_v3_small")
def mobilenet_v3_small(num_classes: int, in_channels: int, image_size: int, width: float) -> nn.Module:
    """MobileNet-V3-Small with a stride-1 first conv (2x2 final map) and the study's smaller head.

    The first conv's BN (eps 1e-3, momentum 0.01) is kept. The head is Linear(576, 256), Hardswish,
    Linear, with no dropout. ``classifier_path`` points at that last Linear.
    """
    model = tv_mobilenet_v3_small(num_classes=num_classes, width_mult=width)
    stem = model.features[0]
    stem[0] = _stem_conv(in_channels, stem[0].out_channels)
    hidden = scaled(256, width)
    model.classifier = nn.Sequential(
        nn.Linear(model.features[-1].out_channels, hidden), nn.Hardswish(), nn.Linear(hidden, num_classes)
    )
    _replace_hardsigmoid(model)
    model.classifier_path = "classifier.2"
    return model


@register_model("shufflenet_v2")
def shufflenet_v2(num_classes: int, in_channels: int, image_size: int, width: float) -> nn.Module:
    """ShuffleNet-V2 x1.0 (24-116-232-464-1024) with a stride-1 conv1 and no max-pool (4x4 final map)."""
    channels = [scaled(c, width) for c in (24, 116, 232, 464, 1024)]
    model = ShuffleNetV2([4, 8, 4], channels, num_classes=num_classes)
    model.conv1[0] = _stem_conv(in_channels, channels[0])
    model.maxpool = nn.Identity()
    model.classifier_path = "fc"
    return model


def _regnet_y_400mf_params(width: float) -> BlockParams:
    """RegNetY-400MF's stages (Radosavovic et al. 2020) with widths scaled and group widths kept dividing them.

    torchvision derives the stage widths with tensor ops, so they are computed on the CPU even when the model
    is being built on the meta device.
    """
    with torch.device("cpu"):
        params = BlockParams.from_init_params(depth=16, w_0=48, w_a=27.89, w_m=2.09, group_width=8, se_ratio=0.25)
    widths = [scaled(w, width) for w in params.widths]
    groups = [math.gcd(g, w) for g, w in zip(params.group_widths, widths, strict=True)]
    return BlockParams(params.depths, widths, groups, params.bottleneck_multipliers, params.strides, params.se_ratio)


@register_model("regnet_y_400mf")
def regnet_y_400mf(num_classes: int, in_channels: int, image_size: int, width: float) -> nn.Module:
    """RegNetY-400MF (48-104-208-440, squeeze-excitation) with a stride-1 stem (2x2 final map)."""
    model = RegNet(_regnet_y_400mf_params(width), num_classes=num_classes, stem_width=scaled(32, width))
    model.stem[0] = _stem_conv(in_channels, model.stem[0].out_channels)
    model.classifier_path = "fc"
    return model
