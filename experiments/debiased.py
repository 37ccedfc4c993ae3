"""What the debiased-DSNT cells learned, against plain DSNT + JS at the same stride.

    python -m experiments.debiased [--runs_dir runs/experiments] [--data_root DIR] [CELL ...]

Tests the report's account of the debiased cells' failure (pf_newops). Debiased DSNT
(:func:`dsntpose.ops.debiased_dsnt`) divides the plain expectation by ``1 - N / C``, ``N``
the map's cells and ``C`` the sum of ``exp(logits)``: the factor is 1 for a map with
``C <= N`` and grows without bound as ``C`` falls to ``N`` from above, so near-flat maps,
which every map is at the start of training, get a coordinate (and a gradient) multiplied by
an arbitrarily large factor, or none. For every finished DSNT cell with ``model.coords:
debiased`` whose run folder holds ``last.ckpt``, and the plain DSNT + JS cell of the same
stride (``pa_strategy/sNN-dsnt_js-seed0``), or the cells named, it runs the LSP test set once
(no flip) and writes ``docs/results/debiased_maps.csv``, one row per cell, over the annotated
joints:

* ``n_over_c``: the median of ``N / C`` (1 for a flat map, near 0 for a peaked one);
* ``factor_median``, ``factor_p95``: the debiasing factor ``1 / (1 - N / C)`` (1 where
  ``C <= N``), median and 95th percentile;
* ``spread_x``, ``spread_y``: the standard deviation of the predicted coordinates over the
  test joints divided by that of the truth, per axis (1 when the predictions vary as much as
  the joints do; near 0 for a model that puts every joint near one place);
* ``median_error``: the median distance from prediction to truth in normalised units (2 = the
  crop's width).

A row already in the CSV is not computed again; ``experiments/report.py`` reads the CSV.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
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

OUT = RESULTS / "debiased_maps.csv"
FIELDS = [
    "cell", "heatmap_px", "coords", "joints", "n_over_c", "factor_median", "factor_p95",
    "spread_x", "spread_y", "median_error",
]  # fmt: skip


def map_statistics(logits: Tensor, coords: Tensor, truth: Tensor, mask: Tensor) -> dict[str, float]:
    """The CSV's figures over the joints with ``mask`` true.

    Args:
        logits: ``(B, J, H, W)`` the head's raw maps (softmax temperature 1).
        coords: ``(B, J, 2)`` the model's normalised predictions.
        truth: ``(B, J, 2)`` normalised ground truth.
        mask: ``(B, J)`` bool, the annotated joints.
    """
    flat = logits.double().flatten(2)
    n_over_c = torch.exp(math.log(flat.shape[-1]) - torch.logsumexp(flat, dim=-1))[mask]
    factor = torch.where(n_over_c < 1, 1 / (1 - n_over_c.clamp(max=1 - 1e-12)), 1.0)
    pred, true = coords.double()[mask], truth.double()[mask]
    spread = pred.std(dim=0) / true.std(dim=0)
    return {
        "joints": int(mask.sum()),
        "n_over_c": round(float(np.median(n_over_c.numpy())), 4),
        "factor_median": round(float(np.median(factor.numpy())), 3),
        "factor_p95": round(float(np.quantile(factor.numpy(), 0.95)), 3),
        "spread_x": round(float(spread[0]), 3),
        "spread_y": round(float(spread[1]), 3),
        "median_error": round(float(np.median(torch.linalg.norm(pred - true, dim=-1).numpy())), 4),
    }


def measure(checkpoint: Path, data_root: str) -> dict[str, float | str]:
    """Run ``checkpoint`` on the LSP test set and return its row's figures."""
    from torch.utils.data import DataLoader

    model, run, test = lsp_test_set(checkpoint, data_root)
    cfg = run.model
    if cfg.head != "dsnt":
        raise ValueError(f"{checkpoint}: model.head is {cfg.head!r}, expected 'dsnt'")
    parts: dict[str, list[Tensor]] = {"logits": [], "coords": [], "truth": [], "mask": []}
    with torch.no_grad():
        for batch in DataLoader(test, batch_size=32):
            out = model(batch["image"])
            parts["logits"].append(out.logits.float() / cfg.temperature)
            parts["coords"].append(out.coords.float())
            parts["truth"].append(batch["joints"].float())
            parts["mask"].append(batch["mask"].bool())
    joined = {k: torch.cat(v) for k, v in parts.items()}
    return {"coords": cfg.coords, **map_statistics(**joined)}


def default_cells(runs_dir: str) -> list[str]:
    """Every debiased cell with a checkpoint, and the plain DSNT + JS cell of its stride."""
    cells = []
    for name, _, record in finished_checkpoints(runs_dir, "dsnt"):
        if record["config"]["model"].get("coords") == "debiased":
            stride = record["axes"]["stride"]
            cells += [name, f"pa_strategy/{stride}-dsnt_js-seed0"]
    return cells


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("cells", nargs="*", help="sweep/cell names (default: see above)")
    parser.add_argument("--runs_dir", default=str(REPO / "runs" / "experiments"))
    parser.add_argument("--data_root", default=str(REPO.parent / "shared" / "data" / "lsp"))
    args = parser.parse_args(argv)

    done = measure_cells(
        OUT,
        FIELDS,
        finished_checkpoints(args.runs_dir, "dsnt", args.cells or default_cells(args.runs_dir)),
        lambda checkpoint: measure(checkpoint, args.data_root),
        lambda row: (
            f"N/C {row['n_over_c']}, factor {row['factor_median']} (95th pct "
            f"{row['factor_p95']}), spread {row['spread_x']}/{row['spread_y']}, median error "
            f"{row['median_error']}"
        ),
    )
    if not done:
        print("no finished debiased cell with a last.ckpt in", args.runs_dir)
    return 0


if __name__ == "__main__":
    run_cli(main)
