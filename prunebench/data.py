"""Datasets by name, decoded once into uint8 tensors, and batch-level augmentation.

Small datasets (MNIST, Fashion-MNIST, CIFAR-10, cifar10_jpeg, Tiny-ImageNet, synthetic) are read
with torchvision's real loaders once, cached on disk as uint8 tensors, and served from memory:
shuffling, padding + random crop, horizontal flip and normalisation run on whole batches as
tensor ops. ImageNet is too large for that and streams through a DataLoader instead.

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
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from prunebench.config import DataConfig, TrainConfig
from prunebench.errors import ConfigError, DamagedFileError, DataNotFoundError
from prunebench.io import atomic_torch_save, load_torch

if TYPE_CHECKING:
    from torchvision import datasets

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


def load_splits(cfg: DataConfig) -> Splits:
    """Train / validation / test splits of ``cfg.dataset`` as uint8 tensors."""
    info = dataset_info(cfg)
    train, test = _read_cached(cfg)
    train_idx, val_idx = _carve(cfg, len(train))
    if cfg.test_subset is not None:
        test = Split(test.x[: cfg.test_subset], test.y[: cfg.test_subset])
    train_split = Split(train.x[train_idx], train.y[train_idx])
    pixels = train_split.x.float().div_(255)
    mean = pixels.mean(dim=(0, 2, 3))
    std = pixels.std(dim=(0, 2, 3)).clamp_min(1e-3)
    return Splits(info, train_split, Split(train.x[val_idx], train.y[val_idx]), test, mean, std)


# ---------------------------------------------------------------------------------------------
# Batches


def random_crop(x: torch.Tensor, padding: int, gen: torch.Generator) -> torch.Tensor:
    """Zero-pad by ``padding`` and crop back to size at a random offset per image."""
    b, c, h, w = x.shape
    padded = F.pad(x, (padding,) * 4)
    oy = torch.randint(0, 2 * padding + 1, (b,), generator=gen).to(x.device)
    ox = torch.randint(0, 2 * padding + 1, (b,), generator=gen).to(x.device)
    rows = (oy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (ox[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
    batch = torch.arange(b, device=x.device)[:, None, None, None]
    chans = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[batch, chans, rows, cols]


def random_hflip(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    flip = (torch.rand(x.shape[0], generator=gen) < 0.5).to(x.device)[:, None, None, None]
    return torch.where(flip, x.flip(3), x)


class Batches:
    """Iterates (images, labels) of a split in batches; float normalised images on ``device``."""

    def __init__(
        self,
        split: Split,
        mean: torch.Tensor,
        std: torch.Tensor,
        batch_size: int,
        device: torch.device,
        crop_padding: int = 0,
        hflip: bool = False,
        channels_last: bool = False,
    ) -> None:
        self.x = split.x.to(device)
        self.y = split.y.to(device)
        self.mean = mean.to(device)[None, :, None, None]
        self.std = std.to(device)[None, :, None, None]
        self.batch_size = batch_size
        self.crop_padding = crop_padding
        self.hflip = hflip
        self.channels_last = channels_last

    def __len__(self) -> int:
        return -(-len(self.y) // self.batch_size)

    @property
    def num_samples(self) -> int:
        return len(self.y)

    def _prepare(self, idx: torch.Tensor, gen: torch.Generator | None) -> torch.Tensor:
        xb = self.x[idx].float().div_(255)
        if gen is not None:
            if self.crop_padding:
                xb = random_crop(xb, self.crop_padding, gen)
            if self.hflip:
                xb = random_hflip(xb, gen)
        xb = (xb - self.mean) / self.std
        return xb.contiguous(memory_format=torch.channels_last) if self.channels_last else xb

    def epoch(self, gen: torch.Generator | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One pass. With a generator: shuffled and augmented; without: in order, unaugmented."""
        n = len(self.y)
        order = (
            torch.randperm(n, generator=gen).to(self.y.device)
            if gen is not None
            else torch.arange(n, device=self.y.device)
        )
        for start in range(0, n, self.batch_size):
            idx = order[start : start + self.batch_size]
            yield self._prepare(idx, gen), self.y[idx]

    def sample(self, n: int, gen: torch.Generator) -> torch.Tensor:
        """``n`` random training images, normalised, unaugmented (for attention scoring)."""
        idx = torch.randperm(len(self.y), generator=gen)[:n].to(self.y.device)
        return self._prepare(idx, None)


class _Transformed(torch.utils.data.Dataset):
    """An already scanned ImageFolder seen through a transform (scanning ImageNet takes minutes,
    so it happens once per split, not once per view)."""

    def __init__(self, folder: datasets.ImageFolder, transform) -> None:
        self.folder, self.transform = folder, transform

    def __len__(self) -> int:
        return len(self.folder)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        path, label = self.folder.samples[i]
        return self.transform(self.folder.loader(path)), label


class FolderBatches:
    """ImageNet-scale data, too large for memory: an ImageFolder streamed through a DataLoader
    with the standard per-sample transforms (RandomResizedCrop + flip; Resize + CenterCrop).
    Same interface as ``Batches``."""

    MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)

    def __init__(
        self,
        folder: datasets.ImageFolder,
        indices: torch.Tensor,
        train: bool,
        image_size: int,
        hflip: bool,
        batch_size: int,
        device: torch.device,
        workers: int,
        channels_last: bool,
    ) -> None:
        from torchvision import transforms

        norm = [transforms.ToTensor(), transforms.Normalize(self.MEAN, self.STD)]
        evaluation = transforms.Compose(
            [transforms.Resize(image_size * 256 // 224), transforms.CenterCrop(image_size), *norm]
        )
        if train:
            flip = [transforms.RandomHorizontalFlip()] if hflip else []
            self.data = _Transformed(
                folder, transforms.Compose([transforms.RandomResizedCrop(image_size), *flip, *norm])
            )
        else:
            self.data = _Transformed(folder, evaluation)
        self.eval_data = _Transformed(folder, evaluation)
        self.indices = indices
        self.train = train
        self.batch_size = batch_size
        self.device = device
        self.workers = workers
        self.channels_last = channels_last

    def __len__(self) -> int:
        return -(-len(self.indices) // self.batch_size)

    @property
    def num_samples(self) -> int:
        return len(self.indices)

    def _stream(
        self, data: _Transformed, indices: torch.Tensor, batch_size: int, workers: int, gen: torch.Generator | None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        subset = torch.utils.data.Subset(data, indices.tolist())
        seed = int(torch.randint(2**62, (1,), generator=gen)) if gen is not None else 0
        if workers == 0:
            torch.manual_seed(seed)  # the transforms draw from the global generator in-process
        loader = torch.utils.data.DataLoader(
            subset,
            batch_size=batch_size,
            num_workers=workers,
            pin_memory=self.device.type == "cuda",
            generator=torch.Generator().manual_seed(seed),
        )
        for x, y in loader:
            x = x.to(self.device, non_blocking=True)
            yield (x.contiguous(memory_format=torch.channels_last) if self.channels_last else x), y.to(self.device)

    def epoch(self, gen: torch.Generator | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = self.indices[torch.randperm(len(self.indices), generator=gen)] if gen is not None else self.indices
        return self._stream(self.data, order, self.batch_size, self.workers, gen if self.train else None)

    def sample(self, n: int, gen: torch.Generator) -> torch.Tensor:
        """``n`` random images with the evaluation transforms (for attention scoring)."""
        pick = self.indices[torch.randperm(len(self.indices), generator=gen)[:n]]
        return next(self._stream(self.eval_data, pick, n, 0, None))[0]


@dataclass
class Loaders:
    train: Batches | FolderBatches
    val: Batches | FolderBatches
    test: Batches | FolderBatches


def _imagenet_loaders(cfg: DataConfig, train: TrainConfig, device: torch.device) -> Loaders:
    from torchvision import datasets  # imported when needed: it costs a job ~2 s

    base = cfg.resolved_root() / "imagenet"
    if not (base / "train").is_dir() or not (base / "val").is_dir():
        raise DataNotFoundError(
            f"imagenet: expected ImageFolder directories {base}/train and {base}/val (val arranged in class "
            "folders). Set data.root or PRUNEBENCH_DATA to the directory holding imagenet/."
        )
    size = DATASETS["imagenet"].image_size
    hflip = DATASETS["imagenet"].hflip if cfg.hflip is None else cfg.hflip
    folder = datasets.ImageFolder(str(base / "train"))
    test_folder = datasets.ImageFolder(str(base / "val"))
    train_idx, val_idx = _carve(cfg, len(folder))
    n_test = len(test_folder) if cfg.test_subset is None else min(cfg.test_subset, len(test_folder))

    def make(f: datasets.ImageFolder, idx: torch.Tensor, is_train: bool, bs: int) -> FolderBatches:
        return FolderBatches(f, idx, is_train, size, hflip, bs, device, cfg.workers, train.channels_last)

    return Loaders(
        make(folder, train_idx, True, train.batch_size),
        make(folder, val_idx, False, train.eval_batch_size),
        make(test_folder, torch.arange(n_test), False, train.eval_batch_size),
    )


def prepare_data(cfg: DataConfig) -> dict[str, int | str]:
    """Make ``cfg.dataset`` ready for every run (download or stage from the mirror, build the
    tensor cache; ImageNet: check its folders) and describe it. A study does this once, before
    its jobs, so parallel jobs never stage the same files at the same time."""
    info = dataset_info(cfg)
    if cfg.dataset == "imagenet":
        loaders = _imagenet_loaders(cfg, TrainConfig(), torch.device("cpu"))
        n_train, n_test = len(loaders.train.indices) + len(loaders.val.indices), len(loaders.test.indices)
    else:
        train, test = _read_cached(cfg)
        n_train, n_test = len(train), len(test)
    return {
        "dataset": info.name,
        "format": CACHE_FORMAT,
        "classes": info.num_classes,
        "channels": info.in_channels,
        "image_size": info.image_size,
        "train_images": n_train,
        "test_images": n_test,
    }


def make_loaders(cfg: DataConfig, train: TrainConfig, device: torch.device) -> Loaders:
    """Train (shuffled, augmented), validation and test batches of ``cfg.dataset``."""
    if cfg.dataset == "imagenet":
        return _imagenet_loaders(cfg, train, device)
    splits = load_splits(cfg)
    info = splits.info
    pad = info.crop_padding if cfg.crop_padding is None else cfg.crop_padding
    flip = info.hflip if cfg.hflip is None else cfg.hflip
    return Loaders(
        Batches(splits.train, splits.mean, splits.std, train.batch_size, device, pad, flip, train.channels_last),
        Batches(splits.val, splits.mean, splits.std, train.eval_batch_size, device, channels_last=train.channels_last),
        Batches(splits.test, splits.mean, splits.std, train.eval_batch_size, device, channels_last=train.channels_last),
    )
