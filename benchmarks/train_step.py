"""Time one training step of a recipe's network with dilated depthwise convs as dsntpose runs
them under autograd (the undilated convs of the stacked phase sub-grids,
``backbones.dilation.atrous_depthwise``) against the single dilated call (``nn.Conv2d``'s own
forward, whose backward oneDNN runs on a slow path).

A step: forward of a batch of random images, a loss on every output (coordinates, maps,
presence and visibility logits), backward, an Adam step. The two variants alternate, which
goes first swapping each round; the ratio is the median over rounds of the plain time over
ours (above 1: ours is faster). Both run in this one process on the same weights.

    python benchmarks/train_step.py [--recipe mixed_efficientnet_lite0_s16_presence]
        [--batch 16] [--threads 1] [--rounds 5] [--steps 2] [--json FILE]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from dsntpose.backbones import efficientnet
from dsntpose.bench import cpu_name
from dsntpose.cli import packaged_configs
from dsntpose.config import load_config
from dsntpose.model import build_model


def plain_forward(self: efficientnet._SameConv2d, x: torch.Tensor) -> torch.Tensor:
    """The single dilated call at stride 1 (the strided convs keep their SAME padding)."""
    if self.stride[0] > 1:
        return ours_forward(self, x)
    return nn.Conv2d.forward(self, x)


ours_forward = efficientnet._SameConv2d.forward


def make_step(recipe: str, batch: int) -> tuple[Callable[[], None], dict[str, object]]:
    path = packaged_configs().get(recipe, Path(recipe))  # a packaged recipe's name or a file
    run = load_config(path)
    cfg = dataclasses.replace(run.model, weights=None)  # random weights time the same
    model = build_model(cfg)
    model.train()
    if run.train.channels_last:
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    g = torch.Generator().manual_seed(0)
    size = cfg.input_size
    images = torch.rand(batch, 3, size, size, generator=g)
    if run.train.channels_last:
        images = images.contiguous(memory_format=torch.channels_last)

    def step() -> None:
        out = model(images)
        loss = out.coords.square().mean() + out.heatmaps.mean()
        for extra in (out.presence, out.visibility):
            if extra is not None:
                loss = loss + extra.square().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()

    dilated = sum(
        1
        for m in model.modules()
        if isinstance(m, efficientnet._SameConv2d) and m.dilation[0] > 1 and m.groups > 1
    )
    info = {
        "recipe": recipe,
        "backbone": cfg.backbone,
        "output_stride": cfg.output_stride,
        "input_size": size,
        "batch": batch,
        "dilated_depthwise_convs": dilated,
    }
    return step, info


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="mixed_efficientnet_lite0_s16_presence")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=2, help="timed steps per measurement")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    step, info = make_step(args.recipe, args.batch)
    variants = {"ours": ours_forward, "plain": plain_forward}
    times: dict[str, list[float]] = {k: [] for k in variants}
    cls = efficientnet._SameConv2d
    try:
        for fwd in variants.values():  # warm-up: both paths allocate once
            cls.forward = fwd  # type: ignore[method-assign]
            step()
        for r in range(args.rounds):
            order = list(variants) if r % 2 == 0 else list(reversed(variants))
            for name in order:
                cls.forward = variants[name]  # type: ignore[method-assign]
                step()  # one untimed step after the switch
                start = time.perf_counter()
                for _ in range(args.steps):
                    step()
                times[name].append((time.perf_counter() - start) / args.steps)
    finally:
        cls.forward = ours_forward  # type: ignore[method-assign]
    ratios = [p / o for p, o in zip(times["plain"], times["ours"])]
    doc = {
        **info,
        "machine": f"{cpu_name()}, {args.threads} thread(s)",
        "torch": torch.__version__,
        "rounds": args.rounds,
        "seconds_per_step": {k: [round(t, 3) for t in v] for k, v in times.items()},
        "median_s": {k: round(statistics.median(v), 3) for k, v in times.items()},
        "speedup_median": round(statistics.median(ratios), 2),
        "speedup_min": round(min(ratios), 2),
    }
    print(
        f"{info['recipe']} ({info['dilated_depthwise_convs']} dilated depthwise convs), batch "
        f"{args.batch}, {args.threads} thread(s): ours {doc['median_s']['ours']:.2f} s/step, "  # type: ignore[index]
        f"single dilated call {doc['median_s']['plain']:.2f} s/step: "  # type: ignore[index]
        f"{doc['speedup_median']}x (worst round {doc['speedup_min']}x)"
    )
    if args.json:
        args.json.write_text(json.dumps(doc, indent=1) + "\n")
    return doc


if __name__ == "__main__":
    main()
