"""Fixed-length vectors from diagrams: Betti curves, persistence images, persistence landscapes.

Scalar totals cannot tell one deep basin from many shallow ones at the same total; these vectors can, and
they live in a vector space, so they feed regressors, averages over slices and distances. They are only
comparable across models when computed on the *same* thresholds / pixel grid, which is why every function
takes the grid explicitly instead of fitting it to the diagram at hand.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
from persim import PersistenceImager

from persist.errors import ConfigError
from persist.topology.diagrams import as_diagram, split_essential


def betti_curve(diagram: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Betti number of the sublevel set ``{loss <= t}`` at each threshold: bars with ``birth <= t < death``.

    For H0 it is the number of separate basins below ``t``, for H1 the number of enclosed loops, read off
    directly in loss units. Essential bars stay counted after their birth.
    """
    arr = as_diagram(diagram)
    t = np.asarray(thresholds, dtype=np.float64)
    born = np.searchsorted(np.sort(arr[:, 0]), t, side="right")
    dead = np.searchsorted(np.sort(arr[:, 1]), t, side="right")
    return born - dead


def betti_curves(diagrams: Mapping[int, np.ndarray], thresholds: np.ndarray) -> dict[int, np.ndarray]:
    """:func:`betti_curve` for every dimension of ``diagrams`` on the shared ``thresholds``."""
    return {k: betti_curve(d, thresholds) for k, d in diagrams.items()}


def persistence_image(
    diagram: np.ndarray,
    birth_range: tuple[float, float],
    pers_range: tuple[float, float],
    pixel_size: float,
    sigma: float,
) -> np.ndarray:
    """Persistence image (Adams et al. 2017) of the finite bars, via persim, shape ``(n_birth, n_pers)``.

    Each bar becomes a Gaussian of standard deviation ``sigma`` (loss units) at (birth, lifetime),
    weighted by its lifetime so that bars near the diagonal, i.e. noise, fade out; the image is stable
    under small perturbations of the landscape. Essential bars have no lifetime and are left out.
    """
    if not (pixel_size > 0 and sigma > 0):
        raise ConfigError(f"pixel_size and sigma must be > 0, got pixel_size={pixel_size!r}, sigma={sigma!r}")
    for name, (lo, hi) in (("birth_range", birth_range), ("pers_range", pers_range)):
        if not hi > lo:
            raise ConfigError(f"{name} must be (low, high) with high > low, got {(lo, hi)!r}")
    imager = PersistenceImager(
        birth_range=tuple(birth_range),
        pers_range=tuple(pers_range),
        pixel_size=pixel_size,
        kernel_params={"sigma": [[sigma**2, 0.0], [0.0, sigma**2]]},  # persim takes a covariance
    )
    finite, _ = split_essential(diagram)
    if finite.shape[0] == 0:
        return np.zeros(imager.resolution)
    return np.asarray(imager.transform(finite, skew=True))


def persistence_landscape(diagram: np.ndarray, thresholds: np.ndarray, depth: int = 5) -> np.ndarray:
    """The first ``depth`` persistence landscape functions (Bubenik 2015) at ``thresholds``, ``(depth, T)``.

    ``lambda_k(t)`` is the k-th largest tent height ``max(0, min(t - b, d - t))`` over finite bars, so
    landscapes average across slices and seeds into a meaningful mean landscape. Evaluated exactly from
    the definition; persim's ``PersLandscapeExact`` (0.4.1) returns wrong deeper landscapes when bars
    repeat, which quantized losses make common, and is quadratic in Python.
    """
    if depth < 1:
        raise ConfigError(f"depth must be >= 1, got {depth!r}")
    t = np.asarray(thresholds, dtype=np.float64)
    finite, _ = split_essential(diagram)
    out = np.zeros((depth, t.size))
    top = min(depth, finite.shape[0])
    if top == 0:
        return out
    step = max(1, _LANDSCAPE_CHUNK // finite.shape[0])  # bound the (bars x thresholds) tent matrix
    for lo in range(0, t.size, step):
        chunk = t[lo : lo + step]
        tents = np.minimum(chunk - finite[:, :1], finite[:, 1:] - chunk).clip(min=0.0)
        largest = -np.partition(-tents, top - 1, axis=0)[:top]
        out[:top, lo : lo + step] = -np.sort(-largest, axis=0)
    return out


_LANDSCAPE_CHUNK = 1 << 22
