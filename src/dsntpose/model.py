"""The pose model: a backbone, a head, the loss that goes with the head, and checkpoints.

* :class:`CoordRegressionModel` chains a backbone (:mod:`dsntpose.backbones`) and a head
  (:mod:`dsntpose.heads`) and returns a :class:`~dsntpose.heads.HeadOutput`.
* :func:`build_model` is the one place where configuration names (``"resnet34"``, ``"dsnt"``)
  turn into classes.
* :func:`loss_for` scores a ``HeadOutput`` with the loss the paper pairs with its head, built
  from :mod:`dsntpose.ops`.
* :func:`save_model` / :func:`load_checkpoint` write and read a model with its configuration
  (Lightning checkpoints from training, or the plain dict ``save_model`` writes).

Example:
    >>> import torch
    >>> from dsntpose.config import LossConfig, ModelConfig
    >>> cfg = ModelConfig(backbone="resnet18", output_stride=16, head="dsnt")
    >>> model = build_model(cfg)
    >>> out = model(torch.rand(2, 3, 224, 224))
    >>> out.coords.shape, out.heatmaps.shape
    (torch.Size([2, 16, 2]), torch.Size([2, 16, 14, 14]))
    >>> loss = loss_for(out, torch.zeros(2, 16, 2), torch.ones(2, 16), LossConfig(), head="dsnt")
"""

from __future__ import annotations

import dataclasses
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from dsntpose import ops
from dsntpose.backbones import StackedHourglass, efficientnet_lite, resnet
from dsntpose.config import HEADS, JOINT_SETS, LossConfig, ModelConfig, check_choice
from dsntpose.heads import DSNTHead, FCHead, HeadOutput, HeatmapHead

__all__ = [
    "CoordRegressionModel",
    "build_model",
    "load_checkpoint",
    "loss_for",
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
    intermediate supervision in :func:`loss_for`). In eval mode only the last stack is decoded
    and ``aux`` is ``()``, which saves the work the answer does not need.
    """

    def __init__(self, backbone: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, images: Tensor) -> HeadOutput:
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(
                f"images must be (B, 3, S, S) RGB in [0, 1], got {tuple(images.shape)}"
            )
        features = self.backbone(images)
        if isinstance(features, Tensor):
            return self.head(features)
        *earlier, last = features
        aux = tuple(self.head(f) for f in earlier) if self.training else ()
        return self.head(last)._replace(aux=aux)


def build_model(cfg: ModelConfig) -> CoordRegressionModel:
    """Build the network that ``cfg`` describes (in training mode).

    Args:
        cfg: backbone ``resnet18`` .. ``resnet152`` or ``efficientnet_lite0`` .. ``_lite2`` (at
            ``cfg.output_stride``, with ``cfg.weights``) or ``hourglass`` (``cfg.num_stacks`` stacks, from scratch); head
            ``dsnt``, ``heatmap`` or ``fc``; ``cfg.num_joints`` outputs. The FC head is built
            for ``cfg.heatmap_size`` maps, so that model only accepts ``cfg.input_size`` crops.

    Returns:
        A :class:`CoordRegressionModel`.

    Raises:
        ValueError: a combination the networks cannot serve (weights for the hourglass, an
            hourglass input size that is not a multiple of 64).
    """
    joints = cfg.num_joints
    backbone: nn.Module
    if cfg.backbone == "hourglass":
        if cfg.weights is not None:
            raise ValueError(
                f"model.weights: the hourglass has no pretrained weights (got {cfg.weights!r}); "
                "use None, or load_checkpoint for a trained model"
            )
        if cfg.input_size % 64:
            raise ValueError(
                f"model.input_size: the hourglass needs a multiple of 64 (256 in the paper), "
                f"got {cfg.input_size}"
            )
        backbone = StackedHourglass(cfg.num_stacks, joints)
        in_channels = None
    elif cfg.backbone.startswith("efficientnet_lite"):
        variant = int(cfg.backbone.removeprefix("efficientnet_lite"))
        backbone = efficientnet_lite(variant, output_stride=cfg.output_stride, weights=cfg.weights)
        in_channels = backbone.out_channels
    else:
        depth = int(cfg.backbone.removeprefix("resnet"))
        backbone = resnet(depth, output_stride=cfg.output_stride, weights=cfg.weights)
        in_channels = backbone.out_channels

    head: nn.Module
    if cfg.head == "dsnt":
        head = DSNTHead(in_channels, joints, cfg.activation, cfg.temperature)
    elif cfg.head == "heatmap":
        head = HeatmapHead(in_channels, joints)
    else:
        head = FCHead(in_channels, joints, cfg.heatmap_size, cfg.activation, cfg.temperature)
    return CoordRegressionModel(backbone, head)


def _regularizer(probs: Tensor, target: Tensor, cfg: LossConfig) -> Tensor:
    """``(B, J)`` regulariser of probability maps against ``N(target, sigma^2)`` (sigma in px)."""
    if cfg.regularizer == "var":
        return ops.variance_reg_losses(probs, cfg.sigma)
    if cfg.regularizer == "kl":
        return ops.kl_reg_losses(probs, target, cfg.sigma)
    return ops.js_reg_losses(probs, target, cfg.sigma)


def _stack_loss(
    out: HeadOutput, target: Tensor, mask: Tensor, cfg: LossConfig, head: str
) -> Tensor:
    """The loss of one stack's output (see :func:`loss_for`)."""
    if head == "heatmap":
        targets = ops.heatmap_targets(target, tuple(out.heatmaps.shape[-2:]), cfg.heatmap_sigma)
        return ops.average_loss(ops.heatmap_mse_losses(out.heatmaps, targets), mask)
    losses = ops.euclidean_losses(out.coords, target)
    if cfg.regularizer != "none":
        losses = losses + cfg.reg_weight * _regularizer(out.heatmaps, target, cfg)
    return ops.average_loss(losses, mask)


def loss_for(
    output: HeadOutput, target: Tensor, mask: Tensor, cfg: LossConfig, *, head: str
) -> Tensor:
    """The training loss the paper pairs with ``head``, as a scalar.

    * ``dsnt``: Euclidean distance between ``output.coords`` and ``target`` plus
      ``cfg.reg_weight`` times the regulariser ``cfg.regularizer`` (``none``, ``var``, ``kl``
      or ``js``, target Gaussian sigma ``cfg.sigma`` heatmap pixels) on ``output.heatmaps``,
      averaged over visible joints: ``average_loss(euclidean + reg_weight * reg, mask)``.
    * ``heatmap``: MSE between the raw maps and unnormalised Gaussians (peak 1, sigma
      ``cfg.heatmap_sigma`` px) at the targets, the mean over cells per joint, averaged over
      visible joints. (The authors' code averaged over all joints, masked ones included.)
    * ``fc``: as ``dsnt``: Euclidean, plus the regulariser on the FC head's normalised maps when
      ``cfg.regularizer`` is not ``none``, as the authors' code did (their FC baseline ran with
      ``none``; set ``loss.regularizer: none`` to reproduce it).

    With a stacked hourglass (``output.aux`` not empty) the losses of all stacks, ``aux`` and
    the final one, are summed (intermediate supervision).

    Joints with ``mask == 0`` contribute nothing, whatever their target holds (NaN, a missing
    joint's ``(0, 0)``, a point far outside the crop): their targets are replaced by the centre
    before any loss is computed, so no NaN or infinity reaches the masked sum.

    Args:
        output: a model's :class:`~dsntpose.heads.HeadOutput`.
        target: ``(B, J, 2)`` normalised ``(x, y)`` ground truth.
        mask: ``(B, J)``, 1 (or ``True``) for joints that count, 0 for missing ones.
        cfg: the loss settings.
        head: the head that produced ``output``: ``dsnt``, ``heatmap`` or ``fc``
            (``ModelConfig.head``); the output alone does not say which loss fits.

    Returns:
        A scalar tensor (0 when every joint is masked).
    """
    check_choice("head", head, HEADS)
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
    return torch.stack([_stack_loss(out, target, mask, cfg, head) for out in stacks]).sum()


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
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {STATE_PREFIX + k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save({"config": dict(config), "state_dict": state}, path)
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
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        raise ValueError(
            f"{path}: holds objects other than tensors and plain containers, so it is not read "
            f"(weights_only=True): {str(err).splitlines()[0]}"
        ) from err
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
    model = build_model(dataclasses.replace(cfg, weights=None))
    problems = _state_problems(model, state, cfg)
    if problems:
        raise ValueError(f"{path} does not fit {cfg.backbone}/{cfg.head}: {'; '.join(problems)}")
    model.load_state_dict(state)
    return model.to(map_location).eval(), cfg, dict(config)
