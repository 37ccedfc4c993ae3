"""The families a run config names, one plain dict each: :data:`BACKBONES`, :data:`HEADS` and
:data:`DATASETS` (joint sets: :data:`dsntpose.data.joints.JOINT_SETS`).

An entry is everything the package knows about one member: how to build it and the facts
the config checks (supported output strides, default crop, joint sets, the data keys a data set
reads, its evaluation protocol). Config validation, the CLI's choices, ``dsntpose models``,
:func:`dsntpose.model.build_model`, :func:`dsntpose.datasets.build_split` and
:func:`dsntpose.evaluate.protocol_for` read these dicts and nothing else lists the names.

Entries point at their code through a function that imports it when called, so this module
(and :mod:`dsntpose.config`, and ``dsntpose --help``) stays free of torch. Adding a member is a
file of its own for the code and one entry here; a test (or a user) may add an entry at run
time, ``BACKBONES["toy"] = BackboneSpec(build=...)``: no registry, no decorator.

Example:
    >>> BACKBONES["resnet50"].strides
    (4, 8, 16, 32)
    >>> DATASETS["lsp"].protocol
    Protocol(metric='PCK', threshold=0.2)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from torch import nn

    from dsntpose.config import ModelConfig, RunConfig

__all__ = [
    "BACKBONES",
    "DATASETS",
    "HEADS",
    "BackboneSpec",
    "DatasetSpec",
    "HeadSpec",
    "Protocol",
    "get",
]


def get(family: dict[str, Any], name: object, key: str) -> Any:
    """``family[name]``, or ``ValueError`` naming ``key`` and the allowed names."""
    if not isinstance(name, str) or name not in family:
        raise ValueError(
            f"{key}: {name!r} is not allowed; choose one of {', '.join(map(repr, family))}"
        )
    return family[name]


# --------------------------------------------------------------------------------------------
# Backbones (code: dsntpose.backbones)


@dataclass(frozen=True)
class BackboneSpec:
    """One backbone.

    Attributes:
        build: ``build(cfg: ModelConfig) -> nn.Module`` reporting ``.stride`` and
            ``.out_channels`` (``None`` for a backbone that returns one map tensor of
            ``cfg.num_joints`` maps per stack, as the stacked hourglass does).
        strides: the ``model.output_stride`` values it supports (validated here, once); empty:
            a fixed stride ``fixed_stride`` and names of the form ``<name>-<num_stacks>``.
        default_input: crop side when none is given (``model_config``).
        input_multiple: ``model.input_size`` must be a multiple of this.
        pretrained: accepts ``model.weights``.
        fixed_stride: the stride of a backbone without ``strides``.
    """

    build: Callable[[ModelConfig], nn.Module]
    strides: tuple[int, ...] = ()
    default_input: int = 224
    input_multiple: int = 32
    pretrained: bool = True
    fixed_stride: int = 4

    @property
    def maps(self) -> bool:
        """Returns per-stack joint maps rather than features (no ``output_stride``)."""
        return not self.strides


def _resnet(depth: int) -> Callable[[ModelConfig], nn.Module]:
    def build(cfg: ModelConfig) -> nn.Module:
        from dsntpose.backbones import resnet

        return resnet(depth, output_stride=cfg.output_stride, weights=cfg.weights)

    return build


def _efficientnet_lite(variant: int) -> Callable[[ModelConfig], nn.Module]:
    def build(cfg: ModelConfig) -> nn.Module:
        from dsntpose.backbones import efficientnet_lite

        return efficientnet_lite(variant, output_stride=cfg.output_stride, weights=cfg.weights)

    return build


def _hourglass(cfg: ModelConfig) -> nn.Module:
    from dsntpose.backbones import StackedHourglass

    return StackedHourglass(cfg.num_stacks, cfg.num_joints)


RESNET_STRIDES = (4, 8, 16, 32)
EFFICIENTNET_STRIDES = (8, 16, 32)

BACKBONES: dict[str, BackboneSpec] = {
    **{f"resnet{d}": BackboneSpec(_resnet(d), RESNET_STRIDES) for d in (18, 34, 50, 101, 152)},
    **{
        f"efficientnet_lite{v}": BackboneSpec(_efficientnet_lite(v), EFFICIENTNET_STRIDES)
        for v in (0, 1, 2)
    },
    "hourglass": BackboneSpec(_hourglass, default_input=256, input_multiple=64, pretrained=False),
}


# --------------------------------------------------------------------------------------------
# Heads (code: dsntpose.heads)


@dataclass(frozen=True)
class HeadSpec:
    """One head.

    Attributes:
        load: returns the head class (imported when called). The class owns the rest:
            ``from_config(cfg, in_channels)`` builds it, ``default_flip_mode(activation)`` is
            its flip rule, and instances carry ``loss``, ``decode`` and ``flip_modes``.
        coords: the ``model.coords`` values it reads (only ``dsnt`` for a head without DSNT).
        presence: returns probability maps the presence and visibility heads can pool.
    """

    load: Callable[[], type[nn.Module]]
    coords: tuple[str, ...] = ("dsnt",)
    presence: bool = True


def _dsnt_head() -> type[nn.Module]:
    from dsntpose.heads import DSNTHead

    return DSNTHead


def _heatmap_head() -> type[nn.Module]:
    from dsntpose.heads import HeatmapHead

    return HeatmapHead


def _fc_head() -> type[nn.Module]:
    from dsntpose.heads import FCHead

    return FCHead


HEADS: dict[str, HeadSpec] = {
    "dsnt": HeadSpec(_dsnt_head, coords=("dsnt", "debiased", "local")),
    "heatmap": HeadSpec(_heatmap_head, presence=False),
    "fc": HeadSpec(_fc_head),
}


# --------------------------------------------------------------------------------------------
# Data sets (code: dsntpose.datasets, readers in dsntpose.data)


class Protocol(NamedTuple):
    """How a data set is scored: ``metric`` (``"PCKh"`` or ``"PCK"``) at ``threshold``
    (in head sizes or torso sizes)."""

    metric: str
    threshold: float


PCK_TORSO = Protocol("PCK", 0.2)  # PCK@0.2 of the torso (LSP's protocol)
PCKH_HEAD = Protocol("PCKh", 0.5)  # PCKh@0.5 of the head size (MPII's)


@dataclass(frozen=True)
class DatasetSpec:
    """One data set.

    Attributes:
        splits: ``splits(run, need_test) -> (train, val, test)``: the training set (augmented
            as ``run.data`` says), what training validates on (``data.val_holdout`` honoured)
            and what final numbers are reported on (None allowed when ``need_test`` is
            False and validation does not use it).
        test: ``test(run) -> Dataset``: the test split alone (no training files needed).
        joints: the ``model.joints`` values its labels can be read in.
        protocol: how it is scored.
        keys: the ``data.*`` keys only some data sets read (``lspet_root``, ...): config
            refuses such a key for a data set that does not list it.
        root: what ``data.root`` names, ``"folder"`` or ``"file"``; None: nothing (the data
            are generated).
        root_holds: the entries a ``data.root`` folder must hold (checked before training).
        how: where the data come from, for the error when they are missing.
    """

    splits: Callable[[RunConfig, bool], tuple[Any, Any, Any]]
    test: Callable[[RunConfig], Any]
    joints: tuple[str, ...]
    protocol: Protocol = PCK_TORSO
    keys: tuple[str, ...] = ()
    root: str | None = "folder"
    root_holds: tuple[str, ...] = ()
    how: str = ""


def _in_datasets(pick: Callable[[Any], Callable[..., Any]]) -> Callable[..., Any]:
    """A function of :mod:`dsntpose.datasets` (``pick(module)``), imported when called."""

    def call(*args: Any) -> Any:
        from dsntpose import datasets

        return pick(datasets)(*args)

    return call


LSP_HOW = (
    "LSP (2000 images + joints.mat): run `dsntpose data lsp --data.root DIR` (downloads "
    "http://sam.johnson.io/research/lsp_dataset.zip) and pass --data.root DIR"
)
MPII_HOW = (
    "MPII: run `dsntpose data mpii --data.root DIR` for the annotations, unpack the images "
    "(mpii_human_pose_v1.tar.gz from http://human-pose.mpi-inf.mpg.de/) into DIR/images "
    "or pass --data.image_root, and pass --data.root DIR"
)
MIXED_KEYS = (
    "mpii_crops_root",
    "coco_root",
    "mix_weights",
    "negatives",
    "whole_prob",
    "loose_prob",
    "tight_prob",
)

DATASETS: dict[str, DatasetSpec] = {
    "synthetic": DatasetSpec(
        splits=_in_datasets(lambda d: d.synthetic_splits),
        test=_in_datasets(lambda d: d.synthetic_test),
        joints=("mpii", "lsp"),
        root=None,
    ),
    "lsp": DatasetSpec(
        splits=_in_datasets(lambda d: d.lsp_splits),
        test=_in_datasets(lambda d: d.lsp_test),
        joints=("lsp",),
        keys=("lspet_root",),
        root_holds=("joints.mat", "images"),
        how=LSP_HOW,
    ),
    "mpii": DatasetSpec(
        splits=_in_datasets(lambda d: d.mpii_splits),
        test=_in_datasets(lambda d: d.mpii_test),
        joints=("mpii",),
        protocol=PCKH_HEAD,
        root_holds=("valid.h5",),
        how=MPII_HOW,
    ),
    "mixed": DatasetSpec(
        splits=_in_datasets(lambda d: d.mixed_splits),
        test=_in_datasets(lambda d: d.mixed_test),
        joints=("mpii",),
        keys=("lspet_root", *MIXED_KEYS),
        root_holds=("joints.mat", "images"),
        how=LSP_HOW,
    ),
    "coco": DatasetSpec(
        splits=_in_datasets(lambda d: d.coco_splits),
        test=_in_datasets(lambda d: d.coco_test),
        joints=("lsp", "mpii"),
        root="file",
        how="COCO: pass --data.root FILE.json (a COCO keypoints file) and --data.image_root DIR",
    ),
}
