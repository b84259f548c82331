# Config validation, the run matrix and input functions.
import copy
import json
import os

from snakemake.utils import validate

from prunebench.config import config_from_dict, dense_hash
from prunebench.errors import PrunebenchError
from prunebench.methods import make_method
from prunebench.policies import make_policy

validate(config, "../schemas/config.schema.yaml")

RESULTS = config["results"]
THREADS = config.get("threads", 2)


def _merge(a, b):
    out = copy.deepcopy(a)
    for key, value in b.items():
        out[key] = (
            _merge(out[key], value)
            if isinstance(value, dict) and isinstance(out.get(key), dict)
            else value
        )
    return out


def run_config(model, experiment, seed):
    """The full prunebench config of one run, as a plain dict."""
    base = _merge(config["base"], {"model": {"name": model}, "seed": int(seed)})
    return _merge(
        base,
        {
            "name": f"{model}-{experiment}-seed{seed}",
            **config["experiments"][experiment],
        },
    )


def _check_runs():
    """Refuse a bad study before any job starts, naming the experiment and the problem."""
    runs = []
    for model in config["models"]:
        for experiment in config["experiments"]:
            for seed in config["seeds"]:
                where = f"experiment {experiment!r} (model {model}, seed {seed})"
                try:
                    cfg = config_from_dict(run_config(model, experiment, seed))
                    method = make_method(
                        cfg.prune.method,
                        cfg.prune.method_options,
                        cfg.prune.methods_path,
                    )
                    make_policy(
                        cfg.prune.policy or method.default_policy,
                        cfg.prune.policy_options,
                        cfg.prune.max_rounds,
                    )
                    shared = config_from_dict(
                        dense_config(model, cfg.train.rewind_epoch, seed)
                    )
                except PrunebenchError as e:
                    raise ValueError(f"{where}: {e}") from None
                # Dense models are shared by (model, rewind epoch, seed): an experiment may
                # change how rounds train (rewind, rewind_epoch, finetune_lr), not the dense model.
                if dense_hash(cfg) != dense_hash(shared):
                    raise ValueError(
                        f"{where}: its train overrides change the dense model; only rewind, "
                        "rewind_epoch and finetune_lr may differ between experiments "
                        "(put other train keys in base)"
                    )
                runs.append((model, experiment, seed, cfg.train.rewind_epoch))
    return runs


def dense_config(model, rewind_epoch, seed):
    """The config that defines a dense model: the base with the run's rewind epoch."""
    cfg = _merge(
        config["base"],
        {
            "model": {"name": model},
            "seed": int(seed),
            "name": f"{model}-dense-seed{seed}",
        },
    )
    return _merge(cfg, {"train": {"rewind_epoch": int(rewind_epoch)}})


def dense_dir(model, rewind_epoch, seed):
    return f"{RESULTS}/dense/{model}/k{rewind_epoch}/seed{seed}"


def run_dir(model, experiment, seed):
    return f"{RESULTS}/runs/{model}/{experiment}/seed{seed}"


def dense_of_run(wildcards):
    k = REWIND_EPOCH[(wildcards.model, wildcards.experiment, int(wildcards.seed))]
    return os.path.join(dense_dir(wildcards.model, k, wildcards.seed), "dense.json")


def as_json(d):
    return json.dumps(d, sort_keys=True)


RUNS = _check_runs()
REWIND_EPOCH = {(m, e, s): k for m, e, s, k in RUNS}
