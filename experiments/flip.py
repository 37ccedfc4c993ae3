"""Flip test for DSNT: average the mirrored pre-softmax maps, or the two coordinate predictions?

    python -m experiments.flip [--runs_dir runs/experiments] [--data_root DIR] [CELL ...]
                               [--checkpoint NAME=PATH ...]

For every finished DSNT cell of the sweeps whose run folder still holds ``last.ckpt`` (or the
cells named), evaluates the LSP test set three ways -- no flip, flip by coordinates
(``flip_mode="coords"``), flip by logits (``"logits"``, what the paper's code does) -- and
writes ``docs/results/flip.csv``, one row per cell, which ``experiments/report.py`` turns into a
table; ``--checkpoint NAME=PATH`` adds any other LSP DSNT checkpoint (for example the one
``make demo DATA=...`` writes). A row already in the CSV is not evaluated again.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from experiments.run import (
    REPO,
    RESULTS,
    evaluate_test,
    finished_checkpoints,
    pck_at,
    read_rows,
    run_cli,
    save_rows,
)

OUT = RESULTS / "flip.csv"
MODES = {"none": None, "coords": "coords", "logits": "logits"}
FIELDS = ["cell", "heatmap_px", *(f"{m}_pck{t}" for m in MODES for t in (20, 10))]


def evaluate(checkpoint: Path, data_root: str, mode: str | None) -> tuple[float, float]:
    """PCK@0.2 and PCK@0.1 (%) of ``checkpoint`` on the LSP test set."""
    p = evaluate_test(checkpoint, data_root, mode).predictions
    return pck_at(p, 0.2).total, pck_at(p, 0.1).total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("cells", nargs="*", help="sweep/cell names (default: every DSNT cell)")
    parser.add_argument("--runs_dir", default=str(REPO / "runs" / "experiments"))
    parser.add_argument("--data_root", default=str(REPO.parent / "shared" / "data" / "lsp"))
    parser.add_argument(
        "--checkpoint", action="append", default=[], help="NAME=PATH of another checkpoint"
    )
    args = parser.parse_args(argv)

    done = read_rows(OUT)
    todo: list[tuple[str, Path, int | None]] = [  # name, checkpoint, heatmap side
        (name, checkpoint, record["heatmap_px"])
        for name, checkpoint, record in finished_checkpoints(args.runs_dir, "dsnt", args.cells)
    ]
    for item in args.checkpoint:
        name, sep, path_text = item.partition("=")
        if not sep or not Path(path_text).is_file():
            raise SystemExit(f"error: --checkpoint expects NAME=PATH of a file, got {item!r}")
        todo.append((name, Path(path_text), None))
    for name, checkpoint, heatmap_px in todo:
        if name in done:
            continue
        if heatmap_px is None:
            from dsntpose.checkpoint import load_checkpoint

            heatmap_px = load_checkpoint(checkpoint)[1].heatmap_size
        row: dict[str, object] = {"cell": name, "heatmap_px": heatmap_px}
        for label, mode in MODES.items():
            pck20, pck10 = evaluate(checkpoint, args.data_root, mode)
            row[f"{label}_pck20"], row[f"{label}_pck10"] = round(pck20, 3), round(pck10, 3)
        done[name] = {k: str(v) for k, v in row.items()}
        save_rows(OUT, FIELDS, done)
        print(
            f"{name}: PCK@0.2 none {row['none_pck20']:.2f}, coords {row['coords_pck20']:.2f}, "
            f"logits {row['logits_pck20']:.2f}",
            flush=True,
        )
    if not done:
        print("no finished DSNT cell with a last.ckpt in", args.runs_dir)
    return 0


if __name__ == "__main__":
    run_cli(main)
