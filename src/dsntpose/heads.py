"""Output heads: from backbone features to normalised joint coordinates.

Every head returns the same :class:`HeadOutput`, and every head owns its strategy: its training
loss (``head.loss``), how logits decode to coordinates (``head.decode``), what the flip test
averages (``head.flip_mode``) and how two views merge (:func:`merge_views`). The model,
training, evaluation, prediction and export never ask which head they hold; adding a head
is a class in a file of its own (with ``from_config``, ``default_flip_mode``, ``flip_modes``,
``decode`` and ``loss``), one entry in :data:`dsntpose.families.HEADS` and its test. The heads are the paper's three output strategies (Nibali et
al. 2018, section 5; the authors' ``dsnt-pose2d`` code):

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

from collections.abc import Callable
from typing import Any, Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dsntpose import ops
from dsntpose.config import ACTIVATIONS, COORDS, LossConfig, ModelConfig, check_choice

__all__ = [
    "DSNTHead",
    "FCHead",
    "FlipMode",
    "HeadOutput",
    "HeatmapHead",
    "PresenceHead",
    "calibrated_confidence",
    "calibration_size",
    "check_flip_mode",
    "default_flip_mode",
    "joint_features",
    "merge_views",
    "presence_loss",
    "search_confidence",
    "upgrade_calibration",
]

FlipMode = Literal["logits", "coords", "heatmaps"]


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
        presence: ``(B,)`` person-presence logits (a model built with ``presence``, see
            :class:`PresenceHead`), else None.
        visibility: ``(B, J)`` per-joint visibility logits (the same models), else None.
    """

    coords: Tensor
    heatmaps: Tensor
    logits: Tensor
    confidence: Tensor
    aux: tuple[HeadOutput, ...] = ()
    presence: Tensor | None = None
    visibility: Tensor | None = None


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


def _regularizer(probs: Tensor, target: Tensor, cfg: LossConfig) -> Tensor:
    """``(B, J)`` regulariser of probability maps against ``N(target, sigma^2)`` (sigma in px)."""
    if cfg.regularizer == "var":
        return ops.variance_reg_losses(probs, cfg.sigma)
    if cfg.regularizer == "kl":
        return ops.kl_reg_losses(probs, target, cfg.sigma)
    return ops.js_reg_losses(probs, target, cfg.sigma)


def _coordinate_loss(out: HeadOutput, target: Tensor, mask: Tensor, cfg: LossConfig) -> Tensor:
    """The coordinate loss (Euclidean, or RLE with the map's own spread as the scale) plus
    ``cfg.reg_weight`` times the regulariser on the maps, averaged over the joints with
    ``mask`` 1 (the DSNT and FC heads' loss)."""
    if cfg.coord_loss == "rle":
        sigma = ops.heatmap_spread(out.heatmaps, normalized=True)
        losses = ops.rle_losses(out.coords, target, sigma)
    else:
        losses = ops.euclidean_losses(out.coords, target)
    if cfg.regularizer != "none":
        losses = losses + cfg.reg_weight * _regularizer(out.heatmaps, target, cfg)
    return ops.average_loss(losses, mask)


PERSON_TERMS = 4
"""Terms of :func:`joint_features` averaged over a person's joints into terms of their own:
visibility, map confidence, peak and spread."""

CALIBRATION_WEIGHTS = 5 + PERSON_TERMS
"""Weights of the joint-confidence calibration before its per-joint biases (see
:class:`PresenceHead`): one per term of :func:`joint_features`."""

SEARCH_WEIGHTS = 3
"""Weights of the search score's calibration before its per-joint biases: the first three
features of :func:`joint_features` (visibility, map confidence, peak), no spread or scale."""

_EARLIER_WEIGHTS = 3  # (w_visibility, w_map, w_peak): the layout before the spread and scale
_OWN_WEIGHTS = 5  # the joint's own terms: the layout before the person terms

TORSO_REFERENCE = 0.5
"""The torso length (normalised crop units; the crop spans ``[-1, 1]``) that the scale term
of the joint confidence is measured against: about a person's torso in a crop around their
box (a quarter of the side), where the scale term is 0."""


def joint_features(
    visibility: Tensor,
    map_confidence: Tensor,
    probs: Tensor,
    coords: Tensor,
    torso: tuple[int, int] | None = None,
) -> Tensor:
    """``(B, J, 9)``: what the joint-confidence calibration reads of each joint.

    The first five are the joint's own: the visibility logit, the logit of the map confidence
    around the prediction (clamped to ``[1e-4, 1 - 1e-4]``), the log of the map's largest cell
    probability, the log of the map's spread (the length of its per-axis standard deviations,
    normalised units, at least ``1e-3``) and the log of the person's predicted scale in the
    crop (the distance between the ``torso`` pair of ``coords`` over :data:`TORSO_REFERENCE`,
    normalised units, at least ``1e-2``; the same for every joint of a person, 0 without a
    pair). Spread and scale together say how far the map's mass strays against how large the
    person is: PCK's tolerance is a fraction of the torso. The last four are the person's: the
    first four averaged over the ``J`` joints of the sample (the same for each of its joints).
    A person the network reads poorly as a whole is more often wrong at any one joint,
    whatever that joint's own map says (:data:`PERSON_TERMS`).

    Args:
        visibility: ``(B, J)`` logits (:class:`PresenceHead`).
        map_confidence: ``(B, J)`` in ``[0, 1]`` (:func:`dsntpose.ops.heatmap_confidence`).
        probs: ``(B, J, H, W)`` probability maps (each sums to 1).
        coords: ``(B, J, 2)`` normalised predictions read from them.
        torso: the joint pair whose distance is the torso (``JointSet.torso``), or None.
    """
    dtype = visibility.dtype
    p = map_confidence.to(dtype).clamp(1e-4, 1 - 1e-4)
    maps = probs.detach().to(dtype)
    peak = maps.flatten(2).amax(-1).clamp_min(1e-8)
    spread = torch.linalg.vector_norm(ops.heatmap_spread(maps, normalized=True), dim=-1)
    if torso is None:
        scale = torch.zeros_like(visibility)
    else:
        a, b = torso
        length = torch.linalg.vector_norm(coords[:, a] - coords[:, b], dim=-1)
        scale = torch.log(length.to(dtype).clamp_min(1e-2) / TORSO_REFERENCE)
        scale = scale[:, None].expand_as(visibility)
    own = torch.stack(
        [
            visibility,
            torch.log(p / (1 - p)),
            torch.log(peak),
            torch.log(spread.clamp_min(1e-3)),
            scale,
        ],
        dim=-1,
    )
    person = own[..., :PERSON_TERMS].mean(dim=1, keepdim=True).expand(-1, own.shape[1], -1)
    return torch.cat([own, person], dim=-1)


def calibration_size(joints: int) -> int:
    """Length of a calibration for ``joints`` joints in this layout: the confidence's ``9 + J``
    weights and biases, then the search score's ``3 + J`` (:class:`PresenceHead`)."""
    return CALIBRATION_WEIGHTS + SEARCH_WEIGHTS + 2 * joints


def upgrade_calibration(calibration: Tensor, joints: int) -> Tensor:
    """A calibration in this layout ``(12 + 2J,)`` from an earlier one, giving the confidences
    and the search it was fitted for: each layout gains zero weights for the terms it lacks.
    ``(w_visibility, w_map, bias)`` becomes ``(w_visibility, w_map, 0, bias ... bias)``;
    ``(w_visibility, w_map, w_peak, bias_1 ... bias_J)`` gains the spread and scale;
    ``(5 + J,)`` (the joint's own terms alone) gains a search part of its first three weights
    and its biases; ``(8 + 2J,)`` (own terms, then the search part) gains the person terms.
    Anything else is returned as it is (and refused where used)."""
    if calibration.dim() != 1:
        return calibration

    def widen(part: Tensor, have: int, want: int) -> Tensor:
        return torch.cat([part[:have], part.new_zeros(want - have), part[have:]])

    if calibration.numel() == 3:
        w, bias = calibration[:2], calibration[2:]
        calibration = torch.cat([w, calibration.new_zeros(1), bias.expand(joints)])
    if calibration.numel() == _EARLIER_WEIGHTS + joints:
        calibration = widen(calibration, _EARLIER_WEIGHTS, _OWN_WEIGHTS)
    if calibration.numel() == _OWN_WEIGHTS + joints:
        search = torch.cat([calibration[:SEARCH_WEIGHTS], calibration[_OWN_WEIGHTS:]])
        calibration = torch.cat([calibration, search])
    if calibration.numel() == _OWN_WEIGHTS + SEARCH_WEIGHTS + 2 * joints:
        split = _OWN_WEIGHTS + joints
        own, search = calibration[:split], calibration[split:]
        calibration = torch.cat([widen(own, _OWN_WEIGHTS, CALIBRATION_WEIGHTS), search])
    return calibration


def _calibration_parts(calibration: Tensor, joints: int) -> tuple[Tensor, Tensor]:
    """The confidence part ``(9 + J,)`` and the search part ``(3 + J,)`` of a calibration
    (an earlier layout upgraded first); a wrong length is a ``ValueError``."""
    full = upgrade_calibration(calibration, joints)
    if full.shape != (calibration_size(joints),):
        raise ValueError(
            f"calibration: expected {calibration_size(joints)} weights for {joints} joints, "
            f"got {tuple(calibration.shape)}"
        )
    split = CALIBRATION_WEIGHTS + joints
    return full[:split], full[split:]


def _apply(part: Tensor, features: Tensor) -> Tensor:
    """``sigmoid(features @ w + bias_j)`` of features ``(B, J, F)`` and ``part`` ``(F + J,)``."""
    part = part.to(features.dtype)
    width = features.shape[-1]
    return torch.sigmoid(features @ part[:width] + part[width:])


def calibrated_confidence(calibration: Tensor, features: Tensor) -> Tensor:
    """``(B, J)`` probabilities ``sigmoid(features @ w + bias_j)`` of :func:`joint_features`
    ``(B, J, 9)`` under the confidence part ``(w, bias_1 ... bias_J)`` of ``calibration``
    (:class:`PresenceHead`; an earlier layout is read through :func:`upgrade_calibration`)."""
    confidence, _ = _calibration_parts(calibration, features.shape[1])
    return _apply(confidence, features)


def search_confidence(calibration: Tensor, features: Tensor) -> Tensor:
    """``(B, J)`` the joint scores the whole-photo search chooses its crop by: the search part
    of ``calibration`` on the first three of :func:`joint_features` ``(B, J, 9)`` (visibility,
    map confidence, peak; not the spread, the person's scale or the person terms).

    The calibrated confidence rightly marks down every joint of a person who is small in the
    crop (placed less precisely against their torso), which is just what the first pass on a
    whole photo sees; the search must still find those joints to crop around them. On the
    shipped model's held-out whole photos a search by the confidence itself (5 terms) found
    fewer people and scored lower; this score is fitted like the confidence, on its first
    three terms only (``scripts/calibrate.py``)."""
    _, search = _calibration_parts(calibration, features.shape[1])
    return _apply(search, features[..., :SEARCH_WEIGHTS])


class PresenceHead(nn.Module):
    """Whole-photo extras beside the joint maps: is a person there, and is each joint visible.

    * presence: the features averaged over ``H x W`` -> ``Linear(C, 1)``: one logit per image,
      high when the crop shows a person (trained against background crops).
    * visibility: for joint ``j``, the features averaged under its probability map (what the
      network sees where it puts the joint; the map is detached, so this head does not bend
      the localisation) -> a per-joint linear score: one logit per joint, high when the joint
      is in view and not occluded.

    Args:
        in_channels: feature channels ``C``.
        num_joints: ``J``.
        torso: the joint pair whose distance is the person's scale for the joint confidence
            (``JointSet.torso``); None: no scale term.

    ``forward(features (B, C, H, W), probs (B, J, kH, kW)) -> (presence (B,), visibility (B,
    J))`` logits (apply a sigmoid for probabilities). Maps ``k`` times finer than the features
    (an :class:`~dsntpose.decoder.UpsampleDecoder`'s) are summed over each ``k x k`` block
    first: the same probability mass on the features' cells.

    :meth:`joint_confidence` turns what the model knows of a joint into the probability that
    it is placed correctly: ``sigmoid(w_visibility * visibility + w_map * logit(map confidence)
    + w_peak * log(peak) + w_spread * log(spread) + w_scale * log(torso length / 0.5) +
    person terms + bias_j)`` (:func:`joint_features`; the person terms weigh the first four
    averaged over the person's joints), through the buffer ``calibration`` ``(w_visibility,
    w_map, w_peak, w_spread, w_scale, p_visibility, p_map, p_peak, p_spread, bias_1 ...
    bias_J, s_visibility, s_map, s_peak, sbias_1 ... sbias_J)``: a bias per joint, since
    joints differ in how often they are right (a wrist less often than a shoulder at the same
    evidence); the second part is the search score's (:func:`search_confidence`, the first
    three terms). It starts as the visibility probability for both and is fitted after
    training on held-out people (``scripts/calibrate.py``). A checkpoint written with an
    earlier layout (``(w_visibility, w_map, bias)``, ``(w_visibility, w_map, w_peak, bias_1
    ... bias_J)``, or the joint's own five terms with or without a search part) loads with
    zero weights for the terms it lacks and the same weights for the search
    (:func:`upgrade_calibration`): the same confidences and the same search.
    """

    calibration: Tensor

    def __init__(
        self, in_channels: int, num_joints: int, torso: tuple[int, int] | None = None
    ) -> None:
        super().__init__()
        if in_channels < 1 or num_joints < 1:
            raise ValueError(
                f"PresenceHead needs in_channels >= 1 and num_joints >= 1, got {in_channels}, {num_joints}"
            )
        if torso is not None and not all(0 <= j < num_joints for j in torso):
            raise ValueError(f"PresenceHead: torso pair {torso} outside {num_joints} joints")
        self.torso = torso
        self.presence = nn.Linear(in_channels, 1)
        self.visibility_weight = nn.Parameter(torch.randn(num_joints, in_channels) * 0.01)
        self.visibility_bias = nn.Parameter(torch.zeros(num_joints))
        start = torch.zeros(calibration_size(num_joints))
        start[0] = start[CALIBRATION_WEIGHTS + num_joints] = 1.0
        self.register_buffer("calibration", start)

    def upgrade_state(self, state_dict: dict[str, Any], prefix: str) -> None:
        """Rewrite in place a calibration of an earlier layout under ``prefix`` to this one
        (:func:`upgrade_calibration`)."""
        key = prefix + "calibration"
        old = state_dict.get(key)
        if isinstance(old, Tensor):
            state_dict[key] = upgrade_calibration(old, self.visibility_bias.numel())

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        self.upgrade_state(state_dict, prefix)
        super()._load_from_state_dict(state_dict, prefix, *args)

    def joint_confidence(
        self, visibility: Tensor, map_confidence: Tensor, probs: Tensor, coords: Tensor
    ) -> Tensor:
        """``(B, J)`` calibrated probability that each joint is right (see the class), from the
        visibility logits ``(B, J)``, the map confidences ``(B, J)`` around the predictions
        (:func:`dsntpose.ops.heatmap_confidence`), the probability maps ``(B, J, H, W)`` and
        the normalised predictions ``(B, J, 2)``."""
        return calibrated_confidence(
            self.calibration, joint_features(visibility, map_confidence, probs, coords, self.torso)
        )

    def forward(self, features: Tensor, probs: Tensor) -> tuple[Tensor, Tensor]:
        _check_channels(features, self.presence.in_features, "PresenceHead")
        (h, w), (mh, mw) = features.shape[-2:], probs.shape[-2:]
        k = mh // h if h else 0
        if k < 1 or (mh, mw) != (k * h, k * w) or probs.shape[1] != self.visibility_bias.numel():
            raise ValueError(
                f"PresenceHead: maps {tuple(probs.shape)} do not fit features {tuple(features.shape)}"
            )
        if k > 1:
            probs = F.avg_pool2d(probs, k) * (k * k)
        presence = self.presence(features.mean(dim=(2, 3))).squeeze(1)
        weights = probs.detach().to(features.dtype).flatten(2)  # (B, J, HW)
        pooled = torch.bmm(weights, features.flatten(2).transpose(1, 2))  # (B, J, C)
        visibility = (pooled * self.visibility_weight).sum(-1) + self.visibility_bias
        return presence, visibility


def presence_loss(out: HeadOutput, batch_targets: dict[str, Tensor], cfg: LossConfig) -> Tensor:
    """``cfg.presence_weight`` x the presence binary cross-entropy (mean over the images with
    ``presence_mask`` 1) plus ``cfg.visibility_weight`` x the visibility binary cross-entropy
    (mean over the joints with ``visible_mask`` 1); 0 for a term without targets.

    ``batch_targets`` holds ``presence`` ``(B,)``, ``presence_mask`` ``(B,)``, ``visible``
    ``(B, J)`` and ``visible_mask`` ``(B, J)`` (see :mod:`dsntpose.data.mixed`)."""
    if out.presence is None or out.visibility is None:
        raise ValueError("presence_loss: the model has no presence head (model.presence)")
    bce = nn.functional.binary_cross_entropy_with_logits
    total = out.coords.new_zeros(())
    pairs = (
        (out.presence, "presence", "presence_mask", cfg.presence_weight),
        (out.visibility, "visible", "visible_mask", cfg.visibility_weight),
    )
    for logits, key, mask_key, weight in pairs:
        target = batch_targets[key].to(logits.dtype)
        mask = batch_targets[mask_key].to(logits.dtype)
        if tuple(target.shape) != tuple(logits.shape) or tuple(mask.shape) != tuple(logits.shape):
            raise ValueError(
                f"{key} and {mask_key} must be {tuple(logits.shape)}, got "
                f"{tuple(target.shape)} and {tuple(mask.shape)}"
            )
        losses = bce(logits.float(), target.float(), reduction="none")
        count = mask.sum()
        if weight and count > 0:
            total = total + weight * (losses * mask).sum() / count
    return total


def check_flip_mode(head: nn.Module, mode: str) -> None:
    """Raise ``ValueError`` naming the allowed modes when ``head`` cannot merge views by
    ``mode``."""
    allowed: tuple[str, ...] = head.flip_modes  # type: ignore[assignment]
    if mode not in allowed:
        raise ValueError(
            f"flip_mode: {mode!r} does not fit the {getattr(head, 'name', type(head).__name__)} "
            "head; choose one of "
            f"{', '.join(repr(m) for m in allowed)}"
        )


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
        coords: str = "dsnt",
        local_radius: int = 4,
    ) -> None:
        super().__init__()
        check_choice("activation", activation, ACTIVATIONS)
        check_choice("coords", coords, COORDS)
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if coords == "debiased" and activation != "softmax":
            raise ValueError("coords 'debiased' corrects the softmax: needs activation softmax")
        self.in_channels = in_channels
        self.num_joints = num_joints
        self.activation = activation
        self.temperature = float(temperature)
        self.coords = coords
        self.local_radius = int(local_radius)
        self.conv = _joint_maps(in_channels, num_joints)

    name = "dsnt"
    flip_modes: tuple[FlipMode, ...] = ("logits", "coords")

    @classmethod
    def from_config(cls, cfg: ModelConfig, in_channels: int | None) -> DSNTHead:
        """The head ``cfg`` describes on ``in_channels`` feature channels."""
        return cls(
            in_channels, cfg.num_joints, cfg.activation, cfg.temperature, cfg.coords,
            cfg.local_radius,
        )  # fmt: skip

    @staticmethod
    def default_flip_mode(activation: str = "softmax") -> FlipMode:
        """Average the pre-activation maps and decode once (``"logits"``, as the paper's code),
        except with ``abs``: ``|(a + b) / 2|`` cancels where the two views give one cell logits
        of opposite sign, which ``abs`` counts as equal evidence, so the two coordinate
        predictions are averaged instead (``"coords"``; on the LSP sweep's abs model flip by
        logits lost 0.7 PCK@0.2 against no flip, flip by coordinates gained 0.5,
        ``experiments/flip.py``)."""
        return "coords" if activation == "abs" else "logits"

    @property
    def flip_mode(self) -> FlipMode:
        return self.default_flip_mode(self.activation)

    def _maps_and_coords(self, logits: Tensor) -> tuple[Tensor, Tensor]:
        """Probability maps and coordinates of ``(B, J, H, W)`` logits (``self.coords``)."""
        fused = (
            self.activation == "softmax"
            and self.coords == "dsnt"
            and torch.is_grad_enabled()  # training: inference and export trace plain ops
            and logits.dtype == torch.float32
            and logits.dim() == 4
        )
        if fused:
            # softmax and DSNT in one autograd node with a written-out backward (same values)
            probs, coords, _ = ops.softmax_dsnt(logits, temperature=self.temperature)
            return probs, coords
        probs = ops.normalize_heatmaps(logits, self.activation, temperature=self.temperature)
        if self.coords == "local":
            return probs, ops.local_dsnt(probs, self.local_radius)
        if self.coords == "debiased":
            return probs, ops.debiased_dsnt(logits, self.temperature)
        return probs, ops.dsnt(probs)

    def decode(self, logits: Tensor) -> tuple[Tensor, Tensor]:
        """``(B, J, H, W)`` logits -> coords ``(B, J, 2)`` normalised and confidence ``(B, J)``
        (the maps' mass around those coordinates, :func:`dsntpose.ops.heatmap_confidence`)."""
        probs, coords = self._maps_and_coords(logits)
        return coords, ops.heatmap_confidence(probs, center=coords)

    def decode_maps(self, logits: Tensor) -> tuple[Tensor, Tensor]:
        """``(B, J, H, W)`` logits -> the probability maps and coords ``(B, J, 2)``."""
        return self._maps_and_coords(logits)

    def logits(self, features: Tensor) -> Tensor:
        """``(B, C, H, W)`` features -> ``(B, J, H, W)`` map logits (the 1x1 conv)."""
        _check_channels(features, self.in_channels or self.num_joints, "DSNTHead")
        out: Tensor = self.conv(features)
        return out

    def output(self, logits: Tensor) -> HeadOutput:
        """The :class:`HeadOutput` of ``(B, J, H, W)`` map logits (of :meth:`logits`, or of an
        :class:`~dsntpose.decoder.UpsampleDecoder` at twice their size)."""
        probs, coords = self._maps_and_coords(logits)
        return HeadOutput(coords, probs, logits, ops.heatmap_confidence(probs, center=coords))

    def forward(self, features: Tensor) -> HeadOutput:
        return self.output(self.logits(features))

    def loss(
        self, out: HeadOutput, target: Tensor, mask: Tensor, cfg: LossConfig | None = None
    ) -> Tensor:
        """The paper's DSNT loss: Euclidean distance between ``out.coords`` and ``target`` plus
        ``cfg.reg_weight`` times the regulariser ``cfg.regularizer`` (``none``, ``var``, ``kl``
        or ``js``, target sigma ``cfg.sigma`` heatmap px) on the maps, averaged over the
        joints with ``mask`` 1. ``target`` ``(B, J, 2)`` normalised, ``mask`` ``(B, J)`` float;
        returns a scalar."""
        return _coordinate_loss(out, target, mask, cfg or LossConfig())

    def extra_repr(self) -> str:
        extra = "" if self.coords == "dsnt" else f", coords={self.coords!r}"
        return f"activation={self.activation!r}, temperature={self.temperature}{extra}"


class HeatmapHead(nn.Module):
    """1x1 conv -> raw maps, decoded by argmax with the quarter-pixel shift (heatmap matching).

    Trained by MSE to unnormalised Gaussians (peak 1) at the targets (:meth:`loss`), the
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

    name = "heatmap"
    flip_modes: tuple[FlipMode, ...] = ("heatmaps", "coords")

    @classmethod
    def from_config(cls, cfg: ModelConfig, in_channels: int | None) -> HeatmapHead:
        """The head ``cfg`` describes on ``in_channels`` feature channels."""
        return cls(in_channels, cfg.num_joints)

    @staticmethod
    def default_flip_mode(activation: str = "softmax") -> FlipMode:
        """Average the two views' raw maps, then decode once (``"heatmaps"``)."""
        return "heatmaps"

    @property
    def flip_mode(self) -> FlipMode:
        return "heatmaps"

    @staticmethod
    def decode(maps: Tensor) -> tuple[Tensor, Tensor]:
        """``(B, J, H, W)`` raw maps -> arg-max coords ``(B, J, 2)`` normalised (quarter-pixel
        shift) and the peak value clamped to ``[0, 1]`` as confidence ``(B, J)``."""
        coords = ops.argmax_decode(maps, refine="quarter")
        return coords, maps.flatten(2).amax(dim=-1).clamp(0.0, 1.0)

    def forward(self, features: Tensor) -> HeadOutput:
        _check_channels(features, self.in_channels or self.num_joints, "HeatmapHead")
        maps = self.conv(features)
        coords, confidence = self.decode(maps)
        return HeadOutput(coords, maps, maps, confidence)

    def loss(
        self, out: HeadOutput, target: Tensor, mask: Tensor, cfg: LossConfig | None = None
    ) -> Tensor:
        """Heatmap matching: MSE between the raw maps and unnormalised Gaussians (peak 1, sigma
        ``cfg.heatmap_sigma`` px) at the targets, the mean over cells per joint, averaged over
        joints with ``mask`` 1. (The authors' code averaged over all joints, masked ones
        included.)"""
        cfg = cfg or LossConfig()
        targets = ops.heatmap_targets(target, tuple(out.heatmaps.shape[-2:]), cfg.heatmap_sigma)
        return ops.average_loss(ops.heatmap_mse_losses(out.heatmaps, targets), mask)


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

    @classmethod
    def from_config(cls, cfg: ModelConfig, in_channels: int | None) -> FCHead:
        """The head ``cfg`` describes (for ``cfg.heatmap_size`` maps, so that model accepts
        ``cfg.input_size`` crops only)."""
        return cls(in_channels, cfg.num_joints, cfg.heatmap_size, cfg.activation, cfg.temperature)

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

    name = "fc"
    flip_modes: tuple[FlipMode, ...] = ("coords",)

    @staticmethod
    def default_flip_mode(activation: str = "softmax") -> FlipMode:
        """Average the two views' coordinates (the linear layer maps each view itself)."""
        return "coords"

    @property
    def flip_mode(self) -> FlipMode:
        return "coords"

    def decode(self, logits: Tensor) -> tuple[Tensor, Tensor]:
        """``(B, J, H, W)`` logits -> the linear layer's coords ``(B, J, 2)`` and confidence."""
        probs = ops.normalize_heatmaps(logits, self.activation, temperature=self.temperature)
        return self.fc(probs.flatten(2)), ops.heatmap_confidence(probs)

    def loss(
        self, out: HeadOutput, target: Tensor, mask: Tensor, cfg: LossConfig | None = None
    ) -> Tensor:
        """As :meth:`DSNTHead.loss`: Euclidean, plus the regulariser on the normalised maps when
        ``cfg.regularizer`` is not ``none``, as the authors' code did (their FC baseline ran
        with ``none``; set ``loss.regularizer: none`` to reproduce it)."""
        return _coordinate_loss(out, target, mask, cfg or LossConfig())

    def extra_repr(self) -> str:
        return (
            f"heatmap_size={self.heatmap_size}, activation={self.activation!r}, "
            f"temperature={self.temperature}"
        )


def default_flip_mode(head: str, activation: str = "softmax") -> FlipMode:
    """What the flip test averages for the head named ``head`` (a name of
    :data:`dsntpose.families.HEADS`) with ``activation``: the class's own ``default_flip_mode``."""
    from dsntpose.families import HEADS

    if head not in HEADS:
        names = [repr(name) for name in HEADS]
        listed = ", ".join(names[:-1]) + f" or {names[-1]}" if len(names) > 1 else names[0]
        raise ValueError(f"head: expected {listed}, got {head!r}")
    return HEADS[head].load().default_flip_mode(activation)  # type: ignore[attr-defined,no-any-return]


def merge_views(
    out: HeadOutput,
    out_flip: HeadOutput,
    flip_index: list[int],
    mode: FlipMode,
    decode: Callable[[Tensor], tuple[Tensor, Tensor]] | None = None,
) -> tuple[Tensor, Tensor]:
    """Merge a prediction with the prediction on the mirrored image (the flip test).

    The mirror is ``torch.flip`` along the width; in normalised units it maps ``x`` to ``-x``
    exactly, and a map flipped along ``W`` lines up cell for cell, so no half-pixel correction
    is needed. Left and right joints are swapped by ``flip_index``.

    Args:
        out, out_flip: the outputs on the images and on their mirrors.
        flip_index: ``J`` positions: the left/right partner of each joint.
        mode: ``"logits"``: average the pre-activation maps and ``decode`` them once;
            ``"coords"``: average the two coordinate predictions; ``"heatmaps"``: average the
            raw maps and ``decode`` them once (default: arg-max, :meth:`HeatmapHead.decode`).
        decode: ``(B, J, H, W)`` maps -> (coords ``(B, J, 2)``, confidence ``(B, J)``), the
            head's ``decode``; needed for ``"logits"``.

    Returns:
        coords ``(B, J, 2)`` normalised and confidence ``(B, J)`` (the mean of both views' for
        ``"coords"`` and ``"heatmaps"``).
    """
    confidence = 0.5 * (out.confidence + out_flip.confidence[:, flip_index])
    if mode == "coords":
        mirrored = out_flip.coords[:, flip_index].clone()
        mirrored[..., 0] = -mirrored[..., 0]
        return 0.5 * (out.coords + mirrored), confidence
    if mode == "heatmaps":
        maps = 0.5 * (out.heatmaps + torch.flip(out_flip.heatmaps, dims=[-1])[:, flip_index])
        return (decode or HeatmapHead.decode)(maps)[0], confidence
    if mode != "logits":
        raise ValueError(f"mode: expected 'logits', 'coords' or 'heatmaps', got {mode!r}")
    if decode is None:
        raise ValueError("merge_views: mode 'logits' needs the head's decode")
    logits = 0.5 * (out.logits + torch.flip(out_flip.logits, dims=[-1])[:, flip_index])
    return decode(logits)
