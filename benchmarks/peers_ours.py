"""Our side of benchmarks/peers.py: loading dsntpose models, the two pipelines that are scored
and timed (whole photo through ``dsntpose.predictor.Predictor`` without a box; the crop around
a given box), joint-set conversion by name, and the efficiency figures (parameters, MACs,
peak memory) measured in a fresh process.
"""

from __future__ import annotations

import hashlib
import json
import math
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from peers_core import rss_baseline, rss_peak_growth
from peers_workers import PeersError

HERE = Path(__file__).resolve().parent


def convert_joints(preds: np.ndarray, source: Any, target: Any) -> np.ndarray:
    """``(..., Js, D)`` values per joint of JointSet ``source`` (``D = 2``: x, y; ``D = 1``: a
    score) -> ``(..., Jt, D)`` of ``target`` by joint name (``dsntpose.data.joints.joint_map``:
    LSP's neck is MPII's upper_neck); NaN where ``source`` has no such joint."""
    from dsntpose.data.joints import joint_map

    index = np.asarray(joint_map(source, target))
    p = np.asarray(preds, dtype=np.float64)
    if p.ndim < 2 or p.shape[-2] != source.num_joints:
        raise ValueError(f"preds: expected (..., {source.num_joints}, D), got {p.shape}")
    out = p[..., np.maximum(index, 0), :].copy()
    out[..., index < 0, :] = np.nan
    return out


def joints_had(source: Any, target: Any, present: Sequence[str] | None = None) -> tuple[int, ...]:
    """The joints of ``target`` that a model of joint set ``source`` predicts (by name; only
    the names in ``present`` when given, for peers that fill some joints with NaN)."""
    from dsntpose.data.joints import joint_map

    index = joint_map(source, target)
    return tuple(
        j for j, s in enumerate(index) if s >= 0 and (present is None or source.names[s] in present)
    )


def load_ours(checkpoint: Path | None) -> tuple[Any, Any, str, Path]:
    """``(model, model_cfg, description, file)``: the checkpoint (any joint set), or the
    shipped LSP model (``lsp_efficientnet_lite0``: the box-protocol model the LSP model card
    quotes; the whole-photo model is added with ``--also``)."""
    from dsntpose.checkpoint import LSP_MODEL, load_checkpoint

    if checkpoint is not None:
        try:
            model, cfg, _ = load_checkpoint(checkpoint)
        except (FileNotFoundError, ValueError) as error:
            raise PeersError(str(error)) from None
        return model, cfg, str(checkpoint), checkpoint
    from dsntpose import zoo

    try:
        model, cfg, _ = zoo.load_pretrained(LSP_MODEL)
    except FileNotFoundError as error:
        raise PeersError(
            f"no checkpoint given and no shipped model yet ({error}); pass --checkpoint PATH"
        ) from None
    path = zoo.pretrained_path(LSP_MODEL)
    return model, cfg, f"shipped model {LSP_MODEL} ({path})", Path(path)


def runtime_model(model: Any, cfg: Any, source: Path, engine: str, threads: int) -> tuple[Any, str]:
    """``(model, engine name)``: the network as ``Predictor.from_checkpoint`` runs it with
    ``engine`` (``auto``: ONNX Runtime when it is installed, as in the default install; the
    export cached by the checkpoint's hash), so the benchmark times what a user of the
    Predictor gets; torch where the engine is ``torch`` or the export fails (``auto``; a
    ``ValueError`` naming the file with ``onnxruntime``)."""
    from dsntpose.checkpoint import LoadedModel
    from dsntpose.runtime import engine_insisted, onnx_engine, resolve_engine

    if resolve_engine(engine) != "onnxruntime":
        return model, "torch"
    loaded = LoadedModel(model, cfg, "torch", Path(source))
    onnx = onnx_engine(loaded, threads, required=engine_insisted(engine))
    return (model, "torch") if onnx is None else (onnx, "onnxruntime")


class OursBox:
    """Given a box: decoded BGR image + square (centre, side) -> ``(J, 3)``: the model's joints
    in image px and its confidence in each (crop warp + BGR->RGB + [0, 1] + model [+ flip] +
    back-projection)."""

    def __init__(self, model: Any, cfg: Any, flip: bool) -> None:
        import torch

        from dsntpose.data.joints import get_joint_set
        from dsntpose.data.transforms import crop_matrix, invert_affine, to_chw_rgb, warp_image
        from dsntpose.evaluate import back_project, flip_test

        self.torch = torch
        self.crop_matrix, self.invert_affine = crop_matrix, invert_affine
        self.to_chw_rgb, self.warp_image = to_chw_rgb, warp_image
        self.back_project, self.flip_test = back_project, flip_test
        self.model = model.eval() if hasattr(model, "eval") else model  # torch or OnnxModel
        self.size = int(cfg.input_size)
        self.flip = flip
        self.joint_set = get_joint_set(cfg.joints)

    def __call__(self, bgr: np.ndarray, center: np.ndarray, side: float) -> np.ndarray:
        torch = self.torch
        matrix = self.crop_matrix(np.asarray(center, dtype=np.float64), side, self.size)
        crop = self.warp_image(bgr, matrix, self.size)
        x = torch.from_numpy(self.to_chw_rgb(crop, bgr=True))[None]
        with torch.inference_mode():
            out = self.flip_test(self.model, x, self.joint_set) if self.flip else self.model(x)
        xy = self.back_project(out.coords[0].double(), self.invert_affine(matrix), self.size)
        confidence = out.confidence[0].double()[:, None]
        return np.asarray(torch.cat([xy, confidence], dim=1).numpy(), dtype=np.float64)


class OursWhole:
    """The whole photo, no box: ``Predictor.predict_image(bgr)`` finds the person itself (the
    whole image, then crops around the joints found until the crop settles). Returns ``(J,
    3)``: the model's joints in image px and its confidence in each (``Person.confidence``);
    coordinates NaN and confidence 0 when it reports nobody (``[]``)."""

    def __init__(
        self,
        model: Any,
        cfg: Any,
        flip: bool,
        engine: str = "torch",
        flip_passes: str = "every",
    ) -> None:
        from dsntpose.data.joints import get_joint_set
        from dsntpose.predictor import Predictor

        self.predictor = Predictor(  # the run sets threads
            model, cfg, flip=flip, threads=None, flip_passes=flip_passes
        )
        self.joint_set = get_joint_set(cfg.joints)
        passes = f", flip_passes={flip_passes!r}" if flip and flip_passes != "every" else ""
        self.settings = (
            f"Predictor(flip={flip}{passes}, engine={engine}, "
            f"max_passes={self.predictor.max_passes}, "
            f"min_presence={self.predictor.min_presence}, "
            f"min_joint_score={self.predictor.min_joint_score}).predict_image(bgr)"
        )

    def __call__(self, bgr: np.ndarray) -> np.ndarray:
        people = self.predictor.predict_image(bgr)
        if not people:
            return np.column_stack(
                [
                    np.full((self.joint_set.num_joints, 2), np.nan),
                    np.zeros(self.joint_set.num_joints),
                ]
            )
        person = people[0]
        return np.column_stack([person.keypoints, person.confidence]).astype(np.float64)


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
    "model", "cfg"}`` each, loaded as ``load_ours`` loads one."""
    extras = []
    for number, (label, path) in enumerate(parse_also(items), 1):
        try:
            model, cfg, _, _ = load_ours(path)
        except PeersError as error:
            raise PeersError(f"--also {label}: {error}") from None
        extras.append(
            {
                "key": f"also{number}",
                "label": label,
                "checkpoint": str(path),
                "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                "source": path,
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
    model, cfg, _, _ = load_ours(None if checkpoint is None else Path(checkpoint))
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
    # benchmarks/peers.py run again as its own worker (as for MediaPipe), so that the child finds the
    # function however this module was imported
    command = [sys.executable, str(HERE / "peers.py"), "--efficiency-worker"]
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
