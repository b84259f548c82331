"""The plugin contract: every built-in method keeps it on one model of every zoo family
(`prunebench check-method`), a method that breaks it is named with what it broke, a model
lacking what a method needs is refused before training, and a method's source is part of
every run's identity."""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import TINY

from prunebench.cli import main
from prunebench.config.run import config_from_dict, config_hash
from prunebench.config.validate import check_run
from prunebench.errors import ConfigError, MethodError
from prunebench.score import contract
from prunebench.score.check import check_method
from prunebench.score.contract import BUILTIN_METHODS_DIR, ScoringContext, make_method
from prunebench.select.policies import resolve_prune


def identity(d: dict) -> str:
    """The config hash of a run as the engine computes it (its prune section resolved first)."""
    cfg = config_from_dict(copy.deepcopy(d))
    resolve_prune(cfg.prune)
    return config_hash(cfg)


BUILTIN = sorted(p.stem for p in BUILTIN_METHODS_DIR.glob("*.py") if not p.stem.startswith("_"))


@pytest.mark.parametrize("name", BUILTIN)
def test_every_builtin_method_keeps_the_contract_on_every_zoo_family(name):
    lines = check_method(name)
    assert len(lines) == 6 and all(": ok (" in line or "refused before any training" in line for line in lines)


def plugin(tmp_path, monkeypatch, body: str, needs: str = "()") -> None:
    plugins = tmp_path / "plugins"
    plugins.mkdir(exist_ok=True)
    (plugins / "mine.py").write_text(
        "import torch\nfrom prunebench.plugin import Method\n\n"
        f"class Mine(Method):\n    name = 'mine'\n    summary = 'x'\n    needs = {needs}\n\n"
        f"    def score(self, ctx):\n{body}"
    )
    monkeypatch.setenv("PRUNEBENCH_METHODS_PATH", str(plugins))


@pytest.mark.parametrize(
    "body,message",
    [
        ("        return {g.name: torch.ones(g.size + 1) for g in ctx.groups}\n", "1-D tensor of"),
        ("        return {g.name: torch.full((g.size,), float('nan')) for g in ctx.groups}\n", "non-finite"),
        ("        return {g.name: torch.rand(g.size) for g in ctx.groups}\n", "differently twice"),
        (
            "        next(ctx.model.parameters()).data.add_(1)\n"
            "        return {g.name: torch.ones(g.size) for g in ctx.groups}\n",
            "changed the weights",
        ),
        (
            "        with torch.enable_grad():\n            ctx.model(ctx.batch).sum().backward()\n"
            "        return {g.name: torch.ones(g.size) for g in ctx.groups}\n",
            "left gradients",
        ),
    ],
    ids=["wrong size", "nan", "global randomness", "changes weights", "leaves gradients"],
)
def test_a_method_breaking_the_contract_is_told_what_it_broke(tmp_path, monkeypatch, body, message):
    plugin(tmp_path, monkeypatch, body)
    with pytest.raises(MethodError, match=message):
        check_method("mine", models=["lenet5"])


def test_a_model_without_what_the_method_needs_is_refused_before_any_training(tmp_path, monkeypatch, capsys):
    plugin(
        tmp_path, monkeypatch, "        return {g.name: torch.ones(g.size) for g in ctx.groups}\n", "('batch_norm',)"
    )
    cfg = copy.deepcopy(TINY)
    cfg["prune"] = {"method": "mine", "policy": "iterative"}
    with pytest.raises(ConfigError, match=r"needs a batch norm .* conv1.*lenet5.*choose another model"):
        check_run(config_from_dict(cfg))
    assert check_method("mine", models=["lenet5", "resnet20"])[0].startswith("lenet5: refused before any training")
    assert main(["check-method", "mine", "--models", "resnet20"]) == 0
    assert "resnet20: ok" in capsys.readouterr().out


def test_editing_a_plugin_changes_the_identity_of_its_runs_only(tmp_path, monkeypatch):
    plugin(tmp_path, monkeypatch, "        return {g.name: torch.ones(g.size) for g in ctx.groups}\n")
    mine = {**copy.deepcopy(TINY), "prune": {"method": "mine", "policy": "iterative"}}

    def hashes():
        contract._load_file.cache_clear()  # a new process reads the edited file
        return tuple(identity(d) for d in (mine, TINY))

    before = hashes()
    path = tmp_path / "plugins" / "mine.py"
    path.write_text(path.read_text() + "\n# a changed comment is a changed method: its runs rerun\n")
    after = hashes()
    assert after[0] != before[0] and after[1] == before[1]


def test_scoring_sees_the_labels_of_its_images():
    method = make_method("taylor", {})
    from prunebench import surgery

    arch = surgery.dense_architecture("lenet5", 10, 1, 28)
    model = surgery.instantiate(arch).eval()
    groups = surgery.channel_groups(model, surgery.build_graph(model, arch.example_input()))
    x = torch.randn(8, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    scores = [method.score(ScoringContext(model, groups, x, torch.Generator(), 1, torch.full((8,), c))) for c in (0, 1)]
    assert not torch.equal(scores[0]["conv1"], scores[1]["conv1"])  # the loss, and so the gradients, use them


def test_the_worked_example_in_the_architecture_doc_is_methods_fpgm():
    import ast

    from conftest import REPO

    def code(text: str) -> str:
        tree = ast.parse(text)
        for node in ast.walk(tree):
            body = getattr(node, "body", None)
            if (
                isinstance(body, list)
                and body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
            ):
                node.body = body[1:] or [ast.Pass()]
        return ast.dump(tree)

    doc = (REPO / "docs/ARCHITECTURE.md").read_text().split("Worked example")[1]
    example = doc.split("```python\n")[1].split("```")[0]
    assert code(example) == code((REPO / "methods/fpgm.py").read_text())
