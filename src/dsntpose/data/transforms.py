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

import functools
import math
from dataclasses import dataclass

import cv2
import numpy as np

from dsntpose.config import AUGMENT_DEFAULTS, check_augmentation
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
    moved: np.ndarray = points @ matrix[:, :2].T + matrix[:, 2]
    return moved


def warp_image(
    image: np.ndarray, matrix: np.ndarray, size: int | tuple[int, int], border: float = 0
) -> np.ndarray:
    """Warp an ``(H, W[, C])`` image into an ``(S, S[, C])`` crop (``size`` ``S``), or an
    ``(h, w[, C])`` frame (``size`` ``(w, h)``), with bilinear sampling.

    Pixels that come from outside the image are filled with ``border``.
    """
    return cv2.warpAffine(
        image,
        np.asarray(matrix, dtype=np.float64),
        (size, size) if isinstance(size, int) else tuple(size),
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


_PLAIN = AugmentParams()  # the plain crop


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

    scale_sigma: float = AUGMENT_DEFAULTS["scale_sigma"]
    scale_limit: float = AUGMENT_DEFAULTS["scale_limit"]
    rotation_prob: float = AUGMENT_DEFAULTS["rotation_prob"]
    rotation_sigma: float = AUGMENT_DEFAULTS["rotation_sigma"]
    rotation_limit: float = AUGMENT_DEFAULTS["rotation_limit"]
    flip_prob: float = AUGMENT_DEFAULTS["flip_prob"]
    color_low: float = AUGMENT_DEFAULTS["color_low"]
    color_high: float = AUGMENT_DEFAULTS["color_high"]

    def __post_init__(self) -> None:
        check_augmentation(self, "Augment.")

    def sample(self, rng: np.random.Generator) -> AugmentParams:
        """Draw one :class:`AugmentParams` from ``rng`` (always the same number of draws)."""
        normal = rng.standard_normal(2).tolist()  # Python floats: cheaper arithmetic below
        uniform = rng.random(5).tolist()
        log_scale = min(max(normal[0] * self.scale_sigma, -self.scale_limit), self.scale_limit)
        rotation = normal[1] * self.rotation_sigma
        rotation = min(max(rotation, -self.rotation_limit), self.rotation_limit)
        low, span = self.color_low, self.color_high - self.color_low
        return AugmentParams(
            scale=2.0**log_scale,
            rotation=rotation if uniform[0] < self.rotation_prob else 0.0,
            flip=uniform[1] < self.flip_prob,
            color=(low + span * uniform[2], low + span * uniform[3], low + span * uniform[4]),
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
    if params is None:
        params = _PLAIN
    matrix = crop_matrix(center, side * params.scale, size, params.rotation, params.flip)
    identity = image.shape[:2] == (size, size) and np.array_equal(matrix, np.eye(2, 3))
    crop = image if identity else _warp_color(image, matrix, size)

    # The joint arrays are tiny, so each numpy call costs more than its arithmetic: this is
    # apply_affine without its argument checks, the flip permutation is built once per joint
    # table, and the inside test runs on Python floats.
    joints_crop = joints_px @ matrix[:, :2].T + matrix[:, 2]
    joints_image = joints_px.copy()
    joints_image[missing] = np.nan
    if params.flip:
        order = _flip_order(joint_set.flip_index)
        joints_crop, joints_image, missing = joints_crop[order], joints_image[order], missing[order]
    joints_crop[missing] = (size - 1) / 2  # the crop centre: normalised (0, 0); masked everywhere
    low, high = -0.5, size - 0.5
    mask = np.array(
        [low <= x <= high and low <= y <= high for x, y in joints_crop.tolist()], np.float32
    )
    mask[missing] = 0.0
    return {
        "image": to_chw_rgb(crop, params.color, bgr),
        "joints_crop": joints_crop,
        "mask": mask,
        "inverse": invert_affine(matrix),
        "joints_image": joints_image,
        "joints_missing": missing,
    }


_PAD_LIMIT = 8  # pad images of at most this many times the crop's pixels to 4 channels


def _warp_color(image: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """:func:`warp_image` of an ``(H, W, 3)`` uint8 image, as ``(S, S, 3)`` or ``(S, S, 4)``:
    a fourth channel, when present, is padding; the first three are ``warp_image``'s exactly.

    OpenCV's bilinear warp of 4-channel uint8 images is much faster than of 3-channel ones
    and gives the same values per channel (timed with OpenCV 5.0 on x86: 1.7-2.5x faster; the
    padding costs ~0.2 ns per image px, the 4-channel warp saves ~4 ns per crop px), so an
    image of at most ``_PAD_LIMIT`` times the crop's pixels is padded to 4 channels first.
    Large images (MPII's photos next to a 224 px crop) are warped as they are.
    ``tests/test_data_transforms.py`` checks that both ways give the same sample.
    """
    if image.shape[0] * image.shape[1] <= _PAD_LIMIT * size * size:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2BGRA)  # appends the channel, keeps the order
    return warp_image(image, matrix, size)


@functools.lru_cache(maxsize=8)
def _flip_order(flip_index: tuple[int, ...]) -> np.ndarray:
    """``flip_index`` as an index array (one per joint table, built once)."""
    order = np.array(flip_index, dtype=np.intp)
    order.flags.writeable = False
    return order


def _color_tables(color: tuple[float, float, float]) -> np.ndarray:
    """``(3, 256)`` float32 lookup tables ``min(v * gain / 255, 1)`` for the RGB gains ``color``
    (the plain crop's, gains ``(1, 1, 1)``, are built once)."""
    gains = (color[0], color[1], color[2])  # a tuple whatever sequence the caller gave
    if gains == _UNIT_GAINS:
        return _UNIT_TABLES
    return _build_tables(gains)


def _build_tables(gains: tuple[float, float, float]) -> np.ndarray:
    """The tables of :func:`_color_tables`, computed in float64 and rounded to float32."""
    return np.minimum(_LEVELS * (np.asarray(gains)[:, None] / 255.0), 1.0).astype(np.float32)


_UNIT_GAINS = (1.0, 1.0, 1.0)
_UNIT_TABLES = _build_tables(_UNIT_GAINS)
_UNIT_TABLES.flags.writeable = False


def to_chw_rgb(
    crop: np.ndarray, color: tuple[float, float, float] = (1.0, 1.0, 1.0), bgr: bool = False
) -> np.ndarray:
    """``(S, S, 3)`` uint8 RGB (BGR when ``bgr``) -> ``(3, S, S)`` float32 RGB in ``[0, 1]``,
    each channel multiplied by its gain in ``color`` (RGB order) and clipped to 1. A
    4-channel crop (RGBA or BGRA) is accepted too; its fourth channel is ignored.

    Each output plane is one lookup of its input plane in a 256-entry table, which folds the
    cast, the colour gain and the clipping into a single pass (the fastest variant timed for
    ``benchmarks/data.py``).
    """
    # Splitting into the planes of one new array is cheaper than into 3-4 fresh arrays.
    planes = cv2.split(crop, list(np.empty((crop.shape[2], *crop.shape[:2]), np.uint8)))[:3]
    if bgr:
        planes = planes[::-1]
    tables = _color_tables(color)
    out = np.empty((3, *crop.shape[:2]), dtype=np.float32)
    for c in range(3):
        plane = out[c]
        written = cv2.LUT(planes[c], tables[c], dst=plane)
        if written is not plane:  # OpenCV chose not to write in place
            plane[...] = written
    return out
