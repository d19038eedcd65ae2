"""Stage 1: initializations, their local neighbourhoods, and (parameter vector, loss) pairs.

Initialization schemes are written ``family:scale`` (``normal:0.1``, ``kaiming``). Neighbourhoods are
random low-dimensional slices through an initialization, w0 + sum_j a_j d_j, with Gaussian
coefficients a and filter-normalized directions d (each weight row of d has the norm of the matching
row of w0; bias directions are zero, the Li et al. rule). Filter normalization makes ``radius`` a
relative step, so inits at scale 0.01 and at scale 1 are probed equally far in their own units.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from persist.errors import ConfigError
from persist.init_quality.target import TargetNetwork

FAMILIES = ("normal", "uniform", "xavier", "kaiming", "orthogonal")


@dataclass(frozen=True)
class InitScheme:
    """A weight distribution; biases always start at zero, as in every scheme's usual practice.

    ``scale`` is the standard deviation (normal), the half-width (uniform) or a multiplier on the
    scheme's own gain (xavier, kaiming = He normal for ReLU, orthogonal = Haar-random with gain 1).
    """

    family: str
    scale: float = 1.0

    @property
    def name(self) -> str:
        return f"{self.family}:{self.scale:g}"


def parse_scheme(text: str) -> InitScheme:
    """``'normal:0.1'`` -> InitScheme('normal', 0.1); the scale defaults to 1."""
    family, _, scale = text.partition(":")
    if family not in FAMILIES:
        raise ConfigError(f"schemes entry '{text}': family must be one of {', '.join(FAMILIES)}")
    try:
        value = float(scale) if scale else 1.0
    except ValueError:
        raise ConfigError(f"schemes entry '{text}': scale must be a number") from None
    if not value > 0:
        raise ConfigError(f"schemes entry '{text}': scale must be > 0")
    return InitScheme(family, value)


def seeded_generator(seed: int, *keys: int) -> torch.Generator:
    """An independent CPU stream per (seed, stage, item): streams never overlap or shift each other."""
    state = np.random.SeedSequence([seed, *keys]).generate_state(2, dtype=np.uint64)
    return torch.Generator().manual_seed(int(state[0] >> np.uint64(1)))


def _haar_orthogonal(n: int, rows: int, cols: int, generator: torch.Generator) -> Tensor:
    """n Haar-distributed matrices with orthonormal rows or columns (whichever is fewer)."""
    a = torch.randn(n, max(rows, cols), min(rows, cols), generator=generator)
    q, r = torch.linalg.qr(a)
    q = q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1)).unsqueeze(-2)  # sign fix makes Q Haar
    return q if rows >= cols else q.transpose(-1, -2)


def _draw_weight(scheme: InitScheme, n: int, shape: torch.Size, generator: torch.Generator) -> Tensor:
    fan_out, fan_in = shape
    if scheme.family == "orthogonal":
        return scheme.scale * _haar_orthogonal(n, fan_out, fan_in, generator)
    if scheme.family == "uniform":
        return scheme.scale * (2 * torch.rand(n, *shape, generator=generator) - 1)
    std = {
        "normal": scheme.scale,
        "xavier": scheme.scale * (2.0 / (fan_in + fan_out)) ** 0.5,
        "kaiming": scheme.scale * (2.0 / fan_in) ** 0.5,
    }[scheme.family]
    return std * torch.randn(n, *shape, generator=generator)


def draw_inits(net: TargetNetwork, scheme: InitScheme, n: int, generator: torch.Generator) -> Tensor:
    """n flat initializations (n, P) on the CPU; weight matrices from ``scheme``, biases zero."""
    parts = [
        _draw_weight(scheme, n, shape, generator).reshape(n, -1) if len(shape) == 2 else torch.zeros(n, size)
        for shape, size in zip(net.shapes, net.sizes, strict=True)
    ]
    return torch.cat(parts, dim=1)


def slice_directions(net: TargetNetwork, w0: Tensor, dim: int, generator: torch.Generator) -> Tensor:
    """(B, dim, P) Gaussian directions, filter-normalized against each row of w0 (B, P)."""
    d = torch.randn(w0.shape[0], dim, net.n_params, generator=generator).to(w0)
    out = torch.zeros_like(d)
    for sl, shape in zip(net.slices, net.shapes, strict=True):
        if len(shape) != 2:
            continue  # bias directions stay zero
        rows_d = d[..., sl].unflatten(-1, shape)  # (B, dim, out, in)
        rows_w = w0[:, None, sl].unflatten(-1, shape)  # (B, 1, out, in)
        scale = rows_w.norm(dim=-1, keepdim=True) / rows_d.norm(dim=-1, keepdim=True)
        out[..., sl] = (rows_d * scale).flatten(-2)
    return out


def slice_points(w0: Tensor, directions: Tensor, coords: Tensor) -> Tensor:
    """Points w0 + coords @ directions: (B, P), (B, dim, P), (B, n, dim) -> (B, n, P)."""
    return w0[:, None, :] + coords @ directions


def slice_losses(
    loss_fn: Callable[[Tensor], Tensor], w0: Tensor, directions: Tensor, coords: Tensor, inits_per_chunk: int
) -> Tensor:
    """Loss (M, n) at every slice point; points are built chunk by chunk so (M, n, P) never exists.

    ``loss_fn`` maps parameter rows (B, P) to losses (B,): the real network or the surrogate.
    Row i, column j is sample j around init i in both ``coords`` and the result, by construction.
    """
    out = []
    for i in range(0, len(w0), inits_per_chunk):
        sl = slice(i, i + inits_per_chunk)
        points = slice_points(w0[sl], directions[sl], coords[sl])
        out.append(loss_fn(points.flatten(0, 1)).reshape(points.shape[:2]))
    return torch.cat(out)


def evaluate_losses(net: TargetNetwork, params: Tensor, x: Tensor, y: Tensor, chunk_size: int) -> Tensor:
    """Training loss of every row of ``params`` without building a graph; one device tensor out."""
    with torch.no_grad():
        return net.losses(params.to(x.device), x, y, chunk_size=chunk_size)


@dataclass(frozen=True)
class Pool:
    """(parameter vector, loss) pairs; ``group`` names the base init a perturbed vector came from."""

    params: Tensor  # (N, P)
    losses: Tensor  # (N,)
    scheme: Tensor  # (N,) index into the scheme list
    group: Tensor  # (N,) base-initialization id, for group-wise train/test splits


def generate_pool(
    net: TargetNetwork,
    schemes: tuple[InitScheme, ...],
    n_base: int,
    n_perturb: int,
    radius: float,
    slice_dim: int,
    x: Tensor,
    y: Tensor,
    seed: int,
    chunk_size: int = 512,
) -> Pool:
    """Base inits per scheme plus ``n_perturb`` slice perturbations of each, with their losses.

    Perturbations are drawn exactly as stage 3 samples local landscapes, so the surrogate is trained
    on the distribution it is later asked about.
    """
    params, scheme_ids, groups = [], [], []
    for s, scheme in enumerate(schemes):
        gen = seeded_generator(seed, 1, s)
        base = draw_inits(net, scheme, n_base, gen)
        coords = radius * torch.randn(n_base, n_perturb, slice_dim, generator=gen)
        points = slice_points(base, slice_directions(net, base, slice_dim, gen), coords)
        block = torch.cat([base[:, None, :], points], dim=1)  # (n_base, 1 + n_perturb, P)
        params.append(block.reshape(-1, net.n_params))
        scheme_ids.append(torch.full((block.shape[0] * block.shape[1],), s))
        groups.append((s * n_base + torch.arange(n_base)).repeat_interleave(1 + n_perturb))
    flat = torch.cat(params)
    return Pool(flat, evaluate_losses(net, flat, x, y, chunk_size).cpu(), torch.cat(scheme_ids), torch.cat(groups))


def draw_study_inits(
    net: TargetNetwork, schemes: tuple[InitScheme, ...], n_per_scheme: int, seed: int
) -> tuple[Tensor, Tensor]:
    """The initializations whose quality is predicted; a stream disjoint from the surrogate's pool."""
    inits = [draw_inits(net, sc, n_per_scheme, seeded_generator(seed, 2, s)) for s, sc in enumerate(schemes)]
    return torch.cat(inits), torch.arange(len(schemes)).repeat_interleave(n_per_scheme)
