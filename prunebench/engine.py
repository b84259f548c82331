"""One pruning experiment, end to end: AAP paper Algorithm 1 with a pluggable method and policy.

Dense stage: train E epochs, saving the state after k epochs (k = train.rewind_epoch).
Each round: start from the policy's base round, score channels with the method, select, remove
them physically, rewind (weights: to the dense epoch-k weights of the kept channels and the LR
schedule at k; lr: the LR schedule only; finetune: neither, constant small LR), retrain E - k
epochs, evaluate on validation and test, record. The policy decides from validation numbers only.

Every finished round is saved under ``<out>/state/``; a killed run started again resumes after the
last finished round (and mid-phase after the last finished epoch) and ends with the same numbers.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from prunebench import surgery
from prunebench.config import Config, config_hash, dense_hash, resolve_device
from prunebench.data import Loaders, dataset_info, make_loaders
from prunebench.errors import ConfigError, DamagedFileError, MethodError
from prunebench.io import atomic_write_text, file_sha256, load_torch, read_json, remove_leftovers, write_json
from prunebench.measure import complexity, latency_ms
from prunebench.methods import Method, ScoringContext
from prunebench.policies import (
    CountSelection,
    MatchedPolicy,
    Policy,
    RateSelection,
    RoundRecord,
    Step,
    Stop,
    ThresholdSelection,
    resolve_prune,
)
from prunebench.replace import discard_stashes, reclaim, replacing, stashes
from prunebench.results import LAYER_COLUMNS, ROUND_COLUMNS, environment_record, write_table
from prunebench.selection import (
    layer_aware_thresholds,
    layer_weights,
    select_by_count,
    select_by_rate,
    select_by_threshold,
)
from prunebench.training import evaluate, seeded_generator, train_epochs
from prunebench.validate import check_run

log = logging.getLogger("prunebench")


def _to_device(model: nn.Module, cfg: Config, device: torch.device) -> nn.Module:
    model = model.to(device)
    return model.to(memory_format=torch.channels_last) if cfg.train.channels_last else model


class _LogFile(logging.FileHandler):
    """A log file whose write errors (a full disk) stop the run like any other failed write,
    instead of logging's own traceback on the terminal for every later message."""

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 (logging's name)
        raise  # the OSError being handled


@contextmanager
def _logging_to(directory: Path) -> Iterator[None]:
    """Log the engine's messages to ``directory/log.txt`` for the duration of the block."""
    directory.mkdir(parents=True, exist_ok=True)
    handler = _LogFile(directory / "log.txt")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    # Warnings (a damaged file recomputed, a run replaced) are also said on the terminal.
    terminal = logging.StreamHandler()
    terminal.setLevel(logging.WARNING)
    terminal.setFormatter(logging.Formatter("prunebench: warning: %(message)s"))
    log.addHandler(handler)
    log.addHandler(terminal)
    log.setLevel(logging.INFO)
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.removeHandler(terminal)
        handler.close()


def _device_for(cfg: Config) -> torch.device:
    """Apply the config's CPU threads and resolve its device."""
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    return resolve_device(cfg.train.device)


# ---------------------------------------------------------------------------------------------
# Dense stage


_DENSE_FILES = ("dense.json", "dense.pt", "rewind.pt", "training.pt")


def dense_status(dense_dir: Path, key: str) -> tuple[str, Any]:
    """What ``dense_dir`` holds for the dense model of hash ``key``: ("ok", its record),
    ("absent", None), ("other", the other config's hash) or ("damaged", the DamagedFileError)."""
    path = dense_dir / "dense.json"
    if not path.exists():
        return "absent", None
    try:
        record = read_json(path, checked=True)
        if record["dense_hash"] != key:
            return "other", record["dense_hash"]
        for name in ("dense.pt", "rewind.pt"):
            if load_torch(dense_dir / name).get("identity") != key:
                raise DamagedFileError(f"{dense_dir / name} belongs to another dense model than {path}")
    except DamagedFileError as e:
        return "damaged", e
    return "ok", record


def _another_dense(dense_dir: Path, other: str, key: str) -> ConfigError:
    return ConfigError(
        f"{dense_dir} holds the dense model of another config (hash {other}, this one {key}); use another "
        "directory, or replace it with `prunebench dense CONFIG --out DIR --replace-stale`"
    )


def _damaged_shared_dense(dense_dir: Path, error: DamagedFileError) -> DamagedFileError:
    return DamagedFileError(
        f"{error}; the shared dense model in {dense_dir} cannot be used: train it again with "
        f"`prunebench dense CONFIG --out {dense_dir}` (in a study: snakemake --forcerun '{dense_dir / 'dense.json'}')"
    )


def train_dense(cfg: Config, dense_dir: Path, loaders: Loaders, device: torch.device, owner: bool) -> dict[str, Any]:
    """Train (or reuse) the dense model of ``cfg``: ``dense.pt`` after E epochs, ``rewind.pt``
    after k epochs, ``dense.json`` with its accuracy. Shared by every method pruning it. A
    damaged one is trained again by its ``owner`` (the dense job, or a run's private dense
    directory) and refused elsewhere: other jobs may be reading it."""
    key = dense_hash(cfg)
    status, detail = dense_status(dense_dir, key)
    if status == "ok":
        return detail
    if status == "other":  # the callers replace or refuse it before any work; a guard
        raise _another_dense(dense_dir, detail, key)
    if status == "damaged":
        if not owner:
            raise _damaged_shared_dense(dense_dir, detail)
        log.warning("%s; training the dense model again", detail)
        (dense_dir / "dense.json").unlink()
    if owner:
        remove_leftovers(dense_dir)
    dense_dir.mkdir(parents=True, exist_ok=True)
    info = dataset_info(cfg.data)
    arch = surgery.dense_architecture(
        cfg.model.name, info.num_classes, info.in_channels, info.image_size, cfg.model.options
    )
    torch.manual_seed(cfg.seed)
    model = _to_device(surgery.instantiate(arch), cfg, device)
    k, epochs = cfg.train.rewind_epoch, cfg.train.epochs

    def save_rewind(epoch: int, m: nn.Module) -> None:
        if epoch + 1 == k:
            surgery.save_checkpoint(dense_dir / "rewind.pt", arch, m, epoch=k, identity=key)

    if k == 0:
        surgery.save_checkpoint(dense_dir / "rewind.pt", arch, model, epoch=0, identity=key)
    start = time.time()
    log.info("training dense %s for %d epochs (rewind state at epoch %d)", cfg.model.name, epochs, k)
    images = train_epochs(
        model,
        loaders.train,
        cfg.train,
        range(0, epochs),
        cfg.train.lr_at,
        (cfg.seed, "dense"),
        dense_dir / "training.pt",
        key,
        on_epoch_end=save_rewind,
    )
    surgery.save_checkpoint(dense_dir / "dense.pt", arch, model, epoch=epochs, identity=key)
    record = {
        "dense_hash": key,
        "arch": arch.to_dict(),
        "val_top1": evaluate(model, loaders.val),
        "test_top1": evaluate(model, loaders.test),
        "epochs": epochs,
        "images": images,
        "wall_s": time.time() - start,
        **complexity(model, arch.example_input(device=device)),
    }
    write_json(record, dense_dir / "dense.json", checked=True)
    (dense_dir / "training.pt").unlink(missing_ok=True)
    log.info("dense: val %.2f%% test %.2f%%", record["val_top1"], record["test_top1"])
    return record


# ---------------------------------------------------------------------------------------------
# Rounds


def _reduction(value: int, dense: int) -> float:
    return 100.0 * (1.0 - value / dense)


def _metric_value(model: nn.Module, arch: surgery.Architecture, metric: str, device: torch.device) -> int:
    return complexity(model, arch.example_input(device=device))[metric]


def resolve_rate(
    sel: RateSelection,
    scores: dict[str, torch.Tensor],
    model: nn.Module,
    arch: surgery.Architecture,
    dense: dict[str, Any],
    min_channels: int,
    device: torch.device,
) -> tuple[float, dict[str, list[int]]]:
    """The fraction to remove and the channels it selects. With a target, the smallest fraction
    (to 1e-4) that reaches it, so the last round lands on the target instead of overshooting."""
    if sel.target is None:
        return sel.fraction, select_by_rate(scores, sel.fraction, sel.scope, min_channels)
    metric, target = sel.target

    def reduction(fraction: float) -> float:
        trial = copy.deepcopy(model)
        surgery.remove_channels(trial, arch, select_by_rate(scores, fraction, sel.scope, min_channels), min_channels)
        return _reduction(_metric_value(trial, arch, metric, device), dense[metric])

    lo, hi = 0.0, sel.fraction
    if reduction(hi) >= target:
        while hi - lo > 1e-4:
            mid = (lo + hi) / 2
            lo, hi = (lo, mid) if reduction(mid) >= target else (mid, hi)
    return hi, select_by_rate(scores, hi, sel.scope, min_channels)


def threshold_weights(
    weighting: tuple[str, ...], model: nn.Module, groups: list[surgery.ChannelGroup], example: torch.Tensor
) -> dict[str, float]:
    """AAP Section 3.3: w_i, the group's share of the remaining params or FLOPs (the mean of
    the shares when both are named)."""
    shares = [layer_weights(model, groups, example, by) for by in weighting]
    return {g.name: sum(s[g.name] for s in shares) / len(shares) for g in groups}


def threshold_scale(scores: dict[str, torch.Tensor], weights: dict[str, float], units: str) -> float:
    """What T is multiplied by before it meets the scores: 1 for ``raw`` units; for
    ``normalized`` units the mean score over all channels divided by the mean w_i, so that
    T = 1 in a group of average weight removes the channels scoring below the mean. Computed
    from the dense model (round 1) and fixed for the run."""
    if units == "raw":
        return 1.0
    mean = float(torch.cat(list(scores.values())).mean())
    if not mean > 0:
        raise MethodError(
            f"cannot normalise AAP's thresholds: the dense model's mean score is {mean}; use "
            "prune.policy_options.units: raw, or a method whose scores are positive"
        )
    return mean * len(weights) / sum(weights.values())


def reference_channels(cfg: Config, path: Path) -> dict[str, int]:
    """Channels per group (every group of the model) of the architecture in the checkpoint
    ``path``, refused unless it is a pruned copy of this run's model on this run's dataset."""
    fix = "pass the final.pt of a finished run of the same model and dataset"
    if not path.is_file():
        raise ConfigError(f"reference {path} does not exist; run the reference experiment first, then {fix}")
    try:
        ref = surgery.load_checkpoint(path)[0]
    except DamagedFileError as e:
        raise ConfigError(f"reference {e}; {fix}") from None
    info = dataset_info(cfg.data)
    dense = surgery.dense_architecture(
        cfg.model.name, info.num_classes, info.in_channels, info.image_size, cfg.model.options
    )

    def spec(a: surgery.Architecture) -> str:
        size = f"{a.in_channels}x{a.image_size}x{a.image_size}"
        return f"{a.model} (input {size}, {a.num_classes} classes, options {a.options})"

    if spec(ref) != spec(dense):
        raise ConfigError(f"reference {path} is a {spec(ref)}, this run prunes a {spec(dense)}; {fix}")
    ref_config = path.parent / "config.yaml"  # the reference's own run config, when it is there
    if ref_config.is_file():
        dataset = ((yaml.safe_load(ref_config.read_text()) or {}).get("data") or {}).get("dataset")
        if dataset not in (None, cfg.data.dataset):
            raise ConfigError(f"reference {path} comes from a run on {dataset}, this one on {cfg.data.dataset}; {fix}")
    model = surgery.instantiate(dense)
    sizes = {g.name: g.size for g in surgery.channel_groups(model, surgery.build_graph(model, dense.example_input()))}
    for name, kept in ref.kept.items():
        if name not in sizes or len(set(kept)) != len(kept) or not all(0 <= i < sizes[name] for i in kept):
            raise ConfigError(
                f"reference {path} keeps channels {kept} of group {name!r}, which do not fit {cfg.model.name}'s "
                f"groups {sizes}; {fix}"
            )
    keep = {name: len(ref.kept.get(name, range(n))) for name, n in sizes.items()}
    if (fewest := min(keep.values())) < cfg.prune.min_channels:
        raise ConfigError(
            f"reference {path} keeps {fewest} channel(s) in a group, fewer than prune.min_channels="
            f"{cfg.prune.min_channels}; set prune.min_channels to at most {fewest}"
        )
    return keep


def _bind_reference(cfg: Config, policy: Policy, reference: Path | None) -> dict[str, Any] | None:
    """Give the ``matched`` policy its reference's channel counts (refusing a missing or wrong
    reference before any work); returns what run.json records of it."""
    if not isinstance(policy, MatchedPolicy):
        if reference is not None:
            raise ConfigError(
                f"--reference is only for policy 'matched' (this run's policy is {policy.name!r}); "
                "drop it or set prune.policy=matched"
            )
        return None
    if reference is None:
        raise ConfigError(
            f"policy 'matched' keeps the channels per group of the result of experiment "
            f"{policy.options.reference!r}: pass that run's final.pt with --reference RUN_DIR/final.pt"
        )
    policy.keep = reference_channels(cfg, reference)
    return {"path": str(reference), "experiment": policy.options.reference, "channels": policy.keep}


def _score(
    method: Method, model: nn.Module, groups: list[surgery.ChannelGroup], loaders: Loaders, cfg: Config, rnd: int
) -> dict[str, torch.Tensor]:
    gen = seeded_generator(cfg.seed, "score", rnd)
    batch = loaders.train.sample(cfg.prune.score_batch_size or cfg.train.batch_size, gen)
    with torch.no_grad():
        scores = method.score(ScoringContext(model.eval(), groups, batch, gen, rnd))
    for g in groups:
        s = scores.get(g.name)
        if not isinstance(s, torch.Tensor) or s.shape != (g.size,):
            got = tuple(s.shape) if isinstance(s, torch.Tensor) else type(s).__name__
            raise MethodError(
                f"method {method.name!r} must return a 1-D tensor of {g.size} scores for group {g.name}, got {got}"
            )
        if not torch.isfinite(s).all():
            raise MethodError(f"method {method.name!r} returned non-finite scores for group {g.name} in round {rnd}")
    return {g.name: scores[g.name].detach().double().cpu() for g in groups}


class RunState:
    """Finished rounds of a run, persisted in ``<out>/state`` after each one. Opening it verifies
    every round's checkpoint: from the first one missing or damaged on, the rounds are dropped
    with a warning and computed again (a round depends only on the rounds before it, so they come
    out the same)."""

    def __init__(self, state_dir: Path, run_hash: str) -> None:
        self.dir = state_dir
        self.path = state_dir / "history.json"
        self.run_hash = run_hash
        self.rounds: list[dict[str, Any]] = []
        self.layers: list[dict[str, Any]] = []
        remove_leftovers(state_dir)
        if self.path.exists():  # its identity was checked with the run's (_stale_entries)
            blob = read_json(self.path, checked=True)
            self.rounds, self.layers = blob["rounds"], blob["layers"]
            self._verify()
        self.dir.mkdir(parents=True, exist_ok=True)

    def _verify(self) -> None:
        for i, row in enumerate(self.rounds):
            path = self.checkpoint(row["round"])
            try:
                if load_torch(path).get("identity") != self.run_hash:
                    raise DamagedFileError(f"{path} belongs to another run")
            except DamagedFileError as e:
                log.warning("%s; computing round %d and the rounds after it again", e, row["round"])
                self._truncate(i)
                return

    def _truncate(self, n: int) -> None:
        """Keep the first ``n`` rounds; delete every later round's files."""
        first = self.rounds[n]["round"]
        self.rounds = self.rounds[:n]
        self.layers = [layer for layer in self.layers if layer["round"] < first]
        for path in self.dir.glob("round_*.pt"):
            if int(path.stem.split("_")[1]) >= first:
                path.unlink()
        (self.dir / "training.pt").unlink(missing_ok=True)
        self._save()

    def checkpoint(self, rnd: int) -> Path:
        return self.dir / f"round_{rnd:03d}.pt"

    def add(self, row: dict[str, Any], layers: list[dict[str, Any]]) -> None:
        self.rounds.append(row)
        self.layers.extend(layers)
        self._save()

    def _save(self) -> None:
        write_json(
            {"config_hash": self.run_hash, "rounds": self.rounds, "layers": self.layers}, self.path, checked=True
        )

    def records(self) -> list[RoundRecord]:
        return [
            RoundRecord(
                r["round"], r["base_round"], r["params_reduction"], r["flops_reduction"], r["val_drop"], r["removed"]
            )
            for r in self.rounds
        ]


# What a run writes in its directory (log.txt, appended to, and a private dense/ aside).
_RUN_ENTRIES = (
    "run.json", "config.yaml", "env.json", "state", "rounds.csv", "layers.csv", "summary.json", "final.pt"
)  # fmt: skip


# The files the summary vouches for, by checksum: everything the tables read of a run.
_VOUCHED = ("rounds.csv", "layers.csv", "final.pt", "config.yaml", "run.json")


def saved_identity(out: Path) -> str:
    """The identity of the run ``out`` holds: ``run.json``'s, or the intact ``history.json``'s
    where ``run.json`` is damaged or missing (it is written again at the start of every run). A
    DamagedFileError when neither says, or when they disagree."""
    marker, history = out / "run.json", out / "state" / "history.json"
    try:
        saved = read_json(marker, checked=True)["identity"]
    except DamagedFileError:
        if not history.exists():
            raise
        return read_json(history, checked=True)["config_hash"]
    if history.exists() and read_json(history, checked=True)["config_hash"] != saved:
        raise DamagedFileError(f"{history} belongs to another run than {marker}")
    return saved


def _stale_entries(out: Path, identity: str, replace_stale: bool) -> tuple[list[str], str]:
    """The entries of ``out`` to replace before the run of ``identity`` starts there, and what
    they are: none when ``out`` is new or holds this run (to resume), all of them when it holds
    another config's run or damaged records and ``replace_stale`` is given; otherwise a
    ConfigError, before any file is touched."""
    if not any((out / name).exists() for name in _RUN_ENTRIES):
        return [], ""
    try:
        saved = saved_identity(out)
    except DamagedFileError as e:
        why, what = f"{e}, so the run in {out} cannot be resumed", "a run that cannot be resumed"
    else:
        if saved == identity:
            return [], ""
        why = f"{out} holds the run of another config or reference (hash {saved}, this one {identity})"
        what = "the run of another config"
    if replace_stale:
        return list(_RUN_ENTRIES), what
    left = [str(p) for p in stashes(out)]
    kept = f" (the files of a run an interrupted replacement replaced are in {', '.join(left)})" if left else ""
    raise ConfigError(
        f"{why}; use another --out directory, delete it, or pass --replace-stale to replace it (its files are "
        f"kept until the new run finishes){kept}"
    )


def _stashed(out: Path, identity: str) -> Path | None:
    """The stash an interrupted replacement left in ``out`` holding the run of ``identity``."""
    for stash in stashes(out):
        try:
            if saved_identity(stash) == identity:
                return stash
        except DamagedFileError:
            continue
    return None


_SUMMARY_COLUMNS = (
    "params", "macs", "flops", "params_reduction", "flops_reduction", "val_top1", "test_top1", "val_drop", "test_drop"
)  # fmt: skip


def run_experiment(
    cfg: Config,
    out: Path,
    dense_dir: Path | None = None,
    replace_stale: bool = False,
    reference: Path | None = None,
) -> dict[str, Any]:
    """Run (or resume) the experiment of ``cfg`` into ``out``; returns the run summary.
    Everything is checked before any file is written. ``replace_stale`` replaces a run of
    another config in ``out`` instead of refusing it (the workflow's reruns after a config
    change; see prunebench.replace). ``dense_dir`` is a shared dense model directory (default:
    ``out/dense``, the run's own); a shared one of another config is always refused: only
    ``dense_only`` replaces one. ``reference`` is the ``final.pt`` whose architecture the
    ``matched`` policy keeps (that policy only)."""
    check_run(cfg)
    method, policy = resolve_prune(cfg.prune)
    device = _device_for(cfg)
    run_hash = config_hash(cfg)
    run_record = {"config_hash": run_hash, "dense_hash": dense_hash(cfg), "identity": run_hash}
    if (matched := _bind_reference(cfg, policy, reference)) is not None:
        # The reference is a file, not config: its counts key the saved rounds as well, so a
        # changed reference architecture never resumes rounds cut to the old one.
        run_record["reference"] = matched
        run_record["identity"] = hashlib.sha256(json.dumps([run_hash, matched["channels"]]).encode()).hexdigest()[:16]
    stale, what = _stale_entries(out, run_record["identity"], replace_stale)
    owner = dense_dir is None
    dense_dir = dense_dir or out / "dense"
    run_record["dense_dir"] = str(dense_dir)
    back = _stashed(out, run_record["identity"]) if stale else None
    if back is None:  # (a stash of this very run comes back with its own dense model, if any)
        status, detail = dense_status(dense_dir, run_record["dense_hash"])
        if status == "other":
            if not (owner and stale):  # a private dense model goes with the run it belongs to
                raise _another_dense(dense_dir, detail, run_record["dense_hash"])
            stale.append("dense")
        if status == "damaged" and not owner:
            raise _damaged_shared_dense(dense_dir, detail)
    loaders = make_loaders(cfg.data, cfg.train, device)  # missing data is refused before any file is written
    with _logging_to(out):
        if back is not None:
            reclaim(out, back, [*_RUN_ENTRIES, "dense"] if owner else list(_RUN_ENTRIES))
            stale = []
        with replacing(out, stale, what):
            summary = _run(cfg, out, dense_dir, owner, method, policy, run_record, device, loaders)
        discard_stashes(out)
    return summary


def dense_only(cfg: Config, dense_dir: Path, replace_stale: bool = False) -> dict[str, Any]:
    """Train (or reuse) the dense model of ``cfg`` in ``dense_dir`` without pruning; with
    ``replace_stale`` a dense model of another config there is replaced (see prunebench.replace)."""
    check_run(cfg)
    device = _device_for(cfg)
    key = dense_hash(cfg)
    status, other = dense_status(dense_dir, key)
    if status == "other" and not replace_stale:
        raise _another_dense(dense_dir, other, key)
    stale = list(_DENSE_FILES) if status == "other" else []
    loaders = make_loaders(cfg.data, cfg.train, device)  # missing data is refused before any file is written
    with _logging_to(dense_dir):
        with replacing(dense_dir, stale, "the dense model of another config"):
            record = train_dense(cfg, dense_dir, loaders, device, owner=True)
        discard_stashes(dense_dir)
    return record


def _run(
    cfg: Config,
    out: Path,
    dense_dir: Path,
    owner: bool,
    method: Method,
    policy: Policy,
    run_record: dict[str, Any],
    device: torch.device,
    loaders: Loaders,
) -> dict[str, Any]:
    policy_name = cfg.prune.policy
    run_hash = run_record["config_hash"]
    if (matched := run_record.get("reference")) is not None:
        log.info("matching %s: channels per group %s", matched["path"], matched["channels"])
    # run.json first: it says which run this directory holds, before anything else is written.
    remove_leftovers(out)
    write_json(run_record, out / "run.json", checked=True)
    state = RunState(out / "state", run_record["identity"])
    atomic_write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False), out / "config.yaml")
    write_json(environment_record(), out / "env.json")
    dense = train_dense(cfg, dense_dir, loaders, device, owner)
    rewind_state = surgery.load_checkpoint(str(dense_dir / "rewind.pt"))[1].state_dict()
    base_row = {
        "run_id": cfg.name,
        "config_hash": run_hash,
        "dataset": cfg.data.dataset,
        "model": cfg.model.name,
        "method": method.name,
        "policy": policy_name,
        "seed": cfg.seed,
    }

    arch, model = surgery.load_checkpoint(str(dense_dir / "dense.pt"))[:2]
    groups = surgery.channel_groups(model, surgery.build_graph(model, arch.example_input()))
    original = {g.name: g.size for g in groups}
    if not state.rounds:
        surgery.save_checkpoint(state.checkpoint(0), arch, model, identity=state.run_hash)
        state.add(
            {
                **base_row,
                "round": 0,
                "base_round": 0,
                "params": dense["params"],
                "macs": dense["macs"],
                "flops": dense["flops"],
                "params_reduction": 0.0,
                "flops_reduction": 0.0,
                "val_top1": dense["val_top1"],
                "test_top1": dense["test_top1"],
                "val_drop": 0.0,
                "test_drop": 0.0,
                "epochs": dense["epochs"],
                "images": dense["images"],
                "wall_s": dense["wall_s"],
                "rate": 0.0,
                "channels": sum(g.size for g in groups),
                "removed": 0,
            },
            [],
        )
    elif len(state.rounds) > 1:
        log.info("resuming %s after round %d", cfg.name, state.rounds[-1]["round"])

    while not isinstance(step := policy.next_step(state.records()), Stop):
        rnd = state.rounds[-1]["round"] + 1
        _round(cfg, rnd, step, method, state, loaders, dense, rewind_state, base_row, original, device)
    stop_reason = step.reason

    records = state.records()
    final_round = policy.final_round(records)
    target_met = policy.meets_target(records[final_round])
    arch, model, _ = surgery.load_checkpoint(str(state.checkpoint(final_round)))
    surgery.save_checkpoint(out / "final.pt", arch, model, round=final_round)
    described = policy.describe(records)
    annotated = [{**row, **extra} for row, extra in zip(state.rounds, described, strict=True)]
    annotated[-1]["stop_reason"] = stop_reason
    for row in annotated:
        row["final"] = row["round"] == final_round
    rounds = write_table(annotated, ROUND_COLUMNS, out / "rounds.csv")
    write_table(state.layers, LAYER_COLUMNS, out / "layers.csv")
    final = rounds[rounds["round"] == final_round].iloc[0]
    summary = {
        "run_id": cfg.name,
        "method": method.name,
        "policy": policy_name,
        "stop_reason": stop_reason,
        "target_met": target_met,
        "final_round": final_round,
        "rollbacks": sum(d.get("rolled_back_to") is not None for d in described),
        "rounds": int(rounds["round"].max()),
        "dense": {key: dense[key] for key in ("params", "macs", "flops", "val_top1", "test_top1")},
        "final": {key: final[key].item() for key in _SUMMARY_COLUMNS},
        "wall_s": float(rounds["wall_s"].sum()),
        # What the summary vouches for: the tables check these before reading the files.
        "sha256": {name: file_sha256(out / name) for name in _VOUCHED},
    }
    if cfg.measure.latency:
        dense_model = surgery.load_checkpoint(str(dense_dir / "dense.pt"))[1]
        x = arch.example_input()
        threads = torch.get_num_threads()
        summary["latency_ms"] = {
            f"{name}_{n}t": latency_ms(m, x, n, cfg.measure.warmup, cfg.measure.repeats)
            for name, m in (("dense", dense_model), ("final", model))
            for n in sorted({1, threads})
        }
    write_json(summary, out / "summary.json", checked=True)
    log.info(
        "done: %s; target %s (final round %d, params -%.2f%%, val drop %.2f)",
        stop_reason,
        "met" if target_met else "NOT met",
        final_round,
        summary["final"]["params_reduction"],
        summary["final"]["val_drop"],
    )
    return summary


def _round(
    cfg: Config,
    rnd: int,
    step: Step,
    method: Method,
    state: RunState,
    loaders: Loaders,
    dense: dict[str, Any],
    rewind_state: dict[str, torch.Tensor],
    base_row: dict[str, Any],
    original: dict[str, int],
    device: torch.device,
) -> None:
    start = time.time()
    t = cfg.train
    k, E = t.rewind_epoch, t.epochs
    arch, model, _ = surgery.load_checkpoint(str(state.checkpoint(step.base_round)))
    model = _to_device(model, cfg, device)
    groups = surgery.channel_groups(model, surgery.build_graph(model, arch.example_input(device=device)))
    scores = _score(method, model, groups, loaders, cfg, rnd)
    rate = scale = None
    if isinstance(step.selection, ThresholdSelection):
        sel = step.selection
        weights = threshold_weights(sel.weighting, model, groups, arch.example_input(device=device))
        # Round 1 scores the dense model: its scores fix the threshold units for the whole run.
        scale = state.rounds[1]["threshold_scale"] if rnd > 1 else threshold_scale(scores, weights, sel.units)
        thresholds = layer_aware_thresholds(sel.threshold * scale, weights)
        remove = select_by_threshold(scores, thresholds, cfg.prune.min_channels)
        how = f"threshold T={sel.threshold:.6g} (x {scale:.4g})"
    elif isinstance(step.selection, CountSelection):
        remove = select_by_count(scores, step.selection.keep)
        how = "the reference's channels per group"
    else:
        rate, remove = resolve_rate(step.selection, scores, model, arch, dense, cfg.prune.min_channels, device)
        how = f"rate {rate:.4f}"
    removed = sum(len(v) for v in remove.values())
    layers = [
        {
            "run_id": cfg.name,
            "round": rnd,
            "group": g.name,
            "layers": " ".join(g.out_layers),
            "original_channels": original[g.name],
            "channels_before": g.size,
            "channels_after": g.size - len(remove[g.name]),
            "score_min": float(scores[g.name].min()),
            "score_mean": float(scores[g.name].mean()),
            "score_max": float(scores[g.name].max()),
        }
        for g in groups
    ]
    if removed == 0:
        # The same architecture as the base round: its model and numbers stand, no retraining.
        shutil.copyfile(state.checkpoint(step.base_round), state.checkpoint(rnd))
        base = next(r for r in state.rounds if r["round"] == step.base_round)
        state.add(
            {
                **base,
                "round": rnd,
                "base_round": step.base_round,
                "epochs": 0,
                "images": 0,
                "wall_s": time.time() - start,
                "rate": rate,
                "threshold_scale": scale,
                "removed": 0,
            },
            layers,
        )
        log.info("round %d (%s) removes nothing: round %d's model stands", rnd, how, step.base_round)
        return
    sizes_before = {g.name: g.size for g in groups}
    new_arch = surgery.remove_channels(model, arch, remove, cfg.prune.min_channels)
    if t.rewind == "weights":
        model = _to_device(surgery.rewind_weights(new_arch, rewind_state), cfg, device)
    if t.rewind == "finetune":
        lr = t.finetune_lr if t.finetune_lr is not None else t.lr_at(E - 1)
        epochs, lr_at = range(0, E - k), (lambda _e: lr)
    else:
        epochs, lr_at = range(k, E), t.lr_at
    log.info(
        "round %d: removed %d channels (%s) from round %d; retraining %d epochs",
        rnd,
        removed,
        how,
        step.base_round,
        len(epochs),
    )
    images = train_epochs(
        model,
        loaders.train,
        t,
        epochs,
        lr_at,
        (cfg.seed, f"round{rnd}"),
        state.dir / "training.pt",
        state.run_hash,
        extra_loss=method.extra_loss,
    )
    cx = complexity(model, new_arch.example_input(device=device))
    val, test = evaluate(model, loaders.val), evaluate(model, loaders.test)
    surgery.save_checkpoint(state.checkpoint(rnd), new_arch, model, identity=state.run_hash)
    row = {
        **base_row,
        "round": rnd,
        "base_round": step.base_round,
        **cx,
        "params_reduction": _reduction(cx["params"], dense["params"]),
        "flops_reduction": _reduction(cx["flops"], dense["flops"]),
        "val_top1": val,
        "test_top1": test,
        "val_drop": dense["val_top1"] - val,
        "test_drop": dense["test_top1"] - test,
        "epochs": len(epochs),
        "images": images,
        "wall_s": time.time() - start,
        "rate": rate,
        "threshold_scale": scale,
        "channels": sum(sizes_before.values()) - removed,
        "removed": removed,
    }
    state.add(row, layers)
    (state.dir / "training.pt").unlink(missing_ok=True)
    log.info(
        "round %d: params -%.2f%% flops -%.2f%% val %.2f%% test %.2f%% (%.0fs)",
        rnd,
        row["params_reduction"],
        row["flops_reduction"],
        val,
        test,
        row["wall_s"],
    )
