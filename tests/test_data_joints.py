"""Joint tables: permutations, partners by name, groups and lookup."""

import pytest

from dsntpose.data.joints import LSP_JOINTS, MPII_JOINTS, JointSet, get_joint_set


@pytest.mark.parametrize("table", [MPII_JOINTS, LSP_JOINTS])
def test_flip_partners_by_name(table: JointSet) -> None:
    for j, name in enumerate(table.names):
        partner = table.names[table.flip_index[j]]
        if name.startswith(("l_", "r_")):
            other = ("r_" if name.startswith("l_") else "l_") + name[2:]
            assert partner == other
        else:
            assert partner == name


@pytest.mark.parametrize("table", [MPII_JOINTS, LSP_JOINTS])
def test_skeleton_is_connected_and_coloured(table: JointSet) -> None:
    assert len(table.colors) == len(table.skeleton)
    reached, frontier = {0}, [0]
    while frontier:
        j = frontier.pop()
        for a, b in table.skeleton:
            for u, v in ((a, b), (b, a)):
                if u == j and v not in reached:
                    reached.add(v)
                    frontier.append(v)
    assert reached == set(range(table.num_joints))
    # Flipping maps the skeleton onto itself.
    edges = {frozenset(e) for e in table.skeleton}
    assert {frozenset(table.flip_index[j] for j in e) for e in edges} == edges


def test_known_layouts() -> None:
    assert MPII_JOINTS.num_joints == 16 and LSP_JOINTS.num_joints == 14
    assert MPII_JOINTS.pck_groups["Head"] == (MPII_JOINTS.index("head_top"),)
    assert MPII_JOINTS.pck_groups["Wrist"] == (10, 15)
    assert len(MPII_JOINTS.pck_total) == 14
    assert 6 not in MPII_JOINTS.pck_total and 7 not in MPII_JOINTS.pck_total
    assert LSP_JOINTS.pck_groups["Head"] == (13,)
    assert [LSP_JOINTS.names[j] for j in LSP_JOINTS.torso] == ["r_shoulder", "l_hip"]
    assert [MPII_JOINTS.names[j] for j in MPII_JOINTS.torso] == ["r_shoulder", "l_hip"]


def test_lookup_and_errors() -> None:
    assert get_joint_set("MPII") is MPII_JOINTS
    assert get_joint_set("lsp") is LSP_JOINTS
    with pytest.raises(ValueError, match=r"unknown joint set 'coco'.*'mpii'"):
        get_joint_set("coco")
    with pytest.raises(ValueError, match="no joint 'nose'"):
        LSP_JOINTS.index("nose")
    with pytest.raises(ValueError, match="own inverse"):
        JointSet("bad", ("a", "b", "c"), (1, 2, 0), (), (), {}, (), (0, 1))
