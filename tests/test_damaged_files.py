"""Damaged and missing files, as a table: each is detected by its checksum when it is read; a
disposable or recomputable one is computed again (to the same numbers), the others are refused
with a message naming the file and how to write it again. Nothing damaged is ever used."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from conftest import TINY

from prunebench.cli import main
from prunebench.surgery import load_checkpoint

pytestmark = pytest.mark.slow  # end-to-end runs


def flip(path: Path) -> None:
    """Flip 16 bytes in the middle of the file (the defect report's damage)."""
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    data[mid : mid + 16] = bytes(b ^ 0xFF for b in data[mid : mid + 16])
    path.write_bytes(bytes(data))


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def delete(path: Path) -> None:
    path.unlink()


def _comparable(run: Path) -> pd.DataFrame:
    return pd.read_csv(run / "rounds.csv").drop(columns=["wall_s"])


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path)[1].state_dict()


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One finished run of TINY (with its private dense model) and its config file."""
    tmp = tmp_path_factory.mktemp("damaged")
    config = tmp / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    run = tmp / "run"
    assert main(["run", str(config), "--out", str(run)]) == 0
    assert len(pd.read_csv(run / "rounds.csv")) >= 3, "the damaged-round cases need round 2"
    return config, run


@pytest.fixture
def copy_of(finished, tmp_path):
    config, run = finished
    shutil.copytree(run, tmp_path / "run")
    return config, tmp_path / "run"


# (case, file of the run, damage, what the warning names)
RECOMPUTED = [
    ("a round with flipped bytes", "state/round_002.pt", flip, "content does not match its checksum"),
    ("a truncated round", "state/round_001.pt", truncate, "cannot be read"),
    ("a deleted round", "state/round_002.pt", delete, "round_002.pt is missing"),
    ("the dense round", "state/round_000.pt", flip, "round_000.pt is damaged"),
    ("a truncated dense model", "dense/dense.pt", truncate, "dense.pt is damaged"),
    ("a damaged rewind snapshot", "dense/rewind_e1.pt", flip, "rewind_e1.pt is damaged"),
    ("a damaged dense record", "dense/dense.json", truncate, "dense.json is damaged: it is not valid JSON"),
    ("a damaged run record", "run.json", truncate, None),  # the intact history says which run it is
]


@pytest.mark.parametrize("name, damage, warning", [c[1:] for c in RECOMPUTED], ids=[c[0] for c in RECOMPUTED])
def test_a_damaged_recomputable_file_is_computed_again_to_the_same_result(finished, copy_of, capsys, name, damage,
                                                                          warning):  # fmt: skip
    _, original = finished
    config, run = copy_of
    damage(run / name)
    assert main(["run", str(config), "--out", str(run)]) == 0
    err = capsys.readouterr().err
    if warning:
        assert warning in err and "Traceback" not in err, err
    pd.testing.assert_frame_equal(_comparable(original), _comparable(run))
    for key, value in _weights(original / "final.pt").items():
        assert torch.equal(value, _weights(run / "final.pt")[key]), key


def test_a_damaged_history_is_refused_naming_it_and_replaced_only_when_asked(copy_of, capsys):
    config, run = copy_of
    truncate(run / "state/history.json")
    final = (run / "final.pt").read_bytes()
    assert main(["run", str(config), "--out", str(run)]) == 2
    err = capsys.readouterr().err
    assert "history.json is damaged" in err and "--replace-stale" in err and "Traceback" not in err
    assert (run / "final.pt").read_bytes() == final  # nothing was touched
    assert main(["run", str(config), "--out", str(run), "--replace-stale"]) == 0
    assert "replacing a run that cannot be resumed" in capsys.readouterr().err


def test_a_damaged_shared_dense_model_is_refused_and_retrained_by_its_owner(finished, tmp_path, capsys):
    config, run = finished
    shutil.copytree(run / "dense", tmp_path / "dense")
    flip(tmp_path / "dense/dense.pt")
    out = tmp_path / "run"
    assert main(["run", str(config), "--out", str(out), "--dense", str(tmp_path / "dense")]) == 2
    err = capsys.readouterr().err
    assert "dense.pt is damaged" in err and "prunebench dense CONFIG --out" in err and "Traceback" not in err
    assert not out.exists()  # refused before any file was written
    assert main(["dense", str(config), "--out", str(tmp_path / "dense")]) == 0
    assert "training the dense model again" in capsys.readouterr().err
    assert main(["run", str(config), "--out", str(out), "--dense", str(tmp_path / "dense")]) == 0
    pd.testing.assert_frame_equal(_comparable(run), _comparable(out))


@pytest.mark.parametrize("name, damage", [("rounds.csv", truncate), ("layers.csv", delete), ("final.pt", flip),
                                          ("config.yaml", flip), ("summary.json", flip)])  # fmt: skip
def test_tables_refuse_a_run_whose_files_are_not_those_it_wrote(copy_of, tmp_path, capsys, name, damage):
    _, run = copy_of
    damage(run / name)
    assert main(["tables", str(run), "--out", str(tmp_path / "tables")]) == 2
    err = capsys.readouterr().err
    assert str(run / name) in err and "Traceback" not in err, err
    assert not (tmp_path / "tables").exists()


def test_a_damaged_training_checkpoint_is_discarded(finished, copy_of, capsys):
    """training.pt is disposable: a damaged one means training the phase from its start."""
    _, original = finished
    config, run = copy_of
    (run / "dense/dense.json").unlink()  # the dense model is trained again, finding this checkpoint
    (run / "dense/training.pt").write_bytes(b"not a checkpoint")
    assert main(["run", str(config), "--out", str(run)]) == 0
    assert "training.pt is damaged" in capsys.readouterr().err
    pd.testing.assert_frame_equal(_comparable(original), _comparable(run))


def test_tables_refuse_a_run_whose_shared_dense_model_was_replaced(finished, tmp_path, capsys):
    config, _ = finished
    run, dense = tmp_path / "run", tmp_path / "dense"
    assert main(["run", str(config), "--out", str(run), "--dense", str(dense)]) == 0
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump({**TINY, "train": {**TINY["train"], "lr": 0.04}}))
    assert main(["dense", str(other), "--out", str(dense), "--replace-stale"]) == 0
    assert main(["tables", str(run), "--out", str(tmp_path / "tables")]) == 2
    assert "now holds another dense model" in capsys.readouterr().err
