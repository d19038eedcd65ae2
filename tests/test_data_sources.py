"""MNIST-1D (generated, cached) and the image-folder datasets (CUB-200-2011, NWPU-RESISC45) in their layouts."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from PIL import Image

from persist.data import Source, augment, iterate_batches, load_task
from persist.data import datasets as sources
from persist.data.tasks import _CACHE
from persist.errors import DataError

N = 200  # MNIST-1D samples: 160 train, 40 test, 20 per class


@pytest.fixture(autouse=True)
def fresh_cache():
    _CACHE.clear()
    yield
    _CACHE.clear()


def test_mnist1d_is_the_packages_procedure_and_leaves_global_generators_alone():
    from mnist1d.data import get_dataset_args, make_dataset

    np.random.seed(123)
    random.seed(123)
    expected_np, expected_py = np.random.random(), random.random()
    np.random.seed(123)
    random.seed(123)
    ours = sources.mnist1d_arrays(N)
    assert (np.random.random(), random.random()) == (expected_np, expected_py)
    args = get_dataset_args()
    args.num_samples = N
    theirs = make_dataset(args)
    for key in ("x", "y", "x_test", "y_test"):
        np.testing.assert_array_equal(ours[key], theirs[key])
    assert ours["x"].shape == (160, 40) and ours["x_test"].shape == (40, 40)


def test_signal_datasets_are_the_1d_ones():
    from persist.architectures import SIGNAL_DATASETS

    assert SIGNAL_DATASETS == ("mnist1d",)  # the only source whose arrays are (N, L, C); tests below load it
    assert set(SIGNAL_DATASETS) <= set(sources.DATASETS.names())


def test_mnist1d_tasks_split_the_digits_and_keep_the_signal_layout(tmp_path):
    a = load_task("mnist1d", "A", data_dir=tmp_path, samples=N, seed=0)
    b = load_task("mnist1d", "B", data_dir=tmp_path, samples=N, seed=0)
    assert a.classes == (0, 1, 2, 3, 4) and b.classes == (5, 6, 7, 8, 9)
    assert a.x_train.shape[1:] == (1, 40) and a.is_1d and a.image_size == 40 and a.in_channels == 1
    assert sum(len(t.x_train) + len(t.x_val) + len(t.x_test) for t in (a, b)) == N
    raw = np.load(sources.mnist1d_cache(Source(tmp_path, samples=N)))
    in_a = np.isin(raw["y"], range(5))
    assert len(a.x_train) + len(a.x_val) == in_a.sum()
    # the first task-A test signal, normalized with the training statistics, survives the NLC -> NCL move
    first = raw["x_test"][np.isin(raw["y_test"], range(5))][0]
    mean, std = raw["x"].astype(np.float32).mean(), raw["x"].astype(np.float32).std()
    np.testing.assert_allclose(a.x_test[0, 0].numpy(), (first - mean) / std, rtol=1e-5, atol=1e-5)
    assert int(a.y_test[0]) == int(raw["y_test"][np.isin(raw["y_test"], range(5))][0])
    # validation is carved from training data, stratified, and the test set does not depend on the seed
    assert set(a.y_val.tolist()) == set(range(5))
    assert torch.equal(load_task("mnist1d", "A", data_dir=tmp_path, samples=N, seed=7).x_test, a.x_test)


def test_mnist1d_generation_is_deterministic_and_cached(tmp_path, monkeypatch):
    first = load_task("mnist1d", "A", data_dir=tmp_path / "one", samples=N)
    again = load_task("mnist1d", "A", data_dir=tmp_path / "two", samples=N)
    assert torch.equal(first.x_train, again.x_train) and torch.equal(first.y_test, again.y_test)
    path = sources.mnist1d_cache(Source(tmp_path / "one", samples=N))
    assert path.exists() and path.name == f"mnist1d_n{N}_seed42.npz"

    def regenerate(*_args, **_kwargs):
        raise AssertionError("the cached .npz must be read, not regenerated")

    monkeypatch.setattr(sources, "mnist1d_arrays", regenerate)
    _CACHE.clear()
    cached = load_task("mnist1d", "A", data_dir=tmp_path / "one", samples=N)
    assert torch.equal(cached.x_train, first.x_train)
    with pytest.raises(AssertionError, match="must be read"):  # another size is another file
        load_task("mnist1d", "A", data_dir=tmp_path / "one", samples=2 * N)


def test_mnist1d_too_few_samples_is_one_line(tmp_path):
    with pytest.raises(DataError, match="data.samples must be >= 20"):
        load_task("mnist1d", "A", data_dir=tmp_path, samples=10)


def test_1d_batches_are_not_augmented_and_draw_nothing():
    x = torch.randn(6, 1, 40)
    g = torch.Generator().manual_seed(0)
    assert torch.equal(augment(x, 5, g), x)
    assert torch.equal(g.get_state(), torch.Generator().manual_seed(0).get_state())
    batches = list(iterate_batches(x, torch.arange(6), 4, g, shuffle=True, augment_padding=5))
    assert sorted(torch.cat([yb for _, yb in batches]).tolist()) == list(range(6))
    assert all(xb.shape[1:] == (1, 40) for xb, _ in batches)


def _image(path, color, size=(23, 17)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path, quality=100)


def _color(i: int) -> tuple[int, int, int]:
    return (10 + 7 * i, 200 - 5 * i, 40 + 3 * i)


def write_cub(root, class_ids=(1, 2, 101, 150), per_class=4):
    """CUB_200_2011's layout: images/<NNN.Name>/*.jpg plus the three id tables (1-based ids and labels)."""
    base = root / "CUB_200_2011"
    rows, splits, labels, colors = [], [], [], {}
    i = 0
    for c in class_ids:
        for k in range(per_class):
            i += 1
            rel = f"{c:03d}.Bird_{c}/Bird_{c}_{k:04d}.jpg"
            _image(base / "images" / rel, _color(i), size=(30 + k, 20 + c % 7))
            rows.append(f"{i} {rel}")
            splits.append(f"{i} {int(k % 2 == 0)}")
            labels.append(f"{i} {c}")
            colors[i] = _color(i)
    for name, lines in (("images.txt", rows), ("train_test_split.txt", splits), ("image_class_labels.txt", labels)):
        (base / name).write_text("\n".join(lines) + "\n")
    return colors


def normalized(color, mean, std):
    return [(v / 255.0 - m) / s for v, m, s in zip(color, mean, std, strict=True)]


def test_cub_uses_the_official_split_class_ids_and_resizes(tmp_path):
    colors = write_cub(tmp_path)
    a = load_task("cub200", "A", data_dir=tmp_path, image_size=16, val_fraction=0.5)
    b = load_task("cub200", "B", data_dir=tmp_path, image_size=16, val_fraction=0.5)
    assert a.classes == tuple(range(100)) and b.classes == tuple(range(100, 200))
    assert a.x_train.shape[1:] == (3, 16, 16) and a.image_size == 16
    # train_test_split.txt: even k is training; 2 classes x 2 images in each split per task
    assert len(a.x_train) + len(a.x_val) == 4 and len(a.x_test) == 4 and len(b.x_test) == 4
    assert sorted(a.y_test.tolist()) == [0, 0, 1, 1]  # file labels 1, 2 -> classes 0, 1
    assert sorted(b.y_test.tolist()) == [0, 0, 49, 49]  # file labels 101, 150 -> classes 100, 149 -> 0, 49
    # image 2 (class 1, k=1) is the first test image: a flat colour stays flat through the resize
    expected = normalized(colors[2], sources.IMAGENET_MEAN, sources.IMAGENET_STD)
    got = a.x_test[0].mean(dim=(1, 2)).tolist()
    assert got == pytest.approx(expected, abs=2 / 255 / 0.224)
    assert float(a.x_test[0].std(dim=(1, 2)).max()) < 0.05


def test_cub_missing_is_one_line(tmp_path):
    with pytest.raises(DataError, match="CUB_200_2011 not found under --data-dir") as info:
        load_task("cub200", "A", data_dir=tmp_path)
    assert "\n" not in str(info.value)


def write_resisc(root, classes=("airport", "beach", "church", "desert", "forest"), per_class=5):
    for ci, name in enumerate(classes):
        for k in range(1, per_class + 1):
            _image(root / "NWPU-RESISC45" / name / f"{name}_{k:03d}.jpg", _color(10 * ci + k), size=(40, 40))


def test_resisc_alphabetical_classes_fixed_stratified_split_and_resize(tmp_path):
    write_resisc(tmp_path)
    a = load_task("resisc45", "A", data_dir=tmp_path, image_size=8, seed=0, val_fraction=0.25)
    b = load_task("resisc45", "B", data_dir=tmp_path, image_size=8, seed=0, val_fraction=0.25)
    assert a.classes == (0, 1, 2) and b.classes == (3, 4)  # 5 classes: the first (n + 1) // 2 are task A
    assert a.x_test.shape[1:] == (3, 8, 8)
    # 20% of the 5 images of each class are test images, stratified
    assert sorted(a.y_test.tolist()) == [0, 1, 2] and sorted(b.y_test.tolist()) == [0, 1]
    assert len(a.x_train) + len(a.x_val) == 12
    # the split is fixed: another training seed changes the validation split, never the test set
    other = load_task("resisc45", "A", data_dir=tmp_path, image_size=8, seed=5, val_fraction=0.25)
    assert torch.equal(other.x_test, a.x_test)
    assert not torch.equal(other.x_val, a.x_val)


def test_resisc_45_classes_split_23_22():
    assert sources.halves(45, first=23) == {"A": tuple(range(23)), "B": tuple(range(23, 45))}


def test_resisc_missing_is_one_line(tmp_path):
    with pytest.raises(DataError, match="NWPU-RESISC45") as info:
        load_task("resisc45", "A", data_dir=tmp_path / "nothing")
    assert "\n" not in str(info.value)
