"""Score helpers shared by built-in and user methods.

Coupled channels (a residual stage, a depthwise pair) form one group that spans several
layers. One rule for every method: a channel's score is the MEAN over the group's layers of the
per-layer score (attention: the mean over the group's activation maps, see
``prunebench.score.activations``), never the sum, so a channel's chance of removal does not grow or
shrink with the number of layers its group spans. AAP's layer weight w_i follows the same rule
(``prunebench.select.channels.layer_weights``).
"""

from __future__ import annotations

import torch
from torch import nn

from prunebench.surgery import ChannelGroup


@torch.no_grad()
def filter_l1(model: nn.Module, group: ChannelGroup, per_weight: bool = False) -> torch.Tensor:
    """Per channel of ``group``: the L1 norm of its filter (``per_weight``: divided by the
    filter's number of weights, ILP-Mean), averaged over the group's output layers."""
    total = torch.zeros(group.size, dtype=torch.float64)
    for name in group.out_layers:
        w = model.get_submodule(name).weight.detach().cpu().double()
        l1 = w.reshape(w.shape[0], -1).abs().sum(1)
        total += l1 / w[0].numel() if per_weight else l1
    return total / len(group.out_layers)


def random_scores(groups: list[ChannelGroup], generator: torch.Generator) -> dict[str, torch.Tensor]:
    """A uniform random score per channel, from the run's seeded generator."""
    return {g.name: torch.rand(g.size, generator=generator, dtype=torch.float64) for g in groups}
