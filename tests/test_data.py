import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from autoinv import data
from autoinv.data import DATASETS, Dataset, DatasetError, list_datasets, load_dataset, normalize, to_float

# name -> (per-sample shape, classes, train + val size, test size, kind)
OFFLINE = {
    "mnist1d": ((1, 40), 10, 4000, 1000, "signal"),
    "mnist1d_shift": ((1, 40), 10, 4000, 1000, "signal"),
    "digits": ((1, 8, 8), 10, 1438, 359, "image"),
    "shapes": ((3, 32, 32), 10, 5000, 1000, "image"),
    "marioiggy": ((3, 32, 32), 4, 5000, 1000, "image"),
}
DOWNLOADABLE = [name for name in DATASETS if name not in OFFLINE]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("data"))


@pytest.mark.parametrize("name", list(OFFLINE))
def test_offline_dataset_loads(name, data_dir):
    shape, num_classes, n_train_val, n_test, kind = OFFLINE[name]
    ds = load_dataset(name, data_dir=data_dir)
    assert (ds.name, ds.shape, ds.num_classes, ds.kind) == (name, shape, num_classes, kind)
    assert ds.x_train.dtype == (torch.float32 if kind == "signal" else torch.uint8)
    assert len(ds.x_train) + len(ds.x_val) == n_train_val and len(ds.x_val) == round(0.1 * n_train_val)
    assert len(ds.x_test) == n_test
    for x, y in [(ds.x_train, ds.y_train), (ds.x_val, ds.y_val), (ds.x_test, ds.y_test)]:
        assert x.shape[1:] == shape and x.dtype == ds.x_train.dtype
        assert y.shape == (len(x),) and y.dtype == torch.int64
        assert 0 <= y.min() and y.max() < num_classes
    assert set(ds.y_train.tolist()) == set(range(num_classes))


def test_extra_test_splits_and_base_default_to_the_test_set(data_dir):
    """Most datasets have no extra test splits and their base test set is the test set; moving keeps it shared."""
    ds = load_dataset("digits", data_dir=data_dir)
    assert ds.extra_tests == {} and ds.x_base is ds.x_test and ds.y_base is ds.y_test
    moved = ds.to("cpu")
    assert moved.x_base is moved.x_test
    shifted = load_dataset("mnist1d_shift:shift=30", data_dir=data_dir).to("cpu")
    assert set(shifted.extra_tests) == {"acc_unseen", "acc_all"} and shifted.x_base is not shifted.x_test
    assert shifted.x_base.shape == (1000, 1, 40) and torch.equal(shifted.y_base, shifted.y_test)


def test_split_is_fixed_and_independent_of_trial_seed(data_dir):
    torch.manual_seed(1)
    np.random.seed(1)
    first = load_dataset("digits", data_dir=data_dir)
    data._load_registered.cache_clear()
    torch.manual_seed(2)
    np.random.seed(2)
    second = load_dataset("digits", data_dir=data_dir)
    assert first is not second
    assert torch.equal(first.x_val, second.x_val) and torch.equal(first.y_train, second.y_train)
    other = load_dataset("digits", data_dir=data_dir, seed=1)
    assert not torch.equal(first.x_val, other.x_val)
    assert len(load_dataset("digits", data_dir=data_dir, val_fraction=0.25).x_val) == round(0.25 * 1438)


def test_validation_split_is_disjoint_from_training(data_dir):
    ds = load_dataset("mnist1d", data_dir=data_dir)
    train = {row.tobytes() for row in ds.x_train.flatten(1).numpy()}
    assert not any(row.tobytes() in train for row in ds.x_val.flatten(1).numpy())


def test_loads_are_cached(data_dir):
    assert load_dataset("marioiggy", data_dir=data_dir) is load_dataset("marioiggy", data_dir=data_dir)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1])
def test_bad_val_fraction(fraction):
    with pytest.raises(DatasetError, match="val_fraction"):
        load_dataset("digits", val_fraction=fraction)


def test_mnist1d_generation_leaves_global_rngs_alone(tmp_path):
    np.random.seed(5)
    expected = np.random.rand()
    np.random.seed(5)
    ds = load_dataset("mnist1d", data_dir=str(tmp_path))
    assert np.random.rand() == expected
    assert (tmp_path / "mnist1d.npz").is_file()  # cached for the next process
    data._load_registered.cache_clear()
    assert torch.equal(load_dataset("mnist1d", data_dir=str(tmp_path)).x_test, ds.x_test)


def test_shapes_deterministic_by_seed_and_balanced(data_dir):
    a = data._shapes(Path(data_dir), False, seed=3, n_train=100, n_test=20)
    b = data._shapes(Path(data_dir), False, seed=3, n_train=100, n_test=20)
    c = data._shapes(Path(data_dir), False, seed=4, n_train=100, n_test=20)
    assert all(torch.equal(u, v) for u, v in zip(a[:4], b[:4]))  # the arrays; shapes has no extra test splits
    assert not torch.equal(a.x_train, c.x_train)
    counts = load_dataset("shapes", data_dir=data_dir).y_train.bincount()
    assert len(counts) >= 10 and counts.min() > 0.8 * counts.float().mean()


def test_marioiggy_without_rotation_gives_one_image_per_class(data_dir):
    ds = load_dataset("marioiggy:rot=0", data_dir=data_dir)
    x, y = ds.x_train, ds.y_train
    firsts = [x[y == k][0] for k in range(4)]
    for k in range(4):
        assert (x[y == k] == firsts[k]).all()
    for upright, flipped in [(0, 1), (2, 3)]:  # the upside-down class is the upright sprite turned by 180 degrees
        turned = torch.rot90(firsts[upright], 2, dims=(1, 2))
        assert (turned.int() - firsts[flipped].int()).abs().max() <= 1
    assert not torch.equal(firsts[0], firsts[2])


def test_marioiggy_rotation_range(data_dir):
    def spread(rot: int) -> float:  # how much upright mario images differ from each other
        ds = load_dataset(f"marioiggy:rot={rot}", data_dir=data_dir)
        return ds.x_train[ds.y_train == 0][:200].float().std(0).mean().item()

    assert spread(0) == 0
    assert 0 < spread(15) < spread(90)


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("marioiggy:rot=120", r"rot in \[0, 90/modes\] degrees.*got 120"),
        ("marioiggy:rot=40,modes=3", "got 40"),
        ("marioiggy:angle=3", "no option 'angle'"),
        ("shapes:n_train=x", "bad"),
    ],
)
def test_bad_dataset_options(name, match):
    with pytest.raises(DatasetError, match=match):
        load_dataset(name)


def test_unknown_dataset():
    with pytest.raises(DatasetError, match=r"unknown dataset 'nope'; known: mnist1d, .*npz:PATH / folder:PATH"):
        load_dataset("nope")
    assert list_datasets() == list(DATASETS) and set(OFFLINE) <= set(list_datasets())


@pytest.mark.parametrize("name", DOWNLOADABLE)
def test_missing_download_is_a_clear_error(name, tmp_path):
    with pytest.raises(DatasetError, match=r"not in .*--data-dir, or use --quick") as info:
        load_dataset(name, data_dir=str(tmp_path), download=False)
    assert "\n" not in str(info.value)


def test_to_float_and_normalize(data_dir):
    images = load_dataset("digits", data_dir=data_dir)
    x = to_float(images.x_train)
    assert x.dtype == torch.float32 and x.min() >= 0 and x.max() <= 1 and x.max() == 1
    z = normalize(x, images)
    assert z.shape == x.shape
    assert abs(z.mean().item()) < 1e-4 and abs(z.std().item() - 1) < 1e-3
    signals = load_dataset("mnist1d", data_dir=data_dir)
    assert to_float(signals.x_train) is signals.x_train
    assert normalize(signals.x_val[:4], signals).shape == (4, 1, 40)


def test_dataset_to_device(data_dir):
    ds = load_dataset("digits", data_dir=data_dir)
    moved = ds.to("cpu")
    assert isinstance(moved, Dataset) and moved.shape == ds.shape and moved.num_classes == ds.num_classes
    assert torch.equal(moved.x_test, ds.x_test)


# --- custom data -----------------------------------------------------------------------------------------------------


def test_npz_images_nhwc_with_carved_test_split(tmp_path):
    path = tmp_path / "d.npz"
    x = np.random.default_rng(0).integers(0, 256, (50, 8, 8, 3), dtype=np.uint8)
    np.savez(path, x=x, y=np.arange(50) % 5)
    ds = load_dataset(f"npz:{path}")
    assert ds.shape == (3, 8, 8) and ds.kind == "image" and ds.num_classes == 5
    assert (len(ds.x_train), len(ds.x_val), len(ds.x_test)) == (36, 4, 10)
    originals = {row.tobytes() for row in x}
    assert all(row.tobytes() in originals for row in ds.x_test.permute(0, 2, 3, 1).numpy())  # NHWC -> NCHW


def test_npz_signals_with_test_arrays(tmp_path):
    path = tmp_path / "s.npz"
    rng = np.random.default_rng(0)
    np.savez(
        path, x=rng.normal(size=(30, 40)), y=np.arange(30) % 3, x_test=rng.normal(size=(6, 40)), y_test=np.arange(6) % 3
    )
    ds = load_dataset(f"npz:{path}", val_fraction=0.2)
    assert (ds.shape, ds.kind, ds.x_train.dtype) == ((1, 40), "signal", torch.float32)
    assert (len(ds.x_train), len(ds.x_val), len(ds.x_test)) == (24, 6, 6)


@pytest.mark.parametrize(
    ("arrays", "match"),
    [
        ({"x": np.zeros((4, 8, 8), np.uint8)}, "needs arrays x, y"),
        ({"x": np.zeros((4, 3, 8, 8), np.float32), "y": np.zeros(4, np.int64)}, "use uint8 images"),
        ({"x": np.zeros((4, 8, 8), np.uint8), "y": np.zeros(3, np.int64)}, "labels must be 4"),
        ({"x": np.zeros((4, 8, 8), np.uint8), "y": np.zeros(4, np.float32)}, "labels must be"),
        (
            {"x": np.zeros((4, 8, 8), np.uint8), "y": np.zeros(4, np.int64), "x_test": np.zeros((2, 8, 8), np.uint8)},
            "needs arrays x, x_test, y, y_test",
        ),
    ],
)
def test_npz_bad_arrays(tmp_path, arrays, match):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DatasetError, match=match):
        load_dataset(f"npz:{path}")


def test_npz_missing_or_unreadable(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset(f"npz:{tmp_path / 'none.npz'}")
    (tmp_path / "junk.npz").write_text("not a zip")
    with pytest.raises(DatasetError, match="cannot read"):
        load_dataset(f"npz:{tmp_path / 'junk.npz'}")


def _write_images(folder, n, size, colour):
    folder.mkdir(parents=True)
    for i in range(n):
        Image.new("RGB", size, colour).save(folder / f"{i}.png")


def test_folder_with_carved_test_split(tmp_path):
    _write_images(tmp_path / "cat", 10, (12, 10), (255, 0, 0))
    _write_images(tmp_path / "dog", 10, (20, 20), (0, 0, 255))  # other size: resized to the first image's
    ds = load_dataset(f"folder:{tmp_path}")
    assert ds.shape == (3, 10, 12) and ds.num_classes == 2
    assert (len(ds.x_train) + len(ds.x_val), len(ds.x_test)) == (16, 4)
    red = ds.x_train[ds.y_train == 0]
    assert (red[:, 0] == 255).all() and (red[:, 2] == 0).all()


def test_folder_with_train_and_test(tmp_path):
    for split, n in [("train", 6), ("test", 2)]:
        for k, label in enumerate(["a", "b", "c"]):
            folder = tmp_path / split / label
            folder.mkdir(parents=True)
            for i in range(n):
                Image.new("L", (8, 8), 80 * k).save(folder / f"{i}.png")
    ds = load_dataset(f"folder:{tmp_path}", val_fraction=0.5)
    assert ds.shape == (1, 8, 8) and ds.num_classes == 3
    assert (len(ds.x_train), len(ds.x_val), len(ds.x_test)) == (9, 9, 6)
    assert torch.equal(ds.x_test[:, 0, 0, 0].long(), ds.y_test * 80)


def test_folder_errors(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset(f"folder:{tmp_path / 'none'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="one subfolder of images per class"):
        load_dataset(f"folder:{tmp_path / 'empty'}")


# --- torchvision datasets from fake local files ----------------------------------------------------------------------


def test_mnist_from_raw_idx_files(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in [("train", 30), ("t10k", 10)]:
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(struct.pack(">4i", 2051, n, 28, 28) + images.tobytes())
        labels = (np.arange(n) % 10).astype(np.uint8)
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">2i", 2049, n) + labels.tobytes())
    ds = load_dataset("mnist", data_dir=str(tmp_path), download=False)
    assert ds.shape == (1, 28, 28) and ds.x_train.dtype == torch.uint8 and ds.num_classes == 10
    assert (len(ds.x_train), len(ds.x_val), len(ds.x_test)) == (27, 3, 10)
    assert torch.equal(ds.x_test[:, 0], torch.from_numpy(images))


def test_cifar10_from_pickled_batches(tmp_path, monkeypatch):
    # The fake batches cannot match torchvision's md5 sums; only the checksum is bypassed, the parsing is real.
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda path, md5=None: True)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8), "labels": list(range(4))}
        (folder / name).write_bytes(pickle.dumps(batch))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [str(i) for i in range(10)]}))
    ds = load_dataset("cifar10", data_dir=str(tmp_path), download=False)
    assert ds.shape == (3, 32, 32) and (len(ds.x_train) + len(ds.x_val), len(ds.x_test)) == (20, 4)
    assert torch.equal(ds.x_test.flatten(1), torch.from_numpy(batch["data"]))  # CHW order is kept


def _tinyimagenet_tree(root):
    base = root / "tiny-imagenet-200"
    wnids = ["n02", "n01"]
    (base / "val" / "images").mkdir(parents=True)
    (base / "wnids.txt").write_text("\n".join(wnids) + "\n")
    for k, wnid in enumerate(sorted(wnids)):
        (base / "train" / wnid / "images").mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (64, 64), (100 * k, 0, 0)).save(base / "train" / wnid / "images" / f"{wnid}_{i}.JPEG")
    lines = []
    for i, wnid in enumerate(["n01", "n02"]):
        Image.new("L", (64, 64), 200).save(base / "val" / "images" / f"val_{i}.JPEG")  # a grey one, as in the set
        lines.append(f"val_{i}.JPEG\t{wnid}\t0\t0\t10\t10")
    (base / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    return base


@pytest.mark.parametrize("zipped", [False, True])
def test_tinyimagenet_from_folder_or_zip(tmp_path, zipped):
    base = _tinyimagenet_tree(tmp_path / "src")
    root = tmp_path / "data"
    root.mkdir()
    if zipped:
        with zipfile.ZipFile(root / "tiny-imagenet-200.zip", "w") as zf:
            for path in base.rglob("*"):
                zf.write(path, path.relative_to(base.parent).as_posix())
    else:
        base.rename(root / "tiny-imagenet-200")
    ds = load_dataset("tinyimagenet", data_dir=str(root), val_fraction=1 / 6)
    assert ds.shape == (3, 64, 64) and ds.num_classes == 2
    assert (len(ds.x_train), len(ds.x_val)) == (5, 1)
    assert ds.y_test.tolist() == [0, 1]
    assert (ds.x_train[ds.y_train == 1][:, 0].float().mean() - 100).abs() < 5  # JPEG is lossy
    assert (root / "tiny-imagenet-200.npz").is_file()


def test_tinyimagenet_incomplete_archive(tmp_path):
    (tmp_path / "tiny-imagenet-200.zip").write_bytes(b"PK truncated")
    with pytest.raises(DatasetError, match="is incomplete"):
        load_dataset("tinyimagenet", data_dir=str(tmp_path), download=False)
