"""MPII readers (bearpaw/HRNet json, hourglass h5, official .mat) and the MPII data set."""

import gzip
import json
from pathlib import Path
from typing import Any

import cv2
import h5py
import numpy as np
import pytest
import scipy.io

from dsntpose.data import MPII
from dsntpose.data.mpii import (
    PoseRecords,
    read_mpii,
    read_mpii_h5,
    read_mpii_json,
    read_mpii_mat,
    split_by_valid_h5,
)
from dsntpose.data.transforms import apply_affine
from dsntpose.ops import normalized_to_pixel

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
MPII_DIR = SHARED / "data" / "mpii"
needs_mpii = pytest.mark.skipif(not MPII_DIR.is_dir(), reason="../shared/data/mpii is absent")


# ----------------------------------------------------------------------------- small fixtures


def bearpaw_record(name: str, valid: bool, shift: float = 0.0) -> dict[str, Any]:
    joints = [[100.0 + 10 * j + shift, 200.0 + 5 * j, float(j % 2)] for j in range(16)]
    joints[6] = [0.0, 0.0, 0.0]  # a missing pelvis
    return {
        "img_paths": name,
        "isValidation": float(valid),
        "objpos": [150.0 + shift, 260.0],
        "scale_provided": 2.0,
        "joint_self": joints,
        "annolist_index": 5.0,
        "people_index": 2.0,
    }


def write_image(path: Path, width: int = 400, height: int = 500) -> None:
    image = np.random.default_rng(0).integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    cv2.imwrite(str(path), image)


def test_bearpaw_json_split_frame_and_adjustment(tmp_path: Path) -> None:
    records = [bearpaw_record("a.jpg", False), bearpaw_record("b.jpg", True, 3.0)]
    plain, packed = tmp_path / "annot.json", tmp_path / "annot.json.gz"
    plain.write_text(json.dumps(records))
    with gzip.open(packed, "wt") as file:
        json.dump(records, file)
    for path in (plain, packed):
        valid = read_mpii_json(path, "valid")
        assert valid.image_names == ["b.jpg"]
        # 1-based -> 0-based; centre y + 15 * scale, scale * 1.25.
        assert np.allclose(valid.centers, [[152.0, 259.0 + 30.0]])
        assert np.allclose(valid.scales, [2.5])
        assert np.allclose(valid.joints[0, 0], [102.0, 199.0])
        assert valid.missing[0].tolist() == [j == 6 for j in range(16)]
        assert valid.visible[0, 1] and not valid.visible[0, 0] and not valid.visible[0, 6]
        assert np.isnan(valid.head_sizes).all()
        assert valid.image_index.tolist() == [4] and valid.person_index.tolist() == [1]
        assert read_mpii_json(path, "train").image_names == ["a.jpg"]
        assert len(read_mpii(path, "all")) == 2


def test_hrnet_json_marks_minus_one_as_missing(tmp_path: Path) -> None:
    joints = [[100.0 + j, 200.0] for j in range(16)]
    joints[0] = [-1.0, -1.0]
    record = {
        "image": "a.jpg",
        "center": [150.0, 260.0],
        "scale": 2.0,
        "joints": joints,
        "joints_vis": [1] * 16,
    }
    path = tmp_path / "valid.json"
    path.write_text(json.dumps([record]))
    got = read_mpii_json(path)
    assert got.missing[0].tolist() == [j == 0 for j in range(16)]
    assert np.allclose(got.centers, [[149.0, 289.0]]) and np.allclose(got.scales, [2.5])
    with pytest.raises(ValueError, match=r"isValidation.*split='all'"):
        read_mpii_json(path, "valid")


def test_h5_reader_takes_centre_and_scale_as_they_are(tmp_path: Path) -> None:
    path = tmp_path / "train.h5"
    part = np.tile(np.arange(1.0, 17.0)[:, None], (2, 1, 2))
    part[1, 3] = 0
    with h5py.File(path, "w") as file:
        file["imgname"] = np.array([b"a.jpg", b"b.jpg"])
        file["center"] = np.array([[101.0, 201.0], [51.0, 61.0]])
        file["scale"] = np.array([2.0, 3.0])
        file["part"] = part
        file["normalize"] = np.array([30.0, 40.0])
    got = read_mpii_h5(path)
    assert got.image_names == ["a.jpg", "b.jpg"]
    assert np.allclose(got.centers, [[100.0, 200.0], [50.0, 60.0]]) and np.allclose(
        got.scales, [2.0, 3.0]
    )
    assert np.allclose(got.joints[0, :, 0], np.arange(16.0))
    assert got.missing.sum() == 1 and got.missing[1, 3]
    assert np.allclose(got.head_sizes, [30.0, 40.0])
    assert (got.image_index == -1).all()
    with h5py.File(path, "a") as file:  # image names as 0-padded character codes (Lua/MATLAB)
        del file["imgname"]
        file["imgname"] = np.array([list(b"a.jpg\0\0"), list(b"bb.jpg\0")], dtype=np.uint8)
    assert read_mpii_h5(path).image_names == ["a.jpg", "bb.jpg"]


# ----------------------------------------------------------------------------- official .mat


def struct_array(items: list[dict[str, Any]]) -> np.ndarray:
    """A 1xN MATLAB struct array for ``scipy.io.savemat``."""
    keys = sorted({key for item in items for key in item})
    array = np.zeros((1, len(items)), dtype=[(key, object) for key in keys])
    for i, item in enumerate(items):
        for key in keys:
            array[0, i][key] = item.get(key, np.zeros((0, 0)))
    return array


def person(x0: float, y0: float, ids: list[int], visible: Any = 1) -> dict[str, Any]:
    points = [{"id": j, "x": x0 + j, "y": y0 + 2 * j, "is_visible": visible} for j in ids]
    return {
        "x1": x0, "y1": y0, "x2": x0 + 30.0, "y2": y0 + 40.0,
        "scale": 1.5,
        "objpos": {"x": x0 + 10.0, "y": y0 + 20.0},
        "annopoints": {"point": struct_array(points)},
    }  # fmt: skip


def write_release(path: Path, annolist: list[dict[str, Any]], img_train: list[int]) -> None:
    release = {
        "annolist": struct_array(annolist),
        "img_train": np.array([img_train], dtype=np.uint8),
        "single_person": np.array([[np.zeros((0, 0))] * len(annolist)], dtype=object).T,
        "act": struct_array([{"cat_name": "", "act_name": "", "act_id": -1}] * len(annolist)),
        "version": "12",
    }
    scipy.io.savemat(path, {"RELEASE": release})


def test_official_mat_reader(tmp_path: Path) -> None:
    path = tmp_path / "mpii_human_pose_v1_u12_1.mat"
    annolist = [
        {  # two people, the second without joints (a crowd box): skipped
            "image": {"name": "001.jpg"},
            "annorect": struct_array([person(100.0, 50.0, list(range(16))), {"scale": 1.0}]),
        },
        {  # a test image: skipped
            "image": {"name": "002.jpg"},
            "annorect": struct_array([person(10.0, 10.0, list(range(16)))]),
        },
        {  # one person with a single labelled joint and a string visibility flag
            "image": {"name": "003.jpg"},
            "annorect": struct_array([person(200.0, 300.0, [9], visible="0")]),
        },
    ]
    write_release(path, annolist, [1, 0, 1])
    got = read_mpii_mat(path)
    assert got.image_names == ["001.jpg", "003.jpg"]
    assert got.image_index.tolist() == [0, 2] and got.person_index.tolist() == [0, 0]
    assert np.allclose(got.joints[0, 5], [100.0 + 5 - 1, 50.0 + 10 - 1])
    assert not got.missing[0].any() and got.visible[0].all()
    assert got.missing[1].tolist() == [j != 9 for j in range(16)]
    assert np.allclose(got.joints[1, 9], [208.0, 317.0]) and not got.visible[1, 9]
    assert np.allclose(got.head_sizes, 0.6 * 50.0)
    assert np.allclose(got.centers[0], [109.0, 69.0 + 15 * 1.5]) and np.allclose(got.scales, 1.875)

    valid_h5 = tmp_path / "valid.h5"
    with h5py.File(valid_h5, "w") as file:
        file["imgname"] = np.array([b"003.jpg"])
        file["center"] = np.zeros((1, 2))
        file["scale"] = np.ones(1)
        file["part"] = np.zeros((1, 16, 2))
        file["index"] = np.array([2.0])
        file["person"] = np.array([0.0])
    assert split_by_valid_h5(got, valid_h5, "valid").image_names == ["003.jpg"]
    assert split_by_valid_h5(got, valid_h5, "train").image_names == ["001.jpg"]


def test_official_mat_errors_name_the_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.mat"
    scipy.io.savemat(path, {"something": np.zeros(3)})
    with pytest.raises(ValueError, match=r"bad\.mat.*'RELEASE'"):
        read_mpii_mat(path)
    broken = person(1.0, 1.0, [0, 1])
    broken["annopoints"] = {"point": struct_array([{"id": 0, "x": 3.0}])}  # no y
    write_release(path, [{"image": {"name": "a.jpg"}, "annorect": struct_array([broken])}], [1])
    with pytest.raises(
        ValueError, match=r"bad\.mat.*annolist\(1\)\.annorect\(1\)\.annopoints\.point.*'y'"
    ):
        read_mpii_mat(path)


# ----------------------------------------------------------------------------- errors


def test_malformed_json_names_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "annot.json"
    record = bearpaw_record("a.jpg", False)
    del record["objpos"]
    path.write_text(json.dumps([record]))
    with pytest.raises(ValueError, match=r"annot\.json.*record 0.*'objpos'"):
        read_mpii_json(path)
    record = bearpaw_record("a.jpg", False)
    record["joint_self"] = record["joint_self"][:15]
    path.write_text(json.dumps([record]))
    with pytest.raises(ValueError, match=r"annot\.json.*joint_self.*\(15, 3\).*\(16, 3\)"):
        read_mpii_json(path)
    path.write_text("{not json")
    with pytest.raises(ValueError, match=r"annot\.json.*not a readable json"):
        read_mpii_json(path)
    with pytest.raises(FileNotFoundError, match=r"nothing\.json"):
        read_mpii_json(tmp_path / "nothing.json")
    with pytest.raises(ValueError, match=r"\.txt.*unknown MPII annotation format"):
        read_mpii(tmp_path / "annot.txt")
    with h5py.File(tmp_path / "bad.h5", "w") as file:
        file["imgname"] = np.array([b"a.jpg"])
    with pytest.raises(ValueError, match=r"bad\.h5.*'center'"):
        read_mpii_h5(tmp_path / "bad.h5")


def test_missing_images_raise_or_are_skipped_with_a_count(tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    write_image(images / "a.jpg")
    path = tmp_path / "annot.json"
    path.write_text(json.dumps([bearpaw_record(n, False) for n in ("a.jpg", "b.jpg", "c.jpg")]))
    with pytest.raises(FileNotFoundError, match=r"b\.jpg.*2 of 3 images absent.*skip_missing"):
        MPII(path, images, split="train")
    with pytest.warns(UserWarning, match="skipped 2 of 3 people"):
        data = MPII(path, images, split="train", skip_missing=True)
    assert len(data) == 1 and data[0]["image"].shape == (3, 224, 224)
    (images / "a.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(OSError, match=r"cannot decode image: .*a\.jpg"):
        data[0]
    with pytest.raises(FileNotFoundError, match="image folder"):
        MPII(path, tmp_path / "nowhere", split="train")


def test_sample_dict_from_records(tmp_path: Path) -> None:
    write_image(tmp_path / "a.jpg")
    records = PoseRecords(
        image_names=["a.jpg"],
        centers=np.array([[200.0, 250.0]]),
        scales=np.array([1.5]),
        joints=np.array([[[200.0 + 5 * j, 150.0 + 10 * j] for j in range(16)]]),
        missing=np.array([[j == 15 for j in range(16)]]),
        visible=np.ones((1, 16), bool),
        head_sizes=np.array([33.0]),
        image_index=np.array([-1]),
        person_index=np.array([-1]),
    )
    sample = MPII(records, tmp_path, size=64)[0]
    assert sample["image"].shape == (3, 64, 64) and sample["image"].dtype.is_floating_point
    assert 0.0 <= float(sample["image"].min()) and float(sample["image"].max()) <= 1.0
    assert sample["norm_size"] == 33.0 and sample["index"] == 0
    assert sample["mask"].tolist() == [1.0] * 15 + [0.0]
    # Crop side 200 * 1.5 = 300 px around (200, 250) -> (200, 150) is at normalised (0, -2/3).
    assert np.allclose(sample["joints"][0].numpy(), [0.0, -100 / 150], atol=1e-6)
    assert sample["joints"][15].tolist() == [0.0, 0.0]


# ----------------------------------------------------------------------------- real files


@pytest.fixture(scope="module")
def json_valid() -> PoseRecords:
    return read_mpii_json(MPII_DIR / "mpii_annotations.json.gz", "valid")


@needs_mpii
def test_json_validation_records_equal_valid_h5(json_valid: PoseRecords) -> None:
    h5 = read_mpii_h5(MPII_DIR / "valid.h5")
    assert len(json_valid) == len(h5) == 2958
    assert json_valid.image_names == h5.image_names  # same order
    assert np.array_equal(json_valid.image_index, h5.image_index)
    assert np.array_equal(json_valid.person_index, h5.person_index)
    assert np.array_equal(json_valid.missing, h5.missing)
    ok = ~h5.missing
    assert np.abs(json_valid.joints[ok] - h5.joints[ok]).max() <= 1.0
    # valid.h5 holds the adjusted box; the json's is adjusted on reading (json scales have 3
    # decimals, so 15 * 0.0005 px is the tolerance); never twice.
    assert np.abs(json_valid.centers - h5.centers).max() < 0.01
    assert np.abs(json_valid.scales - h5.scales).max() < 1e-3
    assert np.isnan(json_valid.head_sizes).all() and (h5.head_sizes > 0).all()


@needs_mpii
@pytest.mark.slow
def test_json_train_split_is_disjoint(json_valid: PoseRecords) -> None:
    train = read_mpii_json(MPII_DIR / "mpii_annotations.json.gz", "train")
    assert len(train) == 22246 and len(set(train.image_names)) == 14679
    assert not set(json_valid.image_names) & set(train.image_names)
    assert train.missing.sum() == 23913


@needs_mpii
def test_sample_frames_crop_with_every_joint_inside(json_valid: PoseRecords) -> None:
    folder = MPII_DIR / "sample_images"
    data = MPII(folder / "test_mpii.json", folder, size=256)
    assert len(data) == 5
    h5 = read_mpii_h5(MPII_DIR / "valid.h5")
    for i in range(len(data)):
        sample = data[i]
        missing = sample["joints_missing"].numpy()
        assert missing.sum() < 16
        assert sample["mask"].numpy().tolist() == (~missing).astype(float).tolist()  # all inside
        assert np.abs(sample["joints"].numpy()).max() < 1.0
        assert 0.05 < float(sample["image"].std())  # a real picture, not the border fill
        back = apply_affine(
            sample["inverse"].numpy(),
            normalized_to_pixel(sample["joints"].numpy().astype(float), (256, 256)),
        )
        assert np.abs(back[~missing] - sample["joints_image"].numpy()[~missing]).max() < 1e-3
        # The HRNet json's people are valid.h5 rows: same adjusted box, joints within 1 px.
        name = data.records.image_names[i]
        rows = [r for r, n in enumerate(h5.image_names) if n == name]
        row = min(rows, key=lambda r: np.abs(h5.centers[r] - data.records.centers[i]).sum())
        assert np.abs(h5.centers[row] - data.records.centers[i]).max() < 0.01
        assert abs(h5.scales[row] - data.records.scales[i]) < 1e-3
        assert np.array_equal(h5.missing[row], missing)
        assert np.abs(h5.joints[row][~missing] - data.records.joints[i][~missing]).max() <= 1.0
