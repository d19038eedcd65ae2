"""Class-incremental task splits with a validation split carved from the training data.

Checkpoint selection uses the validation split, never the test set (the published code selected on
test accuracy and then measured the landscape and retention on that same set).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from persist.data.datasets import DATASETS, RawDataset, Source
from persist.errors import ConfigError

_CACHE: dict[tuple[str, Source], RawDataset] = {}


@dataclass(frozen=True)
class TaskData:
    """One task's tensors: float32 NCHW images or NCL signals (normalized), labels remapped to 0..k-1."""

    dataset: str
    task: str
    classes: tuple[int, ...]
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def in_channels(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def image_size(self) -> int:
        """Side of a square image, or length of a 1-D signal (what ``create_model`` takes as ``image_size``)."""
        return int(self.x_train.shape[-1])

    @property
    def is_1d(self) -> bool:
        return self.x_train.dim() == 3

    def to(self, device: torch.device | str) -> "TaskData":
        """A copy with every tensor on ``device`` (the whole task is small enough to live there)."""
        moved = {k: getattr(self, k).to(device) for k in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")}
        return TaskData(self.dataset, self.task, self.classes, **moved)


def load_raw(
    dataset: str, data_dir: str | Path = "data", download: bool = False, samples: int = 0, image_size: int = 32,
    test_fraction: float = 0.0,
) -> RawDataset:
    """Load (and cache per process) a registered dataset's raw arrays; see :class:`Source` for the knobs."""
    key = (dataset, Source(Path(data_dir), download, samples, image_size, test_fraction))
    if key not in _CACHE:
        _CACHE[key] = DATASETS.get(dataset)(key[1])
    return _CACHE[key]


def _select(
    x: np.ndarray, y: np.ndarray, classes: tuple[int, ...], raw: RawDataset
) -> tuple[torch.Tensor, torch.Tensor]:
    keep = np.isin(y, classes)
    remap = np.full(int(max(y.max(), max(classes))) + 1, -1, dtype=np.int64)
    remap[list(classes)] = np.arange(len(classes))
    mean = np.asarray(raw.mean, dtype=np.float32)
    std = np.asarray(raw.std, dtype=np.float32)
    images = np.moveaxis((x[keep] - mean) / std, -1, 1)  # NHWC -> NCHW, NLC -> NCL
    return torch.from_numpy(np.ascontiguousarray(images)), torch.from_numpy(remap[y[keep]])


def _split_validation(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified, seeded train/validation indices."""
    rng = np.random.default_rng(seed)
    val = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        rng.shuffle(idx)
        val.append(idx[: max(1, int(round(fraction * len(idx))))])
    val_idx = np.sort(np.concatenate(val))
    return np.setdiff1d(np.arange(len(y)), val_idx), val_idx


def load_task(
    dataset: str,
    task: str,
    data_dir: str | Path = "data",
    val_fraction: float = 0.1,
    seed: int = 0,
    download: bool = False,
    samples: int = 0,
    image_size: int = 32,
) -> TaskData:
    """Task ``"A"`` or ``"B"`` of ``dataset`` with a seeded stratified validation split.

    ``samples`` sizes generated datasets (MNIST-1D; 0 = default), ``image_size`` the image-folder datasets.
    """
    if task not in ("A", "B"):
        raise ConfigError(f"task must be 'A' or 'B', got '{task}'")
    if not 0.0 < val_fraction < 1.0:
        raise ConfigError(f"data.val_fraction must be in (0, 1), got {val_fraction}")
    raw = load_raw(dataset, data_dir, download, samples, image_size)
    classes = raw.task_classes[task]
    x_tr, y_tr = _select(raw.x_train, raw.y_train, classes, raw)
    x_te, y_te = _select(raw.x_test, raw.y_test, classes, raw)
    tr_idx, val_idx = _split_validation(y_tr.numpy(), val_fraction, seed)
    tr, va = torch.from_numpy(tr_idx), torch.from_numpy(val_idx)
    return TaskData(dataset, task, classes, x_tr[tr], y_tr[tr], x_tr[va], y_tr[va], x_te, y_te)
