"""The ``dsntpose`` command's parsers: one per subcommand, their options generated from the
library functions' signatures (:func:`function_options`: type, default and help read from the
source, so the defaults live once, in the functions, and ``dsntpose --help`` imports no torch).

Only jsonargparse and the plain config dataclasses are imported here; :mod:`dsntpose.cli` routes
the parsed commands.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jsonargparse import (  # type: ignore[attr-defined]  # public, missing from its __all__
    ActionConfigFile,
    ActionYesNo,
    ArgumentParser,
)

from dsntpose import __version__
from dsntpose.config import (
    SECTIONS,
    DataConfig,
    LossConfig,
    ModelConfig,
    OptimConfig,
    TrainConfig,
)

__all__ = ["build_parser", "function_options"]

SECTION_CLASSES = (ModelConfig, LossConfig, DataConfig, OptimConfig, TrainConfig)


# --------------------------------------------------------------------------------------------
# Parsers


def _parser(description: str) -> ArgumentParser:
    parser = ArgumentParser(description=description, exit_on_error=False)
    parser.add_argument("--config", action=ActionConfigFile, help="YAML file of these options")
    return parser


def _choices() -> dict[str, tuple[object, ...]]:
    """The allowed values of the config keys that take one of a list."""
    from dsntpose import config as c
    from dsntpose.data.joints import JOINT_SETS
    from dsntpose.families import BACKBONES, DATASETS, HEADS

    strides: dict[tuple[int, ...], list[str]] = {}
    for name, spec in BACKBONES.items():
        if spec.strides:
            strides.setdefault(spec.strides, []).append(name)
    return {
        "model.backbone": tuple(BACKBONES),
        "model.head": tuple(HEADS),
        "model.activation": c.ACTIVATIONS,
        "model.joints": tuple(JOINT_SETS),
        "model.output_stride": tuple(
            f"{', '.join(map(str, s))} ({', '.join(names)})" for s, names in strides.items()
        ),
        "loss.regularizer": c.REGULARIZERS,
        "data.dataset": tuple(DATASETS),
        "optim.optimizer": c.OPTIMIZERS,
        "optim.schedule": c.SCHEDULES,
        "train.precision": c.PRECISIONS,
        "train.accelerator": c.ACCELERATORS,
        "train.strategy": c.STRATEGIES,
    }


def _readable_help(parser: ArgumentParser) -> None:
    """Help texts from docstrings without reStructuredText markup, with their choices."""
    choices = _choices()
    for action in parser._actions:
        if action.help:
            action.help = action.help.replace("``", "").replace(":func:", "").replace(":class:", "")
        key = action.dest
        if key in choices:
            listed = ", ".join(map(str, choices[key]))
            action.help = f"{action.help or ''} Choose: {listed}.".strip()


def _train_parser() -> ArgumentParser:
    parser = _parser(
        "Train a model. Options come from --config FILE (a YAML with sections model, loss, data, "
        "optim, train; see configs/) and dotted overrides such as --model.backbone resnet18."
    )
    for name, cls in zip(SECTIONS, SECTION_CLASSES):
        parser.add_class_arguments(cls, name)
    _readable_help(parser)
    parser.add_argument(
        "--resume",
        type=str,
        default="auto",
        help="auto: continue from train.out_dir/last.ckpt when it exists; never: start afresh "
        "(refused when out_dir holds a run); or a checkpoint path",
    )
    return parser


def _flag(parser: ArgumentParser, name: str, default: bool, help: str) -> None:
    """A bare boolean flag: ``--name`` turns it on, ``--no-name`` off."""
    parser.add_argument(
        f"--{name}", action=ActionYesNo(no_prefix="no-"), default=default, help=help
    )


def _cli_type(hint: Any) -> Any:
    """The command-line type of a library annotation: paths and devices are strings, unions
    keep their parseable members (``str | os.PathLike[str] | None`` -> ``str | None``)."""
    import os
    import types
    import typing
    from collections.abc import Sequence as SequenceABC

    if hint in (int, float, str, bool) or typing.get_origin(hint) is typing.Literal:
        return hint
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        members: list[Any] = []
        for arg in args:
            if arg is type(None):
                continue
            kept = _cli_type(arg)
            if kept is not None and kept not in members:
                members.append(kept)
        base: Any = members[0] if len(members) == 1 else (str if members else None)
        if base is None:
            return None
        return base | None if type(None) in args else base
    if origin in (list, SequenceABC) and args and args[0] is str:
        return list[str]
    if hint is Path or origin is os.PathLike or hint is os.PathLike:
        return str
    return None


class _Opaque:
    """Stands for a name an annotation uses that the command line cannot parse (``torch``,
    ``nn.Module``): any attribute of it is a fresh class, dropped by :func:`_cli_type`."""

    def __getattr__(self, name: str) -> type:
        return type(name, (), {})


class _Names(dict):  # type: ignore[type-arg]
    def __missing__(self, key: str) -> Any:
        import builtins

        if hasattr(builtins, key):
            return getattr(builtins, key)
        return _Opaque() if key in ("torch", "nn", "np") else type(key, (), {})


def _source_function(path: str) -> tuple[Any, Any]:
    """``(function definition, module)`` ASTs of ``"dsntpose.module:function"`` (or
    ``module:Class.method``), read from the source: building the parser imports no torch."""
    import ast
    import importlib.util

    module, _, name = path.partition(":")
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise ImportError(module)
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    scope: Any = tree
    for part in name.split("."):
        scope = next(
            n
            for n in scope.body
            if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name == part
        )
    return scope, tree


def _constant(tree: Any, node: Any, seen: int = 0) -> Any:
    """The value of a default: a literal, or a module constant (followed through
    ``from dsntpose.x import NAME``)."""
    import ast

    try:
        return ast.literal_eval(node)
    except ValueError:
        pass
    if not isinstance(node, ast.Name) or seen > 3:
        raise ValueError(f"default {ast.unparse(node)} is not a constant")
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == node.id for t in stmt.targets
        ):
            return _constant(tree, stmt.value, seen + 1)
        if (
            isinstance(stmt, ast.ImportFrom)
            and stmt.module
            and any((a.asname or a.name) == node.id for a in stmt.names)
        ):
            name = next(a.name for a in stmt.names if (a.asname or a.name) == node.id)
            import importlib.util

            spec = importlib.util.find_spec(stmt.module)
            other = ast.parse(Path(str(spec.origin)).read_text(encoding="utf-8"))  # type: ignore[union-attr]
            return _constant(other, ast.Name(id=name), seen + 1)
    raise ValueError(f"default {node.id} not found")


def function_options(
    parser: ArgumentParser,
    function: str,
    names: Sequence[str],
    *,
    defaults: dict[str, Any] | None = None,
    helps: dict[str, str] | None = None,
) -> None:
    """``--name`` options generated from the library function ``"module:function"``'s
    parameters ``names``: the type from its annotation, the default from its signature
    (``defaults`` only where the command's differs on purpose), the help from its docstring's
    ``Args``; booleans are bare flags with a ``--no-`` twin. The library's defaults are the
    command's, stated once. The source is read, not imported (``dsntpose --help`` stays fast)."""
    import ast
    import os
    import typing

    from docstring_parser import parse

    node, tree = _source_function(function)
    args = node.args
    params = [*args.posonlyargs, *args.args, *args.kwonlyargs]
    positional_defaults = dict(
        zip([a.arg for a in [*args.posonlyargs, *args.args]][::-1], args.defaults[::-1])
    )
    kw_defaults = {a.arg: d for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is not None}
    default_nodes = {**positional_defaults, **kw_defaults}
    annotations = {a.arg: a.annotation for a in params}
    names_space = _Names(
        os=os, Path=Path, Literal=typing.Literal, Any=Any, Sequence=Sequence,
        Mapping=typing.Mapping, Callable=typing.Callable,
    )  # fmt: skip
    docs: dict[str, str] = {}
    for param in parse(ast.get_docstring(node) or "").params:
        for name in param.arg_name.replace(" ", "").split(","):
            docs[name] = " ".join((param.description or "").split())
    for name in names:
        if defaults and name in defaults:
            default = defaults[name]
        else:
            default = _constant(tree, default_nodes[name])
        text = (helps or {}).get(name) or docs.get(name, "")
        for markup in ("``", ":func:", ":class:", ":meth:", ":data:", "~"):
            text = text.replace(markup, "")
        hint = _cli_type(eval(ast.unparse(annotations[name]), {}, names_space))
        if hint is bool:
            _flag(parser, name, bool(default), text)
        else:
            parser.add_argument(
                f"--{name}", type=hint if hint is not None else str | None, default=default,
                help=text,
            )  # fmt: skip


def _threads_option(parser: ArgumentParser) -> None:
    parser.add_argument(
        "--threads",
        type=int | str,
        default="auto",
        help="CPU threads: a number, or auto (the CPUs free now: dsntpose.runtime's policy; "
        "$DSNTPOSE_THREADS overrides)",
    )


def _data_overrides(parser: ArgumentParser) -> None:
    """``--data.root`` and friends: override the checkpoint's data section (as in train)."""
    for key, help in (
        ("dataset", "data set: lsp, mpii or synthetic (default: the checkpoint's)"),
        ("root", "data folder: LSP's (joints.mat, images/) or MPII's annotations"),
        ("lspet_root", "LSP-extended folder (for split val with a held-out part of it)"),
        ("image_root", "MPII images folder (default: data.root/images)"),
    ):
        parser.add_argument(f"--data.{key}", type=str | None, default=None, help=help)
    parser.add_argument(
        "--data.num_workers", type=int, default=0, help="data loader processes (0: in this one)"
    )


def _eval_parser() -> ArgumentParser:
    parser = _parser(
        "Evaluate a model (default: the shipped model) on a whole split of its data "
        "(PCK@0.2 of the torso for LSP and synthetic, PCKh@0.5 for MPII, in original image "
        "pixels), or score an MPII prediction file (--preds)."
    )
    parser.add_argument(
        "--checkpoint",
        type=str | None,
        default=None,
        help="a shipped model's name, a checkpoint from dsntpose train (.ckpt/.pt) or an "
        "exported .onnx (default: the shipped whole-photo model, whole_efficientnet_lite0)",
    )
    parser.add_argument(
        "--preds", type=str | None, default=None, help="MPII predictions (.h5/.mat) to score"
    )
    _data_overrides(parser)
    function_options(
        parser,
        "dsntpose.inference:evaluate_checkpoint",
        ["split", "gt", "people", "limit", "flip", "flip_mode", "batch_size", "device", "progress"],
        defaults={"progress": True},
    )
    _threads_option(parser)
    parser.add_argument(
        "--output", type=str | None, default=None, help="write predictions (.h5/.mat)"
    )
    _flag(parser, "json", False, "print JSON instead of the table")
    return parser


def _predict_parser() -> ArgumentParser:
    predict, predict_video = "dsntpose.predict:predict", "dsntpose.video:predict_video"
    parser = _parser(
        "Predict keypoints on images, folders, a video file or a webcam (crop each person, run "
        "the model with the flip test, map back to image pixels). Default model: the shipped "
        "whole-photo model (whole_efficientnet_lite0: EfficientNet-Lite0, MPII's 16 joints, "
        "presence; with no box it finds the person and says when nobody is there); "
        "--checkpoint lsp_efficientnet_lite0 for the LSP model (14 joints)."
    )
    parser.add_argument(
        "images",
        type=str,
        nargs="+",
        help="image files or folders; or one video file (.mp4, .avi, ...) or webcam index (0)",
    )
    parser.add_argument(
        "--checkpoint",
        type=str | None,
        default=None,
        help="a shipped model's name, a checkpoint from dsntpose train (.ckpt/.pt) or an "
        "exported .onnx (default: the shipped model)",
    )
    parser.add_argument("--onnx", type=str | None, default=None, help="run an exported .onnx")
    parser.add_argument(
        "--box", type=str | None, default=None, help="one person box x,y,w,h for every image"
    )
    parser.add_argument(
        "--boxes",
        type=str | None,
        default=None,
        help="person boxes: JSON {filename: [[x,y,w,h], ...]}, a COCO detection-results file "
        "([{image_id, category_id, bbox, score}]) or a COCO annotation file",
    )
    function_options(
        parser,
        predict,
        ["det_threshold", "det_category", "coco_images", "joints", "flip", "margin", "draw_dir"],
    )
    parser.add_argument(
        "--output", type=str | None, default=None, help="write the JSON here (default: stdout)"
    )
    function_options(parser, predict, ["coco_output"])
    parser.add_argument(
        "--video_out", type=str | None, default=None, help="video input: the annotated video"
    )
    function_options(
        parser,
        predict_video,
        ["track", "max_frames", "progress"],
        helps={
            "track": "video input: crop around the previous frame's keypoints",
            "max_frames": "video input: stop after N frames",
            "progress": "video input: show a progress bar",
        },
    )
    function_options(parser, predict, ["batch_size"])
    function_options(
        parser,
        "dsntpose.predictor:Predictor.__init__",
        ["engine"],
        helps={
            "engine": "auto: ONNX Runtime when installed (an export cached by the checkpoint's "
            "hash; about 1.9x torch eager at batch 1), torch: opt out, onnxruntime: insist"
        },
    )
    parser.add_argument(
        "--device", type=str, default="cpu", help="cpu, cuda or cuda:N (checkpoints only)"
    )
    _threads_option(parser)
    return parser


def _export_parser() -> ArgumentParser:
    parser = _parser("Export a checkpoint to ONNX and check it against PyTorch.")
    parser.add_argument(
        "--checkpoint",
        type=str,
        required=True,
        help="a shipped model's name or a checkpoint from dsntpose train (.ckpt/.pt)",
    )
    parser.add_argument("out", type=str | None, nargs="?", help="the .onnx file to write")
    parser.add_argument("--output", type=str | None, default=None, help="the same, as an option")
    function_options(
        parser,
        "dsntpose.export:export_onnx",
        ["check", "opset"],
        helps={"check": "check the file against PyTorch with onnxruntime"},
    )
    return parser


def _bench_parser() -> ArgumentParser:
    parser = _parser(
        "Model efficiency: parameters, multiply-adds, latency (with and without flip), "
        "throughput and peak memory, each model in a fresh process (see dsntpose.bench)."
    )
    function_options(
        parser,
        "dsntpose.bench:run_bench",
        ["models", "device", "threads", "repeats", "quick", "compare_runtimes"],
    )
    parser.add_argument("--json", type=str | None, default=None, help="write the rows as JSON")
    parser.add_argument("--markdown", type=str | None, default=None, help="write a report")
    return parser


def _data_parser() -> tuple[ArgumentParser, ArgumentParser, ArgumentParser]:
    parser = ArgumentParser(
        description="Fetch a data set and verify every file against its sha256 manifest.",
        exit_on_error=False,
    )
    lsp = ArgumentParser(description="LSP from its home page or --zip", exit_on_error=False)
    lsp.add_argument(
        "--data.root",
        type=str | None,
        default=None,
        help="folder to unpack into (default: $DSNTPOSE_DATA/lsp or ~/.cache/dsntpose/lsp)",
    )
    lsp.add_argument("--zip", type=str | None, default=None, help="a local lsp_dataset.zip")
    mpii = ArgumentParser(
        description="MPII annotations (the images need a manual download)", exit_on_error=False
    )
    mpii.add_argument(
        "--data.root",
        type=str | None,
        default=None,
        help="folder to put them in (default: $DSNTPOSE_DATA/mpii or ~/.cache/dsntpose/mpii, "
        "where `dsntpose eval --preds` looks for the ground truth)",
    )
    mpii.add_argument("--from_dir", type=str | None, default=None, help="copy from this folder")
    return parser, lsp, mpii


def _demo_parser() -> ArgumentParser:
    parser = _parser(
        "Train a small DSNT model for a few minutes on the synthetic set (or on LSP with "
        "--data.root), evaluate it, and draw predictions and training curves."
    )
    parser.add_argument(
        "--data.root", type=str | None, default=None, help="LSP folder (default: synthetic set)"
    )
    parser.add_argument("--out_dir", type=str | None, default=None, help="default runs/demo-TIME")
    parser.add_argument("--minutes", type=float, default=8.0, help="the training time to plan for")
    parser.add_argument(
        "--epochs", type=int | None, default=None, help="default: as many as fit in --minutes"
    )
    return parser


def build_parser() -> ArgumentParser:
    """The ``dsntpose`` parser with its subcommands."""
    parser = ArgumentParser(
        prog="dsntpose",
        description="Coordinate regression with DSNT: train, evaluate, predict, export.",
        exit_on_error=False,
        version=__version__,
    )
    sub = parser.add_subcommands(dest="command")
    sub.add_subcommand("train", _train_parser(), help="train a model from a YAML config")
    sub.add_subcommand("eval", _eval_parser(), help="PCK/PCKh of a checkpoint or prediction file")
    sub.add_subcommand("predict", _predict_parser(), help="keypoints on your images")
    sub.add_subcommand("bench", _bench_parser(), help="time and memory of the models")
    sub.add_subcommand("export", _export_parser(), help="export a checkpoint to ONNX")
    data, lsp, mpii = _data_parser()
    sub.add_subcommand("data", data, help="fetch and verify LSP or the MPII annotations")
    sub.add_subcommand("demo", _demo_parser(), help="a few minutes' training, then pictures")
    sub.add_subcommand(
        "models",
        _parser("List the models that can be built and the weights that exist."),
        help="what can be built, and which weights exist",
    )
    data_sub = data.add_subcommands(dest="dataset")
    data_sub.add_subcommand("lsp", lsp, help="Leeds Sports Pose")
    data_sub.add_subcommand("mpii", mpii, help="MPII Human Pose annotations")
    return parser
