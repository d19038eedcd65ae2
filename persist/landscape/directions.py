"""Random filter-normalized directions (Li et al., 2018), reproducible on any device.

Gaussian entries come from a seeded CPU ``torch.Generator`` (one seed per direction), and the
normalization runs on CPU in float64, so the same seed gives the same direction on CPU, any GPU and
any thread count; only the final cast to the model's dtype and device happens elsewhere. The
published code drew from the CUDA RNG on the model's device, tying a slice to the hardware.

Normalization rescales the direction per unit so that a step of size 1 is "as large as the weights":
``filter``: per output filter/neuron (slice along dim 0), vectorized; ``layer``: per tensor;
``weight``: elementwise by ``|theta|``; ``none``: raw Gaussian. One-dimensional tensors (biases,
BN/LN affine parameters) follow ``one_d``: ``ignore`` (Li et al.'s default, zero direction) or
``filter`` (perturbed, the whole tensor treated as one filter: the published PERSIST behaviour).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Mapping

import numpy as np
import torch
import torch.nn as nn

from persist.errors import ConfigError
from persist.landscape.parameters import FlatLayout, parameter_layout

Normalization = Literal["filter", "layer", "weight", "none"]
OneD = Literal["ignore", "filter"]
NORMALIZATIONS = ("filter", "layer", "weight", "none")
ONE_D_POLICIES = ("ignore", "filter")
_EPS = 1e-10  # guards an all-zero slice of the Gaussian draw, which never happens in practice


@dataclass(frozen=True)
class Directions:
    """One to four directions over the model's named parameters, plus a JSON-ready ``record`` for logging.

    ``vectors[i]`` spans grid axis ``i``. ``axes`` (optional) fixes each axis's coordinates, for families
    whose known points must be grid nodes (the ``modes`` plane); otherwise grids use a symmetric axis.
    ``buffers`` (optional) moves named floating buffers with the same coefficients as the parameters, so a
    node that is another model's weights also has that model's BatchNorm statistics; other buffers stay.
    """

    vectors: tuple[dict[str, torch.Tensor], ...]
    record: dict
    axes: tuple[np.ndarray, ...] | None = None
    buffers: tuple[dict[str, torch.Tensor], ...] | None = None  # per-direction displacement of floating buffers

    @classmethod
    def pair(cls, d1: dict[str, torch.Tensor], d2: dict[str, torch.Tensor], record: dict) -> "Directions":
        return cls((d1, d2), record)

    @property
    def dims(self) -> int:
        return len(self.vectors)

    @property
    def d1(self) -> dict[str, torch.Tensor]:
        return self.vectors[0]

    @property
    def d2(self) -> dict[str, torch.Tensor]:
        return self.vectors[1]


def _norm_over_filters(t: torch.Tensor) -> torch.Tensor:
    """Norm of each slice along dim 0, shaped to broadcast against ``t`` (no per-filter loop)."""
    return torch.linalg.vector_norm(t, dim=tuple(range(1, t.dim())), keepdim=True)


def normalize_tensor(direction: torch.Tensor, weight: torch.Tensor, normalization: str, one_d: str) -> torch.Tensor:
    """Rescale one direction tensor against the matching parameter tensor."""
    if weight.dim() <= 1 and one_d == "ignore":
        return torch.zeros_like(direction)
    if normalization == "none":
        return direction
    if normalization == "weight":
        return direction * weight.abs()
    if normalization == "layer" or weight.dim() <= 1:
        return direction * (torch.linalg.vector_norm(weight) / (torch.linalg.vector_norm(direction) + _EPS))
    return direction * (_norm_over_filters(weight) / (_norm_over_filters(direction) + _EPS))


def _check(normalization: str, one_d: str) -> None:
    if normalization not in NORMALIZATIONS:
        raise ConfigError(f"normalization must be one of {', '.join(NORMALIZATIONS)}, got '{normalization}'")
    if one_d not in ONE_D_POLICIES:
        raise ConfigError(f"one_d must be one of {', '.join(ONE_D_POLICIES)}, got '{one_d}'")


def _weights64(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().to("cpu", torch.float64) for n, p in model.named_parameters()}


def _draw(layout: FlatLayout, weights: Mapping[str, torch.Tensor], seed: int, normalization: str, one_d: str
          ) -> torch.Tensor:
    """One normalized direction as a flat float64 CPU vector."""
    generator = torch.Generator(device="cpu").manual_seed(int(seed))
    raw = layout.unflatten(torch.randn(layout.size, generator=generator, dtype=torch.float64))
    return layout.flatten({n: normalize_tensor(raw[n], weights[n], normalization, one_d) for n in layout.names})


def _to_model(layout: FlatLayout, flat: torch.Tensor, model: nn.Module) -> dict[str, torch.Tensor]:
    like = next(model.parameters())
    return {n: t.to(like.device, like.dtype).clone() for n, t in layout.unflatten(flat).items()}


def random_direction(model: nn.Module, seed: int, normalization: Normalization = "filter", one_d: OneD = "ignore"
                     ) -> dict[str, torch.Tensor]:
    """One normalized Gaussian direction (for 1-D slices), on the model's device and dtype."""
    _check(normalization, one_d)
    layout = parameter_layout(model)
    return _to_model(layout, _draw(layout, _weights64(model), seed, normalization, one_d), model)


def _cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(a @ b / (a.norm() * b.norm()).clamp_min(_EPS))


def random_directions(
    model: nn.Module,
    seeds: tuple[int, ...],
    normalization: Normalization = "filter",
    one_d: OneD = "ignore",
    orthogonalize: bool = False,
) -> Directions:
    """One direction per seed (1 to 4), spanning a slice through the model's parameters.

    ``orthogonalize`` removes the earlier directions' components from each later one (Gram-Schmidt in
    the flat space, float64) after normalization, so the axes are exactly perpendicular; the per-filter
    norms then differ from the weights' by that (in high dimension tiny) component, which the record
    quantifies (``cosine`` is the largest |cosine| between two axes, ``cosine_drawn`` before Gram-Schmidt).
    """
    _check(normalization, one_d)
    seeds = tuple(int(s) for s in seeds)
    if not 1 <= len(seeds) <= 4 or len(set(seeds)) != len(seeds):
        raise ConfigError(f"seeds must be 1 to 4 different integers, got {seeds}")
    layout = parameter_layout(model)
    weights = _weights64(model)
    drawn = [_draw(layout, weights, s, normalization, one_d) for s in seeds]
    cosine = _max_cosine(drawn)
    flat = list(drawn)
    if orthogonalize:
        if not torch.any(drawn[0] != 0):
            raise ConfigError("orthogonalize needs a non-zero first direction (the model has only 1-D parameters?)")
        for i in range(1, len(flat)):
            for j in range(i):
                flat[i] = flat[i] - (flat[j] @ flat[i]) / (flat[j] @ flat[j]) * flat[j]
    theta = layout.flatten(weights)
    zeroed = [n for n, s in zip(layout.names, layout.shapes, strict=True) if len(s) <= 1 and one_d == "ignore"]
    record = {
        "seeds": [int(s) for s in seeds],
        "generator": "torch.Generator(cpu).manual_seed(seed); randn float64 over all named parameters",
        "normalization": normalization,
        "one_d": one_d,
        "orthogonalize": bool(orthogonalize),
        "num_parameters": layout.size,
        "num_tensors": len(layout.names),
        "zeroed_tensors": zeroed,
        "zeroed_elements": int(sum(weights[n].numel() for n in zeroed)),
        "cosine_drawn": cosine,
        "cosine": _max_cosine(flat),
        "norm_theta": float(theta.norm()),
        **{f"norm_d{i + 1}": float(d.norm()) for i, d in enumerate(flat)},
    }
    return Directions(tuple(_to_model(layout, d, model) for d in flat), {"family": "random", **record})


def _max_cosine(vectors: list[torch.Tensor]) -> float:
    """The cosine of largest magnitude between two of ``vectors`` (signed; 0 for one vector)."""
    pairs = [_cosine(a, b) for i, a in enumerate(vectors) for b in vectors[i + 1:]]
    return max(pairs, key=abs) if pairs else 0.0
