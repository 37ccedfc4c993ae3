"""COCO keypoints: joint sets from categories, crop samples, LSP export, OKS AP via COCOeval."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from dsntpose.data.coco import (
    COCO_KEYPOINT_NAMES,
    COCO_SIGMAS,
    LSP_SIGMAS,
    STAT_NAMES,
    COCOKeypoints,
    evaluate_coco,
    joint_set_from_category,
    lsp_to_coco,
    read_coco,
    to_coco_results,
)
from dsntpose.data.joints import LSP_JOINTS
from dsntpose.data.transforms import apply_affine

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
LSP_ROOT = SHARED / "data" / "lsp"

NAMES = ["nose", "left_hand", "right_hand", "l_foot", "r_foot"]
CATEGORY = {
    "id": 1,
    "name": "person",
    "keypoints": NAMES,
    "skeleton": [[1, 2], [1, 3], [2, 4], [4, 5]],
}
SIGMAS = [0.05, 0.06, 0.06, 0.08, 0.08]


def write_coco(tmp_path: Path) -> tuple[Path, dict]:
    """Two images (written with cv2) and four annotations: two people, a crowd, an empty one."""
    (tmp_path / "img").mkdir()
    first = np.zeros((100, 120, 3), np.uint8)
    first[60, 40] = 255  # a bright pixel on person 1's nose
    cv2.imwrite(str(tmp_path / "img" / "a.png"), first)
    cv2.imwrite(str(tmp_path / "img" / "b.png"), np.zeros((80, 90, 3), np.uint8))
    data = {
        "images": [
            {"id": 7, "file_name": "a.png", "width": 120, "height": 100},
            {"id": 9, "file_name": "b.png", "width": 90, "height": 80},
        ],
        "annotations": [
            {"id": 1, "image_id": 7, "category_id": 1, "iscrowd": 0, "bbox": [20, 30, 40, 60],
             "area": 2400.0, "num_keypoints": 4,
             "keypoints": [40, 60, 2, 25, 40, 1, 55, 40, 2, 30, 85, 2, 0, 0, 0]},
            {"id": 2, "image_id": 9, "category_id": 1, "iscrowd": 0, "bbox": [10, 10, 50, 30],
             "area": 1500.0, "num_keypoints": 5,
             "keypoints": [35, 20, 2, 15, 15, 2, 55, 15, 2, 20, 35, 2, 50, 35, 2]},
            {"id": 3, "image_id": 9, "category_id": 1, "iscrowd": 1, "bbox": [60, 40, 20, 30],
             "area": 600.0, "num_keypoints": 0, "keypoints": [0] * 15},
            {"id": 4, "image_id": 7, "category_id": 1, "iscrowd": 0, "bbox": [90, 5, 20, 20],
             "area": 400.0, "num_keypoints": 0, "keypoints": [0] * 15},
        ],
        "categories": [CATEGORY],
    }  # fmt: skip
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(data))
    return path, data


def test_joint_set_from_a_category() -> None:
    js = joint_set_from_category(CATEGORY)
    assert js.names == tuple(NAMES) and js.name == "person"
    assert js.flip_index == (0, 2, 1, 4, 3)  # left_/right_ and l_/r_ partners swap
    assert js.skeleton == ((0, 1), (0, 2), (1, 3), (3, 4))  # 1-based pairs made 0-based
    # left_hand-l_foot is a left edge, the others join two sides or the centre
    assert js.colors[0] == js.colors[1] == js.colors[3] != js.colors[2]
    assert js.pck_groups == {"Nose": (0,), "Hand": (1, 2), "Foot": (3, 4)}
    assert js.torso == (0, 0)  # no shoulders or hips
    coco = joint_set_from_category({"name": "person", "keypoints": list(COCO_KEYPOINT_NAMES)})
    assert coco.name == "coco" and coco.torso == (6, 11)
    assert coco.flip_index[:5] == (0, 2, 1, 4, 3)
    assert joint_set_from_category({"keypoints": list(LSP_JOINTS.names)}) is LSP_JOINTS
    with pytest.raises(ValueError, match="repeated keypoint names"):
        joint_set_from_category({"name": "x", "keypoints": ["a", "a"]})
    with pytest.raises(ValueError, match="skeleton pair out of range for 2 keypoints"):
        joint_set_from_category({"name": "x", "keypoints": ["a", "b"], "skeleton": [[1, 3]]})
    with pytest.raises(ValueError, match="'keypoints' must be a non-empty list"):
        joint_set_from_category({"name": "x"})


def test_dataset_crops_people_from_their_boxes(tmp_path: Path) -> None:
    path, _ = write_coco(tmp_path)
    ds = COCOKeypoints(path, tmp_path / "img", size=32)
    # the crowd and the person without keypoints are not samples
    assert len(ds) == 2 and ds.annotation_ids.tolist() == [1, 2] and ds.image_ids.tolist() == [7, 9]
    sample = ds[0]
    assert set(sample) == {
        "image", "joints", "mask", "index", "inverse", "joints_image", "joints_missing", "norm_size"
    }  # fmt: skip
    assert sample["image"].shape == (3, 32, 32) and sample["joints"].shape == (5, 2)
    assert sample["joints_missing"].tolist() == [False, False, False, False, True]
    assert sample["mask"].tolist() == [1, 1, 1, 1, 0]
    assert math.isnan(sample["joints_image"][4, 0]) and math.isnan(sample["norm_size"])
    np.testing.assert_allclose(
        sample["joints_image"][:4].numpy(), [[40, 60], [25, 40], [55, 40], [30, 85]]
    )
    # crop: 1.25 x the box's longer side (60 px) around the box centre (39.5, 59.5)
    inverse = sample["inverse"].numpy()
    np.testing.assert_allclose(apply_affine(inverse, [15.5, 15.5]), [39.5, 59.5])
    np.testing.assert_allclose(inverse[0, 0], 75 / 32)
    # normalised joints go back onto the image joints through the inverse
    crop_px = ((sample["joints"][:4].double() + 1) * 32 - 1) / 2
    np.testing.assert_allclose(
        apply_affine(inverse, crop_px.numpy()), sample["joints_image"][:4].numpy(), atol=1e-5
    )
    # the bright pixel at the nose lands at the nose's crop position
    x, y = crop_px[0].round().long().tolist()
    assert sample["image"][:, y - 1 : y + 2, x - 1 : x + 2].max() > 0.05
    assert ds[1]["mask"].tolist() == [1, 1, 1, 1, 1]
    assert ds[1]["index"] == 1 and isinstance(ds[1]["image"], torch.Tensor)
    # min_keypoints=0 keeps the person without keypoints (cropped from its box), not the crowd
    assert len(COCOKeypoints(path, tmp_path / "img", size=32, min_keypoints=0)) == 3


def test_bad_annotation_files_name_the_field(tmp_path: Path) -> None:
    path, data = write_coco(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"nope\.json does not exist"):
        read_coco(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ValueError, match=r"bad\.json: not JSON"):
        read_coco(tmp_path / "bad.json")
    with pytest.raises(ValueError, match="field 'images' must be a list"):
        read_coco({"annotations": [], "categories": []})
    broken = json.loads(json.dumps(data))
    broken["annotations"][0]["keypoints"] = [1, 2, 3]
    with pytest.raises(ValueError, match="annotation 1: keypoints must be a list of 3 x J"):
        read_coco(broken)
    broken = json.loads(json.dumps(data))
    broken["annotations"][0]["image_id"] = 99
    with pytest.raises(ValueError, match="annotation 1 has no image_id"):
        read_coco(broken)
    (tmp_path / "img" / "b.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"b\.png"):
        COCOKeypoints(path, tmp_path / "img")
    with pytest.warns(UserWarning, match="skipped the people of 1 absent images"):
        assert len(COCOKeypoints(path, tmp_path / "img", skip_missing=True)) == 1


def gt_results(data: dict, shift: float = 0.0) -> list[dict]:
    """The ground truth's non-crowd people as results, every labelled keypoint moved by shift px."""
    results = []
    for ann in data["annotations"]:
        if ann["iscrowd"] or not ann["num_keypoints"]:
            continue
        kps = np.array(ann["keypoints"], float).reshape(-1, 3)
        kps[:, 0] += shift
        kps[:, 2] = 1.0
        results.append({"image_id": ann["image_id"], "category_id": 1,
                        "keypoints": kps.reshape(-1).tolist(), "score": 0.9})  # fmt: skip
    return results


def oks(ann: dict, shift: float, sigmas: list[float]) -> float:
    """Object keypoint similarity of a copy of ``ann`` moved by ``shift`` px (COCO's formula)."""
    v = np.array(ann["keypoints"], float).reshape(-1, 3)[:, 2] > 0
    k = 2 * np.asarray(sigmas)
    return float(np.mean(np.exp(-(shift**2) / (2 * ann["area"] * k[v] ** 2))))


def test_perfect_predictions_score_1_and_shifted_ones_what_oks_says(tmp_path: Path) -> None:
    path, data = write_coco(tmp_path)
    perfect = evaluate_coco(path, gt_results(data), sigmas=SIGMAS)
    assert list(perfect) == list(STAT_NAMES)
    assert perfect["AP"] == pytest.approx(1.0) and perfect["AR"] == pytest.approx(1.0)
    assert perfect["AP50"] == pytest.approx(1.0) and perfect["APl"] == -1  # no person > 96² px
    # one person, shifted: AP is the share of the thresholds 0.50, 0.55 ... 0.95 its OKS reaches
    one = json.loads(json.dumps(data))
    one["annotations"] = [data["annotations"][1]]
    for shift in (3.0, 4.5, 8.0):  # OKS 0.83, 0.66, 0.29
        value = oks(one["annotations"][0], shift, SIGMAS)
        reached = sum(t <= value + 1e-12 for t in np.linspace(0.5, 0.95, 10))
        stats = evaluate_coco(one, gt_results(one, shift), sigmas=SIGMAS)
        assert stats["AP"] == pytest.approx(reached / 10), (shift, value)
        assert stats["AP50"] == pytest.approx(1.0 if value >= 0.5 else 0.0)
    # the sigmas are really used: larger ones forgive the same shift
    strict = evaluate_coco(one, gt_results(one, 5.0), sigmas=SIGMAS)["AP"]
    lenient = evaluate_coco(one, gt_results(one, 5.0), sigmas=[3 * s for s in SIGMAS])["AP"]
    assert strict < lenient
    results_file = tmp_path / "res.json"
    results_file.write_text(json.dumps(gt_results(data, 5.0)))
    assert evaluate_coco(path, results_file, SIGMAS)["AP"] < 1.0
    assert evaluate_coco(path, [], SIGMAS)["AP"] == 0.0
    # image_ids: only image 7, whose person is predicted exactly
    mixed = gt_results(data)[:1] + gt_results(data, 8.0)[1:]
    assert evaluate_coco(path, mixed, SIGMAS)["AP"] < 1.0
    assert evaluate_coco(path, mixed, SIGMAS, image_ids=[7])["AP"] == pytest.approx(1.0)


def test_evaluate_coco_refuses_what_does_not_fit(tmp_path: Path) -> None:
    path, data = write_coco(tmp_path)
    good = gt_results(data)
    with pytest.raises(ValueError, match="pass sigmas: 5 keypoints"):
        evaluate_coco(path, good)
    with pytest.raises(ValueError, match="sigmas must be 5 positive numbers"):
        evaluate_coco(path, good, sigmas=[0.1] * 4)
    no_area = json.loads(json.dumps(data))
    del no_area["annotations"][1]["area"]
    with pytest.raises(ValueError, match=r"annotation 2 of image 9 lacks \['area'\]"):
        evaluate_coco(no_area, good, SIGMAS)
    bad = [dict(good[0], image_id=123)]
    with pytest.raises(ValueError, match="image_id 123 is not in the ground truth"):
        evaluate_coco(path, bad, SIGMAS)
    bad = [dict(good[0], keypoints=[1.0] * 12)]
    with pytest.raises(ValueError, match=r"must hold 15 numbers"):
        evaluate_coco(path, bad, SIGMAS)
    bad = [dict(good[0], keypoints=[float("nan")] * 15)]
    with pytest.raises(ValueError, match="must be finite"):
        evaluate_coco(path, bad, SIGMAS)


def test_to_coco_results() -> None:
    kp = np.array([[[1.0, 2.0], [np.nan, 4.0]], [[np.nan, np.nan], [np.nan, np.nan]]])
    conf = np.array([[0.5, 0.9], [0.1, 0.1]])
    (row,) = to_coco_results(kp, conf, [3, 4], category_id=2)  # the all-NaN person is left out
    assert row == {
        "image_id": 3,
        "category_id": 2,
        "keypoints": [1.0, 2.0, 0.5, 0, 0, 0],
        "score": 0.25,
    }
    with pytest.raises(TypeError, match="complex"):
        to_coco_results(kp.astype(complex), conf, [3, 4])
    with pytest.raises(ValueError, match=r"keypoints must be \(N, J, 2\)"):
        to_coco_results(kp[0], conf, [3, 4])


def write_fake_lsp(root: Path, num: int = 3) -> np.ndarray:
    import scipy.io

    (root / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    joints = np.zeros((3, 14, num))
    for i in range(num):
        cv2.imwrite(
            str(root / "images" / f"im{i + 1:04d}.jpg"), np.zeros((90 + i, 70, 3), np.uint8)
        )
        joints[0, :, i] = rng.uniform(10, 60, 14) + 1  # 1-based
        joints[1, :, i] = rng.uniform(10, 80, 14) + 1
        joints[2, :, i] = rng.integers(0, 2, 14)  # 1 = occluded
    scipy.io.savemat(root / "joints.mat", {"joints": joints})
    return joints


def test_lsp_to_coco_round_trip(tmp_path: Path) -> None:
    joints = write_fake_lsp(tmp_path / "lsp")
    out = tmp_path / "out" / "lsp.json"
    data = lsp_to_coco(tmp_path / "lsp", "all", out)
    assert json.loads(out.read_text()) == data
    assert [im["id"] for im in data["images"]] == [1, 2, 3]
    assert data["images"][1] == {"id": 2, "file_name": "im0002.jpg", "width": 70, "height": 91}
    (cat,) = data["categories"]
    assert cat["keypoints"] == list(LSP_JOINTS.names) and [3, 9] in cat["skeleton"]
    ann = data["annotations"][0]
    kps = np.array(ann["keypoints"]).reshape(14, 3)
    np.testing.assert_allclose(kps[:, :2], joints[:2, :, 0].T - 1, atol=1e-4)
    assert kps[:, 2].tolist() == [1 if o else 2 for o in joints[2, :, 0]]
    low = joints[:2, :, 0].min(axis=1) - 1
    np.testing.assert_allclose(ann["bbox"][:2], low, atol=1e-4)
    assert ann["area"] == pytest.approx(ann["bbox"][2] * ann["bbox"][3], rel=1e-6)
    assert ann["num_keypoints"] == 14 and ann["iscrowd"] == 0
    ds = COCOKeypoints(out, tmp_path / "lsp" / "images", size=32)
    assert ds.joint_set is LSP_JOINTS and len(ds) == 3
    np.testing.assert_allclose(ds.joints[2], joints[:2, :, 2].T - 1, atol=1e-4)
    stats = evaluate_coco(out, gt_results(data))  # LSP's sigmas are the default
    assert stats["AP"] == pytest.approx(1.0)
    assert evaluate_coco(out, gt_results(data, 4.0))["AP"] < 1.0
    with pytest.raises(ValueError, match="standard split needs 2000"):
        lsp_to_coco(tmp_path / "lsp", "test")


def test_lsp_sigmas_follow_coco_where_joints_correspond() -> None:
    coco = dict(zip(COCO_KEYPOINT_NAMES, COCO_SIGMAS))
    for j, name in enumerate(LSP_JOINTS.names[:12]):
        side = {"r": "right", "l": "left"}[name[0]]
        assert LSP_SIGMAS[j] == coco[f"{side}_{name[2:]}"], name
    assert len(LSP_SIGMAS) == 14


@pytest.mark.skipif(not (LSP_ROOT / "joints.mat").is_file(), reason="no ../shared/data/lsp")
def test_real_lsp_exported_to_coco(tmp_path: Path) -> None:
    from dsntpose.data.lsp import LSP

    data = lsp_to_coco(LSP_ROOT, "test", tmp_path / "lsp_test.json")
    assert len(data["images"]) == 1000 and data["images"][0]["id"] == 1001
    ds = COCOKeypoints(tmp_path / "lsp_test.json", LSP_ROOT / "images", size=64)
    lsp = LSP(LSP_ROOT, "test", size=64)
    assert len(ds) == len(lsp) == 1000
    np.testing.assert_allclose(ds.joints, lsp.joints, atol=1e-3)
    np.testing.assert_array_equal(ds.missing, lsp.missing)
    np.testing.assert_allclose(
        ds[5]["joints_image"].numpy(), lsp[5]["joints_image"].numpy(), atol=1e-3
    )
    assert evaluate_coco(data, gt_results(data))["AP"] == pytest.approx(1.0)
    shifted = evaluate_coco(data, gt_results(data, 3.0))
    assert 0.0 < shifted["AP"] < 1.0 and shifted["AP50"] >= shifted["AP75"]
