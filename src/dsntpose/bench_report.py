"""The efficiency report of ``dsntpose bench``: the JSON document, the paper's ratios, the
findings and the markdown, and the machine's name (:func:`cpu_name`). Split from
:mod:`dsntpose.bench`, which measures; this module only describes what was measured.
"""

from __future__ import annotations

import math
import os
import platform
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

__all__ = ["PAPER_PAIR", "cpu_name", "make_document", "paper_ratios", "render_markdown"]

PAPER_PAIR = ("resnet50-os8", "hourglass-8")


def cpu_name() -> str:
    """This CPU's model name (from ``/proc/cpuinfo`` where there is one) and torch's vector
    capability, e.g. ``"AMD EPYC (AVX2)"``: speed ratios depend on both."""
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name} ({torch.backends.cpu.get_cpu_capability()})"


def _mib(value: float | None) -> str:
    return "-- MiB" if value is None else f"{value:.0f} MiB"


def make_document(
    rows: list[dict[str, Any]],
    *,
    device: str,
    threads: int | None,
    quick: bool,
    isolate: bool | None = None,
) -> dict[str, Any]:
    """``{"meta": machine and settings, "models": rows, "ratios": paper_ratios(rows)}``."""
    meta = {
        "device": device,
        "device_name": torch.cuda.get_device_name(device)
        if device.startswith("cuda")
        else cpu_name(),
        "cpu_count": os.cpu_count(),
        "threads": threads or torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "quick": quick,
        "isolated": (not quick) if isolate is None else isolate,
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    return {"meta": meta, "models": rows, "ratios": paper_ratios(rows)}


def paper_ratios(rows: Sequence[dict[str, Any]]) -> dict[str, float]:
    """ResNet-50 stride 8 (DSNT) over the 8-stack hourglass, for every shared figure.

    Returns ``{}`` when either model is missing from ``rows``. Ratios below 1 mean the ResNet
    needs less (time, memory, multiply-adds) or, for ``throughput_ips``, processes fewer.
    ``*_interleaved`` ratios come from the two models timed in turn in one process
    (``row["interleaved"]`` of the ResNet, added by :func:`run_bench`).
    """
    by_name = {row["model"]: row for row in rows}
    resnet, hourglass = (by_name.get(name) for name in PAPER_PAIR)
    if resnet is None or hourglass is None:
        return {}
    keys = (
        "latency_ms",
        "flip_latency_ms",
        "throughput_ips",
        "infer_peak_mb",
        "train_peak_mb",
        "gmacs",
        "params_m",
    )
    ratios = {
        k: resnet[k] / hourglass[k]
        for k in keys
        if isinstance(resnet.get(k), (int, float))
        and isinstance(hourglass.get(k), (int, float))
        and hourglass[k] > 0
        and math.isfinite(resnet[k] / hourglass[k])
    }
    pair = resnet.get("interleaved")
    if pair:  # the same figures timed in turn in one process: robust to a busy machine
        a, b = PAPER_PAIR
        ms = pair["latency_ms"]
        ratios["latency_ms_interleaved"] = ms[a] / ms[b]
        ratios["flip_latency_ms_interleaved"] = ms[f"{a} flip"] / ms[f"{b} flip"]
    return ratios


def _findings(rows: Sequence[dict[str, Any]], isolated: bool) -> list[str]:
    """Bullet points computed from the rows: head overhead, memory format, settings."""
    worst = max(rows, key=lambda r: r["head_overhead_pct"])
    resnets = [r for r in rows if r["backbone"] != "hourglass"]
    lines = [
        f"- Head overhead (1x1 conv, normalisation, DSNT, confidence) over the backbone's "
        f"batch-1 latency: at most {worst['head_overhead_pct']:.2f}% ({worst['model']}); "
        + ", ".join(
            f"stride {s}: max {max(r['head_overhead_pct'] for r in resnets if r['stride'] == s):.2f}%"
            for s in sorted({r["stride"] for r in resnets}, reverse=True)
        )
        + ". Target: under 2%.",
    ]
    faster = [r for r in rows if r["memory_format"] == "channels_last"]
    gains = [r["latency_ms_contiguous"] / r["latency_ms_channels_last"] for r in rows]
    lines.append(
        f"- channels-last was faster at batch 1 for {len(faster)} of {len(rows)} models "
        f"(contiguous / channels-last latency from {min(gains):.2f} to {max(gains):.2f}); each "
        "row's other figures use its faster format."
    )
    first = rows[0]
    lines.append(
        f"- Latency is the median of {first['repeats']} batch-1 forwards under "
        f"torch.inference_mode; flip = the image and its mirror in one batch of 2; throughput "
        f"at batch {first['throughput_batch']}; training memory for one forward and backward "
        f"at batch {first['train_batch']}"
        + (
            " (the paper used 32 and 8: smaller here to fit a CPU run)."
            if first["device"] == "cpu"
            else "."
        )
    )
    method = next((r["memory_method"] for r in rows if "memory_method" in r), "")
    where = "each figure in a fresh process" if isolated else "all in one process (not isolated)"
    lines.append(f"- Memory is the {method}, {where}.")
    return lines


def render_markdown(document: dict[str, Any]) -> str:
    """The JSON document of :func:`run_bench` as a markdown report."""
    meta, rows, ratios = document["meta"], document["models"], document.get("ratios", {})
    lines = [
        "# Model efficiency",
        "",
        f"Measured on {meta['device']} ({meta['device_name']}, {meta['cpu_count']} cores, "
        f"{meta['threads']} torch threads), torch {meta['torch']}, {meta['date']}; load average "
        f"at the end {', '.join(f'{v:.1f}' for v in meta.get('load_average') or [])}."
        + (" Quick mode: 64 px inputs, not the paper's setting." if meta.get("quick") else ""),
        "Produced by `benchmarks/models.py` (`dsntpose.bench`); the numbers are in "
        "`docs/results/` as JSON.",
        "",
        "| model | input | maps | params (M) | GMACs | latency (ms) | flip (ms) | "
        "throughput (img/s @ batch) | infer mem (MiB) | train mem (MiB @ batch) | format | "
        "contiguous / channels-last (ms) | head overhead |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['input_size']} | {r['heatmap_size']} | {r['params_m']:.1f} | "
            f"{r['gmacs']:.2f} | {r['latency_ms']:.1f} | {r['flip_latency_ms']:.1f} | "
            f"{r['throughput_ips']:.1f} @ {r['throughput_batch']} | "
            f"{_mib(r.get('infer_peak_mb'))[:-4]} | "
            f"{_mib(r.get('train_peak_mb'))[:-4]} @ {r['train_batch']} | "
            f"{r['memory_format']} | {r['latency_ms_contiguous']:.1f} / "
            f"{r['latency_ms_channels_last']:.1f} | {r['head_overhead_pct']:.2f}% "
            f"({r['head_ms']:.3f} ms) |"
        )
    if ratios:
        a, b = PAPER_PAIR
        lines += [
            "",
            f"## The paper's comparison: {a} (DSNT) / {b}",
            "",
            f"Each figure of {a} divided by the same figure of {b}: below 1 the ResNet needs "
            "less (time, memory, multiply-adds, parameters); for throughput, below 1 it "
            "processes fewer images per second.",
            "",
            "| figure | ratio |",
            "|---|---|",
            *(f"| {k} | {v:.2f} |" for k, v in ratios.items()),
        ]
        pair = next((r["interleaved"] for r in rows if "interleaved" in r), None)
        if pair:
            lines += [
                "",
                f"`*_interleaved`: medians of {pair['repeats']} calls taken in turn in one "
                "process: "
                + ", ".join(f"{k} {v:.1f} ms" for k, v in pair["latency_ms"].items())
                + ". The other ratios divide the table's figures, measured minutes apart.",
            ]
    runtimes = [r["runtimes"] for r in rows if "runtimes" in r]
    for rt in runtimes:
        lines += [
            "",
            f"## Runtimes for {rt['model']} (batch 1, {rt['device']}, torch in "
            f"{rt['memory_format']})",
            "",
            "| runtime | latency (ms) | max coords diff vs eager |",
            "|---|---|---|",
            f"| eager PyTorch | {rt['eager_ms']:.1f} | 0 |",
            f"| torch.compile (first call {rt['compile_s']:.0f} s) | {rt['compile_ms']:.1f} | "
            f"{rt['compile_max_diff']:.2g} |",
        ]
        if "onnxruntime_ms" in rt:
            lines.append(
                f"| onnxruntime | {rt['onnxruntime_ms']:.1f} | {rt['onnxruntime_max_diff']:.2g} |"
            )
        lines += [f"- {note}" for note in rt["notes"]]
    lines += ["", "## Findings", "", *_findings(rows, meta.get("isolated", True)), ""]
    return "\n".join(lines)
