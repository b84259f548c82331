"""MobileNetV2 (Sandler et al. 2018) in the two layouts the benchmark needs, chosen by input size.

- Small inputs (CIFAR, the default when ``image_size <= 64``, as ResNet-50's ``small_input``):
  the layout of the official AAP code's CIFAR MobileNetV2, which the paper's Table 3 used. The
  stem and the 24- and 32-channel stages keep stride 1 (stride 2 only in the 64- and 160-channel
  stages) and the t=1 block keeps its 1x1 expansion conv (32 -> 32): 2,237,770 params and
  297.5 M MACs at 32x32 with 10 classes.
- Large inputs (ImageNet): torchvision's ``mobilenet_v2`` layout: stride-2 stem, stride 2 in the
  24-, 32-, 64- and 160-channel stages, no expansion conv in the t=1 block, dropout 0.2 before
  the classifier: 3,504,872 params and 300.8 M MACs at 224x224 with 1000 classes.

The ``small_input`` option overrides the choice. Convs are He-normal (fan-out) initialised, as in
both references.
"""

from __future__ import annotations

import torch
from torch import nn

from prunebench.models.registry import register_model

# (expansion t, out_channels, blocks, stride of the first block) per stage.
_SMALL_CFG = [(1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 1), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]
_LARGE_CFG = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]


def _conv_bn(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, act: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if act:
        layers.append(nn.ReLU6())
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expansion: int, always_expand: bool) -> None:
        super().__init__()
        hidden = cin * expansion
        layers: list[nn.Module] = []
        if expansion != 1 or always_expand:
            layers.append(_conv_bn(cin, hidden, 1))
        layers += [_conv_bn(hidden, hidden, 3, stride, groups=hidden), _conv_bn(hidden, cout, 1, act=False)]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        return x + out if self.residual else out


class MobileNetV2(nn.Module):
    def __init__(self, num_classes: int, in_channels: int, small_input: bool) -> None:
        super().__init__()
        cfg = _SMALL_CFG if small_input else _LARGE_CFG
        blocks: list[nn.Module] = [_conv_bn(in_channels, 32, 3, stride=1 if small_input else 2)]
        c = 32
        for t, cout, n, s in cfg:
            for i in range(n):
                blocks.append(InvertedResidual(c, cout, s if i == 0 else 1, t, always_expand=small_input))
                c = cout
        blocks.append(_conv_bn(c, 1280, 1))
        self.features = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Identity() if small_input else nn.Dropout(0.2)
        self.classifier = nn.Linear(1280, num_classes)
        self.unprunable = ("classifier",)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(torch.flatten(self.pool(self.features(x)), 1)))


@register_model(
    "mobilenetv2",
    "MobileNetV2: AAP's CIFAR layout if image_size <= 64, else torchvision's ImageNet strides (option small_input)",
)
def mobilenetv2(num_classes: int, in_channels: int, image_size: int, small_input: bool | None = None) -> nn.Module:
    if small_input is None:
        small_input = image_size <= 64
    return MobileNetV2(num_classes, in_channels, small_input)
