"""Inference latency of every cell of one or more sweeps, measured in one run.

    python -m experiments.latency [a d] [--threads 2] [--repeats 30] [--device cpu]

Builds each cell's model exactly as the sweep trains it (weights do not change the time),
then times batch 1 with and without the flip test (image + mirror in one batch of 2, as the
paper measured) under ``torch.inference_mode`` in channels-last, all cells of all the sweeps
interleaved round by round so that load on a shared machine hits them alike (compare cells
of one file with each other, not with another run's). Writes
``docs/results/latency_<device>.csv`` (median milliseconds; one row per sweep and grid point).
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import time

import torch
import yaml

from experiments.run import RESULTS, base_values, cells, deep_merge, sweep_file


def main(argv: list[str] | None = None) -> int:
    from dsntpose.bench import cpu_name
    from dsntpose.config import RunConfig
    from dsntpose.model import build_model

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("sweeps", nargs="*", default=["a"], help="sweep names (default: a)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    models, rows, axes_names = {}, {}, {}
    todo = []
    for sweep in args.sweeps:
        path = sweep_file(sweep)
        spec = yaml.safe_load(path.read_text())
        base = base_values(spec)  # each sweep's own recipe: its backbone and crop size
        todo += [(path.stem, base, *cell) for cell in cells(spec)]
    for sweep_name, base, cell_id, axes, _seed, overrides in todo:
        name = (sweep_name, cell_id.rsplit("-seed", 1)[0])
        if name in models:
            continue
        axes_names.update(dict.fromkeys(axes))
        run = RunConfig.from_dict(deep_merge(base, overrides))
        model = build_model(run.model).eval().to(device, memory_format=torch.channels_last)
        size = run.model.input_size
        x1 = torch.rand(1, 3, size, size, device=device).contiguous(
            memory_format=torch.channels_last
        )
        x2 = torch.cat([x1, x1.flip(-1)])
        models[name] = (model, x1, x2)
        rows[name] = {
            "sweep": sweep_name,
            "cell": name[1],
            **axes,
            "heatmap_px": run.model.heatmap_size,
            "plain": [],
            "flip": [],
        }

    def once(model: torch.nn.Module, x: torch.Tensor) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        model(x)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return (time.perf_counter() - start) * 1e3

    with torch.inference_mode():
        for _ in range(3):  # warm-up
            for model, x1, x2 in models.values():
                once(model, x1)
                once(model, x2)
        for _ in range(args.repeats):
            for name, (model, x1, x2) in models.items():
                rows[name]["plain"].append(once(model, x1))
                rows[name]["flip"].append(once(model, x2))

    out = RESULTS / f"latency_{device.type}.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    where = cpu_name() if args.device == "cpu" else torch.cuda.get_device_name()
    machine = f"{where}, {args.threads} threads, torch {torch.__version__}"
    with out.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(
            ["sweep", "cell", *axes_names, "heatmap_px", "latency_ms", "flip_latency_ms", "machine"]
        )
        for r in rows.values():
            plain, flip = statistics.median(r["plain"]), statistics.median(r["flip"])
            writer.writerow(
                [
                    r["sweep"],
                    r["cell"],
                    *(r.get(a, "") for a in axes_names),
                    r["heatmap_px"],
                    f"{plain:.2f}",
                    f"{flip:.2f}",
                    machine,
                ]
            )
            print(f"{r['sweep']}/{r['cell']:<16}: {plain:7.2f} ms, flip {flip:7.2f} ms")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
