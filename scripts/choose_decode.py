"""Choose how a DSNT model reads coordinates off its maps, on its run's validation split.

    .venv/bin/python scripts/choose_decode.py CHECKPOINT [--data ../shared/data]
        [--radii R ...] [--json docs/results/decode_choice.json]

The expectation of the whole map (``dsnt``) lands between two peaks when a map has two (a left
and a right wrist, dsntnn#13); ``local`` takes it inside a window of ``2 r + 1`` cells around
the arg-max (:func:`dsntpose.ops.local_dsnt`). This scores the model on the held-out people of
its run's validation split (``data.dataset: mixed``: box crops, flip test, PCK@0.2 of the
torso over the labelled joints) with each decode, and names the best. The test sets (LSP test,
the MPII frames) are never read: they only score the choice afterwards
(``scripts/ship_whole.py --coords local --local_radius R``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]


def views(model: Any, batches: list[dict[str, Any]]) -> list[tuple[Any, Any]]:
    """The model's outputs on each batch's images and on their mirrors: run once, decoded
    every way by :func:`score`."""
    with torch.no_grad():
        return [(model(b["image"]), model(torch.flip(b["image"], dims=[-1]))) for b in batches]


def score(
    model: Any,
    batches: list[dict[str, Any]],
    joint_set: Any,
    outputs: list[tuple[Any, Any]] | None = None,
) -> tuple[float, int]:
    """PCK@0.2 (%) of the torso and the number of labelled joints of the people in
    ``batches`` (background crops and unlabelled joints do not count), flip test, decoded as
    the model's head is set now; ``outputs``: :func:`views` of the batches (else run here)."""
    from dsntpose.inference import back_project, merge_flip

    hits = total = 0
    with torch.no_grad():
        for batch, (out, out_flip) in zip(batches, outputs or views(model, batches)):
            images = batch["image"]
            merged = merge_flip(model, out, out_flip, joint_set)
            px = back_project(
                merged.coords.double(), batch["inverse"].double(), tuple(images.shape[-2:])
            )
            dist = torch.linalg.norm(px - batch["joints_image"].double(), dim=-1)
            size = batch["norm_size"].double()[:, None]
            labelled = (
                ~batch["joints_missing"].bool()
                & torch.isfinite(size)
                & (batch["presence"][:, None] > 0)
            )
            hits += int(((dist <= 0.2 * size) & labelled).sum())
            total += int(labelled.sum())
    return 100.0 * hits / max(total, 1), total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument(
        "--radii",
        type=int,
        nargs="+",
        help="local DSNT radii in map cells (default 1 to 4, and 1 to 8 on maps of 24 px or "
        "more: the same reach in the image)",
    )
    parser.add_argument(
        "--json", type=Path, default=REPO / "docs" / "results" / "decode_choice.json"
    )
    args = parser.parse_args(argv)

    from torch.utils.data import DataLoader

    from dsntpose.checkpoint import load_checkpoint
    from dsntpose.data.joints import get_joint_set

    torch.set_num_threads(1)
    try:
        model, cfg, config = load_checkpoint(args.checkpoint)
    except (FileNotFoundError, ValueError) as err:
        print(f"choose_decode: {err}", file=sys.stderr)
        return 2
    if cfg.head != "dsnt":
        print(
            f"choose_decode: {args.checkpoint}: a {cfg.head} head has no DSNT decode",
            file=sys.stderr,
        )
        return 2
    if args.radii is None:
        args.radii = list(range(1, 9 if cfg.heatmap_size >= 24 else 5))
    if min(args.radii) < 1:
        print(f"choose_decode: --radii must be >= 1, got {args.radii}", file=sys.stderr)
        return 2
    sys.path.insert(0, str(REPO / "scripts"))
    from calibrate import validation_split

    val = validation_split(config, args.data)
    batches = list(DataLoader(val, batch_size=32))
    joint_set = get_joint_set(cfg.joints)
    model = model.float().eval()
    scores: dict[str, float] = {}
    joints = 0
    outputs = views(model, batches)  # the network runs once; each decode reads its logits
    for radius in [0, *args.radii]:  # 0: the plain expectation
        model.head.coords, model.head.local_radius = ("local", radius) if radius else ("dsnt", 4)
        name = f"local{radius}" if radius else "dsnt"
        scores[name], joints = score(model, batches, joint_set, outputs)
        print(f"{name}: validation PCK@0.2 {scores[name]:.2f}", flush=True)
    best = max(scores, key=lambda k: scores[k])
    record = {
        "checkpoint": str(args.checkpoint),
        "split": f"validation: {joints} labelled joints of the held-out people, box crops, flip",
        "pck20": {k: round(v, 2) for k, v in scores.items()},
        "chosen": {"coords": "dsnt"}
        if best == "dsnt"
        else {"coords": "local", "local_radius": int(best[5:])},
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record["chosen"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
