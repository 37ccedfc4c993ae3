"""What finer maps cost: the whole-photo network at 192 px with 12 px maps (stride 16), with 24
px maps from the light upsampling decoder (stride 16 + ``model.upsample``), with 48 px maps from
its two stages (``model.upsample: 2``), and with 24 px maps from dilation (stride 8), each timed
against stride 16 in the same run.

    .venv/bin/python benchmarks/map_resolution.py [--quick] [--json FILE] [--markdown FILE]
        [--note TEXT] [--from-json FILE]

Two figures per network, both as ratios to stride 16 (absolute times are noise on a shared
machine): the batch-1 inference forward (``torch.inference_mode``, channels-last) and a
training step (batch 16 forward + backward). Each is measured in two harnesses at 1 and 2
threads: ``torch.utils.benchmark.Timer.blocked_autorange`` in a fresh process per network, and
the steady state of one long process that times the networks in interleaved rounds (median of
the rounds). The report quotes every ratio and the worst (largest) of each.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

NETWORKS = {
    "s16": {"output_stride": 16},
    "s16-up": {"output_stride": 16, "upsample": True},
    "s16-up2": {"output_stride": 16, "upsample": 2},
    "s8": {"output_stride": 8},
}
BASE = "s16"


def build(name: str, size: int) -> Any:
    import torch

    from dsntpose.config import ModelConfig
    from dsntpose.model import build_model

    cfg = ModelConfig(
        backbone="efficientnet_lite0", input_size=size, presence=True, **NETWORKS[name]
    )
    torch.manual_seed(0)
    return build_model(cfg).to(memory_format=torch.channels_last), cfg


def calls(name: str, size: int, batch: int) -> dict[str, Any]:
    """The two timed statements of network ``name``: ``infer`` and ``train``."""
    import torch

    model, _ = build(name, size)
    x1 = torch.rand(1, 3, size, size).contiguous(memory_format=torch.channels_last)
    xb = torch.rand(batch, 3, size, size).contiguous(memory_format=torch.channels_last)
    target = torch.rand(batch, 16, 2) * 1.6 - 0.8
    mask = torch.ones(batch, 16)

    def infer() -> None:
        model.eval()
        with torch.inference_mode():
            model(x1)

    def train() -> None:
        model.train()
        model.zero_grad(set_to_none=True)
        model.loss(model(xb), target, mask).backward()

    return {"infer": infer, "train": train}


def fresh(name: str, threads: int, size: int, batch: int, min_run_time: float) -> dict[str, float]:
    """``blocked_autorange`` medians (s) of one network, in this (fresh) process."""
    import torch
    from torch.utils.benchmark import Timer

    torch.set_num_threads(threads)
    out = {}
    for what, fn in calls(name, size, batch).items():
        fn()  # warm-up
        timer = Timer(stmt="fn()", globals={"fn": fn}, num_threads=threads)
        out[what] = timer.blocked_autorange(min_run_time=min_run_time).median
    return out


def steady(threads: int, size: int, batch: int, rounds: int) -> dict[str, dict[str, float]]:
    """Medians (s) over interleaved rounds of every network, in one long process."""
    import torch

    torch.set_num_threads(threads)
    fns = {name: calls(name, size, batch) for name in NETWORKS}
    times: dict[str, dict[str, list[float]]] = {n: {"infer": [], "train": []} for n in NETWORKS}
    for name in fns:  # warm-up
        for fn in fns[name].values():
            fn()
    for r in range(rounds):
        order = list(NETWORKS) if r % 2 == 0 else list(reversed(NETWORKS))
        for name in order:
            for what, fn in fns[name].items():
                reps = 5 if what == "infer" else 1
                start = time.perf_counter()
                for _ in range(reps):
                    fn()
                times[name][what].append((time.perf_counter() - start) / reps)
    return {n: {w: sorted(v)[len(v) // 2] for w, v in per.items()} for n, per in times.items()}


def child(args: list[str]) -> Any:
    env = {**os.environ, "OMP_NUM_THREADS": args[args.index("--threads") + 1]}
    cmd = [sys.executable, __file__, "--child", *args]
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def run(quick: bool) -> dict[str, Any]:
    size, batch = (64, 2) if quick else (192, 16)
    min_run_time, rounds = (0.05, 2) if quick else (3.0, 9)
    common = ["--size", str(size), "--batch", str(batch)]
    harnesses: dict[str, dict[str, Any]] = {}
    for threads in (1, 2):
        t = ["--threads", str(threads)]
        harnesses[f"fresh, {threads} thread(s)"] = {
            name: child(["fresh", name, *t, *common, "--min-run-time", str(min_run_time)])
            for name in NETWORKS
        }
        harnesses[f"steady, {threads} thread(s)"] = child(
            ["steady", *t, *common, "--rounds", str(rounds)]
        )
    ratios = {
        harness: {
            name: {w: round(v / times[BASE][w], 3) for w, v in times[name].items()}
            for name in NETWORKS
            if name != BASE
        }
        for harness, times in harnesses.items()
    }
    worst = {
        name: {w: max(r[name][w] for r in ratios.values()) for w in ("infer", "train")}
        for name in NETWORKS
        if name != BASE
    }
    from dsntpose.bench import cpu_name

    params = {}
    for name in NETWORKS:
        model, cfg = build(name, size)
        params[name] = {
            "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 3),
            "heatmap_size": cfg.heatmap_size,
        }
    return {
        "machine": f"{cpu_name()}, {os.cpu_count()} cores",
        "input_size": size,
        "train_batch": batch,
        "quick": quick,
        "networks": params,
        "seconds": harnesses,
        "ratios_to_s16": ratios,
        "worst_ratio_to_s16": worst,
        "date": time.strftime("%Y-%m-%d"),
    }


def markdown(doc: dict[str, Any]) -> str:
    nets = doc["networks"]
    lines = [
        "# What finer maps cost (`benchmarks/map_resolution.py`)",
        "",
        f"EfficientNet-Lite0 with the presence heads, {doc['input_size']} px crops, on "
        f"{doc['machine']}, {doc['date']}; times as ratios to stride 16 (12 px maps) in the same "
        f"run. `infer`: batch-1 forward, inference mode; `train`: batch-{doc['train_batch']} "
        "forward + backward. Harnesses: `blocked_autorange` in a fresh process per network, and "
        "the steady state of one process timing the networks in interleaved rounds."
        + (f" {doc['note']}" if doc.get("note") else ""),
        "",
        "| harness | "
        + " | ".join(f"{n} {w}" for n in nets if n != BASE for w in ("infer", "train"))
        + " |",
        "|---|" + "---|" * (2 * (len(nets) - 1)),
    ]
    for harness, per in doc["ratios_to_s16"].items():
        cells = [f"{per[n][w]:.2f}" for n in nets if n != BASE for w in ("infer", "train")]
        lines.append(f"| {harness} | " + " | ".join(cells) + " |")
    worst = doc["worst_ratio_to_s16"]
    cells = [f"**{worst[n][w]:.2f}**" for n in nets if n != BASE for w in ("infer", "train")]
    lines.append("| worst | " + " | ".join(cells) + " |")
    lines += ["", "| network | maps | parameters (M) |", "|---|---|---|"]
    lines += [f"| {n} | {v['heatmap_size']} px | {v['params_m']} |" for n, v in nets.items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":
        p = argparse.ArgumentParser()
        p.add_argument("mode")
        p.add_argument("name", nargs="?")
        p.add_argument("--threads", type=int)
        p.add_argument("--size", type=int)
        p.add_argument("--batch", type=int)
        p.add_argument("--min-run-time", type=float, default=1.0)
        p.add_argument("--rounds", type=int, default=5)
        a = p.parse_args(argv[1:])
        if a.mode == "fresh":
            result: Any = fresh(a.name, a.threads, a.size, a.batch, a.min_run_time)
        else:
            result = steady(a.threads, a.size, a.batch, a.rounds)
        print(json.dumps(result))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="64 px, batch 2, short timings")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--markdown", type=Path)
    parser.add_argument("--note", help="what else ran on the machine (goes in the report)")
    parser.add_argument(
        "--from-json", type=Path, help="measure nothing: render an earlier --json file"
    )
    args = parser.parse_args(argv)
    doc = json.loads(args.from_json.read_text()) if args.from_json else run(args.quick)
    if args.note:
        doc["note"] = args.note
    report = markdown(doc)
    if args.json:
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
    if args.markdown:
        args.markdown.write_text(report)
    print(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
