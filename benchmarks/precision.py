"""Training-step time in float32 against bf16 autocast on this CPU, in the same run.

    .venv/bin/python benchmarks/precision.py [--strides 8 4] [--steps 2] [--markdown FILE]

The sweep recipe's model (ResNet-18 with the DSNT head, 96 px crops, batch 16) takes optimiser
steps under each precision in turn, one torch thread; the figure to read is the ratio. On CPUs
with native bfloat16 (AMX, AVX512-BF16) bf16 is the faster one; on AVX2-only CPUs it runs
convolutions on slow paths, which is why ``experiments/run.py`` trains there in float32 and
``dsntpose.training`` warns.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from dsntpose import ops
from dsntpose.bench import cpu_name
from dsntpose.config import ModelConfig
from dsntpose.model import build_model
from dsntpose.training import cpu_has_native_bf16


def step_seconds(stride: int, bf16: bool, steps: int) -> float:
    """Median seconds of an optimiser step (after one warm-up step)."""
    torch.manual_seed(0)
    cfg = ModelConfig(backbone="resnet18", output_stride=stride, head="dsnt", input_size=96)
    model = build_model(cfg)
    optimizer = torch.optim.RMSprop(model.parameters(), lr=1e-3)
    images = torch.rand(16, 3, 96, 96)
    target = torch.rand(16, cfg.num_joints, 2) * 2 - 1
    times = []
    for _ in range(steps + 1):
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = model(images)
        ops.average_loss(ops.euclidean_losses(out.coords.float(), target)).backward()
        optimizer.step()
        optimizer.zero_grad()
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strides", type=int, nargs="+", default=[8])
    parser.add_argument("--steps", type=int, default=2, help="timed steps per case")
    parser.add_argument("--markdown", type=Path, default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    lines = [
        "| stride | float32 s/step | bf16 autocast s/step | bf16 / float32 |",
        "|---|---|---|---|",
    ]
    for stride in args.strides:
        fp32 = step_seconds(stride, False, args.steps)
        bf16 = step_seconds(stride, True, args.steps)
        lines.append(f"| {stride} | {fp32:.2f} | {bf16:.2f} | {bf16 / fp32:.1f}x |")
        print(lines[-1], flush=True)
    note = (
        f"ResNet-18 + DSNT, 96 px, batch 16, 1 thread, median of {args.steps} steps; "
        f"{cpu_name()}, native bfloat16: {cpu_has_native_bf16()}, torch {torch.__version__}."
    )
    text = "\n".join(lines) + "\n\n" + note + "\n"
    print(note)
    if args.markdown:
        args.markdown.write_text("# Training precision on CPU\n\n" + text)


if __name__ == "__main__":
    main()
