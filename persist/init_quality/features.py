"""The per-initialization feature table of stage 3 and the feature sets compared in stage 5.

Baselines are the cheap things a practitioner would try first: the loss at w0, the mean and spread
of the loss around w0, the gradient norm, the Hessian trace, the weight norms, and simply which
scheme drew the init (one-hot). Positive quantities enter on a log scale because they span orders of magnitude
across schemes; the Hessian trace, which can be negative, as sign(x) log(1 + |x|).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from persist.init_quality.geometry import gradient_norms, hessian_traces
from persist.init_quality.local_topology import feature_names
from persist.init_quality.target import TargetNetwork

REAL, SURROGATE = "real_", "surr_"


def baseline_features(
    net: TargetNetwork,
    w0: Tensor,
    x: Tensor,
    y: Tensor,
    initial_loss: np.ndarray,
    local_losses: np.ndarray,
    probes: Tensor,
    chunk_size: int,
) -> dict[str, np.ndarray]:
    """Baseline columns for inits w0 (M, P); ``local_losses`` (M, n) are real losses around each."""
    grad_norm = gradient_norms(net, w0, x, y, chunk_size).detach().cpu().numpy()
    trace = hessian_traces(net, w0, x, y, probes, chunk_size).detach().cpu().numpy()
    cols = {
        "log_initial_loss": np.log(initial_loss),
        "log_local_mean": np.log(local_losses.mean(1)),
        "log_local_sd": np.log(local_losses.std(1) + 1e-12),
        "log_gradient_norm": np.log(grad_norm + 1e-12),
        "hessian_trace_slog": np.sign(trace) * np.log1p(np.abs(trace)),
    }
    weights = [sl for sl, shape in zip(net.slices, net.shapes, strict=True) if len(shape) == 2]
    for i, sl in enumerate(weights):
        cols[f"log_weight_norm_{i}"] = torch.log(w0[:, sl].norm(dim=1) + 1e-12).cpu().numpy()
    return {k: v.astype(np.float64) for k, v in cols.items()}


def scheme_indicators(scheme: np.ndarray, scheme_names: list[str]) -> dict[str, np.ndarray]:
    """One-hot columns of the init scheme: the baseline of simply knowing how you initialized."""
    return {f"scheme={name}": (scheme == i).astype(np.float64) for i, name in enumerate(scheme_names)}


def feature_sets(names: list[str]) -> dict[str, list[str]]:
    """Named groups of columns: each baseline alone, all baselines, topology (real and surrogate loss),
    and topology together with all baselines (does topology *add* anything?)."""
    weight_norms = [n for n in names if n.startswith("log_weight_norm_")]
    schemes = [n for n in names if n.startswith("scheme=")]
    baselines = ["log_initial_loss", "log_local_mean", "log_local_sd", "log_gradient_norm",
                 "hessian_trace_slog", *weight_norms, *schemes]
    topology = [REAL + n for n in feature_names()]
    return {
        "initial_loss": ["log_initial_loss"],
        "local_stats": ["log_local_mean", "log_local_sd"],
        "gradient_norm": ["log_gradient_norm"],
        "hessian_trace": ["hessian_trace_slog"],
        "weight_norms": weight_norms,
        "scheme": schemes,
        "baselines": baselines,
        "topology": topology,
        "topology_surrogate": [SURROGATE + n for n in feature_names()],
        "topology+baselines": topology + baselines,
    }


BASELINE_SETS = {"initial_loss", "local_stats", "gradient_norm", "hessian_trace", "weight_norms", "scheme", "baselines"}
