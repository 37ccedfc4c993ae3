"""dsntpose.inputs and the inference commands' safety: what is refused, in one line naming the
file, and what is never written over (issue 27's inference classes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from dsntpose import cli
from dsntpose.checkpoint import save_model
from dsntpose.config import ModelConfig
from dsntpose.inputs import as_rgb_image, box_values, load_image, read_json_file
from dsntpose.model import build_model
from dsntpose.predict import predict
from dsntpose.predictor import Predictor
from test_predict import BLOB_CONFIG, blob_image, blob_model, write_rgb


def noise_jpeg(height: int = 300, width: int = 400) -> bytes:
    rng = np.random.default_rng(0)
    image = cv2.GaussianBlur(rng.integers(0, 255, (height, width, 3), dtype=np.uint8), (0, 0), 3)
    ok, buf = cv2.imencode(".jpg", image)
    assert ok
    return buf.tobytes()


def test_jpegs_cut_flipped_or_claiming_a_huge_size_are_refused(tmp_path: Path) -> None:
    data = noise_jpeg()
    (tmp_path / "good.jpg").write_bytes(data)
    assert load_image(tmp_path / "good.jpg").shape == (300, 400, 3)
    cut = data[: len(data) // 3] + b"\xff\xd9"
    scan = data.find(b"\xff\xda")
    flipped = bytearray(data)
    for k in range(scan + 200, len(data) - 10, 97):
        flipped[k] ^= 0x55
    flipped_bytes = bytes(flipped).replace(b"\xff\xd9", b"") + b"\xff\xd9"
    sof = data.find(b"\xff\xc0")
    big = bytearray(data)
    big[sof + 5 : sof + 9] = (9000).to_bytes(2, "big") * 2
    for name, bad in (("cut", cut), ("flipped", flipped_bytes), ("big", bytes(big))):
        path = tmp_path / f"{name}.jpg"
        path.write_bytes(bad)
        with pytest.raises(OSError, match="corrupt JPEG") as err:
            load_image(path)
        assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_devices_and_named_pipes_are_refused_unread(tmp_path: Path) -> None:
    (tmp_path / "zero.jpg").symlink_to("/dev/zero")
    with pytest.raises(OSError, match=r"zero\.jpg is not a regular file"):
        load_image(tmp_path / "zero.jpg")
    os.mkfifo(tmp_path / "pipe.json")
    with pytest.raises(OSError, match=r"pipe\.json is not a regular file \(a named pipe\)"):
        read_json_file(tmp_path / "pipe.json", "boxes file")
    os.mkfifo(tmp_path / "pipe.png")
    with pytest.raises(OSError, match="named pipe"):
        load_image(tmp_path / "pipe.png")


def test_pil_wide_modes_are_scaled_not_clipped() -> None:
    ramp = np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16)
    wide = Image.new("I;16", (64, 64))
    wide.frombytes(ramp.astype("<u2").tobytes())
    grey = as_rgb_image(wide)
    assert grey.dtype == np.uint8 and grey.min() == 0 and grey.max() == 255
    assert abs(int(grey[32, 0, 0]) - 128) < 3  # mid-grey, not white
    floats = Image.fromarray((ramp / 65535.0).astype(np.float32))
    assert floats.mode == "F"
    assert abs(int(as_rgb_image(floats)[32, 0, 0]) - 128) < 3  # not black


def test_tiny_boxes_and_margins_are_refused() -> None:
    with pytest.raises(ValueError, match="too small"):
        box_values([10, 10, 1e-300, 1e-300])
    with pytest.raises(ValueError, match="margin must be in"):
        Predictor(blob_model(), BLOB_CONFIG, margin=1e-300)


def test_unicode_digit_names_and_folders_with_non_coco_images(tmp_path: Path) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    for name in ("①.png", "².png", "17.png"):
        write_rgb(folder / name, blob_image(60, 60, 30.0, 30.0))
    boxes = {"①.png": [[10, 10, 40, 40]], "².png": [[10, 10, 40, 40]]}
    result = predict(blob_model(), folder, boxes | {"17.png": []}, config=BLOB_CONFIG)
    assert len(result.people) == 2 and not result.errors
    dets = tmp_path / "dets.json"
    dets.write_text(json.dumps([{"image_id": 17, "category_id": 1, "bbox": [10, 10, 40, 40]}]))
    images = tmp_path / "val.json"
    images.write_text(json.dumps({"images": [{"id": 17, "file_name": "17.png"}]}))
    result = predict(blob_model(), folder, dets, config=BLOB_CONFIG, coco_images=images,
                     coco_output=tmp_path / "kp.json")  # fmt: skip
    assert not result.errors and len(result.skipped) == 2 and result.images == 1
    assert [row["image_id"] for row in json.loads((tmp_path / "kp.json").read_text())] == [17]


TINY = ModelConfig(backbone="resnet18", output_stride=32, input_size=64, joints="lsp")


def tiny_checkpoint(path: Path) -> Path:
    return save_model(build_model(TINY).eval(), path, TINY)


def test_outputs_never_overwrite_inputs(tmp_path: Path, capsys) -> None:
    ckpt = tiny_checkpoint(tmp_path / "m.pt")
    image = write_rgb(tmp_path / "a.png", blob_image(60, 60, 30.0, 30.0))
    before = image.read_bytes()
    base = ["predict", str(image), "--checkpoint", str(ckpt), "--box", "10,10,40,40"]
    assert cli.main([*base, "--output", str(image)]) == 2
    assert "is also an input" in capsys.readouterr().err and image.read_bytes() == before
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps({"a.png": [[10, 10, 40, 40]]}))
    args = ["predict", str(image), "--checkpoint", str(ckpt), "--boxes", str(boxes)]
    assert cli.main([*args, "--coco_output", str(boxes)]) == 2
    assert json.loads(boxes.read_text()) == {"a.png": [[10, 10, 40, 40]]}
    assert cli.main([*base, "--draw_dir", str(tmp_path)]) == 2
    assert "folder of the input images" in capsys.readouterr().err
    assert cli.main([*base, "--output", str(tmp_path / "out.json")]) == 0
    assert "1 person written" in capsys.readouterr().err
    assert not list(tmp_path.glob(".*.tmp-*"))


def test_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    ckpt = tiny_checkpoint(tmp_path / "m.pt")
    for k in range(30):
        write_rgb(tmp_path / f"im{k:02d}.png", blob_image(40, 40, 20.0, 20.0))
    code = (
        "import sys; from dsntpose import cli; "
        f"sys.exit(cli.main(['predict', {str(tmp_path)!r}, '--checkpoint', {str(ckpt)!r}, "
        "'--box', '5,5,30,30', '--no-flip']))"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    done = subprocess.run(
        f"{sys.executable} -c \"{code}\" | head -c1", shell=True, capture_output=True,
        text=True, env=env, timeout=300,
    )  # fmt: skip
    assert "Broken pipe" not in done.stderr and "Errno 32" not in done.stderr, done.stderr
    status = subprocess.run(
        ["bash", "-c", f"set -o pipefail; {sys.executable} -c \"{code}\" | head -c1 >/dev/null"],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert status.returncode == 0, status.stderr


def test_a_worker_error_is_one_line_without_its_traceback() -> None:
    err = OSError(
        "Caught OSError in DataLoader worker process 0.\nOriginal Traceback (most recent call "
        'last):\n  File "x.py", line 1, in f\nOSError: cannot decode image: /d/im0001.jpg\n'
    )
    assert cli._one_line(err) == "cannot decode image: /d/im0001.jpg"


def test_the_predictor_runs_onnx_runtime_from_a_cache_keyed_by_the_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("onnxruntime")
    from dsntpose.checkpoint import OnnxModel

    monkeypatch.setenv("DSNTPOSE_CACHE", str(tmp_path / "cache"))
    ckpt = tiny_checkpoint(tmp_path / "m.pt")
    image = blob_image(60, 60, 30.0, 30.0)
    eager = Predictor.from_checkpoint(ckpt, engine="torch")
    fast = Predictor.from_checkpoint(ckpt, engine="onnxruntime", threads=1)
    assert isinstance(fast.model, OnnxModel) and not isinstance(eager.model, OnnxModel)
    (cached,) = (tmp_path / "cache" / "onnx").glob("m-*.onnx")
    a, b = eager(image, (10, 10, 40, 40))[0], fast(image, (10, 10, 40, 40))[0]
    np.testing.assert_allclose(a.keypoints, b.keypoints, atol=0.05)
    stamp = cached.stat().st_mtime_ns
    Predictor.from_checkpoint(ckpt, engine="onnxruntime")  # the cache is reused, not rewritten
    assert cached.stat().st_mtime_ns == stamp
    assert not list(cached.parent.glob(".*.tmp-*"))


def test_onnxruntime_insisted_on_is_an_error_when_the_model_does_not_export(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """engine="onnxruntime" (or DSNTPOSE_ENGINE=onnxruntime) names the engine outright: a
    model the exporter cannot trace is a one-line error naming the file, where "auto" falls
    back to torch with a warning (a reship once timed torch as if it were the engine)."""
    pytest.importorskip("onnxruntime")
    import dsntpose.export
    from dsntpose.checkpoint import OnnxModel

    def fails(*args: object, **kwargs: object) -> None:
        raise AssertionError("Expected op to be '==', got < for batch < 32/9\nmore lines")

    monkeypatch.setenv("DSNTPOSE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(dsntpose.export, "export_onnx", fails)
    ckpt = tiny_checkpoint(tmp_path / "m.pt")
    with pytest.raises(ValueError) as err:
        Predictor.from_checkpoint(ckpt, engine="onnxruntime", threads=1)
    assert str(err.value).startswith(f"engine onnxruntime: {ckpt} does not export to ONNX (")
    assert "batch < 32/9)" in str(err.value) and "\n" not in str(err.value)
    monkeypatch.setenv("DSNTPOSE_ENGINE", "onnxruntime")
    with pytest.raises(ValueError, match="does not export"):
        Predictor.from_checkpoint(ckpt, threads=1)
    monkeypatch.delenv("DSNTPOSE_ENGINE")
    fallback = Predictor.from_checkpoint(ckpt, engine="auto", threads=1)
    assert not isinstance(fallback.model, OnnxModel)
    assert "ONNX Runtime not used" in caplog.text
    image = write_rgb(tmp_path / "a.png", blob_image(60, 60, 30.0, 30.0))
    capsys.readouterr()
    cli_args = ["predict", str(image), "--checkpoint", str(ckpt), "--engine", "onnxruntime"]
    assert cli.main(cli_args) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("dsntpose: error: engine onnxruntime: ") and "does not export" in line
