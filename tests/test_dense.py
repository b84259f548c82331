"""The dense stage: one dense model per (model, seed, schedule), a snapshot per rewind epoch."""

from __future__ import annotations

import copy

import pandas as pd
import torch
import yaml
from conftest import TINY

from prunebench.cli import main
from prunebench.config import config_from_dict, dense_hash
from prunebench.io import read_json
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
