"""A small CNN of our own: a baseline that trains from scratch in minutes on a CPU."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from mushroom.errors import MushroomError
from mushroom.models.registry import register_network


def conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class SmallCNN(nn.Module):
    """Stages of two conv-BN-ReLU layers, each stage halving the resolution; global average pool."""

    def __init__(
        self,
        num_classes: int,
        channels: Sequence[int],
        drop_rate: float,
    ) -> None:
        super().__init__()
        stages: list[nn.Module] = []
        in_channels = 3
        for out_channels in channels:
            stages += [conv_bn_relu(in_channels, out_channels), conv_bn_relu(out_channels, out_channels)]
            stages.append(nn.MaxPool2d(2))
            in_channels = out_channels
        self.features = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(drop_rate), nn.Linear(in_channels, num_classes))

    def get_classifier(self) -> nn.Module:
        """Same accessor as timm models, so the head can get its own learning rate."""
        return self.head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.features(x)))


@register_network("small_cnn")
def small_cnn(
    num_classes: int, drop_rate: float = 0.0, cnn_channels: Sequence[int] = (), **_: object
) -> SmallCNN:
    """Our small CNN (``model=cnn``): trained from scratch, so ``pretrained`` means nothing to it."""
    if not cnn_channels:
        raise MushroomError("small_cnn needs its stages' channels (model.cnn_channels).")
    return SmallCNN(num_classes, channels=cnn_channels, drop_rate=drop_rate)
