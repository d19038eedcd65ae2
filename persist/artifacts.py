"""Where each run keeps its artifacts: every path a phase writes and another reads, named once.

Paths are relative to a run's artifact root (MLflow artifact paths). A reader and a writer of the same
artifact use the same name here, so the two cannot drift apart.
"""

from __future__ import annotations

CONFIG_RESOLVED = "config/resolved.json"  # the whole config of a run, read back by downstream phases

CHECKPOINT_DIR = "checkpoints"  # model weights: best.pt (train), final.pt (forgetting), snapshots.pt (train)
SNAPSHOTS = "snapshots"  # the checkpoint name of the train run's parameter snapshots

LANDSCAPE_DIR = "landscape"  # one slice's grid, as written by persist.landscape.save_grid
GRID_FILE = "grid.npz"
META_FILE = "meta.json"
LANDSCAPE_GRID = f"{LANDSCAPE_DIR}/{GRID_FILE}"
LANDSCAPE_META = f"{LANDSCAPE_DIR}/{META_FILE}"

PERSISTENCE_H = "persistence/h{dim}.npy"  # the diagram of homology dimension ``dim``
PERSISTENCE_META = "persistence/meta.json"

FORGETTING_CURVE = "forgetting/curve.json"
NEURAL_PERSISTENCE_VALUES = "neural_persistence/values.json"
STUDY_TABLE = "study/table.json"
STUDY_MISSING = "study/missing.json"


def checkpoint(name: str) -> str:
    """The artifact path of checkpoint ``name`` (``best``, ``final``, ``snapshots``)."""
    return f"{CHECKPOINT_DIR}/{name}.pt"


def persistence_diagram(dim: int) -> str:
    """The artifact path of the persistence diagram of homology dimension ``dim``."""
    return PERSISTENCE_H.format(dim=dim)
