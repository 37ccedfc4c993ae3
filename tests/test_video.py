"""predict_video: frames of a small video written here, annotated video and per-frame results."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from dsntpose.data.coco import evaluate_coco
from dsntpose.data.joints import get_joint_set
from dsntpose.predictor import Predictor, keypoint_box
from dsntpose.video import predict_video
from test_predict import BLOB_CONFIG, blob_image, blob_model

BLOB_CONFIG_NAMES = get_joint_set(BLOB_CONFIG.joints).names

WIDTH, HEIGHT, FRAMES = 96, 64, 8


def blob_x(frame: int) -> float:
    return 20.0 + 7.0 * frame


def write_video(path: Path) -> Path:
    """A moving white blob on black, mp4v, 10 fps."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), 10.0, (WIDTH, HEIGHT))
    assert writer.isOpened()
    for i in range(FRAMES):
        writer.write(blob_image(HEIGHT, WIDTH, blob_x(i), 30.0, sigma=4.0))
    writer.release()
    return path


@pytest.fixture
def video(tmp_path: Path) -> Path:
    return write_video(tmp_path / "in.mp4")


def test_video_results_follow_the_blob_and_the_output_is_a_video(
    video: Path, tmp_path: Path
) -> None:
    predictor = Predictor(blob_model(), BLOB_CONFIG, flip=False)
    out, results = tmp_path / "out" / "annotated.mp4", tmp_path / "frames.jsonl"
    summary = predict_video(predictor, video, out, results, progress=False)
    assert summary.frames == FRAMES and summary.people == FRAMES and summary.size == (WIDTH, HEIGHT)
    assert summary.fps == pytest.approx(10.0) and summary.nonfinite == 0
    lines = [json.loads(line) for line in results.read_text().splitlines()]
    assert [line["frame"] for line in lines] == list(range(FRAMES))
    assert lines[3]["time_s"] == pytest.approx(0.3)
    for line in lines:
        (person,) = line["people"]
        x, y, w, h = person["box"]  # no boxes: the person found, the box of its joints
        assert x - 1.5 <= blob_x(line["frame"]) <= x + w + 1.5 and y - 1.5 <= 30.0 <= y + h + 1.5
        xy = np.array([[k["x"], k["y"]] for k in person["keypoints"]])
        np.testing.assert_allclose(xy.mean(axis=0), [blob_x(line["frame"]), 30.0], atol=1.5)
    capture = cv2.VideoCapture(str(out))
    assert capture.isOpened() and int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == FRAMES
    ok, frame = capture.read()
    capture.release()
    assert ok and frame.shape == (HEIGHT, WIDTH, 3)
    assert (
        frame.astype(int).std(axis=2) > 10
    ).any()  # the coloured skeleton is drawn (faintly: low confidence)


def test_tracking_boxes_and_coco_results(video: Path, tmp_path: Path) -> None:
    predictor = Predictor(blob_model(), BLOB_CONFIG, flip=False)
    results = tmp_path / "frames.json"
    # keypoint_box of a single point is < 3 joints wide: tracking falls back to the whole frame
    predict_video(predictor, video, results_path=results, progress=False, track=True, max_frames=3)
    rows = json.loads(results.read_text())
    assert [r["image_id"] for r in rows] == [0, 1, 2] and len(rows[0]["keypoints"]) == 48
    # every frame box from a function, COCO output evaluated against a matching ground truth
    calls = []

    def boxes(index: int, frame: np.ndarray) -> list:
        calls.append((index, frame.shape))
        return [(blob_x(index) - 15, 15, 30, 30)]

    predict_video(predictor, video, results_path=results, progress=False, boxes=boxes)
    assert calls[0] == (0, (HEIGHT, WIDTH, 3)) and len(calls) == FRAMES
    rows = json.loads(results.read_text())
    xy = np.array(rows[4]["keypoints"]).reshape(16, 3)[:, :2]
    np.testing.assert_allclose(xy.mean(axis=0), [blob_x(4), 30.0], atol=1.0)
    gt = {
        "images": [{"id": i, "file_name": f"{i}", "width": WIDTH, "height": HEIGHT} for i in range(FRAMES)],
        "annotations": [
            {"id": i + 1, "image_id": i, "category_id": 1, "iscrowd": 0, "bbox": [0, 0, 60, 60],
             "area": 3600.0, "num_keypoints": 16, "keypoints": [blob_x(i), 30.0, 2] * 16}
            for i in range(FRAMES)
        ],
        "categories": [{"id": 1, "name": "person", "keypoints": [f"j{j}" for j in range(16)]}],
    }  # fmt: skip
    assert evaluate_coco(gt, rows, sigmas=[0.1] * 16)["AP50"] == pytest.approx(1.0)


class Spread(Predictor):
    """A one-pass predictor whose people have joints spread 10 px around the blob; it records the
    square each frame's pass was given."""

    def __init__(self) -> None:
        super().__init__(blob_model(), BLOB_CONFIG, flip=False, max_passes=1)
        self.squares: list = []

    def _people(self, out, inverses, boxes):
        # each pass reports its people with the square it cropped, as an (x, y, w, h) box
        self.squares += [(np.array([x + (w - 1) / 2, y + (h - 1) / 2]), w) for x, y, w, h in boxes]
        offsets = np.array([[-10.0, -10.0], [10.0, -10.0], [0.0, 10.0]] + [[0.0, 0.0]] * 13)
        return [
            replace(p, keypoints=p.keypoints + offsets, confidence=np.full(16, 0.9))
            for p in super()._people(out, inverses, boxes)
        ]


def test_tracking_crops_around_the_previous_keypoints(video: Path) -> None:
    predictor = Spread()
    predict_video(predictor, video, progress=False, track=True, max_frames=4)
    center, side = predictor.squares[0]  # the first frame: the whole frame
    assert side == WIDTH and center.tolist() == [(WIDTH - 1) / 2, (HEIGHT - 1) / 2]
    for frame in (1, 2, 3):
        center, side = predictor.squares[frame]  # around the previous frame's 21 px joint box
        assert side == pytest.approx(1.4 * 21.0)
        assert center == pytest.approx([blob_x(frame - 1), 30.0], abs=1.5)
    # a person below the score threshold sends tracking back to the whole frame
    predictor = Spread()
    predict_video(predictor, video, progress=False, track=True, max_frames=3, track_min_score=0.95)
    assert [side for _, side in predictor.squares] == [WIDTH] * 3


def test_tracking_crop_never_shrinks_below_the_kept_fraction(video: Path) -> None:
    from dsntpose.predictor import Person

    predictor = Spread()
    rgb = blob_image(HEIGHT, WIDTH, blob_x(0), 30.0, sigma=4.0)
    previous = Person(
        np.tile([40.0, 30.0], (16, 1)) + np.linspace(0, 2, 16)[:, None],  # a 2 px joint box
        np.full(16, 0.9),
        (10.0, 5.0, 50.0, 50.0),  # ... of a person whose box was 50 px
        np.eye(2, 3),
        0.9,
        BLOB_CONFIG_NAMES,
    )
    predictor.find_people([rgb], [previous])
    _, side = predictor.squares[0]
    assert side == pytest.approx(0.9 * 50.0 * 1.4)


def test_keypoint_box() -> None:
    keypoints = np.array([[10.0, 10.0], [30.0, 12.0], [20.0, 40.0], [np.nan, 5.0]])
    assert keypoint_box(keypoints, np.array([0.9, 0.9, 0.9, 0.9])) == (10.0, 10.0, 21.0, 31.0)
    assert keypoint_box(keypoints, np.array([0.9, 0.9, 0.1, 0.9])) is None  # < 3 confident
    with pytest.raises(ValueError, match=r"keypoints must be \(J, 2\)"):
        keypoint_box(keypoints[:, 0], np.ones(4))


def test_sources_that_cannot_be_read(tmp_path: Path) -> None:
    predictor = Predictor(blob_model(), BLOB_CONFIG)
    with pytest.raises(FileNotFoundError, match="video not found"):
        predict_video(predictor, tmp_path / "none.mp4", progress=False)
    (tmp_path / "junk.mp4").write_text("not a video")
    with pytest.raises(OSError, match=r"junk\.mp4"):
        predict_video(predictor, tmp_path / "junk.mp4", progress=False)
    with pytest.raises(TypeError, match="webcam index"):
        predict_video(predictor, 1.5, progress=False)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Predictor"):
        predict_video(blob_model(), tmp_path / "none.mp4")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="results_format"):
        predict_video(predictor, tmp_path / "none.mp4", results_format="csv")
