"""Export (TorchScript, ONNX, manifest.json), the standalone device benchmark, the host's latency
table in its columns, and the import of device CSVs into a study's tables."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import TINY

from prunebench import paths, surgery
from prunebench.config.run import config_from_dict
from prunebench.errors import ConfigError, DamagedFileError
from prunebench.measure.cost import DEVICE_BENCH
from prunebench.measure.export import _write_model, export_runs
from prunebench.models import MODELS
from prunebench.report.tables import devices_table, latency_table, speedup_pairs

SHAPES = {"lenet5": (1, 28), "lenet300_100": (1, 28)}
# What device_bench.py must run without: everything of prunebench's stack but torch.
FORBIDDEN = ("prunebench", "pandas", "torch_pruning", "snakemake", "matplotlib", "yaml", "fvcore")


def _pruned(name: str) -> tuple[surgery.Architecture, torch.nn.Module]:
    channels, size = SHAPES.get(name, (3, 32))
    arch = surgery.dense_architecture(name, 10, channels, size, None)
    model = surgery.instantiate(arch).eval()
    groups = surgery.channel_groups(model, surgery.build_graph(model, arch.example_input()))
    # Every third channel of every group: odd channel counts, as real pruning leaves them.
    arch = surgery.remove_channels(model, arch, {g.name: list(range(0, g.size, 3)) for g in groups if g.size > 3})
    return arch, model.eval()


# The deepest ones (5 s for ResNet-101) only in the full run: their blocks are ResNet-50's and -56's.
ZOO = [pytest.param(n, marks=pytest.mark.full) if n in ("resnet101", "resnet110") else n for n in sorted(MODELS)]


@pytest.mark.parametrize("name", ZOO)
def test_every_zoo_model_exports_to_torchscript_matching_its_outputs(name, tmp_path):
    arch, model = _pruned(name)
    files = _write_model(model, arch, name, tmp_path, ["torchscript"])
    loaded = torch.jit.load(str(tmp_path / files["torchscript"]["path"]))
    x = arch.example_input()
    with torch.no_grad():
        scale = max(1.0, float(model(x).abs().max()))
        assert float((loaded(x) - model(x)).abs().max()) / scale <= 1e-4


@pytest.mark.parametrize("name", ["shufflenetv2", "resnet56", "vgg16", "mobilenetv2"])
def test_onnx_exports_match_under_onnxruntime(name, tmp_path):
    arch, model = _pruned(name)
    files = _write_model(model, arch, name, tmp_path, ["onnx"])
    assert files["onnx"]["max_relative_error"] <= 1e-4
    import onnxruntime as ort

    session = ort.InferenceSession(str(tmp_path / files["onnx"]["path"]))
    x = arch.example_input()
    with torch.no_grad():
        torch.testing.assert_close(
            torch.from_numpy(session.run(None, {"input": x.numpy()})[0]), model(x), rtol=1e-4, atol=1e-4
        )


def test_shufflenet_keeps_its_shuffle_opaque_to_torch_pruning_but_not_to_tracing():
    from prunebench.models.shufflenet import ChannelShuffle

    shuffle = ChannelShuffle(2)
    x = torch.arange(8.0).view(1, 4, 1, 2).requires_grad_()
    assert type(shuffle(x).grad_fn).__name__ == "_ShuffleFnBackward"  # what Torch-Pruning sees
    traced = torch.jit.trace(shuffle, x.detach())
    assert "prim::PythonOp" not in str(traced.graph)  # a Python function cannot be saved
    torch.testing.assert_close(traced(x.detach()), shuffle(x).detach())


def test_a_mismatching_export_is_refused():
    from prunebench.measure.export import _check

    with pytest.raises(RuntimeError, match="differ from the PyTorch model"):
        _check("m.pt", [torch.ones(1, 3)], [torch.ones(1, 3) * 1.01])


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """Two finished LeNet-5 runs (real training and surgery) sharing one dense model."""
    from prunebench.run.engine import run_experiment

    root = tmp_path_factory.mktemp("runs")
    dense = root / "dense"
    dirs = []
    for name, rate in (("a", 0.3), ("b", 0.5)):
        cfg = config_from_dict(
            {
                **TINY,
                "name": name,
                "train": {**TINY["train"], "epochs": 1, "rewind_epoch": 0},
                "prune": {**TINY["prune"], "policy_options": {"rate": rate, "target": 40}},
            }
        )
        run_experiment(cfg, root / name, dense, experiment=f"ilp_{name}")
        dirs.append(root / name)
    return dirs


@pytest.fixture(scope="module")
def export(two_runs, tmp_path_factory):
    out = tmp_path_factory.mktemp("export")
    return out, export_runs(two_runs, out, ["all"], ["torchscript", "onnx"])


def test_export_writes_each_model_once_with_every_run_round_that_is_it(two_runs, export):
    out, manifest = export
    rounds = {d.name: pd.read_csv(d / paths.ROUNDS) for d in two_runs}
    entries = [(e["run_id"], e["round"]) for m in manifest["models"] for e in m["entries"]]
    assert sorted(entries) == sorted((r, int(n)) for r, t in rounds.items() for n in t["round"])
    dense = [m for m in manifest["models"] if any(e["variant"] == "dense" for e in m["entries"])]
    assert len(dense) == 1 and {e["run_id"] for e in dense[0]["entries"]} == {"a", "b"}  # one shared file
    for m in manifest["models"]:
        assert m["input_shape"] == [1, 1, 16, 16] and m["params"] > 0 and m["flops"] > 0
        for entry in m["entries"]:
            row = rounds[entry["run_id"]].query(f"round == {entry['round']}").iloc[0]
            assert (m["params"], m["flops"]) == (row["params"], row["flops"])  # the engine's own counts
        for f in m["files"].values():
            assert (out / f["path"]).is_file() and f["max_relative_error"] <= 1e-4
    finals = [e for m in manifest["models"] for e in m["entries"] if e["variant"] == "final"]
    assert sorted(e["run_id"] for e in finals) == ["a", "b"]


def test_export_rounds_default_to_dense_and_final_and_bad_ones_are_refused(two_runs, tmp_path):
    manifest = export_runs(two_runs[:1], tmp_path / "e", ["final"], ["torchscript"])
    assert sorted(e["variant"] for m in manifest["models"] for e in m["entries"]) == ["dense", "final"]
    with pytest.raises(ConfigError, match="round numbers of the run"):
        export_runs(two_runs[:1], tmp_path / "f", ["99"], ["torchscript"])


def _bench(export_dir: Path, out: Path, *args: str) -> subprocess.CompletedProcess:
    """device_bench.py in a child that cannot import prunebench's stack (only torch and onnxruntime)."""
    guard = (
        "import sys, importlib.abc\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        f"        if name.split('.')[0] in {FORBIDDEN!r}:\n"
        "            raise ImportError(f'device_bench.py imported {name}')\n"
        "sys.meta_path.insert(0, Block())\n"
        f"sys.argv = ['device_bench.py', *{[str(export_dir), '--out', str(out), *args]!r}]\n"
        f"import runpy; runpy.run_path({str(DEVICE_BENCH)!r}, run_name='__main__')\n"
    )
    return subprocess.run([sys.executable, "-c", guard], capture_output=True, text=True, timeout=300)


def test_device_bench_runs_alone_on_an_export_and_writes_fps_and_percentiles(export, tmp_path):
    out_dir, manifest = export
    out = tmp_path / "pi.csv"
    done = _bench(
        out_dir, out, "--backend", "torchscript_frozen", "onnxruntime", "--threads", "1", "2",
        "--trials", "3", "--frames", "2", "--warmup", "1", "--device", "test-board",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(out.open()))
    entries = sum(len(m["entries"]) for m in manifest["models"])
    assert len(rows) == entries * 2 * 2  # every entry x 2 backends x 2 thread counts
    for row in rows:
        assert row["device"] == "test-board" and row["cpu"] and row["trials"] == "3" and row["frames"] == "2"
        assert float(row["fps_mean"]) > 0 and float(row["fps_std"]) >= 0
        assert float(row["latency_ms"]) <= float(row["latency_p90_ms"]) <= float(row["latency_p99_ms"])
    assert {r["backend"] for r in rows} == {"torchscript_frozen", "onnxruntime"}


def test_device_bench_refuses_a_file_that_is_not_the_exported_one(export, tmp_path):
    out_dir, manifest = export
    copy = tmp_path / "copy"
    copy.mkdir()
    for f in out_dir.iterdir():
        (copy / f.name).write_bytes(f.read_bytes())
    victim = copy / manifest["models"][0]["files"]["torchscript"]["path"]
    victim.write_bytes(victim.read_bytes()[:-10])
    done = _bench(copy, tmp_path / "x.csv", "--trials", "1", "--frames", "1", "--warmup", "0")
    assert done.returncode != 0 and "not the file the manifest names" in done.stderr


def test_host_latency_rows_are_device_bench_rows_and_device_csvs_join_them(two_runs, export, tmp_path):
    host = latency_table(two_runs, [1], warmup=1, repeats=4).assign(source="host")
    assert sorted(host["backend"].unique()) == ["eager", "torchscript_frozen"]
    assert len(host) == 2 * 2 * 2  # runs x (dense, final) x backends
    assert (host["fps_mean"] > 0).all() and (host["trials"] == 4).all() and (host["frames"] == 1).all()
    out_dir, _ = export
    device_csv = tmp_path / "pi.csv"
    done = _bench(out_dir, device_csv, "--threads", "1", "--trials", "2", "--frames", "1", "--device", "pi")
    assert done.returncode == 0, done.stderr
    table = devices_table(host, [device_csv], two_runs)
    assert set(table["device"]) == {host["device"].iloc[0], "pi"}
    pairs = speedup_pairs(table)
    pi = pairs[pairs["device"] == "pi"]
    # The device timed every round; each pruned one is paired with its run's dense model on the pi.
    assert len(pi) == sum(len(pd.read_csv(d / paths.ROUNDS)) - 1 for d in two_runs)
    assert (pairs["ideal_speedup"] > 1).all() and (pairs["efficiency"] > 0).all()

    stale = pd.read_csv(device_csv)
    stale.loc[0, "checkpoint_sha256"] = "0" * 64
    stale.to_csv(tmp_path / "stale.csv", index=False)
    with pytest.raises(DamagedFileError, match="no longer has that model"):
        devices_table(host, [tmp_path / "stale.csv"], two_runs)
    pd.read_csv(device_csv).assign(run_id="other").to_csv(tmp_path / "other.csv", index=False)
    with pytest.raises(DamagedFileError, match="is not a run of this study"):
        devices_table(host, [tmp_path / "other.csv"], two_runs)
    pd.read_csv(device_csv).drop(columns="fps_mean").to_csv(tmp_path / "old.csv", index=False)
    with pytest.raises(DamagedFileError, match="lacks columns fps_mean"):
        devices_table(host, [tmp_path / "old.csv"], two_runs)
