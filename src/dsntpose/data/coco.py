"""COCO keypoint files: read them as crop samples, write LSP in that format, score OKS AP/AR.

A COCO keypoints file is JSON with ``images`` (``id``, ``file_name``, ``width``, ``height``),
``annotations`` (one per person: ``image_id``, ``category_id``, ``bbox`` ``[x, y, w, h]``,
``keypoints`` ``[x1, y1, v1, x2, y2, v2, ...]``, ``num_keypoints``, ``area``, ``iscrowd``) and
``categories`` (``id``, ``name``, ``keypoints`` — the joint names — and ``skeleton``, 1-based
joint pairs). Any keypoint set works: the :class:`~dsntpose.data.joints.JointSet` is built from
the category (:func:`joint_set_from_category`), and a category whose names are exactly those
of a built-in set (LSP's 14, MPII's 16) gets that built-in table.

Conventions:

* Keypoint ``x, y`` are taken as dsntpose image px (0-based, an integer is a pixel centre; see
  ``docs/architecture.md``) with no shift. :func:`lsp_to_coco` writes LSP's 0-based joints that
  way, so a round trip is exact.
* Visibility ``v``: 0 = not labelled (the joint is *missing*: masked, never a target, as in
  every dsntpose data set), 1 = labelled but occluded, 2 = labelled and visible.
* ``bbox`` uses predict's box convention: it covers pixel columns ``x .. x + w - 1``, so its
  centre is ``(x + (w - 1) / 2, y + (h - 1) / 2)``. The crop is the square of side
  ``(1 + 2 * margin) * max(w, h)`` around that centre (``margin`` as in
  :class:`~dsntpose.data.lsp.LSP`; the default 0.125 gives ``1.25 * max(w, h)``, the crop of
  :func:`dsntpose.predict.predict`). A person without a usable box is cropped from the box of
  its labelled keypoints, as LSP is.
* Crowd annotations (``iscrowd: 1``) are never samples (COCOeval ignores detections matched to
  them); neither are people with fewer than ``min_keypoints`` labelled keypoints.

Evaluation (:func:`evaluate_coco`) is pycocotools' ``COCOeval`` with ``iouType="keypoints"``
(object keypoint similarity, OKS). OKS needs one falloff constant ``sigma`` per keypoint; COCO's
17 are :data:`COCO_SIGMAS`; for LSP's 14 joints :data:`LSP_SIGMAS` takes COCO's value of the
same joint (ankles .089, knees .087, hips .107, wrists .062, elbows .072, shoulders .079) and,
for the two joints COCO does not have, **neck .079 and head top .079**: both are placed by eye
on a body outline rather than on a sharp facial landmark (COCO's eyes/ears are .025-.035), with
an uncertainty like the shoulders' next to them; .079 is the shoulder value (the CrowdPose
benchmark, which has both joints, uses the same choice).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dsntpose.data.common import PoseDataset, check_augment, confined, finish_sample, read_image
from dsntpose.data.joints import JOINT_SETS, LSP_JOINTS, JointSet
from dsntpose.data.lsp import MIN_SIDE, joint_box_crop, read_lsp_joints
from dsntpose.data.transforms import Augment

__all__ = [
    "COCO_KEYPOINT_NAMES",
    "COCO_SIGMAS",
    "LSP_SIGMAS",
    "STAT_NAMES",
    "COCOKeypoints",
    "coco_category",
    "evaluate_coco",
    "joint_set_from_category",
    "lsp_to_coco",
    "read_coco",
    "to_coco_results",
]

COCO_KEYPOINT_NAMES = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)  # fmt: skip
# COCO's per-keypoint OKS constants (the values pycocotools uses by default).
COCO_SIGMAS = (
    0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072, 0.062, 0.062, 0.107, 0.107,
    0.087, 0.087, 0.089, 0.089,
)  # fmt: skip
# LSP order: r_ankle r_knee r_hip l_hip l_knee l_ankle r_wrist r_elbow r_shoulder l_shoulder
# l_elbow l_wrist neck head_top (neck and head top: see the module docstring).
LSP_SIGMAS = (
    0.089, 0.087, 0.107, 0.107, 0.087, 0.089, 0.062, 0.072, 0.079, 0.079, 0.072, 0.062,
    0.079, 0.079,
)  # fmt: skip
# COCOeval.stats for keypoints, in order (maxDets 20; "m"/"l" the medium/large area ranges).
STAT_NAMES = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")

_RIGHT, _LEFT, _CENTRE = (235, 110, 40), (40, 150, 230), (60, 190, 70)
_SIDES = (
    (re.compile(r"^(left)_(.+)$"), "right"),
    (re.compile(r"^(right)_(.+)$"), "left"),
    (re.compile(r"^(l)_(.+)$"), "r"),
    (re.compile(r"^(r)_(.+)$"), "l"),
)


def _side_of(name: str) -> tuple[str | None, str, str | None]:
    """``(side, base, partner name)`` of a joint name: ``left_knee`` -> ``("left", "knee",
    "right_knee")``; a centre joint -> ``(None, name, None)``."""
    for pattern, other in _SIDES:
        match = pattern.match(name)
        if match:
            return match.group(1), match.group(2), f"{other}_{match.group(2)}"
    return None, name, None


def joint_set_from_category(category: Mapping[str, Any], name: str | None = None) -> JointSet:
    """The :class:`JointSet` of a COCO category (its ``keypoints`` names and ``skeleton``).

    Flip partners pair ``left_*``/``right_*`` and ``l_*``/``r_*`` names (a name whose partner is
    absent maps to itself). The skeleton is COCO's 1-based pairs (a skeleton that uses joint 0
    is taken as 0-based). Edges are coloured by side (both ends right: warm, both left: cool,
    else green); the PCK groups join the left and right joint of one name (``Shoulder``), the
    Total counts every joint and the torso pair is right shoulder to left hip when both exist
    (else ``(0, 0)``, a torso size of 0). If the names equal a built-in set's (``lsp``,
    ``mpii``), that set is returned.

    Args:
        category: a ``categories`` entry with ``keypoints`` (list of ``J`` names) and optionally
            ``skeleton`` (list of pairs).
        name: the set's name (default: ``"coco"`` for COCO's 17 keypoints, else the category's
            ``name``).

    Raises:
        ValueError: no keypoint names, repeated names, or a skeleton pair out of range.
    """
    names = category.get("keypoints") if isinstance(category, Mapping) else None
    cat = category.get("name", "?") if isinstance(category, Mapping) else "?"
    if not isinstance(names, Sequence) or isinstance(names, str) or not names:
        raise ValueError(f"category {cat!r}: 'keypoints' must be a non-empty list of joint names")
    names = tuple(str(n) for n in names)
    if len(set(names)) != len(names):
        raise ValueError(f"category {cat!r}: repeated keypoint names in {list(names)}")
    for builtin in JOINT_SETS.values():
        if builtin.names == names:
            return builtin
    num = len(names)
    raw = category.get("skeleton") or []
    try:
        pairs = [(int(a), int(b)) for a, b in raw]
    except (TypeError, ValueError):
        raise ValueError(f"category {cat!r}: 'skeleton' must be a list of [a, b] pairs") from None
    base = 0 if any(0 in pair for pair in pairs) else 1
    skeleton = tuple((a - base, b - base) for a, b in pairs)
    if any(not (0 <= a < num and 0 <= b < num) for a, b in skeleton):
        raise ValueError(
            f"category {cat!r}: skeleton pair out of range for {num} keypoints "
            f"({'0' if base == 0 else '1'}-based): {raw}"
        )
    sides = [_side_of(n) for n in names]
    flip = []
    for j, (_, _, partner) in enumerate(sides):
        flip.append(names.index(partner) if partner in names else j)
    flip_index = tuple(flip)
    if any(flip_index[flip_index[j]] != j for j in range(num)):  # e.g. left_x and l_x both
        flip_index = tuple(range(num))
    colors = []
    for a, b in skeleton:
        side_a, side_b = sides[a][0], sides[b][0]
        right = side_a in ("right", "r") and side_b in ("right", "r")
        left = side_a in ("left", "l") and side_b in ("left", "l")
        colors.append(_RIGHT if right else _LEFT if left else _CENTRE)
    groups: dict[str, list[int]] = {}
    for j, (_, base_name, _) in enumerate(sides):
        groups.setdefault(base_name.replace("_", " ").capitalize(), []).append(j)

    def first(*candidates: str) -> int | None:
        return next((names.index(c) for c in candidates if c in names), None)

    shoulder, hip = first("right_shoulder", "r_shoulder"), first("left_hip", "l_hip")
    torso = (shoulder, hip) if shoulder is not None and hip is not None else (0, 0)
    default_name = "coco" if names == COCO_KEYPOINT_NAMES else str(cat)
    return JointSet(
        name=name or default_name,
        names=names,
        flip_index=flip_index,
        skeleton=skeleton,
        colors=tuple(colors),
        pck_groups={k: tuple(v) for k, v in groups.items()},
        pck_total=tuple(range(num)),
        torso=torso,
    )


def coco_category(
    joint_set: JointSet, category_id: int = 1, name: str = "person"
) -> dict[str, Any]:
    """A COCO ``categories`` entry for a joint set: its names and 1-based skeleton."""
    return {
        "id": int(category_id),
        "name": name,
        "supercategory": name,
        "keypoints": list(joint_set.names),
        "skeleton": [[a + 1, b + 1] for a, b in joint_set.skeleton],
    }


def _load_json(source: str | os.PathLike[str] | Mapping[str, Any] | list[Any], what: str) -> Any:
    """A JSON document from a path (one-line errors naming the file) or the object itself."""
    if isinstance(source, (Mapping, list)):
        return source
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(
            f"{what}: expected a path or a parsed JSON object, got {type(source).__name__}"
        )
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not JSON ({err})") from None


def read_coco(source: str | os.PathLike[str] | Mapping[str, Any]) -> dict[str, Any]:
    """Read and check a COCO keypoints annotation file (or an already parsed dict).

    Returns:
        the dict, with ``images``, ``annotations`` and ``categories`` checked: unique image
        ids, every annotation on a known image, and ``keypoints`` of length ``3 * J`` for its
        category's ``J`` names (annotations without ``keypoints`` are allowed: boxes only).

    Raises:
        FileNotFoundError, ValueError: with one line naming the file and the field.
    """
    where = str(source) if isinstance(source, (str, os.PathLike)) else "COCO dict"
    data = _load_json(source, "annotation file")
    if not isinstance(data, Mapping):
        raise ValueError(f"{where}: expected a JSON object with images/annotations/categories")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise ValueError(f"{where}: field {key!r} must be a list")
    ids = [im.get("id") for im in data["images"] if isinstance(im, Mapping)]
    if len(ids) != len(data["images"]) or len(set(ids)) != len(ids):
        raise ValueError(f"{where}: 'images' must be objects with unique 'id's")
    known = set(ids)
    lengths = {
        c.get("id"): 3 * len(c["keypoints"])
        for c in data["categories"]
        if isinstance(c, Mapping) and isinstance(c.get("keypoints"), list)
    }
    for ann in data["annotations"]:
        if not isinstance(ann, Mapping) or ann.get("image_id") not in known:
            ident = ann.get("id") if isinstance(ann, Mapping) else ann
            raise ValueError(f"{where}: annotation {ident!r} has no image_id in 'images'")
        kps = ann.get("keypoints")
        if kps is not None:
            expected = lengths.get(ann.get("category_id"))
            if expected is None or not isinstance(kps, list) or len(kps) != expected:
                raise ValueError(
                    f"{where}: annotation {ann.get('id')!r}: keypoints must be a list of "
                    f"3 x J numbers for category {ann.get('category_id')!r} (expected "
                    f"{expected}, got {len(kps) if isinstance(kps, list) else type(kps).__name__})"
                )
    return dict(data)


def _keypoint_category(
    data: Mapping[str, Any], category_id: int | None, where: str
) -> dict[str, Any]:
    """The category with keypoints to read (the only one, or ``category_id``)."""
    cats = [c for c in data["categories"] if isinstance(c.get("keypoints"), list)]
    if category_id is not None:
        cats = [c for c in cats if c.get("id") == category_id]
        if not cats:
            raise ValueError(f"{where}: no category {category_id} with keypoints")
    if len(cats) != 1:
        found = [c.get("id") for c in cats]
        raise ValueError(
            f"{where}: {len(cats)} categories with keypoints {found}: pass category_id"
        )
    return dict(cats[0])


def _person_arrays(ann: Mapping[str, Any], num: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``joints (J, 2)`` image px (0 where missing), ``missing (J,)``, ``visible (J,)``."""
    raw = np.asarray(ann.get("keypoints") or [0.0] * (3 * num), dtype=np.float64).reshape(num, 3)
    missing = (raw[:, 2] <= 0) | ~np.isfinite(raw[:, :2]).all(axis=1)
    joints = np.where(missing[:, None], 0.0, raw[:, :2])
    return joints, missing, (raw[:, 2] >= 2) & ~missing


class COCOKeypoints(PoseDataset):
    """The people of a COCO keypoints file as crop samples (see :mod:`dsntpose.data.common`).

    Args:
        ann_file: the annotation JSON (or a parsed dict in that form).
        image_root: the folder the images' ``file_name`` are relative to.
        size: crop side ``S`` px.
        augment: ``True`` for the paper's augmentation, an :class:`Augment`, or False.
        margin: fraction of the box's longer side added on each side of the crop.
        seed: seed of the per-sample augmentation generator (None: fresh entropy).
        category_id: the category to read (default: the only one with keypoints).
        min_keypoints: people with fewer labelled keypoints (``v > 0``) are skipped.
        skip_missing: drop people whose image file is absent (one warning) instead of raising
            ``FileNotFoundError``.

    Attributes:
        joint_set: from the category (:func:`joint_set_from_category`).
        annotation_ids, image_ids: ``(N,)`` COCO ids of sample ``i``'s person and image (the
            sample's ``index`` field points here).
        joints ``(N, J, 2)`` image px, missing ``(N, J)``, visible ``(N, J)``, centers
        ``(N, 2)`` and sides ``(N,)`` image px, areas ``(N,)`` px², image_paths.

    ``norm_size`` is the torso size (``joint_set.torso`` distance), NaN when either joint is
    missing or the set has no torso pair.
    """

    def __init__(
        self,
        ann_file: str | os.PathLike[str] | Mapping[str, Any],
        image_root: str | os.PathLike[str],
        size: int = 224,
        augment: bool | Augment = False,
        margin: float = 0.125,
        seed: int | None = 0,
        category_id: int | None = None,
        min_keypoints: int = 1,
        skip_missing: bool = False,
    ) -> None:
        where = str(ann_file) if isinstance(ann_file, (str, os.PathLike)) else "COCO dict"
        data = read_coco(ann_file)
        if not margin >= 0:
            raise ValueError(f"margin must be >= 0, got {margin}")
        category = _keypoint_category(data, category_id, where)
        self.category_id = category["id"]
        self.joint_set = joint_set_from_category(category)
        num = self.joint_set.num_joints
        self.root = Path(image_root)
        images = {im["id"]: im for im in data["images"]}
        rows = []
        for ann in data["annotations"]:
            if ann.get("category_id") != self.category_id or ann.get("iscrowd", 0):
                continue
            joints, missing, visible = _person_arrays(ann, num)
            if int((~missing).sum()) < max(min_keypoints, 0) or (
                missing.all() and not _box_ok(ann)
            ):
                continue
            file_name = images[ann["image_id"]].get("file_name")
            if not isinstance(file_name, str):
                raise ValueError(f"{where}: image {ann['image_id']!r} has no 'file_name'")
            path = confined(self.root, file_name, where)
            rows.append((ann, joints, missing, visible, os.fspath(path)))
        absent = sorted({r[4] for r in rows if not os.path.isfile(r[4])})
        if absent and not skip_missing:
            raise FileNotFoundError(
                f"image not found: {absent[0]} ({len(absent)} images absent; check image_root, "
                "or build COCOKeypoints(..., skip_missing=True) to leave their people out)"
            )
        if absent:
            warnings.warn(
                f"COCOKeypoints: skipped the people of {len(absent)} absent images in {self.root}",
                stacklevel=2,
            )
            gone = set(absent)
            rows = [r for r in rows if r[4] not in gone]
        n = len(rows)
        self.annotation_ids = np.array([r[0].get("id", -1) for r in rows], dtype=np.int64)
        self.image_ids = np.array([r[0]["image_id"] for r in rows], dtype=np.int64)
        self.image_paths = [r[4] for r in rows]
        self.joints = np.stack([r[1] for r in rows]) if n else np.zeros((0, num, 2))
        self.missing = np.stack([r[2] for r in rows]) if n else np.zeros((0, num), bool)
        self.visible = np.stack([r[3] for r in rows]) if n else np.zeros((0, num), bool)
        self.areas = np.array([float(r[0].get("area", math.nan)) for r in rows])
        joint_centers, joint_sides = joint_box_crop(self.joints, self.missing, margin)
        self.centers, self.sides = joint_centers, joint_sides
        for i, (ann, *_rest) in enumerate(rows):
            if _box_ok(ann):
                x, y, w, h = (float(v) for v in ann["bbox"])
                self.centers[i] = (x + (w - 1) / 2, y + (h - 1) / 2)
                self.sides[i] = max((1 + 2 * margin) * max(w, h), MIN_SIDE)
        a, b = self.joint_set.torso
        torso = np.linalg.norm(self.joints[:, a] - self.joints[:, b], axis=1)
        bad = self.missing[:, a] | self.missing[:, b] | (a == b)
        self.torso_sizes = np.where(bad, np.nan, torso)
        self.size = int(size)
        self.augment = check_augment(augment)
        self.seed = seed

    def __len__(self) -> int:
        return len(self.image_paths)

    def __getitem__(self, index: int) -> dict[str, Any]:
        index = self.check_index(index)
        image = read_image(self.image_paths[index])
        return finish_sample(
            image,
            self.joints[index],
            self.missing[index],
            self.centers[index],
            float(self.sides[index]),
            self.size,
            self.joint_set,
            self.augment_params(index),
            index,
            float(self.torso_sizes[index]),
            bgr=True,
        )


def _box_ok(ann: Mapping[str, Any]) -> bool:
    """Whether an annotation has a usable ``bbox`` (4 finite numbers, positive w and h)."""
    box = ann.get("bbox")
    try:
        values = [float(v) for v in box]  # type: ignore[union-attr]
    except (TypeError, ValueError):
        return False
    return len(values) == 4 and all(map(math.isfinite, values)) and values[2] > 0 and values[3] > 0


def to_coco_results(
    keypoints: np.ndarray,
    confidence: np.ndarray,
    image_ids: Sequence[int] | np.ndarray,
    category_id: int = 1,
    scores: Sequence[float] | np.ndarray | None = None,
) -> list[dict[str, Any]]:
    """Predictions as COCO keypoint results (the list ``COCOeval`` / ``loadRes`` reads).

    Args:
        keypoints: ``(N, J, 2)`` ``(x, y)`` image px, one row per person.
        confidence: ``(N, J)`` in ``[0, 1]``, written as each keypoint's third value.
        image_ids: ``(N,)`` the COCO image id of each person.
        category_id: the keypoint category (1, "person", in COCO).
        scores: ``(N,)`` person scores (ranking for AP); default the mean joint confidence.

    Returns:
        one ``{"image_id", "category_id", "keypoints": [x, y, c, ...], "score"}`` per person.
        A non-finite joint is written as ``0, 0, 0`` (COCO results hold numbers only); a person
        with no finite joint is left out.

    Raises:
        TypeError: complex arrays. ValueError: shapes that do not match.
    """
    kp, conf = np.asarray(keypoints), np.asarray(confidence)
    for label, arr in (("keypoints", kp), ("confidence", conf)):
        if np.iscomplexobj(arr):
            raise TypeError(f"{label}: complex values are not coordinates, got {arr.dtype}")
    kp, conf = kp.astype(np.float64), conf.astype(np.float64)
    ids = np.asarray(image_ids).reshape(-1)
    if kp.ndim != 3 or kp.shape[2] != 2:
        raise ValueError(f"keypoints must be (N, J, 2), got {kp.shape}")
    if conf.shape != kp.shape[:2] or ids.shape != (kp.shape[0],):
        raise ValueError(
            f"confidence must be (N, J) = {kp.shape[:2]} and image_ids (N,), got "
            f"{conf.shape} and {ids.shape}"
        )
    finite = np.isfinite(kp).all(axis=2) & np.isfinite(conf)
    if scores is None:
        score = np.where(finite, conf, 0.0).mean(axis=1) if kp.shape[1] else np.zeros(len(kp))
    else:
        score = np.asarray(scores, dtype=np.float64).reshape(-1)
        if score.shape != (kp.shape[0],):
            raise ValueError(f"scores must be (N,) = ({kp.shape[0]},), got {score.shape}")
    results = []
    for i in range(kp.shape[0]):
        if not finite[i].any():
            continue
        triples = np.zeros((kp.shape[1], 3))
        triples[finite[i], :2] = kp[i][finite[i]]
        triples[finite[i], 2] = np.clip(conf[i][finite[i]], 0.0, 1.0)
        results.append(
            {
                "image_id": int(ids[i]),
                "category_id": int(category_id),
                "keypoints": [round(float(v), 3) for v in triples.reshape(-1)],
                "score": round(float(score[i]) if math.isfinite(score[i]) else 0.0, 5),
            }
        )
    return results


def _check_results(results: Any, gt: Mapping[str, Any], where: str) -> list[dict[str, Any]]:
    """Copies of the result dicts with only the fields COCOeval needs, checked."""
    if not isinstance(results, list):
        raise ValueError(f"{where}: results must be a JSON list of keypoint results")
    images = {im["id"] for im in gt["images"]}
    lengths = {c["id"]: 3 * len(c.get("keypoints") or []) for c in gt["categories"]}
    out = []
    for k, res in enumerate(results):
        if not isinstance(res, Mapping) or not {"image_id", "category_id", "keypoints"} <= set(res):
            raise ValueError(f"{where}: result {k} needs image_id, category_id and keypoints")
        if res["image_id"] not in images:
            raise ValueError(
                f"{where}: result {k}: image_id {res['image_id']!r} is not in the ground truth"
            )
        kps = np.asarray(res["keypoints"])
        if np.iscomplexobj(kps) or kps.dtype == object:
            raise ValueError(f"{where}: result {k}: keypoints must be real numbers")
        kps = kps.astype(np.float64)
        expected = lengths.get(res["category_id"])
        if kps.shape != (expected,):
            raise ValueError(
                f"{where}: result {k}: keypoints must hold {expected} numbers for category "
                f"{res['category_id']!r}, got {kps.shape}"
            )
        score = float(res.get("score", 1.0))
        if not np.isfinite(kps).all() or not math.isfinite(score):
            raise ValueError(f"{where}: result {k}: keypoints and score must be finite")
        out.append(
            {
                "image_id": res["image_id"],
                "category_id": res["category_id"],
                "keypoints": kps.tolist(),
                "score": score,
            }
        )
    return out


def evaluate_coco(
    gt_json: str | os.PathLike[str] | Mapping[str, Any],
    results_json_or_list: str | os.PathLike[str] | list[dict[str, Any]],
    sigmas: Sequence[float] | np.ndarray | None = None,
    *,
    image_ids: Sequence[int] | None = None,
    verbose: bool = False,
) -> dict[str, float]:
    """OKS average precision and recall with pycocotools' ``COCOeval`` (``iouType="keypoints"``).

    Args:
        gt_json: the ground-truth annotation file (or dict).
        results_json_or_list: keypoint results (file or list, see :func:`to_coco_results`).
        sigmas: ``(J,)`` per-keypoint OKS constants. Default: :data:`COCO_SIGMAS` for COCO's 17
            keypoints, :data:`LSP_SIGMAS` for LSP's 14; other sets must pass them.
        image_ids: evaluate these images only (default: every image of the ground truth).
        verbose: print pycocotools' summary table.

    Returns:
        ``{"AP": ..., "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl"}`` in
        ``[0, 1]`` (:data:`STAT_NAMES`, ``COCOeval.stats`` in order); ``-1`` where the ground
        truth has no person in that area range (pycocotools' convention). Results for no person
        at all give AP 0.

    Raises:
        ValueError: sigmas missing or of the wrong length, results that do not fit the ground
            truth (unknown image, wrong keypoint count, non-finite values).
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt_where = str(gt_json) if isinstance(gt_json, (str, os.PathLike)) else "ground truth"
    res_where = (
        str(results_json_or_list)
        if isinstance(results_json_or_list, (str, os.PathLike))
        else "results"
    )
    data = read_coco(gt_json)
    category = _keypoint_category(data, None, gt_where)
    names = tuple(category["keypoints"])
    if sigmas is None:
        if names == COCO_KEYPOINT_NAMES or len(names) == 17:
            sigmas = COCO_SIGMAS
        elif names == LSP_JOINTS.names:
            sigmas = LSP_SIGMAS
        else:
            raise ValueError(
                f"{gt_where}: pass sigmas: {len(names)} keypoints are neither COCO's 17 nor LSP's 14"
            )
    sig = np.asarray(sigmas, dtype=np.float64).reshape(-1)
    if sig.shape != (len(names),) or not (np.isfinite(sig).all() and (sig > 0).all()):
        raise ValueError(
            f"sigmas must be {len(names)} positive numbers, got {np.asarray(sigmas).shape}"
        )
    results = _check_results(_load_json(results_json_or_list, "results file"), data, res_where)
    annotations = []
    for ann in data["annotations"]:
        if ann.get("category_id") != category["id"]:
            annotations.append(ann)
            continue
        absent = [k for k in ("id", "area", "bbox", "keypoints") if k not in ann]
        if absent:
            raise ValueError(
                f"{gt_where}: annotation {ann.get('id')!r} of image {ann.get('image_id')!r} "
                f"lacks {absent} (needed for OKS)"
            )
        if "num_keypoints" not in ann:  # COCOeval ignores people without labelled keypoints
            ann = {**ann, "num_keypoints": sum(1 for v in ann["keypoints"][2::3] if v > 0)}
        annotations.append({"iscrowd": 0, **ann})
    data = {**data, "annotations": annotations}

    quiet = contextlib.nullcontext() if verbose else contextlib.redirect_stdout(io.StringIO())
    with quiet:
        gt = COCO()
        gt.dataset = {k: v for k, v in data.items()}
        gt.createIndex()
        if results:
            dt = gt.loadRes(results)
        else:
            dt = COCO()
            dt.dataset = {
                "images": data["images"],
                "categories": data["categories"],
                "annotations": [],
            }
            dt.createIndex()
        evaluator = COCOeval(gt, dt, iouType="keypoints")
        evaluator.params.kpt_oks_sigmas = sig
        if image_ids is not None:
            evaluator.params.imgIds = sorted(int(i) for i in image_ids)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return {name: float(v) for name, v in zip(STAT_NAMES, evaluator.stats)}


def _image_size(path: Path) -> tuple[int, int]:
    """``(width, height)`` from the image file's header (PIL, nothing decoded)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            width, height = image.size
            return int(width), int(height)
    except FileNotFoundError:
        raise FileNotFoundError(f"image not found: {path}") from None
    except OSError as err:
        raise OSError(f"cannot read image header: {path} ({err})") from None


def lsp_to_coco(
    lsp_root: str | os.PathLike[str],
    split: str = "test",
    out_json: str | os.PathLike[str] | None = None,
    *,
    extended: bool = False,
) -> dict[str, Any]:
    """Export LSP (or LSP-extended) ``joints.mat`` as a COCO keypoints file.

    Each image is one person: image ``id`` = the LSP image number (``im1001.jpg`` -> 1001),
    ``file_name`` relative to ``lsp_root / "images"``, ``width``/``height`` from the file.
    Keypoints are LSP's joints in dsntpose px (0-based; 1 subtracted from the file's values),
    ``v`` = 2 visible, 1 occluded, 0 missing (written as ``0, 0, 0``). ``bbox`` is the labelled
    joints' box ``[x0, y0, x1 - x0 + 1, y1 - y0 + 1]`` (predict's box convention: it covers the
    pixels of the extreme joints), ``area`` its ``w * h`` (LSP has no segmentation; the OKS
    scale is then the joint box's area), ``iscrowd`` 0; one category ``person`` (id 1) with
    LSP's names and skeleton.

    Args:
        lsp_root: folder with ``joints.mat`` and ``images/``.
        split: ``"train"`` (1-1000), ``"test"`` (1001-2000) or ``"all"`` (LSP-extended: all).
        out_json: write the file here too (parent folders are created).
        extended: LSP-extended layout (``im%05d.jpg``, flag 1 = visible).

    Returns:
        the COCO dict.
    """
    root = Path(lsp_root)
    joints, missing, visible = read_lsp_joints(root / "joints.mat", extended)
    num = len(joints)
    ranges = {"train": range(min(1000, num)), "test": range(1000, num), "all": range(num)}
    if split not in ranges or (extended and split == "test"):
        raise ValueError(
            f"split must be 'train', 'test' or 'all' (no 'test' for LSP-extended), got {split!r}"
        )
    if not extended and split != "all" and num != 2000:
        raise ValueError(f"{root / 'joints.mat'}: has {num} people; the standard split needs 2000")
    rows = range(num) if extended else ranges[split]
    pattern = "im{:05d}.jpg" if extended else "im{:04d}.jpg"
    images, annotations = [], []
    for row in rows:
        file_name = pattern.format(row + 1)
        width, height = _image_size(root / "images" / file_name)
        images.append({"id": row + 1, "file_name": file_name, "width": width, "height": height})
        keep = ~missing[row]
        kps = np.zeros((len(joints[row]), 3))
        kps[keep, :2] = joints[row][keep]
        kps[keep, 2] = np.where(visible[row][keep], 2, 1)
        ann: dict[str, Any] = {
            "id": row + 1,
            "image_id": row + 1,
            "category_id": 1,
            "iscrowd": 0,
            "num_keypoints": int(keep.sum()),
            "keypoints": [round(float(v), 4) for v in kps.reshape(-1)],
        }
        if keep.any():
            low, high = joints[row][keep].min(axis=0), joints[row][keep].max(axis=0)
            w, h = float(high[0] - low[0] + 1), float(high[1] - low[1] + 1)
            ann["bbox"] = [
                round(float(low[0]), 4),
                round(float(low[1]), 4),
                round(w, 4),
                round(h, 4),
            ]
            ann["area"] = round(w * h, 4)
        else:
            ann["bbox"], ann["area"] = [0.0, 0.0, 0.0, 0.0], 0.0
        annotations.append(ann)
    data = {
        "info": {
            "description": f"LSP{'-extended' if extended else ''} {split} in COCO keypoints form (dsntpose)"
        },
        "images": images,
        "annotations": annotations,
        "categories": [coco_category(LSP_JOINTS)],
    }
    if out_json is not None:
        out = Path(out_json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(data))
    return data
