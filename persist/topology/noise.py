"""The noise floor below which a bar is not a reproducible feature of the landscape.

Two evaluations ``a`` and ``b`` of the same grid differ by evaluation noise (data order, non-deterministic
kernels, reduced precision). The stability theorem (Cohen-Steiner, Edelsbrunner, Harer 2007) bounds the
bottleneck distance of their lower-star diagrams by ``delta = max |a - b|``, and a bar matched to the
diagonal costs half its lifetime. So a bar longer than ``2 * delta`` in one evaluation has a partner in
the other, while a bar of lifetime ``<= 2 * delta`` may exist in one and not the other: ``2 * delta`` is
the floor. The published PERSIST numbers had no floor, and their H1 bars were of the order of the noise.

That stability floor is safe but blunt: ``max |a - b|`` is set by the single noisiest node, usually on
the high-loss rim of the grid, far from the basins it judges. :func:`bottleneck_floor` measures instead
how far the diagrams of the two data halves are apart, and :mod:`persist.topology.bootstrap` how far
the diagram moves when the examples are resampled (Fasy et al. 2014).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from persist.errors import ConfigError, DataError
from persist.topology.distances import diagram_distance


def noise_floor(grid_a: np.ndarray, grid_b: np.ndarray) -> float:
    """``2 * max |grid_a - grid_b|`` over nodes finite in both: bars up to this long may be noise.

    ``+inf`` nodes (never in the filtration) must coincide, since they change the complex itself.
    """
    a = np.asarray(grid_a, dtype=np.float64)
    b = np.asarray(grid_b, dtype=np.float64)
    if a.shape != b.shape:
        raise DataError(f"grid_b shape {b.shape} does not match grid_a shape {a.shape}")
    if np.isnan(a).any() or np.isnan(b).any():
        raise DataError("grid_a or grid_b contains NaN; mark failed evaluations with +inf")
    if not np.array_equal(np.isinf(a), np.isinf(b)):
        raise DataError("grid_a and grid_b have +inf at different nodes; re-evaluate them")
    finite = np.isfinite(a)
    return 2.0 * float(np.abs(a[finite] - b[finite]).max()) if finite.any() else 0.0


@dataclass(frozen=True)
class NoiseFloor:
    """A noise floor ``value`` (loss units) and where it came from, to log next to counts above it."""

    value: float
    source: str

    def __post_init__(self) -> None:
        if not (np.isfinite(self.value) and self.value >= 0):
            raise ConfigError(f"noise floor must be a finite number >= 0, got {self.value!r}")

    @classmethod
    def measured(cls, grid_a: np.ndarray, grid_b: np.ndarray) -> NoiseFloor:
        """Floor measured from two evaluations of the same grid (see :func:`noise_floor`)."""
        return cls(noise_floor(grid_a, grid_b), "measured: 2 * max|a - b| over two evaluations of the grid")

    @classmethod
    def given(cls, value: float) -> NoiseFloor:
        """Floor set by the user, e.g. from a previous measurement or a precision bound."""
        return cls(float(value), "given")


def bottleneck_floor(
    diagrams_a: Mapping[int, np.ndarray], diagrams_b: Mapping[int, np.ndarray], dims: Sequence[int]
) -> dict[int, float]:
    """``2 * d_B(diagrams_a[k], diagrams_b[k])`` per homology dimension ``k``: the floor from the diagrams'
    own sampling variability.

    The stability floor bounds the diagram change by the largest change of any node, which on a loss
    grid sits on the steep, high-loss rim far from the basins; the bottleneck distance between the two
    data halves' diagrams measures how far the bars themselves moved. A bar longer than twice it has a
    partner in the other half's diagram. Unequal numbers of essential bars give ``inf``.
    """
    empty = np.empty((0, 2))
    return {k: 2.0 * diagram_distance(diagrams_a.get(k, empty), diagrams_b.get(k, empty)) for k in dims}
