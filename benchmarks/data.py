"""Data pipeline speed: LSP samples per second per worker against the decode + warp floor.

    .venv/bin/python benchmarks/data.py [--data ../shared/data] [--size 224] [--rounds 5]

One process stands for one ``DataLoader`` worker (``cv2.setNumThreads(0)``, one torch thread).
The floor is the bare read and crop: ``cv2.imread`` of each image plus one ``warpAffine`` of
it to the crop with the very matrix the pipeline uses for that sample, measured in the same
run. The pipeline is ``LSP(...)[i]``: the same read and the same crop values, plus the joints,
the augmentation draw and the float32 CHW RGB sample. (The pipeline pads small images to 4
channels before warping, which OpenCV warps faster than 3; the floor warps the image as read.)
Floor and pipeline alternate sample by sample, and each sample's time is the fastest of the
rounds, so a busy shared machine hurts both alike; the load average is printed with the table.
Target: the pipeline reaches at least 70% of the floor's samples per second.
Without ``../shared/data/lsp`` the synthetic set is timed alone.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch

from dsntpose.data import LSP, Synthetic
from dsntpose.data.transforms import AugmentParams, crop_matrix, warp_image

REPO = Path(__file__).resolve().parents[1]


def rate(step: Callable[[int], object], count: int) -> float:
    """Samples per second of ``step(i)`` for ``i < count``."""
    start = time.perf_counter()
    for i in range(count):
        step(i)
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--count", type=int, default=400, help="images per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    cv2.setNumThreads(0)
    torch.set_num_threads(1)

    lsp_root = args.data / "lsp"
    table: list[tuple[str, float, float]] = []  # name, pipeline samples/s, floor samples/s
    if lsp_root.is_dir():
        plain = LSP(lsp_root, "all", size=args.size)
        augmented = LSP(lsp_root, "all", size=args.size, augment=True)
        count = min(args.count, len(plain))
        for name, data in (("no augmentation", plain), ("paper augmentation", augmented)):
            # The floor warps with exactly the matrix the pipeline uses for that sample: a
            # warp's cost depends on how much of the crop the image covers (zoom, rotation).
            matrices = []
            for i in range(count):
                p = data.augment_params(i) or AugmentParams()
                side = data.sides[i] * p.scale
                matrices.append(crop_matrix(data.centers[i], side, args.size, p.rotation, p.flip))
            times = np.array(
                [interleaved(data, matrices, count, args.size) for _ in range(args.rounds)]
            )
            # Per sample, the fastest of the rounds: a busy machine's pauses drop out.
            best_pipeline, best_floor = count / times.min(axis=0).sum(axis=0)
            table.append((f"LSP sample, {name}", float(best_pipeline), float(best_floor)))
    else:
        print(f"(no LSP at {lsp_root}: timing the synthetic set only)")
    synthetic = Synthetic(args.count, size=args.size)
    synthetic_rate = max(
        rate(synthetic.__getitem__, args.count) for _ in range(max(1, args.rounds // 2))
    )

    print(
        f"\n{args.size} px crops, one worker: {args.count} samples, each the fastest of {args.rounds} rounds"
        f" (load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs)"
    )
    print(f"{'':34s} {'samples/s':>10s} {'ms/sample':>10s} {'floor/s':>9s} {'of floor':>9s}")
    for name, value, floor_rate in table:
        print(
            f"{name:34s} {value:10.0f} {1e3 / value:10.3f} {floor_rate:9.0f} {value / floor_rate:9.0%}"
        )
    print(
        f"{f'Synthetic sample ({args.size} px)':34s} {synthetic_rate:10.0f} {1e3 / synthetic_rate:10.3f}"
    )
    for name, value, floor_rate in table:
        verdict = "ok" if value / floor_rate >= 0.7 else "BELOW TARGET"
        print(f"{name}: {value / floor_rate:.2f} of the floor (target >= 0.70): {verdict}")


def interleaved(data: LSP, matrices: list[np.ndarray], count: int, size: int) -> np.ndarray:
    """``(count, 2)`` seconds: ``data[i]`` and the floor of sample ``i`` (``cv2.imread`` + one
    ``warpAffine`` with the same matrix), alternating sample by sample so that both meet the
    same machine load."""
    times = np.empty((count, 2))
    for i in range(count):
        start = time.perf_counter()
        data[i]
        middle = time.perf_counter()
        warp_image(cv2.imread(data.image_paths[i], cv2.IMREAD_COLOR), matrices[i], size)
        times[i] = middle - start, time.perf_counter() - middle
    return times


if __name__ == "__main__":
    main()
