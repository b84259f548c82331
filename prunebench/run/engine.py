"""One pruning experiment, end to end: AAP paper Algorithm 1 with a pluggable method and policy.

The dense stage (prunebench.train.dense) trains E epochs, saving the state after k epochs
(k = train.rewind_epoch). Each round: start from the policy's base round, score channels with the method, select, remove
them physically, rewind (weights: to the dense epoch-k weights of the kept channels and the LR
schedule at k; lr: the LR schedule only; finetune: neither, constant small LR), retrain E - k
epochs, evaluate on validation and test, record. The policy decides from validation numbers only.

Every finished round is saved under ``<out>/state/``; a killed run started again resumes after the
last finished round (and mid-phase after the last finished epoch) and ends with the same numbers.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from prunebench import paths, surgery
from prunebench.config.run import Config, config_hash, dense_hash, resolve_device
from prunebench.config.validate import check_run
from prunebench.data.batches import Loaders
from prunebench.data.loaders import make_loaders
from prunebench.errors import ConfigError
from prunebench.io import atomic_write_text, file_sha256, remove_leftovers, write_json
from prunebench.measure.cost import complexity, latency_ms
from prunebench.report.schema import LAYER_COLUMNS, ROUND_COLUMNS, environment_record, write_table
from prunebench.run.replace import discard_stashes, reclaim, replacing
from prunebench.run.reuse import RoundCache, TrainedRound, round_key
from prunebench.run.state import RUN_ENTRIES, VOUCHED, RunState, stale_entries, stashed
from prunebench.score.check import checked_scores
from prunebench.score.contract import Method, ScoringContext, trains_dense
from prunebench.select.channels import (
    layer_aware_thresholds,
    reduction,
    resolve_rate,
    round_kept,
    select_by_count,
    select_by_threshold,
    threshold_scale,
    threshold_weights,
)
from prunebench.select.policies import (
    CountSelection,
    Policy,
    ScoreThreshold,
    Step,
    Stop,
    ThresholdSelection,
    resolve_prune,
)
from prunebench.select.reference import bind_reference
from prunebench.train import dense as dense_stage
from prunebench.train.dense import to_device
from prunebench.train.loop import evaluate, seeded_generator, train_epochs

log = logging.getLogger("prunebench")


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
# Rounds


def _score(
    method: Method,
    model: nn.Module,
    groups: list[surgery.ChannelGroup],
    loaders: Loaders,
    cfg: Config,
    rnd: int,
    gates: dict[str, torch.Tensor] | None,
) -> dict[str, torch.Tensor]:
    gen = seeded_generator(cfg.seed, "score", rnd)
    batch, labels = loaders.train.sample(cfg.prune.score_batch_size or cfg.train.batch_size, gen)
    with torch.no_grad():  # a method that needs gradients enables them (see ScoringContext)
        scores = method.score(ScoringContext(model.eval(), groups, batch, gen, rnd, labels, gates))
    return checked_scores(method, groups, scores, rnd)


def _kept_gates(
    gate_scores: dict[str, torch.Tensor] | None, arch: surgery.Architecture, groups: list[surgery.ChannelGroup]
) -> dict[str, torch.Tensor] | None:
    """The dense model's gate scores of the channels ``arch`` keeps (ScoringContext.gates)."""
    if gate_scores is None:
        return None
    return {g.name: gate_scores[g.name][arch.kept.get(g.name, slice(None))] for g in groups}


_SUMMARY_COLUMNS = (
    "params", "macs", "flops", "params_reduction", "flops_reduction", "val_top1", "test_top1", "val_drop", "test_drop"
)  # fmt: skip


def run_experiment(
    cfg: Config,
    out: Path,
    dense_dir: Path | None = None,
    replace_stale: bool = False,
    reference: Path | None = None,
    experiment: str | None = None,
    shared_rounds: Path | None = None,
) -> dict[str, Any]:
    """Run (or resume) the experiment of ``cfg`` into ``out``; returns the run summary.
    Everything is checked before any file is written. ``replace_stale`` replaces a run of
    another config in ``out`` instead of refusing it (the workflow's reruns after a config
    change; see prunebench.run.replace). ``dense_dir`` is a shared dense model directory (default:
    ``out/dense``, the run's own); a shared one of another config is always refused: only
    ``dense_only`` replaces one. ``reference`` is the ``final.pt`` whose architecture the
    ``matched`` policy keeps (that policy only). ``experiment`` names the experiment in the
    tables (default: the name of ``out``); it is recorded in ``run.json``, not part of the identity.
    ``shared_rounds`` is a study's directory of rounds shared between runs (prunebench.run.reuse)."""
    check_run(cfg)
    method, policy = resolve_prune(cfg.prune)
    device = _device_for(cfg)
    run_hash = config_hash(cfg)
    run_record = {
        "config_hash": run_hash,
        "dense_hash": dense_hash(cfg, trains_dense(type(method))),
        "identity": run_hash,
        "experiment": experiment or out.resolve().name,
    }
    if (matched := bind_reference(cfg, policy, reference)) is not None:
        # The reference is a file, not config: its counts key the saved rounds as well, so a
        # changed reference architecture never resumes rounds cut to the old one.
        run_record["reference"] = matched
        run_record["identity"] = hashlib.sha256(json.dumps([run_hash, matched["channels"]]).encode()).hexdigest()[:16]
    stale, what = stale_entries(out, run_record["identity"], replace_stale)
    owner = dense_dir is None
    dense_dir = dense_dir or out / "dense"
    run_record["dense_dir"] = str(dense_dir)
    back = stashed(out, run_record["identity"]) if stale else None
    if back is None:  # (a stash of this very run comes back with its own dense model, if any)
        status, detail = dense_stage.status(dense_dir, run_record["dense_hash"], dense_stage.snapshots_of(cfg))
        if status == "other":
            if not (owner and stale):  # a private dense model goes with the run it belongs to
                raise dense_stage.another_dense(dense_dir, detail, run_record["dense_hash"])
            stale.append("dense")
        if status == "damaged" and not owner:
            raise dense_stage.damaged_shared(dense_dir, detail)
        if status == "incomplete" and not owner:
            raise dense_stage.missing_snapshot(dense_dir, detail, dense_stage.snapshots_of(cfg))
    loaders = make_loaders(cfg.data, cfg.train, device)  # missing data is refused before any file is written
    with _logging_to(out):
        if back is not None:
            reclaim(out, back, [*RUN_ENTRIES, "dense"] if owner else list(RUN_ENTRIES))
            stale = []
        with replacing(out, stale, what):
            shared = RoundCache(shared_rounds) if shared_rounds is not None else None
            summary = _run(cfg, out, dense_dir, owner, method, policy, run_record, device, loaders, shared)
        discard_stashes(out)
    return summary


def dense_only(
    cfg: Config, dense_dir: Path, replace_stale: bool = False, rewind_epochs: list[int] | None = None
) -> dict[str, Any]:
    """Train (or reuse) the dense model of ``cfg`` in ``dense_dir`` without pruning, with a
    rewind snapshot after each of ``rewind_epochs`` (default: ``train.rewind_epoch``); with
    ``replace_stale`` a dense model of another config there is replaced (see prunebench.run.replace)."""
    check_run(cfg)
    method = resolve_prune(cfg.prune)[0]  # the shared dense model, or the method's own (Method.dense_loss)
    device = _device_for(cfg)
    key = dense_hash(cfg, trains_dense(type(method)))
    epochs = sorted(set(rewind_epochs)) if rewind_epochs is not None else dense_stage.snapshots_of(cfg)
    if bad := [k for k in epochs if not 0 <= k < cfg.train.epochs]:
        raise ConfigError(f"--rewind-epochs {bad} must be in [0, train.epochs={cfg.train.epochs})")
    status, other = dense_stage.status(dense_dir, key, epochs)
    if status == "other" and not replace_stale:
        raise dense_stage.another_dense(dense_dir, other, key)
    stale = dense_stage.entries(dense_dir) if status == "other" else []
    loaders = make_loaders(cfg.data, cfg.train, device)  # missing data is refused before any file is written
    with _logging_to(dense_dir):
        with replacing(dense_dir, stale, "the dense model of another config"):
            record = dense_stage.train_dense(cfg, dense_dir, loaders, device, True, epochs, method)
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
    shared: RoundCache | None,
) -> dict[str, Any]:
    policy_name = cfg.prune.policy
    run_hash = run_record["config_hash"]
    if (matched := run_record.get("reference")) is not None:
        log.info("matching %s: channels per group %s", matched["path"], matched["channels"])
    # run.json first: it says which run this directory holds, before anything else is written.
    remove_leftovers(out)
    write_json(run_record, out / paths.RUN_RECORD, checked=True)
    state = RunState(out / "state", run_record["identity"])
    atomic_write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False), out / paths.RUN_CONFIG)
    write_json(environment_record(), out / "env.json")
    dense = dense_stage.train_dense(cfg, dense_dir, loaders, device, owner, dense_stage.snapshots_of(cfg), method)
    arch, model, extra = surgery.load_checkpoint(dense_dir / paths.DENSE_MODEL)
    groups = surgery.channel_groups(model, surgery.build_graph(model, arch.example_input()))
    run = _Rounds(
        cfg=cfg,
        method=method,
        state=state,
        loaders=loaders,
        device=device,
        dense=dense,
        rewind_state=(
            surgery.load_checkpoint(paths.rewind_snapshot(dense_dir, cfg.train.rewind_epoch))[1].state_dict()
            if cfg.train.rewind == "weights"
            else None
        ),
        original={g.name: g.size for g in groups},
        gate_scores=extra.get("gate_scores"),
        shared=shared,
        base_row={
            "run_id": cfg.name,
            "config_hash": run_hash,
            "dataset": cfg.data.dataset,
            "model": cfg.model.name,
            "method": method.name,
            "policy": policy_name,
            "seed": cfg.seed,
        },
    )
    if not state.rounds:
        surgery.save_checkpoint(state.checkpoint(0), arch, model, identity=state.run_hash)
        sizes = {key: dense[key] for key in ("params", "macs", "flops")}
        cost = {"epochs": dense["epochs"], "images": dense["images"], "wall_s": dense["wall_s"]}
        row = run.row(0, 0, sizes, dense["val_top1"], dense["test_top1"], **cost, rate=0.0)
        state.add({**row, "channels": sum(g.size for g in groups), "removed": 0}, [])
    elif len(state.rounds) > 1:
        log.info("resuming %s after round %d", cfg.name, state.rounds[-1]["round"])

    while not isinstance(step := policy.next_step(state.records()), Stop):
        run.round(state.rounds[-1]["round"] + 1, step)
    stop_reason = step.reason

    records = state.records()
    final_round = policy.final_round(records)
    target_met = policy.meets_target(records[final_round])
    arch, model, _ = surgery.load_checkpoint(str(state.checkpoint(final_round)))
    surgery.save_checkpoint(out / paths.FINAL, arch, model, round=final_round)
    described = policy.describe(records)
    annotated = [{**row, **extra} for row, extra in zip(state.rounds, described, strict=True)]
    annotated[-1]["stop_reason"] = stop_reason
    for row in annotated:
        row["final"] = row["round"] == final_round
    rounds = write_table(annotated, ROUND_COLUMNS, out / paths.ROUNDS)
    write_table(state.layers, LAYER_COLUMNS, out / paths.LAYERS)
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
        "sha256": {name: file_sha256(out / name) for name in VOUCHED},
    }
    if cfg.measure.latency:
        dense_model = surgery.load_checkpoint(dense_dir / paths.DENSE_MODEL)[1]
        x = arch.example_input()
        threads = torch.get_num_threads()
        summary["latency_ms"] = {
            f"{name}_{n}t": latency_ms(m, x, n, cfg.measure.warmup, cfg.measure.repeats)
            for name, m in (("dense", dense_model), ("final", model))
            for n in sorted({1, threads})
        }
    write_json(summary, out / paths.SUMMARY, checked=True)
    log.info(
        "done: %s; target %s (final round %d, params -%.2f%%, val drop %.2f)",
        stop_reason,
        "met" if target_met else "NOT met",
        final_round,
        summary["final"]["params_reduction"],
        summary["final"]["val_drop"],
    )
    return summary


@dataclass
class _Rounds:
    """What every round of one run works with."""

    cfg: Config
    method: Method
    state: RunState
    loaders: Loaders
    device: torch.device
    dense: dict[str, Any]  # the dense model's record
    rewind_state: dict[str, torch.Tensor] | None  # the dense model after k epochs (rewind: weights)
    original: dict[str, int]  # channels per group of the dense model
    gate_scores: dict[str, torch.Tensor] | None  # what the method's dense gates learned (Method.dense_gates)
    base_row: dict[str, Any]  # the columns every row of the run shares
    shared: RoundCache | None  # rounds shared with the study's other runs (prunebench.run.reuse)

    def row(
        self, rnd: int, base_round: int, sizes: dict[str, int], val: float, test: float, **rest: Any
    ) -> dict[str, Any]:
        """One row of rounds.csv: the model's size and accuracy against the dense model's."""
        d = self.dense
        return {
            **self.base_row,
            "round": rnd,
            "base_round": base_round,
            **sizes,
            "params_reduction": reduction(sizes["params"], d["params"]),
            "flops_reduction": reduction(sizes["flops"], d["flops"]),
            "val_top1": val,
            "test_top1": test,
            "val_drop": d["val_top1"] - val,
            "test_drop": d["test_top1"] - test,
            **rest,
        }

    def round(self, rnd: int, step: Step) -> None:
        """Score the base round's model, select, remove, rewind, retrain, evaluate, save."""
        start = time.time()
        cfg, state, device = self.cfg, self.state, self.device
        t = cfg.train
        k, E = t.rewind_epoch, t.epochs
        arch, model, _ = surgery.load_checkpoint(state.checkpoint(step.base_round))
        model = to_device(model, cfg, device)
        example = arch.example_input(device=device)
        groups = surgery.channel_groups(model, surgery.build_graph(model, example))
        gates = _kept_gates(self.gate_scores, arch, groups)
        scores = _score(self.method, model, groups, self.loaders, cfg, rnd, gates)
        rate = scale = None
        if isinstance(step.selection, ScoreThreshold):
            threshold = step.selection.threshold
            remove = select_by_threshold(scores, dict.fromkeys(scores, threshold), cfg.prune.min_channels)
            remove = round_kept(scores, remove, cfg.prune.round_to)
            how = f"every channel scoring <= {threshold:g}"
        elif isinstance(step.selection, ThresholdSelection):
            sel = step.selection
            weights = threshold_weights(sel.weighting, model, groups, example)
            # Round 1 scores the dense model: its scores fix the threshold units for the whole run.
            scale = state.rounds[1]["threshold_scale"] if rnd > 1 else threshold_scale(scores, weights, sel.units)
            thresholds = layer_aware_thresholds(sel.threshold * scale, weights)
            remove = round_kept(
                scores, select_by_threshold(scores, thresholds, cfg.prune.min_channels), cfg.prune.round_to
            )
            how = f"threshold T={sel.threshold:.6g} (x {scale:.4g})"
        elif isinstance(step.selection, CountSelection):
            remove = select_by_count(scores, step.selection.keep)  # exactly the reference's: never rounded
            how = "the reference's channels per group"
        else:
            rate, remove = resolve_rate(
                step.selection, scores, model, arch, self.dense, cfg.prune.min_channels, device, cfg.prune.round_to
            )
            how = f"rate {rate:.4f}"
        removed = sum(len(v) for v in remove.values())
        layers = [
            {
                "run_id": cfg.name,
                "round": rnd,
                "group": g.name,
                "layers": " ".join(g.out_layers),
                "original_channels": self.original[g.name],
                "channels_before": g.size,
                "channels_after": g.size - len(remove[g.name]),
                "score_min": float(scores[g.name].min()),
                "score_mean": float(scores[g.name].mean()),
                "score_max": float(scores[g.name].max()),
            }
            for g in groups
        ]
        channels = sum(g.size for g in groups) - removed
        if removed == 0:
            # The same architecture as the base round: its model and numbers stand, no retraining.
            shutil.copyfile(state.checkpoint(step.base_round), state.checkpoint(rnd))
            base = next(r for r in state.rounds if r["round"] == step.base_round)
            sizes = {key: base[key] for key in ("params", "macs", "flops")}
            cost = {"epochs": 0, "images": 0, "wall_s": time.time() - start}
            row = self.row(rnd, step.base_round, sizes, base["val_top1"], base["test_top1"], **cost, rate=rate)
            state.add({**row, "threshold_scale": scale, "channels": channels, "removed": 0}, layers)
            log.info("round %d (%s) removes nothing: round %d's model stands", rnd, how, step.base_round)
            return
        new_arch = surgery.remove_channels(model, arch, remove, cfg.prune.min_channels)
        if t.rewind == "weights":
            model = to_device(surgery.rewind_weights(new_arch, self.rewind_state), cfg, device)
        if t.rewind == "finetune":
            lr = t.finetune_lr if t.finetune_lr is not None else t.lr_at(E - 1)
            epochs, lr_at = range(0, E - k), (lambda _e: lr)
        else:
            epochs, lr_at = range(k, E), t.lr_at
        phase = (cfg.seed, f"round{rnd}")
        key = round_key(cfg, self.method, new_arch, model, epochs, lr_at, phase) if self.shared else None
        reused = self.shared.lookup(key, new_arch, model) if self.shared else None
        what = "reusing its retraining" if reused else f"retraining {len(epochs)} epochs"
        log.info("round %d: removed %d channels (%s) from round %d; %s", rnd, removed, how, step.base_round, what)
        if reused is None:
            images = train_epochs(
                model,
                self.loaders.train,
                t,
                epochs,
                lr_at,
                phase,
                state.dir / "training.pt",
                state.run_hash,
                extra_loss=self.method.extra_loss,
            )
            val, test = (evaluate(model, b, t.precision) for b in (self.loaders.val, self.loaders.test))
        else:
            images, val, test = reused.images, reused.val_top1, reused.test_top1
        sizes = complexity(model, new_arch.example_input(device=device))
        surgery.save_checkpoint(state.checkpoint(rnd), new_arch, model, identity=state.run_hash)
        cost = {"epochs": len(epochs), "images": images, "wall_s": reused.wall_s if reused else time.time() - start}
        row = self.row(rnd, step.base_round, sizes, val, test, **cost, rate=rate)
        state.add({**row, "threshold_scale": scale, "channels": channels, "removed": removed}, layers)
        if self.shared and reused is None:
            trained = TrainedRound(val, test, images, cost["wall_s"])
            self.shared.record(key, state.checkpoint(rnd), f"{cfg.name} (round {rnd})", trained)
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
