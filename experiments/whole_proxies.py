"""Short proxy runs that choose the whole-photo model's input size and output stride before
the long training is spent (issue: "training on this CPU, measured before spent").

Each cell fine-tunes the recipe ``mixed_efficientnet_lite0_s16_presence`` from the shipped LSP
model for one pass over a fixed 30% of every source (about 3,800 samples with negatives), on
one thread, then records the held-out validation (600 people, box crops, and 60 background
crops): PCK@0.2, presence and visibility AUROC, the training images per second, and the
network's batch-1 latency at its input size (torch eager, 1 thread, median of 30 calls).
Cells run resumably (each in its own run folder) and one per process, so two processes (one
per core) share the list: ``python -m experiments.whole_proxies --runs DIR [CELL ...]``.
Results: ``docs/results/whole_proxies.json`` (one entry per finished cell).

Usage:
    python -m experiments.whole_proxies --runs /work/runs/proxies --data ../shared/data 160-s16
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent.parent / "docs" / "results" / "whole_proxies.json"
RECIPE = "mixed_efficientnet_lite0_s16_presence"
FRACTION = 0.3  # of every source, a fixed draw
CELLS: dict[str, dict[str, Any]] = {
    "160-s16": {"model": {"input_size": 160, "output_stride": 16, "upsample": False}},
    "192-s16": {"model": {"input_size": 192, "output_stride": 16, "upsample": False}},
    "224-s16": {"model": {"input_size": 224, "output_stride": 16, "upsample": False}},
    "192-s8": {"model": {"input_size": 192, "output_stride": 8, "upsample": False}},
    # stride 16 with the light upsampling decoder: the 24 px maps of 192-s8 without dilation
    "192-s16-up": {"model": {"input_size": 192, "output_stride": 16, "upsample": True}},
    # two decoder stages: 48 px maps (the second reading stride-4 features), MoveNet's size
    "192-s16-up2": {"model": {"input_size": 192, "output_stride": 16, "upsample": 2}},
}


def cell_config(name: str, runs: Path, data: Path) -> Any:
    """The run config of cell ``name``: the recipe with the cell's changes and a proxy length."""
    import yaml

    from dsntpose.cli import packaged_configs
    from dsntpose.config import RunConfig

    values = yaml.safe_load(packaged_configs()[RECIPE].read_text())
    for section, changes in CELLS[name].items():
        values[section].update(changes)
    values["data"].update(
        root=str(data / "lsp"),
        lspet_root=str(data / "lspet"),
        mpii_crops_root=str(data / "mpii_train_crops"),
        coco_root=str(data / "coco_mini"),
        mix_weights={"lsp": FRACTION, "lspet": FRACTION, "mpii_crops": FRACTION},
    )
    values["optim"].update(warmup_steps=30)
    values["train"].update(
        epochs=1, out_dir=str(runs / name), progress_bar=False, ckpt_every=50, log_every=10
    )
    return RunConfig.from_dict(values)


def latency_ms(run: Any, calls: int = 30) -> float:
    """Median batch-1 forward time (ms) of the run's network, torch eager, this thread count."""
    import torch

    from dsntpose.model import build_model

    cfg = run.model
    model = build_model(type(cfg)(**{**vars(cfg), "weights": None})).eval()
    model = model.to(memory_format=torch.channels_last)
    x = torch.rand(1, 3, cfg.input_size, cfg.input_size).contiguous(
        memory_format=torch.channels_last
    )
    times = []
    with torch.inference_mode():
        for k in range(calls + 5):
            start = time.perf_counter()
            model(x)
            if k >= 5:
                times.append(time.perf_counter() - start)
    return 1000 * sorted(times)[len(times) // 2]


def run_cell(name: str, runs: Path, data: Path) -> dict[str, Any] | None:
    """Train and score one cell unless another process holds it; its record, or None."""
    import torch

    from dsntpose.training import fit

    torch.set_num_threads(1)
    run = cell_config(name, runs, data)
    folder = Path(run.train.out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".proxy.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return None
        start = time.perf_counter()
        result = fit(run)
        minutes = (time.perf_counter() - start) / 60
        metrics = json.loads((folder / "val_metrics.json").read_text())
        history = folder / "logs" / "csv" / "metrics.csv"
        ips = _median_ips(history)
        record = {
            "cell": name,
            "input_size": run.model.input_size,
            "output_stride": run.model.output_stride,
            "upsample": run.model.upsample,
            "heatmap_size": run.model.heatmap_size,
            "steps": result.global_step,
            "train_minutes_this_process": round(minutes, 1),
            "train_images_per_s_median": ips,
            "val_pck20": round(metrics["total"], 2),
            "presence_auroc": metrics.get("presence_auroc"),
            "visibility_auroc": metrics.get("visibility_auroc"),
            "latency_ms_batch1_1thread": round(latency_ms(run), 1),
            "machine": _machine(),
        }
    _save(record)
    return record


def _median_ips(history: Path) -> float | None:
    """The median of the logged ``train/ips`` values of a run's CSV history."""
    import csv

    if not history.is_file():
        return None
    with history.open() as f:
        values = [float(r["train/ips"]) for r in csv.DictReader(f) if r.get("train/ips")]
    return round(sorted(values)[len(values) // 2], 2) if values else None


def _machine() -> str:
    from dsntpose.bench import cpu_name

    return f"{cpu_name()}, 1 thread, {os.cpu_count()} cores"


def _save(record: dict[str, Any]) -> None:
    """Add ``record`` to the results file (under an exclusive lock: two processes share it)."""
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    import tempfile

    with open(Path(tempfile.gettempdir()) / "dsntpose_whole_proxies.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        records = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
        records[record["cell"]] = record
        RESULTS.write_text(json.dumps(records, indent=2, sort_keys=True) + "\n")


def report(records: dict[str, dict[str, Any]]) -> str:
    """The markdown table of the finished cells (``docs/results/whole_proxies.md``)."""
    lines = [
        "# Whole-photo proxies: input size, output stride, upsampling decoder",
        "",
        "Written by `python -m experiments.whole_proxies --report` from "
        "`docs/results/whole_proxies.json`. Each cell fine-tunes the recipe "
        f"`{RECIPE}` from the shipped LSP model for one pass over a fixed {FRACTION:.0%} of "
        "every source (237 steps of batch 16, one thread), then scores the 600 held-out "
        "validation people (box crops, no flip, PCK@0.2) and 60 background crops. Latency: "
        "the network alone, batch 1, torch eager, 1 thread, median of 30 calls in the cell's "
        "process (beside whatever else ran; `benchmarks/map_resolution.py` compares the "
        "map resolutions' cost in a fair harness).",
        "",
        "| cell | maps | val PCK@0.2 | presence AUROC | visibility AUROC | train images/s | "
        "latency ms | machine |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in CELLS:
        r = records.get(name)
        if r is None:
            lines.append(f"| {name} | not run | | | | | | |")
            continue
        stages = int(r.get("upsample") or 0)
        maps = f"{r['heatmap_size']} px" + {0: "", 1: " (decoder)"}.get(
            stages, f" (decoder, {stages} stages)"
        )
        lines.append(
            f"| {name} | {maps} | {r['val_pck20']} | {r['presence_auroc']:.4f} | "
            f"{r['visibility_auroc']:.4f} | {r['train_images_per_s_median']} | "
            f"{r['latency_ms_batch1_1thread']} | {r['machine']} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cells", nargs="*", default=list(CELLS), help=f"of {', '.join(CELLS)}")
    parser.add_argument("--runs", type=Path, help="folder of the cells' runs")
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument(
        "--report", action="store_true", help="train nothing: write whole_proxies.md from the JSON"
    )
    args = parser.parse_args(argv)
    if args.report:
        records = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
        RESULTS.with_suffix(".md").write_text(report(records))
        print(RESULTS.with_suffix(".md"))
        return 0
    if args.runs is None:
        parser.error("--runs is required to train cells")
    unknown = [c for c in args.cells if c not in CELLS]
    if unknown:
        parser.error(f"unknown cell {unknown[0]!r}; cells: {', '.join(CELLS)}")
    for name in args.cells:
        record = run_cell(name, args.runs, args.data)
        print(json.dumps(record) if record else f"{name}: held by another process", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
