"""The run directory's record files: environment, tables, summary."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from prunebench.io import atomic_write_text
from prunebench.measure.cost import device_bench

ROUND_COLUMNS = [
    "run_id", "config_hash", "dataset", "model", "method", "policy", "seed", "round", "base_round",
    "params", "macs", "flops", "params_reduction", "flops_reduction", "val_top1", "test_top1",
    "val_drop", "test_drop", "epochs", "images", "wall_s", "rate", "channels", "removed",
    "threshold", "threshold_scale", "lambda", "rollbacks", "acceptable", "rolled_back_to", "stop_reason", "final",
]  # fmt: skip
LAYER_COLUMNS = [
    "run_id", "round", "group", "layers", "original_channels", "channels_before", "channels_after",
    "score_min", "score_mean", "score_max",
]  # fmt: skip


def _version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def environment_record() -> dict[str, Any]:
    repo = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "-C", str(repo), "status", "--porcelain"], capture_output=True, text=True
            ).stdout.strip()
        )
    except (OSError, subprocess.CalledProcessError):
        commit, dirty = None, None
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "processor": device_bench.cpu_name(),
        "cpu_count": os.cpu_count(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        # importlib.metadata: torch_pruning.__version__ says 1.6.0 for 1.6.1.
        "packages": {
            p: _version(p)
            for p in ("prunebench", "torch", "torchvision", "torch-pruning", "numpy", "pandas", "snakemake")
        },
        "git_commit": commit,
        "git_dirty": dirty,
    }


def write_table(rows: list[dict[str, Any]], columns: list[str], path: Path) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    extra = [c for c in df.columns if c not in columns]
    df = df.reindex(columns=columns + extra)
    atomic_write_text(df.to_csv(index=False), path)
    return df
