"""MPII prediction files and the official PCKh ground truth: reading, writing, the frame check.

MPII's files (the official ground truth and the eval-mpii-pose / bearpaw prediction files) are
in MATLAB's 1-based frame, so the readers here subtract 1 and :func:`write_predictions` adds 1.
PCKh does not depend on the frame as long as both sides share it; a prediction file written in
the wrong frame does, and :func:`check_frame` detects it from the data. The protocol itself
(:func:`dsntpose.evaluate.pckh`) lives in :mod:`dsntpose.evaluate`.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from dsntpose.evaluate import (
    HEAD_SIZE_FACTOR,
    ArrayLike,
    PCKResult,
    check_pck_inputs,
    pckh,
    to_numpy,
)

__all__ = [
    "FrameOffset",
    "MPIIGroundTruth",
    "PeopleSubset",
    "check_frame",
    "default_ground_truth",
    "estimate_frame_offset",
    "eval_command",
    "people_with_frames",
    "read_mpii_ground_truth",
    "read_people",
    "read_predictions",
    "score_predictions",
    "select_people",
    "write_predictions",
]

# The joint names of the official ground truth (`dataset_joints`), in MPII order.
MPII_MAT_NAMES = (
    "rank", "rkne", "rhip", "lhip", "lkne", "lank", "pelv", "thor",
    "neck", "head", "rwri", "relb", "rsho", "lsho", "lelb", "lwri",
)  # fmt: skip
GT_FILE_NAMES = ("detections_our_format.mat", "gt_valid.mat")


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
    p, g, m, s = check_pck_inputs(preds, gt, missing, sizes, to_numpy(preds, "preds").shape[1])
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
    p = to_numpy(preds, "preds")
    if p.ndim != 3 or p.shape[-1] != 2:
        raise ValueError(f"preds: expected shape (N, J, 2) in 0-based image px, got {p.shape}")
    if not np.all(np.isfinite(p)):
        raise ValueError("preds: NaN or infinite values; expected finite pixels")
    suffix = path.suffix.lower()
    if suffix not in (".h5", ".hdf5", ".mat"):
        raise ValueError(f"{path}: unknown prediction file type {suffix!r}; use .h5 or .mat")
    one_based = p + 1.0
    from dsntpose.files import atomic_write

    def write(tmp: Path) -> None:  # whole or absent: a full disk leaves no partial file
        if suffix == ".mat":
            import scipy.io

            with tmp.open("wb") as f:
                scipy.io.savemat(f, {"preds": one_based})
        else:
            import h5py

            with h5py.File(tmp, "w") as f:
                f.create_dataset("preds", data=one_based)

    return atomic_write(path, write, what="predictions file")


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


# --------------------------------------------------------------------------------------------
# Which validation people are scored (all, a listed subset, or those whose frames are present)
# --------------------------------------------------------------------------------------------


def read_people(path: str | os.PathLike[str], num_people: int) -> np.ndarray:
    """Read a people file: a JSON list of distinct 0-based rows of the validation order
    (``valid.h5``, ``detections_our_format.mat`` and the prediction files share it), e.g.
    ``images_val_people.json``.

    Args:
        path: the JSON file.
        num_people: rows in the ground truth (2958 for the standard split).

    Returns:
        ``(K,)`` int64 rows, in the file's order.

    Raises:
        FileNotFoundError / ValueError: one line naming the file.
    """
    import json as json_lib

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"people file not found: {path}")
    try:
        rows = json_lib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json_lib.JSONDecodeError) as err:
        raise ValueError(f"{path}: not a readable JSON file ({err})") from None
    if (
        not isinstance(rows, list)
        or not rows
        or not all(isinstance(r, int) and not isinstance(r, bool) for r in rows)
    ):
        raise ValueError(f"{path}: expected a non-empty JSON list of 0-based row numbers")
    out = np.asarray(rows, dtype=np.int64)
    bad = out[(out < 0) | (out >= num_people)]
    if bad.size:
        raise ValueError(
            f"{path}: row {int(bad[0])} is outside the {num_people} ground-truth people "
            "(rows are 0-based)"
        )
    if len(np.unique(out)) != len(out):
        raise ValueError(f"{path}: rows repeat; list each person once")
    return out


def people_with_frames(image_names: list[str], image_root: str | os.PathLike[str]) -> np.ndarray:
    """Rows whose frame is a file in ``image_root`` (``(K,)`` int64, ascending)."""
    root = Path(image_root)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder not found: {root}")
    present = {entry.name for entry in root.iterdir()}
    return np.asarray([i for i, name in enumerate(image_names) if name in present], dtype=np.int64)


@dataclass(frozen=True)
class PeopleSubset:
    """The validation people scored: ``rows`` (0-based, validation order) of ``total``, and
    ``how`` they were chosen, in words."""

    rows: np.ndarray
    total: int
    how: str

    def describe(self) -> str:
        """E.g. "264 of the 2958 validation people (those listed in images_val_people.json)"."""
        return f"{len(self.rows)} of the {self.total} validation people ({self.how})"


def select_people(
    num_people: int,
    *,
    people: str | os.PathLike[str] | None = None,
    image_names: list[str] | None = None,
    image_root: str | os.PathLike[str] | None = None,
) -> PeopleSubset:
    """Which of ``num_people`` validation people to score.

    ``people`` (a :func:`read_people` file) wins; else, with ``image_names`` (valid.h5's, in
    validation order) and ``image_root``, the people whose frames are in ``image_root``
    (:func:`people_with_frames`); else all of them.

    Raises:
        FileNotFoundError: ``image_root`` holds none of the frames (the message names it).
    """
    if people is not None:
        rows = read_people(people, num_people)
        return PeopleSubset(rows, num_people, f"those listed in {Path(people).name}")
    if image_root is not None and image_names is not None:
        if len(image_names) != num_people:
            raise ValueError(
                f"image names: {len(image_names)} people, but the ground truth has {num_people}"
            )
        rows = people_with_frames(image_names, image_root)
        if not len(rows):
            raise FileNotFoundError(
                f"image folder {image_root} holds none of the {num_people} validation frames "
                f"(e.g. {image_names[0]})"
            )
        how = "all, every frame present" if len(rows) == num_people else "whose frames are present"
        return PeopleSubset(rows, num_people, f"{how} in {image_root}")
    return PeopleSubset(np.arange(num_people, dtype=np.int64), num_people, "all")


def _valid_h5_names(valid_h5: Path) -> list[str]:
    """The frame name of each person in a stacked-hourglass ``valid.h5`` (``imgname``: strings,
    or 0-padded character codes)."""
    import h5py

    try:
        with h5py.File(valid_h5, "r") as f:
            if "imgname" not in f:
                raise ValueError(f"{valid_h5}: no field 'imgname'")
            names = np.asarray(f["imgname"][()])
    except OSError as err:
        raise ValueError(f"{valid_h5}: not a readable HDF5 file ({err})") from None
    if names.ndim == 2 and names.dtype.kind in "iu":
        return [bytes(row.astype(np.uint8)).rstrip(b"\0").decode() for row in names]
    return [n.decode() if isinstance(n, bytes) else str(n) for n in names]


def score_predictions(
    preds: str | os.PathLike[str],
    gt: str | os.PathLike[str] | None = None,
    threshold: float = 0.5,
    *,
    people: str | os.PathLike[str] | None = None,
    image_root: str | os.PathLike[str] | None = None,
    valid_h5: str | os.PathLike[str] | None = None,
    check_frame_offset: bool = True,
    bootstrap: int = 2000,
    seed: int = 0,
) -> tuple[PCKResult, PeopleSubset]:
    """PCKh of an MPII prediction file on all validation people or a subset of them.

    Args:
        preds: ``.h5`` or ``.mat`` with ``preds`` in the official 1-based frame: one row per
            ground-truth person in validation order, or one per selected person in the order
            of the selection.
        gt: the ground truth (default :func:`default_ground_truth`).
        threshold: PCKh threshold in head sizes.
        people: a people file (:func:`read_people`), e.g. ``images_val_people.json``.
        image_root: score only the people whose frames are in this folder (names from
            ``valid_h5``, default ``valid.h5`` beside ``gt``); ignored when ``people`` is given.
        check_frame_offset: refuse files that look 0-based (:func:`check_frame`).
        bootstrap, seed: resamples of people for the 95% intervals (0: none), and their seed.

    Returns:
        The :class:`PCKResult` and the :class:`PeopleSubset` scored.
    """
    preds = Path(preds)
    gt_path = Path(gt) if gt is not None else default_ground_truth()
    truth = read_mpii_ground_truth(gt_path)
    names = None
    if people is None and image_root is not None:
        h5 = Path(valid_h5) if valid_h5 is not None else gt_path.parent / "valid.h5"
        if not h5.is_file():
            raise FileNotFoundError(
                f"valid.h5 not found at {h5}: it names the frame of each validation person"
            )
        names = _valid_h5_names(h5)
    subset = select_people(len(truth), people=people, image_names=names, image_root=image_root)
    p = read_predictions(preds, num_joints=truth.joints.shape[1])
    rows = subset.rows
    if len(p) == len(truth):
        p = p[rows]
    elif len(p) != len(rows) or len(rows) == len(truth):
        either = "" if len(rows) == len(truth) else f", or one per selected person ({len(rows)})"
        raise ValueError(
            f"{preds}: {len(p)} people, but {gt_path} has {len(truth)}; expected one row per "
            f"ground-truth person, in the same order (valid.h5 order for the standard split){either}"
        )
    joints, missing, sizes = truth.joints[rows], truth.missing[rows], truth.head_sizes[rows]
    if check_frame_offset:
        check_frame(p, joints, missing, sizes, source=str(preds))
    result = pckh(p, joints, missing, sizes, threshold, bootstrap=bootstrap, seed=seed)
    return result, subset


def eval_command(
    preds: Path,
    gt: Path | None = None,
    json: bool = False,
    threshold: float = 0.5,
    *,
    check_frame_offset: bool = True,
    people: Path | None = None,
    image_root: Path | None = None,
    root: Path | None = None,
    bootstrap: int = 2000,
) -> PCKResult:
    """``dsntpose eval --preds``: PCKh of an MPII prediction file, printed as a table or JSON,
    with 95% bootstrap intervals over people (:func:`score_predictions`).

    Args:
        preds: ``.h5`` or ``.mat`` with ``preds`` ``(2958, 16, 2)`` for the standard
            validation people in valid.h5 order, official 1-based frame.
        gt: the ground truth (``detections_our_format.mat`` / ``gt_valid.mat``); default
            :func:`default_ground_truth`.
        json: print JSON (one key per group and per joint) instead of the table.
        threshold: PCKh threshold in head sizes.
        check_frame_offset: refuse files that look 0-based (:func:`check_frame`).
        people: score only the people this file lists (:func:`read_people`).
        image_root: score only the people whose frames are in this folder.
        root: an MPII folder (``dsntpose data mpii``'s, or ../shared/data/mpii): the default
            ``gt`` is its ground-truth file and, when it has an ``images/`` folder, only the
            people whose frames are there are scored (names from its ``valid.h5``).
        bootstrap: resamples for the intervals (0: none).

    Returns:
        The :class:`PCKResult` (also printed to stdout; how many people were scored goes to
        stderr).
    """
    valid_h5 = None
    if root is not None:
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"MPII folder not found: {root}")
        found = [root / n for n in GT_FILE_NAMES if (root / n).is_file()]
        if gt is None and found:
            gt = found[0]
        if image_root is None and (root / "images").is_dir():
            image_root = root / "images"
        valid_h5 = root / "valid.h5"
    result, subset = score_predictions(
        preds, gt, threshold, people=people, image_root=image_root, valid_h5=valid_h5,
        check_frame_offset=check_frame_offset, bootstrap=bootstrap,
    )  # fmt: skip
    print(result.to_json() if json else result, file=sys.stdout)
    print(f"eval: {subset.describe()} scored", file=sys.stderr)
    return result
