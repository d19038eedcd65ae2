"""Atomic checkpoints that load with ``weights_only=True``.

A kill during a write must never leave a truncated file where a good one was: we write to a temp
file in the same directory and ``os.replace`` it, which is atomic on POSIX filesystems.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import torch

from persist.errors import CheckpointError

SCHEMA_VERSION = 1


def save_checkpoint(path: str | Path, **state: Any) -> Path:
    """Write ``state`` (tensors, dicts, numbers, strings) atomically; adds ``schema_version``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save({"schema_version": SCHEMA_VERSION, **state}, fh)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint`; corrupt or foreign files raise CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, ValueError, OSError) as exc:
        raise CheckpointError(f"checkpoint {path} is corrupt or not a persist checkpoint ({type(exc).__name__})") from exc
    if not isinstance(state, dict) or state.get("schema_version") != SCHEMA_VERSION:
        raise CheckpointError(f"checkpoint {path} has no persist schema_version {SCHEMA_VERSION}")
    return state


def rng_state(generator: torch.Generator) -> dict[str, torch.Tensor]:
    """RNG states needed to resume bit-identically on CPU."""
    return {"generator": generator.get_state(), "torch": torch.get_rng_state()}


def restore_rng(state: dict[str, torch.Tensor], generator: torch.Generator) -> None:
    generator.set_state(state["generator"])
    torch.set_rng_state(state["torch"])
