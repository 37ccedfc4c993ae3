"""Keypoints on every frame of a video file or a webcam, through OpenCV.

:func:`predict_video` reads frames with ``cv2.VideoCapture``, predicts them with a
:class:`~dsntpose.predictor.Predictor`, and optionally writes an annotated video (``mp4v``
codec, the source's frame rate and size) and per-frame results.

Who is predicted in a frame:

* with ``boxes`` (one ``(x, y, w, h)`` box for every frame, or a function
  ``boxes(frame_index, frame_bgr) -> boxes`` such as a person detector): those people;
* without, **one person per frame**, found as in a still image without a box
  (:meth:`~dsntpose.predictor.Predictor.find_people`: the whole frame, then crops around the
  joints found). With ``track=True`` the first pass of a frame is the square around the previous
  frame's confident joints instead, with a side that never shrinks below
  ``predictor.track_keep`` of the previous crop (so the margin cannot shrink away over a slow
  pan); the whole frame is searched again for the first frame, whenever the previous person
  scored below ``track_min_score`` or had fewer than 3 confident joints, and (a model with a
  presence head) when the tracked person's presence drops (a scene cut). A frame where a
  presence model finds nobody has no person. Tracking is a convenience for one person, not a
  tracker of several.

Results (``results_path``): ``"jsonl"`` (the default, or any suffix but ``.json``) writes one
JSON line per frame, ``{"frame": i, "time_s": t, "people": [Person.to_dict(), ...]}`` (non-finite
values as ``null``); ``"coco"`` (or a ``.json`` suffix) writes one JSON list of COCO keypoint
results with ``image_id`` the frame index (0-based), for :func:`dsntpose.data.coco.evaluate_coco`.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import cv2
import numpy as np

from dsntpose.predictor import Person, Predictor, as_rgb_image, keypoint_box

__all__ = ["VideoResult", "keypoint_box", "predict_video"]  # keypoint_box: from the predictor

log = logging.getLogger(__name__)

BoxesFn = Callable[[int, np.ndarray], Any]


class VideoResult(NamedTuple):
    """What :func:`predict_video` did.

    Attributes:
        frames: frames read and predicted. people: people predicted over all frames.
        fps: the frame rate used for the output (the source's, else 30).
        size: ``(width, height)`` of the frames, px.
        out_path, results_path: the files written (None when not asked for).
        nonfinite: frames where some output was not finite (written as null / left out).
        nobody: frames searched without a box where no person was found (a model with a
            presence head): they have no person, never a skeleton.
    """

    frames: int
    people: int
    fps: float
    size: tuple[int, int]
    out_path: Path | None
    results_path: Path | None
    nonfinite: int
    nobody: int = 0


def _open(source: str | os.PathLike[str] | int) -> cv2.VideoCapture:
    if isinstance(source, bool) or not isinstance(source, (str, os.PathLike, int)):
        raise TypeError(
            f"source must be a video file path or a webcam index (int), got {type(source).__name__}"
        )
    if isinstance(source, int):
        capture = cv2.VideoCapture(source)
        if not capture.isOpened():
            raise OSError(f"cannot open webcam {source}")
        return capture
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"video not found: {path}")
    capture = cv2.VideoCapture(os.fspath(path))
    if not capture.isOpened():
        raise OSError(f"cannot open video (not a video OpenCV can read): {path}")
    return capture


def _draw(frame_bgr: np.ndarray, people: Sequence[Person], predictor: Predictor) -> np.ndarray:
    """The frame (BGR) with each person's box and skeleton, at native size
    (:func:`dsntpose.viz.draw_people` without upscaling or legend)."""
    from dsntpose.viz import draw_people

    rgb = np.ascontiguousarray(frame_bgr[..., ::-1])
    drawn = draw_people(rgb, people, predictor.joint_set, min_side=0, legend=False)
    return np.ascontiguousarray(drawn[..., ::-1])


def predict_video(
    predictor: Predictor,
    source: str | os.PathLike[str] | int,
    out_path: str | os.PathLike[str] | None = None,
    results_path: str | os.PathLike[str] | None = None,
    progress: bool = True,
    *,
    boxes: Sequence[float] | BoxesFn | None = None,
    track: bool = False,
    track_min_score: float = 0.2,
    results_format: str | None = None,
    max_frames: int | None = None,
    fps: float | None = None,
) -> VideoResult:
    """Predict keypoints on every frame of a video file or webcam (see the module docstring).

    Args:
        predictor: the loaded model (:meth:`Predictor.from_checkpoint`).
        source: a video file, or a webcam index (``0``) — then stop it with ``max_frames`` or
            Ctrl-C (the files written so far are closed properly).
        out_path: write the annotated video here (``mp4v``; ``.mp4`` suggested).
        results_path: write per-frame results here.
        progress: show a tqdm progress bar (with the frame count when the source tells it).
        boxes: one ``(x, y, w, h)`` box for every frame, or ``f(frame_index, frame_bgr)``
            returning the frame's boxes (None: one person, see ``track``).
        track: without ``boxes``, crop around the previous frame's keypoints.
        track_min_score: a previous person scoring below this is not tracked (the whole frame
            is searched).
        results_format: ``"jsonl"`` or ``"coco"`` (default: ``"coco"`` for a ``.json`` file).
        max_frames: stop after this many frames.
        fps: frame rate of the output video (default: the source's, else 30).

    Returns:
        :class:`VideoResult`.

    Raises:
        FileNotFoundError, OSError: the source cannot be opened or the video not written.
        ValueError: a bad ``results_format`` or ``max_frames``.
    """
    if not isinstance(predictor, Predictor):
        raise TypeError(f"predictor must be a dsntpose Predictor, got {type(predictor).__name__}")
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"max_frames must be >= 1, got {max_frames}")
    results_file = Path(results_path) if results_path is not None else None
    fmt = results_format or (
        "coco" if results_file is not None and results_file.suffix.lower() == ".json" else "jsonl"
    )
    if fmt not in ("jsonl", "coco"):
        raise ValueError(f"results_format must be 'jsonl' or 'coco', got {results_format!r}")
    capture = _open(source)
    source_fps = capture.get(cv2.CAP_PROP_FPS)
    rate = (
        float(fps)
        if fps
        else (source_fps if source_fps and math.isfinite(source_fps) and source_fps > 0 else 30.0)
    )
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    total = count if count > 0 and not isinstance(source, int) else None
    if total is not None and max_frames is not None:
        total = min(total, max_frames)
    from tqdm import tqdm

    writer: cv2.VideoWriter | None = None
    results_handle = None
    coco: list[dict[str, Any]] = []
    frames = people_count = nonfinite = nobody = 0
    size = (0, 0)
    previous: Person | None = None
    bar = tqdm(total=total, disable=not progress, unit="frame", desc="predict_video")
    try:
        if results_file is not None:
            results_file.parent.mkdir(parents=True, exist_ok=True)
            results_handle = results_file.open("w")
        while max_frames is None or frames < max_frames:
            ok, frame = capture.read()
            if not ok or frame is None:
                break
            height, width = frame.shape[:2]
            size = (width, height)
            if out_path is not None and writer is None:
                Path(out_path).parent.mkdir(parents=True, exist_ok=True)
                writer = cv2.VideoWriter(
                    os.fspath(out_path), cv2.VideoWriter.fourcc(*"mp4v"), rate, size
                )
                if not writer.isOpened():
                    raise OSError(f"cannot write video {out_path} (mp4v at {width}x{height})")
            if callable(boxes) or boxes is not None:
                frame_boxes = boxes(frames, frame) if callable(boxes) else boxes
                people = predictor.predict_image(frame, frame_boxes)
            else:
                follow = track and previous is not None and previous.score >= track_min_score
                rgb = as_rgb_image(frame, False, predictor.max_pixels, f"frame {frames}")
                found = predictor.find_people([rgb], [previous if follow else None])[0]
                people = [] if found is None else [found]
                nobody += found is None
            previous = people[0] if len(people) == 1 else None
            if any(not p.finite for p in people):
                nonfinite += 1
            people_count += len(people)
            if writer is not None:
                writer.write(_draw(frame, people, predictor))
            if results_handle is not None and fmt == "jsonl":
                line = {
                    "frame": frames,
                    "time_s": round(frames / rate, 4),
                    "people": [p.to_dict() for p in people],
                }
                results_handle.write(json.dumps(line, allow_nan=False) + "\n")
            elif fmt == "coco" and results_file is not None and people:
                from dsntpose.data.coco import to_coco_results

                coco += to_coco_results(
                    np.stack([p.keypoints for p in people]),
                    np.stack([p.confidence for p in people]),
                    [frames] * len(people),
                )
            frames += 1
            bar.update(1)
    except KeyboardInterrupt:
        log.warning("predict_video: interrupted after %d frames; closing the files", frames)
    finally:
        bar.close()
        capture.release()
        if writer is not None:
            writer.release()
        if results_handle is not None:
            if fmt == "coco":
                results_handle.write(json.dumps(coco, allow_nan=False) + "\n")
            results_handle.close()
    if frames == 0 and not isinstance(source, int):
        raise OSError(f"no frame could be read from {source}")
    if nobody:
        log.warning("predict_video: no person found in %d of %d frames", nobody, frames)
    if nonfinite:
        log.warning(
            "predict_video: %d frames had non-finite outputs (written as null / left out)",
            nonfinite,
        )
    return VideoResult(
        frames,
        people_count,
        rate,
        size,
        Path(out_path) if out_path is not None else None,
        results_file,
        nonfinite,
        nobody,
    )
