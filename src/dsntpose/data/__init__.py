"""Pose data: joint tables, MPII and LSP readers, a synthetic pose set and exact augmentation.

Samples are dicts (see :mod:`dsntpose.data.common` and ``docs/architecture.md``); every
coordinate follows the one convention: 0-based pixel centres, normalised ``-1..+1`` spanning
the outer edges, ``(x, y)`` order.
"""

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
