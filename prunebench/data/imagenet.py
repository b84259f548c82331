"""ImageNet-scale data, too large for memory: ImageFolders streamed through a DataLoader."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import torch

from prunebench.config.run import DataConfig, TrainConfig
from prunebench.data.batches import Loaders
from prunebench.data.datasets import DATASETS, _carve, evaluation_indices
from prunebench.errors import DataNotFoundError

if TYPE_CHECKING:
    from torchvision import datasets


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

    def sample(self, n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` random images with the evaluation transforms, and their labels (for scoring)."""
        pick = self.indices[torch.randperm(len(self.indices), generator=gen)[:n]]
        return next(self._stream(self.eval_data, pick, n, 0, None))


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

    def make(f: datasets.ImageFolder, idx: torch.Tensor, is_train: bool, bs: int) -> FolderBatches:
        return FolderBatches(f, idx, is_train, size, hflip, bs, device, cfg.workers, train.channels_last)

    return Loaders(
        make(folder, train_idx, True, train.batch_size),
        make(folder, val_idx, False, train.eval_batch_size),
        make(test_folder, evaluation_indices(cfg, len(test_folder)), False, train.eval_batch_size),
    )
