"""Study configs: the run matrix of the Snakemake workflow and its validation.

A study (``configs/default.yaml``; JSON schema in ``workflow/schemas/config.schema.yaml``) runs
every model x experiment x seed. ``base`` is a run config shared by all runs, ``per_model``
overrides it for one model (e.g. its Table 1 schedule), and an experiment sets the ``prune``
section and, optionally, the train keys that do not change the dense model. Where data lives
is a machine setting (``data_root``, ``data_mirror``), kept out of the run configs so that moving
the data reruns nothing. The device (``gpu``) and the CPU threads per job (``threads``) change
results, so every run config carries them: changing either reruns the training jobs.
A ``matched`` experiment's run of (model, seed) gets the ``final.pt`` of its reference
experiment's run of the same (model, seed) as an extra input (``Run.reference``).
"""

from __future__ import annotations

import copy
import difflib
from dataclasses import dataclass
from typing import Any

from prunebench.adaptive import AdaptivePolicy
from prunebench.config import config_from_dict, dense_hash
from prunebench.errors import ConfigError, PrunebenchError
from prunebench.policies import MatchedPolicy, resolve_prune
from prunebench.validate import check_run

STUDY_KEYS = (
    "results", "figures", "seeds", "models", "threads", "gpu", "data_root", "data_mirror", "latency",
    "base", "per_model", "experiments",
)  # fmt: skip
EXPERIMENT_KEYS = ("prune", "train", "models")
# The train keys an experiment may change: they change how rounds retrain, not the dense model.
EXPERIMENT_TRAIN_KEYS = ("rewind", "rewind_epoch", "finetune_lr")
# Set by the study's own keys (data_root, data_mirror, gpu, threads), never per run.
STUDY_SET_KEYS = {"data": ("root", "mirror"), "train": ("device", "threads")}


@dataclass(frozen=True)
class Run:
    model: str
    experiment: str
    seed: int
    rewind_epoch: int
    reference: str | None = None  # policy matched: the experiment whose result architecture it keeps
    adaptive: bool = False  # an AAP policy: its thresholds are checked first (`prunebench preflight`)


def merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """``a`` updated by ``b``, recursively for nested sections."""
    out = copy.deepcopy(a)
    for key, value in b.items():
        both_dicts = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = merge(out[key], value) if both_dicts else copy.deepcopy(value)
    return out


def _model_base(study: dict[str, Any], model: str, seed: int) -> dict[str, Any]:
    base = merge(study["base"], (study.get("per_model") or {}).get(model, {}))
    # The schema's defaults (workflow/schemas/config.schema.yaml) where a study is read without it.
    execution = {"device": "cuda" if study.get("gpu", False) else "cpu", "threads": study.get("threads", 2)}
    return merge(base, {"model": {"name": model}, "seed": int(seed), "train": execution})


def run_config(study: dict[str, Any], model: str, experiment: str, seed: int) -> dict[str, Any]:
    """The full run config of one pruning run (without machine settings)."""
    exp = study["experiments"][experiment]
    cfg = merge(_model_base(study, model, seed), {k: v for k, v in exp.items() if k != "models"})
    # Latency is measured by the study's own `latency` job, alone on the machine; measured
    # inside training jobs it would depend on what else runs at the time.
    cfg = merge(cfg, {"name": f"{model}-{experiment}-seed{seed}", "measure": {"latency": False}})
    # The prune section as it runs (defaults and the method's scope filled in), so that a change
    # of what runs reruns the job even where the study's text did not change.
    parsed = config_from_dict(cfg)
    resolve_prune(parsed.prune)
    return merge(cfg, {"prune": parsed.to_dict()["prune"]})


def dense_config(study: dict[str, Any], model: str, rewind_epoch: int, seed: int) -> dict[str, Any]:
    """The config defining the dense model of (model, rewind epoch, seed)."""
    cfg = merge(_model_base(study, model, seed), {"name": f"{model}-dense-seed{seed}"})
    return merge(cfg, {"train": {"rewind_epoch": int(rewind_epoch)}, "measure": {"latency": False}})


def machine_overrides(study: dict[str, Any]) -> list[str]:
    """``--set`` assignments for where a job finds the data (never part of a run's identity)."""
    sets = []
    if study.get("data_root"):
        sets.append(f"data.root={study['data_root']}")
    if study.get("data_mirror"):
        sets.append(f"data.mirror={study['data_mirror']}")
    return sets


def dense_dir(results: str, model: str, rewind_epoch: int, seed: int) -> str:
    """Where the study keeps the dense model of (model, rewind epoch, seed)."""
    return f"{results}/dense/{model}/k{rewind_epoch}/seed{seed}"


def run_dir(results: str, model: str, experiment: str, seed: int) -> str:
    """Where the study keeps one pruning run."""
    return f"{results}/runs/{model}/{experiment}/seed{seed}"


def experiment_models(study: dict[str, Any], experiment: str) -> list[str]:
    return study["experiments"][experiment].get("models") or study["models"]


def _unknown(keys: Any, allowed: tuple[str, ...], where: str) -> None:
    for key in keys:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"unknown key {key!r} in {where}{hint}; allowed: {', '.join(allowed)}")


def check_keys(study: dict[str, Any]) -> None:
    """Refuse misspelled or misplaced keys, naming them and the allowed ones."""
    _unknown(study, STUDY_KEYS, "the study config")
    for section, keys in STUDY_SET_KEYS.items():
        for where, cfg in [("base", study.get("base") or {})] + [
            (f"per_model.{m}", c or {}) for m, c in (study.get("per_model") or {}).items()
        ]:
            for key in keys:
                if key in (cfg.get(section) or {}):
                    raise ConfigError(
                        f"{where}.{section}.{key} is set for every run by the study keys data_root / data_mirror / "
                        "gpu / threads (or PRUNEBENCH_DATA / PRUNEBENCH_MIRROR); remove it here"
                    )
    for name, cfg in (study.get("per_model") or {}).items():
        if name not in study.get("models", []):
            raise ConfigError(f"per_model.{name}: {name!r} is not in models {study.get('models')}")
        for key in ("name", "seed", "prune"):
            if key in (cfg or {}):
                raise ConfigError(f"per_model.{name}.{key}: set by the study (seeds, experiments), not per model")
    for name, exp in (study.get("experiments") or {}).items():
        _unknown(exp, EXPERIMENT_KEYS, f"experiment {name!r}")
        _unknown(exp.get("train") or {}, EXPERIMENT_TRAIN_KEYS, f"experiment {name!r} train (other train keys "
                 "change the dense model; put them in base or per_model)")  # fmt: skip
        for model in exp.get("models") or []:
            if model not in study.get("models", []):
                raise ConfigError(f"experiment {name!r}: model {model!r} is not in models {study.get('models')}")


def check_study(study: dict[str, Any]) -> list[Run]:
    """Every run of the study, after building each run config, method and policy, so that a bad
    study is refused before any job starts with a message naming the experiment and the problem."""
    check_keys(study)
    runs = []
    for experiment in study["experiments"]:
        for model in experiment_models(study, experiment):
            for seed in study["seeds"]:
                where = f"experiment {experiment!r} (model {model}, seed {seed})"
                try:
                    cfg = config_from_dict(run_config(study, model, experiment, seed))
                    check_run(cfg)
                    policy = resolve_prune(cfg.prune)[1]
                    shared = config_from_dict(dense_config(study, model, cfg.train.rewind_epoch, seed))
                except PrunebenchError as e:
                    raise ConfigError(f"{where}: {e}") from None
                if dense_hash(cfg) != dense_hash(shared):  # a guard: check_keys should make this impossible
                    raise ConfigError(f"{where}: the experiment changes the dense model")
                reference = policy.options.reference if isinstance(policy, MatchedPolicy) else None
                adaptive = isinstance(policy, AdaptivePolicy)
                runs.append(Run(model, experiment, int(seed), cfg.train.rewind_epoch, reference, adaptive))
    _check_references(study, runs)
    return runs


def _check_references(study: dict[str, Any], runs: list[Run]) -> None:
    """A ``matched`` run takes the architecture of the reference experiment's result of the same
    model and seed (its ``final.pt`` is the job's input): the reference must be an experiment of
    the study, run on the same models, and not be matched itself."""
    matched = {r.experiment for r in runs if r.reference}
    for r in runs:
        if r.reference is None:
            continue
        where = f"experiment {r.experiment!r}: policy 'matched' references {r.reference!r}"
        if r.reference not in study["experiments"]:
            raise ConfigError(
                f"{where}, which is not an experiment of this study; name one of: {', '.join(study['experiments'])}"
            )
        if r.reference in matched:
            raise ConfigError(f"{where}, which is matched itself; name the experiment whose architecture it keeps")
        if r.model not in experiment_models(study, r.reference):
            raise ConfigError(
                f"{where}, which does not run on {r.model}; restrict {r.experiment!r} to "
                f"models: {experiment_models(study, r.reference)} or run {r.reference!r} on {r.model}"
            )


def data_config(study: dict[str, Any]) -> dict[str, Any]:
    """What identifies the prepared data: the dataset (and, for generated data, its shape).
    Subsets and augmentation are applied when loading, so they do not belong here."""
    datasets = {
        model: merge({"data": {}}, _model_base(study, model, 0))["data"].get("dataset", "synthetic")
        for model in study["models"]
    }
    if len(set(datasets.values())) > 1:
        raise ConfigError(f"a study uses one dataset; per_model gives several: {datasets}")
    data = merge({"data": {}}, study["base"])["data"]
    identity = {"dataset": data.get("dataset", "synthetic")}
    if identity["dataset"] == "synthetic":
        identity["synthetic"] = data.get("synthetic", {})
    return {"name": "data", "data": identity}
