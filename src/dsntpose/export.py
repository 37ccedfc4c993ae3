"""ONNX export with a proven parity check, and an onnxruntime runner with the model's signature.

:func:`export_onnx` traces a model with the torch dynamo exporter
(``torch.onnx.export(..., dynamo=True)``) into one self-contained ``.onnx`` file:

* input ``images`` ``(batch, 3, S, S)`` float32 RGB in ``[0, 1]``, the batch axis dynamic;
* outputs ``coords`` ``(batch, J, 2)`` normalised ``(x, y)``, ``heatmaps`` ``(batch, J, H, W)``,
  ``logits`` ``(batch, J, H, W)`` and ``confidence`` ``(batch, J)``: the fields of
  :class:`~dsntpose.heads.HeadOutput`;
* metadata ``dsntpose.model_config``: the model's :class:`~dsntpose.config.ModelConfig` as
  JSON (joint set, input size, head, activation), so the file alone is enough to predict.

It then runs the file on onnxruntime next to the torch model (:func:`check_parity`) and raises
:class:`OnnxParityError` when the coordinates differ by more than ``1e-4`` normalised units
(``1e-4`` of half the crop width: 0.011 px on a 224 px crop).

:class:`OnnxModel` wraps an exported file so that ``OnnxModel(path)(images)`` returns the same
``HeadOutput`` as the torch model; :func:`dsntpose.predict.predict` runs on it unchanged.

onnx, onnxscript and onnxruntime (the ``[export]`` extra) are imported inside the functions.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from dsntpose.config import ModelConfig
from dsntpose.heads import HeadOutput
from dsntpose.model import load_model

__all__ = [
    "CONFIG_KEY",
    "OUTPUT_NAMES",
    "OnnxModel",
    "OnnxParityError",
    "ParityReport",
    "check_parity",
    "export_onnx",
]

log = logging.getLogger(__name__)

INPUT_NAME = "images"
OUTPUT_NAMES = ("coords", "heatmaps", "logits", "confidence")
CONFIG_KEY = "dsntpose.model_config"
DEFAULT_ATOL = 1e-4  # normalised units


MIN_OPSET = 18  # the dynamo exporter's lowest


def max_opset() -> int:
    """The newest opset the installed ``onnx`` package knows."""
    import onnx

    return int(onnx.defs.onnx_opset_version())


class OnnxParityError(RuntimeError):
    """The exported file does not compute what the torch model computes."""


class ParityReport(NamedTuple):
    """Largest absolute differences, ONNX vs torch, over every checked batch.

    ``coords`` in normalised units; ``heatmaps`` in the maps' own units (probabilities for DSNT);
    ``confidence`` in ``[0, 1]`` units; ``batch_sizes`` the batch sizes that were run.
    """

    coords: float
    heatmaps: float
    confidence: float
    batch_sizes: tuple[int, ...]


class _TupleOutputs(nn.Module):
    """The model with its ``HeadOutput`` flattened to the exported outputs (no ``aux``)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        out = self.model(images)
        return out.coords, out.heatmaps, out.logits, out.confidence


@contextlib.contextmanager
def _quiet_registration() -> Iterator[None]:
    """Silence the exporter's one warning per missing torchvision op (irrelevant here)."""
    logger = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def export_onnx(
    checkpoint_or_model: str | Path | nn.Module,
    out_path: str | Path,
    *,
    config: ModelConfig | None = None,
    check: bool = True,
    opset: int | None = None,
    atol: float = DEFAULT_ATOL,
    check_images: Tensor | None = None,
) -> Path:
    """Export a model to one ONNX file with a dynamic batch axis, then prove parity.

    Args:
        checkpoint_or_model: a checkpoint path or a model object (see :func:`load_model`).
        out_path: the ``.onnx`` file to write (parent folders are created). Weights are stored
            inside it (no external data file).
        config: the ``ModelConfig`` of a model object (a checkpoint carries its own).
        check: run :func:`check_parity` after writing (batches 1 and 3).
        opset: ONNX opset version; ``None`` takes the exporter's default.
        atol: largest allowed coordinate difference, normalised units.
        check_images: optional ``(N, 3, S, S)`` real crops in ``[0, 1]`` for the parity check,
            used in addition to random images.

    Returns:
        ``out_path``.

    Raises:
        OnnxParityError: the file's coordinates differ from torch's by more than ``atol``
            (the file is left in place for inspection).
    """
    if opset is not None and not MIN_OPSET <= opset <= max_opset():
        raise ValueError(
            f"opset: {opset} is not supported; the exporter writes opsets {MIN_OPSET} to "
            f"{max_opset()} (default: its own choice)"
        )
    model, cfg = load_model(checkpoint_or_model, config)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    size = cfg.input_size
    was_training = model.training
    model.eval()
    try:
        wrapper = _TupleOutputs(model).eval()
        device = next(model.parameters(), torch.empty(0)).device
        example = torch.rand(2, 3, size, size, device=device)  # batch 2: no specialisation on 1
        start = time.perf_counter()
        with _quiet_registration(), warnings.catch_warnings():
            # torch's own pytree code warns about its own deprecated API: not the user's concern
            warnings.filterwarnings("ignore", message=".*LeafSpec.*", category=FutureWarning)
            program = torch.onnx.export(
                wrapper,
                (example,),
                dynamo=True,
                input_names=[INPUT_NAME],
                output_names=list(OUTPUT_NAMES),
                dynamic_shapes={"images": {0: torch.export.Dim("batch")}},
                opset_version=opset,
                external_data=False,
                verbose=False,
            )
        if program is None:
            raise RuntimeError("torch.onnx.export(dynamo=True) returned no ONNX program")
        imports = program.model.opset_imports  # onnx_ir: {domain: version}; onnx: a list
        if isinstance(imports, Mapping):
            written = imports.get("", None)
        else:
            written = {o.domain: o.version for o in imports}.get("", None)
        if opset is not None and written != opset:
            raise ValueError(
                f"opset: asked for {opset}, but the exporter produced opset {written}; choose "
                f"one between {MIN_OPSET} and {max_opset()}"
            )
        program.model.metadata_props[CONFIG_KEY] = json.dumps(dataclasses.asdict(cfg))
        program.save(out_path, external_data=False)
        log.info("exported %s in %.1f s", out_path, time.perf_counter() - start)
        if check:
            report = check_parity(model, out_path, images=check_images, atol=atol)
            log.info(
                "ONNX parity: max |coords diff| %.3g normalised units (heatmaps %.3g, "
                "confidence %.3g) at batch sizes %s",
                report.coords,
                report.heatmaps,
                report.confidence,
                report.batch_sizes,
            )
    finally:
        model.train(was_training)
    return out_path


def check_parity(
    model: nn.Module,
    onnx_path: str | Path,
    *,
    images: Tensor | None = None,
    batch_sizes: Sequence[int] = (1, 3),
    atol: float = DEFAULT_ATOL,
    seed: int = 0,
) -> ParityReport:
    """Run the ONNX file and the torch model on the same inputs and compare.

    Args:
        model: the torch model (run in eval mode, gradients off; its mode is restored).
        onnx_path: the exported file.
        images: optional ``(N, 3, S, S)`` real crops in ``[0, 1]``, checked as one more batch.
        batch_sizes: sizes of the random batches (uniform noise in ``[0, 1]``, seeded).
        atol: largest allowed coordinate difference, normalised units.
        seed: seed of the random batches.

    Returns:
        :class:`ParityReport` with the largest differences seen.

    Raises:
        OnnxParityError: output shapes differ, or ``max |coords diff| > atol``.
    """
    runner = OnnxModel(onnx_path)
    size = runner.input_size or (runner.config.input_size if runner.config else None)
    if size is None:
        raise ValueError(f"{onnx_path}: the input size is neither static nor in the metadata")
    generator = torch.Generator().manual_seed(seed)
    batches = [torch.rand(b, 3, size, size, generator=generator) for b in batch_sizes]
    if images is not None:
        if images.dim() != 4 or tuple(images.shape[1:]) != (3, size, size):
            raise ValueError(f"images must be (N, 3, {size}, {size}), got {tuple(images.shape)}")
        batches.append(images.detach().float().cpu())
    was_training = model.training
    model.eval()
    device = next(model.parameters(), torch.empty(0)).device
    worst = {"coords": 0.0, "heatmaps": 0.0, "confidence": 0.0}
    try:
        for batch in batches:
            with torch.no_grad():
                ref = model(batch.to(device))
            if not torch.isfinite(ref.coords).all():
                raise OnnxParityError(
                    f"{onnx_path}: the torch model itself gives non-finite coordinates (NaN or "
                    "inf weights?); nothing to compare, and such a model must not be exported"
                )
            got = runner(batch)
            for name in worst:
                a, b = getattr(ref, name).float().cpu(), getattr(got, name)
                if a.shape != b.shape:
                    raise OnnxParityError(
                        f"{onnx_path}: ONNX parity check failed: {name} is {tuple(b.shape)}, "
                        f"torch gives {tuple(a.shape)} (batch {len(batch)})"
                    )
                diff = float((a - b).abs().max())
                worst[name] = max(worst[name], math.inf if math.isnan(diff) else diff)
            if not worst["coords"] <= atol:
                raise OnnxParityError(
                    f"{onnx_path}: ONNX parity check failed: max |coords diff| "
                    f"{worst['coords']:.3g} > {atol:g} normalised units (batch {len(batch)})"
                )
    finally:
        model.train(was_training)
    return ParityReport(
        worst["coords"], worst["heatmaps"], worst["confidence"], tuple(len(b) for b in batches)
    )


class OnnxModel:
    """An exported ``.onnx`` file on onnxruntime, called like the torch model.

    Args:
        path: a file written by :func:`export_onnx`.
        providers: onnxruntime execution providers (default ``["CPUExecutionProvider"]``).

    Attributes:
        config: the ``ModelConfig`` stored in the file's metadata (``None`` for a file exported
            by other means).
        input_size: the static crop side ``S`` of the input, or ``None`` if it is dynamic.

    ``model(images (B, 3, S, S) float in [0, 1]) -> HeadOutput`` with ``coords`` ``(B, J, 2)``,
    ``heatmaps``, ``logits`` (``heatmaps`` again when the file has no ``logits`` output) and
    ``confidence`` ``(B, J)``, as torch tensors on the device of ``images``.
    """

    def __init__(
        self, path: str | os.PathLike[str], providers: Sequence[str] | None = None
    ) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"ONNX file {self.path} does not exist")
        try:
            self.session = ort.InferenceSession(
                str(self.path), providers=list(providers or ["CPUExecutionProvider"])
            )
        except Exception as err:  # onnxruntime raises its own unrelated exception types
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ValueError(f"{self.path}: not a loadable ONNX model: {first}") from err
        inputs = self.session.get_inputs()
        self.outputs = [o.name for o in self.session.get_outputs()]
        needed = {"coords", "heatmaps", "confidence"}
        if len(inputs) != 1 or not needed <= set(self.outputs):
            raise ValueError(
                f"{self.path}: expected one input and outputs {sorted(needed)} "
                f"(a dsntpose export), got inputs {[i.name for i in inputs]}, outputs {self.outputs}"
            )
        self.input_name = inputs[0].name
        shape = inputs[0].shape
        self.input_size = shape[-1] if isinstance(shape[-1], int) else None
        meta = self.session.get_modelmeta().custom_metadata_map
        self.config = ModelConfig(**json.loads(meta[CONFIG_KEY])) if CONFIG_KEY in meta else None

    def __call__(self, images: Tensor) -> HeadOutput:
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(
                f"images must be (B, 3, S, S) RGB in [0, 1], got {tuple(images.shape)}"
            )
        if self.input_size is not None and tuple(images.shape[2:]) != (self.input_size,) * 2:
            raise ValueError(
                f"images must be (B, 3, {self.input_size}, {self.input_size}) for {self.path.name}, "
                f"got {tuple(images.shape)}"
            )
        feed = {self.input_name: images.detach().to("cpu", torch.float32).numpy()}
        values: dict[str, Any] = dict(zip(self.outputs, self.session.run(None, feed)))
        out = {name: torch.from_numpy(v).to(images.device) for name, v in values.items()}
        logits = out.get("logits", out["heatmaps"])
        return HeadOutput(out["coords"], out["heatmaps"], logits, out["confidence"])

    def __repr__(self) -> str:
        return f"OnnxModel({str(self.path)!r})"
