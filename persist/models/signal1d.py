"""Architectures for 1-D signals (N, C, L), sized for MNIST-1D (1 x 40) on a CPU.

The families Greydanus and Kobak (2024) separate on MNIST-1D, and the depth series of Li et al. (2018):
- ``mlp1d[_bn]``: two hidden layers of 100 units (the MNIST-1D reference MLP), optionally with BatchNorm.
- ``cnn1d[_bn]``: three stride-2 convolutions of 32 channels (kernel 5) and a linear head on the flattened map.
- ``resnet1d_D`` / ``plain1d_D``: CIFAR-style ResNets of depth D = 6n + 2 (a stem conv, three stages of n
  two-conv basic blocks at 16-32-64 channels, strides 1-2-2, global average pooling, a linear head), with and
  without the identity shortcuts; ``_nobn`` drops BatchNorm. The plain nets are the same layers with the
  shortcut removed, as Li et al. built their ``noshort`` nets.
- ``gru1d``: one GRU layer of 64 units over the 40 positions, head on the last state. Written with plain
  linear layers so torch.func's forward-mode Hessian-vector products work (fused RNN kernels have no jvp).
- ``transformer1d``: 4-point patches (10 tokens) plus a CLS token, learned positions, two pre-LN encoder
  layers (d 32, 4 heads, FFN 64), no dropout; attention on the math SDPA backend for torch.func.
``width`` scales every channel/hidden size (rounded to multiples of 4 below width 1, see ``scaled``).
"""

from __future__ import annotations

import torch
import torch.nn as nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from persist.models.registry import register_model, scaled


def _norm(channels: int, batchnorm: bool) -> nn.Module:
    return nn.BatchNorm1d(channels) if batchnorm else nn.Identity()


def _mlp(in_features: int, hidden: int, num_classes: int, batchnorm: bool) -> nn.Sequential:
    model = nn.Sequential(
        nn.Flatten(),
        nn.Linear(in_features, hidden), _norm(hidden, batchnorm), nn.ReLU(),
        nn.Linear(hidden, hidden), _norm(hidden, batchnorm), nn.ReLU(),
        nn.Linear(hidden, num_classes),
    )
    model.classifier_path = "7"  # type: ignore[assignment]  # nn.Module.__setattr__ is typed for tensors/modules only
    return model


@register_model("mlp1d")
def mlp1d(num_classes: int, in_channels: int, image_size: int, width: float) -> nn.Module:
    """Two hidden layers of 100 units at width 1 (the MNIST-1D reference MLP)."""
    return _mlp(in_channels * image_size, scaled(100, width), num_classes, batchnorm=False)


@register_model("mlp1d_bn")
def mlp1d_bn(num_classes: int, in_channels: int, image_size: int, width: float) -> nn.Module:
    """``mlp1d`` with BatchNorm after each hidden linear layer."""
    return _mlp(in_channels * image_size, scaled(100, width), num_classes, batchnorm=True)


def conv_output_length(length: int, kernel: int, stride: int, padding: int) -> int:
    return (length + 2 * padding - kernel) // stride + 1


class CNN1d(nn.Module):
    """Three conv(k5, stride 2)-[BN]-ReLU layers, the flattened feature map, a linear head."""

    def __init__(self, num_classes: int, in_channels: int, length: int, channels: int, batchnorm: bool) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = in_channels
        for _ in range(3):
            layers += [nn.Conv1d(cin, channels, 5, stride=2, padding=2, bias=not batchnorm),
                       _norm(channels, batchnorm), nn.ReLU()]
            cin, length = channels, conv_output_length(length, 5, 2, 2)
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.fc = nn.Linear(channels * length, num_classes)
        self.classifier_path = "fc"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


@register_model("cnn1d")
def cnn1d(num_classes: int, in_channels: int, image_size: int, width: float) -> nn.Module:
    """Three stride-2 convolutions of 32 channels, no normalization (close to the MNIST-1D reference CNN)."""
    return CNN1d(num_classes, in_channels, image_size, scaled(32, width), batchnorm=False)


@register_model("cnn1d_bn")
def cnn1d_bn(num_classes: int, in_channels: int, image_size: int, width: float) -> nn.Module:
    """``cnn1d`` with BatchNorm after each convolution (and no conv bias)."""
    return CNN1d(num_classes, in_channels, image_size, scaled(32, width), batchnorm=True)


class Block1d(nn.Module):
    """Basic block: conv3-[BN]-ReLU-conv3-[BN], plus the shortcut when ``skip``, then ReLU.

    The shortcut is the identity, or a 1x1 strided conv (and BN) where the shape changes (ResNet option B).
    """

    def __init__(self, cin: int, cout: int, stride: int, skip: bool, batchnorm: bool) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(cin, cout, 3, stride=stride, padding=1, bias=not batchnorm)
        self.bn1 = _norm(cout, batchnorm)
        self.conv2 = nn.Conv1d(cout, cout, 3, padding=1, bias=not batchnorm)
        self.bn2 = _norm(cout, batchnorm)
        self.relu = nn.ReLU()
        self.skip = skip
        self.shortcut: nn.Module = nn.Identity()
        if skip and (stride != 1 or cin != cout):
            self.shortcut = nn.Sequential(nn.Conv1d(cin, cout, 1, stride=stride, bias=not batchnorm),
                                          _norm(cout, batchnorm))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        return self.relu(out + self.shortcut(x) if self.skip else out)


class ResNet1d(nn.Module):
    """Stem conv3, three stages of ``blocks`` basic blocks (strides 1, 2, 2), global average pooling, head."""

    def __init__(self, num_classes: int, in_channels: int, depth: int, base: int, skip: bool, batchnorm: bool) -> None:
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"ResNet-1d depth must be 6n + 2, got {depth}")
        blocks = (depth - 2) // 6
        self.stem = nn.Sequential(nn.Conv1d(in_channels, base, 3, padding=1, bias=not batchnorm),
                                  _norm(base, batchnorm), nn.ReLU())
        stages: list[nn.Module] = []
        cin = base
        for index, cout in enumerate((base, 2 * base, 4 * base)):
            for b in range(blocks):
                stride = 2 if index > 0 and b == 0 else 1
                stages.append(Block1d(cin, cout, stride, skip, batchnorm))
                cin = cout
        self.layers = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool1d(1)
        self.fc = nn.Linear(cin, num_classes)
        self.classifier_path = "fc"
        for module in self.modules():
            if isinstance(module, nn.Conv1d):  # He-normal fan-out, as torchvision's ResNet
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.layers(self.stem(x))), 1))


def _register_series(depth: int, skip: bool, batchnorm: bool) -> None:
    name = f"{'resnet1d' if skip else 'plain1d'}_{depth}{'' if batchnorm else '_nobn'}"

    def build(num_classes: int, in_channels: int, image_size: int, width: float) -> nn.Module:
        return ResNet1d(num_classes, in_channels, depth, scaled(16, width), skip, batchnorm)

    build.__doc__ = (f"{depth}-layer 1-D {'ResNet' if skip else 'plain CNN (ResNet without shortcuts)'}"
                     f"{'' if batchnorm else ' without BatchNorm'}, 16-32-64 channels.")
    register_model(name)(build)


for _depth in (8, 20, 32):
    for _skip in (True, False):
        _register_series(_depth, _skip, batchnorm=True)
for _skip in (True, False):
    _register_series(8, _skip, batchnorm=False)


class GRU1d(nn.Module):
    """One GRU layer (PyTorch's gate equations) over the sequence, a linear head on the last hidden state."""

    def __init__(self, num_classes: int, in_channels: int, hidden: int) -> None:
        super().__init__()
        self.hidden = hidden
        self.input_gates = nn.Linear(in_channels, 3 * hidden)  # W_ir|W_iz|W_in with b_i*
        self.hidden_gates = nn.Linear(hidden, 3 * hidden)  # W_hr|W_hz|W_hn with b_h*
        self.fc = nn.Linear(hidden, num_classes)
        self.classifier_path = "fc"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xs = self.input_gates(x.transpose(1, 2))  # (N, L, 3H): input projections of every step at once
        h = x.new_zeros(x.shape[0], self.hidden)
        for t in range(xs.shape[1]):
            xr, xz, xn = xs[:, t].chunk(3, dim=1)
            hr, hz, hn = self.hidden_gates(h).chunk(3, dim=1)
            r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
            h = (1 - z) * torch.tanh(xn + r * hn) + z * h
        return self.fc(h)


@register_model("gru1d")
def gru1d(num_classes: int, in_channels: int, image_size: int, width: float) -> nn.Module:
    """One GRU layer of 64 units at width 1."""
    return GRU1d(num_classes, in_channels, scaled(64, width))


class Transformer1d(nn.Module):
    """Patch conv (4 points per token), CLS token, learned positions, pre-LN encoder layers, LN, linear head."""

    def __init__(self, num_classes: int, in_channels: int, length: int, dim: int, depth: int, heads: int,
                 mlp_dim: int, patch: int = 4) -> None:
        super().__init__()
        self.patch_embed = nn.Conv1d(in_channels, dim, patch, stride=patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, length // patch + 1, dim))
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.encoder = nn.Sequential(*(
            nn.TransformerEncoderLayer(dim, heads, mlp_dim, dropout=0.0, activation="gelu", batch_first=True,
                                       norm_first=True)
            for _ in range(depth)
        ))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)
        self.classifier_path = "head"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        with sdpa_kernel(SDPBackend.MATH):
            x = self.encoder(x)
        return self.head(self.norm(x[:, 0]))


@register_model("transformer1d")
def transformer1d(num_classes: int, in_channels: int, image_size: int, width: float) -> nn.Module:
    """Two pre-LN encoder layers, d 32, 4 heads, FFN 64, on 10 tokens of 4 points (MNIST-1D's 40)."""
    return Transformer1d(num_classes, in_channels, image_size, scaled(32, width), depth=2, heads=4,
                         mlp_dim=scaled(64, width))
