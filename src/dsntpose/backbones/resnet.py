"""ResNet-18/34/50/101/152 feature extractors with torchvision's state_dict keys.

The network is written here (no torchvision import) but its parameters and buffers carry
exactly torchvision's names and shapes for the feature layers (``conv1``, ``bn1``,
``layer1`` .. ``layer4``), so a torchvision ImageNet checkpoint loads by key. The pose backbone
has no ``avgpool``/``fc``: a checkpoint's ``fc.*`` entries are ignored when loading.

``output_stride`` (32, 16, 8 or 4) is turned into dilation by the backbones' one loop
(:func:`dsntpose.backbones.dilation.stage_plan`): a
stage whose stride would take the running stride past ``output_stride`` keeps stride 1 and
multiplies the dilation instead. As in torchvision's and timm's dilated ResNets, the first
block of a dilated stage uses the previous dilation in the conv that would have been strided,
and the new one everywhere else. Dilation changes no parameter shapes, so the same weights
serve every stride.

Example:
    >>> import torch
    >>> from dsntpose.backbones import resnet
    >>> net = resnet(18, output_stride=8).eval()
    >>> net(torch.rand(1, 3, 224, 224)).shape
    torch.Size([1, 512, 28, 28])
"""

from __future__ import annotations

import urllib.error
from pathlib import Path

import torch
from torch import Tensor, nn

from dsntpose.backbones.dilation import stage_plan
from dsntpose.families import RESNET_STRIDES

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "IMAGENET_URLS",
    "BasicBlock",
    "Bottleneck",
    "ResNetBackbone",
    "load_resnet_weights",
    "resnet",
]

# torchvision's published ImageNet weights (IMAGENET1K_V1); the hex part of each file name is
# the prefix of its SHA-256, which torch.hub checks on download.
IMAGENET_URLS = {
    18: "https://download.pytorch.org/models/resnet18-f37072fd.pth",
    34: "https://download.pytorch.org/models/resnet34-b627a593.pth",
    50: "https://download.pytorch.org/models/resnet50-0676ba61.pth",
    101: "https://download.pytorch.org/models/resnet101-63fe2227.pth",
    152: "https://download.pytorch.org/models/resnet152-394f9c45.pth",
}
# The input normalisation those weights were trained with (RGB in [0, 1]).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

STEM_STRIDE = 4  # conv1 (stride 2) then maxpool (stride 2)


def _conv3x3(in_ch: int, out_ch: int, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    """3x3 convolution without bias whose padding keeps the size (divided by ``stride``)."""
    return nn.Conv2d(
        in_ch, out_ch, 3, stride=stride, padding=dilation, dilation=dilation, bias=False
    )


def _downsample(in_ch: int, out_ch: int, stride: int) -> nn.Sequential:
    """Projection shortcut (keys ``downsample.0`` conv, ``downsample.1`` batch norm)."""
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False), nn.BatchNorm2d(out_ch)
    )


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with an identity (or projected) shortcut (ResNet-18/34).

    Args:
        in_ch: input channels.
        planes: output channels (``expansion`` is 1).
        stride: stride of the first convolution (1 or 2).
        first_dilation: dilation of the first convolution.
        dilation: dilation of the second convolution.

    Shapes: ``(B, in_ch, H, W) -> (B, planes, H / stride, W / stride)``.
    """

    expansion = 1

    def __init__(
        self, in_ch: int, planes: int, stride: int = 1, first_dilation: int = 1, dilation: int = 1
    ) -> None:
        super().__init__()
        out_ch = planes * self.expansion
        self.conv1 = _conv3x3(in_ch, planes, stride, first_dilation)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, out_ch, 1, dilation)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.downsample = (
            _downsample(in_ch, out_ch, stride) if stride != 1 or in_ch != out_ch else None
        )

    def forward(self, x: Tensor) -> Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        out: Tensor = self.relu(y + shortcut)
        return out


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3, 1x1 expand (x4) with a shortcut; stride on the 3x3 (ResNet v1.5).

    Args:
        in_ch: input channels.
        planes: width of the 3x3 convolution; the block outputs ``4 * planes`` channels.
        stride: stride of the 3x3 convolution (1 or 2).
        first_dilation: dilation of the 3x3 convolution (the previous stage's dilation in the
            first block of a dilated stage).
        dilation: unused by the single 3x3 here; accepted so both block types share one
            signature.

    Shapes: ``(B, in_ch, H, W) -> (B, 4 * planes, H / stride, W / stride)``.
    """

    expansion = 4

    def __init__(
        self, in_ch: int, planes: int, stride: int = 1, first_dilation: int = 1, dilation: int = 1
    ) -> None:
        super().__init__()
        out_ch = planes * self.expansion
        self.conv1 = nn.Conv2d(in_ch, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes, stride, first_dilation)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_ch, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = (
            _downsample(in_ch, out_ch, stride) if stride != 1 or in_ch != out_ch else None
        )

    def forward(self, x: Tensor) -> Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        out: Tensor = self.relu(y + shortcut)
        return out


# depth -> (block type, number of blocks in layer1..layer4), as in He et al. (2016), Table 1.
_ARCHS: dict[int, tuple[type[BasicBlock] | type[Bottleneck], tuple[int, int, int, int]]] = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
    152: (Bottleneck, (3, 8, 36, 3)),
}


def _check_depth(depth: int) -> None:
    if depth not in _ARCHS:
        raise ValueError(
            f"ResNet depth must be one of {', '.join(map(str, _ARCHS))}, got {depth!r}"
        )


class ResNetBackbone(nn.Module):
    """ResNet feature layers (no pooling, no classifier) at a chosen output stride.

    Args:
        depth: 18, 34, 50, 101 or 152.
        output_stride: 32, 16, 8 or 4: input pixels per output cell (224 px in -> 7, 14, 28
            or 56 px out).

    Attributes:
        out_channels: channels of the output features (512 for 18/34, 2048 for 50/101/152).
        stride: the output stride (equal to ``output_stride``).
        pyramid_channels: the channels of every finer level :meth:`forward_skip` can give: the
            last stage at half and at a quarter of the output stride, down to stride 4 (``()``
            at stride 4, where no stage is finer).

    ``forward(x)``: ``x`` is ``(B, 3, H, W)`` RGB float in ``[0, 1]``; the ImageNet mean/std
    normalisation is applied inside, from non-persistent buffers (so ``state_dict()`` holds
    torchvision's keys only). Returns ``(B, out_channels, ceil(H / stride), ceil(W / stride))``
    (exactly ``H / stride`` when ``H`` is a multiple of 32).

    Weights start as torchvision initialises them (Kaiming normal, fan-out, for convolutions;
    batch-norm scale 1 and shift 0); use :func:`resnet` to build with ImageNet or file weights.
    """

    mean: Tensor
    std: Tensor

    def __init__(self, depth: int, output_stride: int = 32) -> None:
        super().__init__()
        _check_depth(depth)
        plan = stage_plan((1, 2, 2, 2), output_stride, start=STEM_STRIDE, allowed=RESNET_STRIDES)
        block, counts = _ARCHS[depth]
        self.depth = depth
        self.stride = output_stride
        self.out_channels = 512 * block.expansion

        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        in_ch = 64
        stages = []
        for planes, count, (stride, first_dilation, dilation) in zip(
            (64, 128, 256, 512), counts, plan
        ):
            blocks = [block(in_ch, planes, stride, first_dilation, dilation)]
            in_ch = planes * block.expansion
            blocks += [block(in_ch, planes, 1, dilation, dilation) for _ in range(count - 1)]
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        strides = [STEM_STRIDE]
        for stride, _, _ in plan:
            strides.append(strides[-1] * stride)
        # the last stage at half, then at a quarter of the output stride (layer1 is at 4)
        self._skip_stages: tuple[int, ...] = ()
        for level in (2, 4):
            finer = [i for i, s in enumerate(strides[1:]) if s == output_stride // level]
            if not finer or output_stride // level < 4:
                break
            self._skip_stages += (finer[-1],)
        self.pyramid_channels = tuple((64 << i) * block.expansion for i in self._skip_stages)

        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """torchvision's initialisation: Kaiming normal (fan-out, ReLU) convs, BN 1 and 0."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_stages(self, x: Tensor, *, normalize: bool = True) -> tuple[Tensor, ...]:
        """The outputs of layer1..layer4.

        Args:
            x: ``(B, 3, H, W)`` RGB float in ``[0, 1]`` (or already normalised input when
                ``normalize=False``, e.g. to compare with torchvision's model, which does not
                normalise inside).
            normalize: apply the ImageNet mean/std first.

        Returns:
            Four tensors: ``(B, 64e, H/4, W/4)``, ``(B, 128e, H/8', ...)``, ``(B, 256e, ...)``,
            ``(B, 512e, H/stride, W/stride)`` with ``e = 1`` (BasicBlock) or ``4``
            (Bottleneck); a dilated stage keeps its predecessor's size.
        """
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"ResNet input must be (B, 3, H, W) RGB, got {tuple(x.shape)}")
        if normalize:
            x = (x - self.mean) / self.std
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        c1 = self.layer1(x)
        c2 = self.layer2(c1)
        c3 = self.layer3(c2)
        c4 = self.layer4(c3)
        return c1, c2, c3, c4

    def forward(self, x: Tensor) -> Tensor:
        """``(B, 3, H, W)`` RGB in ``[0, 1]`` -> ``(B, out_channels, H/stride, W/stride)``."""
        return self.forward_stages(x)[-1]

    def forward_skip(self, x: Tensor, levels: int = 1) -> tuple[Tensor, ...]:
        """The features and the finer features an upsampling decoder reads:
        ``(B, out_channels, H/stride, W/stride)``, then ``(B, pyramid_channels[k], 2^(k+1) H /
        stride, ...)`` for ``k < levels`` (the last stage at half, then a quarter of the output
        stride).

        Raises:
            ValueError: when fewer than ``levels`` stages are finer (stride 4 has none, 8 one).
        """
        if not 1 <= levels <= len(self._skip_stages):
            raise ValueError(
                f"ResNet at output stride {self.stride} has {len(self._skip_stages)} finer "
                f"stage(s) down to stride 4, {levels} asked: an upsampling decoder needs output "
                "stride 8, 16 or 32 (16 or 32 for two stages)"
            )
        stages = self.forward_stages(x)
        return (stages[-1], *(stages[i] for i in self._skip_stages[:levels]))

    def extra_repr(self) -> str:
        return f"depth={self.depth}, output_stride={self.stride}"


def read_weights(path: Path, source: str) -> dict[str, Tensor]:
    """The state_dict in the weights file ``path`` (``torch.load(weights_only=True)``), with
    every failure (a folder, an empty, truncated or foreign file, pickled objects) as one
    ``ValueError`` line naming ``source``."""
    if path.is_dir():
        raise ValueError(f"weights {source}: is a folder, not a weights file")
    if path.stat().st_size == 0:
        raise ValueError(f"weights {source}: the file is empty")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises RuntimeError, UnpicklingError, EOFError, ...
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise ValueError(
            f"weights {source}: not a readable PyTorch weights file ({first})"
        ) from None
    return unwrap_checkpoint(obj, source)


def unwrap_checkpoint(obj: object, source: str) -> dict[str, Tensor]:
    """A bare state_dict, or the one under ``"state_dict"`` / ``"model"``."""
    if isinstance(obj, dict):
        for key in ("state_dict", "model"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise ValueError(
            f"{source}: expected a state_dict (name -> tensor), or a dict holding one under "
            f"'state_dict' or 'model'; got {type(obj).__name__}"
        )
    return obj


def _names(keys: list[str], limit: int = 8) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def load_state_by_key(model: nn.Module, state: dict[str, Tensor], source: str, name: str) -> None:
    """Copy ``state`` into ``model`` strictly, by key, with one-line errors.

    A missing ``*.num_batches_tracked`` counter (absent from checkpoints saved before PyTorch
    0.4.1) is left at its current value. Any other missing or unexpected key, or a tensor of
    the wrong shape, raises a ``ValueError`` naming the keys, ``source`` and ``name``.
    """
    own = model.state_dict()
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    wrong = [
        f"{k} {tuple(state[k].shape)} (model {tuple(v.shape)})"
        for k, v in own.items()
        if k in state and state[k].shape != v.shape
    ]
    problems = []
    if missing:
        problems.append(f"missing keys {_names(missing)}")
    if unexpected:
        problems.append(f"unexpected keys {_names(unexpected)}")
    if wrong:
        problems.append(f"wrong shapes {_names(wrong, 4)}")
    if problems:
        raise ValueError(f"{source} does not fit {name}: {'; '.join(problems)}")
    model.load_state_dict(state, strict=False)


def load_resnet_weights(model: ResNetBackbone, state: dict[str, Tensor], source: str) -> None:
    """Copy a torchvision-keyed ResNet state_dict into ``model``, strictly.

    ``fc.*`` entries (the ImageNet classifier, which the pose backbone lacks) are ignored; the
    rest is :func:`load_state_by_key`.
    """
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    load_state_by_key(model, state, source, f"resnet{model.depth}")


def _imagenet_state(depth: int) -> dict[str, Tensor]:
    """torchvision's ImageNet weights for ``depth`` via the torch hub cache (hash checked)."""
    url = IMAGENET_URLS[depth]
    target = Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[1]
    try:
        return torch.hub.load_state_dict_from_url(
            url, map_location="cpu", progress=False, check_hash=True, weights_only=True
        )
    except (urllib.error.URLError, OSError) as err:
        raise RuntimeError(
            f"could not download the ImageNet weights for resnet{depth} ({err}): "
            f"download {url} and put it at {target}"
        ) from err


def resnet(
    depth: int, *, output_stride: int = 32, weights: str | Path | None = None
) -> ResNetBackbone:
    """Build a ResNet backbone and load its weights.

    Args:
        depth: 18, 34, 50, 101 or 152.
        output_stride: 32, 16, 8 or 4 (224 px in -> 7, 14, 28, 56 px out), for every depth.
        weights: ``None`` (random, torchvision's initialisation), ``"imagenet"`` (torchvision's
            published file, downloaded once into ``torch.hub.get_dir()/checkpoints`` and checked
            against the hash in its name), or a local file path (read with
            ``torch.load(weights_only=True)``; a bare state_dict or a dict holding one under
            ``"state_dict"`` or ``"model"``). Checkpoint ``fc.*`` keys are ignored; any other
            mismatch is an error naming the keys.

    Returns:
        A :class:`ResNetBackbone` in training mode, with ``.out_channels`` and ``.stride``,
        mapping ``(B, 3, S, S)`` RGB in ``[0, 1]`` to ``(B, out_channels, S/stride, S/stride)``.

    Raises:
        ValueError: bad ``depth``/``output_stride``, or weights that do not fit.
        FileNotFoundError: ``weights`` names a file that does not exist.
        RuntimeError: ``"imagenet"`` could not be downloaded (the message says which file to
            put where).

    Example:
        >>> net = resnet(50, output_stride=16)
        >>> net.out_channels, net.stride
        (2048, 16)
    """
    model = ResNetBackbone(depth, output_stride)
    if weights is None:
        return model
    if isinstance(weights, str) and weights == "imagenet":
        load_resnet_weights(model, _imagenet_state(depth), f"ImageNet resnet{depth} weights")
        return model
    path = Path(weights)
    if not path.exists():
        raise FileNotFoundError(
            f"weights file {path} does not exist (use None, 'imagenet' or a checkpoint path)"
        )
    state = read_weights(path, str(path))
    load_resnet_weights(model, state, str(path))
    return model
