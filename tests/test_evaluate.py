"""Tests for dsntpose.evaluate: PCKh/PCK tables, files, frame check, back-projection, flip test."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import NamedTuple

import h5py
import numpy as np
import pytest
import scipy.io
import torch
from torch import Tensor, nn

from dsntpose import evaluate as ev
from dsntpose import inference as inf
from dsntpose import mpii_files as mf
from dsntpose import ops
from dsntpose.data import LSP_JOINTS, MPII_JOINTS, Synthetic
from dsntpose.heads import DSNTHead, FCHead, HeatmapHead

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
MPII_DIR = SHARED / "data" / "mpii"
GT_MAT = MPII_DIR / "detections_our_format.mat"
needs_mpii = pytest.mark.skipif(not GT_MAT.is_file(), reason="../shared MPII data absent")


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def fake_people(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random MPII-like people: joints (n, 16, 2) image px, missing (n, 16), head sizes (n,)."""
    rng = np.random.default_rng(seed)
    head = rng.uniform(20.0, 150.0, size=n)
    centre = rng.uniform(300.0, 900.0, size=(n, 1, 2))
    joints = centre + rng.normal(size=(n, 16, 2)) * 2.0 * head[:, None, None]
    missing = rng.random((n, 16)) < 0.07
    return joints, missing, head


def write_gt_mat(path: Path, joints: np.ndarray, missing: np.ndarray, head: np.ndarray) -> None:
    """A detections_our_format.mat-style file (1-based) whose head sizes are ``head``."""
    n = len(joints)
    diag_half = head / HEAD_FACTOR / math.sqrt(2) / 2  # square box: diag = side * sqrt(2)
    centre = joints[:, 9]
    boxes = np.stack([centre - diag_half[:, None], centre + diag_half[:, None]], axis=1)
    names = np.empty((1, 16), dtype=object)
    for j, name in enumerate(mf.MPII_MAT_NAMES):
        names[0, j] = np.array([name])
    scipy.io.savemat(
        path,
        {
            "jnt_missing": missing.T.astype(np.uint8),
            "pos_gt_src": (joints + 1).transpose(1, 2, 0),
            "headboxes_src": (boxes + 1).transpose(1, 2, 0),
            "dataset_joints": names,
        },
    )
    assert n == boxes.shape[0]


HEAD_FACTOR = 0.6


# --------------------------------------------------------------------------------------------
# PCKh / PCK tables
# --------------------------------------------------------------------------------------------


def test_pckh_counts_groups_and_both_totals_by_hand() -> None:
    # 2 people, head sizes 10 and 20 px; person 0 exactly on the boundary for joint 0.
    gt = np.zeros((2, 16, 2))
    preds = gt.copy()
    head = np.array([10.0, 20.0])
    missing = np.zeros((2, 16), dtype=bool)
    preds[0, 0] = (3.0, 4.0)  # 5 px = 0.5 head sizes: correct (<=)
    preds[1, 0] = (0.0, 10.5)  # 0.525 head sizes: wrong
    preds[0, 5] = (6.0, 0.0)  # l_ankle 0.6: wrong
    missing[1, 5] = True  # l_ankle of person 1 not counted
    preds[1, 5] = (1e6, 1e6)
    missing[:, 6] = True  # pelvis never counted -> NaN, outside the totals
    r = ev.pckh(preds, gt, missing, head)
    assert r.per_joint[0] == 50.0 and r.per_joint[5] == 0.0 and math.isnan(r.per_joint[6])
    assert r.counts[5] == 1 and r.correct.sum() == 32 - 3 - 2  # 3 not counted, 2 wrong
    assert r.groups["Ankle"] == 25.0 and r.groups["Head"] == 100.0
    # weighted: 14 joints pooled, 27 counted, 25 correct; unweighted: mean of the 14 joints
    assert r.total == pytest.approx(100 * 25 / 27)
    assert r.total_unweighted == pytest.approx((12 * 100 + 50 + 0) / 14)
    # torch inputs give the same
    rt = ev.pckh(torch.from_numpy(preds), torch.from_numpy(gt), torch.from_numpy(missing), head)
    np.testing.assert_array_equal(rt.correct, r.correct)


def test_pck_lsp_uses_right_shoulder_to_left_hip() -> None:
    gt = np.zeros((1, 14, 2))
    gt[0, 8] = (0.0, 0.0)  # r_shoulder
    gt[0, 3] = (30.0, 40.0)  # l_hip: torso 50 px
    gt[0, 9] = (100.0, 0.0)  # l_shoulder far away: must not matter
    sizes = ev.torso_sizes(gt)
    assert sizes.tolist() == [50.0]
    preds = gt.copy()
    preds[0, 13] += (10.0, 0.0)  # head_top 0.2 torso: correct
    preds[0, 12] += (10.1, 0.0)  # neck just outside
    r = ev.pck(preds, gt, np.zeros((1, 14), dtype=bool), sizes)
    assert r.metric == "PCK" and r.threshold == 0.2
    assert r.groups["Head"] == 100.0 and r.groups["Neck"] == 0.0
    assert r.total == pytest.approx(100 * 13 / 14) == pytest.approx(r.total_unweighted)


def test_curve_auc_is_the_area_under_the_total() -> None:
    gt = np.zeros((4, 16, 2))
    preds = gt + np.array([0.255 * 10.0, 0.0])  # every joint 0.255 head sizes off
    r = ev.pckh(preds, gt, np.zeros((4, 16), dtype=bool), np.full(4, 10.0))
    c = r.curve
    assert c is not None and c.thresholds[0] == 0.0 and c.thresholds[-1] == 0.5
    assert len(c.thresholds) == ev.CURVE_STEPS
    assert c.total[c.thresholds < 0.255].max() == 0.0 and c.total[c.thresholds > 0.255].min() == 100
    assert r.auc == pytest.approx(49.0)  # (0.5 - 0.255) / 0.5, exact for a step on the grid
    assert c.per_joint.shape == (ev.CURVE_STEPS, 16)


def test_result_table_json_and_csv(tmp_path: Path) -> None:
    joints, missing, head = fake_people(50)
    rng = np.random.default_rng(1)
    preds = joints + rng.normal(size=joints.shape) * 0.3 * head[:, None, None]
    r = ev.pckh(preds, joints, missing, head)
    text = str(r)
    assert "PCKh@0.5" in text and "Total" in text and "count-weighted" in text
    assert "pelvis, thorax" in text and f"{r.total:.2f}" in text and "head_top" in text
    d = json.loads(r.to_json(tmp_path / "r.json"))
    assert json.loads((tmp_path / "r.json").read_text()) == d
    assert list(d["groups"]) == list(MPII_JOINTS.pck_groups)
    assert list(d["joints"]) == list(MPII_JOINTS.names)
    assert d["total"] == pytest.approx(r.total) and d["auc"] == pytest.approx(r.auc)
    rows = r.to_csv(tmp_path / "r.csv").strip().splitlines()
    assert rows[0] == "kind,name,pck,counted" and len(rows) == 1 + 7 + 2 + 1 + 16
    assert (tmp_path / "r.csv").read_text().strip().splitlines() == rows


def test_nan_joint_is_null_in_json() -> None:
    joints, missing, head = fake_people(5)
    missing[:, 6] = True
    d = json.loads(ev.pckh(joints, joints, missing, head).to_json())
    assert d["joints"]["pelvis"] is None and d["counts"]["pelvis"] == 0


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("preds", np.zeros((3, 14, 2)), r"preds: expected shape \(N, 16, 2\)"),
        ("gt", np.zeros((2, 16, 2)), "gt: expected shape"),
        ("missing", np.zeros((3, 16, 1)), r"missing: expected shape \(3, 16\)"),
        ("sizes", np.zeros(3), "size > 0"),
    ],
)
def test_pckh_rejects_bad_inputs(field: str, value: np.ndarray, message: str) -> None:
    args = {
        "preds": np.zeros((3, 16, 2)),
        "gt": np.zeros((3, 16, 2)),
        "missing": np.zeros((3, 16), dtype=bool),
        "sizes": np.ones(3),
    }
    args[field] = value
    with pytest.raises(ValueError, match=message):
        ev.pckh(args["preds"], args["gt"], args["missing"], args["sizes"])


# --------------------------------------------------------------------------------------------
# Published numbers (needs ../shared)
# --------------------------------------------------------------------------------------------


@needs_mpii
def test_reproduces_bearpaw_hg_s8_published_pckh(capsys: pytest.CaptureFixture[str]) -> None:
    path = MPII_DIR / "reference_preds" / "bearpaw-hg_s8_b1.mat"
    r = mf.eval_command(path, GT_MAT, json=True)
    published = {
        "Head": 96.79, "Shoulder": 95.19, "Elbow": 90.08, "Wrist": 85.32,
        "Hip": 87.48, "Knee": 84.26, "Ankle": 80.73,
    }  # fmt: skip
    for group, value in published.items():
        assert r.groups[group] == pytest.approx(value, abs=0.01), group
    assert r.total == pytest.approx(89.09, abs=0.01)  # count-weighted (HRNet "Mean")
    assert r.total_unweighted == pytest.approx(88.64, abs=0.01)  # bearpaw README "Mean"
    printed = json.loads(capsys.readouterr().out)
    assert printed["groups"]["Head"] == pytest.approx(96.79, abs=0.01)


@needs_mpii
def test_tompson_transposed_layout_equals_pos_pred_src() -> None:
    preds = mf.read_predictions(MPII_DIR / "reference_preds" / "tompson.h5")
    official = scipy.io.loadmat(GT_MAT)["pos_pred_src"].transpose(2, 0, 1)
    assert preds.shape == (2958, 16, 2)
    np.testing.assert_allclose(preds, official - 1, atol=1e-3)  # stored as float32


@needs_mpii
def test_real_ground_truth_reader_matches_valid_h5_head_sizes() -> None:
    truth = mf.read_mpii_ground_truth(GT_MAT)
    with h5py.File(MPII_DIR / "valid.h5", "r") as f:
        normalize = f["normalize"][()]
    assert len(truth) == 2958 and truth.missing.dtype == bool
    np.testing.assert_allclose(truth.head_sizes, normalize, rtol=1e-6)


@needs_mpii
def test_zero_based_copy_of_published_file_is_refused(tmp_path: Path) -> None:
    preds = mf.read_predictions(MPII_DIR / "reference_preds" / "bearpaw-hg_s8_b1.mat")
    wrong = tmp_path / "zero_based.h5"
    with h5py.File(wrong, "w") as f:  # the 0-based values written as they are: the mistake
        f["preds"] = preds
    with pytest.raises(ValueError, match=r"zero_based\.h5.*0-based.*1-based"):
        mf.eval_command(wrong, GT_MAT)
    r = mf.eval_command(wrong, GT_MAT, check_frame_offset=False)
    assert r.total < 89.09


# --------------------------------------------------------------------------------------------
# Frame check
# --------------------------------------------------------------------------------------------


def biased_model(joints: np.ndarray, head: np.ndarray, seed: int = 2) -> np.ndarray:
    """Predictions with a heatmap-like bias that grows with the person (-0.06 head sizes)."""
    rng = np.random.default_rng(seed)
    scale = head[:, None, None]
    return joints + rng.normal(size=joints.shape) * 0.08 * scale - 0.06 * scale


def test_frame_offset_separates_constant_shift_from_size_bias() -> None:
    joints, missing, head = fake_people(400)
    preds = biased_model(joints, head)
    median = np.median((preds - joints)[~missing], axis=0)
    assert np.all(median < -3.0)  # a plain median would call this "0-based"
    fit = mf.check_frame(preds, joints, missing, head)
    np.testing.assert_allclose(fit.offset, 0.0, atol=0.2)
    np.testing.assert_allclose(fit.slope, -0.06, atol=0.005)
    assert fit.num_joints > 4000
    np.testing.assert_allclose(
        mf.estimate_frame_offset(preds - 1, joints, missing, head).offset, fit.offset - 1, atol=1e-9
    )
    with pytest.raises(ValueError, match=r"mine\.h5: .*look 0-based.*add 1"):
        mf.check_frame(preds - 1, joints, missing, head, source="mine.h5")
    with pytest.raises(ValueError, match="1 looks added twice"):
        mf.check_frame(preds + 1, joints, missing, head)


def test_frame_check_passes_when_too_few_joints() -> None:
    joints, missing, head = fake_people(10)
    fit = mf.check_frame(joints - 1, joints, missing, head)
    assert fit.num_joints < mf.FRAME_MIN_JOINTS


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".h5", ".mat"])
def test_write_then_read_predictions_round_trip(tmp_path: Path, suffix: str) -> None:
    preds = np.random.default_rng(0).uniform(0, 500, size=(7, 16, 2))
    path = mf.write_predictions(tmp_path / "sub" / f"p{suffix}", torch.from_numpy(preds))
    np.testing.assert_allclose(mf.read_predictions(path), preds, atol=1e-9)
    if suffix == ".h5":
        with h5py.File(path, "r") as f:
            stored = f["preds"][()]
    else:
        stored = scipy.io.loadmat(path)["preds"]
    np.testing.assert_allclose(stored, preds + 1)  # the official 1-based frame


def test_read_predictions_transposes_tompson_layout(tmp_path: Path) -> None:
    preds = np.random.default_rng(0).uniform(1, 500, size=(5, 16, 2))
    with h5py.File(tmp_path / "t.h5", "w") as f:
        f["preds"] = preds.transpose(2, 1, 0)  # (2, 16, N)
    np.testing.assert_allclose(mf.read_predictions(tmp_path / "t.h5"), preds - 1)


def test_read_predictions_reads_matlab_v73_files(tmp_path: Path) -> None:
    preds = np.random.default_rng(0).uniform(1, 500, size=(5, 16, 2))
    path = tmp_path / "v73.mat"
    with h5py.File(path, "w", userblock_size=512) as f:  # MATLAB v7.3 = HDF5, column-major
        f["preds"] = preds.T
    with path.open("r+b") as f:
        f.write(b"MATLAB 7.3 MAT-file".ljust(116) + b"\0" * 8 + b"\x00\x02IM")
    np.testing.assert_allclose(mf.read_predictions(path), preds - 1)


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((4, 14, 2)), r"bad\.h5: .*14 joints, expected 16"),
        (np.zeros((2, 14, 4)), r"bad\.h5: .*14 joints, expected 16"),
        (np.zeros((4, 16, 3)), r"bad\.h5: 'preds' has shape \(4, 16, 3\); expected \(N, 16, 2\)"),
        (np.zeros((4, 32)), r"bad\.h5: 'preds' has shape \(4, 32\)"),
        (np.full((4, 16, 2), np.nan), r"bad\.h5: 'preds' holds NaN"),
    ],
)
def test_read_predictions_bad_files(tmp_path: Path, array: np.ndarray, message: str) -> None:
    with h5py.File(tmp_path / "bad.h5", "w") as f:
        f["preds"] = array
    with pytest.raises(ValueError, match=message):
        mf.read_predictions(tmp_path / "bad.h5")


def test_read_predictions_missing_key_suffix_and_file(tmp_path: Path) -> None:
    scipy.io.savemat(tmp_path / "k.mat", {"coords": np.zeros((2, 16, 2))})
    with pytest.raises(ValueError, match=r"k\.mat: no variable 'preds' \(found coords\)"):
        mf.read_predictions(tmp_path / "k.mat")
    (tmp_path / "p.txt").write_text("1 2")
    with pytest.raises(ValueError, match=r"p\.txt: unknown prediction file type '\.txt'"):
        mf.read_predictions(tmp_path / "p.txt")
    with pytest.raises(FileNotFoundError, match=r"nope\.h5"):
        mf.read_predictions(tmp_path / "nope.h5")
    with pytest.raises(ValueError, match=r"expected shape \(N, J, 2\)"):
        mf.write_predictions(tmp_path / "w.h5", np.zeros((3, 16)))


def test_ground_truth_reader_and_bad_fields(tmp_path: Path) -> None:
    joints, missing, head = fake_people(6)
    write_gt_mat(tmp_path / "gt.mat", joints, missing, head)
    truth = mf.read_mpii_ground_truth(tmp_path / "gt.mat")
    np.testing.assert_allclose(truth.joints, joints)  # 1-based file -> 0-based
    np.testing.assert_array_equal(truth.missing, missing)
    np.testing.assert_allclose(truth.head_sizes, head)
    np.testing.assert_allclose(truth.head_boxes.mean(axis=1), joints[:, 9])

    scipy.io.savemat(tmp_path / "bad.mat", {"jnt_missing": missing.T, "pos_gt_src": joints})
    with pytest.raises(ValueError, match=r"bad\.mat: missing headboxes_src"):
        mf.read_mpii_ground_truth(tmp_path / "bad.mat")
    scipy.io.savemat(
        tmp_path / "shape.mat",
        {
            "jnt_missing": missing.T,
            "pos_gt_src": joints.transpose(1, 2, 0),
            "headboxes_src": np.zeros((2, 2, 5)),
        },
    )
    with pytest.raises(ValueError, match=r"shape\.mat: headboxes_src .* expected \(2, 2, 6\)"):
        mf.read_mpii_ground_truth(tmp_path / "shape.mat")


def test_eval_command_json_default_gt_and_person_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    joints, missing, head = fake_people(64)
    (tmp_path / "data" / "mpii").mkdir(parents=True)
    write_gt_mat(tmp_path / "data" / "mpii" / "detections_our_format.mat", joints, missing, head)
    preds = biased_model(joints, head)
    mf.write_predictions(tmp_path / "p.h5", preds)
    monkeypatch.setenv("DSNTPOSE_DATA", str(tmp_path / "data"))
    r = mf.eval_command(tmp_path / "p.h5", json=True)
    expected = ev.pckh(preds, joints, missing, head)
    np.testing.assert_array_equal(r.correct, expected.correct)
    out = json.loads(capsys.readouterr().out)
    assert set(out["groups"]) == set(MPII_JOINTS.pck_groups) and len(out["joints"]) == 16
    assert out["total"] == pytest.approx(expected.total)

    mf.eval_command(tmp_path / "p.h5", threshold=0.1)
    assert "PCKh@0.1" in capsys.readouterr().out

    mf.write_predictions(tmp_path / "short.mat", preds[:50])
    with pytest.raises(ValueError, match=r"short\.mat: 50 people, but .* has 64"):
        mf.eval_command(tmp_path / "short.mat")

    monkeypatch.setenv("DSNTPOSE_DATA", str(tmp_path / "empty"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with pytest.raises(FileNotFoundError, match=r"put detections_our_format\.mat .*--gt FILE"):
        mf.eval_command(tmp_path / "p.h5")


# --------------------------------------------------------------------------------------------
# Back-projection
# --------------------------------------------------------------------------------------------


def test_back_project_hand_made_affine() -> None:
    # crop 64 px; crop px -> image px: rotate 90 degrees, scale 2, translate (100, 50)
    inverse = torch.tensor([[[0.0, -2.0, 100.0], [2.0, 0.0, 50.0]]], dtype=torch.float64)
    crop_px = torch.tensor([[[0.0, 0.0], [63.0, 10.0], [31.5, 31.5]]], dtype=torch.float64)
    norm = ops.pixel_to_normalized(crop_px, (64, 64))
    out = inf.back_project(norm, inverse, 64)
    expected = torch.stack(
        [100.0 - 2 * crop_px[..., 1], 50.0 + 2 * crop_px[..., 0]], dim=-1
    )  # x' = -2 y + 100, y' = 2 x + 50
    torch.testing.assert_close(out, expected)
    out_np = inf.back_project(norm[0].numpy(), inverse[0].numpy(), (64, 64))
    assert isinstance(out_np, np.ndarray)
    np.testing.assert_allclose(out_np, expected[0].numpy())
    with pytest.raises(ValueError, match=r"inverse: expected shape \(\.\.\., 2, 3\)"):
        inf.back_project(norm, inverse[..., :2], 64)


def test_back_project_round_trip_through_the_data_pipeline() -> None:
    data = Synthetic(6, size=96, seed=3, joints="mpii", augment=True)
    batch = [data[i] for i in range(len(data))]
    coords = torch.stack([s["joints"] for s in batch])  # float32 normalised crop units
    inverse = torch.stack([s["inverse"] for s in batch])
    assert not torch.allclose(inverse[0], torch.eye(2, 3, dtype=inverse.dtype))  # augmented
    image_px = inf.back_project(coords, inverse, batch[0]["image"].shape[-1])
    for s, got in zip(batch, image_px):
        keep = ~s["joints_missing"]
        torch.testing.assert_close(got[keep], s["joints_image"][keep].double(), atol=1e-3, rtol=0)


@pytest.mark.skipif(not (SHARED / "data" / "lsp" / "joints.mat").is_file(), reason="no LSP")
def test_back_project_round_trip_on_lsp() -> None:
    from dsntpose.data import LSP

    data = LSP(SHARED / "data" / "lsp", split="test", size=128, augment=True)
    for i in (0, 7):
        s = data[i]
        got = inf.back_project(s["joints"][None], s["inverse"][None], 128)[0]
        keep = ~s["joints_missing"]
        torch.testing.assert_close(got[keep], s["joints_image"][keep].double(), atol=1e-3, rtol=0)


# --------------------------------------------------------------------------------------------
# Flip test
# --------------------------------------------------------------------------------------------


class Out(NamedTuple):
    coords: Tensor
    heatmaps: Tensor
    logits: Tensor
    confidence: Tensor


class TinyModel(nn.Module):
    """Conv net -> per-joint logits (4x pooled) -> DSNTHead-like outputs.

    With ``equivariant=True`` joint ``flip_index[j]``'s kernel is joint ``j``'s mirrored along
    the width (self-paired joints get symmetric kernels), so the model is exactly
    mirror-equivariant: model(flip(x)) == flip(model(x)) with left and right swapped.
    """

    def __init__(
        self, flip_index: tuple[int, ...], equivariant: bool, seed: int = 0, maps: bool = False
    ) -> None:
        super().__init__()
        torch.manual_seed(seed)
        j = len(flip_index)
        self.conv = nn.Conv2d(3, j, 5, padding=2, bias=False)
        if equivariant:
            w = self.conv.weight.detach().clone()
            for a, b in enumerate(flip_index):
                if a < b:
                    w[b] = torch.flip(w[a], dims=[-1])
                elif a == b:
                    w[a] = 0.5 * (w[a] + torch.flip(w[a], dims=[-1]))
            self.conv.weight.data.copy_(w)
        self.head = HeatmapHead(None, j) if maps else DSNTHead(None, j)

    def forward(self, x: Tensor) -> Out:
        logits = nn.functional.avg_pool2d(self.conv(x), 4) * 5.0
        out = self.head(logits)
        return Out(out.coords, out.heatmaps, out.logits, out.confidence)


@pytest.mark.parametrize("mode", ["logits", "coords", "heatmaps"])
def test_flip_test_of_equivariant_model_equals_plain_prediction(mode: str) -> None:
    # heatmap matching's maps need its own head (a DSNT head does not merge by raw maps)
    model = TinyModel(MPII_JOINTS.flip_index, equivariant=True, maps=mode == "heatmaps")
    images = torch.rand(2, 3, 32, 32)
    plain = model(images)
    flip = inf.flip_test(model, images, MPII_JOINTS, mode=mode)  # type: ignore[arg-type]
    torch.testing.assert_close(flip.coords, plain.coords, atol=1e-5, rtol=0)
    assert flip.confidence.shape == (2, 16)


@pytest.mark.parametrize("mode", ["logits", "coords", "heatmaps"])
def test_flip_test_of_symmetric_image_is_symmetric(mode: str) -> None:
    model = TinyModel(LSP_JOINTS.flip_index, equivariant=False, seed=1, maps=mode == "heatmaps")
    half = torch.rand(1, 3, 32, 16)
    images = torch.cat([half, torch.flip(half, dims=[-1])], dim=-1)  # its own mirror
    plain = model(images).coords
    mirrored = plain[:, list(LSP_JOINTS.flip_index)] * torch.tensor([-1.0, 1.0])
    assert (plain - mirrored).abs().max() > 0.05  # the model itself is not symmetric
    out = inf.flip_test(model, images, LSP_JOINTS, mode=mode).coords  # type: ignore[arg-type]
    swapped = out[:, list(LSP_JOINTS.flip_index)] * torch.tensor([-1.0, 1.0])
    # arg-max ties: a self-paired joint's averaged map is symmetric, its two peaks equal
    paired = [j for j, k in enumerate(LSP_JOINTS.flip_index) if j != k or mode != "heatmaps"]
    torch.testing.assert_close(out[:, paired], swapped[:, paired], atol=1e-5, rtol=0)


class SignFlippingModel(nn.Module):
    """An ``abs``-activation DSNT model whose logits change sign with the view.

    Every joint's map is one cell of ``+8`` (``-8`` when the right half of the image is the
    brighter) at column 1 of 8, mirrored to column 6 for the mirrored image, on row 2: under
    ``abs`` both views decode to the same mirror-consistent point, but their logits cancel.
    """

    def __init__(self) -> None:
        super().__init__()
        self.head = DSNTHead(None, 16, activation="abs")

    def forward(self, x: Tensor) -> Out:
        half = x.shape[-1] // 2
        sign = torch.sign(x[..., :half].mean((1, 2, 3)) - x[..., half:].mean((1, 2, 3)))
        logits = torch.zeros(x.shape[0], 16, 8, 8)
        for b, s in enumerate(sign.tolist()):
            logits[b, :, 2, 1 if s > 0 else 6] = 8.0 * s
        out = self.head(logits)
        return Out(out.coords, out.heatmaps, out.logits, out.confidence)


def test_abs_activation_flips_by_coordinates_because_its_logits_can_cancel() -> None:
    images = torch.rand(1, 3, 32, 32)
    images[..., :16] += 1.0  # the left half is brighter
    model = SignFlippingModel()
    plain = model(images).coords
    assert plain[0, 0, 0] < -0.5  # column 1 of 8, left of centre
    by_coords = inf.flip_test(model, images, MPII_JOINTS, mode="coords").coords
    torch.testing.assert_close(by_coords, plain, atol=1e-5, rtol=0)
    by_logits = inf.flip_test(model, images, MPII_JOINTS, mode="logits").coords
    assert by_logits.abs().max() < 1e-6  # +8 and -8 averaged to 0: a flat map, the centre
    assert ev.default_flip_mode("dsnt", "abs") == "coords"


@pytest.mark.parametrize(
    ("head", "activation", "mode"),
    [
        ("dsnt", "softmax", "logits"),
        ("dsnt", "sigmoid", "logits"),
        ("dsnt", "relu", "logits"),
        ("dsnt", "abs", "coords"),
        ("heatmap", "softmax", "heatmaps"),
        ("fc", "softmax", "coords"),
    ],
)
def test_default_flip_mode(head: str, activation: str, mode: str) -> None:
    assert ev.default_flip_mode(head, activation) == mode


def test_default_flip_mode_names_an_unknown_head() -> None:
    with pytest.raises(ValueError, match="head: expected 'dsnt', 'heatmap' or 'fc', got 'mlp'"):
        ev.default_flip_mode("mlp")


@pytest.mark.parametrize(
    ("make_head", "mode", "other"),
    [
        (lambda: DSNTHead(None, 16), "logits", "coords"),
        (lambda: DSNTHead(None, 16, activation="abs"), "coords", "logits"),
        (lambda: HeatmapHead(None, 16), "heatmaps", "logits"),
        (lambda: FCHead(None, 16, 8), "coords", "logits"),
    ],
)
def test_flip_test_default_mode_follows_the_models_head(make_head, mode: str, other: str) -> None:
    model = TinyModel(MPII_JOINTS.flip_index, equivariant=False, seed=2)
    model.head = make_head()
    images = torch.rand(2, 3, 32, 32)
    default = inf.flip_test(model, images, MPII_JOINTS).coords
    explicit = inf.flip_test(model, images, MPII_JOINTS, mode=mode).coords  # type: ignore[arg-type]
    torch.testing.assert_close(default, explicit, atol=0, rtol=0)
    if isinstance(model.head, DSNTHead):  # the other mode gives another answer here
        alt = inf.flip_test(model, images, MPII_JOINTS, mode=other).coords  # type: ignore[arg-type]
        assert (alt - default).abs().max() > 1e-4
    else:  # these heads have no logits decode: the default must not pick it
        with pytest.raises(ValueError, match=f"flip_mode: '{other}' does not fit the"):
            inf.flip_test(model, images, MPII_JOINTS, mode=other)  # type: ignore[arg-type]


def test_flip_test_uses_the_heads_activation_and_custom_decode() -> None:
    model = TinyModel(MPII_JOINTS.flip_index, equivariant=True)
    model.head = DSNTHead(None, 16, activation="abs")
    images = torch.rand(1, 3, 32, 32)
    plain = model(images)
    flip = inf.flip_test(model, images, MPII_JOINTS, mode="logits")
    torch.testing.assert_close(flip.coords, plain.coords, atol=1e-5, rtol=0)

    def decode(logits: Tensor) -> tuple[Tensor, Tensor]:
        return torch.zeros(logits.shape[0], logits.shape[1], 2), torch.ones(logits.shape[:2])

    assert inf.flip_test(model, images, MPII_JOINTS, decode=decode).coords.abs().sum() == 0
    with pytest.raises(ValueError, match="joint set lsp has 14"):
        inf.flip_test(model, images, LSP_JOINTS)
    with pytest.raises(ValueError, match="mode: expected"):
        inf.flip_test(model, images, MPII_JOINTS, mode="maps")  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# PCKMetric
# --------------------------------------------------------------------------------------------


def metric_batches(seed: int = 0) -> list[tuple[Tensor, Tensor, Tensor, Tensor]]:
    joints, missing, head = fake_people(60, seed)
    preds = biased_model(joints, head, seed)
    t = [torch.from_numpy(a) for a in (preds, joints, ~missing, head)]
    return [tuple(x[i : i + 20] for x in t) for i in range(0, 60, 20)]  # type: ignore[misc]


def test_pck_metric_accumulates_like_pckh() -> None:
    batches = metric_batches()
    metric = ev.PCKMetric(16, 0.5, total_joints=MPII_JOINTS.pck_total)
    for batch in batches:
        metric.update(*batch)
    got = metric.compute()
    preds, gt, mask, head = (torch.cat(x) for x in zip(*batches))
    ref = ev.pckh(preds, gt, ~mask, head)
    np.testing.assert_allclose(got["per_joint"].numpy(), ref.per_joint, rtol=1e-6)
    assert got["total"].item() == pytest.approx(ref.total, rel=1e-6)
    assert metric.correct.dtype == torch.long
    metric.reset()
    assert metric.total.sum() == 0


def test_pck_metric_states_merge_like_one_metric() -> None:
    batches = metric_batches(seed=1)
    whole, first, second = (ev.PCKMetric(16, 0.5) for _ in range(3))
    for b in batches:
        whole.update(*b)
    first.update(*batches[0])
    for b in batches[1:]:
        second.update(*b)
    first.merge_state(second)  # uses dist_reduce_fx, as DDP's sync does
    torch.testing.assert_close(first.correct, whole.correct)
    torch.testing.assert_close(first.compute()["total"], whole.compute()["total"])


def test_pck_metric_rejects_bad_shapes() -> None:
    metric = ev.PCKMetric(16)
    with pytest.raises(ValueError, match=r"expected \(B, 16, 2\)"):
        metric.update(
            torch.zeros(2, 14, 2), torch.zeros(2, 14, 2), torch.ones(2, 14), torch.ones(2)
        )
    with pytest.raises(ValueError, match=r"mask and norm_size: expected \(2, 16\)"):
        metric.update(torch.zeros(2, 16, 2), torch.zeros(2, 16, 2), torch.ones(2), torch.ones(2))
