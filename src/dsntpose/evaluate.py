"""Evaluation as the field computes it: PCKh (MPII) and PCK (LSP), prediction files, flip test.

Protocols
---------
* **PCKh@t** (MPII): a joint is correct when ``||pred - gt|| <= t * head_size``, with
  ``head_size = 0.6 * ||head-box diagonal||``; joints marked missing (``jnt_missing``) are not
  counted. This is the official MPII rule as implemented by bearpaw's ``eval_PCKh.py`` and
  HRNet; the joints that the official ground truth holds at ``x = 0`` without marking them
  missing (8 joints in 5 people of the 2958) are counted, as those implementations do.
* **PCK@t** (LSP): the same with ``torso_size = ||r_shoulder - l_hip||`` of the ground truth
  (``JointSet.torso``) instead of the head size.
* **Groups**: a group's score (Head, Shoulder, ... as listed in ``JointSet.pck_groups``) is the
  plain mean of its joints' percentages (left and right averaged).
* **Total** (``PCKResult.total``) is *count-weighted*: all correct joints over all counted
  joints, pooled over ``JointSet.pck_total`` (for MPII the 14 joints other than pelvis and
  thorax). This is HRNet's "Mean" and the pooled total of the official MPII tables.
  ``PCKResult.total_unweighted`` is the plain mean of those joints' percentages (the "Mean" of
  bearpaw's README). Both are printed, each under its own name.
* **AUC**: the area under the count-weighted Total against the threshold over ``[0, t]``
  (trapezoid rule on 51 evenly spaced thresholds, so steps of 0.01 for PCKh@0.5), divided by
  ``t``: a percentage, 100 for a perfect model.

Coordinate frames
-----------------
Everything in memory is in dsntpose's convention: 0-based pixels, integers at pixel centres.
MPII's files (the official ground truth and the eval-mpii-pose / bearpaw prediction files)
are in MATLAB's 1-based frame, so the readers here subtract 1 and :func:`write_predictions`
adds 1. PCKh does not depend on the frame as long as both sides share it; a prediction file
written in the wrong frame does, and :func:`check_frame` detects it from the data.

Also here: :func:`back_project` (normalised crop units -> original image pixels),
:func:`flip_test` and :class:`PCKMetric` (torchmetrics, summed across DDP ranks).
"""

from __future__ import annotations

import csv
import io
import json as json_lib
import math
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
import torch
from torch import Tensor

from dsntpose import ops
from dsntpose.data.joints import LSP_JOINTS, MPII_JOINTS, JointSet
from dsntpose.heads import DSNTHead, FCHead, HeatmapHead

__all__ = [
    "FlipOutput",
    "FrameOffset",
    "MPIIGroundTruth",
    "PCKCurve",
    "PCKResult",
    "back_project",
    "check_frame",
    "default_flip_mode",
    "default_ground_truth",
    "estimate_frame_offset",
    "eval_command",
    "flip_test",
    "normalized_distances",
    "pck",
    "pck_curve",
    "pckh",
    "read_mpii_ground_truth",
    "read_predictions",
    "torso_sizes",
    "write_predictions",
]

ArrayLike = np.ndarray | Tensor | Sequence[Any]

# The joint names of the official ground truth (`dataset_joints`), in MPII order.
MPII_MAT_NAMES = (
    "rank", "rkne", "rhip", "lhip", "lkne", "lank", "pelv", "thor",
    "neck", "head", "rwri", "relb", "rsho", "lsho", "lelb", "lwri",
)  # fmt: skip
HEAD_SIZE_FACTOR = 0.6  # head_size = 0.6 * head-box diagonal (official PCKh)
CURVE_STEPS = 51  # thresholds in [0, t] for the curve and its AUC
GT_FILE_NAMES = ("detections_our_format.mat", "gt_valid.mat")


# --------------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------------


def _to_numpy(x: ArrayLike, name: str, dtype: type = np.float64) -> np.ndarray:
    """``x`` (array, tensor or nested sequence) as a numpy array of ``dtype``."""
    if isinstance(x, Tensor):
        x = x.detach().cpu().numpy()
    try:
        return np.asarray(x, dtype=dtype)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name}: expected a numeric array, got {type(x).__name__}") from err


def _check_pck_inputs(
    preds: ArrayLike, gt: ArrayLike, missing: ArrayLike, sizes: ArrayLike, num_joints: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Validate and convert the four PCK inputs: (N, J, 2), (N, J, 2), (N, J) bool, (N,)."""
    p = _to_numpy(preds, "preds")
    g = _to_numpy(gt, "gt")
    m = _to_numpy(missing, "missing", dtype=bool)
    s = _to_numpy(sizes, "sizes")
    if p.ndim != 3 or p.shape[1:] != (num_joints, 2):
        raise ValueError(f"preds: expected shape (N, {num_joints}, 2), got {p.shape}")
    n = p.shape[0]
    if g.shape != p.shape:
        raise ValueError(f"gt: expected shape {p.shape} like preds, got {g.shape}")
    if m.shape != (n, num_joints):
        raise ValueError(f"missing: expected shape ({n}, {num_joints}), got {m.shape}")
    if s.shape != (n,):
        raise ValueError(
            f"sizes: expected shape ({n},), one normalising size per person, got {s.shape}"
        )
    counted = ~m.all(axis=1)
    if not np.all(np.isfinite(s[counted]) & (s[counted] > 0)):
        raise ValueError("sizes: every person with a counted joint needs a finite size > 0 px")
    if not np.all(np.isfinite(g[~m])):
        raise ValueError("gt: joints that are not missing must be finite")
    return p, g, m, s


# --------------------------------------------------------------------------------------------
# PCK tables
# --------------------------------------------------------------------------------------------


def _percent(correct: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """100 * correct / counts, NaN where counts is 0."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, 100.0 * correct / np.maximum(counts, 1), np.nan)


@dataclass(frozen=True)
class PCKCurve:
    """PCK against the threshold.

    Attributes:
        thresholds: ``(T,)`` thresholds in units of the normalising size, ascending.
        per_joint: ``(T, J)`` percentages (NaN for joints never counted).
        total: ``(T,)`` count-weighted Total over ``JointSet.pck_total``, in %.
        auc: area under ``total`` divided by the threshold range (trapezoid rule), in %.
    """

    thresholds: np.ndarray
    per_joint: np.ndarray
    total: np.ndarray
    auc: float


def normalized_distances(preds: ArrayLike, gt: ArrayLike, sizes: ArrayLike) -> np.ndarray:
    """Prediction errors in units of each person's normalising size.

    Args:
        preds, gt: ``(N, J, 2)`` pixel coordinates in one frame.
        sizes: ``(N,)`` normalising sizes in the same pixels (head or torso size).

    Returns:
        ``(N, J)`` distances ``||pred - gt|| / size`` (NaN where a prediction is NaN).
    """
    p = _to_numpy(preds, "preds")
    g = _to_numpy(gt, "gt")
    s = _to_numpy(sizes, "sizes")
    if p.ndim != 3 or p.shape[-1] != 2 or g.shape != p.shape or s.shape != p.shape[:1]:
        raise ValueError(
            f"expected preds and gt (N, J, 2) and sizes (N,), got {p.shape}, {g.shape}, {s.shape}"
        )
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(np.linalg.norm(p - g, axis=-1) / s[:, None], dtype=np.float64)


def pck_curve(
    distances: ArrayLike,
    missing: ArrayLike,
    thresholds: ArrayLike,
    total_joints: Sequence[int],
) -> PCKCurve:
    """PCK at each threshold, per joint and as the count-weighted Total, and the curve's area.

    Args:
        distances: ``(N, J)`` errors in units of the normalising size
            (:func:`normalized_distances`).
        missing: ``(N, J)`` bool, True for joints that are not counted.
        thresholds: ``(T,)`` ascending thresholds, at least two.
        total_joints: joint indices pooled into the Total (``JointSet.pck_total``).

    Returns:
        A :class:`PCKCurve`; ``auc`` is ``trapz(total, thresholds) / (t_max - t_min)``.
    """
    d = _to_numpy(distances, "distances")
    m = _to_numpy(missing, "missing", dtype=bool)
    t = _to_numpy(thresholds, "thresholds")
    if d.ndim != 2 or m.shape != d.shape:
        raise ValueError(f"distances and missing: expected (N, J) each, got {d.shape}, {m.shape}")
    if t.ndim != 1 or t.size < 2 or np.any(np.diff(t) <= 0):
        raise ValueError(f"thresholds: expected (T,) ascending with T >= 2, got {t}")
    counted = ~m
    counts = counted.sum(axis=0)
    hits = (d[None] <= t[:, None, None]) & counted[None]  # (T, N, J); NaN never counts
    correct = hits.sum(axis=1)  # (T, J)
    per_joint = _percent(correct, counts[None])
    idx = list(total_joints)
    total = _percent(correct[:, idx].sum(axis=1), np.full(t.shape, counts[idx].sum()))
    area = np.sum(0.5 * (total[1:] + total[:-1]) * np.diff(t))  # trapezoid rule
    auc = float(area / (t[-1] - t[0]))
    return PCKCurve(thresholds=t, per_joint=per_joint, total=total, auc=auc)


@dataclass(frozen=True, repr=False)
class PCKResult:
    """One PCK/PCKh evaluation: counts per joint, and the familiar table derived from them.

    Attributes:
        metric: ``"PCKh"`` (head-normalised, MPII) or ``"PCK"`` (torso-normalised, LSP).
        threshold: ``t`` in units of the normalising size (0.5 for PCKh, 0.2 for PCK).
        joint_set: the joint table (names, groups, the joints of the Total).
        correct: ``(J,)`` int, joints within the threshold.
        counts: ``(J,)`` int, joints counted (not missing).
        curve: PCK against the threshold, or None.

    Properties (percentages): ``per_joint`` ``(J,)``, ``groups`` (mean of each group's
    joints), ``total`` (count-weighted over ``joint_set.pck_total``, HRNet's "Mean"),
    ``total_unweighted`` (plain mean over the same joints), ``auc``. ``str(result)`` is the
    table; :meth:`to_json` and :meth:`to_csv` serialise it.
    """

    metric: str
    threshold: float
    joint_set: JointSet
    correct: np.ndarray
    counts: np.ndarray
    curve: PCKCurve | None = None

    def __post_init__(self) -> None:
        j = self.joint_set.num_joints
        if np.shape(self.correct) != (j,) or np.shape(self.counts) != (j,):
            raise ValueError(
                f"correct and counts: expected ({j},) for {self.joint_set.name}, got "
                f"{np.shape(self.correct)}, {np.shape(self.counts)}"
            )

    @property
    def per_joint(self) -> np.ndarray:
        """``(J,)`` PCK of each joint in %, NaN for joints never counted."""
        return _percent(np.asarray(self.correct), np.asarray(self.counts))

    @property
    def groups(self) -> dict[str, float]:
        """Group name -> mean of its joints' PCK in %, in table order."""
        per = self.per_joint
        return {g: float(np.mean(per[list(js)])) for g, js in self.joint_set.pck_groups.items()}

    @property
    def total(self) -> float:
        """Count-weighted Total in %: pooled correct / counted over ``joint_set.pck_total``."""
        idx = list(self.joint_set.pck_total)
        counted = int(np.sum(self.counts[idx]))
        return 100.0 * float(np.sum(self.correct[idx])) / counted if counted else math.nan

    @property
    def total_unweighted(self) -> float:
        """Plain mean in % of the per-joint PCK over ``joint_set.pck_total``."""
        return float(np.mean(self.per_joint[list(self.joint_set.pck_total)]))

    @property
    def auc(self) -> float:
        """Normalised area under the Total-vs-threshold curve in % (NaN without a curve)."""
        return self.curve.auc if self.curve is not None else math.nan

    def total_description(self) -> str:
        """Which joints the Total pools, in words (e.g. "the 14 joints other than pelvis, thorax")."""
        js = self.joint_set
        left_out = [js.names[j] for j in range(js.num_joints) if j not in js.pck_total]
        if not left_out:
            return f"all {len(js.pck_total)} joints"
        return f"the {len(js.pck_total)} joints other than {', '.join(left_out)}"

    def __repr__(self) -> str:
        return (
            f"PCKResult({self.metric}@{self.threshold:g}, {self.joint_set.name}, "
            f"total={self.total:.2f}, total_unweighted={self.total_unweighted:.2f})"
        )

    def __str__(self) -> str:
        name = f"{self.metric}@{self.threshold:g}"
        cols = [*self.groups, "Total", "Unweighted"]
        vals = [*self.groups.values(), self.total, self.total_unweighted]
        widths = [max(len(c), 6) for c in cols]
        lines = [
            f"{name}, {self.joint_set.name} joints",
            "  ".join(c.rjust(w) for c, w in zip(cols, widths)),
            "  ".join(f"{v:{w}.2f}" for v, w in zip(vals, widths)),
            f"Total: count-weighted over {self.total_description()} (HRNet's 'Mean'); "
            "Unweighted: plain mean of their per-joint PCK.",
        ]
        if self.curve is not None:
            t = self.curve.thresholds
            lines.append(f"AUC of Total over {self.metric}@[{t[0]:g}, {t[-1]:g}]: {self.auc:.2f}")
        lines.append("joint        PCK  counted")
        for j, joint in enumerate(self.joint_set.names):
            lines.append(f"{joint:<11} {self.per_joint[j]:6.2f}  {int(self.counts[j]):7d}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict: metric, threshold, groups, joints, counts, totals, AUC (NaN -> None)."""

        def num(v: float) -> float | None:
            return None if math.isnan(v) else float(v)

        return {
            "metric": self.metric,
            "threshold": self.threshold,
            "joint_set": self.joint_set.name,
            "groups": {g: num(v) for g, v in self.groups.items()},
            "total": num(self.total),
            "total_unweighted": num(self.total_unweighted),
            "total_definition": (
                f"total: count-weighted over {self.total_description()}; "
                "total_unweighted: plain mean of the same joints"
            ),
            "auc": num(self.auc),
            "joints": {n: num(v) for n, v in zip(self.joint_set.names, self.per_joint)},
            "counts": {n: int(c) for n, c in zip(self.joint_set.names, self.counts)},
        }

    def to_json(self, path: str | os.PathLike[str] | None = None, indent: int = 2) -> str:
        """The result as JSON (one key per group and per joint); also written to ``path``."""
        text = json_lib.dumps(self.to_dict(), indent=indent)
        if path is not None:
            Path(path).write_text(text + "\n")
        return text

    def to_csv(self, path: str | os.PathLike[str] | None = None) -> str:
        """Rows ``kind,name,pck,counted`` (kind: group, total, auc, joint); also written to ``path``."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["kind", "name", "pck", "counted"])
        idx = list(self.joint_set.pck_total)
        for g, v in self.groups.items():
            w.writerow(["group", g, f"{v:.4f}", ""])
        total_count = int(np.sum(self.counts[idx]))
        w.writerow(["total", "total", f"{self.total:.4f}", total_count])
        w.writerow(["total", "total_unweighted", f"{self.total_unweighted:.4f}", total_count])
        w.writerow(["auc", "auc", f"{self.auc:.4f}", ""])
        for n, v, c in zip(self.joint_set.names, self.per_joint, self.counts):
            w.writerow(["joint", n, f"{v:.4f}", int(c)])
        text = buf.getvalue()
        if path is not None:
            Path(path).write_text(text)
        return text


def _pck_result(
    metric: str,
    preds: ArrayLike,
    gt: ArrayLike,
    missing: ArrayLike,
    sizes: ArrayLike,
    threshold: float,
    joint_set: JointSet,
) -> PCKResult:
    if not threshold > 0:
        raise ValueError(f"threshold: must be > 0, got {threshold}")
    p, g, m, s = _check_pck_inputs(preds, gt, missing, sizes, joint_set.num_joints)
    d = normalized_distances(p, g, s)
    counted = ~m
    correct = ((d <= threshold) & counted).sum(axis=0)
    curve = pck_curve(d, m, np.linspace(0.0, threshold, CURVE_STEPS), joint_set.pck_total)
    return PCKResult(metric, float(threshold), joint_set, correct, counted.sum(axis=0), curve)


def pckh(
    preds: ArrayLike,
    gt: ArrayLike,
    missing: ArrayLike,
    head_sizes: ArrayLike,
    threshold: float = 0.5,
    *,
    joint_set: JointSet = MPII_JOINTS,
) -> PCKResult:
    """PCKh@threshold, the MPII protocol.

    Args:
        preds: ``(N, J, 2)`` predicted ``(x, y)`` in image pixels.
        gt: ``(N, J, 2)`` ground truth in the same frame.
        missing: ``(N, J)`` bool, True for joints without ground truth (``jnt_missing``);
            they are not counted.
        head_sizes: ``(N,)`` ``0.6 * ||head-box diagonal||`` in image pixels.
        threshold: fraction of the head size (0.5 for PCKh@0.5).
        joint_set: joint table (MPII by default): groups and the joints of the Total.

    Returns:
        A :class:`PCKResult` with the curve over ``[0, threshold]``.
    """
    return _pck_result("PCKh", preds, gt, missing, head_sizes, threshold, joint_set)


def torso_sizes(joints: ArrayLike, joint_set: JointSet = LSP_JOINTS) -> np.ndarray:
    """Torso size per person: the distance between the ``joint_set.torso`` pair.

    For LSP (and MPII) that pair is right shoulder -- left hip.

    Args:
        joints: ``(N, J, 2)`` ground-truth joints in pixels.

    Returns:
        ``(N,)`` torso sizes in the same pixels.
    """
    g = _to_numpy(joints, "joints")
    if g.ndim != 3 or g.shape[1:] != (joint_set.num_joints, 2):
        raise ValueError(f"joints: expected shape (N, {joint_set.num_joints}, 2), got {g.shape}")
    a, b = joint_set.torso
    return np.asarray(np.linalg.norm(g[:, a] - g[:, b], axis=-1), dtype=np.float64)


def pck(
    preds: ArrayLike,
    gt: ArrayLike,
    missing: ArrayLike,
    torso_sizes: ArrayLike,
    threshold: float = 0.2,
    *,
    joint_set: JointSet = LSP_JOINTS,
) -> PCKResult:
    """PCK@threshold of the torso size, the LSP protocol.

    Args:
        preds: ``(N, J, 2)`` predicted ``(x, y)`` in image pixels.
        gt: ``(N, J, 2)`` ground truth in the same frame.
        missing: ``(N, J)`` bool, True for joints not counted (LSP labels every joint, so
            usually all False; occluded joints are still counted).
        torso_sizes: ``(N,)`` torso sizes in pixels, right shoulder -- left hip of the ground
            truth (:func:`torso_sizes`).
        threshold: fraction of the torso size (0.2 for PCK@0.2).
        joint_set: joint table (LSP by default).

    Returns:
        A :class:`PCKResult` with the curve over ``[0, threshold]``.
    """
    return _pck_result("PCK", preds, gt, missing, torso_sizes, threshold, joint_set)


# --------------------------------------------------------------------------------------------
# Coordinate frame check (0- vs 1-based prediction files)
# --------------------------------------------------------------------------------------------

# Decision band for the scale-independent offset (image px, both axes must agree). Measured on
# the five published MPII prediction files (docs/reference_pckh.md): in their own frame their
# offsets lie in [+0.08, +0.53] px, shifted by -1 px in [-0.92, -0.47], shifted by +1 px in
# [+1.06, +1.53]; an unbiased model sits within 0.1 px of 0.
ZERO_BASED_BELOW = -0.4
DOUBLE_SHIFT_ABOVE = 0.75
FRAME_WINDOW = 0.25  # joints within this many head sizes of the fit enter the fit
FRAME_MIN_JOINTS = 500


class FrameOffset(NamedTuple):
    """A robust fit of ``pred - gt = offset + slope * size`` over well-predicted joints.

    Attributes:
        offset: ``(2,)`` constant ``(x, y)`` offset in image px, independent of the person's
            size: what a 0- vs 1-based mix-up adds (about -1 or +1 on both axes).
        slope: ``(2,)`` offset per pixel of normalising size: the model's own bias, which
            scales with the person (a heatmap model's half-cell shift lands here).
        stderr: ``(2,)`` standard error of ``offset`` in px.
        num_joints: joints in the final fit.
    """

    offset: np.ndarray
    slope: np.ndarray
    stderr: np.ndarray
    num_joints: int


def estimate_frame_offset(
    preds: ArrayLike,
    gt: ArrayLike,
    missing: ArrayLike,
    sizes: ArrayLike,
    *,
    window: float = FRAME_WINDOW,
    iterations: int = 5,
) -> FrameOffset:
    """Estimate the size-independent offset between predictions and ground truth.

    A frame mix-up moves every prediction by the same number of *image* pixels, whatever the
    person's size, while a model's own biases (e.g. a heatmap decoder's shift by part of a
    heatmap cell) grow with the person. So the signed error of well-predicted joints is fitted
    as ``offset + slope * size`` by weighted least squares (weights ``1 / size**2``, as errors
    grow with the person), iterated on the joints within ``window * size`` of the current fit
    so gross errors do not pull it. A plain median of ``pred - gt`` would not do: published
    heatmap models carry a size-proportional bias of several pixels (-4 px median for
    bearpaw's hourglass).

    Args:
        preds, gt: ``(N, J, 2)`` pixel coordinates.
        missing: ``(N, J)`` bool, True for joints without ground truth.
        sizes: ``(N,)`` normalising sizes (head sizes for MPII) in pixels.
        window: half-width of the inlier window in units of ``sizes``.
        iterations: re-fits after the first.

    Returns:
        A :class:`FrameOffset`; ``num_joints`` is 0 (and the arrays NaN) when fewer than three
        joints are usable.
    """
    p, g, m, s = _check_pck_inputs(preds, gt, missing, sizes, _to_numpy(preds, "preds").shape[1])
    usable = ~m & np.isfinite(p).all(axis=-1)
    size = np.broadcast_to(s[:, None], usable.shape)[usable]
    err = (p - g)[usable]  # (K, 2)
    design = np.stack([np.ones_like(size), size], axis=1)  # (K, 2)
    coef = np.zeros((2, 2))
    inliers = np.zeros(size.shape, dtype=bool)
    for _ in range(iterations + 1):
        resid = err - design @ coef
        inliers = np.linalg.norm(resid, axis=1) <= window * size
        if inliers.sum() < 3:
            nan = np.full(2, np.nan)
            return FrameOffset(nan, nan, nan, 0)
        w = 1.0 / size[inliers, None]
        coef = np.linalg.lstsq(design[inliers] * w, err[inliers] * w, rcond=None)[0]
    a = design[inliers] / size[inliers, None]
    r = (err[inliers] - design[inliers] @ coef) / size[inliers, None]
    dof = max(int(inliers.sum()) - 2, 1)
    cov00 = np.linalg.inv(a.T @ a)[0, 0]
    stderr = np.sqrt(cov00 * (r**2).sum(axis=0) / dof)
    return FrameOffset(coef[0], coef[1], stderr, int(inliers.sum()))


def check_frame(
    preds: ArrayLike,
    gt: ArrayLike,
    missing: ArrayLike,
    sizes: ArrayLike,
    *,
    source: str = "predictions",
) -> FrameOffset:
    """Raise ``ValueError`` when predictions look shifted by a whole pixel against the ground truth.

    Uses :func:`estimate_frame_offset`. Predictions whose size-independent offset is at most
    -0.4 px on both axes look 0-based (the official frame is 1-based: add 1); at least +0.75 px
    on both axes looks like 1 added twice. The band is asymmetric because published 1-based
    predictions sit at +0.08 to +0.53 px. The check needs ``FRAME_MIN_JOINTS`` (500)
    well-predicted joints and passes silently otherwise. Limit: a model whose own constant bias
    is near -0.5 or +0.75 px cannot be told apart from a frame error; a 0-based copy of a
    model biased by more than +0.6 px is not caught.

    Args:
        preds, gt: ``(N, J, 2)`` pixel coordinates, both read from their files the same way.
        missing: ``(N, J)`` bool. sizes: ``(N,)`` head (or torso) sizes in pixels.
        source: the prediction file's name, for the message.

    Returns:
        The :class:`FrameOffset` when the frame looks right.
    """
    fit = estimate_frame_offset(preds, gt, missing, sizes)
    if fit.num_joints < FRAME_MIN_JOINTS:
        return fit
    dx, dy = fit.offset
    if dx <= ZERO_BASED_BELOW and dy <= ZERO_BASED_BELOW:
        raise ValueError(
            f"{source}: predictions sit ({dx:+.2f}, {dy:+.2f}) px from the ground truth whatever "
            "the person's size, so they look 0-based; expected MPII's official 1-based frame "
            "(add 1 to x and y, or save with dsntpose.evaluate.write_predictions)"
        )
    if dx >= DOUBLE_SHIFT_ABOVE and dy >= DOUBLE_SHIFT_ABOVE:
        raise ValueError(
            f"{source}: predictions sit ({dx:+.2f}, {dy:+.2f}) px from the ground truth whatever "
            "the person's size, so 1 looks added twice; expected MPII's official 1-based frame "
            "(subtract 1 from x and y)"
        )
    return fit


# --------------------------------------------------------------------------------------------
# Files: predictions and the official ground truth
# --------------------------------------------------------------------------------------------


def _read_mat(path: Path) -> dict[str, Any]:
    """Variables of a MATLAB file (v5 via scipy; v7.3 via h5py, axes reversed to MATLAB's)."""
    import scipy.io

    try:
        return {k: v for k, v in scipy.io.loadmat(path).items() if not k.startswith("__")}
    except NotImplementedError:  # v7.3 is HDF5, stored column-major
        import h5py

        with h5py.File(path, "r") as f:
            return {k: f[k][()].T for k in f if isinstance(f[k], h5py.Dataset)}
    except ValueError as err:
        raise ValueError(f"{path}: not a readable MATLAB file ({err})") from None


def _read_preds_array(path: Path) -> np.ndarray:
    suffix = path.suffix.lower()
    if suffix in (".h5", ".hdf5"):
        import h5py

        try:
            with h5py.File(path, "r") as f:
                if "preds" not in f:
                    raise ValueError(
                        f"{path}: no dataset 'preds' (found {', '.join(f) or 'none'}); expected "
                        "the eval-mpii-pose layout, 'preds' (N, 16, 2) in the 1-based frame"
                    )
                return np.asarray(f["preds"][()])
        except OSError as err:
            raise ValueError(f"{path}: not a readable HDF5 file ({err})") from None
    if suffix == ".mat":
        variables = _read_mat(path)
        if "preds" not in variables:
            raise ValueError(
                f"{path}: no variable 'preds' (found {', '.join(variables) or 'none'}); expected "
                "bearpaw's layout, 'preds' (N, 16, 2) in the 1-based frame"
            )
        return np.asarray(variables["preds"])
    raise ValueError(f"{path}: unknown prediction file type {suffix!r}; expected .h5 or .mat")


def read_predictions(path: str | os.PathLike[str], num_joints: int = 16) -> np.ndarray:
    """Read an MPII prediction file into 0-based pixels.

    Accepts eval-mpii-pose's ``.h5`` and bearpaw's ``.mat``, each with ``preds`` of shape
    ``(N, J, 2)`` holding ``(x, y)`` in the official 1-based frame, and the transposed
    ``(2, J, N)`` layout of ``tompson.h5`` (recognised and transposed).

    Args:
        path: ``.h5`` / ``.hdf5`` or ``.mat`` file.
        num_joints: ``J`` expected (16 for MPII, in MPII order).

    Returns:
        ``(N, J, 2)`` float64 ``(x, y)`` in 0-based pixels (the file's values minus 1).

    Raises:
        FileNotFoundError: no such file.
        ValueError: wrong type, key, shape, joint count or non-finite values (naming the file).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"prediction file not found: {path}")
    arr = _read_preds_array(path)
    expected = (
        f"expected (N, {num_joints}, 2) (x, y per joint) or tompson.h5's (2, {num_joints}, N)"
    )
    if arr.ndim != 3:
        raise ValueError(f"{path}: 'preds' has shape {arr.shape}; {expected}")
    if arr.shape[1:] == (num_joints, 2):
        out = arr
    elif arr.shape[:2] == (2, num_joints):
        out = arr.transpose(2, 1, 0)
    elif 2 in (arr.shape[0], arr.shape[2]) and arr.shape[1] != num_joints:
        raise ValueError(
            f"{path}: 'preds' has shape {arr.shape}: {arr.shape[1]} joints, expected "
            f"{num_joints} in MPII order"
        )
    else:
        raise ValueError(f"{path}: 'preds' has shape {arr.shape}; {expected}")
    out = out.astype(np.float64)
    if not np.all(np.isfinite(out)):
        raise ValueError(f"{path}: 'preds' holds NaN or infinite values; expected finite pixels")
    return out - 1.0


def write_predictions(path: str | os.PathLike[str], preds: ArrayLike) -> Path:
    """Write predictions in the layout MPII tools read.

    Args:
        path: ``.h5`` (eval-mpii-pose: dataset ``preds``) or ``.mat`` (bearpaw: variable
            ``preds``); parent folders are created.
        preds: ``(N, J, 2)`` ``(x, y)`` in dsntpose's 0-based image pixels; the file gets them
            in the official 1-based frame (plus 1), float64.

    Returns:
        The path written. :func:`read_predictions` returns ``preds`` again.
    """
    path = Path(path)
    p = _to_numpy(preds, "preds")
    if p.ndim != 3 or p.shape[-1] != 2:
        raise ValueError(f"preds: expected shape (N, J, 2) in 0-based image px, got {p.shape}")
    if not np.all(np.isfinite(p)):
        raise ValueError("preds: NaN or infinite values; expected finite pixels")
    suffix = path.suffix.lower()
    if suffix not in (".h5", ".hdf5", ".mat"):
        raise ValueError(f"{path}: unknown prediction file type {suffix!r}; use .h5 or .mat")
    path.parent.mkdir(parents=True, exist_ok=True)
    one_based = p + 1.0
    if suffix == ".mat":
        import scipy.io

        scipy.io.savemat(path, {"preds": one_based})
    else:
        import h5py

        with h5py.File(path, "w") as f:
            f.create_dataset("preds", data=one_based)
    return path


@dataclass(frozen=True)
class MPIIGroundTruth:
    """The official-style PCKh ground truth (``detections_our_format.mat`` / ``gt_valid.mat``).

    Attributes:
        joints: ``(N, 16, 2)`` ``(x, y)`` in 0-based image pixels (``pos_gt_src`` minus 1).
        missing: ``(N, 16)`` bool, True for joints that are not counted (``jnt_missing``).
        head_boxes: ``(N, 2, 2)`` ``[[x1, y1], [x2, y2]]`` in 0-based pixels.
        head_sizes: ``(N,)`` ``0.6 * ||head-box diagonal||`` in pixels (the PCKh unit).
    """

    joints: np.ndarray
    missing: np.ndarray
    head_boxes: np.ndarray
    head_sizes: np.ndarray

    def __len__(self) -> int:
        return int(self.joints.shape[0])


def read_mpii_ground_truth(path: str | os.PathLike[str]) -> MPIIGroundTruth:
    """Read ``detections_our_format.mat`` (bearpaw) or ``gt_valid.mat`` (HRNet).

    Needs ``jnt_missing`` ``(16, N)``, ``pos_gt_src`` ``(16, 2, N)`` and ``headboxes_src``
    ``(2, 2, N)`` (official 1-based frame); ``dataset_joints``, when present, must list the
    joints in MPII order.

    Returns:
        An :class:`MPIIGroundTruth` in 0-based pixels.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ground-truth file not found: {path}")
    v = _read_mat(path)
    fields = {"jnt_missing": (16, None), "pos_gt_src": (16, 2, None), "headboxes_src": (2, 2, None)}
    absent = [k for k in fields if k not in v]
    if absent:
        raise ValueError(
            f"{path}: missing {', '.join(absent)}; expected the PCKh ground truth with "
            "jnt_missing (16, N), pos_gt_src (16, 2, N), headboxes_src (2, 2, N)"
        )
    n = np.shape(v["pos_gt_src"])[-1]
    for key, shape in fields.items():
        want = tuple(n if d is None else d for d in shape)
        if np.shape(v[key]) != want:
            raise ValueError(f"{path}: {key} has shape {np.shape(v[key])}, expected {want}")
    if "dataset_joints" in v:
        names = tuple(str(np.squeeze(x)) for x in np.ravel(v["dataset_joints"]))
        if names != MPII_MAT_NAMES:
            raise ValueError(
                f"{path}: dataset_joints is {names}, expected MPII order {MPII_MAT_NAMES}"
            )
    joints = np.asarray(v["pos_gt_src"], dtype=np.float64).transpose(2, 0, 1) - 1.0
    boxes = np.asarray(v["headboxes_src"], dtype=np.float64).transpose(2, 0, 1) - 1.0
    sizes = HEAD_SIZE_FACTOR * np.linalg.norm(boxes[:, 1] - boxes[:, 0], axis=-1)
    missing = np.asarray(v["jnt_missing"]).T.astype(bool)
    return MPIIGroundTruth(joints=joints, missing=missing, head_boxes=boxes, head_sizes=sizes)


def default_ground_truth() -> Path:
    """The standard MPII validation ground truth, looked up where the user keeps it.

    Searched, in order: ``$DSNTPOSE_DATA/mpii/`` (when set), then ``~/.cache/dsntpose/mpii/``,
    for ``detections_our_format.mat`` (bearpaw's ``evaluation/data/``) or ``gt_valid.mat``
    (HRNet's ``data/mpii/annot/``).

    Raises:
        FileNotFoundError: a one-line message saying what to put where.
    """
    folders = []
    if os.environ.get("DSNTPOSE_DATA"):
        folders.append(Path(os.environ["DSNTPOSE_DATA"]) / "mpii")
    folders.append(Path.home() / ".cache" / "dsntpose" / "mpii")
    for folder in folders:
        for name in GT_FILE_NAMES:
            if (folder / name).is_file():
                return folder / name
    raise FileNotFoundError(
        "no MPII validation ground truth: put detections_our_format.mat (bearpaw) or "
        f"gt_valid.mat (HRNet) in {' or '.join(map(str, folders))}, or pass --gt FILE"
    )


def eval_command(
    preds: Path,
    gt: Path | None = None,
    json: bool = False,
    threshold: float = 0.5,
    *,
    check_frame_offset: bool = True,
) -> PCKResult:
    """``dsntpose eval``: PCKh of an MPII prediction file, printed as a table or JSON.

    Args:
        preds: ``.h5`` or ``.mat`` with ``preds`` ``(2958, 16, 2)`` for the standard
            validation people in valid.h5 order, official 1-based frame.
        gt: the ground truth (``detections_our_format.mat`` / ``gt_valid.mat``); default
            :func:`default_ground_truth`.
        json: print JSON (one key per group and per joint) instead of the table.
        threshold: PCKh threshold in head sizes.
        check_frame_offset: refuse files that look 0-based (:func:`check_frame`).

    Returns:
        The :class:`PCKResult` (also printed to stdout).
    """
    preds = Path(preds)
    gt_path = Path(gt) if gt is not None else default_ground_truth()
    truth = read_mpii_ground_truth(gt_path)
    p = read_predictions(preds, num_joints=truth.joints.shape[1])
    if len(p) != len(truth):
        raise ValueError(
            f"{preds}: {len(p)} people, but {gt_path} has {len(truth)}; expected one row per "
            "ground-truth person, in the same order (valid.h5 order for the standard split)"
        )
    if check_frame_offset:
        check_frame(p, truth.joints, truth.missing, truth.head_sizes, source=str(preds))
    result = pckh(p, truth.joints, truth.missing, truth.head_sizes, threshold)
    print(result.to_json() if json else result, file=sys.stdout)
    return result


# --------------------------------------------------------------------------------------------
# Back-projection and flip test
# --------------------------------------------------------------------------------------------


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
    """Flip-test prediction: ``coords`` ``(B, J, 2)`` normalised, ``confidence`` ``(B, J)``."""

    coords: Tensor
    confidence: Tensor


Decode = Callable[[Tensor], tuple[Tensor, Tensor]]


def _head_decode(model: torch.nn.Module) -> Decode:
    """Logits -> (coords, confidence) with the model head's own activation (softmax by default)."""
    head = getattr(model, "head", None)
    if isinstance(head, HeatmapHead):
        raise ValueError(
            "flip_test: a heatmap-matching model averages its maps: use mode='heatmaps'"
        )
    if isinstance(head, FCHead):
        raise ValueError("flip_test: the FC head maps each view's maps itself: use mode='coords'")
    activation, temperature = "softmax", 1.0
    if isinstance(head, DSNTHead):
        activation, temperature = head.activation, head.temperature

    def decode(logits: Tensor) -> tuple[Tensor, Tensor]:
        probs = ops.normalize_heatmaps(logits, activation, temperature=temperature)
        return ops.dsnt(probs), ops.heatmap_confidence(probs)

    return decode


def default_flip_mode(
    head: str, activation: str = "softmax"
) -> Literal["logits", "coords", "heatmaps"]:
    """What the flip test averages by default for a head (``dsnt``, ``heatmap``, ``fc``).

    DSNT averages the pre-activation maps and decodes them once (``"logits"``, as the paper's
    code), except with the ``abs`` activation: ``|(a + b) / 2|`` cancels where the two views
    give one cell logits of opposite sign, which ``abs`` counts as equal evidence, so there the
    two coordinate predictions are averaged instead (``"coords"``; on the LSP sweep's abs model
    flip by logits lost 0.7 PCK@0.2 against no flip, flip by coordinates gained 0.5,
    ``experiments/flip.py``). Heatmap matching averages its maps (``"heatmaps"``), FC its
    coordinates.
    """
    if head == "dsnt":
        return "coords" if activation == "abs" else "logits"
    if head == "heatmap":
        return "heatmaps"
    if head == "fc":
        return "coords"
    raise ValueError(f"head: expected 'dsnt', 'heatmap' or 'fc', got {head!r}")


def _model_flip_mode(model: object) -> Literal["logits", "coords", "heatmaps"]:
    """:func:`default_flip_mode` for ``model.head``; ``"logits"`` for a head it cannot name."""
    head = getattr(model, "head", None)
    if isinstance(head, DSNTHead):
        return default_flip_mode("dsnt", head.activation)
    if isinstance(head, HeatmapHead):
        return default_flip_mode("heatmap")
    if isinstance(head, FCHead):
        return default_flip_mode("fc")
    return "logits"


@torch.no_grad()
def flip_test(
    model: Callable[[Tensor], Any],
    images: Tensor,
    joint_set: JointSet,
    mode: Literal["logits", "coords", "heatmaps"] | None = None,
    decode: Decode | None = None,
) -> FlipOutput:
    """Predict on the images and their mirrors, swap left and right, and average.

    The mirror is ``torch.flip`` along the width. In dsntpose's normalised units it maps
    ``x`` to ``-x`` exactly, and a map flipped along ``W`` lines up cell for cell, so no
    half-pixel correction is needed.

    Args:
        model: returns a ``HeadOutput`` (``coords``, ``heatmaps``, ``logits``, ``confidence``).
            Its mode (train/eval) is left as it is; gradients are off.
        images: ``(B, 3, S, S)`` RGB in ``[0, 1]``.
        joint_set: supplies ``flip_index`` (left/right partners).
        mode: ``"logits"`` (DSNT, as the paper's code): average the pre-activation maps, then
            decode them once; ``"coords"``: average the two coordinate predictions (any head);
            ``"heatmaps"`` (heatmap matching): average the raw maps and decode by arg-max with
            the quarter-pixel shift. Default ``None``: ``"logits"`` when ``decode`` is given,
            else what :func:`default_flip_mode` gives for ``model.head`` (a
            :class:`~dsntpose.heads.DSNTHead` with its activation, a ``HeatmapHead`` or an
            ``FCHead``), else ``"logits"``.
        decode: for ``"logits"``: ``(B, J, H, W)`` logits -> (coords ``(B, J, 2)``,
            confidence ``(B, J)``). Default: the model head's activation and temperature when
            it is a ``DSNTHead``, else softmax, then ``ops.dsnt`` and ``ops.heatmap_confidence``.

    Returns:
        :class:`FlipOutput` with ``coords`` ``(B, J, 2)`` normalised and ``confidence``
        ``(B, J)``; for ``"coords"`` and ``"heatmaps"`` the confidence is the mean of both
        views'.
    """
    if images.dim() != 4:
        raise ValueError(f"images: expected (B, 3, S, S), got {tuple(images.shape)}")
    if mode is None:
        mode = "logits" if decode is not None else _model_flip_mode(model)
    if mode not in ("logits", "coords", "heatmaps"):
        raise ValueError(f"mode: expected 'logits', 'coords' or 'heatmaps', got {mode!r}")
    if mode == "logits" and decode is None:
        decode = _head_decode(model)  # type: ignore[arg-type]
    out = model(images)
    out_flip = model(torch.flip(images, dims=[-1]))
    if out.coords.shape[1] != joint_set.num_joints:
        raise ValueError(
            f"flip_test: the model predicts {out.coords.shape[1]} joints, joint set "
            f"{joint_set.name} has {joint_set.num_joints}"
        )
    swap = list(joint_set.flip_index)
    confidence = 0.5 * (out.confidence + out_flip.confidence[:, swap])
    if mode == "coords":
        mirrored = out_flip.coords[:, swap].clone()
        mirrored[..., 0] = -mirrored[..., 0]
        return FlipOutput(0.5 * (out.coords + mirrored), confidence)
    if mode == "heatmaps":
        maps = 0.5 * (out.heatmaps + torch.flip(out_flip.heatmaps, dims=[-1])[:, swap])
        return FlipOutput(ops.argmax_decode(maps, refine="quarter"), confidence)
    logits = 0.5 * (out.logits + torch.flip(out_flip.logits, dims=[-1])[:, swap])
    assert decode is not None
    return FlipOutput(*decode(logits))


# --------------------------------------------------------------------------------------------
# PCKMetric lives in dsntpose.metrics: importing torchmetrics costs seconds, so it is loaded
# only when asked for (training asks; `dsntpose eval` does not).
# --------------------------------------------------------------------------------------------


def __getattr__(name: str) -> Any:
    if name == "PCKMetric":
        from dsntpose.metrics import PCKMetric

        return PCKMetric
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
