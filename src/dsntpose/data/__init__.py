"""Pose data: joint tables, MPII and LSP readers, a synthetic pose set and exact augmentation.

Samples are dicts (see :mod:`dsntpose.data.common` and ``docs/architecture.md``); every
coordinate follows the one convention: 0-based pixel centres, normalised ``-1..+1`` spanning
the outer edges, ``(x, y)`` order.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dsntpose.data.common import read_image, worker_init_fn
    from dsntpose.data.joints import LSP_JOINTS, MPII_JOINTS, JointSet, get_joint_set
    from dsntpose.data.lsp import LSP, read_lsp_joints
    from dsntpose.data.mpii import (
        MPII,
        PoseRecords,
        read_mpii,
        read_mpii_h5,
        read_mpii_json,
        read_mpii_mat,
        split_by_valid_h5,
    )
    from dsntpose.data.synthetic import Synthetic
    from dsntpose.data.transforms import (
        Augment,
        AugmentParams,
        apply_affine,
        crop_matrix,
        invert_affine,
    )

# Loaded on first use, so that ``dsntpose.data.joints`` (the joint tables the config checks
# against) imports without torch, numpy or OpenCV.
_WHERE = {
    "read_image": "common", "worker_init_fn": "common",
    "LSP_JOINTS": "joints", "MPII_JOINTS": "joints", "JointSet": "joints", "get_joint_set": "joints",
    "LSP": "lsp", "read_lsp_joints": "lsp",
    "MPII": "mpii", "PoseRecords": "mpii", "read_mpii": "mpii", "read_mpii_h5": "mpii",
    "read_mpii_json": "mpii", "read_mpii_mat": "mpii", "split_by_valid_h5": "mpii",
    "Synthetic": "synthetic",
    "Augment": "transforms", "AugmentParams": "transforms", "apply_affine": "transforms",
    "crop_matrix": "transforms", "invert_affine": "transforms",
}  # fmt: skip


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    globals()[name] = value
    return value


__all__ = [
    "LSP",
    "LSP_JOINTS",
    "MPII",
    "MPII_JOINTS",
    "Augment",
    "AugmentParams",
    "JointSet",
    "PoseRecords",
    "Synthetic",
    "apply_affine",
    "crop_matrix",
    "get_joint_set",
    "invert_affine",
    "read_image",
    "read_lsp_joints",
    "read_mpii",
    "read_mpii_h5",
    "read_mpii_json",
    "read_mpii_mat",
    "split_by_valid_h5",
    "worker_init_fn",
]
