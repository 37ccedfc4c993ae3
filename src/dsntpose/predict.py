"""Keypoints on your own image files: a thin, batch-of-files layer over :class:`Predictor`.

The geometry (crop around each person box, model with flip test, back to image pixels) is
:class:`dsntpose.predictor.Predictor`'s, and the image and box files are read by
:mod:`dsntpose.inputs`; this module adds what a run over files needs: per-image error
collection, drawings and result files (each written atomically, never onto an input).

Boxes are ``(x, y, w, h)`` in image pixels: the box covers pixel columns ``x .. x + w - 1`` and
rows ``y .. y + h - 1`` (its outer edges are ``x - 0.5`` and ``x + w - 0.5``), so the whole image
is ``(0, 0, W, H)``; this is also COCO's ``[x, y, w, h]``. The crop is the square of side
``margin * max(w, h)`` (default margin 1.25, as for MPII's person scale) centred on the box;
without boxes the model finds the one person of each image (a warning says so: on a picture of
several people pass boxes) and an image where a model with a presence head finds nobody has no
person ("no person found", not an error).

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
detections has nobody to predict (not an error); with ``coco_images``, an image it does not
list (a folder holding other images too) is skipped, with one summary line.

Errors that concern one image (missing, unreadable, truncated or corrupt, larger than
``max_pixels``, a box outside it, no boxes listed for it) are collected: the other images are
still predicted and :class:`PredictResult` lists the bad ones at the end (each is also
logged). A person with non-finite model outputs is kept with those values as ``null`` and
reported in ``errors`` too. Errors that concern the whole run (a checkpoint for another joint
set, a bad boxes file, no images, an output that is one of the inputs) raise at once with a
one-line message.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from dsntpose.config import ModelConfig
from dsntpose.inputs import (
    IMAGE_SUFFIXES,
    MAX_IMAGE_PIXELS,
    BoxesArg,
    BoxSource,
    json_safe,
    list_images,
    load_image,
    nan_floats,
    read_boxes,
    read_detections,
    read_image_ids,
)
from dsntpose.predictor import BATCH_SIZE, MARGIN, Person, Predictor
from dsntpose.viz import draw_people

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

WHOLE_IMAGE_WARNING = (
    "no person boxes given: the model finds one person per image (on a picture of several "
    "people pass boxes or a detections file)"
)


class PredictResult(NamedTuple):
    """What :func:`predict` returns.

    Attributes:
        people: one dict per person, in image order then box order::

            {"image": "path/im.jpg", "image_id": 1001, "person": 0, "box": [x, y, w, h],
             "score": 0.71,
             "keypoints": [{"name": "r_ankle", "x": 101.3, "y": 240.8, "confidence": 0.82}, ...]}

            ``x``/``y`` in original image pixels (0-based, integers at pixel centres),
            ``confidence`` in ``[0, 1]``, ``score`` the mean joint confidence; ``image_id`` the
            COCO image id when one is known (else None). Non-finite values are ``None``.
        errors: one ``{"image": path, "error": one-line message}`` per image that failed, and
            per person whose outputs were not finite.
        images: how many images were tried (those skipped as not listed left out).
        nobody: the images (searched without a box) where no person was found.
        skipped: the images skipped because ``coco_images`` does not list them.
    """

    people: list[dict[str, Any]]
    errors: list[dict[str, str]]
    images: int = 0
    nobody: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()

    def to_json(self, indent: int | None = 2) -> str:
        """``{"people": ..., "errors": ...}`` as strict JSON (never ``NaN``: those are null)."""
        return json.dumps(
            {"people": json_safe(self.people), "errors": self.errors},
            indent=indent,
            allow_nan=False,
        )


def make_predictor(
    model: str | os.PathLike[str] | nn.Module | Predictor | Any | None,
    *,
    onnx: str | os.PathLike[str] | None = None,
    config: ModelConfig | None = None,
    joints: str | None = None,
    device: str | torch.device | None = None,
    **kwargs: Any,
) -> Predictor:
    """A :class:`Predictor` from any of the forms :func:`predict` takes: a ready predictor, a
    shipped model's name or a file (:func:`dsntpose.checkpoint.load_any`: ``.ckpt``, ``.pt``,
    ``.onnx``), an :class:`~dsntpose.checkpoint.OnnxModel`, or a torch model with ``config``."""
    from dsntpose.checkpoint import LoadedModel, OnnxModel, load_any, load_model

    if onnx is not None and model is not None:
        raise ValueError("give a checkpoint (or model) or an ONNX file, not both")
    if isinstance(model, Predictor):
        return model
    source = onnx if onnx is not None else model
    if source is None:
        raise ValueError("give a checkpoint, a model or an ONNX file")
    if isinstance(source, (str, os.PathLike)):
        loaded = load_any(source, joints=joints, config=config, map_location=device or "cpu")
        return Predictor.from_loaded(loaded, device=device or "cpu", **kwargs)
    if isinstance(source, OnnxModel):
        cfg = source.config or config
        if cfg is None:
            raise ValueError(f"{source.path}: no dsntpose config in its metadata: pass config=")
        if joints is not None and joints != cfg.joints:
            raise ValueError(
                f"{source.path}: the model is for joint set {cfg.joints!r}, not {joints!r}"
            )
        return Predictor.from_loaded(LoadedModel(source, cfg, "onnx", source.path), **kwargs)
    torch_model, cfg = load_model(source, config, joints=joints)
    return Predictor(torch_model, cfg, **kwargs)  # a model object stays on its device


def _drawing_name(path: Path, used: set[str]) -> str:
    """``<stem>_pose.png``, or ``<stem>_<n>_pose.png`` if an earlier image took that name."""
    name, n = f"{path.stem}_pose.png", 1
    while name in used:
        n += 1
        name = f"{path.stem}_{n}_pose.png"
    used.add(name)
    return name


def _refuse_input_folder(draw_dir: Path, paths: Sequence[Path], inputs: Sequence[Any]) -> None:
    """``draw_dir`` must not be a folder the images come from (drawings beside the photos)."""
    folders = {Path(p).resolve() for p in inputs if Path(p).is_dir()}
    folders |= {p.parent.resolve() for p in paths}
    if draw_dir.resolve() in folders:
        raise ValueError(
            f"draw_dir {draw_dir} is a folder of the input images; write the drawings to "
            "another folder"
        )


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
        points = person["keypoints"]
        xy = np.stack(
            [nan_floats([k["x"] for k in points]), nan_floats([k["y"] for k in points])], 1
        )
        conf = nan_floats([k["confidence"] for k in points])
        rows = to_coco_results(
            xy[None], conf[None], [index if image_id is None else image_id], category_id
        )
        for row in rows:
            if image_id is None:
                row["file_name"] = Path(person["image"]).name
            results.append(row)
    return results


def predict(
    checkpoint_or_model: str | os.PathLike[str] | nn.Module | Predictor | Any | None,
    images: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    boxes: BoxesArg = None,
    *,
    flip: bool = True,
    draw_dir: str | os.PathLike[str] | None = None,
    onnx: str | os.PathLike[str] | None = None,
    batch_size: int = BATCH_SIZE,
    joints: str | None = None,
    config: ModelConfig | None = None,
    margin: float = MARGIN,
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
        checkpoint_or_model: a shipped model's name or a model file (``.ckpt``, ``.pt``;
            ``.onnx`` runs on onnxruntime), a torch model (with ``config``), an
            :class:`~dsntpose.checkpoint.OnnxModel`, a ready
            :class:`~dsntpose.predictor.Predictor`, or ``None`` when ``onnx`` is given.
        images: an image file, a folder of images, or a list of files and folders.
        boxes: ``None`` (the model finds the one person of each image; a warning is logged),
            one ``(x, y, w, h)`` box for every image, a boxes map (file or dict), COCO detection
            results (file or list) or a COCO annotation file (see the module docstring).
        flip: average with the mirrored crop (the flip test).
        draw_dir: if given, write ``<image stem>_pose.png`` there (``<stem>_2_pose.png`` for
            a later image of the same stem): boxes, skeletons, joint numbers and a legend;
            images under ``draw_min_side`` px are upscaled first. Not a folder of the inputs.
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
        coco_images: COCO file whose ``images`` map file names to image ids; images it does
            not list are skipped.
        coco_output: write the people as COCO keypoint results (:func:`coco_results`) here.
        output: write :meth:`PredictResult.to_json` here.
        max_pixels: refuse images with more pixels (checked on the file header).
        draw_min_side: see ``draw_dir``.

    Returns:
        :class:`PredictResult`; ``people[i]["keypoints"]`` hold ``x``, ``y`` in original image
        pixels and ``confidence`` per joint.
    """
    from dsntpose.checkpoint import atomic_write

    predictor = make_predictor(
        checkpoint_or_model, onnx=onnx, config=config, joints=joints, device=device,
        flip=flip, margin=margin, batch_size=batch_size, max_pixels=max_pixels,
    )  # fmt: skip
    joint_set = predictor.joint_set
    paths = list_images(images)
    inputs = [*paths, *(v for v in (boxes, coco_images) if isinstance(v, (str, os.PathLike)))]
    for option, value in (("output", output), ("coco_output", coco_output)):
        if value is not None:
            from dsntpose.checkpoint import refuse_inputs

            refuse_inputs(value, inputs, option)
    spec = BoxSource(boxes, det_threshold, det_category, coco_images)
    if spec.whole_image:
        log.warning(WHOLE_IMAGE_WARNING)
    out_dir = Path(draw_dir) if draw_dir is not None else None
    if out_dir is not None:
        listed = [images] if isinstance(images, (str, os.PathLike)) else list(images)
        _refuse_input_folder(out_dir, paths, listed)
        out_dir.mkdir(parents=True, exist_ok=True)
    drawing_names: set[str] = set()

    people: list[dict[str, Any]] = []
    errors: list[dict[str, str]] = []
    nobody: list[str] = []
    skipped: list[str] = []
    pending: list[tuple[int, np.ndarray, list[Any] | None]] = []
    pending_crops = 0
    failed = read = 0

    def flush() -> None:
        """Run the predictor on the pending images and turn its people into dicts."""
        nonlocal pending_crops
        if not pending:
            return
        found = predictor.predict_arrays([a for _, a, _ in pending], [b for _, _, b in pending])
        for (index, image, chosen), persons in zip(pending, found):
            path = paths[index]
            if chosen is None and not persons:
                log.warning("%s: no person found", path)
                nobody.append(str(path))
            image_id = spec.image_id(path)
            for k, person in enumerate(persons):
                people.append(
                    {"image": str(path), "image_id": image_id, "person": k, **person.to_dict()}
                )
                if not person.finite:
                    _report_nonfinite(path, k, person, joint_set.num_joints, errors)
            if out_dir is not None:
                from dsntpose.viz import save_image

                drawn = draw_people(image, persons, joint_set, min_side=draw_min_side)
                save_image(drawn, out_dir / _drawing_name(path, drawing_names))
        pending.clear()
        pending_crops = 0

    for index, path in enumerate(paths):
        if not spec.listed(path):
            skipped.append(str(path))
            continue
        read += 1
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
        if pending_crops >= predictor.batch_size:
            flush()
    flush()
    if skipped:
        log.warning(
            "skipped %d %s that %s does not list", len(skipped),
            "image" if len(skipped) == 1 else "images", spec.ids_source,
        )  # fmt: skip
    if failed:  # each one was named as it was skipped
        log.warning("%d of %d images failed", failed, read)
    result = PredictResult(people, errors, read, tuple(nobody), tuple(skipped))
    if output is not None:
        text = result.to_json() + "\n"
        atomic_write(output, lambda tmp: tmp.write_text(text), inputs=inputs, what="output")
    if coco_output is not None:
        text = json.dumps(coco_results(people), allow_nan=False) + "\n"
        atomic_write(coco_output, lambda tmp: tmp.write_text(text), inputs=inputs,
                     what="coco_output")  # fmt: skip
    return result


def _report_nonfinite(
    path: Path, k: int, person: Person, joints: int, errors: list[dict[str, str]]
) -> None:
    bad = int((~(np.isfinite(person.keypoints).all(1) & np.isfinite(person.confidence))).sum())
    message = f"{path}: person {k}: {bad} of {joints} joints are not finite (written as null)"
    log.warning(message)
    errors.append({"image": str(path), "error": message})
