"""Selection rules: which channels to remove, given scores. Ties go to the lower index."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from prunebench import surgery
from prunebench.errors import MethodError
from prunebench.measure.cost import complexity
from prunebench.select.policies import RateSelection
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


def round_kept(scores: dict[str, torch.Tensor], remove: dict[str, list[int]], multiple: int) -> dict[str, list[int]]:
    """Latency-aware rounding (``prune.round_to``, Torch-Pruning's ``round_to``): each group that
    loses channels keeps a multiple of ``multiple`` of them, rounded up (so it removes fewer, its
    highest-scoring picks stay), or all of them. CPU kernels run fastest on channel counts that
    fill their vector registers; 1 leaves the selection as it is."""
    if multiple <= 1:
        return remove
    out = {}
    for g, chosen in remove.items():
        size = len(scores[g])
        kept = min(size, -(-(size - len(chosen)) // multiple) * multiple)
        order = sorted(chosen, key=lambda i: (float(scores[g][i]), i))  # lowest score first, ties by index
        out[g] = sorted(order[: size - kept])
    return out


def layer_aware_thresholds(threshold: float, weights: dict[str, float]) -> dict[str, float]:
    """AAP Section 3.3: T_i = T * w_i."""
    return {g: threshold * w for g, w in weights.items()}


def layer_weights(model: nn.Module, groups: list[ChannelGroup], example: torch.Tensor, by: str) -> dict[str, float]:
    """AAP Section 3.3: w_i = a layer's share of the model's remaining params (``by='params'``)
    or FLOPs (``by='flops'``). A group of coupled channels spans several layers; its w is the
    MEAN share of its output layers (their params include the group's batch norms), the same
    rule as for every method's scores (``prunebench.score.filters``): summing would aim the threshold
    at residual streams in proportion to the number of blocks they cross."""
    from prunebench.measure.cost import count_params, layer_flops

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


# ---------------------------------------------------------------------------------------------
# Resolving a policy's selection on a model


def reduction(value: int, dense: int) -> float:
    return 100.0 * (1.0 - value / dense)


def _metric_value(model: nn.Module, arch: surgery.Architecture, metric: str, device: torch.device) -> int:
    return complexity(model, arch.example_input(device=device))[metric]


def resolve_rate(
    sel: RateSelection,
    scores: dict[str, torch.Tensor],
    model: nn.Module,
    arch: surgery.Architecture,
    dense: dict[str, Any],
    min_channels: int,
    device: torch.device,
    round_to: int = 1,
) -> tuple[float, dict[str, list[int]]]:
    """The fraction to remove and the channels it selects (kept counts rounded by ``round_to``).
    With a target, the smallest fraction (to 1e-4) that reaches it, so the last round lands on
    the target instead of overshooting."""

    def select(fraction: float) -> dict[str, list[int]]:
        return round_kept(scores, select_by_rate(scores, fraction, sel.scope, min_channels), round_to)

    if sel.target is None:
        return sel.fraction, select(sel.fraction)
    metric, target = sel.target

    def reduction_at(fraction: float) -> float:
        trial = copy.deepcopy(model)
        surgery.remove_channels(trial, arch, select(fraction), min_channels)
        return reduction(_metric_value(trial, arch, metric, device), dense[metric])

    lo, hi = 0.0, sel.fraction
    if reduction_at(hi) >= target:
        while hi - lo > 1e-4:
            mid = (lo + hi) / 2
            lo, hi = (lo, mid) if reduction_at(mid) >= target else (mid, hi)
    return hi, select(hi)


def threshold_weights(
    weighting: tuple[str, ...], model: nn.Module, groups: list[surgery.ChannelGroup], example: torch.Tensor
) -> dict[str, float]:
    """AAP Section 3.3: w_i, the group's share of the remaining params or FLOPs (the mean of
    the shares when both are named)."""
    shares = [layer_weights(model, groups, example, by) for by in weighting]
    return {g.name: sum(s[g.name] for s in shares) / len(shares) for g in groups}


def threshold_scale(scores: dict[str, torch.Tensor], weights: dict[str, float], units: str) -> float:
    """What T is multiplied by before it meets the scores: 1 for ``raw`` units; for
    ``normalized`` units the mean score over all channels divided by the mean w_i, so that
    T = 1 in a group of average weight removes the channels scoring below the mean. Computed
    from the dense model (round 1) and fixed for the run."""
    if units == "raw":
        return 1.0
    mean = float(torch.cat(list(scores.values())).mean())
    if not mean > 0:
        raise MethodError(
            f"cannot normalise AAP's thresholds: the dense model's mean score is {mean}; use "
            "prune.policy_options.units: raw, or a method whose scores are positive"
        )
    return mean * len(weights) / sum(weights.values())
