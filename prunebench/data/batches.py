"""In-memory batches of a split: shuffling, padding + random crop, horizontal flip and
normalisation run on whole batches as tensor ops (no per-image Python)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from prunebench.data.datasets import Split

if TYPE_CHECKING:
    from prunebench.data.imagenet import FolderBatches


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

    def sample(self, n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` random training images, normalised, unaugmented, and their labels (for scoring)."""
        idx = torch.randperm(len(self.y), generator=gen)[:n].to(self.y.device)
        return self._prepare(idx, None), self.y[idx]


@dataclass
class Loaders:
    train: Batches | FolderBatches
    val: Batches | FolderBatches
    test: Batches | FolderBatches
