"""Bootstrap confidence sets for the persistence diagram of a mean-loss grid (Fasy et al. 2014).

The loss at a grid node is a mean over examples, ``L(x) = mean_i l_i(x)``. Resampling the examples with
replacement gives bootstrap grids ``L*`` without a single forward pass, provided the per-example losses
are kept per node (an array of shape ``grid.shape + (n_examples,)``). The (1 - alpha) quantile ``c`` of
the distance between the bootstrap diagrams and the sample diagram estimates the radius of a bottleneck
ball that holds the diagram of the population landscape with probability 1 - alpha ("Confidence sets for
persistence diagrams", Fasy, Lecci, Rinaldo, Wasserman, Balakrishnan and Singh, Ann. Statist. 2014). A
point of the diagram is ``(death - birth) / 2`` from the diagonal, so a bar longer than ``2c`` cannot be
matched to the diagonal by any diagram in the ball: it is a real feature at that level.

Two distances are offered: the bottleneck distance of the diagrams, per homology dimension (sharp: it
moves only when bars move), and the sup-norm ``max |L* - L|`` over nodes, which bounds every bottleneck
distance (stability theorem) and needs no persistence computation, but, like the stability floor, is set
by the noisiest node.
"""

from __future__ import annotations

from typing import Callable, Iterator, Sequence

import numpy as np

from persist.errors import ConfigError, DataError
from persist.topology.distances import diagram_distance
from persist.topology.lower_star import lower_star_diagrams

DISTANCES = ("bottleneck", "sup")
Transform = Callable[[np.ndarray], np.ndarray]


def bootstrap_grids(per_example: np.ndarray, samples: int, seed: int = 0, chunk: int = 32) -> Iterator[np.ndarray]:
    """Yield ``samples`` mean-loss grids, each over a resample (with replacement) of the examples.

    A resample is a vector of multinomial counts, so a chunk of resamples is one matrix product of the
    ``(nodes, n_examples)`` losses with the ``(n_examples, chunk)`` count matrix.
    """
    losses = _per_example(per_example)
    n = losses.shape[-1]
    flat = losses.reshape(-1, n)
    dtype = np.float32 if flat.dtype == np.float32 else np.float64
    rng = np.random.default_rng(seed)
    done = 0
    while done < samples:
        size = min(chunk, samples - done)
        weights = (rng.multinomial(n, np.full(n, 1.0 / n), size=size).T / n).astype(dtype)
        means = (flat @ weights).astype(np.float64)
        for j in range(size):
            yield means[:, j].reshape(losses.shape[:-1])
        done += size


def bootstrap_distances(
    per_example: np.ndarray,
    samples: int,
    distance: str = "bottleneck",
    dims: Sequence[int] = (0,),
    transform: Transform | None = None,
    seed: int = 0,
    connectivity: int | None = None,
    backend: str = "gudhi",
) -> np.ndarray:
    """Distances between bootstrap diagrams and the sample diagram: ``(samples, len(dims))``.

    The sample grid is ``per_example.mean(-1)``, computed the same way as the resamples, so the spread
    is resampling only. ``transform`` (e.g. ``np.log``) maps a mean-loss grid to filtration values; nodes
    with a non-finite sample mean stay ``+inf`` (outside the filtration) in every resample. With
    ``distance="sup"`` every column holds the same sup-norm distance.
    """
    if distance not in DISTANCES:
        raise ConfigError(f"bootstrap distance must be one of {', '.join(DISTANCES)}, got {distance!r}")
    if samples < 1:
        raise ConfigError(f"bootstrap samples must be >= 1, got {samples!r}")
    losses = _per_example(per_example)
    transform = transform or (lambda grid: grid)
    with np.errstate(invalid="ignore", over="ignore"):
        centre = losses.mean(axis=-1, dtype=np.float64)
    outside = ~np.isfinite(centre)
    reference = transform(np.where(outside, np.inf, centre))
    max_dim = max(dims, default=0)
    if distance == "bottleneck":
        base = lower_star_diagrams(reference, connectivity, backend, max_dim)
    out = np.empty((samples, len(dims)))
    if outside.any():  # diverged nodes would poison the matrix product; they are +inf in every resample anyway
        losses = np.where(outside[..., None], 0.0, losses)
    for i, grid in enumerate(bootstrap_grids(losses, samples, seed)):
        grid = transform(np.where(outside, np.inf, grid))
        if distance == "sup":
            finite = ~outside
            out[i] = float(np.abs(grid[finite] - reference[finite]).max()) if finite.any() else 0.0
        else:
            diagrams = lower_star_diagrams(grid, connectivity, backend, max_dim)
            out[i] = [diagram_distance(diagrams[k], base[k]) for k in dims]
    return out


def bootstrap_floor(distances: np.ndarray, alpha: float, dims: Sequence[int]) -> dict[int, float]:
    """``2 c_k`` per dimension, ``c_k`` the (1 - alpha) quantile of the bootstrap distances (column k)."""
    if not 0 < alpha < 1:
        raise ConfigError(f"bootstrap alpha must be in (0, 1), got {alpha!r}")
    quantiles = np.quantile(np.asarray(distances, dtype=np.float64), 1.0 - alpha, axis=0)
    return {k: 2.0 * float(q) for k, q in zip(dims, np.atleast_1d(quantiles), strict=True)}


def _per_example(per_example: np.ndarray) -> np.ndarray:
    losses = np.asarray(per_example)
    if losses.dtype not in (np.float32, np.float64):
        losses = losses.astype(np.float64)
    if losses.ndim < 2 or losses.shape[-1] < 2:
        raise DataError(f"per_example must have shape grid.shape + (n_examples >= 2,), got {losses.shape}")
    return losses
