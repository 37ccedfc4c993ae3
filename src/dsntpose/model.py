"""The pose model: a backbone, a head, the loss that goes with the head, and checkpoints.

* :class:`CoordRegressionModel` chains a backbone (:mod:`dsntpose.backbones`) and a head
  (:mod:`dsntpose.heads`) and returns a :class:`~dsntpose.heads.HeadOutput`.
* :func:`build_model` builds what a config names through the families' dicts
  (:data:`dsntpose.families.BACKBONES`, :data:`~dsntpose.families.HEADS`).
* ``CoordRegressionModel.loss`` scores its ``HeadOutput`` with its head's own loss
  (:mod:`dsntpose.heads`), summed over hourglass stacks.
* :func:`save_model` / :func:`load_checkpoint` write and read a model with its configuration
  (Lightning checkpoints from training, or the plain dict ``save_model`` writes);
  :func:`load_model` takes a path or a model object.

Example:
    >>> import torch
    >>> from dsntpose.config import LossConfig, ModelConfig
    >>> cfg = ModelConfig(backbone="resnet18", output_stride=16, head="dsnt")
    >>> model = build_model(cfg)
    >>> out = model(torch.rand(2, 3, 224, 224))
    >>> out.coords.shape, out.heatmaps.shape
    (torch.Size([2, 16, 2]), torch.Size([2, 16, 14, 14]))
    >>> loss = model.loss(out, torch.zeros(2, 16, 2), torch.ones(2, 16), LossConfig())
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from dsntpose.config import JOINT_SETS, LossConfig, ModelConfig, check_choice
from dsntpose.families import BACKBONES, HEADS
from dsntpose.heads import HeadOutput, PresenceHead, presence_loss

__all__ = [
    "CoordRegressionModel",
    "build_model",
    "load_checkpoint",
    "load_initial_weights",
    "load_model",
    "model_config",
    "model_name",
    "save_model",
]

# Prefix of the model's parameters in a Lightning checkpoint (the LightningModule holds the
# CoordRegressionModel as ``self.model``); save_model writes the same prefix.
STATE_PREFIX = "model."


class CoordRegressionModel(nn.Module):
    """Backbone then head: RGB crops in, normalised joint coordinates out.

    Args:
        backbone: maps ``(B, 3, S, S)`` to features ``(B, C, S/stride, S/stride)``, or (stacked
            hourglass) to a list of per-stack maps ``(B, J, S/4, S/4)``.
        head: a head from :mod:`dsntpose.heads` built for those features.

    ``forward(images)``: ``images`` is ``(B, 3, S, S)`` RGB float in ``[0, 1]`` (the backbone
    applies its own input normalisation). Returns the head's
    :class:`~dsntpose.heads.HeadOutput` (``coords`` ``(B, J, 2)`` normalised). For a backbone
    that returns one output per stack, the head runs on every stack's maps in training mode:
    the last stack's output is returned with the earlier ones, earliest first, in ``aux`` (for
    intermediate supervision in :meth:`loss`). In eval mode only the last stack is decoded
    and ``aux`` is ``()``, which saves the work the answer does not need.
    """

    def __init__(
        self, backbone: nn.Module, head: nn.Module, presence: PresenceHead | None = None
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        if presence is not None:  # registered only when present: old checkpoints load as before
            self.presence = presence

    @property
    def has_presence(self) -> bool:
        """Whether the model reports person presence and joint visibility."""
        return "presence" in self._modules

    def forward(self, images: Tensor) -> HeadOutput:
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(
                f"images must be (B, 3, S, S) RGB in [0, 1], got {tuple(images.shape)}"
            )
        features = self.backbone(images)
        if isinstance(features, Tensor):
            out: HeadOutput = self.head(features)
            if self.has_presence:
                presence, visibility = self.presence(features, out.heatmaps)
                confidence = self.presence.joint_confidence(visibility, out.confidence)
                out = out._replace(presence=presence, visibility=visibility, confidence=confidence)
            return out
        *earlier, last = features
        aux = tuple(self.head(f) for f in earlier) if self.training else ()
        return self.head(last)._replace(aux=aux)

    def loss(
        self,
        output: HeadOutput,
        target: Tensor,
        mask: Tensor,
        cfg: LossConfig | None = None,
        extra: Mapping[str, Tensor] | None = None,
    ) -> Tensor:
        """The training loss of ``output`` as a scalar: the head's own loss
        (``self.head.loss``, see :mod:`dsntpose.heads`), summed over the stacks of a stacked
        hourglass (``output.aux`` and the final one: intermediate supervision).

        Joints with ``mask == 0`` contribute nothing, whatever their target holds (NaN, a
        missing joint's ``(0, 0)``, a point far outside the crop): their targets are replaced
        by the centre before any loss is computed, so no NaN or infinity reaches the masked
        sum.

        Args:
            output: this model's :class:`~dsntpose.heads.HeadOutput`.
            target: ``(B, J, 2)`` normalised ``(x, y)`` ground truth.
            mask: ``(B, J)``, 1 (or ``True``) for joints that count, 0 for missing ones.
            cfg: the loss settings (default ``LossConfig()``).
            extra: for a model with presence and visibility heads, the batch's ``presence``,
                ``presence_mask``, ``visible`` and ``visible_mask`` (see
                :func:`dsntpose.heads.presence_loss`, added to the head's loss); None or
                without those keys: the coordinate loss alone.

        Returns:
            A scalar tensor (0 when every joint is masked).
        """
        expected = tuple(output.coords.shape)
        if tuple(target.shape) != expected:
            raise ValueError(
                f"target must be (B, J, 2) = {expected} normalised, got {tuple(target.shape)}"
            )
        if tuple(mask.shape) != expected[:2]:
            raise ValueError(f"mask must be (B, J) = {expected[:2]}, got {tuple(mask.shape)}")
        mask = mask.to(output.coords.dtype)
        target = torch.where(mask[..., None] > 0, target, torch.zeros_like(target))
        stacks = (*output.aux, output)
        losses = [self.head.loss(out, target, mask, cfg) for out in stacks]
        total = torch.stack(losses).sum()
        if self.has_presence and extra is not None and "presence" in extra:
            total = total + presence_loss(output, dict(extra), cfg or LossConfig())
        return total


def build_model(cfg: ModelConfig) -> CoordRegressionModel:
    """Build the network that ``cfg`` describes (in training mode).

    Args:
        cfg: ``cfg.backbone`` a name of :data:`dsntpose.families.BACKBONES` (built by its
            spec's ``build``: at ``cfg.output_stride`` with ``cfg.weights``, or the hourglass's
            ``cfg.num_stacks`` stacks), ``cfg.head`` a name of :data:`~dsntpose.families.HEADS`
            (its class's ``from_config``), ``cfg.num_joints`` outputs. The FC head is built
            for ``cfg.heatmap_size`` maps, so that model only accepts ``cfg.input_size`` crops.

    Returns:
        A :class:`CoordRegressionModel`.

    Raises:
        ValueError: a combination the networks cannot serve (weights for a backbone without
            pretrained weights, an input size that is not a multiple the backbone needs).
    """
    spec = BACKBONES[cfg.backbone]
    if cfg.weights is not None and not spec.pretrained:
        raise ValueError(
            f"model.weights: the {cfg.backbone} has no pretrained weights (got {cfg.weights!r}); "
            "use None, or load_checkpoint for a trained model"
        )
    if cfg.input_size % spec.input_multiple:
        raise ValueError(
            f"model.input_size: the {cfg.backbone} needs a multiple of {spec.input_multiple}"
            f"{' (256 in the paper)' if cfg.backbone == 'hourglass' else ''}, got {cfg.input_size}"
        )
    backbone = spec.build(cfg)
    in_channels: int | None = None if spec.maps else backbone.out_channels  # type: ignore[assignment]
    head = HEADS[cfg.head].load().from_config(cfg, in_channels)  # type: ignore[attr-defined]
    presence = PresenceHead(in_channels, cfg.num_joints) if cfg.presence and in_channels else None
    return CoordRegressionModel(backbone, head, presence)


def model_config(name: str, *, input_size: int | None = None, joints: str = "mpii") -> ModelConfig:
    """The :class:`~dsntpose.config.ModelConfig` a model name stands for (the one naming used by
    ``dsntpose bench``, ``dsntpose models`` and the docs; :func:`model_name` is its inverse).

    Args:
        name: ``<backbone>-os<stride>[-<head>]`` for a backbone with output strides
            (``resnet50-os8``, ``efficientnet_lite0-os16-heatmap``) or
            ``<backbone>-<stacks>[-<head>]`` for one of fixed stride (``hourglass-8``); the
            head defaults to ``dsnt``.
        input_size: crop side; default the backbone spec's ``default_input`` (224 for ResNets
            and EfficientNet-Lite, 256 for the hourglass).
        joints: the joint set, ``mpii`` or ``lsp``.
    """
    parts = name.split("-")
    head = parts.pop() if len(parts) == 3 else "dsnt"
    heads = "|".join(HEADS)
    if len(parts) != 2 or head not in HEADS:
        raise ValueError(
            f"model name {name!r}: expected <backbone>-os<stride>[-{heads}] or "
            "hourglass-<stacks>[-...], e.g. resnet50-os8, efficientnet_lite0-os16 or hourglass-8"
        )
    backbone, arg = parts
    spec = BACKBONES.get(backbone)
    number = arg.removeprefix("os") if spec is not None and spec.strides else arg
    if spec is not None and number.isdigit() and (number != arg) == bool(spec.strides):
        setting = {"output_stride": int(number)} if spec.strides else {"num_stacks": int(number)}
        return ModelConfig(
            backbone=backbone,
            head=head,
            input_size=input_size or spec.default_input,
            joints=joints,
            **setting,  # type: ignore[arg-type]
        )
    raise ValueError(
        f"model name {name!r}: expected e.g. resnet50-os8, efficientnet_lite0-os16 or hourglass-8"
    )


def model_name(cfg: ModelConfig) -> str:
    """The name :func:`model_config` reads back: ``resnet50-os8``, ``hourglass-2-heatmap``."""
    arg = f"os{cfg.output_stride}" if BACKBONES[cfg.backbone].strides else str(cfg.num_stacks)
    return f"{cfg.backbone}-{arg}" + ("" if cfg.head == "dsnt" else f"-{cfg.head}")


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
    return ModelConfig(**section)


def _joints_name(count: int) -> str:
    """The joint set with ``count`` joints (``"16 joints (mpii)"``), for error messages."""
    names = [name for name in JOINT_SETS if ModelConfig(joints=name).num_joints == count]
    return f"{count} joints ({'/'.join(names) or 'no known set'})"


def _state_problems(model: nn.Module, state: Mapping[str, Tensor], cfg: ModelConfig) -> list[str]:
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


def check_torch_file(path: str | Path, what: str = "checkpoint") -> Path:
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
    path: str | Path, what: str = "checkpoint", map_location: str | torch.device = "cpu"
) -> Any:
    """``torch.load(path, weights_only=True)`` with every failure as a one-line error naming
    ``path``: ``FileNotFoundError`` when missing, ``ValueError`` for a folder, an empty,
    truncated or foreign file, or one that holds objects other than tensors (no pickled code
    is ever run)."""
    path = check_torch_file(path, what)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        if "weights_only" in str(err) or "global" in str(err).lower():
            raise ValueError(
                f"{path}: holds objects other than tensors and plain containers, so it is not "
                f"read (weights_only=True): {first}"
            ) from None
        raise ValueError(f"{what} {path} is not a readable PyTorch file ({first})") from None
    except (RuntimeError, OSError, EOFError, KeyError, ValueError, IndexError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(
            f"{what} {path} cannot be read ({first}); it may be truncated or not a PyTorch "
            "file: use another checkpoint or copy it again"
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


def save_model(model: nn.Module, path: str | Path, config: ModelConfig | Mapping[str, Any]) -> Path:
    """Write ``model`` with its configuration as a plain checkpoint :func:`load_checkpoint` reads.

    Args:
        model: the :class:`CoordRegressionModel` to save.
        path: output file (parent folders are created).
        config: its ``ModelConfig``, or a full run config dict with a ``model`` section (kept
            whole, so ``load_checkpoint`` returns it).

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
    atomic_torch_save({"config": dict(config), "state_dict": state}, path)
    return path


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """``torch.save(obj, path)`` so that ``path`` is either its old self or the whole new
    file: written to a temporary file beside it (same filesystem), flushed with ``fsync`` and
    renamed over it. A failure (a full disk) removes the temporary file and raises
    ``OSError`` naming ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with tmp.open("wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if isinstance(err, OSError):
            raise OSError(err.errno, f"could not write {path}: {err.strerror or err}") from None
        if isinstance(err, RuntimeError):  # torch's writer reports a full disk this way
            first = str(err).splitlines()[0] if str(err) else "write failed"
            raise OSError(f"could not write {path}: {first}") from None
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    return path


def load_checkpoint(
    path: str | Path,
    map_location: str | torch.device = "cpu",
    *,
    joints: str | None = None,
) -> tuple[CoordRegressionModel, ModelConfig, dict[str, Any]]:
    """Rebuild a trained model from a checkpoint file.

    Reads a Lightning checkpoint (``hyper_parameters["config"]`` the run config with a
    ``model`` section, ``state_dict`` keys ``model.*``) or the plain dict of
    :func:`save_model`. The model is built from the config (without downloading its initial
    ``weights``: the checkpoint replaces them) and loaded strictly.

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
            set than ``joints``, or parameters that do not fit the model (the message names the
            joint counts, the shapes that differ and missing/unexpected keys).
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
    state = {
        k.removeprefix(STATE_PREFIX): v
        for k, v in ckpt["state_dict"].items()
        if k.startswith(STATE_PREFIX)
    }
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
    problems = _state_problems(model, state, cfg)
    if problems:
        raise ValueError(f"{path} does not fit {cfg.backbone}/{cfg.head}: {'; '.join(problems)}")
    model.load_state_dict(state)
    return model.to(map_location).eval(), cfg, dict(config)


def load_initial_weights(model: nn.Module, cfg: ModelConfig, path: str | Path) -> ModelConfig:
    """Fine-tuning's start: copy every tensor of a trained network into ``model``.

    The backbone must be the same network. The head may predict another joint set: its
    per-joint tensors are carried over **by joint name** (:func:`dsntpose.data.joints.joint_map`:
    an LSP model starts MPII's upper_neck from its neck; pelvis and thorax keep their fresh
    initialisation). Presence and visibility heads (``model.presence``) that the trained network
    lacks keep their fresh initialisation too.

    Args:
        model: the freshly built network of ``cfg`` (:func:`build_model`), float32.
        cfg: its configuration.
        path: a dsntpose checkpoint (a training run's ``best.ckpt``, a :func:`save_model` file
            or a shipped model; half-precision tensors are cast to the model's float32).

    Returns:
        The checkpoint's :class:`~dsntpose.config.ModelConfig`.

    Raises:
        FileNotFoundError, ValueError: as :func:`load_checkpoint`; and a ``ValueError`` naming
            both networks when the checkpoint's does not fit ``model`` (another backbone,
            stride or head).
    """
    from dsntpose.data.joints import get_joint_set, joint_map

    trained, trained_cfg, _ = load_checkpoint(path)
    state = dict(trained.state_dict())
    own = model.state_dict()
    if trained_cfg.joints != cfg.joints:
        mapping = joint_map(get_joint_set(trained_cfg.joints), get_joint_set(cfg.joints))
        pairs = [(dst, src) for dst, src in enumerate(mapping) if src >= 0]
        for key, value in list(state.items()):
            mine = own.get(key)
            joint_tensor = (
                key.startswith("head.")
                and mine is not None
                and value.dim() >= 1
                and value.shape[0] == trained_cfg.num_joints
                and mine.shape[0] == cfg.num_joints
                and value.shape[1:] == mine.shape[1:]
            )
            if joint_tensor and pairs:
                merged = mine.clone()
                dst, src = zip(*pairs)
                merged[list(dst)] = value[list(src)].to(merged.dtype)
                state[key] = merged
    for key, value in own.items():
        if key.startswith("presence.") and key not in state:
            state[key] = value
    problems = _state_problems(model, state, cfg)
    if problems:
        raise ValueError(
            f"train.init_from: {path} holds a {model_name(trained_cfg)} network for "
            f"{trained_cfg.joints} joints, which does not fit model {model_name(cfg)} for "
            f"{cfg.joints} joints: {'; '.join(problems[:2])}"
        )
    model.load_state_dict(state)
    return trained_cfg


def load_model(
    checkpoint_or_model: str | Path | nn.Module,
    config: ModelConfig | None = None,
    *,
    joints: str | None = None,
    map_location: str | torch.device = "cpu",
) -> tuple[nn.Module, ModelConfig]:
    """A torch model and its configuration from a checkpoint file or a model object.

    Args:
        checkpoint_or_model: a checkpoint path (read by :func:`dsntpose.model.load_checkpoint`)
            or a model whose ``forward(images (B, 3, S, S))`` returns a ``HeadOutput``.
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
    if not isinstance(checkpoint_or_model, (str, Path)):
        raise TypeError(
            f"expected a checkpoint path or an nn.Module, got {type(checkpoint_or_model).__name__}"
        )
    model, cfg, _ = load_checkpoint(checkpoint_or_model, map_location, joints=joints)
    return model, cfg
