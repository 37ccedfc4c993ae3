"""A light upsampling decoder: joint maps at twice the backbone's resolution.

Finer maps are the road to sub-cell precision the paper takes by dilation (a ResNet at output
stride 8 instead of 16: every later stage runs on 4x the cells). :class:`UpsampleDecoder` takes
the cheap road instead, as the feature-pyramid decoders of single-person pose models do: the
backbone stays at its stride, the head's logits are upsampled 2x and refined by a small branch
that reads the backbone's features one stride finer (a skip connection)::

    logits_2x = up(logits) + out(refine(up(reduce(features)) + lateral(skip)))

``up`` is bilinear 2x with ``align_corners=False``: cell centres keep their place in the
normalised frame (cell ``i`` of ``W`` at ``(2i + 1) / W - 1``), so the DSNT expectation of the
upsampled map stays where it was. ``out`` starts at zero: a new decoder returns the upsampled
logits, so a model trained without one is fine-tuned from its own maps, not from noise.

Example:
    >>> import torch
    >>> decoder = UpsampleDecoder(deep_channels=1280, skip_channels=40, num_joints=16)
    >>> logits = decoder(torch.rand(2, 16, 12, 12), torch.rand(2, 1280, 12, 12),
    ...                  torch.rand(2, 40, 24, 24))
    >>> tuple(logits.shape)
    (2, 16, 24, 24)
"""

from __future__ import annotations

from typing import cast

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["UpsampleDecoder"]


def _conv_bn_relu(in_ch: int, out_ch: int, kernel: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel, padding=kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
    )


def _up2(x: Tensor, size: tuple[int, int]) -> Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class UpsampleDecoder(nn.Module):
    """Logits ``(B, J, H, W)`` -> ``(B, J, 2H, 2W)``, refined from the finer features.

    Args:
        deep_channels: channels ``C`` of the backbone's features at its output stride.
        skip_channels: channels ``S`` of its features at half that stride.
        num_joints: ``J``.
        width: channels of the refining branch (64: about 0.1M parameters on Lite0's 1280).

    ``forward(logits (B, J, H, W), features (B, C, H, W), skip (B, S, 2H, 2W))`` returns the
    logits at the skip's size ``(B, J, 2H, 2W)``; the branch is 1x1 ``reduce`` (C -> width) at
    the coarse size, upsampled and added to 1x1 ``lateral`` (S -> width), then a 3x3 depthwise
    and a 1x1 conv (``refine``), then 1x1 ``out`` (width -> J), zero at the start.
    """

    def __init__(
        self, deep_channels: int, skip_channels: int, num_joints: int, width: int = 64
    ) -> None:
        super().__init__()
        if min(deep_channels, skip_channels, num_joints, width) < 1:
            raise ValueError(
                "UpsampleDecoder needs positive channels, got deep "
                f"{deep_channels}, skip {skip_channels}, joints {num_joints}, width {width}"
            )
        self.deep_channels, self.skip_channels = deep_channels, skip_channels
        self.reduce = _conv_bn_relu(deep_channels, width)
        self.lateral = _conv_bn_relu(skip_channels, width)
        self.refine = nn.Sequential(
            _conv_bn_relu(width, width, 3, groups=width), _conv_bn_relu(width, width)
        )
        self.out = nn.Conv2d(width, num_joints, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(cast(Tensor, self.out.bias))

    def forward(self, logits: Tensor, features: Tensor, skip: Tensor) -> Tensor:
        coarse, fine = tuple(features.shape[-2:]), tuple(skip.shape[-2:])
        if (
            features.shape[1] != self.deep_channels
            or skip.shape[1] != self.skip_channels
            or tuple(logits.shape[-2:]) != coarse
            or fine != (2 * coarse[0], 2 * coarse[1])
        ):
            raise ValueError(
                f"UpsampleDecoder: logits {tuple(logits.shape)}, features "
                f"{tuple(features.shape)} and skip {tuple(skip.shape)} do not fit "
                f"(features with {self.deep_channels} channels at the logits' size, skip with "
                f"{self.skip_channels} at twice it)"
            )
        size = (int(fine[0]), int(fine[1]))
        branch = _up2(self.reduce(features), size) + self.lateral(skip)
        out: Tensor = _up2(logits, size) + self.out(self.refine(branch))
        return out
