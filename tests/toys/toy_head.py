"""A toy head: a 1x1 conv, flat softmax and DSNT, scored by the mean Euclidean distance, with
the coordinate average as its only flip merge. Added by tests as ``HEADS["toy"] = SPEC``."""

from __future__ import annotations

from torch import Tensor, nn

from dsntpose import ops
from dsntpose.config import LossConfig, ModelConfig
from dsntpose.families import HeadSpec
from dsntpose.heads import FlipMode, HeadOutput


class ToyHead(nn.Module):
    name = "toy"
    flip_modes: tuple[FlipMode, ...] = ("coords",)

    def __init__(self, in_channels: int, num_joints: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, num_joints, 1)

    @classmethod
    def from_config(cls, cfg: ModelConfig, in_channels: int | None) -> ToyHead:
        if in_channels is None:
            raise ValueError("the toy head needs features")
        return cls(in_channels, cfg.num_joints)

    @staticmethod
    def default_flip_mode(activation: str = "softmax") -> FlipMode:
        return "coords"

    @property
    def flip_mode(self) -> FlipMode:
        return "coords"

    def decode(self, logits: Tensor) -> tuple[Tensor, Tensor]:
        probs = ops.flat_softmax(logits)
        return ops.dsnt(probs), ops.heatmap_confidence(probs)

    def forward(self, features: Tensor) -> HeadOutput:
        logits = self.conv(features)
        probs = ops.flat_softmax(logits)
        return HeadOutput(ops.dsnt(probs), probs, logits, ops.heatmap_confidence(probs))

    def loss(
        self, out: HeadOutput, target: Tensor, mask: Tensor, cfg: LossConfig | None = None
    ) -> Tensor:
        return ops.average_loss(ops.euclidean_losses(out.coords, target), mask)


def _load() -> type[nn.Module]:
    return ToyHead


SPEC = HeadSpec(load=_load)
