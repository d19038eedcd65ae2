"""Persistent homology of loss landscapes: lower-star diagrams (1-4D), noise floors, merge trees, summaries.

:func:`grid_topology` is the one call the landscape phase makes per grid.

Torch-free: everything takes numpy grids of loss values and returns plain arrays and ``dict[str, float]``.

    >>> import numpy as np
    >>> from persist.topology import lower_star_diagrams, summarize
    >>> grid = np.array([[0.0, 2.0, 1.0]])          # two basins, saddle at 2
    >>> diagrams = lower_star_diagrams(grid)
    >>> diagrams[0].tolist()
    [[0.0, inf], [1.0, 2.0]]
    >>> summarize(diagrams)["h0_total_persistence"]
    1.0
"""

from persist.topology.baselines import grid_baselines, h0_zero_birth_total
from persist.topology.bootstrap import bootstrap_distances, bootstrap_floor, bootstrap_grids
from persist.topology.diagrams import Diagrams, close_essential, lifetimes, split_essential
from persist.topology.distances import diagram_distance, pairwise_distances
from persist.topology.grid_topology import FLOORS, GridTopology, grid_topology, inputs_needed, requested_floor
from persist.topology.lower_star import BACKENDS, lower_star_diagrams
from persist.topology.merge_tree import MergeTree, merge_tree
from persist.topology.noise import NoiseFloor, bottleneck_floor, noise_floor
from persist.topology.summaries import aggregate_summaries, persistence_entropy, summarize, total_persistence
from persist.topology.transformers import LowerStarPersistence, PersistenceSummaries
from persist.topology.vectorize import betti_curve, betti_curves, persistence_image, persistence_landscape

__all__ = [
    "BACKENDS",
    "FLOORS",
    "Diagrams",
    "GridTopology",
    "LowerStarPersistence",
    "MergeTree",
    "NoiseFloor",
    "PersistenceSummaries",
    "aggregate_summaries",
    "betti_curve",
    "betti_curves",
    "bootstrap_distances",
    "bootstrap_floor",
    "bootstrap_grids",
    "bottleneck_floor",
    "close_essential",
    "diagram_distance",
    "grid_baselines",
    "grid_topology",
    "h0_zero_birth_total",
    "inputs_needed",
    "lifetimes",
    "lower_star_diagrams",
    "merge_tree",
    "noise_floor",
    "pairwise_distances",
    "persistence_entropy",
    "persistence_image",
    "persistence_landscape",
    "requested_floor",
    "split_essential",
    "summarize",
    "total_persistence",
]
