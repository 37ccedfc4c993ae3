"""Model efficiency table: parameters, GMACs, latency (with and without flip), throughput,
peak memory, memory format and the head's overhead, per model (see ``dsntpose.bench``).

    .venv/bin/python benchmarks/models.py [--quick] [--json FILE] [--markdown FILE]
        [--models resnet50-os8 hourglass-8 ...] [--device cpu|cuda] [--threads N]
        [--repeats N] [--compare-runtimes]

The default table (ResNet-18/34/50 at strides 32/16/8, ResNet-18 at stride 4, hourglass with
1/2/4/8 stacks) takes about ten minutes on two CPU cores; ``--quick`` checks the machinery on
64 px inputs in seconds. The docs were made with

    .venv/bin/python benchmarks/models.py --threads 1 --compare-runtimes \\
        --json docs/results/bench_cpu.json --markdown docs/bench.md
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from dsntpose.bench import make_document, render_markdown, run_bench


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", help="e.g. resnet50-os8 hourglass-8 (default: all)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", type=Path, help="write the table as JSON here")
    parser.add_argument("--markdown", type=Path, help="write the markdown report here")
    parser.add_argument("--repeats", type=int, help="timed batch-1 forwards per figure")
    parser.add_argument("--threads", type=int, help="torch threads in the measuring processes")
    parser.add_argument("--throughput-batch", type=int)
    parser.add_argument("--train-batch", type=int)
    parser.add_argument("--quick", action="store_true", help="64 px inputs, 2 repeats")
    parser.add_argument(
        "--compare-runtimes",
        action="store_true",
        help="also time the first model on eager, torch.compile and onnxruntime",
    )
    parser.add_argument(
        "--from-json",
        type=Path,
        help="measure nothing: render the markdown report of an earlier --json file",
    )
    args = parser.parse_args()
    if args.from_json:
        report = render_markdown(json.loads(args.from_json.read_text()))
        if args.markdown:
            args.markdown.write_text(report)
        print(report)
        return
    rows = run_bench(
        args.models,
        device=args.device,
        repeats=args.repeats,
        compare_runtimes=args.compare_runtimes,
        threads=args.threads,
        quick=args.quick,
        throughput_batch=args.throughput_batch,
        train_batch=args.train_batch,
    )
    document = make_document(rows, device=args.device, threads=args.threads, quick=args.quick)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(document, indent=2) + "\n")
    report = render_markdown(document)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(report)
    print(report)


if __name__ == "__main__":
    main()
