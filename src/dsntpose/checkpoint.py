"""The model file formats, in one place: read, write atomically, ship, and open any of them.

Formats (all read with ``torch.load(weights_only=True)``: no pickled code ever runs):

* a Lightning checkpoint from ``dsntpose train``: ``hyper_parameters["config"]`` the full run
  config, ``state_dict`` keys ``model.backbone.*``, ``model.head.*`` (``model.presence.*``),
  and with ``train.ema_decay`` the average of those weights under ``ema.network.*`` (what
  every reader here takes as the model);
* the plain dict of :func:`save_model`: ``{"config": run config, "state_dict": {"model.*"}}``;
* a shipped model (:func:`save_half`): the same dict with float16 tensors and a ``"card"``,
  under ``dsntpose/weights/`` and named in :data:`PRETRAINED`;
* an ONNX file from :func:`dsntpose.export.export_onnx`, whose metadata key
  :data:`CONFIG_KEY` holds the ``ModelConfig`` as JSON (:func:`onnx_metadata`), run by
  :class:`OnnxModel` with its head's own decode and flip rules.

:func:`load_any` opens any of them (or a shipped model's name) as a :class:`LoadedModel`.
Every write goes through :func:`atomic_write`: the target is either its old self or the
whole new file, and a command never writes onto one of its own inputs.

Example:
    >>> loaded = load_any("lsp_efficientnet_lite0")  # doctest: +SKIP
    >>> loaded.kind, loaded.config.joints  # doctest: +SKIP
    ('torch', 'lsp')
"""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, Literal, NamedTuple

import torch
from torch import Tensor, nn

from dsntpose.config import JOINT_SETS, ModelConfig, check_choice
from dsntpose.files import atomic_write, clean_stale_temporaries, refuse_inputs
from dsntpose.heads import HeadOutput
from dsntpose.model import CoordRegressionModel, build_model

__all__ = [
    "AVERAGE_PREFIX",
    "CONFIG_KEY",
    "DEFAULT_MODEL",
    "LSP_MODEL",
    "PRETRAINED",
    "STATE_PREFIX",
    "LoadedModel",
    "OnnxModel",
    "atomic_torch_save",
    "atomic_write",
    "check_torch_file",
    "checkpoint_path",
    "clean_stale_temporaries",
    "load_any",
    "load_checkpoint",
    "load_model",
    "load_onnx",
    "nonfinite_tensors",
    "onnx_metadata",
    "pretrained_path",
    "read_torch_file",
    "refuse_inputs",
    "save_half",
    "save_model",
    "state_problems",
]

# Prefix of the model's parameters in a Lightning checkpoint (the LightningModule holds the
# CoordRegressionModel as ``self.model``); save_model and save_half write the same prefix.
STATE_PREFIX = "model."
# a training run's average of the weights (train.ema_decay), read before STATE_PREFIX's
AVERAGE_PREFIX = "ema.network."
# The ONNX metadata key holding the ModelConfig as JSON.
CONFIG_KEY = "dsntpose.model_config"
# The ONNX metadata key holding a presence model's joint-confidence calibration (JSON list):
# the flip test recomputes the confidence of the merged maps with it.
CALIBRATION_KEY = "dsntpose.joint_calibration"
# Shipped models: name -> file under dsntpose/weights/. The default is the whole-photo model
# (MPII's 16 joints, presence and visibility): it beats the LSP model on LSP test itself with
# the annotation boxes (the LSP model's own protocol) and on the MPII frames (docs/results.md),
# and says "no person found" where there is nobody. The LSP model (LSP's 14 joints, no
# presence head) stays available by name.
PRETRAINED = {
    "lsp_efficientnet_lite0": "lsp_efficientnet_lite0.pt",
    "whole_efficientnet_lite0": "whole_efficientnet_lite0.pt",
}
DEFAULT_MODEL = "whole_efficientnet_lite0"
LSP_MODEL = "lsp_efficientnet_lite0"
MAX_SHIPPED_MB = 15.0

PathLike = str | os.PathLike[str]


# --------------------------------------------------------------------------------------------
# Reading


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def check_torch_file(path: PathLike, what: str = "checkpoint") -> Path:
    """Refuse, with a one-line ``ValueError`` naming ``path``, a file that cannot be a whole
    PyTorch file: a folder, an empty file, or a zip archive (PyTorch's format) whose central
    directory is missing (a file truncated by a full disk or a partial copy). Cheap: reads the
    zip directory only. ``FileNotFoundError`` when nothing is there."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{what} {path} is a folder, not a file; give the .ckpt/.pt file in it")
    if not path.exists():
        raise FileNotFoundError(f"{what} {path} does not exist")
    size = path.stat().st_size
    if size == 0:
        raise ValueError(
            f"{what} {path} is empty (0 bytes): it was not written completely; use another "
            "checkpoint or copy it again"
        )
    with path.open("rb") as f:
        magic = f.read(4)
    if magic == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(path) as zf:
                zf.infolist()
        except (zipfile.BadZipFile, OSError, EOFError) as err:
            raise ValueError(
                f"{what} {path} is truncated or damaged ({size} bytes; {err}): it was not "
                "written or copied completely; use another checkpoint or copy it again"
            ) from None
    elif magic[:1] != b"\x80":  # neither a zip nor a legacy pickle file
        raise ValueError(
            f"{what} {path} is not a PyTorch file (it starts with {magic!r}); give a .ckpt "
            "from dsntpose train or a file written by torch.save"
        )
    return path


def read_torch_file(
    path: PathLike, what: str = "checkpoint", map_location: str | torch.device = "cpu"
) -> Any:
    """``torch.load(path, weights_only=True)`` with every failure as a one-line error naming
    ``path``: ``FileNotFoundError`` when missing, ``ValueError`` for a folder, an empty,
    truncated or foreign file, or one that holds objects other than tensors (no pickled code
    is ever run)."""
    path = check_torch_file(path, what)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        first = _first_line(err)
        if "weights_only" in str(err) or "global" in str(err).lower():
            raise ValueError(
                f"{path}: holds objects other than tensors and plain containers, so it is not "
                f"read (weights_only=True): {first}"
            ) from None
        raise ValueError(f"{what} {path} is not a readable PyTorch file ({first})") from None
    except (RuntimeError, OSError, EOFError, KeyError, ValueError, IndexError) as err:
        raise ValueError(
            f"{what} {path} cannot be read ({_first_line(err)}); it may be truncated or not a "
            "PyTorch file: use another checkpoint or copy it again"
        ) from None


def nonfinite_tensors(state: Mapping[str, Any]) -> list[str]:
    """The keys of the floating-point tensors in ``state`` that hold NaN or inf."""
    return [
        key
        for key, value in state.items()
        if isinstance(value, Tensor)
        and value.is_floating_point()
        and value.numel()
        and not bool(torch.isfinite(value).all())
    ]


def _model_config_from(config: Mapping[str, Any], source: str) -> ModelConfig:
    """``ModelConfig`` from the ``model`` section of a run config, with one-line errors."""
    section = config.get("model")
    if not isinstance(section, Mapping):
        raise ValueError(f"{source}: the config has no 'model' section (keys: {sorted(config)})")
    fields = {f.name for f in dataclasses.fields(ModelConfig)}
    unknown = sorted(set(section) - fields)
    if unknown:
        raise ValueError(
            f"{source}: unknown model config fields {unknown}; known: {sorted(fields)}"
        )
    try:  # validated (and its sizes bounded) before anything is built
        return ModelConfig(**section)
    except (ValueError, TypeError) as err:
        raise ValueError(f"{source}: its model config is refused: {err}") from None


def _joints_name(count: int) -> str:
    """The joint set with ``count`` joints (``"16 joints (mpii)"``), for error messages."""
    names = [name for name in JOINT_SETS if ModelConfig(joints=name).num_joints == count]
    return f"{count} joints ({'/'.join(names) or 'no known set'})"


def state_problems(model: nn.Module, state: Mapping[str, Tensor], cfg: ModelConfig) -> list[str]:
    """Differences between ``model``'s state_dict and ``state``, as readable phrases."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [k for k in own if k in state and state[k].shape != own[k].shape]
    problems = []
    for key in wrong:
        ckpt_shape, own_shape = tuple(state[key].shape), tuple(own[key].shape)
        if own_shape[0] == cfg.num_joints and ckpt_shape[1:] == own_shape[1:]:
            problems.append(
                f"checkpoint is for {_joints_name(ckpt_shape[0])} but its config says "
                f"{_joints_name(cfg.num_joints)} ({key})"
            )
            break
    problems += [
        f"{k} is {tuple(state[k].shape)} but the model has {tuple(own[k].shape)}" for k in wrong[:4]
    ]
    if len(wrong) > 4:
        problems.append(f"{len(wrong) - 4} more tensors differ in shape")
    if missing:
        problems.append(f"{len(missing)} missing keys ({', '.join(missing[:4])}, ...)")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys ({', '.join(unexpected[:4])}, ...)")
    return problems


def load_checkpoint(
    path: PathLike,
    map_location: str | torch.device = "cpu",
    *,
    joints: str | None = None,
) -> tuple[CoordRegressionModel, ModelConfig, dict[str, Any]]:
    """Rebuild a trained model from a checkpoint file.

    Reads a Lightning checkpoint (``hyper_parameters["config"]`` the run config with a
    ``model`` section, ``state_dict`` keys ``model.*``; a run with ``train.ema_decay`` also
    holds the average of its weights under ``ema.network.*``, and that is what is read) or the
    plain dict of :func:`save_model` (a shipped model's float16 tensors are cast to the
    model's float32).
    The model is built from the config (without downloading its initial ``weights``: the
    checkpoint replaces them) and loaded strictly.

    Args:
        path: the checkpoint file, read with ``torch.load(weights_only=True)``.
        map_location: device for the tensors and the returned model.
        joints: if given (``"mpii"``/``"lsp"``), the joint set the caller needs; a checkpoint
            for another set is an error.

    Returns:
        ``(model, model_config, config)``: the model in eval mode on ``map_location``, its
        :class:`~dsntpose.config.ModelConfig` and the whole run config dict.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a dsntpose checkpoint, a config that does not build, a different joint
            set than ``joints``, NaN or inf weights, or parameters that do not fit the model
            (the message names the joint counts, the shapes that differ and missing/unexpected
            keys).
    """
    path = Path(path)
    ckpt = read_torch_file(path, "checkpoint", map_location=map_location)
    if not isinstance(ckpt, Mapping) or "state_dict" not in ckpt:
        raise ValueError(f"{path}: not a checkpoint (expected a dict with a 'state_dict')")
    hparams = ckpt.get("hyper_parameters", {})
    config = hparams.get("config") if "config" in hparams else ckpt.get("config")
    if not isinstance(config, Mapping):
        raise ValueError(
            f"{path}: no run config (expected hyper_parameters['config'] or 'config' as a dict)"
        )
    cfg = _model_config_from(config, str(path))
    if joints is not None and joints != cfg.joints:
        check_choice("joints", joints, JOINT_SETS)
        wanted = ModelConfig(joints=joints).num_joints
        raise ValueError(
            f"{path}: checkpoint is for {_joints_name(cfg.num_joints)} but "
            f"{_joints_name(wanted)} were asked for"
        )
    saved = ckpt["state_dict"]
    prefix = AVERAGE_PREFIX if any(k.startswith(AVERAGE_PREFIX) for k in saved) else STATE_PREFIX
    state = {k.removeprefix(prefix): v for k, v in saved.items() if k.startswith(prefix)}
    if not state:
        raise ValueError(f"{path}: no '{STATE_PREFIX}*' parameters in its state_dict")
    bad = nonfinite_tensors(state)
    if bad:
        raise ValueError(
            f"{path}: {len(bad)} weight tensors hold NaN or inf values ({', '.join(bad[:3])}"
            f"{', ...' if len(bad) > 3 else ''}); the run that wrote it diverged: use an "
            "earlier checkpoint or retrain with a lower optim.lr"
        )
    model = build_model(dataclasses.replace(cfg, weights=None))
    if getattr(model, "has_presence", False):  # an earlier calibration layout
        model.presence.upgrade_state(state, "presence.")
    problems = state_problems(model, state, cfg)
    if problems:
        raise ValueError(f"{path} does not fit {cfg.backbone}/{cfg.head}: {'; '.join(problems)}")
    model.load_state_dict(state)
    return model.to(map_location).eval(), cfg, dict(config)


def load_model(
    checkpoint_or_model: PathLike | nn.Module,
    config: ModelConfig | None = None,
    *,
    joints: str | None = None,
    map_location: str | torch.device = "cpu",
) -> tuple[nn.Module, ModelConfig]:
    """A torch model and its configuration from a checkpoint file or a model object.

    Args:
        checkpoint_or_model: a checkpoint path (read by :func:`load_checkpoint`) or a model
            whose ``forward(images (B, 3, S, S))`` returns a ``HeadOutput``.
        config: the model's ``ModelConfig``; required for a model object (it tells the joint
            set and the input size), ignored for a checkpoint, which carries its own.
        joints: the joint set the caller needs (``"mpii"``/``"lsp"``); another one is an error.
        map_location: device for a model read from a checkpoint.

    Returns:
        ``(model, config)``; a checkpoint's model is in eval mode, a model object is returned
        as it is.
    """
    if isinstance(checkpoint_or_model, nn.Module):
        if config is None:
            raise ValueError("a model object needs its ModelConfig: pass config=ModelConfig(...)")
        if joints is not None and joints != config.joints:
            raise ValueError(f"the model is for joint set {config.joints!r}, not {joints!r}")
        return checkpoint_or_model, config
    if not isinstance(checkpoint_or_model, (str, os.PathLike)):
        raise TypeError(
            f"expected a checkpoint path or an nn.Module, got {type(checkpoint_or_model).__name__}"
        )
    model, cfg, _ = load_checkpoint(checkpoint_or_model, map_location, joints=joints)
    return model, cfg


# --------------------------------------------------------------------------------------------
# Writing


def atomic_torch_save(obj: Any, path: PathLike, *, inputs: Iterable[PathLike] = ()) -> Path:
    """``torch.save(obj, path)`` through :func:`atomic_write`."""

    def write(tmp: Path) -> None:
        with tmp.open("wb") as f:
            torch.save(obj, f)
            f.flush()

    return atomic_write(path, write, inputs=inputs)


def save_model(
    model: nn.Module,
    path: PathLike,
    config: ModelConfig | Mapping[str, Any],
    *,
    inputs: Iterable[PathLike] = (),
) -> Path:
    """Write ``model`` with its configuration as a plain checkpoint :func:`load_checkpoint` reads.

    Args:
        model: the :class:`~dsntpose.model.CoordRegressionModel` to save.
        path: output file (parent folders are created; written atomically).
        config: its ``ModelConfig``, or a full run config dict with a ``model`` section (kept
            whole, so ``load_checkpoint`` returns it).
        inputs: files the caller read, which ``path`` must not be.

    Returns:
        ``path``. The file holds ``{"config": {...}, "state_dict": {"model.<key>": tensor}}``,
        tensors and plain Python values only (readable with ``torch.load(weights_only=True)``).
    """
    if isinstance(config, ModelConfig):
        config = {"model": dataclasses.asdict(config)}
    _model_config_from(config, "save_model")
    path = Path(path)
    state = {STATE_PREFIX + k: v.detach().cpu() for k, v in model.state_dict().items()}
    bad = nonfinite_tensors(state)
    if bad:
        raise ValueError(
            f"save_model {path}: {len(bad)} weight tensors hold NaN or inf values "
            f"({', '.join(bad[:3])}); not saved"
        )
    atomic_torch_save({"config": dict(config), "state_dict": state}, path, inputs=inputs)
    return path


def save_half(checkpoint: PathLike, dest: PathLike, *, extra: dict[str, Any] | None = None) -> Path:
    """Write a training checkpoint as a shipped model: float tensors in half precision.

    The format of :func:`save_model` (the run config, ``model.*`` keys) with every floating
    point tensor in float16 and ``extra`` under ``"card"``; written atomically.

    Args:
        checkpoint: a Lightning checkpoint from ``dsntpose train`` (or a ``save_model`` file).
        dest: the output file (not ``checkpoint`` itself).
        extra: plain values stored beside the config under ``"card"`` (data, recipe, scores).

    Returns:
        ``dest``. Raises ``ValueError`` when it would exceed ``MAX_SHIPPED_MB`` or when a weight
        is not finite in half precision (a diverged model is never shipped); ``dest`` is then
        left as it was.
    """
    model, _, config = load_checkpoint(checkpoint)
    state = {
        STATE_PREFIX + k: (v.half() if v.is_floating_point() else v).detach().cpu().contiguous()
        for k, v in model.state_dict().items()
    }
    bad = nonfinite_tensors(state)
    if bad:
        raise ValueError(
            f"{checkpoint}: {', '.join(bad[:3])} hold non-finite values in half precision; "
            "not shipped"
        )
    payload: dict[str, Any] = {"config": config, "state_dict": state}
    if extra:
        payload["card"] = dict(extra)
    dest = Path(dest)

    def write(tmp: Path) -> None:
        with tmp.open("wb") as f:
            torch.save(payload, f)
            f.flush()
        size_mb = tmp.stat().st_size / 2**20
        if size_mb > MAX_SHIPPED_MB:
            raise ValueError(f"{dest}: {size_mb:.1f} MB exceeds the {MAX_SHIPPED_MB} MB limit")

    return atomic_write(dest, write, inputs=[checkpoint])


# --------------------------------------------------------------------------------------------
# Shipped models and ONNX files


def pretrained_path(name: str = DEFAULT_MODEL) -> Path:
    """The file of the shipped model ``name``.

    Raises:
        ValueError: ``name`` is not a shipped model (the message lists them).
        FileNotFoundError: the package was installed without its weights file.
    """
    if name not in PRETRAINED:
        raise ValueError(f"no shipped model {name!r}; shipped: {', '.join(sorted(PRETRAINED))}")
    path = Path(str(resources.files("dsntpose") / "weights" / PRETRAINED[name]))
    if not path.is_file():
        raise FileNotFoundError(
            f"the shipped model {name!r} is not installed ({path} is missing); reinstall "
            "dsntpose, or pass a checkpoint"
        )
    return path


def checkpoint_path(source: PathLike) -> Path:
    """The file ``source`` names: a shipped model's name (``lsp_efficientnet_lite0``) or a path.

    Raises:
        FileNotFoundError: neither a shipped model nor an existing file (the message lists the
            shipped models).
    """
    if str(source) in PRETRAINED:
        return pretrained_path(str(source))
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no such checkpoint file, and not a shipped model "
            f"({', '.join(sorted(PRETRAINED))})"
        )
    return path


def onnx_metadata(cfg: ModelConfig, calibration: Tensor | None = None) -> dict[str, str]:
    """The metadata an exported file carries: :data:`CONFIG_KEY` -> the ``ModelConfig`` JSON
    and, for a model with presence heads, :data:`CALIBRATION_KEY` -> its joint-confidence
    calibration (:class:`~dsntpose.heads.PresenceHead`) as a JSON list."""
    meta = {CONFIG_KEY: json.dumps(dataclasses.asdict(cfg))}
    if calibration is not None:
        meta[CALIBRATION_KEY] = json.dumps([float(w) for w in calibration.detach().cpu()])
    return meta


def _calibration_from_metadata(meta: Mapping[str, str], source: str) -> Tensor | None:
    """The calibration stored by :func:`onnx_metadata`, None when the key is absent."""
    if CALIBRATION_KEY not in meta:
        return None
    try:
        values = json.loads(meta[CALIBRATION_KEY])
        return torch.tensor([float(v) for v in values], dtype=torch.float32)
    except (ValueError, TypeError) as err:
        raise ValueError(
            f"{source}: its {CALIBRATION_KEY} metadata is not a list of numbers ({err})"
        ) from None


def _config_from_metadata(meta: Mapping[str, str], source: str) -> ModelConfig | None:
    """The ``ModelConfig`` stored by :func:`onnx_metadata`, None when the key is absent."""
    if CONFIG_KEY not in meta:
        return None
    try:
        section = json.loads(meta[CONFIG_KEY])
    except ValueError as err:
        raise ValueError(f"{source}: its {CONFIG_KEY} metadata is not JSON ({err})") from None
    if not isinstance(section, Mapping):
        raise ValueError(f"{source}: its {CONFIG_KEY} metadata is not a JSON object")
    return _model_config_from({"model": section}, source)


def _decoder_head(cfg: ModelConfig) -> nn.Module:
    """The head class ``cfg`` builds, for its decode, flip modes and view merge (built on the
    meta device: no memory, and its parameters are never used by an ONNX runner)."""
    with torch.device("meta"):
        return build_model(dataclasses.replace(cfg, weights=None)).head


class OnnxModel:
    """An exported ``.onnx`` file on onnxruntime, called like the torch model.

    Args:
        path: a file written by :func:`dsntpose.export.export_onnx`.
        providers: onnxruntime execution providers (default ``["CPUExecutionProvider"]``).
        config: the ``ModelConfig`` of a file exported by other means (one in the file's
            metadata wins).
        threads: onnxruntime's intra-op threads (None: its default, every core).

    Attributes:
        config: the model's ``ModelConfig`` (None when neither the file nor ``config`` has one).
        head: the head class of ``config`` (None without one): the flip test takes its decode,
            flip modes and view merge from it, as for the torch model, never from a copy.
        joint_calibration: a presence model's joint-confidence calibration (None for a file
            without one), as the torch model's :attr:`~dsntpose.model.CoordRegressionModel.joint_calibration`.
        input_size: the static crop side ``S`` of the input, or ``None`` if it is dynamic.

    ``model(images (B, 3, S, S) float in [0, 1]) -> HeadOutput`` with ``coords`` ``(B, J, 2)``,
    ``heatmaps``, ``logits`` (``heatmaps`` again when the file has no ``logits`` output),
    ``confidence`` ``(B, J)`` and, for a model with presence heads, ``presence`` ``(B,)`` and
    ``visibility`` ``(B, J)`` logits, as torch tensors on the device of ``images``.
    """

    def __init__(
        self,
        path: PathLike,
        providers: Sequence[str] | None = None,
        *,
        config: ModelConfig | None = None,
        threads: int | None = None,
    ) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"ONNX file {self.path} does not exist")
        try:
            options = ort.SessionOptions()
            if threads is not None:  # intra-op threads (dsntpose.runtime's policy)
                options.intra_op_num_threads = int(threads)
                options.inter_op_num_threads = 1
            self.session = ort.InferenceSession(
                str(self.path), options, providers=list(providers or ["CPUExecutionProvider"])
            )
        except Exception as err:  # onnxruntime raises its own unrelated exception types
            raise ValueError(f"{self.path}: not a loadable ONNX model: {_first_line(err)}") from err
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
        self.config = _config_from_metadata(meta, str(self.path)) or config
        self.head = _decoder_head(self.config) if self.config is not None else None
        self.joint_calibration = _calibration_from_metadata(meta, str(self.path))

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
        return HeadOutput(
            out["coords"],
            out["heatmaps"],
            logits,
            out["confidence"],
            presence=out.get("presence"),
            visibility=out.get("visibility"),
        )

    def __repr__(self) -> str:
        return f"OnnxModel({str(self.path)!r})"


class LoadedModel(NamedTuple):
    """What :func:`load_any` opens.

    Attributes:
        model: callable ``(B, 3, S, S)`` RGB in ``[0, 1]`` -> :class:`~dsntpose.heads.HeadOutput`
            (a :class:`~dsntpose.model.CoordRegressionModel` in eval mode, or an
            :class:`OnnxModel`); either has a ``head`` with the decode and flip rules.
        config: its :class:`~dsntpose.config.ModelConfig`.
        kind: ``"torch"`` or ``"onnx"``.
        source: the file it was read from.
        run: the whole run config dict a torch checkpoint carries (``data`` and the other
            sections); an ONNX file's is ``{"model": ...}`` only.
    """

    model: CoordRegressionModel | OnnxModel
    config: ModelConfig
    kind: Literal["torch", "onnx"]
    source: Path
    run: Mapping[str, Any] | None = None


def load_onnx(
    path: PathLike,
    *,
    joints: str | None = None,
    config: ModelConfig | None = None,
    providers: Sequence[str] | None = None,
) -> LoadedModel:
    """An exported ONNX file (whatever its suffix) as a :class:`LoadedModel` of kind ``"onnx"``;
    the arguments and errors are :func:`load_any`'s."""
    runner = OnnxModel(path, providers, config=config)
    if runner.config is None:
        raise ValueError(f"{runner.path}: no dsntpose config in its metadata: pass config=")
    if joints is not None and joints != runner.config.joints:
        raise ValueError(
            f"{runner.path}: the model is for joint set {runner.config.joints!r}, not {joints!r}"
        )
    run = {"model": dataclasses.asdict(runner.config)}
    return LoadedModel(runner, runner.config, "onnx", runner.path, run)


def load_any(
    path_or_name: PathLike,
    *,
    map_location: str | torch.device = "cpu",
    joints: str | None = None,
    config: ModelConfig | None = None,
    providers: Sequence[str] | None = None,
) -> LoadedModel:
    """Open a model from a shipped model's name, a ``.ckpt``/``.pt`` checkpoint or a ``.onnx``.

    Args:
        path_or_name: ``lsp_efficientnet_lite0`` (see :data:`PRETRAINED`), a Lightning
            checkpoint, a :func:`save_model` / :func:`save_half` file, or an exported ONNX file
            (by its ``.onnx`` suffix).
        map_location: device of a torch model (ONNX runs on onnxruntime's CPU provider unless
            ``providers`` says otherwise).
        joints: the joint set the caller needs; a model for another is a ``ValueError``.
        config: the ``ModelConfig`` of an ONNX file without dsntpose metadata.
        providers: onnxruntime execution providers.

    Raises:
        FileNotFoundError: neither a shipped model nor an existing file.
        ValueError: a file that is not a dsntpose model (one line naming it), or one for
            another joint set than ``joints``.
    """
    if str(path_or_name) in PRETRAINED:
        source = pretrained_path(str(path_or_name))
    else:
        source = Path(path_or_name)
        if not source.exists():
            raise FileNotFoundError(
                f"checkpoint {source} does not exist, and it is not a shipped model "
                f"({', '.join(sorted(PRETRAINED))})"
            )
    if source.suffix.lower() == ".onnx":
        return load_onnx(source, joints=joints, config=config, providers=providers)
    model, cfg, run = load_checkpoint(source, map_location, joints=joints)
    return LoadedModel(model, cfg, "torch", source, run)
