"""Image-folder datasets of the PERSIST study: CUB-200-2011 and NWPU-RESISC45, in their on-disk layouts.

Both are read with torchvision's PIL loader and resized to ``image_size`` x ``image_size`` (aspect ratio not
kept, as in the published code), normalized later with ImageNet statistics. Nothing is downloaded: the user
unpacks the archives under ``--data-dir``.

- CUB-200-2011: ``CUB_200_2011/{images.txt, train_test_split.txt, image_class_labels.txt, images/<class>/*.jpg}``;
  the official train/test split; labels are the file's class ids minus one; task A = classes 0-99, B = 100-199.
- NWPU-RESISC45: ``NWPU-RESISC45/<class>/<class>_NNN.jpg``; no official split, so a stratified 80/20 split per
  class with a fixed seed (:data:`SPLIT_SEED`, never the training seed: the published code drew it from the
  run's seed, so each seed had a different test set); classes in alphabetical order, task A = the first 23,
  B = the last 22 (the published protocol).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from persist.data.datasets import DATASETS, IMAGENET_MEAN, IMAGENET_STD, SPLIT_SEED, RawDataset, Source, halves
from persist.errors import DataError

CUB_DIR = "CUB_200_2011"
RESISC_DIR = "NWPU-RESISC45"
RESISC_TEST_FRACTION = 0.2


def read_images(paths: Sequence[Path], image_size: int) -> np.ndarray:
    """Decode RGB images with torchvision's loader and resize each to a square: (N, S, S, 3) float32 in [0, 1]."""
    from torchvision.datasets.folder import default_loader
    from torchvision.transforms import Resize

    resize = Resize((image_size, image_size))
    out = np.empty((len(paths), image_size, image_size, 3), dtype=np.float32)
    for i, path in enumerate(paths):
        out[i] = np.asarray(resize(default_loader(str(path))), dtype=np.float32) / 255.0
    return out


def _root(source: Source, name: str, marker: str) -> Path:
    """``data_dir/name`` when the archive was unpacked there, else ``data_dir`` itself."""
    for root in (source.data_dir / name, source.data_dir):
        if (root / marker).exists():
            return root
    raise DataError(f"{name} not found under --data-dir {source.data_dir} (expected {name}/{marker}; unpack it there)")


def _table(path: Path) -> dict[int, str]:
    """``id value`` lines of a CUB metadata file."""
    rows = {}
    for line in path.read_text().splitlines():
        if line.strip():
            key, value = line.split(maxsplit=1)
            rows[int(key)] = value.strip()
    return rows


@DATASETS.register("cub200")
def load_cub200(source: Source) -> RawDataset:
    """CUB-200-2011 with its official train/test split; task A = classes 0-99, B = 100-199."""
    root = _root(source, CUB_DIR, "images.txt")
    try:
        images = _table(root / "images.txt")
        is_train = _table(root / "train_test_split.txt")
        labels = _table(root / "image_class_labels.txt")
    except (OSError, ValueError) as exc:
        raise DataError(f"{CUB_DIR} metadata under {root} is unreadable: {exc}") from exc
    ids = sorted(images)
    if set(ids) != set(is_train) or set(ids) != set(labels):
        raise DataError(f"{CUB_DIR}: images.txt, train_test_split.txt and image_class_labels.txt list different ids")
    x = read_images([root / "images" / images[i] for i in ids], source.image_size)
    y = np.array([int(labels[i]) - 1 for i in ids], dtype=np.int64)
    train = np.array([is_train[i] == "1" for i in ids])
    return RawDataset("cub200", x[train], y[train], x[~train], y[~train], halves(200), IMAGENET_MEAN, IMAGENET_STD)


def stratified_split(y: np.ndarray, test_fraction: float, seed: int) -> np.ndarray:
    """Boolean test mask holding ``round(test_fraction * n_c)`` seeded-random examples of every class."""
    rng = np.random.default_rng(seed)
    test = np.zeros(len(y), dtype=bool)
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        test[idx[: int(round(test_fraction * len(idx)))]] = True
    return test


@DATASETS.register("resisc45")
def load_resisc45(source: Source) -> RawDataset:
    """NWPU-RESISC45 with a fixed-seed stratified 80/20 split; task A = first 23 classes (alphabetical), B = 22."""
    from torchvision.datasets import ImageFolder

    root = source.data_dir / RESISC_DIR if (source.data_dir / RESISC_DIR).is_dir() else source.data_dir
    try:
        folder = ImageFolder(str(root))
    except (FileNotFoundError, OSError) as exc:
        raise DataError(f"{RESISC_DIR} not found under --data-dir {source.data_dir}: {exc}") from exc
    n = len(folder.classes)
    if n < 2:
        raise DataError(f"{RESISC_DIR} under {root} has {n} class folder(s); expected 45")
    x = read_images([Path(p) for p, _ in folder.samples], source.image_size)
    y = np.array(folder.targets, dtype=np.int64)
    test = stratified_split(y, RESISC_TEST_FRACTION, SPLIT_SEED)
    return RawDataset("resisc45", x[~test], y[~test], x[test], y[test], halves(n, first=(n + 1) // 2),
                      IMAGENET_MEAN, IMAGENET_STD)
