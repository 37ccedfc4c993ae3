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

__all__ = ["stage_plan"]


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
