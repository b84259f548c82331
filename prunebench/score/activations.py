"""Where each channel group's post-activation feature maps can be read.

An *attention point* is a module whose output carries a group's channels after the
non-linearity: each activation module (ReLU, ReLU6, ...) is assigned to the group of the nearest
conv/linear/norm layer that produces its input (found by walking the autograd graph back through
element-wise ops, pooling and residual additions). A group with no activation after it (e.g. a
MobileNetV2 linear bottleneck) is read at its normalisation layers, i.e. with the identity as its
activation; the run's log names those groups (documented behaviour, docs/ARCHITECTURE.md). When a
group has several points (the blocks of a residual stage, expand and
depthwise convs) its statistic is the mean over them.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable

import torch
from torch import nn

from prunebench.surgery import ChannelGroup

log = logging.getLogger("prunebench")

ACTIVATION_TYPES = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Hardswish, nn.Mish)
_PRODUCER_TYPES = (nn.Conv2d, nn.Linear, nn.modules.batchnorm._BatchNorm)


def attention_points(model: nn.Module, groups: list[ChannelGroup], example: torch.Tensor) -> dict[str, str]:
    """Map attention-point module name -> group name."""
    layer_group = {layer: g.name for g in groups for layer in g.out_layers + g.norm_layers}
    producers: dict[object, str] = {}
    act_inputs: list[tuple[str, object, int]] = []
    hooks = []
    for name, m in model.named_modules():
        if isinstance(m, _PRODUCER_TYPES):
            hooks.append(m.register_forward_hook(lambda _m, _i, out, n=name: producers.__setitem__(out.grad_fn, n)))
        elif isinstance(m, ACTIVATION_TYPES):
            hooks.append(
                m.register_forward_hook(
                    lambda _m, inp, out, n=name: act_inputs.append((n, inp[0].grad_fn, out.shape[1]))
                )
            )
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            model(example)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)

    sizes = {g.name: g.size for g in groups}
    points: dict[str, str] = {}
    for act, grad_fn, channels in act_inputs:
        found = _nearest_producers(grad_fn, producers)
        owners = {layer_group[p] for p in found if p in layer_group}
        if len(owners) == 1:
            (owner,) = owners
            if sizes[owner] != channels:
                raise RuntimeError(f"activation {act} has {channels} channels but group {owner} has {sizes[owner]}")
            points[act] = owner
    covered = set(points.values())
    linear = [g for g in groups if g.name not in covered]
    for g in linear:
        for layer in g.norm_layers or g.out_layers:
            points[layer] = g.name
    if linear:
        log.info(
            "attention of %d group(s) with no activation after them read at their norm (or output) layers: %s",
            len(linear),
            " ".join(g.name for g in linear),
        )
    return points


def _nearest_producers(grad_fn: object, producers: dict[object, str]) -> set[str]:
    found: set[str] = set()
    queue, seen = deque([grad_fn]), set()
    while queue:
        fn = queue.popleft()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        if fn in producers:
            found.add(producers[fn])
            continue
        queue.extend(nxt for nxt, _ in getattr(fn, "next_functions", ()))
    return found


@torch.no_grad()
def group_statistics(
    model: nn.Module, points: dict[str, str], x: torch.Tensor, reduce: Callable[[torch.Tensor], torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Per group, the mean over its attention points of ``reduce(feature_map)`` (one value per
    channel). ``reduce`` maps a ``[B, C, ...]`` tensor to ``[C]``."""
    sums: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}

    def hook(name: str):
        def record(_m, _inp, out):
            group = points[name]
            value = reduce(out.float())
            sums[group] = sums[group] + value if group in sums else value
            counts[group] = counts.get(group, 0) + 1

        return record

    hooks = [model.get_submodule(name).register_forward_hook(hook(name)) for name in points]
    was_training = model.training
    model.eval()
    try:
        model(x)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return {g: (s / counts[g]).cpu() for g, s in sums.items()}
