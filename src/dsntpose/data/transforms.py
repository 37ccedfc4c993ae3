"""Exact crop geometry and the paper's training augmentation.

Everything here uses the one pixel convention (0-based, an integer is a pixel *centre*, pixel
``i`` covers ``[i - 0.5, i + 0.5]``), which is also the convention of OpenCV's ``warpAffine``.
A crop is described by one 2x3 affine matrix ``M`` that maps image pixels to crop pixels:

    crop_xy = M[:, :2] @ image_xy + M[:, 2]

The image is warped once with ``cv2.warpAffine(image, M, (S, S))`` and the joints are moved by
the same ``M``, so image and joints agree to floating-point precision (no half-pixel bias from
flips or scaling). The inverse matrix (crop px -> image px) travels with every sample so
predictions can be projected back into the original image.

Crop geometry: the square of side ``side`` image px centred on ``center`` (image px) fills the
``S x S`` crop edge to edge: its outer edges map onto the crop's outer edges ``-0.5`` and
``S - 0.5``, and ``center`` maps onto the crop centre ``((S - 1) / 2, (S - 1) / 2)``. Rotation
turns the content about the crop centre, then a horizontal flip mirrors about the crop centre,
``x' = (S - 1) - x`` in pixel-centre coordinates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from dsntpose.data.joints import JointSet

_LEVELS = np.arange(256.0)  # the uint8 values, for the colour lookup tables


def crop_matrix(
    center: tuple[float, float] | np.ndarray,
    side: float,
    size: int,
    rotation: float = 0.0,
    flip: bool = False,
) -> np.ndarray:
    """Affine matrix from image pixels to crop pixels.

    Args:
        center: ``(x, y)`` crop centre in image px (0-based pixel centres).
        side: side of the square image region that fills the crop, image px (> 0).
        size: crop side ``S`` in px.
        rotation: degrees; positive turns the image content counter-clockwise as displayed
            (OpenCV's ``getRotationMatrix2D`` convention), about the crop centre.
        flip: mirror the crop horizontally (``x' = (S - 1) - x``) after rotating.

    Returns:
        ``(2, 3)`` float64 ``M`` with ``crop_xy = M @ [x, y, 1]``.
    """
    cx, cy = float(center[0]), float(center[1])
    if not (side > 0 and math.isfinite(side)):
        raise ValueError(f"crop side must be a positive finite number of image px, got {side}")
    if size < 1:
        raise ValueError(f"crop size must be >= 1 px, got {size}")
    s = size / side
    theta = math.radians(rotation)
    cos, sin = s * math.cos(theta), s * math.sin(theta)
    half = (size - 1) / 2
    # y points down, so [[cos, sin], [-sin, cos]] turns the content counter-clockwise on screen.
    m = np.array(
        [
            [cos, sin, half - cos * cx - sin * cy],
            [-sin, cos, half + sin * cx - cos * cy],
        ]
    )
    if flip:
        m[0] = -m[0]
        m[0, 2] += size - 1
    return m


def invert_affine(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a ``(2, 3)`` affine matrix, as a ``(2, 3)`` float64 matrix."""
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.shape != (2, 3):
        raise ValueError(f"expected an affine matrix of shape (2, 3), got {matrix.shape}")
    (a, b, tx), (c, d, ty) = matrix.tolist()
    det = a * d - b * c
    if det == 0.0:
        raise ValueError("the affine matrix is singular")
    ia, ib, ic, id_ = d / det, -b / det, -c / det, a / det
    return np.array([[ia, ib, -(ia * tx + ib * ty)], [ic, id_, -(ic * tx + id_ * ty)]])


def apply_affine(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Move points ``(..., 2)`` ``(x, y)`` by a ``(2, 3)`` affine matrix; float64 result."""
    points = np.asarray(points, dtype=np.float64)
    if points.shape[-1:] != (2,):
        raise ValueError(f"expected points of shape (..., 2) in (x, y), got {points.shape}")
    matrix = np.asarray(matrix, dtype=np.float64)
    return points @ matrix[:, :2].T + matrix[:, 2]


def warp_image(image: np.ndarray, matrix: np.ndarray, size: int, border: float = 0) -> np.ndarray:
    """Warp an ``(H, W[, C])`` image into an ``(S, S[, C])`` crop with bilinear sampling.

    Pixels that come from outside the image are filled with ``border``.
    """
    return cv2.warpAffine(
        image,
        np.asarray(matrix, dtype=np.float64),
        (size, size),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(border, border, border, border),
    )


@dataclass(frozen=True)
class AugmentParams:
    """One draw of the augmentation: ``scale`` multiplies the crop side (> 1 zooms out),
    ``rotation`` in degrees (see :func:`crop_matrix`), ``flip``, and ``color`` (3,) per-channel
    RGB gains."""

    scale: float = 1.0
    rotation: float = 0.0
    flip: bool = False
    color: tuple[float, float, float] = (1.0, 1.0, 1.0)


@dataclass(frozen=True)
class Augment:
    """The paper's training augmentation (Nibali et al. 2018, section 5.1), all configurable.

    Attributes:
        scale_sigma: standard deviation of ``log2`` of the scale factor (0.25).
        scale_limit: ``log2`` of the scale factor is clipped to ``±scale_limit`` (0.5), so the
            crop side is multiplied by a factor in ``[2^-0.5, 2^0.5]``.
        rotation_prob: probability of rotating at all (0.4).
        rotation_sigma: standard deviation of the rotation in degrees (30).
        rotation_limit: the rotation is clipped to ``±rotation_limit`` degrees (60).
        flip_prob: probability of a horizontal flip (0.5); left/right joints swap.
        color_low, color_high: each RGB channel is multiplied by ``U(color_low, color_high)``
            (0.6, 1.4), then clipped to ``[0, 1]``.
    """

    scale_sigma: float = 0.25
    scale_limit: float = 0.5
    rotation_prob: float = 0.4
    rotation_sigma: float = 30.0
    rotation_limit: float = 60.0
    flip_prob: float = 0.5
    color_low: float = 0.6
    color_high: float = 1.4

    def __post_init__(self) -> None:
        for key in ("rotation_prob", "flip_prob"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise ValueError(f"Augment.{key} must be in [0, 1], got {getattr(self, key)}")
        for key in ("scale_sigma", "scale_limit", "rotation_sigma", "rotation_limit"):
            if getattr(self, key) < 0:
                raise ValueError(f"Augment.{key} must be >= 0, got {getattr(self, key)}")
        if not 0.0 <= self.color_low <= self.color_high:
            raise ValueError(
                f"Augment needs 0 <= color_low <= color_high, got {self.color_low}, {self.color_high}"
            )

    def sample(self, rng: np.random.Generator) -> AugmentParams:
        """Draw one :class:`AugmentParams` from ``rng`` (always the same number of draws)."""
        normal = rng.standard_normal(2)
        uniform = rng.random(5)
        log_scale = min(
            max(float(normal[0]) * self.scale_sigma, -self.scale_limit), self.scale_limit
        )
        rotation = float(normal[1]) * self.rotation_sigma
        rotation = min(max(rotation, -self.rotation_limit), self.rotation_limit)
        low, span = self.color_low, self.color_high - self.color_low
        return AugmentParams(
            scale=2.0**log_scale,
            rotation=rotation if uniform[0] < self.rotation_prob else 0.0,
            flip=bool(uniform[1] < self.flip_prob),
            color=(
                low + span * float(uniform[2]),
                low + span * float(uniform[3]),
                low + span * float(uniform[4]),
            ),
        )


def sample_rng(seed: int | None, epoch: int, index: int) -> np.random.Generator:
    """Per-sample generator: reproducible from ``(seed, epoch, index)`` whatever worker draws it.

    With ``seed=None`` the generator takes fresh OS entropy (not reproducible).
    """
    if seed is None:
        return np.random.default_rng()
    return np.random.default_rng([seed, epoch, index])


def transform_sample(
    image: np.ndarray,
    joints_px: np.ndarray,
    missing: np.ndarray,
    center: tuple[float, float] | np.ndarray,
    side: float,
    size: int,
    joint_set: JointSet,
    params: AugmentParams | None = None,
    bgr: bool = False,
) -> dict[str, np.ndarray]:
    """Crop (and augment) one image and its joints with a single affine warp.

    Args:
        image: ``(H, W, 3)`` uint8 RGB image (BGR when ``bgr``; the channels are then
            reordered on the small crop, not on the full image).
        joints_px: ``(J, 2)`` joints ``(x, y)`` in image px (0-based pixel centres).
        missing: ``(J,)`` bool, True for joints without a label (their coordinates are ignored).
        center: ``(x, y)`` crop centre in image px.
        side: side of the square image region that fills the crop, image px (before scaling).
        size: crop side ``S`` px.
        joint_set: the joint table (its ``flip_index`` swaps partners on flips).
        params: augmentation draw, or None for a plain crop.
        bgr: the image is in OpenCV's BGR order.

    Returns:
        numpy dict: ``image`` ``(3, S, S)`` float32 RGB in ``[0, 1]``; ``joints_crop`` ``(J, 2)``
        float64 crop px; ``mask`` ``(J,)`` float32, 1 for labelled joints inside the crop (in
        ``[-0.5, S - 0.5]``); ``inverse`` ``(2, 3)`` float64 crop px -> image px;
        ``joints_image`` ``(J, 2)`` float64 image px (NaN for missing joints) and
        ``joints_missing`` ``(J,)`` bool. When the crop is flipped the joint rows are permuted
        by ``joint_set.flip_index`` (the mirrored person's left wrist is the original right
        wrist), and ``joints_image``/``joints_missing`` are permuted with them, so that
        ``apply_affine(inverse, joints_crop) == joints_image`` for every sample.
    """
    num = joint_set.num_joints
    joints_px = np.asarray(joints_px, dtype=np.float64)
    missing = np.asarray(missing, dtype=bool)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 image, got {image.shape} {image.dtype}")
    if joints_px.shape != (num, 2) or missing.shape != (num,):
        raise ValueError(
            f"expected joints ({num}, 2) and missing ({num},), got {joints_px.shape} and {missing.shape}"
        )
    params = params or AugmentParams()
    matrix = crop_matrix(center, side * params.scale, size, params.rotation, params.flip)
    identity = image.shape[:2] == (size, size) and np.array_equal(matrix, np.eye(2, 3))
    crop = image if identity else warp_image(image, matrix, size)

    joints_crop = apply_affine(matrix, joints_px)
    joints_image = np.where(missing[:, None], np.nan, joints_px)
    if params.flip:
        order = np.asarray(joint_set.flip_index)
        joints_crop, joints_image, missing = joints_crop[order], joints_image[order], missing[order]
    inside = np.all((joints_crop >= -0.5) & (joints_crop <= size - 0.5), axis=1)
    joints_crop[missing] = (size - 1) / 2  # a harmless finite value; masked everywhere

    # HWC uint8 (RGB or BGR) -> CHW float32 RGB: each output plane is one lookup of its input
    # plane in a 256-entry table min(v * gain / 255, 1), which folds the cast, the colour
    # gain and the clipping into a single pass (the fastest variant timed for benchmarks).
    planes = cv2.split(crop)
    if bgr:
        planes = planes[::-1]
    tables = np.minimum(_LEVELS * (np.asarray(params.color)[:, None] / 255.0), 1.0).astype(
        np.float32
    )
    out = np.empty((3, size, size), dtype=np.float32)
    for c in range(3):
        written = cv2.LUT(planes[c], tables[c], dst=out[c])
        if written.ctypes.data != out[c].ctypes.data:  # OpenCV chose not to write in place
            out[c] = written
    return {
        "image": out,
        "joints_crop": joints_crop,
        "mask": (inside & ~missing).astype(np.float32),
        "inverse": invert_affine(matrix),
        "joints_image": joints_image,
        "joints_missing": missing,
    }
