"""Our network through ONNX Runtime against torch eager: batch 1, 1 thread, in the same run.

    PYTHONPATH=src .venv/bin/python benchmarks/onnx_vs_torch.py [--model NAME_OR_FILE] [--repeats 50]

The model (default: the shipped one) is exported once (the cache of
:func:`dsntpose.runtime.onnx_engine`), then both engines run the same random crop in turn,
interleaved (so a machine that gets busier slows both alike), one thread each; the figure to
read is the ratio of the medians. :class:`dsntpose.predictor.Predictor` picks ONNX Runtime when
it is installed because of this ratio.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from dsntpose.bench import cpu_name
from dsntpose.checkpoint import DEFAULT_MODEL, load_any
from dsntpose.runtime import onnx_engine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL, help="shipped name, .ckpt or .pt")
    parser.add_argument("--repeats", type=int, default=50, help="timed calls per engine")
    args = parser.parse_args()
    torch.set_num_threads(1)
    loaded = load_any(args.model)
    onnx = onnx_engine(loaded, threads=1)
    if onnx is None:
        raise SystemExit("the export failed (see the log); nothing to compare")
    size = loaded.config.input_size
    crop = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    model = loaded.model

    def eager() -> None:
        with torch.no_grad():
            model(crop)

    def ort() -> None:
        onnx(crop)

    for fn in (eager, ort, eager, ort):  # warm-up
        fn()
    times: dict[str, list[float]] = {"torch eager": [], "onnxruntime": []}
    for _ in range(args.repeats):
        for name, fn in (("torch eager", eager), ("onnxruntime", ort)):
            start = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - start) * 1000)
    medians = {name: statistics.median(v) for name, v in times.items()}
    print(f"{args.model} at {size} px, batch 1, 1 thread, {args.repeats} interleaved calls each")
    print(f"CPU: {cpu_name()}")
    for name, ms in medians.items():
        print(f"  {name:12s} median {ms:7.2f} ms  (min {min(times[name]):.2f})")
    ratio = medians["torch eager"] / medians["onnxruntime"]
    print(f"onnxruntime is {ratio:.2f}x torch eager's speed (torch ms / onnxruntime ms)")


if __name__ == "__main__":
    main()
