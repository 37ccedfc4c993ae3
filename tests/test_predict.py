"""predict(): crops, model, flip test and back-projection land keypoints on the right pixels."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch import Tensor, nn

from dsntpose.config import ModelConfig
from dsntpose.heads import DSNTHead
from dsntpose.model import CoordRegressionModel, build_model, save_model
from dsntpose.predict import list_images, predict, read_boxes

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
SIZE = 64


class Brightness(nn.Module):
    """A weight-free 'backbone': ``gain`` x the grey level, copied to every joint's map.

    With a DSNT head (``in_channels=None``) every joint is predicted at the centroid of the
    softmax of the brightness, i.e. on a bright blob: a model whose right answer is known.
    """

    def __init__(self, num_joints: int = 16, gain: float = 30.0) -> None:
        super().__init__()
        self.num_joints, self.gain = num_joints, gain

    def forward(self, images: Tensor) -> Tensor:
        grey = images.mean(dim=1, keepdim=True) * self.gain
        return grey.expand(-1, self.num_joints, -1, -1)


def blob_model(num_joints: int = 16) -> CoordRegressionModel:
    return CoordRegressionModel(Brightness(num_joints), DSNTHead(None, num_joints)).eval()


BLOB_CONFIG = ModelConfig(backbone="resnet18", joints="mpii", input_size=SIZE)


def blob_image(height: int, width: int, x: float, y: float, sigma: float = 2.5) -> np.ndarray:
    """A black RGB image with a white Gaussian blob centred on pixel coordinates (x, y)."""
    xs, ys = np.arange(width)[None, :], np.arange(height)[:, None]
    blob = np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma**2))
    return np.repeat(np.rint(255 * blob).astype(np.uint8)[..., None], 3, axis=2)


def write_rgb(path: Path, image: np.ndarray) -> Path:
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return path


def keypoints_xy(person: dict) -> np.ndarray:
    return np.array([[k["x"], k["y"]] for k in person["keypoints"]])


@pytest.mark.parametrize("flip", [False, True])
def test_whole_image_keypoints_land_on_the_blob(tmp_path: Path, flip: bool) -> None:
    path = write_rgb(tmp_path / "a.png", blob_image(60, 100, 70.3, 20.6))
    result = predict(blob_model(), [path], config=BLOB_CONFIG, flip=flip)
    assert result.errors == []
    (person,) = result.people
    x, y, w, h = person["box"]  # no box given: the box of the joints found
    assert person["image"] == str(path)
    assert x - 0.3 <= 70.3 <= x + w + 0.3 and y - 0.3 <= 20.6 <= y + h + 0.3
    assert [k["name"] for k in person["keypoints"]][:2] == ["r_ankle", "r_knee"]
    # found on the whole image (100 px squeezed into 64 px), then refined on a crop around it
    np.testing.assert_allclose(keypoints_xy(person), np.tile([70.3, 20.6], (16, 1)), atol=0.3)
    assert all(0 <= k["confidence"] <= 1 for k in person["keypoints"])
    assert person["score"] == pytest.approx(
        np.mean([k["confidence"] for k in person["keypoints"]]), abs=1e-3
    )


def test_boxes_crop_around_each_person(tmp_path: Path) -> None:
    image = np.maximum(blob_image(120, 200, 40.0, 50.0), blob_image(120, 200, 150.25, 80.75))
    path = write_rgb(tmp_path / "two.png", image)
    boxes = {"two.png": [[20, 30, 40, 40], [130, 60, 40, 40]]}
    result = predict(blob_model(), path, boxes, config=BLOB_CONFIG, margin=1.25, batch_size=1)
    assert [p["person"] for p in result.people] == [0, 1]
    np.testing.assert_allclose(
        keypoints_xy(result.people[0]), np.tile([40.0, 50.0], (16, 1)), atol=0.15
    )
    np.testing.assert_allclose(
        keypoints_xy(result.people[1]), np.tile([150.25, 80.75], (16, 1)), atol=0.15
    )


def test_single_box_for_every_image_and_batches_across_images(tmp_path: Path) -> None:
    paths = [write_rgb(tmp_path / f"{i}.png", blob_image(50, 50, 20.0 + i, 25.0)) for i in range(5)]
    result = predict(blob_model(), tmp_path, (5, 5, 40, 40), config=BLOB_CONFIG, batch_size=2)
    assert [p["image"] for p in result.people] == [str(p) for p in paths]
    for i, person in enumerate(result.people):
        np.testing.assert_allclose(keypoints_xy(person)[0], [20.0 + i, 25.0], atol=0.15)


def test_box_partly_outside_is_padded_not_an_error(tmp_path: Path) -> None:
    path = write_rgb(tmp_path / "edge.png", blob_image(50, 50, 5.0, 25.0))
    result = predict(blob_model(), path, (-20, 5, 40, 40), config=BLOB_CONFIG)
    np.testing.assert_allclose(keypoints_xy(result.people[0])[0], [5.0, 25.0], atol=0.15)


def test_bad_files_are_reported_at_the_end_and_the_rest_predicted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    good = write_rgb(tmp_path / "b_good.png", blob_image(40, 40, 10.0, 30.0))
    (tmp_path / "a_broken.jpg").write_text("not an image")
    outside = write_rgb(tmp_path / "c_outside.png", blob_image(40, 40, 10.0, 30.0))
    boxes = {
        "a_broken.jpg": [0, 0, 10, 10],
        "b_good.png": [0, 0, 40, 40],
        "c_outside.png": [50, 0, 10, 10],
    }
    with caplog.at_level(logging.WARNING, logger="dsntpose.predict"):
        result = predict(
            blob_model(), [tmp_path, tmp_path / "missing.png"], boxes, config=BLOB_CONFIG
        )
    assert [p["image"] for p in result.people] == [str(good)]
    errors = {Path(e["image"]).name: e["error"] for e in result.errors}
    assert set(errors) == {"a_broken.jpg", "c_outside.png", "missing.png"}
    assert "cannot decode" in errors["a_broken.jpg"]
    assert (
        "outside the 40x40 image" in errors["c_outside.png"]
        and str(outside) in errors["c_outside.png"]
    )
    assert "not found" in errors["missing.png"]
    assert all("\n" not in message for message in errors.values())
    assert "3 of 4 images failed" in caplog.text


def test_strict_raises_at_the_first_bad_image(tmp_path: Path) -> None:
    (tmp_path / "broken.png").write_bytes(b"\x89PNG nonsense")
    with pytest.raises(OSError, match=r"broken\.png"):
        predict(blob_model(), tmp_path / "broken.png", config=BLOB_CONFIG, strict=True)


def test_image_missing_from_the_boxes_file_is_an_error(tmp_path: Path) -> None:
    write_rgb(tmp_path / "x.png", blob_image(20, 20, 5.0, 5.0))
    boxes_file = tmp_path / "boxes.json"
    boxes_file.write_text(json.dumps({"y.png": [[0, 0, 5, 5]]}))
    result = predict(blob_model(), tmp_path / "x.png", boxes_file, config=BLOB_CONFIG)
    assert result.people == []
    assert result.errors[0]["error"] == f"no boxes for x.png in {boxes_file}"


def test_read_boxes_forms_and_errors(tmp_path: Path) -> None:
    assert read_boxes(
        {"a.jpg": [1, 2, 3, 4], "b.jpg": [[0, 0, 5, 5], [1, 1, 2, 2]], "c.jpg": []}
    ) == {
        "a.jpg": [(1.0, 2.0, 3.0, 4.0)],
        "b.jpg": [(0.0, 0.0, 5.0, 5.0), (1.0, 1.0, 2.0, 2.0)],
        "c.jpg": [],
    }
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match=r"bad\.json: not JSON"):
        read_boxes(bad)
    with pytest.raises(FileNotFoundError, match="boxes file"):
        read_boxes(tmp_path / "nope.json")
    with pytest.raises(ValueError, match=r"width and height must be > 0"):
        read_boxes({"a.jpg": [0, 0, 0, 5]})
    with pytest.raises(ValueError, match=r"4 finite numbers"):
        read_boxes({"a.jpg": [0, 0, 5]})
    with pytest.raises(ValueError, match="expected"):
        read_boxes({"a.jpg": 3})


def test_list_images(tmp_path: Path) -> None:
    for name in ("b.png", "a.JPG", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in list_images(tmp_path)] == ["a.JPG", "b.png"]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="no image files"):
        list_images(empty)


def test_checkpoint_round_trip_and_joint_set_check(tmp_path: Path) -> None:
    cfg = ModelConfig(backbone="resnet18", output_stride=32, joints="lsp", input_size=64)
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    ckpt = save_model(model, tmp_path / "lsp.ckpt", cfg)
    path = write_rgb(tmp_path / "im.png", blob_image(48, 32, 10.0, 10.0))
    from_ckpt = predict(ckpt, path, joints="lsp", flip=False)
    from_model = predict(model, path, config=cfg, flip=False)
    assert len(from_ckpt.people[0]["keypoints"]) == 14
    np.testing.assert_allclose(
        keypoints_xy(from_ckpt.people[0]), keypoints_xy(from_model.people[0]), atol=1e-3
    )
    with pytest.raises(ValueError, match=r"lsp\.ckpt: checkpoint is for 14 joints"):
        predict(ckpt, path, joints="mpii")


def test_model_for_another_joint_set_than_its_config_is_an_error(tmp_path: Path) -> None:
    path = write_rgb(tmp_path / "im.png", blob_image(20, 20, 5.0, 5.0))
    with pytest.raises(ValueError, match="predicts 14 joints, joint set mpii has 16"):
        predict(blob_model(14), path, config=BLOB_CONFIG)
    with pytest.raises(ValueError, match="needs its ModelConfig"):
        predict(blob_model(), path)
    with pytest.raises(ValueError, match="not both"):
        predict(blob_model(), path, config=BLOB_CONFIG, onnx=tmp_path / "m.onnx")


def test_draw_dir_upscales_small_images_and_adds_a_legend(tmp_path: Path) -> None:
    path = write_rgb(tmp_path / "in.png", blob_image(80, 80, 30.0, 40.0, sigma=1.5))
    out = tmp_path / "drawn"
    result = predict(blob_model(), path, config=BLOB_CONFIG, draw_dir=out, flip=False)
    drawn = cv2.cvtColor(cv2.imread(str(out / "in_pose.png")), cv2.COLOR_BGR2RGB)
    scale = 512 / 80  # the 80 px image is drawn 512 px high, the legend panel to its right
    assert drawn.shape[0] == 512 and drawn.shape[1] > 512
    x, y = keypoints_xy(result.people[0])[9]  # head_top, drawn last at the same place as all
    px, py = (x + 0.5) * scale - 0.5, (y + 0.5) * scale - 0.5
    pixel = drawn[round(py), round(px)].astype(int)
    assert abs(pixel[0] - pixel[1]) > 40  # coloured, not the white blob
    legend = drawn[:, 520:]
    assert legend.max() > 100 and (legend.std(axis=2) > 20).any()  # coloured text in the panel
    assert not drawn[:, 513:].any(axis=2)[400:].any()  # the panel's foot stays black


def test_drawings_of_images_with_the_same_stem_do_not_overwrite(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = write_rgb(tmp_path / "a" / "im.png", blob_image(40, 40, 10.0, 10.0))
    second = write_rgb(tmp_path / "b" / "im.png", blob_image(40, 40, 30.0, 30.0))
    out = tmp_path / "drawn"
    predict(blob_model(), [first, second], config=BLOB_CONFIG, draw_dir=out, batch_size=1)
    assert sorted(p.name for p in out.iterdir()) == ["im_2_pose.png", "im_pose.png"]
    a = cv2.imread(str(out / "im_pose.png"))
    b = cv2.imread(str(out / "im_2_pose.png"))
    assert not np.array_equal(a, b)


def test_no_boxes_warns_that_the_whole_image_is_one_person(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_rgb(tmp_path / "a.png", blob_image(30, 30, 10.0, 10.0))
    with caplog.at_level(logging.WARNING, logger="dsntpose.predict"):
        predict(blob_model(), path, config=BLOB_CONFIG)
    assert "whole image is taken as one person" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="dsntpose.predict"):
        predict(blob_model(), path, (0, 0, 30, 30), config=BLOB_CONFIG)
    assert "whole image" not in caplog.text


def jpeg_bytes(image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", image)
    assert ok
    return buf.tobytes()


def test_truncated_corrupt_and_huge_images_are_errors_for_that_image(tmp_path: Path) -> None:
    good = write_rgb(tmp_path / "a_good.png", blob_image(40, 40, 10.0, 30.0))
    data = jpeg_bytes(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    (tmp_path / "b_truncated.jpg").write_bytes(data[: len(data) // 2])
    (tmp_path / "c_corrupt.jpg").write_bytes(data[:2] + b"\xff\xe0\x00\x02" + data[200:])
    # a PNG header (signature + IHDR) claiming 60000 x 60000 px and nothing else
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", 60000, 60000, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", 13) + b"IHDR" + ihdr
    chunk += struct.pack(">I", zlib.crc32(b"IHDR" + ihdr) & 0xFFFFFFFF)
    (tmp_path / "d_huge.png").write_bytes(b"\x89PNG\r\n\x1a\n" + chunk)
    result = predict(blob_model(), tmp_path, (0, 0, 40, 40), config=BLOB_CONFIG)
    assert [p["image"] for p in result.people] == [str(good)]
    errors = {Path(e["image"]).name: e["error"] for e in result.errors}
    assert set(errors) == {"b_truncated.jpg", "c_corrupt.jpg", "d_huge.png"}
    assert "truncated JPEG" in errors["b_truncated.jpg"]
    assert "corrupt JPEG" in errors["c_corrupt.jpg"]
    assert "60000x60000" in errors["d_huge.png"] and "exceeds" in errors["d_huge.png"]
    assert all("\n" not in m and str(tmp_path) in m for m in errors.values())
    # the untouched JPEG is fine
    (tmp_path / "e_whole.jpg").write_bytes(data)
    assert not predict(blob_model(), tmp_path / "e_whole.jpg", config=BLOB_CONFIG).errors


class Broken(nn.Module):
    """Wraps a model and corrupts its coordinates: NaN for some joints, or complex values."""

    def __init__(self, model: nn.Module, how: str) -> None:
        super().__init__()
        self.model, self.how = model, how

    def forward(self, images: Tensor):
        out = self.model(images)
        coords = out.coords.clone()
        if self.how == "nan":
            coords[:, :3] = float("nan")
            return out._replace(coords=coords)
        return out._replace(coords=coords.to(torch.complex64))


def test_nan_outputs_are_written_as_null_and_reported(tmp_path: Path) -> None:
    path = write_rgb(tmp_path / "a.png", blob_image(30, 30, 10.0, 10.0))
    out = tmp_path / "people.json"
    result = predict(
        Broken(blob_model(), "nan"), path, config=BLOB_CONFIG, flip=False, output=out,
        coco_output=tmp_path / "coco.json",
    )  # fmt: skip
    keypoints = result.people[0]["keypoints"]
    assert [k["x"] for k in keypoints[:3]] == [None, None, None] and keypoints[3]["x"] is not None
    assert "3 of 16 joints are not finite" in result.errors[0]["error"]
    text = out.read_text()
    assert "NaN" not in text
    assert json.loads(text)["people"][0]["keypoints"][0]["y"] is None  # strict JSON
    coco = json.loads((tmp_path / "coco.json").read_text())
    assert coco[0]["keypoints"][:9] == [0, 0, 0] * 3 and "NaN" not in json.dumps(coco)
    assert "NaN" not in result.to_json()


def test_complex_predictions_are_refused(tmp_path: Path) -> None:
    path = write_rgb(tmp_path / "a.png", blob_image(30, 30, 10.0, 10.0))
    with pytest.raises(TypeError, match="complex coords"):
        predict(Broken(blob_model(), "complex"), path, config=BLOB_CONFIG, flip=False)


def test_boxes_from_coco_detections_with_threshold_and_id_mapping(tmp_path: Path) -> None:
    image = np.maximum(blob_image(120, 200, 40.0, 50.0), blob_image(120, 200, 150.25, 80.75))
    write_rgb(tmp_path / "17.png", image)
    write_rgb(tmp_path / "photo.png", blob_image(60, 60, 20.0, 30.0))
    detections = [
        {"image_id": 17, "category_id": 1, "bbox": [130, 60, 40, 40], "score": 0.9},
        {"image_id": 17, "category_id": 1, "bbox": [20, 30, 40, 40], "score": 0.6},
        {"image_id": 17, "category_id": 1, "bbox": [0, 0, 10, 10], "score": 0.1},  # too low
        {"image_id": 17, "category_id": 3, "bbox": [0, 0, 50, 50], "score": 0.99},  # a car
        {"image_id": 5, "category_id": 1, "bbox": [5, 10, 30, 40], "score": 0.8},
    ]
    det_file = tmp_path / "dets.json"
    det_file.write_text(json.dumps(detections))
    # integer stems match ids; photo.png has no id without an images file
    result = predict(blob_model(), [tmp_path / "17.png", tmp_path / "photo.png"], det_file,
                     config=BLOB_CONFIG, det_threshold=0.5)  # fmt: skip
    assert [p["image_id"] for p in result.people] == [17, 17]
    np.testing.assert_allclose(keypoints_xy(result.people[0])[0], [150.25, 80.75], atol=0.15)
    np.testing.assert_allclose(keypoints_xy(result.people[1])[0], [40.0, 50.0], atol=0.15)
    assert "no COCO image id for photo.png" in result.errors[0]["error"]
    # with an images file, photo.png is image 5 (file_name may carry a folder)
    images = {
        "images": [{"id": 5, "file_name": "val/photo.png"}, {"id": 17, "file_name": "17.png"}]
    }
    result = predict(blob_model(), tmp_path / "photo.png", detections, config=BLOB_CONFIG,
                     coco_images=images, coco_output=tmp_path / "res.json")  # fmt: skip
    assert not result.errors and [p["image_id"] for p in result.people] == [5]
    np.testing.assert_allclose(keypoints_xy(result.people[0])[0], [20.0, 30.0], atol=0.15)
    (row,) = json.loads((tmp_path / "res.json").read_text())
    assert row["image_id"] == 5 and row["category_id"] == 1 and len(row["keypoints"]) == 48
    assert row["keypoints"][:2] == pytest.approx(keypoints_xy(result.people[0])[0], abs=1e-3)
    assert row["score"] == pytest.approx(result.people[0]["score"], abs=1e-3)
    # an image with no detection above the threshold has nobody (not an error)
    result = predict(blob_model(), tmp_path / "17.png", det_file, config=BLOB_CONFIG,
                     det_threshold=0.95)  # fmt: skip
    assert result.people == [] and result.errors == []
    with pytest.raises(ValueError, match="detection 0 needs 'image_id' and 'bbox'"):
        predict(blob_model(), tmp_path / "17.png", [{"bbox": [0, 0, 5, 5]}], config=BLOB_CONFIG)


def test_boxes_from_a_coco_annotation_file(tmp_path: Path) -> None:
    write_rgb(tmp_path / "pic.png", blob_image(80, 80, 30.0, 40.0))
    gt = {
        "images": [{"id": 3, "file_name": "pic.png", "width": 80, "height": 80}],
        "annotations": [
            {"id": 1, "image_id": 3, "category_id": 1, "bbox": [10, 20, 40, 40], "iscrowd": 0},
            {"id": 2, "image_id": 3, "category_id": 1, "bbox": [0, 0, 80, 80], "iscrowd": 1},
        ],
        "categories": [{"id": 1, "name": "person"}],
    }
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    result = predict(blob_model(), tmp_path / "pic.png", tmp_path / "gt.json", config=BLOB_CONFIG)
    (person,) = result.people  # the crowd box is not a person
    assert person["image_id"] == 3 and person["box"] == [10, 20, 40, 40]


@pytest.mark.skipif(not (SHARED / "data" / "lsp" / "images").is_dir(), reason="no ../shared")
def test_real_images_give_keypoints_inside_the_image() -> None:
    images = [SHARED / "data" / "lsp" / "images" / f"im000{i}.jpg" for i in (1, 2)]
    result = predict(blob_model(14), images, config=ModelConfig(joints="lsp", input_size=SIZE))
    assert len(result.people) == 2 and not result.errors
    for person in result.people:
        height, width = cv2.imread(person["image"]).shape[:2]
        xy = keypoints_xy(person)
        assert (
            (xy >= -0.5).all()
            and (xy[:, 0] <= width - 0.5).all()
            and (xy[:, 1] <= height - 0.5).all()
        )


class Recorder(nn.Module):
    """Wraps a model and keeps every batch it is given."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model, self.seen = model, []

    def forward(self, images: Tensor):
        self.seen.append(images.clone())
        return self.model(images)


def test_crop_framing_matches_the_box_convention(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)
    path = write_rgb(tmp_path / "noise.png", image)
    expected = torch.from_numpy(image.transpose(2, 0, 1)).float() / 255
    # the whole 64 x 64 corner as the box (margin 1): the crop is that corner, pixel for pixel
    recorder = Recorder(blob_model())
    predict(recorder, path, (0, 0, 64, 64), config=BLOB_CONFIG, margin=1.0, flip=False)
    torch.testing.assert_close(recorder.seen[0][0], expected[:, :64, :64])
    # a 32 px box at (40, 40) with margin 2: the 64 px square around it, columns/rows 24..87
    recorder = Recorder(blob_model())
    predict(recorder, path, (40, 40, 32, 32), config=BLOB_CONFIG, margin=2.0, flip=False)
    assert recorder.seen[0].dtype == torch.float32
    torch.testing.assert_close(recorder.seen[0][0], expected[:, 24:88, 24:88])
