"""One inference path: a model over crops or a whole data set, with or without the flip test,
back to original image pixels, with the ground truth it loaded.

* :func:`back_project`: normalised crop coordinates -> original image pixels.
* :func:`flip_test`: predict on images and their mirrors and merge them the head's way.
* :func:`predict_dataset`: run a model over a data set; returns predictions and ground truth.
* :func:`evaluate_checkpoint`: a checkpoint on its validation or test split, scored by the
  protocol of its data set (:func:`dsntpose.evaluate.protocol_for`); MPII's test split is
  scored by the official protocol on the validation people whose frames are present
  (:func:`evaluate_mpii_frames`), whatever joints the model predicts (:func:`map_joints`).

Training's validation, ``dsntpose eval``, ``predict`` and the experiment scripts all use these.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
import torch
from torch import Tensor

from dsntpose import ops
from dsntpose.config import RunConfig
from dsntpose.data.joints import MPII_JOINTS, JointSet, joint_map
from dsntpose.evaluate import ArrayLike, PCKResult
from dsntpose.heads import calibrated_confidence, check_flip_mode, joint_features, merge_views

__all__ = [
    "Evaluation",
    "FlipOutput",
    "Predictions",
    "back_project",
    "evaluate_checkpoint",
    "evaluate_mpii_frames",
    "flip_test",
    "map_joints",
    "merge_flip",
    "predict_batch",
    "predict_dataset",
    "score",
]


def back_project(
    coords_norm: ArrayLike, inverse: ArrayLike, crop_size: int | tuple[int, int]
) -> Tensor | np.ndarray:
    """Map predictions from normalised crop units to original image pixels.

    Args:
        coords_norm: ``(..., J, 2)`` ``(x, y)`` normalised over the crop (``-1`` and ``+1`` its
            outer edges), e.g. a model's ``coords`` ``(B, J, 2)``.
        inverse: ``(..., 2, 3)`` affine crop px -> image px (a sample's ``inverse``), with the
            same leading dims as ``coords_norm`` (or broadcastable to them).
        crop_size: the crop side ``S`` in pixels, or ``(H, W)``.

    Returns:
        ``(..., J, 2)`` ``(x, y)`` in 0-based image pixels: a torch tensor when
        ``coords_norm`` is one (float64 when either input is), else a numpy array.
    """
    as_numpy = not isinstance(coords_norm, Tensor)
    c = torch.as_tensor(coords_norm)
    a = torch.as_tensor(inverse)
    dtype = torch.promote_types(c.dtype, a.dtype)
    if not dtype.is_floating_point:
        dtype = torch.float64
    c, a = c.to(dtype), a.to(dtype=dtype, device=c.device)
    if c.dim() < 2 or c.shape[-1] != 2:
        raise ValueError(f"coords_norm: expected shape (..., J, 2), got {tuple(c.shape)}")
    if a.dim() < 2 or a.shape[-2:] != (2, 3):
        raise ValueError(f"inverse: expected shape (..., 2, 3), got {tuple(a.shape)}")
    size = (crop_size, crop_size) if isinstance(crop_size, int) else tuple(crop_size)
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"crop_size: expected S or (H, W) in pixels, got {crop_size!r}")
    crop_px = ops.normalized_to_pixel(c, size)
    out = crop_px @ a[..., :2].transpose(-1, -2) + a[..., None, :, 2]
    return out.numpy() if as_numpy else out


class FlipOutput(NamedTuple):
    """Flip-test prediction: ``coords`` ``(B, J, 2)`` normalised, ``confidence`` ``(B, J)``;
    for a model with presence and visibility heads, ``presence`` ``(B,)`` and ``visibility``
    ``(B, J)`` logits averaged over both views, and ``features`` ``(B, J, 9)`` that its
    calibrated ``confidence`` was computed from (:func:`dsntpose.heads.joint_features`; else
    None)."""

    coords: Tensor
    confidence: Tensor
    presence: Tensor | None = None
    visibility: Tensor | None = None
    features: Tensor | None = None  # (B, J, 9) what the calibration read (heads.joint_features)


Decode = Callable[[Tensor], tuple[Tensor, Tensor]]


@torch.no_grad()
def flip_test(
    model: Callable[[Tensor], Any],
    images: Tensor,
    joint_set: JointSet,
    mode: Literal["logits", "coords", "heatmaps"] | None = None,
    decode: Decode | None = None,
) -> FlipOutput:
    """Predict on the images and their mirrors, swap left and right, and average
    (:func:`dsntpose.heads.merge_views`).

    Args:
        model: returns a ``HeadOutput`` (``coords``, ``heatmaps``, ``logits``, ``confidence``).
            Its mode (train/eval) is left as it is; gradients are off.
        images: ``(B, 3, S, S)`` RGB in ``[0, 1]``.
        joint_set: supplies ``flip_index`` (left/right partners).
        mode: ``"logits"`` (DSNT, as the paper's code): average the pre-activation maps, then
            decode them once; ``"coords"``: average the two coordinate predictions (any head);
            ``"heatmaps"`` (heatmap matching): average the raw maps and decode by arg-max with
            the quarter-pixel shift. Default: ``"logits"`` when ``decode`` is given, else the
            model's head decides (``head.flip_mode``); a model without a dsntpose head (an ONNX
            runner) then averages coordinates. A mode the head does not list in its
            ``flip_modes`` is refused.
        decode: ``(B, J, H, W)`` maps -> (coords ``(B, J, 2)``, confidence ``(B, J)``).
            Default: the head's own ``decode``; a model without a head needs it for
            ``"logits"``.

    Returns:
        :class:`FlipOutput` with ``coords`` ``(B, J, 2)`` normalised and ``confidence``
        ``(B, J)``; for ``"coords"`` and ``"heatmaps"`` the confidence is the mean of both
        views'. A model with presence heads adds the merged ``presence`` and ``visibility``
        logits, and its confidence in ``"logits"`` mode is its calibration
        (``model.joint_calibration``) applied to the merged visibility and maps.

    Raises:
        ValueError: a mode the head cannot merge by (the message names the allowed ones).
    """
    if images.dim() != 4:
        raise ValueError(f"images: expected (B, 3, S, S), got {tuple(images.shape)}")
    if mode is not None and mode not in ("logits", "coords", "heatmaps"):
        raise ValueError(f"mode: expected 'logits', 'coords' or 'heatmaps', got {mode!r}")
    head = getattr(model, "head", None)
    if mode is not None and hasattr(head, "flip_modes"):
        check_flip_mode(head, mode)  # type: ignore[arg-type]  # refused before the model runs
    out = model(images)
    out_flip = model(torch.flip(images, dims=[-1]))
    return merge_flip(model, out, out_flip, joint_set, mode, decode)


def merge_flip(
    model: Callable[[Tensor], Any],
    out: Any,
    out_flip: Any,
    joint_set: JointSet,
    mode: Literal["logits", "coords", "heatmaps"] | None = None,
    decode: Decode | None = None,
) -> FlipOutput:
    """The flip test's merge (:func:`flip_test`) of outputs already computed: ``out`` of
    ``model`` on images and ``out_flip`` on their mirrors (``torch.flip`` along the width).
    Whole-photo search (:meth:`dsntpose.predictor.Predictor.find_people`) runs its passes
    without flip and mirrors only the final crop, merging here.

    Args:
        model: the model both outputs came from (its head gives the mode and decode; its
            ``joint_calibration`` the merged confidence).
        out, out_flip: its outputs (``coords``, ``logits``, ``confidence`` ...) on the images
            and on their mirrors.
        joint_set, mode, decode: as for :func:`flip_test`.
    """
    if mode is not None and mode not in ("logits", "coords", "heatmaps"):
        raise ValueError(f"mode: expected 'logits', 'coords' or 'heatmaps', got {mode!r}")
    head = getattr(model, "head", None)
    if mode is None and decode is not None:
        mode = "logits"
    if hasattr(head, "flip_modes"):
        mode = mode or head.flip_mode  # type: ignore[union-attr]
        assert mode is not None
        check_flip_mode(head, mode)  # type: ignore[arg-type]
        decode = decode or head.decode  # type: ignore[union-attr]
    elif mode is None:
        mode = "coords"
    if out.coords.shape[1] != joint_set.num_joints:
        raise ValueError(
            f"flip_test: the model predicts {out.coords.shape[1]} joints, joint set "
            f"{joint_set.name} has {joint_set.num_joints}"
        )
    flip_index = list(joint_set.flip_index)
    coords, confidence = merge_views(out, out_flip, flip_index, mode, decode)
    visibility = getattr(out, "visibility", None)
    if visibility is None or getattr(out_flip, "visibility", None) is None:
        return FlipOutput(coords, confidence)
    presence = 0.5 * (out.presence + out_flip.presence)
    visibility = 0.5 * (visibility + out_flip.visibility[:, flip_index])
    calibration = getattr(model, "joint_calibration", None)
    if calibration is not None and mode == "logits" and hasattr(head, "decode_maps"):
        # the calibrated confidence of the merged prediction: the merged visibility and maps
        # (what scripts/calibrate.py fits it on)
        logits = 0.5 * (out.logits + torch.flip(out_flip.logits, dims=[-1])[:, flip_index])
        probs, _ = head.decode_maps(logits)  # type: ignore[union-attr]
        features = joint_features(
            visibility,
            ops.heatmap_confidence(probs, center=coords),
            probs,
            coords,
            joint_set.torso,
        )
        confidence = calibrated_confidence(calibration, features)
        return FlipOutput(coords, confidence, presence, visibility, features)
    # the heads' calibrated joint confidences, averaged like the scores they come from
    confidence = 0.5 * (out.confidence + out_flip.confidence[:, flip_index])
    return FlipOutput(coords, confidence, presence, visibility)


def predict_batch(
    model: Callable[[Tensor], Any],
    batch: dict[str, Any],
    joint_set: JointSet,
    *,
    flip: bool = False,
    mode: Literal["logits", "coords", "heatmaps"] | None = None,
    output: Any = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """The model's answer for one batch of samples, in crop and in original image units.

    Args:
        model: returns a ``HeadOutput`` for ``batch["image"]`` ``(B, 3, S, S)``.
        batch: collated samples (``image``, ``inverse``; see :mod:`dsntpose.data.common`),
            already on the model's device.
        joint_set: the joints (the flip test swaps their left/right partners).
        flip: merge with the prediction on the mirrored crops (:func:`flip_test`).
        mode: what the flip test merges (None: the head's default).
        output: the model's output on ``batch["image"]`` when the caller has it already
            (training's validation, which also scores the loss); used without the flip test.

    Returns:
        ``coords`` ``(B, J, 2)`` normalised crop units, ``image_px`` ``(B, J, 2)`` original
        image pixels and ``confidence`` ``(B, J)``, all float32 on the CPU.
    """
    images = batch["image"]
    if flip:
        coords, confidence = flip_test(model, images, joint_set, mode=mode)[:2]
    else:
        out = output if output is not None else model(images)
        coords, confidence = out.coords, out.confidence
    coords, confidence = coords.detach().float().cpu(), confidence.detach().float().cpu()
    image_px = back_project(coords, batch["inverse"].cpu(), tuple(images.shape[-2:]))
    return coords, image_px.float(), confidence  # type: ignore[union-attr]


@dataclass
class Predictions:
    """A model's predictions over a data set, with the ground truth the data set loaded.

    Attributes:
        preds_px: ``(N, J, 2)`` predictions in original image pixels, data set order.
        confidence: ``(N, J)`` per-joint confidence in ``[0, 1]``.
        gt_px: ``(N, J, 2)`` ground truth in original image pixels (NaN where missing).
        missing: ``(N, J)`` bool, True for joints without a label (not scored).
        norm_size: ``(N,)`` the PCK unit per person (head or torso size, image px).
        samples: a few samples for drawing: ``images`` ``(K, 3, S, S)``, ``pred`` and ``gt``
            ``(K, J, 2)`` crop px (``gt`` NaN where not labelled).
    """

    preds_px: np.ndarray
    confidence: np.ndarray
    gt_px: np.ndarray
    missing: np.ndarray
    norm_size: np.ndarray
    samples: dict[str, Tensor]

    def __len__(self) -> int:
        return int(self.preds_px.shape[0])


def predict_dataset(
    model: Callable[[Tensor], Any],
    dataset: Any,
    joint_set: JointSet,
    *,
    flip: bool = False,
    mode: Literal["logits", "coords", "heatmaps"] | None = None,
    batch_size: int = 32,
    device: str | torch.device = "cpu",
    num_workers: int = 0,
    num_draw: int = 8,
    limit: int | None = None,
    progress: bool = False,
) -> Predictions:
    """Run ``model`` (in eval mode, no gradients) over the first ``limit`` samples of ``dataset``.

    Args:
        model: returns a ``HeadOutput`` for ``(B, 3, S, S)`` crops.
        dataset: a pose data set of sample dicts (:mod:`dsntpose.data.common`).
        joint_set: its joints.
        flip, mode: the flip test and what it merges (see :func:`flip_test`).
        batch_size, device, num_workers: how to load and run.
        num_draw: how many samples to keep for drawing.
        limit: score only the first ``limit`` samples (None: all).
        progress: show a progress bar on stderr (tqdm).

    Returns:
        :class:`Predictions` in data set order.
    """
    from torch.utils.data import DataLoader, Subset

    from dsntpose.data import worker_init_fn

    count = len(dataset) if limit is None else min(limit, len(dataset))
    loader = DataLoader(
        Subset(dataset, range(count)) if count < len(dataset) else dataset,
        batch_size=batch_size,
        num_workers=num_workers,
        worker_init_fn=worker_init_fn if num_workers else None,
    )
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("pred", "conf", "gt", "miss", "size")}
    samples: dict[str, Tensor] = {}
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=count, unit="img", desc="evaluating", leave=False)
    with torch.no_grad():
        for batch in loader:
            on_device = {**batch, "image": batch["image"].to(device)}
            coords, image_px, confidence = predict_batch(
                model, on_device, joint_set, flip=flip, mode=mode
            )
            missing = batch["joints_missing"].bool()
            gt = batch["joints_image"].double().masked_fill(missing[..., None], float("nan"))
            parts["pred"].append(image_px.double().numpy())
            parts["conf"].append(confidence.numpy())
            parts["gt"].append(gt.numpy())
            parts["miss"].append(missing.numpy())
            parts["size"].append(np.asarray(batch["norm_size"], dtype=np.float64))
            if not samples and num_draw:
                size = tuple(batch["image"].shape[-2:])
                gt_crop = ops.normalized_to_pixel(batch["joints"].float(), size)
                gt_crop = torch.where(batch["mask"][..., None] > 0, gt_crop, torch.nan)
                samples = {
                    "images": batch["image"][:num_draw],
                    "pred": ops.normalized_to_pixel(coords, size)[:num_draw],
                    "gt": gt_crop[:num_draw],
                }
            if bar is not None:
                bar.update(len(batch["image"]))
    if bar is not None:
        bar.close()
    return Predictions(
        preds_px=np.concatenate(parts["pred"]),
        confidence=np.concatenate(parts["conf"]),
        gt_px=np.concatenate(parts["gt"]),
        missing=np.concatenate(parts["miss"]),
        norm_size=np.concatenate(parts["size"]),
        samples=samples,
    )


def map_joints(
    preds: ArrayLike, source: JointSet, target: JointSet
) -> tuple[np.ndarray, np.ndarray]:
    """Predictions for ``source``'s joints as predictions for ``target``'s, by joint name
    (:func:`dsntpose.data.joints.joint_map`: LSP's ``neck`` is MPII's ``upper_neck``).

    Args:
        preds: ``(..., J_source, K)`` per-joint values (coordinates ``K = 2``, or ``(..., J)``
            confidences with ``K`` absent: pass ``preds[..., None]``).
        source, target: the joint sets.

    Returns:
        ``(..., J_target, K)`` float64, NaN for target joints ``source`` lacks, and
        ``scored`` ``(J_target,)`` bool: True where ``source`` has the joint.
    """
    p = np.asarray(preds, dtype=np.float64)
    if p.ndim < 2 or p.shape[-2] != source.num_joints:
        raise ValueError(
            f"preds: expected (..., {source.num_joints}, K) for {source.name}, got {p.shape}"
        )
    index = np.asarray(joint_map(source, target))
    scored = index >= 0
    out = np.full((*p.shape[:-2], target.num_joints, p.shape[-1]), np.nan)
    out[..., scored, :] = p[..., index[scored], :]
    return out, scored


@dataclass
class Evaluation:
    """A checkpoint's result on one split.

    Attributes:
        result: the PCK (or PCKh) table.
        predictions: the :class:`Predictions` it was computed from.
        run: the run config the data came from (the checkpoint's, with overrides; for MPII's
            frames scored with a model of another data set, the checkpoint's own).
        split: ``"val"`` or ``"test"``.
        people: for MPII's frames, which validation people were scored
            (:class:`dsntpose.mpii_files.PeopleSubset`); None otherwise.
        joints_scored: for MPII's frames, the MPII joints the model was scored on (those its
            joint set names; an LSP model has no pelvis or thorax); None otherwise.
        ground_truth: for MPII's frames, the ground-truth file scored against.
    """

    result: PCKResult
    predictions: Predictions
    run: RunConfig
    split: str
    people: Any = None
    joints_scored: tuple[str, ...] | None = None
    ground_truth: Path | None = None

    @property
    def preds_px(self) -> np.ndarray:
        """``(N, J, 2)`` predictions in original image pixels, data set order."""
        return self.predictions.preds_px

    @property
    def samples(self) -> dict[str, Tensor]:
        return self.predictions.samples


def score(predictions: Predictions, dataset: str, joint_set: JointSet) -> PCKResult:
    """The PCK table of ``predictions`` by the protocol of ``dataset``
    (:func:`dsntpose.evaluate.protocol_for`); people without a finite, positive norm size
    are left out (their joints cannot be scored)."""
    from dsntpose.evaluate import note_left_out, pck, pckh, protocol_for

    protocol = protocol_for(dataset)
    p = predictions
    scored = np.isfinite(p.norm_size) & (p.norm_size > 0)
    note_left_out(scored, "their ground truth's normalising size is 0 or not finite")
    gt = np.where(p.missing[..., None], 0.0, p.gt_px)
    rule = pckh if protocol.metric == "PCKh" else pck
    return rule(
        p.preds_px[scored], gt[scored], p.missing[scored], p.norm_size[scored],
        protocol.threshold, joint_set=joint_set,
    )  # fmt: skip


def _mpii_ground_truth_file(root: Path, gt: str | Path | None) -> Path | None:
    """``gt``, else the official ground truth in ``root`` (None when it holds none)."""
    from dsntpose.mpii_files import GT_FILE_NAMES

    if gt is not None:
        return Path(gt)
    for name in GT_FILE_NAMES:
        if (root / name).is_file():
            return root / name
    return None


def evaluate_mpii_frames(
    model: Any,
    run: RunConfig,
    *,
    root: str | Path | None,
    image_root: str | Path | None = None,
    num_workers: int = 0,
    gt: str | Path | None = None,
    people: str | Path | None = None,
    flip: bool = False,
    flip_mode: Literal["logits", "coords", "heatmaps"] | None = None,
    batch_size: int = 32,
    device: str = "cpu",
    num_draw: int = 8,
    limit: int | None = None,
    progress: bool = False,
    bootstrap: int = 2000,
    seed: int = 0,
) -> Evaluation:
    """A model on MPII's validation frames by the official protocol, with intervals.

    The standard validation people (``data.root/valid.h5``, 2958 rows) are cropped as
    :class:`dsntpose.data.MPII` crops them (valid.h5's adjusted centre, side ``200 * scale``,
    at the model's input size), the predictions are back-projected to the frame, mapped to
    MPII's joints by name (:func:`map_joints`) and scored by PCKh against the official ground
    truth (``detections_our_format.mat``: its joints and head boxes), with 95% percentile
    bootstrap intervals over people for every figure. Only the people whose frames are in
    the image folder are scored (or those ``people`` lists); :attr:`Evaluation.people` says
    how many of the 2958. Joints the model does not predict (an LSP model's pelvis and
    thorax) are not counted; the Total (the 14 joints other than pelvis and thorax) is the
    same figure for a 14- and a 16-joint model.

    Args:
        model: returns a ``HeadOutput`` for ``(B, 3, S, S)`` crops.
        run: the model's run config (``run.model`` describes the model; its data section is
            not used: a model trained on LSP is scored here too).
        root: the MPII folder holding ``valid.h5`` (and the official ground truth).
        image_root: the folder of the frames (default ``root/images``).
        num_workers: data loader processes.
        gt: the ground truth (default: ``detections_our_format.mat`` or ``gt_valid.mat`` in
            ``data.root``; without one, valid.h5's own rounded joints and head sizes).
        people: a people file (:func:`dsntpose.mpii_files.read_people`) instead of the frames
            present.
        flip, flip_mode, batch_size, device, num_draw, progress: as for
            :func:`evaluate_checkpoint`.
        limit: score only the first ``limit`` of the selected people.
        bootstrap, seed: resamples of people for the intervals (0: none) and their seed.

    Returns:
        An :class:`Evaluation` on split ``"test"`` whose ``predictions`` are in MPII's 16
        joints (NaN for joints the model lacks), in the order of the people scored.
    """
    from dsntpose.data import get_joint_set
    from dsntpose.data.mpii import MPII, read_mpii_h5
    from dsntpose.evaluate import pckh
    from dsntpose.mpii_files import read_mpii_ground_truth, select_people

    if root is None:
        raise ValueError("data.root: give the MPII folder that holds valid.h5 (--data.root DIR)")
    root = Path(root).expanduser()
    valid_h5 = root / "valid.h5"
    if not valid_h5.is_file():
        raise FileNotFoundError(
            f"data.root {root} has no valid.h5 (the 2958 standard MPII validation people); "
            "run `dsntpose data mpii --data.root DIR`"
        )
    image_root = Path(image_root).expanduser() if image_root else root / "images"
    records = read_mpii_h5(valid_h5)
    gt_path = _mpii_ground_truth_file(root, gt)
    if gt_path is not None:
        truth = read_mpii_ground_truth(gt_path)
        if len(truth) != len(records):
            raise ValueError(
                f"{gt_path}: {len(truth)} people, but {valid_h5} has {len(records)}; expected "
                "the same validation people in the same order"
            )
        gt_joints, gt_missing, gt_sizes = truth.joints, truth.missing, truth.head_sizes
    else:
        if not np.all(np.isfinite(records.head_sizes)):
            raise ValueError(f"{valid_h5}: no 'normalize' (head sizes) and no ground-truth file")
        gt_joints, gt_missing, gt_sizes = records.joints, records.missing, records.head_sizes
    subset = select_people(
        len(records), people=people, image_names=records.image_names, image_root=image_root
    )
    if limit is not None:
        subset = type(subset)(subset.rows[:limit], subset.total, subset.how + f", first {limit}")
    rows = subset.rows
    dataset = MPII(records.select(rows), image_root, size=run.model.input_size)
    joint_set = get_joint_set(run.model.joints)
    raw = predict_dataset(
        model, dataset, joint_set, flip=flip, mode=flip_mode, batch_size=batch_size,
        device=device, num_workers=num_workers, num_draw=num_draw, progress=progress,
    )  # fmt: skip
    preds, scored = map_joints(raw.preds_px, joint_set, MPII_JOINTS)
    confidence = map_joints(raw.confidence[..., None], joint_set, MPII_JOINTS)[0][..., 0]
    missing = gt_missing[rows] | ~scored[None, :]
    joints = gt_joints[rows]
    sizes = gt_sizes[rows]
    result = pckh(preds, joints, missing, sizes, bootstrap=bootstrap, seed=seed)
    predictions = Predictions(
        preds_px=preds,
        confidence=confidence,
        gt_px=np.where(gt_missing[rows][..., None], np.nan, joints),
        missing=missing,
        norm_size=sizes,
        samples=raw.samples,
    )
    names = tuple(n for n, ok in zip(MPII_JOINTS.names, scored) if ok)
    return Evaluation(result, predictions, run, "test", subset, names, gt_path or valid_h5)


def evaluate_checkpoint(
    checkpoint: str | Path,
    *,
    split: str = "test",
    data: Mapping[str, Any] | None = None,
    flip: bool = False,
    flip_mode: Literal["logits", "coords", "heatmaps"] | None = None,
    batch_size: int = 32,
    device: str = "cpu",
    num_draw: int = 8,
    limit: int | None = None,
    progress: bool = False,
    people: str | Path | None = None,
    gt: str | Path | None = None,
) -> Evaluation:
    """Evaluate a checkpoint on a split of its data, PCK in original image pixels.

    Args:
        checkpoint: anything :func:`dsntpose.checkpoint.load_any` opens: a shipped model's
            name, a training checkpoint (or :func:`dsntpose.checkpoint.save_model` file holding
            a full run config), or an exported ``.onnx`` file (whose metadata holds the model
            config only: name the data set with ``data``).
        split: ``"test"`` (LSP images 1001-2000, MPII's standard validation people, the
            synthetic validation figures) or ``"val"`` (what training validated on: the
            held-out training images with ``data.val_holdout``, else the test split).
        data: overrides of the checkpoint's ``data`` section (``root``, ``lspet_root``,
            ``image_root``, ``num_workers``, ...); ``{"dataset": "mpii", "root": DIR}`` scores
            any model, LSP's included, on MPII's validation frames.
        flip: average the image and its mirror (:func:`flip_test`).
        flip_mode: what the flip test merges; None: the head's default.
        batch_size, device: how to run.
        num_draw: how many samples to keep for drawing.
        limit: score only the first ``limit`` samples of the split (None: all of them; the
            checkpoint's ``data.val_subset`` is not applied).
        progress: show a progress bar.
        people, gt: MPII's test split only (:func:`evaluate_mpii_frames`): a people file to
            score instead of the frames present, and the ground-truth file.

    Returns:
        An :class:`Evaluation` (PCKh@0.5 for MPII, PCK@0.2 of the torso otherwise). MPII's
        test split is scored by :func:`evaluate_mpii_frames`: the official ground truth, the
        validation people whose frames are present, 95% bootstrap intervals.

    Raises:
        FileNotFoundError / ValueError: missing checkpoint or data, a checkpoint that does not
            fit its config, or a flip mode the head cannot merge by.
    """
    from dsntpose.checkpoint import load_any
    from dsntpose.data import get_joint_set
    from dsntpose.datasets import build_split
    from dsntpose.heads import check_flip_mode

    loaded = load_any(checkpoint, map_location=device)
    model, config = loaded.model, loaded.run or {"model": {}}
    values = {k: dict(v) for k, v in config.items()}
    data = dict(data or {})
    own = values.setdefault("data", {})
    if flip and flip_mode is not None:
        if model.head is None:  # an OnnxModel without a config, which load_any refuses
            raise ValueError(f"{checkpoint}: no model config, so no head to flip by")
        check_flip_mode(model.head, flip_mode)
    if split == "test" and data.get("dataset", own.get("dataset")) == "mpii":
        # MPII's frames, for a model of any data set: the checkpoint's own data section
        # applies only when it is MPII's too
        where = {**own, **data} if own.get("dataset") == "mpii" else data
        if own.get("dataset") == "mpii":
            own.update(data)
        return evaluate_mpii_frames(
            model, RunConfig.from_dict(values), root=where.get("root"),
            image_root=where.get("image_root"), num_workers=int(where.get("num_workers") or 0),
            gt=gt, people=people, flip=flip, flip_mode=flip_mode, batch_size=batch_size,
            device=device, num_draw=num_draw, limit=limit, progress=progress,
        )  # fmt: skip
    own.update(data)
    run = RunConfig.from_dict(values)
    if people is not None or gt is not None:
        raise ValueError(
            "people and gt: only for MPII's test split (data.dataset mpii, split test)"
        )
    dataset = build_split(run, split)
    joint_set = get_joint_set(run.model.joints)
    predictions = predict_dataset(
        model,
        dataset,
        joint_set,
        flip=flip,
        mode=flip_mode,
        batch_size=batch_size,
        device=device,
        num_workers=run.data.num_workers,
        num_draw=num_draw,
        limit=limit,
        progress=progress,
    )
    result = score(predictions, run.data.dataset, joint_set)
    return Evaluation(result, predictions, run, split)
