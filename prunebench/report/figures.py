"""A study's figures in the paper's form, drawn from its tidy tables only (and, for the paper's
points, ``configs/paper/published.csv``), each as PDF (fonts embedded) and PNG: ``tradeoff``,
``iterative`` (Figure 2a), ``adaptive`` (2b), ``layers`` (2c), ``rewind`` (4), ``speedup`` (Table 6), and from
``attention.csv`` and ``maps.csv`` (``prunebench attention``) ``maps`` (Figure 1a), ``attention``
(Figures 3, 5) and ``distribution`` (Figure 9). What each
shows is its caption in the HTML report, ``workflow/report/<name>.rst``.

One style for all (``STYLE``): the Okabe-Ito colour-blind-safe palette, one colour per method in
every figure, TrueType fonts embedded in the PDF, panels sized for a column (``ONE_COLUMN``) or
the full width (``FULL_WIDTH``) of a two-column paper. A figure with nothing to show says so
instead of being left out, so a study always produces the same files.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from cycler import cycler  # noqa: E402

from prunebench.paths import ATTENTION_TABLE, DEVICES_TABLE, FIGURE_FORMATS, FIGURES, MAPS_TABLE  # noqa: E402
from prunebench.report.claims import REWIND_BAND  # noqa: E402
from prunebench.report.paper import entries, load_published, paper_dataset  # noqa: E402
from prunebench.report.tables import experiment_pairs, rewind_sweeps, speedup_pairs  # noqa: E402

# Okabe & Ito (2008): distinguishable with every common colour-vision deficiency.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]
MARKERS = "osD^vP*X<>hd"
ONE_COLUMN = 3.35  # inches: one column of a two-column paper (AISTATS, ICML)
FULL_WIDTH = 6.9
PANEL_HEIGHT = 2.4
STYLE = {
    "pdf.fonttype": 42,  # TrueType, embedded: venues refuse Type 3 fonts
    "ps.fonttype": 42,
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "legend.fontsize": 6,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "axes.prop_cycle": cycler(color=PALETTE),
    "axes.spines.top": False,
    "axes.spines.right": False,
    "lines.linewidth": 1.0,
    "lines.markersize": 4,
    "legend.frameon": False,
    "savefig.dpi": 300,
    "savefig.bbox": "tight",
}


def method_colors(methods: list[str]) -> dict[str, str]:
    """One colour per method, the same in every figure of a study: aap first, the rest by name."""
    ordered = sorted(set(methods), key=lambda m: (m != "aap", m))
    return {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(ordered)}


def _save(fig: plt.Figure, out: Path, name: str) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    files = [out / f"{name}.{ext}" for ext in FIGURE_FORMATS]
    for path in files:
        fig.savefig(path)
    plt.close(fig)
    return files


def _empty(message: str) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(ONE_COLUMN, 1.2))
    ax.text(0.5, 0.5, message, ha="center", va="center")
    ax.axis("off")
    return fig


def _grid(n: int, cols: int = 2, height: float = PANEL_HEIGHT) -> tuple[plt.Figure, list[plt.Axes]]:
    """n panels, ``cols`` per row: one column wide for a single panel, else the full width."""
    cols = min(n, cols)
    rows = -(-n // cols)
    width = ONE_COLUMN if cols == 1 else FULL_WIDTH
    fig, axes = plt.subplots(rows, cols, figsize=(width, height * rows), squeeze=False, layout="constrained")
    flat = list(axes.flat)
    for ax in flat[n:]:
        ax.axis("off")
    return fig, flat[:n]


def _met(runs: pd.DataFrame) -> pd.DataFrame:
    # A run that missed its target kept another size (often the dense model): no point of a trade-off.
    return runs[runs["target_met"].astype(bool)]


def _result_point(ax: plt.Axes, group: pd.DataFrame, x: str, y: str, label: str, **style) -> None:
    ax.errorbar(
        group[x].mean(),
        group[y].mean(),
        xerr=group[x].std() if len(group) > 1 else None,
        yerr=group[y].std() if len(group) > 1 else None,
        label=label,
        capsize=2,
        linestyle="none",
        **style,
    )


def tradeoff(rounds: pd.DataFrame, runs: pd.DataFrame) -> plt.Figure:
    colors = method_colors(list(runs["method"]))
    models = sorted(runs["model"].unique())
    pairs = experiment_pairs(runs)
    # Room below each panel for its legend: two columns of experiment names.
    legend_rows = -(-int(runs.groupby("model")["experiment"].nunique().max()) // 2)
    fig, axes = _grid(2 * len(models), height=PANEL_HEIGHT + 0.13 * legend_rows)
    for i, model in enumerate(models):
        mine = runs[runs["model"] == model]
        paired = pairs[pairs["model"] == model]
        compared = set(paired["experiment"]) | set(paired["baseline"])
        panels = {
            "AAP and its baselines": mine[mine["experiment"].isin(compared)],
            "other experiments (ablations)": mine[~mine["experiment"].isin(compared)],
        }
        for ax, (title, shown) in zip(axes[2 * i : 2 * i + 2], panels.items(), strict=True):
            ax.set(title=f"{model}: {title}", xlabel="params reduction (%)", ylabel="test accuracy loss (points)")
            ax.axhline(0, color="grey", lw=0.5)
            if shown.empty:
                ax.text(0.5, 0.5, "none in this study", ha="center", va="center", transform=ax.transAxes)
                continue
            for j, (experiment, runs_of) in enumerate(shown.groupby("experiment", sort=True)):
                color = colors[runs_of["method"].iloc[0]]
                group = _met(runs_of)
                missed = len(runs_of) - len(group)
                label = f"{experiment} (n={len(group)}" + (f", {missed} missed the target)" if missed else ")")
                if (runs_of["policy"] == "iterative").all():
                    path = rounds[(rounds["model"] == model) & (rounds["experiment"] == experiment)]
                    path = path.groupby("round")[["params_reduction", "test_drop"]].mean()
                    ax.plot(path["params_reduction"], path["test_drop"], color=color, alpha=0.4, lw=0.8)
                if group.empty:
                    ax.plot([], [], "x", color=color, label=label)
                    continue
                marker = MARKERS[j % len(MARKERS)]
                _result_point(ax, group, "params_reduction", "test_drop", label, color=color, marker=marker)
            # Below the panel: a study compares a dozen experiments, a legend inside would hide them.
            ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=2)
    return fig


def iterative(rounds: pd.DataFrame, runs: pd.DataFrame, published: pd.DataFrame) -> plt.Figure:
    fixed = runs[runs["policy"] == "iterative"]
    if fixed.empty:
        return _empty("no fixed-rate iterative experiments in this study (Figure 2a)")
    colors = method_colors(list(runs["method"]))
    models = sorted(fixed["model"].unique())
    fig, axes = _grid(len(models))
    for ax, model in zip(axes, models, strict=True):
        for j, (experiment, runs_of) in enumerate(fixed[fixed["model"] == model].groupby("experiment", sort=True)):
            r = rounds[(rounds["model"] == model) & (rounds["experiment"] == experiment)]
            path = r.groupby("round")[["params_reduction", "test_top1"]].agg(["mean", "std"])
            ax.errorbar(
                path[("params_reduction", "mean")],
                path[("test_top1", "mean")],
                yerr=path[("test_top1", "std")].fillna(0),
                color=colors[runs_of["method"].iloc[0]],
                marker=MARKERS[j % len(MARKERS)],
                capsize=2,
                label=f"{experiment} (n={runs_of['seed'].nunique()})",
            )
        dataset = paper_dataset(str(fixed.loc[fixed["model"] == model, "dataset"].iloc[0]))
        levels = published[
            (published["artifact"] == "fig2a") & (published["model"] == model) & (published["dataset"] == dataset)
        ]
        levels = sorted({float(v) for v in levels.loc[levels["metric"] == "params_reduction", "value"]})
        for k, level in enumerate(levels):
            ax.axvline(level, color="grey", ls=":", lw=0.8, label="the paper's params levels" if k == 0 else None)
        ax.set(title=model, xlabel="params reduction (%)", ylabel="test top-1 (%)")
        ax.legend(loc="best")
    return fig


def rewind(runs: pd.DataFrame) -> plt.Figure:
    sweeps = rewind_sweeps(runs)
    if not sweeps:
        return _empty("no experiments that differ only in their rewind epoch in this study (Figure 4)")
    width = ONE_COLUMN * min(len(sweeps), 2)
    fig, axes = plt.subplots(2, len(sweeps), figsize=(width, 2 * PANEL_HEIGHT), squeeze=False, layout="constrained")
    band = [100 * f for f in REWIND_BAND]
    panels = (("test_top1", "test top-1 (%)"), ("stability_l2", "L2 distance to the dense weights"))
    for j, sweep in enumerate(sweeps):
        met = sweep[sweep["target_met"].astype(bool)]
        at = met.assign(rewind=100 * met["rewind_epoch"] / met["train_epochs"]).groupby("rewind", sort=True)
        first = sweep.iloc[0]
        target = f"{first['target_metric']} {first['target']:g} %" if pd.notna(first["target"]) else "its loss target"
        for i, (column, label) in enumerate(panels):
            ax = axes[i][j]
            stats = at[column].agg(["mean", "std"])
            ax.errorbar(
                stats.index,
                stats["mean"],
                yerr=stats["std"].fillna(0),
                marker="o",
                capsize=2,
                color=PALETTE[0],
                label=f"{first['method']}, {first['policy']} (n={met['seed'].nunique()})",
            )
            ax.axvspan(*band, color="grey", alpha=0.15, label=f"the paper's best range ({band[0]:g}-{band[1]:g} %)")
            ax.set(ylabel=label, xlabel="rewind epoch (% of training)" if i == 1 else None, xlim=(-3, 103))
        axes[0][j].set_title(f"{first['model']}, {target}")
        axes[0][j].legend(loc="best")
    return fig


def _first_seed(runs: pd.DataFrame) -> pd.DataFrame:
    adaptive = runs[runs["policy"].str.startswith("aap_")]
    return adaptive[adaptive["seed"] == adaptive.groupby(["model", "experiment"])["seed"].transform("min")]


# Figure 2b's search (AAP-P, accuracy loss 1 %): the rounds the paper names, for the same search here.
FIG2B_POLICY, FIG2B_LOSS = "aap_acc_params", 1.0


def _paper_rounds(published: pd.DataFrame, run: pd.Series) -> dict[str, float]:
    """Figure 2b's first rollback and termination rounds where ``run`` is that search on that model."""
    if run["policy"] != FIG2B_POLICY or run.get("loss_target") != FIG2B_LOSS:
        return {}
    rows = published[
        (published["artifact"] == "fig2b")
        & (published["model"] == run["model"])
        & (published["dataset"] == paper_dataset(str(run["dataset"])))
    ]
    return {m: float(v) for m, v in zip(rows["metric"], rows["value"], strict=True)}


def adaptive(rounds: pd.DataFrame, runs: pd.DataFrame, published: pd.DataFrame) -> plt.Figure:
    chosen = _first_seed(runs)
    if chosen.empty:
        return _empty("no runs with an AAP adaptive policy in this study (Figure 2b)")
    fig, axes = _grid(len(chosen))
    loss_color, size_color = PALETTE[3], PALETTE[0]
    for ax, (_, run) in zip(axes, chosen.iterrows(), strict=True):
        r = rounds[rounds["run_id"] == run["run_id"]].sort_values("round")
        size = "flops" if run["target_metric"] == "flops" or run["policy"] == "aap_acc_flops" else "params"
        ax.plot(r["round"], r["val_drop"], "o-", ms=3, color=loss_color, label="validation accuracy loss")
        back = r[r["rolled_back_to"].notna()]
        ax.plot(back["round"], back["val_drop"], "x", color="k", ms=6, label="rolled back")
        if pd.notna(run.get("loss_target")):
            ax.axhline(run["loss_target"], color=loss_color, ls="--", lw=0.8, label="loss target")
        ax.axvline(run["round"], color="grey", ls=":", lw=0.8, label="result")
        for k, at in enumerate(sorted(_paper_rounds(published, run).values())):
            ax.axvline(at, color="k", ls="--", lw=0.6, label="the paper: first rollback, end" if k == 0 else None)
        ax.set(title=f"{run['model']} {run['experiment']} (seed {run['seed']})", xlabel="pruning round")
        ax.set_ylabel("validation accuracy loss (points)", color=loss_color)
        twin = ax.twinx()
        twin.spines["right"].set_visible(True)
        twin.plot(r["round"], r[f"{size}_reduction"], "s-", ms=3, color=size_color, label=f"{size} reduction")
        if pd.notna(run["target"]) and run["target_metric"] == size:
            twin.axhline(run["target"], color=size_color, ls="--", lw=0.8, label=f"{size} target")
        twin.set_ylabel(f"{size} reduction (%)", color=size_color)
        handles = ax.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
        ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=3)
    return fig


def layers(layer_rows: pd.DataFrame, runs: pd.DataFrame) -> plt.Figure:
    chosen = _first_seed(runs)
    if chosen.empty:
        return _empty("no runs with an AAP adaptive policy in this study (Figure 2c)")
    fig, axes = _grid(len(chosen))
    for ax, (_, run) in zip(axes, chosen.iterrows(), strict=True):
        mine = layer_rows[layer_rows["run_id"] == run["run_id"]]
        groups = mine.drop_duplicates("group")[["group", "original_channels"]]
        final = mine[mine["round"] == run["round"]].set_index("group")["channels_after"]
        kept = [final.get(g, o) / o * 100 for g, o in zip(groups["group"], groups["original_channels"], strict=True)]
        ax.bar(range(len(kept)), kept, color=PALETTE[0])
        ax.set_xticks(range(len(kept)), groups["group"], rotation=90, fontsize=5)
        ax.set(title=f"{run['model']} {run['experiment']} (round {run['round']})", ylabel="channels kept (%)")
        ax.set_ylim(0, 105)
    return fig


def published_speedups(published: pd.DataFrame, model: str, dataset: str) -> pd.DataFrame:
    """Table 6's (flops_reduction, speedup) pairs of ``model`` on ``dataset``, one row per pruned model."""
    t6 = published[
        (published["artifact"] == "table6")
        & (published["model"] == model)
        & (published["dataset"] == paper_dataset(dataset))
    ]
    wide = t6.assign(entry=entries(t6)).pivot_table(
        index=["target", "entry"], columns="metric", values="value", aggfunc="first"
    )
    if wide.empty:
        return pd.DataFrame(columns=["flops_reduction", "speedup"])
    return wide[["flops_reduction", "speedup"]].astype(float).reset_index(drop=True)


def published_throughputs(published: pd.DataFrame, model: str, dataset: str) -> tuple[str, pd.DataFrame]:
    """Figs. 6-8's dense throughput of ``model`` on ``dataset`` (fps, from the text) and, where
    Table 6 gives the pruned models' speedups, their throughput as dense fps x speedup (the
    figures' bars; the text prints only the dense fps): (the paper's device, rows of
    ``flops_reduction, fps``)."""
    dense = published[
        published["artifact"].isin(["fig6", "fig7", "fig8"])
        & (published["model"] == model)
        & (published["dataset"] == paper_dataset(dataset))
        & (published["metric"] == "fps")
    ]
    if dense.empty:
        return "", pd.DataFrame(columns=["flops_reduction", "fps"])
    fps = float(dense["value"].iloc[0])
    device = "Xeon Silver 4215R" if dense["artifact"].iloc[0] == "fig6" else "Raspberry Pi 3B+"
    pruned = published_speedups(published, model, dataset) if device == "Raspberry Pi 3B+" else None
    rows = [(0.0, fps)] + (
        [] if pruned is None else list(zip(pruned["flops_reduction"], fps * pruned["speedup"], strict=True))
    )
    return device, pd.DataFrame(rows, columns=["flops_reduction", "fps"])


def _settings(pairs: pd.DataFrame) -> list[tuple[str, int]]:
    return sorted(set(zip(pairs["backend"], pairs["threads"], strict=True)))


def speedup(speed: pd.DataFrame | None, published: pd.DataFrame) -> plt.Figure:
    """Table 6 (and Figs. 6-8a): measured speedup over the FLOPs cut, one panel per device and
    model, one marker per backend and thread count, the FLOPs-ideal curve and the paper's points."""
    if speed is None or speed.empty:
        return _empty("speed was not measured in this study (Table 6)")
    pairs = speedup_pairs(speed)
    colors = method_colors(list(pairs["method"]))
    settings = _settings(pairs)
    panels = sorted(set(zip(pairs["device"], pairs["model"], strict=True)))
    fig, axes = _grid(len(panels))
    for ax, (device, model) in zip(axes, panels, strict=True):
        mine = pairs[(pairs["device"] == device) & (pairs["model"] == model)]
        paper = published_speedups(published, model, str(mine["dataset"].iloc[0]))
        top = max(mine["flops_reduction"].max(), paper["flops_reduction"].max() if len(paper) else 0, 1)
        cut = np.linspace(0, min(top * 1.05, 95), 100)
        ax.plot(cut, 100 / (100 - cut), color="grey", ls="--", lw=0.8, label="FLOPs-ideal (dense / pruned FLOPs)")
        for (method, backend, n), g in mine.groupby(["method", "backend", "threads"], sort=True):
            marker = MARKERS[settings.index((backend, n)) % len(MARKERS)]
            ax.scatter(g["flops_reduction"], g["speedup"], color=colors[method], marker=marker, s=14)
            ax.scatter([], [], color=colors[method], marker=marker, s=14, label=f"{method}, {backend}, {n} thr.")
        if len(paper):
            ax.scatter(
                paper["flops_reduction"],
                paper["speedup"],
                facecolors="none",
                edgecolors="k",
                marker="D",
                s=20,
                label="the paper: AAP on a Raspberry Pi 3B+",
            )
        ax.axhline(1, color="grey", lw=0.5)
        # The ideal grows without bound near a 100 % cut: the points set the scale, it leaves the top.
        highest = max(mine["speedup"].max(), paper["speedup"].max() if len(paper) else 0)
        ax.set_ylim(0, max(2.0, 1.3 * highest))
        ax.set(title=f"{model} on {device}", xlabel="FLOPs reduction (%)", ylabel="speedup (pruned / dense fps)")
        ax.legend(loc="upper left")
    return fig


def throughput(speed: pd.DataFrame | None, published: pd.DataFrame) -> plt.Figure:
    """Figs. 6-8b: frames per second (mean and std over trials, batch 1) of each dense model and
    the first seed's pruned results, one panel per device and model, one bar per backend and
    thread count; the paper's throughputs on its device as open diamonds at their FLOPs cuts."""
    if speed is None or speed.empty:
        return _empty("speed was not measured in this study (Figs. 6-8)")
    pairs = speedup_pairs(speed)
    first = pairs.groupby("experiment")["seed"].transform("min") == pairs["seed"]
    pairs = pairs[first]
    settings = _settings(pairs)
    panels = sorted(set(zip(pairs["device"], pairs["model"], strict=True)))
    fig, axes = _grid(len(panels))
    width = 0.8 / len(settings)
    for ax, (device, model) in zip(axes, panels, strict=True):
        mine = pairs[(pairs["device"] == device) & (pairs["model"] == model)]
        # One bar group per model: the dense model, then the pruned results by FLOPs cut.
        groups = [("dense", 0.0)] + sorted(
            {(e, c) for e, c in mine.groupby("experiment")["flops_reduction"].mean().items()}, key=lambda t: t[1]
        )
        for i, (backend, n) in enumerate(settings):
            heights, errors = [], []
            for name, _ in groups:
                if name == "dense":
                    g = speed[
                        (speed["device"] == device)
                        & (speed["run_id"].isin(mine["run_id"]))
                        & (speed["variant"] == "dense")
                        & (speed["backend"] == backend)
                        & (speed["threads"] == n)
                    ].head(1)
                else:
                    g = mine[(mine["experiment"] == name) & (mine["backend"] == backend) & (mine["threads"] == n)]
                heights.append(g["fps_mean"].mean() if len(g) else np.nan)
                errors.append(g["fps_std"].mean() if len(g) else 0.0)
            x = np.arange(len(groups)) + (i - (len(settings) - 1) / 2) * width
            ax.bar(x, heights, width, yerr=errors, color=PALETTE[i % len(PALETTE)], label=f"{backend}, {n} thr.")
        paper_device, paper = published_throughputs(published, model, str(mine["dataset"].iloc[0]))
        for j, (_, cut) in enumerate(groups):
            close = paper[(paper["flops_reduction"] - cut).abs() < 1.0]
            if len(close):
                ax.scatter([j], close["fps"].iloc[:1], facecolors="none", edgecolors="k", marker="D", s=20, zorder=3)
        if len(paper):
            ax.scatter(
                [], [], facecolors="none", edgecolors="k", marker="D", s=20, label=f"the paper on {paper_device}"
            )
        ax.set_xticks(range(len(groups)), [f"{name}\n-{cut:.0f}% FLOPs" if cut else name for name, cut in groups])
        ax.set(title=f"{model} on {device}", ylabel="throughput (fps, batch 1)")
        ax.legend(loc="upper left")
    return fig


SHOWN_FILTERS = 32  # filters per layer in the attention figure (the paper shows a few dozen)


def _attention_run(attention: pd.DataFrame) -> pd.DataFrame:
    """The rows of the run of the attention table whose last scored round is the latest (the most
    pruned of an adaptive search; ties: the first by run id)."""
    last = attention.groupby("run_id")["round"].max()
    return attention[attention["run_id"] == last[last == last.max()].index.min()]


def _spread(items: list, n: int) -> list:
    """``n`` items evenly spread over ``items``, first and last included."""
    if len(items) <= n:
        return items
    return [items[round(i * (len(items) - 1) / (n - 1))] for i in range(n)]


def maps(table: pd.DataFrame | None) -> plt.Figure:
    if table is None or table.empty:
        return _empty("no activation maps in this study (prunebench attention --maps; Figure 1a)")
    channels = table.drop_duplicates("channel")[["channel", "rank", "attention"]]
    ranks = [r for r in ("highest", "lowest") if r in set(channels["rank"])]
    cols = max(int((channels["rank"] == r).sum()) for r in ranks)
    fig, axes = plt.subplots(
        len(ranks),
        cols,
        figsize=(FULL_WIDTH, FULL_WIDTH / cols * len(ranks) + 0.5),
        squeeze=False,
        layout="constrained",
    )
    top = float(table["value"].max())
    for i, rank in enumerate(ranks):
        chosen = channels[channels["rank"] == rank].sort_values("attention", ascending=False)
        for j, ax in enumerate(axes[i]):
            ax.set(xticks=[], yticks=[])
            if j >= len(chosen):
                ax.axis("off")
                continue
            c = chosen.iloc[j]
            m = table[table["channel"] == c["channel"]].pivot(index="y", columns="x", values="value")
            image = ax.imshow(m.to_numpy(), cmap="viridis", vmin=0, vmax=top)
            ax.set_title(f"filter {c['channel']}: {c['attention']:.3f}", fontsize=6)
        axes[i][0].set_ylabel(f"{rank} attention", fontsize=7)
    fig.colorbar(image, ax=axes, shrink=0.8, label="|activation|")
    first = table.iloc[0]
    fig.suptitle(f"{first['run_id']}, dense model, layer {first['group']}: one image's activation maps", fontsize=7)
    return fig


def attention(table: pd.DataFrame | None) -> plt.Figure:
    if table is None or table.empty:
        return _empty("no attention table in this study (prunebench attention; Figures 3 and 5)")
    run = _attention_run(table)
    dense = run[run["round"] == 0]
    groups = _spread(list(dict.fromkeys(dense["group"])), 4)
    ps = sorted(dense["p"].unique())
    fig, axes = plt.subplots(
        len(ps), len(groups), figsize=(FULL_WIDTH, 1.6 * len(ps) + 0.4), squeeze=False, layout="constrained"
    )
    colors = {"train": PALETTE[0], "random": PALETTE[1]}
    for i, p in enumerate(ps):
        for j, group in enumerate(groups):
            ax = axes[i][j]
            mine = dense[(dense["p"] == p) & (dense["group"] == group)]
            shown = sorted(mine["channel"].unique())[:SHOWN_FILTERS]
            for (source, b), g in mine[mine["channel"].isin(shown)].groupby(["source", "batch"], sort=True):
                g = g.sort_values("channel")
                label = f"{'training images' if source == 'train' else 'random inputs'}" if b == 0 else None
                ls = "-" if source == "train" else "--"
                ax.plot(g["channel"], g["attention"], ls, color=colors[source], alpha=0.7, lw=0.8, label=label)
            ax.set(title=f"{group}, p = {p:g}", xlabel="filter" if i == len(ps) - 1 else None)
            if j == 0:
                ax.set_ylabel("attention (mean |a|^p)")
    axes[0][0].legend(loc="upper right")
    fig.suptitle(f"{run['run_id'].iloc[0]}, dense model: one line per batch", fontsize=7)
    return fig


def distribution(table: pd.DataFrame | None) -> plt.Figure:
    if table is None or table.empty:
        return _empty("no attention table in this study (prunebench attention; Figure 9)")
    run = _attention_run(table)
    mine = run[(run["p"] == run["p"].min()) & (run["source"] == "train")]
    per_filter = mine.groupby(["round", "group", "channel"], sort=False)["attention"].mean().reset_index()
    rounds = sorted(per_filter["round"].unique())
    shown = [rounds[0], rounds[-1]] if len(rounds) > 1 else rounds  # original and most pruned
    groups = list(dict.fromkeys(per_filter["group"]))
    fig, ax = plt.subplots(figsize=(FULL_WIDTH, PANEL_HEIGHT), layout="constrained")
    width = 0.76 / len(shown)
    for k, (rnd, color) in enumerate(zip(shown, (PALETTE[0], PALETTE[3]), strict=False)):
        data = [per_filter[(per_filter["round"] == rnd) & (per_filter["group"] == g)]["attention"] for g in groups]
        positions = [i + (k - (len(shown) - 1) / 2) * width for i in range(len(groups))]
        parts = ax.boxplot(
            data,
            positions=positions,
            widths=width * 0.9,
            patch_artist=True,
            showfliers=False,
            medianprops={"color": "k"},
        )
        for box in parts["boxes"]:
            box.set(facecolor=color, alpha=0.6)
        ax.plot([], [], "s", color=color, label=f"round {rnd}" + (" (dense)" if rnd == 0 else ""))
    ax.set_xticks(range(len(groups)), groups, rotation=90, fontsize=5)
    p = mine["p"].iloc[0]
    ax.set(ylabel=f"attention (mean |a|^{p:g}, per filter)", title=f"{run['run_id'].iloc[0]}: attention per layer")
    ax.legend(loc="upper right")
    return fig


def write_figures(tables: Path, out: Path) -> list[Path]:
    """Every figure of the study whose tables are in ``tables``, into ``out``."""
    rounds = pd.read_csv(tables / "rounds.csv")
    runs = pd.read_csv(tables / "runs.csv")
    layer_rows = pd.read_csv(tables / "layers.csv")
    speed_csv = tables / f"{DEVICES_TABLE}.csv"
    speed = pd.read_csv(speed_csv) if speed_csv.exists() else None
    attention_csv = tables / f"{ATTENTION_TABLE}.csv"
    attention_rows = pd.read_csv(attention_csv) if attention_csv.exists() else None
    maps_csv = tables / f"{MAPS_TABLE}.csv"
    map_rows = pd.read_csv(maps_csv) if maps_csv.exists() else None
    published = load_published()
    makers: dict[str, Callable[[], plt.Figure]] = {
        "tradeoff": lambda: tradeoff(rounds, runs),
        "iterative": lambda: iterative(rounds, runs, published),
        "rewind": lambda: rewind(runs),
        "adaptive": lambda: adaptive(rounds, runs, published),
        "layers": lambda: layers(layer_rows, runs),
        "speedup": lambda: speedup(speed, published),
        "throughput": lambda: throughput(speed, published),
        "maps": lambda: maps(map_rows),
        "attention": lambda: attention(attention_rows),
        "distribution": lambda: distribution(attention_rows),
    }
    files = []
    with plt.rc_context(STYLE):
        for name in FIGURES:
            files += _save(makers[name](), out, name)
    return files
