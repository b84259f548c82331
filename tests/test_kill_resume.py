"""kill -9 at random points, as a property: a run killed any number of times, and started again
after each kill, ends with the same rounds, layers, summary and models as a run never
interrupted. The points are drawn from a seeded generator (reproducible); the default suite
kills one run a few times, `pytest -m soak` many times across a fixed-rate and an adaptive run."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from conftest import TINY

from prunebench.surgery import load_checkpoint

ILP = TINY
AAP = {**TINY, "prune": {"method": "aap", "policy": "aap_acc_params", "max_rounds": 5,
                         "policy_options": {"target": 5.0, "lambda0": 0.5}}}  # fmt: skip


def _cmd(config: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "prunebench.cli", "run", str(config), "--out", str(out)]


def _results(run: Path) -> tuple:
    summary = json.loads((run / "summary.json").read_text())
    for key in ("wall_s", "sha256", "checksum"):  # time differs, and so the digests of what holds it
        summary.pop(key)
    models = [load_checkpoint(p)[1].state_dict() for p in (run / "final.pt", run / "dense/dense.pt")]
    return (
        pd.read_csv(run / "rounds.csv").drop(columns="wall_s"),
        pd.read_csv(run / "layers.csv"),
        summary,
        models,
    )


def _assert_identical(a: tuple, b: tuple) -> None:
    pd.testing.assert_frame_equal(a[0], b[0])
    pd.testing.assert_frame_equal(a[1], b[1])
    assert a[2] == b[2]
    for ma, mb in zip(a[3], b[3], strict=True):
        assert ma.keys() == mb.keys() and all(torch.equal(ma[k], mb[k]) for k in ma)


def _started(proc: subprocess.Popen, config_yaml: Path, before: float) -> bool:
    """Wait until the process has written its config (past imports and checks)."""
    while proc.poll() is None:
        if config_yaml.exists() and config_yaml.stat().st_mtime > before:
            return True
        time.sleep(0.01)
    return False


def killed_and_resumed(tmp_path: Path, cfg: dict, kills: int, seed: int) -> tuple[int, int]:
    """Kill a run ``kills`` times at random points of its work (drawn from the time an
    uninterrupted run takes from writing its config to its end), restarting it after each
    kill, then let it finish and compare it with the uninterrupted run. Returns (kills that
    landed, kills that landed while rounds were being pruned)."""
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(cfg))
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    proc = subprocess.Popen(_cmd(config, whole), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert _started(proc, whole / "config.yaml", 0)
    start = time.time()
    assert proc.wait() == 0
    work = time.time() - start
    rng = random.Random(seed)
    landed = mid_pruning = 0
    for _ in range(kills):
        before = time.time() - 1e-3
        proc = subprocess.Popen(_cmd(config, killed), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not _started(proc, killed / "config.yaml", before):
            break  # finished (or failed) at once: checked below
        try:
            proc.wait(timeout=rng.uniform(0.0, work))
            break  # it finished before the kill: nothing left to interrupt
        except subprocess.TimeoutExpired:
            proc.kill()  # SIGKILL
            proc.wait()
            landed += 1
            history = killed / "state/history.json"
            mid_pruning += history.exists() and len(json.loads(history.read_text())["rounds"]) > 1
    done = subprocess.run(_cmd(config, killed), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    _assert_identical(_results(whole), _results(killed))
    return landed, mid_pruning


def test_a_run_killed_at_random_points_ends_identical(tmp_path):
    landed, _ = killed_and_resumed(tmp_path, ILP, kills=3, seed=0)
    assert landed >= 1


@pytest.mark.soak
@pytest.mark.parametrize("cfg", [ILP, AAP], ids=["ilp", "aap_acc_params"])
@pytest.mark.parametrize("seed", range(3))
def test_runs_killed_many_times_end_identical(tmp_path, cfg, seed):
    landed, mid_pruning = killed_and_resumed(tmp_path, cfg, kills=10, seed=seed)
    print(f"kills that landed: {landed}, of which while rounds were pruned: {mid_pruning}")
    assert mid_pruning >= 1
