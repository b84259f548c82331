"""The dense stage: one dense model per (model, seed, schedule), a snapshot per rewind epoch."""

from __future__ import annotations

import copy
import logging

import pandas as pd
import pytest
import torch
import yaml
from conftest import TINY, dense_killed_after

from prunebench.cli import main
from prunebench.config.run import config_from_dict, dense_hash
from prunebench.io import read_json
from prunebench.run.engine import dense_only
from prunebench.surgery import load_checkpoint


def _config(tmp_path, name, **train):
    cfg = copy.deepcopy(TINY)
    cfg["train"].update(train)
    cfg["train"]["epochs"] = 2
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_the_rewind_epoch_is_a_snapshot_of_one_dense_model_not_another_model(tmp_path, capsys):
    k0, k1 = _config(tmp_path, "k0", rewind_epoch=0), _config(tmp_path, "k1", rewind_epoch=1)
    assert dense_hash(config_from_dict(yaml.safe_load(k0.read_text()))) == dense_hash(
        config_from_dict(yaml.safe_load(k1.read_text()))
    )
    shared = tmp_path / "dense"
    assert main(["dense", str(k1), "--out", str(shared), "--rewind-epochs", "0", "1"]) == 0
    record = read_json(shared / "dense.json", checked=True)
    assert record["rewind_epochs"] == [0, 1]
    snapshots = {k: load_checkpoint(shared / f"rewind_e{k}.pt")[1].state_dict() for k in (0, 1)}
    assert not torch.equal(snapshots[0]["conv1.weight"], snapshots[1]["conv1.weight"])
    # Both experiments prune the same dense model, each rewinding to its own snapshot; the
    # rewind-1 run equals one on a dense model trained for it alone (its own private one).
    for name, cfg in (("k0", k0), ("k1", k1)):
        assert main(["run", str(cfg), "--out", str(tmp_path / name), "--dense", str(shared)]) == 0
    assert main(["run", str(k1), "--out", str(tmp_path / "alone")]) == 0
    capsys.readouterr()
    shared_k1, alone = pd.read_csv(tmp_path / "k1/rounds.csv"), pd.read_csv(tmp_path / "alone/rounds.csv")
    pd.testing.assert_frame_equal(shared_k1.drop(columns="wall_s"), alone.drop(columns="wall_s"))
    k0_rounds = pd.read_csv(tmp_path / "k0/rounds.csv")
    assert k0_rounds.loc[0, "test_top1"] == shared_k1.loc[0, "test_top1"]  # one dense model
    assert k0_rounds.loc[1, "epochs"] == 2 and shared_k1.loc[1, "epochs"] == 1  # E - k epochs per round


def test_a_shared_dense_model_without_the_snapshot_a_run_needs_is_refused_with_the_fix(tmp_path, capsys):
    k0, k1 = _config(tmp_path, "k0", rewind_epoch=0), _config(tmp_path, "k1", rewind_epoch=1)
    shared = tmp_path / "dense"
    assert main(["dense", str(k0), "--out", str(shared), "--rewind-epochs", "0", "2"]) == 2
    assert "--rewind-epochs [2] must be in [0, train.epochs=2)" in capsys.readouterr().err
    assert not shared.exists()
    assert main(["dense", str(k0), "--out", str(shared)]) == 0
    weights = load_checkpoint(shared / "dense.pt")[1].state_dict()
    capsys.readouterr()
    assert main(["run", str(k1), "--out", str(tmp_path / "run"), "--dense", str(shared)]) == 2
    err = capsys.readouterr().err
    assert "has rewind snapshots after epochs [0], not [1]" in err and "--rewind-epochs 0 1" in err
    assert not (tmp_path / "run").exists()
    # The fix it names: the dense job adds the snapshot (training again, to the same dense model).
    assert main(["dense", str(k0), "--out", str(shared), "--rewind-epochs", "0", "1"]) == 0
    assert read_json(shared / "dense.json", checked=True)["rewind_epochs"] == [0, 1]
    again = load_checkpoint(shared / "dense.pt")[1].state_dict()
    assert all(torch.equal(weights[k], again[k]) for k in weights)
    assert main(["run", str(k1), "--out", str(tmp_path / "run"), "--dense", str(shared)]) == 0


def test_an_interrupted_dense_training_asked_for_an_earlier_snapshot_starts_over(tmp_path, caplog):
    """Killed after epoch 2, then asked (a rewind epoch added to the study) for a snapshot after
    epoch 1: resuming at epoch 2 would never save it."""
    cfg = config_from_dict({**copy.deepcopy(TINY), "train": {**TINY["train"], "epochs": 3, "rewind_epoch": 0}})
    with dense_killed_after(2), pytest.raises(KeyboardInterrupt):
        dense_only(cfg, tmp_path / "dense", rewind_epochs=[0])
    assert (tmp_path / "dense/training.pt").exists()
    with caplog.at_level(logging.WARNING, logger="prunebench"):
        dense_only(cfg, tmp_path / "dense", rewind_epochs=[0, 1])
    assert "past rewind snapshot(s) [1] it does not hold; training from epoch 0" in caplog.text
    dense_only(cfg, tmp_path / "whole", rewind_epochs=[0, 1])
    for name in ("dense.pt", "rewind_e1.pt"):
        a, b = (load_checkpoint(tmp_path / d / name)[1].state_dict() for d in ("dense", "whole"))
        assert all(torch.equal(a[k], b[k]) for k in a), name


def test_runs_that_keep_their_weights_need_no_snapshot(tmp_path, capsys):
    finetune = _config(tmp_path, "ft", rewind_epoch=1, rewind="finetune")
    shared = tmp_path / "dense"
    assert main(["dense", str(finetune), "--out", str(shared)]) == 0  # default: no snapshot for finetune
    assert read_json(shared / "dense.json", checked=True)["rewind_epochs"] == []
    assert not list(shared.glob("rewind*.pt"))
    assert main(["run", str(finetune), "--out", str(tmp_path / "run"), "--dense", str(shared)]) == 0
    weights = _config(tmp_path, "w", rewind_epoch=1)
    capsys.readouterr()
    assert main(["run", str(weights), "--out", str(tmp_path / "w"), "--dense", str(shared)]) == 2
    assert "--rewind-epochs 1" in capsys.readouterr().err
