"""Where a study's reproduction differs from the paper's setup, said from the configs it ran: the
data, the validation split, the schedule against Table 1, rewinding, precision, the model
variants, seeds and the hardware latency was measured on. Each line is computed; a study that
matches the paper somewhere says nothing there.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from prunebench.config.run import config_from_dict
from prunebench.config.study import run_config
from prunebench.models.registry import MODELS

# Datasets that stand in for the paper's: what differs.
DATASET_NOTES = {
    "cifar10_jpeg": "CIFAR-10 re-encoded as JPEG (quality 75): the same images and splits, lossy, so accuracy is "
    "a little lower than on the original",
    "synthetic": "generated images (a test of the machinery): no accuracy here says anything about the paper's",
}


def _numbers_differ(ours: str, paper: str) -> bool:
    try:
        return [float(x) for x in ours.split()] != [float(x) for x in paper.split()]
    except ValueError:  # "none" / "N/A" and the like: both say "no decay" or they differ
        return {ours, paper} != {"none", "N/A"}


def schedule_differences(schedule: pd.DataFrame) -> list[str]:
    """Table 1's keys where the study's schedule (``report.paper.table1``) differs from the paper's."""
    out = []
    for row in schedule.to_dict("records"):
        if row["paper's row"] == "none":
            out.append(f"{row['model']} on {row['dataset']}: the paper's Table 1 has no schedule for it")
            continue
        keys = [c.removesuffix(" ours") for c in row if c.endswith(" ours")]
        differ = [
            f"{k} {row[f'{k} ours']} (paper {row[f'{k} paper']})"
            for k in keys
            if row[f"{k} paper"] != "-" and _numbers_differ(str(row[f"{k} ours"]), str(row[f"{k} paper"]))
        ]
        if differ:
            paper_row = row["paper's row"]
            out.append(f"{row['model']} on {row['dataset']} (paper's {paper_row}): " + ", ".join(differ))
    return out


def deviations(
    study: dict[str, Any], runs: pd.DataFrame, schedule: pd.DataFrame, paper_datasets: set[str], latency_cpu: str | None
) -> list[str]:
    """The study's deviations from the paper, one Markdown bullet each (without the bullet):
    ``schedule`` is ``report.paper.table1``, ``paper_datasets`` the datasets of the published
    rows the study sits beside, ``latency_cpu`` the host latency was measured on (None: not)."""
    seed = study["seeds"][0]
    configs = {
        (model, exp): config_from_dict(run_config(study, model, exp, seed))
        for model, exp in runs[["model", "experiment"]].drop_duplicates().itertuples(index=False)
    }
    out = []
    data = next(iter(configs.values())).data
    if data.dataset in DATASET_NOTES:
        out.append(f"Data: `{data.dataset}`, {DATASET_NOTES[data.dataset]}.")
    if other := sorted(paper_datasets - {data.dataset}):
        names = ", ".join(f"`{d}`" for d in other)
        out.append(f"Data: the study runs on `{data.dataset}` where the published rows it sits beside are on {names}.")
    if data.train_subset or data.test_subset:
        out.append(
            f"Data: subsets of {data.train_subset or 'all'} training and {data.test_subset or 'all'} test images."
        )
    out.append(
        f"Validation split: {data.val_size} training images (split seed {data.split_seed}) are held out and every "
        "decision (the adaptive policies' accuracy checks, the strongest baseline) reads them; the dense models "
        "train on the rest. The paper names no validation split; test accuracy here is only reported."
    )
    out += [f"Schedule: {line}." for line in schedule_differences(schedule)]
    rewinds = sorted({(c.train.rewind, c.train.rewind_epoch, c.train.epochs) for c in configs.values()})
    out.append(
        "Rewinding: "
        + "; ".join(f"{mode} to epoch {k} of {e} ({100 * k / e:.0f} %)" for mode, k, e in rewinds)
        + ". The paper rewinds weights (optional) and the learning rate to epoch k (Algorithm 1) and finds 75-90 % "
        "of training best; its released code rewinds the learning rate only."
    )
    if precisions := sorted({c.train.precision for c in configs.values()} - {"fp32"}):
        out.append(f"Precision: trained with {', '.join(precisions)} autocast (the paper: fp32).")
    for model in sorted(runs["model"].unique()):
        summary = MODELS[model].summary
        if "option B" in summary:
            summary += "; the AAP code's ResNets use these too, most other papers' ResNet-56 zero-padding option A"
        out.append(f"Model `{model}`: {summary}.")
    if latency_cpu:
        out.append(
            f"Latency: measured on this study's host ({latency_cpu}), batch 1; the paper measured a Raspberry Pi 3B+ "
            "(Table 6, Figs. 7-8) and an Intel Xeon Silver 4215R (Fig. 6)."
        )
    seeds = runs.groupby(["model", "experiment"])["seed"].nunique()
    counts = f"{seeds.min()}" if seeds.min() == seeds.max() else f"{seeds.min()}-{seeds.max()}"
    out.append(
        f"Seeds: {counts} per experiment (mean ± std); the paper gives one number per row and does not say over "
        "how many runs."
    )
    return out
