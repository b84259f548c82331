"""Where everything lives: the one place that knows the layout of a study's results and of a
dense model directory. The engine, the tables and the Snakemake workflow all build paths here;
nothing parses a directory name back (a run's experiment is recorded in its ``run.json``).

A study's results directory::

    data/<dataset>.json                 the prepared dataset (rule data)
    dense/<model>/seed<s>/              one dense model per (model, seed), every rewind snapshot
    dense/<model>/<variant>/seed<s>/    a method's own (its pre-pruning training): <method>-<options hash>
    runs/<model>/<experiment>/seed<s>/  one pruning run
    shared_rounds/<key>.json            rounds runs share (prunebench.run.reuse): pointers into runs/
    preflight/<model>/<experiment>.txt  the check of an AAP experiment's thresholds
    tables/<name>.csv                   the study's tables (TABLES, LATENCY_TABLE, DEVICES_TABLE, ...)
    export/                             deployable files of every run's dense and final model (prunebench export)
    logs/<job>.log  benchmarks/<job>.tsv
    figures/<name>.<format>             unless the study's ``figures`` key names another place
    REPORT.md, report/<artifact>.md|tex the paper's tables, published beside ours (prunebench.report.paper)
"""

from __future__ import annotations

from pathlib import Path

# What a study's tables and figures jobs write (``tables/<name>.csv``, ``figures/<name>.<format>``).
TABLES = ("rounds", "layers", "runs", "dense", "summary", "paired", "comparison")
LATENCY_TABLE = "latency"  # the host's timing of every run's dense and final model
DEVICES_TABLE = "devices"  # the host's rows and every imported device CSV's, with a device column
ATTENTION_TABLE = "attention"  # per-filter attention of the AAP runs (prunebench attention)
MAPS_TABLE = "maps"  # activation maps of one layer of one dense model for one image (prunebench attention --maps)
FIGURES = (
    "tradeoff", "iterative", "adaptive", "layers", "rewind", "speedup", "throughput", "maps", "attention",
    "distribution",
)  # fmt: skip
FIGURE_FORMATS = ("pdf", "png")

JOBS_TABLE = "jobs"  # every job's benchmark record

# A run directory: its results, what the tables read, and its records.
ROUNDS = "rounds.csv"
LAYERS = "layers.csv"
SUMMARY = "summary.json"
FINAL = "final.pt"
RUN_RECORD = "run.json"  # which run the directory holds (its identity)
RUN_CONFIG = "config.yaml"  # the resolved run config
RUN_STATE = "state"  # finished rounds: history.json and round_NNN.pt

# A dense model directory: the trained model, its record, and one snapshot per rewind epoch.
DENSE_RECORD = "dense.json"
DENSE_MODEL = "dense.pt"
DENSE_TRAINING = "training.pt"  # the dense phase's resumable state while it trains
SNAPSHOTS = "rewind*.pt"  # every snapshot file (and the single rewind.pt of older versions)


def round_checkpoint(state_dir: Path, rnd: int) -> Path:
    """A run's checkpoint of round ``rnd`` (round 0: its dense model), in its ``state/``."""
    return state_dir / f"round_{rnd:03d}.pt"


def rewind_snapshot(dense_dir: Path, epoch: int) -> Path:
    """The dense model's state after ``epoch`` epochs, which rounds rewind to."""
    return dense_dir / f"rewind_e{epoch}.pt"


def dense_dir(results: str, model: str, seed: int | str, variant: str | None = None) -> str:
    """Where a study keeps the dense model of (model, seed), shared by every experiment; a
    ``variant`` is the dense model of a method with its own pre-pruning training."""
    return f"{results}/dense/{model}/{variant}/seed{seed}" if variant else f"{results}/dense/{model}/seed{seed}"


def run_dir(results: str, model: str, experiment: str, seed: int | str) -> str:
    """Where a study keeps one pruning run."""
    return f"{results}/runs/{model}/{experiment}/seed{seed}"


def shared_rounds_dir(results: str) -> str:
    """Where a study's runs record the rounds they trained, for runs that start a round alike."""
    return f"{results}/shared_rounds"


def export_dir(results: str) -> str:
    """The study's exported models and their manifest.json, for device_bench.py on a device."""
    return f"{results}/export"


def table_file(results: str, name: str) -> str:
    return f"{results}/tables/{name}.csv"


def figures_dir(results: str, figures: str | None) -> str:
    """A study's figures: its ``figures`` key, else ``<results>/figures``."""
    return figures or f"{results}/figures"


def report_file(results: str) -> str:
    """The study's reproduction report; its paper tables are in ``report_dir``."""
    return f"{results}/REPORT.md"


def report_dir(results: str) -> str:
    return f"{results}/report"


def preflight_report(results: str, model: str, experiment: str) -> str:
    return f"{results}/preflight/{model}/{experiment}.txt"


def data_record(results: str, dataset: str) -> str:
    return f"{results}/data/{dataset}.json"


def log_file(results: str, job: str) -> str:
    """The log of one workflow job (``job`` as in ``runs/lenet5-ilp-seed0``)."""
    return f"{results}/logs/{job}.log"


def benchmark_file(results: str, job: str) -> str:
    """Snakemake's benchmark record (time, memory) of one workflow job."""
    return f"{results}/benchmarks/{job}.tsv"
