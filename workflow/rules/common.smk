# Config validation, the run matrix and input functions (the logic lives in prunebench.study).
import json
import os
import shlex

from snakemake.utils import validate

from prunebench.errors import PrunebenchError
from prunebench import study

try:
    # Our own check first: its messages name the key and the allowed ones.
    study.check_keys(config)
    validate(config, "../schemas/config.schema.yaml")
    RUNS = study.check_study(config)
    DATA = study.data_config(config)
except PrunebenchError as e:
    raise ValueError(f"bad study config: {e}") from None

RESULTS = config["results"]
THREADS = config["threads"]
GPUS = 1 if config["gpu"] else 0
REWIND_EPOCH = {(r.model, r.experiment, r.seed): r.rewind_epoch for r in RUNS}
REFERENCE = {(r.model, r.experiment, r.seed): r.reference for r in RUNS}
ADAPTIVE = {(r.model, r.experiment, r.seed): r.adaptive for r in RUNS}
FIRST_SEED = config["seeds"][0]


def dense_dir(model, rewind_epoch, seed):
    return study.dense_dir(RESULTS, model, rewind_epoch, seed)


def run_dir(model, experiment, seed):
    return study.run_dir(RESULTS, model, experiment, seed)


def dense_of_run(wildcards):
    k = REWIND_EPOCH[(wildcards.model, wildcards.experiment, int(wildcards.seed))]
    return os.path.join(dense_dir(wildcards.model, k, wildcards.seed), "dense.json")


def reference_of_run(wildcards):
    """Policy matched: the final model of the reference experiment (same model and seed)."""
    ref = REFERENCE[(wildcards.model, wildcards.experiment, int(wildcards.seed))]
    return (
        os.path.join(run_dir(wildcards.model, ref, wildcards.seed), "final.pt")
        if ref
        else []
    )


def preflight_of_run(wildcards):
    """AAP runs wait for the check of their experiment's thresholds on a trained dense model."""
    adaptive = ADAPTIVE[(wildcards.model, wildcards.experiment, int(wildcards.seed))]
    return (
        f"{RESULTS}/preflight/{wildcards.model}/{wildcards.experiment}.txt"
        if adaptive
        else []
    )


def dense_of_preflight(wildcards):
    k = REWIND_EPOCH[(wildcards.model, wildcards.experiment, FIRST_SEED)]
    return os.path.join(dense_dir(wildcards.model, k, FIRST_SEED), "dense.json")


def as_json(d):
    return json.dumps(d, sort_keys=True)


def machine_args(wildcards, resources):
    """--set arguments for where the data lives. Taking `resources` makes this a derived param,
    which Snakemake does not treat as a rerun trigger: moving the data reruns nothing. (The
    device and threads are in each job's config: they change results.)"""
    return " ".join(f"--set {shlex.quote(s)}" for s in study.machine_overrides(config))
