"""How well a whole-photo model fits the people it trained on, against the people held out.

    .venv/bin/python scripts/fit_gap.py [MODEL] [--data ../shared/data] [--people 600]
        [--json docs/results/fit_gap.json]

Which lever closes an accuracy gap depends on where the model stands: one that scores far
higher on its own training people than on held-out ones is short of data or regularisation;
one that scores low on both is short of capacity or training. This scores the model (box crops
with the training margin, no augmentation, no framing jitter, the flip test: what
``scripts/choose_decode.py`` and ``scripts/calibrate.py`` read) on its run's held-out people
(``data.val_holdout``, the validation split) and on a fixed draw (seed 0) of the same number of
its training people, each as PCK@0.2 of the torso over every labelled joint, overall and per
source (LSP, LSP-extended, MPII training crops). Torch eager, one thread.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]


def split_scores(values: dict[str, np.ndarray], sources: np.ndarray, names: list[str]) -> dict:
    """PCK@0.2 (%) of the people in ``values`` (:func:`calibrate.collect`'s output: its
    ``correct``, ``labelled`` and ``presence_target``), overall and per source name, with the
    people and joints counted. ``sources``: the source index of each sample (people first)."""
    people = values["presence_target"] > 0
    correct = values["correct"][people].astype(bool)
    labelled = values["labelled"][people].astype(bool)
    of = np.asarray(sources)[: int(people.sum())]

    def pck(mask: np.ndarray) -> dict[str, Any]:
        joints = labelled[mask]
        n = int(joints.sum())
        hit = int(correct[mask][joints].sum())
        return {
            "pck20": round(100.0 * hit / n, 2) if n else None,
            "people": int(mask.sum()),
            "joints": n,
        }

    out = {"all": pck(np.ones(len(of), dtype=bool))}
    for index, name in enumerate(names):
        if (of == index).any():
            out[name] = pck(of == index)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "model", nargs="?", type=Path,
        default=REPO / "src" / "dsntpose" / "weights" / "whole_efficientnet_lite0.pt",
    )  # fmt: skip
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--people", type=int, default=600, help="training people drawn")
    parser.add_argument("--json", type=Path, default=REPO / "docs" / "results" / "fit_gap.json")
    args = parser.parse_args(argv)
    if args.people < 1:
        parser.error(f"--people: must be at least 1, got {args.people}")
    sys.path.insert(0, str(REPO / "scripts"))
    from calibrate import collect, validation_split
    from dsntpose.bench import cpu_name
    from dsntpose.checkpoint import load_checkpoint
    from dsntpose.data.joints import get_joint_set
    from dsntpose.data.mixed import MixedPeople

    torch.set_num_threads(1)
    try:
        model, cfg, config = load_checkpoint(args.model)
    except (FileNotFoundError, ValueError) as err:
        print(f"fit_gap: {err}", file=sys.stderr)
        return 2
    if config.get("data", {}).get("dataset") != "mixed" or not config["data"].get("val_holdout"):
        print(
            f"fit_gap: {args.model}: needs a model trained on data.dataset: mixed with "
            "data.val_holdout (its run config names the held-out people)",
            file=sys.stderr,
        )
        return 2
    model.eval()
    joint_set = get_joint_set(cfg.joints)
    val = validation_split(config, args.data)
    train = validation_split(config, args.data, split="train")
    unique = sorted(set(train.picks))  # the mix's weights repeat people; each counts once
    rng = np.random.default_rng(0)
    count = min(args.people, len(unique))
    drawn = [unique[i] for i in sorted(rng.choice(len(unique), count, replace=False))]
    seen = MixedPeople(
        list(zip(train.names, train.sources)), train.joint_set, picks=drawn, size=train.size
    )
    record: dict[str, Any] = {
        "model": str(args.model),
        "sha256": hashlib.sha256(args.model.read_bytes()).hexdigest(),
        "protocol": "box crops with the training margin, no augmentation, flip test; "
        "PCK@0.2 of the torso over every labelled joint",
        "machine": f"{cpu_name()}, 1 thread",
    }
    for key, dataset in (("held_out", val), ("training", seen)):
        values = collect(model, dataset, joint_set, flip=True)
        sources = [s for s, _ in dataset.picks]
        record[key] = split_scores(values, np.array(sources), list(dataset.names))
        print(f"fit_gap: {key}: {json.dumps(record[key])}", file=sys.stderr)
    record["gap"] = {
        name: round(record["training"][name]["pck20"] - record["held_out"][name]["pck20"], 2)
        for name in record["held_out"]
        if name in record["training"] and record["held_out"][name]["pck20"] is not None
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps({k: record[k] for k in ("held_out", "training", "gap")}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
