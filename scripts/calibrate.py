"""Calibrate a presence model's joint confidence on held-out people, and measure it.

    .venv/bin/python scripts/calibrate.py CHECKPOINT --out MODEL.pt [--data ../shared/data]
        [--json docs/results/calibration.json] [--plot docs/images/calibration.png]

A model built with ``model.presence`` reports, per joint, ``sigmoid(w_vis * visibility + w_map *
logit(map confidence) + bias)`` (:class:`dsntpose.heads.PresenceHead`). This script runs the
model on its run's validation split (the held-out people and background crops of
``data.dataset: mixed``, box crops, no flip), marks each labelled joint correct when it lies
within PCK@0.2 of the torso, and fits the three numbers by logistic regression. The shipped
numbers are fitted on all the held-out people; the figures are 2-fold cross-fitted: each
person is measured with the calibration fitted on the other half (people at even against odd
positions), so every held-out joint is measured and none by a fit that saw it:

* joint confidence: AUROC of "correct" and the expected calibration error (ECE, 15 equal-width
  bins, weighted by count) with a 95% percentile-bootstrap interval over people, before (the
  visibility probability alone) and after, without and with the flip test;
* presence: AUROC between the person crops and the background crops.

It writes the calibrated model (:func:`dsntpose.checkpoint.save_model`, the checkpoint's full run
config kept), the figures as JSON and a reliability diagram.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
BINS = 15


def expected_calibration_error(
    confidence: np.ndarray, correct: np.ndarray, bins: int = BINS
) -> float:
    """ECE: the count-weighted mean of |accuracy - mean confidence| over ``bins`` equal-width
    confidence bins of ``[0, 1]`` (:func:`dsntpose.ops.reliability_curve`)."""
    from dsntpose.ops import reliability_curve

    return float(reliability_curve(confidence, correct, bins=bins).ece)


def reliability(confidence: np.ndarray, correct: np.ndarray, bins: int = BINS) -> list[list[float]]:
    """``[mean confidence, accuracy, count]`` of each non-empty bin."""
    from dsntpose.ops import reliability_curve

    r = reliability_curve(confidence, correct, bins=bins)
    return [
        [float(c), float(a), int(n)] for c, a, n in zip(r.confidence, r.accuracy, r.counts) if n > 0
    ]


def ece_interval(
    confidence: np.ndarray, correct: np.ndarray, owner: np.ndarray, draws: int = 1000
) -> list[float]:
    """95% percentile-bootstrap interval of the ECE over people: ``owner`` names the person of
    each joint; people are drawn with replacement (seed 0), each bringing all their joints."""
    people, start = np.unique(owner, return_inverse=True)
    members = [np.flatnonzero(start == k) for k in range(len(people))]
    rng = np.random.default_rng(0)
    values = []
    for _ in range(draws):
        pick = np.concatenate([members[k] for k in rng.integers(0, len(people), len(people))])
        values.append(expected_calibration_error(confidence[pick], correct[pick]))
    low, high = np.percentile(values, [2.5, 97.5])
    return [round(float(low), 4), round(float(high), 4)]


def fit_logistic(features: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Weights ``(F + 1,)`` (the last the bias) minimising the binary cross-entropy of
    ``sigmoid(features @ w[:-1] + w[-1])`` against ``target``."""
    from scipy.optimize import minimize

    x = np.concatenate([features, np.ones((len(features), 1))], axis=1)

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        z = x @ w
        p = 1 / (1 + np.exp(-z))
        value = np.mean(np.logaddexp(0, z) - target * z)
        return float(value), x.T @ (p - target) / len(target)

    start = np.zeros(x.shape[1])
    start[0] = 1.0
    return minimize(loss, start, jac=True, method="L-BFGS-B").x


def collect(model: Any, dataset: Any, joint_set: Any, flip: bool) -> dict[str, np.ndarray]:
    """Per sample of ``dataset``: visibility logits, map confidence, the model's calibrated
    confidence, correctness of each joint (PCK@0.2 of the torso), labels, presence."""
    from torch.utils.data import DataLoader

    from dsntpose import ops
    from dsntpose.inference import back_project, flip_test

    parts: dict[str, list[np.ndarray]] = {}
    with torch.no_grad():
        for batch in DataLoader(dataset, batch_size=32):
            images = batch["image"]
            out = model(images)
            conf = out.confidence
            presence, visibility = out.presence, out.visibility
            coords = out.coords
            if flip:
                merged = flip_test(model, images, joint_set)
                coords, conf, presence, visibility = merged
            map_conf = ops.heatmap_confidence(out.heatmaps)
            px = back_project(coords.double(), batch["inverse"].double(), tuple(images.shape[-2:]))
            gt = batch["joints_image"].double()
            dist = torch.linalg.norm(px - gt, dim=-1)
            size = batch["norm_size"].double()[:, None]
            labelled = ~batch["joints_missing"].bool() & torch.isfinite(size)
            values = {
                "vis_logit": visibility,
                "map_conf": map_conf,
                "conf": conf,
                "correct": (dist <= 0.2 * size) & labelled,
                "labelled": labelled,
                "presence": torch.sigmoid(presence),
                "presence_target": batch["presence"],
                "presence_mask": batch["presence_mask"],
            }
            for key, value in values.items():
                parts.setdefault(key, []).append(value.double().numpy())
    return {k: np.concatenate(v) for k, v in parts.items()}


def features(values: dict[str, np.ndarray]) -> np.ndarray:
    """``(N * J, 2)``: visibility logit and the logit of the map confidence."""
    p = np.clip(values["map_conf"], 1e-4, 1 - 1e-4)
    return np.stack([values["vis_logit"].ravel(), np.log(p / (1 - p)).ravel()], axis=1)


def add_decode_arguments(parser: argparse.ArgumentParser) -> None:
    """``--coords`` and ``--local_radius``: the decode a model file is written with (the
    choice of scripts/choose_decode.py)."""
    parser.add_argument(
        "--coords",
        choices=("dsnt", "local"),
        default=None,
        help="read coordinates this way (scripts/choose_decode.py); kept in the written model",
    )
    parser.add_argument("--local_radius", type=int, default=None, help="with --coords local")


def validation_split(config: dict[str, Any], data: Path) -> Any:
    """The held-out split of a ``data.dataset: mixed`` run config, its sources read from the
    folders under ``data`` (``lsp``, ``lspet``, ``mpii_train_crops``, ``coco_mini``)."""
    from dsntpose.config import RunConfig
    from dsntpose.datasets import build_split

    roots = dict(config["data"])
    roots.update(
        root=str(data / "lsp"),
        lspet_root=str(data / "lspet"),
        mpii_crops_root=str(data / "mpii_train_crops"),
        coco_root=str(data / "coco_mini"),
    )
    return build_split(RunConfig.from_dict({**config, "data": roots}), "val")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--out", type=Path, required=True, help="the calibrated model (.pt)")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--json", type=Path, default=REPO / "docs" / "results" / "calibration.json")
    parser.add_argument("--plot", type=Path, default=REPO / "docs" / "images" / "calibration.png")
    add_decode_arguments(parser)
    args = parser.parse_args(argv)

    from dsntpose.checkpoint import load_checkpoint, save_model
    from dsntpose.data.joints import get_joint_set
    from dsntpose.evaluate import auroc

    torch.set_num_threads(1)
    try:
        model, cfg, config = load_checkpoint(args.checkpoint)
    except (FileNotFoundError, ValueError) as err:
        print(f"calibrate: {err}", file=sys.stderr)
        return 2
    if args.coords is not None:  # a decode chosen on the validation split, kept in the file
        import dataclasses

        radius = args.local_radius if args.local_radius is not None else cfg.local_radius
        try:
            cfg = dataclasses.replace(cfg, coords=args.coords, local_radius=radius)
        except ValueError as err:
            print(f"calibrate: --coords {args.coords}: {err}", file=sys.stderr)
            return 2
        config = {
            **config,
            "model": {**config["model"], "coords": cfg.coords, "local_radius": radius},
        }
        model.head.coords, model.head.local_radius = cfg.coords, cfg.local_radius
    if not getattr(model, "has_presence", False):
        print(
            f"calibrate: {args.checkpoint}: the model has no presence head (model.presence)",
            file=sys.stderr,
        )
        return 2
    if args.out.resolve() == args.checkpoint.resolve():
        print(
            f"calibrate: --out {args.out} is the input checkpoint; choose another file",
            file=sys.stderr,
        )
        return 2
    val = validation_split(config, args.data)
    joint_set = get_joint_set(cfg.joints)
    model.eval()
    plain = collect(model, val, joint_set, flip=False)
    people = plain["presence_target"] > 0
    index = np.arange(len(people))
    halves = [people & (index % 2 == 0), people & (index % 2 == 1)]

    def joints_of(values: dict[str, np.ndarray], rows: np.ndarray) -> tuple[np.ndarray, ...]:
        """Features, correctness and the model's confidence of the labelled joints of
        ``rows``, and the sample each joint belongs to."""
        labelled = values["labelled"][rows].astype(bool)
        feats = features({k: v[rows] for k, v in values.items()})[labelled.ravel()]
        owner = np.broadcast_to(np.flatnonzero(rows)[:, None], labelled.shape)[labelled]
        return (
            feats,
            values["correct"][rows][labelled],
            values["conf"][rows][labelled],
            owner,
        )

    def calibrated(weights: np.ndarray, x: np.ndarray) -> np.ndarray:
        return 1 / (1 + np.exp(-(x @ weights[:2] + weights[2])))

    # 2-fold cross-fitting: each half measured with the weights fitted on the other
    parts: dict[str, list[np.ndarray]] = {}
    for fit_rows, test_rows in (halves, halves[::-1]):
        x_fit, y_fit, _, _ = joints_of(plain, fit_rows)
        fold = fit_logistic(x_fit, y_fit)
        x_test, y_test, before, owner = joints_of(plain, test_rows)
        model.presence.calibration.copy_(torch.tensor(fold, dtype=torch.float32))
        flipped = collect(model, val, joint_set, flip=True)
        _, y_flip, after_flip, owner_flip = joints_of(flipped, test_rows)
        for key, value in (
            ("y", y_test), ("before", before), ("after", calibrated(fold, x_test)),
            ("owner", owner), ("y_flip", y_flip), ("after_flip", after_flip),
            ("owner_flip", owner_flip),
        ):  # fmt: skip
            parts.setdefault(key, []).append(value)
    m = {k: np.concatenate(v) for k, v in parts.items()}
    x_all, y_all, _, _ = joints_of(plain, people)
    weights = fit_logistic(x_all, y_all)  # what ships: fitted on every held-out person
    model.presence.calibration.copy_(torch.tensor(weights, dtype=torch.float32))
    mask = plain["presence_mask"] > 0
    record = {
        "checkpoint": str(args.checkpoint),
        "split": f"validation: {int(people.sum())} held-out people, "
        f"{int((~people).sum())} background crops; 2-fold cross-fitted (each half measured "
        "with the calibration fitted on the other; people at even against odd positions), the "
        "shipped calibration fitted on all",
        "calibration": [round(float(w), 5) for w in weights],
        "joints_fitted": len(y_all),
        "joints_measured": len(m["y"]),
        "accuracy_pck20": round(float(m["y"].mean()) * 100, 2),
        "joint_auroc_before": round(auroc(m["before"], m["y"]), 4),
        "joint_ece_before": round(expected_calibration_error(m["before"], m["y"]), 4),
        "joint_auroc": round(auroc(m["after"], m["y"]), 4),
        "joint_ece": round(expected_calibration_error(m["after"], m["y"]), 4),
        "joint_ece_interval": ece_interval(m["after"], m["y"], m["owner"]),
        "joint_auroc_flip": round(auroc(m["after_flip"], m["y_flip"]), 4),
        "joint_ece_flip": round(expected_calibration_error(m["after_flip"], m["y_flip"]), 4),
        "joint_ece_flip_interval": ece_interval(m["after_flip"], m["y_flip"], m["owner_flip"]),
        "presence_auroc": round(auroc(plain["presence"][mask], plain["presence_target"][mask]), 4),
        "reliability": reliability(m["after"], m["y"]),
        "reliability_before": reliability(m["before"], m["y"]),
    }
    save_model(model, args.out, config, inputs=[args.checkpoint])
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(record, indent=2) + "\n")
    _plot(record, args.plot)
    print(
        json.dumps({k: v for k, v in record.items() if not k.startswith("reliability")}, indent=2)
    )
    return 0


def _plot(record: dict[str, Any], path: Path) -> None:
    """The reliability diagram: accuracy against mean confidence per bin, before and after."""
    from dsntpose.viz import _new_figure, save_figure

    fig = _new_figure(figsize=(4.6, 4.2))
    ax = fig.add_subplot(1, 1, 1)
    ax.plot([0, 1], [0, 1], color="0.7", lw=1, label="perfect")
    for key, label, style in (
        ("reliability_before", f"visibility alone (ECE {record['joint_ece_before']:.3f})", "o--"),
        ("reliability", f"calibrated (ECE {record['joint_ece']:.3f})", "s-"),
    ):
        rows = np.array(record[key])
        if len(rows):
            ax.plot(rows[:, 0], rows[:, 1], style, ms=4, label=label)
    ax.set_xlabel("joint confidence")
    ax.set_ylabel("fraction within PCK@0.2")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title("Joint confidence on held-out people", fontsize=10)
    ax.legend(fontsize=8, loc="upper left")
    path.parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, path)
    if not math.isfinite(record["joint_ece"]):
        raise ValueError("calibration: ECE is not finite")


if __name__ == "__main__":
    raise SystemExit(main())
