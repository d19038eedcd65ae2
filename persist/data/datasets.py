"""Dataset sources: raw arrays plus the facts the task split needs.

Each source returns images as float32 NHWC in [0, 1] (1-D signals as NLC, i.e. (N, 40, 1) for MNIST-1D) with
integer labels; normalization and the task split happen once in :mod:`persist.data.tasks`, so every dataset
goes through one code path. A source is called with a :class:`Source` (where the data lives and the few
per-dataset knobs), so a new option never changes every loader's signature.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from persist.errors import DataError
from persist.registry import Registry

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MNIST1D_SAMPLES = 4000  # default size of the generated MNIST-1D set (80% train, 20% test)
MNIST1D_SEED = 42  # the package's own default seed: the published MNIST-1D is generated with it
SPLIT_SEED = 0  # fixed seed of the train/test split of datasets that have none: never the training seed
DIGITS_TEST_FRACTION = 0.25  # default held-out share of digits, which ships without a train/test split


@dataclass(frozen=True)
class RawDataset:
    """Train/test arrays (N, H, W, C) or (N, L, C) float32 and int64 labels, plus the class-incremental split."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    task_classes: dict[str, tuple[int, ...]]
    mean: tuple[float, ...]
    std: tuple[float, ...]


@dataclass(frozen=True)
class Source:
    """Where a dataset lives and the per-dataset knobs (``samples``: generated datasets; ``image_size``: folders;
    ``test_fraction``: datasets without an official split)."""

    data_dir: Path
    download: bool = False
    samples: int = 0  # 0: the dataset's default size (MNIST-1D: 4000)
    image_size: int = 32  # image-folder datasets are resized to image_size x image_size
    test_fraction: float = 0.0  # 0: the dataset's default held-out share (digits: 0.25)


Loader = Callable[[Source], RawDataset]
DATASETS: Registry[Loader] = Registry("dataset", DataError)
GENERATED = ("mnist1d",)  # datasets made by a procedure rather than read from disk (data.samples applies)


def halves(n: int, first: int | None = None) -> dict[str, tuple[int, ...]]:
    """Task A = the first ``first`` (default n // 2) class ids, task B = the rest."""
    cut = n // 2 if first is None else first
    return {"A": tuple(range(cut)), "B": tuple(range(cut, n))}


@DATASETS.register("digits")
def load_digits(source: Source) -> RawDataset:
    """scikit-learn's bundled 8x8 digits: offline, so the embedded default runs anywhere.

    The official split does not exist; a fixed seeded stratified split (``source.test_fraction``, default
    25% held out) stands in for train/test. The split seed is fixed, so every training seed sees one test set.
    """
    from sklearn.datasets import load_digits as sk_digits
    from sklearn.model_selection import train_test_split

    bunch = sk_digits()
    x = (bunch.images / 16.0).astype(np.float32)[..., None]
    y = bunch.target.astype(np.int64)
    fraction = source.test_fraction or DIGITS_TEST_FRACTION
    if not 0.0 < fraction < 1.0:
        raise DataError(f"the digits test fraction must be in (0, 1), got {fraction}")
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=fraction, stratify=y, random_state=SPLIT_SEED)
    mean, std = float(x_tr.mean()), float(x_tr.std())
    return RawDataset("digits", x_tr, y_tr, x_te, y_te, halves(10), (mean,), (std,))


def mnist1d_arrays(samples: int, seed: int = MNIST1D_SEED) -> dict[str, np.ndarray]:
    """Generate MNIST-1D with the ``mnist1d`` package's procedural ``make_dataset`` (never its download path).

    ``make_dataset`` seeds numpy's and Python's global generators; their states are restored afterwards so
    generating the data never changes what other code draws.
    """
    import random

    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples, args.seed = samples, seed
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        data = make_dataset(args)
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    return {"x": data["x"], "y": data["y"], "x_test": data["x_test"], "y_test": data["y_test"]}


def mnist1d_cache(source: Source) -> Path:
    samples = source.samples or MNIST1D_SAMPLES
    return source.data_dir / "mnist1d" / f"mnist1d_n{samples}_seed{MNIST1D_SEED}.npz"


@DATASETS.register("mnist1d")
def load_mnist1d(source: Source) -> RawDataset:
    """MNIST-1D (Greydanus and Kobak 2024): 40-point signals of 10 digit templates, generated in seconds.

    Generated once with the package's default recipe and seed 42 and cached as ``.npz`` under
    ``data_dir/mnist1d``; later calls read the file. Task A = digits 0-4, B = 5-9. The package already
    standardizes the signals; the training-set mean/std are still recorded so normalization is one code path.
    """
    samples = source.samples or MNIST1D_SAMPLES
    if samples < 20:
        raise DataError(f"data.samples must be >= 20 for mnist1d (two per class and split), got {samples}")
    path = mnist1d_cache(source)
    if not path.exists():
        arrays = mnist1d_arrays(samples)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, x=arrays["x"], y=arrays["y"], x_test=arrays["x_test"], y_test=arrays["y_test"])
        tmp.replace(path)  # atomic: concurrent workers never read a half-written file
    with np.load(path) as f:
        x_tr, y_tr, x_te, y_te = (f[k] for k in ("x", "y", "x_test", "y_test"))
    x_tr = x_tr.astype(np.float32)[..., None]
    x_te = x_te.astype(np.float32)[..., None]
    return RawDataset("mnist1d", x_tr, y_tr.astype(np.int64), x_te, y_te.astype(np.int64), halves(10),
                      (float(x_tr.mean()),), (float(x_tr.std()),))


def _cifar(name: str, source: Source) -> RawDataset:
    from torchvision import datasets

    cls = {"cifar10": datasets.CIFAR10, "cifar100": datasets.CIFAR100}[name]

    class Reader(cls):  # type: ignore[misc, valid-type]
        # torchvision verifies md5 sums of the extracted pickles (the archive's own sum is still checked on
        # download); requiring only their presence lets converted or test-generated files in the same
        # on-disk format load too.
        train_list = [[f, None] for f, _ in cls.train_list]
        test_list = [[f, None] for f, _ in cls.test_list]
        meta = {**cls.meta, "md5": None}

    data_dir = source.data_dir
    try:
        train = Reader(str(data_dir), train=True, download=source.download)
        test = Reader(str(data_dir), train=False, download=False)
    except RuntimeError as exc:  # torchvision: "Dataset not found or corrupted."
        raise DataError(f"{name} not found under --data-dir {data_dir} (pass --download when online)") from exc
    except OSError as exc:  # download attempted while offline
        raise DataError(f"{name} not found under --data-dir {data_dir} and download failed: {exc}") from exc
    n = 10 if name == "cifar10" else 100
    mean, std = ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)) if name == "cifar10" else (
        (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762))
    return RawDataset(
        name,
        train.data.astype(np.float32) / 255.0, np.asarray(train.targets, dtype=np.int64),
        test.data.astype(np.float32) / 255.0, np.asarray(test.targets, dtype=np.int64),
        halves(n), mean, std,
    )


@DATASETS.register("cifar10")
def load_cifar10(source: Source) -> RawDataset:
    """CIFAR-10 with task A = classes 0-4 and task B = 5-9."""
    return _cifar("cifar10", source)


@DATASETS.register("cifar100")
def load_cifar100(source: Source) -> RawDataset:
    """CIFAR-100 with task A = classes 0-49 and task B = 50-99 (the PERSIST study)."""
    return _cifar("cifar100", source)

