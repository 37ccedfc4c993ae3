"""The ``dsntpose`` command: train, eval, predict, bench, export, data and demo.

Every subcommand takes ``--config FILE`` (YAML), dotted overrides (``--model.backbone
resnet18``) and ``--print_config``. ``train`` reads the five sections of a run config
(``model``, ``loss``, ``data``, ``optim``, ``train``; see :mod:`dsntpose.config` and the files
in ``configs/``) and saves the resolved config as ``train.out_dir/config.yaml``, beside the
checkpoints, so ``dsntpose train --config DIR/config.yaml`` repeats any run.

The parsers are :mod:`dsntpose.cli_parsers` (their options generated from the library's
signatures); this module routes the commands and maps exceptions to one line and an exit
status. Only the parser (jsonargparse) and the plain config dataclasses are imported at the top, so
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
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from jsonargparse import Namespace

from dsntpose.cli_parsers import build_parser
from dsntpose.config import SECTIONS, RunConfig
from dsntpose.files import read_yaml

__all__ = ["build_parser", "main"]


class CommandError(Exception):
    """A failure to report in one line with exit status 1 (not the user's input: a network
    error, a diverged training run, an export that does not match)."""


# --------------------------------------------------------------------------------------------
# Commands


def run_config_from(args: Namespace) -> RunConfig:
    """The :class:`RunConfig` of parsed ``train`` arguments (validated)."""
    values: dict[str, Any] = {}
    for name in SECTIONS:
        section = args[name]
        if section is None:
            values[name] = {}
        elif isinstance(section, Namespace):
            values[name] = section.as_dict()
        else:
            raise ValueError(
                f"{name}: expected a section of options (e.g. '{name}: {{key: value}}' in the "
                f"YAML), got {section!r}"
            )
    return RunConfig.from_dict(values)


def _check_weights_file(weights: object) -> None:
    """``model.weights`` naming a local file: refuse an empty, truncated or foreign one before
    anything is built."""
    if not isinstance(weights, str) or weights in ("imagenet",):
        return
    path = Path(weights).expanduser()
    if path.exists():
        from dsntpose.checkpoint import check_torch_file

        check_torch_file(path, "model.weights")


def cmd_train(args: Namespace) -> int:
    run = run_config_from(args)
    _check_weights_file(run.model.weights)
    from dsntpose import training

    try:
        result = training.fit(run, resume=args.resume)
    except (training.TrainingDiverged, training.RunFolderBusy) as err:
        raise CommandError(str(err)) from None
    print(f"run folder: {result.out_dir}")
    print(f"best checkpoint: {result.best}  last checkpoint: {result.last}")
    if "val/pck" in result.metrics:
        print(f"final val/pck: {result.metrics['val/pck']:.2f}")
    return 0


def cmd_eval(args: Namespace) -> int:
    if args.checkpoint is not None and args.preds is not None:
        raise ValueError("eval: give --checkpoint CKPT or --preds FILE, not both")
    _check_output_file("--output", args.output)
    if args.output is not None and Path(args.output).suffix.lower() not in (".h5", ".mat"):
        raise ValueError(f"--output {args.output}: unknown prediction file type; use .h5 or .mat")
    device = _device(args.device)
    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit: must be >= 1 (or unset for all), got {args.limit}")
    if args.preds is not None:
        from dsntpose.mpii_files import eval_command

        for option, value in (("--preds", args.preds), ("--gt", args.gt)):
            _check_annotation_file(option, value)

        root = Path(args.data.root) if args.data.root else None
        image_root = Path(args.data.image_root) if args.data.image_root else None
        eval_command(
            Path(args.preds), Path(args.gt) if args.gt else None, json=args.json,
            people=args.people, image_root=image_root, root=root,
        )  # fmt: skip
        return 0
    from dsntpose.checkpoint import DEFAULT_MODEL
    from dsntpose.inference import evaluate_checkpoint
    from dsntpose.runtime import set_threads

    set_threads(_threads(args.threads))
    checkpoint = args.checkpoint if args.checkpoint is not None else DEFAULT_MODEL
    data = {k: v for k, v in vars(args.data).items() if v is not None}
    evaluation = evaluate_checkpoint(
        checkpoint,
        split=args.split,
        data=data,
        flip=args.flip or args.flip_mode is not None,
        flip_mode=args.flip_mode,
        batch_size=args.batch_size,
        device=device,
        limit=args.limit,
        progress=args.progress,
        people=args.people,
        gt=args.gt,
    )
    print(evaluation.result.to_json() if args.json else evaluation.result)
    people = len(evaluation.predictions)
    flip = "with" if args.flip or args.flip_mode else "without"
    where = f"{people} people of the {args.split} split of {evaluation.run.data.dataset}"
    if evaluation.people is not None:  # MPII's frames
        where = (
            f"{evaluation.people.describe()} on {len(evaluation.joints_scored or ())} MPII "
            f"joints, against {evaluation.ground_truth}"
        )
    print(f"eval: {where} scored, {flip} flip test", file=sys.stderr)
    if args.output is not None:
        from dsntpose.checkpoint import atomic_write
        from dsntpose.mpii_files import write_predictions

        path = atomic_write(
            args.output,
            lambda tmp: write_predictions(tmp, evaluation.preds_px),
            inputs=[checkpoint, args.gt, args.people],
            what="--output",
        )
        print(f"predictions written to {path}", file=sys.stderr)
    return 0


def _check_annotation_file(option: str, value: str | None) -> None:
    """Refuse a prediction or ground-truth file that is a folder, empty, or not the MATLAB/HDF5
    file its suffix says, in one line naming it."""
    if value is None:
        return
    path = Path(value)
    if path.is_dir():
        raise ValueError(f"{option} {path}: is a folder; give a .h5 or .mat file")
    if not path.is_file():
        raise FileNotFoundError(f"{option} {path} does not exist")
    if path.stat().st_size == 0:
        raise ValueError(f"{option} {path} is empty (0 bytes)")
    suffix = path.suffix.lower()
    if suffix == ".mat":
        import scipy.io

        try:
            scipy.io.whosmat(path)
        except Exception as err:  # scipy raises MatReadError, ValueError, TypeError, ...
            raise ValueError(
                f"{option} {path}: not a readable MATLAB file ({_one_line(err)})"
            ) from None
    elif suffix == ".h5":
        with path.open("rb") as f:
            if f.read(8) != b"\x89HDF\r\n\x1a\n":
                raise ValueError(f"{option} {path}: not an HDF5 file")


def _device(name: str) -> str:
    """``name`` when this machine has that device, else a ``ValueError`` saying so."""
    if name.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ValueError(f"--device {name}: this machine has no CUDA GPU; use --device cpu")
    elif name != "cpu" and name != "mps":
        raise ValueError(f"--device: expected cpu, cuda, cuda:N or mps, got {name!r}")
    return name


VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")


def _parse_box(text: str) -> tuple[float, ...]:
    parts = text.replace(" ", "").split(",")
    try:
        box = tuple(float(v) for v in parts)
    except ValueError:
        raise ValueError(f"--box: expected x,y,w,h numbers, got {text!r}") from None
    if len(box) != 4:
        raise ValueError(f"--box: expected 4 numbers x,y,w,h, got {text!r}")
    return box


def _check_output_file(option: str, value: str | None) -> None:
    """Refuse an output path that cannot be a file, before any work is done."""
    if value is None:
        return
    path = Path(value)
    if path.is_dir():
        raise ValueError(f"{option} {path}: is a folder; give a file name")
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise ValueError(f"{option} {path}: {parent} is a file, not a folder")


def _check_output_dir(option: str, value: str | None) -> None:
    """Refuse a folder path that is a file or lies under one, before any work is done."""
    if value is None:
        return
    path = Path(value)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{option} {path}: exists and is not a folder")
    parent = path
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise ValueError(f"{option} {path}: {parent} is a file, not a folder")


def _threads(value: int | str) -> int | Literal["auto"]:
    """``--threads``: a number or ``auto``."""
    if value == "auto":
        return "auto"
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            raise ValueError(f"--threads: expected a number or auto, got {value!r}") from None
    return value


def _plural(count: int, word: str, plural: str | None = None) -> str:
    """``1 person``, ``2 people``, ``0 images``."""
    return f"{count} {word if count == 1 else (plural or word + 's')}"


def cmd_predict(args: Namespace) -> int:
    if args.checkpoint is not None and args.onnx is not None:
        raise ValueError("predict: give --checkpoint CKPT or --onnx FILE, not both")
    if args.box is not None and args.boxes is not None:
        raise ValueError("predict: give --box x,y,w,h or --boxes FILE, not both")
    for option in ("output", "coco_output", "video_out"):
        _check_output_file(f"--{option}", getattr(args, option))
    _check_output_dir("--draw_dir", args.draw_dir)
    if args.boxes is not None and Path(args.boxes).is_dir():
        raise ValueError(f"--boxes {args.boxes}: is a folder; give a JSON file")
    device = _device(args.device)
    box = _parse_box(args.box) if args.box is not None else None
    from dsntpose.checkpoint import DEFAULT_MODEL
    from dsntpose.predict import make_predictor

    predictor = make_predictor(
        None if args.onnx is not None else (args.checkpoint or DEFAULT_MODEL),
        onnx=args.onnx, joints=args.joints, device=device, flip=args.flip,
        batch_size=args.batch_size, margin=args.margin, threads=_threads(args.threads),
        engine=args.engine,
    )  # fmt: skip
    sources = list(args.images)
    if len(sources) == 1 and (
        sources[0].isdigit() or Path(sources[0]).suffix.lower() in VIDEO_SUFFIXES
    ):
        return _predict_video(args, predictor, sources[0], box)
    from dsntpose.checkpoint import atomic_write
    from dsntpose.predict import predict

    inputs = [*sources, args.boxes, args.coco_images, args.checkpoint, args.onnx]
    if args.output is not None:  # before any work: never write the JSON over an input
        from dsntpose.checkpoint import refuse_inputs

        refuse_inputs(args.output, [i for i in inputs if i and Path(i).exists()], "--output")
    result = predict(
        predictor,
        sources,
        box if box is not None else args.boxes,
        draw_dir=args.draw_dir,
        det_threshold=args.det_threshold,
        det_category=args.det_category,
        coco_images=args.coco_images,
        coco_output=args.coco_output,
    )
    text = result.to_json()
    if args.output is None:
        print(text)
    else:
        atomic_write(args.output, lambda tmp: tmp.write_text(text + "\n"), what="--output")
        print(f"{_plural(len(result.people), 'person', 'people')} written to {args.output}",
              file=sys.stderr)  # fmt: skip
    if args.coco_output is not None:
        print(f"COCO keypoint results written to {args.coco_output}", file=sys.stderr)
    if result.nobody:
        print(
            f"predict: no person found in {_plural(len(result.nobody), 'image')}",
            file=sys.stderr,
        )
    if result.errors:  # predict() has already named each failed image and why
        failed = len({str(error["image"]) for error in result.errors})
        print(
            f"dsntpose: {failed} of {result.images} inputs failed (named above); "
            f"{_plural(len(result.people), 'person', 'people')} predicted",
            file=sys.stderr,
        )
        return 1
    return 0


def _predict_video(args: Namespace, predictor: Any, source: str, box: Any) -> int:
    from dsntpose.video import predict_video

    results = args.output
    if results is None and args.video_out is None:
        raise ValueError("predict on a video: give --video_out FILE.mp4 and/or --output FILE.jsonl")
    video = predict_video(
        predictor,
        int(source) if source.isdigit() else source,
        args.video_out,
        results,
        progress=args.progress,
        boxes=box,
        track=args.track,
        max_frames=args.max_frames,
    )
    written = ", ".join(str(p) for p in (video.out_path, video.results_path) if p is not None)
    nobody = f"; no person found in {_plural(video.nobody, 'frame')}" if video.nobody else ""
    print(
        f"predict: {_plural(video.frames, 'frame')} ({video.size[0]}x{video.size[1]} at "
        f"{video.fps:g} fps), {_plural(video.people, 'person', 'people')}{nobody}; wrote {written}",
        file=sys.stderr,
    )
    return 0


def cmd_export(args: Namespace) -> int:
    from dsntpose.checkpoint import OnnxModel, load_any, refuse_inputs
    from dsntpose.export import OnnxParityError, check_parity, export_onnx

    if (args.out is None) == (args.output is None):
        raise ValueError("export: give the .onnx file to write once: OUT.onnx or --output OUT.onnx")
    output = args.out if args.out is not None else args.output
    _check_output_file("export: output", output)
    loaded = load_any(args.checkpoint)  # a shipped model's name, a .ckpt or a .pt
    model, cfg = loaded.model, loaded.config
    if isinstance(model, OnnxModel):  # loaded.kind == "onnx"
        raise ValueError(f"export: {loaded.source} is already an ONNX file; give a checkpoint")
    refuse_inputs(output, [loaded.source], "export: output")
    print(
        f"export: tracing {cfg.backbone}/{cfg.head} to ONNX (this takes a while)", file=sys.stderr
    )
    start = time.perf_counter()
    try:
        path = export_onnx(
            model, output, config=cfg, check=False, opset=args.opset, inputs=[loaded.source]
        )
        print(f"export: wrote {path} in {time.perf_counter() - start:.0f} s", file=sys.stderr)
        if args.check:
            report = check_parity(model, path)
            print(
                f"export: parity with PyTorch at batch sizes {list(report.batch_sizes)}: max "
                f"|coords diff| {report.coords:.2g} normalised units, heatmaps "
                f"{report.heatmaps:.2g}, confidence {report.confidence:.2g}",
                file=sys.stderr,
            )
    except OnnxParityError as err:
        raise CommandError(str(err)) from None
    print(f"wrote {path}")
    return 0


def cmd_bench(args: Namespace) -> int:
    _check_output_file("--json", args.json)
    _check_output_file("--markdown", args.markdown)
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
    from dsntpose.data.download import default_data_root

    if args.dataset == "lsp":
        fetch_lsp(args.lsp.data.root or default_data_root("lsp"), args.lsp.zip)
    else:
        fetch_mpii(args.mpii.data.root or default_data_root("mpii"), args.mpii.from_dir)


def cmd_models(args: Namespace) -> int:
    from dsntpose.zoo import model_listing

    print(model_listing())
    return 0


def cmd_demo(args: Namespace) -> int:
    from dsntpose.demo import run_demo
    from dsntpose.training import TrainingDiverged

    try:
        run_demo(args.data.root, args.out_dir, minutes=args.minutes, epochs=args.epochs)
    except TrainingDiverged as err:
        raise CommandError(str(err)) from None
    return 0


# --------------------------------------------------------------------------------------------
# Entry point


def _one_line(err: BaseException) -> str:
    """An exception's message on one line (KeyError's quotes removed)."""
    text = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
    if "in DataLoader worker process" in text:  # torch wraps a worker's error in its traceback
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        last = lines[-1] if lines else type(err).__name__
        text = last.split(": ", 1)[1] if last.startswith(f"{type(err).__name__}: ") else last
    return (
        "; ".join(part.strip() for part in text.splitlines() if part.strip()) or type(err).__name__
    )


def packaged_configs() -> dict[str, Path]:
    """The recipes shipped in the package (``dsntpose/configs/*.yaml``) by name."""
    from importlib import resources

    folder = Path(str(resources.files("dsntpose") / "configs"))
    return {p.stem: p for p in sorted(folder.glob("*.yaml"))}


def resolve_config_names(argv: list[str]) -> list[str]:
    """``--config NAME`` (no such file, no folder in it) -> the packaged recipe ``NAME.yaml``,
    so ``--config lsp_efficientnet_lite0_s16_dsnt_js`` works from any folder."""
    out = list(argv)
    for i, arg in enumerate(out):
        if arg == "--config" and i + 1 < len(out):
            index, value = i + 1, out[i + 1]
        elif arg.startswith("--config="):
            index, value = i, arg.split("=", 1)[1]
        else:
            continue
        if Path(value).exists() or "/" in value or "\\" in value:
            if Path(value).exists():
                read_yaml(value)  # refuses pipes, YAML aliases and duplicate keys in one line
            continue
        known = packaged_configs()
        name = value.removesuffix(".yaml")
        if name not in known:
            raise ValueError(
                f"--config {value}: no such file, and no shipped recipe of that name; shipped: "
                f"{', '.join(known)}"
            )
        out[index] = str(known[name]) if index == i + 1 else f"--config={known[name]}"
    return out


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
        "models": cmd_models,
    }
    try:
        args = parser.parse_args(resolve_config_names(list(sys.argv[1:] if argv is None else argv)))
        return commands[args.command](args[args.command])
    except (argparse.ArgumentError, ValueError, FileNotFoundError, KeyError) as err:
        print(f"dsntpose: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except CommandError as err:
        print(f"dsntpose: {_one_line(err)}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `dsntpose predict ... | head`: the reader left; not an error
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # the interpreter's final flush must not fail
        return 0
    except OSError as err:  # a disk that is full or read-only, a file that vanished
        where = f"{err.filename}: " if err.filename else ""
        print(f"dsntpose: {where}{_one_line(err)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as err:  # train's says what it saved and how to resume
        print(f"dsntpose: {str(err) or 'interrupted'}", file=sys.stderr)
        return 130
    except Exception as err:  # a bug: still one line; DSNTPOSE_TRACEBACK=1 shows where
        import os

        if os.environ.get("DSNTPOSE_TRACEBACK"):
            raise
        print(
            f"dsntpose: internal error ({type(err).__name__}): {_one_line(err)} (rerun with "
            "DSNTPOSE_TRACEBACK=1 for the traceback, and please report it)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
