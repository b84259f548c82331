"""A study's figures, drawn from its tidy tables only (PDF and PNG each).

- ``tradeoff``: test accuracy loss vs params reduction per model: every experiment's result (mean
  and std over seeds) and, for fixed-rate iterative runs, the path through their rounds (the
  paper's Figure 2a).
- ``adaptive``: validation loss and params reduction over the rounds of each AAP-policy run of the
  first seed, with rollbacks marked (Figure 2b).
- ``layers``: channels kept per group in the result of each AAP-policy run of the first seed
  (Figure 2c).
- ``speedup``: measured CPU speedup (dense / final latency, batch 1) vs FLOPs reduction (Table 6).

A figure with nothing to show (e.g. no adaptive runs) says so instead of being left out, so a
study always produces the same files.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from prunebench.paths import FIGURE_FORMATS, FIGURES  # noqa: E402


def _save(fig: plt.Figure, out: Path, name: str) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    files = [out / f"{name}.{ext}" for ext in FIGURE_FORMATS]
    fig.tight_layout()
    for path in files:
        fig.savefig(path, dpi=150)
    plt.close(fig)
    return files


def _empty(message: str) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(5, 2))
    ax.text(0.5, 0.5, message, ha="center", va="center")
    ax.axis("off")
    return fig


def _grid(n: int, width: float = 4.5, height: float = 3.5) -> tuple[plt.Figure, list[plt.Axes]]:
    cols = min(n, 3)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    flat = list(axes.flat)
    for ax in flat[n:]:
        ax.axis("off")
    return fig, flat[:n]


def tradeoff(rounds: pd.DataFrame, runs: pd.DataFrame) -> plt.Figure:
    models = sorted(runs["model"].unique())
    fig, axes = _grid(len(models))
    for ax, model in zip(axes, models, strict=True):
        mine = runs[runs["model"] == model]
        for i, (experiment, runs_of) in enumerate(mine.groupby("experiment", sort=True)):
            color = plt.get_cmap("tab20")(i % 20)  # studies have more experiments than tab10's colours
            # A run that missed its target kept another size (often the dense model): it is no
            # point of the trade-off; the legend says how many seeds are left out.
            group = runs_of[runs_of["target_met"].astype(bool)]
            missed = len(runs_of) - len(group)
            label = f"{experiment} (n={len(group)}" + (f", {missed} missed the target)" if missed else ")")
            if (group["policy"] == "iterative").all():
                path = rounds[(rounds["model"] == model) & (rounds["experiment"] == experiment)]
                path = path.groupby("round")[["params_reduction", "test_drop"]].mean()
                ax.plot(path["params_reduction"], path["test_drop"], color=color, alpha=0.4, lw=1)
            if group.empty:
                ax.plot([], [], "x", color=color, label=label)
                continue
            ax.errorbar(
                group["params_reduction"].mean(),
                group["test_drop"].mean(),
                xerr=group["params_reduction"].std() if len(group) > 1 else None,
                yerr=group["test_drop"].std() if len(group) > 1 else None,
                fmt="o",
                color=color,
                label=label,
                capsize=2,
            )
        ax.axhline(0, color="grey", lw=0.5)
        ax.set(title=model, xlabel="params reduction (%)", ylabel="test accuracy loss (points)")
        ax.legend(fontsize=6)
    return fig


def _first_seed(runs: pd.DataFrame) -> pd.DataFrame:
    adaptive = runs[runs["policy"].str.startswith("aap_")]
    return adaptive[adaptive["seed"] == adaptive.groupby(["model", "experiment"])["seed"].transform("min")]


def adaptive(rounds: pd.DataFrame, runs: pd.DataFrame) -> plt.Figure:
    chosen = _first_seed(runs)
    if chosen.empty:
        return _empty("no runs with an AAP adaptive policy in this study")
    fig, axes = _grid(len(chosen))
    for ax, (_, run) in zip(axes, chosen.iterrows(), strict=True):
        r = rounds[rounds["run_id"] == run["run_id"]].sort_values("round")
        ax.plot(r["round"], r["val_drop"], "o-", ms=3, color="C3", label="val loss (points)")
        back = r[r["rolled_back_to"].notna()]
        ax.plot(back["round"], back["val_drop"], "x", color="k", ms=7, label="rolled back")
        ax.set(title=f"{run['model']} {run['experiment']} (seed {run['seed']})", xlabel="round")
        ax.set_ylabel("validation accuracy loss (points)", color="C3")
        twin = ax.twinx()
        twin.plot(r["round"], r["params_reduction"], "s-", ms=3, color="C0")
        twin.set_ylabel("params reduction (%)", color="C0")
        ax.axvline(run["round"], color="grey", ls=":", lw=1)
        ax.legend(fontsize=6, loc="upper left")
    return fig


def layers(layer_rows: pd.DataFrame, runs: pd.DataFrame) -> plt.Figure:
    chosen = _first_seed(runs)
    if chosen.empty:
        return _empty("no runs with an AAP adaptive policy in this study")
    fig, axes = _grid(len(chosen), width=5.5)
    for ax, (_, run) in zip(axes, chosen.iterrows(), strict=True):
        mine = layer_rows[layer_rows["run_id"] == run["run_id"]]
        groups = mine.drop_duplicates("group")[["group", "original_channels"]]
        final = mine[mine["round"] == run["round"]].set_index("group")["channels_after"]
        kept = [final.get(g, o) / o * 100 for g, o in zip(groups["group"], groups["original_channels"], strict=True)]
        ax.bar(range(len(kept)), kept, color="C0")
        ax.set_xticks(range(len(kept)), groups["group"], rotation=90, fontsize=6)
        ax.set(title=f"{run['model']} {run['experiment']} (round {run['round']})", ylabel="channels kept (%)")
        ax.set_ylim(0, 105)
    return fig


def speedup(latency: pd.DataFrame | None) -> plt.Figure:
    if latency is None or latency.empty:
        return _empty("latency was not measured in this study")
    keys = ["run_id", "threads"]
    dense = latency[latency["variant"] == "dense"][[*keys, "flops", "latency_ms"]]
    pairs = latency[latency["variant"] == "final"].merge(dense, on=keys, suffixes=("", "_dense"))
    fig, ax = plt.subplots(figsize=(5.5, 4))
    markers = "osd^v<>"
    for i, ((model, threads), g) in enumerate(pairs.groupby(["model", "threads"])):
        cut = (1 - g["flops"] / g["flops_dense"]) * 100
        ratio = g["latency_ms_dense"] / g["latency_ms"]
        ax.scatter(cut, ratio, marker=markers[i % len(markers)], label=f"{model}, {threads} thread(s)")
    ax.axhline(1, color="grey", lw=0.5)
    cpu = latency["cpu"].iloc[0]
    ax.set(xlabel="FLOPs reduction (%)", ylabel="speedup (dense / pruned latency)", title=f"batch 1 on {cpu}")
    ax.title.set_fontsize(8)
    ax.legend(fontsize=6)
    return fig


def write_figures(tables: Path, out: Path) -> list[Path]:
    """Every figure of the study whose tables are in ``tables``, into ``out``."""
    rounds = pd.read_csv(tables / "rounds.csv")
    runs = pd.read_csv(tables / "runs.csv")
    layer_rows = pd.read_csv(tables / "layers.csv")
    latency_csv = tables / "latency.csv"
    latency = pd.read_csv(latency_csv) if latency_csv.exists() else None
    makers: dict[str, Callable[[], plt.Figure]] = {
        "tradeoff": lambda: tradeoff(rounds, runs),
        "adaptive": lambda: adaptive(rounds, runs),
        "layers": lambda: layers(layer_rows, runs),
        "speedup": lambda: speedup(latency),
    }
    return [path for name in FIGURES for path in _save(makers[name](), out, name)]
