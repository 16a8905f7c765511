"""YOLOv3 (Redmon & Farhadi, 2018) in plain ``torch.nn`` with random weights.

Darknet-53 backbone and the three-scale detection head: each scale has a set of five
alternating 1x1 / 3x3 convs, a 3x3 conv and a 1x1 output conv with ``3 * (5 + classes)``
channels. Coarser features are reduced by a 1x1 conv, upsampled 2x (nearest) and
concatenated with the backbone route at the next finer scale.
"""

from __future__ import annotations

import torch
from torch import nn


class ConvBN(nn.Sequential):
    """Conv (no bias) + BatchNorm + LeakyReLU(0.1); ``same`` padding."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, kernel, stride, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(cout),
            nn.LeakyReLU(0.1, inplace=True),
        )


class Residual(nn.Module):
    """Darknet residual block: 1x1 halving the channels, 3x3 restoring them, plus identity."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        half = channels // 2
        self.body = nn.Sequential(ConvBN(channels, half, 1), ConvBN(half, channels, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def stage(cin: int, cout: int, blocks: int) -> nn.Sequential:
    """A stride-2 3x3 downsampling conv followed by ``blocks`` residual blocks."""
    return nn.Sequential(ConvBN(cin, cout, 3, stride=2), *(Residual(cout) for _ in range(blocks)))


class Darknet53(nn.Module):
    """Darknet-53 feature extractor; returns the stride 8, 16 and 32 feature maps."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(ConvBN(3, 32, 3), stage(32, 64, 1), stage(64, 128, 2))
        self.s8 = stage(128, 256, 8)
        self.s16 = stage(256, 512, 8)
        self.s32 = stage(512, 1024, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        c3 = self.s8(self.stem(x))
        c4 = self.s16(c3)
        return c3, c4, self.s32(c4)


def conv_set(cin: int, mid: int) -> nn.Sequential:
    """The five alternating 1x1 (``mid`` channels) and 3x3 (``2 * mid``) convs of one scale."""
    return nn.Sequential(
        ConvBN(cin, mid, 1), ConvBN(mid, 2 * mid, 3),
        ConvBN(2 * mid, mid, 1), ConvBN(mid, 2 * mid, 3),
        ConvBN(2 * mid, mid, 1),
    )


def output(mid: int, channels: int) -> nn.Sequential:
    """A 3x3 conv to ``2 * mid`` channels and the 1x1 prediction conv (with bias, no activation)."""
    return nn.Sequential(ConvBN(mid, 2 * mid, 3), nn.Conv2d(2 * mid, channels, 1))


def lateral(cin: int) -> nn.Sequential:
    """A 1x1 conv halving the channels and a nearest-neighbour 2x upsample."""
    return nn.Sequential(ConvBN(cin, cin // 2, 1), nn.Upsample(scale_factor=2, mode="nearest"))


class YOLOv3(nn.Module):
    """YOLOv3: Darknet-53 and three detection scales (strides 32, 16 and 8)."""

    def __init__(self, classes: int = 80, anchors: int = 3) -> None:
        super().__init__()
        channels = anchors * (5 + classes)
        self.backbone = Darknet53()
        self.set32, self.out32 = conv_set(1024, 512), output(512, channels)
        self.up16 = lateral(512)
        self.set16, self.out16 = conv_set(256 + 512, 256), output(256, channels)
        self.up8 = lateral(256)
        self.set8, self.out8 = conv_set(128 + 256, 128), output(128, channels)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        c3, c4, c5 = self.backbone(x)
        p5 = self.set32(c5)
        p4 = self.set16(torch.cat([self.up16(p5), c4], dim=1))
        p3 = self.set8(torch.cat([self.up8(p4), c3], dim=1))
        return self.out32(p5), self.out16(p4), self.out8(p3)


def yolov3(height: int = 1088, width: int = 1920) -> tuple[torch.nn.Module, tuple]:
    """YOLOv3 (Darknet-53, 80 classes) at about 2 Mpixel: 1920 x 1088 (a multiple of 32)."""
    torch.manual_seed(0)
    return YOLOv3().eval(), (torch.randn(1, 3, height, width),)
