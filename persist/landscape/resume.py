"""Crash-safe chunk storage so a killed grid run continues where it stopped.

Layout of ``chunk_dir``: ``manifest.json`` (config hash, readable config, the resolved evaluation
method) and one ``chunk_NNNNNN.npz`` per finished chunk of nodes. Every file is written to a temp
file in the same directory and moved into place with ``os.replace``, so a kill leaves either the whole
chunk or nothing. A rerun with the same config reuses finished chunks and evaluates the rest exactly
as an uninterrupted run would (same method, same chunking), which makes the grid bitwise identical
on CPU. A different config in the same directory is refused with :class:`ConfigError` rather than
silently mixed or deleted: use a new ``chunk_dir`` or remove the old one. The device, world size and
library versions are not part of the config: a run may resume on another machine or with another
number of ranks (their last-bit numerical differences then mix, far below any reported precision).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch

from persist.errors import CheckpointError, ConfigError

FORMAT = 1


def tensor_digest(tensors: Iterable[torch.Tensor]) -> str:
    """SHA-256 over the raw bytes (and shapes/dtypes) of tensors, so any changed weight or sample shows."""
    h = hashlib.sha256()
    for t in tensors:
        t = t.detach().to("cpu").contiguous()
        h.update(f"{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def config_hash(config: dict) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]


def atomic_write(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class ChunkStore:
    """Finished chunks of one grid config in one directory."""

    def __init__(self, directory: str | Path, config: dict) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.config = config
        self.hash = config_hash(config)
        self.manifest_path = self.directory / "manifest.json"

    def stored_method(self) -> str | None:
        """The method an earlier run resolved, or None for a fresh directory; refuses a foreign config."""
        if not self.manifest_path.is_file():
            if any(self.directory.glob("chunk_*.npz")):
                raise ConfigError(f"chunk_dir {self.directory} has chunk files but no manifest.json; "
                                  "use a new chunk_dir or delete it")
            return None
        try:
            manifest = json.loads(self.manifest_path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"chunk_dir manifest {self.manifest_path} is unreadable ({exc})") from exc
        if manifest.get("config_hash") != self.hash:
            raise ConfigError(
                f"chunk_dir {self.directory} holds a grid with a different config "
                f"(hash {manifest.get('config_hash')} != {self.hash}); use a new chunk_dir or delete it")
        return manifest["method"]

    def write_manifest(self, method: str) -> None:
        body = json.dumps({"format": FORMAT, "config_hash": self.hash, "method": method, "config": self.config},
                          indent=2, sort_keys=True).encode()
        atomic_write(self.manifest_path, lambda fh: fh.write(body))

    def _path(self, chunk: int) -> Path:
        return self.directory / f"chunk_{chunk:06d}.npz"

    def has(self, chunk: int) -> bool:
        return self._path(chunk).is_file()

    def save(self, chunk: int, loss: np.ndarray, accuracy: np.ndarray, per_example: np.ndarray | None = None
             ) -> None:
        extra: dict[str, Any] = {} if per_example is None else {"per_example": per_example}
        atomic_write(self._path(chunk), lambda fh: np.savez(fh, loss=loss, accuracy=accuracy, **extra))

    def load(self, chunk: int, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """``(loss, accuracy, per_example)`` of a finished chunk; per_example is None unless it was kept."""
        path = self._path(chunk)
        try:
            with np.load(path) as data:
                loss, accuracy = data["loss"], data["accuracy"]
                per_example = data["per_example"] if self.config.get("per_example") else None
        except (OSError, ValueError, KeyError) as exc:
            raise CheckpointError(
                f"chunk file {path} is unreadable ({type(exc).__name__}); delete it to recompute") from exc
        if loss.shape != (size,) or accuracy.shape != (size,) or (per_example is not None and len(per_example) != size):
            raise CheckpointError(
                f"chunk file {path} holds {loss.shape[0]} nodes, expected {size}; delete it to recompute")
        return loss, accuracy, per_example
