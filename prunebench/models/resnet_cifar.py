"""CIFAR ResNets (He et al. 2016) with 1x1-conv projection shortcuts ("option B").

Option A (zero-padding shortcuts, the 0.85 M-param ResNet-56 of many papers) is mis-grouped by
Torch-Pruning 1.6.1, so the zoo uses option B: ResNet-56 has 0.86 M params and 125.75 M MACs.

``resnet50_cifar`` is the CIFAR "ResNet-50" of the AAP paper's Table 2, the official AAP code's
``resnet50Cifar``: BasicBlocks in four stages of [3, 4, 6, 3] blocks and 16, 32, 64, 128 channels
(34 weight layers despite the name), not torchvision's Bottleneck ResNet-50 (``resnet50``). The
AAP code already uses 1x1-conv shortcuts there, so option B changes nothing: 1,334,618 params and
72.80 M MACs at 32x32 with 10 classes, as the reference.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from prunebench.models.registry import register_model


class BasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))
        # Its own module (not a reused one) so that attention can hook the block output.
        self.relu2 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """Stem conv of 16 filters, then one stage of BasicBlocks per entry of ``blocks``; stage i has
    16 * 2**i channels and stride 2 except the first; global average pooling and one linear layer."""

    def __init__(self, blocks: Sequence[int], num_classes: int, in_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU()
        self.stages = tuple(f"layer{i + 1}" for i in range(len(blocks)))
        in_planes = 16
        for i, n in enumerate(blocks):
            planes, stride = 16 * 2**i, 1 if i == 0 else 2
            stage = []
            for j in range(n):
                stage.append(BasicBlock(in_planes, planes, stride if j == 0 else 1))
                in_planes = planes
            self.add_module(self.stages[i], nn.Sequential(*stage))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_planes, num_classes)
        self.unprunable = ("fc",)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        for name in self.stages:
            x = getattr(self, name)(x)
        return self.fc(torch.flatten(self.pool(x), 1))


def _factory(blocks: Sequence[int]):
    def build(num_classes: int, in_channels: int, image_size: int) -> nn.Module:
        return CifarResNet(blocks, num_classes, in_channels)

    return build


for _depth in (20, 32, 56, 110):
    register_model(f"resnet{_depth}", f"CIFAR ResNet-{_depth}, 1x1-conv shortcuts (option B)")(
        _factory([(_depth - 2) // 6] * 3)
    )

register_model(
    "resnet50_cifar",
    "AAP's CIFAR ResNet-50 (its code's resnet50Cifar): BasicBlocks [3,4,6,3], widths 16-128, option B",
)(_factory([3, 4, 6, 3]))
