"""benchmarks/video_tracking.py: clips made from photos carry their ground truth with them
(rendered blobs, every kind of clip), the scoring, and one clip through predict_video."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import load_script
from dsntpose.data.transforms import apply_affine, warp_image
from test_predict import BLOB_CONFIG, blob_image, blob_model

REPO = Path(__file__).resolve().parents[1]
vt = load_script("video_tracking", REPO / "benchmarks" / "video_tracking.py")
LSP_NAMES = vt.LSP_NAMES


def centroid(frame: np.ndarray) -> np.ndarray:
    """Intensity-weighted centre ``(x, y)`` of a frame, pixel centres at integers."""
    mass = frame[..., 0].astype(np.float64)
    ys, xs = np.indices(mass.shape)
    return np.array([(xs * mass).sum(), (ys * mass).sum()]) / mass.sum()


@pytest.mark.parametrize("kind", ["pan", "zoom", "letterbox"])
def test_a_rendered_blob_lands_where_its_joint_is_moved(kind: str) -> None:
    height, width, point = 120, 160, np.array([[61.3, 47.8]])
    photo = blob_image(height, width, *point[0], sigma=4.0)
    if kind == "pan":
        matrices, size = vt.pan_clip(height, width, 5)
    elif kind == "zoom":
        matrices, size = vt.zoom_clip(height, width, point + [[-20, -30], [20, 30]][0], 5)
    else:
        matrices, size = vt.letterbox_pan(height, width, 5), vt.CANVAS
    assert len(matrices) == 5
    for matrix in matrices:
        frame = warp_image(photo, matrix, size)
        assert frame.shape == (size[1], size[0], 3)
        np.testing.assert_allclose(centroid(frame), apply_affine(matrix, point)[0], atol=0.05)


def test_windows_frame_what_their_docstrings_say() -> None:
    # pan: corner to corner, 75% windows, no scaling
    matrices, size = vt.pan_clip(100, 200, 3)
    assert size == (150, 75)
    np.testing.assert_allclose(apply_affine(matrices[0], np.array([[0.0, 0.0]])), [[0.0, 0.0]])
    np.testing.assert_allclose(
        apply_affine(matrices[-1], np.array([[199.0, 99.0]])), [[149.0, 74.0]]
    )
    # zoom: the whole photo first, then 60% of it (1/0.6 px per photo px) around the joints
    joints = np.array([[90.0, 40.0], [110.0, 60.0]])
    matrices, size = vt.zoom_clip(100, 200, joints, 4)
    assert size == (200, 100)
    np.testing.assert_allclose(matrices[0], [[1, 0, 0], [0, 1, 0]], atol=1e-12)
    assert matrices[-1][0, 0] == pytest.approx(1 / 0.6)
    np.testing.assert_allclose(
        apply_affine(matrices[-1], joints.mean(0, keepdims=True)), [[99.5, 49.5]]
    )
    # letterbox: the whole photo inside the canvas on every frame
    for matrix in vt.letterbox_pan(300, 100, 6):
        corners = apply_affine(matrix, np.array([[-0.5, -0.5], [99.5, 299.5]]))
        assert (corners >= -0.5).all() and (corners <= np.array(vt.CANVAS) - 0.5).all()


def photo_set(count: int = 12) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """``count`` BGR photos, a blob on each, with 14 LSP joints around it (the torso 40 px)."""
    rng = np.random.default_rng(1)
    photos, joints = [], []
    for _ in range(count):
        x, y = rng.uniform(50, 70), rng.uniform(40, 60)
        photos.append(blob_image(100, 120, x, y, sigma=3.0))
        j = np.tile([x, y], (14, 1)) + rng.uniform(-3, 3, (14, 2))
        j[8] = (x - 12, y - 19)  # r_shoulder -- l_hip: 40 px apart, each > 8 px from the blob
        j[3] = (x + 12, y + 19)
        joints.append(j)
    return photos, np.stack(joints), np.ones((count, 14), bool)


def test_clips_of_each_kind_carry_their_ground_truth() -> None:
    photos, joints, labelled = photo_set()
    joints[0, 0] = (-1.0, 5.0)  # photo 0 has a joint outside itself: never drawn
    clips = vt.build_clips(photos, joints, labelled, frames=10, clips=2)
    assert [c["kind"] for c in clips] == ["pan", "zoom", "cuts"] * 2
    assert all(0 not in c["photos"] for c in clips)
    drawn = [k for c in clips for k in c["photos"]]
    assert len(drawn) == len(set(drawn)) == 10
    for clip in clips:
        assert len(clip["frames"]) == len(clip["gt"]) == len(clip["labelled"]) == 10
        for frame, gt, marks, segment in zip(
            clip["frames"], clip["gt"], clip["labelled"], clip["segment"]
        ):
            assert frame.shape == (clip["size"][1], clip["size"][0], 3)
            if segment < 0:  # the fade: black, nothing labelled
                assert not frame.any() and not marks.any()
                continue
            inside = np.all((gt >= 0) & (gt <= np.array(clip["size"]) - 1), axis=1)
            np.testing.assert_array_equal(marks, inside)
            # the blob sits amid its joints
            np.testing.assert_allclose(centroid(frame), np.median(gt, axis=0), atol=4.5)
    cuts = clips[2]
    assert list(cuts["segment"]) == [0, 0, -1, -1, -1, -1, 1, 1, 2, 2]
    with pytest.raises(ValueError, match="usable photos"):
        vt.build_clips(photos, joints, labelled, frames=10, clips=3)


def test_scoring_hits_missing_people_and_box_ratio() -> None:
    gt = np.zeros((2, 14, 2))
    gt[:, 8], gt[:, 3] = (0.0, 0.0), (30.0, 40.0)  # torso 50 px: PCK@0.2 is 10 px
    gt[:, 0] = (10.0, 10.0)
    preds = gt.copy()
    preds[0, 0] += (6.0, 8.0)  # 10 px off: a hit (<=)
    preds[0, 1] += (6.0, 8.1)  # just over: a miss
    preds[1] = np.nan  # nobody reported
    labelled = np.ones((2, 14), bool)
    labelled[:, 11] = False
    hit, counted = vt.frame_hits(preds, gt, labelled)
    assert counted.sum() == 22 and hit[0, 0] and not hit[0, 1] and hit[0].sum() == 10
    assert not hit[1].any()
    assert vt.pct(hit, counted) == pytest.approx(100 * 10 / 22, abs=0.01)
    boxes = np.array([[0, 0, 20, 40], [np.nan] * 4])
    np.testing.assert_allclose(vt.box_ratio(boxes, gt, labelled), [1.0, np.nan])


def test_results_are_read_by_name_with_the_neck_alias(tmp_path: Path) -> None:
    names = ["r_ankle", "upper_neck", "head_top", "pelvis"]
    person = {
        "box": [1, 2, 3, 4],
        "score": 0.5,
        "keypoints": [
            {"name": n, "x": float(i), "y": None if n == "head_top" else 2.0 * i, "confidence": 1}
            for i, n in enumerate(names)
        ],
    }
    path = tmp_path / "r.jsonl"
    path.write_text(
        json.dumps({"frame": 0, "people": [person]}) + "\n" + json.dumps({"frame": 1, "people": []})
    )
    points, boxes = vt.read_results(path, 2)
    assert points.shape == (2, 14, 2)
    np.testing.assert_allclose(points[0, LSP_NAMES.index("r_ankle")], [0, 0])
    np.testing.assert_allclose(points[0, LSP_NAMES.index("neck")], [1, 2])
    assert np.isnan(points[0, LSP_NAMES.index("head_top")]).all()  # null in the file
    assert np.isnan(points[1]).all() and np.isnan(boxes[1]).all()
    np.testing.assert_allclose(boxes[0], [1, 2, 3, 4])


def test_one_clip_through_predict_video_and_the_summary(tmp_path: Path) -> None:
    from dsntpose.predictor import Predictor

    photos, joints, labelled = photo_set(5)
    clips = vt.build_clips(photos, joints, labelled, frames=10, clips=1)
    predictor = Predictor(blob_model(), BLOB_CONFIG, flip=False, threads=None)
    runs = {
        mode: [vt.run_clip(predictor, clip, mode == "track", tmp_path) for clip in clips]
        for mode in vt.MODES
    }
    for mode in vt.MODES:
        for clip, run in zip(clips, runs[mode]):
            assert run["frames"] == 10 and run["seconds"] > 0
            hit, counted = vt.frame_hits(run["points"], clip["gt"], clip["labelled"])
            # the blob model puts every joint on the blob: the joints near it are hits, the
            # shoulder and hip 22 px away (the torso 45 px) are not
            near = [j for j in vt.LIMB_JOINTS if j not in (3, 8)]
            people = clip["segment"] >= 0
            np.testing.assert_array_equal(hit[people][:, near], counted[people][:, near])
            assert counted[people][:, near].sum() > 0.8 * people.sum() * len(near)
            assert not hit[:, [3, 8]].any()
    summary = vt.summarize(clips, runs)
    assert set(summary) == {"pan", "zoom", "cuts"}
    cuts = summary["cuts"]["search"]
    assert cuts["black_frames"] == 4 and cuts["frames"] == 10
    assert len(summary["pan"]["track"]["pck_by_frame"]) == 10
    assert 80 < summary["pan"]["track"]["pck"] < 100  # the far two miss, the others hit
    # the report and the README's paragraph read the same record
    record = {
        "command": "python benchmarks/video_tracking.py", "date": "2026-12-07", "machine": "m",
        "model": "blob", "engine": "CoordRegressionModel", "flip": False, "threads": 1,
        "clips": 1, "frames": 10, "summary": summary,
    }  # fmt: skip
    table = vt.markdown(record)
    assert f"| pan | track | {summary['pan']['track']['pck']} |" in table
    readme = load_script("update_readme", REPO / "scripts" / "update_readme.py")
    line = readme.video_summary(record)
    assert f"a slow pan {summary['pan']['track']['pck']} against" in line
    assert f"{cuts['black_frames_with_a_person']} of 4 frames of a fade to black" in line
