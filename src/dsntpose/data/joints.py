"""Joint tables: one :class:`JointSet` per data set (MPII 16 joints, LSP 14 joints).

A table holds everything that depends on the joint order: names, the left/right flip
permutation (used by flip augmentation and the flip test), skeleton edges and their colours
(drawing), the PCK groups of the usual result table and the torso pair (PCK@0.2 on LSP).
Left and right are the person's own, as in both data sets.
"""

from __future__ import annotations

from dataclasses import dataclass, field

RGB = tuple[int, int, int]

# Edge colours: the person's right side warm, left side cool, the centre line green.
_RIGHT_LEG, _RIGHT_ARM = (230, 60, 40), (245, 150, 30)
_LEFT_LEG, _LEFT_ARM = (40, 90, 230), (30, 190, 230)
_CENTRE, _HEAD = (60, 190, 70), (200, 60, 200)


@dataclass(frozen=True)
class JointSet:
    """One data set's joint table.

    Attributes:
        name: short name (``"mpii"``, ``"lsp"``), as accepted by :func:`get_joint_set`.
        names: ``J`` joint names in data-set order.
        flip_index: permutation of ``range(J)``: after a horizontal flip, joint ``j`` of the
            flipped person is joint ``flip_index[j]`` of the original (left/right partners
            swap, centre joints map to themselves). It is its own inverse.
        skeleton: edges as ``(a, b)`` joint-index pairs.
        colors: one RGB ``(r, g, b)`` colour (0..255) per skeleton edge.
        pck_groups: result-table group -> joint indices (the group's score is the mean over
            its joints), in the usual column order.
        pck_total: the joints counted in the Total column.
        torso: ``(a, b)`` joint pair whose distance is the torso size for PCK (LSP protocol:
            right shoulder to left hip).
    """

    name: str
    names: tuple[str, ...]
    flip_index: tuple[int, ...]
    skeleton: tuple[tuple[int, int], ...]
    colors: tuple[RGB, ...]
    pck_groups: dict[str, tuple[int, ...]] = field(hash=False)
    pck_total: tuple[int, ...]
    torso: tuple[int, int]

    def __post_init__(self) -> None:
        num = len(self.names)
        if sorted(self.flip_index) != list(range(num)):
            raise ValueError(f"{self.name}: flip_index must be a permutation of range({num})")
        if any(self.flip_index[self.flip_index[j]] != j for j in range(num)):
            raise ValueError(f"{self.name}: flip_index must be its own inverse")
        if len(self.colors) != len(self.skeleton):
            raise ValueError(f"{self.name}: colors needs one RGB per skeleton edge")
        used = [j for edge in self.skeleton for j in edge]
        used += [j for group in self.pck_groups.values() for j in group]
        used += [*self.pck_total, *self.torso]
        if any(not 0 <= j < num for j in used):
            raise ValueError(f"{self.name}: joint index out of range(0, {num})")

    @property
    def num_joints(self) -> int:
        """Number of joints ``J``."""
        return len(self.names)

    def index(self, name: str) -> int:
        """Index of the joint called ``name`` (``ValueError`` naming the known names if absent)."""
        try:
            return self.names.index(name)
        except ValueError:
            raise ValueError(
                f"{self.name}: no joint {name!r}; joints: {', '.join(self.names)}"
            ) from None


# fmt: off
MPII_JOINTS = JointSet(
    name="mpii",
    names=(
        "r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle", "pelvis", "thorax",
        "upper_neck", "head_top", "r_wrist", "r_elbow", "r_shoulder", "l_shoulder", "l_elbow",
        "l_wrist",
    ),
    flip_index=(5, 4, 3, 2, 1, 0, 6, 7, 8, 9, 15, 14, 13, 12, 11, 10),
    skeleton=(
        (0, 1), (1, 2), (2, 6),            # right leg
        (5, 4), (4, 3), (3, 6),            # left leg
        (6, 7), (7, 8), (8, 9),            # spine, neck, head
        (10, 11), (11, 12), (12, 7),       # right arm
        (15, 14), (14, 13), (13, 7),       # left arm
    ),
    colors=(
        _RIGHT_LEG, _RIGHT_LEG, _RIGHT_LEG,
        _LEFT_LEG, _LEFT_LEG, _LEFT_LEG,
        _CENTRE, _CENTRE, _HEAD,
        _RIGHT_ARM, _RIGHT_ARM, _RIGHT_ARM,
        _LEFT_ARM, _LEFT_ARM, _LEFT_ARM,
    ),
    pck_groups={
        "Head": (9,), "Shoulder": (12, 13), "Elbow": (11, 14), "Wrist": (10, 15),
        "Hip": (2, 3), "Knee": (1, 4), "Ankle": (0, 5),
    },
    pck_total=(0, 1, 2, 3, 4, 5, 8, 9, 10, 11, 12, 13, 14, 15),  # all but pelvis, thorax
    torso=(12, 3),                                               # r_shoulder - l_hip
)

LSP_JOINTS = JointSet(
    name="lsp",
    names=(
        "r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle", "r_wrist", "r_elbow",
        "r_shoulder", "l_shoulder", "l_elbow", "l_wrist", "neck", "head_top",
    ),
    flip_index=(5, 4, 3, 2, 1, 0, 11, 10, 9, 8, 7, 6, 12, 13),
    skeleton=(
        (0, 1), (1, 2), (2, 8),            # right leg, right flank
        (5, 4), (4, 3), (3, 9),            # left leg, left flank
        (2, 3), (8, 12), (9, 12),          # hips, shoulders to neck
        (12, 13),                          # head
        (6, 7), (7, 8),                    # right arm
        (11, 10), (10, 9),                 # left arm
    ),
    colors=(
        _RIGHT_LEG, _RIGHT_LEG, _RIGHT_LEG,
        _LEFT_LEG, _LEFT_LEG, _LEFT_LEG,
        _CENTRE, _CENTRE, _CENTRE,
        _HEAD,
        _RIGHT_ARM, _RIGHT_ARM,
        _LEFT_ARM, _LEFT_ARM,
    ),
    pck_groups={
        "Head": (13,), "Neck": (12,), "Shoulder": (8, 9), "Elbow": (7, 10),
        "Wrist": (6, 11), "Hip": (2, 3), "Knee": (1, 4), "Ankle": (0, 5),
    },
    pck_total=tuple(range(14)),
    torso=(8, 3),                                                # r_shoulder - l_hip
)
# fmt: on

JOINT_SETS = {"mpii": MPII_JOINTS, "lsp": LSP_JOINTS}


# Joints that two data sets label alike under different names (LSP's "neck" is the point MPII
# calls "upper_neck": the top of the neck, below the chin).
JOINT_ALIASES = {"neck": "upper_neck", "upper_neck": "neck"}


def joint_map(source: JointSet, target: JointSet) -> tuple[int, ...]:
    """For each joint of ``target``, the index of the ``source`` joint with the same name (or
    its :data:`JOINT_ALIASES` name), ``-1`` where ``source`` has no such joint.

    Example: ``joint_map(LSP_JOINTS, MPII_JOINTS)`` maps MPII's 16 joints onto LSP's 14 (pelvis
    and thorax ``-1``, upper_neck from LSP's neck).
    """
    found = []
    for name in target.names:
        if name in source.names:
            found.append(source.names.index(name))
        elif JOINT_ALIASES.get(name) in source.names:
            found.append(source.names.index(JOINT_ALIASES[name]))
        else:
            found.append(-1)
    return tuple(found)


def get_joint_set(name: str) -> JointSet:
    """The :class:`JointSet` called ``name`` (``"mpii"`` or ``"lsp"``, case-insensitive)."""
    try:
        return JOINT_SETS[name.lower()]
    except (KeyError, AttributeError):
        raise ValueError(
            f"unknown joint set {name!r}; choose one of {', '.join(map(repr, JOINT_SETS))}"
        ) from None
