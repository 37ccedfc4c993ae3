"""Output stride -> per-stage stride and dilation: the one loop every backbone uses.

A backbone is a stem of stride ``start`` then stages that each divide the size by their
stride. To end at ``output_stride``, a stage whose stride would overshoot keeps stride 1 and
multiplies the dilation instead, so its receptive field grows as if it had strided (the atrous
convolution of DeepLab; timm's ``make_blocks`` loop).

Example:
    >>> stage_plan((1, 2, 2, 2), 8, start=4, allowed=(4, 8, 16, 32))
    [(1, 1, 1), (2, 1, 1), (1, 1, 2), (1, 2, 4)]
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor

__all__ = ["atrous_depthwise", "stage_plan"]


def stage_plan(
    stage_strides: Sequence[int], output_stride: int, *, start: int, allowed: Sequence[int]
) -> list[tuple[int, int, int]]:
    """Per stage ``(stride, first_dilation, dilation)``: the stage's stride, the dilation of its
    first block and of the rest.

    Args:
        stage_strides: each stage's stride as designed (for ``output_stride`` 32).
        output_stride: the wanted input pixels per output cell.
        start: the stride before the first stage (the stem's).
        allowed: the output strides the backbone supports (its spec's ``strides``).

    Raises:
        ValueError: ``output_stride`` is not in ``allowed``.
    """
    if output_stride not in allowed:
        raise ValueError(
            f"output_stride must be one of {', '.join(map(str, allowed))}, got {output_stride!r}"
        )
    plan = []
    running, dilation = start, 1
    for stride in stage_strides:
        first_dilation = dilation
        if running * stride > output_stride:
            dilation, stride = dilation * stride, 1
        running *= stride
        plan.append((stride, first_dilation, dilation))
    return plan


def atrous_depthwise(x: Tensor, weight: Tensor, dilation: int) -> Tensor:
    """A stride-1 depthwise convolution with ``dilation`` and "same" zero padding, computed as
    the undilated convolution of the ``dilation**2`` phase sub-grids stacked along the batch
    (space-to-batch: the atrous algorithm's own formulation).

    The values are the dilated convolution's (to float rounding); so are the gradients, which
    is the point: oneDNN has no fast backward for dilated depthwise convolutions on CPU.
    ``benchmarks/train_step.py`` measures a whole training step of the whole-photo recipe
    (Lite0, stride 16, 192 px, batch 16) both ways: 1.30x faster on one thread, 1.34x on two
    (AMD EPYC, trainings paused; docs/results/train_step_*.json). The forward alone is slower
    this way (two extra copies), so it is for training only.

    Args:
        x: ``(B, C, H, W)`` input (any size: padded with zeros to a multiple of ``dilation``
            and the output cropped, which changes no value).
        weight: ``(C, 1, k, k)`` depthwise kernel, ``k`` odd.
        dilation: the dilation ``d`` >= 1.

    Returns:
        ``(B, C, H, W)`` output in channels-last memory format.
    """
    b, c, height, width = x.shape
    d, k = dilation, weight.shape[-1]
    h, w = -(-height // d), -(-width // d)
    if (h * d, w * d) != (height, width):
        x = F.pad(x, (0, w * d - width, 0, h * d - height))
    # (B, C, h d, w d) -> channels-last (d d B, C, h, w): batch index (row phase, column phase, b)
    phases = x.permute(0, 2, 3, 1).reshape(b, h, d, w, d, c).permute(2, 4, 0, 1, 3, 5)
    stacked = phases.reshape(d * d * b, h, w, c).permute(0, 3, 1, 2)
    y = F.conv2d(stacked, weight, None, 1, k // 2, 1, c)
    out = y.permute(0, 2, 3, 1).reshape(d, d, b, h, w, c).permute(2, 3, 0, 4, 1, 5)
    full = out.reshape(b, h * d, w * d, c).permute(0, 3, 1, 2)
    return full[:, :, :height, :width]
