"""Study configs: the run matrix, what each job's config contains, and every shipped study."""

from __future__ import annotations

import pytest
import yaml
from conftest import REPO
from snakemake.utils import validate

from prunebench.config import study
from prunebench.config.run import config_from_dict, dense_hash
from prunebench.errors import ConfigError

STUDIES = sorted(REPO.glob("configs/*.yaml")) + sorted(REPO.glob("configs/paper/*.yaml"))


def _study(**extra):
    s = {
        "results": "r",
        "seeds": [0, 1],
        "models": ["lenet5", "lenet300_100"],
        "base": {"data": {"dataset": "synthetic"}, "train": {"epochs": 4, "rewind_epoch": 2, "lr": 0.05}},
        "per_model": {"lenet300_100": {"train": {"lr": 0.01}}},
        "experiments": {
            "ilp": {"prune": {"method": "ilp"}},
            "aap_k1": {"prune": {"method": "aap"}, "train": {"rewind_epoch": 1}, "models": ["lenet5"]},
        },
    }
    s.update(extra)
    return s


@pytest.mark.parametrize(
    "path",
    [pytest.param(p, marks=pytest.mark.full) if "paper" in p.parts else p for p in STUDIES],
    ids=lambda p: str(p.relative_to(REPO / "configs")),
)
def test_every_shipped_study_is_valid(path):
    cfg = yaml.safe_load(path.read_text())
    study.check_keys(cfg)
    validate(cfg, str(REPO / "workflow/schemas/config.schema.yaml"))
    runs = study.check_study(cfg)
    assert runs and study.data_config(cfg)["data"]["dataset"]


def test_the_run_matrix_honours_experiment_models():
    runs = study.check_study(_study())
    assert len(runs) == 2 * 2 + 1 * 2
    assert {(r.experiment, r.snapshot) for r in runs} == {("ilp", 2), ("aap_k1", 1)}


def test_run_configs_merge_base_model_and_experiment():
    s = _study()
    cfg = config_from_dict(study.run_config(s, "lenet300_100", "ilp", 1))
    assert (cfg.model.name, cfg.seed, cfg.train.lr, cfg.train.epochs) == ("lenet300_100", 1, 0.01, 4)
    assert cfg.name == "lenet300_100-ilp-seed1" and cfg.measure.latency is False
    k1 = config_from_dict(study.run_config(s, "lenet5", "aap_k1", 0))
    assert k1.train.rewind_epoch == 1 and k1.prune.method == "aap"
    # One dense model per (model, seed) whatever the rewind epoch; a snapshot per epoch used.
    assert dense_hash(k1) == dense_hash(config_from_dict(study.dense_config(s, "lenet5", 0)))
    assert dense_hash(k1) == dense_hash(config_from_dict(study.run_config(s, "lenet5", "ilp", 0)))
    assert dense_hash(k1) != dense_hash(config_from_dict(study.run_config(s, "lenet5", "ilp", 1)))
    runs = study.check_study(s)
    assert study.rewind_epochs(runs, "lenet5") == [1, 2] and study.rewind_epochs(runs, "lenet300_100") == [2]
    s["experiments"]["ft_k3"] = {"prune": {"method": "l1"}, "train": {"rewind": "finetune", "rewind_epoch": 3}}
    assert study.rewind_epochs(study.check_study(s), "lenet5") == [1, 2]  # finetuning rewinds no weights


def test_an_experiment_repeating_an_earlier_ones_first_rounds_runs_after_it():
    s = yaml.safe_load((REPO / "configs/default.yaml").read_text())
    after = {(r.model, r.experiment, r.seed): r.after for r in study.check_study(s)}
    assert {k: v for k, v in after.items() if v} == {
        (m, "aap_params90", seed): "aap_p" for m in ("lenet5", "lenet300_100") for seed in (0, 1)
    }
    s["experiments"]["ilp60"] = {
        "prune": {**s["experiments"]["ilp"]["prune"], "policy_options": {"rate": 0.2, "target": 60}}
    }
    s["experiments"]["aap_params90"]["prune"]["policy_options"]["lambda0"] = 0.2  # another search
    after = {(r.model, r.experiment): r.after for r in study.check_study(s) if r.after}
    assert after == {("lenet5", "ilp60"): "ilp", ("lenet300_100", "ilp60"): "ilp"}


def test_where_data_lives_stays_out_of_run_configs_but_device_and_threads_are_in():
    s = _study(data_root="/datasets", gpu=True, threads=3)
    assert study.machine_overrides(s) == ["data.root=/datasets"]
    cfg = study.run_config(s, "lenet5", "ilp", 0)
    assert "root" not in cfg["data"]
    assert (cfg["train"]["device"], cfg["train"]["threads"]) == ("cuda", 3)
    assert study.dense_config(_study(), "lenet5", 0)["train"]["device"] == "cpu"
    assert study.machine_overrides(_study()) == []


@pytest.mark.parametrize(
    "edit,message",
    [
        (lambda s: s.update(seed=[0]), "unknown key 'seed' in the study config .did you mean 'seeds'"),
        (lambda s: s["base"]["train"].update(threads=4), "base.train.threads is set for every run by the study"),
        (lambda s: s["models"].append("lenet999"), "unknown model 'lenet999'; choose one of"),
        (lambda s: s["base"]["data"].update(dataset="cifar100"), "unknown dataset 'cifar100'; choose one of"),
        (lambda s: s["base"].update(model={"options": {"width": 2}}), "has no option.s. .'width'."),
        (lambda s: s["experiments"]["ilp"]["prune"].update(policy_options={"rate": "0.3"}), "option 'rate' must be"),
        (lambda s: s["per_model"].update(vgg16={}), "per_model.vgg16: 'vgg16' is not in models"),
        (lambda s: s["experiments"]["ilp"].update(models=["vgg16"]), "model 'vgg16' is not in models"),
        (lambda s: s["base"]["train"].update(epoch=3), "unknown config key 'train.epoch'"),
        (lambda s: s["base"]["data"].update(root="/data"), "base.data.root is set for every run by the study"),
        (lambda s: s["experiments"]["ilp"]["prune"].update(policy_options={"target": -5}), "target must be"),
        (lambda s: s["experiments"]["ilp"].update(train={"lr": 0.2}), "unknown key 'lr' in experiment 'ilp' train"),
        (lambda s: s["experiments"]["ilp"]["prune"].update(policy="iterativ"), "unknown policy 'iterativ'"),
        (
            lambda s: s["experiments"].update(
                m={"prune": {"method": "random", "policy": "matched", "policy_options": {"reference": "aap"}}}
            ),
            "policy 'matched' references 'aap', which is not an experiment of this study",
        ),  # fmt: skip
        (lambda s: s["per_model"].update(lenet5={"prune": {"max_rounds": 3}}), "per_model.lenet5.prune: set by"),
        (lambda s: s["experiments"]["ilp"].update(prunee={}), "unknown key 'prunee' in experiment 'ilp'"),
        (lambda s: s["experiments"]["ilp"]["prune"].update(method="l2"), "experiment 'ilp'.*unknown method 'l2'"),
        (lambda s: s["per_model"].update(lenet5={"data": {"dataset": "mnist"}}), "one dataset"),
        (lambda s: s["experiments"].update({"ilp_{k}": s["experiments"]["ilp"]}), "does not match"),  # a wildcard
        (lambda s: s.update(threads=0), "0 is less than the minimum of 1"),  # the JSON schema, in the same path
        (
            lambda s: s["experiments"]["ilp"].update(
                published={"artifact": "table5", "method": "AAP", "target": "params 80%"}
            ),
            "published table5 AAP / 'params 80%' names no row.*that artifact has: .*AAP / params 99%",
        ),  # fmt: skip
        (lambda s: s["experiments"]["ilp"].update(published={"artifact": "table5"}), "published must be a mapping"),
    ],
)
def test_bad_studies_name_the_problem(edit, message):
    s = _study()
    edit(s)
    with pytest.raises(ConfigError, match=message):
        study.check_study(s)
        study.data_config(s)
