"""torchvision's ResNet-50/101, with a stem adaptable to small inputs.

The Bottleneck gives each ReLU its own module (torchvision reuses one), so that attention can be
read from each activation; weights and layout are otherwise torchvision's.
"""

from __future__ import annotations

import functools

import torch
from torch import nn

from prunebench.models.registry import register_model


@functools.cache
def _bottleneck() -> type[nn.Module]:
    """torchvision's Bottleneck with one ReLU module per activation. torchvision is imported
    here, when a torchvision ResNet is built: importing it costs every job about 2 s."""
    from torchvision.models import resnet as tv_resnet

    class Bottleneck(tv_resnet.Bottleneck):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            del self.relu
            self.relu1, self.relu2, self.relu3 = nn.ReLU(), nn.ReLU(), nn.ReLU()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            identity = x if self.downsample is None else self.downsample(x)
            out = self.relu1(self.bn1(self.conv1(x)))
            out = self.relu2(self.bn2(self.conv2(out)))
            out = self.bn3(self.conv3(out))
            return self.relu3(out + identity)

    return Bottleneck


def _build(
    layers: list[int], num_classes: int, in_channels: int, image_size: int, small_input: bool | None
) -> nn.Module:
    from torchvision.models import resnet as tv_resnet

    model = tv_resnet.ResNet(_bottleneck(), layers, num_classes=num_classes)
    if small_input is None:
        small_input = image_size <= 64
    if small_input:
        # CIFAR/Tiny-ImageNet stem: 3x3 stride-1 conv, no max-pool.
        model.conv1 = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
        model.maxpool = nn.Identity()
    elif in_channels != 3:
        model.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
    model.unprunable = ("fc",)
    return model


@register_model("resnet50", "torchvision ResNet-50 (option small_input: 3x3 stem, no max-pool)")
def resnet50(num_classes: int, in_channels: int, image_size: int, small_input: bool | None = None) -> nn.Module:
    return _build([3, 4, 6, 3], num_classes, in_channels, image_size, small_input)


@register_model("resnet101", "torchvision ResNet-101 (option small_input: 3x3 stem, no max-pool)")
def resnet101(num_classes: int, in_channels: int, image_size: int, small_input: bool | None = None) -> nn.Module:
    return _build([3, 4, 23, 3], num_classes, in_channels, image_size, small_input)
