"""A toy backbone: three strided 3x3 convolutions, dilated past ``output_stride`` by the
backbones' one loop. Added by tests as ``BACKBONES["toy"] = SPEC``."""

from __future__ import annotations

from torch import Tensor, nn

from dsntpose.backbones.dilation import stage_plan
from dsntpose.config import ModelConfig
from dsntpose.families import BackboneSpec

STRIDES = (8, 16)


class ToyBackbone(nn.Module):
    def __init__(self, output_stride: int = 16, channels: int = 8) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, channels, 3, stride=2, padding=1), nn.ReLU()]
        for stride, _, dilation in stage_plan((2, 2, 2), output_stride, start=2, allowed=STRIDES):
            layers += [
                nn.Conv2d(channels, channels, 3, stride, padding=dilation, dilation=dilation),
                nn.ReLU(),
            ]
        self.body = nn.Sequential(*layers)
        self.stride = output_stride
        self.out_channels = channels

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x - 0.5)


def build(cfg: ModelConfig) -> ToyBackbone:
    return ToyBackbone(cfg.output_stride)


SPEC = BackboneSpec(build=build, strides=STRIDES, default_input=64, pretrained=False)
