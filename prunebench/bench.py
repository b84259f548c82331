"""Training-throughput benchmark: the engine's in-memory pipeline vs a plain torchvision loop.

Both train the same model (LeNet-5 by default) on the same dataset with the same batch size,
optimizer and threads, in one process. The plain loop is what most pruning code does: a
torchvision dataset with per-sample PIL transforms and a DataLoader.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torchvision import datasets, transforms

from prunebench import surgery
from prunebench.config import Config
from prunebench.data import dataset_info, make_loaders
from prunebench.training import make_optimizer, seeded_generator


@dataclass
class BenchResult:
    engine_img_s: float
    plain_img_s: float

    @property
    def ratio(self) -> float:
        return self.engine_img_s / self.plain_img_s


def _fresh_model(cfg: Config) -> torch.nn.Module:
    info = dataset_info(cfg.data)
    torch.manual_seed(cfg.seed)
    return surgery.instantiate(
        surgery.dense_architecture(cfg.model.name, info.num_classes, info.in_channels, info.image_size)
    )


def bench_epoch(cfg: Config, max_batches: int | None = None) -> BenchResult:
    """Images per second of one training epoch (or its first ``max_batches``) both ways."""
    if cfg.data.dataset not in ("mnist", "fashion_mnist"):
        raise ValueError("the plain-loop baseline is written for mnist and fashion_mnist")
    device = torch.device("cpu")
    # Same model, memory layout, batch, optimizer and threads on both sides: only the data
    # pipeline differs.
    train_cfg = dataclasses.replace(cfg.train, channels_last=False)
    loaders = make_loaders(cfg.data, train_cfg, device)
    pad = loaders.train.crop_padding

    def run(batches) -> float:
        model = _fresh_model(cfg).train()
        opt = make_optimizer(model, cfg.train, cfg.train.lr)
        seen, start = 0, time.perf_counter()
        for i, (x, y) in enumerate(batches):
            if max_batches is not None and i >= max_batches:
                break
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            seen += len(y)
        return seen / (time.perf_counter() - start)

    engine = run(loaders.train.epoch(seeded_generator(cfg.seed, "bench")))

    folder_cls = datasets.MNIST if cfg.data.dataset == "mnist" else datasets.FashionMNIST
    tfs = [transforms.RandomCrop(28, padding=pad)] if pad else []
    if loaders.train.hflip:
        tfs.append(transforms.RandomHorizontalFlip())
    tfs += [
        transforms.ToTensor(),
        transforms.Normalize(loaders.train.mean.flatten().tolist(), loaders.train.std.flatten().tolist()),
    ]
    plain_set = folder_cls(str(cfg.data.resolved_root()), train=True, download=False, transform=transforms.Compose(tfs))
    plain_set = torch.utils.data.Subset(plain_set, range(loaders.train.num_samples))
    loader = torch.utils.data.DataLoader(plain_set, batch_size=cfg.train.batch_size, shuffle=True, num_workers=0)
    plain = run(loader)
    return BenchResult(engine, plain)
