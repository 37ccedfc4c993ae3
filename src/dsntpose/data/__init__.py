"""Pose data: joint tables, MPII and LSP readers, a synthetic pose set and exact augmentation.

Samples are dicts (see ``docs/architecture.md``); every coordinate follows the one convention of
``docs/architecture.md``: 0-based pixel centres, normalised ``-1..+1`` spanning the outer edges.
"""

from dsntpose.data.joints import LSP_JOINTS, MPII_JOINTS, JointSet, get_joint_set

__all__ = ["LSP_JOINTS", "MPII_JOINTS", "JointSet", "get_joint_set"]
