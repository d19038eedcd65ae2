"""MLP-Mixer as the study built it for 32x32 inputs: 4x4 patches (64 tokens), 8 pre-LN mixer blocks.

It is the study's only architecture without BatchNorm and without attention.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from persist.models.registry import register_model, scaled
from persist.models.vit import token_layout


def _mlp(dim: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))


class MixerBlock(nn.Module):
    """Pre-LN token-mixing MLP (across patches), then pre-LN channel-mixing MLP, each with a residual."""

    def __init__(self, tokens: int, dim: int, token_dim: int, channel_dim: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.token_mlp = _mlp(tokens, token_dim)
        self.norm2 = nn.LayerNorm(dim)
        self.channel_mlp = _mlp(dim, channel_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.token_mlp(self.norm1(x).transpose(1, 2)).transpose(1, 2)
        return x + self.channel_mlp(self.norm2(x))


class MLPMixer(nn.Module):
    """Patch conv, mixer blocks, final LayerNorm, mean over tokens, linear head."""

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        image_size: int,
        dim: int,
        depth: int,
        token_dim: int,
        channel_dim: int,
    ) -> None:
        super().__init__()
        patch, tokens = token_layout(image_size)
        self.patch_embed = nn.Conv2d(in_channels, dim, patch, stride=patch)
        self.blocks = nn.Sequential(*(MixerBlock(tokens, dim, token_dim, channel_dim) for _ in range(depth)))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)
        self.classifier_path = "head"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        x = self.norm(self.blocks(x))
        return self.head(x.mean(dim=1))


@register_model("mlp_mixer")
def mlp_mixer(num_classes: int, in_channels: int, image_size: int, width: float) -> nn.Module:
    """The study's Mixer: hidden 256, 8 blocks, token MLP 128, channel MLP 512; the token count stays 64."""
    return MLPMixer(
        num_classes,
        in_channels,
        image_size,
        dim=scaled(256, width),
        depth=8,
        token_dim=scaled(128, width),
        channel_dim=scaled(512, width),
    )
