"""Video on clips made from real photos: does ``--track`` follow one person through a slow pan
and a zoom, say "nobody" through a fade to black, and find the next person after a scene cut?

    .venv/bin/python benchmarks/video_tracking.py [--checkpoint NAME_OR_PATH]
        [--data_root ../shared/data/lsp] [--clips 12] [--frames 24] [--threads 1]
        [--json docs/results/video_tracking.json] [--markdown docs/results/video_tracking.md]
        [--plot docs/images/video_tracking.png] [--quick]

The clips are built from LSP test images (a seeded draw of those whose 14 joints are all
labelled and inside the image), each frame an affine warp of a photo (``cv2.warpAffine``,
bilinear, black outside), so the ground truth of every frame is the photo's joints moved by the
same matrix (pixel centres at integers, ``../shared/design/conventions.md``):

* **pan**: a window of 75% of the photo's width and height slides from the top-left corner to
  the bottom-right in ``--frames`` frames (the person leaves the frame in part at the ends;
  joints outside the frame are not scored);
* **zoom**: the window closes from the whole photo to 60% of it around the person, every frame
  shown at the photo's size (the person grows 1.67x over the clip);
* **cuts**: three photos in a row, each letterboxed into one 320 x 240 canvas with a slow pan,
  a fade to black (4 black frames) between the first and the second and a hard cut between the
  second and the third.

Each clip is written losslessly (FFV1) and read back by :func:`dsntpose.video.predict_video`
with its per-frame results file, exactly what ``dsntpose predict clip.avi --output f.jsonl
[--track]`` runs, once with ``track=True`` and once without (every frame searched from the whole
frame). Scored per frame: PCK@0.2 of the torso (the ground truth's, moved with the frame) over
the 12 limb joints that are labelled and inside the frame; a frame where the model reports
nobody misses every joint. Reported per clip kind and mode: PCK over all frames, over the last
third of the frames (drift shows there), the ankles alone; frames with nobody reported; the
black frames reported as a person; the first frame after each cut; the predicted person box's
longer side against the ground truth's (the labelled in-frame joints' box), 5th percentile and
median; milliseconds per frame (the whole ``predict_video`` call, decode included; noise on a
shared machine: compare the two modes, not machines).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peers_core import LIMB_JOINTS, LSP_NAMES, torso_sizes

REPO = Path(__file__).resolve().parents[1]
CANVAS = (320, 240)  # (width, height) of the cuts clips
FADE_FRAMES = 4
PAN_WINDOW = 0.75
ZOOM_END = 0.6
ANKLES = (0, 5)
MODES = ("track", "search")


# --------------------------------------------------------------------------------------------
# Clips: frames and their ground truth
# --------------------------------------------------------------------------------------------


def scale_matrix(scale: float, left: float, top: float) -> np.ndarray:
    """The matrix that shows the window whose top-left pixel *edge* is ``(left, top)`` (image
    px) at ``scale`` frame px per image px: edges map to edges, so pixel centre ``x`` goes to
    ``scale * (x + 0.5 - left) - 0.5``."""
    return np.array(
        [[scale, 0.0, scale * (0.5 - left) - 0.5], [0.0, scale, scale * (0.5 - top) - 0.5]]
    )


def pan_clip(height: int, width: int, frames: int) -> tuple[list[np.ndarray], tuple[int, int]]:
    """Matrices of a pan: a window of :data:`PAN_WINDOW` of the photo's sides moving linearly
    from the top-left corner to the bottom-right, and the frame size."""
    ww, wh = round(PAN_WINDOW * width), round(PAN_WINDOW * height)
    steps = np.linspace(0.0, 1.0, frames)
    return [scale_matrix(1.0, t * (width - ww), t * (height - wh)) for t in steps], (ww, wh)


def zoom_clip(
    height: int, width: int, joints: np.ndarray, frames: int
) -> tuple[list[np.ndarray], tuple[int, int]]:
    """Matrices of a zoom: the window closes from the whole photo to :data:`ZOOM_END` of its
    sides around the centre of ``joints`` (kept inside the photo), shown at the photo's size."""
    cx, cy = (joints.min(axis=0) + joints.max(axis=0)) / 2 + 0.5  # edge coordinates
    out = []
    for t in np.linspace(0.0, 1.0, frames):
        f = 1.0 + t * (ZOOM_END - 1.0)
        left = float(np.clip(cx - f * width / 2, 0.0, width - f * width))
        top = float(np.clip(cy - f * height / 2, 0.0, height - f * height))
        out.append(scale_matrix(1.0 / f, left, top))
    return out, (width, height)


def letterbox_pan(height: int, width: int, frames: int, drift: float = 0.06) -> list[np.ndarray]:
    """Matrices that letterbox a photo into :data:`CANVAS` (the whole photo in view, centred,
    at 90% of the fitting scale) and pan it by ``drift`` of the canvas width over ``frames``."""
    cw, ch = CANVAS
    scale = 0.9 * min(cw / width, ch / height)
    out = []
    for t in np.linspace(-0.5, 0.5, frames):
        offset_x = (cw - scale * width) / 2 + t * drift * cw
        offset_y = (ch - scale * height) / 2
        out.append(scale_matrix(scale, -offset_x / scale, -offset_y / scale))
    return out


def build_clips(
    photos: Sequence[np.ndarray], joints: np.ndarray, labelled: np.ndarray, frames: int,
    clips: int, seed: int = 0,
) -> list[dict[str, Any]]:  # fmt: skip
    """``clips`` of each kind from ``photos`` (BGR) with their ``(N, 14, 2)`` ``joints`` and
    ``(N, 14)`` ``labelled`` masks: photos drawn (seeded) among those whose 14 joints are
    labelled and inside the photo; a pan and a zoom of one photo each, the cuts of three.

    Each clip: ``{"kind", "photos": [indices], "frames": [BGR], "gt": (F, 14, 2),
    "labelled": (F, 14) bool, "segment": (F,) int (-1: black), "size": (w, h)}``.
    """
    inside = [
        k
        for k, photo in enumerate(photos)
        if labelled[k].all()
        and np.all(joints[k] >= 0)
        and np.all(joints[k] <= np.array(photo.shape[1::-1]) - 1)
    ]
    rng = np.random.default_rng(seed)
    draw = [int(k) for k in rng.permutation(inside)[: 5 * clips]]
    if len(draw) < 5 * clips:
        raise ValueError(f"only {len(draw)} usable photos for {clips} clips of each kind (5 each)")
    out: list[dict[str, Any]] = []
    for c in range(clips):
        for kind, picks in (("pan", draw[c : c + 1]), ("zoom", draw[clips + c : clips + c + 1]),
                            ("cuts", draw[2 * clips + 3 * c : 2 * clips + 3 * c + 3])):  # fmt: skip
            out.append(_clip(kind, picks, photos, joints, labelled, frames))
    return out


def _clip(
    kind: str, picks: list[int], photos: Sequence[np.ndarray], joints: np.ndarray,
    labelled: np.ndarray, frames: int,
) -> dict[str, Any]:  # fmt: skip
    """One clip of ``kind`` from the photos ``picks`` (:func:`build_clips`)."""
    from dsntpose.data.transforms import apply_affine, warp_image

    plan: list[tuple[int, np.ndarray | None]] = []  # (photo index or -1, matrix) per frame
    if kind in ("pan", "zoom"):
        k = picks[0]
        h, w = photos[k].shape[:2]
        matrices, size = (
            pan_clip(h, w, frames) if kind == "pan" else zoom_clip(h, w, joints[k], frames)
        )
        plan = [(k, m) for m in matrices]
    else:
        size = CANVAS
        per = max(2, (frames - FADE_FRAMES) // 3)
        for s, k in enumerate(picks):
            h, w = photos[k].shape[:2]
            plan += [(k, m) for m in letterbox_pan(h, w, per)]
            if s == 0:
                plan += [(-1, None)] * FADE_FRAMES
    images, gt, marks, segments = [], [], [], []
    for k, matrix in plan:
        if matrix is None:
            images.append(np.zeros((size[1], size[0], 3), np.uint8))
            gt.append(np.full((len(LSP_NAMES), 2), np.nan))
            marks.append(np.zeros(len(LSP_NAMES), bool))
            segments.append(-1)
            continue
        images.append(warp_image(photos[k], matrix, size))
        moved = apply_affine(matrix, joints[k])
        within = np.all((moved >= 0) & (moved <= np.array(size) - 1), axis=1)
        gt.append(moved)
        marks.append(labelled[k] & within)
        segments.append(picks.index(k))
    return {
        "kind": kind,
        "photos": picks,
        "frames": images,
        "gt": np.stack(gt),
        "labelled": np.stack(marks),
        "segment": np.array(segments),
        "size": size,
    }


# --------------------------------------------------------------------------------------------
# Running the video path and scoring it
# --------------------------------------------------------------------------------------------


def write_clip(frames: Sequence[np.ndarray], path: Path, fps: float = 25.0) -> Path:
    """``frames`` (BGR, one size) as a lossless FFV1 ``.avi`` at ``path``."""
    import cv2

    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(os.fspath(path), cv2.VideoWriter.fourcc(*"FFV1"), fps, (width, height))
    if not writer.isOpened():
        raise OSError(f"OpenCV cannot write FFV1 video {path}")
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def read_results(path: Path, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """A ``predict_video`` JSON-lines file -> ``(F, 14, 2)`` LSP-joint keypoints by name (LSP's
    neck is MPII's upper_neck; NaN where no person or no such joint) and ``(F, 4)`` the person's
    box ``(x, y, w, h)`` (NaN: nobody)."""
    from dsntpose.data.joints import JOINT_ALIASES

    points = np.full((frames, len(LSP_NAMES), 2), np.nan)
    boxes = np.full((frames, 4), np.nan)
    for line in path.read_text().splitlines():
        record = json.loads(line)
        if not record["people"]:
            continue
        person, f = record["people"][0], record["frame"]
        boxes[f] = [np.nan if v is None else v for v in person["box"]]
        named = {k["name"]: k for k in person["keypoints"]}
        for j, name in enumerate(LSP_NAMES):
            k = named.get(name) or named.get(JOINT_ALIASES.get(name, ""))
            if k is not None and k["x"] is not None and k["y"] is not None:
                points[f, j] = (k["x"], k["y"])
    return points, boxes


def frame_hits(
    preds: np.ndarray, gt: np.ndarray, labelled: np.ndarray, threshold: float = 0.2
) -> tuple[np.ndarray, np.ndarray]:
    """Per frame and limb joint: ``hit`` (within ``threshold`` of the torso) and ``counted``
    (labelled, inside the frame), both ``(F, 12)`` bool; a NaN prediction is a miss."""
    torso = torso_sizes(np.nan_to_num(gt))
    limbs = list(LIMB_JOINTS)
    counted = labelled[:, limbs] & (torso[:, None] > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        dist = np.linalg.norm(preds[:, limbs] - gt[:, limbs], axis=-1) / torso[:, None]
    return (dist <= threshold) & counted, counted


def box_ratio(boxes: np.ndarray, gt: np.ndarray, labelled: np.ndarray) -> np.ndarray:
    """Per frame: the predicted box's longer side over that of the labelled in-frame joints'
    box (NaN where nobody was reported or fewer than 4 joints are in the frame)."""
    out = np.full(len(boxes), np.nan)
    for f in range(len(boxes)):
        points = gt[f][labelled[f]]
        if len(points) < 4 or not np.isfinite(boxes[f]).all():
            continue
        extent = float((points.max(axis=0) - points.min(axis=0)).max())
        if extent > 0:
            out[f] = max(boxes[f][2], boxes[f][3]) / extent
    return out


def run_clip(predictor: Any, clip: dict[str, Any], track: bool, folder: Path) -> dict[str, Any]:
    """``predict_video`` on ``clip`` (written to ``folder``), as ``dsntpose predict`` runs it;
    its per-frame keypoints, boxes and the call's seconds."""
    from dsntpose.video import predict_video

    tag = f"{clip['kind']}-{'-'.join(map(str, clip['photos']))}"
    video = folder / f"{tag}.avi"
    if not video.exists():
        write_clip(clip["frames"], video)
    results = folder / f"{tag}-{'track' if track else 'search'}.jsonl"
    start = time.perf_counter()
    done = predict_video(predictor, video, results_path=results, progress=False, track=track)
    seconds = time.perf_counter() - start
    if done.frames != len(clip["frames"]):
        raise OSError(f"{video}: read back {done.frames} of {len(clip['frames'])} frames")
    points, boxes = read_results(results, done.frames)
    return {"points": points, "boxes": boxes, "seconds": seconds, "frames": done.frames}


def pct(hit: np.ndarray, counted: np.ndarray) -> float | None:
    n = int(counted.sum())
    return round(100.0 * float(hit[counted].sum()) / n, 2) if n else None


def summarize(clips: Sequence[dict[str, Any]], runs: dict[str, list[dict[str, Any]]]) -> dict:
    """Per clip kind and mode: the figures listed in the module docstring."""
    out: dict[str, Any] = {}
    for kind in ("pan", "zoom", "cuts"):
        rows = [k for k, c in enumerate(clips) if c["kind"] == kind]
        out[kind] = {}
        for mode in MODES:
            hits, counts, late_h, late_c, after_h, after_c = [], [], [], [], [], []
            ratios, black, black_people, nobody, frames, seconds = [], 0, 0, 0, 0, 0.0
            curve_h = np.zeros(len(clips[rows[0]]["frames"]))
            curve_c = np.zeros_like(curve_h)
            for k in rows:
                clip, run = clips[k], runs[mode][k]
                hit, counted = frame_hits(run["points"], clip["gt"], clip["labelled"])
                hits.append(hit), counts.append(counted)
                third = len(hit) - len(hit) // 3
                late_h.append(hit[third:]), late_c.append(counted[third:])
                curve_h += hit.sum(axis=1)  # every clip of a kind has the same length
                curve_c += counted.sum(axis=1)
                segment = clip["segment"]
                firsts = [
                    f for f in range(1, len(segment))
                    if segment[f] >= 0 and segment[f] != segment[f - 1]
                ]  # fmt: skip
                after_h.append(hit[firsts]), after_c.append(counted[firsts])
                found = np.isfinite(run["boxes"]).all(axis=1)
                black += int((segment < 0).sum())
                black_people += int((found & (segment < 0)).sum())
                nobody += int((~found & (segment >= 0)).sum())
                ratios.append(box_ratio(run["boxes"], clip["gt"], clip["labelled"]))
                frames += run["frames"]
                seconds += run["seconds"]
            hit_all, counted_all = np.concatenate(hits), np.concatenate(counts)
            ankle = [LIMB_JOINTS.index(j) for j in ANKLES]
            r = np.concatenate(ratios)
            r = r[np.isfinite(r)]
            figures = {
                "clips": len(rows),
                "frames": frames,
                "pck": pct(hit_all, counted_all),
                "pck_last_third": pct(np.concatenate(late_h), np.concatenate(late_c)),
                "pck_ankles": pct(hit_all[:, ankle], counted_all[:, ankle]),
                "frames_nobody": nobody,
                "ms_per_frame": round(1000.0 * seconds / max(frames, 1), 1),
                "box_ratio_p5": round(float(np.percentile(r, 5)), 3) if len(r) else None,
                "box_ratio_median": round(float(np.median(r)), 3) if len(r) else None,
                "pck_by_frame": [
                    round(100.0 * h / c, 2) if c else None for h, c in zip(curve_h, curve_c)
                ],
            }
            if kind == "cuts":
                figures["black_frames"] = black
                figures["black_frames_with_a_person"] = black_people
                figures["pck_first_frame_after_cut"] = pct(
                    np.concatenate(after_h), np.concatenate(after_c)
                )
            out[kind][mode] = figures
    return out


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def clip_frames(record: dict[str, Any], kind: str) -> int:
    """Frames of each clip of ``kind`` in a record (a cut clip's three equal shares after its
    fade can come out shorter than ``--frames``)."""
    figures = record["summary"][kind]["track"]
    return int(figures["frames"] // figures["clips"])


def markdown(record: dict[str, Any]) -> str:
    s = record["summary"]
    lines = [
        "# Video tracking on clips made from LSP test photos",
        "",
        f"Written by `{record['command']}` ({record['date']}; {record['machine']}). Model "
        f"`{record['model']}`, {record['engine']}, flip test {'on' if record['flip'] else 'off'}, "
        f"{record['threads']} thread(s). {record['clips']} clips of each kind, "
        f"{clip_frames(record, 'pan')} frames a pan or zoom, {clip_frames(record, 'cuts')} a cut "
        f"clip (three photos, a fade of {FADE_FRAMES} black frames between the first two, a "
        "hard cut before the third). How the clips are made "
        "and scored: the docstring of `benchmarks/video_tracking.py`.",
        "",
        "PCK@0.2 of the torso over the 12 limb joints labelled and inside each frame; `track`: "
        "`predict_video(..., track=True)` (`dsntpose predict clip --track`), `search`: every "
        "frame searched from the whole frame. Box ratio: the reported person box's longer side "
        "over the labelled in-frame joints' (5th percentile / median over frames).",
        "",
        "| clip | mode | PCK | last third | ankles | first frame after a cut | frames with nobody "
        "reported | black frames with a person | box ratio p5 / median | ms / frame |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]

    def cell(v: Any) -> str:
        return "" if v is None else f"{v}"

    for kind in ("pan", "zoom", "cuts"):
        for mode in MODES:
            f = s[kind][mode]
            black = (
                f"{f['black_frames_with_a_person']} of {f['black_frames']}"
                if kind == "cuts"
                else ""
            )
            lines.append(
                f"| {kind} | {mode} | {cell(f['pck'])} | {cell(f['pck_last_third'])} | "
                f"{cell(f['pck_ankles'])} | {cell(f.get('pck_first_frame_after_cut'))} | "
                f"{f['frames_nobody']} of {f['frames'] - f.get('black_frames', 0)} | {black} | "
                f"{cell(f['box_ratio_p5'])} / {cell(f['box_ratio_median'])} | "
                f"{f['ms_per_frame']} |"
            )
    lines += [
        "",
        f"![PCK by frame]({record['plot_relative']})" if record.get("plot_relative") else "",
    ]
    return "\n".join(lines).rstrip() + "\n"


def plot(record: dict[str, Any], path: Path) -> None:
    """PCK by frame index, tracked against searched, one panel per clip kind."""
    from dsntpose.viz import _new_figure, save_figure

    fig = _new_figure(figsize=(10, 3.2))
    for i, kind in enumerate(("pan", "zoom", "cuts")):
        ax = fig.add_subplot(1, 3, i + 1)
        for mode, style in (("track", "o-"), ("search", "s--")):
            values = [
                np.nan if v is None else v for v in record["summary"][kind][mode]["pck_by_frame"]
            ]
            ax.plot(range(len(values)), values, style, ms=3, label=mode)
        ax.set_title(kind, fontsize=10)
        ax.set_xlabel("frame")
        ax.set_ylim(0, 100)
        if i == 0:
            ax.set_ylabel("PCK@0.2, limbs (%)")
            ax.legend(fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, path)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--checkpoint",
        default=None,
        help="a shipped model's name or a file (default: the shipped default)",
    )
    p.add_argument("--data_root", type=Path, default=REPO.parent / "shared" / "data" / "lsp")
    p.add_argument("--clips", type=int, default=12, help="clips of each kind")
    p.add_argument(
        "--frames",
        type=int,
        default=24,
        help="frames per pan or zoom clip (a cut clip: three equal shares after the fade)",
    )
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--no-flip", dest="flip", action="store_false", help="the Predictor without the flip test"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=REPO / "docs" / "results" / "video_tracking.json")
    p.add_argument("--markdown", type=Path, default=REPO / "docs" / "results" / "video_tracking.md")
    p.add_argument("--plot", type=Path, default=REPO / "docs" / "images" / "video_tracking.png")
    p.add_argument(
        "--quick", action="store_true", help="2 clips of each kind, 10 frames, no files written"
    )
    args = p.parse_args(argv)
    if args.quick:
        args.clips, args.frames = 2, 10
    if args.clips < 1 or args.frames < 3 * 2 + FADE_FRAMES:
        p.error(f"--clips must be >= 1 and --frames >= {3 * 2 + FADE_FRAMES}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    given = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(given)
    import cv2

    from dsntpose.bench_report import cpu_name
    from dsntpose.data.lsp import LSP
    from dsntpose.predictor import Predictor

    try:
        data = LSP(args.data_root, "test")
        predictor = Predictor.from_checkpoint(args.checkpoint, flip=args.flip, threads=args.threads)
    except (FileNotFoundError, ValueError, OSError) as err:
        print(f"video_tracking: {err}", file=sys.stderr)
        return 2
    photos = []
    for path in data.image_paths:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            print(f"video_tracking: cannot read {path}", file=sys.stderr)
            return 2
        photos.append(image)
    labelled = ~np.asarray(data.missing, dtype=bool)
    clips = build_clips(
        photos, np.asarray(data.joints, np.float64), labelled, args.frames, args.clips, args.seed
    )
    runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
    with tempfile.TemporaryDirectory() as tmp:
        for clip in clips:  # the two modes alternate clip by clip (same machine load)
            for mode in MODES:
                runs[mode].append(run_clip(predictor, clip, mode == "track", Path(tmp)))
    model = args.checkpoint or "whole_efficientnet_lite0 (the shipped default)"
    record = {
        "command": " ".join(["python benchmarks/video_tracking.py", *given]).strip(),
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{cpu_name()}, {os.cpu_count()} CPUs; load average "
        f"{os.getloadavg()[0]:.1f} at the end",
        "model": model,
        "engine": type(predictor.model).__name__,
        "flip": args.flip,
        "threads": args.threads,
        "clips": args.clips,
        "frames": args.frames,
        "data": str(args.data_root),
        "summary": summarize(clips, runs),
    }
    if args.quick:
        print(json.dumps(record["summary"], indent=1))
        return 0
    try:
        record["plot_relative"] = os.path.relpath(args.plot, args.markdown.parent)
    except ValueError:
        record["plot_relative"] = str(args.plot)
    plot(record, args.plot)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(record, indent=1) + "\n")
    args.markdown.parent.mkdir(parents=True, exist_ok=True)
    args.markdown.write_text(markdown(record))
    print(markdown(record))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
