"""Learned channel gates in the dense stage (``Method.dense_gates``, PAAM): the gated model that
trains, and the folding that turns it back into a plain model of the same architecture.

A gate multiplies a channel's feature map right after a layer that is affine per output channel
(a batch norm's scale and shift, else the conv/linear output rows with their bias), so folding
the multiplier into that layer's parameters computes exactly the same function: the saved dense
model and its rewind snapshots are plain models, and pruning, rewinding and measurement treat
them like any other.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from prunebench import surgery
from prunebench.errors import MethodError
from prunebench.score.contract import Gates
from prunebench.surgery import ChannelGroup


def gate_points(model: nn.Module, groups: list[ChannelGroup]) -> dict[str, list[str]]:
    """Group -> the layers after which its gates multiply: its batch norms where it has them (a
    conv before a batch norm would have the norm undo the gate), else its output layers."""
    points = {}
    for g in groups:
        points[g.name] = g.norm_layers or g.out_layers
        for name in g.norm_layers:
            if not model.get_submodule(name).affine:
                raise MethodError(f"learned gates need affine batch norms; {name} (group {g.name}) has none")
    return points


def _per_channel(m: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``m`` shaped to broadcast over dimension 1 (channels) of ``like``."""
    return m.to(like.dtype).view(1, -1, *([1] * (like.dim() - 2)))


class GatedModel(nn.Module):
    """``net`` with ``gates`` multiplied into its groups' feature maps: what a method with dense
    gates trains. ``scores`` holds the gate scores of the latest forward pass (``dense_loss``
    reads them)."""

    def __init__(self, net: nn.Module, gates: Gates, groups: list[ChannelGroup], arch: surgery.Architecture) -> None:
        super().__init__()
        self.net = net
        self.gates = gates
        self.arch = arch
        self.points = gate_points(net, groups)
        self.scores: dict[str, torch.Tensor] | None = None
        self._multipliers: dict[str, torch.Tensor] = {}
        for group, names in self.points.items():
            for name in names:
                net.get_submodule(name).register_forward_hook(self._hook(group))

    def _hook(self, group: str) -> Any:
        def multiply(_module: nn.Module, _inputs: Any, output: torch.Tensor) -> torch.Tensor:
            return output * _per_channel(self._multipliers[group], output)

        return multiply

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.scores = self.gates.scores(self.net)
        self._multipliers = self.gates.multipliers(self.scores)
        return self.net(x)

    @torch.no_grad()
    def current(self) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """(scores, multipliers) of the gates as the network's weights are now, in eval mode."""
        was_training = self.gates.training
        self.gates.eval()
        scores = {g: s.detach() for g, s in self.gates.scores(self.net).items()}
        multipliers = {g: m.detach() for g, m in self.gates.multipliers(scores).items()}
        self.gates.train(was_training)
        return scores, multipliers

    def folded(self) -> nn.Module:
        """A plain copy of the network (no hooks) computing what the gated one computes now."""
        plain = surgery.instantiate(self.arch).to(next(self.net.parameters()).device)
        plain.load_state_dict(self.net.state_dict())
        plain.train(self.net.training)
        fold(plain, self.points, self.current()[1])
        return plain


@torch.no_grad()
def fold(net: nn.Module, points: dict[str, list[str]], multipliers: dict[str, torch.Tensor]) -> None:
    """Multiply each group's gate multipliers into the parameters of its gate points, in place."""
    for group, names in points.items():
        m = multipliers[group]
        for name in names:
            layer = net.get_submodule(name)
            shape = (-1, *([1] * (layer.weight.dim() - 1)))
            layer.weight.mul_(m.to(layer.weight.dtype).view(shape))
            if layer.bias is not None:
                layer.bias.mul_(m.to(layer.bias.dtype))
