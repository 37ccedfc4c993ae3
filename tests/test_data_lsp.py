"""LSP and LSP-extended: joints.mat layouts and flags, split, crop, errors, the real 2000 images."""

from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.io

from dsntpose.data import LSP
from dsntpose.data.lsp import joint_box_crop, read_lsp_joints

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
LSP_DIR = SHARED / "data" / "lsp"
needs_lsp = pytest.mark.skipif(not LSP_DIR.is_dir(), reason="../shared/data/lsp is absent")


def write_set(root: Path, num: int, extended: bool, flag: int = 1) -> np.ndarray:
    """A tiny LSP(-extended) folder; returns the 1-based (N, 14, 3) joints written."""
    rng = np.random.default_rng(0)
    joints = np.concatenate(
        [rng.uniform(20, 80, size=(num, 14, 2)), np.zeros((num, 14, 1))], axis=2
    )
    joints[:, 0, 2] = flag
    if extended:
        joints[0, 5, :] = 0.0  # a missing joint
    layout = joints.transpose(1, 2, 0) if extended else joints.transpose(2, 1, 0)
    scipy.io.savemat(root / "joints.mat", {"joints": layout})
    (root / "images").mkdir()
    pattern = "im{:05d}.jpg" if extended else "im{:04d}.jpg"
    for i in range(num):
        image = rng.integers(0, 256, size=(100, 90, 3), dtype=np.uint8)
        cv2.imwrite(str(root / "images" / pattern.format(i + 1)), image)
    return joints


def test_lsp_flags_mean_occluded_and_coordinates_are_zero_based(tmp_path: Path) -> None:
    written = write_set(tmp_path, 3, extended=False)
    joints, missing, visible = read_lsp_joints(tmp_path / "joints.mat")
    assert np.allclose(joints, written[..., :2] - 1.0)
    assert not missing.any()
    assert not visible[:, 0].any() and visible[:, 1:].all()  # flag 1 = occluded


def test_extended_flags_mean_visible_and_names_have_five_digits(tmp_path: Path) -> None:
    write_set(tmp_path, 3, extended=True, flag=1)
    mat = scipy.io.loadmat(tmp_path / "joints.mat")["joints"]  # (14, 3, N), 1-based
    mat[:, 2, :] = 1.0  # every joint labelled and visible ...
    mat[5, :, 0] = 0.0  # ... except an unplaced one (0, 0) ...
    mat[3, :, 1] = [-40.0, 30.0, 0.0]  # ... and one outside the frame, flag 0 (LSPET's form)
    scipy.io.savemat(tmp_path / "joints.mat", {"joints": mat})
    joints, missing, visible = read_lsp_joints(tmp_path / "joints.mat", extended=True)
    assert missing.sum() == 2 and missing[0, 5] and missing[1, 3]
    assert joints[0, 5].tolist() == [0.0, 0.0] and joints[1, 3].tolist() == [0.0, 0.0]
    assert (visible == ~missing).all()  # flag 1 = visible
    data = LSP(tmp_path, "train", size=32, extended=True)
    assert len(data) == 3 and data.image_names[2].endswith("im00003.jpg")
    sample = data[0]
    assert sample["mask"][5] == 0.0 and bool(sample["joints_missing"][5])
    assert data[1]["mask"][3] == 0.0
    # the out-of-frame point does not widen the crop box: it is no label
    labelled = joints[1][~missing[1]]
    assert data.sides[1] == pytest.approx(1.4 * np.ptp(labelled, axis=0).max())
    with pytest.raises(ValueError, match="LSP-extended split"):
        LSP(tmp_path, "test", extended=True)


LSPET_DIR = SHARED / "data" / "lspet"


@pytest.mark.skipif(not LSPET_DIR.is_dir(), reason="../shared/data/lspet is absent")
def test_real_lspet_masks_every_unlabelled_joint() -> None:
    raw = scipy.io.loadmat(LSPET_DIR / "joints.mat")["joints"]  # (14, 3, 9000)
    data = LSP(LSPET_DIR, "all", size=64, extended=True)
    assert len(data) == 9000
    assert data.missing.sum() == int((raw[:, 2, :] == 0).sum()) > 15000
    negative = (raw[:, 0, :] < 0) | (raw[:, 1, :] < 0)
    unlabelled = negative.T & (raw[:, 2, :] == 0).T
    assert data.missing[unlabelled].all()
    for index in (0, 4500, 8999):
        sample = data[index]
        assert (sample["mask"][sample["joints_missing"]] == 0).all()


def test_joint_box_crop_is_square_with_margin() -> None:
    joints = np.array([[[10.0, 20.0], [30.0, 100.0], [500.0, 500.0]]])
    missing = np.array([[False, False, True]])
    centers, sides = joint_box_crop(joints, missing, margin=0.2)
    assert np.allclose(centers, [[20.0, 60.0]]) and np.allclose(sides, [80.0 * 1.4])
    centers, sides = joint_box_crop(joints, np.ones((1, 3), bool), margin=0.2)
    assert np.isnan(centers).all() and np.isnan(sides).all()


def test_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"joints\.mat"):
        LSP(tmp_path, "train")
    write_set(tmp_path, 4, extended=False)
    (tmp_path / "images" / "im0003.jpg").unlink()
    with pytest.raises(FileNotFoundError, match=r"im0003\.jpg.*1 of 4"):
        LSP(tmp_path, "all")
    with pytest.warns(UserWarning, match="skipped 1 of 4"):
        data = LSP(tmp_path, "all", skip_missing=True)
    assert len(data) == 3 and data.rows.tolist() == [0, 1, 3]
    with pytest.raises(ValueError, match="needs 2000"):
        LSP(tmp_path, "train", skip_missing=True)
    with pytest.raises(ValueError, match="'train', 'test' or 'all'"):
        LSP(tmp_path, "valid")
    scipy.io.savemat(tmp_path / "joints.mat", {"joints": np.zeros((2, 14, 4))})
    with pytest.raises(ValueError, match=r"joints\.mat.*'joints'.*\(2, 14, 4\)"):
        LSP(tmp_path, "all")
    scipy.io.savemat(tmp_path / "joints.mat", {"points": np.zeros((3, 14, 4))})
    with pytest.raises(ValueError, match=r"joints\.mat.*no variable 'joints'"):
        LSP(tmp_path, "all")


@needs_lsp
def test_standard_split_and_real_samples() -> None:
    train, test = LSP(LSP_DIR, "train"), LSP(LSP_DIR, "test", size=128)
    assert len(train) == 1000 and len(test) == 1000 and len(LSP(LSP_DIR, "all")) == 2000
    assert train.rows[[0, -1]].tolist() == [0, 999] and test.rows[[0, -1]].tolist() == [1000, 1999]
    assert test.image_names[0].endswith("im1001.jpg")
    assert 0.06 < 1.0 - train.visible.mean() < 0.09  # ~7.3% of LSP's joints are occluded
    for data, index in ((train, 0), (train, 500), (test, 999)):
        sample = data[index]
        size = data.size
        assert sample["image"].shape == (3, size, size)
        assert sample["mask"].min() == 1.0  # the margin keeps every joint inside
        # The joints' box fills 1 / 1.4 of the crop, centred.
        joints = sample["joints"].numpy()
        extent = (joints.max(0) - joints.min(0)).max()
        assert abs(extent - 2 / 1.4) < 1e-5
        assert np.allclose((joints.max(0) + joints.min(0)) / 2, 0.0, atol=1e-5)
        torso = np.linalg.norm(sample["joints_image"][8] - sample["joints_image"][3])
        assert sample["norm_size"] == pytest.approx(float(torso))


def check_loads(data: LSP, indices: range) -> None:
    for index in indices:
        sample = data[index]
        assert sample["mask"].numpy().sum() >= 13  # essentially every joint inside its crop
        assert sample["image"].numpy().std() > 0.02  # a real picture


@needs_lsp
def test_every_fiftieth_image_loads() -> None:
    check_loads(LSP(LSP_DIR, "all"), range(0, 2000, 50))


@needs_lsp
@pytest.mark.slow
def test_all_2000_images_load() -> None:
    check_loads(LSP(LSP_DIR, "all"), range(2000))
