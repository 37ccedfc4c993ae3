"""Several pose data sets as one training set for whole-photo pose (one person per photo).

:class:`MixedPeople` draws people from several sources (LSP, LSP-extended, the MPII training
crops, any :class:`~dsntpose.data.coco.COCOKeypoints` file), maps each source's joints onto
one target joint set **by name** (:func:`~dsntpose.data.joints.joint_map`: LSP's ``neck`` is
MPII's ``upper_neck``; a joint a source lacks, such as MPII's pelvis and thorax in LSP, is
masked), keeps each source's visible/occluded flags, and adds what a model that must find the
person itself needs:

* **framing** beyond the annotation box (:class:`Framing`): the whole image (letterboxed to a
  square, as the first pass of whole-photo inference sees it) or a loose crop (zoomed out and
  shifted, as the second pass sees a crop taken from a first guess);
* **negatives**: square regions of the sources' images (and of extra background images) that
  hold no annotated person, for a person-presence score.

A sample is the usual dict (:mod:`dsntpose.data.common`, in the target joint set) plus:

* ``visible`` ``(J,)`` float32: 1 where the joint is labelled visible and inside the crop, 0
  where it is labelled occluded or lies outside the crop (a negative: all 0);
* ``visible_mask`` ``(J,)`` float32: 1 where that target is known (labelled joints; every joint
  of a negative), 0 for joints without a label;
* ``presence`` float: 1 for a person crop with at least :data:`MIN_JOINTS_IN` labelled joints
  inside it, 0 for a negative; ``presence_mask`` float: 0 where it is undecided (a crop that
  holds only a few of the person's joints).

Every draw comes from a generator seeded by ``(seed, epoch, index)``, like the other data sets.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from dsntpose.data.common import PoseDataset, check_augment, read_image
from dsntpose.data.joints import JointSet, joint_map
from dsntpose.data.transforms import (
    Augment,
    AugmentParams,
    _flip_order,
    sample_rng,
    transform_sample,
)

__all__ = [
    "MIN_JOINTS_IN",
    "Framing",
    "MixedPeople",
    "NegativeImages",
    "PeopleSource",
    "people_boxes",
]

MIN_JOINTS_IN = 4  # labelled joints inside a crop for it to count as showing a person
_MIN_NEGATIVE_SIDE = 32.0  # image px: smaller background regions are not drawn
_NEGATIVE_TRIES = 24  # random squares tried per image before moving to the next image


class PeopleSource(Protocol):
    """What :class:`MixedPeople` reads from a source: the arrays that
    :class:`~dsntpose.data.lsp.LSP` and :class:`~dsntpose.data.coco.COCOKeypoints` hold."""

    joint_set: JointSet
    image_paths: list[str]
    joints: np.ndarray  # (N, J, 2) image px
    missing: np.ndarray  # (N, J) bool
    visible: np.ndarray  # (N, J) bool
    centers: np.ndarray  # (N, 2) image px: the annotation box's centre
    sides: np.ndarray  # (N,) image px: the annotation box's side (with its margin)
    torso_sizes: np.ndarray  # (N,) image px, NaN where unknown


@dataclass(frozen=True)
class Framing:
    """How a training crop is framed beyond the annotation box.

    With probability ``whole_prob`` the crop is the whole image (the square of side
    ``max(H, W)`` around the image centre, zero-padded); else with probability ``loose_prob``
    it is a loose crop: the annotation box's side times ``2 ** U(0, loose_scale)`` (zoomed out)
    and its centre moved by ``U(-shift, shift)`` times that side in x and in y; else with
    probability ``tight_prob`` a close-up: the box's side times ``2 ** -U(0, tight_scale)``
    (zoomed in, so part of the person falls outside the crop, as in a webcam's head and
    shoulders or a zoomed video) with its centre anywhere that keeps the crop inside the box
    (``U(-1, 1)`` times half the difference of the sides, in x and in y); else the annotation
    box. The joints a crop cuts off are masked (out of the crop); a crop holding fewer than
    ``MIN_JOINTS_IN`` labelled joints does not train the presence score. The paper's
    augmentation (:class:`~dsntpose.data.transforms.Augment`) is applied on top of each.
    """

    whole_prob: float = 0.0
    loose_prob: float = 0.0
    loose_scale: float = 1.0
    shift: float = 0.0
    tight_prob: float = 0.0
    tight_scale: float = 1.0

    def __post_init__(self) -> None:
        for key in ("whole_prob", "loose_prob", "tight_prob"):
            value = getattr(self, key)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"Framing.{key}: must be a probability in [0, 1], got {value!r}")
        total = self.whole_prob + self.loose_prob + self.tight_prob
        if total > 1.0:
            raise ValueError(
                f"Framing.whole_prob + loose_prob + tight_prob: must be at most 1, got {total!r}"
            )
        if not (self.loose_scale >= 0 and self.shift >= 0 and self.tight_scale >= 0):
            raise ValueError(
                "Framing.loose_scale, shift and tight_scale: must be >= 0, got "
                f"{self.loose_scale}, {self.shift}, {self.tight_scale}"
            )

    def frame(
        self,
        rng: np.random.Generator,
        center: np.ndarray,
        side: float,
        image_hw: tuple[int, int],
    ) -> tuple[np.ndarray, float, str]:
        """``(center, side, kind)`` of one draw; ``kind`` is ``whole``, ``loose``, ``tight``
        or ``box``. Always draws the same number of values from ``rng``."""
        u = rng.random(4).tolist()
        if u[0] < self.whole_prob:
            height, width = image_hw
            return np.array([(width - 1) / 2, (height - 1) / 2]), float(max(height, width)), "whole"
        if u[0] < self.whole_prob + self.loose_prob:
            side = side * 2.0 ** (u[1] * self.loose_scale)
            shift = (np.array(u[2:4]) * 2 - 1) * self.shift * side
            return np.asarray(center, dtype=np.float64) + shift, side, "loose"
        if u[0] < self.whole_prob + self.loose_prob + self.tight_prob:
            crop = side * 2.0 ** (-u[1] * self.tight_scale)
            shift = (np.array(u[2:4]) * 2 - 1) * (side - crop) / 2
            return np.asarray(center, dtype=np.float64) + shift, crop, "tight"
        return np.asarray(center, dtype=np.float64), side, "box"


@dataclass
class NegativeImages:
    """Images whose background regions serve as negatives (no person there).

    Attributes:
        image_paths: the images.
        avoid: for each image, ``(K, 4)`` boxes ``(x0, y0, x1, y1)`` image px that hold people
            (every annotated person, crowds included); a negative never overlaps one.
    """

    image_paths: list[str]
    avoid: list[np.ndarray]


def people_boxes(joints: np.ndarray, missing: np.ndarray, grow: float = 0.15) -> np.ndarray:
    """``(K, 4)`` boxes ``(x0, y0, x1, y1)`` around the labelled joints of ``K`` people
    (``joints`` ``(K, J, 2)``, ``missing`` ``(K, J)``), grown by ``grow`` of the longer side on
    every side (a joint box misses the head's top and the hands); people with no labelled
    joint are left out."""
    boxes = []
    for person, gone in zip(np.asarray(joints), np.asarray(missing, dtype=bool)):
        points = person[~gone]
        if len(points) == 0:
            continue
        low, high = points.min(axis=0), points.max(axis=0)
        pad = grow * float(max(high - low)) + 4.0
        boxes.append([low[0] - pad, low[1] - pad, high[0] + pad, high[1] + pad])
    return np.array(boxes, dtype=np.float64).reshape(-1, 4)


def _overlaps(box: np.ndarray, boxes: np.ndarray) -> bool:
    """Whether ``box`` ``(4,)`` intersects any of ``boxes`` ``(K, 4)``."""
    if len(boxes) == 0:
        return False
    return bool(
        np.any(
            (box[0] < boxes[:, 2])
            & (boxes[:, 0] < box[2])
            & (box[1] < boxes[:, 3])
            & (boxes[:, 1] < box[3])
        )
    )


def draw_negative(
    rng: np.random.Generator, image_hw: tuple[int, int], avoid: np.ndarray
) -> tuple[np.ndarray, float] | None:
    """A square ``(center, side)`` inside the image that overlaps none of ``avoid``, side
    between a quarter and the whole of the image's shorter side (at least 32 px), or None when
    ``_NEGATIVE_TRIES`` draws found none."""
    height, width = image_hw
    short = float(min(height, width))
    if short < _MIN_NEGATIVE_SIDE:
        return None
    draws = rng.random((_NEGATIVE_TRIES, 3))
    for a, b, c in draws.tolist():
        side = max(_MIN_NEGATIVE_SIDE, short * (0.25 + 0.75 * a**2))
        x0 = b * (width - side)
        y0 = c * (height - side)
        box = np.array([x0 - 0.5, y0 - 0.5, x0 + side - 0.5, y0 + side - 0.5])
        if not _overlaps(box, avoid):
            return np.array([x0 + (side - 1) / 2, y0 + (side - 1) / 2]), side
    return None


class MixedPeople(PoseDataset):
    """People from several sources in one joint set, with framing and negatives.

    Args:
        sources: ``(name, source)`` pairs; each source is an LSP / COCOKeypoints-like object
            (:class:`PeopleSource`).
        joint_set: the target joint set every sample is given in.
        picks: ``(source, person)`` pairs, in order: positive sample ``i`` is person
            ``picks[i]``. None: everyone of every source once.
        negatives: number of negative samples, after the positives (indices ``len(picks)``
            on). Each is drawn from the people's own images (away from every person there) or,
            when given, from ``backgrounds``.
        backgrounds: extra images for negatives (:class:`NegativeImages`); None: the sources'
            images only.
        other_people: for a source name, per person, ``(K, 4)`` boxes of the *other* people in
            that person's image (so that negatives avoid them too).
        size: crop side ``S`` px.
        augment: the paper's augmentation on top of the framing (True, an ``Augment`` or False).
        framing: how crops are framed (:class:`Framing`; None: the annotation box).
        seed: seed of the per-sample generators (None: fresh entropy).
    """

    def __init__(
        self,
        sources: Sequence[tuple[str, PeopleSource]],
        joint_set: JointSet,
        *,
        picks: Sequence[tuple[int, int]] | None = None,
        negatives: int = 0,
        backgrounds: NegativeImages | None = None,
        other_people: dict[str, list[np.ndarray]] | None = None,
        size: int = 224,
        augment: bool | Augment = False,
        framing: Framing | None = None,
        seed: int | None = 0,
    ) -> None:
        if not sources:
            raise ValueError("MixedPeople needs at least one source")
        self.names = [name for name, _ in sources]
        self.sources = [source for _, source in sources]
        self.joint_set = joint_set
        self.maps = []
        for name, source in sources:
            mapping = np.array(joint_map(source.joint_set, joint_set), dtype=np.intp)
            if (mapping < 0).all():
                raise ValueError(
                    f"MixedPeople: source {name!r} ({source.joint_set.name}) shares no joint "
                    f"name with {joint_set.name}"
                )
            self.maps.append(mapping)
        if picks is None:
            picks = [(s, i) for s, src in enumerate(self.sources) for i in range(len(src.joints))]
        self.picks = [(int(s), int(i)) for s, i in picks]
        if negatives < 0:
            raise ValueError(f"negatives: must be >= 0, got {negatives}")
        self.num_negatives = int(negatives)
        self.backgrounds = backgrounds
        self._avoid = [
            _own_boxes(source, (other_people or {}).get(name))
            for name, source in zip(self.names, self.sources)
        ]
        self.size = int(size)
        self.augment = check_augment(augment)
        self.framing = framing or Framing()
        self.seed = seed

    def __len__(self) -> int:
        return len(self.picks) + self.num_negatives

    def source_of(self, index: int) -> str:
        """The source name of sample ``index`` (``"negative"`` for a negative)."""
        index = self.check_index(index)
        if index >= len(self.picks):
            return "negative"
        return self.names[self.picks[index][0]]

    def _params(self, index: int) -> tuple[np.random.Generator, AugmentParams | None]:
        rng = sample_rng(self.seed, self.epoch, index)
        params = self.augment.sample(rng) if self.augment is not None else None
        return rng, params

    def __getitem__(self, index: int) -> dict[str, Any]:
        index = self.check_index(index)
        if index >= len(self.picks):
            return self._negative(index)
        s, i = self.picks[index]
        source, mapping = self.sources[s], self.maps[s]
        rng, params = self._params(index)
        image = read_image(source.image_paths[i])
        center, side = source.centers[i], float(source.sides[i])
        if math.isnan(side):  # no labelled joint: the whole image
            height, width = image.shape[:2]
            center, side = np.array([(width - 1) / 2, (height - 1) / 2]), float(max(height, width))
        center, side, _kind = self.framing.frame(rng, center, side, image.shape[:2])
        out = transform_sample(
            image,
            source.joints[i],
            source.missing[i],
            center,
            side,
            self.size,
            source.joint_set,
            params,
            bgr=True,
        )
        visible = source.visible[i]
        if params is not None and params.flip:
            visible = visible[_flip_order(source.joint_set.flip_index)]
        # the source's joints, then the target set's order (-1: no such joint in the source)
        have = mapping >= 0
        take = np.where(have, mapping, 0)
        missing = np.where(have, out["joints_missing"][take], True)
        crop_px = np.where(have[:, None], out["joints_crop"][take], (self.size - 1) / 2)
        joints = ((2.0 * crop_px + 1.0) / self.size - 1.0).astype(np.float32)
        joints[missing] = 0.0
        mask = np.where(have, out["mask"][take], 0.0).astype(np.float32)
        joints_image = np.where(have[:, None], out["joints_image"][take], np.nan)
        seen = np.where(have, visible[take], False) & (mask > 0)
        return {
            "image": torch.from_numpy(out["image"]),
            "joints": torch.from_numpy(joints),
            "mask": torch.from_numpy(mask),
            "index": index,
            "inverse": torch.from_numpy(out["inverse"]),
            "joints_image": torch.from_numpy(joints_image),
            "joints_missing": torch.from_numpy(missing),
            "norm_size": float(source.torso_sizes[i]),
            "visible": torch.from_numpy(seen.astype(np.float32)),
            "visible_mask": torch.from_numpy((~missing).astype(np.float32)),
            "presence": 1.0 if mask.sum() >= MIN_JOINTS_IN else 0.0,
            "presence_mask": 1.0 if mask.sum() >= MIN_JOINTS_IN else 0.0,
        }

    def _negative(self, index: int) -> dict[str, Any]:
        """A background square (no person): the images are visited in a seeded order until one
        has room for a square away from every person in it."""
        rng, params = self._params(index)
        pool = self._negative_pool()
        start = int(rng.integers(len(pool)))
        for step in range(len(pool)):
            path, avoid = pool[(start + step) % len(pool)]
            image = read_image(path)
            found = draw_negative(rng, image.shape[:2], avoid)
            if found is not None:
                break
        else:
            raise ValueError("MixedPeople: no image has room for a background square")
        center, side = found
        num = self.joint_set.num_joints
        no_joints = np.zeros((num, 2))
        out = transform_sample(
            image,
            no_joints,
            np.ones(num, dtype=bool),
            center,
            side,
            self.size,
            self.joint_set,
            params,
            bgr=True,
        )
        return {
            "image": torch.from_numpy(out["image"]),
            "joints": torch.zeros(num, 2),
            "mask": torch.zeros(num),
            "index": index,
            "inverse": torch.from_numpy(out["inverse"]),
            "joints_image": torch.full((num, 2), math.nan, dtype=torch.float64),
            "joints_missing": torch.ones(num, dtype=torch.bool),
            "norm_size": math.nan,
            "visible": torch.zeros(num),
            "visible_mask": torch.ones(num),
            "presence": 0.0,
            "presence_mask": 1.0,
        }

    def _negative_pool(self) -> list[tuple[str, np.ndarray]]:
        """``(image path, boxes to avoid)`` of every image negatives may come from: the images of
        the picked people (each once), then the extra backgrounds."""
        pool = getattr(self, "_pool", None)
        if pool is None:
            seen: dict[str, np.ndarray] = {}
            for s, i in self.picks:
                path = self.sources[s].image_paths[i]
                boxes = self._avoid[s][i]
                seen[path] = np.concatenate([seen[path], boxes]) if path in seen else boxes
            pool = list(seen.items())
            if self.backgrounds is not None:
                pool += list(zip(self.backgrounds.image_paths, self.backgrounds.avoid))
            if not pool:
                raise ValueError("MixedPeople: negatives need at least one image")
            self._pool = pool
        return pool


def _own_boxes(source: PeopleSource, others: list[np.ndarray] | None) -> list[np.ndarray]:
    """Per person of ``source``, the boxes a negative from that person's image must avoid: the
    person's own box and (when given) the other people's in the same image."""
    own = [people_boxes(j[None], m[None]) for j, m in zip(source.joints, source.missing)]
    if others is None:
        return own
    if len(others) != len(own):
        raise ValueError(f"other_people: {len(others)} entries for a source of {len(own)} people")
    return [
        np.concatenate([a, np.asarray(b, dtype=np.float64).reshape(-1, 4)])
        for a, b in zip(own, others)
    ]


def coco_backgrounds(
    ann_file: str | os.PathLike[str], image_root: str | os.PathLike[str]
) -> NegativeImages:
    """The images of a COCO file as :class:`NegativeImages`: every annotated person's box
    (``bbox``, crowds included, grown by 10%) is avoided."""
    from pathlib import Path

    from dsntpose.data.coco import read_coco

    data = read_coco(ann_file)
    boxes: dict[Any, list[list[float]]] = {im["id"]: [] for im in data["images"]}
    for ann in data["annotations"]:
        bbox = ann.get("bbox")
        if ann.get("image_id") in boxes and isinstance(bbox, list) and len(bbox) == 4:
            x, y, w, h = (float(v) for v in bbox)
            pad = 0.1 * max(w, h) + 4.0
            boxes[ann["image_id"]].append([x - pad, y - pad, x + w + pad, y + h + pad])
    from dsntpose.data.common import confined

    root = Path(image_root)
    paths, avoid = [], []
    for im in data["images"]:
        paths.append(os.fspath(confined(root, im.get("file_name"), str(ann_file))))
        avoid.append(np.array(boxes[im["id"]], dtype=np.float64).reshape(-1, 4))
    return NegativeImages(paths, avoid)


def mpii_crop_other_people(ann_file: str | os.PathLike[str]) -> dict[int, np.ndarray]:
    """Image id -> ``(K, 4)`` boxes (crop px) of the frame's other annotated people, from the
    image records' ``mpii_other_people`` of the MPII training-crops COCO file."""
    from dsntpose.data.coco import read_coco

    data = read_coco(ann_file)
    out = {}
    for im in data["images"]:
        others = np.asarray(im.get("mpii_other_people") or [], dtype=np.float64)
        if others.size % 48:
            raise ValueError(
                f"{ann_file}: image {im['id']}: mpii_other_people must hold 16 x (x, y, v) per person"
            )
        people = others.reshape(-1, 16, 3)
        out[int(im["id"])] = people_boxes(people[..., :2], people[..., 2] <= 0)
    return out
