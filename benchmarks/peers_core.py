"""The parts of benchmarks/peers.py that need only the standard library and numpy: joint tables
and mappings of the peers (MediaPipe BlazePose's 33 landmarks, MoveNet's 17 COCO keypoints) onto
LSP's joints, the letterbox geometry of MoveNet, the MPII person crops, the PCK scoring, timing
summaries, the raw image file the workers read, and the MediaPipe worker loop (which runs in
the MediaPipe venv, without torch or dsntpose).
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

MEDIAPIPE_MODEL_FILES = ("pose_detection.tflite", "pose_landmark_full.tflite")

LSP_NAMES = (
    "r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle", "r_wrist", "r_elbow",
    "r_shoulder", "l_shoulder", "l_elbow", "l_wrist", "neck", "head_top",
)  # fmt: skip
NUM_LSP = len(LSP_NAMES)
# LSP joint -> MediaPipe Pose landmark (BlazePose's 33-point topology). Both name left and right
# from the person's own point of view. LSP's neck (12) and head top (13) have no counterpart.
LSP_FROM_MEDIAPIPE = {
    0: 28,  # r_ankle    <- right_ankle
    1: 26,  # r_knee     <- right_knee
    2: 24,  # r_hip      <- right_hip
    3: 23,  # l_hip      <- left_hip
    4: 25,  # l_knee     <- left_knee
    5: 27,  # l_ankle    <- left_ankle
    6: 16,  # r_wrist    <- right_wrist
    7: 14,  # r_elbow    <- right_elbow
    8: 12,  # r_shoulder <- right_shoulder
    9: 11,  # l_shoulder <- left_shoulder
    10: 13,  # l_elbow   <- left_elbow
    11: 15,  # l_wrist   <- left_wrist
}
NUM_MEDIAPIPE = 33
LIMB_JOINTS = tuple(range(12))
GROUPS = {
    "Ankle": (0, 5),
    "Knee": (1, 4),
    "Hip": (2, 3),
    "Wrist": (6, 11),
    "Elbow": (7, 10),
    "Shoulder": (8, 9),
}
TORSO = (8, 3)  # r_shoulder -- l_hip

ALL_GROUPS = {**GROUPS, "Neck": (12,), "Head": (13,)}

# MoveNet's 17 keypoints (COCO order); left/right are the person's own, as in LSP.
COCO_NAMES = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip",
    "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
)  # fmt: skip
NUM_COCO = len(COCO_NAMES)


def _lsp_name(coco: str) -> str:
    """``left_knee`` -> ``l_knee`` (LSP's spelling of the same joint)."""
    side, _, part = coco.partition("_")
    return {"left": "l", "right": "r"}.get(side, side) + "_" + part


# LSP joint -> COCO keypoint, by name: shoulders, elbows, wrists, hips, knees, ankles.
LSP_FROM_COCO = {
    LSP_NAMES.index(_lsp_name(name)): k
    for k, name in enumerate(COCO_NAMES)
    if _lsp_name(name) in LSP_NAMES
}


class PeersError(Exception):
    """A problem with the inputs of the whole run: printed as one line, exit status 2."""


# --------------------------------------------------------------------------------------------
# Landmark mapping and scoring (pure numpy; unit-tested in tests/test_peers.py)
# --------------------------------------------------------------------------------------------


def mediapipe_to_lsp(landmarks: Any, width: int, height: int) -> np.ndarray:
    """MediaPipe's 33 normalised landmarks -> LSP's 14 joints in 0-based image px.

    MediaPipe's normalised coordinates span the image from its left/top outer edge (0) to its
    right/bottom outer edge (1), so ``x_px = x * W - 0.5`` puts integers at pixel centres as
    dsntpose does (conventions.md).

    Args:
        landmarks: ``(33, >=2)`` normalised ``(x, y[, z, visibility])``, or None when MediaPipe
            found no person.
        width, height: the image size in px.

    Returns:
        ``(14, 2)`` float64 ``(x, y)``; NaN for neck and head top, and for every joint when
        ``landmarks`` is None (a miss).
    """
    out = np.full((NUM_LSP, 2), np.nan)
    if landmarks is None:
        return out
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.ndim != 2 or lm.shape[0] != NUM_MEDIAPIPE or lm.shape[1] < 2:
        raise ValueError(f"landmarks: expected shape (33, >=2), got {lm.shape}")
    lsp = list(LSP_FROM_MEDIAPIPE)
    mp = [LSP_FROM_MEDIAPIPE[j] for j in lsp]
    out[lsp, 0] = lm[mp, 0] * width - 0.5
    out[lsp, 1] = lm[mp, 1] * height - 0.5
    return out


def mapped_scores(scores: Any, mapping: dict[int, int], size: int) -> np.ndarray:
    """A peer's per-landmark scores -> LSP's 14 joints by ``mapping`` (LSP joint -> landmark):
    ``(14,)`` float64, NaN for the joints it lacks (neck, head top); 0 for every mapped joint
    when ``scores`` is None (no person found: the model gives those joints nothing).

    Args:
        scores: ``(size,)`` one score per landmark (MediaPipe's visibility, MoveNet's keypoint
            score), or None.
        mapping: :data:`LSP_FROM_MEDIAPIPE` or :data:`LSP_FROM_COCO`.
        size: the peer's landmark count (33 or 17).
    """
    out = np.full(NUM_LSP, np.nan)
    lsp = list(mapping)
    if scores is None:
        out[lsp] = 0.0
        return out
    s = np.asarray(scores, dtype=np.float64)
    if s.shape != (size,):
        raise ValueError(f"scores: expected shape ({size},), got {s.shape}")
    out[lsp] = s[[mapping[j] for j in lsp]]
    return out


def torso_sizes(joints: np.ndarray) -> np.ndarray:
    """``(N, 14, 2)`` ground truth in px -> ``(N,)`` distances right shoulder -- left hip."""
    g = np.asarray(joints, dtype=np.float64)
    if g.ndim != 3 or g.shape[1:] != (NUM_LSP, 2):
        raise ValueError(f"joints: expected shape (N, 14, 2), got {g.shape}")
    return np.linalg.norm(g[:, TORSO[0]] - g[:, TORSO[1]], axis=-1)


def score(
    preds: np.ndarray,
    gt: np.ndarray,
    counted: np.ndarray,
    torso: np.ndarray,
    threshold: float = 0.2,
    joints: Sequence[int] = LIMB_JOINTS,
) -> dict[str, Any]:
    """PCK@threshold of the torso over ``joints``.

    Args:
        preds: ``(N, 14, 2)`` predictions in image px; NaN is a miss.
        gt: ``(N, 14, 2)`` ground truth in the same px.
        counted: ``(N, 14)`` bool, the joints that are scored (e.g. the visible ones).
        torso: ``(N,)`` torso sizes in px (> 0 for every person with a counted joint).
        threshold: fraction of the torso size.
        joints: the joints scored (the 12 limb joints by default).

    Returns:
        ``{"joints": {name: %}, "counts": {name: n}, "groups": {group: %}, "total": %,
        "total_unweighted": %, "counted": n}``: ``total`` pools all correct over all counted
        joints of ``joints``, ``total_unweighted`` is the plain mean of their percentages, a
        group the plain mean of its joints'.
    """
    p = np.asarray(preds, dtype=np.float64)
    g = np.asarray(gt, dtype=np.float64)
    c = np.asarray(counted, dtype=bool)
    s = np.asarray(torso, dtype=np.float64)
    if p.ndim != 3 or p.shape[1:] != (NUM_LSP, 2) or g.shape != p.shape:
        raise ValueError(f"preds and gt: expected (N, 14, 2) each, got {p.shape} and {g.shape}")
    if c.shape != p.shape[:2] or s.shape != p.shape[:1]:
        raise ValueError(f"counted (N, 14) and torso (N,) expected, got {c.shape} and {s.shape}")
    if not threshold > 0:
        raise ValueError(f"threshold: must be > 0, got {threshold}")
    joints = list(joints)
    people = c[:, joints].any(axis=1)
    if not np.all(np.isfinite(s[people]) & (s[people] > 0)):
        raise ValueError("torso: every person with a counted joint needs a finite size > 0 px")
    with np.errstate(invalid="ignore", divide="ignore"):
        dist = np.linalg.norm(p - g, axis=-1) / s[:, None]
    hit = (dist <= threshold) & c  # NaN compares False: a miss
    correct = hit.sum(axis=0)
    counts = c.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        per = np.where(counts > 0, 100.0 * correct / np.maximum(counts, 1), np.nan)
    total_counted = int(counts[joints].sum())
    total = 100.0 * float(correct[joints].sum()) / total_counted if total_counted else math.nan

    def num(v: float) -> float | None:
        return None if math.isnan(v) else round(float(v), 4)

    return {
        "threshold": threshold,
        "joints": {LSP_NAMES[j]: num(per[j]) for j in joints},
        "counts": {LSP_NAMES[j]: int(counts[j]) for j in joints},
        "groups": {
            name: num(float(np.mean(per[list(js)])))
            for name, js in ALL_GROUPS.items()
            if all(j in joints for j in js)
        },
        "total": num(total),
        "total_unweighted": num(float(np.mean(per[joints]))),
        "counted": total_counted,
    }


def score_both(
    preds: np.ndarray, gt: np.ndarray, visible: np.ndarray, missing: np.ndarray
) -> dict[str, Any]:
    """Both protocols of one prediction set: ``visible`` (LSP flag: not occluded) and ``all``
    (every annotated joint); ``(N, 14)`` bool masks, torso from ``gt``."""
    torso = torso_sizes(gt)
    return {
        "visible": score(preds, gt, visible & ~missing, torso),
        "all": score(preds, gt, ~missing, torso),
    }


def summarize_ms(values: Iterable[float]) -> dict[str, float | int]:
    """Median, p90, mean, min (ms) and the count of per-image timings."""
    v = np.asarray(list(values), dtype=np.float64)
    if v.size == 0:
        raise ValueError("no timings")
    return {
        "median_ms": round(float(np.median(v)), 3),
        "p90_ms": round(float(np.percentile(v, 90)), 3),
        "mean_ms": round(float(v.mean()), 3),
        "min_ms": round(float(v.min()), 3),
        "n": int(v.size),
    }


def interleaved_order(names: Sequence[str], round_index: int, image_index: int) -> list[str]:
    """The order in which the contenders run on one image: rotated by one each image and each
    round, so that none always runs first (warm caches) or last."""
    k = (round_index + image_index) % len(names)
    return [*names[k:], *names[:k]]


def movenet_to_lsp(joints: Any) -> np.ndarray:
    """MoveNet's 17 keypoints in image px -> LSP's 14 joints (NaN for neck and head top, and
    for every joint when ``joints`` is None).

    Args:
        joints: ``(17, >=2)`` ``(x, y[, score])`` 0-based image px in COCO order, or None.
    """
    out = np.full((NUM_LSP, 2), np.nan)
    if joints is None:
        return out
    kp = np.asarray(joints, dtype=np.float64)
    if kp.ndim != 2 or kp.shape[0] != NUM_COCO or kp.shape[1] < 2:
        raise ValueError(f"joints: expected shape (17, >=2), got {kp.shape}")
    lsp = list(LSP_FROM_COCO)
    out[lsp] = kp[[LSP_FROM_COCO[j] for j in lsp], :2]
    return out


# --------------------------------------------------------------------------------------------
# Letterbox (MoveNet's input): keep the aspect, pad to a square. benchmarks/movenet_worker.mjs
# computes the same; these are the reference and the way back.
# --------------------------------------------------------------------------------------------


def letterbox_geometry(height: int, width: int, side: int) -> tuple[int, int, int, int]:
    """``(rw, rh, pad_x, pad_y)``: an ``H x W`` image resized to ``rw x rh`` px (its longer
    side to ``side``) and placed at ``(pad_x, pad_y)`` in the ``side x side`` square."""
    if height < 1 or width < 1 or side < 1:
        raise ValueError(f"sizes must be >= 1, got {height}x{width} into {side}")
    longer = max(height, width)
    # JavaScript's Math.round rounds halves up: floor(v + 0.5) does the same here
    rw = max(1, math.floor(width * side / longer + 0.5))
    rh = max(1, math.floor(height * side / longer + 0.5))
    return rw, rh, (side - rw) // 2, (side - rh) // 2


def letterbox_to_image(yx_norm: np.ndarray, height: int, width: int, side: int) -> np.ndarray:
    """MoveNet's ``(..., 2)`` ``(y, x)`` normalised to the padded square (0 = its top/left
    outer edge, 1 = bottom/right) -> ``(..., 2)`` ``(x, y)`` 0-based image px."""
    rw, rh, pad_x, pad_y = letterbox_geometry(height, width, side)
    yx = np.asarray(yx_norm, dtype=np.float64)
    x = (yx[..., 1] * side - pad_x) * (width / rw) - 0.5
    y = (yx[..., 0] * side - pad_y) * (height / rh) - 0.5
    return np.stack([x, y], axis=-1)


def image_to_letterbox(xy_px: np.ndarray, height: int, width: int, side: int) -> np.ndarray:
    """The inverse of :func:`letterbox_to_image`: ``(..., 2)`` ``(x, y)`` image px -> ``(y, x)``
    normalised to the padded square."""
    rw, rh, pad_x, pad_y = letterbox_geometry(height, width, side)
    xy = np.asarray(xy_px, dtype=np.float64)
    xn = ((xy[..., 0] + 0.5) * (rw / width) + pad_x) / side
    yn = ((xy[..., 1] + 0.5) * (rh / height) + pad_y) / side
    return np.stack([yn, xn], axis=-1)


def letterbox(bgr: np.ndarray, side: int) -> np.ndarray:
    """The square MoveNet sees: ``(H, W, 3)`` uint8 BGR -> ``(side, side, 3)`` int32 RGB,
    resized bilinearly at pixel centres (no antialiasing) and padded with black. The same
    arithmetic as the node worker's ``letterbox``."""
    image = np.asarray(bgr)
    height, width = image.shape[:2]
    rw, rh, pad_x, pad_y = letterbox_geometry(height, width, side)

    def taps(n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        v = np.clip((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0, n_in - 1)
        lo = np.floor(v).astype(int)
        return lo, np.minimum(lo + 1, n_in - 1), v - lo

    x0, x1, fx = taps(rw, width)
    y0, y1, fy = taps(rh, height)
    src = image.astype(np.float64)
    top = src[y0][:, x0] + (src[y0][:, x1] - src[y0][:, x0]) * fx[None, :, None]
    bottom = src[y1][:, x0] + (src[y1][:, x1] - src[y1][:, x0]) * fx[None, :, None]
    resized = top + (bottom - top) * fy[:, None, None]
    out = np.zeros((side, side, 3), dtype=np.int32)
    # round half up, as JavaScript's Math.round
    out[pad_y : pad_y + rh, pad_x : pad_x + rw] = np.floor(resized[..., ::-1] + 0.5)
    return out


# --------------------------------------------------------------------------------------------
# MPII: the crop of the frame every model sees
# --------------------------------------------------------------------------------------------

MPII_CROP_FACTOR = 1.5  # the crop's side, in hourglass boxes


def mpii_crop_bounds(
    center: Sequence[float], scale: float, width: int, height: int, factor: float = MPII_CROP_FACTOR
) -> tuple[int, int, int, int]:
    """``(x0, y0, x1, y1)`` (columns ``x0 .. x1 - 1``, rows ``y0 .. y1 - 1``) of the crop of an
    MPII frame around one annotated person: the square of side ``factor * 200 * scale`` px
    around ``center`` (valid.h5's ``center`` and ``scale``, which already hold the hourglass
    adjustment: centre ``objpos + (0, 15 s)``, box side ``200 * 1.25 s`` of the json's ``s``),
    intersected with the frame (no padding, no resampling)."""
    if not scale > 0 or width < 1 or height < 1:
        raise ValueError(f"scale > 0 and a non-empty frame needed, got {scale}, {width}x{height}")
    half = factor * 200.0 * scale / 2
    cx, cy = float(center[0]), float(center[1])
    x0 = max(0, math.floor(cx - half + 0.5))
    y0 = max(0, math.floor(cy - half + 0.5))
    x1 = min(width, math.floor(cx + half + 0.5))
    y1 = min(height, math.floor(cy + half + 0.5))
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"the crop around {center} (scale {scale}) misses the frame")
    return x0, y0, x1, y1


# --------------------------------------------------------------------------------------------
# The decoded images the workers read: one raw file of uint8 BGR arrays
# --------------------------------------------------------------------------------------------


def write_raw(images: Sequence[np.ndarray], path: Path) -> list[list[int]]:
    """Write ``(H, W, 3)`` uint8 images back to back to ``path``; returns their
    ``[offset, height, width]`` for the workers' ``load`` request."""
    items = []
    offset = 0
    with open(path, "wb") as f:
        for image in images:
            a = np.ascontiguousarray(image, dtype=np.uint8)
            if a.ndim != 3 or a.shape[2] != 3:
                raise ValueError(f"images must be (H, W, 3) uint8, got {a.shape}")
            f.write(a.tobytes())
            items.append([offset, int(a.shape[0]), int(a.shape[1])])
            offset += a.nbytes
    return items


def read_raw(path: str | Path, items: Sequence[Sequence[int]]) -> list[np.ndarray]:
    """The images of :func:`write_raw`, copied one by one out of a memory map (so the file can
    go, and the peak memory holds the images once)."""
    data = np.memmap(path, dtype=np.uint8, mode="r")
    out = []
    for o, h, w in ((int(a), int(b), int(c)) for a, b, c in items):
        out.append(np.array(data[o : o + h * w * 3]).reshape(h, w, 3))
    del data
    return out


def _mediapipe_estimator() -> tuple[Callable[[np.ndarray], Any], dict[str, Any]]:
    """The BlazePose "full" estimator: ``rgb (H, W, 3) uint8 -> (33, 4) landmarks or None``."""
    import mediapipe as mp

    pose_module = mp.solutions.pose
    pose = pose_module.Pose(
        static_image_mode=True,
        model_complexity=1,
        smooth_landmarks=False,
        enable_segmentation=False,
        min_detection_confidence=0.5,
    )

    def estimate(rgb: np.ndarray) -> Any:
        result = pose.process(rgb)
        if result.pose_landmarks is None:
            return None
        return [(p.x, p.y, p.z, p.visibility) for p in result.pose_landmarks.landmark]

    package = Path(mp.__file__).parent / "modules"
    models = sorted(
        str(p.relative_to(package.parent)) for p in package.glob("pose_*/*.tflite") if p.is_file()
    )
    sizes = {}
    for name in MEDIAPIPE_MODEL_FILES:
        found = sorted(Path(mp.__file__).parent.rglob(name))
        sizes[name] = round(found[0].stat().st_size / 1e6, 3) if found else None
    info = {
        "mediapipe": mp.__version__,
        "api": "mediapipe.solutions.pose.Pose(static_image_mode=True, model_complexity=1, "
        "smooth_landmarks=False, enable_segmentation=False, min_detection_confidence=0.5)",
        "model": "BlazePose full (pose_detection.tflite + pose_landmark_full.tflite)",
        "model_files_in_wheel": models,
        "model_file_sizes_mb": sizes,
        "threads": "TFLite + XNNPACK, 1 thread (MediaPipe's desktop default; not settable "
        "from the Python solution API)",
    }
    return estimate, info


def _status_kb(field: str) -> int | None:
    """A ``kB`` field of ``/proc/self/status`` (Linux), or None. (``dsntpose.bench`` has the
    same reader; the MediaPipe worker runs this file without dsntpose or torch installed.)"""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def rss_baseline() -> dict[str, Any]:
    """The start of a peak-memory measurement of this process: its resident set now (VmRSS,
    kB), its ``ru_maxrss`` (kB on Linux), and whether its peak (VmHWM) could be reset to the
    current resident set (``/proc/self/clear_refs``; else VmHWM stays the lifetime peak)."""
    import resource

    try:
        Path("/proc/self/clear_refs").write_text("5")
        reset = True
    except OSError:
        reset = False
    return {
        "rss_kb": _status_kb("VmRSS"),
        "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "reset": reset,
    }


def rss_peak_growth(baseline: dict[str, Any]) -> tuple[float, str]:
    """Peak resident-set growth since ``rss_baseline()`` in MiB, and how it was measured:
    VmHWM now minus VmRSS then (``/proc/self/status``), else ``ru_maxrss`` now minus then."""
    import resource

    peak_kb = _status_kb("VmHWM")
    if peak_kb is not None and baseline["rss_kb"] is not None:
        peak = "reset at the start" if baseline["reset"] else "the process's lifetime peak"
        how = f"/proc/self/status VmHWM after ({peak}) - VmRSS before"
        return (peak_kb - baseline["rss_kb"]) / 1024, how
    maxrss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return (maxrss_kb - baseline["maxrss_kb"]) / 1024, "resource.getrusage ru_maxrss after - before"


def serve(
    stdin: IO[str],
    stdout: IO[str],
    make_estimator: Callable[[], tuple[Callable[[np.ndarray], Any], dict[str, Any]]],
) -> None:
    """The worker loop: one JSON request per line on ``stdin``, one JSON answer per line.

    Requests: ``{"op": "load", "raw": FILE, "items": [[offset, H, W], ...]}`` (keep the
    decoded BGR images of :func:`write_raw`; or ``{"op": "load", "paths": [...]}`` to decode
    files; answers their sizes), ``{"op": "run", "index": i}`` (estimate on image ``i``: answers ``landmarks`` or
    null, ``ms`` wall and ``cpu_ms`` process CPU time of BGR->RGB + estimate + mapping to px),
    ``{"op": "memory"}`` (the process's peak resident-set growth in MiB since just before
    ``make_estimator()``, i.e. over loading the model and everything run since, and the MiB of
    the decoded images it holds), ``{"op": "quit"}``. An error answers ``{"error": message}``.
    """
    import cv2

    baseline = rss_baseline()
    estimate, info = make_estimator()
    info = {**info, "opencv": cv2.__version__, "numpy": np.__version__, "python": sys.version}
    images: list[np.ndarray] = []

    def answer(obj: dict[str, Any]) -> None:
        stdout.write(json.dumps(obj) + "\n")
        stdout.flush()

    answer({"ready": True, "info": info})
    for line in stdin:
        if not line.strip():
            continue
        try:
            req = json.loads(line)
            op = req.get("op")
            if op == "quit":
                answer({"bye": True})
                return
            if op == "load" and "raw" in req:
                images = read_raw(req["raw"], req["items"])
                answer({"sizes": [[int(im.shape[1]), int(im.shape[0])] for im in images]})
            elif op == "load":
                images = []
                for path in req["paths"]:
                    image = cv2.imread(path, cv2.IMREAD_COLOR)
                    if image is None:
                        raise OSError(f"cannot read image {path}")
                    images.append(image)
                answer({"sizes": [[int(im.shape[1]), int(im.shape[0])] for im in images]})
            elif op == "memory":
                growth, method = rss_peak_growth(baseline)
                held = sum(im.nbytes for im in images) / 2**20
                answer({"peak_growth_mib": growth, "images_mib": held, "method": method})
            elif op == "run":
                bgr = images[int(req["index"])]
                t0, c0 = time.perf_counter(), time.process_time()
                rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                landmarks = estimate(rgb)
                joints = mediapipe_to_lsp(landmarks, bgr.shape[1], bgr.shape[0])
                ms = 1e3 * (time.perf_counter() - t0)
                cpu_ms = 1e3 * (time.process_time() - c0)
                answer(
                    {
                        "landmarks": landmarks,
                        "joints": [
                            [None if math.isnan(v) else v for v in p] for p in joints.tolist()
                        ],
                        "ms": ms,
                        "cpu_ms": cpu_ms,
                    }
                )
            else:
                raise ValueError(f"unknown op {op!r}")
        except Exception as error:  # the worker reports and keeps serving
            answer({"error": f"{type(error).__name__}: {error}"})


def worker_main() -> None:
    """``python benchmarks/peers.py --mediapipe-worker``: serve on stdin/stdout. MediaPipe's and TFLite's
    own messages are sent to stderr so that stdout carries only the protocol. MediaPipe is
    imported here, before ``serve`` takes its memory baseline: the library's import (about
    110 MiB of RSS) is not the model's memory."""
    protocol = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # C-level prints go to stderr
    sys.stdout = sys.stderr
    import mediapipe  # noqa: F401

    serve(sys.stdin, protocol, _mediapipe_estimator)
