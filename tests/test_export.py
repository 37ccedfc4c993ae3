"""ONNX export: one file, dynamic batch, parity with torch proven and its failure detected."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from conftest import tiny_backbone

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")
onnx = pytest.importorskip("onnx")

from dsntpose.checkpoint import CONFIG_KEY, OnnxModel, save_model  # noqa: E402
from dsntpose.config import ModelConfig  # noqa: E402
from dsntpose.export import (  # noqa: E402
    OnnxParityError,
    check_parity,
    export_onnx,
)
from dsntpose.heads import DSNTHead, HeadOutput  # noqa: E402
from dsntpose.model import CoordRegressionModel, build_model  # noqa: E402
from dsntpose.predict import predict  # noqa: E402

SIZE = 64
TINY_CONFIG = ModelConfig(backbone="resnet18", joints="mpii", input_size=SIZE)


def tiny_model(seed: int = 0) -> CoordRegressionModel:
    """Two strided convs and the DSNT head: 64 px in, 16 x 16 maps out (fast to export)."""
    torch.manual_seed(seed)
    backbone = tiny_backbone()
    model = CoordRegressionModel(backbone, DSNTHead(16, 16))
    nn.init.normal_(model.head.conv.weight, std=10.0)  # peaky maps, not near-uniform ones
    return model.eval()


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[CoordRegressionModel, Path, bool]:
    """The tiny model exported once for the module (in training mode, to check it is restored)."""
    model = tiny_model().train()
    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    export_onnx(model, path, config=TINY_CONFIG, check=False)
    still_training = model.training
    return model.eval(), path, still_training


def test_one_self_contained_file_with_named_outputs_and_config(exported) -> None:
    _, path, _ = exported
    assert [p.name for p in path.parent.iterdir()] == ["tiny.onnx"]  # no external data file
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto)
    assert [i.name for i in proto.graph.input] == ["images"]
    assert [o.name for o in proto.graph.output] == ["coords", "heatmaps", "logits", "confidence"]
    batch = proto.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch.dim_param and not batch.dim_value  # symbolic batch axis
    runner = OnnxModel(path)
    assert runner.config == TINY_CONFIG and runner.input_size == SIZE
    assert any(p.key == CONFIG_KEY for p in proto.metadata_props)


@pytest.mark.parametrize("batch", [1, 3, 5])
def test_dynamic_batch_and_parity(exported, batch: int) -> None:
    model, path, _ = exported
    images = torch.rand(batch, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(batch))
    with torch.no_grad():
        ref = model(images)
    got = OnnxModel(path)(images)
    assert isinstance(got, HeadOutput)
    assert got.coords.shape == (batch, 16, 2) and got.heatmaps.shape == (batch, 16, 16, 16)
    assert got.confidence.shape == (batch, 16)
    assert float((got.coords - ref.coords).abs().max()) <= 1e-4
    torch.testing.assert_close(got.heatmaps, ref.heatmaps, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(got.logits, ref.logits, atol=1e-4, rtol=1e-4)
    assert float(ref.coords.std()) > 0.05  # the comparison is not between two constants


def test_check_parity_passes_and_reports(exported) -> None:
    model, path, _ = exported
    real = torch.rand(2, 3, SIZE, SIZE)
    report = check_parity(model, path, images=real)
    assert report.batch_sizes == (1, 3, 2)
    assert 0 <= report.coords <= 1e-4 and report.heatmaps < 1e-4


def test_parity_fails_against_another_model(exported) -> None:
    _, path, _ = exported
    with pytest.raises(OnnxParityError, match=r"max \|coords diff\| .* > 0\.0001 normalised units"):
        check_parity(tiny_model(seed=1), path)


def test_parity_fails_on_a_tampered_file(exported, tmp_path: Path) -> None:
    model, path, _ = exported
    proto = onnx.load(str(path))
    weights = [
        t
        for t in proto.graph.initializer
        if len(t.dims) == 4 and t.dims[0] == 16 and t.dims[1] == 16
    ]
    assert weights, "the head's 1x1 conv weight should be an initializer"
    array = onnx.numpy_helper.to_array(weights[0]).copy()
    array[3] *= -1.0  # joint 3's map changes
    weights[0].CopyFrom(onnx.numpy_helper.from_array(array, weights[0].name))
    tampered = tmp_path / "tampered.onnx"
    onnx.save(proto, str(tampered))
    with pytest.raises(OnnxParityError, match=r"tampered\.onnx: ONNX parity check failed"):
        check_parity(model, tampered)


def test_parity_fails_on_a_shape_mismatch(exported) -> None:
    _, path, _ = exported
    other = CoordRegressionModel(tiny_model().backbone, DSNTHead(16, 14)).eval()
    with pytest.raises(OnnxParityError, match=r"coords is \(1, 16, 2\), torch gives \(1, 14, 2\)"):
        check_parity(other, path)


def test_onnx_model_rejects_bad_files_and_inputs(exported, tmp_path: Path) -> None:
    _, path, _ = exported
    with pytest.raises(FileNotFoundError, match="does not exist"):
        OnnxModel(tmp_path / "none.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_text("not a model")
    with pytest.raises(ValueError, match=r"junk\.onnx: not a loadable ONNX model"):
        OnnxModel(junk)
    with pytest.raises(ValueError, match=r"\(B, 3, 64, 64\)"):
        OnnxModel(path)(torch.rand(1, 3, 32, 32))


def test_predict_on_onnx_matches_torch(exported, tmp_path: Path) -> None:
    import cv2

    model, path, _ = exported
    rng = np.random.default_rng(0)
    image_path = tmp_path / "im.png"
    cv2.imwrite(str(image_path), rng.integers(0, 256, (90, 70, 3), dtype=np.uint8))
    torch_result = predict(model, image_path, config=TINY_CONFIG)
    onnx_result = predict(None, image_path, onnx=path)
    assert onnx_result.errors == []

    def xy(result) -> np.ndarray:
        return np.array([[k["x"], k["y"], k["confidence"]] for k in result.people[0]["keypoints"]])

    np.testing.assert_allclose(xy(onnx_result), xy(torch_result), atol=2e-3)
    with pytest.raises(ValueError, match="joint set 'mpii', not 'lsp'"):
        predict(None, image_path, onnx=path, joints="lsp")


def test_export_restores_the_model_mode(exported) -> None:
    assert exported[2], "export_onnx must put a training-mode model back in training mode"


def test_export_needs_a_config_for_a_model_object(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="needs its ModelConfig"):
        export_onnx(tiny_model(), tmp_path / "m.onnx")


@pytest.mark.slow
def test_resnet18_checkpoint_export_with_parity(tmp_path: Path) -> None:
    cfg = ModelConfig(backbone="resnet18", output_stride=16, head="dsnt", joints="lsp")
    torch.manual_seed(0)
    ckpt = save_model(build_model(cfg).eval(), tmp_path / "r18.ckpt", cfg)
    start = time.perf_counter()
    out = export_onnx(ckpt, tmp_path / "r18.onnx")  # raises on a parity failure
    seconds = time.perf_counter() - start
    runner = OnnxModel(out)
    assert runner.config == cfg and runner.input_size == 224
    assert runner(torch.rand(2, 3, 224, 224)).heatmaps.shape == (2, 14, 14, 14)
    print(f"resnet18/16 export + parity check: {seconds:.1f} s")


def test_export_keeps_the_batch_dynamic_for_large_maps_on_two_threads(tmp_path: Path) -> None:
    """48 x 48 maps of 16 joints: the expectation takes its threaded path from a batch of 4 on
    two threads. Deciding that from the batch size under export made a shape guard (batch <
    32/9) and failed the export of the shipped two-stage decoder model; the batch stays
    dynamic and every batch size matches torch."""
    torch.manual_seed(0)
    model = CoordRegressionModel(tiny_backbone(), DSNTHead(16, 16)).eval()
    nn.init.normal_(model.head.conv.weight, std=10.0)
    cfg = ModelConfig(backbone="resnet18", joints="mpii", input_size=192)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        path = export_onnx(model, tmp_path / "large_maps.onnx", config=cfg)
        for batch in (1, 5):
            x = torch.rand(batch, 3, 192, 192)
            with torch.no_grad():
                expected = model(x)
            got = OnnxModel(path)(x)
            assert tuple(got.heatmaps.shape) == (batch, 16, 48, 48)
            assert torch.allclose(got.coords, expected.coords, atol=1e-4)
    finally:
        torch.set_num_threads(threads)
