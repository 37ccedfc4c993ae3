"""Leeds Sports Pose (LSP) and LSP-extended as crop samples.

Files: ``root/joints.mat`` (variable ``joints``, 1-based image px, 1 is subtracted on load) and
``root/images/im0001.jpg ...`` (``im00001.jpg ...`` for LSP-extended). LSP's ``joints`` is
``(3, 14, 2000)`` and row 2 is an *occlusion* flag (1 = occluded); LSP-extended's is
``(14, 3, 10000)`` and its flag means the opposite (1 = visible). Either layout is accepted;
the flag's meaning follows ``extended``. Joints at exactly ``(0, 0)`` (none in LSP) are missing;
in LSP-extended so is every joint with flag 0 (outside the frame, with negative coordinates,
or not placed): it has no label, so it is masked and left out of the crop box.

LSP has no person centre or scale: the crop is the square centred on the centre of the
labelled joints' bounding box, with side ``(1 + 2 * margin) * max(box width, box height)``
(``margin=0.2``: 20% of the box's longer side is added on each side; at least 16 px).

``norm_size`` is the torso size of the PCK@0.2 protocol: the distance from the right shoulder
to the left hip (``LSP_JOINTS.torso``), NaN when either is missing.
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from dsntpose.data.common import (
    PoseDataset,
    check_augment,
    find_missing_files,
    finish_sample,
    read_image,
)
from dsntpose.data.joints import LSP_JOINTS
from dsntpose.data.transforms import Augment

NUM_JOINTS = 14
MIN_SIDE = 16.0


def read_lsp_joints(
    path: str | os.PathLike[str], extended: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read an LSP ``joints.mat``.

    Args:
        path: the ``.mat`` file with variable ``joints`` ``(3, 14, N)`` or ``(14, 3, N)``.
        extended: LSP-extended flag meaning (1 = visible) instead of LSP's (1 = occluded).

    Returns:
        ``joints`` ``(N, 14, 2)`` 0-based image px ``(x, y)`` (0 where missing),
        ``missing`` ``(N, 14)`` bool and ``visible`` ``(N, 14)`` bool.
    """
    import scipy.io

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"annotation file not found: {path}")
    try:
        mat = scipy.io.loadmat(path)
    except Exception as error:  # scipy raises MatReadError, ValueError, IndexError, ...
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"{path}: not a readable MATLAB file ({first})") from None
    if "joints" not in mat:
        raise ValueError(f"{path}: no variable 'joints'")
    raw = np.asarray(mat["joints"], dtype=np.float64)
    if raw.ndim == 3 and raw.shape[:2] == (3, NUM_JOINTS):
        raw = raw.transpose(2, 1, 0)
    elif raw.ndim == 3 and raw.shape[:2] == (NUM_JOINTS, 3):
        raw = raw.transpose(2, 0, 1)
    else:
        raise ValueError(
            f"{path}: field 'joints' has shape {raw.shape}, expected (3, 14, N) or (14, 3, N)"
        )
    missing = np.all(raw[..., :2] == 0, axis=2)
    flag = raw[..., 2] > 0.5
    if extended:
        # LSPET's flag 0 marks joints that were not labelled: out of the frame (negative
        # coordinates, 15075 of them) or unplaced ((0, 0)); never a target.
        missing |= ~flag
    visible = (flag if extended else ~flag) & ~missing
    joints = np.where(missing[..., None], 0.0, raw[..., :2] - 1.0)
    return joints, missing, visible


def joint_box_crop(
    joints: np.ndarray, missing: np.ndarray, margin: float
) -> tuple[np.ndarray, np.ndarray]:
    """Square crops around the labelled joints of ``N`` people.

    Args:
        joints: ``(N, J, 2)`` image px; missing: ``(N, J)`` bool; margin: fraction of the box's
            longer side added on each side.

    Returns:
        ``centers`` ``(N, 2)`` image px and ``sides`` ``(N,)`` image px; NaN for a person with no
        labelled joint.
    """
    labelled = np.where(missing[..., None], np.nan, joints)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows give NaN, as documented
        low, high = np.nanmin(labelled, axis=1), np.nanmax(labelled, axis=1)
    centers = (low + high) / 2
    sides = np.maximum((1 + 2 * margin) * np.max(high - low, axis=1), MIN_SIDE)
    sides[np.isnan(centers[:, 0])] = np.nan
    return centers, sides


class LSP(PoseDataset):
    """LSP or LSP-extended people as crop samples (see :mod:`dsntpose.data.common`).

    Args:
        root: folder with ``joints.mat`` and ``images/``.
        split: LSP: ``"train"`` (images 1-1000), ``"test"`` (1001-2000) or ``"all"``;
            LSP-extended: ``"train"`` or ``"all"`` (every image; it has no test split).
        size: crop side ``S`` px.
        augment: ``True`` for the paper's augmentation, an :class:`Augment`, or False.
        extended: LSP-extended layout (``im%05d.jpg``, flag 1 = visible).
        margin: crop margin, a fraction of the joint box's longer side on each side.
        seed: seed of the per-sample augmentation generator (None: fresh entropy).
        skip_missing: drop absent images with one warning instead of raising
            ``FileNotFoundError``.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str = "train",
        size: int = 224,
        augment: bool | Augment = False,
        extended: bool = False,
        margin: float = 0.2,
        seed: int | None = 0,
        skip_missing: bool = False,
    ) -> None:
        self.root = Path(root)
        joints, missing, visible = read_lsp_joints(self.root / "joints.mat", extended)
        num = len(joints)
        if extended:
            if split not in ("train", "all"):
                raise ValueError(f"LSP-extended split must be 'train' or 'all', got {split!r}")
            rows = np.arange(num)
        else:
            if split not in ("train", "test", "all"):
                raise ValueError(f"LSP split must be 'train', 'test' or 'all', got {split!r}")
            if split != "all" and num != 2000:
                raise ValueError(
                    f"{self.root / 'joints.mat'}: has {num} people; the standard split needs 2000"
                )
            rows = {"train": np.arange(1000), "test": np.arange(1000, 2000), "all": np.arange(num)}[
                split
            ]
        pattern = "im{:05d}.jpg" if extended else "im{:04d}.jpg"
        names = [os.path.join("images", pattern.format(row + 1)) for row in rows]
        absent = find_missing_files(self.root, names)
        if absent and not skip_missing:
            raise FileNotFoundError(
                f"image not found: {self.root / names[absent[0]]} ({len(absent)} of {len(names)} "
                "images absent; fetch LSP again with `dsntpose data lsp --data.root ROOT`, "
                "or from Python pass skip_missing=True to leave them out)"
            )
        if absent:
            warnings.warn(
                f"LSP: skipped {len(absent)} of {len(names)} absent images in {self.root}",
                stacklevel=2,
            )
            keep = np.setdiff1d(np.arange(len(rows)), absent)
            rows, names = rows[keep], [names[i] for i in keep]

        self.image_names = names
        self.image_paths = [os.fspath(self.root / name) for name in names]
        self.rows = rows  # 0-based positions in joints.mat (image number - 1)
        self.joints, self.missing, self.visible = joints[rows], missing[rows], visible[rows]
        self.centers, self.sides = joint_box_crop(self.joints, self.missing, margin)
        a, b = LSP_JOINTS.torso
        torso = np.linalg.norm(self.joints[:, a] - self.joints[:, b], axis=1)
        self.torso_sizes = np.where(self.missing[:, a] | self.missing[:, b], np.nan, torso)
        self.joint_set = LSP_JOINTS
        self.size = int(size)
        self.augment = check_augment(augment)
        self.seed = seed

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, Any]:
        index = self.check_index(index)
        image = read_image(self.image_paths[index])
        center, side = self.centers[index], float(self.sides[index])
        if math.isnan(side):  # no labelled joint: the whole image
            height, width = image.shape[:2]
            center, side = np.array([(width - 1) / 2, (height - 1) / 2]), float(max(height, width))
        return finish_sample(
            image,
            self.joints[index],
            self.missing[index],
            center,
            side,
            self.size,
            self.joint_set,
            self.augment_params(index),
            index,
            float(self.torso_sizes[index]),
            bgr=True,
        )
