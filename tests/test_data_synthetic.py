"""Synthetic stick figures: determinism, figure structure, masks, augmentation seeding, workers."""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from dsntpose.data import LSP_JOINTS, MPII_JOINTS, Augment, Synthetic, worker_init_fn
from dsntpose.data.synthetic import draw_background, draw_figure, make_pose


def test_same_seed_and_index_give_the_same_sample() -> None:
    a, b, other = (
        Synthetic(20, size=64, seed=3),
        Synthetic(20, size=64, seed=3),
        Synthetic(20, size=64, seed=4),
    )
    for index in (0, 7, 19):
        x, y = a[index], b[index]
        assert all(torch.equal(x[k], y[k]) for k in ("image", "joints", "mask", "inverse"))
        assert not torch.equal(x["image"], other[index]["image"])
    assert not torch.equal(a[0]["joints"], a[1]["joints"])
    with pytest.raises(IndexError, match="20 samples"):
        a[20]


def test_sample_contract_and_identity_geometry() -> None:
    data = Synthetic(5, size=64, seed=0)
    sample = data[2]
    assert sample["image"].shape == (3, 64, 64) and sample["image"].dtype == torch.float32
    assert sample["joints"].shape == (14, 2) and sample["mask"].shape == (14,)
    assert torch.equal(sample["inverse"], torch.eye(2, 3, dtype=torch.float64))
    joints_px = (sample["joints"].double() + 1) * 64 / 2 - 0.5
    assert torch.allclose(joints_px, sample["joints_image"], atol=1e-4)
    torso = torch.linalg.norm(sample["joints_image"][8] - sample["joints_image"][3])
    assert sample["norm_size"] == pytest.approx(float(torso))
    mpii = Synthetic(3, size=64, joints="mpii")[0]
    assert mpii["joints"].shape == (16, 2)
    assert data.joint_set is LSP_JOINTS and Synthetic(1, joints="mpii").joint_set is MPII_JOINTS


def test_figures_face_the_camera_and_are_drawn_at_their_joints() -> None:
    size, changed, total = 96, 0, 0
    for index in range(40):
        rng = np.random.default_rng(index)
        pose = make_pose(rng, size)
        assert pose["r_shoulder"][0] < pose["l_shoulder"][0] and pose["r_hip"][0] < pose["l_hip"][0]
        background = draw_background(rng, size)
        canvas = background.copy()
        draw_figure(canvas, pose, rng)
        for name in LSP_JOINTS.names:
            x, y = np.round(pose[name]).astype(int)
            if 1 <= x < size - 1 and 1 <= y < size - 1:
                total += 1
                window = (slice(y - 1, y + 2), slice(x - 1, x + 2))
                changed += not np.array_equal(canvas[window], background[window])
    assert changed == total > 300  # every joint inside the canvas has the figure on it


def test_some_joints_fall_outside_and_are_masked() -> None:
    data = Synthetic(200, size=48, seed=1)
    outside = 0
    for index in range(len(data)):
        sample = {k: v.numpy() for k, v in data[index].items() if isinstance(v, torch.Tensor)}
        inside = ((sample["joints_image"] >= -0.5) & (sample["joints_image"] <= 47.5)).all(1)
        assert np.array_equal(sample["mask"] > 0, inside)
        assert np.array_equal(np.abs(sample["joints"]).max(1) <= 1.0, inside)
        outside += not inside.all()
    assert 0.03 * len(data) < outside < 0.3 * len(data)


def test_augmentation_follows_seed_and_epoch() -> None:
    data = Synthetic(4, size=64, seed=0, augment=True)
    first = data[1]["image"]
    assert torch.equal(data[1]["image"], first)
    data.set_epoch(1)
    assert not torch.equal(data[1]["image"], first)
    plain = Synthetic(
        4, size=64, seed=0, augment=Augment(flip_prob=1.0, rotation_prob=0.0, scale_sigma=0.0)
    )
    sample = plain[0]
    # A forced flip: joint j of the flipped figure is the mirror of joint flip_index[j].
    unflipped = Synthetic(4, size=64, seed=0)[0]
    mirrored = unflipped["joints"][list(LSP_JOINTS.flip_index)] * torch.tensor([-1.0, 1.0])
    assert torch.allclose(sample["joints"], mirrored, atol=1e-6)


def test_workers_give_the_same_batches_as_the_main_process() -> None:
    data = Synthetic(8, size=32, seed=5, augment=True)
    single = list(DataLoader(data, batch_size=4))
    workers = list(DataLoader(data, batch_size=4, num_workers=2, worker_init_fn=worker_init_fn))
    for a, b in zip(single, workers):
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["joints"], b["joints"])
        assert a["image"].shape == (4, 3, 32, 32) and a["norm_size"].shape == (4,)
