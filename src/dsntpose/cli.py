"""The ``dsntpose`` command: train, eval, predict, bench, export, data and demo.

Every subcommand takes ``--config FILE`` (YAML), dotted overrides (``--model.backbone
resnet18``) and ``--print_config``. ``train`` reads the five sections of a run config
(``model``, ``loss``, ``data``, ``optim``, ``train``; see :mod:`dsntpose.config` and the files
in ``configs/``) and saves the resolved config as ``train.out_dir/config.yaml``, beside the
checkpoints, so ``dsntpose train --config DIR/config.yaml`` repeats any run.

Only the parser (jsonargparse) and the plain config dataclasses are imported at the top, so
``dsntpose --help`` answers at once; torch, Lightning and the rest load inside the command
that needs them. Bad input (a wrong value, a missing file or key) ends with a one-line
``dsntpose: error: ...`` on stderr and exit status 2, never a traceback.

Scaling out: ``train.strategy ddp`` with ``train.devices N`` (and ``train.num_nodes``) runs
data-parallel on N GPUs; under ``torchrun`` or SLURM (``srun``) Lightning reads the ranks from
the environment, e.g.
``torchrun --nproc_per_node 4 -m dsntpose.cli train --config configs/mpii_resnet50_s8_dsnt_js.yaml
--train.devices 4 --train.strategy ddp``.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jsonargparse import ActionConfigFile, ArgumentParser, Namespace

from dsntpose.config import (
    SECTIONS,
    DataConfig,
    LossConfig,
    ModelConfig,
    OptimConfig,
    RunConfig,
    TrainConfig,
)

__all__ = ["build_parser", "demo_config", "main"]

SECTION_CLASSES = (ModelConfig, LossConfig, DataConfig, OptimConfig, TrainConfig)


class CommandError(Exception):
    """A failure to report in one line with exit status 1 (not the user's input: a network
    error, a diverged training run, an export that does not match)."""


# --------------------------------------------------------------------------------------------
# Parsers


def _parser(description: str) -> ArgumentParser:
    parser = ArgumentParser(description=description, exit_on_error=False)
    parser.add_argument("--config", action=ActionConfigFile, help="YAML file of these options")
    return parser


def _train_parser() -> ArgumentParser:
    parser = _parser(
        "Train a model. Options come from --config FILE (a YAML with sections model, loss, data, "
        "optim, train; see configs/) and dotted overrides such as --model.backbone resnet18."
    )
    for name, cls in zip(SECTIONS, SECTION_CLASSES):
        parser.add_class_arguments(cls, name)
    parser.add_argument(
        "--resume",
        type=str,
        default="auto",
        help="auto: continue from train.out_dir/last.ckpt when it exists; never: start afresh "
        "(refused when out_dir holds a run); or a checkpoint path",
    )
    return parser


def _eval_parser() -> ArgumentParser:
    parser = _parser(
        "Evaluate a checkpoint on its validation set (PCK@0.2 for LSP and synthetic, PCKh@0.5 "
        "for MPII, in original image pixels), or score an MPII prediction file (--preds)."
    )
    parser.add_argument("--checkpoint", type=str | None, default=None, help="a training checkpoint")
    parser.add_argument(
        "--preds", type=str | None, default=None, help="MPII predictions (.h5/.mat)"
    )
    parser.add_argument("--gt", type=str | None, default=None, help="MPII ground truth for --preds")
    parser.add_argument("--dataset", type=str | None, default=None, help="override data.dataset")
    parser.add_argument("--data_root", type=str | None, default=None, help="override data.root")
    parser.add_argument("--image_root", type=str | None, default=None, help="MPII images folder")
    parser.add_argument("--subset", type=int | None, default=None, help="first N samples only")
    parser.add_argument("--flip_test", type=bool, default=False, help="average with the mirror")
    parser.add_argument(
        "--flip_mode",
        type=str | None,
        default=None,
        help="average logits, coords or heatmaps (default: the head's own)",
    )
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--num_workers", type=int, default=0)
    parser.add_argument("--device", type=str, default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument(
        "--output", type=str | None, default=None, help="write predictions (.h5/.mat)"
    )
    parser.add_argument("--json", type=bool, default=False, help="print JSON instead of the table")
    return parser


def _predict_parser() -> ArgumentParser:
    parser = _parser("Predict keypoints on your own images (crop, model, flip test, map back).")
    parser.add_argument("images", type=str, nargs="+", help="image files or folders")
    parser.add_argument("--checkpoint", type=str | None, default=None)
    parser.add_argument("--onnx", type=str | None, default=None, help="run an exported model")
    parser.add_argument(
        "--box", type=str | None, default=None, help="one person box x,y,w,h for every image"
    )
    parser.add_argument("--boxes", type=str | None, default=None, help="JSON of person boxes")
    parser.add_argument(
        "--joints", type=str | None, default=None, help="the joint set expected (mpii or lsp)"
    )
    parser.add_argument("--flip", type=bool, default=True, help="flip test")
    parser.add_argument("--draw_dir", type=str | None, default=None, help="write drawings here")
    parser.add_argument(
        "--output", type=str | None, default=None, help="JSON file (default stdout)"
    )
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--device", type=str | None, default=None)
    return parser


def _export_parser() -> ArgumentParser:
    parser = _parser("Export a checkpoint to ONNX and check it against PyTorch.")
    parser.add_argument("--checkpoint", type=str, required=True)
    parser.add_argument("out", type=str | None, nargs="?", help="the .onnx file to write")
    parser.add_argument("--output", type=str | None, default=None, help="the same, as an option")
    parser.add_argument("--check", type=bool, default=True, help="compare with PyTorch")
    parser.add_argument("--opset", type=int | None, default=None)
    return parser


def _bench_parser() -> ArgumentParser:
    parser = _parser(
        "Model efficiency: parameters, multiply-adds, latency (with and without flip), "
        "throughput and peak memory, each model in a fresh process (see dsntpose.bench)."
    )
    parser.add_argument(
        "--models", type=list[str] | None, default=None, help="e.g. [resnet50-os8,hourglass-8]"
    )
    parser.add_argument("--device", type=str, default="cpu", help="cpu or cuda")
    parser.add_argument("--threads", type=int | None, default=None, help="torch threads")
    parser.add_argument("--repeats", type=int | None, default=None, help="timed forwards")
    parser.add_argument("--quick", type=bool, default=False, help="64 px inputs, in seconds")
    parser.add_argument("--compare_runtimes", type=bool, default=False, help="eager/compile/onnx")
    parser.add_argument("--json", type=str | None, default=None, help="write the rows as JSON")
    parser.add_argument("--markdown", type=str | None, default=None, help="write a report")
    return parser


def _data_parser() -> tuple[ArgumentParser, ArgumentParser, ArgumentParser]:
    parser = ArgumentParser(
        description="Fetch a data set and verify every file against its sha256 manifest.",
        exit_on_error=False,
    )
    lsp = ArgumentParser(description="LSP from its home page or --zip", exit_on_error=False)
    lsp.add_argument("--root", type=str, required=True, help="folder to unpack into")
    lsp.add_argument("--zip", type=str | None, default=None, help="a local lsp_dataset.zip")
    mpii = ArgumentParser(
        description="MPII annotations (the images need a manual download)", exit_on_error=False
    )
    mpii.add_argument("--root", type=str, required=True, help="folder to put them in")
    mpii.add_argument("--from_dir", type=str | None, default=None, help="copy from this folder")
    return parser, lsp, mpii


def _demo_parser() -> ArgumentParser:
    parser = _parser(
        "Train a small DSNT model for a few minutes on the synthetic set (or on LSP with "
        "--data_root), evaluate it, and draw predictions and training curves."
    )
    parser.add_argument("--data_root", type=str | None, default=None, help="LSP folder")
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
    data_sub = data.add_subcommands(dest="dataset")
    data_sub.add_subcommand("lsp", lsp, help="Leeds Sports Pose")
    data_sub.add_subcommand("mpii", mpii, help="MPII Human Pose annotations")
    return parser


# --------------------------------------------------------------------------------------------
# Commands


def run_config_from(args: Namespace) -> RunConfig:
    """The :class:`RunConfig` of parsed ``train`` arguments (validated)."""
    values = {name: args[name].as_dict() if args[name] is not None else {} for name in SECTIONS}
    return RunConfig.from_dict(values)


def cmd_train(args: Namespace) -> int:
    run = run_config_from(args)
    from dsntpose import training

    try:
        result = training.fit(run, resume=args.resume)
    except training.TrainingDiverged as err:
        raise CommandError(str(err)) from None
    print(f"run folder: {result.out_dir}")
    print(f"best checkpoint: {result.best}  last checkpoint: {result.last}")
    if "val/pck" in result.metrics:
        print(f"final val/pck: {result.metrics['val/pck']:.2f}")
    return 0


def cmd_eval(args: Namespace) -> int:
    if (args.checkpoint is None) == (args.preds is None):
        raise ValueError("eval: give exactly one of --checkpoint CKPT or --preds FILE")
    if args.preds is not None:
        from dsntpose.evaluate import eval_command

        eval_command(Path(args.preds), Path(args.gt) if args.gt else None, json=args.json)
        return 0
    from dsntpose import training

    data: dict[str, Any] = {"num_workers": args.num_workers}
    for key, value in (
        ("dataset", args.dataset),
        ("root", args.data_root),
        ("image_root", args.image_root),
        ("val_subset", args.subset),
    ):
        if value is not None:
            data[key] = value
    evaluation = training.evaluate_checkpoint(
        args.checkpoint,
        data=data,
        flip=args.flip_test or args.flip_mode is not None,
        flip_mode=args.flip_mode,
        batch_size=args.batch_size,
        device=args.device,
    )
    print(evaluation.result.to_json() if args.json else evaluation.result)
    if args.output is not None:
        from dsntpose.evaluate import write_predictions

        path = write_predictions(args.output, evaluation.preds_px)
        print(f"predictions written to {path}", file=sys.stderr)
    return 0


def cmd_predict(args: Namespace) -> int:
    import json

    from dsntpose.predict import predict

    if args.checkpoint is None and args.onnx is None:
        raise ValueError("predict: give --checkpoint CKPT or --onnx FILE")
    if args.box is not None and args.boxes is not None:
        raise ValueError("predict: give --box x,y,w,h or --boxes FILE, not both")
    boxes = args.boxes
    if args.box is not None:
        parts = args.box.replace(" ", "").split(",")
        try:
            boxes = tuple(float(v) for v in parts)
        except ValueError:
            raise ValueError(f"--box: expected x,y,w,h numbers, got {args.box!r}") from None
        if len(boxes) != 4:
            raise ValueError(f"--box: expected 4 numbers x,y,w,h, got {args.box!r}")
    result = predict(
        args.checkpoint,
        args.images,
        boxes,
        joints=args.joints,
        flip=args.flip,
        draw_dir=args.draw_dir,
        onnx=args.onnx,
        batch_size=args.batch_size,
        device=args.device,
    )
    text = json.dumps({"people": result.people, "errors": result.errors}, indent=2)
    if args.output is None:
        print(text)
    else:
        Path(args.output).write_text(text + "\n")
        print(f"{len(result.people)} people written to {args.output}", file=sys.stderr)
    for error in result.errors:
        print(f"dsntpose: {error['image']}: {error['error']}", file=sys.stderr)
    return 1 if result.errors else 0


def cmd_export(args: Namespace) -> int:
    from dsntpose.export import OnnxParityError, export_onnx

    if (args.out is None) == (args.output is None):
        raise ValueError("export: give the .onnx file to write once: OUT.onnx or --output OUT.onnx")
    output = args.out if args.out is not None else args.output
    try:
        path = export_onnx(args.checkpoint, output, check=args.check, opset=args.opset)
    except OnnxParityError as err:
        raise CommandError(str(err)) from None
    print(f"wrote {path}")
    return 0


def cmd_bench(args: Namespace) -> int:
    from dsntpose.bench import make_document, render_markdown, run_bench

    rows = run_bench(
        args.models,
        device=args.device,
        json_path=args.json,
        repeats=args.repeats,
        compare_runtimes=args.compare_runtimes,
        threads=args.threads,
        quick=args.quick,
    )
    if args.markdown is not None:
        document = make_document(rows, device=args.device, threads=args.threads, quick=args.quick)
        Path(args.markdown).write_text(render_markdown(document))
        print(f"report written to {args.markdown}", file=sys.stderr)
    return 0


def cmd_data(args: Namespace) -> int:
    from dsntpose.data.download import DownloadError, fetch_lsp, fetch_mpii

    try:
        _fetch(args, fetch_lsp, fetch_mpii)
    except DownloadError as err:
        raise CommandError(str(err)) from None
    return 0


def _fetch(args: Namespace, fetch_lsp: Any, fetch_mpii: Any) -> None:
    if args.dataset == "lsp":
        fetch_lsp(args.lsp.root, args.lsp.zip)
    else:
        fetch_mpii(args.mpii.root, args.mpii.from_dir)


def demo_config(
    data_root: str | None, out_dir: str, epochs: int = 8, val_every: int = 1
) -> RunConfig:
    """The demo's run, sized for two CPU cores: a one-stack hourglass with DSNT + JS.

    64 px crops give 16 px heatmaps (stride 4); random initialisation (nothing downloaded).
    Synthetic (``data_root`` None): epochs of 2048 new figures, no augmentation, 256 for
    validation. LSP: the standard 1000 training images with the paper's augmentation,
    validated on the first 256 test images during training. Adam 2e-3, the last epoch at a
    tenth of it (the LSP run: the last quarter). ``dsntpose demo`` plans ``epochs`` from a
    measured training step and lets :class:`~dsntpose.training.TimeBudget` move the end (and
    the lowered epochs with it) when the machine turns out faster or slower.
    """
    lsp = data_root is not None
    decay = max(1, epochs - (max(1, epochs // 4) if lsp else 1))
    return RunConfig.from_dict(
        {
            "model": {
                "backbone": "hourglass",
                "num_stacks": 1,
                "head": "dsnt",
                "input_size": 64,
                "joints": "lsp",
            },
            "loss": {"regularizer": "js", "reg_weight": 1.0, "sigma": 1.0},
            "data": {
                "dataset": "lsp" if lsp else "synthetic",
                "root": data_root,
                "augment": lsp,
                "batch_size": 16,
                "num_workers": 0,
                "val_subset": 256 if lsp else None,
                "synthetic_train": 2048,
                "synthetic_val": 256,
            },
            "optim": {"optimizer": "adam", "lr": 2e-3, "milestones": [decay], "gamma": 0.1},
            "train": {
                "epochs": epochs,
                "precision": "32-true",
                "accelerator": "cpu",
                "devices": 1,
                "out_dir": out_dir,
                "log_every": 10,
                "val_every": val_every,
                "vis_every": 1,
                "ckpt_every": 100,
            },
        }
    )


def _demo_epochs(run: RunConfig, step_seconds: float, minutes: float) -> int:
    """Epochs of ``run`` that fit in ``minutes`` at ``step_seconds`` per measured step.

    The measured step leaves out data loading, the optimiser and validation; a factor of 1.4
    (measured on the demo's own runs) covers them.
    """
    samples = 1000 if run.data.dataset == "lsp" else run.data.synthetic_train
    steps_per_epoch = math.ceil(samples / run.data.batch_size)
    return max(2, int(minutes * 60 / (1.4 * step_seconds * steps_per_epoch)))


def cmd_demo(args: Namespace) -> int:
    start = time.perf_counter()
    if args.data_root is not None and not Path(args.data_root).expanduser().is_dir():
        raise FileNotFoundError(
            f"--data_root {args.data_root} does not exist; fetch LSP with "
            f"`dsntpose data lsp --root {args.data_root}`, or leave DATA unset for the "
            "synthetic demo"
        )
    out_dir = args.out_dir or f"runs/demo-{time.strftime('%Y%m%d-%H%M%S')}"
    what = f"LSP at {args.data_root}" if args.data_root else "the synthetic pose set"
    from dsntpose import training
    from dsntpose.viz import plot_training_curves, save_figure, save_image

    run = demo_config(args.data_root, out_dir)
    threads, step_seconds = training.pick_cpu_threads(run)
    epochs = args.epochs or _demo_epochs(run, step_seconds, args.minutes)
    val_every = max(1, epochs // 5) if args.data_root else 1
    run = demo_config(args.data_root, out_dir, epochs, val_every)
    print(
        f"demo: a training step takes {step_seconds:.2f} s here with {threads} CPU thread(s), "
        f"so {epochs} epochs fit in {args.minutes:g} minutes",
        flush=True,
    )
    print(
        f"demo: training a {run.model.num_stacks}-stack hourglass + DSNT/JS "
        f"({run.model.input_size} px crops, {run.model.heatmap_size} px heatmaps) on {what} "
        f"into {out_dir}",
        flush=True,
    )
    # The plan follows the machine's speed from epoch to epoch; max_time is a safety net.
    final_epochs = max(1, run.train.epochs - run.optim.milestones[0])
    plan = training.TimeBudget(args.minutes * 60, final_epochs=final_epochs)
    limit = {"seconds": round(min(args.minutes * 1.2, args.minutes + 1.5) * 60)}
    try:
        result = training.fit(run, resume="never", extra_callbacks=[plan], max_time=limit)
    except training.TrainingDiverged as err:
        raise CommandError(str(err)) from None
    trained = time.perf_counter() - start
    assert result.last is not None
    evaluation = training.evaluate_checkpoint(result.last, data={"val_subset": None})
    print()
    print(evaluation.result)
    out = Path(out_dir)
    picture = save_image(
        training.prediction_picture(evaluation.samples, evaluation.result.joint_set, tile=192),
        out / "predictions.png",
    )
    curves = save_figure(plot_training_curves(out / "logs" / "csv"), out / "training_curves.png")
    total = time.perf_counter() - start
    print()
    print(f"demo: {result.global_step} training steps in {trained:.0f} s; {total:.0f} s in all")
    print(
        f"demo: PCK@0.2 {evaluation.result.total:.1f}% on {len(evaluation.preds_px)} "
        f"validation images of {what}"
    )
    print(f"demo: predictions drawn in {picture} (white: ground truth, red: error)")
    print(f"demo: training curves in {curves}")
    print(f"demo: checkpoints in {out} (last.ckpt, best.ckpt); config {out / 'config.yaml'}")
    print(f"demo: TensorBoard: tensorboard --logdir {out / 'logs'}")
    return 0


# --------------------------------------------------------------------------------------------
# Entry point


def _one_line(err: BaseException) -> str:
    """An exception's message on one line (KeyError's quotes removed)."""
    text = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
    return (
        "; ".join(part.strip() for part in text.splitlines() if part.strip()) or type(err).__name__
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``dsntpose`` with ``argv`` (default ``sys.argv[1:]``); returns the exit status.

    0 success; 2 bad input (a one-line message on stderr); 1 a failure that is not the
    input's fault (a diverged run, a download that failed, an ONNX parity failure).
    """
    parser = build_parser()
    commands = {
        "train": cmd_train,
        "eval": cmd_eval,
        "predict": cmd_predict,
        "bench": cmd_bench,
        "export": cmd_export,
        "data": cmd_data,
        "demo": cmd_demo,
    }
    try:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
        return commands[args.command](args[args.command])
    except (argparse.ArgumentError, ValueError, FileNotFoundError, KeyError) as err:
        print(f"dsntpose: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except CommandError as err:
        print(f"dsntpose: {_one_line(err)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
