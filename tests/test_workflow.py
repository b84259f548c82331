"""The real Snakefile on configs/smoke.yaml: tables, no-op rerun, targeted reruns, refusals."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import REPO

pytestmark = pytest.mark.slow


def snakemake(workdir: Path, configfile: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(configfile), "--cores", "2", *args]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


def study(tmp: Path, name: str, edit=None) -> Path:
    cfg = yaml.safe_load((REPO / "configs/smoke.yaml").read_text())
    cfg["results"] = str(tmp / "results")
    if edit:
        edit(cfg)
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("smoke")
    config = study(tmp, "smoke")
    done = snakemake(tmp, config)
    assert done.returncode == 0, done.stderr[-3000:]
    return tmp, config


def test_smoke_study_writes_the_tables(smoke):
    tmp, _ = smoke
    tables = tmp / "results" / "tables"
    runs = pd.read_csv(tables / "runs.csv")
    assert len(runs) == 6 and set(runs["experiment"]) == {"ilp", "aap_p", "ilp_rewind0"}
    summary = pd.read_csv(tables / "summary.csv")
    assert len(summary) == 3 and (summary["seeds"] == 2).all() and summary["val_top1_std"].notna().all()
    dense = pd.read_csv(tables / "dense.csv")
    assert len(dense) == 4  # two seeds x two rewind epochs (the ablation needs its own snapshot)
    rounds = pd.read_csv(tables / "rounds.csv")
    assert (rounds.groupby("run_id")["final"].sum() == 1).all()


def test_rerun_does_nothing(smoke):
    tmp, config = smoke
    dry = snakemake(tmp, config, "-n")
    assert dry.returncode == 0 and "Nothing to be done" in dry.stdout + dry.stderr


def test_a_changed_hyperparameter_reruns_exactly_its_jobs(smoke):
    tmp, _ = smoke

    def faster(cfg):
        cfg["experiments"]["ilp"]["prune"]["policy_options"]["rate"] = 0.25

    dry = snakemake(tmp, study(tmp, "changed", faster), "-n")
    out = dry.stdout + dry.stderr
    stats = out[out.index("Job stats") : out.index("total")]
    assert "prune         2" in stats and "dense" not in stats, stats


@pytest.mark.parametrize(
    "edit,message",
    [
        (lambda c: c["experiments"]["ilp"]["prune"].update(method="ipl"), "experiment 'ilp'.*unknown method 'ipl'"),
        (lambda c: c["base"]["train"].update(epoch=3), "unknown config key 'train.epoch'"),
        (lambda c: c["experiments"]["ilp"]["prune"]["policy_options"].update(target=-5), "target must be"),
        (lambda c: c.update(modles=["lenet5"]), "modles"),
        (lambda c: c["experiments"]["ilp"].update(train={"lr": 0.2}), "train overrides change the dense model"),
    ],
)
def test_bad_studies_are_refused_before_any_job(tmp_path, edit, message):
    import re

    result = snakemake(tmp_path, study(tmp_path, "bad", edit), "-n")
    assert result.returncode != 0
    assert re.search(message, result.stdout + result.stderr), (result.stdout + result.stderr)[-2000:]
    assert not (tmp_path / "results").exists()
