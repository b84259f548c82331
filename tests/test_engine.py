"""End-to-end runs through the real CLI on synthetic data: results, resume after kill, plugins."""

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from conftest import TINY

from prunebench.cli import main

pytestmark = pytest.mark.slow


def _write(tmp_path: Path, name: str, overrides: dict | None = None) -> Path:
    cfg = yaml.safe_load(yaml.safe_dump(TINY))
    for section, values in (overrides or {}).items():
        if isinstance(values, dict):
            cfg.setdefault(section, {}).update(values)
        else:
            cfg[section] = values
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _comparable(csv: Path) -> pd.DataFrame:
    return pd.read_csv(csv).drop(columns=["wall_s"])


def test_cli_run_writes_the_documented_results(tmp_path, capsys):
    out = tmp_path / "my run's [1] $HOME ü"  # paths with spaces and odd characters work
    assert main(["run", str(_write(tmp_path, "tiny")), "--out", str(out)]) == 0
    rounds = pd.read_csv(out / "rounds.csv")
    assert rounds["round"].tolist() == list(range(len(rounds))) and len(rounds) >= 2
    assert rounds.iloc[-1]["params_reduction"] >= 60
    assert rounds["params"].is_monotonic_decreasing
    assert rounds["final"].tolist() == [False] * (len(rounds) - 1) + [True]
    assert (rounds["flops"] == 2 * rounds["macs"]).all()
    layers = pd.read_csv(out / "layers.csv")
    assert set(layers["group"]) == {"conv1", "conv2", "fc1"}
    assert (layers["channels_after"] <= layers["channels_before"]).all()
    written = ("config.yaml", "env.json", "summary.json", "final.pt", "dense/dense.pt", "dense/rewind_e1.pt", "log.txt")
    for name in written:
        assert (out / name).exists(), name
    torch.load(out / "final.pt", weights_only=True)
    assert main(["measure", str(out / "final.pt"), "--repeats", "3", "--warmup", "1"]) == 0
    assert "channels per group" in capsys.readouterr().out


def test_a_plugin_file_in_a_methods_directory_is_discovered_and_runs(tmp_path, monkeypatch, capsys):
    plugins = tmp_path / "my_methods"
    plugins.mkdir()
    (plugins / "last_first.py").write_text(
        "import torch\n"
        "from prunebench.plugin import Method\n\n"
        "class LastFirst(Method):\n"
        "    name = 'last_first'\n"
        "    summary = 'prunes the highest-numbered channels first'\n\n"
        "    def score(self, ctx):\n"
        "        return {g.name: -torch.arange(g.size, dtype=torch.float64) for g in ctx.groups}\n"
    )
    monkeypatch.setenv("PRUNEBENCH_METHODS_PATH", str(plugins))
    assert main(["methods"]) == 0
    listing = capsys.readouterr().out
    assert "last_first" in listing
    # Every method's and policy's options with their defaults, from their Options dataclasses.
    assert "method_options: sparsity=0.0001" in listing and "needs: batch_norm" in listing
    assert "policy_options: rate=0.2, metric='params', target=90.0, scope='global'" in listing
    out = tmp_path / "run"
    config = _write(tmp_path, "plugin", {"prune": {"method": "last_first"}})
    assert main(["run", str(config), "--out", str(out)]) == 0
    from prunebench.surgery import load_checkpoint

    arch = load_checkpoint(str(out / "final.pt"))[0]
    assert arch.kept  # something was pruned, and in every pruned group the low ids survive
    for kept in arch.kept.values():
        assert kept == list(range(len(kept)))


def test_one_shot_and_the_other_rewind_modes(tmp_path):
    for rewind in ("lr", "finetune"):
        out = tmp_path / rewind
        config = _write(
            tmp_path,
            rewind,
            {"train": {"rewind": rewind}, "prune": {"method": "l1", "policy": None, "policy_options": {"target": 50}}},
        )
        assert main(["run", str(config), "--out", str(out), "--dense", str(tmp_path / "dense")]) == 0
        rounds = pd.read_csv(out / "rounds.csv")
        assert rounds["policy"].iloc[0] == "one_shot" and len(rounds) == 2
        assert 50 <= rounds.iloc[-1]["params_reduction"] < 55  # lands on the target, not far past it


def test_bad_input_is_refused_with_the_choices(tmp_path, capsys):
    assert main(["run", str(_write(tmp_path, "m", {"prune": {"method": "nope"}})), "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert "unknown method 'nope'; choose one of: aap, fpgm" in err and "PRUNEBENCH_METHODS_PATH" in err
    assert main(["run", str(_write(tmp_path, "d", {"data": {"dataset": "svhn"}})), "--out", str(tmp_path / "b")]) == 2
    assert "unknown dataset 'svhn'" in capsys.readouterr().err
    assert (
        main(
            [
                "run",
                str(_write(tmp_path, "o", {"model": {"name": "lenet5", "options": {"width": 2}}})),
                "--out",
                str(tmp_path / "c"),
            ]
        )
        == 2
    )
    assert "has no option(s) ['width']" in capsys.readouterr().err


def test_the_readme_plugin_example_is_discovered_and_scores(tmp_path, monkeypatch, capsys):
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    code = readme.split("# methods/bn_scale.py\n", 1)[1].split("```", 1)[0]
    (tmp_path / "bn_scale.py").write_text(code)
    monkeypatch.setenv("PRUNEBENCH_METHODS_PATH", str(tmp_path))
    from prunebench import surgery
    from prunebench.score.contract import ScoringContext, make_method

    method = make_method("bn_scale", {"power": 2})
    arch = surgery.dense_architecture("resnet20", 10, 3, 32)
    model = surgery.instantiate(arch).eval()
    groups = surgery.channel_groups(model, surgery.build_graph(model, arch.example_input()))
    scores = method.score(ScoringContext(model, groups, arch.example_input(2), torch.Generator(), 1))
    assert {g.name for g in groups} == set(scores) and all(
        s.shape == (g.size,) for g, s in zip(groups, scores.values(), strict=True)
    )
    from prunebench.score.check import check_method

    lines = check_method("bn_scale", {}, ["lenet5", "resnet20"])
    assert lines[0].startswith("lenet5: refused before any training") and lines[1].startswith("resnet20: ok")


def test_adaptive_run_rolls_back_and_returns_a_round_within_the_target(tmp_path):
    config = Path(__file__).resolve().parents[1] / "configs/examples/synthetic_adaptive.yaml"
    out = tmp_path / "adaptive"
    assert (
        main(["run", str(config), "--out", str(out), "--set", "prune.max_rounds=12", "--set", "measure.latency=false"])
        == 0
    )
    rounds = pd.read_csv(out / "rounds.csv")
    assert {"threshold", "lambda", "rollbacks", "acceptable", "rolled_back_to", "stop_reason"} <= set(rounds.columns)
    failed = rounds[~rounds["acceptable"]]
    assert len(failed) >= 1 and failed["rolled_back_to"].notna().all()
    after = rounds[rounds["base_round"].isin(failed["rolled_back_to"]) & (rounds["round"] > failed["round"].min())]
    assert (after["lambda"] < 0.5).all()  # restarts are more conservative
    summary = json.loads((out / "summary.json").read_text())
    assert summary["target_met"] and summary["final"]["val_drop"] <= 1.0
    assert rounds["stop_reason"].notna().sum() == 1 and rounds["stop_reason"].iloc[-1].startswith("round budget")
    # The table alone replays the controller: its decisions match what the run recorded.
    from prunebench.select.policies import RoundRecord, make_policy

    records = [
        RoundRecord(r.round, r.base_round, r.params_reduction, r.flops_reduction, r.val_drop, r.removed)
        for r in rounds.itertuples()
    ]
    replay = make_policy("aap_acc_params", {"target": 1.0, "lambda0": 0.5}, 12).describe(records)
    assert [d["threshold"] for d in replay] == pytest.approx(rounds["threshold"].tolist())


@pytest.mark.parametrize("model", ["mobilenetv2", "shufflenetv2", "resnet20", "vgg11", "lenet300_100"])
@pytest.mark.parametrize(
    "method,policy,options",
    [
        ("aap", "aap_acc_params", {"target": 100.0, "lambda0": 1.0}),
        pytest.param("ilp_mean", "iterative", {"rate": 0.3, "target": 20}, marks=pytest.mark.full),
        *(
            pytest.param(m, "iterative", {"rate": 0.3, "target": 20}, marks=pytest.mark.full)
            for m in ("fpgm", "taylor", "hrank")
        ),
    ],
)
def test_every_kind_of_architecture_prunes_end_to_end(tmp_path, model, method, policy, options):
    _prune_end_to_end(tmp_path, model, method, policy, options)


@pytest.mark.full
@pytest.mark.parametrize("model", ["mobilenetv2", "shufflenetv2", "resnet20", "vgg11"])  # LeNets: no batch norm
def test_slimming_prunes_every_architecture_with_batch_norms_end_to_end(tmp_path, model):
    _prune_end_to_end(tmp_path, model, "slimming", "one_shot", {"target": 20})


def _prune_end_to_end(tmp_path, model, method, policy, options):
    from prunebench.config.run import config_from_dict
    from prunebench.run.engine import run_experiment

    size, channels = (28, 1) if model.startswith("lenet") else (32, 3)
    if model == "mobilenetv2":
        size = 16  # its CIFAR layout (297.5 M MACs at 32x32) keeps stride 1 until 32x32 maps: 4x cheaper
    cfg = config_from_dict(
        {
            "data": {
                "dataset": "synthetic",
                "val_size": 16,
                "synthetic": {"size": size, "channels": channels, "classes": 4, "train": 48, "test": 16},
            },
            "model": {"name": model},
            "train": {"epochs": 1, "rewind_epoch": 0, "batch_size": 16, "eval_batch_size": 16, "lr": 0.01},
            "prune": {"method": method, "policy": policy, "policy_options": options, "max_rounds": 2},
            "measure": {"latency": False},
        }
    )
    summary = run_experiment(cfg, tmp_path / "run")
    assert summary["final"]["params_reduction"] > 0
    from prunebench.surgery import load_checkpoint

    arch, pruned, _ = load_checkpoint(str(tmp_path / "run" / "final.pt"))
    assert arch.kept and sum(p.numel() for p in pruned.parameters()) == summary["final"]["params"]


def test_method_files_are_executed_once_per_process_and_classes_are_stable(tmp_path, monkeypatch):
    from prunebench.score.contract import discover_methods

    plugins = tmp_path / "my_methods"
    plugins.mkdir()
    (plugins / "counted.py").write_text(
        "import builtins\nfrom prunebench.plugin import Method\n\n"
        "builtins.counted_executions = getattr(builtins, 'counted_executions', 0) + 1\n\n"
        "class Counted(Method):\n    name = 'counted'\n    summary = 'x'\n\n"
        "    def score(self, ctx):\n        return {}\n"
    )
    monkeypatch.setenv("PRUNEBENCH_METHODS_PATH", str(plugins))
    first, second = discover_methods(), discover_methods()
    assert first["counted"] is second["counted"] and first["ilp"] is second["ilp"]
    import builtins

    assert builtins.counted_executions == 1


def test_a_plugin_importing_a_moved_module_is_told_where_it_went(tmp_path, monkeypatch):
    from prunebench.errors import ConfigError
    from prunebench.score.contract import discover_methods

    plugins = tmp_path / "old_methods"
    plugins.mkdir()
    (plugins / "old.py").write_text("from prunebench.methods import Method\n")
    monkeypatch.setenv("PRUNEBENCH_METHODS_PATH", str(plugins))
    with pytest.raises(ConfigError, match=r"old\.py imports prunebench\.methods.*from prunebench\.plugin"):
        discover_methods()


@pytest.mark.parametrize("policy", ["iterative", "aap_params"])
def test_round_to_leaves_every_pruned_group_a_multiple_of_channels(tmp_path, policy):
    from prunebench.config.run import config_from_dict, config_hash
    from prunebench.report.tables import write_tables
    from prunebench.run.engine import run_experiment

    options = {"rate": 0.3, "target": 50} if policy == "iterative" else {"target": 50, "lambda0": 0.5}
    method = "ilp" if policy == "iterative" else "aap"
    raw = {**TINY, "train": {**TINY["train"], "epochs": 1, "rewind_epoch": 0}}
    raw["prune"] = {"method": method, "policy": policy, "policy_options": options, "max_rounds": 3, "round_to": 4}
    cfg = config_from_dict(raw)
    assert config_hash(cfg) != config_hash(config_from_dict({**raw, "prune": {**raw["prune"], "round_to": 1}}))
    run_experiment(cfg, tmp_path / "run")
    layers = pd.read_csv(tmp_path / "run" / "layers.csv")
    pruned = layers[layers["channels_after"] < layers["channels_before"]]
    assert len(pruned), "nothing was pruned: the test proves nothing"
    assert ((pruned["channels_after"] % 4 == 0) | (pruned["channels_after"] == pruned["original_channels"])).all()
    write_tables([tmp_path / "run"], tmp_path / "tables")
    assert pd.read_csv(tmp_path / "tables" / "runs.csv")["round_to"].tolist() == [4]
