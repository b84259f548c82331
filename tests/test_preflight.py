"""Every shipped study's AAP searches must start pruning within their round budget."""

from __future__ import annotations

import copy

import pytest
import yaml

from prunebench.run.preflight import preflight
from tests.conftest import REPO

STUDIES = sorted(p for p in (REPO / "configs").rglob("*.yaml") if "experiments" in yaml.safe_load(p.read_text()))


@pytest.mark.parametrize(
    "path",
    [pytest.param(p, marks=pytest.mark.full) if "paper" in p.parts else p for p in STUDIES],
    ids=lambda p: str(p.relative_to(REPO / "configs")),
)
def test_shipped_aap_experiments_prune_within_their_budget(path):
    study = yaml.safe_load(path.read_text())
    study["results"] = "/nonexistent"  # score freshly initialised dense models (no trained ones here)
    for p in preflight(study):
        assert p.ok, f"{p.experiment} on {p.model}: removed {p.removed} of {p.channels} channels"


def test_the_check_fails_when_thresholds_barely_move():
    # The paper's text, lambda = 0.01 in raw attention units, on a CIFAR ResNet: the layer
    # weights (each a small share of the whole model) keep T * w_i below nearly every score.
    study = yaml.safe_load((REPO / "configs/cifar10_cpu.yaml").read_text())
    study["results"] = "/nonexistent"
    study["models"] = ["resnet20"]
    exp = copy.deepcopy(study["experiments"]["aap_p"])
    exp["prune"].update(max_rounds=16, policy_options={"target": 1.0, "lambda0": 0.01, "units": "raw"})
    study["experiments"] = {"raw": exp}
    (p,) = preflight(study)
    assert not p.ok and p.progress < 0.05
    exp["prune"]["policy_options"] = {"target": 1.0, "lambda0": 0.1}  # normalised units, the default
    (p,) = preflight(study)
    assert p.ok
