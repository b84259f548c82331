"""The data stage's entry points: stage a dataset once per study, and the three batch
iterators (train, validation, test) every run trains and evaluates with."""

from __future__ import annotations

import torch

from prunebench.config.run import DataConfig, TrainConfig
from prunebench.data.batches import Batches, Loaders
from prunebench.data.datasets import CACHE_FORMAT, _read_cached, dataset_info, load_splits
from prunebench.data.imagenet import _imagenet_loaders


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
