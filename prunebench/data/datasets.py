"""Datasets by name, read once with torchvision's real loaders and cached as uint8 tensors.

Where data comes from: ``data.root`` (env ``PRUNEBENCH_DATA``) is where datasets live and are
downloaded to; ``data.mirror`` (env ``PRUNEBENCH_MIRROR``) is an optional read-only offline copy
in torchvision's layouts, staged into the root when present. The validation split is carved
from the training set with ``data.split_seed``; the test set is only ever reported.
"""

from __future__ import annotations

import gzip
import logging
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from prunebench.config.run import DataConfig
from prunebench.errors import ConfigError, DamagedFileError, DataNotFoundError
from prunebench.io import atomic_torch_save, load_torch

log = logging.getLogger("prunebench")

_MNIST_FILES = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
]


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    num_classes: int
    in_channels: int
    image_size: int
    crop_padding: int  # default augmentation
    hflip: bool


DATASETS: dict[str, DatasetInfo] = {
    "synthetic": DatasetInfo("synthetic", 10, 3, 32, 4, True),
    "mnist": DatasetInfo("mnist", 10, 1, 28, 2, False),
    "fashion_mnist": DatasetInfo("fashion_mnist", 10, 1, 28, 2, True),
    "cifar10": DatasetInfo("cifar10", 10, 3, 32, 4, True),
    "cifar10_jpeg": DatasetInfo("cifar10_jpeg", 10, 3, 32, 4, True),
    "tiny_imagenet": DatasetInfo("tiny_imagenet", 200, 3, 64, 8, True),
    "imagenet": DatasetInfo("imagenet", 1000, 3, 224, 0, True),  # streamed; crops are RandomResizedCrop
}


def dataset_info(cfg: DataConfig) -> DatasetInfo:
    if cfg.dataset not in DATASETS:
        raise ConfigError(f"unknown dataset {cfg.dataset!r}; choose one of: {', '.join(DATASETS)}")
    info = DATASETS[cfg.dataset]
    if cfg.dataset == "synthetic":
        s = cfg.synthetic
        info = DatasetInfo("synthetic", s.classes, s.channels, s.size, info.crop_padding, info.hflip)
    return info


@dataclass
class Split:
    x: torch.Tensor  # uint8 [N, C, H, W]
    y: torch.Tensor  # int64 [N]

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class Splits:
    info: DatasetInfo
    train: Split
    val: Split
    test: Split
    mean: torch.Tensor  # per channel, of the training split, in [0, 1] units
    std: torch.Tensor


# ---------------------------------------------------------------------------------------------
# Reading raw datasets


def _stage_mnist(root: Path, mirror: Path | None, folder: str) -> None:
    raw = root / folder / "raw"
    if all((raw / f).exists() for f in _MNIST_FILES) or mirror is None:
        return
    src = mirror / folder / "raw"
    if not src.is_dir():
        return
    raw.mkdir(parents=True, exist_ok=True)
    for f in _MNIST_FILES:
        if (src / f).exists():
            shutil.copyfile(src / f, raw / f)
        elif (src / f"{f}.gz").exists():
            with gzip.open(src / f"{f}.gz", "rb") as fin, open(raw / f, "wb") as fout:
                shutil.copyfileobj(fin, fout)


def _read_mnist(cfg: DataConfig, root: Path, mirror: Path | None) -> tuple[Split, Split]:
    from torchvision import datasets  # imported when needed: it costs a job ~2 s

    cls, folder = (datasets.MNIST, "MNIST") if cfg.dataset == "mnist" else (datasets.FashionMNIST, "FashionMNIST")
    _stage_mnist(root, mirror, folder)
    try:
        parts = [cls(str(root), train=t, download=cfg.download) for t in (True, False)]
    except (RuntimeError, OSError) as e:
        raise DataNotFoundError(
            f"{folder} not found under {root / folder / 'raw'} and could not be downloaded ({e}). Put the four "
            f"idx files (.gz or extracted) in <mirror>/{folder}/raw and set data.mirror or PRUNEBENCH_MIRROR, "
            f"or run where torchvision can download."
        ) from e
    return tuple(Split(d.data.unsqueeze(1).clone(), d.targets.clone().long()) for d in parts)  # type: ignore[return-value]


def _read_cifar10(cfg: DataConfig, root: Path, mirror: Path | None) -> tuple[Split, Split]:
    from torchvision import datasets  # imported when needed: it costs a job ~2 s

    archive = "cifar-10-python.tar.gz"
    if mirror is not None and (mirror / archive).exists() and not (root / archive).exists():
        root.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(mirror / archive, root / archive)
    try:
        parts = [datasets.CIFAR10(str(root), train=t, download=cfg.download) for t in (True, False)]
    except (RuntimeError, OSError) as e:
        raise DataNotFoundError(
            f"CIFAR-10 not found under {root} and could not be downloaded ({e}). Put {archive} in the data root "
            f"or the mirror, or use dataset cifar10_jpeg with the JPEG mirror."
        ) from e
    return tuple(  # type: ignore[return-value]
        Split(torch.from_numpy(d.data).permute(0, 3, 1, 2).contiguous(), torch.tensor(d.targets)) for d in parts
    )


def _decode_folder(path: Path, size: int) -> Split:
    from torchvision import datasets  # imported when needed: it costs a job ~2 s

    folder = datasets.ImageFolder(str(path))
    x = torch.empty(len(folder), 3, size, size, dtype=torch.uint8)
    for i, (file, _) in enumerate(tqdm(folder.samples, desc=f"decoding {path.name}", unit="img", leave=False)):
        with Image.open(file) as img:
            img = img.convert("RGB")
            if img.size != (size, size):
                img = img.resize((size, size), Image.BILINEAR)
            x[i] = torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1)
    return Split(x, torch.tensor(folder.targets))


def _image_folder_pair(cfg: DataConfig, base: Path, test_dir: str, size: int, hint: str) -> tuple[Split, Split]:
    if not (base / "train").is_dir() or not (base / test_dir).is_dir():
        raise DataNotFoundError(
            f"{cfg.dataset}: expected ImageFolder directories {base}/train and {base}/{test_dir}. {hint}"
        )
    return _decode_folder(base / "train", size), _decode_folder(base / test_dir, size)


def _read_cifar10_jpeg(cfg: DataConfig, root: Path, mirror: Path | None) -> tuple[Split, Split]:
    base = root / "cifar10-jpeg"
    archive = "cifar10-jpeg.tar.gz"
    if not (base / "train").is_dir():
        source = next((d / archive for d in (mirror, root) if d is not None and (d / archive).exists()), None)
        if source is not None:
            base.mkdir(parents=True, exist_ok=True)
            with tarfile.open(source) as tar:
                tar.extractall(base, filter="data")
    return _image_folder_pair(cfg, base, "test", 32, f"Put {archive} in the mirror (data.mirror / PRUNEBENCH_MIRROR).")


def _read_tiny_imagenet(cfg: DataConfig, root: Path, mirror: Path | None) -> tuple[Split, Split]:
    return _image_folder_pair(
        cfg,
        root / "tiny-imagenet-200",
        "val",
        64,
        "Rearrange the official val/ images into val/<wnid>/ folders (ImageFolder layout).",
    )


def _synthetic(cfg: DataConfig) -> tuple[Split, Split]:
    """Learnable images: one smooth random prototype per class, plus noise and a random shift."""
    s = cfg.synthetic
    gen = torch.Generator().manual_seed(1234)
    low = torch.rand(s.classes, s.channels, 4, 4, generator=gen)
    protos = F.interpolate(low, size=(s.size, s.size), mode="bilinear", align_corners=False)

    def make(n: int) -> Split:
        y = torch.randint(0, s.classes, (n,), generator=gen)
        x = protos[y] + 0.35 * torch.randn(n, s.channels, s.size, s.size, generator=gen)
        return Split((x.clamp(0, 1) * 255).round().byte(), y)

    return make(s.train), make(s.test)


_READERS = {
    "mnist": _read_mnist,
    "fashion_mnist": _read_mnist,
    "cifar10": _read_cifar10,
    "cifar10_jpeg": _read_cifar10_jpeg,
    "tiny_imagenet": _read_tiny_imagenet,
}


# The tensor cache of a dataset is keyed by its name and this version of the readers above: a
# cache built by other readers (a changed decoding or staging) is built again, and in a study
# the data job (whose params name the format) reruns, and every job after it. A dataset's
# source files are fixed releases; one replaced in place needs its cache file deleted.
CACHE_FORMAT = "prunebench-data/2"


def _read_cached(cfg: DataConfig) -> tuple[Split, Split]:
    if cfg.dataset == "synthetic":
        return _synthetic(cfg)
    if cfg.dataset == "imagenet":
        raise ConfigError("imagenet is too large to cache in memory: it streams through make_loaders()")
    root = cfg.resolved_root()
    mirror = cfg.resolved_mirror()
    cache = root / "prunebench-cache" / f"{cfg.dataset}.pt"
    if cache.exists():
        try:
            blob = load_torch(cache)
            if blob.get("format") != CACHE_FORMAT:
                raise DamagedFileError(f"{cache} was built by other dataset readers ({blob.get('format')!r})")
            return Split(blob["train_x"], blob["train_y"]), Split(blob["test_x"], blob["test_y"])
        except DamagedFileError as e:  # a cache: rebuilt from the dataset
            log.warning("%s; building the cache again", e)
    train, test = _READERS[cfg.dataset](cfg, root, mirror)
    record = {"format": CACHE_FORMAT, "train_x": train.x, "train_y": train.y, "test_x": test.x, "test_y": test.y}
    atomic_torch_save(record, cache)
    return train, test


def _carve(cfg: DataConfig, n_train: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(train indices, validation indices) of the training set, seeded by ``split_seed``."""
    if not 0 < cfg.val_size < n_train:
        raise ConfigError(f"data.val_size must be between 1 and {n_train - 1} for {cfg.dataset}, got {cfg.val_size}")
    perm = torch.randperm(n_train, generator=torch.Generator().manual_seed(cfg.split_seed))
    val_idx, train_idx = perm[: cfg.val_size], perm[cfg.val_size :]
    if cfg.train_subset is not None:
        train_idx = train_idx[: cfg.train_subset]
    return train_idx, val_idx


def evaluation_indices(cfg: DataConfig, n_test: int) -> torch.Tensor:
    """The test images evaluated: all, or ``test_subset`` of them drawn at random (seeded by
    ``split_seed``, kept in file order). Not the first N: test sets stored class by class (the
    offline CIFAR-10 mirror, ImageFolder trees) would leave a subset of one or two classes."""
    if cfg.test_subset is None or cfg.test_subset >= n_test:
        return torch.arange(n_test)
    perm = torch.randperm(n_test, generator=torch.Generator().manual_seed(cfg.split_seed))
    return perm[: cfg.test_subset].sort().values


def load_splits(cfg: DataConfig) -> Splits:
    """Train / validation / test splits of ``cfg.dataset`` as uint8 tensors."""
    info = dataset_info(cfg)
    train, test = _read_cached(cfg)
    train_idx, val_idx = _carve(cfg, len(train))
    if cfg.test_subset is not None:
        idx = evaluation_indices(cfg, len(test))
        test = Split(test.x[idx], test.y[idx])
    train_split = Split(train.x[train_idx], train.y[train_idx])
    pixels = train_split.x.float().div_(255)
    mean = pixels.mean(dim=(0, 2, 3))
    std = pixels.std(dim=(0, 2, 3)).clamp_min(1e-3)
    return Splits(info, train_split, Split(train.x[val_idx], train.y[val_idx]), test, mean, std)
