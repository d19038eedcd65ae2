"""Stage 3 (topology): persistent homology of one sampled local landscape.

A local landscape is ``coords`` (n, k), the slice coordinates of n samples around an initialization,
and ``losses`` (n,), their losses, row-aligned: row i of both arrays is the same sample, and every
function here takes or returns them together (the seed project subsampled points but truncated
losses, pairing points with other points' losses).

Losses are z-scored within each landscape before any filtration, so the topological features
describe the *shape* of the landscape; its level and amplitude are the baselines' business
(initial loss, local mean and sd), which keeps the comparison in stage 5 meaningful.

Two filtrations:

* **sublevel**: the true sublevel-set filtration of the loss on the clique complex of the symmetric
  k-nearest-neighbour graph of the samples (vertex born at its loss, edge and triangle at the max of
  their vertices). H0 bars are basins merging at saddles; H1 bars are loops of low loss around a
  ridge. Not a thresholded Rips complex.
* **rips**: Vietoris-Rips persistence of the graph of the loss over the slice, points (coords / sd,
  z-loss) in k + 1 dimensions. The samples alone would not do: they come from an isotropic Gaussian
  in the slice, so their Rips diagram describes the sampler, identical in law for every
  initialization. The slice coordinates are exact, not a lossy projection: with filter-normalized,
  nearly orthogonal directions, distances in parameter space are a common multiple of distances in
  slice coordinates.

Essential (infinite) bars are left out of lifetime statistics (the one essential H0 bar is born at
the minimum loss, a baseline quantity) but counted in Betti curves, where they are real homology.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from persist.errors import ConfigError, DataError
from persist.topology import betti_curve, lifetimes, persistence_entropy
from persist.topology.point_cloud import graph_sublevel_diagrams, knn_edges, rips_diagrams

FILTRATIONS = ("sublevel", "rips")
STATS = ("n_bars", "total", "max", "mean", "std", "entropy", "betti_peak", "betti_peak_at")


@dataclass(frozen=True)
class LocalTopologyConfig:
    knn: int = 8  # neighbours per sample in the sublevel complex's graph
    clique_dim: int = 2  # 2: fill kNN triangles (H1 = loops around ridges); 1: the bare graph
    betti_points: int = 64  # resolution of Betti curves
    sublevel_range: tuple[float, float] = (-3.0, 3.0)  # Betti-curve thresholds, in z-scored loss
    rips_range: tuple[float, float] = (0.0, 2.0)  # Betti-curve scales, in standardized units

    def __post_init__(self) -> None:
        if self.knn < 1:
            raise ConfigError(f"topology.knn must be >= 1, got {self.knn}")
        if self.clique_dim not in (1, 2):
            raise ConfigError(f"topology.clique_dim must be 1 or 2, got {self.clique_dim}")
        if self.betti_points < 2:
            raise ConfigError(f"topology.betti_points must be >= 2, got {self.betti_points}")
        for name in ("sublevel_range", "rips_range"):
            lo, hi = getattr(self, name)
            if not lo < hi:
                raise ConfigError(f"topology.{name} must be increasing, got {(lo, hi)}")

    def thresholds(self, filtration: str) -> np.ndarray:
        lo, hi = self.sublevel_range if filtration == "sublevel" else self.rips_range
        return np.linspace(lo, hi, self.betti_points)


def feature_names() -> list[str]:
    """Column names of :func:`local_features`' output, in a fixed order."""
    return [f"{f}_h{d}_{s}" for f in FILTRATIONS for d in (0, 1) for s in STATS]


def diagram_summary(diagram: np.ndarray, thresholds: np.ndarray) -> tuple[dict[str, float], np.ndarray]:
    """Lifetime statistics of the finite bars, entropy, and the Betti curve with its peak."""
    life = lifetimes(diagram)
    curve = betti_curve(diagram, thresholds).astype(np.float64)
    stats = {
        "n_bars": float(len(life)),
        "total": float(life.sum()),
        "max": float(life.max(initial=0.0)),
        "mean": float(life.mean()) if len(life) else 0.0,
        "std": float(life.std()) if len(life) else 0.0,
        "entropy": persistence_entropy(diagram[np.diff(diagram, axis=1).ravel() > 0]),  # 0-length bars: no share
        "betti_peak": float(curve.max()),
        "betti_peak_at": float(thresholds[curve.argmax()]),
    }
    return stats, curve


def standardize(values: np.ndarray) -> np.ndarray:
    """z-score; a flat landscape maps to all zeros instead of NaN."""
    sd = values.std()
    return (values - values.mean()) / sd if sd > 0 else np.zeros_like(values)


@dataclass(frozen=True)
class LocalTopology:
    features: dict[str, float]  # keys: feature_names()
    betti: dict[str, np.ndarray]  # "sublevel_h0" etc. -> Betti curve on cfg.thresholds(filtration)
    diagrams: dict[str, np.ndarray]  # "sublevel_h0" etc. -> (n_bars, 2)


def local_features(coords: np.ndarray, losses: np.ndarray, cfg: LocalTopologyConfig) -> LocalTopology:
    """Topological features of one local landscape; invariant to the order of the (aligned) samples."""
    coords = np.asarray(coords, dtype=np.float64)
    losses = np.asarray(losses, dtype=np.float64)
    if coords.ndim != 2 or losses.shape != (len(coords),):
        raise DataError(f"losses must have one value per row of coords, got {losses.shape} for {coords.shape}")
    if len(coords) < 3 or not np.isfinite(losses).all():
        raise DataError("losses must be finite and have >= 3 samples per local landscape")
    z = standardize(losses)
    spread = coords.std()
    cloud = np.column_stack([coords / spread if spread > 0 else coords, z])
    diagrams = {
        "sublevel": graph_sublevel_diagrams(z, knn_edges(coords, cfg.knn), cfg.clique_dim),
        "rips": rips_diagrams(cloud),
    }
    features, betti, flat = {}, {}, {}
    for filtration, dgms in diagrams.items():
        for dim, dgm in enumerate(dgms):
            key = f"{filtration}_h{dim}"
            stats, betti[key] = diagram_summary(dgm, cfg.thresholds(filtration))
            features.update({f"{key}_{s}": v for s, v in stats.items()})
            flat[key] = dgm
    return LocalTopology(features, betti, flat)
