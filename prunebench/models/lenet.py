"""LeNet-5 (the Caffe variant used by pruning papers: 20-50-500) and LeNet-300-100.

``lenet5`` with ``batch_norm: true`` puts a batch norm after conv1, conv2 and fc1 (before their
ReLUs): the laptop-sized model for methods that score or train batch norms (network slimming,
Taylor on BN gates); without it the network is the papers' LeNet-5."""

from __future__ import annotations

import torch
from torch import nn

from prunebench.models.registry import register_model


class LeNet5(nn.Module):
    def __init__(self, num_classes: int, in_channels: int, image_size: int, batch_norm: bool = False) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 20, 5)
        self.bn1 = nn.BatchNorm2d(20) if batch_norm else nn.Identity()
        self.relu1 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(20, 50, 5)
        self.bn2 = nn.BatchNorm2d(50) if batch_norm else nn.Identity()
        self.relu2 = nn.ReLU()
        self.pool2 = nn.MaxPool2d(2)
        side = ((image_size - 4) // 2 - 4) // 2
        self.fc1 = nn.Linear(50 * side * side, 500)
        self.bn3 = nn.BatchNorm1d(500) if batch_norm else nn.Identity()
        self.relu3 = nn.ReLU()
        self.fc2 = nn.Linear(500, num_classes)
        self.unprunable = ("fc2",)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1(self.relu1(self.bn1(self.conv1(x))))
        x = self.pool2(self.relu2(self.bn2(self.conv2(x))))
        x = torch.flatten(x, 1)
        return self.fc2(self.relu3(self.bn3(self.fc1(x))))


class LeNet300100(nn.Module):
    def __init__(self, num_classes: int, in_channels: int, image_size: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_channels * image_size * image_size, 300)
        self.relu1 = nn.ReLU()
        self.fc2 = nn.Linear(300, 100)
        self.relu2 = nn.ReLU()
        self.fc3 = nn.Linear(100, num_classes)
        self.unprunable = ("fc3",)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(x, 1)
        return self.fc3(self.relu2(self.fc2(self.relu1(self.fc1(x)))))


@register_model("lenet5", "LeNet-5, Caffe variant (conv 20-50, fc 500), 431k params on 28x28")
def lenet5(num_classes: int, in_channels: int, image_size: int, batch_norm: bool = False) -> nn.Module:
    return LeNet5(num_classes, in_channels, image_size, batch_norm)


@register_model("lenet300_100", "LeNet-300-100 fully connected network")
def lenet300_100(num_classes: int, in_channels: int, image_size: int) -> nn.Module:
    return LeNet300100(num_classes, in_channels, image_size)
