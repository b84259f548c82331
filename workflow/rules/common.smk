# Config validation, the run matrix and input functions (the logic lives in prunebench.config.study).
import json
import os
import shlex

from prunebench.errors import PrunebenchError
from prunebench import paths
from prunebench.config import study
from prunebench.data.datasets import CACHE_FORMAT
from prunebench.report.paper import PUBLISHED_CSV, selectors

try:
    # Keys, the JSON schema (filling in its defaults), every run.
    RUNS = study.check_study(config)
    DATA = study.data_config(config)
except PrunebenchError as e:
    raise ValueError(f"bad study config: {e}") from None

RESULTS = config["results"]
THREADS = config["threads"]
GPUS = 1 if config["gpu"] else 0
RUN = {(r.model, r.experiment, r.seed): r for r in RUNS}
FIRST_SEED = config["seeds"][0]
# The published rows the study's experiments reproduce (their published: keys).
REPORT_SELECTORS = selectors(config)


# A model, seed or dense variant is one path component.
wildcard_constraints:
    model=r"[^/]+",
    seed=r"\d+",
    variant=r"[^/]+",


def dense_dir(model, seed, variant=None):
    return paths.dense_dir(RESULTS, model, seed, variant)


# A method with its own pre-pruning training: (model, variant) -> an experiment using it.
VARIANT_EXPERIMENT = {}
for r in RUNS:
    if r.dense_variant:
        VARIANT_EXPERIMENT.setdefault((r.model, r.dense_variant), r.experiment)


def run_dir(model, experiment, seed):
    return paths.run_dir(RESULTS, model, experiment, seed)


# The prune rule's output pattern.
RUN_DIR = run_dir("{model}", "{experiment}", "{seed}")


def job_log(job):
    return paths.log_file(RESULTS, job)


def job_benchmark(job):
    return paths.benchmark_file(RESULTS, job)


# Snakemake's benchmark record (wall time, memory, CPU time) of every job, by rule.
BENCHMARK = {
    "data": job_benchmark("data/{dataset}"),
    "dense": job_benchmark("dense/{model}-seed{seed}"),
    "method_dense": job_benchmark("dense/{model}/{variant}-seed{seed}"),
    "preflight": job_benchmark("preflight/{model}-{experiment}"),
    "prune": job_benchmark("prune/{model}-{experiment}-seed{seed}"),
    **{
        name: job_benchmark(name)
        for name in (
            "tables",
            "latency",
            "export",
            "devices",
            "attention",
            "figures",
            "report",
        )
    },
}


def _run(wildcards):
    return RUN[(wildcards.model, wildcards.experiment, int(wildcards.seed))]


def dense_of_run(wildcards):
    variant = _run(wildcards).dense_variant
    return os.path.join(
        dense_dir(wildcards.model, wildcards.seed, variant), paths.DENSE_RECORD
    )


def reference_of_run(wildcards):
    """Policy matched: the final model of the reference experiment (same model and seed)."""
    ref = _run(wildcards).reference
    return (
        os.path.join(run_dir(wildcards.model, ref, wildcards.seed), paths.FINAL)
        if ref
        else []
    )


def after_of_run(wildcards):
    """A run that repeats an earlier experiment's first rounds waits for it (and reuses them).
    ancient(): only the order matters; a rerun of the earlier run reruns nothing here.
    """
    after = _run(wildcards).after
    return (
        ancient(
            os.path.join(run_dir(wildcards.model, after, wildcards.seed), paths.SUMMARY)
        )
        if after
        else []
    )


def preflight_of_run(wildcards):
    """AAP runs wait for the check of their experiment's thresholds on a trained dense model."""
    if not _run(wildcards).adaptive:
        return []
    return paths.preflight_report(RESULTS, wildcards.model, wildcards.experiment)


def dense_of_preflight(wildcards):
    """The first seed's dense model the experiment prunes (a method's own, if it has one)."""
    run = RUN[(wildcards.model, wildcards.experiment, FIRST_SEED)]
    return os.path.join(
        dense_dir(wildcards.model, FIRST_SEED, run.dense_variant), paths.DENSE_RECORD
    )


def as_json(d):
    return json.dumps(d, sort_keys=True)


def machine_args(wildcards, resources):
    """--set arguments for where the data lives. Taking `resources` makes this a derived param,
    which Snakemake does not treat as a rerun trigger: moving the data reruns nothing. (The
    device and threads are in each job's config: they change results.)"""
    return " ".join(f"--set {shlex.quote(s)}" for s in study.machine_overrides(config))


def benchmarked_jobs():
    """Every job of the study but the jobs table itself: its rule, wildcards and benchmark file."""
    jobs = [("data", {"dataset": DATA["data"]["dataset"]})]
    jobs += [
        ("dense", {"model": m, "seed": s})
        for m, s in sorted({(r.model, r.seed) for r in RUNS if not r.dense_variant})
    ]
    jobs += [
        ("method_dense", {"model": m, "variant": v, "seed": s})
        for m, v, s in sorted(
            {(r.model, r.dense_variant, r.seed) for r in RUNS if r.dense_variant}
        )
    ]
    jobs += [
        ("preflight", {"model": m, "experiment": e})
        for m, e in sorted({(r.model, r.experiment) for r in RUNS if r.adaptive})
    ]
    jobs += [
        ("prune", {"model": r.model, "experiment": r.experiment, "seed": r.seed})
        for r in RUNS
    ]
    jobs += [("tables", {})] + (
        [("latency", {})] if config["latency"]["enabled"] else []
    )
    jobs += [("export", {})] if config["export"]["enabled"] else []
    jobs += [("devices", {})]
    jobs += [("attention", {})] if ATTENTION_RUNS else []
    jobs += [("figures", {}), ("report", {})]
    return [
        {"rule": rule, **wc, "benchmark": BENCHMARK[rule].format(**wc)}
        for rule, wc in jobs
    ]
