"""Calibrate a presence model's joint confidence on held-out people, and measure it.

    .venv/bin/python scripts/calibrate.py CHECKPOINT --out MODEL.pt [--data ../shared/data]
        [--json docs/results/calibration.json] [--plot docs/images/calibration.png]

A model built with ``model.presence`` reports, per joint, ``sigmoid(w_vis * visibility + w_map *
logit(map confidence) + w_peak * log(map peak) + w_spread * log(map spread) + w_scale * log(torso
length / 0.5) + person terms + bias_joint)``, the person terms weighing the first four averaged
over the person's joints (:class:`dsntpose.heads.PresenceHead`,
:func:`dsntpose.heads.joint_features`). This script runs the model on its run's validation split
(the held-out people and background crops of ``data.dataset: mixed``, box crops), marks each
labelled joint correct when it lies within PCK@0.2 of the torso, and fits the weights by
logistic regression on the flip test's merged prediction (what the Predictor gives by default);
the same weights serve a single view. Beside them it fits the whole-photo search's score the
same way on the first three terms only (:func:`dsntpose.heads.search_confidence`: a person
small in the whole image must keep the joints the search crops around). The shipped weights are
fitted on all the held-out people; the figures are 2-fold cross-fitted: each person is measured with the calibration
fitted on the other half (people at even against odd positions), so every held-out joint is
measured and none by a fit that saw it:

* joint confidence: AUROC of "correct" and the expected calibration error (ECE, 15 equal-width
  bins, weighted by count) with a 95% percentile-bootstrap interval over people, before (the
  confidence the checkpoint arrived with) and after, without and with the flip test;
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
# the record's name of each weight, in the order of heads.joint_features' terms: the joint's
# own five, then the first four averaged over the person's joints (heads.PERSON_TERMS)
TERMS = ("visibility", "map_confidence", "log_peak", "log_spread", "log_scale",
         "person_visibility", "person_map_confidence", "person_log_peak", "person_log_spread")  # fmt: skip


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


def fit_logistic(features: np.ndarray, target: np.ndarray, intercept: bool = True) -> np.ndarray:
    """Weights minimising the binary cross-entropy of ``sigmoid(features @ w[:F] + w[F])``
    against ``target``: ``(F + 1,)`` with the bias last, or ``(F,)`` with ``intercept=False``
    (the features then carry their own, as one-hot columns do)."""
    from scipy.optimize import minimize

    x = np.concatenate([features, np.ones((len(features), 1))], axis=1) if intercept else features

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        z = x @ w
        p = 1 / (1 + np.exp(-z))
        value = np.mean(np.logaddexp(0, z) - target * z)
        return float(value), x.T @ (p - target) / len(target)

    start = np.zeros(x.shape[1])
    start[0] = 1.0
    return minimize(loss, start, jac=True, method="L-BFGS-B").x


def collect(model: Any, dataset: Any, joint_set: Any, flip: bool) -> dict[str, np.ndarray]:
    """Per sample of ``dataset``: the joint features the calibration reads ``(N, J, 9)``
    (:func:`dsntpose.heads.joint_features`, of the flip test's merged prediction with ``flip``),
    the model's own confidence, correctness of each joint (PCK@0.2 of the torso), labels,
    presence."""
    from torch.utils.data import DataLoader

    from dsntpose import ops
    from dsntpose.heads import joint_features
    from dsntpose.inference import back_project, flip_test

    parts: dict[str, list[np.ndarray]] = {}
    with torch.no_grad():
        for batch in DataLoader(dataset, batch_size=32):
            images = batch["image"]
            if flip:
                merged = flip_test(model, images, joint_set)
                coords, conf, presence = merged.coords, merged.confidence, merged.presence
                feats = merged.features
            else:
                out = model(images)
                coords, conf, presence = out.coords, out.confidence, out.presence
                map_conf = ops.heatmap_confidence(out.heatmaps, center=out.coords)
                feats = joint_features(
                    out.visibility, map_conf, out.heatmaps, out.coords, joint_set.torso
                )
            assert feats is not None and presence is not None
            px = back_project(coords.double(), batch["inverse"].double(), tuple(images.shape[-2:]))
            gt = batch["joints_image"].double()
            dist = torch.linalg.norm(px - gt, dim=-1)
            size = batch["norm_size"].double()[:, None]
            labelled = ~batch["joints_missing"].bool() & torch.isfinite(size)
            values = {
                "features": feats,
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


def design(values: dict[str, np.ndarray], rows: np.ndarray) -> tuple[np.ndarray, ...]:
    """For the labelled joints of the samples ``rows``: the design matrix ``(n, 9 + J)`` (the
    joint features, then a one-hot column per joint: the per-joint biases), correctness, the
    model's own confidence and the sample each joint belongs to."""
    labelled = values["labelled"][rows].astype(bool)
    joints = labelled.shape[1]
    which = np.broadcast_to(np.arange(joints), labelled.shape)[labelled]
    x = np.concatenate([values["features"][rows][labelled], np.eye(joints)[which]], axis=1)
    owner = np.broadcast_to(np.flatnonzero(rows)[:, None], labelled.shape)[labelled]
    return x, values["correct"][rows][labelled], values["conf"][rows][labelled], owner


def calibrated(weights: np.ndarray, x: np.ndarray) -> np.ndarray:
    """:func:`dsntpose.heads.calibrated_confidence` on a :func:`design` matrix."""
    return 1 / (1 + np.exp(-(x @ weights)))


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


def validation_split(config: dict[str, Any], data: Path, split: str = "val") -> Any:
    """The held-out split (``split="train"``: the training split) of a ``data.dataset: mixed``
    run config, its sources read from the folders under ``data`` (``lsp``, ``lspet``,
    ``mpii_train_crops``, ``coco_mini``)."""
    from dsntpose.config import RunConfig
    from dsntpose.datasets import build_split

    roots = dict(config["data"])
    roots.update(
        root=str(data / "lsp"),
        lspet_root=str(data / "lspet"),
        mpii_crops_root=str(data / "mpii_train_crops"),
        coco_root=str(data / "coco_mini"),
    )
    return build_split(RunConfig.from_dict({**config, "data": roots}), split)


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
    from dsntpose.heads import CALIBRATION_WEIGHTS, SEARCH_WEIGHTS, TORSO_REFERENCE

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
    flipped = collect(model, val, joint_set, flip=True)
    people = plain["presence_target"] > 0
    index = np.arange(len(people))
    halves = [people & (index % 2 == 0), people & (index % 2 == 1)]

    # 2-fold cross-fitting on the flip test's features (the Predictor's default): each half
    # measured, with and without the flip, with the weights fitted on the other half
    parts: dict[str, list[np.ndarray]] = {}
    for fit_rows, test_rows in (halves, halves[::-1]):
        x_fit, y_fit, _, _ = design(flipped, fit_rows)
        fold = fit_logistic(x_fit, y_fit, intercept=False)
        for tag, values in (("", plain), ("_flip", flipped)):
            x_test, y_test, before, owner = design(values, test_rows)
            for key, value in (
                ("y", y_test), ("before", before), ("after", calibrated(fold, x_test)),
                ("owner", owner),
            ):  # fmt: skip
                parts.setdefault(key + tag, []).append(value)
    m = {k: np.concatenate(v) for k, v in parts.items()}
    x_all, y_all, _, _ = design(flipped, people)
    weights = fit_logistic(x_all, y_all, intercept=False)  # what ships: fitted on all
    # the search's score: the same fit on the first three columns (no spread, scale, person)
    drop = list(range(SEARCH_WEIGHTS, CALIBRATION_WEIGHTS))
    search = fit_logistic(np.delete(x_all, drop, axis=1), y_all, intercept=False)
    model.presence.calibration.copy_(
        torch.tensor(np.concatenate([weights, search]), dtype=torch.float32)
    )
    mask = plain["presence_mask"] > 0
    names = list(joint_set.names)
    record = {
        "checkpoint": str(args.checkpoint),
        "split": f"validation: {int(people.sum())} held-out people, "
        f"{int((~people).sum())} background crops; 2-fold cross-fitted (each half measured "
        "with the calibration fitted on the other; people at even against odd positions), the "
        "shipped calibration fitted on all, on the flip test's merged prediction",
        "calibration": {
            **{n: round(float(w), 5) for n, w in zip(TERMS, weights)},
            "bias": {n: round(float(b), 4) for n, b in zip(names, weights[CALIBRATION_WEIGHTS:])},
        },
        # what the whole-photo search picks its joints by (heads.search_confidence)
        "search_calibration": {
            **{n: round(float(w), 5) for n, w in zip(TERMS[:SEARCH_WEIGHTS], search)},
            "bias": {n: round(float(b), 4) for n, b in zip(names, search[SEARCH_WEIGHTS:])},
        },
        # the median predicted torso of the held-out people's box crops, normalised units:
        # the scale term is 0 at heads.TORSO_REFERENCE, meant to be about this
        "torso_median": round(
            float(np.median(np.exp(flipped["features"][people][:, 0, 4]))) * TORSO_REFERENCE, 4
        ),
        "joints_fitted": len(y_all),
        "joints_measured": len(m["y"]),
        "accuracy_pck20": round(float(m["y"].mean()) * 100, 2),
        "accuracy_pck20_flip": round(float(m["y_flip"].mean()) * 100, 2),
        "joint_auroc_before": round(auroc(m["before"], m["y"]), 4),
        "joint_ece_before": round(expected_calibration_error(m["before"], m["y"]), 4),
        "joint_auroc": round(auroc(m["after"], m["y"]), 4),
        "joint_ece": round(expected_calibration_error(m["after"], m["y"]), 4),
        "joint_ece_interval": ece_interval(m["after"], m["y"], m["owner"]),
        "joint_auroc_before_flip": round(auroc(m["before_flip"], m["y_flip"]), 4),
        "joint_ece_before_flip": round(
            expected_calibration_error(m["before_flip"], m["y_flip"]), 4
        ),
        "joint_auroc_flip": round(auroc(m["after_flip"], m["y_flip"]), 4),
        "joint_ece_flip": round(expected_calibration_error(m["after_flip"], m["y_flip"]), 4),
        "joint_ece_flip_interval": ece_interval(m["after_flip"], m["y_flip"], m["owner_flip"]),
        "presence_auroc": round(auroc(plain["presence"][mask], plain["presence_target"][mask]), 4),
        "reliability": reliability(m["after_flip"], m["y_flip"]),
        "reliability_before": reliability(m["before_flip"], m["y_flip"]),
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
        ("reliability_before", f"before (ECE {record['joint_ece_before_flip']:.3f})", "o--"),
        ("reliability", f"calibrated (ECE {record['joint_ece_flip']:.3f})", "s-"),
    ):
        rows = np.array(record[key])
        if len(rows):
            ax.plot(rows[:, 0], rows[:, 1], style, ms=4, label=label)
    ax.set_xlabel("joint confidence")
    ax.set_ylabel("fraction within PCK@0.2")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title("Joint confidence on held-out people, flip test", fontsize=10)
    ax.legend(fontsize=8, loc="upper left")
    path.parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, path)
    if not math.isfinite(record["joint_ece_flip"]):
        raise ValueError("calibration: ECE is not finite")


if __name__ == "__main__":
    raise SystemExit(main())
