"""Keypoints on your own image files: a thin, batch-of-files layer over :class:`Predictor`.

The geometry (crop around each person box, model with flip test, back to image pixels) is
:class:`dsntpose.predictor.Predictor`'s; this module adds what a run over files needs: image
lists, boxes files, per-image error collection, drawings and result files.

Boxes are ``(x, y, w, h)`` in image pixels: the box covers pixel columns ``x .. x + w - 1`` and
rows ``y .. y + h - 1`` (its outer edges are ``x - 0.5`` and ``x + w - 0.5``), so the whole image
is ``(0, 0, W, H)``; this is also COCO's ``[x, y, w, h]``. The crop is the square of side
``margin * max(w, h)`` (default margin 1.25, as for MPII's person scale) centred on the box;
without boxes the whole image is taken as **one** person and the crop is the square that just
contains it (a warning says so: on a picture of several people that is one mean pose).

``boxes`` may be, besides one box for every image:

* a boxes map, JSON ``{image file name (or path as given): [[x, y, w, h], ...]}``::

      {"im0001.jpg": [[20, 15, 80, 160]], "group.png": [[0, 0, 120, 300], [140, 10, 90, 280]]}

  (a single box ``[x, y, w, h]`` may stand in for a one-box list);
* COCO detection results, a JSON list of ``{"image_id", "category_id", "bbox": [x, y, w, h],
  "score"}`` (what a person detector writes): the boxes of ``category_id`` (``det_category``,
  default 1 = person) with ``score >= det_threshold`` are used;
* a COCO annotation file (``images`` + ``annotations``): its non-crowd person boxes.

COCO image ids are matched to files through ``coco_images`` (a COCO file with an ``images``
list of ``id``/``file_name``; an annotation file given as ``boxes`` serves itself), else through
the file stem when it is an integer (``000000397133.jpg`` -> 397133). An image without
detections has nobody to predict (not an error).

Errors that concern one image (missing, unreadable, truncated or corrupt, larger than
``max_pixels``, a box outside it, no boxes listed for it) are collected: the other images are
still predicted and :class:`PredictResult` lists the bad ones at the end (each is also
logged). A person with non-finite model outputs is kept with those values as ``null`` and
reported in ``errors`` too. Errors that concern the whole run (a checkpoint for another joint
set, a bad boxes file, no images) raise at once with a one-line message.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import cv2
import numpy as np
import torch
from torch import nn

from dsntpose.config import ModelConfig
from dsntpose.data.joints import JointSet
from dsntpose.predictor import (
    MAX_IMAGE_PIXELS,
    Person,
    Predictor,
    box_values,
    check_box,
    load_image,
)

__all__ = [
    "IMAGE_SUFFIXES",
    "PredictResult",
    "coco_results",
    "draw_people",
    "list_images",
    "predict",
    "read_boxes",
    "read_detections",
    "read_image_ids",
]

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
Box = tuple[float, float, float, float]
BoxesArg = Box | Sequence[Any] | str | os.PathLike[str] | Mapping[str, Any] | None
WHOLE_IMAGE_WARNING = (
    "no person boxes given: the model finds one person per image (on a picture of several "
    "people pass boxes or a detections file)"
)


class PredictResult(NamedTuple):
    """What :func:`predict` returns.

    Attributes:
        people: one dict per person box, in image order then box order::

            {"image": "path/im.jpg", "image_id": 1001, "person": 0, "box": [x, y, w, h],
             "score": 0.71,
             "keypoints": [{"name": "r_ankle", "x": 101.3, "y": 240.8, "confidence": 0.82}, ...]}

            ``x``/``y`` in original image pixels (0-based, integers at pixel centres),
            ``confidence`` in ``[0, 1]``, ``score`` the mean joint confidence; ``image_id`` the
            COCO image id when one is known (else None). Non-finite values are ``None``.
        errors: one ``{"image": path, "error": one-line message}`` per image that failed, and
            per person whose outputs were not finite.
    """

    people: list[dict[str, Any]]
    errors: list[dict[str, str]]

    def to_json(self, indent: int | None = 2) -> str:
        """``{"people": ..., "errors": ...}`` as strict JSON (never ``NaN``: those are null)."""
        return json.dumps(
            {"people": _json_safe(self.people), "errors": self.errors},
            indent=indent,
            allow_nan=False,
        )


def _json_safe(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None (recursively)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def list_images(images: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Image paths from a file, a folder (its image files, sorted by name) or a list of both.

    Paths that do not exist are kept (they are reported per image later); a folder without
    image files is an error.
    """
    items = [images] if isinstance(images, (str, os.PathLike)) else list(images)
    paths: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise FileNotFoundError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) in {path}")
            paths.extend(found)
        else:
            paths.append(path)
    if not paths:
        raise ValueError("no images given")
    return paths


def _load_json(source: str | os.PathLike[str], what: str) -> Any:
    where = str(source)
    try:
        return json.loads(Path(source).read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} {where} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{where}: not JSON ({err})") from None


def read_boxes(source: str | os.PathLike[str] | Mapping[str, Any]) -> dict[str, list[Box]]:
    """Read a boxes map (see the module docstring) or check a dict of the same form.

    Returns:
        image name (or path) -> list of ``(x, y, w, h)`` boxes in image pixels.
    """
    where = "boxes"
    if not isinstance(source, Mapping):
        where = str(source)
        source = _load_json(source, "boxes file")
    if not isinstance(source, Mapping):
        raise ValueError(f"{where}: expected a JSON object {{image_name: [[x, y, w, h], ...]}}")
    boxes: dict[str, list[Box]] = {}
    for name, value in source.items():
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{where}: {name}: expected [[x, y, w, h], ...], got {value!r}")
        nested = all(isinstance(v, (list, tuple)) for v in value)
        items = value if nested else [value]  # [] is an image with nobody to predict
        boxes[str(name)] = [box_values(v, f"{where}: {name}") for v in items]
    return boxes


def read_detections(
    source: str | os.PathLike[str] | Sequence[Mapping[str, Any]],
    score_threshold: float = 0.5,
    category_id: int | None = 1,
) -> dict[int, list[Box]]:
    """Person boxes from COCO detection results.

    Args:
        source: a JSON file or list of ``{"image_id", "category_id", "bbox": [x, y, w, h],
            "score"}`` (``bbox`` image px, predict's box convention).
        score_threshold: keep detections with ``score >= score_threshold`` (a detection
            without ``score`` counts as 1).
        category_id: keep this category only (None: every category).

    Returns:
        image id -> boxes, highest score first.

    Raises:
        ValueError: not a list of detections (the message names the file and the entry).
    """
    where = "detections"
    if isinstance(source, (str, os.PathLike)):
        where = str(source)
        source = _load_json(source, "detections file")
    if not isinstance(source, list):
        raise ValueError(f"{where}: expected a JSON list of {{image_id, category_id, bbox, score}}")
    kept: dict[int, list[tuple[float, Box]]] = {}
    for k, det in enumerate(source):
        if not isinstance(det, Mapping) or "image_id" not in det or "bbox" not in det:
            raise ValueError(f"{where}: detection {k} needs 'image_id' and 'bbox'")
        try:
            score = float(det.get("score", 1.0))
            image_id = int(det["image_id"])
        except (TypeError, ValueError):
            raise ValueError(
                f"{where}: detection {k}: image_id and score must be numbers"
            ) from None
        if category_id is not None and det.get("category_id", category_id) != category_id:
            continue
        if not score >= score_threshold:
            continue
        box = box_values(det["bbox"], f"{where}: detection {k}")
        kept.setdefault(image_id, []).append((score, box))
    return {i: [b for _, b in sorted(v, key=lambda sb: -sb[0])] for i, v in kept.items()}


def read_image_ids(
    source: str | os.PathLike[str] | Mapping[str, Any] | Sequence[Any],
) -> dict[str, int]:
    """``file_name -> image id`` from a COCO file's ``images`` list (or the list itself)."""
    where = "images"
    if isinstance(source, (str, os.PathLike)):
        where = str(source)
        source = _load_json(source, "COCO images file")
    images = source.get("images") if isinstance(source, Mapping) else source
    if not isinstance(images, list):
        raise ValueError(f"{where}: expected a COCO file with an 'images' list")
    ids: dict[str, int] = {}
    for k, image in enumerate(images):
        if not isinstance(image, Mapping) or "id" not in image or "file_name" not in image:
            raise ValueError(f"{where}: images[{k}] needs 'id' and 'file_name'")
        ids[str(image["file_name"]).replace("\\", "/")] = int(image["id"])
    return ids


class _Boxes:
    """Resolves the boxes and COCO image id of each image file."""

    def __init__(
        self,
        boxes: BoxesArg,
        det_threshold: float,
        det_category: int | None,
        coco_images: str | os.PathLike[str] | Mapping[str, Any] | None,
    ) -> None:
        self.single: Box | None = None
        self.by_name: dict[str, list[Box]] | None = None
        self.by_id: dict[int, list[Box]] | None = None
        self.source = "boxes"
        ids = read_image_ids(coco_images) if coco_images is not None else None
        data: Any = boxes
        if isinstance(boxes, (str, os.PathLike)):
            self.source = str(boxes)
            data = _load_json(boxes, "boxes file")
        if data is None:
            pass
        elif (
            isinstance(data, Mapping)
            and isinstance(data.get("annotations"), list)
            and isinstance(data.get("images"), list)
        ):
            detections = [
                {**a, "score": 1.0}
                for a in data["annotations"]
                if not a.get("iscrowd", 0) and "bbox" in a
            ]
            self.by_id = read_detections(detections, -math.inf, det_category)
            if ids is None:
                ids = read_image_ids(data)
        elif isinstance(data, Mapping):
            self.by_name = read_boxes(data)
        elif isinstance(data, list) and data and all(isinstance(d, Mapping) for d in data):
            self.by_id = read_detections(data, det_threshold, det_category)
        elif isinstance(data, list) and not data and self.source != "boxes":
            self.by_id = {}  # an empty detections file: nobody anywhere
        else:
            self.single = box_values(data, "box")
        self.ids = ids
        self.by_base: dict[str, int] = {}
        if ids:
            counts: dict[str, int] = {}
            for name in ids:
                base = name.rsplit("/", 1)[-1]
                counts[base] = counts.get(base, 0) + 1
            self.by_base = {
                n.rsplit("/", 1)[-1]: i for n, i in ids.items() if counts[n.rsplit("/", 1)[-1]] == 1
            }

    @property
    def whole_image(self) -> bool:
        return self.single is None and self.by_name is None and self.by_id is None

    def image_id(self, path: Path) -> int | None:
        """The COCO id of an image file: from ``coco_images`` or an integer file stem."""
        if self.ids:
            posix = path.as_posix()
            for key in (posix, path.name):
                if key in self.ids:
                    return self.ids[key]
            if path.name in self.by_base:
                return self.by_base[path.name]
            for name, image_id in self.ids.items():
                if posix.endswith("/" + name):
                    return image_id
        return int(path.stem) if path.stem.isdigit() else None

    def for_image(self, path: Path, width: int, height: int) -> list[Box] | None:
        """The boxes of one image (None: the whole image), checked against its size."""
        if self.whole_image:
            return None
        if self.single is not None:
            chosen = [self.single]
        elif self.by_name is not None:
            found = self.by_name.get(str(path), self.by_name.get(path.name))
            if found is None:
                raise ValueError(f"no boxes for {path.name} in {self.source}")
            chosen = found
        else:
            assert self.by_id is not None
            image_id = self.image_id(path)
            if image_id is None:
                raise ValueError(
                    f"no COCO image id for {path.name}: pass coco_images (a COCO images file) "
                    "or name the files by their integer id"
                )
            chosen = self.by_id.get(image_id, [])
        return [check_box(b, width, height) for b in chosen]


def _make_predictor(
    checkpoint_or_model: str | os.PathLike[str] | nn.Module | Predictor | Any | None,
    onnx: str | os.PathLike[str] | None,
    config: ModelConfig | None,
    joints: str | None,
    device: str | torch.device | None,
    **kwargs: Any,
) -> Predictor:
    """A :class:`Predictor` from any of the forms :func:`predict` takes."""
    from dsntpose.export import OnnxModel, load_model

    if onnx is not None and checkpoint_or_model is not None:
        raise ValueError("give a checkpoint (or model) or an ONNX file, not both")
    if isinstance(checkpoint_or_model, Predictor):
        return checkpoint_or_model
    if onnx is not None:
        return Predictor.from_onnx(onnx, config, joints=joints, **kwargs)
    if checkpoint_or_model is None:
        raise ValueError("give a checkpoint, a model or an ONNX file")
    if isinstance(checkpoint_or_model, OnnxModel):
        cfg = checkpoint_or_model.config or config
        if cfg is None:
            raise ValueError(
                f"{checkpoint_or_model.path}: no dsntpose config in its metadata: pass config="
            )
        if joints is not None and joints != cfg.joints:
            raise ValueError(
                f"{checkpoint_or_model.path}: the model is for joint set {cfg.joints!r}, not {joints!r}"
            )
        return Predictor(checkpoint_or_model, cfg, **kwargs)
    if isinstance(checkpoint_or_model, (str, os.PathLike)):
        if Path(checkpoint_or_model).suffix.lower() == ".onnx":
            return Predictor.from_onnx(checkpoint_or_model, config, joints=joints, **kwargs)
        return Predictor.from_checkpoint(
            checkpoint_or_model, device or "cpu", joints=joints, **kwargs
        )
    model, cfg = load_model(checkpoint_or_model, config, joints=joints)
    return Predictor(model, cfg, **kwargs)  # a model object stays on its device


# --------------------------------------------------------------------------------------------
# Drawing
# --------------------------------------------------------------------------------------------

_LEGEND_ROW = 18  # px per legend line


def draw_people(
    image: np.ndarray,
    people: Sequence[Person | Mapping[str, Any]],
    joint_set: JointSet,
    min_side: int = 512,
    legend: bool = True,
) -> np.ndarray:
    """The image with every person's box (thin white), skeleton and joint numbers drawn.

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
        people: :class:`Person` objects or :func:`predict`'s person dicts (keypoints in
            ``image``'s px; ``None`` coordinates are skipped).
        joint_set: the skeleton and names.
        min_side: an image whose longer side is shorter is upscaled (cubic) to this size first,
            so the skeleton of a 100 px LSP image is visible; keypoints are scaled with it
            (pixel centres: ``x' = (x + 0.5) * s - 0.5``).
        legend: number each joint and add a panel on the right listing ``number name`` in the
            joint's colour.

    Returns:
        a new ``(H', W', 3)`` uint8 RGB image (``H' >= H * s``; wider by the legend panel).
    """
    from dsntpose.viz import default_sizes, draw_skeleton, joint_colors

    height, width = image.shape[:2]
    scale = max(1.0, min_side / max(height, width)) if min_side else 1.0
    out_w, out_h = round(width * scale), round(height * scale)
    out: np.ndarray = (
        cv2.resize(image, (out_w, out_h), interpolation=cv2.INTER_CUBIC)
        if scale > 1.0
        else image.copy()
    )
    sx, sy = out_w / width, out_h / height
    _, thickness = default_sizes(out_h, out_w)
    colors = joint_colors(joint_set)
    font, font_scale = cv2.FONT_HERSHEY_SIMPLEX, max(0.35, min(out_h, out_w) / 1400)
    for person in people:
        if isinstance(person, Person):
            box, xy, conf = person.box, person.keypoints, person.confidence
        else:
            box = person["box"]
            xy = np.array(
                [[np.nan if k["x"] is None else k["x"], np.nan if k["y"] is None else k["y"]]
                 for k in person["keypoints"]],
                dtype=np.float64,
            )  # fmt: skip
            conf = np.array(
                [
                    np.nan if k["confidence"] is None else k["confidence"]
                    for k in person["keypoints"]
                ]
            )
        x, y, w, h = (float(v) if v is not None else math.nan for v in box)
        if all(map(math.isfinite, (x, y, w, h))):
            cv2.rectangle(
                out,
                (round(x * sx), round(y * sy)),
                (round((x + w) * sx - 1), round((y + h) * sy - 1)),
                (255, 255, 255),
                max(1, thickness // 2),
            )
        scaled = np.stack([(xy[:, 0] + 0.5) * sx - 0.5, (xy[:, 1] + 0.5) * sy - 0.5], axis=1)
        out = draw_skeleton(out, scaled, joint_set, confidence=np.nan_to_num(conf))
        if legend:
            radius = default_sizes(out_h, out_w)[0]
            for j, (px, py) in enumerate(scaled):
                if np.isfinite(px) and np.isfinite(py):
                    org = (round(px + radius + 1), round(py - radius - 1))
                    cv2.putText(out, str(j), org, font, font_scale, (0, 0, 0), 3, cv2.LINE_AA)
                    cv2.putText(out, str(j), org, font, font_scale, colors[j], 1, cv2.LINE_AA)
    if not legend:
        return out
    rows = joint_set.num_joints
    panel_h = max(out_h, 10 + rows * _LEGEND_ROW)
    panel = np.zeros((panel_h, 170, 3), np.uint8)
    for j, name in enumerate(joint_set.names):
        cy = 10 + j * _LEGEND_ROW + _LEGEND_ROW // 2
        cv2.circle(panel, (14, cy), 5, colors[j], -1, cv2.LINE_AA)
        cv2.putText(panel, f"{j} {name}", (26, cy + 5), font, 0.45, colors[j], 1, cv2.LINE_AA)
    canvas = np.zeros((panel_h, out_w + panel.shape[1], 3), np.uint8)
    canvas[:out_h, :out_w] = out
    canvas[:, out_w:] = panel
    return canvas


def _drawing_name(path: Path, used: set[str]) -> str:
    """``<stem>_pose.png``, or ``<stem>_<n>_pose.png`` if an earlier image took that name."""
    name, n = f"{path.stem}_pose.png", 1
    while name in used:
        n += 1
        name = f"{path.stem}_{n}_pose.png"
    used.add(name)
    return name


# --------------------------------------------------------------------------------------------
# COCO results
# --------------------------------------------------------------------------------------------


def coco_results(people: Sequence[Mapping[str, Any]], category_id: int = 1) -> list[dict[str, Any]]:
    """:func:`predict`'s people as COCO keypoint results.

    See :func:`dsntpose.data.coco.to_coco_results` (a non-finite joint is written ``0, 0, 0``).
    ``image_id`` is the person's COCO image id; for an image without one it is the image's
    0-based order among the images in ``people``, and ``file_name`` is added to the row.
    """
    from dsntpose.data.coco import to_coco_results

    order: dict[str, int] = {}
    results = []
    for person in people:
        index = order.setdefault(person["image"], len(order))
        image_id = person.get("image_id")
        xy = np.array(
            [[math.nan if k[c] is None else k[c] for c in ("x", "y")] for k in person["keypoints"]],
            dtype=np.float64,
        )
        conf = np.array(
            [math.nan if k["confidence"] is None else k["confidence"] for k in person["keypoints"]],
            dtype=np.float64,
        )
        rows = to_coco_results(
            xy[None], conf[None], [index if image_id is None else image_id], category_id
        )
        for row in rows:
            if image_id is None:
                row["file_name"] = Path(person["image"]).name
            results.append(row)
    return results


# --------------------------------------------------------------------------------------------
# predict
# --------------------------------------------------------------------------------------------


def predict(
    checkpoint_or_model: str | os.PathLike[str] | nn.Module | Predictor | Any | None,
    images: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    boxes: BoxesArg = None,
    *,
    flip: bool = True,
    draw_dir: str | os.PathLike[str] | None = None,
    onnx: str | os.PathLike[str] | None = None,
    batch_size: int = 8,
    joints: str | None = None,
    config: ModelConfig | None = None,
    margin: float = 1.25,
    device: str | torch.device | None = None,
    strict: bool = False,
    det_threshold: float = 0.5,
    det_category: int | None = 1,
    coco_images: str | os.PathLike[str] | Mapping[str, Any] | None = None,
    coco_output: str | os.PathLike[str] | None = None,
    output: str | os.PathLike[str] | None = None,
    max_pixels: int = MAX_IMAGE_PIXELS,
    draw_min_side: int = 512,
) -> PredictResult:
    """Predict keypoints for every person box in every image.

    Args:
        checkpoint_or_model: a checkpoint path (``.onnx`` runs on onnxruntime), a torch model
            (with ``config``), an :class:`~dsntpose.export.OnnxModel`, a ready
            :class:`~dsntpose.predictor.Predictor`, or ``None`` when ``onnx`` is given.
        images: an image file, a folder of images, or a list of files and folders.
        boxes: ``None`` (the whole image is one person; a warning is logged), one
            ``(x, y, w, h)`` box for every image, a boxes map (file or dict), COCO detection
            results (file or list) or a COCO annotation file (see the module docstring).
        flip: average with the mirrored crop (:func:`dsntpose.evaluate.flip_test`).
        draw_dir: if given, write ``<image stem>_pose.png`` there (``<stem>_2_pose.png`` for
            a later image of the same stem): boxes, skeletons, joint numbers and a legend;
            images under ``draw_min_side`` px are upscaled first.
        onnx: an exported ``.onnx`` file to run on onnxruntime instead of a torch model.
        batch_size: crops per forward pass (people from several images share a batch).
        joints: the joint set the caller expects (``"mpii"``/``"lsp"``); a model for another
            set is an error.
        config: the ``ModelConfig`` of a bare torch model (a checkpoint or ONNX file carries
            its own).
        margin: crop side as a multiple of the box's longer side (given boxes only).
        device: device to load a checkpoint onto (default CPU); a model object stays where it is.
        strict: raise at the first bad image instead of collecting it.
        det_threshold: minimum ``score`` of a COCO detection to use its box.
        det_category: the detections' person category id (None: all categories).
        coco_images: COCO file whose ``images`` map file names to image ids.
        coco_output: write the people as COCO keypoint results (:func:`coco_results`) here.
        output: write :meth:`PredictResult.to_json` here.
        max_pixels: refuse images with more pixels (checked on the file header).
        draw_min_side: see ``draw_dir``.

    Returns:
        :class:`PredictResult` ``(people, errors)``; ``people[i]["keypoints"]`` hold ``x``,
        ``y`` in original image pixels and ``confidence`` per joint.
    """
    predictor = _make_predictor(
        checkpoint_or_model,
        onnx,
        config,
        joints,
        device,
        flip=flip,
        margin=margin,
        batch_size=batch_size,
        max_pixels=max_pixels,
    )
    joint_set = predictor.joint_set
    paths = list_images(images)
    spec = _Boxes(boxes, det_threshold, det_category, coco_images)
    if spec.whole_image:
        log.warning(WHOLE_IMAGE_WARNING)
    out_dir = Path(draw_dir) if draw_dir is not None else None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    drawing_names: set[str] = set()

    people: list[dict[str, Any]] = []
    errors: list[dict[str, str]] = []
    pending: list[tuple[int, np.ndarray, list[Box] | None]] = []
    pending_crops = 0
    failed = 0

    def flush() -> None:
        """Run the predictor on the pending images and turn its people into dicts."""
        nonlocal pending_crops
        if not pending:
            return
        found = predictor.predict_batch(
            [image for _, image, _ in pending], [b for _, _, b in pending], rgb=True
        )
        for (index, image, _), persons in zip(pending, found):
            path = paths[index]
            image_id = spec.image_id(path)
            entries = []
            for k, person in enumerate(persons):
                entry = {"image": str(path), "image_id": image_id, "person": k, **person.to_dict()}
                entries.append(entry)
                if not person.finite:
                    bad = int(
                        (
                            ~(np.isfinite(person.keypoints).all(1) & np.isfinite(person.confidence))
                        ).sum()
                    )
                    message = (
                        f"{path}: person {k}: {bad} of {joint_set.num_joints} joints are not "
                        "finite (written as null)"
                    )
                    log.warning(message)
                    errors.append({"image": str(path), "error": message})
            people.extend(entries)
            if out_dir is not None:
                from dsntpose.viz import save_image

                drawn = draw_people(image, persons, joint_set, min_side=draw_min_side)
                save_image(drawn, out_dir / _drawing_name(path, drawing_names))
        pending.clear()
        pending_crops = 0

    for index, path in enumerate(paths):
        try:
            image = load_image(path, max_pixels)
            chosen = spec.for_image(path, image.shape[1], image.shape[0])
        except (OSError, ValueError) as err:
            message = str(err).splitlines()[0] if str(err) else type(err).__name__
            if path.name not in message and str(path) not in message:
                message = f"{path}: {message}"
            if strict:
                raise type(err)(message) from err
            log.warning("skipping %s", message)
            errors.append({"image": str(path), "error": message})
            failed += 1
            continue
        pending.append((index, image, chosen))
        pending_crops += 1 if chosen is None else len(chosen)
        if pending_crops >= batch_size:
            flush()
    flush()
    if failed:  # each one was named as it was skipped
        log.warning("%d of %d images failed", failed, len(paths))
    result = PredictResult(people, errors)
    if output is not None:
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        Path(output).write_text(result.to_json() + "\n")
    if coco_output is not None:
        Path(coco_output).parent.mkdir(parents=True, exist_ok=True)
        Path(coco_output).write_text(json.dumps(coco_results(people), allow_nan=False) + "\n")
    return result
