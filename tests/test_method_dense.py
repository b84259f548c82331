"""Methods with their own pre-pruning training (Method.dense_loss, network slimming): their dense
models are keyed by the method and trained with its loss; every other method still shares one."""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest
import torch
import yaml
from conftest import REPO, TINY

from prunebench.config import study
from prunebench.config.run import config_from_dict
from prunebench.errors import ConfigError
from prunebench.run.engine import run_experiment
from prunebench.surgery import load_checkpoint

pytestmark = pytest.mark.slow  # end-to-end runs


def config(method: str, **options):
    d = copy.deepcopy(TINY)
    d["model"] = {"name": "lenet5", "options": {"batch_norm": True}}
    d["prune"] = {"method": method, "method_options": options, "policy": "one_shot", "policy_options": {"target": 40}}
    d["train"]["rewind"] = "finetune"
    return config_from_dict(d)


def gammas(dense_dir) -> torch.Tensor:
    model = load_checkpoint(dense_dir / "dense.pt")[1]
    return torch.cat([m.weight.detach().abs() for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)])


def test_slimming_trains_its_own_sparse_dense_model_and_refuses_the_shared_one(tmp_path):
    shared, own = tmp_path / "shared", tmp_path / "slimming"
    run_experiment(config("l1"), tmp_path / "l1", shared)
    summary = run_experiment(config("slimming", sparsity=0.05), tmp_path / "slim", own)
    assert summary["final"]["params_reduction"] >= 40
    assert gammas(own).mean() < 0.8 * gammas(shared).mean()  # the L1 penalty on gamma worked
    import pandas as pd

    from prunebench.report.tables import write_tables

    write_tables([tmp_path / "l1", tmp_path / "slim"], tmp_path / "tables")
    dense = pd.read_csv(tmp_path / "tables" / "dense.csv")
    assert sorted(dense["trained_by"].fillna("")) == ["", "slimming"]
    with pytest.raises(ConfigError, match="another"):  # the shared dense model is not slimming's
        run_experiment(config("slimming", sparsity=0.05), tmp_path / "slim2", shared)


def test_a_study_gives_slimming_dense_models_of_its_own_and_snakemake_plans_them(tmp_path):
    s = yaml.safe_load((REPO / "configs/smoke.yaml").read_text())
    s["results"] = str(tmp_path / "results")
    s["base"]["model"] = {"options": {"batch_norm": True}}
    s["experiments"] = {
        "l1": {"prune": {"method": "l1", "policy": "one_shot", "policy_options": {"target": 40}}},
        "slimming": {"prune": {"method": "slimming", "policy_options": {"target": 40}}},
    }
    runs = study.check_study(copy.deepcopy(s))
    variants = {(r.experiment, r.dense_variant) for r in runs}
    assert variants == {("l1", None), ("slimming", [v for _, v in variants if v][0])}
    assert all(v.startswith("slimming-") for _, v in variants if v)
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(s))
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--cores", "1", "-n",
           "--configfile", str(path), "-d", str(tmp_path)]  # fmt: skip
    dry = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    out = dry.stdout + dry.stderr
    assert dry.returncode == 0, out[-2000:]
    assert "method_dense" in out and out.count("rule dense:") == 2  # 2 seeds: shared, and slimming's own
    assert out.count("rule method_dense:") == 2


def test_dense_models_of_two_files_of_one_method_name_are_apart(tmp_path):
    """Two experiments, each with its own file of a method `mine` that trains its dense model."""
    s = yaml.safe_load((REPO / "configs/smoke.yaml").read_text())
    s["base"]["model"] = {"options": {"batch_norm": True}}
    s["experiments"] = {}
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "mine.py").write_text(
            "import torch\nfrom prunebench.plugin import Method\n\n"
            f"class Mine(Method):\n    name = 'mine'\n    summary = '{name}'\n\n"
            "    def dense_loss(self, model, inputs, outputs):\n        return None\n\n"
            "    def score(self, ctx):\n        return {g.name: torch.ones(g.size) for g in ctx.groups}\n"
        )
        s["experiments"][name] = {"prune": {"method": "mine", "methods_path": [str(tmp_path / name)]}}
    runs = study.check_study(s)
    variants = {r.experiment: r.dense_variant for r in runs}
    assert variants["a"] != variants["b"] and all(v.startswith("mine-") for v in variants.values())
