"""Same-run comparison of a dsntpose model and MediaPipe BlazePose on the 1000 LSP test images.

    .venv/bin/python benchmarks/peers.py [--checkpoint PATH] [--also LABEL=CHECKPOINT ...]
        [--data_root DIR] [--limit N] [--threads N] [--rounds R] [--latency-images K]
        [--json FILE] [--markdown FILE] [--quick]

Both models see the same images (LSP 1001-2000) in the same process tree and are scored by the
same code:

* **Accuracy**: PCK@0.2 of the torso (right shoulder -- left hip of the ground truth, original
  image px) over LSP's 12 limb joints (neck and head top are left out: MediaPipe has neither).
  Two protocols: *visible* joints only (LSP's flag says not occluded; the protocol of the
  81.8% quoted for MediaPipe in the issue) and *all* annotated joints (the usual LSP protocol).
  The Total is count-weighted (all correct over all counted joints); the plain mean of the 12
  joints is reported too. Groups are the mean of their left and right joint.
* **Who finds the person**: ours is given the person box from the annotations (the square
  around the labelled joints plus 20% margin, exactly as ``dsntpose.data.LSP`` crops it).
  MediaPipe gets the whole image and finds the person with its own detector. A MediaPipe
  image without a detection counts as a miss for every joint of it.
* **Latency**: batch 1 on the CPU, both models interleaved image by image over the same images
  (the order alternates each image), several rounds; median and p90 per image. Both start from
  the decoded image as ``cv2.imread`` gives it (uint8 BGR) and end with joints in image px.
  Ours: crop warp + BGR->RGB + scaling to [0, 1] + model + back-projection (the box comes from
  the annotations and is not timed). MediaPipe: BGR->RGB + ``Pose.process`` (detector +
  landmark model + its own pre/post-processing) + landmarks to px. JPEG decoding is the same
  for both and timed separately.
* **More dsntpose models** (``--also LABEL=CHECKPOINT``, repeatable; any checkpoint of LSP
  joints): each is scored and timed exactly as ours (plain and flip, both protocols, in the
  same interleaved latency loop), as contenders ``also1``, ``also1_flip``, ... (``doc["also"]``
  keeps their labels and checkpoints).
* **Efficiency** (``doc["efficiency"]``): for each dsntpose network its parameters (millions),
  multiply-adds of one batch-1 forward (GMACs) and peak inference memory (MiB), measured by
  ``dsntpose.bench.measure_model`` alone in a fresh process at one thread, for the network of
  the checkpoint's own ModelConfig. For MediaPipe the worker's peak resident-set growth
  (``/proc/self/status`` VmHWM after minus VmRSS before) over loading its models and running
  them, less the decoded images it holds, and the sizes of its two ``.tflite`` files; its
  Python API exposes no parameter or MAC counts, so those are null.

MediaPipe needs ``numpy<2``, so it runs in its own virtualenv (``.venv-mediapipe`` at the repo
root, created with ``pip install mediapipe==0.10.21 "numpy<2" opencv-python-headless`` on first
use) as a worker process: this same file run as ``python peers.py --mediapipe-worker``, which
answers one JSON line per request on stdin/stdout and times each call itself, so the pipe is
not timed. The model is the legacy ``mediapipe.solutions.pose.Pose(static_image_mode=True,
model_complexity=1)``: BlazePose "full", whose files (``pose_detection.tflite``,
``pose_landmark_full.tflite``) ship inside the wheel. On desktop Linux MediaPipe's TFLite
inference runs with XNNPACK on **one** thread (``GetXnnpackDefaultNumThreads`` returns 1 off
Android/iOS, and the Python solution offers no setting), so ``--threads 1`` (the default) is
the like-for-like setting for ours; the report gives each side's CPU time per image too, which
shows the cores it really used.

This file imports only the standard library and numpy at the top, so the worker runs in the
MediaPipe venv without torch or dsntpose.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA_ROOT = REPO.parent / "shared" / "data" / "lsp"
DEFAULT_VENV = REPO / ".venv-mediapipe"
DEFAULT_JSON = REPO / "docs" / "results" / "peers.json"
DEFAULT_MARKDOWN = REPO / "docs" / "results" / "peers.md"
MEDIAPIPE_REQUIREMENTS = ("mediapipe==0.10.21", "numpy<2", "opencv-python-headless")
ISSUE_MEDIAPIPE_PCK = 81.8  # the issue's figure: visible limb joints, PCK@0.2
ISSUE_MEDIAPIPE_MS = 33.0
# the two TFLite files BlazePose full runs (model_complexity=1), inside the mediapipe package
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
            for name, js in GROUPS.items()
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


# --------------------------------------------------------------------------------------------
# The MediaPipe worker (runs inside .venv-mediapipe: standard library, numpy, cv2, mediapipe)
# --------------------------------------------------------------------------------------------


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

    Requests: ``{"op": "load", "paths": [...]}`` (decode and keep the images; answers their
    sizes), ``{"op": "run", "index": i}`` (estimate on image ``i``: answers ``landmarks`` or
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
            if op == "load":
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
    """``python peers.py --mediapipe-worker``: serve on stdin/stdout. MediaPipe's and TFLite's
    own messages are sent to stderr so that stdout carries only the protocol. MediaPipe is
    imported here, before ``serve`` takes its memory baseline: the library's import (about
    110 MiB of RSS) is not the model's memory."""
    protocol = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # C-level prints go to stderr
    sys.stdout = sys.stderr
    import mediapipe  # noqa: F401

    serve(sys.stdin, protocol, _mediapipe_estimator)


# --------------------------------------------------------------------------------------------
# The main side: the venv, the worker client, our model
# --------------------------------------------------------------------------------------------


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def ensure_mediapipe_venv(venv: Path) -> Path:
    """The MediaPipe venv's python, creating the venv and installing MediaPipe when needed."""
    python = venv_python(venv)
    check = [str(python), "-c", "import mediapipe, cv2, numpy; assert numpy.__version__ < '2'"]
    if python.is_file() and subprocess.run(check, capture_output=True).returncode == 0:
        return python
    print(f"[peers] setting up {venv} ({' '.join(MEDIAPIPE_REQUIREMENTS)}) ...", file=sys.stderr)
    try:
        if not python.is_file():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", *MEDIAPIPE_REQUIREMENTS], check=True
        )
    except (subprocess.CalledProcessError, OSError) as error:
        raise PeersError(
            f"could not set up the MediaPipe venv {venv}: {error}; create it by hand with "
            f"`python3 -m venv {venv} && {python} -m pip install "
            + " ".join(f'"{r}"' for r in MEDIAPIPE_REQUIREMENTS)
            + "`"
        ) from None
    if subprocess.run(check, capture_output=True).returncode != 0:
        raise PeersError(f"{venv}: mediapipe still does not import after installing it")
    return python


class MediaPipeWorker:
    """Client of the worker process (``serve``) in the MediaPipe venv."""

    def __init__(self, python: Path, threads: int) -> None:
        env = dict(os.environ)
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = str(threads)
        env.setdefault("GLOG_minloglevel", "2")
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        self.proc = subprocess.Popen(
            [str(python), str(Path(__file__).resolve()), "--mediapipe-worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL if not os.environ.get("PEERS_DEBUG") else None,
            text=True,
            env=env,
        )
        hello = self._read()
        self.info: dict[str, Any] = hello["info"]

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise PeersError(
                f"the MediaPipe worker exited (status {self.proc.poll()}); rerun with "
                "PEERS_DEBUG=1 to see its messages"
            )
        msg: dict[str, Any] = json.loads(line)
        if "error" in msg:
            raise PeersError(f"MediaPipe worker: {msg['error']}")
        return msg

    def request(self, **req: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def load(self, paths: Sequence[str]) -> list[list[int]]:
        sizes: list[list[int]] = self.request(op="load", paths=list(paths))["sizes"]
        return sizes

    def run(self, index: int) -> tuple[np.ndarray, bool, float, float]:
        """``(joints (14, 2) px, detected, ms, cpu_ms)`` for loaded image ``index``."""
        msg = self.request(op="run", index=index)
        joints = np.array(
            [[math.nan if v is None else v for v in p] for p in msg["joints"]], dtype=np.float64
        )
        return joints, msg["landmarks"] is not None, float(msg["ms"]), float(msg["cpu_ms"])

    def memory(self) -> dict[str, Any]:
        """The worker's ``memory`` answer: ``peak_growth_mib``, ``images_mib``, ``method``."""
        return self.request(op="memory")

    def close(self) -> None:
        try:
            self.request(op="quit")
        except (PeersError, OSError, ValueError):
            pass
        self.proc.wait(timeout=30)


def load_ours(checkpoint: Path | None) -> tuple[Any, Any, str]:
    """``(model, model_cfg, description)``: the checkpoint, or the shipped model."""
    from dsntpose.checkpoint import load_checkpoint

    if checkpoint is not None:
        try:
            model, cfg, _ = load_checkpoint(checkpoint, joints="lsp")
        except (FileNotFoundError, ValueError) as error:
            raise PeersError(str(error)) from None
        return model, cfg, str(checkpoint)
    from dsntpose import zoo

    try:
        model, cfg, _ = zoo.load_pretrained()
    except FileNotFoundError as error:
        raise PeersError(
            f"no checkpoint given and no shipped model yet ({error}); pass --checkpoint PATH"
        ) from None
    return model, cfg, f"shipped model {zoo.DEFAULT_MODEL} ({zoo.pretrained_path()})"


class Ours:
    """Our full single-image pipeline: decoded BGR image + box -> joints in image px."""

    def __init__(self, model: Any, cfg: Any, flip: bool) -> None:
        import torch

        from dsntpose.data.joints import get_joint_set
        from dsntpose.data.transforms import crop_matrix, invert_affine, to_chw_rgb, warp_image
        from dsntpose.evaluate import back_project, flip_test

        self.torch = torch
        self.crop_matrix, self.invert_affine = crop_matrix, invert_affine
        self.to_chw_rgb, self.warp_image = to_chw_rgb, warp_image
        self.back_project, self.flip_test = back_project, flip_test
        self.model = model.eval()
        self.size = int(cfg.input_size)
        self.flip = flip
        self.joint_set = get_joint_set("lsp")
        if cfg.joints != "lsp":
            raise PeersError(f"the model predicts {cfg.joints} joints; LSP joints are needed")

    def __call__(self, bgr: np.ndarray, center: np.ndarray, side: float) -> np.ndarray:
        torch = self.torch
        matrix = self.crop_matrix(center, side, self.size)
        crop = self.warp_image(bgr, matrix, self.size)
        x = torch.from_numpy(self.to_chw_rgb(crop, bgr=True))[None]
        with torch.inference_mode():
            if self.flip:
                coords = self.flip_test(self.model, x, self.joint_set).coords
            else:
                coords = self.model(x).coords
        out = self.back_project(coords[0].double(), self.invert_affine(matrix), self.size)
        return out.numpy()


def parse_also(items: Sequence[str]) -> list[tuple[str, Path]]:
    """The ``--also LABEL=CHECKPOINT`` values as ``[(label, path)]`` (split at the first ``=``;
    labels unique and not empty); a malformed one is a PeersError."""
    out: list[tuple[str, Path]] = []
    for item in items:
        label, sep, path = item.partition("=")
        label, path = label.strip(), path.strip()
        if not sep or not label or not path:
            raise PeersError(
                f"--also {item!r}: expected LABEL=CHECKPOINT, e.g. "
                '--also "stage 1=runs/stage1_lsp_efficientnet_lite0.pt"'
            )
        if label in (seen for seen, _ in out):
            raise PeersError(f"--also: the label {label!r} is given twice")
        out.append((label, Path(path)))
    return out


def load_also(items: Sequence[str]) -> list[dict[str, Any]]:
    """The extra dsntpose models of ``--also``: ``{"key": "also<i>", "label", "checkpoint",
    "model", "cfg"}`` each, loaded as ``load_ours`` loads one (LSP joints required)."""
    extras = []
    for number, (label, path) in enumerate(parse_also(items), 1):
        try:
            model, cfg, _ = load_ours(path)
        except PeersError as error:
            raise PeersError(f"--also {label}: {error}") from None
        extras.append(
            {
                "key": f"also{number}",
                "label": label,
                "checkpoint": str(path),
                "model": model,
                "cfg": cfg,
            }
        )
    return extras


def _measure_dsntpose(checkpoint: str | None, threads: int, calls: int = 5) -> dict[str, Any]:
    """Parameters, multiply-adds and peak memory of a dsntpose model, in this process.

    Memory is measured as MediaPipe's is (``rss_peak_growth`` in its worker): the resident
    set's peak above a baseline taken after the libraries are imported, over loading the
    model from ``checkpoint`` (None: the shipped model) and ``calls`` flip-test forwards
    (batch 2, the way ours runs per person). Multiply-adds come from
    ``dsntpose.bench.measure_model`` on the checkpoint's own network (its joint set and
    activation). Clean only in a fresh process (``measure_efficiency``).
    """
    import torch

    from dsntpose import bench
    from dsntpose.model import model_name

    torch.set_num_threads(threads)
    baseline = rss_baseline()
    model, cfg, _ = load_ours(None if checkpoint is None else Path(checkpoint))
    x = torch.rand(2, 3, cfg.input_size, cfg.input_size)
    with torch.inference_mode():
        for _ in range(calls):
            model(x)
    peak, method = rss_peak_growth(baseline)
    del model
    row = bench.measure_model(
        model_name(cfg), config=cfg, threads=threads, phases=("timing",), repeats=2, warmup=1,
        throughput_batch=2, throughput_repeats=1,
    )  # fmt: skip
    return {
        "params_m": row["params_m"],
        "gmacs": row["gmacs"],
        "head_gmacs": row["head_gmacs"],
        "peak_memory_mib": peak,
        "memory_method": method,
        "input_size": cfg.input_size,
        "threads": threads,
        "calls": calls,
    }


def measure_efficiency(checkpoint: str | None, threads: int = 1) -> dict[str, Any]:
    """Parameters (millions), multiply-adds of one batch-1 forward (GMACs) and peak memory
    (MiB) of a dsntpose model: ``_measure_dsntpose`` in a fresh process, so that no other
    model's peak hides this one's, at ``threads`` torch threads.

    Raises:
        PeersError: the child process failed (its last error line is given).
    """
    import subprocess

    # this file run again as its own worker (as for MediaPipe), so that the child finds the
    # function however this module was imported
    command = [sys.executable, str(Path(__file__).resolve()), "--efficiency-worker"]
    command += ["--threads", str(threads)] + (["--checkpoint", checkpoint] if checkpoint else [])
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise PeersError(f"measuring {checkpoint or 'the shipped model'} failed: {last}")
    row = json.loads(lines[-1])
    peak = row["peak_memory_mib"]
    return {
        "params_m": round(row["params_m"], 4),
        "gmacs": round(row["gmacs"], 4),
        "head_gmacs": round(row["head_gmacs"], 5),
        "peak_memory_mib": None if peak is None or math.isnan(peak) else round(peak, 1),
        "input_size": row["input_size"],
        "threads": row["threads"],
        "memory_method": row["memory_method"],
        "how": f"fresh process, {row['threads']} thread; MACs of one batch-1 "
        f"{row['input_size']} px forward (torch FlopCounterMode, GFLOPs / 2; flip doubles "
        f"them); memory: {row['memory_method']} above the process with torch and dsntpose "
        f"imported, over loading the model and {row['calls']} flip-test forwards (batch 2), "
        "as MediaPipe's worker measures its own",
    }


def mediapipe_efficiency(
    info: dict[str, Any], memory: dict[str, Any], images: int, calls: int
) -> dict[str, Any]:
    """MediaPipe's efficiency entry from the worker's ``info`` and ``memory`` answers: peak
    memory (MiB) less the decoded images the worker holds, the .tflite file sizes (MB,
    10^6 bytes); parameters and MACs null (its Python API does not expose them)."""
    growth, held = float(memory["peak_growth_mib"]), float(memory["images_mib"])
    return {
        "params_m": None,
        "gmacs": None,
        "peak_memory_mib": round(growth - held, 1),
        "peak_rss_growth_mib": round(growth, 1),
        "decoded_images_mib": round(held, 1),
        "memory_method": memory["method"],
        "model_file_sizes_mb": info.get("model_file_sizes_mb", {}),
        "how": f"worker process, {memory['method']}: loading the model and {calls} calls on "
        f"{images} images, less the {held:.1f} MiB of decoded images it holds (the library's "
        "import is before the baseline)",
        "note": "MediaPipe's Python API exposes neither the parameter count nor the "
        "multiply-adds of its TFLite models: null here; the sizes of its two .tflite files "
        "stand in for the model's size.",
    }


def predict_ours_dataset(
    model: Any, cfg: Any, root: Path, limit: int, batch: int = 16
) -> dict[str, np.ndarray]:
    """Predictions of ours on the LSP test crops (batched), without and with flip test."""
    import torch

    from dsntpose.data import LSP
    from dsntpose.data.joints import get_joint_set
    from dsntpose.evaluate import back_project, flip_test

    data = LSP(root, "test", size=cfg.input_size)
    n = min(limit, len(data))
    joint_set = get_joint_set("lsp")
    plain, flipped = [], []
    for start in range(0, n, batch):
        samples = [data[i] for i in range(start, min(start + batch, n))]
        images = torch.stack([s["image"] for s in samples])
        inverse = torch.stack([s["inverse"] for s in samples])
        with torch.inference_mode():
            c_plain = model(images).coords
            c_flip = flip_test(model, images, joint_set).coords
        plain.append(back_project(c_plain.double(), inverse, cfg.input_size).numpy())
        flipped.append(back_project(c_flip.double(), inverse, cfg.input_size).numpy())
    return {"plain": np.concatenate(plain), "flip": np.concatenate(flipped)}


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def machine_info(threads: int) -> dict[str, Any]:
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    return {
        "cpu": name,
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "threads": threads,
        "load_average_at_start": [round(v, 2) for v in os.getloadavg()],
        "platform": platform.platform(),
    }


def _fmt(v: float | None, digits: int = 1) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def render_markdown(doc: dict[str, Any]) -> str:
    """The report as markdown: the PCK tables (both protocols), the latency table and, where
    the document has them, the efficiency table; a row per contender, ``--also`` ones too."""
    rows = doc["pck"]
    names = {"ours": "dsntpose", **{e["key"]: e["label"] for e in doc.get("also", [])}}
    labels = {"mediapipe": "MediaPipe BlazePose full (own detector)"}
    for key, name in names.items():
        labels[key] = f"{name} (annotation box)"
        labels[f"{key}_flip"] = f"{name} + flip (annotation box)"
    groups = list(GROUPS)
    lines = [
        "# dsntpose against MediaPipe BlazePose on LSP test",
        "",
        f"Run {doc['date']} on {doc['machine']['cpu']} ({doc['machine']['usable_cores']} usable "
        f"cores, load average {doc['machine']['load_average_at_start']} at the start), "
        f"{doc['data']['images']} LSP test images ({doc['data']['first']}..{doc['data']['last']}).",
        "",
        f"* Ours: {doc['ours']['model']} ({doc['ours']['backbone']}, {doc['ours']['input_size']} px"
        "), **given the person box from the annotations** (joint box + 20% margin, as "
        "`dsntpose.data.LSP`).",
        *(
            f"* {e['label']}: {e['checkpoint']} ({e['backbone']}, {e['input_size']} px, "
            f"{e['head']} head, output stride {e['output_stride']}), the same annotation boxes."
            for e in doc.get("also", [])
        ),
        f"* MediaPipe {doc['mediapipe']['mediapipe']}: `{doc['mediapipe']['api']}`, **whole image, "
        f"finds the person itself**; no detection on {doc['mediapipe']['no_detection']} images "
        "(all their joints count as misses).",
        "* PCK@0.2 of the torso (r_shoulder -- l_hip, image px) over the 12 limb joints (neck "
        "and head top excluded). Total: count-weighted; Mean12: plain mean of the 12 joints.",
        "",
    ]
    for protocol, title in (
        ("visible", "Visible joints (LSP flag: not occluded)"),
        ("all", "All annotated joints"),
    ):
        lines += [
            f"## PCK@0.2, {title}",
            "",
            "| model | " + " | ".join(groups) + " | Total | Mean12 | joints |",
            "|---|" + "---:|" * (len(groups) + 3),
        ]
        for key, res in rows.items():
            r = res[protocol]
            lines.append(
                f"| {labels.get(key, key)} | "
                + " | ".join(_fmt(r["groups"][g]) for g in groups)
                + f" | **{_fmt(r['total'])}** | {_fmt(r['total_unweighted'])} | {r['counted']} |"
            )
        lines.append("")
    mp_vis = rows["mediapipe"]["visible"]["total"]
    lines += [
        f"MediaPipe, visible limb joints: {_fmt(mp_vis)}% here against the issue's "
        f"{ISSUE_MEDIAPIPE_PCK}%.",
        "",
    ]
    det = doc.get("pck_detected_only", {})
    if det.get("results"):
        lines += [
            f"Diagnostic, visible limb joints on the {det['images']} images where MediaPipe "
            "found a person (hides its misses): "
            + ", ".join(
                f"{labels.get(k, k)} {_fmt(r['total'])}%" for k, r in det["results"].items()
            )
            + ".",
            "",
        ]
    lat = doc["latency"]
    lines += [
        f"## Latency (batch 1, CPU, {lat['threads']} thread(s), interleaved)",
        "",
        f"{lat['images']} images x {lat['rounds']} rounds each, after {lat['warmup']} warm-up "
        "images; the contenders alternate image by image. " + lat["included"],
        "",
        "| model | median ms | p90 ms | mean ms | CPU ms (median) | timings |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for key, t in lat["results"].items():
        lines.append(
            f"| {labels.get(key, key)} | {t['median_ms']:.2f} | {t['p90_ms']:.2f} | "
            f"{t['mean_ms']:.2f} | {t['cpu_median_ms']:.2f} | {t['n']} |"
        )
    lines += [
        "",
        f"JPEG decode (cv2.imread, not in the figures above, the same for both): median "
        f"{lat['decode']['median_ms']:.2f} ms.",
        "",
    ]
    for name, ratio in lat["ratios"].items():
        lines.append(f"* {name}: {ratio:.2f}x")
    lines += ["", f"Threads: {lat['threading']}", ""]
    efficiency = doc.get("efficiency")
    if efficiency:
        names["mediapipe"] = "MediaPipe BlazePose full (detector + landmark model)"
        lines += [
            "## Efficiency",
            "",
            "Parameters, multiply-adds at batch 1 and peak inference memory; each dsntpose "
            "network measured alone in a fresh process.",
            "",
            "| model | params M | GMACs | peak memory MiB | how measured |",
            "|---|---:|---:|---:|---|",
        ]
        for key, e in efficiency.items():
            lines.append(
                f"| {names.get(key, key)} | "
                + " | ".join(
                    "n/a" if e[k] is None else f"{e[k]:.{d}f}"
                    for k, d in (("params_m", 2), ("gmacs", 3), ("peak_memory_mib", 1))
                )
                + f" | {e['how']} |"
            )
        lines.append("")
        files = efficiency.get("mediapipe", {}).get("model_file_sizes_mb")
        if files:
            lines.append(
                "MediaPipe's model files: "
                + ", ".join(f"{name} {_fmt(mb, 2)} MB" for name, mb in files.items())
                + " (1 MB = 10^6 bytes)."
            )
            lines.append("")
        lines += [f"* {e['note']}" for e in efficiency.values() if e.get("note")]
        lines += [
            "* The memory figures are not measured alike: dsntpose's is the growth of one "
            "flip-test forward with the model already built (its float32 weights, 4 bytes per "
            "parameter, are not in it); MediaPipe's includes loading its models.",
            "",
        ]
    if doc.get("notes"):
        lines += ["## Notes", ""] + [f"* {n}" for n in doc["notes"]] + [""]
    lines.append(f"Command: `{doc['command']}`")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_root", type=Path, default=DEFAULT_DATA_ROOT)
    parser.add_argument(
        "--checkpoint", type=Path, help="Lightning or save_model file (default: shipped model)"
    )
    parser.add_argument(
        "--also",
        action="append",
        default=[],
        metavar="LABEL=CHECKPOINT",
        help="one more dsntpose model (LSP joints), scored and timed as ours (repeatable)",
    )
    parser.add_argument("--limit", type=int, help="only the first N test images")
    parser.add_argument("--threads", type=int, default=1, help="torch/OpenCV threads of ours")
    parser.add_argument("--rounds", type=int, help="latency rounds over the images (default 5)")
    parser.add_argument(
        "--latency-images", type=int, help="images timed per round, spread evenly (default 200)"
    )
    parser.add_argument("--warmup", type=int, default=10, help="untimed images per contender")
    parser.add_argument(
        "--json",
        type=Path,
        help="write the results here (a full run's default: docs/results/peers.json)",
    )
    parser.add_argument(
        "--markdown",
        type=Path,
        help="write the report here (a full run's default: docs/results/peers.md)",
    )
    parser.add_argument("--no-write", action="store_true", help="print only, write no files")
    parser.add_argument("--venv", type=Path, default=DEFAULT_VENV, help="the MediaPipe venv")
    parser.add_argument(
        "--quick", action="store_true", help="50 images, 20 timed images x 2 rounds (a smoke run)"
    )
    parser.add_argument(
        "--note", action="append", default=[], help="a line for the report's notes (repeatable)"
    )
    parser.add_argument("--mediapipe-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--efficiency-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.limit = args.limit or 50
        args.rounds = args.rounds or 2
        args.latency_images = args.latency_images or 20
    args.rounds = args.rounds or 5
    args.latency_images = args.latency_images or 200
    for name in ("limit", "rounds", "latency_images", "threads"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    return args


def check_inputs(args: argparse.Namespace) -> None:
    """Fail early, with one line, on inputs that cannot work."""
    if args.checkpoint is not None and not args.checkpoint.is_file():
        raise PeersError(f"checkpoint not found: {args.checkpoint}")
    for label, path in parse_also(args.also):
        if not path.is_file():
            raise PeersError(f"--also {label}: checkpoint not found: {path}")
    root = args.data_root
    if not (root / "joints.mat").is_file() or not (root / "images").is_dir():
        raise PeersError(
            f"LSP data not found at {root}: expected joints.mat and images/ there "
            "(pass --data_root DIR)"
        )


def run(args: argparse.Namespace) -> dict[str, Any]:
    check_inputs(args)
    import cv2
    import torch

    from dsntpose.data.lsp import LSP

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    machine = machine_info(args.threads)
    model, cfg, model_desc = load_ours(args.checkpoint)
    extras = load_also(args.also)
    # every dsntpose contender: key -> (model, cfg); "ours" first
    dsnt = {"ours": (model, cfg), **{e["key"]: (e["model"], e["cfg"]) for e in extras}}
    try:
        data = LSP(args.data_root, "test", size=cfg.input_size)
    except (FileNotFoundError, ValueError) as error:
        raise PeersError(str(error)) from None
    n = min(args.limit or len(data), len(data))
    gt = data.joints[:n].astype(np.float64)
    missing, visible = data.missing[:n], data.visible[:n]
    paths = data.image_paths[:n]

    # -- MediaPipe worker
    python = ensure_mediapipe_venv(args.venv)
    worker = MediaPipeWorker(python, args.threads)
    try:
        sizes = worker.load(paths)
        print(f"[peers] MediaPipe {worker.info['mediapipe']} ready; {n} images", file=sys.stderr)

        # -- accuracy: MediaPipe on every image, ours batched on the dataset crops
        mp_preds = np.full((n, NUM_LSP, 2), np.nan)
        detected = np.zeros(n, dtype=bool)
        for i in range(n):
            mp_preds[i], detected[i], _, _ = worker.run(i)
        preds: dict[str, np.ndarray] = {}
        for key, (m, c) in dsnt.items():
            both = predict_ours_dataset(m, c, args.data_root, n)
            preds[key], preds[f"{key}_flip"] = both["plain"], both["flip"]
        preds["mediapipe"] = mp_preds
        pck = {key: score_both(p, gt, visible, missing) for key, p in preds.items()}
        # diagnostic: only the images where MediaPipe found a person (visible protocol)
        d = detected
        pck_detected = (
            {
                key: score(p[d], gt[d], visible[d] & ~missing[d], torso_sizes(gt[d]))
                for key, p in preds.items()
            }
            if d.any()
            else {}
        )

        # -- latency, interleaved
        bgr = [cv2.imread(p, cv2.IMREAD_COLOR) for p in paths]
        k = min(args.latency_images, n)
        timed = np.unique(np.linspace(0, n - 1, k).round().astype(int)).tolist()
        contenders: dict[str, Callable[[int], tuple[float, float]]] = {}
        pipelines: dict[str, Ours] = {}
        for key, (m, c) in dsnt.items():
            pipelines[key] = Ours(m, c, flip=False)
            pipelines[f"{key}_flip"] = Ours(m, c, flip=True)

        def ours_timer(pipe: Ours) -> Callable[[int], tuple[float, float]]:
            def timer(i: int) -> tuple[float, float]:
                t0, c0 = time.perf_counter(), time.process_time()
                pipe(bgr[i], data.centers[i], float(data.sides[i]))
                return 1e3 * (time.perf_counter() - t0), 1e3 * (time.process_time() - c0)

            return timer

        for key, pipe in pipelines.items():
            contenders[key] = ours_timer(pipe)
        contenders["mediapipe"] = lambda i: worker.run(i)[2:]

        # the timed pipeline must give what the batched evaluation gave (px, first image)
        pipeline_gap = {}
        for key in dsnt:
            check = pipelines[key](bgr[0], data.centers[0], float(data.sides[0]))
            pipeline_gap[key] = float(np.nanmax(np.abs(check - preds[key][0])))

        names = list(contenders)
        for i in timed[: args.warmup]:
            for name in names:
                contenders[name](i)
        wall: dict[str, list[float]] = {name: [] for name in names}
        cpu: dict[str, list[float]] = {name: [] for name in names}
        for r in range(args.rounds):
            for position, i in enumerate(timed):
                for name in interleaved_order(names, r, position):
                    ms, cpu_ms = contenders[name](i)
                    wall[name].append(ms)
                    cpu[name].append(cpu_ms)
        decode = []
        for i in timed:
            t0 = time.perf_counter()
            cv2.imread(paths[i], cv2.IMREAD_COLOR)
            decode.append(1e3 * (time.perf_counter() - t0))
        mp_memory = worker.memory()
    finally:
        worker.close()

    # -- efficiency: each dsntpose network alone in a fresh process, 1 thread
    efficiency = {}
    sources = {"ours": args.checkpoint, **{e["key"]: e["checkpoint"] for e in extras}}
    for key in dsnt:
        print(f"[peers] efficiency of {key} ...", file=sys.stderr)
        source = sources[key]
        efficiency[key] = measure_efficiency(None if source is None else str(source), threads=1)
    calls = n + args.rounds * len(timed) + min(args.warmup, len(timed))
    efficiency["mediapipe"] = mediapipe_efficiency(worker.info, mp_memory, n, calls)

    results = {}
    for name in names:
        results[name] = {
            **summarize_ms(wall[name]),
            "cpu_median_ms": round(float(np.median(cpu[name])), 3),
        }
    mp_med = results["mediapipe"]["median_ms"]
    ratios = {
        "MediaPipe / dsntpose (median)": round(mp_med / results["ours"]["median_ms"], 3),
        "MediaPipe / dsntpose + flip (median)": round(
            mp_med / results["ours_flip"]["median_ms"], 3
        ),
    }
    for e in extras:
        for suffix, what in (("", ""), ("_flip", " + flip")):
            ratios[f"MediaPipe / {e['label']}{what} (median)"] = round(
                mp_med / results[e["key"] + suffix]["median_ms"], 3
            )
    notes = [
        "Ours gets the person box from the annotations (a test-time oracle box); MediaPipe "
        "finds the person itself, and its latency includes that detector. The accuracy "
        "comparison is therefore not like for like: it favours ours.",
        f"The timed pipeline of ours matches the batched evaluation to "
        f"{pipeline_gap['ours']:.2e} px on the first image"
        + "".join(f" ({e['label']}: {pipeline_gap[e['key']]:.2e} px)" for e in extras)
        + ".",
        "Latency is of this machine under its load at the time (load average at start "
        f"{machine['load_average_at_start']}, at end {[round(v, 2) for v in os.getloadavg()]}).",
    ]
    busy = {name: r["median_ms"] / max(r["cpu_median_ms"], 1e-9) for name, r in results.items()}
    if max(busy.values()) > 1.3:
        notes.append(
            "Wall time exceeded CPU time ("
            + ", ".join(f"{name} {v:.2f}x" for name, v in busy.items())
            + "): the processes waited for a core, so the machine was busy and the wall-clock "
            "figures are inflated; the CPU-time column is the steadier comparison then."
        )
    if args.threads != 1:
        notes.append(
            f"Ours ran on {args.threads} threads but MediaPipe's XNNPACK stays on 1 (its desktop "
            "default, not settable from the Python solution): the threads are not matched."
        )
    notes += list(args.note)
    if args.checkpoint is not None and "runs/" in str(args.checkpoint):
        notes.append(
            f"Ours is {args.checkpoint}, a checkpoint of a training run (not the final model)."
        )
    cmd = (
        "benchmarks/peers.py " + shlex.join(sys.argv[1:]) if sys.argv[1:] else "benchmarks/peers.py"
    )
    doc = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": f".venv/bin/python {cmd}",
        "machine": {**machine, "torch": torch.__version__, "opencv_main": cv2.__version__},
        "data": {
            "root": str(args.data_root),
            "split": "LSP test",
            "images": n,
            "first": Path(paths[0]).name,
            "last": Path(paths[-1]).name,
        },
        "protocol": {
            "metric": "PCK@0.2",
            "torso": "||r_shoulder - l_hip|| of the ground truth, original image px",
            "joints": [LSP_NAMES[j] for j in LIMB_JOINTS],
            "excluded": ["neck", "head_top"],
            "visible": "joints whose LSP flag says not occluded",
            "all": "every annotated joint (LSP labels all 14)",
            "total": "count-weighted over the 12 joints; total_unweighted: plain mean of the 12",
            "groups": "plain mean of the left and right joint",
            "mediapipe_no_detection": "all joints of the image count as misses",
            "landmark_map": {LSP_NAMES[j]: m for j, m in LSP_FROM_MEDIAPIPE.items()},
        },
        "ours": {
            "model": model_desc,
            "backbone": cfg.backbone,
            "input_size": cfg.input_size,
            "head": cfg.head,
            "output_stride": getattr(cfg, "output_stride", None),
            "boxes": "from the annotations: square around the labelled joints + 20% margin "
            "(dsntpose.data.LSP)",
        },
        "also": [
            {
                "key": e["key"],
                "label": e["label"],
                "checkpoint": e["checkpoint"],
                "backbone": e["cfg"].backbone,
                "input_size": e["cfg"].input_size,
                "head": e["cfg"].head,
                "output_stride": getattr(e["cfg"], "output_stride", None),
            }
            for e in extras
        ],
        "mediapipe": {
            **worker.info,
            "boxes": "none: whole image, its own person detector",
            "no_detection": int((~detected).sum()),
            "image_sizes_px": {
                "min": [int(min(s[0] for s in sizes)), int(min(s[1] for s in sizes))],
                "max": [int(max(s[0] for s in sizes)), int(max(s[1] for s in sizes))],
            },
        },
        "pck": pck,
        "pck_detected_only": {
            "images": int(detected.sum()),
            "protocol": "visible limb joints, only the images where MediaPipe found a person "
            "(a diagnostic: it hides MediaPipe's misses)",
            "results": pck_detected,
        },
        "issue_mediapipe": {"pck_visible_limbs": ISSUE_MEDIAPIPE_PCK, "ms": ISSUE_MEDIAPIPE_MS},
        "latency": {
            "threads": args.threads,
            "threading": f"ours: torch.set_num_threads({args.threads}), "
            f"cv2.setNumThreads({args.threads}); MediaPipe: {worker.info['threads']}",
            "images": len(timed),
            "rounds": args.rounds,
            "warmup": min(args.warmup, len(timed)),
            "included": "Both from the decoded uint8 BGR image to joints in image px. Ours: "
            "crop warp + BGR->RGB + [0, 1] + model + back-projection (box from the "
            "annotations, not timed). MediaPipe: BGR->RGB + Pose.process (person detector + "
            "landmark model) + landmarks to px. CPU ms: the process's CPU time per image "
            "(> wall ms means more than one core busy).",
            "results": results,
            "decode": summarize_ms(decode),
            "ratios": ratios,
        },
        "efficiency": efficiency,
        "notes": notes,
    }
    return doc


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.mediapipe_worker:
        worker_main()
        return 0
    if args.efficiency_worker:  # measure_efficiency's child: one JSON line on stdout
        checkpoint = None if args.checkpoint is None else str(args.checkpoint)
        print(json.dumps(_measure_dsntpose(checkpoint, args.threads)))
        return 0
    try:
        doc = run(args)
    except PeersError as error:
        print(f"peers.py: error: {error}", file=sys.stderr)
        return 2
    report = render_markdown(doc)
    print(report)
    # A full run writes the docs files by default; a partial one (--limit, --quick) only
    # where asked, so a smoke run never overwrites the published figures.
    full = not args.quick and args.limit is None
    targets = [
        (args.json or (DEFAULT_JSON if full else None), json.dumps(doc, indent=2) + "\n"),
        (args.markdown or (DEFAULT_MARKDOWN if full else None), report),
    ]
    for path, text in targets:
        if path is not None and not args.no_write:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"[peers] wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
