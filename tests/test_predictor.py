"""Predictor: one loaded model, many input forms, the same geometry as predict()."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from dsntpose import zoo
from dsntpose.checkpoint import save_model
from dsntpose.config import ModelConfig
from dsntpose.data.transforms import apply_affine
from dsntpose.model import build_model
from dsntpose.predict import predict
from dsntpose.predictor import Person, Predictor, as_rgb_image, load_image
from test_predict import BLOB_CONFIG, blob_image, blob_model, keypoints_xy

TINY = ModelConfig(backbone="resnet18", output_stride=32, joints="lsp", input_size=64)


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = build_model(TINY).eval()
    return save_model(model, tmp_path_factory.mktemp("ckpt") / "tiny.ckpt", TINY)


def noise(height: int = 70, width: int = 50, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def test_every_input_form_gives_the_same_people(tiny_checkpoint: Path, tmp_path: Path) -> None:
    from PIL import Image

    predictor = Predictor.from_checkpoint(tiny_checkpoint, flip=True)
    assert predictor.joint_set.name == "lsp" and predictor.input_size == 64
    rgb = noise()
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    path = tmp_path / "im.png"
    cv2.imwrite(str(path), bgr)
    box = (5, 8, 30, 50)
    reference = predictor(bgr, box)
    assert isinstance(reference, list) and len(reference) == 1
    (person,) = reference
    assert isinstance(person, Person)
    assert person.keypoints.shape == (14, 2) and person.confidence.shape == (14,)
    assert person.box == (5.0, 8.0, 30.0, 50.0) and person.inverse.shape == (2, 3)
    assert person.score == pytest.approx(person.confidence.mean())
    tensor = torch.from_numpy(rgb.transpose(2, 0, 1).copy()).float() / 255
    forms = [
        predictor(rgb, box, rgb=True),
        predictor(Image.fromarray(rgb), box),
        predictor(str(path), box),
        predictor(path, box),
    ]
    for people in forms:
        np.testing.assert_array_equal(people[0].keypoints, person.keypoints)
        np.testing.assert_array_equal(people[0].confidence, person.confidence)
    # a float tensor is cropped in float (no uint8 rounding of the warp): nearly the same
    from_tensor = predictor(tensor, box)[0]
    np.testing.assert_allclose(from_tensor.keypoints, person.keypoints, atol=0.05)
    np.testing.assert_allclose(from_tensor.confidence, person.confidence, atol=0.01)
    uint8_tensor = predictor(torch.from_numpy(rgb.transpose(2, 0, 1).copy()), box)[0]
    np.testing.assert_array_equal(uint8_tensor.keypoints, person.keypoints)
    # the channel order matters for this model: BGR read as RGB gives another answer
    swapped = predictor(bgr, box, rgb=True)[0]
    assert np.abs(swapped.keypoints - person.keypoints).max() > 1e-3
    # the inverse maps the crop centre onto the box centre
    centre = apply_affine(person.inverse, np.array([31.5, 31.5]))
    np.testing.assert_allclose(centre, [5 + 29 / 2, 8 + 49 / 2])


def test_keypoints_land_on_the_blob_for_boxes_and_batches() -> None:
    predictor = Predictor(blob_model(), BLOB_CONFIG, batch_size=2)
    one = blob_image(120, 200, 40.0, 50.0)
    two = np.maximum(one, blob_image(120, 200, 150.25, 80.75))
    people = predictor(two, [[20, 30, 40, 40], [130, 60, 40, 40]], rgb=True)
    np.testing.assert_allclose(people[0].keypoints, np.tile([40.0, 50.0], (16, 1)), atol=0.15)
    np.testing.assert_allclose(people[1].keypoints, np.tile([150.25, 80.75], (16, 1)), atol=0.15)
    batch = predictor([one, two], [None, np.array([[130, 60, 40, 40]])])
    assert [len(p) for p in batch] == [1, 1]
    # no box: the person is found (whole image, then a crop around the joints found)
    np.testing.assert_allclose(batch[0][0].keypoints, np.tile([40.0, 50.0], (16, 1)), atol=0.15)
    x, y, w, h = batch[0][0].box  # the box of the joints found
    assert x <= 40.0 <= x + w and y <= 50.0 <= y + h
    np.testing.assert_allclose(batch[1][0].keypoints[0], [150.25, 80.75], atol=0.15)
    stacked = predictor(np.stack([one, one]), [(20, 30, 40, 40), []])
    assert len(stacked[0]) == 1 and stacked[1] == []
    grey = predictor(one[..., 0], (20, 30, 40, 40))[0]  # (H, W) grey
    np.testing.assert_allclose(grey.keypoints[0], [40.0, 50.0], atol=0.15)


def test_predict_is_a_wrapper_over_the_same_predictor(
    tiny_checkpoint: Path, tmp_path: Path
) -> None:
    path = tmp_path / "im.png"
    cv2.imwrite(str(path), noise(48, 40, 3))
    predictor = Predictor.from_checkpoint(tiny_checkpoint, flip=False)
    via_predict = predict(predictor, path, (2, 3, 30, 40))
    direct = predictor(cv2.imread(str(path)), (2, 3, 30, 40))[0]
    np.testing.assert_allclose(keypoints_xy(via_predict.people[0]), direct.keypoints, atol=2e-3)
    via_path = predict(tiny_checkpoint, path, (2, 3, 30, 40), flip=False)
    assert via_path.people[0]["keypoints"] == via_predict.people[0]["keypoints"]


def test_the_checkpoint_is_loaded_once(
    tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dsntpose.checkpoint

    calls = []
    real = dsntpose.checkpoint.load_checkpoint

    def counting(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(dsntpose.checkpoint, "load_checkpoint", counting)
    predictor = Predictor.from_checkpoint(tiny_checkpoint)
    for seed in range(3):
        predictor(noise(seed=seed))
    assert len(calls) == 1


def test_bad_inputs_give_one_line_errors(tmp_path: Path) -> None:
    predictor = Predictor(blob_model(), BLOB_CONFIG)
    image = noise()
    cases = [
        (image.astype(np.complex64), TypeError, "complex arrays are not images"),
        (image.astype(np.float32), TypeError, "must be uint8"),
        (np.zeros((5, 5, 2), np.uint8), ValueError, r"expected \(H, W, 3\)"),
        (np.zeros((0, 5, 3), np.uint8), ValueError, "empty image"),
        (torch.rand(3, 20, 20) * 2, ValueError, r"must be in \[0, 1\]"),
        (torch.full((3, 4, 4), float("nan")), ValueError, "non-finite"),
        (torch.zeros(3, 4, 4, dtype=torch.complex64), TypeError, "complex tensors"),
        (torch.rand(20, 20, 3), ValueError, r"\(3, H, W\) RGB tensor"),
        (tmp_path / "nope.png", FileNotFoundError, "image not found"),
        (42, TypeError, "got int"),
    ]
    for value, error, message in cases:
        with pytest.raises(error, match=message) as info:
            predictor(value)
        assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match="lies outside the 50x70 image"):
        predictor(image, (60, 0, 10, 10))
    with pytest.raises(ValueError, match="box width and height must be > 0"):
        predictor(image, (0, 0, 0, 10))
    with pytest.raises(ValueError, match="one entry per image"):
        predictor([image, image], [None])
    with pytest.raises(ValueError, match="exceeds the 100 px limit"):
        as_rgb_image(image, max_pixels=100)
    with pytest.raises(TypeError, match="ModelConfig"):
        Predictor(blob_model(), {"joints": "mpii"})  # type: ignore[arg-type]
    knobs = {"max_passes": 0, "min_joint_score": 1.5, "track_keep": 0.0, "flip_passes": "some"}
    for key, value in knobs.items():
        with pytest.raises(ValueError, match=key):
            Predictor(blob_model(), BLOB_CONFIG, **{key: value})
    with pytest.raises(ValueError, match="predicts 14 joints, joint set mpii has 16"):
        Predictor(blob_model(14), BLOB_CONFIG)(image)


def test_load_image_returns_rgb_and_refuses_truncated_png(tmp_path: Path) -> None:
    rgb = noise(10, 12)
    path = tmp_path / "x.png"
    cv2.imwrite(str(path), rgb[..., ::-1])
    np.testing.assert_array_equal(load_image(path), rgb)
    data = path.read_bytes()
    (tmp_path / "cut.png").write_bytes(data[:-20])
    with pytest.raises(OSError, match="truncated PNG"):
        load_image(tmp_path / "cut.png")
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(OSError, match="empty image file"):
        load_image(tmp_path / "empty.jpg")


def test_the_shipped_model_missing_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def absent(name: str = zoo.DEFAULT_MODEL) -> Path:
        raise FileNotFoundError(f"the shipped model {name!r} is not installed")

    monkeypatch.setattr(zoo, "pretrained_path", absent)
    with pytest.raises(FileNotFoundError, match=r"no shipped model to load.*Pass a checkpoint"):
        Predictor.from_checkpoint(None)


def test_shipped_model_path_is_used(tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(zoo, "pretrained_path", lambda name=zoo.DEFAULT_MODEL: tiny_checkpoint)
    predictor = Predictor.from_checkpoint()
    assert predictor.config == TINY and "lsp" in repr(predictor)


@pytest.mark.parametrize("engine", ["torch", "onnxruntime"])
def test_whole_photo_search_can_mirror_only_the_final_crop(tmp_path: Path, engine: str) -> None:
    """With ``flip_passes="final"`` the search's passes run without the flip test and only the
    final crop's mirror runs after them: the answer is the flip test of that crop, at passes + 1
    network runs; by default every pass runs both views."""
    pytest.importorskip("onnxruntime") if engine == "onnxruntime" else None
    from dsntpose.inference import back_project, flip_test

    config = ModelConfig(
        backbone="resnet18", output_stride=32, joints="mpii", input_size=64, presence=True
    )
    torch.manual_seed(1)
    net = build_model(config).eval()
    path = save_model(net, tmp_path / "presence.ckpt", config)
    image = noise(90, 120, seed=3)
    seen: list[np.ndarray] = []

    knobs = {"flip": True, "threads": None, "min_presence": 0.0, "min_joint_score": 0.0}
    if engine == "onnxruntime":  # the ONNX file carries the head and calibration as metadata
        from dsntpose.export import export_onnx

        onnx = export_onnx(net, tmp_path / "presence.onnx", config=config, check=False)
        predictor = Predictor.from_onnx(onnx, **knobs)
    else:
        predictor = Predictor.from_checkpoint(path, engine="torch", **knobs)
    model = predictor.model
    predictor.model = lambda batch: (seen.append(batch.numpy().copy()), model(batch))[1]
    predictor.model.head = getattr(model, "head", None)  # what the merge reads
    predictor.model.joint_calibration = getattr(model, "joint_calibration", None)
    predictor.predict_image(image)  # the default: both views on every pass
    every = len(seen)
    assert every % 2 == 0 and 4 <= every <= 6  # 2 or 3 passes
    for k in range(0, every, 2):
        np.testing.assert_array_equal(seen[k + 1], seen[k][..., ::-1])
    seen.clear()
    predictor.flip_passes = "final"
    (person,) = predictor.predict_image(image)
    passes = len(seen) - 1
    assert 2 <= passes <= predictor.max_passes  # whole image, then at least one crop
    final, mirror = seen[-2], seen[-1]
    np.testing.assert_array_equal(mirror, final[..., ::-1])  # only the final crop is mirrored
    expected = flip_test(model, torch.from_numpy(final), predictor.joint_set)
    keypoints = back_project(expected.coords.double().numpy(), person.inverse[None], 64)[0]
    np.testing.assert_allclose(person.keypoints, keypoints, atol=1e-4)
    np.testing.assert_allclose(person.confidence, expected.confidence[0].numpy(), atol=1e-5)
    assert person.presence == pytest.approx(float(torch.sigmoid(expected.presence[0])), abs=1e-5)


def test_the_search_scores_joints_by_its_own_calibration(tmp_path: Path) -> None:
    """The whole-photo search chooses joints by heads.search_confidence (the calibration's
    second part on visibility, map confidence and peak), which each Person carries beside its
    confidence, the same on torch and ONNX Runtime and with the flip test."""
    pytest.importorskip("onnxruntime")
    from dsntpose import ops
    from dsntpose.export import export_onnx
    from dsntpose.heads import joint_features, search_confidence

    config = ModelConfig(
        backbone="resnet18", output_stride=32, joints="mpii", input_size=64, presence=True
    )
    torch.manual_seed(2)
    net = build_model(config).eval()
    calibration = torch.zeros(12 + 2 * 16)
    calibration[:9] = torch.tensor([0.5, 1.0, 0.2, -0.3, 2.0, 0.3, -0.2, 0.1, 0.4])
    calibration[9:25] = torch.linspace(-1.0, 1.0, 16)
    calibration[25:28] = torch.tensor([2.0, -0.5, 0.3])  # the search's own weights
    calibration[28:] = torch.linspace(1.0, -1.0, 16)
    net.presence.calibration.copy_(calibration)
    image = noise(150, 200, seed=4)
    box = (30.0, 20.0, 80.0, 100.0)
    torch_plain = Predictor(net, config, flip=False, threads=None, engine="torch")
    (person,) = torch_plain.predict_image(image, boxes=[box], rgb=True)
    crop, _ = torch_plain._square(image, np.array([69.5, 69.5]), 100.0 * torch_plain.margin)
    batch = torch.from_numpy(crop).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        out = net(batch)
    f = joint_features(
        out.visibility,
        ops.heatmap_confidence(out.heatmaps, center=out.coords),
        out.heatmaps,
        out.coords,
        torch_plain.joint_set.torso,
    )
    want = search_confidence(calibration, f)[0].double().numpy()
    assert person.search_confidence is not None
    np.testing.assert_allclose(Predictor.search_confidence(person), want, atol=1e-5)
    assert not np.allclose(want, person.confidence, atol=1e-2)  # its own weights
    onnx = export_onnx(net, tmp_path / "search.onnx", config=config, check=False)
    for flip in (False, True):
        mine = Predictor(net, config, flip=flip, threads=None)
        theirs = Predictor.from_onnx(onnx, flip=flip, threads=None)
        (a,) = mine.predict_image(image, boxes=[box], rgb=True)
        (b,) = theirs.predict_image(image, boxes=[box], rgb=True)
        assert a.search_confidence is not None and b.search_confidence is not None
        np.testing.assert_allclose(a.search_confidence, b.search_confidence, atol=1e-4)
    no_calibration = build_model(dataclasses.replace(config, presence=False)).eval()
    (plain,) = Predictor(
        no_calibration, dataclasses.replace(config, presence=False), flip=False, threads=None
    ).predict_image(image, boxes=[box], rgb=True)
    assert plain.search_confidence is None
    np.testing.assert_array_equal(Predictor.search_confidence(plain), plain.confidence)
