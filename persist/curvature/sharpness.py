"""Loss increase under bounded, filter-normalized weight perturbations: ε-sharpness and the barrier.

Perturbations are measured per filter (Li et al., 2018): a filter is a slice along dim 0 of a parameter
with two or more dimensions, and its scale is the norm of the trained weights of that filter, so the
numbers do not change when a layer is rescaled in a way the network cannot see (e.g. before BatchNorm).
One-dimensional parameters (biases, norm gains) are held fixed unless ``include_1d``, in which case the
whole vector is treated as one filter; the policy is an explicit argument so it can be recorded.

Both measures evaluate the perturbed loss on exactly the data of the base loss (the published barrier
compared a one-batch loss with a full-set base) and never drop an evaluation: any non-finite loss is
counted and makes the reported value ``inf`` (the published code discarded such values, so a model that
blew up reported a *smaller* barrier).
"""

from __future__ import annotations

import math
from typing import Iterator

import torch
import torch.nn as nn
from torch import Tensor

from persist.config import CurvatureConfig
from persist.curvature._checks import at_least, positive
from persist.curvature.hvp import Params, loss_and_gradient, make_objective, measurement_mode, subset_loss
from persist.landscape.directions import normalize_tensor

DEFAULTS = CurvatureConfig()  # the config section holds every default once


def filter_norms(t: Tensor) -> Tensor:
    """Norm of each filter, shaped to broadcast against ``t`` (a 1-D tensor is one filter)."""
    if t.ndim < 2:
        return t.norm().reshape(1)
    return t.flatten(1).norm(dim=1).view(-1, *([1] * (t.ndim - 1)))


def filter_normalized_directions(
    params: Params, count: int, seed: int, include_1d: bool = False
) -> Iterator[Params]:
    """``count`` Gaussian directions, each filter rescaled to the norm of the same filter of ``params``.

    Drawn on a seeded CPU generator in the parameters' dtype, so a seed gives the same directions on any
    device; 1-D entries are drawn (and zeroed unless ``include_1d``) so the policy never shifts the stream.
    """
    gen = torch.Generator().manual_seed(seed)
    for _ in range(count):
        direction = {}
        for name, p in params.items():
            d = torch.randn(p.shape, generator=gen, dtype=p.dtype).to(p.device)
            direction[name] = normalize_tensor(d, p, "filter", "filter" if include_1d else "ignore")
        yield direction


def filter_box(params: Params, epsilon: float, include_1d: bool = False) -> Params:
    """Half-widths ``ε·‖θ_f‖/√n_f`` per entry: every vertex of the box is a filter-normalized step of size ε."""
    widths = {}
    for name, p in params.items():
        if p.ndim >= 2 or include_1d:
            fan = p[0].numel() if p.ndim >= 2 else p.numel()
            widths[name] = (epsilon / math.sqrt(fan)) * filter_norms(p).expand_as(p)
        else:
            widths[name] = torch.zeros_like(p)
    return widths


def epsilon_sharpness(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    batch_size: int = DEFAULTS.batch_size,
    seed: int = 0,
    epsilon: float = 1e-3,
    ascent_steps: int = 10,
    include_1d: bool = False,
) -> dict[str, float]:
    """Keskar et al. (2017) sharpness in a filter-normalized box.

    ``sharpness = 100 · (max_{δ∈B} L(θ+δ) − L(θ)) / (1 + L(θ))`` exactly as Keskar defines it, and
    ``sharpness_absolute = max_{δ∈B} L(θ+δ) − L(θ)``, where ``B = {δ : |δ_i| ≤ ε‖θ_f(i)‖/√n_f(i)}`` is the
    filter-normalized box (:func:`filter_box`; Keskar's box was ``ε(|θ_i| + 1)``). The maximum is searched
    by ``ascent_steps`` projected sign-gradient steps of ``2.5/ascent_steps`` box half-widths from a seeded
    uniform start in the box, keeping the best loss seen (δ = 0 included, as the definition's box contains
    it); the result is therefore a lower bound on the true box maximum.
    """
    positive("epsilon", epsilon)
    at_least("ascent_steps", ascent_steps, 1)
    with measurement_mode(model):
        obj = make_objective(model, x, y, batch_size)
        base = float(subset_loss(obj))
        width = filter_box(obj.params, epsilon, include_1d)
        gen = torch.Generator().manual_seed(seed)
        delta = {n: w * _uniform_signed(w, gen) for n, w in width.items()}
        losses = [base]
        for _ in range(ascent_steps):
            loss, g = loss_and_gradient(obj, _shifted(obj.params, delta))
            losses.append(float(loss))
            if not math.isfinite(losses[-1]):
                break
            step = {n: (2.5 / ascent_steps) * w * g[n].sign() for n, w in width.items()}
            delta = {n: torch.clamp(delta[n] + step[n], -w, w) for n, w in width.items()}
        else:
            losses.append(float(subset_loss(obj, _shifted(obj.params, delta))))
    nonfinite = sum(not math.isfinite(v) for v in losses)
    increase = math.inf if nonfinite else max(losses) - base
    return {
        "sharpness": math.inf if nonfinite else 100.0 * increase / (1.0 + base),
        "sharpness_absolute": increase,
        "sharpness_base_loss": base,
        "sharpness_nonfinite": float(nonfinite),
    }


def loss_barrier(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    batch_size: int = DEFAULTS.batch_size,
    seed: int = 0,
    directions: int = DEFAULTS.barrier_directions,
    radius: float = 1.0,
    radius_steps: int = 20,
    include_1d: bool = False,
) -> dict[str, float]:
    """Largest loss increase along random filter-normalized directions, ``max_{j,α} L(θ + α d_j) − L(θ)``.

    ``α`` runs over ``radius·i/radius_steps`` for ``i = 1..radius_steps`` (the centre is excluded, so at a
    non-minimum the barrier can be negative), ``d_j`` over :func:`filter_normalized_directions`.
    ``barrier_relative`` divides by the base loss; ``barrier_direction_mean``/``_se`` summarize the per-
    direction maxima, the spread across directions being the uncertainty of a random-direction probe.
    """
    at_least("directions", directions, 1)
    positive("radius", radius)
    at_least("radius_steps", radius_steps, 1)
    radii = [radius * (i + 1) / radius_steps for i in range(radius_steps)]
    with measurement_mode(model):
        obj = make_objective(model, x, y, batch_size)
        base = float(subset_loss(obj))
        per_direction, nonfinite = [], int(not math.isfinite(base))
        for d in filter_normalized_directions(obj.params, directions, seed, include_1d):
            losses = torch.stack([subset_loss(obj, _shifted(obj.params, d, r)) for r in radii]).double().cpu()
            bad = int((~torch.isfinite(losses)).sum())
            nonfinite += bad
            per_direction.append(math.inf if bad or not math.isfinite(base) else float(losses.max()) - base)
    barrier = max(per_direction)
    spread = torch.tensor(per_direction, dtype=torch.float64)
    se = float(spread.std(correction=1)) / math.sqrt(directions) if directions > 1 and not nonfinite else math.nan
    return {
        "barrier": barrier,
        "barrier_relative": barrier / base if base > 0 else math.inf,
        "barrier_base_loss": base,
        "barrier_direction_mean": float(spread.mean()),
        "barrier_direction_se": math.inf if nonfinite else se,
        "barrier_nonfinite": float(nonfinite),
        "barrier_evaluations": float(directions * radius_steps),
    }


def _shifted(params: Params, delta: Params, scale: float = 1.0) -> Params:
    return {n: p + scale * delta[n] for n, p in params.items()}


def _uniform_signed(like: Tensor, gen: torch.Generator) -> Tensor:
    return (2 * torch.rand(like.shape, generator=gen, dtype=like.dtype) - 1).to(like.device)
