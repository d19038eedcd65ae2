import pickle

import numpy as np
import pytest
import torch

from persist.data import augment, iterate_batches, load_task
from persist.errors import DataError


def test_digits_tasks_are_disjoint_and_remapped():
    a = load_task("digits", "A", seed=0)
    b = load_task("digits", "B", seed=0)
    assert a.classes == (0, 1, 2, 3, 4) and b.classes == (5, 6, 7, 8, 9)
    assert set(a.y_train.tolist()) == set(range(5)) == set(b.y_train.tolist())
    assert a.x_train.shape[1:] == (1, 8, 8)
    # the digits set has 1797 images: both tasks together use all of them exactly once
    total = sum(len(t.x_train) + len(t.x_val) + len(t.x_test) for t in (a, b))
    assert total == 1797
    # training statistics are used for normalization
    assert abs(float(torch.cat([a.x_train, b.x_train]).mean())) < 0.05


def test_validation_is_carved_from_training_and_stratified():
    a = load_task("digits", "A", val_fraction=0.2, seed=3)
    counts = torch.bincount(a.y_val, minlength=5)
    per_class_total = torch.bincount(a.y_train, minlength=5) + counts
    assert torch.allclose(counts.float() / per_class_total.float(), torch.full((5,), 0.2), atol=0.02)
    train_rows = {tuple(r) for r in a.x_train.flatten(1).tolist()}
    assert not any(tuple(r) in train_rows for r in a.x_val.flatten(1).tolist())
    assert len(a.x_test) == len(load_task("digits", "A", seed=99).x_test)  # test set never depends on the seed


def _write_cifar100(root, n_train=20, n_test=10):
    """The layout torchvision downloads: python pickles with str keys and uint8 rows of 3x32x32 pixels."""
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name, n in (("train", n_train), ("test", n_test)):
        labels = (np.arange(n) * 7) % 100
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        with open(folder / name, "wb") as fh:
            pickle.dump({"data": data, "fine_labels": labels.tolist(), "coarse_labels": (labels // 5).tolist()}, fh, protocol=2)
    with open(folder / "meta", "wb") as fh:
        pickle.dump({"fine_label_names": [f"c{i}" for i in range(100)]}, fh, protocol=2)
    return data, labels


def test_cifar100_reads_the_real_on_disk_format(tmp_path):
    data, labels = _write_cifar100(tmp_path)
    from persist.data.tasks import _CACHE

    _CACHE.clear()
    b = load_task("cifar100", "B", data_dir=tmp_path, val_fraction=0.3)
    keep = labels >= 50
    assert len(b.x_test) == keep.sum()
    assert b.x_test.shape[1:] == (3, 32, 32)
    assert sorted(b.y_test.tolist()) == sorted((labels[keep] - 50).tolist())
    # pixel (0, 0) of the first kept test image, channel 0, survives the HWC->CHW move and normalization
    first = data[np.flatnonzero(keep)[0]].reshape(3, 32, 32)
    expected = (first[0, 0, 0] / 255.0 - 0.5071) / 0.2673
    assert float(b.x_test[0, 0, 0, 0]) == pytest.approx(expected, rel=1e-5)


def test_missing_cifar_offline_is_one_line(tmp_path):
    with pytest.raises(DataError, match="cifar10 not found under --data-dir") as info:
        load_task("cifar10", "A", data_dir=tmp_path / "empty")
    assert "\n" not in str(info.value)


def test_unknown_dataset():
    with pytest.raises(DataError, match="unknown dataset 'mnist'"):
        load_task("mnist", "A")


def test_batches_cover_each_example_once_and_augment_is_a_crop_or_flip():
    x = torch.arange(10 * 1 * 4 * 4, dtype=torch.float32).reshape(10, 1, 4, 4)
    y = torch.arange(10)
    g = torch.Generator().manual_seed(0)
    seen = torch.cat([yb for _, yb in iterate_batches(x, y, 3, g, shuffle=True)])
    assert sorted(seen.tolist()) == list(range(10))
    out = augment(x, padding=0, generator=torch.Generator().manual_seed(1))
    for i in range(10):
        assert torch.equal(out[i], x[i]) or torch.equal(out[i], x[i].flip(2))
    cropped = augment(x, padding=1, generator=torch.Generator().manual_seed(2))
    assert cropped.shape == x.shape
    # every output pixel value comes from the same image (reflect padding copies interior pixels)
    for i in range(10):
        assert set(cropped[i].flatten().tolist()) <= set(x[i].flatten().tolist())
