"""Fisher information trace from per-sample gradients.

``tr F = E_x E_y ‖∇θ log p(y|x)‖²`` needs one gradient per sample: the squared norm of a batch-mean
gradient (what the published "fisher_trace" computed) is ``‖E∇ℓ‖² + tr(Cov)/B`` instead, a different
quantity that shrinks with batch size. Two Fishers are reported:

- empirical: ``y`` is the true label, ``(1/n) Σ_i ‖∇ℓ(x_i, y_i)‖²``;
- model: ``y`` is drawn from the model's own softmax (seeded CPU generator), one draw per input, an
  unbiased estimate of the true Fisher trace, which is what curvature arguments about the Fisher mean.

Per-sample gradients come from ``vmap`` over ``grad`` in chunks, keeping only their squared norms.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor
from torch.func import grad, vmap

from persist.config import CurvatureConfig
from persist.curvature._checks import at_least
from persist.curvature.hvp import Objective, batch_loss, logits, make_objective, measurement_mode

DEFAULTS = CurvatureConfig()  # the config section holds every default once


def per_sample_squared_grad_norms(obj: Objective, x: Tensor, y: Tensor, chunk_size: int) -> Tensor:
    """``‖∇θ ℓ(x_i, y_i)‖²`` for every row, as a float64 vector on the device."""

    def one(params, xi, yi):
        return batch_loss(obj, params, xi[None], yi[None])

    per_sample = vmap(grad(one), in_dims=(None, 0, 0))
    norms = []
    for i in range(0, len(x), chunk_size):
        g = per_sample(obj.params, x[i : i + chunk_size], y[i : i + chunk_size])
        norms.append(sum(t.double().flatten(1).square().sum(1) for t in g.values()))
    return torch.cat(norms)


def sample_model_labels(obj: Objective, x: Tensor, generator: torch.Generator) -> Tensor:
    """One label per row drawn from the model's predictive distribution, on the CPU generator."""
    with torch.no_grad():
        probs = F.softmax(logits(obj, obj.params, x), dim=1).double().cpu()
    return torch.multinomial(probs, 1, generator=generator)[:, 0].to(x.device)


def fisher_trace(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    batch_size: int = DEFAULTS.batch_size,
    seed: int = 0,
    fisher_chunk: int = 64,
) -> dict[str, float]:
    """Empirical and model-sampled Fisher traces with standard errors over samples.

    Peak memory is one chunk of per-sample gradients, ``fisher_chunk`` x the parameter count.
    """
    at_least("fisher_chunk", fisher_chunk, 1)
    with measurement_mode(model):
        obj = make_objective(model, x, y, batch_size)
        gen = torch.Generator().manual_seed(seed)
        empirical, sampled = [], []
        for xb, yb in obj.batches:
            empirical.append(per_sample_squared_grad_norms(obj, xb, yb, fisher_chunk))
            sampled.append(per_sample_squared_grad_norms(obj, xb, sample_model_labels(obj, xb, gen), fisher_chunk))
    out = {}
    for name, values in (("empirical", torch.cat(empirical)), ("model", torch.cat(sampled))):
        out[f"fisher_trace_{name}"] = float(values.mean())
        se = float(values.std(correction=1)) / math.sqrt(len(values)) if len(values) > 1 else float("nan")
        out[f"fisher_trace_{name}_se"] = se
    out["fisher_samples"] = float(obj.num_samples)
    return out
