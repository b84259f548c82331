"""Rounds shared between the runs of a study.

Retraining is deterministic given its inputs (starting weights, architecture, schedule, data
order, loss, device and threads), so two runs whose round r starts from the same weights end it
with the same model and accuracies: AAP-P and AAP at a params target, for example, take the same
first rounds until one of them rolls back. The first run to train such a round records it here,
keyed by a hash of all those inputs; a later run with the same key loads the recorded round
instead of training it again. An entry points at the round checkpoint in the producing run's
``state/`` (no second copy of the weights) with that file's checksum: if the producing run was
replaced or deleted since, the entry no longer matches and the round is trained again.

A reused round's row in rounds.csv is the one training it would have written, its ``wall_s``
included: the compute the method's result needs. What each job actually took is in the study's
``tables/jobs.csv``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from prunebench.config.run import Config, training_identity
from prunebench.errors import DamagedFileError
from prunebench.io import checksum, file_sha256, read_json, write_json
from prunebench.score.contract import Method
from prunebench.surgery import Architecture, load_checkpoint

log = logging.getLogger("prunebench")

FORMAT = "prunebench-round/1"  # a new format (other inputs hashed) never matches an old entry


@dataclass(frozen=True)
class TrainedRound:
    """What a round's retraining produced."""

    val_top1: float
    test_top1: float
    images: int
    wall_s: float


def round_key(
    cfg: Config,
    method: Method,
    arch: Architecture,
    model: nn.Module,
    epochs: range,
    lr_at: Callable[[int], float],
    phase: tuple[object, ...],
) -> str:
    """Hash of everything the retraining of ``model`` (its starting weights) depends on."""
    extra_loss = None
    if getattr(method.extra_loss, "__func__", None) is not Method.extra_loss:  # the loss is the method's too
        extra_loss = [method.name, dataclasses.asdict(method.options), cfg.prune.method_source]
    return checksum(
        {
            "format": FORMAT,
            "torch": torch.__version__,
            "training": training_identity(cfg),
            "arch": arch.to_dict(),
            "epochs": [epochs.start, epochs.stop],
            "lr": [lr_at(e) for e in epochs],
            "phase": list(map(str, phase)),
            "extra_loss": extra_loss,
            "weights": model.state_dict(),
        }
    )


class RoundCache:
    """The shared rounds of a study, one small JSON file per round key in ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _entry(self, key: str) -> Path:
        return self.directory / f"{key}.json"

    def lookup(self, key: str, arch: Architecture, model: nn.Module) -> TrainedRound | None:
        """Load the recorded round of ``key`` into ``model`` and return its numbers, or None
        (nothing recorded, or the checkpoint it points at changed or went away)."""
        entry = self._entry(key)
        if not entry.exists():
            return None
        try:
            record = read_json(entry, checked=True)
            checkpoint, expected = Path(record["checkpoint"]), record["checkpoint_sha256"]
            if not checkpoint.exists() or file_sha256(checkpoint) != expected:
                return None
            saved_arch, saved, _ = load_checkpoint(checkpoint)
            if file_sha256(checkpoint) != expected:  # replaced while it was read
                return None
        except FileNotFoundError:  # the producing run was replaced or deleted meanwhile
            return None
        except (DamagedFileError, KeyError, OSError) as e:
            log.warning("shared round %s unusable (%s); training the round", entry, e)
            return None
        if saved_arch.to_dict() != arch.to_dict():  # a hash collision or a bug: never reuse silently
            log.warning("shared round %s holds another architecture; training the round", entry)
            return None
        model.load_state_dict(saved.state_dict())
        log.info("reusing the round trained by %s", record["source"])
        return TrainedRound(**record["result"])

    def record(self, key: str, checkpoint: Path, source: str, result: TrainedRound) -> None:
        """Record that ``checkpoint`` (written by ``source``) is the outcome of ``key``."""
        record = {
            "checkpoint": str(checkpoint.resolve()),
            "checkpoint_sha256": file_sha256(checkpoint),
            "source": source,
            "result": dataclasses.asdict(result),
        }
        self.directory.mkdir(parents=True, exist_ok=True)
        write_json(record, self._entry(key), checked=True)
