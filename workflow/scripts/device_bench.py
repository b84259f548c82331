#!/usr/bin/env python3
"""Throughput and latency of exported models on the machine it runs on (a Raspberry Pi, a laptop,
a server): one file, standard library plus torch (TorchScript files) or onnxruntime (ONNX files).

    python3 device_bench.py EXPORT_DIR --out FILE.csv [--backend torchscript_frozen onnxruntime]
                            [--threads 1 all] [--trials 10] [--frames 5] [--warmup 10] [--device NAME]

EXPORT_DIR is what ``prunebench export`` wrote: model files and ``manifest.json``. Every file is
checked against the SHA-256 the manifest gives it before it is timed. The protocol is the AAP
paper's (frames per second averaged over 10 trials, batch 1): after ``warmup`` passes per model,
each of ``trials`` trials times ``frames`` single-image forward passes of every model in turn (the
models interleave, so a slow spell of the machine hits them alike and their ratio stays fair).
A trial's fps is frames / its time; the CSV gives the mean and standard deviation over trials and
the percentiles of the single-pass latencies, one row per (manifest entry, backend, threads), with
the machine's record: board model (/proc/device-tree/model), CPU, governor, temperature and the
firmware's throttling flags (vcgencmd get_throttled) before and after, where the board reports
them. prunebench also imports this file for its own host measurements (``prunebench latency``), so
the host and the devices are timed by the same code.

Backends: ``torchscript`` (the file as loaded), ``torchscript_frozen`` (torch.jit.freeze and
optimize_for_inference: constants folded, conv+bn fused), ``onnxruntime``. Nothing here imports
prunebench, pandas, torch-pruning or snakemake: keep it that way (tests/test_export.py checks it).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

# The protocol's defaults (prunebench's latency defaults come from here: one source).
WARMUP = 10  # untimed passes per model before the trials
TRIALS = 10  # the paper's "10 trials"
FRAMES = 5  # timed single-image passes per model per trial
BACKENDS = ("torchscript", "torchscript_frozen", "onnxruntime")
MANIFEST = "manifest.json"
EXPORT_FORMAT = "prunebench-export/1"
# Columns of the CSV (prunebench's tables read them by these names).
MACHINE_COLUMNS = ("device", "board", "cpu", "machine", "os", "cpu_count", "governor")
TIMING_COLUMNS = (
    "fps_mean", "fps_std", "latency_ms", "latency_p90_ms", "latency_p99_ms", "latency_mean_ms",
    "trials", "frames", "warmup",
)  # fmt: skip
STATE_COLUMNS = ("temp_c_before", "temp_c_after", "throttled_before", "throttled_after")

Forward = Callable[[], Any]


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip().strip("\x00") or None
    except OSError:
        return None


def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo; platform.processor() is often only the architecture)."""
    for line in (_read("/proc/cpuinfo") or "").splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("model name", "Model", "Hardware", "cpu model") and value.strip():
            return value.strip()
    if sys.platform == "darwin":
        try:
            return subprocess.run(
                ["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True, timeout=5
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    return platform.processor() or platform.machine()


def throttled() -> str | None:
    """The firmware's throttling flags (Raspberry Pi: 0x0 = never under-voltage, capped or throttled)."""
    flags = _read("/sys/devices/platform/soc/soc:firmware/get_throttled")
    if flags is not None:
        return hex(int(flags, 16))
    try:
        out = subprocess.run(["vcgencmd", "get_throttled"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return out.strip().partition("=")[2] or None


def temperature_c() -> float | None:
    milli = _read("/sys/class/thermal/thermal_zone0/temp")
    return round(int(milli) / 1000, 1) if milli and milli.lstrip("-").isdigit() else None


def machine_record(device: str | None = None) -> dict[str, Any]:
    """What the numbers were measured on. ``device`` names it in tables and figures (default: the
    board model, else the CPU)."""
    board = _read("/proc/device-tree/model")
    cpu = cpu_name()
    return {
        "device": device or board or cpu,
        "board": board or "",
        "cpu": cpu,
        "machine": platform.machine(),
        "os": platform.platform(),
        "cpu_count": os.cpu_count() or 1,
        "governor": _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor") or "",
    }


def machine_state() -> dict[str, Any]:
    return {"temp_c": temperature_c(), "throttled": throttled() or ""}


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    low = int(k)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (k - low)


def time_forwards(
    forwards: Sequence[Forward], warmup: int = WARMUP, trials: int = TRIALS, frames: int = FRAMES
) -> list[dict[str, float]]:
    """Each forward's throughput (fps mean and std over trials) and single-pass latency
    percentiles, the forwards interleaved trial by trial. Set the thread count before."""
    if trials < 1 or frames < 1 or warmup < 0:
        raise ValueError(f"need trials >= 1, frames >= 1, warmup >= 0; got {trials}, {frames}, {warmup}")
    for forward in forwards:
        for _ in range(warmup):
            forward()
    passes: list[list[float]] = [[] for _ in forwards]
    fps: list[list[float]] = [[] for _ in forwards]
    for _ in range(trials):
        for forward, p, f in zip(forwards, passes, fps, strict=True):
            spent = 0.0
            for _ in range(frames):
                start = time.perf_counter()
                forward()
                took = time.perf_counter() - start
                p.append(took)
                spent += took
            f.append(frames / spent)
    return [
        {
            "fps_mean": statistics.fmean(f),
            "fps_std": statistics.stdev(f) if len(f) > 1 else 0.0,
            "latency_ms": 1000 * statistics.median(p),
            "latency_p90_ms": 1000 * _percentile(p, 0.90),
            "latency_p99_ms": 1000 * _percentile(p, 0.99),
            "latency_mean_ms": 1000 * statistics.fmean(p),
            "trials": trials,
            "frames": frames,
            "warmup": warmup,
        }
        for p, f in zip(passes, fps, strict=True)
    ]


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_manifest(export_dir: Path) -> dict[str, Any]:
    path = export_dir / MANIFEST
    if not path.is_file():
        sys.exit(f"error: {path} not found: EXPORT_DIR must be a directory `prunebench export` wrote")
    manifest = json.loads(path.read_text())
    if manifest.get("format") != EXPORT_FORMAT:
        sys.exit(f"error: {path} has format {manifest.get('format')!r}, this script reads {EXPORT_FORMAT}")
    return manifest


def _thread_counts(values: Sequence[str]) -> list[int]:
    counts = []
    for v in values:
        n = (os.cpu_count() or 1) if v == "all" else int(v)
        if n < 1:
            raise argparse.ArgumentTypeError(f"threads must be >= 1 or 'all', got {v}")
        counts.append(n)
    return sorted(set(counts))


def frozen(module: Any) -> Any:
    """A loaded TorchScript module frozen and optimised for inference (constants folded, conv and
    batch norm fused): the ``torchscript_frozen`` backend."""
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch 2.9+ marks TorchScript deprecated
        return torch.jit.optimize_for_inference(torch.jit.freeze(module.eval()))


def _loader(backend: str, threads: int) -> Callable[[Path, list[int]], Forward]:
    """A function that loads one model file for ``backend`` and returns its forward on a fixed
    standard-normal input of the given shape."""
    if backend == "onnxruntime":
        try:
            import numpy as np
            import onnxruntime as ort
        except ImportError:
            sys.exit("error: backend onnxruntime needs `pip install onnxruntime`")

        def load_onnx(path: Path, shape: list[int]) -> Forward:
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            name = session.get_inputs()[0].name
            x = {name: np.random.default_rng(0).standard_normal(shape, dtype=np.float32)}
            return lambda: session.run(None, x)

        return load_onnx
    try:
        import torch
    except ImportError:
        sys.exit(f"error: backend {backend} needs torch (pip install torch)")
    torch.set_num_threads(threads)

    def load_torchscript(path: Path, shape: list[int]) -> Forward:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch 2.9+ marks TorchScript deprecated
            module = torch.jit.load(str(path), map_location="cpu").eval()
        if backend == "torchscript_frozen":
            module = frozen(module)
        x = torch.randn(shape, generator=torch.Generator().manual_seed(0))

        def forward() -> Any:
            with torch.inference_mode():
                return module(x)

        return forward

    return load_torchscript


def _backend_version(backend: str) -> str:
    if backend == "onnxruntime":
        import onnxruntime

        return f"onnxruntime {onnxruntime.__version__}"
    import torch

    return f"torch {torch.__version__}"


def bench_export(
    export_dir: Path,
    backends: Sequence[str],
    threads: Sequence[int],
    warmup: int,
    trials: int,
    frames: int,
    device: str | None,
) -> list[dict[str, Any]]:
    """One row per (manifest entry, backend, threads)."""
    manifest = read_manifest(export_dir)
    fmt = {"torchscript": "torchscript", "torchscript_frozen": "torchscript", "onnxruntime": "onnx"}
    machine = machine_record(device)
    rows = []
    for backend in backends:
        models = [m for m in manifest["models"] if fmt[backend] in m["files"]]
        if not models:
            sys.exit(f"error: {export_dir} holds no {fmt[backend]} files for backend {backend}")
        for model in models:
            entry = model["files"][fmt[backend]]
            path = export_dir / entry["path"]
            if not path.is_file() or sha256(path) != entry["sha256"]:
                sys.exit(f"error: {path} is missing or not the file the manifest names; copy the export again")
        for n in threads:
            load = _loader(backend, n)
            forwards = [load(export_dir / m["files"][fmt[backend]]["path"], m["input_shape"]) for m in models]
            before = machine_state()
            print(f"{backend}, {n} thread(s): timing {len(models)} models", file=sys.stderr, flush=True)
            timings = time_forwards(forwards, warmup, trials, frames)
            after = machine_state()
            for model, timing in zip(models, timings, strict=True):
                for entry in model["entries"]:
                    rows.append(
                        {
                            **machine,
                            "backend": backend,
                            "backend_version": _backend_version(backend),
                            "threads": n,
                            **entry,
                            "arch": model["arch"],
                            "params": model["params"],
                            "flops": model["flops"],
                            "input_shape": "x".join(map(str, model["input_shape"])),
                            "file_sha256": model["files"][fmt[backend]]["sha256"],
                            **timing,
                            "temp_c_before": before["temp_c"],
                            "temp_c_after": after["temp_c"],
                            "throttled_before": before["throttled"],
                            "throttled_after": after["throttled"],
                        }
                    )
                print(
                    f"  {model['arch']:<40} {timing['fps_mean']:9.2f} ± {timing['fps_std']:.2f} fps",
                    file=sys.stderr,
                    flush=True,
                )
    return rows


def write_csv(rows: list[dict[str, Any]], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, out)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("export_dir", type=Path, help="a directory written by `prunebench export`")
    parser.add_argument("--out", type=Path, required=True, help="the CSV to write")
    parser.add_argument("--backend", nargs="+", choices=BACKENDS, default=["torchscript_frozen"])
    parser.add_argument("--threads", nargs="+", default=["1", "all"], help="thread counts ('all': every core)")
    parser.add_argument("--warmup", type=int, default=WARMUP)
    parser.add_argument("--trials", type=int, default=TRIALS)
    parser.add_argument("--frames", type=int, default=FRAMES, help="timed passes per model per trial")
    parser.add_argument("--device", help="the name tables and figures give this machine (default: board or CPU)")
    args = parser.parse_args(argv)
    try:
        threads = _thread_counts(args.threads)
    except (ValueError, argparse.ArgumentTypeError) as e:
        parser.error(str(e))
    if args.trials < 1 or args.frames < 1 or args.warmup < 0:
        parser.error("--trials and --frames must be >= 1, --warmup >= 0")
    rows = bench_export(args.export_dir, args.backend, threads, args.warmup, args.trials, args.frames, args.device)
    write_csv(rows, args.out)
    print(f"{len(rows)} rows in {args.out} ({socket.gethostname()}: {rows[0]['device']})", file=sys.stderr)


if __name__ == "__main__":
    main()
