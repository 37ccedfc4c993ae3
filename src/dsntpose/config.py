"""Run configuration as plain dataclasses.

Field names equal the keyword arguments of the code they configure, so a YAML file, the CLI's
dotted overrides (``--model.output_stride 16``) and Python code all speak the same names. This
module imports nothing heavy and never the CLI; validation happens in ``__post_init__`` so a bad
value fails where it is written, with the key and the allowed values in the message.
"""

from __future__ import annotations

from dataclasses import dataclass

BACKBONES = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "hourglass")
HEADS = ("dsnt", "heatmap", "fc")
ACTIVATIONS = ("softmax", "abs", "relu", "sigmoid")
REGULARIZERS = ("none", "var", "kl", "js")
JOINT_SETS = ("mpii", "lsp")
OUTPUT_STRIDES = (4, 8, 16, 32)


def check_choice(key: str, value: object, allowed: tuple[object, ...]) -> None:
    """Raise ``ValueError`` naming ``key`` and the allowed values when ``value`` is not one."""
    if value not in allowed:
        raise ValueError(f"{key}: {value!r} is not allowed; choose one of {', '.join(map(repr, allowed))}")


@dataclass
class ModelConfig:
    """What network to build.

    Attributes:
        backbone: ``resnet18`` .. ``resnet152`` or ``hourglass``.
        output_stride: ResNet output stride 32, 16, 8 or 4 (224 px in -> 7, 14, 28, 56 px maps).
            The hourglass always has stride 4.
        num_stacks: hourglass stacks (1, 2, 4 or 8).
        head: output strategy: ``dsnt``, ``heatmap`` (heatmap matching) or ``fc``.
        activation: heatmap normalisation for ``dsnt``/``fc``: softmax, abs, relu, sigmoid.
        temperature: softmax temperature (logits are divided by it).
        joints: joint set, ``mpii`` (16) or ``lsp`` (14).
        weights: backbone weights: None (random), ``"imagenet"`` or a local file path.
        input_size: side of the square input crop in pixels (224 for ResNets, 256 hourglass).
    """

    backbone: str = "resnet34"
    output_stride: int = 8
    num_stacks: int = 2
    head: str = "dsnt"
    activation: str = "softmax"
    temperature: float = 1.0
    joints: str = "mpii"
    weights: str | None = None
    input_size: int = 224

    def __post_init__(self) -> None:
        check_choice("model.backbone", self.backbone, BACKBONES)
        check_choice("model.head", self.head, HEADS)
        check_choice("model.activation", self.activation, ACTIVATIONS)
        check_choice("model.joints", self.joints, JOINT_SETS)
        if self.backbone != "hourglass":
            check_choice("model.output_stride", self.output_stride, OUTPUT_STRIDES)
        if self.num_stacks < 1:
            raise ValueError(f"model.num_stacks: must be >= 1, got {self.num_stacks}")
        if self.temperature <= 0:
            raise ValueError(f"model.temperature: must be > 0, got {self.temperature}")
        if self.input_size % 32:
            raise ValueError(f"model.input_size: must be a multiple of 32, got {self.input_size}")

    @property
    def num_joints(self) -> int:
        return {"mpii": 16, "lsp": 14}[self.joints]

    @property
    def stride(self) -> int:
        return 4 if self.backbone == "hourglass" else self.output_stride

    @property
    def heatmap_size(self) -> int:
        return self.input_size // self.stride


@dataclass
class LossConfig:
    """How the head's output is scored against the target (see ``dsntpose.model.loss_for``).

    Attributes:
        regularizer: DSNT heatmap regulariser: ``none``, ``var``, ``kl`` or ``js``.
        reg_weight: lambda, the regulariser's weight (the paper uses 1; ``var`` used 100).
        sigma: regulariser target Gaussian sigma, in heatmap pixels.
        heatmap_sigma: sigma of the heatmap-matching target, in heatmap pixels.
    """

    regularizer: str = "js"
    reg_weight: float = 1.0
    sigma: float = 1.0
    heatmap_sigma: float = 1.0

    def __post_init__(self) -> None:
        check_choice("loss.regularizer", self.regularizer, REGULARIZERS)
        if self.sigma <= 0 or self.heatmap_sigma <= 0:
            raise ValueError("loss.sigma and loss.heatmap_sigma must be > 0 (heatmap pixels)")
        if self.reg_weight < 0:
            raise ValueError(f"loss.reg_weight: must be >= 0, got {self.reg_weight}")
