"""kill -9 at random points, as a property: a run killed any number of times, and started again
after each kill, ends with the same rounds, layers, summary and models as a run never
interrupted. Two kinds of points, drawn from seeded generators: a random time into the run's
work (mid-epoch, mid-scoring, anywhere), and a random file write of the run, just before it,
with the file half-written, or just after it (every place where state changes). The default
suite kills one run at 4 writes (and through Snakemake, tests/test_workflow.py kills a study);
`pytest -m soak` kills fixed-rate and adaptive runs at many times and writes."""

from __future__ import annotations

import json
import os
import random
import signal
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

pytestmark = pytest.mark.slow  # end-to-end runs

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


def _pruning(run: Path) -> bool:
    """Whether the run had finished its dense stage and at least one round."""
    history = run / "state/history.json"
    return history.exists() and len(json.loads(history.read_text())["rounds"]) > 1


def _finish_and_compare(config: Path, whole: Path, killed: Path) -> None:
    """Let the killed run finish; it must equal the uninterrupted one and leave no half-written file."""
    done = subprocess.run(_cmd(config, killed), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    _assert_identical(_results(whole), _results(killed))
    assert not list(killed.rglob(".*.tmp")), "half-written files of killed writes were left behind"


# Imported by the killed process (PYTHONPATH): SIGKILL at its n-th atomic write, before the
# write, with the temporary file written but not renamed, or after the rename.
KILL_HOOK = """
import os, signal, sys
import prunebench.io as io

n, where = int(os.environ["KILL_AT_WRITE"]), os.environ["KILL_WHERE"]
real, count = io._atomic, [0]

def _die():
    os.kill(os.getpid(), signal.SIGKILL)

def atomic(path, write):
    count[0] += 1
    if count[0] != n:
        return real(path, write)
    if where == "before":
        _die()
    if where == "during":
        def half(f):
            write(f)
            f.flush()
            _die()
        return real(path, half)
    real(path, write)
    _die()

io._atomic = atomic
from prunebench.cli import main
sys.exit(main(sys.argv[1:]))
"""


def killed_at_writes(tmp_path: Path, cfg: dict, kills: int, seed: int, writes: tuple[int, int]) -> tuple[int, int]:
    """Kill a run at a random write (the n-th of the restarted process, n drawn from
    ``writes``), before, during or after it, ``kills`` times, then let it finish; compare it
    with an uninterrupted run. A restart writes run.json, config.yaml and env.json first, so
    n > 3 makes progress. The points are deterministic for a seed (the writes of a run are).
    Returns (kills that landed, of which while rounds were pruned)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(cfg))
    (tmp_path / "kill_hook.py").write_text(KILL_HOOK)
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    subprocess.run(_cmd(config, whole), check=True, capture_output=True)
    rng = random.Random(seed)
    landed = mid_pruning = 0
    for _ in range(kills):
        env = {**os.environ, "PYTHONPATH": str(tmp_path), "KILL_AT_WRITE": str(rng.randint(*writes)),
               "KILL_WHERE": rng.choice(["before", "during", "after"])}  # fmt: skip
        cmd = [sys.executable, str(tmp_path / "kill_hook.py"), *_cmd(config, killed)[3:]]
        code = subprocess.run(cmd, env=env, capture_output=True).returncode
        if code != -signal.SIGKILL:
            assert code == 0, f"the run failed instead of being killed ({code})"
            break  # it finished before its n-th write
        landed += 1
        mid_pruning += _pruning(killed)
    _finish_and_compare(config, whole, killed)
    return landed, mid_pruning


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
    tmp_path.mkdir(parents=True, exist_ok=True)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(cfg))
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    proc = subprocess.Popen(_cmd(config, whole), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert _started(proc, whole / "config.yaml", 0)
    start = time.time()
    assert proc.wait() == 0
    work = time.time() - start
    # Kill points spread over the run's work; after each restart the run resumes from its last
    # finished epoch, so the next point comes the remaining distance after the restart.
    points = sorted(random.Random(seed).uniform(0.0, work) for _ in range(kills))
    landed = mid_pruning = 0
    for gap in [b - a for a, b in zip([0.0, *points], points, strict=False)]:
        before = time.time() - 1e-3
        proc = subprocess.Popen(_cmd(config, killed), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not _started(proc, killed / "config.yaml", before):
            break  # finished (or failed) at once: checked below
        try:
            proc.wait(timeout=gap)
            break  # it finished before the kill: nothing left to interrupt
        except subprocess.TimeoutExpired:
            proc.kill()  # SIGKILL
            proc.wait()
            landed += 1
            mid_pruning += _pruning(killed)
    _finish_and_compare(config, whole, killed)
    return landed, mid_pruning


@pytest.mark.full
def test_a_run_killed_at_random_writes_ends_identical(tmp_path):
    landed, mid_pruning = killed_at_writes(tmp_path, ILP, kills=4, seed=0, writes=(3, 10))
    assert landed == 4 and mid_pruning >= 1


@pytest.mark.soak
@pytest.mark.parametrize("cfg", [ILP, AAP], ids=["ilp", "aap_acc_params"])
@pytest.mark.parametrize("seed", range(3))
def test_runs_killed_many_times_end_identical(tmp_path, cfg, seed):
    at_times = killed_and_resumed(tmp_path / "times", cfg, kills=5, seed=seed)
    at_writes = killed_at_writes(tmp_path / "writes", cfg, kills=20, seed=seed, writes=(1, 8))
    print(f"kills that landed (while rounds were pruned): at random times {at_times}, at random writes {at_writes}")
    assert at_times[0] >= 1 and at_writes[1] >= 1
