"""ShuffleNetV2 (1.0x) for CIFAR, with the channel shuffle as an opaque module.

Torch-Pruning 1.6.1 crashes (ZeroDivisionError) mapping indices through the shuffle's
view/transpose. The shuffle is therefore a module whose autograd node hides those ops, registered
with a pruner that keeps its channels fixed: every channel group that reaches a shuffle (branch
outputs and the stage-wide streams) is left unpruned, and the branch-internal channels, the stem
and the last 1x1 conv are pruned. The equivalence tests prove this grouping on the real model.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch_pruning as tp
from torch import nn

from prunebench.models.registry import CUSTOMIZED_PRUNERS, register_model


def _shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    b, c, h, w = x.shape
    return x.view(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)


class _ShuffleFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, groups: int) -> torch.Tensor:  # type: ignore[override]
        ctx.groups = groups
        return _shuffle(x, groups)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        # The inverse of a shuffle with g groups is the shuffle with C/g groups.
        return _shuffle(grad, grad.shape[1] // ctx.groups), None


class ChannelShuffle(nn.Module):
    def __init__(self, groups: int = 2) -> None:
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The opaque node exists for Torch-Pruning's autograd trace only. Exporters must see the
        # plain view/transpose: TorchScript cannot save a Python autograd function.
        if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
            return _shuffle(x, self.groups)
        return _ShuffleFn.apply(x, self.groups)


class FixedChannelsPruner(tp.pruner.BasePruningFunc):
    """Pruner of a module whose channels must not change. In and out are distinct functions,
    so Torch-Pruning sees no intra-layer dependency through it."""

    def prune_out_channels(self, layer: nn.Module, idxs: Sequence[int]) -> nn.Module:
        raise RuntimeError(f"{type(layer).__name__} channels are fixed; its groups must not be pruned")

    def prune_in_channels(self, layer: nn.Module, idxs: Sequence[int]) -> nn.Module:
        raise RuntimeError(f"{type(layer).__name__} channels are fixed; its groups must not be pruned")

    def get_out_channels(self, layer: nn.Module) -> None:
        return None

    def get_in_channels(self, layer: nn.Module) -> None:
        return None


CUSTOMIZED_PRUNERS[ChannelShuffle] = FixedChannelsPruner()


def _bn_conv(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, relu: bool = True) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if relu:
        layers.append(nn.ReLU())
    return layers


class BasicUnit(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        c = channels // 2
        self.branch = nn.Sequential(*_bn_conv(c, c, 1), *_bn_conv(c, c, 3, groups=c, relu=False), *_bn_conv(c, c, 1))
        self.shuffle = ChannelShuffle(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = x.chunk(2, dim=1)
        return self.shuffle(torch.cat([x1, self.branch(x2)], 1))


class DownUnit(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        mid = cout // 2
        self.left = nn.Sequential(*_bn_conv(cin, cin, 3, 2, groups=cin, relu=False), *_bn_conv(cin, mid, 1))
        self.right = nn.Sequential(
            *_bn_conv(cin, mid, 1), *_bn_conv(mid, mid, 3, 2, groups=mid, relu=False), *_bn_conv(mid, mid, 1)
        )
        self.shuffle = ChannelShuffle(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shuffle(torch.cat([self.left(x), self.right(x)], 1))


class ShuffleNetV2(nn.Module):
    def __init__(self, num_classes: int, in_channels: int) -> None:
        super().__init__()
        widths, repeats = (116, 232, 464), (3, 7, 3)
        self.stem = nn.Sequential(*_bn_conv(in_channels, 24, 3))
        units: list[nn.Module] = []
        c = 24
        for w, n in zip(widths, repeats, strict=True):
            units.append(DownUnit(c, w))
            units += [BasicUnit(w) for _ in range(n)]
            c = w
        self.stages = nn.Sequential(*units)
        self.head = nn.Sequential(*_bn_conv(c, 1024, 1))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(1024, num_classes)
        self.unprunable = ("classifier",)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(self.stages(self.stem(x)))
        return self.classifier(torch.flatten(self.pool(x), 1))


@register_model("shufflenetv2", "ShuffleNetV2 1.0x, CIFAR variant (stride-1 stem, no max-pool)")
def shufflenetv2(num_classes: int, in_channels: int, image_size: int) -> nn.Module:
    return ShuffleNetV2(num_classes, in_channels)
