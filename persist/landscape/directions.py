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
    """Two directions over the model's named parameters, plus a JSON-ready ``record`` for logging."""

    d1: dict[str, torch.Tensor]
    d2: dict[str, torch.Tensor]
    record: dict


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
    seeds: tuple[int, int],
    normalization: Normalization = "filter",
    one_d: OneD = "ignore",
    orthogonalize: bool = False,
) -> Directions:
    """Two directions spanning a 2-D slice through the model's parameters.

    ``orthogonalize`` removes d1's component from d2 (Gram-Schmidt in the flat space, float64) after
    normalization, so the axes are exactly perpendicular; d2's per-filter norms then differ from the
    weights' by that (in high dimension tiny) component, which the record quantifies.
    """
    _check(normalization, one_d)
    if len(seeds) != 2 or int(seeds[0]) == int(seeds[1]):
        raise ConfigError(f"seeds must be two different integers, got {tuple(seeds)}")
    layout = parameter_layout(model)
    weights = _weights64(model)
    d1, d2 = (_draw(layout, weights, s, normalization, one_d) for s in seeds)
    cosine = _cosine(d1, d2)
    if orthogonalize:
        if not torch.any(d1 != 0):
            raise ConfigError("orthogonalize needs a non-zero first direction (the model has only 1-D parameters?)")
        d2 = d2 - (d1 @ d2) / (d1 @ d1) * d1
    theta = layout.flatten(weights)
    zeroed = [n for n, s in zip(layout.names, layout.shapes) if len(s) <= 1 and one_d == "ignore"]
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
        "cosine": _cosine(d1, d2),
        "norm_theta": float(theta.norm()),
        "norm_d1": float(d1.norm()),
        "norm_d2": float(d2.norm()),
    }
    return Directions(_to_model(layout, d1, model), _to_model(layout, d2, model), record)
