"""Vision Transformers as the study built them for 32x32 inputs: 4x4 patches, a CLS token, post-LN layers.

The encoder is ``nn.TransformerEncoderLayer`` with its defaults (post-LN, unlike the pre-LN ViT of
Dosovitskiy et al.), GELU and dropout 0.1. Attention runs on the math SDPA backend: the fused CPU/CUDA
kernels have no forward-mode derivative, so jvp-over-grad Hessian-vector products (the curvature baselines)
fail on them in eval mode. On CPU a ViT-Small training step costs the same on either backend; the GPU cost
is unmeasured, but the sequence is only 65 tokens.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from persist.models.registry import register_model, scaled

TOKEN_GRID = 8
DROPOUT = 0.1


def vit_token_layout(image_size: int) -> tuple[int, int]:
    """The ViT's (patch side, token count): the study's 8x8 grid from 16 px up, a 2x2 grid below.

    On 8x8 digits a one-pixel token carries a single scalar, and the post-LN ViT trained with SGD stays
    near chance (measured: 27% on digits task A after 15 epochs, 52% after 40); 4x4 patches (four tokens)
    reach 79% in 15 epochs, so small inputs get those. The MLP-Mixer keeps one token per pixel.
    """
    if image_size < 16:
        patch = max(1, image_size // 2)
        return patch, (image_size // patch) ** 2
    return token_layout(image_size)


def token_layout(image_size: int) -> tuple[int, int]:
    """(patch side, token count) that keep the study's 8x8 token grid; exact when the size divides by 8.

    Patches are 4x4 at 32x32, as in the study. At 8x8 they shrink to 1x1 (one token per pixel): 4x4
    patches would leave 4 tokens, and keeping 64 keeps the sequence length and, for the Mixer, the token
    MLP of the study. Other sizes get a grid near 8x8 and lose their remainder pixels, as a strided conv does.
    """
    patch = max(1, image_size // TOKEN_GRID)
    return patch, (image_size // patch) ** 2


class VisionTransformer(nn.Module):
    """Patch conv, CLS token, learned positions, post-LN encoder layers, LayerNorm on CLS, linear head."""

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        image_size: int,
        dim: int,
        depth: int,
        heads: int,
        mlp_dim: int,
        dropout: float = DROPOUT,
    ) -> None:
        super().__init__()
        patch, tokens = vit_token_layout(image_size)
        self.patch_embed = nn.Conv2d(in_channels, dim, patch, stride=patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, tokens + 1, dim))
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.encoder = nn.Sequential(
            *(
                nn.TransformerEncoderLayer(dim, heads, mlp_dim, dropout, activation="gelu", batch_first=True)
                for _ in range(depth)
            )
        )
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)
        self.classifier_path = "head"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        with sdpa_kernel(SDPBackend.MATH):
            x = self.encoder(x)
        return self.head(self.norm(x[:, 0]))


def _vit(
    num_classes: int, in_channels: int, image_size: int, width: float, dim: int, depth: int, mlp_dim: int
) -> VisionTransformer:
    # scaled() rounds to multiples of 4, so the 4 heads always divide the embedding dim.
    return VisionTransformer(
        num_classes, in_channels, image_size, scaled(dim, width), depth, heads=4, mlp_dim=scaled(mlp_dim, width)
    )


@register_model("vit_small")
def vit_small(num_classes: int, in_channels: int, image_size: int, width: float) -> nn.Module:
    """The study's ViT-Small: d 256, 4 layers, 4 heads, FFN 512 (2.15M parameters, not the claimed 3M)."""
    return _vit(num_classes, in_channels, image_size, width, dim=256, depth=4, mlp_dim=512)


@register_model("vit_tiny")
def vit_tiny(num_classes: int, in_channels: int, image_size: int, width: float) -> nn.Module:
    """The study's ViT-Tiny: d 128, 2 layers, 4 heads, FFN 256 (0.29M parameters, not the claimed 0.8M)."""
    return _vit(num_classes, in_channels, image_size, width, dim=128, depth=2, mlp_dim=256)
