"""Selection rules: which channels to remove, given scores. Ties go to the lower index."""

from __future__ import annotations

import torch
from torch import nn

from prunebench.surgery import ChannelGroup


def _lowest(scores: torch.Tensor, n: int) -> list[int]:
    order = torch.sort(scores.double(), stable=True).indices
    return sorted(order[:n].tolist())


def select_by_rate(
    scores: dict[str, torch.Tensor], fraction: float, scope: str, min_channels: int
) -> dict[str, list[int]]:
    """Remove ``fraction`` of the channels, per group (``layerwise``) or over all groups
    pooled (``global``), never leaving a group with fewer than ``min_channels``."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    if scope == "layerwise":
        return {g: _lowest(s, min(round(fraction * len(s)), max(len(s) - min_channels, 0))) for g, s in scores.items()}
    if scope != "global":
        raise ValueError(f"scope must be 'layerwise' or 'global', got {scope!r}")
    total = sum(len(s) for s in scores.values())
    budget = round(fraction * total)
    names = list(scores)
    flat = torch.cat([scores[g].double() for g in names])
    owner = torch.cat([torch.full((len(scores[g]),), i) for i, g in enumerate(names)])
    index = torch.cat([torch.arange(len(scores[g])) for g in names])
    room = {g: max(len(scores[g]) - min_channels, 0) for g in names}
    chosen: dict[str, list[int]] = {g: [] for g in names}
    for k in torch.sort(flat, stable=True).indices.tolist():
        if budget == 0:
            break
        g = names[owner[k]]
        if room[g] > 0:
            chosen[g].append(int(index[k]))
            room[g] -= 1
            budget -= 1
    return {g: sorted(v) for g, v in chosen.items()}


def select_by_threshold(
    scores: dict[str, torch.Tensor], thresholds: dict[str, float], min_channels: int
) -> dict[str, list[int]]:
    """Remove channels whose score is <= the group's threshold (so T = 0 removes exactly the
    dead channels), keeping at least the ``min_channels`` best of each group."""
    out = {}
    for g, s in scores.items():
        below = int((s <= thresholds[g]).sum())
        out[g] = _lowest(s, min(below, max(len(s) - min_channels, 0)))
    return out


def select_by_count(scores: dict[str, torch.Tensor], keep: dict[str, int]) -> dict[str, list[int]]:
    """Remove the lowest-scoring channels of each group so that exactly ``keep[group]`` remain
    (a group missing from ``keep`` keeps all its channels)."""
    out = {}
    for g, s in scores.items():
        n = keep.get(g, len(s))
        if not 1 <= n <= len(s):
            raise ValueError(f"group {g} has {len(s)} channels, cannot keep {n}")
        out[g] = _lowest(s, len(s) - n)
    return out


def layer_aware_thresholds(threshold: float, weights: dict[str, float]) -> dict[str, float]:
    """AAP Section 3.3: T_i = T * w_i."""
    return {g: threshold * w for g, w in weights.items()}


def layer_weights(model: nn.Module, groups: list[ChannelGroup], example: torch.Tensor, by: str) -> dict[str, float]:
    """AAP Section 3.3: w_i = a layer's share of the model's remaining params (``by='params'``)
    or FLOPs (``by='flops'``). A group of coupled channels spans several layers; its w is the
    MEAN share of its output layers (their params include the group's batch norms), the same
    rule as for every method's scores (``prunebench.scores``): summing would aim the threshold
    at residual streams in proportion to the number of blocks they cross."""
    from prunebench.measure import count_params, layer_flops

    if by == "params":
        total = count_params(model)
        return {
            g.name: sum(
                p.numel() for layer in g.out_layers + g.norm_layers for p in model.get_submodule(layer).parameters()
            )
            / len(g.out_layers)
            / total
            for g in groups
        }
    if by == "flops":
        flops = layer_flops(model, example)
        total = sum(flops.values())
        return {g.name: sum(flops[layer] for layer in g.out_layers) / len(g.out_layers) / total for g in groups}
    raise ValueError(f"layer weights are by 'params' or 'flops', got {by!r}")
