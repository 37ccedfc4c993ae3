"""ONNX export with a proven parity check, and an onnxruntime runner with the model's signature.

:func:`export_onnx` traces a model with the torch dynamo exporter
(``torch.onnx.export(..., dynamo=True)``) into one self-contained ``.onnx`` file:

* input ``images`` ``(batch, 3, S, S)`` float32 RGB in ``[0, 1]``, the batch axis dynamic;
* outputs ``coords`` ``(batch, J, 2)`` normalised ``(x, y)``, ``heatmaps`` ``(batch, J, H, W)``,
  ``logits`` ``(batch, J, H, W)`` and ``confidence`` ``(batch, J)``: the fields of
  :class:`~dsntpose.heads.HeadOutput`; a model with presence heads adds ``presence``
  ``(batch,)`` and ``visibility`` ``(batch, J)`` logits;
* metadata ``dsntpose.model_config``: the model's :class:`~dsntpose.config.ModelConfig` as
  JSON (joint set, input size, head, activation, coords), so the file alone is enough to
  predict (:func:`dsntpose.checkpoint.onnx_metadata`); ``dsntpose.joint_calibration``: a
  presence model's joint-confidence calibration, for the flip test's merged confidence.

The file is written atomically (:func:`dsntpose.checkpoint.atomic_write`), never over the
checkpoint it was exported from.

It then runs the file on onnxruntime next to the torch model (:func:`check_parity`) and raises
:class:`OnnxParityError` when the coordinates differ by more than ``1e-4`` normalised units
(``1e-4`` of half the crop width: 0.011 px on a 224 px crop).

:class:`dsntpose.checkpoint.OnnxModel` runs an exported file so that ``OnnxModel(path)(images)``
returns the same ``HeadOutput`` as the torch model, and the flip test takes its decode from the
same head class (:func:`dsntpose.checkpoint.load_any` opens either).

onnx, onnxscript and onnxruntime (the ``[export]`` extra) are imported inside the functions.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor, nn

from dsntpose.checkpoint import (
    OnnxModel,
    atomic_write,
    load_model,
    onnx_metadata,
    refuse_inputs,
)
from dsntpose.config import ModelConfig

__all__ = [
    "OUTPUT_NAMES",
    "PRESENCE_OUTPUTS",
    "OnnxParityError",
    "ParityReport",
    "check_parity",
    "export_onnx",
]

log = logging.getLogger(__name__)

INPUT_NAME = "images"
OUTPUT_NAMES = ("coords", "heatmaps", "logits", "confidence")
PRESENCE_OUTPUTS = ("presence", "visibility")  # models built with model.presence only
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
    ``confidence`` in ``[0, 1]`` units; ``batch_sizes`` the batch sizes that were run;
    ``presence`` the presence and visibility logits' (0 for a model without them).
    """

    coords: float
    heatmaps: float
    confidence: float
    batch_sizes: tuple[int, ...]
    presence: float = 0.0


class _TupleOutputs(nn.Module):
    """The model with its ``HeadOutput`` flattened to the exported outputs (no ``aux``;
    ``presence`` and ``visibility`` when the model has them)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: Tensor) -> tuple[Tensor, ...]:
        out = self.model(images)
        extra = (out.presence, out.visibility) if out.presence is not None else ()
        return (out.coords, out.heatmaps, out.logits, out.confidence, *extra)


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
    inputs: Iterable[str | os.PathLike[str]] = (),
) -> Path:
    """Export a model to one ONNX file with a dynamic batch axis, then prove parity.

    Args:
        checkpoint_or_model: a checkpoint path or a model object (see
            :func:`dsntpose.checkpoint.load_model`).
        out_path: the ``.onnx`` file to write (parent folders are created; written
            atomically). Weights are stored inside it (no external data file). It must not be
            the checkpoint itself nor one of ``inputs`` (``ValueError``, nothing written).
        config: the ``ModelConfig`` of a model object (a checkpoint carries its own).
        check: run :func:`check_parity` after writing (batches 1 and 3).
        opset: ONNX opset version; ``None`` takes the exporter's default.
        atol: largest allowed coordinate difference, normalised units.
        check_images: optional ``(N, 3, S, S)`` real crops in ``[0, 1]`` for the parity check,
            used in addition to random images.
        inputs: files the model was read from (for a model object), never written over.

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
    inputs = list(inputs)
    if not isinstance(checkpoint_or_model, nn.Module):
        inputs.append(checkpoint_or_model)
    out_path = Path(out_path)
    refuse_inputs(out_path, inputs, "export: output")
    model, cfg = load_model(checkpoint_or_model, config)
    size = cfg.input_size
    was_training = model.training
    model.eval()
    try:
        wrapper = _TupleOutputs(model).eval()
        presence = bool(getattr(model, "has_presence", False))
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
                output_names=list(OUTPUT_NAMES) + list(PRESENCE_OUTPUTS if presence else ()),
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
        program.model.metadata_props.update(
            onnx_metadata(cfg, getattr(model, "joint_calibration", None))
        )
        atomic_write(
            out_path,
            lambda tmp: program.save(tmp, external_data=False),
            inputs=inputs,
            what="export: output",
        )
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
    worst = {"coords": 0.0, "heatmaps": 0.0, "confidence": 0.0, "presence": 0.0}
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
            names = ["coords", "heatmaps", "confidence"]
            if ref.presence is not None or got.presence is not None:
                names += list(PRESENCE_OUTPUTS)
            for name in names:
                a, b = getattr(ref, name), getattr(got, name)
                if a is None or b is None:
                    raise OnnxParityError(
                        f"{onnx_path}: ONNX parity check failed: {name} is an output of "
                        f"{'torch' if b is None else 'the ONNX file'} only"
                    )
                a = a.float().cpu()
                if a.shape != b.shape:
                    raise OnnxParityError(
                        f"{onnx_path}: ONNX parity check failed: {name} is {tuple(b.shape)}, "
                        f"torch gives {tuple(a.shape)} (batch {len(batch)})"
                    )
                diff = float((a - b).abs().max())
                key = "presence" if name in PRESENCE_OUTPUTS else name
                worst[key] = max(worst[key], math.inf if math.isnan(diff) else diff)
            if not worst["coords"] <= atol:
                raise OnnxParityError(
                    f"{onnx_path}: ONNX parity check failed: max |coords diff| "
                    f"{worst['coords']:.3g} > {atol:g} normalised units (batch {len(batch)})"
                )
    finally:
        model.train(was_training)
    return ParityReport(
        worst["coords"],
        worst["heatmaps"],
        worst["confidence"],
        tuple(len(b) for b in batches),
        worst["presence"],
    )
