import gzip
import logging
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from prunebench.config.run import config_from_dict
from prunebench.data.batches import Batches, random_crop, random_hflip
from prunebench.data.datasets import CACHE_FORMAT, load_splits
from prunebench.errors import DataNotFoundError
from prunebench.io import atomic_torch_save, load_torch


def _idx(array: np.ndarray) -> bytes:
    """An IDX file, the format of MNIST's files."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def test_synthetic_splits_are_seeded_and_disjoint():
    raw = {"dataset": "synthetic", "val_size": 100, "synthetic": {"train": 400, "test": 50}}
    a = load_splits(config_from_dict({"data": raw}).data)
    b = load_splits(config_from_dict({"data": raw}).data)
    assert len(a.train) == 300 and len(a.val) == 100 and len(a.test) == 50
    assert torch.equal(a.val.x, b.val.x) and a.train.x.dtype == torch.uint8
    c = load_splits(config_from_dict({"data": {**raw, "split_seed": 1}}).data)
    assert not torch.equal(a.val.x, c.val.x)


def test_fashion_mnist_from_a_mirror_through_torchvision(tmp_path, caplog):
    mirror = tmp_path / "mirror" / "FashionMNIST" / "raw"
    mirror.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 30), ("t10k", 10)):
        for kind, arr in (
            ("images-idx3-ubyte", rng.integers(0, 255, (n, 28, 28))),
            ("labels-idx1-ubyte", rng.integers(0, 10, n)),
        ):
            (mirror / f"{prefix}-{kind}.gz").write_bytes(gzip.compress(_idx(arr)))
    cfg = config_from_dict(
        {"data": {"dataset": "fashion_mnist", "mirror": str(tmp_path / "mirror"), "val_size": 5, "download": False}}
    )
    splits = load_splits(cfg.data)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (25, 5, 10)
    assert splits.train.x.shape[1:] == (1, 28, 28)
    # The decoded tensors are cached: the mirror is no longer needed.
    cfg2 = config_from_dict({"data": {"dataset": "fashion_mnist", "val_size": 5, "download": False}})
    assert torch.equal(load_splits(cfg2.data).test.x, splits.test.x)
    # A damaged cache is never used: it is rebuilt from the dataset.
    cache = next((tmp_path / "data" / "prunebench-cache").glob("fashion_mnist*.pt"))
    data = bytearray(cache.read_bytes())
    data[len(data) // 2] ^= 0xFF
    cache.write_bytes(bytes(data))
    assert torch.equal(load_splits(cfg.data).test.x, splits.test.x)
    assert torch.equal(load_splits(cfg2.data).test.x, splits.test.x)  # and the rebuilt cache is intact
    # A cache built by other readers (another CACHE_FORMAT) is built again, with a warning.
    blob = load_torch(cache)
    atomic_torch_save({**blob, "format": "prunebench-data/0", "test_x": blob["test_x"] * 0}, cache)
    with caplog.at_level(logging.WARNING, logger="prunebench"):
        assert torch.equal(load_splits(cfg.data).test.x, splits.test.x)
    assert "built by other dataset readers" in caplog.text
    assert load_torch(cache)["format"] == CACHE_FORMAT


def test_cifar10_jpeg_from_the_mirror_archive(tmp_path):
    src = tmp_path / "src"
    for split, n in (("train", 6), ("test", 2)):
        for cls in ("airplane", "cat"):
            d = src / split / cls
            d.mkdir(parents=True)
            for i in range(n):
                Image.fromarray(np.full((32, 32, 3), 40 * i, np.uint8)).save(d / f"{i:04d}.jpg")
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    with tarfile.open(mirror / "cifar10-jpeg.tar.gz", "w:gz") as tar:
        tar.add(src / "train", "train")
        tar.add(src / "test", "test")
    cfg = config_from_dict({"data": {"dataset": "cifar10_jpeg", "mirror": str(mirror), "val_size": 2}})
    splits = load_splits(cfg.data)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (10, 2, 4)
    assert sorted(splits.test.y.tolist()) == [0, 0, 1, 1]


def test_a_test_subset_of_a_class_sorted_test_set_draws_every_class():
    # The CIFAR-10 mirror and ImageFolder trees store the test set class by class: the first
    # 2,000 of its 10,000 images are airplanes and automobiles only.
    from prunebench.data.datasets import evaluation_indices

    cfg = config_from_dict({"data": {"dataset": "cifar10_jpeg", "test_subset": 2000}}).data
    labels = torch.arange(10).repeat_interleave(1000)
    idx = evaluation_indices(cfg, len(labels))
    assert len(idx) == 2000 and len(idx.unique()) == 2000 and torch.equal(idx, idx.sort().values)
    assert torch.bincount(labels[idx], minlength=10).min() > 150
    assert torch.equal(idx, evaluation_indices(cfg, len(labels)))  # one fixed draw for every run
    assert torch.equal(evaluation_indices(config_from_dict({"data": {}}).data, 7), torch.arange(7))


def test_missing_data_names_what_to_put_where():
    cfg = config_from_dict({"data": {"dataset": "fashion_mnist", "download": False}})
    with pytest.raises(DataNotFoundError, match=r"FashionMNIST/raw.*PRUNEBENCH_MIRROR"):
        load_splits(cfg.data)
    with pytest.raises(DataNotFoundError, match="cifar10-jpeg.tar.gz"):
        load_splits(config_from_dict({"data": {"dataset": "cifar10_jpeg"}}).data)


def test_random_crop_is_a_shifted_window_of_the_padded_image():
    x = torch.arange(2 * 3 * 5 * 5, dtype=torch.float32).view(2, 3, 5, 5)
    gen = torch.Generator().manual_seed(3)
    out = random_crop(x, 2, torch.Generator().manual_seed(3))
    oy = torch.randint(0, 5, (2,), generator=gen)
    ox = torch.randint(0, 5, (2,), generator=gen)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for b in range(2):
        torch.testing.assert_close(out[b], padded[b, :, oy[b] : oy[b] + 5, ox[b] : ox[b] + 5])
    torch.testing.assert_close(random_crop(x, 0, gen), x)


def test_hflip_flips_some_images_entirely():
    x = torch.randn(64, 1, 4, 4)
    out = random_hflip(x, torch.Generator().manual_seed(0))
    flipped = [torch.equal(out[i], x[i].flip(2)) for i in range(64)]
    kept = [torch.equal(out[i], x[i]) for i in range(64)]
    assert all(f or k for f, k in zip(flipped, kept, strict=True)) and 10 < sum(flipped) < 54


def test_batches_cover_the_split_once_per_epoch():
    raw = {"dataset": "synthetic", "val_size": 100, "synthetic": {"train": 350, "test": 50}}
    splits = load_splits(config_from_dict({"data": raw}).data)
    batches = Batches(splits.train, splits.mean, splits.std, 64, torch.device("cpu"), 4, True)
    labels = torch.cat([y for _, y in batches.epoch(torch.Generator().manual_seed(0))])
    assert len(batches) == 4 and sorted(labels.tolist()) == sorted(splits.train.y.tolist())


def test_imagenet_streams_from_an_image_folder(tmp_path, monkeypatch):
    from prunebench.data.loaders import make_loaders

    root = tmp_path / "data"
    for split, n in (("train", 5), ("val", 2)):
        for cls in ("n01", "n02"):
            d = root / "imagenet" / split / cls
            d.mkdir(parents=True)
            for i in range(n):
                Image.fromarray(np.full((40, 50, 3), 30 * i, np.uint8)).save(d / f"{i}.JPEG")
    cfg = config_from_dict(
        {
            "data": {"dataset": "imagenet", "root": str(root), "val_size": 2, "workers": 0},
            "train": {"batch_size": 4, "eval_batch_size": 3},
        }
    )
    loaders = make_loaders(cfg.data, cfg.train, torch.device("cpu"))
    assert (loaders.train.num_samples, loaders.val.num_samples, loaders.test.num_samples) == (8, 2, 4)
    a = [x for x, _ in loaders.train.epoch(torch.Generator().manual_seed(1))]
    b = [x for x, _ in loaders.train.epoch(torch.Generator().manual_seed(1))]
    assert [x.shape for x in a] == [(4, 3, 224, 224)] * 2
    assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True))  # augmentation is seeded
    x, y = loaders.train.sample(3, torch.Generator())
    assert x.shape == (3, 3, 224, 224) and y.shape == (3,)
    labels = torch.cat([y for _, y in loaders.test.epoch()])
    assert sorted(labels.tolist()) == [0, 0, 1, 1]


def test_missing_imagenet_says_where_it_is_expected(tmp_path):
    from prunebench.data.loaders import make_loaders

    cfg = config_from_dict({"data": {"dataset": "imagenet", "root": str(tmp_path)}})
    with pytest.raises(DataNotFoundError, match=r"imagenet/train"):
        make_loaders(cfg.data, cfg.train, torch.device("cpu"))
