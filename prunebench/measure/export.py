"""Deployable files of a run's models: TorchScript and ONNX of its dense model and chosen rounds,
each checked against the PyTorch model's outputs, with a ``manifest.json`` that the standalone
device benchmark (workflow/scripts/device_bench.py) reads.

A model is written once however many runs hold it (every run of a seed starts from the same dense
model): files are named by the model and its checkpoint checksum, and the manifest lists, per
file, every (run, round) entry that is that model.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from prunebench import paths, surgery
from prunebench.errors import ConfigError, DamagedFileError
from prunebench.io import atomic_write_text, file_sha256, write_json
from prunebench.measure.cost import complexity, device_bench

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

FORMATS = ("torchscript", "onnx")
SUFFIX = {"torchscript": ".pt", "onnx": ".onnx"}
# An export matches when its outputs differ from the PyTorch model's by at most this much,
# relative to the largest output (a deep untrained ResNet's logits reach 1e8).
TOLERANCE = 1e-4
ENTRY_COLUMNS = (
    "run_id", "dataset", "model", "method", "policy", "seed", "experiment", "round", "variant",
    "params_reduction", "flops_reduction", "val_top1", "test_top1",
)  # fmt: skip


def chosen_rounds(rounds: pd.DataFrame, spec: Sequence[str]) -> list[tuple[int, str]]:
    """(round, variant) pairs from ``spec`` (``final``, ``all`` or round numbers): the dense model
    (round 0, ``dense``) first, the run's result as ``final`` (round 0 too where it pruned
    nothing), any other round as ``round``."""
    available = set(rounds["round"].astype(int))
    final = int(rounds.loc[rounds["final"].astype(bool), "round"].iloc[0])
    chosen = set()
    for item in map(str, spec):
        if item == "final":
            chosen.add(final)
        elif item == "all":
            chosen |= available
        elif item.isdigit() and int(item) in available:
            chosen.add(int(item))
        else:
            raise ConfigError(
                f"--rounds {item!r}: give 'final', 'all' or round numbers of the run "
                f"({min(available)}-{max(available)})"
            )
    pairs = [(0, "dense")] + [(r, "final" if r == final else "round") for r in sorted(chosen - {0})]
    return pairs + ([(0, "final")] if final == 0 and 0 in chosen else [])


def _outputs(model: Any, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
    with torch.no_grad():
        return [model(x) for x in inputs]


def _check(name: str, got: list[torch.Tensor], expected: list[torch.Tensor]) -> float:
    """The largest output difference relative to the largest output; an error above TOLERANCE."""
    scale = max(1.0, max(float(e.abs().max()) for e in expected))
    diff = max(float((g - e).abs().max()) for g, e in zip(got, expected, strict=True)) / scale
    if not diff <= TOLERANCE:
        raise RuntimeError(f"{name}: exported outputs differ from the PyTorch model's by {diff:.2e} (relative)")
    return diff


def to_torchscript(model: nn.Module, example: torch.Tensor) -> torch.jit.ScriptModule:
    """The model traced at batch 1 (eval mode: batch norm uses its running statistics)."""
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", FutureWarning)  # torch 2.9+ marks TorchScript deprecated
        return torch.jit.trace(model.eval(), example[:1], check_trace=False)


def _to_onnx(model: nn.Module, example: torch.Tensor, path: Path) -> None:
    try:
        import onnx  # noqa: F401  (the exporter needs it)
    except ImportError:
        raise ConfigError("--format onnx needs onnx and onnxruntime: pip install onnx onnxruntime") from None
    tmp = path.with_name(path.name + ".tmp")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript-based exporter is marked deprecated
        # The TorchScript-based exporter: the dynamo one needs onnxscript and handles the same
        # static CNNs no better.
        torch.onnx.export(
            model.eval(), (example[:1],), str(tmp), input_names=["input"], output_names=["logits"], dynamo=False
        )
    tmp.replace(path)


def _run_onnx(path: Path, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
    try:
        import onnxruntime as ort
    except ImportError:
        raise ConfigError("checking ONNX files needs onnxruntime: pip install onnxruntime") from None
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return [torch.from_numpy(session.run(None, {name: x.numpy()})[0]) for x in inputs]


def _write_model(model: nn.Module, arch: surgery.Architecture, stem: str, out: Path, formats: Sequence[str]) -> dict:
    """The model's files in ``formats``, each loaded back and checked on four inputs."""
    gen = torch.Generator().manual_seed(0)
    shape = (1, arch.in_channels, arch.image_size, arch.image_size)
    inputs = [torch.randn(shape, generator=gen) for _ in range(4)]
    expected = _outputs(model.eval(), inputs)
    files = {}
    for fmt in formats:
        path = out / f"{stem}{SUFFIX[fmt]}"
        if fmt == "torchscript":
            tmp = path.with_name(path.name + ".tmp")
            to_torchscript(model, inputs[0]).save(str(tmp))
            tmp.replace(path)
            diff = _check(path.name, _outputs(torch.jit.load(str(path)), inputs), expected)
        else:
            _to_onnx(model, inputs[0], path)
            diff = _check(path.name, _run_onnx(path, inputs), expected)
        files[fmt] = {"path": path.name, "sha256": file_sha256(path), "max_relative_error": diff}
    return files


def export_runs(run_dirs: Sequence[Path], out: Path, rounds: Sequence[str], formats: Sequence[str]) -> dict[str, Any]:
    """Export the dense model and the chosen rounds of every run into ``out``; returns the manifest."""
    import pandas as pd

    from prunebench.report.tables import read_run

    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        raise ConfigError(f"--format {' '.join(unknown)}: choose from {', '.join(FORMATS)}")
    out.mkdir(parents=True, exist_ok=True)
    models: dict[str, dict[str, Any]] = {}
    for run_dir in run_dirs:
        experiment = read_run(run_dir)[1]["experiment"]  # checks the run's files first
        table = pd.read_csv(run_dir / paths.ROUNDS)
        for rnd, variant in chosen_rounds(table, rounds):
            checkpoint = paths.round_checkpoint(run_dir / paths.RUN_STATE, rnd)
            if not checkpoint.is_file():
                raise DamagedFileError(f"{checkpoint} is missing; run the experiment again (it resumes) to write it")
            arch, model, _ = surgery.load_checkpoint(checkpoint)
            row = table[table["round"] == rnd].iloc[0]
            sha = file_sha256(checkpoint)
            entry = {
                **{k: row[k].item() if hasattr(row[k], "item") else row[k] for k in ENTRY_COLUMNS if k in row},
                "experiment": experiment,
                "round": rnd,
                "variant": variant,
                "checkpoint_sha256": sha,
            }
            key = surgery_key(arch, model)
            if key not in models:
                stem = f"{arch.model}-{key[:12]}"
                log.info("exporting %s (%s round %d)", stem, row["run_id"], rnd)
                size = complexity(model, arch.example_input())
                models[key] = {
                    "arch": stem,
                    "model": arch.model,
                    "input_shape": [1, arch.in_channels, arch.image_size, arch.image_size],
                    "params": size["params"],
                    "flops": size["flops"],
                    "files": _write_model(model, arch, stem, out, formats),
                    "entries": [],
                }
            models[key]["entries"].append(entry)
    manifest = {
        "format": device_bench.EXPORT_FORMAT,
        "torch": torch.__version__,
        "batch": 1,
        "models": list(models.values()),
    }
    write_json(manifest, out / device_bench.MANIFEST)
    atomic_write_text(_readme(manifest), out / "README.txt")
    return manifest


def surgery_key(arch: surgery.Architecture, model: nn.Module) -> str:
    """Identity of a model: its architecture record and weights (a checkpoint's checksum)."""
    from prunebench.io import checksum

    return checksum({"arch": arch.to_dict(), "state_dict": model.state_dict()})


def _readme(manifest: dict[str, Any]) -> str:
    lines = [
        "Exported by `prunebench export`. On the device (Python 3 with torch, or onnxruntime):",
        "    python3 device_bench.py . --out device.csv",
        "device_bench.py is workflow/scripts/device_bench.py of the prunebench repository.",
        "",
        "file\tparams\tFLOPs\truns",
    ]
    for m in manifest["models"]:
        runs = ", ".join(f"{e['run_id']} r{e['round']}" for e in m["entries"])
        lines.append(f"{m['arch']}\t{m['params']}\t{m['flops']}\t{runs}")
    return "\n".join(lines) + "\n"
