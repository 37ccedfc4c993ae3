"""Score whole-photo pose on the held-out people of a model's run: no box, no test image.

    .venv/bin/python scripts/whole_validation.py [MODEL] [--data ../shared/data]
        [--setting KEY=VALUE[,KEY=VALUE ...] ...] [--limit N]
        [--json docs/results/whole_validation.json]  (and the same name .png: see below)

``scripts/choose_decode.py`` scores box crops; a user's photo has no box. This gives each
held-out person of the model's run (the fixed draw of ``data.val_holdout`` people from LSP
1-1000, LSP-extended and the MPII training crops; never the test sets) to the
:class:`~dsntpose.predictor.Predictor` as the **whole image** the person came from, and scores
the one person it finds: PCK@0.2 of the torso over the 12 limb joints the person has labelled
(a person not found counts every joint wrong), overall and per source, with the network runs
per image. Each ``--setting`` is one Predictor configuration (its keyword arguments, e.g.
``flip=false,max_passes=2``; default: the Predictor's defaults with and without flip), so the
search's knobs are chosen here rather than on LSP test; ``box=true`` instead hands the
Predictor the box of the person's labelled joints with the margin of training (the search's
final crop when every joint it found is right): how much the search itself loses. The
validation split's background squares, given as images, say how often a setting reports a
person where there is none; those the first setting flags are drawn side by side beside the
JSON (its name with ``.png``). **Close-ups** (each setting without ``box``): every held-out person
whose shoulders are labelled, given as the part of the image around the labelled joints of the
upper body (head, neck, thorax, shoulders, elbows, wrists) grown by 15% of its longer side,
so the legs and often the hips are cut off, as in a webcam's view or a zoomed video: how often
the person is found and PCK@0.2 of the full-body torso over the limb joints inside the crop.
ONNX Runtime, one thread.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
LIMBS = (
    "r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle",
    "r_wrist", "r_elbow", "r_shoulder", "l_shoulder", "l_elbow", "l_wrist",
)  # fmt: skip
UPPER = (
    "head_top", "upper_neck", "thorax", "r_shoulder", "l_shoulder", "r_elbow", "l_elbow",
    "r_wrist", "l_wrist",
)  # fmt: skip
CLOSEUP_GROW = 0.15
KNOBS = {
    "box": bool,
    "flip": bool,
    "flip_passes": str,
    "max_passes": int,
    "min_joint_score": float,
    "min_presence": float,
}


def parse_setting(text: str) -> dict[str, Any]:
    """``"flip=false,max_passes=2"`` -> ``{"flip": False, "max_passes": 2}`` (the Predictor's
    search knobs only; a bad key or value is a ``ValueError`` naming it)."""
    setting: dict[str, Any] = {}
    for part in filter(None, text.split(",")):
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or key not in KNOBS:
            raise ValueError(f"--setting {text!r}: expected KEY=VALUE with KEY in {sorted(KNOBS)}")
        if KNOBS[key] is bool:
            if value.strip().lower() not in ("true", "false"):
                raise ValueError(f"--setting {text!r}: {key} must be true or false")
            setting[key] = value.strip().lower() == "true"
        else:
            try:
                setting[key] = KNOBS[key](value)
            except ValueError:
                raise ValueError(
                    f"--setting {text!r}: {key} must be {KNOBS[key].__name__}"
                ) from None
    return setting


def held_out(config: dict[str, Any], data: Path) -> tuple[list[dict[str, Any]], list[np.ndarray]]:
    """The held-out people of a ``data.dataset: mixed`` run and its validation backgrounds.

    Returns:
        per person its source, image path, ``(J, 2)`` joints in the model's (MPII) joints
        (image px), ``(J,)`` missing flags and torso size (px, NaN where unknown); and the
        validation split's background squares (no person) as ``(S, S, 3)`` uint8 BGR images.
    """
    sys.path.insert(0, str(REPO / "scripts"))
    from calibrate import validation_split

    val = validation_split(config, data)
    backgrounds = []
    for index in range(len(val.picks), len(val)):
        rgb = val[index]["image"].permute(1, 2, 0).numpy()
        backgrounds.append(np.ascontiguousarray(np.rint(255 * rgb[..., ::-1]).astype(np.uint8)))
    people = []
    for s, i in val.picks:
        source, mapping = val.sources[s], np.asarray(val.maps[s])
        have = mapping >= 0
        joints = np.full((len(mapping), 2), np.nan)
        missing = np.ones(len(mapping), dtype=bool)
        joints[have] = source.joints[i][mapping[have]]
        missing[have] = source.missing[i][mapping[have]]
        people.append(
            {
                "source": val.names[s],
                "image": source.image_paths[i],
                "joints": joints,
                "missing": missing,
                "torso": float(source.torso_sizes[i]),
            }
        )
    return people, backgrounds


def closeups(
    people: list[dict[str, Any]], images: list[np.ndarray], names: Sequence[str]
) -> tuple[list[dict[str, Any]], list[np.ndarray]]:
    """The upper-body close-up of each person whose shoulders are labelled (see the module
    docstring): the people with their joints moved into the crop (those outside it missing),
    and the crops (BGR). ``names``: the joint names of ``people``'s joints."""
    upper = np.array([name in UPPER for name in names])
    shoulders = [list(names).index(n) for n in ("r_shoulder", "l_shoulder")]
    out_people, out_images = [], []
    for person, image in zip(people, images):
        labelled = ~person["missing"] & np.isfinite(person["joints"]).all(axis=1)
        if not labelled[shoulders].all():
            continue
        points = person["joints"][labelled & upper]
        low, high = points.min(axis=0), points.max(axis=0)
        pad = CLOSEUP_GROW * float(max(high - low)) + 4.0
        height, width = image.shape[:2]
        x0, y0 = (max(0, int(np.floor(v - pad))) for v in low)
        x1 = min(width, int(np.ceil(high[0] + pad)) + 1)
        y1 = min(height, int(np.ceil(high[1] + pad)) + 1)
        joints = person["joints"] - [x0, y0]
        inside = np.all((joints >= -0.5) & (joints <= [x1 - x0 - 0.5, y1 - y0 - 0.5]), axis=1)
        out_people.append({**person, "joints": joints, "missing": person["missing"] | ~inside})
        out_images.append(np.ascontiguousarray(image[y0:y1, x0:x1]))
    return out_people, out_images


class _Counting:
    """A model wrapper that counts the crops it is run on (the merge reads its head)."""

    def __init__(self, model: Any) -> None:
        self.model, self.crops = model, 0
        self.head = getattr(model, "head", None)
        self.joint_calibration = getattr(model, "joint_calibration", None)

    def __call__(self, batch: torch.Tensor) -> Any:
        self.crops += int(batch.shape[0])
        return self.model(batch)


def score(
    predictor: Any,
    people: list[dict[str, Any]],
    images: list[np.ndarray],
    box: bool = False,
    backgrounds: list[np.ndarray] | None = None,
) -> dict[str, Any]:
    """PCK@0.2 (%) of the torso over the limb joints, whole images, overall and per source,
    and the network runs (crops) per image of the people; with ``box`` each person is given as
    the box of their labelled joints (the predictor's ``margin`` around it). Of the
    ``backgrounds`` (BGR images of no person), how many the predictor reports a person on."""
    from dsntpose.predictor import keypoint_box

    names = list(predictor.joint_set.names)
    limb = np.array([name in LIMBS for name in names])
    counting = _Counting(predictor.model)
    predictor.model = counting
    hits: dict[str, list[int]] = {}
    found = 0
    start = time.perf_counter()
    try:
        for person, image in zip(people, images):
            given = None
            if box:
                labelled = ~person["missing"] & np.isfinite(person["joints"]).all(axis=1)
                given = keypoint_box(person["joints"], labelled.astype(float), 0.5, 1)
            answer = predictor.predict_image(image, given)
            guess = answer[0].keypoints if answer else np.full((len(names), 2), np.nan)
            found += bool(answer)
            dist = np.linalg.norm(guess - person["joints"], axis=-1)
            correct = np.nan_to_num(dist, nan=np.inf) <= 0.2 * person["torso"]
            scored = ~person["missing"] & limb & np.isfinite(person["torso"])
            for key in ("all", person["source"]):
                tally = hits.setdefault(key, [0, 0])
                tally[0] += int(correct[scored].sum())
                tally[1] += int(scored.sum())
        runs = counting.crops
        flagged = [k for k, image in enumerate(backgrounds or []) if predictor.predict_image(image)]
        false_people = len(flagged)
    finally:
        predictor.model = counting.model
    pck = {key: round(100.0 * a / max(b, 1), 2) for key, (a, b) in hits.items()}
    return {
        "pck20_limbs": pck.pop("all"),
        "per_source": pck,
        "person_found": found,
        "crops_per_image": round(runs / max(len(people), 1), 3),
        "backgrounds": len(backgrounds or []),
        "background_person_found": false_people,
        "background_person_found_index": flagged,
        "seconds": round(time.perf_counter() - start, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "model", nargs="?", type=Path,
        default=REPO / "src" / "dsntpose" / "weights" / "whole_efficientnet_lite0.pt",
    )  # fmt: skip
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--setting", action="append", default=None)
    parser.add_argument("--limit", type=int, default=None, help="the first N people only")
    parser.add_argument(
        "--json", type=Path, default=REPO / "docs" / "results" / "whole_validation.json"
    )
    args = parser.parse_args(argv)
    import cv2

    from dsntpose.checkpoint import load_any, read_torch_file
    from dsntpose.predictor import BODY_MARGIN, Predictor

    try:
        settings = [parse_setting(s) for s in (args.setting or ["flip=true", "flip=false"])]
        config = read_torch_file(args.model, "model").get("config")
    except (ValueError, OSError) as err:
        print(f"whole_validation: {err}", file=sys.stderr)
        return 2
    if not isinstance(config, dict) or config.get("data", {}).get("dataset") != "mixed":
        print(
            f"whole_validation: {args.model}: needs a model trained on data.dataset: mixed "
            "(its run config names the held-out people)",
            file=sys.stderr,
        )
        return 2
    torch.set_num_threads(1)
    people, backgrounds = held_out(config, args.data)
    people = people[: args.limit]
    images = [cv2.imread(person["image"]) for person in people]
    rows = []
    for setting in settings:
        knobs = {k: v for k, v in setting.items() if k != "box"}
        if setting.get("box"):
            knobs["margin"] = BODY_MARGIN
        predictor = Predictor.from_loaded(load_any(args.model), threads=1, **knobs)
        boxed = bool(setting.get("box"))
        row = {
            "setting": setting,
            **score(predictor, people, images, boxed, None if boxed else backgrounds),
        }
        if not boxed:
            close_people, close_images = closeups(people, images, predictor.joint_set.names)
            row["closeups"] = {
                "people": len(close_people),
                **score(predictor, close_people, close_images),
            }
        print(json.dumps(row), flush=True)
        rows.append(row)
    record = {
        "sha256": hashlib.sha256(args.model.read_bytes()).hexdigest(),
        "people": len(people),
        "model": str(args.model.resolve().relative_to(REPO))
        if args.model.resolve().is_relative_to(REPO)
        else str(args.model),
        "split": (
            f"validation: {len(people)} held-out people of the model's run, each given as the "
            "whole image it came from (no box); PCK@0.2 of the torso over the labelled limb "
            f"joints; {len(backgrounds)} background squares of the split given as images; "
            "closeups: the upper body's crop of each person whose shoulders are labelled, PCK "
            "over the limb joints inside it; ONNX Runtime where installed, 1 thread"
        ),
        "rows": rows,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(record, indent=2) + "\n")
    # beside the record (``--json`` with ``.png``): the squares its first row flags
    flagged = rows[0].get("background_person_found_index") or []
    write_montage([backgrounds[k] for k in flagged], flagged, args.json.with_suffix(".png"))
    return 0


def write_montage(images: list[np.ndarray], labels: list[int], path: Path, side: int = 128) -> None:
    """The background squares a setting reported a person on, side by side (``side`` px each,
    labelled with their index in the split), as a PNG at ``path``; an empty list removes it."""
    import cv2

    if not images:
        path.unlink(missing_ok=True)
        return
    tiles = []
    for image, label in zip(images, labels):
        tile = cv2.resize(image, (side, side), interpolation=cv2.INTER_AREA)
        cv2.putText(tile, str(label), (3, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 255), 1)
        tiles.append(tile)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.concatenate(tiles, axis=1))


if __name__ == "__main__":
    raise SystemExit(main())
