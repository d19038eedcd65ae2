"""A device-resident batch iterator with batched augmentation.

Small datasets (digits, MNIST-1D, CIFAR task splits) fit on the device whole. Shuffling, random crops and flips
then happen as a few tensor ops per batch instead of per-image Python work in DataLoader workers.
"""

from __future__ import annotations

from typing import Iterator

import torch
import torch.nn.functional as F


def augment(x: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Random crop after reflect-padding by ``padding`` and random horizontal flip, for a whole batch of images.

    1-D signals (N, C, L) come back unchanged and draw nothing from ``generator``: a mirrored MNIST-1D signal
    is another digit, and its generator already translates, scales, shears and adds noise to every example
    (the MNIST-1D reference results use no augmentation).
    """
    if x.dim() == 3:
        return x
    n, _, h, w = x.shape
    dev = x.device
    flips = torch.rand(n, generator=generator) < 0.5
    x = torch.where(flips.to(dev)[:, None, None, None], x.flip(3), x)
    if padding == 0:
        return x
    padded = F.pad(x, (padding,) * 4, mode="reflect")
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator).to(dev)
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator).to(dev)
    rows = (dy[:, None] + torch.arange(h, device=dev)[None, :])  # (n, h)
    cols = (dx[:, None] + torch.arange(w, device=dev)[None, :])  # (n, w)
    batch = torch.arange(n, device=dev)[:, None, None]
    return padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


def iterate_batches(
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    generator: torch.Generator | None = None,
    shuffle: bool = False,
    augment_padding: int | None = None,
    drop_last: bool = False,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(x, y)`` batches from device-resident tensors; the CPU ``generator`` makes order reproducible."""
    n = len(x)
    order = torch.randperm(n, generator=generator).to(x.device) if shuffle else torch.arange(n, device=x.device)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        idx = order[start : start + batch_size]
        xb = x[idx]
        if augment_padding is not None:
            xb = augment(xb, augment_padding, generator if generator is not None else torch.Generator())
        yield xb, y[idx]
