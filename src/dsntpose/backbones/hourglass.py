"""Stacked hourglass network (Newell, Yang and Deng, ECCV 2016, "Stacked Hourglass Networks
for Human Pose Estimation"), as in the authors' ``pose-hg-train`` with one residual module per
position.

Layout for an ``S x S`` input (``S`` a multiple of 64; 256 in the paper) and ``C`` channels
(256 in the paper):

* stem: 7x7 conv stride 2 (``C/4`` ch) + BN + ReLU -> residual (``C/2``) -> 2x2 max-pool ->
  residual (``C/2``) -> residual (``C``): ``S/4`` px features (64 px for 256 px in);
* each stack: an hourglass of depth 4 (``S/4`` down to ``S/64`` and back up, a residual skip
  at every scale) -> residual -> 1x1 conv + BN + ReLU (``features``) -> 1x1 conv to
  ``num_outputs`` raw maps (the stack's prediction);
* between stacks, Newell's re-injection: ``next = input + 1x1(features) + 1x1(prediction)``.

Every residual is the pre-activation bottleneck: BN-ReLU-1x1 (``out/2``) - BN-ReLU-3x3
(``out/2``) - BN-ReLU-1x1 (``out``), plus the input (a 1x1 conv when channels change).

Example:
    >>> import torch
    >>> from dsntpose.backbones import StackedHourglass
    >>> net = StackedHourglass(num_stacks=2, num_outputs=16)
    >>> [m.shape for m in net(torch.rand(1, 3, 256, 256))]
    [torch.Size([1, 16, 64, 64]), torch.Size([1, 16, 64, 64])]
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

__all__ = ["MPII_MEAN", "Hourglass", "Residual", "StackedHourglass"]

# Per-channel mean of MPII images, RGB in [0, 1] (the value used by the DSNT authors'
# hourglass input pipeline, anibali/torchdata ``MPII_Image_Mean``). Only the mean is
# subtracted; there is no division by a standard deviation.
MPII_MEAN = (0.440442830324173, 0.4440267086029053, 0.4326828420162201)


class Residual(nn.Module):
    """Pre-activation bottleneck residual module.

    Shapes: ``(B, in_ch, H, W) -> (B, out_ch, H, W)``; ``out_ch`` must be even.
    """

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        mid = out_ch // 2
        self.body = nn.Sequential(
            nn.BatchNorm2d(in_ch),
            nn.ReLU(inplace=True),
            nn.Conv2d(in_ch, mid, 1),
            nn.BatchNorm2d(mid),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid, mid, 3, padding=1),
            nn.BatchNorm2d(mid),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid, out_ch, 1),
        )
        self.skip = nn.Identity() if in_ch == out_ch else nn.Conv2d(in_ch, out_ch, 1)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.body(x) + self.skip(x)
        return out


class Hourglass(nn.Module):
    """One hourglass of ``depth`` levels (recursive, as in Newell's ``hourglass(n, f, inp)``).

    Each level: ``up = residual(x)``; ``low = residual(maxpool2(x))`` -> inner hourglass (or a
    residual at the bottom) -> residual -> nearest 2x upsampling; output ``up + low``.

    Shapes: ``(B, C, H, W) -> (B, C, H, W)``; ``H`` and ``W`` must be multiples of
    ``2 ** depth``.
    """

    def __init__(self, depth: int, channels: int) -> None:
        super().__init__()
        self.up = Residual(channels, channels)
        self.down = Residual(channels, channels)
        self.inner: nn.Module = (
            Hourglass(depth - 1, channels) if depth > 1 else Residual(channels, channels)
        )
        self.after = Residual(channels, channels)

    def forward(self, x: Tensor) -> Tensor:
        low = self.after(self.inner(self.down(F.max_pool2d(x, 2))))
        out: Tensor = self.up(x) + F.interpolate(low, scale_factor=2.0, mode="nearest")
        return out


def _conv_bn_relu(in_ch: int, out_ch: int) -> nn.Sequential:
    """Newell's ``lin``: 1x1 conv + BN + ReLU."""
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 1), nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True))


class StackedHourglass(nn.Module):
    """Newell's stacked hourglass with intermediate supervision.

    Args:
        num_stacks: number of hourglasses (the paper's grid uses 1, 2, 4 and 8).
        num_outputs: maps per stack (joints, e.g. 16 for MPII).
        channels: feature channels ``C`` (256 in the paper; a multiple of 4). The stem uses
            ``C/4`` and ``C/2``.
        depth: levels per hourglass (4: 64 px features reach 4 px).

    Attributes:
        stride: 4 (input pixels per output cell).
        out_channels: ``num_outputs`` (the maps are already per joint).

    ``forward(x)``: ``x`` is ``(B, 3, H, W)`` RGB float in ``[0, 1]`` with ``H`` and ``W``
    multiples of 64 (256 in the paper); the MPII mean is subtracted inside (non-persistent
    buffer). Returns a list of ``num_stacks`` raw maps ``(B, num_outputs, H/4, W/4)``, one per
    stack, earliest first: every one is a prediction for the loss (intermediate supervision)
    and the last is the answer.
    """

    stride = 4
    mean: Tensor

    def __init__(
        self, num_stacks: int, num_outputs: int, channels: int = 256, depth: int = 4
    ) -> None:
        super().__init__()
        if num_stacks < 1 or num_outputs < 1:
            raise ValueError(
                f"num_stacks and num_outputs must be >= 1, got {num_stacks} and {num_outputs}"
            )
        if channels < 4 or channels % 4:
            raise ValueError(f"channels must be a positive multiple of 4, got {channels}")
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        self.num_stacks = num_stacks
        self.out_channels = num_outputs
        self.multiple = self.stride * 2**depth

        c = channels
        self.stem = nn.Sequential(
            nn.Conv2d(3, c // 4, 7, stride=2, padding=3),
            nn.BatchNorm2d(c // 4),
            nn.ReLU(inplace=True),
            Residual(c // 4, c // 2),
            nn.MaxPool2d(2),
            Residual(c // 2, c // 2),
            Residual(c // 2, c),
        )
        self.hourglasses = nn.ModuleList(
            nn.Sequential(Hourglass(depth, c), Residual(c, c), _conv_bn_relu(c, c))
            for _ in range(num_stacks)
        )
        self.predict = nn.ModuleList(nn.Conv2d(c, num_outputs, 1) for _ in range(num_stacks))
        # Re-injection into the next stack (none after the last).
        self.remap_features = nn.ModuleList(nn.Conv2d(c, c, 1) for _ in range(num_stacks - 1))
        self.remap_predictions = nn.ModuleList(
            nn.Conv2d(num_outputs, c, 1) for _ in range(num_stacks - 1)
        )
        self.register_buffer("mean", torch.tensor(MPII_MEAN).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: Tensor) -> list[Tensor]:
        """``(B, 3, H, W)`` in ``[0, 1]`` -> ``num_stacks`` x ``(B, num_outputs, H/4, W/4)``."""
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"hourglass input must be (B, 3, H, W) RGB, got {tuple(x.shape)}")
        if x.shape[-2] % self.multiple or x.shape[-1] % self.multiple:
            raise ValueError(
                f"hourglass input height and width must be multiples of {self.multiple} "
                f"(e.g. 256), got {tuple(x.shape[-2:])}"
            )
        h = self.stem(x - self.mean)
        outputs = []
        for i, (hourglass, predict) in enumerate(zip(self.hourglasses, self.predict)):
            features = hourglass(h)
            maps = predict(features)
            outputs.append(maps)
            if i < self.num_stacks - 1:
                h = h + self.remap_features[i](features) + self.remap_predictions[i](maps)
        return outputs
