"""The target network whose initializations are studied: a small MLP on scikit-learn's digits.

The network is a function of one flat parameter vector so that thousands of initializations,
perturbations and training runs can be evaluated as one batched tensor program
(``torch.func.vmap`` over ``functional_call``) instead of a Python loop over models.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, vmap

from persist.data import load_raw
from persist.models.small import ACTIVATIONS, mlp_layers

__all__ = ["ACTIVATIONS", "DigitsTask", "TargetNetwork", "build_target", "load_digits_task"]


@dataclass(frozen=True)
class DigitsTask:
    """Standardized digits split; statistics come from the training split only."""

    x_train: Tensor  # (n_train, 64) float32
    y_train: Tensor  # (n_train,) int64
    x_test: Tensor
    y_test: Tensor


def load_digits_task(device: str | torch.device = "cpu", test_fraction: float = 0.0) -> DigitsTask:
    """All ten digit classes on :mod:`persist.data`'s fixed train/test split (``test_fraction`` held out; 0:
    persist.data's default), flattened to 64 features.

    Each pixel is z-scored with training statistics (no test leakage): the studied MLP sees standardized
    inputs, so an initialization scale means the same thing for every input unit.
    """
    raw = load_raw("digits", test_fraction=test_fraction)
    x_tr, x_te = (x.reshape(len(x), -1) for x in (raw.x_train, raw.x_test))
    mean, std = x_tr.mean(0), x_tr.std(0)
    std[std == 0] = 1.0  # constant border pixels stay 0 after centring

    def tensor(a: np.ndarray, dtype: torch.dtype) -> Tensor:
        return torch.as_tensor(a, dtype=dtype, device=device)

    return DigitsTask(
        tensor((x_tr - mean) / std, torch.float32),
        tensor(raw.y_train, torch.int64),
        tensor((x_te - mean) / std, torch.float32),
        tensor(raw.y_test, torch.int64),
    )


class TargetNetwork:
    """An ``nn.Module`` used only as a template: its parameters are always supplied as a flat vector."""

    def __init__(self, module: nn.Module) -> None:
        self.module = module
        named = [(n, p.shape) for n, p in module.named_parameters()]
        self.names: tuple[str, ...] = tuple(n for n, _ in named)
        self.shapes: tuple[torch.Size, ...] = tuple(s for _, s in named)
        self.sizes: tuple[int, ...] = tuple(math.prod(s) for s in self.shapes)

    @property
    def n_params(self) -> int:
        return sum(self.sizes)

    @cached_property
    def slices(self) -> tuple[slice, ...]:
        """Where each named tensor lives in the flat vector (same order as ``named_parameters``)."""
        stops = np.cumsum(self.sizes).tolist()
        return tuple(slice(stop - size, stop) for stop, size in zip(stops, self.sizes, strict=True))

    def unflatten(self, flat: Tensor) -> dict[str, Tensor]:
        """Views into ``flat`` shaped like the module's parameters; works under vmap and autograd."""
        chunks = torch.split(flat, list(self.sizes), dim=-1)
        lead = flat.shape[:-1]
        return {n: c.reshape(*lead, *s) for n, c, s in zip(self.names, chunks, self.shapes, strict=True)}

    def logits(self, flat: Tensor, x: Tensor) -> Tensor:
        """Forward pass for one parameter vector (vmap this for a batch of vectors)."""
        return functional_call(self.module, self.unflatten(flat), (x,))

    def loss(self, flat: Tensor, x: Tensor, y: Tensor) -> Tensor:
        """Mean cross-entropy of one parameter vector over the whole of ``x``."""
        return F.cross_entropy(self.logits(flat, x), y)

    def losses(self, params: Tensor, x: Tensor, y: Tensor, chunk_size: int | None = None) -> Tensor:
        """Loss of every row of ``params`` (B, P) -> (B,); differentiable, stays on ``params.device``."""
        return vmap(self.loss, in_dims=(0, None, None), chunk_size=chunk_size)(params, x, y)

    def accuracies(self, params: Tensor, x: Tensor, y: Tensor, chunk_size: int | None = None) -> Tensor:
        """Accuracy of every row of ``params`` (B, P) -> (B,)."""

        def accuracy(flat: Tensor) -> Tensor:
            return (self.logits(flat, x).argmax(-1) == y).float().mean()

        return vmap(accuracy, chunk_size=chunk_size)(params)

    def permute_hidden_units(self, params: Tensor, generator: torch.Generator) -> Tensor:
        """Relabel every hidden layer's units by a fresh random permutation per row of ``params`` (B, P).

        Permuting the rows of W_l and b_l together with the columns of W_{l+1} leaves the network
        function, hence every loss, exactly unchanged: the symmetry a loss surrogate must respect.
        Assumes the MLP layout of :func:`build_target` (Linear layers with biases, in order).
        """
        p = self.unflatten(params)
        weights = [n for n in self.names if n.endswith("weight")]
        for w, w_next in zip(weights[:-1], weights[1:], strict=True):
            b = w.removesuffix("weight") + "bias"
            perm = torch.rand(params.shape[0], p[w].shape[1], generator=generator).argsort(dim=1).to(params.device)
            p[w] = p[w].gather(1, perm[:, :, None].expand_as(p[w]))
            p[b] = p[b].gather(1, perm)
            p[w_next] = p[w_next].gather(2, perm[:, None, :].expand_as(p[w_next]))
        return torch.cat([p[n].flatten(1) for n in self.names], dim=1)


def build_target(widths: tuple[int, ...] = (64, 16, 10), activation: str = "relu") -> TargetNetwork:
    """:func:`persist.models.small.mlp_layers` as a template; the template's own weights are never used."""
    return TargetNetwork(nn.Sequential(*mlp_layers(widths, activation)))
