"""The noise floor below which a bar is not a reproducible feature of the landscape.

Two evaluations ``a`` and ``b`` of the same grid differ by evaluation noise (data order, non-deterministic
kernels, reduced precision). The stability theorem (Cohen-Steiner, Edelsbrunner, Harer 2007) bounds the
bottleneck distance of their lower-star diagrams by ``delta = max |a - b|``, and a bar matched to the
diagonal costs half its lifetime. So a bar longer than ``2 * delta`` in one evaluation has a partner in
the other, while a bar of lifetime ``<= 2 * delta`` may exist in one and not the other: ``2 * delta`` is
the floor. The published PERSIST numbers had no floor, and their H1 bars were of the order of the noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from persist.errors import ConfigError, DataError


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
