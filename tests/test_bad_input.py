"""Bad input, as a table: each case is refused by `prunebench run` with a message naming the key
and what is allowed, before any file is written; training that diverges stops the run."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from prunebench.cli import main
from tests.conftest import TINY

# (case, config file text or None for TINY, --set assignments, a fragment of the message)
CASES = [
    ("nan lr", None, ["train.lr=.nan"], "'train.lr' must be a finite number"),
    ("infinite lambda0", None, ["prune.policy=aap_acc_params", "prune.policy_options={lambda0: .inf}"], "finite"),
    ("no training images", None, ["data.train_subset=0"], "data.train_subset must be >= 1"),
    ("negative test subset", None, ["data.test_subset=-5"], "data.test_subset must be >= 1"),
    ("negative weight decay", None, ["train.weight_decay=-1"], "train.weight_decay must be >= 0"),
    ("negative crop padding", None, ["data.crop_padding=-1"], "data.crop_padding must be >= 0"),
    ("one class", None, ["data.synthetic.classes=1"], "data.synthetic.classes must be >= 2"),
    ("gamma zero", None, ["train.gamma=0"], "train.gamma must be in (0, 1]"),
    ("rate as a string", None, ["prune.policy_options={rate: '0.3', target: 60}"], "option 'rate' must be float"),
    ("a section reset", None, ["train="], "'train' is a section"),
    ("a broken --set", None, ["train.milestones=[1"], "is not valid YAML"),
    ("empty file", "", [], "is empty"),
    ("top-level list", "- name: x\n", [], "must be a mapping"),
    ("YAML syntax error", "name: [x\n", [], "is not valid YAML"),
    ("a key twice", "name: a\nseed: 1\nname: b\n", [], "'name' is given twice"),
    ("a section not a mapping", "train: 5\n", [], "config section train must be a mapping"),
    ("unknown model", None, ["model.name=lenet999"], "unknown model 'lenet999'; choose one of: lenet300_100"),
    ("unknown dataset", None, ["data.dataset=cifar100"], "unknown dataset 'cifar100'; choose one of"),
    ("unknown model option", None, ["model.options={width: 2}"], "has no option(s) ['width']"),
    (
        "a model too deep for the images",
        None,
        ["model.name=vgg16", "data.synthetic.size=4"],
        "model 'vgg16' (options {}) does not take the 1x4x4 images of dataset 'synthetic'",
    ),
    ("unknown method", None, ["prune.method=nope"], "unknown method 'nope'; choose one of: aap"),
    ("unknown policy", None, ["prune.policy=iterativ"], "unknown policy 'iterativ'"),
    ("unknown method option", None, ["prune.method=aap", "prune.method_options={functon: mean}"], "functon"),
    ("an unknown key", None, ["train.epoch=3"], "unknown config key 'train.epoch' (did you mean 'train.epochs'?)"),
    ("a missing config file", "MISSING", [], "does not exist"),
    ("missing data", None, ["data.dataset=fashion_mnist", "data.download=false"], "FashionMNIST not found under"),
]
if not torch.cuda.is_available():
    CASES.append(("cuda without a GPU", None, ["train.device=cuda"], "no CUDA device is available"))


@pytest.mark.parametrize("text, sets, message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_refused_before_any_file_is_written(tmp_path, capsys, text, sets, message):
    config = tmp_path / "config.yaml"
    if text != "MISSING":
        config.write_text(yaml.safe_dump(TINY) if text is None else text)
    out = tmp_path / "out"
    args = ["run", str(config), "--out", str(out)] + [a for s in sets for a in ("--set", s)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not out.exists()


def test_training_that_diverges_stops_the_run_and_keeps_nothing(tmp_path, capsys):
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({**TINY, "train": {**TINY["train"], "lr": 1e30}}))
    out = tmp_path / "out"
    assert main(["run", str(config), "--out", str(out)]) == 2
    assert "training diverged in epoch 1" in capsys.readouterr().err
    assert not (out / "dense" / "dense.json").exists() and not (out / "summary.json").exists()


def test_an_output_path_under_a_file_is_refused_with_the_fix(tmp_path, capsys):
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(TINY))
    (tmp_path / "notes").write_text("mine")
    assert main(["run", str(config), "--out", str(tmp_path / "notes" / "run")]) == 2
    err = capsys.readouterr().err
    assert "a part of the path is a file, not a directory; choose another path" in err and "Traceback" not in err
    assert (tmp_path / "notes").read_text() == "mine"


def test_an_unexpected_error_is_one_line_and_debug_shows_the_traceback(tmp_path, capsys, monkeypatch):
    import prunebench.run.engine

    def broken(*args, **kwargs):
        raise IndexError("list index out of range")

    monkeypatch.setattr(prunebench.run.engine, "run_experiment", broken)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(TINY))
    assert main(["run", str(config), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "internal error: IndexError: list index out of range" in err and "--debug" in err
    with pytest.raises(IndexError):
        main(["run", str(config), "--out", str(tmp_path / "out"), "--debug"])


def test_a_full_disk_says_so_and_the_run_resumes_once_there_is_space(tmp_path, capsys, monkeypatch):
    import errno

    import prunebench.io

    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(TINY))
    out = tmp_path / "out"
    real = prunebench.io._atomic

    def fills_up(path, write):
        if Path(path).name == "round_002.pt":  # the disk fills during round 2
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(path, write)

    monkeypatch.setattr(prunebench.io, "_atomic", fills_up)
    assert main(["run", str(config), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "no space left on the device writing" in err and "run the same command again" in err
    assert "Traceback" not in err
    round_1 = (out / "state/round_001.pt").stat().st_mtime_ns
    monkeypatch.setattr(prunebench.io, "_atomic", real)
    assert main(["run", str(config), "--out", str(out)]) == 0
    assert (out / "state/round_001.pt").stat().st_mtime_ns == round_1  # resumed after round 1
    assert "resuming tiny after round 1" in (out / "log.txt").read_text()


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_log_file_on_a_full_disk_stops_the_run_with_one_line(tmp_path, capsys):
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(TINY))
    out = tmp_path / "out"
    out.mkdir()
    (out / "log.txt").symlink_to("/dev/full")
    assert main(["run", str(config), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "no space left on the device" in err and "Traceback" not in err and "Logging error" not in err
