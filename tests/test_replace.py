"""--replace-stale and run identity: a run of another config (threads included) is refused
before anything is touched; replaced only when asked, with a warning first; a replacement that
fails leaves the directory as it was."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import TINY

from prunebench.cli import main

pytestmark = pytest.mark.slow  # end-to-end runs


def tree(directory: Path) -> dict[str, str]:
    """Every file below ``directory`` (the appended log aside) and its content's digest."""
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file() and p.name != "log.txt"
    }


def config(tmp_path: Path, name: str, **train) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({**TINY, "train": {**TINY["train"], **train}}))
    return path


@pytest.fixture
def finished(tmp_path):
    out = tmp_path / "run"
    assert main(["run", str(config(tmp_path, "a")), "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize("change", [{"threads": 2}, {"lr": 0.04}], ids=["another thread count", "another lr"])
def test_a_run_of_another_config_is_refused_untouched(tmp_path, finished, capsys, change):
    before = tree(finished)
    assert main(["run", str(config(tmp_path, "b", **change)), "--out", str(finished)]) == 2
    err = capsys.readouterr().err
    assert "holds the run of another config" in err and "--replace-stale" in err
    assert tree(finished) == before


def test_replace_stale_says_so_first_and_replaces_the_whole_run(tmp_path, finished, capsys):
    assert main(["run", str(config(tmp_path, "b", lr=0.04)), "--out", str(finished), "--replace-stale"]) == 0
    err = capsys.readouterr().err
    assert "replacing the run of another config" in err and "kept in" in err
    fresh = tmp_path / "fresh"
    assert main(["run", str(config(tmp_path, "b", lr=0.04)), "--out", str(fresh)]) == 0
    assert tree(finished).keys() == tree(fresh).keys()  # nothing of the old run is left, no stash
    same = [pd.read_csv(d / "rounds.csv").drop(columns="wall_s") for d in (finished, fresh)]
    pd.testing.assert_frame_equal(*same)


def test_a_replacement_that_fails_leaves_the_directory_as_it_was(tmp_path, finished, capsys):
    before = tree(finished)
    diverges = config(tmp_path, "b", lr=1e30)
    assert main(["run", str(diverges), "--out", str(finished), "--replace-stale"]) == 2
    err = capsys.readouterr().err
    assert "training diverged" in err and "holds the run of another config as before" in err
    assert tree(finished) == before and not list(finished.glob(".replaced-*"))


def test_a_shared_dense_model_of_another_config_is_refused_before_anything_is_touched(tmp_path, finished, capsys):
    before = tree(finished)
    other = config(tmp_path, "b", lr=0.04)
    args = ["--out", str(finished), "--dense", str(finished / "dense"), "--replace-stale"]
    assert main(["run", str(other)] + args) == 2
    assert "holds the dense model of another config" in capsys.readouterr().err
    assert tree(finished) == before


def test_an_interrupted_replacement_keeps_the_new_run_to_resume(tmp_path, finished, capsys, monkeypatch):
    """Ctrl-C (like kill -9) is no failure of the new run: it resumes; the old run stays aside
    until it finishes."""
    import prunebench.run.engine

    real, calls = prunebench.run.engine.train_epochs, []

    def interrupted_in_round_2(*args, **kwargs):
        calls.append(args[5])
        if args[5][1] == "round2":
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(prunebench.run.engine, "train_epochs", interrupted_in_round_2)
    other = config(tmp_path, "b", lr=0.04)
    assert main(["run", str(other), "--out", str(finished), "--replace-stale"]) == 130
    assert "resumes when started again" in capsys.readouterr().err
    assert len(list(finished.glob(".replaced-*"))) == 1
    round_1 = (finished / "state/round_001.pt").stat().st_mtime_ns
    monkeypatch.setattr(prunebench.run.engine, "train_epochs", real)
    assert main(["run", str(other), "--out", str(finished), "--replace-stale"]) == 0
    assert (finished / "state/round_001.pt").stat().st_mtime_ns == round_1  # resumed, not restarted
    assert not list(finished.glob(".replaced-*"))


def test_the_old_config_takes_its_run_back_after_an_interrupted_replacement(tmp_path, finished, capsys, monkeypatch):
    import prunebench.run.engine

    before = tree(finished)
    real = prunebench.run.engine.train_epochs

    def interrupted(*args, **kwargs):
        if args[5][1] == "round1":
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(prunebench.run.engine, "train_epochs", interrupted)
    assert main(["run", str(config(tmp_path, "b", lr=0.04)), "--out", str(finished), "--replace-stale"]) == 130
    monkeypatch.setattr(prunebench.run.engine, "train_epochs", real)
    capsys.readouterr()
    assert main(["run", str(config(tmp_path, "a")), "--out", str(finished), "--replace-stale"]) == 0
    assert "took back the run kept in" in capsys.readouterr().err
    after = tree(finished)
    assert {k: v for k, v in after.items() if k != "env.json"} == {k: v for k, v in before.items() if k != "env.json"}
