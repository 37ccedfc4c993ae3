"""What heatmap matching's maps look like on the LSP test set, per finished cell.

    python -m experiments.heatmaps [--runs_dir runs/experiments] [--data_root DIR] [CELL ...]

Tests the report's account of heatmap matching at large maps (its target is a Gaussian of
peak 1 and the loss the mean squared error over every cell, so the larger the map the less of
the loss the peak decides). For every finished heatmap-matching cell whose run folder still
holds ``last.ckpt`` (or the cells named) it runs the test set once, without flip, and writes
``docs/results/heatmap_peaks.csv``, one row per cell, over the annotated joints (the training
mask; LSP labels all 14):

* ``peak``: the mean of each map's maximum (the target's is 1);
* ``amplitude``: the mean least-squares height of the target's Gaussian in the map,
  ``<map, target> / <target, target>`` (1 for a perfect map, 0 for one with nothing at the
  truth);
* ``near_pct``: the share of maps whose arg-max cell lies within one cell of the truth's;
* ``mse_ratio``: the maps' mean squared error divided by that of a map of zeros.

A row already in the CSV is not computed again; ``experiments/report.py`` reads the CSV.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch import Tensor

from experiments.run import (
    REPO,
    RESULTS,
    finished_checkpoints,
    lsp_test_set,
    measure_cells,
    run_cli,
)

OUT = RESULTS / "heatmap_peaks.csv"
FIELDS = ["cell", "heatmap_px", "joints", "peak", "amplitude", "near_pct", "mse_ratio"]


def peak_sums(maps: Tensor, targets: Tensor, joints_px: Tensor, mask: Tensor) -> dict[str, float]:
    """Sums over the annotated joints of one batch, for :func:`finish`.

    Args:
        maps: ``(B, J, H, W)`` the model's raw heatmaps.
        targets: ``(B, J, H, W)`` the Gaussian targets (peak 1) at the truth.
        joints_px: ``(B, J, 2)`` the truth as ``(x, y)`` in heatmap pixels (0-based centres).
        mask: ``(B, J)``, 1 where the joint is annotated (the training mask).

    Returns:
        ``joints`` (count), and the sums of ``peak``, ``amplitude``, ``near``, ``mse`` and
        ``zero_mse`` over those joints.
    """
    if maps.shape != targets.shape or maps.dim() != 4:
        raise ValueError(
            f"maps and targets: expected equal (B, J, H, W), got {tuple(maps.shape)} and "
            f"{tuple(targets.shape)}"
        )
    keep = mask.bool()
    width = maps.shape[-1]
    flat, flat_t = maps.flatten(2).float(), targets.flatten(2).float()
    peak, index = flat.max(-1)
    cell = torch.stack((index % width, index // width), -1).float()
    near = ((cell - joints_px.round()).abs().amax(-1) <= 1).float()
    amplitude = (flat * flat_t).sum(-1) / (flat_t * flat_t).sum(-1).clamp_min(1e-12)
    mse = ((flat - flat_t) ** 2).mean(-1)
    zero = (flat_t**2).mean(-1)
    sums = {"joints": float(keep.sum())}
    for name, value in (
        ("peak", peak),
        ("amplitude", amplitude),
        ("near", near),
        ("mse", mse),
        ("zero_mse", zero),
    ):
        sums[name] = float(value[keep].sum())
    return sums


def finish(sums: dict[str, float]) -> dict[str, float]:
    """The CSV's means from the accumulated :func:`peak_sums`."""
    n = max(sums["joints"], 1.0)
    return {
        "joints": int(sums["joints"]),
        "peak": round(sums["peak"] / n, 4),
        "amplitude": round(sums["amplitude"] / n, 4),
        "near_pct": round(100 * sums["near"] / n, 2),
        "mse_ratio": round(sums["mse"] / max(sums["zero_mse"], 1e-12), 4),
    }


def measure(checkpoint: Path, data_root: str) -> dict[str, float]:
    """Run ``checkpoint`` on the LSP test set and return :func:`finish`'s row."""
    from torch.utils.data import DataLoader

    from dsntpose import ops

    model, run, test = lsp_test_set(checkpoint, data_root)
    if run.model.head != "heatmap":
        raise ValueError(f"{checkpoint}: model.head is {run.model.head!r}, expected 'heatmap'")
    total: dict[str, float] = {}
    with torch.no_grad():
        for batch in DataLoader(test, batch_size=32):
            maps = model(batch["image"]).heatmaps.float()
            size = tuple(maps.shape[-2:])
            joints = batch["joints"].float()
            targets = ops.heatmap_targets(joints, size, run.loss.heatmap_sigma)
            sums = peak_sums(maps, targets, ops.normalized_to_pixel(joints, size), batch["mask"])
            for k, v in sums.items():
                total[k] = total.get(k, 0.0) + v
    return finish(total)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("cells", nargs="*", help="sweep/cell names (default: every heatmap cell)")
    parser.add_argument("--runs_dir", default=str(REPO / "runs" / "experiments"))
    parser.add_argument("--data_root", default=str(REPO.parent / "shared" / "data" / "lsp"))
    args = parser.parse_args(argv)

    done = measure_cells(
        OUT,
        FIELDS,
        finished_checkpoints(args.runs_dir, "heatmap", args.cells),
        lambda checkpoint: measure(checkpoint, args.data_root),
        lambda row: (
            f"peak {row['peak']:.3f}, amplitude {row['amplitude']:.3f}, arg-max within a cell "
            f"{row['near_pct']:.1f}%, MSE / zero map {row['mse_ratio']:.3f}"
        ),
    )
    if not done:
        print("no finished heatmap-matching cell with a last.ckpt in", args.runs_dir)
    return 0


if __name__ == "__main__":
    run_cli(main)
