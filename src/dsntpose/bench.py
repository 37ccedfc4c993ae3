"""Model efficiency: parameters, multiply-adds, latency, throughput and peak memory.

:func:`run_bench` measures each named model in a fresh process (so that a peak of the
process's resident memory belongs to that model alone) and returns one dict per model:

* ``params_m`` (millions) and ``gmacs`` at batch 1 (FLOPs counted by
  ``torch.utils.flop_counter.FlopCounterMode``, convolutions and matrix products; GMACs =
  GFLOPs / 2); ``head_gmacs`` for the head alone.
* ``latency_ms``: median time of one forward at batch 1, under ``torch.inference_mode``, in
  both memory formats (``latency_ms_contiguous``, ``latency_ms_channels_last``); the faster
  becomes the row's ``memory_format`` and every other figure is measured in it.
* ``flip_latency_ms``: batch 1 with flip test, i.e. the image and its mirror in one batch of
  2 (how the paper timed it; the maps' averaging afterwards is not included).
* ``throughput_ips``: images per second at ``throughput_batch`` (32 on a GPU; smaller on a
  CPU, recorded in the row).
* ``infer_peak_mb``: peak memory growth of the flip-test forward (batch 2); ``train_peak_mb``:
  of one training step (forward and backward) at ``train_batch`` (8 as the paper on a GPU;
  smaller on a CPU, recorded). On a GPU this is the CUDA allocator's peak above what was
  allocated before; on a CPU the growth of the process's peak resident set (VmHWM, reset
  through ``/proc/self/clear_refs`` where allowed) above its size before the step.
* ``backbone_ms``, ``head_ms`` and ``head_overhead_pct``: batch-1 medians of the backbone
  alone and of the head alone on the backbone's features (1x1 conv, normalisation, DSNT).

Model names: ``resnet{18,34,50,101,152}-os{32,16,8,4}`` (224 px input) and
``hourglass-{stacks}`` (256 px input), optionally followed by ``-heatmap`` or ``-fc``
(default head: DSNT), e.g. ``resnet50-os8``, ``hourglass-8``, ``resnet34-os8-fc``.

When both ``resnet50-os8`` and ``hourglass-8`` are measured (the paper's efficiency
comparison), their batch-1 forwards, without and with flip, are also timed in turn in one
process (``row["interleaved"]`` of the ResNet): on a machine shared with other work that ratio
is robust, where figures measured minutes apart are not. :func:`paper_ratios` reports both.

``compare_runtimes=True`` also times the first model on eager PyTorch, ``torch.compile`` and
onnxruntime (through :mod:`dsntpose.export`, skipped with a note when it is unavailable).

Example:
    >>> rows = run_bench(["resnet18-os32"], quick=True, isolate=False)  # doctest: +SKIP
    >>> rows[0]["gmacs"], rows[0]["memory_format"]                      # doctest: +SKIP
"""

from __future__ import annotations

import concurrent.futures
import copy
import dataclasses
import json
import multiprocessing
import os
import resource
import statistics
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.flop_counter import FlopCounterMode

from dsntpose.bench_report import (
    PAPER_PAIR,
    _mib,
    cpu_name,
    make_document,
    paper_ratios,
    render_markdown,
)
from dsntpose.config import LossConfig, ModelConfig
from dsntpose.model import CoordRegressionModel, build_model, model_config

__all__ = [
    "DEFAULT_MODELS",
    "QUICK_MODELS",
    "available_cpus",
    "cpu_name",
    "make_document",
    "measure_model",
    "model_config",
    "paper_ratios",
    "render_markdown",
    "run_bench",
]

DEFAULT_MODELS = (
    *(f"resnet{d}-os{s}" for d in (18, 34, 50) for s in (32, 16, 8)),
    "resnet18-os4",  # the head's overhead at the fourth stride
    *(f"hourglass-{n}" for n in (1, 2, 4, 8)),
)
# `bench --quick` without --models: one model of each family, the shipped model's backbone
# (EfficientNet-Lite0 at stride 16) included, at 64 px: a check of the machinery in seconds.
QUICK_MODELS = ("resnet18-os32", "efficientnet_lite0-os16", "hourglass-1")
# The paper's efficiency comparison: ResNet-50 at stride 8 with DSNT against 8 stacks.
QUICK_SIZE = 64  # input side in quick mode (a multiple of 64, so the hourglass fits too)
FORMATS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity mask where the system has one)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


# ---------------------------------------------------------------- measuring tools


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _median_ms(
    fns: Mapping[str, Callable[[], object]], device: torch.device, repeats: int, warmup: int
) -> dict[str, float]:
    """Median wall time in milliseconds of each ``fns[k]()`` after ``warmup`` calls.

    The calls are interleaved round robin, so a machine that other work slows down slows every
    contender alike and their comparison stays fair.
    """
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    _sync(device)
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for key, fn in fns.items():
            start = time.perf_counter()
            fn()
            _sync(device)
            times[key].append((time.perf_counter() - start) * 1e3)
    return {k: statistics.median(v) for k, v in times.items()}


def _status_kb(field: str) -> int | None:
    """A ``kB`` field of ``/proc/self/status`` (Linux), or ``None``."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_rss_peak() -> bool:
    """Reset the process's peak resident set (VmHWM); ``False`` where that is not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _peak_growth_mb(fn: Callable[[], object], device: torch.device) -> tuple[float, str]:
    """Peak memory growth of ``fn()`` in MiB, and how it was measured."""
    if device.type == "cuda":
        _sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        fn()
        _sync(device)
        return (torch.cuda.max_memory_allocated(device) - before) / 2**20, "cuda allocator peak"
    reset = _reset_rss_peak()
    before_kb = _status_kb("VmRSS")
    fn()
    peak_kb = _status_kb("VmHWM") if reset else None
    if before_kb is None:
        return float("nan"), "unavailable (no /proc/self/status)"
    if peak_kb is None:  # the lifetime peak: meaningful in a fresh process only
        peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return (peak_kb - before_kb) / 1024, "process peak RSS (ru_maxrss) growth"
    return (peak_kb - before_kb) / 1024, "process peak RSS (VmHWM) growth"


def _flops(fn: Callable[..., object], *args: Tensor) -> int:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        fn(*args)
    return int(counter.get_total_flops())


def _backbone_features(model: CoordRegressionModel, x: Tensor) -> tuple[Tensor, ...]:
    """What :meth:`CoordRegressionModel.head_output` takes for ``x``: the features (the last
    stack's maps for the hourglass), and the finer ones for a model with the decoder."""
    if model.has_decoder:
        return model.backbone_features(x)
    features = model.backbone(x)
    return (features,) if isinstance(features, Tensor) else (features[-1],)


def _backbone_call(model: CoordRegressionModel) -> Callable[[Tensor], Any]:
    return model.backbone_features if model.has_decoder else model.backbone


# ---------------------------------------------------------------- one model


def measure_model(
    name: str,
    *,
    device: str = "cpu",
    repeats: int = 10,
    warmup: int = 2,
    throughput_batch: int | None = None,
    throughput_repeats: int | None = None,
    train_batch: int | None = None,
    input_size: int | None = None,
    threads: int | None = None,
    phases: Sequence[str] = ("timing", "infer_memory", "train_memory"),
    memory_format: str | None = None,
    config: ModelConfig | None = None,
) -> dict[str, Any]:
    """Measure one model in this process (see the module docstring for the fields).

    Args:
        name: a benchmark model name (:func:`model_config`).
        device: ``"cpu"`` or ``"cuda"`` (or ``"cuda:N"``).
        repeats: timed batch-1 forwards per figure (the median is reported).
        warmup: untimed forwards before each timing.
        throughput_batch: batch for the throughput figure (default 32 on a GPU, 8 on a CPU).
        throughput_repeats: timed batches for it (default ``repeats`` on a GPU, 2 on a CPU).
        train_batch: batch of the training-memory step (default 8 on a GPU, 2 on a CPU).
        input_size: crop side (default 224 ResNets, 256 hourglass).
        threads: ``torch.set_num_threads`` for this process (``None`` leaves torch's default).
        phases: which of ``timing``, ``infer_memory``, ``train_memory`` to run; memory
            figures are only clean when measured first in a fresh process, so
            :func:`run_bench` runs each in its own.
        memory_format: the format for the memory phases (``timing`` chooses it itself).
        config: the network to measure, instead of the one ``name`` stands for (a trained
            checkpoint's, with its joint set and activation; ``name`` then only labels the row).

    Returns:
        A dict of the figures measured (``nan`` for the phases not run).
    """
    dev = torch.device(device)
    cuda = dev.type == "cuda"
    if threads is not None:
        torch.set_num_threads(threads)
    throughput_batch = throughput_batch or (32 if cuda else 8)
    throughput_repeats = throughput_repeats or (repeats if cuda else 2)
    train_batch = train_batch or (8 if cuda else 2)
    cfg = model_config(name, input_size=input_size) if config is None else config
    if cfg.weights is not None:
        cfg = dataclasses.replace(cfg, weights=None)  # figures do not depend on the weights
    torch.manual_seed(0)
    model = build_model(cfg).to(dev).eval()
    size = cfg.input_size
    image = torch.rand(1, 3, size, size, device=dev)
    row: dict[str, Any] = {
        "model": name,
        "backbone": cfg.backbone,
        "stride": cfg.stride,
        "num_stacks": cfg.num_stacks if cfg.backbone == "hourglass" else None,
        "head": cfg.head,
        "input_size": size,
        "heatmap_size": cfg.heatmap_size,
        "device": str(dev),
        "threads": torch.get_num_threads(),
        "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
        "repeats": repeats,
        "throughput_batch": throughput_batch,
        "train_batch": train_batch,
    }

    def use_format(fmt: str) -> Tensor:
        model.to(memory_format=FORMATS[fmt])  # type: ignore[call-overload]
        return image.contiguous(memory_format=FORMATS[fmt])

    if "infer_memory" in phases:
        x = use_format(memory_format or "contiguous")
        flip = torch.cat([x, x.flip(-1)])
        with torch.inference_mode():
            row["infer_peak_mb"], row["memory_method"] = _peak_growth_mb(lambda: model(flip), dev)
    if "train_memory" in phases:
        fmt = memory_format or "contiguous"
        use_format(fmt)
        model.train()
        batch = torch.rand(train_batch, 3, size, size, device=dev)
        batch = batch.contiguous(memory_format=FORMATS[fmt])
        target = torch.zeros(train_batch, cfg.num_joints, 2, device=dev)
        mask = torch.ones(train_batch, cfg.num_joints, device=dev)

        def train_step() -> None:
            loss = model.loss(model(batch), target, mask, LossConfig())
            loss.backward()  # type: ignore[no-untyped-call]

        row["train_peak_mb"], row["memory_method"] = _peak_growth_mb(train_step, dev)
        model.zero_grad(set_to_none=True)
        model.eval()
    if "timing" in phases:
        row.update(
            _timing(model, image, dev, repeats, warmup, throughput_batch, throughput_repeats)
        )
    return row


def _timing(
    model: CoordRegressionModel,
    image: Tensor,
    dev: torch.device,
    repeats: int,
    warmup: int,
    throughput_batch: int,
    throughput_repeats: int,
) -> dict[str, Any]:
    """FLOPs, both memory formats at batch 1, then flip, throughput and head overhead."""
    out: dict[str, Any] = {}
    flops = _flops(model, image)
    features = _backbone_features(model, image)
    head_flops = _flops(model.head_output, *features)  # the head with the decoder, if any
    out.update(gflops=flops / 1e9, gmacs=flops / 2e9, head_gmacs=head_flops / 2e9)
    with torch.inference_mode():
        # both formats side by side: a copy of the model in each, calls interleaved
        models = {
            fmt: copy.deepcopy(model).to(memory_format=f)  # type: ignore[call-overload]
            for fmt, f in FORMATS.items()
        }
        inputs = {fmt: image.contiguous(memory_format=f) for fmt, f in FORMATS.items()}
        calls = {fmt: partial(models[fmt], inputs[fmt]) for fmt in FORMATS}
        latency = _median_ms(calls, dev, repeats, warmup)
        out.update({f"latency_ms_{fmt}": ms for fmt, ms in latency.items()})
        fmt = min(latency, key=latency.__getitem__)
        out["memory_format"] = fmt
        out["latency_ms"] = latency[fmt]
        model, x = models[fmt], inputs[fmt]
        del models
        flip = torch.cat([x, x.flip(-1)])
        out["flip_latency_ms"] = _median_ms({"": partial(model, flip)}, dev, repeats, warmup)[""]
        batch = x.expand(throughput_batch, -1, -1, -1).contiguous(memory_format=FORMATS[fmt])
        batch_ms = _median_ms({"": partial(model, batch)}, dev, throughput_repeats, 1)[""]
        out["throughput_ips"] = throughput_batch / (batch_ms / 1e3)
        # head overhead: the backbone alone and the head alone on the backbone's features
        feats = _backbone_features(model, x)
        parts = {
            "backbone": partial(_backbone_call(model), x),
            "head": partial(model.head_output, *feats),
        }
        parts_ms = _median_ms(parts, dev, repeats, warmup)
        out["backbone_ms"], out["head_ms"] = parts_ms["backbone"], parts_ms["head"]
        out["head_overhead_pct"] = 100 * parts_ms["head"] / parts_ms["backbone"]
    return out


def _runtimes(
    name: str,
    *,
    device: str,
    repeats: int,
    warmup: int,
    input_size: int | None,
    threads: int | None,
    memory_format: str = "contiguous",
) -> dict[str, Any]:
    """Batch-1 latency of one model on eager PyTorch, torch.compile and onnxruntime.

    Eager and compiled models run in ``memory_format``; onnxruntime takes contiguous input.
    """
    dev = torch.device(device)
    if threads is not None:
        torch.set_num_threads(threads)
    cfg = model_config(name, input_size=input_size)
    torch.manual_seed(0)
    model = build_model(cfg).to(dev).eval()
    image = torch.rand(1, 3, cfg.input_size, cfg.input_size, device=dev)
    result: dict[str, Any] = {
        "model": name,
        "device": str(dev),
        "memory_format": memory_format,
        "notes": [],
    }
    model.to(memory_format=FORMATS[memory_format])  # type: ignore[call-overload]
    x = image.contiguous(memory_format=FORMATS[memory_format])
    compiled = torch.compile(model)
    calls: dict[str, Callable[[], Any]] = {
        "eager": partial(model, x),
        "compile": partial(compiled, x),
    }
    with torch.inference_mode():
        reference = model(x).coords
        start = time.perf_counter()
        compiled(x)
        result["compile_s"] = time.perf_counter() - start
        result["compile_max_diff"] = float((compiled(x).coords - reference).abs().max())
    with tempfile.TemporaryDirectory() as tmp:
        try:
            from dsntpose.checkpoint import OnnxModel
            from dsntpose.export import export_onnx
        except ImportError as err:
            result["notes"].append(f"onnxruntime skipped: dsntpose.export unavailable ({err})")
        else:
            path = export_onnx(model, Path(tmp) / "model.onnx", config=cfg, check=False)
            runner = OnnxModel(path)
            calls["onnxruntime"] = partial(runner, image.cpu())
            got = runner(image.cpu()).coords
            result["onnxruntime_max_diff"] = float((got - reference.cpu()).abs().max())
        with torch.inference_mode():
            medians = _median_ms(calls, dev, repeats, warmup)
    result.update({f"{k}_ms": v for k, v in medians.items()})
    return result


def _paired_timing(
    names: Sequence[str],
    *,
    formats: Sequence[str],
    device: str,
    repeats: int,
    warmup: int,
    input_size: int | None,
    threads: int | None,
) -> dict[str, Any]:
    """Batch-1 latency, without and with flip, of several models in one process, interleaved.

    On a machine shared with other work, figures taken minutes apart are not comparable;
    calls taken in turn are. Each model runs in the memory format given for it.
    """
    dev = torch.device(device)
    if threads is not None:
        torch.set_num_threads(threads)
    calls: dict[str, Callable[[], Any]] = {}
    for name, fmt in zip(names, formats):
        cfg = model_config(name, input_size=input_size)
        torch.manual_seed(0)
        model = build_model(cfg).to(dev).eval().to(memory_format=FORMATS[fmt])  # type: ignore[call-overload]
        x = torch.rand(1, 3, cfg.input_size, cfg.input_size, device=dev)
        x = x.contiguous(memory_format=FORMATS[fmt])
        calls[name] = partial(model, x)
        calls[f"{name} flip"] = partial(model, torch.cat([x, x.flip(-1)]))
    with torch.inference_mode():
        medians = _median_ms(calls, dev, repeats, warmup)
    return {"models": list(names), "latency_ms": medians, "repeats": repeats}


# ---------------------------------------------------------------- the table


def _in_fresh_process(fn: Callable[..., dict[str, Any]], /, **kwargs: Any) -> dict[str, Any]:
    """``fn(**kwargs)`` in a new spawned Python process."""
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
        return pool.submit(fn, **kwargs).result()


def run_bench(
    models: list[str] | None = None,
    *,
    device: str = "cpu",
    json_path: str | Path | None = None,
    repeats: int | None = None,
    compare_runtimes: bool = False,
    threads: int | None = None,
    quick: bool = False,
    isolate: bool | None = None,
    throughput_batch: int | None = None,
    train_batch: int | None = None,
    log: Callable[[str], None] | None = print,
) -> list[dict[str, Any]]:
    """Benchmark models and return one row per model (see the module docstring).

    Args:
        models: model names (:func:`model_config`); default :data:`DEFAULT_MODELS`, ResNet-18,
            34 and 50 at strides 32, 16 and 8 and ResNet-18 at stride 4 with DSNT, and the
            hourglass with 1, 2, 4 and 8 stacks; in quick mode :data:`QUICK_MODELS` (one of each
            family, EfficientNet-Lite0 included).
        device: ``"cpu"`` or ``"cuda"``.
        json_path: if given, write ``{"meta", "models", "ratios"}`` there as JSON.
        repeats: timed batch-1 forwards per figure (default 10; 2 in quick mode).
        compare_runtimes: also time the first model on eager PyTorch, ``torch.compile`` and
            onnxruntime (its row gets a ``runtimes`` dict).
        threads: ``torch.set_num_threads`` in the measuring processes.
        quick: 64 px inputs, two repeats, batch 2: checks the machinery in seconds; the
            figures are not the paper's setting.
        isolate: measure every model (and each memory figure) in a fresh process; default
            ``True``, ``False`` in quick mode (memory figures then share one process).
        throughput_batch, train_batch: override the defaults of :func:`measure_model`.
        log: progress lines go here (``None`` for silence).

    Returns:
        The rows, in the order of ``models``.
    """
    names = list(models or (QUICK_MODELS if quick else DEFAULT_MODELS))
    for name in names:
        model_config(name)  # fail early on a bad name
    if repeats is not None and repeats < 1:
        raise ValueError(f"repeats: must be >= 1 (or unset for the default), got {repeats}")
    if threads is not None and threads < 1:
        raise ValueError(f"threads: must be >= 1 (or unset for torch's default), got {threads}")
    cpus = available_cpus()
    if threads is not None and threads > cpus:
        raise ValueError(
            f"threads: at most the {cpus} CPUs available to this process, got {threads}"
        )
    isolate = (not quick) if isolate is None else isolate
    repeats = repeats or (2 if quick else 10)

    def write_json() -> None:  # after every model, so an interrupted run keeps what it measured
        if json_path is None:
            return
        path = Path(json_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        document = make_document(rows, device=device, threads=threads, quick=quick, isolate=isolate)
        path.write_text(json.dumps(document, indent=2) + "\n")

    common: dict[str, Any] = {
        "device": device,
        "repeats": repeats,
        "threads": threads,
        "input_size": QUICK_SIZE if quick else None,
        "throughput_batch": throughput_batch or (2 if quick else None),
        "throughput_repeats": 1 if quick else None,
        "train_batch": train_batch or (2 if quick else None),
        "warmup": 1 if quick else 2,
    }
    rows: list[dict[str, Any]] = []
    for number, name in enumerate(names, 1):
        start = time.perf_counter()
        if log:
            log(f"[{number}/{len(names)}] {name} ...")
        if isolate:
            row = _in_fresh_process(measure_model, name=name, phases=("timing",), **common)
            for phase in ("infer_memory", "train_memory"):
                mem = _in_fresh_process(
                    measure_model,
                    name=name,
                    phases=(phase,),
                    memory_format=row["memory_format"],
                    **common,
                )
                row.update(
                    {k: v for k, v in mem.items() if k.endswith("_mb") or k == "memory_method"}
                )
        else:
            if threads is not None:
                torch.set_num_threads(threads)
            row = measure_model(name, **common)
        row["seconds"] = time.perf_counter() - start
        if not isolate:  # memory growth within one shared process is not the model's figure
            for key in ("infer_peak_mb", "train_peak_mb"):
                row[key] = None
            row["memory_method"] = "not measured (quick mode shares one process; run without it)"
        rows.append(row)
        write_json()
        if log:
            log(_row_line(row))
    by_name = {row["model"]: row for row in rows}
    if all(name in by_name for name in PAPER_PAIR):
        pair_kwargs = {
            "names": PAPER_PAIR,
            "formats": [by_name[name]["memory_format"] for name in PAPER_PAIR],
            "device": device,
            "repeats": repeats,
            "warmup": common["warmup"],
            "input_size": common["input_size"],
            "threads": threads,
        }
        pair = (
            _in_fresh_process(_paired_timing, **pair_kwargs)
            if isolate
            else _paired_timing(**pair_kwargs)
        )
        by_name[PAPER_PAIR[0]]["interleaved"] = pair
        if log:
            log(f"interleaved {PAPER_PAIR}: {pair['latency_ms']}")
    if compare_runtimes:
        kwargs = {
            "name": names[0],
            "device": device,
            "repeats": repeats,
            "warmup": common["warmup"],
            "input_size": common["input_size"],
            "threads": threads,
            "memory_format": rows[0]["memory_format"],
        }
        runtimes = _in_fresh_process(_runtimes, **kwargs) if isolate else _runtimes(**kwargs)
        rows[0]["runtimes"] = runtimes
        if log:
            log(f"runtimes {names[0]}: {runtimes}")
    write_json()
    return rows


def _row_line(row: dict[str, Any]) -> str:
    return (
        f"{row['model']:>16}: {row['params_m']:6.1f} M params {row['gmacs']:6.2f} GMACs "
        f"{row['latency_ms']:8.1f} ms (flip {row['flip_latency_ms']:.1f}) "
        f"{row['throughput_ips']:7.1f} img/s  infer {_mib(row.get('infer_peak_mb'))} "
        f"train {_mib(row.get('train_peak_mb'))}  {row['memory_format']} "
        f"head {row['head_overhead_pct']:.2f}%  [{row['seconds']:.0f} s]"
    )
