"""A run's saved state and identity: which run a directory holds, and its finished rounds.

``run.json`` names the run a directory holds (its identity: the config hash, and for a
``matched`` run its reference's channel counts); ``state/history.json`` and one checkpoint per
finished round let a killed run resume after its last finished round (see prunebench.run.engine).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from prunebench import paths
from prunebench.errors import ConfigError, DamagedFileError
from prunebench.io import load_torch, read_json, remove_leftovers, write_json
from prunebench.run.replace import stashes
from prunebench.select.policies import RoundRecord

log = logging.getLogger("prunebench")


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
        if self.path.exists():  # its identity was checked with the run's (stale_entries)
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
        return paths.round_checkpoint(self.dir, rnd)

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
RUN_ENTRIES = (
    paths.RUN_RECORD, paths.RUN_CONFIG, "env.json", "state", paths.ROUNDS, paths.LAYERS, paths.SUMMARY, paths.FINAL
)  # fmt: skip


# The files the summary vouches for, by checksum: everything the tables read of a run.
VOUCHED = (paths.ROUNDS, paths.LAYERS, paths.FINAL, paths.RUN_CONFIG, paths.RUN_RECORD)


def saved_identity(out: Path) -> str:
    """The identity of the run ``out`` holds: ``run.json``'s, or the intact ``history.json``'s
    where ``run.json`` is damaged or missing (it is written again at the start of every run). A
    DamagedFileError when neither says, or when they disagree."""
    marker, history = out / paths.RUN_RECORD, out / "state" / "history.json"
    try:
        saved = read_json(marker, checked=True)["identity"]
    except DamagedFileError:
        if not history.exists():
            raise
        return read_json(history, checked=True)["config_hash"]
    if history.exists() and read_json(history, checked=True)["config_hash"] != saved:
        raise DamagedFileError(f"{history} belongs to another run than {marker}")
    return saved


def stale_entries(out: Path, identity: str, replace_stale: bool) -> tuple[list[str], str]:
    """The entries of ``out`` to replace before the run of ``identity`` starts there, and what
    they are: none when ``out`` is new or holds this run (to resume), all of them when it holds
    another config's run or damaged records and ``replace_stale`` is given; otherwise a
    ConfigError, before any file is touched."""
    if not any((out / name).exists() for name in RUN_ENTRIES):
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
        return list(RUN_ENTRIES), what
    left = [str(p) for p in stashes(out)]
    kept = f" (the files of a run an interrupted replacement replaced are in {', '.join(left)})" if left else ""
    raise ConfigError(
        f"{why}; use another --out directory, delete it, or pass --replace-stale to replace it (its files are "
        f"kept until the new run finishes){kept}"
    )


def stashed(out: Path, identity: str) -> Path | None:
    """The stash an interrupted replacement left in ``out`` holding the run of ``identity``."""
    for stash in stashes(out):
        try:
            if saved_identity(stash) == identity:
                return stash
        except DamagedFileError:
            continue
    return None
