"""The matched-architecture control: policy `matched`, count selection, --reference, study wiring."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from conftest import TINY

from prunebench import surgery
from prunebench.cli import main
from prunebench.config import study
from prunebench.errors import ConfigError
from prunebench.select.channels import select_by_count
from prunebench.select.policies import CountSelection, RoundRecord, Step, Stop, make_policy

MATCHED = {"method": "random", "policy": "matched", "policy_options": {"reference": "tiny"}}


def _config(tmp_path: Path, name: str, prune: dict | None = None, **sections) -> Path:
    cfg = yaml.safe_load(yaml.safe_dump(TINY))
    cfg["name"] = name
    if prune is not None:
        cfg["prune"] = prune
    for section, values in sections.items():
        cfg[section].update(values)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _counts(checkpoint: Path) -> dict[str, int]:
    arch, model, _ = surgery.load_checkpoint(str(checkpoint))
    return {g.name: g.size for g in surgery.channel_groups(model, surgery.build_graph(model, arch.example_input()))}


def test_count_selection_removes_the_lowest_down_to_the_count():
    scores = {"a": torch.tensor([3.0, 1.0, 2.0, 0.5]), "b": torch.tensor([1.0, 0.0]), "c": torch.tensor([1.0])}
    assert select_by_count(scores, {"a": 1, "b": 2}) == {"a": [1, 2, 3], "b": [], "c": []}
    assert select_by_count(scores, {"a": 3, "b": 1, "c": 1}) == {"a": [3], "b": [1], "c": []}
    tied = {"a": torch.zeros(4)}  # ties go to the lower index, like every selection
    assert select_by_count(tied, {"a": 2}) == {"a": [0, 1]}
    for bad in (0, 5):
        with pytest.raises(ValueError, match="cannot keep"):
            select_by_count(scores, {"a": bad})


def test_matched_policy_is_one_round_from_the_dense_model():
    policy = make_policy("matched", {"reference": "aap_p"}, max_rounds=30)
    dense = RoundRecord(0, 0, 0.0, 0.0, 0.0, 0)
    with pytest.raises(ConfigError, match="--reference"):
        policy.next_step([dense])
    policy.keep = {"conv1": 3, "fc1": 10}
    step = policy.next_step([dense])
    assert step == Step(0, CountSelection({"conv1": 3, "fc1": 10}))
    done = RoundRecord(1, 0, 80.0, 50.0, 1.0, 500)
    assert isinstance(policy.next_step([dense, done]), Stop)
    assert policy.final_round([dense, done]) == 1 and policy.meets_target(done) and not policy.meets_target(dense)
    for options, message in [({}, "reference must name"), ({"reference": "x", "init": "scratch"}, "has no option")]:
        with pytest.raises(ConfigError, match=message):
            make_policy("matched", options, max_rounds=30)


@pytest.mark.slow
def test_a_matched_run_keeps_the_reference_counts_with_other_channels(tmp_path):
    dense = str(tmp_path / "dense")
    ref = tmp_path / "ref"
    assert main(["run", str(_config(tmp_path, "tiny")), "--out", str(ref), "--dense", dense]) == 0
    out = tmp_path / "matched"
    config = _config(tmp_path, "tiny_random_arch", MATCHED)
    reference = str(ref / "final.pt")
    assert main(["run", str(config), "--out", str(out), "--dense", dense, "--reference", reference]) == 0

    want = _counts(ref / "final.pt")
    assert _counts(out / "final.pt") == want and want != _counts(out / "state" / "round_000.pt")
    ref_arch, mine = surgery.load_checkpoint(reference)[0], surgery.load_checkpoint(str(out / "final.pt"))[0]
    # ILP keeps the largest-norm channels; seeded random ones differ (fc1: 500 channels, some of them cut).
    assert 1 < len(ref_arch.kept["fc1"]) < 499 and mine.kept["fc1"] != ref_arch.kept["fc1"]

    rounds = pd.read_csv(out / "rounds.csv")
    assert rounds["round"].tolist() == [0, 1] and rounds["final"].tolist() == [False, True]
    assert (rounds["policy"] == "matched").all() and rounds.iloc[1]["base_round"] == 0
    assert rounds.iloc[1]["epochs"] == TINY["train"]["epochs"] - TINY["train"]["rewind_epoch"]
    ref_final = pd.read_csv(ref / "rounds.csv").query("final").iloc[0]
    assert rounds.iloc[1]["params"] == ref_final["params"]  # same architecture, same size
    summary = json.loads((out / "summary.json").read_text())
    assert summary["target_met"] and summary["final_round"] == 1
    run = json.loads((out / "run.json").read_text())
    assert run["reference"] == {"path": reference, "experiment": "tiny", "channels": want}
    # Run again: everything is resumed, nothing retrained.
    assert main(["run", str(config), "--out", str(out), "--dense", dense, "--reference", reference]) == 0
    assert pd.read_csv(out / "rounds.csv")["wall_s"].tolist() == rounds["wall_s"].tolist()


def test_matched_runs_refuse_a_missing_or_wrong_reference_before_any_work(tmp_path, capsys):
    config = str(_config(tmp_path, "matched", MATCHED))
    other = surgery.dense_architecture("lenet300_100", 4, 1, 16)  # same data shape, another model
    surgery.save_checkpoint(str(tmp_path / "other.pt"), other, surgery.instantiate(other))
    wider = surgery.dense_architecture("lenet5", 10, 1, 16)  # same model, another dataset's classes
    surgery.save_checkpoint(str(tmp_path / "wider.pt"), wider, surgery.instantiate(wider))
    cases = [
        ([], "policy 'matched' keeps the channels .* of experiment 'tiny': .*--reference RUN_DIR/final.pt"),
        (["--reference", str(tmp_path / "nope.pt")], "nope.pt does not exist; run the reference experiment first"),
        (["--reference", config], "cannot be read as a prunebench file"),
        (["--reference", str(tmp_path / "other.pt")], "is a lenet300_100 .*this run prunes a lenet5"),
        (["--reference", str(tmp_path / "wider.pt")], "10 classes.*this run prunes a lenet5 .*4 classes"),
    ]
    for i, (extra, message) in enumerate(cases):
        out = tmp_path / f"run{i}"
        assert main(["run", config, "--out", str(out), *extra]) == 2
        err = capsys.readouterr().err
        assert re.search(message, err), err
        assert not (out / "dense").exists() and not (out / "state").exists()
    plain = str(_config(tmp_path, "plain"))
    assert main(["run", plain, "--out", str(tmp_path / "p"), "--reference", str(tmp_path / "other.pt")]) == 2
    assert "--reference is only for policy 'matched'" in capsys.readouterr().err


def test_a_reference_on_another_dataset_is_refused_by_its_config(tmp_path):
    from prunebench.config.run import load_config
    from prunebench.select.reference import reference_channels

    arch = surgery.dense_architecture("lenet5", 4, 1, 16)
    (tmp_path / "ref").mkdir()
    surgery.save_checkpoint(str(tmp_path / "ref" / "final.pt"), arch, surgery.instantiate(arch))
    cfg = load_config(_config(tmp_path, "m", MATCHED))
    assert reference_channels(cfg, tmp_path / "ref" / "final.pt") == {"conv1": 20, "conv2": 50, "fc1": 500}
    (tmp_path / "ref" / "config.yaml").write_text(yaml.safe_dump({"data": {"dataset": "mnist"}}))
    with pytest.raises(ConfigError, match="comes from a run on mnist, this one on synthetic"):
        reference_channels(cfg, tmp_path / "ref" / "final.pt")
    with pytest.raises(ConfigError, match="prune.min_channels"):
        arch.kept = {"conv1": [3]}
        surgery.save_checkpoint(str(tmp_path / "one.pt"), arch, surgery.instantiate(arch))
        cfg.prune.min_channels = 2
        reference_channels(cfg, tmp_path / "one.pt")


def _study(**experiments):
    return {
        "results": "r",
        "seeds": [0, 1],
        "models": ["lenet5", "lenet300_100"],
        "base": {"data": {"dataset": "synthetic"}, "train": {"epochs": 4, "rewind_epoch": 2, "lr": 0.05}},
        "experiments": {
            "aap_p": {"prune": {"method": "aap", "policy": "aap_acc_params"}, "models": ["lenet5"]},
            "ilp": {"prune": {"method": "ilp"}},
            **experiments,
        },
    }


def _matched(reference, **extra):
    return {"prune": {"method": "random", "policy": "matched", "policy_options": {"reference": reference}}, **extra}


def test_a_study_gives_matched_runs_their_reference():
    runs = study.check_study(_study(ilp_arch=_matched("ilp"), aap_arch=_matched("aap_p", models=["lenet5"])))
    refs = {(r.model, r.experiment, r.seed): r.reference for r in runs}
    assert refs[("lenet300_100", "ilp_arch", 1)] == "ilp" and refs[("lenet5", "aap_arch", 0)] == "aap_p"
    assert refs[("lenet5", "aap_p", 0)] is None and len(runs) == 2 + 4 + 4 + 2


@pytest.mark.parametrize(
    "experiments,message",
    [
        ({"x": _matched("aap_pp")}, "experiment 'x': policy 'matched' references 'aap_pp', which is not an experiment"),
        ({"x": _matched("aap_p")}, "'aap_p', which does not run on lenet300_100; restrict 'x' to models: .'lenet5'."),
        ({"x": _matched("ilp"), "y": _matched("x")}, "experiment 'y'.* 'x', which is matched itself"),
        ({"x": _matched("x")}, "experiment 'x'.* 'x', which is matched itself"),
        ({"x": {"prune": {"method": "random", "policy": "matched"}}}, "experiment 'x'.*reference must name"),
    ],
)
def test_a_study_refuses_a_bad_reference(experiments, message):
    with pytest.raises(ConfigError, match=message):
        study.check_study(_study(**experiments))
