"""The method contract, checked on real models: ``prunebench check-method NAME`` for plugin
authors, and the test every built-in method passes (tests/test_methods.py).

For each model (one of every zoo family by default, initialised, on random images and labels):
the method is refused before any training when the model lacks what it ``needs``; otherwise its
scores must name every group with a finite 1-D tensor of the group's size, be the same for the
same generator, leave the model's weights and gradients as they were, and the model must still
run after the lowest-scored quarter of every group is removed.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from prunebench import surgery
from prunebench.errors import MethodError
from prunebench.score.contract import Method, ScoringContext, make_method, unmet_needs
from prunebench.select.channels import select_by_rate
from prunebench.train.gates import GatedModel

# (model, image size, channels): the families of the zoo at their cheapest sizes.
CHECK_MODELS: dict[str, tuple[int, int]] = {
    "lenet300_100": (28, 1),
    "lenet5": (28, 1),
    "resnet20": (32, 3),
    "vgg11": (32, 3),
    "mobilenetv2": (16, 3),
    "shufflenetv2": (32, 3),
}


def checked_scores(
    method: Method, groups: list[surgery.ChannelGroup], scores: Any, rnd: int
) -> dict[str, torch.Tensor]:
    """``scores`` as the engine uses them (float64 on the CPU), or a MethodError naming what is wrong."""
    if not isinstance(scores, dict):
        raise MethodError(
            f"method {method.name!r} must return a dict of group name -> scores, got {type(scores).__name__}"
        )
    for g in groups:
        s = scores.get(g.name)
        if not isinstance(s, torch.Tensor) or s.shape != (g.size,):
            got = tuple(s.shape) if isinstance(s, torch.Tensor) else type(s).__name__
            raise MethodError(
                f"method {method.name!r} must return a 1-D tensor of {g.size} scores for group {g.name}, got {got}"
            )
        if not torch.isfinite(s).all():
            raise MethodError(f"method {method.name!r} returned non-finite scores for group {g.name} in round {rnd}")
    return {g.name: scores[g.name].detach().double().cpu() for g in groups}


def _score(
    method: Method, model: torch.nn.Module, groups: list, x: torch.Tensor, y: torch.Tensor, gates: dict | None
) -> dict:
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():  # as the engine scores
        return checked_scores(method, groups, method.score(ScoringContext(model, groups, x, gen, 1, y, gates)), 1)


def _check_gates(
    method: Method,
    model: torch.nn.Module,
    arch: surgery.Architecture,
    groups: list,
    x: torch.Tensor,
    y: torch.Tensor,
    model_name: str,
) -> dict[str, torch.Tensor] | None:
    """A method's dense gates (Method.dense_gates) on ``model``: one training step of the gated
    model with the method's dense loss, its scores in [0, 1] of every group's size, and the
    folded model computing what the gated one does. Returns the scores (ScoringContext.gates)."""
    gates = method.dense_gates(model, groups)
    if gates is None:
        return None
    gated = GatedModel(copy.deepcopy(model), gates, groups, arch).train()  # the scoring below sees the plain model
    loss = F.cross_entropy(gated(x), y)
    if (term := method.dense_loss(gated, x, None)) is not None:
        loss = loss + term
    loss.backward()
    if not any(p.grad is not None and p.grad.abs().sum() > 0 for p in gates.parameters()):
        raise MethodError(f"method {method.name!r}: its gates got no gradient on {model_name}; they cannot learn")
    gated.zero_grad(set_to_none=True)
    scores = gated.current()[0]
    for g in groups:
        s = scores.get(g.name)
        if not isinstance(s, torch.Tensor) or s.shape != (g.size,) or not ((s >= 0) & (s <= 1)).all():
            raise MethodError(
                f"method {method.name!r}: its gates must give {g.size} scores in [0, 1] for group {g.name}"
            )
    gated.eval()
    with torch.no_grad():
        want, got = gated(x), gated.folded().eval()(x)
    if not torch.allclose(want, got, rtol=1e-4, atol=1e-5):
        raise MethodError(f"method {method.name!r}: on {model_name}, the gates do not fold into the weights exactly")
    return scores


def check_method(
    name: str, options: dict[str, Any] | None = None, models: Sequence[str] = tuple(CHECK_MODELS)
) -> list[str]:
    """One line per model saying what was checked; a MethodError on the first broken rule."""
    method = make_method(name, options or {})
    lines = []
    for model_name in models:
        size, channels = CHECK_MODELS.get(model_name, (32, 3))
        arch = surgery.dense_architecture(model_name, 10, channels, size)
        torch.manual_seed(0)
        model = surgery.instantiate(arch).eval()
        groups = surgery.channel_groups(model, surgery.build_graph(model, arch.example_input()))
        if (why := unmet_needs(type(method), groups)) is not None:
            lines.append(f"{model_name}: refused before any training ({why})")
            continue
        gen = torch.Generator().manual_seed(1)
        x = torch.randn(8, channels, size, size, generator=gen)
        y = torch.randint(0, 10, (8,), generator=gen)
        gates = _check_gates(method, model, arch, groups, x, y, model_name)
        before = copy.deepcopy(model.state_dict())
        first = _score(method, model, groups, x, y, gates)
        if any(not torch.equal(before[k], v) for k, v in model.state_dict().items()):
            raise MethodError(f"method {name!r} changed the weights of {model_name} while scoring: score() must not")
        if any(p.grad is not None for p in model.parameters()):
            raise MethodError(f"method {name!r} left gradients on {model_name}: zero them (set_to_none) after use")
        second = _score(method, model, groups, x, y, gates)
        if any(not torch.equal(first[g], second[g]) for g in first):
            raise MethodError(
                f"method {name!r} scored {model_name} differently twice: draw randomness from ctx.generator only"
            )
        remove = select_by_rate(first, 0.25, "layerwise", 1)
        surgery.remove_channels(model, arch, remove)
        with torch.no_grad():
            model(arch.example_input())
        lines.append(f"{model_name}: ok ({len(groups)} groups scored, a quarter of each removed, the model runs)")
    return lines
