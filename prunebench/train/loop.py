"""SGD training and evaluation, resumable epoch by epoch and deterministic per (seed, phase, epoch)."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from prunebench.config.run import TrainConfig
from prunebench.data.batches import Batches
from prunebench.errors import DamagedFileError, TrainingDivergedError
from prunebench.io import atomic_torch_save, load_torch

log = logging.getLogger("prunebench")

ExtraLoss = Callable[[nn.Module, torch.Tensor, torch.Tensor], "torch.Tensor | None"]


def stable_seed(*key: object) -> int:
    """A seed from a stable hash of ``key`` (Python's hash() is salted per process)."""
    return int(hashlib.sha256("/".join(map(str, key)).encode()).hexdigest()[:15], 16)


def seeded_generator(*key: object) -> torch.Generator:
    """A CPU generator seeded by ``stable_seed(*key)``."""
    return torch.Generator().manual_seed(stable_seed(*key))


def autocast(x: torch.Tensor, precision: str) -> torch.autocast:
    """The autocast context of ``train.precision`` on the device of ``x`` (disabled for fp32)."""
    return torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


@torch.no_grad()
def evaluate(model: nn.Module, batches: Batches, precision: str = "fp32") -> float:
    """Top-1 accuracy in percent."""
    model.eval()
    correct = 0
    for x, y in batches.epoch():
        with autocast(x, precision):
            correct += int((model(x).argmax(1) == y).sum())
    return 100.0 * correct / batches.num_samples


def make_optimizer(model: nn.Module, cfg: TrainConfig, lr: float) -> torch.optim.Optimizer:
    return torch.optim.SGD(
        model.parameters(),
        lr=lr,
        momentum=cfg.momentum,
        nesterov=cfg.nesterov and cfg.momentum > 0,
        weight_decay=cfg.weight_decay,
    )


def _resumable(checkpoint: Path, key: tuple[object, ...], identity: str) -> dict | None:
    """The saved state of this phase in ``checkpoint``, if there is an intact one. The file is
    disposable: a damaged one, or one of another phase or config, is discarded with a warning."""
    if not checkpoint.exists():
        return None
    try:
        blob = load_torch(checkpoint)
    except DamagedFileError as e:
        log.warning("%s; discarding it: this phase trains from its first epoch", e)
        checkpoint.unlink()
        return None
    if blob["key"] != list(map(str, key)) or blob["identity"] != identity:
        log.warning("%s holds another phase or config; this phase trains from its first epoch", checkpoint)
        return None
    return blob


def train_epochs(
    model: nn.Module,
    batches: Batches,
    cfg: TrainConfig,
    epochs: range,
    lr_at: Callable[[int], float],
    key: tuple[object, ...],
    checkpoint: Path,
    identity: str,
    extra_loss: ExtraLoss | None = None,
    on_epoch_end: Callable[[int, nn.Module], None] | None = None,
) -> int:
    """Train ``model`` in place over the 0-based ``epochs`` of a schedule; returns the training
    images processed over all of ``epochs`` (counted per batch and kept in the checkpoint, so a
    resumed phase returns the same number as an uninterrupted one).

    After every epoch the model and optimizer are saved to ``checkpoint``; a later call with the
    same ``key`` and ``identity`` (the config hash) resumes after the last finished epoch; a
    checkpoint of another phase or config, or a damaged one, is discarded with a warning. The
    caller deletes ``checkpoint`` once it has saved what it trained. Data order and augmentation
    of each epoch come from a generator seeded by (key, epoch), so a resumed phase equals an uninterrupted one.
    ``on_epoch_end(e, model)`` is called after epoch ``e`` is trained and before its checkpoint
    is written: a kill between the two repeats the epoch and the call, never skips the call."""
    optimizer = make_optimizer(model, cfg, lr_at(epochs.start) if len(epochs) else cfg.lr)
    start, images = epochs.start, 0
    if (blob := _resumable(checkpoint, key, identity)) is not None:
        model.load_state_dict(blob["model"])
        optimizer.load_state_dict(blob["optimizer"])
        start, images = blob["next_epoch"], blob["images"]
    for epoch in epochs:
        if epoch < start:
            continue
        for group in optimizer.param_groups:
            group["lr"] = lr_at(epoch)
        gen = seeded_generator(*key, epoch)
        # Dropout draws from torch's global generator: seeded per epoch too, so that a resumed or
        # reused phase equals an uninterrupted one (a no-op for models without dropout).
        torch.manual_seed(stable_seed(*key, epoch, "global"))
        model.train()
        finite = torch.ones((), dtype=torch.bool, device=next(model.parameters()).device)
        for x, y in tqdm(
            batches.epoch(gen),
            total=len(batches),
            desc=f"{'/'.join(map(str, key[1:]))} epoch {epoch + 1}/{epochs.stop}",
            leave=False,
            unit="batch",
        ):
            with autocast(x, cfg.precision):
                out = model(x)
                loss = F.cross_entropy(out, y)
                if extra_loss is not None:
                    term = extra_loss(model, x, out)
                    if term is not None:
                        loss = loss + term
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            images += len(y)
            finite &= torch.isfinite(loss.detach())  # no host sync per batch: checked once per epoch
        if not (finite & torch.stack([torch.isfinite(p).all() for p in model.parameters()]).all()):
            raise TrainingDivergedError(
                f"training diverged in epoch {epoch + 1} of {'/'.join(map(str, key[1:]))} (non-finite loss or "
                f"weights at lr {lr_at(epoch):g}): nothing of this phase was kept; lower train.lr or check the data"
            )
        if on_epoch_end is not None:
            on_epoch_end(epoch, model)
        atomic_torch_save(
            {
                "key": list(map(str, key)),
                "identity": identity,
                "next_epoch": epoch + 1,
                "images": images,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
            },
            checkpoint,
        )
    return images
