"""MPII Human Pose: annotation readers and the :class:`MPII` data set.

Readers for every common annotation file, all returning :class:`PoseRecords` in one frame
(0-based pixel centres; the official MATLAB files are 1-based, so 1 is subtracted on load) with
the *adjusted* person box that the usual crop uses: centre ``(x, y + 15 * scale)`` and scale
``1.25 * scale``, crop side ``200 * scale`` px (conventions.md):

* :func:`read_mpii_json`: bearpaw's ``mpii_annotations.json[.gz]`` (split by ``isValidation``)
  and HRNet/mmpose's ``train.json``/``valid.json``/``test_mpii.json`` (a file per split). Both
  hold the official raw ``objpos``/``scale``, adjusted here.
* :func:`read_mpii_h5`: the stacked-hourglass ``valid.h5``/``train.h5``/``annot.h5``, whose
  ``center`` and ``scale`` are *already* adjusted (taken as they are, never adjusted twice).
* :func:`read_mpii_mat`: the official ``mpii_human_pose_v1_u12_1.mat`` (``RELEASE`` struct).

Missing joints are ``(0, 0)`` in the json/h5/mat files (``(-1, -1)`` in HRNet's json); they are
marked in ``missing`` and never learned. ``visible`` is the official occlusion flag (1 =
visible): occluded joints are still labelled and still evaluated.
"""

from __future__ import annotations

import gzip
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dsntpose.data.common import (
    PoseDataset,
    check_augment,
    confined,
    find_missing_files,
    finish_sample,
    read_image,
)
from dsntpose.data.joints import MPII_JOINTS
from dsntpose.data.transforms import Augment

NUM_JOINTS = 16
SPLITS = ("train", "valid", "all")


@dataclass
class PoseRecords:
    """``N`` annotated people, 0-based image px.

    Attributes:
        image_names: ``N`` image file names, relative to the image folder.
        centers: ``(N, 2)`` adjusted crop centre ``(x, y)``, image px.
        scales: ``(N,)`` adjusted scale; the crop side is ``200 * scale`` image px.
        joints: ``(N, J, 2)`` joints ``(x, y)``, image px (0 where missing).
        missing: ``(N, J)`` bool, True for joints without a label.
        visible: ``(N, J)`` bool occlusion flag (True = visible).
        head_sizes: ``(N,)`` PCKh unit ``0.6 * ||head box diagonal||`` px, NaN when unknown.
        image_index: ``(N,)`` 0-based index into the official ``RELEASE.annolist``, -1 if unknown.
        person_index: ``(N,)`` 0-based index into that image's ``annorect``, -1 if unknown.
    """

    image_names: list[str]
    centers: np.ndarray
    scales: np.ndarray
    joints: np.ndarray
    missing: np.ndarray
    visible: np.ndarray
    head_sizes: np.ndarray
    image_index: np.ndarray
    person_index: np.ndarray

    def __len__(self) -> int:
        return len(self.image_names)

    def select(self, keep: np.ndarray | list[int]) -> PoseRecords:
        """The records at positions ``keep`` (indices or a boolean mask), in that order."""
        keep = np.asarray(keep)
        if keep.dtype == bool:
            keep = np.flatnonzero(keep)
        return PoseRecords(
            image_names=[self.image_names[i] for i in keep],
            centers=self.centers[keep],
            scales=self.scales[keep],
            joints=self.joints[keep],
            missing=self.missing[keep],
            visible=self.visible[keep],
            head_sizes=self.head_sizes[keep],
            image_index=self.image_index[keep],
            person_index=self.person_index[keep],
        )


def _column(path: Path, data: list[Any], key: str, default: Any = None) -> list[Any]:
    """``record[key]`` of every record (``default`` where absent, unless None: then a
    ``ValueError`` naming the file, record and field)."""
    values = []
    for row, record in enumerate(data):
        if not isinstance(record, dict):
            raise ValueError(f"{path}: record {row} is not an object")
        if key in record:
            values.append(record[key])
        elif default is not None:
            values.append(default)
        else:
            raise ValueError(f"{path}: record {row} has no field {key!r}")
    return values


def _numbers(
    path: Path, data: list[Any], key: str, shape: tuple[int, ...], default: float | None = None
) -> np.ndarray:
    """Field ``key`` of every record as a float64 ``(N, *shape)`` array; a missing, non-numeric
    or misshapen value raises a ``ValueError`` naming the file, record and field."""
    values = _column(path, data, key, None if default is None else np.full(shape, default))
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        array = None
    if array is not None and array.shape == (len(values), *shape):
        return array
    for row, value in enumerate(values):  # find the culprit for the message
        try:
            item = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"{path}: field {key!r} of record {row} is not numeric") from None
        if item.shape != shape:
            raise ValueError(
                f"{path}: field {key!r} of record {row} has shape {item.shape}, expected {shape}"
            )
    raise ValueError(f"{path}: field {key!r} has inconsistent shapes")


def _adjusted(center_1based: np.ndarray, scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Official ``objpos`` (1-based) and ``scale`` -> usual crop centre (0-based) and scale."""
    center = center_1based - 1.0
    center[:, 1] += 15.0 * scale
    return center, 1.25 * scale


def _load_json(path: Path) -> Any:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as file:
            return json.load(file)
    except FileNotFoundError:
        raise FileNotFoundError(f"annotation file not found: {path}") from None
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: not a readable json file ({error})") from None


def _check_finite(
    path: Path, centers: np.ndarray, scales: np.ndarray, joints: np.ndarray, missing: np.ndarray
) -> None:
    """Refuse, naming the first bad record, a centre or joint that is NaN/inf and a person
    scale that is not a positive finite number."""
    checks = (
        ("a centre that is not finite", ~np.isfinite(centers).all(axis=1)),
        ("a scale that is not a positive number", ~(np.isfinite(scales) & (scales > 0))),
        ("a joint that is NaN or inf", ~(np.isfinite(joints).all(axis=2) | missing).all(axis=1)),
    )
    for what, bad in checks:
        rows = np.flatnonzero(bad)
        if rows.size:
            raise ValueError(
                f"{path}: record {int(rows[0])} has {what} ({rows.size} records in all); fix "
                "or remove those records"
            )


def read_mpii_json(path: str | os.PathLike[str], split: str = "all") -> PoseRecords:
    """Read a bearpaw or HRNet/mmpose MPII json (plain or ``.gz``).

    Args:
        path: the json file. bearpaw's (records with ``joint_self`` ``16 x [x, y, vis]``,
            ``objpos``, ``scale_provided``, ``img_paths``, ``isValidation``) holds both splits;
            HRNet's (records with ``image``, ``center``, ``scale``, ``joints`` ``16 x [x, y]``,
            ``joints_vis``) is one file per split and has no visibility flag.
        split: ``"train"``, ``"valid"`` or ``"all"``; a file without ``isValidation`` (HRNet)
            only accepts ``"all"``.

    Returns:
        :class:`PoseRecords` in file order; ``head_sizes`` are NaN (the json files hold no
        head boxes; take them from ``valid.h5`` or the official .mat).
    """
    path = Path(path)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    data = _load_json(path)
    if not isinstance(data, list) or not data or not isinstance(data[0], dict):
        raise ValueError(f"{path}: expected a non-empty list of person records")
    bearpaw = "joint_self" in data[0]
    if not bearpaw and split != "all":
        raise ValueError(
            f"{path}: this file has no isValidation field (one file per split); use split='all'"
        )

    num = len(data)
    if bearpaw:
        names = [str(v) for v in _column(path, data, "img_paths")]
        is_valid = _numbers(path, data, "isValidation", ()) > 0
        keep = np.ones(num, bool) if split == "all" else is_valid == (split == "valid")
        centers = _numbers(path, data, "objpos", (2,))
        scales = _numbers(path, data, "scale_provided", ())
        joint_self = _numbers(path, data, "joint_self", (NUM_JOINTS, 3))
        joints_1based, flags = joint_self[..., :2], joint_self[..., 2]
        missing = np.all(joints_1based == 0, axis=2)
        image_index = _numbers(path, data, "annolist_index", (), 0.0).astype(np.int64) - 1
        person_index = _numbers(path, data, "people_index", (), 0.0).astype(np.int64) - 1
    else:
        names = [str(v) for v in _column(path, data, "image")]
        keep = np.ones(num, bool)
        centers = _numbers(path, data, "center", (2,))
        scales = _numbers(path, data, "scale", ())
        joints_1based = _numbers(path, data, "joints", (NUM_JOINTS, 2))
        # joints_vis there means "annotated" (no occlusion flag): 0 marks a missing joint.
        flags = _numbers(path, data, "joints_vis", (NUM_JOINTS,), 1.0)
        missing = np.all(joints_1based == -1, axis=2) | (flags == 0)
        image_index = person_index = np.full(num, -1)
    _check_finite(path, centers, scales, joints_1based, missing)
    center, scale = _adjusted(centers, scales)
    records = PoseRecords(
        image_names=names,
        centers=center,
        scales=scale,
        joints=np.where(missing[..., None], 0.0, joints_1based - 1.0),
        missing=missing,
        visible=(flags > 0) & ~missing,
        head_sizes=np.full(num, np.nan),
        image_index=image_index,
        person_index=person_index,
    )
    return records.select(np.asarray(keep, dtype=bool))


def read_mpii_h5(path: str | os.PathLike[str]) -> PoseRecords:
    """Read a stacked-hourglass ``valid.h5``/``train.h5``/``annot.h5``.

    Fields: ``imgname`` (N,) strings or (N, L) 0-padded character codes, ``center`` (N, 2) and ``scale`` (N,) already adjusted (used as they
    are), ``part`` (N, 16, 2) 1-based with ``(0, 0)`` for missing joints, and optionally
    ``visible`` (N, 16), ``normalize`` (N,) PCKh head size, ``index``/``person`` (N,) 0-based
    official indices.
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"annotation file not found: {path}")
    with h5py.File(path, "r") as file:

        def get(key: str, required: bool = True) -> np.ndarray | None:
            if key not in file:
                if required:
                    raise ValueError(f"{path}: no field {key!r}")
                return None
            return np.asarray(file[key][()])

        imgname, center, scale, part = get("imgname"), get("center"), get("scale"), get("part")
        visible, normalize = get("visible", False), get("normalize", False)
        index, person = get("index", False), get("person", False)
    assert imgname is not None and center is not None and scale is not None and part is not None
    num = len(imgname)
    for key, value, shape in (
        ("center", center, (num, 2)),
        ("scale", scale, (num,)),
        ("part", part, (num, NUM_JOINTS, 2)),
        ("visible", visible, (num, NUM_JOINTS)),
        ("normalize", normalize, (num,)),
        ("index", index, (num,)),
        ("person", person, (num,)),
    ):
        if value is not None and value.shape != shape:
            raise ValueError(f"{path}: field {key!r} has shape {value.shape}, expected {shape}")
    part = part.astype(np.float64)
    missing = np.all(part == 0, axis=2)
    if imgname.ndim == 2 and imgname.dtype.kind in "iu":  # Lua/MATLAB char codes, 0-padded
        names = [bytes(row.astype(np.uint8)).rstrip(b"\0").decode() for row in imgname]
    else:
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in imgname]
    return PoseRecords(
        image_names=names,
        centers=center.astype(np.float64) - 1.0,
        scales=scale.astype(np.float64),
        joints=np.where(missing[..., None], 0.0, part - 1.0),
        missing=missing,
        visible=(visible > 0) & ~missing if visible is not None else ~missing,
        head_sizes=normalize.astype(np.float64) if normalize is not None else np.full(num, np.nan),
        image_index=index.astype(np.int64) if index is not None else np.full(num, -1),
        person_index=person.astype(np.int64) if person is not None else np.full(num, -1),
    )


def _as_list(value: Any) -> list[Any]:
    """A MATLAB struct array loaded with ``squeeze_me=True`` (one struct, an array or empty)
    as a list."""
    if isinstance(value, np.ndarray):
        return list(value.ravel())
    return [value]


def _scalar(value: Any) -> float | None:
    """A MATLAB numeric scalar (possibly an empty array or a string) as float, None if empty."""
    array = np.asarray(value)
    if array.size == 0:
        return None
    if array.dtype.kind in "US":
        text = str(array.ravel()[0]).strip()
        return float(text) if text else None
    return float(array.ravel()[0])


def read_mpii_mat(path: str | os.PathLike[str]) -> PoseRecords:
    """Read the official ``mpii_human_pose_v1_u12_1.mat``: every person with joints, ``objpos``
    and ``scale`` in a training image (``img_train == 1``), in annolist/annorect order.

    Head sizes come from the head box ``x1 y1 x2 y2``; ``image_index``/``person_index`` are the
    0-based positions in ``annolist`` and ``annorect`` (``valid.h5``'s ``index``/``person``).
    """
    import scipy.io

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"annotation file not found: {path}")
    try:
        mat = scipy.io.loadmat(path, struct_as_record=False, squeeze_me=True)
    except (ValueError, OSError, TypeError) as error:
        raise ValueError(f"{path}: not a readable MATLAB file ({error})") from None
    if "RELEASE" not in mat:
        raise ValueError(f"{path}: no variable 'RELEASE'")
    release = mat["RELEASE"]
    for key in ("annolist", "img_train"):
        if not hasattr(release, key):
            raise ValueError(f"{path}: RELEASE has no field {key!r}")
    annolist = _as_list(release.annolist)
    img_train = np.atleast_1d(np.asarray(release.img_train)).ravel()
    if len(img_train) != len(annolist):
        raise ValueError(
            f"{path}: RELEASE.img_train has {len(img_train)} entries for {len(annolist)} images"
        )

    names, centers, scales, joints, missing, visible, heads, image_index, person_index = (
        [], [], [], [], [], [], [], [], []
    )  # fmt: skip
    for i, entry in enumerate(annolist):
        if not img_train[i]:
            continue
        where = f"RELEASE.annolist({i + 1})"
        if not hasattr(entry, "image") or not hasattr(entry.image, "name"):
            raise ValueError(f"{path}: {where} has no field 'image.name'")
        if not hasattr(entry, "annorect"):
            continue
        for p, rect in enumerate(_as_list(entry.annorect)):
            if not hasattr(rect, "annopoints") or not hasattr(rect, "objpos"):
                continue
            points = getattr(rect.annopoints, "point", None)
            scale = _scalar(getattr(rect, "scale", []))
            if points is None or scale is None or not hasattr(rect.objpos, "x"):
                continue
            person = np.zeros((NUM_JOINTS, 2))
            have = np.zeros(NUM_JOINTS, dtype=bool)
            seen = np.zeros(NUM_JOINTS, dtype=bool)
            for point in _as_list(points):
                for key in ("id", "x", "y"):
                    if not hasattr(point, key):
                        raise ValueError(
                            f"{path}: {where}.annorect({p + 1}).annopoints.point has no field {key!r}"
                        )
                joint = int(_scalar(point.id) or 0)
                if not 0 <= joint < NUM_JOINTS:
                    raise ValueError(
                        f"{path}: {where}.annorect({p + 1}) has joint id {joint}, expected 0..15"
                    )
                person[joint] = (_scalar(point.x), _scalar(point.y))
                have[joint] = True
                flag = _scalar(getattr(point, "is_visible", []))
                seen[joint] = bool(flag) if flag is not None else True
            box = [_scalar(getattr(rect, k, [])) for k in ("x1", "y1", "x2", "y2")]
            corners = [b for b in box if b is not None]
            head = (
                0.6 * float(np.hypot(corners[2] - corners[0], corners[3] - corners[1]))
                if len(corners) == 4
                else np.nan
            )  # fmt: skip
            names.append(str(entry.image.name))
            centers.append((_scalar(rect.objpos.x), _scalar(rect.objpos.y)))
            scales.append(scale)
            joints.append(np.where(have[:, None], person - 1.0, 0.0))
            missing.append(~have)
            visible.append(seen & have)
            heads.append(head)
            image_index.append(i)
            person_index.append(p)
    if not names:
        raise ValueError(f"{path}: no annotated person in a training image")
    adjusted_centers, adjusted_scales = _adjusted(
        np.asarray(centers, dtype=np.float64), np.asarray(scales)
    )
    return PoseRecords(
        image_names=names,
        centers=adjusted_centers,
        scales=adjusted_scales,
        joints=np.stack(joints),
        missing=np.stack(missing),
        visible=np.stack(visible),
        head_sizes=np.asarray(heads, dtype=np.float64),
        image_index=np.asarray(image_index),
        person_index=np.asarray(person_index),
    )


def read_mpii(path: str | os.PathLike[str], split: str = "all") -> PoseRecords:
    """Read any MPII annotation file by its suffix: ``.json``/``.json.gz``, ``.h5`` or ``.mat``.

    Only the bearpaw json holds both splits (``isValidation``); the h5 files and HRNet's json
    are one split per file, and the official .mat's standard validation people are the rows
    of ``valid.h5`` (split it with :func:`split_by_valid_h5`). Those accept ``split="all"``.
    """
    path = Path(path)
    name = path.name.lower()
    if name.endswith((".json", ".json.gz")):
        return read_mpii_json(path, split)
    if split != "all":
        raise ValueError(f"{path}: only the bearpaw json holds both splits; use split='all'")
    if name.endswith(".h5"):
        return read_mpii_h5(path)
    if name.endswith(".mat"):
        return read_mpii_mat(path)
    raise ValueError(f"{path}: unknown MPII annotation format (expected .json[.gz], .h5 or .mat)")


def split_by_valid_h5(
    records: PoseRecords, valid_h5: str | os.PathLike[str], split: str
) -> PoseRecords:
    """Standard split of official-.mat records: ``"valid"`` = the people listed in ``valid_h5``
    (by ``index``/``person``, in its row order), ``"train"`` = all others (in record order)."""
    if split not in ("train", "valid"):
        raise ValueError(f"split must be 'train' or 'valid', got {split!r}")
    valid = read_mpii_h5(valid_h5)
    if np.any(valid.image_index < 0):
        raise ValueError(f"{valid_h5}: fields 'index' and 'person' are needed to split")
    where = {
        (int(i), int(p)): row
        for row, (i, p) in enumerate(zip(records.image_index, records.person_index))
    }
    wanted = [(int(i), int(p)) for i, p in zip(valid.image_index, valid.person_index)]
    if split == "valid":
        absent = [key for key in wanted if key not in where]
        if absent:
            raise ValueError(
                f"{valid_h5}: {len(absent)} validation people are not in the records, e.g. {absent[0]}"
            )
        return records.select([where[key] for key in wanted])
    wanted_set = set(wanted)
    return records.select([row for key, row in where.items() if key not in wanted_set])


class MPII(PoseDataset):
    """MPII Human Pose people as crop samples (see :mod:`dsntpose.data.common` for the dict).

    Args:
        annotations: an annotation file (:func:`read_mpii`) or already-read :class:`PoseRecords`.
        image_root: the folder holding the MPII images (``images/`` of the official download).
        split: ``"train"``, ``"valid"`` or ``"all"`` (bearpaw json); ``"all"`` for other files.
        size: crop side ``S`` px.
        augment: ``True`` for the paper's augmentation, an :class:`Augment`, or False.
        seed: seed of the per-sample augmentation generator (None: fresh entropy).
        skip_missing: drop people whose image file is absent (with one warning giving the
            count) instead of raising ``FileNotFoundError`` naming the first absent file.

    ``norm_size`` is the PCKh head size from ``valid.h5``/the official .mat, NaN from a json
    (which has no head boxes). The crop is centred on the adjusted centre with side
    ``200 * scale`` image px.
    """

    def __init__(
        self,
        annotations: str | os.PathLike[str] | PoseRecords,
        image_root: str | os.PathLike[str],
        split: str = "all",
        size: int = 224,
        augment: bool | Augment = False,
        seed: int | None = 0,
        skip_missing: bool = False,
    ) -> None:
        records = (
            annotations if isinstance(annotations, PoseRecords) else read_mpii(annotations, split)
        )
        self.image_root = Path(image_root)
        if not self.image_root.is_dir():
            raise FileNotFoundError(f"image folder not found: {self.image_root}")
        where = (
            str(annotations) if isinstance(annotations, (str, os.PathLike)) else "MPII annotations"
        )
        for name in records.image_names:
            confined(self.image_root, name, where)
        absent = find_missing_files(self.image_root, records.image_names)
        if absent and not skip_missing:
            first = self.image_root / records.image_names[absent[0]]
            raise FileNotFoundError(
                f"image not found: {first} ({len(absent)} of {len(records)} images absent; "
                "unpack the MPII images into data.image_root (or data.root/images), or from "
                "Python pass skip_missing=True to leave those people out)"
            )
        if absent:
            warnings.warn(
                f"MPII: skipped {len(absent)} of {len(records)} people whose image is not in {self.image_root}",
                stacklevel=2,
            )
            records = records.select(np.setdiff1d(np.arange(len(records)), absent))
        self.records = records
        self.image_paths = [os.fspath(self.image_root / name) for name in records.image_names]
        self.joint_set = MPII_JOINTS
        self.size = int(size)
        self.augment = check_augment(augment)
        self.seed = seed

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, Any]:
        index = self.check_index(index)
        r = self.records
        image = read_image(self.image_paths[index])
        return finish_sample(
            image,
            r.joints[index],
            r.missing[index],
            r.centers[index],
            200.0 * float(r.scales[index]),
            self.size,
            self.joint_set,
            self.augment_params(index),
            index,
            float(r.head_sizes[index]),
            bgr=True,
        )
