"""Aggregation of run directories into the study's tidy tables.

- ``rounds.csv`` / ``layers.csv``: every run's rows, concatenated.
- ``runs.csv``: one row per run, its result round (``final``), with the stop reason and whether
  its target was met.
- ``dense.csv``: one row per dense model used (dataset, model, seed, accuracy, size).
- ``summary.csv``: mean and std over seeds of the result rows, per (dataset, model, method, policy,
  experiment), with the number of seeds.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from prunebench.io import atomic_write_text

SUMMARY_METRICS = ["params_reduction", "flops_reduction", "val_top1", "test_top1", "val_drop", "test_drop"]


def _write(df: pd.DataFrame, path: Path) -> Path:
    atomic_write_text(df.to_csv(index=False), path)
    return path


def _experiment(run_dir: Path) -> str:
    # Study runs live in <experiment>/seed<s>; a lone run's directory is its own name.
    return run_dir.parent.name if run_dir.name.startswith("seed") else run_dir.name


def write_tables(run_dirs: list[Path], out: Path) -> list[Path]:
    """Write the five tables for ``run_dirs`` into ``out``; returns their paths."""
    rounds, layers, runs, dense = [], [], [], {}
    for d in run_dirs:
        r = pd.read_csv(d / "rounds.csv")
        summary = json.loads((d / "summary.json").read_text())
        run = json.loads((d / "run.json").read_text())
        r.insert(1, "experiment", _experiment(d))
        rounds.append(r)
        layers.append(pd.read_csv(d / "layers.csv"))
        final = r[r["final"]].iloc[0].to_dict()
        runs.append(
            {
                **final,
                "stop_reason": summary["stop_reason"],
                "target_met": summary["target_met"],
                "rounds": summary["rounds"],
                "rollbacks_total": summary["rollbacks"],
            }
        )
        dense_dir = Path(run["dense_dir"])
        if dense_dir not in dense:
            record = json.loads((dense_dir / "dense.json").read_text())
            dense[dense_dir] = {
                "dataset": final["dataset"],
                "model": final["model"],
                "seed": final["seed"],
                "dense_hash": record["dense_hash"],
                "epochs": record["epochs"],
                "val_top1": record["val_top1"],
                "test_top1": record["test_top1"],
                "params": record["params"],
                "macs": record["macs"],
                "flops": record["flops"],
                "wall_s": record["wall_s"],
                "dense_dir": str(dense_dir),
            }
    runs_df = pd.DataFrame(runs)
    keys = ["dataset", "model", "experiment", "method", "policy"]
    summary = runs_df.groupby(keys)[SUMMARY_METRICS].agg(["mean", "std"])
    summary.columns = [f"{m}_{stat}" for m, stat in summary.columns]
    summary = summary.reset_index()
    summary.insert(len(keys), "seeds", runs_df.groupby(keys).size().values)
    out.mkdir(parents=True, exist_ok=True)
    return [
        _write(pd.concat(rounds, ignore_index=True), out / "rounds.csv"),
        _write(pd.concat(layers, ignore_index=True), out / "layers.csv"),
        _write(runs_df, out / "runs.csv"),
        _write(pd.DataFrame(list(dense.values())), out / "dense.csv"),
        _write(summary, out / "summary.csv"),
    ]


def latency_table(run_dirs: list[Path], threads: list[int], warmup: int, repeats: int) -> pd.DataFrame:
    """CPU latency (batch 1, median ms) of every run's final model and its dense architecture, at
    each thread count, measured in interleaved blocks: one row per run x variant x threads. Run it
    alone on the machine."""
    from prunebench import surgery
    from prunebench.measure import complexity, paired_latency_ms
    from prunebench.results import environment_record

    cpu = environment_record()["processor"]
    rows = []
    for d in run_dirs:
        final = pd.read_csv(d / "rounds.csv").query("final").iloc[0]
        arch, model, _ = surgery.load_checkpoint(str(d / "final.pt"))
        dense = surgery.instantiate(
            surgery.Architecture(arch.model, arch.num_classes, arch.in_channels, arch.image_size, arch.options)
        )
        x = arch.example_input()
        sizes = {"dense": complexity(dense, x), "final": complexity(model, x)}
        for n in threads:
            latencies = paired_latency_ms([dense, model], x, n, warmup, repeats)
            for variant, ms in zip(("dense", "final"), latencies, strict=True):
                rows.append(
                    {
                        **{k: final[k] for k in ("run_id", "dataset", "model", "method", "policy", "seed")},
                        "experiment": _experiment(d),
                        "variant": variant,
                        "threads": n,
                        "latency_ms": ms,
                        "params": sizes[variant]["params"],
                        "flops": sizes[variant]["flops"],
                        "cpu": cpu,
                    }
                )
    return pd.DataFrame(rows)
