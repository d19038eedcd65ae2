"""Neural persistence of a whole network (Rieck et al. 2019, Alg. 1 and Definitions 2-4), with baselines.

All weights are divided by the largest |w| over every selected layer, so values are invariant to a global
rescaling and comparable between layers. Each layer's NP is the p-norm of its finite 0-dimensional
diagram; normalized NP divides by the layer's upper bound, and the network summary is the mean of the
normalized values. The diagram holds only finite pairs: the reference code also counts the one component
that never dies as (1, 0), which adds exactly 1 to the sum of p-th powers and can push a normalized
value above 1.

Girrbach et al. (TMLR 2023) show NP is largely driven by the weight variance, so every layer also reports
its weight standard deviation and the RMS of its normalized weights; a result that NP explains but these do
not is the interesting one.
"""

from __future__ import annotations

import math
from typing import Mapping

import torch
import torch.nn as nn

from persist.errors import ConfigError
from persist.neural_persistence.graph import METHODS, layer_persistence, persistence_upper_bound
from persist.neural_persistence.layers import LayerFilter, WeightGraph, extract_graphs

_PER_LAYER = ("persistence", "normalized", "weight_std", "weight_norm")


def _check_p(p: float) -> None:
    if not (p >= 1.0):
        raise ConfigError(f"p must be >= 1 (a p-norm of the diagram), got {p}")


def network_max(graphs: list[WeightGraph]) -> torch.Tensor:
    """Largest |w| over all graphs as a float64 tensor on the device; 1 when every weight is 0 (then every
    layer has NP equal to its bound, the value of an edgeless filtration)."""
    extremes = [torch.aminmax(g.params().detach()) for g in graphs]
    w_max = torch.stack([torch.maximum(-lo, hi).to(torch.float64) for lo, hi in extremes]).max()
    return torch.where(w_max > 0, w_max, torch.ones_like(w_max))


def _layer_values(graph: WeightGraph, w_max: torch.Tensor, p: float, method: str) -> torch.Tensor:
    """(NP, normalized NP, weight std, RMS of |w| / w_max) as one float64 tensor on the layer's device."""
    params = graph.params().detach()
    w_max = w_max.to(params.device)
    deaths = graph.deaths(w_max, method)
    persistence = layer_persistence(deaths, p)
    normalized = persistence / persistence_upper_bound(deaths.numel(), p)
    std = params.std(correction=0).to(torch.float64)
    rms = torch.linalg.vector_norm(params).to(torch.float64) / math.sqrt(params.numel()) / w_max
    return torch.stack([persistence, normalized, std, rms])


def neural_persistence(
    model: nn.Module,
    p: float = 2.0,
    layer_filter: LayerFilter | None = None,
    per_head: bool = False,
    conv_input_sizes: Mapping[str, tuple[int, int]] | None = None,
    method: str = "auto",
) -> dict[str, float]:
    """Per-layer and mean normalized neural persistence of ``model``, plus weight baselines, as flat keys.

    Keys: ``np/<layer>/{persistence,normalized,weight_std,weight_norm}`` for each graph (attention
    projections as ``<mha>.q|k|v``, per head ``<mha>.q.head0``), and ``np/mean_normalized`` (Definition 4),
    ``np/total`` (sum of per-layer NP, as the reference code), ``np/mean_weight_std``,
    ``np/mean_weight_norm``. Values are computed on the weights' device and copied to the host once.
    """
    _check_p(p)
    if method not in METHODS:
        raise ConfigError(f"method must be one of {', '.join(METHODS)}, got '{method}'")
    graphs = extract_graphs(model, layer_filter, per_head, conv_input_sizes)
    with torch.no_grad():
        w_max = network_max(graphs)
        rows = [_layer_values(g, w_max, p, method).to(w_max.device) for g in graphs]
        table = torch.stack(rows).cpu().tolist()
    result: dict[str, float] = {}
    for graph, row in zip(graphs, table, strict=True):
        result.update({f"np/{graph.name}/{key}": value for key, value in zip(_PER_LAYER, row, strict=True)})
    columns = list(zip(*table, strict=True))
    result["np/mean_normalized"] = math.fsum(columns[1]) / len(graphs)
    result["np/total"] = math.fsum(columns[0])
    result["np/mean_weight_std"] = math.fsum(columns[2]) / len(graphs)
    result["np/mean_weight_norm"] = math.fsum(columns[3]) / len(graphs)
    return result
