"""Grid artifacts on disk: ``grid.npz`` (arrays) and ``meta.json``, each written atomically."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from persist.errors import CheckpointError
from persist.landscape.grid import LandscapeGrid
from persist.landscape.resume import atomic_write


def save_grid(grid: LandscapeGrid, directory: str | Path) -> tuple[Path, Path]:
    """Write ``grid.npz`` (arrays) and ``meta.json`` atomically; returns both paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    npz, meta = directory / "grid.npz", directory / "meta.json"
    atomic_write(npz, lambda fh: np.savez(fh, alphas=grid.alphas, betas=grid.betas, loss=grid.loss,
                                           accuracy=grid.accuracy))
    body = json.dumps(grid.meta, indent=2, sort_keys=True, default=str).encode()
    atomic_write(meta, lambda fh: fh.write(body))
    return npz, meta


def load_grid(directory: str | Path) -> LandscapeGrid:
    """Read a grid written by :func:`save_grid`."""
    directory = Path(directory)
    try:
        with np.load(directory / "grid.npz") as data:
            arrays = {k: data[k] for k in ("alphas", "betas", "loss", "accuracy")}
        meta = json.loads((directory / "meta.json").read_text())
    except (OSError, ValueError, KeyError) as exc:
        raise CheckpointError(f"landscape grid in {directory} is missing or unreadable ({type(exc).__name__})") from exc
    return LandscapeGrid(**arrays, meta=meta)
