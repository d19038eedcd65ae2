"""Dataset sources: raw arrays plus the facts the task split needs.

Each source returns images as uint8 NHWC (or float in [0, 1]) with integer labels; normalization and
the task split happen once in :mod:`persist.data.tasks`, so every dataset goes through one code path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from persist.errors import DataError
from persist.registry import Registry


@dataclass(frozen=True)
class RawDataset:
    """Train/test arrays (N, H, W, C) float32 in [0, 1] and int64 labels, plus the class-incremental split."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    task_classes: dict[str, tuple[int, ...]]
    mean: tuple[float, ...]
    std: tuple[float, ...]


Loader = Callable[[Path, bool], RawDataset]
DATASETS: Registry[Loader] = Registry("dataset", DataError)


@DATASETS.register("digits")
def load_digits(data_dir: Path, download: bool) -> RawDataset:
    """scikit-learn's bundled 8x8 digits: offline, so the embedded default runs anywhere.

    The official split does not exist; a fixed seeded 75/25 stratified split stands in for train/test.
    """
    from sklearn.datasets import load_digits as sk_digits
    from sklearn.model_selection import train_test_split

    bunch = sk_digits()
    x = (bunch.images / 16.0).astype(np.float32)[..., None]
    y = bunch.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.25, stratify=y, random_state=0)
    mean, std = float(x_tr.mean()), float(x_tr.std())
    return RawDataset("digits", x_tr, y_tr, x_te, y_te, {"A": tuple(range(5)), "B": tuple(range(5, 10))},
                      (mean,), (std,))


def _cifar(name: str, data_dir: Path, download: bool) -> RawDataset:
    from torchvision import datasets

    cls = {"cifar10": datasets.CIFAR10, "cifar100": datasets.CIFAR100}[name]

    class Reader(cls):  # type: ignore[misc, valid-type]
        # torchvision verifies md5 sums of the extracted pickles (the archive's own sum is still checked on
        # download); requiring only their presence lets converted or test-generated files in the same
        # on-disk format load too.
        train_list = [[f, None] for f, _ in cls.train_list]
        test_list = [[f, None] for f, _ in cls.test_list]
        meta = {**cls.meta, "md5": None}

    try:
        train = Reader(str(data_dir), train=True, download=download)
        test = Reader(str(data_dir), train=False, download=False)
    except RuntimeError as exc:  # torchvision: "Dataset not found or corrupted."
        raise DataError(f"{name} not found under --data-dir {data_dir} (pass --download when online)") from exc
    except OSError as exc:  # download attempted while offline
        raise DataError(f"{name} not found under --data-dir {data_dir} and download failed: {exc}") from exc
    half = 5 if name == "cifar10" else 50
    n = 2 * half
    mean, std = ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)) if name == "cifar10" else (
        (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762))
    return RawDataset(
        name,
        train.data.astype(np.float32) / 255.0, np.asarray(train.targets, dtype=np.int64),
        test.data.astype(np.float32) / 255.0, np.asarray(test.targets, dtype=np.int64),
        {"A": tuple(range(half)), "B": tuple(range(half, n))}, mean, std,
    )


@DATASETS.register("cifar10")
def load_cifar10(data_dir: Path, download: bool) -> RawDataset:
    """CIFAR-10 with task A = classes 0-4 and task B = 5-9."""
    return _cifar("cifar10", data_dir, download)


@DATASETS.register("cifar100")
def load_cifar100(data_dir: Path, download: bool) -> RawDataset:
    """CIFAR-100 with task A = classes 0-49 and task B = 50-99 (the PERSIST study)."""
    return _cifar("cifar100", data_dir, download)
