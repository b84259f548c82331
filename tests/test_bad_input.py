"""Bad input, as a table: each case is refused by `prunebench run` with a message naming the key
and what is allowed, before any file is written; training that diverges stops the run."""

from __future__ import annotations

import pytest
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
]


@pytest.mark.parametrize("text, sets, message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_refused_before_any_file_is_written(tmp_path, capsys, text, sets, message):
    config = tmp_path / "config.yaml"
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
