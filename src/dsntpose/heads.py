"""Output heads: from backbone features to normalised joint coordinates.

Every head returns the same :class:`HeadOutput`, so the model, the loss (``model.loss_for``),
evaluation and export never ask which head they hold. The heads are the paper's three output
strategies (Nibali et al. 2018, section 5; the authors' ``dsnt-pose2d`` code):

* :class:`DSNTHead` — 1x1 conv (no bias) -> activation normalised over ``H x W`` (softmax by
  default) -> DSNT, the expectation of the normalised pixel-centre grid under the map.
* :class:`HeatmapHead` — the same 1x1 conv giving raw maps, trained by MSE to Gaussians
  (heatmap matching) and decoded by argmax with the quarter-pixel shift.
* :class:`FCHead` — normalised maps -> one ``Linear(H * W, 2)`` shared by all joints (the
  paper's fully connected baseline).

``in_channels=None`` means the input already holds one map per joint (the stacked hourglass
predicts its maps inside, because Newell's design feeds them back); the head then has no conv.

The maths lives in :mod:`dsntpose.ops`; heads hold parameters and call it. Their ``forward``
branches only on shapes and on Python settings fixed at construction, never on tensor values,
so ``torch.compile(fullgraph=True)`` and ``torch.onnx.export(dynamo=True)`` trace them whole.

Example:
    >>> import torch
    >>> head = DSNTHead(512, 16)
    >>> out = head(torch.randn(2, 512, 28, 28))
    >>> out.coords.shape, out.heatmaps.shape, out.confidence.shape
    (torch.Size([2, 16, 2]), torch.Size([2, 16, 28, 28]), torch.Size([2, 16]))
"""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor, nn

from dsntpose import ops
from dsntpose.config import ACTIVATIONS, check_choice

__all__ = ["DSNTHead", "FCHead", "HeadOutput", "HeatmapHead"]


class HeadOutput(NamedTuple):
    """What every head (and :class:`dsntpose.model.CoordRegressionModel`) returns.

    Attributes:
        coords: ``(B, J, 2)`` normalised ``(x, y)``: -1 and +1 are the outer edges of the map
            (and of the input crop, which spans the same extent).
        heatmaps: ``(B, J, H, W)``: probability maps summing to 1 over ``H x W`` (DSNT, FC), or
            the raw regressed maps (heatmap matching).
        logits: ``(B, J, H, W)`` pre-activation maps (the 1x1 conv's output; for heatmap
            matching the same tensor as ``heatmaps``). Flip test averages these.
        confidence: ``(B, J)`` in ``[0, 1]``, one score per joint.
        aux: earlier stacks' ``HeadOutput``s, earliest first (stacked hourglass in training
            mode, for intermediate supervision); ``()`` otherwise.
    """

    coords: Tensor
    heatmaps: Tensor
    logits: Tensor
    confidence: Tensor
    aux: tuple = ()


def _check_channels(features: Tensor, channels: int, head: str) -> None:
    """Raise ``ValueError`` unless ``features`` is ``(B, channels, H, W)``."""
    if features.dim() != 4 or features.shape[1] != channels:
        raise ValueError(
            f"{head} input must be (B, {channels}, H, W) features, got {tuple(features.shape)}"
        )


def _joint_maps(in_channels: int | None, num_joints: int) -> nn.Module:
    """The paper's 1x1 conv without bias to one map per joint, or identity for ``None``."""
    if num_joints < 1:
        raise ValueError(f"num_joints must be >= 1, got {num_joints}")
    if in_channels is None:
        return nn.Identity()
    if in_channels < 1:
        raise ValueError(f"in_channels must be >= 1 or None, got {in_channels}")
    return nn.Conv2d(in_channels, num_joints, kernel_size=1, bias=False)


class DSNTHead(nn.Module):
    """1x1 conv -> normalised heatmaps -> DSNT expectation (the paper's method).

    Args:
        in_channels: feature channels ``C``, or ``None`` when the input already is
            ``(B, num_joints, H, W)`` maps (no conv then).
        num_joints: ``J``, maps and coordinates per image.
        activation: how logits become a probability map over ``H x W``: ``softmax`` (default),
            ``abs``, ``relu`` or ``sigmoid`` (see :func:`dsntpose.ops.normalize_heatmaps`).
        temperature: softmax temperature (logits are divided by it; ignored by the others).

    ``forward(features (B, C, H, W)) -> HeadOutput`` with ``coords`` ``(B, J, 2)`` normalised,
    ``heatmaps`` the probability maps ``(B, J, H, W)``, ``logits`` the conv output and
    ``confidence`` from :func:`dsntpose.ops.heatmap_confidence`.
    """

    def __init__(
        self,
        in_channels: int | None,
        num_joints: int,
        activation: str = "softmax",
        temperature: float = 1.0,
    ) -> None:
        super().__init__()
        check_choice("activation", activation, ACTIVATIONS)
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.in_channels = in_channels
        self.num_joints = num_joints
        self.activation = activation
        self.temperature = float(temperature)
        self.conv = _joint_maps(in_channels, num_joints)

    def forward(self, features: Tensor) -> HeadOutput:
        _check_channels(features, self.in_channels or self.num_joints, "DSNTHead")
        logits = self.conv(features)
        probs = ops.normalize_heatmaps(logits, self.activation, temperature=self.temperature)
        return HeadOutput(ops.dsnt(probs), probs, logits, ops.heatmap_confidence(probs))

    def extra_repr(self) -> str:
        return f"activation={self.activation!r}, temperature={self.temperature}"


class HeatmapHead(nn.Module):
    """1x1 conv -> raw maps, decoded by argmax with the quarter-pixel shift (heatmap matching).

    Trained by MSE to unnormalised Gaussians (peak 1) at the targets (``model.loss_for``), the
    paper's heatmap-matching baseline. The argmax makes ``coords`` non-differentiable; the loss
    uses ``heatmaps`` only.

    Args:
        in_channels: feature channels ``C``, or ``None`` for input that already is
            ``(B, num_joints, H, W)`` maps.
        num_joints: ``J``.

    ``forward(features (B, C, H, W)) -> HeadOutput`` with ``coords`` ``(B, J, 2)`` normalised
    (:func:`dsntpose.ops.argmax_decode`, ``refine="quarter"``), ``heatmaps`` and ``logits`` both
    the raw maps, and ``confidence`` the peak value clamped to ``[0, 1]`` (the target's peak is
    1, so a well-fit map scores near 1).
    """

    def __init__(self, in_channels: int | None, num_joints: int) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.num_joints = num_joints
        self.conv = _joint_maps(in_channels, num_joints)

    def forward(self, features: Tensor) -> HeadOutput:
        _check_channels(features, self.in_channels or self.num_joints, "HeatmapHead")
        maps = self.conv(features)
        coords = ops.argmax_decode(maps, refine="quarter")
        confidence = maps.flatten(2).amax(dim=-1).clamp(0.0, 1.0)
        return HeadOutput(coords, maps, maps, confidence)


class FCHead(nn.Module):
    """The paper's fully connected output: normalised maps -> ``Linear(H * W, 2)`` -> coords.

    One linear layer is shared by all joints: each joint's normalised ``H x W`` map is flattened
    and mapped to its ``(x, y)``. As in the authors' code, no ``tanh`` (or other squashing) is
    applied, so ``coords`` may leave ``[-1, 1]``. The layer fixes the map size, so the input
    size is fixed too.

    Args:
        in_channels: feature channels ``C``, or ``None`` for input that already is
            ``(B, num_joints, H, W)`` maps.
        num_joints: ``J``.
        heatmap_size: ``H`` (square maps) or ``(H, W)``, in heatmap pixels.
        activation: map normalisation as in :class:`DSNTHead` (``softmax`` by default).
        temperature: softmax temperature.

    ``forward(features (B, C, H, W)) -> HeadOutput`` with ``coords`` ``(B, J, 2)`` from the
    linear layer, ``heatmaps`` the probability maps (what a regulariser acts on), ``logits`` the
    conv output and ``confidence`` from :func:`dsntpose.ops.heatmap_confidence`.
    """

    def __init__(
        self,
        in_channels: int | None,
        num_joints: int,
        heatmap_size: int | tuple[int, int],
        activation: str = "softmax",
        temperature: float = 1.0,
    ) -> None:
        super().__init__()
        height, width = (
            (heatmap_size, heatmap_size) if isinstance(heatmap_size, int) else heatmap_size
        )
        if height < 1 or width < 1:
            raise ValueError(f"heatmap_size must be positive, got {heatmap_size}")
        check_choice("activation", activation, ACTIVATIONS)
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.in_channels = in_channels
        self.num_joints = num_joints
        self.heatmap_size = (int(height), int(width))
        self.activation = activation
        self.temperature = float(temperature)
        self.conv = _joint_maps(in_channels, num_joints)
        self.fc = nn.Linear(height * width, 2)

    def forward(self, features: Tensor) -> HeadOutput:
        _check_channels(features, self.in_channels or self.num_joints, "FCHead")
        if tuple(features.shape[-2:]) != self.heatmap_size:
            raise ValueError(
                f"FCHead was built for {self.heatmap_size} maps, got features "
                f"{tuple(features.shape)}; build it with heatmap_size = input size / stride"
            )
        logits = self.conv(features)
        probs = ops.normalize_heatmaps(logits, self.activation, temperature=self.temperature)
        coords = self.fc(probs.flatten(2))
        return HeadOutput(coords, probs, logits, ops.heatmap_confidence(probs))

    def extra_repr(self) -> str:
        return (
            f"heatmap_size={self.heatmap_size}, activation={self.activation!r}, "
            f"temperature={self.temperature}"
        )
