"""Neural persistence (Rieck et al., ICLR 2019): a data-free complexity measure of trained weights.

``neural_persistence(model)`` gives per-layer and mean normalized NP with weight baselines; the hooks
track it during training and implement the paper's validation-free early stopping (Algorithm 2).
"""

from persist.neural_persistence.graph import (
    layer_persistence,
    persistence_diagram,
    persistence_upper_bound,
    spanning_forest_weights,
)
from persist.neural_persistence.hooks import NeuralPersistenceEarlyStopping, NeuralPersistenceTracker
from persist.neural_persistence.layers import conv_input_sizes, extract_graphs
from persist.neural_persistence.network import neural_persistence
from persist.neural_persistence.stopping import PatienceRule

__all__ = [
    "NeuralPersistenceEarlyStopping",
    "NeuralPersistenceTracker",
    "PatienceRule",
    "conv_input_sizes",
    "extract_graphs",
    "layer_persistence",
    "neural_persistence",
    "persistence_diagram",
    "persistence_upper_bound",
    "spanning_forest_weights",
]
