"""The dense stage: train the unpruned model once, saving the snapshots rounds rewind to.

One dense model per (model, seed, schedule) is shared by every experiment pruning it, whatever
epoch it rewinds to, but for methods with their own pre-pruning training (``Method.dense_loss``,
``Method.dense_gates``), which get one of their own: ``dense.pt`` after E epochs and
``rewind_e<k>.pt`` after k epochs for every k asked for (the rewind-epoch ablation adds a
snapshot, not a dense model). ``dense.json`` records its accuracy, size, cost and the snapshots
it holds. A method's learned gates are folded into the saved models' weights (prunebench.train.gates).
Layout: :mod:`prunebench.paths`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection
from pathlib import Path
from typing import Any

import torch
from torch import nn

from prunebench import paths, surgery
from prunebench.config.run import Config, dense_hash
from prunebench.data.batches import Loaders
from prunebench.data.datasets import dataset_info
from prunebench.errors import ConfigError, DamagedFileError
from prunebench.io import load_torch, read_json, remove_leftovers, write_json
from prunebench.measure.cost import complexity
from prunebench.score.contract import Method, trains_dense
from prunebench.train.gates import GatedModel
from prunebench.train.loop import evaluate, train_epochs

log = logging.getLogger("prunebench")


def to_device(model: nn.Module, cfg: Config, device: torch.device) -> nn.Module:
    model = model.to(device)
    return model.to(memory_format=torch.channels_last) if cfg.train.channels_last else model


def snapshots_of(cfg: Config) -> list[int]:
    """The snapshot a run of ``cfg`` rewinds to: its rewind epoch's, with ``rewind: weights``
    (``lr`` and ``finetune`` keep the trained weights and need none)."""
    return [cfg.train.rewind_epoch] if cfg.train.rewind == "weights" else []


def entries(dense_dir: Path) -> list[str]:
    """The names of the dense stage's files in ``dense_dir`` (what replacing it moves aside)."""
    fixed = (paths.DENSE_RECORD, paths.DENSE_MODEL, paths.DENSE_TRAINING)
    snapshots = sorted(p.name for p in dense_dir.glob(paths.SNAPSHOTS)) if dense_dir.is_dir() else []
    return [*fixed, *snapshots]


def status(dense_dir: Path, key: str, rewind_epochs: Collection[int]) -> tuple[str, Any]:
    """What ``dense_dir`` holds for the dense model of hash ``key`` with snapshots at
    ``rewind_epochs``: ("ok", its record), ("absent", None), ("other", the other config's hash),
    ("incomplete", the record: a snapshot asked for is not there) or ("damaged", the
    DamagedFileError)."""
    path = dense_dir / paths.DENSE_RECORD
    if not path.exists():
        return "absent", None
    try:
        record = read_json(path, checked=True)
        if record["dense_hash"] != key:
            return "other", record["dense_hash"]
        held = sorted(set(rewind_epochs) & set(record["rewind_epochs"]))
        for file in [dense_dir / paths.DENSE_MODEL, *(paths.rewind_snapshot(dense_dir, k) for k in held)]:
            if load_torch(file).get("identity") != key:
                raise DamagedFileError(f"{file} belongs to another dense model than {path}")
    except DamagedFileError as e:
        return "damaged", e
    if len(held) < len(set(rewind_epochs)):
        return "incomplete", record
    return "ok", record


def another_dense(dense_dir: Path, other: str, key: str) -> ConfigError:
    return ConfigError(
        f"{dense_dir} holds the dense model of another config (hash {other}, this one {key}); use another "
        "directory, or replace it with `prunebench dense CONFIG --out DIR --replace-stale`"
    )


def damaged_shared(dense_dir: Path, error: DamagedFileError) -> DamagedFileError:
    return DamagedFileError(
        f"{error}; the shared dense model in {dense_dir} cannot be used: train it again with "
        f"`prunebench dense CONFIG --out {dense_dir}` (in a study: snakemake --forcerun "
        f"'{dense_dir / paths.DENSE_RECORD}')"
    )


def missing_snapshot(dense_dir: Path, record: dict[str, Any], wanted: Collection[int]) -> ConfigError:
    return ConfigError(
        f"the shared dense model in {dense_dir} has rewind snapshots after epochs {record['rewind_epochs']}, "
        f"not {sorted(set(wanted) - set(record['rewind_epochs']))}; add them with `prunebench dense CONFIG --out "
        f"{dense_dir} --rewind-epochs {' '.join(map(str, sorted(set(record['rewind_epochs']) | set(wanted))))}`"
    )


def train_dense(
    cfg: Config,
    dense_dir: Path,
    loaders: Loaders,
    device: torch.device,
    owner: bool,
    rewind_epochs: Collection[int],
    method: Method,
) -> dict[str, Any]:
    """Train (or reuse) the dense model of ``cfg`` with snapshots after each of ``rewind_epochs``:
    the shared one, or ``method``'s own if it has a pre-pruning training (``trains_dense``).
    A damaged one, or one without a snapshot asked for, is trained again by its ``owner`` (the
    dense job, or a run's private dense directory; training is deterministic, so the dense model
    comes out the same) and refused elsewhere: other jobs may be reading it."""
    if bad := sorted(k for k in set(rewind_epochs) if not 0 <= k < cfg.train.epochs):
        raise ConfigError(f"rewind epochs {bad} must be in [0, train.epochs={cfg.train.epochs})")
    own = trains_dense(type(method))
    key = dense_hash(cfg, own)
    state, detail = status(dense_dir, key, rewind_epochs)
    if state == "ok":
        return detail
    if state == "other":  # the callers replace or refuse it before any work; a guard
        raise another_dense(dense_dir, detail, key)
    if state == "damaged":
        if not owner:
            raise damaged_shared(dense_dir, detail)
        log.warning("%s; training the dense model again", detail)
    if state == "incomplete":
        if not owner:
            raise missing_snapshot(dense_dir, detail, rewind_epochs)
        rewind_epochs = set(rewind_epochs) | set(detail["rewind_epochs"])
        log.info("adding rewind snapshots: training the dense model again (it comes out the same)")
    if state in ("damaged", "incomplete"):
        (dense_dir / paths.DENSE_RECORD).unlink()
    if owner:
        remove_leftovers(dense_dir)
    dense_dir.mkdir(parents=True, exist_ok=True)
    snapshots = sorted(set(rewind_epochs))
    info = dataset_info(cfg.data)
    arch = surgery.dense_architecture(
        cfg.model.name, info.num_classes, info.in_channels, info.image_size, cfg.model.options
    )
    torch.manual_seed(cfg.seed)
    model = to_device(surgery.instantiate(arch), cfg, device)
    trained = _with_gates(method, model, arch, cfg, device) if own else model
    epochs = cfg.train.epochs

    def plain() -> nn.Module:
        """The dense model as saved: with a method's gates folded into its weights."""
        return trained.folded() if isinstance(trained, GatedModel) else model

    def snapshot(k: int) -> None:
        surgery.save_checkpoint(paths.rewind_snapshot(dense_dir, k), arch, plain(), epoch=k, identity=key)

    _restart_past_missing_snapshots(dense_dir, key, snapshots)
    if 0 in snapshots:
        snapshot(0)
    start = time.time()
    whose = f" with {method.name}'s pre-pruning loss" if own else ""
    log.info(
        "training dense %s%s for %d epochs (rewind snapshots after epochs %s)", cfg.model.name, whose, epochs, snapshots
    )
    images = train_epochs(
        trained,
        loaders.train,
        cfg.train,
        range(0, epochs),
        cfg.train.lr_at,
        (cfg.seed, "dense"),
        dense_dir / paths.DENSE_TRAINING,
        key,
        extra_loss=method.dense_loss if own else None,
        on_epoch_end=lambda e, _m: snapshot(e + 1) if e + 1 in snapshots else None,
    )
    gates = {}
    if isinstance(trained, GatedModel):  # the learned scores, for the method's score() (ScoringContext.gates)
        gates = {"gate_scores": {g: s.cpu() for g, s in trained.current()[0].items()}}
        model = trained.folded()
    surgery.save_checkpoint(dense_dir / paths.DENSE_MODEL, arch, model, epoch=epochs, identity=key, **gates)
    if lacking := [k for k in snapshots if not _intact(paths.rewind_snapshot(dense_dir, k), key)]:
        raise DamagedFileError(f"the dense training in {dense_dir} ended without rewind snapshots {lacking}")  # a guard
    record = {
        "dense_hash": key,
        "trained_by": method.name if own else None,  # a method's own pre-pruning training, or none
        "arch": arch.to_dict(),
        "val_top1": evaluate(model, loaders.val, cfg.train.precision),
        "test_top1": evaluate(model, loaders.test, cfg.train.precision),
        "epochs": epochs,
        "rewind_epochs": snapshots,
        "images": images,
        "wall_s": time.time() - start,
        **complexity(model, arch.example_input(device=device)),
    }
    write_json(record, dense_dir / paths.DENSE_RECORD, checked=True)
    (dense_dir / paths.DENSE_TRAINING).unlink(missing_ok=True)
    log.info("dense: val %.2f%% test %.2f%%", record["val_top1"], record["test_top1"])
    return record


def _with_gates(
    method: Method, model: nn.Module, arch: surgery.Architecture, cfg: Config, device: torch.device
) -> nn.Module:
    """``model`` with the method's dense gates (Method.dense_gates), or ``model`` if it has none."""
    groups = surgery.channel_groups(model, surgery.build_graph(model, arch.example_input(device=device)))
    gates = method.dense_gates(model, groups)
    return model if gates is None else to_device(GatedModel(model, gates, groups, arch), cfg, device)


def _intact(path: Path, key: str) -> bool:
    try:
        return path.exists() and load_torch(path).get("identity") == key
    except DamagedFileError:
        return False


def _restart_past_missing_snapshots(dense_dir: Path, key: str, snapshots: list[int]) -> None:
    """A dense phase interrupted after epoch e resumes there, so it would never save a snapshot
    k < e asked for only now (a rewind epoch added to the study meanwhile): then it starts over."""
    training = dense_dir / paths.DENSE_TRAINING
    if not training.exists():
        return
    try:
        resume = load_torch(training).get("next_epoch", 0)
    except DamagedFileError:
        return  # train_epochs discards it with a warning
    if missed := [k for k in snapshots if 0 < k < resume and not _intact(paths.rewind_snapshot(dense_dir, k), key)]:
        log.warning(
            "%s resumes after epoch %d, past rewind snapshot(s) %s it does not hold; training from epoch 0",
            training,
            resume,
            missed,
        )
        training.unlink()
