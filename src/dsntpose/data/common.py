"""What every pose data set shares: image reading, the sample dict, per-sample seeding.

A sample (``docs/architecture.md``) is a dict of:

* ``image`` ``(3, S, S)`` float32 RGB in ``[0, 1]``;
* ``joints`` ``(J, 2)`` float32 ``(x, y)`` in normalised crop units (``-1``/``+1`` the crop's
  outer edges); joints without a label hold ``0``;
* ``mask`` ``(J,)`` float32, 0 for missing or out-of-crop joints, else 1;
* ``index`` int, the sample's position in the data set;
* ``inverse`` ``(2, 3)`` float64, crop px -> original image px;
* ``joints_image`` ``(J, 2)`` float64 original image px (0-based pixel centres), NaN where missing;
* ``joints_missing`` ``(J,)`` bool;
* ``norm_size`` float, image px: PCKh head size (MPII) or PCK torso size (LSP, synthetic); NaN
  when the annotation file has none.

Augmented samples are drawn from a generator seeded by ``(seed, epoch, index)``, so a sample is
the same whichever worker loads it, and differs between epochs once ``set_epoch`` is called.
"""

from __future__ import annotations

import os
import random
from pathlib import Path, PurePath
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from dsntpose.data.joints import JointSet
from dsntpose.data.transforms import (
    Augment,
    AugmentParams,
    sample_rng,
    transform_sample,
)


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an image file as ``(H, W, 3)`` uint8 **BGR** (OpenCV's order).

    Raises:
        FileNotFoundError: the file does not exist (the message names it).
        OSError: the file exists but cannot be decoded (the message names it).
    """
    image = cv2.imread(os.fspath(path), cv2.IMREAD_COLOR)
    if image is None:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"image not found: {path}")
        raise OSError(f"cannot decode image: {path}")
    return image


def worker_init_fn(worker_id: int) -> None:
    """``DataLoader`` worker initialiser: one OpenCV thread per worker, seeded global RNGs.

    The data sets here draw from their own per-sample generators; this seeds Python's and
    NumPy's global generators from PyTorch's per-worker seed (different in each worker and
    each epoch) for any other code that uses them.
    """
    cv2.setNumThreads(0)
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - seeding the legacy global RNG is the point here


def check_augment(augment: bool | Augment | None) -> Augment | None:
    """``True`` -> the paper's :class:`Augment`, ``False``/None -> None, an ``Augment`` as is."""
    if augment is True:
        return Augment()
    if augment is False or augment is None:
        return None
    if isinstance(augment, Augment):
        return augment
    raise TypeError(f"augment must be a bool or an Augment, got {type(augment).__name__}")


def finish_sample(
    image: np.ndarray,
    joints_px: np.ndarray,
    missing: np.ndarray,
    center: np.ndarray | tuple[float, float],
    side: float,
    size: int,
    joint_set: JointSet,
    params: AugmentParams | None,
    index: int,
    norm_size: float,
    bgr: bool = False,
) -> dict[str, Any]:
    """Crop/augment one image (see :func:`transform_sample`) and build the sample dict.

    ``image`` is ``(H, W, 3)`` uint8, RGB or (``bgr=True``) BGR; the channels are reordered on
    the small crop, not the full image.
    """
    out = transform_sample(image, joints_px, missing, center, side, size, joint_set, params, bgr)
    # pixel_to_normalized for a square crop, inlined (the same arithmetic, fewer numpy calls)
    joints = ((2.0 * out["joints_crop"] + 1.0) / size - 1.0).astype(np.float32)
    joints[out["joints_missing"]] = 0.0
    return {
        "image": torch.from_numpy(out["image"]),
        "joints": torch.from_numpy(joints),
        "mask": torch.from_numpy(out["mask"]),
        "index": int(index),
        "inverse": torch.from_numpy(out["inverse"]),
        "joints_image": torch.from_numpy(out["joints_image"]),
        "joints_missing": torch.from_numpy(out["joints_missing"]),
        "norm_size": float(norm_size),
    }


def confined(root: str | os.PathLike[str], name: str, where: str) -> Path:
    """``root / name`` for a file name read from a data file (an annotation's image name).

    Raises:
        ValueError: naming ``where`` (the data file) when ``name`` is empty, absolute or climbs
            out of ``root`` with ``..``: a data file never makes a reader open a file outside
            its root.
    """
    parts = PurePath(name).parts if isinstance(name, str) else ()
    if not parts or PurePath(name).is_absolute() or PurePath(name).anchor or ".." in parts:
        raise ValueError(
            f"{where}: image name {name!r} is not a path inside {root} (empty, absolute or "
            "with '..'); refused"
        )
    return Path(root) / name


def find_missing_files(root: Path, names: list[str]) -> list[int]:
    """Positions in ``names`` whose file ``root / name`` does not exist."""
    return [i for i, name in enumerate(names) if not (root / name).is_file()]


class PoseDataset(Dataset[dict[str, Any]]):
    """Shared behaviour: optional augmentation and the ``(seed, epoch, index)`` generator.

    Subclasses set ``joint_set``, ``size``, ``augment`` and ``seed`` and implement
    ``__len__`` and ``__getitem__``.
    """

    joint_set: JointSet
    size: int
    augment: Augment | None
    seed: int | None
    epoch: int = 0

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} must implement __len__")

    def set_epoch(self, epoch: int) -> None:
        """Use the augmentation draws of ``epoch``. Call it at the start of every epoch; with
        ``persistent_workers=True`` the workers keep their own copy, so prefer the default
        ``persistent_workers=False`` (or ``seed=None`` for fresh, unreproducible draws)."""
        self.epoch = int(epoch)

    def augment_params(self, index: int) -> AugmentParams | None:
        """This epoch's augmentation draw for ``index`` (None when not augmenting)."""
        if self.augment is None:
            return None
        return self.augment.sample(sample_rng(self.seed, self.epoch, index))

    def check_index(self, index: int) -> int:
        """``index`` as a non-negative int, or ``IndexError`` naming the length."""
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for a data set of {n} samples")
        return int(index) % n


class PoseConcat(PoseDataset):
    """Chosen samples of one or more pose data sets of the same joint set, as one data set.

    Args:
        parts: the data sets (same ``joint_set`` and crop ``size``).
        picks: ``(part, index)`` pairs, in order: sample ``i`` is ``parts[part][index]`` with
            its ``index`` field rewritten to ``i``. None: every sample of every part.

    ``set_epoch`` is passed on to every part, whose own ``(seed, epoch, index)`` generator
    draws the augmentation; give the parts different seeds so that equal indices in two
    parts are not augmented alike.
    """

    def __init__(
        self, parts: list[PoseDataset], picks: list[tuple[int, int]] | None = None
    ) -> None:
        if not parts:
            raise ValueError("PoseConcat needs at least one data set")
        first = parts[0]
        for part in parts[1:]:
            if part.joint_set.name != first.joint_set.name or part.size != first.size:
                raise ValueError(
                    f"PoseConcat: parts differ ({first.joint_set.name}, {first.size} px) vs "
                    f"({part.joint_set.name}, {part.size} px)"
                )
        self.parts = parts
        if picks is None:
            picks = [(p, i) for p, part in enumerate(parts) for i in range(len(part))]
        self.picks = picks
        self.joint_set, self.size = first.joint_set, first.size
        self.augment, self.seed = first.augment, first.seed

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        for part in self.parts:
            part.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.picks)

    def __getitem__(self, index: int) -> dict[str, Any]:
        index = self.check_index(index)
        part, local = self.picks[index]
        sample = self.parts[part][local]
        sample["index"] = index
        return sample
