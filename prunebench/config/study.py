"""Study configs: the run matrix of the Snakemake workflow and its validation.

A study (``configs/default.yaml``; JSON schema in ``workflow/schemas/config.schema.yaml``) runs
every model x experiment x seed. ``base`` is a run config shared by all runs, ``per_model``
overrides it for one model (e.g. its Table 1 schedule), and an experiment sets the ``prune``
section and, optionally, the train keys that do not change the dense model. Where data lives
is a machine setting (``data_root``, ``data_mirror``), kept out of the run configs so that moving
the data reruns nothing. The device (``gpu``) and the CPU threads per job (``threads``) change
results, so every run config carries them: changing either reruns the training jobs.
One dense model per (model, seed) serves every experiment, with a snapshot per rewind epoch the
study's experiments use (``rewind_epochs``), but a method with its own pre-pruning training,
which gets its own (``Run.dense_variant``). A ``matched`` experiment's run of (model, seed) gets
the ``final.pt`` of its reference experiment's run of the same (model, seed) as an extra input
(``Run.reference``); an experiment repeating an earlier one's first rounds runs after it
(``Run.after``) and reuses them.
"""

from __future__ import annotations

import copy
import difflib
import functools
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from prunebench.config.run import MACHINE_KEYS, Config, config_from_dict, dense_hash
from prunebench.config.validate import check_run
from prunebench.errors import ConfigError, PrunebenchError
from prunebench.score.contract import Method, trains_dense
from prunebench.select.adaptive import AdaptivePolicy
from prunebench.select.policies import MatchedPolicy, Policy, resolve_prune

STUDY_KEYS = (
    "results", "figures", "seeds", "models", "threads", "gpu", "data_root", "data_mirror", "latency",
    "export", "device_results", "base", "per_model", "experiments",
)  # fmt: skip
EXPERIMENT_KEYS = ("prune", "train", "models", "published")
# The train keys an experiment may change: they change how rounds retrain, not the dense model.
EXPERIMENT_TRAIN_KEYS = ("rewind", "rewind_epoch", "finetune_lr")
# The study keys that say where data lives: machine settings of every run, never its identity.
DATA_LOCATION_KEYS = {"data_root": ("data", "root"), "data_mirror": ("data", "mirror")}
assert set(DATA_LOCATION_KEYS.values()) <= MACHINE_KEYS
# The study keys that say how every job computes: part of each run's config (they change results).
EXECUTION_KEYS = {"gpu": ("train", "device"), "threads": ("train", "threads")}
# Run-config keys the study's own keys set, never base or per_model.
STUDY_SET_KEYS = {
    section: tuple(k for s, k in {**DATA_LOCATION_KEYS, **EXECUTION_KEYS}.values() if s == section)
    for section in ("data", "train")
}
SCHEMA = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


@functools.cache
def _schema_defaults() -> dict[str, Any]:
    properties = yaml.safe_load(SCHEMA.read_text())["properties"]
    return {key: spec["default"] for key, spec in properties.items() if "default" in spec}


def setting(study: dict[str, Any], key: str) -> Any:
    """A top-level study key, or its default from the workflow's JSON schema (the one source of
    the defaults; Snakemake fills them in when it validates, other readers come here)."""
    return study[key] if key in study else _schema_defaults()[key]


@dataclass(frozen=True)
class Run:
    model: str
    experiment: str
    seed: int
    reference: str | None = None  # policy matched: the experiment whose result architecture it keeps
    adaptive: bool = False  # an AAP policy: its thresholds are checked first (`prunebench preflight`)
    snapshot: int | None = None  # the dense model's snapshot its rounds rewind to (rewind: weights)
    # An earlier experiment whose first rounds this one repeats (same run but for the policy's
    # target: Policy.search_key): it runs first, and this run reuses those rounds.
    after: str | None = None
    # The method's own dense model (Method.dense_loss): dense/<model>/<dense_variant>/seed<s>.
    dense_variant: str | None = None


def merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """``a`` updated by ``b``, recursively for nested sections."""
    out = copy.deepcopy(a)
    for key, value in b.items():
        both_dicts = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = merge(out[key], value) if both_dicts else copy.deepcopy(value)
    return out


def _model_base(study: dict[str, Any], model: str, seed: int) -> dict[str, Any]:
    base = merge(study["base"], (study.get("per_model") or {}).get(model, {}))
    execution = {"device": "cuda" if setting(study, "gpu") else "cpu", "threads": setting(study, "threads")}
    return merge(base, {"model": {"name": model}, "seed": int(seed), "train": execution})


def run_config(study: dict[str, Any], model: str, experiment: str, seed: int) -> dict[str, Any]:
    """The full run config of one pruning run (without machine settings)."""
    exp = study["experiments"][experiment]
    cfg = merge(_model_base(study, model, seed), {k: v for k, v in exp.items() if k not in ("models", "published")})
    # Latency is measured by the study's own `latency` job, alone on the machine; measured
    # inside training jobs it would depend on what else runs at the time.
    cfg = merge(cfg, {"name": f"{model}-{experiment}-seed{seed}", "measure": {"latency": False}})
    # The prune section as it runs (defaults and the method's scope filled in), so that a change
    # of what runs reruns the job even where the study's text did not change.
    parsed = config_from_dict(cfg)
    resolve_prune(parsed.prune)
    return merge(cfg, {"prune": parsed.to_dict()["prune"]})


def dense_config(study: dict[str, Any], model: str, seed: int, experiment: str | None = None) -> dict[str, Any]:
    """The config defining the dense model of (model, seed): the shared one, or with the
    ``experiment`` of a method with its own pre-pruning training, that method's."""
    cfg = merge(_model_base(study, model, seed), {"name": f"{model}-dense-seed{seed}"})
    if experiment is not None:
        cfg = merge(cfg, {"prune": run_config(study, model, experiment, seed)["prune"]})
    return merge(cfg, {"measure": {"latency": False}})


def dense_variant(cfg: Config, method: Method) -> str | None:
    """The name of a method's own dense models (None: the shared ones): its name and a hash of
    its resolved options and source, so that experiments with the same method file and options
    share them."""
    if not trains_dense(type(method)):
        return None
    key = [cfg.prune.method_options, cfg.prune.method_source]
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()
    return f"{method.name}-{digest[:8]}"


def rewind_epochs(runs: list[Run], model: str, variant: str | None = None) -> list[int]:
    """The epochs the dense models of ``model`` (of a method's ``variant``) keep a snapshot after:
    those of the experiments pruning them that rewind weights (``Run.snapshot``)."""
    mine = [r for r in runs if r.model == model and r.dense_variant == variant]
    return sorted({r.snapshot for r in mine if r.snapshot is not None})


def machine_overrides(study: dict[str, Any]) -> list[str]:
    """``--set`` assignments for where a job finds the data (never part of a run's identity)."""
    return [f"{section}.{key}={study[name]}" for name, (section, key) in DATA_LOCATION_KEYS.items() if study.get(name)]


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


def _check_schema(study: dict[str, Any]) -> None:
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    try:
        validate(study, str(SCHEMA))  # fills in the schema's defaults
    except WorkflowError as e:
        raise ConfigError(" ".join(str(e).split())) from None


def check_study(study: dict[str, Any]) -> list[Run]:
    """Every run of the study, after building each run config, method and policy, so that a bad
    study is refused before any job starts with a message naming the experiment and the problem.
    The one validation path of a study: our key check (its messages name the key and the allowed
    ones), then the workflow's JSON schema, which also fills in the defaults, then every run."""
    check_keys(study)
    _check_schema(study)
    runs = []
    first_of_search: dict[str, str] = {}
    for experiment in study["experiments"]:
        for model in experiment_models(study, experiment):
            for seed in study["seeds"]:
                where = f"experiment {experiment!r} (model {model}, seed {seed})"
                try:
                    cfg = config_from_dict(run_config(study, model, experiment, seed))
                    check_run(cfg)
                    method, policy = resolve_prune(cfg.prune)
                    variant = dense_variant(cfg, method)
                    own = trains_dense(type(method))
                    dense = config_from_dict(dense_config(study, model, seed, experiment if own else None))
                    resolve_prune(dense.prune)
                except PrunebenchError as e:
                    raise ConfigError(f"{where}: {e}") from None
                if dense_hash(cfg, own) != dense_hash(dense, own):  # a guard: check_keys should make this impossible
                    raise ConfigError(f"{where}: the experiment changes the dense model")
                reference = policy.options.reference if isinstance(policy, MatchedPolicy) else None
                adaptive = isinstance(policy, AdaptivePolicy)
                snapshot = cfg.train.rewind_epoch if cfg.train.rewind == "weights" else None
                search = _search(cfg, policy)
                after = first_of_search.setdefault(search, experiment) if search else None
                after = after if after != experiment else None
                runs.append(Run(model, experiment, int(seed), reference, adaptive, snapshot, after, variant))
    _check_references(study, runs)
    from prunebench.report.paper import check_selectors

    check_selectors(study)  # the published rows an experiment claims to reproduce exist
    return runs


def _search(cfg: Config, policy: Policy) -> str | None:
    """What a run's first rounds depend on: its whole config but the policy's target (and its
    name and round budget), with the policy's search key; None if its policy shares nothing."""
    if (key := policy.search_key()) is None:
        return None
    d = cfg.to_dict()
    del d["name"]
    for k in ("policy", "policy_options", "max_rounds"):
        d["prune"].pop(k, None)
    return json.dumps([d, key], sort_keys=True)


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
