"""Learned gates in the dense stage (Method.dense_gates) and PAAM, the method built on them: the
gates fold exactly into the saved weights on every zoo family, PAAM's hard gates round at the
rule's threshold with the analog score's gradient, and a PAAM run trains its gates from scratch,
resumes, and prunes exactly what its gates switched off (which changes nothing before retraining)."""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import TINY, dense_killed_after
from torch import nn

from prunebench import surgery
from prunebench.config.run import config_from_dict
from prunebench.errors import ConfigError
from prunebench.io import load_torch, read_json
from prunebench.run.engine import dense_only, run_experiment
from prunebench.score.check import CHECK_MODELS
from prunebench.score.contract import Gates, make_method, trains_dense
from prunebench.select.policies import RoundRecord, ScoreThreshold, Step, Stop, make_policy
from prunebench.train.gates import GatedModel


class FixedGates(Gates):
    """Analog gates of fixed random values in (0.1, 1): a fold that is not the identity."""

    def __init__(self, groups: list[surgery.ChannelGroup]) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(3)
        self.values = nn.ParameterDict(
            {str(i): 0.1 + 0.9 * torch.rand(g.size, generator=gen) for i, g in enumerate(groups)}
        )
        self.names = [g.name for g in groups]

    def scores(self, model: nn.Module) -> dict[str, torch.Tensor]:
        return {name: self.values[str(i)] for i, name in enumerate(self.names)}


@pytest.mark.parametrize("model_name", list(CHECK_MODELS))
def test_gates_fold_exactly_into_the_weights_of_every_zoo_family(model_name):
    size, channels = CHECK_MODELS[model_name]
    arch = surgery.dense_architecture(model_name, 10, channels, size)
    torch.manual_seed(0)
    net = surgery.instantiate(arch).eval()
    for m in net.modules():  # batch norms as after training (some start at zero scale: outputs would not move)
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            nn.init.uniform_(m.weight, 0.5, 1.5)
            nn.init.uniform_(m.bias, -0.5, 0.5)
    plain = copy.deepcopy(net)
    groups = surgery.channel_groups(net, surgery.build_graph(net, arch.example_input()))
    gated = GatedModel(net, FixedGates(groups), groups, arch).eval()
    x = torch.randn(4, channels, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = gated(x)
        assert not torch.allclose(want, plain(x), rtol=1e-3, atol=1e-4)  # the gates act
        assert torch.allclose(gated.folded().eval()(x), want, rtol=1e-4, atol=1e-5)


def test_paam_hard_gates_round_at_the_threshold_keep_each_groups_best_and_pass_the_analog_gradient():
    arch = surgery.dense_architecture("lenet5", 10, 1, 28)
    net = surgery.instantiate(arch)
    groups = surgery.channel_groups(net, surgery.build_graph(net, arch.example_input()))
    gates = make_method("paam", {}).dense_gates(net, groups)
    scores = {"conv1": torch.tensor([0.2, 0.7, 0.5, 0.9]), "conv2": torch.tensor([0.1, 0.3, 0.2])}
    for s in scores.values():
        s.requires_grad_(True)
    multipliers = gates.multipliers(scores)
    assert multipliers["conv1"].tolist() == [0, 1, 0, 1]
    assert multipliers["conv2"].tolist() == [0, 1, 0]  # all at or below 0.5: the best stays on
    sum(m.sum() for m in multipliers.values()).backward()
    assert all(torch.equal(s.grad, torch.ones_like(s)) for s in scores.values())  # straight-through
    soft = make_method("paam", {"gate": "soft"}).dense_gates(net, groups)
    assert soft.multipliers(scores)["conv1"] is scores["conv1"]


@pytest.mark.parametrize(
    "options,message", [({"dim": 30}, "multiple of heads"), ({"penalty": -1.0}, "penalty"), ({"gate": "x"}, "gate")]
)
def test_paam_options_are_checked(options, message):
    with pytest.raises(ConfigError, match=message):
        make_method("paam", options)


def test_paam_has_its_own_dense_model_and_prunes_by_one_global_threshold():
    assert trains_dense(type(make_method("paam", {})))
    policy = make_policy("score_threshold", {}, max_rounds=5)
    dense, first = RoundRecord(0, 0, 0.0, 0.0, 0.0, 0), RoundRecord(1, 0, 30.0, 20.0, 0.5, 7)
    step = policy.next_step([dense])
    assert isinstance(step, Step) and step.base_round == 0 and step.selection == ScoreThreshold(0.5)
    assert isinstance(policy.next_step([dense, first]), Stop) and policy.meets_target(first)
    with pytest.raises(ConfigError, match="finite"):
        make_policy("score_threshold", {"threshold": float("nan")}, max_rounds=5)


def paam_config(**train):
    d = copy.deepcopy(TINY)
    # A price per filter high enough to switch filters off in the tiny schedule's 24 steps.
    d["prune"] = {"method": "paam", "method_options": {"penalty": 0.002}}
    d["train"] = {**d["train"], "rewind": "finetune", **train}
    return config_from_dict(d)


@pytest.mark.slow
def test_a_paam_run_prunes_exactly_the_channels_its_gates_switched_off(tmp_path):
    cfg = paam_config()
    summary = run_experiment(cfg, tmp_path / "run")
    dense_dir = tmp_path / "run/dense"
    assert read_json(dense_dir / "dense.json")["trained_by"] == "paam"
    arch, dense, extra = surgery.load_checkpoint(dense_dir / "dense.pt")
    scores = extra["gate_scores"]
    final = surgery.load_checkpoint(tmp_path / "run/final.pt")[0]
    for group, s in scores.items():
        on = (s > 0.5) | (torch.arange(len(s)) == s.argmax())
        assert final.kept.get(group, list(range(len(s)))) == torch.nonzero(on).flatten().tolist(), group
    assert summary["final"]["params_reduction"] > 0
    # The switched-off channels computed nothing in the gated dense model: removing them changes
    # no output before the retraining.
    x = arch.example_input(batch=8)
    pruned = copy.deepcopy(dense)
    remove = {g: [i for i, v in enumerate(s) if not (v > 0.5 or i == int(s.argmax()))] for g, s in scores.items()}
    surgery.remove_channels(pruned, arch, remove)
    with torch.no_grad():
        assert torch.allclose(pruned.eval()(x), dense.eval()(x), atol=1e-5)


@pytest.mark.slow
def test_an_interrupted_gated_dense_training_resumes_to_the_same_model(tmp_path):
    cfg = paam_config(epochs=3, rewind_epoch=1)
    with dense_killed_after(1), pytest.raises(KeyboardInterrupt):
        dense_only(cfg, tmp_path / "killed")
    saved = load_torch(tmp_path / "killed/training.pt")
    assert any(k.startswith("gates.") for k in saved["model"])  # the gates' state is resumed too
    dense_only(cfg, tmp_path / "killed")
    dense_only(cfg, tmp_path / "whole")
    for d in ("killed", "whole"):
        assert surgery.load_checkpoint(tmp_path / d / "dense.pt")[2]["gate_scores"]
    a, b = (surgery.load_checkpoint(tmp_path / d / "dense.pt") for d in ("killed", "whole"))
    assert all(torch.equal(a[1].state_dict()[k], v) for k, v in b[1].state_dict().items())
    assert all(torch.equal(a[2]["gate_scores"][g], v) for g, v in b[2]["gate_scores"].items())
