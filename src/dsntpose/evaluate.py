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

Everything here is in dsntpose's convention: 0-based pixels, integers at pixel centres.
:func:`protocol_for` says which protocol a data set is scored by. MPII's 1-based files live in
:mod:`dsntpose.mpii_files`, running a model in :mod:`dsntpose.inference`, and the
DDP-summed metric in :mod:`dsntpose.metrics`.
"""

from __future__ import annotations

import csv
import io
import json as json_lib
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor

from dsntpose.data.joints import LSP_JOINTS, MPII_JOINTS, JointSet
from dsntpose.families import DATASETS, Protocol

__all__ = [
    "PCKCurve",
    "PCKIntervals",
    "PCKResult",
    "Protocol",
    "auroc",
    "bootstrap_pck",
    "normalized_distances",
    "pck",
    "pck_curve",
    "pckh",
    "per_person_correct",
    "protocol_for",
    "torso_sizes",
]

ArrayLike = np.ndarray | Tensor | Sequence[Any]

HEAD_SIZE_FACTOR = 0.6  # head_size = 0.6 * head-box diagonal (official PCKh)
CURVE_STEPS = 51  # thresholds in [0, t] for the curve and its AUC


# --------------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------------


def to_numpy(x: ArrayLike, name: str, dtype: type = np.float64) -> np.ndarray:
    """``x`` (array, tensor or nested sequence) as a numpy array of ``dtype``."""
    if isinstance(x, Tensor):
        x = x.detach().cpu().numpy()
    if np.iscomplexobj(x) if isinstance(x, np.ndarray) else _has_complex(x):
        raise ValueError(f"{name}: holds complex numbers; give real coordinates")
    try:
        return np.asarray(x, dtype=dtype)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name}: expected a numeric array, got {type(x).__name__}") from err


def note_left_out(usable: np.ndarray, why: str) -> None:
    """Say on stderr how many people were left out of the scores and why (one line), so a
    table never silently stands for fewer people than the split has."""
    left = int(np.size(usable) - np.count_nonzero(usable))
    if left:
        import sys

        print(
            f"dsntpose: {left} of {np.size(usable)} people left out of the scores: {why}",
            file=sys.stderr,
        )


def _has_complex(x: object) -> bool:
    """Whether a nested list or tuple holds a complex number (numpy would drop its imaginary
    part when casting to float, with only a warning)."""
    if isinstance(x, complex):
        return True
    if isinstance(x, (list, tuple)):
        return any(_has_complex(v) for v in x)
    return False


def check_pck_inputs(
    preds: ArrayLike, gt: ArrayLike, missing: ArrayLike, sizes: ArrayLike, num_joints: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Validate and convert the four PCK inputs: (N, J, 2), (N, J, 2), (N, J) bool, (N,)."""
    p = to_numpy(preds, "preds")
    g = to_numpy(gt, "gt")
    m = to_numpy(missing, "missing", dtype=bool)
    s = to_numpy(sizes, "sizes")
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
    scored = ~m
    if n == 0:
        raise ValueError(
            "nothing to score: no people left (each person needs a normalising size that is "
            "finite and > 0; check the ground truth's joints and head boxes)"
        )
    if not scored.any():
        raise ValueError(
            f"nothing to score: none of the {n} people has a joint with ground truth (every "
            "joint is missing); check the ground-truth file"
        )
    # one NaN prediction is a miss (a joint not predicted); all of them is a broken model
    bad = ~np.isfinite(p[scored]).all(axis=-1)
    if bad.all():
        raise ValueError(
            f"preds: all {int(scored.sum())} scored joints are NaN or inf: the model's outputs "
            "are not finite (a diverged or damaged model); nothing was scored"
        )
    return p, g, m, s


# --------------------------------------------------------------------------------------------
# PCK tables
# --------------------------------------------------------------------------------------------


def _span(bounds: Sequence[float]) -> str:
    """``[low, high]`` with one decimal, ``[–]`` when undefined."""
    lo, hi = bounds
    return "[–]" if math.isnan(lo) else f"[{lo:.1f}, {hi:.1f}]"


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
    p = to_numpy(preds, "preds")
    g = to_numpy(gt, "gt")
    s = to_numpy(sizes, "sizes")
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
    d = to_numpy(distances, "distances")
    m = to_numpy(missing, "missing", dtype=bool)
    t = to_numpy(thresholds, "thresholds")
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


@dataclass(frozen=True)
class PCKIntervals:
    """Percentile-bootstrap confidence intervals of a PCK table, people resampled.

    Attributes:
        level: coverage, e.g. 0.95.
        people: people resampled (``N``).
        resamples: bootstrap resamples drawn.
        seed: seed of the generator (``numpy.random.default_rng``).
        groups: group name -> ``(low, high)`` in %.
        total, total_unweighted: ``(low, high)`` of the count-weighted and plain Totals in %.
        per_joint: ``(J, 2)`` ``(low, high)`` per joint in %, NaN for joints never counted.
    """

    level: float
    people: int
    resamples: int
    seed: int
    groups: dict[str, tuple[float, float]]
    total: tuple[float, float]
    total_unweighted: tuple[float, float]
    per_joint: np.ndarray

    def describe(self) -> str:
        """One line: what the intervals are."""
        return (
            f"{100 * self.level:g}% percentile-bootstrap intervals over {self.people} people "
            f"({self.resamples} resamples, seed {self.seed})"
        )

    def to_dict(self, joint_names: Sequence[str]) -> dict[str, Any]:
        """Plain dict (NaN -> None): level, people, resamples, seed, groups, totals, joints."""

        def pair(v: Sequence[float]) -> list[float | None]:
            return [None if math.isnan(x) else float(x) for x in v]

        return {
            "level": self.level,
            "people": self.people,
            "resamples": self.resamples,
            "seed": self.seed,
            "method": "percentile bootstrap, people resampled with replacement",
            "groups": {g: pair(v) for g, v in self.groups.items()},
            "total": pair(self.total),
            "total_unweighted": pair(self.total_unweighted),
            "joints": {n: pair(v) for n, v in zip(joint_names, self.per_joint)},
        }


def per_person_correct(
    preds: ArrayLike,
    gt: ArrayLike,
    missing: ArrayLike,
    sizes: ArrayLike,
    threshold: float,
    num_joints: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Which joints of each person are correct and which are counted.

    Args:
        preds, gt: ``(N, J, 2)`` pixels; missing: ``(N, J)`` bool; sizes: ``(N,)`` pixels;
        threshold: in units of ``sizes``; num_joints: ``J``.

    Returns:
        ``correct`` and ``counted``, each ``(N, J)`` bool (a NaN prediction is never correct).
    """
    p, g, m, s = check_pck_inputs(preds, gt, missing, sizes, num_joints)
    d = normalized_distances(p, g, s)
    counted = ~m
    return (d <= threshold) & counted, counted


def bootstrap_pck(
    correct: ArrayLike,
    counted: ArrayLike,
    joint_set: JointSet,
    *,
    resamples: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> PCKIntervals:
    """Percentile-bootstrap intervals of every figure of a PCK table, resampling people.

    Each resample draws ``N`` people with replacement (as multinomial counts, so a person's
    joints stay together) and recomputes the per-joint PCK, the group means and both Totals
    exactly as :class:`PCKResult` does; the interval is the ``(1 - level) / 2`` and
    ``(1 + level) / 2`` quantiles of the resampled figures.

    Args:
        correct: ``(N, J)`` bool, joint within the threshold (:func:`per_person_correct`).
        counted: ``(N, J)`` bool, joint counted (not missing).
        joint_set: the joints' groups and Total.
        resamples: bootstrap draws (at least 10).
        seed: seed of ``numpy.random.default_rng``: the same inputs give the same intervals.
        level: coverage in ``(0, 1)``.

    Returns:
        :class:`PCKIntervals`; a figure whose joints are never counted gets ``(NaN, NaN)``.
    """
    c = to_numpy(correct, "correct", dtype=bool)
    k = to_numpy(counted, "counted", dtype=bool)
    j = joint_set.num_joints
    if c.ndim != 2 or c.shape[1] != j or k.shape != c.shape:
        raise ValueError(
            f"correct and counted: expected (N, {j}) each for {joint_set.name}, got "
            f"{c.shape}, {k.shape}"
        )
    if np.any(c & ~k):
        raise ValueError("correct: a joint is correct but not counted")
    n = c.shape[0]
    if n < 1:
        raise ValueError("correct: no people to resample")
    if resamples < 10:
        raise ValueError(f"resamples: expected at least 10, got {resamples}")
    if not 0 < level < 1:
        raise ValueError(f"level: expected a coverage in (0, 1), got {level}")
    rng = np.random.default_rng(seed)
    weights = rng.multinomial(n, np.full(n, 1.0 / n), size=resamples).astype(np.float64)
    hits = weights @ c.astype(np.float64)  # (R, J)
    counts = weights @ k.astype(np.float64)  # (R, J)
    per_joint = _percent(hits, counts)  # (R, J)
    idx = list(joint_set.pck_total)
    figures = {
        "total": _percent(hits[:, idx].sum(axis=1), counts[:, idx].sum(axis=1)),
        "total_unweighted": _row_means(per_joint[:, idx]),
    }
    for group, joints in joint_set.pck_groups.items():
        figures[f"group:{group}"] = _row_means(per_joint[:, list(joints)])
    q = (100 * (1 - level) / 2, 100 * (1 + level) / 2)

    def bounds(x: np.ndarray) -> np.ndarray:
        """Quantiles of each column over the resamples where it is defined (a joint counted
        in the data but drawn in no resample is NaN there)."""
        cols = x[:, None] if x.ndim == 1 else x
        out = np.full((cols.shape[1], 2), np.nan)
        for col in range(cols.shape[1]):
            finite = cols[np.isfinite(cols[:, col]), col]
            if finite.size:
                out[col] = np.percentile(finite, q)
        return out[0] if x.ndim == 1 else out

    def pair(x: np.ndarray) -> tuple[float, float]:
        lo, hi = bounds(x)
        return float(lo), float(hi)

    return PCKIntervals(
        level=float(level),
        people=int(n),
        resamples=int(resamples),
        seed=int(seed),
        groups={g: pair(figures[f"group:{g}"]) for g in joint_set.pck_groups},
        total=pair(figures["total"]),
        total_unweighted=pair(figures["total_unweighted"]),
        per_joint=bounds(per_joint),
    )


def _row_means(x: np.ndarray) -> np.ndarray:
    """Row means, NaN where any entry is (as a table's group of percentages)."""
    return np.asarray(np.mean(x, axis=1), dtype=np.float64)


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
        intervals: bootstrap intervals of every figure (:func:`bootstrap_pck`), or None.

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
    intervals: PCKIntervals | None = None

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
        ci = self.intervals
        widths = [max(len(c), 6 if ci is None else 12) for c in cols]
        lines = [
            f"{name}, {self.joint_set.name} joints",
            "  ".join(c.rjust(w) for c, w in zip(cols, widths)),
            "  ".join(f"{v:{w}.2f}" for v, w in zip(vals, widths)),
            f"Total: count-weighted over {self.total_description()} (HRNet's 'Mean'); "
            "Unweighted: plain mean of their per-joint PCK.",
        ]
        if ci is not None:
            bounds = [*ci.groups.values(), ci.total, ci.total_unweighted]
            lines.append(
                "  ".join(f"{_span(b):>{w}}" for b, w in zip(bounds, widths))
                + f"  <- {ci.describe()}"
            )
        if self.curve is not None:
            t = self.curve.thresholds
            lines.append(f"AUC of Total over {self.metric}@[{t[0]:g}, {t[-1]:g}]: {self.auc:.2f}")
        lines.append("joint        PCK  counted" + ("  95% interval" if ci is not None else ""))
        for j, joint in enumerate(self.joint_set.names):
            line = f"{joint:<11} {self.per_joint[j]:6.2f}  {int(self.counts[j]):7d}"
            if ci is not None:
                line += f"  {_span(ci.per_joint[j])}"
            lines.append(line)
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
            **(
                {"intervals": self.intervals.to_dict(self.joint_set.names)}
                if self.intervals is not None
                else {}
            ),
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
    bootstrap: int = 0,
    seed: int = 0,
) -> PCKResult:
    if not threshold > 0:
        raise ValueError(f"threshold: must be > 0, got {threshold}")
    p, g, m, s = check_pck_inputs(preds, gt, missing, sizes, joint_set.num_joints)
    d = normalized_distances(p, g, s)
    counted = ~m
    hits = (d <= threshold) & counted
    curve = pck_curve(d, m, np.linspace(0.0, threshold, CURVE_STEPS), joint_set.pck_total)
    intervals = (
        bootstrap_pck(hits, counted, joint_set, resamples=bootstrap, seed=seed)
        if bootstrap
        else None
    )
    return PCKResult(
        metric, float(threshold), joint_set, hits.sum(axis=0), counted.sum(axis=0), curve,
        intervals,
    )  # fmt: skip


def pckh(
    preds: ArrayLike,
    gt: ArrayLike,
    missing: ArrayLike,
    head_sizes: ArrayLike,
    threshold: float = 0.5,
    *,
    joint_set: JointSet = MPII_JOINTS,
    bootstrap: int = 0,
    seed: int = 0,
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
        bootstrap: resamples of people for 95% intervals of every figure
            (:func:`bootstrap_pck`); 0: none.
        seed: the bootstrap's seed.

    Returns:
        A :class:`PCKResult` with the curve over ``[0, threshold]`` (and ``intervals`` when
        ``bootstrap``).
    """
    return _pck_result(
        "PCKh", preds, gt, missing, head_sizes, threshold, joint_set, bootstrap, seed
    )


def torso_sizes(joints: ArrayLike, joint_set: JointSet = LSP_JOINTS) -> np.ndarray:
    """Torso size per person: the distance between the ``joint_set.torso`` pair.

    For LSP (and MPII) that pair is right shoulder -- left hip.

    Args:
        joints: ``(N, J, 2)`` ground-truth joints in pixels.

    Returns:
        ``(N,)`` torso sizes in the same pixels.
    """
    g = to_numpy(joints, "joints")
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
    bootstrap: int = 0,
    seed: int = 0,
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
        bootstrap, seed: as for :func:`pckh`.

    Returns:
        A :class:`PCKResult` with the curve over ``[0, threshold]``.
    """
    return _pck_result(
        "PCK", preds, gt, missing, torso_sizes, threshold, joint_set, bootstrap, seed
    )


# --------------------------------------------------------------------------------------------
# Which protocol a data set is scored by
# --------------------------------------------------------------------------------------------


def auroc(scores: ArrayLike, labels: ArrayLike) -> float:
    """Area under the ROC curve of ``scores`` for binary ``labels`` (1 positive, 0 negative):
    the probability that a random positive scores above a random negative, ties counting
    half (the Mann-Whitney statistic). NaN when either class is absent.

    Args:
        scores: ``(N,)`` real scores (any monotone scale: logits or probabilities).
        labels: ``(N,)`` 0/1.
    """
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    y = np.asarray(labels, dtype=np.float64).reshape(-1)
    if s.shape != y.shape:
        raise ValueError(f"auroc: scores {s.shape} and labels {y.shape} differ in shape")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("auroc: labels must be 0 or 1")
    if not np.isfinite(s).all():
        raise ValueError("auroc: scores must be finite")
    positives, negatives = int(y.sum()), int(len(y) - y.sum())
    if positives == 0 or negatives == 0:
        return math.nan
    from scipy.stats import rankdata

    ranks = rankdata(s)  # average ranks: ties count half
    return float((ranks[y == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def protocol_for(dataset: str) -> Protocol:
    """The protocol of the data set ``dataset`` (its :data:`dsntpose.families.DATASETS`
    entry's): MPII: PCKh@0.5 of the head size; LSP, COCO files, the mixed set (LSP,
    LSP-extended, MPII crops) and the synthetic set: PCK@0.2 of the torso."""
    if dataset not in DATASETS:
        raise ValueError(f"data.dataset: no evaluation protocol for {dataset!r}")
    return DATASETS[dataset].protocol


# --------------------------------------------------------------------------------------------
# Names that moved: MPII files (dsntpose.mpii_files), inference (dsntpose.inference) and
# PCKMetric (dsntpose.metrics: importing torchmetrics costs seconds, so it loads on demand).
# --------------------------------------------------------------------------------------------

# Searched in this order; dsntpose.metrics last (importing torchmetrics costs seconds).
_MOVED_TO = ("dsntpose.inference", "dsntpose.mpii_files", "dsntpose.heads", "dsntpose.metrics")


def __getattr__(name: str) -> Any:
    import importlib

    for module_name in _MOVED_TO:
        if module_name.endswith("metrics") and name != "PCKMetric":
            continue
        module = importlib.import_module(module_name)
        if name in getattr(module, "__all__", ()):
            return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
