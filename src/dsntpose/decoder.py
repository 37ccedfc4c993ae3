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

Stages chain: with two skips (the backbone's features at half and a quarter of its stride) a
second stage (``finer``) takes the first's output up 2x again, reading the quarter-stride
features beside the half-stride ones -- 48 px maps from a stride-16 backbone at 192 px, the
resolution of MoveNet's output. The second stage also starts at zero, so a one-stage model is
fine-tuned into a two-stage one from its own maps (its weights load under the same keys).

Example:
    >>> import torch
    >>> decoder = UpsampleDecoder(deep_channels=1280, skip_channels=40, num_joints=16)
    >>> logits = decoder(torch.rand(2, 16, 12, 12), torch.rand(2, 1280, 12, 12),
    ...                  torch.rand(2, 40, 24, 24))
    >>> tuple(logits.shape)
    (2, 16, 24, 24)
    >>> two = UpsampleDecoder(deep_channels=1280, skip_channels=(40, 24), num_joints=16)
    >>> tuple(two(torch.rand(2, 16, 12, 12), torch.rand(2, 1280, 12, 12),
    ...           torch.rand(2, 40, 24, 24), torch.rand(2, 24, 48, 48)).shape)
    (2, 16, 48, 48)
"""

from __future__ import annotations

from collections.abc import Sequence
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
    """Logits ``(B, J, H, W)`` -> ``(B, J, 2H, 2W)`` (``4H x 4W`` with two stages), refined
    from the finer features.

    Args:
        deep_channels: channels ``C`` of the backbone's features at its output stride.
        skip_channels: channels ``S`` of its features at half that stride; a pair ``(S, S2)``
            adds a second stage reading features at a quarter of the stride (``finer``).
        num_joints: ``J``.
        width: channels of each stage's refining branch (64: about 0.1M parameters on Lite0's
            1280).

    ``forward(logits (B, J, H, W), features (B, C, H, W), skip (B, S, 2H, 2W)[, skip2 (B, S2,
    4H, 4W)])`` returns the logits at the finest skip's size. A stage is 1x1 ``reduce`` (C ->
    width) at the coarse size, upsampled and added to 1x1 ``lateral`` (S -> width), then a 3x3
    depthwise and a 1x1 conv (``refine``), then 1x1 ``out`` (width -> J), zero at the start;
    the second stage does the same on the first's logits with ``skip`` as its coarse features.
    """

    finer: UpsampleDecoder | None

    def __init__(
        self,
        deep_channels: int,
        skip_channels: int | Sequence[int],
        num_joints: int,
        width: int = 64,
    ) -> None:
        super().__init__()
        skips = (skip_channels,) if isinstance(skip_channels, int) else tuple(skip_channels)
        if not skips or min(deep_channels, *skips, num_joints, width) < 1:
            raise ValueError(
                "UpsampleDecoder needs positive channels, got deep "
                f"{deep_channels}, skip {skip_channels}, joints {num_joints}, width {width}"
            )
        self.deep_channels, self.skip_channels = deep_channels, skips[0]
        self.reduce = _conv_bn_relu(deep_channels, width)
        self.lateral = _conv_bn_relu(skips[0], width)
        self.refine = nn.Sequential(
            _conv_bn_relu(width, width, 3, groups=width), _conv_bn_relu(width, width)
        )
        self.out = nn.Conv2d(width, num_joints, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(cast(Tensor, self.out.bias))
        self.finer = (
            UpsampleDecoder(skips[0], skips[1:], num_joints, width) if len(skips) > 1 else None
        )

    @property
    def stages(self) -> int:
        """How many 2x steps the decoder takes (1 or 2)."""
        return 1 + (self.finer.stages if self.finer is not None else 0)

    def forward(self, logits: Tensor, features: Tensor, *skips: Tensor) -> Tensor:
        if len(skips) != self.stages:
            raise ValueError(
                f"UpsampleDecoder: {self.stages} stage(s) need {self.stages} skip feature "
                f"map(s), got {len(skips)}"
            )
        skip = skips[0]
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
        if self.finer is not None:
            out = self.finer(out, skip, *skips[1:])
        return out
