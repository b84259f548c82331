"""Rounds shared between runs (prunebench.run.reuse): a round whose retraining starts from the
same weights under the same schedule is trained once; the run reusing it ends with the numbers
and weights it would have trained itself."""

from __future__ import annotations

import copy
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import TINY

import prunebench.run.engine
from prunebench.config.run import config_from_dict
from prunebench.run.engine import run_experiment
from prunebench.surgery import load_checkpoint, save_checkpoint

pytestmark = pytest.mark.slow  # end-to-end runs

SAME_UP_TO_THE_TARGET = ["params", "flops", "val_top1", "test_top1", "epochs", "images", "removed"]


def config(target: float, **train):
    d = copy.deepcopy(TINY)
    d["prune"]["policy_options"]["target"] = target
    d["train"].update(train)
    return config_from_dict(d)


@pytest.fixture
def trainings(monkeypatch):
    """The rounds each run actually trains (the dense stage trains through another import)."""
    calls: list[str] = []
    real = prunebench.run.engine.train_epochs

    def counted(*args, **kwargs):
        calls.append(args[5][1])  # the phase: (seed, "round<r>")
        return real(*args, **kwargs)

    monkeypatch.setattr(prunebench.run.engine, "train_epochs", counted)
    return calls


def weights(run: Path, rnd: int) -> dict[str, torch.Tensor]:
    return load_checkpoint(run / "state" / f"round_{rnd:03d}.pt")[1].state_dict()


def test_a_run_reuses_the_round_another_run_trained_and_ends_as_if_it_had_trained_it(tmp_path, trainings, caplog):
    dense, shared = tmp_path / "dense", tmp_path / "shared_rounds"
    run_experiment(config(60), tmp_path / "a", dense, shared_rounds=shared)  # round 1 uncapped, round 2 capped at 60
    trainings.clear()
    caplog.set_level("INFO", logger="prunebench")
    run_experiment(config(80), tmp_path / "b", dense, shared_rounds=shared)
    assert "round1" not in trainings and "round2" in trainings  # round 1 was a's; round 2 differs (a's was capped)
    assert "reusing the round trained by tiny (round 1)" in caplog.text
    alone = tmp_path / "alone"
    run_experiment(config(80), alone, dense)  # the same run, without shared rounds
    b, c = (pd.read_csv(d / "rounds.csv") for d in (tmp_path / "b", alone))
    pd.testing.assert_frame_equal(b[SAME_UP_TO_THE_TARGET], c[SAME_UP_TO_THE_TARGET])
    assert b.loc[1, "wall_s"] == pd.read_csv(tmp_path / "a" / "rounds.csv").loc[1, "wall_s"]  # the compute it needs
    for rnd in range(1, len(b)):
        wb, wc = weights(tmp_path / "b", rnd), weights(alone, rnd)
        assert all(torch.equal(wb[k], wc[k]) for k in wb)


def test_a_shared_round_whose_checkpoint_changed_is_trained_again(tmp_path, trainings):
    dense, shared = tmp_path / "dense", tmp_path / "shared_rounds"
    run_experiment(config(60), tmp_path / "a", dense, shared_rounds=shared)
    checkpoint = tmp_path / "a" / "state" / "round_001.pt"
    arch, model, _ = load_checkpoint(checkpoint)
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    save_checkpoint(checkpoint, arch, model)  # a sound checkpoint, but not the round that was recorded
    trainings.clear()
    run_experiment(config(80), tmp_path / "b", dense, shared_rounds=shared)
    assert "round1" in trainings


def test_a_round_under_another_schedule_is_not_reused(tmp_path, trainings):
    """eval_batch_size leaves the dense model alone but is part of how a round is trained and evaluated."""
    dense, shared = tmp_path / "dense", tmp_path / "shared_rounds"
    run_experiment(config(60), tmp_path / "a", dense, shared_rounds=shared)
    trainings.clear()
    run_experiment(config(60, eval_batch_size=64), tmp_path / "b", dense, shared_rounds=shared)
    assert trainings == ["round1", "round2"]
