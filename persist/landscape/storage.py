"""Grid artifacts on disk: ``grid.npz`` (arrays) and ``meta.json``, each written atomically.

The landscape phase logs exactly this directory as a slice run's ``landscape/`` artifacts, so
``load_grid(downloaded "landscape" directory)`` gives the slice's grid back, n-D axes and meta included."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from persist.artifacts import GRID_FILE, META_FILE
from persist.errors import CheckpointError
from persist.landscape.grid import LandscapeGrid
from persist.landscape.resume import atomic_write


def save_grid(grid: LandscapeGrid, directory: str | Path) -> tuple[Path, Path]:
    """Write ``grid.npz`` (arrays) and ``meta.json`` atomically; returns both paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    npz, meta = directory / GRID_FILE, directory / META_FILE
    arrays: dict[str, Any] = {f"axis{i}": a for i, a in enumerate(grid.axes)}
    if grid.dims == 2:  # the names 2-D readers know
        arrays.update(alphas=grid.alphas, betas=grid.betas)
    if grid.per_example is not None:
        arrays["per_example"] = grid.per_example
    atomic_write(npz, lambda fh: np.savez(fh, loss=grid.loss, accuracy=grid.accuracy, **arrays))
    body = json.dumps(grid.meta, indent=2, sort_keys=True, default=str).encode()
    atomic_write(meta, lambda fh: fh.write(body))
    return npz, meta


def load_grid(directory: str | Path) -> LandscapeGrid:
    """Read a grid written by :func:`save_grid`."""
    directory = Path(directory)
    try:
        with np.load(directory / GRID_FILE) as data:
            loss, accuracy = data["loss"], data["accuracy"]
            names = [f"axis{i}" for i in range(loss.ndim)] if "axis0" in data else ["alphas", "betas"]
            axes = tuple(data[k] for k in names)
            per_example = data["per_example"] if "per_example" in data else None
        meta = json.loads((directory / META_FILE).read_text())
    except (OSError, ValueError, KeyError) as exc:
        raise CheckpointError(f"landscape grid in {directory} is missing or unreadable ({type(exc).__name__})") from exc
    return LandscapeGrid(axes, loss, accuracy, meta, per_example)
