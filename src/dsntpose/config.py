"""Run configuration as plain dataclasses.

Field names equal the keyword arguments of the code they configure, so a YAML file, the CLI's
dotted overrides (``--model.output_stride 16``) and Python code all speak the same names. This
module imports nothing heavy and never the CLI; validation happens in ``__post_init__`` so a bad
value fails where it is written, with the key and the allowed values in the message.

The names a key may take for a family (``model.backbone``, ``model.head``, ``model.joints``,
``data.dataset``) and what each member supports (output strides, joint sets, data keys) come
from the families' own dicts (:mod:`dsntpose.families`, :data:`dsntpose.data.joints.JOINT_SETS`),
read at validation time; both import without torch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol

from dsntpose.files import read_yaml

ACTIVATIONS = ("softmax", "abs", "relu", "sigmoid")
REGULARIZERS = ("none", "var", "kl", "js")
COORDS = ("dsnt", "debiased", "local")
COORD_LOSSES = ("euclidean", "rle")


# Bounds of the model's sizes, checked before anything is built (a checkpoint's config asking
# for a 1000-stack hourglass or a 100000 px input is refused, not allocated).
MODEL_INT_BOUNDS = (
    ("num_stacks", 1, 8),
    ("input_size", 16, 2048),
    ("output_stride", 1, 64),
    ("local_radius", 1, 64),
)


def _type_ok(value: object, kind: Any) -> bool:
    """Whether ``value`` is of the annotated type ``kind`` (numbers finite, bools apart)."""
    import typing

    if kind is type(None):
        return value is None
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool) and abs(value) <= MAX_INT
    if kind is float:
        return (
            isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        )
    origin = typing.get_origin(kind) or kind
    return isinstance(value, origin)


_HINTS: dict[type, dict[str, Any]] = {}
MAX_INT = 2**31 - 1
"""The largest whole number a config key takes (counts, sizes, steps, seeds)."""


def check_field_types(section: Any, name: str) -> None:
    """Raise ``ValueError`` naming ``name.key`` for a field of the dataclass ``section`` whose
    value is not of its annotated type: text for a number, a fraction for a count, NaN or inf
    for a number, a list for a flag (a config file or a checkpoint's dict is not type-checked
    by anything else)."""
    import types
    import typing

    cls = type(section)
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    for item in fields(section):
        kind = _HINTS[cls][item.name]
        value = getattr(section, item.name)
        union = typing.get_origin(kind) in (typing.Union, types.UnionType)
        kinds = typing.get_args(kind) if union else (kind,)
        if any(_type_ok(value, k) for k in kinds):
            continue
        words = {
            int: f"a whole number of at most {MAX_INT}",
            float: "a finite number",
            bool: "true or false",
        }
        wanted = " or ".join(
            "null" if k is type(None) else words.get(k, getattr(k, "__name__", str(k)))
            for k in kinds
        )
        hint = ""
        if isinstance(value, str) and float in kinds:
            hint = " (YAML reads a number like 1e-3 as text: write 1.0e-3)"
        raise ValueError(f"{name}.{item.name}: expected {wanted}, got {value!r}{hint}")


def _check_int(key: str, value: object, low: int, high: int) -> None:
    """Raise ``ValueError`` naming ``key`` when ``value`` is not a whole number in
    ``[low, high]``."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{key}: must be a whole number, got {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{key}: must be between {low} and {high}, got {value}")


def check_choice(key: str, value: object, allowed: tuple[object, ...]) -> None:
    """Raise ``ValueError`` naming ``key`` and the allowed values when ``value`` is not one."""
    if value not in allowed:
        raise ValueError(
            f"{key}: {value!r} is not allowed; choose one of {', '.join(map(repr, allowed))}"
        )


@dataclass
class ModelConfig:
    """What network to build.

    Attributes:
        backbone: ``resnet18`` .. ``resnet152``, ``efficientnet_lite0`` .. ``efficientnet_lite2``
            or ``hourglass``.
        output_stride: ResNet output stride 32, 16, 8 or 4 (224 px in -> 7, 14, 28, 56 px maps);
            EfficientNet-Lite 32, 16 or 8. The hourglass always has stride 4.
        num_stacks: hourglass stacks (1, 2, 4 or 8).
        head: output strategy: ``dsnt``, ``heatmap`` (heatmap matching) or ``fc``.
        activation: heatmap normalisation for ``dsnt``/``fc``: softmax, abs, relu, sigmoid.
        temperature: softmax temperature (logits are divided by it).
        coords: how the DSNT head reads coordinates off its map: ``dsnt`` (the expectation),
            ``debiased`` (the softmax's background pull towards the centre removed
            analytically, Gu et al. 2021; softmax only) or ``local`` (the expectation inside a
            window of ``2 * local_radius + 1`` cells around the arg-max, for two-peak maps).
        local_radius: ``coords: local``: the window's half-size in heatmap cells.
        joints: joint set, ``mpii`` (16) or ``lsp`` (14).
        weights: backbone weights: None (random), ``"imagenet"`` or a local file path.
        input_size: side of the square input crop in pixels (224 for ResNets, 256 hourglass).
        presence: add the two small heads of whole-photo pose beside the maps: a person-presence
            logit (pooled features) and per-joint visibility logits (features pooled under each
            joint's map); see :class:`dsntpose.heads.PresenceHead`. Needs a DSNT or FC head on
            a ResNet or EfficientNet-Lite.
        upsample: maps at half the output stride (``efficientnet_lite0`` at 16 with 192 px
            crops: 24 px maps instead of 12) from a light decoder
            (:class:`dsntpose.decoder.UpsampleDecoder`): the head's logits upsampled 2x and
            refined from the backbone's features at that finer stride, the cheap alternative
            to dilating the backbone to it. Needs the DSNT head on a ResNet (stride 8 to 32)
            or EfficientNet-Lite. ``2``: two such stages, maps at a quarter of the output
            stride (48 px from stride 16 at 192 px), the second reading the features at
            stride 4; needs output stride 16 or 32. ``true`` is ``1``.
    """

    backbone: str = "resnet34"
    output_stride: int = 8
    num_stacks: int = 2
    head: str = "dsnt"
    activation: str = "softmax"
    temperature: float = 1.0
    coords: str = "dsnt"
    local_radius: int = 4
    joints: str = "mpii"
    weights: str | None = None
    input_size: int = 224
    presence: bool = False
    upsample: bool | int = False

    def __post_init__(self) -> None:
        check_field_types(self, "model")
        from dsntpose.data.joints import JOINT_SETS
        from dsntpose.families import BACKBONES, HEADS, get

        backbone = get(BACKBONES, self.backbone, "model.backbone")
        head = get(HEADS, self.head, "model.head")
        if self.presence and (backbone.maps or not head.presence):
            takes = [name for name, spec in HEADS.items() if spec.presence]
            raise ValueError(
                "model.presence: the presence and visibility heads need a backbone with "
                f"features (not per-stack maps, as the hourglass's) and a head with probability "
                f"maps ({', '.join(map(repr, takes))}), got {self.backbone!r} / {self.head!r}"
            )
        if not isinstance(self.upsample, bool) and self.upsample not in (0, 1, 2):
            raise ValueError(
                f"model.upsample: true/false, or the decoder's stages 0, 1 or 2, got "
                f"{self.upsample!r}"
            )
        if self.upsample_stages == 2 and self.output_stride < 16:
            raise ValueError(
                "model.upsample: 2 stages read the backbone's features at a quarter of its "
                f"output stride, down to stride 4: output stride 16 or 32, got {self.output_stride}"
            )
        if self.upsample and (self.head != "dsnt" or backbone.maps or self.output_stride < 8):
            raise ValueError(
                "model.upsample: the upsampling decoder refines the DSNT head's maps from a "
                "ResNet or EfficientNet-Lite at output stride 8, 16 or 32, got "
                f"{self.backbone!r} / {self.head!r} at output stride {self.output_stride}"
            )
        check_choice("model.activation", self.activation, ACTIVATIONS)
        check_choice("model.coords", self.coords, COORDS)
        if self.coords == "debiased" and self.activation != "softmax":
            raise ValueError(
                f"model.coords: 'debiased' corrects the softmax's bias; model.activation is "
                f"{self.activation!r} (use softmax, or coords dsnt)"
            )
        if self.coords not in head.coords:
            readers = [name for name, spec in HEADS.items() if self.coords in spec.coords]
            raise ValueError(
                f"model.coords: {self.coords!r} needs model.head {' or '.join(map(repr, readers))}"
            )
        for key, _, _ in MODEL_INT_BOUNDS:
            _check_int(f"model.{key}", getattr(self, key), -(2**62), 2**62)
        if self.local_radius < 1:
            raise ValueError(f"model.local_radius: must be >= 1 cell, got {self.local_radius}")
        get(JOINT_SETS, self.joints, "model.joints")
        if backbone.strides:
            check_choice("model.output_stride", self.output_stride, backbone.strides)
        if self.num_stacks < 1:
            raise ValueError(f"model.num_stacks: must be >= 1, got {self.num_stacks}")
        if not isinstance(self.temperature, (int, float)) or isinstance(self.temperature, bool):
            raise ValueError(f"model.temperature: must be a number, got {self.temperature!r}")
        if not math.isfinite(self.temperature) or self.temperature <= 0:
            raise ValueError(f"model.temperature: must be > 0, got {self.temperature}")
        if self.input_size < 32 or self.input_size % 32:
            raise ValueError(
                f"model.input_size: must be a positive multiple of 32 px, got {self.input_size}"
            )
        for key, low, high in MODEL_INT_BOUNDS:
            _check_int(f"model.{key}", getattr(self, key), low, high)

    @property
    def num_joints(self) -> int:
        from dsntpose.data.joints import JOINT_SETS

        return len(JOINT_SETS[self.joints].names)

    @property
    def torso(self) -> tuple[int, int]:
        """The joint pair whose distance is the torso (``JointSet.torso``: the person's scale
        for PCK@0.2 and for the joint confidence of :class:`dsntpose.heads.PresenceHead`)."""
        from dsntpose.data.joints import JOINT_SETS

        return JOINT_SETS[self.joints].torso

    @property
    def upsample_stages(self) -> int:
        """How many 2x stages the decoder has (``upsample``: false 0, true 1, or 0/1/2)."""
        return int(self.upsample)

    @property
    def stride(self) -> int:
        """Input pixels per heatmap cell: the output stride, halved by each ``upsample``
        stage."""
        from dsntpose.families import BACKBONES

        spec = BACKBONES[self.backbone]
        if spec.maps:
            return spec.fixed_stride
        return self.output_stride >> self.upsample_stages

    @property
    def heatmap_size(self) -> int:
        return self.input_size // self.stride


@dataclass
class LossConfig:
    """How the head's output is scored against the target (see ``dsntpose.heads``: each head's ``loss``).

    Attributes:
        regularizer: DSNT heatmap regulariser: ``none``, ``var``, ``kl`` or ``js``.
        reg_weight: lambda, the regulariser's weight (the paper uses 1; ``var`` used 100).
        sigma: regulariser target Gaussian sigma, in heatmap pixels.
        heatmap_sigma: sigma of the heatmap-matching target, in heatmap pixels.
        coord_loss: the DSNT/FC coordinate loss: ``euclidean`` (the paper's) or ``rle`` (the
            residual log-likelihood of Li et al. 2021 in its flow-free Laplace form, with each
            joint's scale the spread of its own map, so the loss also shapes the map).
        presence_weight: weight of the person-presence binary cross-entropy (``model.presence``).
        visibility_weight: weight of the per-joint visibility binary cross-entropy
            (``model.presence``), averaged over the joints whose visibility is known.
    """

    regularizer: str = "js"
    reg_weight: float = 1.0
    sigma: float = 1.0
    heatmap_sigma: float = 1.0
    coord_loss: str = "euclidean"
    presence_weight: float = 0.1
    visibility_weight: float = 0.1

    def __post_init__(self) -> None:
        check_field_types(self, "loss")
        check_choice("loss.regularizer", self.regularizer, REGULARIZERS)
        check_choice("loss.coord_loss", self.coord_loss, COORD_LOSSES)
        if self.sigma <= 0 or self.heatmap_sigma <= 0:
            raise ValueError("loss.sigma and loss.heatmap_sigma must be > 0 (heatmap pixels)")
        if self.reg_weight < 0:
            raise ValueError(f"loss.reg_weight: must be >= 0, got {self.reg_weight}")
        _check_positive("loss.presence_weight", self.presence_weight, allow_zero=True)
        _check_positive("loss.visibility_weight", self.visibility_weight, allow_zero=True)


MIX_SOURCES = ("lsp", "lspet", "mpii_crops")
OPTIMIZERS = ("rmsprop", "adam", "sgd")
SCHEDULES = ("step", "cosine")
PRECISIONS = ("auto", "32-true", "bf16-mixed", "16-mixed")
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")
STRATEGIES = ("auto", "ddp", "ddp_spawn", "ddp_find_unused_parameters_true")


def _check_positive(key: str, value: float, *, allow_zero: bool = False) -> None:
    """Raise ``ValueError`` naming ``key`` when ``value`` is not > 0 (or >= 0)."""
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{key}: must be {bound}, got {value!r}")


def _check_probability(key: str, value: float) -> None:
    """Raise ``ValueError`` naming ``key`` when ``value`` is outside ``[0, 1]``."""
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{key}: must be a probability in [0, 1], got {value!r}")


# The paper's training augmentation (section 5.1): the defaults of DataConfig's fields and of
# dsntpose.data.Augment, which share these names and check_augmentation.
AUGMENT_DEFAULTS = {
    "scale_sigma": 0.25,
    "scale_limit": 0.5,
    "rotation_prob": 0.4,
    "rotation_sigma": 30.0,
    "rotation_limit": 60.0,
    "flip_prob": 0.5,
    "color_low": 0.6,
    "color_high": 1.4,
}


class AugmentValues(Protocol):
    """What :func:`check_augmentation` reads: the ``AUGMENT_DEFAULTS`` attributes (of a
    :class:`DataConfig` or a frozen ``dsntpose.data.Augment``)."""

    @property
    def scale_sigma(self) -> float: ...
    @property
    def scale_limit(self) -> float: ...
    @property
    def rotation_prob(self) -> float: ...
    @property
    def rotation_sigma(self) -> float: ...
    @property
    def rotation_limit(self) -> float: ...
    @property
    def flip_prob(self) -> float: ...
    @property
    def color_low(self) -> float: ...
    @property
    def color_high(self) -> float: ...


def check_augmentation(values: AugmentValues, prefix: str) -> None:
    """Raise ``ValueError`` naming the field (``prefix + name``) when an augmentation value of
    ``values`` (an object with the ``AUGMENT_DEFAULTS`` attributes) is out of range."""
    for key in ("scale_sigma", "scale_limit", "rotation_sigma", "rotation_limit"):
        _check_positive(f"{prefix}{key}", getattr(values, key), allow_zero=True)
    _check_probability(f"{prefix}rotation_prob", values.rotation_prob)
    _check_probability(f"{prefix}flip_prob", values.flip_prob)
    low, high = values.color_low, values.color_high
    if not 0.0 <= low <= high:
        raise ValueError(
            f"{prefix}color_low, {prefix}color_high: need 0 <= color_low <= color_high, "
            f"got {low!r}, {high!r}"
        )


@dataclass
class DataConfig:
    """Which samples feed training and validation, and how they are augmented.

    The crop side is ``model.input_size``; it is not repeated here.

    Attributes:
        dataset: ``synthetic`` (generated stick figures, no download), ``lsp``, ``mpii`` or
            ``mixed`` (LSP 1-1000, LSP-extended and the MPII training crops as one training
            set in MPII's 16 joints, mapped by name, with framing and negatives for
            whole-photo pose: :mod:`dsntpose.data.mixed`; tested on LSP 1001-2000) or
            ``coco`` (the people of a COCO keypoints file whose keypoint names are those of
            ``model.joints``; validated and tested on the same file unless
            ``val_holdout``). The names are :data:`dsntpose.families.DATASETS`'s.
        root: data folder. LSP: the folder holding ``images/`` and ``joints.mat`` (see
            ``dsntpose data lsp``). MPII: the folder holding the annotation files. COCO: the
            keypoints JSON file. Unused by ``synthetic``.
        image_root: MPII: the folder of the MPII images (``images/*.jpg``); defaults to
            ``root/images``. COCO: the folder the file's ``file_name`` entries are relative to;
            defaults to ``images/`` beside the file.
        lspet_root: LSP and mixed: an LSP-extended folder (``joints.mat`` and ``images/``) whose
            images join LSP's training images (the standard LSP protocol: LSP 1-1000 plus
            LSPET for training, LSP 1001-2000 for testing). None: LSP alone.
        mpii_crops_root: mixed: the MPII training crops (``person_keypoints_mpii_train.json``
            and ``images/``). None: left out.
        coco_root: mixed: a COCO folder (``annotations/person_keypoints_val2017.json``,
            ``val2017/``) whose regions away from every annotated person join the negatives
            (every third image kept for validation). None: left out.
        mix_weights: mixed: draws per epoch of each source (``lsp``, ``lspet``,
            ``mpii_crops``) as a multiple of its size (default 1 each; 2 shows each person of
            that source twice an epoch, 0.5 a fixed half).
        negatives: mixed: background crops (no person) per person crop, for the presence
            score.
        whole_prob, loose_prob, loose_scale, shift, tight_prob, tight_scale: mixed: the
            framing of training crops (:class:`dsntpose.data.mixed.Framing`): the whole image
            with probability ``whole_prob``, a loose crop (side x ``2 ** U(0, loose_scale)``,
            centre moved by up to ``shift`` of the side) with probability ``loose_prob``, a
            close-up (side x ``2 ** -U(0, tight_scale)``, inside the box: part of the person
            cut off) with probability ``tight_prob``, else the annotation box.
        val_holdout: hold out this many training images (a fixed draw, the same for every run
            and seed) for validation, model and checkpoint selection, so that the test split
            is touched only for final numbers. 0: validate on the test split (LSP 1001-2000,
            MPII's standard validation people).
        augment: apply the training augmentation (validation is never augmented).
        scale_sigma, scale_limit: the crop side is multiplied by
            ``2 ** clip(N(0, scale_sigma), -scale_limit, scale_limit)`` (0.25, 0.5).
        rotation_prob, rotation_sigma, rotation_limit: with probability ``rotation_prob`` the
            crop is rotated by ``clip(N(0, rotation_sigma), +-rotation_limit)`` degrees
            (0.4, 30, 60).
        flip_prob: probability of a horizontal flip, left/right joints swapped (0.5).
        color_low, color_high: each RGB channel is multiplied by ``U(color_low, color_high)``
            (0.6, 1.4).
        batch_size: samples per step and per device.
        num_workers: data loader worker processes per device (0 loads in the main process).
        train_subset: train on only the first N training samples (None: all). For quick runs.
        val_subset: validate on only the first N validation samples (None: all).
        synthetic_train: number of generated training samples (``dataset: synthetic``).
        synthetic_val: number of generated validation samples (``dataset: synthetic``).
    """

    dataset: str = "synthetic"
    root: str | None = None
    image_root: str | None = None
    lspet_root: str | None = None
    mpii_crops_root: str | None = None
    coco_root: str | None = None
    mix_weights: dict[str, float] = field(default_factory=dict)
    negatives: float = 0.0
    whole_prob: float = 0.0
    loose_prob: float = 0.0
    loose_scale: float = 1.0
    shift: float = 0.0
    tight_prob: float = 0.0
    tight_scale: float = 1.0
    val_holdout: int = 0
    augment: bool = True
    scale_sigma: float = AUGMENT_DEFAULTS["scale_sigma"]
    scale_limit: float = AUGMENT_DEFAULTS["scale_limit"]
    rotation_prob: float = AUGMENT_DEFAULTS["rotation_prob"]
    rotation_sigma: float = AUGMENT_DEFAULTS["rotation_sigma"]
    rotation_limit: float = AUGMENT_DEFAULTS["rotation_limit"]
    flip_prob: float = AUGMENT_DEFAULTS["flip_prob"]
    color_low: float = AUGMENT_DEFAULTS["color_low"]
    color_high: float = AUGMENT_DEFAULTS["color_high"]
    batch_size: int = 32
    num_workers: int = 2
    train_subset: int | None = None
    val_subset: int | None = None
    synthetic_train: int = 4096
    synthetic_val: int = 512

    def __post_init__(self) -> None:
        check_field_types(self, "data")
        from dsntpose.families import DATASETS, get

        get(DATASETS, self.dataset, "data.dataset")
        check_augmentation(self, "data.")
        _check_positive("data.val_holdout", self.val_holdout, allow_zero=True)
        # the keys only some data sets read (each data set's spec lists its own)
        used = {
            "lspet_root": self.lspet_root is not None,
            "mpii_crops_root": self.mpii_crops_root is not None,
            "coco_root": self.coco_root is not None,
            "mix_weights": bool(self.mix_weights),
            "negatives": self.negatives != 0,
            "whole_prob": self.whole_prob != 0,
            "loose_prob": self.loose_prob != 0,
            "tight_prob": self.tight_prob != 0,
        }
        for key in (k for k, on in used.items() if on):
            if key not in DATASETS[self.dataset].keys:
                readers = [name for name, spec in DATASETS.items() if key in spec.keys]
                raise ValueError(
                    f"data.{key}: needs data.dataset {' or '.join(map(repr, readers))}, got "
                    f"{self.dataset!r}"
                )
        if not isinstance(self.mix_weights, Mapping):
            raise ValueError(
                f"data.mix_weights: expected a mapping source -> weight, got {self.mix_weights!r}"
            )
        self.mix_weights = {str(k): float(v) for k, v in self.mix_weights.items()}
        for key, weight in self.mix_weights.items():
            check_choice("data.mix_weights", key, MIX_SOURCES)
            _check_positive(f"data.mix_weights.{key}", weight, allow_zero=True)
        _check_positive("data.negatives", self.negatives, allow_zero=True)
        _check_probability("data.whole_prob", self.whole_prob)
        _check_probability("data.loose_prob", self.loose_prob)
        _check_probability("data.tight_prob", self.tight_prob)
        framed = self.whole_prob + self.loose_prob + self.tight_prob
        if framed > 1:
            raise ValueError(
                "data.whole_prob + data.loose_prob + data.tight_prob: must be at most 1, got "
                f"{framed!r}"
            )
        _check_positive("data.loose_scale", self.loose_scale, allow_zero=True)
        _check_positive("data.shift", self.shift, allow_zero=True)
        _check_positive("data.tight_scale", self.tight_scale, allow_zero=True)
        _check_positive("data.batch_size", self.batch_size)
        _check_positive("data.num_workers", self.num_workers, allow_zero=True)
        _check_int("data.batch_size", self.batch_size, 1, 1 << 16)
        _check_int("data.num_workers", self.num_workers, 0, 256)
        _check_int("data.synthetic_train", self.synthetic_train, 1, 10**7)
        _check_int("data.synthetic_val", self.synthetic_val, 1, 10**7)
        for key in ("train_subset", "val_subset"):
            value = getattr(self, key)
            if value is not None:
                _check_positive(f"data.{key}", value)
        _check_positive("data.synthetic_train", self.synthetic_train)
        _check_positive("data.synthetic_val", self.synthetic_val)


@dataclass
class OptimConfig:
    """Optimiser and learning-rate schedule (the paper: RMSprop 2.5e-4, x0.1 at epochs 60, 90).

    Attributes:
        optimizer: ``rmsprop`` (the paper), ``adam`` or ``sgd`` (momentum 0.9).
        lr: initial learning rate.
        weight_decay: L2 weight decay (0 in the paper).
        milestones: ``schedule: step``: epochs after which the learning rate is multiplied by
            ``gamma``.
        gamma: the learning-rate factor applied at each milestone.
        schedule: ``step`` (``milestones``/``gamma``, per epoch, the paper's) or ``cosine``
            (per optimiser step, from ``lr`` down to ``lr * min_lr_ratio`` at the last step of
            ``train.epochs``).
        warmup_steps: ``schedule: cosine``: linear warm-up from ``lr / warmup_steps`` over the
            first steps (0: none).
        min_lr_ratio: ``schedule: cosine``: the final learning rate as a fraction of ``lr``.
        backbone_lr_ratio: the backbone's learning rate as a fraction of the head's (1: one
            rate for all; below 1 fine-tunes pretrained features more gently).
    """

    optimizer: str = "rmsprop"
    lr: float = 2.5e-4
    weight_decay: float = 0.0
    milestones: list[int] = field(default_factory=lambda: [60, 90])
    gamma: float = 0.1
    schedule: str = "step"
    warmup_steps: int = 0
    min_lr_ratio: float = 0.01
    backbone_lr_ratio: float = 1.0

    def __post_init__(self) -> None:
        check_field_types(self, "optim")
        check_choice("optim.optimizer", self.optimizer, OPTIMIZERS)
        check_choice("optim.schedule", self.schedule, SCHEDULES)
        _check_positive("optim.warmup_steps", self.warmup_steps, allow_zero=True)
        if self.warmup_steps and self.schedule != "cosine":
            raise ValueError(
                "optim.warmup_steps: warm-up needs optim.schedule 'cosine' (the step schedule "
                f"counts epochs), got schedule {self.schedule!r}"
            )
        _check_probability("optim.min_lr_ratio", self.min_lr_ratio)
        _check_positive("optim.backbone_lr_ratio", self.backbone_lr_ratio, allow_zero=True)
        _check_positive("optim.lr", self.lr)
        _check_positive("optim.weight_decay", self.weight_decay, allow_zero=True)
        _check_positive("optim.gamma", self.gamma)
        self.milestones = [int(m) for m in self.milestones]
        if any(m < 1 for m in self.milestones) or self.milestones != sorted(set(self.milestones)):
            raise ValueError(
                f"optim.milestones: must be increasing epochs >= 1, got {self.milestones!r}"
            )


@dataclass
class TrainConfig:
    """How long, where and on what hardware to train; checkpoints and logs go to ``out_dir``.

    Attributes:
        epochs: number of training epochs (the paper: 120).
        precision: ``auto`` (bf16-mixed on a GPU that supports it, else 16-mixed on GPU,
            32-true on CPU), ``32-true``, ``bf16-mixed`` or ``16-mixed``. Softmax, DSNT and the
            losses always run in float32.
        accelerator: ``auto``, ``cpu``, ``gpu``, ``cuda`` or ``mps``.
        devices: devices per node: a count, ``-1`` for all, or ``"auto"``.
        num_nodes: machines (DDP under torchrun or SLURM sets the rest from the environment).
        strategy: ``auto``, ``ddp``, ``ddp_spawn`` or ``ddp_find_unused_parameters_true``.
        seed: seed of every random generator (weights, sampling order, augmentation).
        out_dir: run folder: ``best.ckpt`` and ``last.ckpt`` at its root, ``config.yaml``, logs.
        log_every: log training scalars every N optimiser steps.
        val_every: validate every N epochs.
        vis_every: log a grid of predictions every N validations (0: never).
        ckpt_every: also save ``last.ckpt`` every N optimiser steps, so a killed run loses at
            most N steps (0: only at the end of each epoch).
        flip_test: validate with the flip test (average of the image and its mirror).
        deterministic: ask PyTorch for deterministic algorithms (slower on GPU).
        progress_bar: show Lightning's progress bar (loss and images per second).
        channels_last: keep the network and its input in channels-last memory order (the faster
            layout on a CPU for EfficientNet-Lite; ``dsntpose bench`` times both layouts).
        init_from: fine-tune: start the whole network (backbone and head) from a trained model,
            a dsntpose checkpoint file or the name of a shipped model (``lsp_efficientnet_lite0``),
            instead of ``model.weights``. The model section must build the same network (its
            tensors are loaded strictly); optimiser, schedule and epochs start afresh. A resumed
            run reads its own ``last.ckpt`` instead.
        max_steps: stop after this many optimiser steps in all (None: run ``epochs``); a
            resumed run counts the steps it already took. ``last.ckpt`` is saved at the stop.
        ema_decay: keep an exponential moving average of the weights with this decay (e.g.
            0.999: about the last 1000 steps; :mod:`dsntpose.training.averaging`), validate it
            as ``val/pck`` (the raw weights as ``val/pck_raw``, same pass) and ship it from the
            checkpoints; None: no average.
    """

    epochs: int = 120
    precision: str = "auto"
    accelerator: str = "auto"
    devices: int | str = "auto"
    num_nodes: int = 1
    strategy: str = "auto"
    seed: int = 0
    out_dir: str = "runs/default"
    log_every: int = 50
    val_every: int = 1
    vis_every: int = 5
    ckpt_every: int = 200
    flip_test: bool = False
    deterministic: bool = False
    progress_bar: bool = True
    channels_last: bool = False
    init_from: str | None = None
    max_steps: int | None = None
    ema_decay: float | None = None

    def __post_init__(self) -> None:
        check_field_types(self, "train")
        _check_positive("train.epochs", self.epochs)
        if self.max_steps is not None:
            _check_int("train.max_steps", self.max_steps, 1, MAX_INT)
        if self.init_from is not None and not str(self.init_from).strip():
            raise ValueError("train.init_from: must name a checkpoint file or a shipped model")
        if self.ema_decay is not None and not 0.0 < self.ema_decay < 1.0:
            raise ValueError(
                f"train.ema_decay: must be in (0, 1) (e.g. 0.999) or null, got {self.ema_decay}"
            )
        check_choice("train.precision", self.precision, PRECISIONS)
        check_choice("train.accelerator", self.accelerator, ACCELERATORS)
        check_choice("train.strategy", self.strategy, STRATEGIES)
        if isinstance(self.devices, str) and self.devices.lstrip("-").isdigit():
            self.devices = int(self.devices)
        if self.devices != "auto" and not (
            isinstance(self.devices, int) and (self.devices >= 1 or self.devices == -1)
        ):
            raise ValueError(
                f"train.devices: {self.devices!r} is not allowed; use a count >= 1, -1 (all) or 'auto'"
            )
        _check_positive("train.num_nodes", self.num_nodes)
        _check_int("train.seed", self.seed, 0, MAX_INT)
        if not self.out_dir:
            raise ValueError("train.out_dir: must name a folder")
        _check_positive("train.log_every", self.log_every)
        _check_positive("train.val_every", self.val_every)
        _check_positive("train.vis_every", self.vis_every, allow_zero=True)
        _check_positive("train.ckpt_every", self.ckpt_every, allow_zero=True)


SECTIONS = ("model", "loss", "data", "optim", "train")


@dataclass
class RunConfig:
    """One complete, repeatable experiment: the five sections a YAML file in ``configs/`` holds.

    Checkpoints store it as a plain dict (``to_dict``) and rebuild it with ``from_dict``.
    """

    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        from dsntpose.families import BACKBONES, DATASETS

        allowed = DATASETS[self.data.dataset].joints
        if self.model.joints not in allowed:
            raise ValueError(
                f"model.joints: {self.model.joints!r} does not match data.dataset "
                f"{self.data.dataset!r}; choose one of {', '.join(map(repr, allowed))}"
            )
        multiple = BACKBONES[self.model.backbone].input_multiple
        if self.model.input_size % multiple:
            raise ValueError(
                f"model.input_size: the {self.model.backbone} needs a multiple of {multiple}, "
                f"got {self.model.input_size}"
            )

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """The config as plain nested dicts and lists (YAML, JSON and checkpoint friendly)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> RunConfig:
        """Build from nested dicts (missing keys take defaults).

        Raises ``ValueError`` naming any unknown section or key and listing the known ones.
        """
        if not isinstance(values, Mapping):
            raise ValueError(
                f"config: expected a mapping of sections {SECTIONS}, got {type(values).__name__}"
            )
        unknown = sorted(set(values) - set(SECTIONS))
        if unknown:
            raise ValueError(
                f"config: unknown section {unknown[0]!r}; sections: {', '.join(SECTIONS)}"
            )
        section_classes = (ModelConfig, LossConfig, DataConfig, OptimConfig, TrainConfig)
        sections: dict[str, Any] = {}
        for name, section_cls in zip(SECTIONS, section_classes):
            given = values.get(name) or {}
            if isinstance(given, section_cls):
                sections[name] = given
                continue
            if not isinstance(given, Mapping):
                raise ValueError(f"{name}: expected a mapping of keys, got {given!r}")
            known = [k.name for k in fields(section_cls)]
            bad = sorted(set(given) - set(known))
            if bad:
                raise ValueError(f"{name}.{bad[0]}: unknown key; keys: {', '.join(known)}")
            sections[name] = section_cls(**given)
        return cls(**sections)


def load_config(path: str | Path) -> RunConfig:
    """Read a YAML run config (sections ``model``, ``loss``, ``data``, ``optim``, ``train``).

    Raises ``FileNotFoundError`` when ``path`` does not exist and ``ValueError`` (naming the
    key) when a value is invalid.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"config file not found: {path}")
    values = read_yaml(path, "config") or {}
    try:
        return RunConfig.from_dict(values)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None


# Names that moved to the families' own dicts (dsntpose.families, dsntpose.data.joints): read
# from there, as tuples, for code written against the old constants.
def __getattr__(name: str) -> Any:
    from dsntpose.data.joints import JOINT_SETS
    from dsntpose.families import BACKBONES, DATASETS, EFFICIENTNET_STRIDES, HEADS, RESNET_STRIDES

    views: dict[str, Any] = {
        "BACKBONES": tuple(BACKBONES),
        "RESNETS": tuple(n for n in BACKBONES if n.startswith("resnet")),
        "EFFICIENTNETS": tuple(n for n in BACKBONES if n.startswith("efficientnet")),
        "HEADS": tuple(HEADS),
        "DATASETS": tuple(DATASETS),
        "JOINT_SETS": tuple(JOINT_SETS),
        "OUTPUT_STRIDES": RESNET_STRIDES,
        "EFFICIENTNET_STRIDES": EFFICIENTNET_STRIDES,
        "DATASET_JOINTS": {name: spec.joints for name, spec in DATASETS.items()},
    }
    if name in views:
        return views[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
