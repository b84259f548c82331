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
    for key in ("wall_s", "sha256"):  # time differs; sha256 covers rounds.csv, whose wall_s differs
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


def killed_and_resumed(tmp_path: Path, cfg: dict, kills: int, seed: int) -> int:
    """Kill a run ``kills`` times at random points, then let it finish; compare it with an
    uninterrupted run. Returns how many kills landed before the run finished."""
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(cfg))
    start = time.time()
    subprocess.run(_cmd(config, tmp_path / "whole"), check=True, capture_output=True)
    duration = time.time() - start
    rng = random.Random(seed)
    landed = 0
    for _ in range(kills):
        proc = subprocess.Popen(_cmd(config, tmp_path / "killed"), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)  # fmt: skip
        try:
            proc.wait(timeout=rng.uniform(0.0, 0.8 * duration))  # a restart may run faster than the first run
            break  # it finished before the kill: nothing left to interrupt
        except subprocess.TimeoutExpired:
            proc.kill()  # SIGKILL
            proc.wait()
            landed += 1
    done = subprocess.run(_cmd(config, tmp_path / "killed"), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    _assert_identical(_results(tmp_path / "whole"), _results(tmp_path / "killed"))
    return landed


def test_a_run_killed_at_random_points_ends_identical(tmp_path):
    assert killed_and_resumed(tmp_path, ILP, kills=3, seed=0) >= 1


@pytest.mark.soak
@pytest.mark.parametrize("cfg", [ILP, AAP], ids=["ilp", "aap_acc_params"])
@pytest.mark.parametrize("seed", range(3))
def test_runs_killed_many_times_end_identical(tmp_path, cfg, seed):
    landed = killed_and_resumed(tmp_path, cfg, kills=10, seed=seed)
    print(f"kills that landed before the run finished: {landed}")
    assert landed >= 1
