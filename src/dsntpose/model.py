"""The pose model: a backbone, a head and the loss that goes with the head.

* :class:`CoordRegressionModel` chains a backbone (:mod:`dsntpose.backbones`) and a head
  (:mod:`dsntpose.heads`) and returns a :class:`~dsntpose.heads.HeadOutput`.
* :func:`build_model` builds what a config names through the families' dicts
  (:data:`dsntpose.families.BACKBONES`, :data:`~dsntpose.families.HEADS`).
* ``CoordRegressionModel.loss`` scores its ``HeadOutput`` with its head's own loss
  (:mod:`dsntpose.heads`), summed over hourglass stacks.
* :func:`model_config` / :func:`model_name`: the one model naming (``resnet50-os8``).

Reading and writing model files is :mod:`dsntpose.checkpoint`'s job.

Example:
    >>> import torch
    >>> from dsntpose.config import LossConfig, ModelConfig
    >>> cfg = ModelConfig(backbone="resnet18", output_stride=16, head="dsnt")
    >>> model = build_model(cfg)
    >>> out = model(torch.rand(2, 3, 224, 224))
    >>> out.coords.shape, out.heatmaps.shape
    (torch.Size([2, 16, 2]), torch.Size([2, 16, 14, 14]))
    >>> loss = model.loss(out, torch.zeros(2, 16, 2), torch.ones(2, 16), LossConfig())
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import cast

import torch
from torch import Tensor, nn

from dsntpose.config import LossConfig, ModelConfig
from dsntpose.decoder import UpsampleDecoder
from dsntpose.families import BACKBONES, HEADS
from dsntpose.heads import DSNTHead, HeadOutput, PresenceHead, presence_loss

__all__ = ["CoordRegressionModel", "build_model", "model_config", "model_name"]

_HeadLoss = Callable[[HeadOutput, Tensor, Tensor, LossConfig | None], Tensor]
"""A head's ``loss(output, target, mask, cfg)`` (see :mod:`dsntpose.heads`)."""


class CoordRegressionModel(nn.Module):
    """Backbone then head: RGB crops in, normalised joint coordinates out.

    Args:
        backbone: maps ``(B, 3, S, S)`` to features ``(B, C, S/stride, S/stride)``, or (stacked
            hourglass) to a list of per-stack maps ``(B, J, S/4, S/4)``.
        head: a head from :mod:`dsntpose.heads` built for those features.

    ``forward(images)``: ``images`` is ``(B, 3, S, S)`` RGB float in ``[0, 1]`` (the backbone
    applies its own input normalisation). With a ``decoder``
    (:class:`~dsntpose.decoder.UpsampleDecoder`, ``model.upsample``), the backbone's
    ``forward_skip`` gives its features and the finer ones, and the head's logits are
    upsampled 2x (4x with two stages) by the decoder before they are decoded. Returns the head's
    :class:`~dsntpose.heads.HeadOutput` (``coords`` ``(B, J, 2)`` normalised). For a backbone
    that returns one output per stack, the head runs on every stack's maps in training mode:
    the last stack's output is returned with the earlier ones, earliest first, in ``aux`` (for
    intermediate supervision in :meth:`loss`). In eval mode only the last stack is decoded
    and ``aux`` is ``()``, which saves the work the answer does not need.
    """

    def __init__(
        self,
        backbone: nn.Module,
        head: nn.Module,
        presence: PresenceHead | None = None,
        decoder: UpsampleDecoder | None = None,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        # each registered only when present: checkpoints without them load as before
        if presence is not None:
            self.presence = presence
        if decoder is not None:
            self.decoder = decoder

    @property
    def has_decoder(self) -> bool:
        """Whether the maps come finer than the backbone's features (``model.upsample``)."""
        return "decoder" in self._modules

    @property
    def has_presence(self) -> bool:
        """Whether the model reports person presence and joint visibility."""
        return "presence" in self._modules

    @property
    def joint_calibration(self) -> Tensor | None:
        """The presence head's joint-confidence calibration (``(12 + 2J,)``: the
        confidence's weights and biases, then the search score's; see
        :class:`~dsntpose.heads.PresenceHead`), None for a model without one."""
        return self.presence.calibration if self.has_presence else None

    def backbone_features(self, images: Tensor) -> tuple[Tensor, ...]:
        """A model with the decoder: the backbone's features and its finer ones, one per
        decoder stage (its ``forward_skip``), the arguments of :meth:`head_output`."""
        forward_skip = cast(Callable[..., tuple[Tensor, ...]], self.backbone.forward_skip)
        return forward_skip(images, self.decoder.stages)

    def head_output(self, features: Tensor, *skips: Tensor) -> HeadOutput:
        """The head's output on the backbone's ``features`` (with the decoder: its logits
        upsampled from ``skips``, the backbone's finer features); no presence heads."""
        if not self.has_decoder:
            out: HeadOutput = self.head(features)
            return out
        if not skips:
            raise ValueError("head_output: a model with the upsampling decoder needs skip")
        head = cast(DSNTHead, self.head)  # config allows the decoder on the DSNT head only
        logits = self.decoder(head.logits(features), features, *skips)
        return head.output(logits)

    def forward(self, images: Tensor) -> HeadOutput:
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(
                f"images must be (B, 3, S, S) RGB in [0, 1], got {tuple(images.shape)}"
            )
        if self.has_decoder:
            features, *skips = self.backbone_features(images)
            out = self.head_output(features, *skips)
        else:
            features = self.backbone(images)
            if not isinstance(features, Tensor):  # per-stack maps
                *earlier, last = features
                aux = tuple(self.head(f) for f in earlier) if self.training else ()
                final: HeadOutput = self.head(last)
                return final._replace(aux=aux)
            out = self.head_output(features)
        if self.has_presence:
            presence, visibility = self.presence(features, out.heatmaps)
            confidence = self.presence.joint_confidence(
                visibility, out.confidence, out.heatmaps, out.coords
            )
            out = out._replace(presence=presence, visibility=visibility, confidence=confidence)
        return out

    def loss(
        self,
        output: HeadOutput,
        target: Tensor,
        mask: Tensor,
        cfg: LossConfig | None = None,
        extra: Mapping[str, Tensor] | None = None,
    ) -> Tensor:
        """The training loss of ``output`` as a scalar: the head's own loss
        (``self.head.loss``, see :mod:`dsntpose.heads`), summed over the stacks of a stacked
        hourglass (``output.aux`` and the final one: intermediate supervision).

        Joints with ``mask == 0`` contribute nothing, whatever their target holds (NaN, a
        missing joint's ``(0, 0)``, a point far outside the crop): their targets are replaced
        by the centre before any loss is computed, so no NaN or infinity reaches the masked
        sum.

        Args:
            output: this model's :class:`~dsntpose.heads.HeadOutput`.
            target: ``(B, J, 2)`` normalised ``(x, y)`` ground truth.
            mask: ``(B, J)``, 1 (or ``True``) for joints that count, 0 for missing ones.
            cfg: the loss settings (default ``LossConfig()``).
            extra: for a model with presence and visibility heads, the batch's ``presence``,
                ``presence_mask``, ``visible`` and ``visible_mask`` (see
                :func:`dsntpose.heads.presence_loss`, added to the head's loss); None or
                without those keys: the coordinate loss alone.

        Returns:
            A scalar tensor (0 when every joint is masked).
        """
        expected = tuple(output.coords.shape)
        if tuple(target.shape) != expected:
            raise ValueError(
                f"target must be (B, J, 2) = {expected} normalised, got {tuple(target.shape)}"
            )
        if tuple(mask.shape) != expected[:2]:
            raise ValueError(f"mask must be (B, J) = {expected[:2]}, got {tuple(mask.shape)}")
        mask = mask.to(output.coords.dtype)
        target = torch.where(mask[..., None] > 0, target, torch.zeros_like(target))
        stacks = (*output.aux, output)
        head_loss = cast(_HeadLoss, self.head.loss)  # every head in dsntpose.heads has one
        losses = [head_loss(out, target, mask, cfg) for out in stacks]
        total = torch.stack(losses).sum()
        if self.has_presence and extra is not None and "presence" in extra:
            total = total + presence_loss(output, dict(extra), cfg or LossConfig())
        return total


def build_model(cfg: ModelConfig) -> CoordRegressionModel:
    """Build the network that ``cfg`` describes (in training mode).

    Args:
        cfg: ``cfg.backbone`` a name of :data:`dsntpose.families.BACKBONES` (built by its
            spec's ``build``: at ``cfg.output_stride`` with ``cfg.weights``, or the hourglass's
            ``cfg.num_stacks`` stacks), ``cfg.head`` a name of :data:`~dsntpose.families.HEADS`
            (its class's ``from_config``), ``cfg.num_joints`` outputs. The FC head is built
            for ``cfg.heatmap_size`` maps, so that model only accepts ``cfg.input_size`` crops.

    Returns:
        A :class:`CoordRegressionModel`.

    Raises:
        ValueError: a combination the networks cannot serve (weights for a backbone without
            pretrained weights, an input size that is not a multiple the backbone needs).
    """
    spec = BACKBONES[cfg.backbone]
    if cfg.weights is not None and not spec.pretrained:
        raise ValueError(
            f"model.weights: the {cfg.backbone} has no pretrained weights (got {cfg.weights!r}); "
            "use None, or dsntpose.checkpoint.load_checkpoint for a trained model"
        )
    if cfg.input_size % spec.input_multiple:
        raise ValueError(
            f"model.input_size: the {cfg.backbone} needs a multiple of {spec.input_multiple}"
            f"{' (256 in the paper)' if cfg.backbone == 'hourglass' else ''}, got {cfg.input_size}"
        )
    backbone = spec.build(cfg)
    in_channels: int | None = None if spec.maps else backbone.out_channels  # type: ignore[assignment]
    head = HEADS[cfg.head].load().from_config(cfg, in_channels)  # type: ignore[attr-defined]
    presence = None
    if cfg.presence and in_channels:
        presence = PresenceHead(in_channels, cfg.num_joints, cfg.torso)
    decoder = None
    if cfg.upsample_stages and in_channels:
        pyramid = cast(tuple[int, ...], backbone.pyramid_channels)
        skips = pyramid[: cfg.upsample_stages]  # config checked the stride has them
        decoder = UpsampleDecoder(in_channels, skips, cfg.num_joints)
    return CoordRegressionModel(backbone, head, presence, decoder)


def model_config(name: str, *, input_size: int | None = None, joints: str = "mpii") -> ModelConfig:
    """The :class:`~dsntpose.config.ModelConfig` a model name stands for (the one naming used by
    ``dsntpose bench``, ``dsntpose models`` and the docs; :func:`model_name` is its inverse).

    Args:
        name: ``<backbone>-os<stride>[-up|-up2][-<head>]`` for a backbone with output strides
            (``resnet50-os8``, ``efficientnet_lite0-os16-heatmap``; ``-up``: with the
            upsampling decoder, ``efficientnet_lite0-os16-up``; ``-up2``: its two stages) or
            ``<backbone>-<stacks>[-<head>]`` for one of fixed stride (``hourglass-8``); the
            head defaults to ``dsnt``.
        input_size: crop side; default the backbone spec's ``default_input`` (224 for ResNets
            and EfficientNet-Lite, 256 for the hourglass).
        joints: the joint set, ``mpii`` or ``lsp``.
    """
    parts = name.split("-")
    upsample = 0
    for stages, tag in ((1, "up"), (2, "up2")):
        if tag in parts[2:]:
            upsample = stages
            parts.remove(tag)
    head = parts.pop() if len(parts) == 3 else "dsnt"
    heads = "|".join(HEADS)
    if len(parts) != 2 or head not in HEADS:
        raise ValueError(
            f"model name {name!r}: expected <backbone>-os<stride>[-{heads}] or "
            "hourglass-<stacks>[-...], e.g. resnet50-os8, efficientnet_lite0-os16 or hourglass-8"
        )
    backbone, arg = parts
    spec = BACKBONES.get(backbone)
    number = arg.removeprefix("os") if spec is not None and spec.strides else arg
    if spec is not None and number.isdigit() and (number != arg) == bool(spec.strides):
        setting = {"output_stride": int(number)} if spec.strides else {"num_stacks": int(number)}
        return ModelConfig(
            backbone=backbone,
            head=head,
            input_size=input_size or spec.default_input,
            joints=joints,
            upsample=upsample or False,
            **setting,  # type: ignore[arg-type]
        )
    raise ValueError(
        f"model name {name!r}: expected e.g. resnet50-os8, efficientnet_lite0-os16 or hourglass-8"
    )


def model_name(cfg: ModelConfig) -> str:
    """The name :func:`model_config` reads back: ``resnet50-os8``, ``hourglass-2-heatmap``,
    ``efficientnet_lite0-os16-up``, ``efficientnet_lite0-os16-up2``."""
    arg = f"os{cfg.output_stride}" if BACKBONES[cfg.backbone].strides else str(cfg.num_stacks)
    up = {0: "", 1: "-up"}.get(cfg.upsample_stages, f"-up{cfg.upsample_stages}")
    return f"{cfg.backbone}-{arg}{up}" + ("" if cfg.head == "dsnt" else f"-{cfg.head}")
