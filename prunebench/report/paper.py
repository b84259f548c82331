"""The paper's tables with the published numbers beside ours: ``prunebench report`` and the
workflow's ``report`` rule write, per study, ``report/<artifact>.md`` and ``.tex`` (booktabs) and
``REPORT.md``.

The published numbers are data (``configs/paper/published.csv``, one row per number). A study
experiment names the published rows it reproduces with ``published: {artifact, method, target}``
(optionally ``model`` and ``dataset``, which default to the run's); every published row of the
same artifact and (model, dataset) is shown, ours beside it where an experiment reproduces it,
marked "quoted" where it comes from another paper we did not run, and "not run" where it is the
AAP paper's own and no experiment reproduces it. Our accuracy loss is each run's test top-1
against its own dense model (``test_drop``), mean ± std over seeds; "Δ" is ours minus published.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from prunebench import paths
from prunebench.errors import ConfigError
from prunebench.io import atomic_write_text
from prunebench.report.claims import claims_table
from prunebench.report.deviations import deviations
from prunebench.report.tables import summary_table

PUBLISHED_CSV = Path(__file__).resolve().parents[2] / "configs" / "paper" / "published.csv"
THIS_PAPER = "Zhao et al. 2023 (this paper)"
# Published metric -> (column heading, our summary.csv column); None: we do not measure it here.
METRICS: dict[str, tuple[str, str | None]] = {
    "acc_drop": ("Acc. ↓ (%)", "test_drop"),
    "params_reduction": ("Params. ↓ (%)", "params_reduction"),
    "flops_reduction": ("FLOPs ↓ (%)", "flops_reduction"),
    "speedup": ("Speedup (x)", None),
    # Section 4.4 gives Attention Sum's and Max's loss as their difference to Attention Mean's.
    "acc_drop_minus_attention_mean": ("Acc. ↓ minus Attention Mean's (%)", "test_drop"),
}
RELATIVE_TO = {"acc_drop_minus_attention_mean": "Attention Mean (p=1)"}
# A paper table's first columns, then each metric's published / ours / Δ.
ROW_HEAD = ["model", "target", "method", "source", "experiment", "our target", "status", "top-1 (%) published",
            "top-1 (%) ours"]  # fmt: skip
SELECTOR_KEYS = {"artifact", "method", "target", "model", "dataset", "entry"}
# Table 6 and Fig. 6 give two pruned models per (method, target), told apart by this flag note;
# a selector's ``entry: 1`` or ``2`` picks one.
ENTRY = r"pruned model (\d) of 2"


@dataclass(frozen=True)
class Selector:
    """One experiment's claim to reproduce the published row(s) of ``artifact`` / ``method`` /
    ``target`` for (``model``, ``dataset``) with its runs on ``run_model`` / ``run_dataset``."""

    experiment: str
    artifact: str
    method: str
    target: str
    model: str
    dataset: str
    run_model: str
    run_dataset: str
    entry: str = ""  # "1" / "2": one of the two pruned models of a Table 6 / Fig. 6 row pair


# A dataset of ours that stands for one of the paper's (the same images, another encoding).
PAPER_DATASET = {"cifar10_jpeg": "cifar10"}


def paper_dataset(dataset: str) -> str:
    return PAPER_DATASET.get(dataset, dataset)


def entries(published: pd.DataFrame) -> pd.Series:
    """Each published row's entry number ("1", "2"), "" where the row has no pair."""
    return published.flag.str.extract(ENTRY)[0].fillna("")


def load_published(path: Path = PUBLISHED_CSV) -> pd.DataFrame:
    if not path.exists():
        raise ConfigError(f"the published numbers are not at {path}: run from a clone of the repository")
    # Values as printed ("0.00", "56.30"): strings, compared as numbers where ours are beside them.
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def selectors(study: dict[str, Any]) -> list[Selector]:
    """Every (experiment, model) x published selector of ``study``, checked for its keys."""
    from prunebench.config.study import experiment_models

    dataset = study["base"]["data"]["dataset"]
    out = []
    for name, exp in study["experiments"].items():
        given = exp.get("published") or []
        for sel in given if isinstance(given, list) else [given]:
            if (
                not isinstance(sel, dict)
                or not {"artifact", "method", "target"} <= set(sel)
                or set(sel) - SELECTOR_KEYS
            ):
                raise ConfigError(
                    f"experiment {name!r}: published must be a mapping (or a list of them) with artifact, method, "
                    f"target and optionally model, dataset, entry (1 or 2: one of Table 6's two models); got {sel!r}"
                )
            if str(sel.get("entry", "1")) not in ("1", "2"):
                raise ConfigError(f"experiment {name!r}: published entry must be 1 or 2, got {sel['entry']!r}")
            for model in experiment_models(study, name):
                out.append(
                    Selector(
                        name,
                        str(sel["artifact"]),
                        str(sel["method"]),
                        str(sel["target"]),
                        str(sel.get("model", model)),
                        str(sel.get("dataset", dataset)),
                        model,
                        dataset,
                        str(sel.get("entry", "")),
                    )
                )
    return out


def check_selectors(study: dict[str, Any], published: pd.DataFrame | None = None) -> None:
    """Refuse a ``published`` selector that names no published row for any of its models."""
    published = load_published() if published is None else published
    by_experiment: dict[tuple[str, str, str, str], list[Selector]] = {}
    for s in selectors(study):
        by_experiment.setdefault((s.experiment, s.artifact, s.method, s.target), []).append(s)
    for (experiment, artifact, method, target), sels in by_experiment.items():
        if not any(not _rows(published, s).empty for s in sels):
            there = published[(published.artifact == artifact) & published.model.isin({s.model for s in sels})]
            choices = sorted({f"{m} / {t}" for m, t in zip(there.method, there.target, strict=True) if t})
            raise ConfigError(
                f"experiment {experiment!r}: published {artifact} {method} / {target!r} names no row of "
                f"{PUBLISHED_CSV.name} for model(s) {sorted({s.model for s in sels})}; "
                f"that artifact has: {', '.join(choices) or 'no rows for these models'}"
            )


def _rows(published: pd.DataFrame, s: Selector) -> pd.DataFrame:
    p = published
    return p[
        (p.artifact == s.artifact)
        & (p.model == s.model)
        & (p.dataset == s.dataset)
        & (p.method == s.method)
        & (p.target == s.target)
        & ((entries(p) == s.entry) if s.entry else True)
    ]


def _mean_std(mean: float, std: float, n: int) -> str:
    if math.isnan(mean):
        return "-"
    return f"{mean:.2f} ± {std:.2f}" if n > 1 and not math.isnan(std) else f"{mean:.2f}"


def paper_tables(
    study: dict[str, Any], runs: pd.DataFrame, dense: pd.DataFrame, published: pd.DataFrame
) -> dict[str, pd.DataFrame]:
    """Per artifact a table: one row per published (model, method, target), its published
    numbers, ours (mean ± std over the seeds that met the target: a run that missed it kept
    another size, often the dense model) and the difference, where an experiment reproduces it."""
    summary = summary_table(runs)
    met_summary = summary_table(runs[runs["target_met"].astype(bool)])
    sels = selectors(study)
    tables = {}
    for artifact in sorted({s.artifact for s in sels}):
        pairs = {(s.model, s.dataset): (s.run_model, s.run_dataset) for s in sels if s.artifact == artifact}
        mine = {(s.model, s.dataset, s.method, s.target, s.entry): s for s in sels if s.artifact == artifact}
        rows = published[
            (published.artifact == artifact)
            & pd.Series(
                [(m, d) in pairs for m, d in zip(published.model, published.dataset, strict=True)],
                index=published.index,
            )
        ]
        metrics = [m for m in METRICS if m in set(rows.metric)]
        out = []
        for (model, dataset), group in rows.groupby(["model", "dataset"], sort=False):
            run_model, run_dataset = pairs[(model, dataset)]
            ours_dense = dense[
                (dense.model == run_model) & (dense.dataset == run_dataset) & (dense.trained_by.fillna("") == "")
            ]
            # The dense baseline's top-1 (Figs. 6-8 give its throughput instead: a device measure).
            for r in group[(group.method == "dense") & (group.metric == "top1")].itertuples():
                out.append(
                    {
                        "model": model,
                        "target": "",
                        "method": "dense",
                        "source": r.source,
                        "experiment": "",
                        "status": "reproduced" if len(ours_dense) else "not run",
                        "top-1 (%) published": r.value,
                        "top-1 (%) ours": _mean_std(
                            ours_dense.test_top1.mean(), ours_dense.test_top1.std(), len(ours_dense)
                        ),
                    }
                )
            pruned = group[group.method != "dense"]
            for (method, target, entry), g in pruned.groupby(
                [pruned.method, pruned.target, entries(pruned)], sort=False
            ):
                values = dict(zip(g.metric, g.value, strict=True))
                if not set(values) & set(METRICS):  # figure-text numbers (rounds, gains): the claims test them
                    continue
                # A pair's entry is named by the selector; a selector without one takes both.
                sel = mine.get((model, dataset, method, target, entry)) or mine.get(
                    (model, dataset, method, target, "")
                )
                ours = (
                    summary[
                        (summary.experiment == sel.experiment)
                        & (summary.model == run_model)
                        & (summary.dataset == run_dataset)
                    ]
                    if sel
                    else summary.iloc[0:0]
                )
                source = g.source.iloc[0]
                if len(ours):
                    met, n = int(ours.iloc[0].target_met), int(ours.iloc[0].seeds)
                    # A run that missed its target returns another size (often the dense model).
                    status = "reproduced" if met == n else f"target missed in {n - met} of {n} seeds"
                elif sel:
                    status = "not run (no results yet)"
                else:
                    status = "not run" if source == THIS_PAPER else "quoted"
                row = {
                    "model": model,
                    "target": f"{target} (pruned model {entry} of 2)" if entry else target,
                    "method": method,
                    "source": source,
                    "experiment": sel.experiment if sel else "",
                    "our target": _our_target(runs, sel.experiment, run_model) if len(ours) else "",
                    "status": status,
                }
                o = ours.iloc[0] if len(ours) else None
                of_met = met_summary[
                    (met_summary.experiment == (sel.experiment if sel else None))
                    & (met_summary.model == run_model)
                    & (met_summary.dataset == run_dataset)
                ]
                m = of_met.iloc[0] if len(of_met) else None
                if m is not None:
                    row["top-1 (%) ours"] = _mean_std(float(m.test_top1_mean), float(m.test_top1_std), int(m.seeds))
                for metric in metrics:
                    heading, column = METRICS[metric]
                    published_value = float(values[metric]) if metric in values else math.nan
                    row[f"{heading} published"] = values.get(metric, "-")
                    base = _relative_base(met_summary, mine, metric, (model, dataset, target), (run_model, run_dataset))
                    if metric in RELATIVE_TO and metric not in values:
                        row[f"{heading} ours"] = row[f"{heading} Δ"] = ""  # another row's number
                    elif o is not None and m is None:  # no seed met the target: no result to show
                        row[f"{heading} ours"] = row[f"{heading} Δ"] = "-"
                    elif metric in RELATIVE_TO and m is not None and base is not None:
                        mean = float(m[f"{column}_mean"]) - float(base[f"{column}_mean"])
                        row[f"{heading} ours"] = f"{mean:+.2f}"
                        row[f"{heading} Δ"] = f"{mean - published_value:+.2f}"
                    elif m is not None and column is not None and metric not in RELATIVE_TO:
                        mean, std = float(m[f"{column}_mean"]), float(m[f"{column}_std"])
                        row[f"{heading} ours"] = _mean_std(mean, std, int(m.seeds))
                        row[f"{heading} Δ"] = (
                            f"{mean - published_value:+.2f}" if not math.isnan(published_value) else "-"
                        )
                    else:
                        row[f"{heading} ours"] = "not measured" if o is not None else "-"
                        row[f"{heading} Δ"] = "-"
                row["target met"] = f"{int(o.target_met)}/{int(o.seeds)}" if o is not None else "-"
                row["epochs"] = f"{o.train_epochs_total_mean:.0f}" if o is not None else "-"
                out.append(row)
        df = pd.DataFrame(out).fillna("")
        first = [c for c in ROW_HEAD if c in df.columns]
        tables[artifact] = df[first + [c for c in df.columns if c not in first]]
    return tables


def _our_target(runs: pd.DataFrame, experiment: str, model: str) -> str:
    """What the experiment's runs aimed at: a size reached (at least), a loss not exceeded, or its policy."""
    r = runs[(runs.experiment == experiment) & (runs.model == model)].iloc[0]
    if pd.notna(r.get("target")) and pd.notna(r.get("target_metric")):
        return f"{r.target_metric} ≥ {float(r.target):g} %"
    if pd.notna(r.get("loss_target")):
        return f"val loss ≤ {float(r.loss_target):g}"
    return str(r.policy)


def _relative_base(
    met_summary: pd.DataFrame, mine: dict, metric: str, row: tuple[str, str, str], run: tuple[str, str]
) -> pd.Series | None:
    """For a metric given relative to another published row (``RELATIVE_TO``), that row's
    experiment's summary over its seeds that met the target; None where no experiment has it."""
    if metric not in RELATIVE_TO:
        return None
    model, dataset, target = row
    sel = mine.get((model, dataset, RELATIVE_TO[metric], target, ""))
    if sel is None:
        return None
    found = met_summary[
        (met_summary.experiment == sel.experiment) & (met_summary.model == run[0]) & (met_summary.dataset == run[1])
    ]
    return found.iloc[0] if len(found) else None


TABLE1_KEYS = {  # runs.csv column -> configs/paper/table1.csv key
    "train_lr": "init_lr",
    "train_milestones": "lr_decay_epochs",
    "train_epochs": "epochs",
    "train_weight_decay": "weight_decay",
    "train_batch_size": "batch_size",
}


def table1(study: dict[str, Any], runs: pd.DataFrame, paper: pd.DataFrame) -> pd.DataFrame:
    """Table 1 as this study ran it: per (dataset, model) the schedule of its runs (one line per
    distinct schedule) beside the paper's, found by the pairs the study's published: keys map
    (else by the same model and dataset names)."""
    to_paper = {(s.run_model, s.run_dataset): (s.model, s.dataset) for s in selectors(study)}
    out = []
    # An empty cell is an empty list: no learning-rate decay (the paper's "N/A").
    schedules = runs[["dataset", "model", *TABLE1_KEYS]].fillna("none").astype(str).drop_duplicates()
    for r in schedules.itertuples(index=False):
        model, dataset = to_paper.get((r.model, r.dataset), (r.model, r.dataset))
        rows = paper[(paper.model == model) & (paper.dataset == dataset)]
        batch = paper[(paper.model == "all") & (paper.dataset == dataset) & (paper.key == "batch_size")]
        published = dict(zip(rows.key, rows.value, strict=True)) | dict(zip(batch.key, batch.value, strict=True))
        row = {"dataset": r.dataset, "model": r.model, "paper's row": f"{model} / {dataset}" if published else "none"}
        for column, key in TABLE1_KEYS.items():
            row[f"{key} ours"] = getattr(r, column)
            row[f"{key} paper"] = published.get(key, "-")
        out.append(row)
    return pd.DataFrame(out)


def experiments_table(study: dict[str, Any], runs: pd.DataFrame) -> pd.DataFrame:
    """Every experiment of the study, one row, its result per model side by side: the params /
    FLOPs cut and test accuracy loss (mean ± std) over the seeds that met the target, and the
    epochs trained to produce it (``train_epochs_total``, the dense training included)."""
    order = {name: i for i, name in enumerate(study["experiments"])}
    rows = []
    for experiment, mine in sorted(runs.groupby("experiment"), key=lambda kv: order.get(kv[0], len(order))):
        first = mine.iloc[0]
        row = {"experiment": f"`{experiment}`", "method": first.method, "policy": first.policy}
        for model, of_model in mine.groupby("model", sort=False):
            met = of_model[of_model["target_met"].astype(bool)]
            n, k = len(of_model), len(met)
            if k:
                cut = f"{met.params_reduction.mean():.1f} / {met.flops_reduction.mean():.1f} %"
                loss = (
                    f"{met.test_drop.mean():.2f} ± {met.test_drop.std():.2f}"
                    if k > 1
                    else f"{met.test_drop.mean():.2f}"
                )
                if k < n:
                    cut += f" ({k} of {n} met the target)"
            else:
                cut, loss = f"target missed (0 of {n})", "-"
            row[f"{model} params / FLOPs cut"] = cut
            row[f"{model} test loss (points)"] = loss
            row[f"{model} epochs"] = f"{of_model.train_epochs_total.mean():.0f}"
        rows.append(row)
    return pd.DataFrame(rows).fillna("")


README_BEGIN = (
    "<!-- results of {study}: begin (written by `prunebench report {study} --readme`; edits here are lost) -->"
)
README_END = "<!-- results: end -->"


def readme_results(results: Path) -> str:
    """The part of a README generated from a study's report: its experiments and claims."""
    report_dir = Path(paths.report_dir(str(results)))
    parts = [
        (report_dir / "experiments.md").read_text(),
        "The paper's claims, measured on this study (`report/claims.md`; how: `prunebench.report.claims`):\n",
        (report_dir / "claims.md").read_text(),
    ]
    return "\n".join(parts)


def update_readme(readme: Path, study_path: str, results: Path) -> None:
    """Replace what lies between the README's results markers with ``readme_results``."""
    text = readme.read_text()
    begin = README_BEGIN.format(study=study_path)
    if text.count(begin) != 1 or text.count(README_END) != 1 or text.index(begin) > text.index(README_END):
        raise ConfigError(
            f"{readme} needs one results section to write, between the lines\n{begin}\n{README_END}\n"
            "(the study path in the first must be the one given to prunebench report)"
        )
    head, rest = text.split(begin)
    tail = rest.split(README_END)[1]
    atomic_write_text(f"{head}{begin}\n{readme_results(results)}{README_END}{tail}", readme)


def markdown(df: pd.DataFrame) -> str:
    head = "| " + " | ".join(df.columns) + " |\n|" + "---|" * len(df.columns) + "\n"
    return head + "".join("| " + " | ".join(str(v) for v in row) + " |\n" for row in df.itertuples(index=False))


def _tex(value: Any) -> str:
    s = str(value).replace("\\", r"\textbackslash{}")
    for a, b in (
        ("&", r"\&"),
        ("%", r"\%"),
        ("_", r"\_"),
        ("#", r"\#"),
        ("±", r"$\pm$"),
        ("↓", r"$\downarrow$"),
        ("Δ", r"$\Delta$"),
    ):
        s = s.replace(a, b)
    return s


def latex(df: pd.DataFrame, caption: str) -> str:
    """A booktabs table (needs ``\\usepackage{booktabs}``)."""
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        r"\small",
        rf"\caption{{{_tex(caption)}}}",
        r"\begin{tabular}{" + "l" * 5 + "r" * (len(df.columns) - 5) + "}",
        r"\toprule",
        " & ".join(_tex(c) for c in df.columns) + r" \\",
        r"\midrule",
        *(" & ".join(_tex(v) for v in row) + r" \\" for row in df.itertuples(index=False)),
        r"\bottomrule",
        r"\end{tabular}",
        r"\end{table}",
    ]
    return "\n".join(lines) + "\n"


def write_report(study: dict[str, Any], results: Path, published: pd.DataFrame | None = None) -> Path:
    """Write ``results/report/<artifact>.md|.tex`` and ``results/REPORT.md`` from the study's
    tables; returns the path of REPORT.md."""
    published = load_published() if published is None else published
    check_selectors(study, published)
    tables_dir = Path(paths.table_file(str(results), "summary")).parent
    summary = pd.read_csv(tables_dir / "summary.csv")
    dense = pd.read_csv(tables_dir / "dense.csv", dtype={"trained_by": str})
    runs = pd.read_csv(tables_dir / "runs.csv")
    if missing := sorted({*TABLE1_KEYS, "method_options", "policy_options"} - set(runs.columns)):
        raise ConfigError(
            f"{tables_dir / 'runs.csv'} has no columns {missing} (written by an older prunebench): write the "
            "tables again with `prunebench tables` (in a study: snakemake --forcerun tables)"
        )
    tables = paper_tables(study, runs, dense, published)
    report_dir = Path(paths.report_dir(str(results)))
    report_dir.mkdir(parents=True, exist_ok=True)
    parts = [
        f"# Reproduction report: `{results}`\n",
        f"Seeds {', '.join(map(str, study['seeds']))}; models {', '.join(study['models'])}; dataset "
        f"{study['base']['data']['dataset']}. Published numbers: `configs/paper/{PUBLISHED_CSV.name}` "
        "(Zhao et al. 2023 and the works it quotes; see `configs/paper/published.md` for garbled cells). "
        "Ours: mean ± std over the seeds that met the target (`tables/runs.csv`); accuracy loss is each run's "
        "test top-1 against its own dense model; Δ is ours minus published; decisions used the validation split "
        "only.\n",
    ]
    if not tables:
        parts.append("No experiment of this study names a published row (`published:` in its config).\n")
    for artifact, df in tables.items():
        title = artifact.replace("table", "Table ").replace("fig", "Figure ").replace("sec", "Section ")
        caption = f"{title} of the AAP paper, published beside this study's reproduction ({results.name})."
        atomic_write_text(markdown(df), report_dir / f"{artifact}.md")
        atomic_write_text(latex(df, caption), report_dir / f"{artifact}.tex")
        parts += [f"## {title}\n", markdown(df)]
    paper_table1 = pd.read_csv(PUBLISHED_CSV.with_name("table1.csv"), dtype=str, keep_default_na=False)
    schedule = table1(study, runs, paper_table1)
    atomic_write_text(markdown(schedule), report_dir / "table1.md")
    atomic_write_text(
        latex(schedule, f"Table 1 as this study ran it ({results.name}), beside the paper's."),
        report_dir / "table1.tex",
    )
    parts += ["## Table 1: the schedules this study ran, beside the paper's\n", markdown(schedule)]
    latency_csv = tables_dir / "latency.csv"
    latency = pd.read_csv(latency_csv) if latency_csv.exists() else None
    attention_csv = tables_dir / f"{paths.ATTENTION_TABLE}.csv"
    attention = pd.read_csv(attention_csv) if attention_csv.exists() else None
    claims = claims_table(runs, latency, attention)
    atomic_write_text(markdown(claims), report_dir / "claims.md")
    atomic_write_text(
        latex(claims, f"The AAP paper's claims, measured by this study ({results.name})."), report_dir / "claims.tex"
    )
    parts += [
        "## The paper's claims, measured\n",
        "Paired by seed over the seeds where both runs met their targets, test top-1 (points), 95 % t-interval: yes "
        "/ no where the interval lies on one side of 0, undecided where it spans 0 or one seed ran; a best setting "
        "is chosen by validation accuracy (`prunebench.report.claims`).\n",
        markdown(claims),
    ]
    paper_datasets = {s.dataset for s in selectors(study)}
    cpu = None if latency is None or latency.empty else str(latency["cpu"].iloc[0])
    parts += [
        "## Deviations from the paper\n",
        "".join(f"- {line}\n" for line in deviations(study, runs, schedule, paper_datasets, cpu)),
    ]
    experiments = experiments_table(study, runs)
    atomic_write_text(markdown(experiments), report_dir / "experiments.md")
    parts += [
        "## Every experiment: size, accuracy and compute\n",
        "Params / FLOPs cut and test accuracy loss (points, mean ± std) over the seeds that met the target; "
        "epochs: everything trained to produce the result (mean over seeds), the dense training included.\n",
        markdown(experiments),
    ]
    compute = summary[["model", "experiment", "method", "policy", "seeds"]].assign(
        **{
            heading: summary[column].round().astype("Int64")
            for heading, column in (
                ("epochs", "train_epochs_total_mean"),
                ("images", "images_seen_mean"),
                ("train s", "train_wall_s_mean"),
            )
        }
    )
    parts += [
        "## Compute of every experiment\n",
        "Epochs, images and seconds of training per run (mean over seeds), the dense training included.\n",
        markdown(compute),
    ]
    out = Path(paths.report_file(str(results)))
    atomic_write_text("\n".join(parts), out)
    return out
