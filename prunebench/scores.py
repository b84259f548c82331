"""Score helpers shared by built-in and user methods."""

from __future__ import annotations

import torch
from torch import nn

from prunebench.surgery import ChannelGroup


@torch.no_grad()
def filter_l1(model: nn.Module, group: ChannelGroup) -> tuple[torch.Tensor, int]:
    """Per channel of ``group``: the L1 norm of its filters in every output layer of the group
    (summed over coupled layers), and the number of weights per channel those filters hold."""
    total = torch.zeros(group.size, dtype=torch.float64)
    numel = 0
    for name in group.out_layers:
        w = model.get_submodule(name).weight.detach().cpu().double()
        total += w.reshape(w.shape[0], -1).abs().sum(1)
        numel += w[0].numel()
    return total, numel
