"""Bottleneck and Wasserstein distances between diagrams, essential bars included.

Two random slices through the same minimum should give close diagrams if the topology is a property of
the model rather than of the slice; these distances quantify that. Essential bars are matched explicitly:
they can only pair with essential bars (any other pairing costs infinity), so unequal counts give an
infinite distance, and equal counts are matched in order of birth, which is optimal on a line. persim's
distances silently drop essential bars instead (scikit-tda/persim#105).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import gudhi
import gudhi.hera
import numpy as np

from persist.errors import ConfigError
from persist.topology.diagrams import split_essential

METRICS = ("bottleneck", "wasserstein")
WASSERSTEIN_RELATIVE_ERROR = 1e-6  # hera's auction algorithm is (1 + delta)-approximate


def diagram_distance(a: np.ndarray, b: np.ndarray, metric: str = "bottleneck", order: float = 1.0) -> float:
    """Distance between two diagrams of one dimension, with the L-infinity ground metric, in loss units.

    ``bottleneck`` is the largest displacement in the best matching, the quantity the stability theorem
    bounds by the sup-norm difference of the landscapes; ``wasserstein`` (order ``q``) sums displacements
    to the power ``q`` and so also sees many small changes. Finite parts are computed by GUDHI (bottleneck
    exact up to the last bits of a double; Wasserstein by hera to a relative error of 1e-6).
    """
    if metric not in METRICS:
        raise ConfigError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
    if not order >= 1:
        raise ConfigError(f"order must be >= 1, got {order!r}")
    finite_a, essential_a = split_essential(a)
    finite_b, essential_b = split_essential(b)
    if essential_a.size != essential_b.size:
        return float("inf")
    shift = np.abs(np.sort(essential_a) - np.sort(essential_b))
    if metric == "bottleneck":
        finite = gudhi.bottleneck_distance(finite_a, finite_b)
        return float(max(finite, shift.max(initial=0.0)))
    finite = gudhi.hera.wasserstein_distance(finite_a, finite_b, order=order, delta=WASSERSTEIN_RELATIVE_ERROR)
    return float((finite**order + np.sum(shift**order)) ** (1.0 / order))


def pairwise_distances(
    diagrams: Sequence[Mapping[int, np.ndarray]], dim: int, metric: str = "bottleneck", order: float = 1.0
) -> np.ndarray:
    """Symmetric ``(n, n)`` matrix of :func:`diagram_distance` between the ``dim`` diagrams of n slices."""
    empty = np.empty((0, 2))
    n = len(diagrams)
    out = np.zeros((n, n))
    for i in range(n):
        for j in range(i + 1, n):
            out[i, j] = out[j, i] = diagram_distance(
                diagrams[i].get(dim, empty), diagrams[j].get(dim, empty), metric, order
            )
    return out
