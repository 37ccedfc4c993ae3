"""Keypoints on your own images: crop each person, run the model (with flip test), map back.

For every person box the square crop around the box centre is cut with one affine warp
(:mod:`dsntpose.data.transforms`, the same geometry as training), the model predicts normalised
crop coordinates (averaged with the mirrored crop by :func:`dsntpose.evaluate.flip_test`), and
:func:`dsntpose.evaluate.back_project` maps them through the inverse affine into the original
image's pixels: 0-based, integers at pixel centres, ``(x, y)``.

Boxes are ``(x, y, w, h)`` in image pixels: the box covers pixel columns ``x .. x + w - 1`` and
rows ``y .. y + h - 1`` (its outer edges are ``x - 0.5`` and ``x + w - 0.5``), so the whole image
is ``(0, 0, W, H)``; this is also COCO's ``[x, y, w, h]``. The crop is the square of side
``margin * max(w, h)`` (default margin 1.25, as for MPII's person scale) centred on the box;
without boxes the whole image is the box and the crop is the square that just contains it.

A boxes file is JSON mapping an image's file name (or its path as given) to a list of boxes::

    {"im0001.jpg": [[20, 15, 80, 160]], "group.png": [[0, 0, 120, 300], [140, 10, 90, 280]]}

A single box ``[x, y, w, h]`` may stand in for a one-box list.

Errors that concern one image (unreadable, a box outside the image, no boxes listed for it)
are collected: the other images are still predicted and :class:`PredictResult` lists the bad
ones at the end (each is also logged). Errors that concern the whole run (a checkpoint for
another joint set, a bad boxes file, no images) raise at once with a one-line message.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import cv2
import numpy as np
import torch
from torch import Tensor, nn

from dsntpose import ops
from dsntpose.config import ModelConfig
from dsntpose.data.common import read_image
from dsntpose.data.joints import JointSet, get_joint_set
from dsntpose.data.transforms import crop_matrix, invert_affine, warp_image
from dsntpose.evaluate import back_project, default_flip_mode, flip_test
from dsntpose.export import OnnxModel, load_model
from dsntpose.heads import HeadOutput

__all__ = ["IMAGE_SUFFIXES", "PredictResult", "list_images", "predict", "read_boxes"]

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
Box = tuple[float, float, float, float]
BoxesArg = Box | Sequence[float] | str | os.PathLike[str] | Mapping[str, Any] | None


class PredictResult(NamedTuple):
    """What :func:`predict` returns.

    Attributes:
        people: one dict per person box, in image order then box order::

            {"image": "path/im.jpg", "person": 0, "box": [x, y, w, h], "score": 0.71,
             "keypoints": [{"name": "r_ankle", "x": 101.3, "y": 240.8, "confidence": 0.82}, ...]}

            ``x``/``y`` in original image pixels (0-based, integers at pixel centres),
            ``confidence`` in ``[0, 1]``, ``score`` the mean joint confidence.
        errors: one ``{"image": path, "error": one-line message}`` per image that failed.
    """

    people: list[dict[str, Any]]
    errors: list[dict[str, str]]


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


def _as_box(value: Any, where: str) -> Box:
    """``(x, y, w, h)`` floats from a 4-sequence, or a one-line ``ValueError``."""
    try:
        box = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: a box must be 4 numbers [x, y, w, h], got {value!r}") from None
    if len(box) != 4 or not np.isfinite(box).all():
        raise ValueError(f"{where}: a box must be 4 finite numbers [x, y, w, h], got {value!r}")
    if box[2] <= 0 or box[3] <= 0:
        raise ValueError(f"{where}: box width and height must be > 0, got {value!r}")
    return box[0], box[1], box[2], box[3]


def read_boxes(source: str | os.PathLike[str] | Mapping[str, Any]) -> dict[str, list[Box]]:
    """Read a boxes file (see the module docstring) or check a dict of the same form.

    Returns:
        image name (or path) -> list of ``(x, y, w, h)`` boxes in image pixels.
    """
    where = "boxes"
    if not isinstance(source, Mapping):
        where = str(source)
        try:
            source = json.loads(Path(source).read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"boxes file {where} does not exist") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"{where}: not JSON ({err})") from None
    if not isinstance(source, Mapping):
        raise ValueError(f"{where}: expected a JSON object {{image_name: [[x, y, w, h], ...]}}")
    boxes: dict[str, list[Box]] = {}
    for name, value in source.items():
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{where}: {name}: expected [[x, y, w, h], ...], got {value!r}")
        nested = all(isinstance(v, (list, tuple)) for v in value)
        items = value if nested else [value]  # [] is an image with nobody to predict
        boxes[str(name)] = [_as_box(v, f"{where}: {name}") for v in items]
    return boxes


def _boxes_for(
    path: Path, boxes: Box | dict[str, list[Box]] | None, size: tuple[int, int], source: str
) -> list[Box]:
    """The boxes to predict in one image (``size`` is its ``(H, W)``)."""
    height, width = size
    if boxes is None:
        return [(0.0, 0.0, float(width), float(height))]
    chosen: list[Box] | None
    if isinstance(boxes, tuple):
        chosen = [boxes]
    else:
        chosen = boxes.get(str(path), boxes.get(path.name))
        if chosen is None:
            raise ValueError(f"no boxes for {path.name} in {source}")
    for x, y, w, h in chosen:
        # overlap of the box's pixel span with the image's [-0.5, W - 0.5] x [-0.5, H - 0.5]
        if x >= width or y >= height or x + w <= 0 or y + h <= 0:
            raise ValueError(
                f"box [{x:g}, {y:g}, {w:g}, {h:g}] lies outside the {width}x{height} image"
            )
    return chosen


@dataclass
class _Person:
    """One crop waiting for the model."""

    image_index: int
    box: Box
    crop: np.ndarray  # (S, S, 3) uint8 RGB
    inverse: np.ndarray  # (2, 3) crop px -> image px


def _decode_for(cfg: ModelConfig) -> Callable[[Tensor], tuple[Tensor, Tensor]]:
    """Logits -> (coords, confidence) with the configured activation (for the flip test)."""

    def decode(logits: Tensor) -> tuple[Tensor, Tensor]:
        probs = ops.normalize_heatmaps(logits, cfg.activation, temperature=cfg.temperature)
        return ops.dsnt(probs), ops.heatmap_confidence(probs)

    return decode


def _run(
    model: Callable[[Tensor], HeadOutput],
    images: Tensor,
    cfg: ModelConfig,
    joint_set: JointSet,
    flip: bool,
) -> tuple[Tensor, Tensor]:
    """``(B, 3, S, S)`` crops -> coords ``(B, J, 2)`` normalised and confidence ``(B, J)``."""
    with torch.no_grad():
        if not flip:
            out = model(images)
            if out.coords.shape[1] != joint_set.num_joints:
                raise ValueError(
                    f"the model predicts {out.coords.shape[1]} joints, joint set "
                    f"{joint_set.name} has {joint_set.num_joints}"
                )
            return out.coords, out.confidence
        mode = default_flip_mode(cfg.head, cfg.activation)
        decode = _decode_for(cfg) if mode == "logits" else None
        result = flip_test(model, images, joint_set, mode=mode, decode=decode)
        return result.coords, result.confidence


def _resolve(
    checkpoint_or_model: str | os.PathLike[str] | nn.Module | OnnxModel | None,
    onnx: str | os.PathLike[str] | None,
    config: ModelConfig | None,
    joints: str | None,
    device: str | torch.device | None,
) -> tuple[Callable[[Tensor], HeadOutput], ModelConfig, torch.device]:
    """The callable model, its config and the device its inputs go to."""
    if onnx is not None and checkpoint_or_model is not None:
        raise ValueError("give a checkpoint (or model) or an ONNX file, not both")
    if onnx is not None:
        checkpoint_or_model = OnnxModel(onnx)
    if checkpoint_or_model is None:
        raise ValueError("give a checkpoint, a model or an ONNX file")
    if isinstance(checkpoint_or_model, OnnxModel):
        runner = checkpoint_or_model
        cfg = runner.config or config
        if cfg is None:
            raise ValueError(f"{runner.path}: no dsntpose config in its metadata: pass config=")
        if joints is not None and joints != cfg.joints:
            raise ValueError(
                f"{runner.path}: the model is for joint set {cfg.joints!r}, not {joints!r}"
            )
        return runner, cfg, torch.device("cpu")
    path_or_module = checkpoint_or_model
    if isinstance(path_or_module, os.PathLike):
        path_or_module = Path(path_or_module)
    model, cfg = load_model(path_or_module, config, joints=joints, map_location=device or "cpu")
    model.eval()
    param = next(model.parameters(), None)
    return model, cfg, param.device if param is not None else torch.device("cpu")


def _draw(image: np.ndarray, people: list[dict[str, Any]], joint_set: JointSet) -> np.ndarray:
    """The image with every person's box (thin white) and skeleton drawn."""
    from dsntpose.viz import default_sizes, draw_skeleton

    _, thickness = default_sizes(*image.shape[:2])
    out: np.ndarray = image.copy()
    for person in people:
        x, y, w, h = person["box"]
        cv2.rectangle(
            out,
            (round(x), round(y)),
            (round(x + w - 1), round(y + h - 1)),
            (255, 255, 255),
            max(1, thickness // 2),
        )
        joints = np.array([[k["x"], k["y"]] for k in person["keypoints"]])
        confidence = np.array([k["confidence"] for k in person["keypoints"]])
        out = draw_skeleton(out, joints, joint_set, confidence=confidence)
    return out


def predict(
    checkpoint_or_model: str | os.PathLike[str] | nn.Module | OnnxModel | None,
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
) -> PredictResult:
    """Predict keypoints for every person box in every image.

    Args:
        checkpoint_or_model: a checkpoint path, a torch model (with ``config``), an
            :class:`~dsntpose.export.OnnxModel`, or ``None`` when ``onnx`` is given.
        images: an image file, a folder of images, or a list of files and folders.
        boxes: ``None`` (the whole image is the box), one ``(x, y, w, h)`` box for every
            image, a boxes JSON file, or a dict in that file's form (see the module docstring).
        flip: average with the mirrored crop (:func:`dsntpose.evaluate.flip_test`).
        draw_dir: if given, write ``<image stem>_pose.png`` with boxes and skeletons there.
        onnx: an exported ``.onnx`` file to run on onnxruntime instead of a torch model.
        batch_size: crops per forward pass (people from several images share a batch).
        joints: the joint set the caller expects (``"mpii"``/``"lsp"``); a model for another
            set is an error.
        config: the ``ModelConfig`` of a bare torch model (a checkpoint or ONNX file carries
            its own).
        margin: crop side as a multiple of the box's longer side (given boxes only).
        device: device to load a checkpoint onto (default CPU); a model object stays where it is.
        strict: raise at the first bad image instead of collecting it.

    Returns:
        :class:`PredictResult` ``(people, errors)``; ``people[i]["keypoints"]`` hold ``x``,
        ``y`` in original image pixels and ``confidence`` per joint.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if not margin > 0:
        raise ValueError(f"margin must be > 0, got {margin}")
    model, cfg, model_device = _resolve(checkpoint_or_model, onnx, config, joints, device)
    joint_set = get_joint_set(cfg.joints)
    size = cfg.input_size
    paths = list_images(images)
    source = "boxes"
    box_arg: Box | dict[str, list[Box]] | None = None
    if isinstance(boxes, (str, os.PathLike)):
        source, box_arg = str(boxes), read_boxes(boxes)
    elif isinstance(boxes, Mapping):
        box_arg = read_boxes(boxes)
    elif boxes is not None:
        box_arg = _as_box(boxes, "box")
    out_dir = Path(draw_dir) if draw_dir is not None else None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)

    people: list[dict[str, Any]] = []
    errors: list[dict[str, str]] = []
    pending_images: dict[int, np.ndarray] = {}
    pending: list[_Person] = []

    def flush() -> None:
        """Run the model on the pending crops and turn them into per-person dicts."""
        if not pending:
            return
        coords_list, conf_list = [], []
        for start in range(0, len(pending), batch_size):
            chunk = pending[start : start + batch_size]
            crops = np.stack([p.crop for p in chunk]).transpose(0, 3, 1, 2)
            batch = torch.from_numpy(crops).to(model_device, torch.float32) / 255.0
            coords, confidence = _run(model, batch, cfg, joint_set, flip)
            coords_list.append(coords.float().cpu())
            conf_list.append(confidence.float().cpu())
        coords_norm = torch.cat(coords_list).double().numpy()
        scores = torch.cat(conf_list).double().numpy()
        inverse = np.stack([p.inverse for p in pending])
        joints_px = back_project(coords_norm, inverse, size)
        by_image: dict[int, list[dict[str, Any]]] = {}
        for k, person in enumerate(pending):
            entry = {
                "image": str(paths[person.image_index]),
                "person": len(by_image.get(person.image_index, [])),
                "box": [round(v, 3) for v in person.box],
                "score": round(float(scores[k].mean()), 4),
                "keypoints": [
                    {
                        "name": name,
                        "x": round(float(joints_px[k, j, 0]), 3),
                        "y": round(float(joints_px[k, j, 1]), 3),
                        "confidence": round(float(scores[k, j]), 4),
                    }
                    for j, name in enumerate(joint_set.names)
                ],
            }
            by_image.setdefault(person.image_index, []).append(entry)
        for index, entries in by_image.items():
            people.extend(entries)
            if out_dir is not None:
                from dsntpose.viz import save_image

                drawn = _draw(pending_images[index], entries, joint_set)
                save_image(drawn, out_dir / f"{paths[index].stem}_pose.png")
        pending.clear()
        pending_images.clear()

    for index, path in enumerate(paths):
        try:
            image = cv2.cvtColor(read_image(path), cv2.COLOR_BGR2RGB)
            chosen = _boxes_for(path, box_arg, image.shape[:2], source)
        except (OSError, ValueError) as err:
            message = str(err).splitlines()[0] if str(err) else type(err).__name__
            if path.name not in message and str(path) not in message:
                message = f"{path}: {message}"
            if strict:
                raise type(err)(message) from err
            log.warning("skipping %s", message)
            errors.append({"image": str(path), "error": message})
            continue
        whole_image = box_arg is None
        for box in chosen:
            x, y, w, h = box
            center = (x + (w - 1) / 2, y + (h - 1) / 2)
            side = max(w, h) * (1.0 if whole_image else margin)
            matrix = crop_matrix(center, side, size)
            crop = warp_image(image, matrix, size)
            pending.append(_Person(index, box, crop, invert_affine(matrix)))
        if out_dir is not None:
            pending_images[index] = image
        if len(pending) >= batch_size:
            flush()
    flush()
    if errors:
        log.warning(
            "%d of %d images failed: %s",
            len(errors),
            len(paths),
            "; ".join(e["error"] for e in errors),
        )
    return PredictResult(people, errors)
