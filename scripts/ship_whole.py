"""Ship the whole-photo model (MPII's 16 joints, presence and visibility) with its model card.

    .venv/bin/python scripts/ship_whole.py --checkpoint RUN/best.ckpt [--data ../shared/data]
        [--name whole_efficientnet_lite0] [--threads 1] [--no-ship] [--note TEXT]
    .venv/bin/python scripts/ship_whole.py --render      # rewrite the card from its JSON

1. Calibrates the joint confidence on the run's held-out people (``scripts/calibrate.py``:
   2-fold cross-fitted figures, the shipped weights fitted on all) and writes the calibrated
   model in half precision to ``src/dsntpose/weights/NAME.pt``
   (:func:`dsntpose.checkpoint.save_half`).
2. Evaluates *that file* (what users get):
   * LSP test (images 1001-2000), the annotation box given, with and without the flip test:
     PCK@0.2 of the torso over the 14 LSP joints (mapped by name) and per joint;
   * LSP test **whole photo**: no box, :meth:`dsntpose.predictor.Predictor.find_people`
     (whole image, then crops around the joints it found), with flip: the 12 limb joints and
     all 14, an image where it reports nobody counting as a miss for every joint;
   * the MPII validation frames: PCKh@0.5 by the official protocol with 95% bootstrap
     intervals (:func:`dsntpose.inference.evaluate_mpii_frames`);
   * presence and joint confidence (from the calibration step): AUROC, expected calibration
     error, reliability diagram.
3. Measures batch-1 latency (median of ``--rounds``, ``--threads`` threads): the network on a
   crop, and the whole-photo Predictor call on a decoded LSP image.
4. Writes ``docs/results/model_card_whole.json`` and ``docs/model_card_whole.md``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
CARD_JSON = REPO / "docs" / "results" / "model_card_whole.json"
CARD_MD = REPO / "docs" / "model_card_whole.md"
CALIBRATION_JSON = REPO / "docs" / "results" / "calibration.json"
CALIBRATION_PNG = REPO / "docs" / "images" / "calibration.png"
LIMBS = (
    "r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle",
    "r_wrist", "r_elbow", "r_shoulder", "l_shoulder", "l_elbow", "l_wrist",
)  # fmt: skip


def whole_photo_lsp(weights: Path, lsp_root: Path, limit: int | None = None) -> dict[str, Any]:
    """PCK@0.2 (torso) of the model on LSP test images given whole (no box), flip on."""
    import cv2

    from dsntpose.data import LSP
    from dsntpose.data.joints import LSP_JOINTS
    from dsntpose.predictor import Predictor

    test = LSP(lsp_root, "test", size=64)
    predictor = Predictor.from_checkpoint(weights, flip=True, threads=None)
    names = predictor.joint_set.names
    take = [names.index("upper_neck" if n == "neck" else n) for n in LSP_JOINTS.names]
    count = len(test) if limit is None else min(limit, len(test))
    preds = np.full((count, 14, 2), np.nan)
    found = 0
    for i in range(count):
        people = predictor.predict_image(cv2.imread(test.image_paths[i]))
        if people:
            found += 1
            preds[i] = people[0].keypoints[take]
    gt, missing = test.joints[:count], test.missing[:count]
    torso = test.torso_sizes[:count]
    dist = np.linalg.norm(preds - gt, axis=-1)
    correct = np.nan_to_num(dist, nan=np.inf) <= 0.2 * torso[:, None]
    scored = ~missing & np.isfinite(torso)[:, None]
    limb = np.array([n in LIMBS for n in LSP_JOINTS.names])
    per_joint = {
        n: round(100 * float(correct[:, j][scored[:, j]].mean()), 2)
        for j, n in enumerate(LSP_JOINTS.names)
    }
    return {
        "images": count,
        "person_found": found,
        "pck20_all_14": round(100 * float(correct[scored].mean()), 2),
        "pck20_limbs_12": round(100 * float(correct[:, limb][scored[:, limb]].mean()), 2),
        "per_joint": per_joint,
    }


def latency(
    model: Any, cfg: Any, shipped: Path, lsp_root: Path, rounds: int, images: int
) -> dict[str, Any]:
    """Batch-1 latency on this process's threads: the network alone (torch eager, one crop,
    median of ``rounds``) and the whole-photo Predictor call as a user meets it (its default
    engine: ONNX Runtime when installed; all passes, crop warps, back-projection) on each of the
    first ``images`` LSP test images, per image the median of ``rounds // 3`` calls (at least 3);
    the figure is the median over images. An image takes 1 to ``max_passes`` passes (the crop
    stops moving), so one image alone would not say what a photo costs."""
    import cv2

    from dsntpose.data import LSP
    from dsntpose.predictor import Predictor
    from dsntpose.runtime import resolve_engine

    sys.path.insert(0, str(REPO / "scripts"))
    from ship_model import latency_ms as median_ms

    crop = torch.rand(1, 3, cfg.input_size, cfg.input_size).contiguous(
        memory_format=torch.channels_last
    )
    net = model.eval().to(memory_format=torch.channels_last)
    with torch.no_grad():
        model_ms = median_ms(lambda: net(crop), rounds)
    paths = LSP(lsp_root, "test", size=64).image_paths[:images]
    decoded = [cv2.imread(path) for path in paths]
    out: dict[str, Any] = {"network_batch1_torch": round(model_ms, 2)}
    modes = {"": {"flip": False}, "_flip": {"flip": True}}
    modes["_flip_final"] = {"flip": True, "flip_passes": "final"}
    # the engine a user's Predictor picks (ONNX Runtime where installed), named outright so a
    # model that does not export is an error here, not a torch figure standing in for it
    engine = resolve_engine("auto")
    for suffix, knobs in modes.items():
        predictor = Predictor.from_checkpoint(
            shipped, threads=torch.get_num_threads(), engine=engine, **knobs
        )
        call = predictor.predict_image
        per_image = [median_ms(partial(call, im), max(3, rounds // 3)) for im in decoded]
        key = "whole_photo_predictor" + suffix
        out[key] = round(float(np.median(per_image)), 2)
        out[key + "_range"] = [round(float(min(per_image)), 2), round(float(max(per_image)), 2)]
        out["engine"] = type(predictor.model).__name__
    out.update(images=len(decoded), rounds=rounds)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--name", default="whole_efficientnet_lite0")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--limit", type=int, default=None, help="LSP test images (default all)")
    parser.add_argument("--no-ship", action="store_true", help="write the weights under runs/")
    parser.add_argument("--note", default="")
    parser.add_argument("--latency_images", type=int, default=20, help="LSP test images timed")
    sys.path.insert(0, str(REPO / "scripts"))
    from calibrate import add_decode_arguments

    add_decode_arguments(parser)  # the decode to ship (scripts/choose_decode.py picks it)
    parser.add_argument(
        "--run_dir",
        type=Path,
        action="append",
        default=[],
        help="a training run folder behind the model, in order (its last.ckpt and metrics give "
        "the training cost in the card; repeat for a run continued in another folder)",
    )
    parser.add_argument(
        "--prior_runs",
        type=Path,
        default=None,
        help="a JSON file whose training_runs (an earlier card's record, e.g. `git show "
        "REV:docs/results/model_card_whole.json`) come before the --run_dir ones: for runs "
        "whose folders are gone",
    )
    parser.add_argument("--render", action="store_true", help="only rewrite the card from its JSON")
    parser.add_argument(
        "--latency",
        action="store_true",
        help="only measure the shipped weights' latency again (into the card's JSON) and rewrite",
    )
    args = parser.parse_args()
    if (args.latency or args.render) and not CARD_JSON.is_file():
        print(f"ship_whole: no {CARD_JSON} to rewrite: ship a checkpoint first", file=sys.stderr)
        return 2
    if args.latency:
        from dsntpose.bench import cpu_name
        from dsntpose.checkpoint import load_checkpoint

        record = json.loads(CARD_JSON.read_text())
        shipped = REPO / record["weights_file"]
        torch.set_num_threads(args.threads)
        model, cfg, _ = load_checkpoint(shipped)
        try:
            record["latency_ms"] = latency(
                model, cfg, shipped, args.data / "lsp", args.rounds, args.latency_images
            )
        except ValueError as err:  # ONNX Runtime installed and the model does not export
            print(f"ship_whole: {err}", file=sys.stderr)
            return 2
        record["machine"] = {"cpu": cpu_name(), "threads": args.threads, "torch": torch.__version__}
        record["latency_date"] = time.strftime("%Y-%m-%d")
        CARD_JSON.write_text(json.dumps(record, indent=2) + "\n")
        args.render = True
    if args.render:
        record = json.loads(CARD_JSON.read_text())
        if args.run_dir or args.prior_runs:
            record["training_runs"] = training_runs(args.run_dir, args.prior_runs)
            CARD_JSON.write_text(json.dumps(record, indent=2) + "\n")
        CARD_MD.write_text(render(record))
        update_readme(record)
        return 0
    if args.checkpoint is None or not args.checkpoint.is_file():
        print(f"ship_whole: checkpoint {args.checkpoint} does not exist", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    from dsntpose.bench import cpu_name
    from dsntpose.checkpoint import load_checkpoint, save_half
    from dsntpose.config import RunConfig
    from dsntpose.inference import evaluate_checkpoint, evaluate_mpii_frames
    from dsntpose.model import model_name

    sys.path.insert(0, str(REPO / "scripts"))
    from ship_model import training_facts

    work = REPO / "runs"
    work.mkdir(exist_ok=True)
    calibrated = work / f"{args.name}_calibrated.pt"
    subprocess.run(
        [sys.executable, str(REPO / "scripts" / "calibrate.py"), str(args.checkpoint),
         "--out", str(calibrated), "--data", str(args.data),
         "--json", str(CALIBRATION_JSON), "--plot", str(CALIBRATION_PNG),
         *(["--coords", args.coords] if args.coords else []),
         *(["--local_radius", str(args.local_radius)] if args.local_radius else [])],
        check=True,
    )  # fmt: skip
    calibration = json.loads(CALIBRATION_JSON.read_text())
    weights_dir = REPO / "src" / "dsntpose" / "weights"
    shipped = (work if args.no_ship else weights_dir) / f"{args.name}.pt"
    save_half(
        calibrated,
        shipped,
        extra={"source": str(args.checkpoint), "card_file": str(CARD_MD.relative_to(REPO))},
    )
    model, cfg, config = load_checkpoint(shipped)
    lsp = {"root": str(args.data / "lsp"), "lspet_root": None, "mpii_crops_root": None,
           "coco_root": None}  # fmt: skip
    box = {
        flip: evaluate_checkpoint(shipped, split="test", data=lsp, flip=flip, num_draw=0)
        for flip in (False, True)
    }
    mpii = evaluate_mpii_frames(
        model, RunConfig.from_dict(config), root=args.data / "mpii", flip=True
    )
    whole = whole_photo_lsp(shipped, args.data / "lsp", args.limit)

    lat = latency(model, cfg, shipped, args.data / "lsp", args.rounds, args.latency_images)

    def per_joint(result: Any) -> dict[str, float]:
        counts = np.asarray(result.counts)
        return {
            n: round(float(v), 2)
            for n, v, c in zip(result.joint_set.names, result.per_joint, counts)
            if c > 0
        }

    record = {
        "name": args.name,
        "model": model_name(cfg),
        "joints": cfg.joints,
        "weights_file": str(shipped.relative_to(REPO)) if not args.no_ship else str(shipped),
        "weights_sha256": hashlib.sha256(shipped.read_bytes()).hexdigest(),
        "size_mb": round(shipped.stat().st_size / 2**20, 2),
        "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 3),
        "input_size": cfg.input_size,
        "heatmap_size": cfg.heatmap_size,
        "recipe": config,
        "training": training_facts(args.checkpoint),
        "training_runs": training_runs(args.run_dir, args.prior_runs),
        "data": "training: LSP images 1-1000, LSP-extended 1-9000 and 2074 MPII training people "
        "(crops), mapped to MPII's 16 joints by name, less 600 held out for validation; "
        "background crops (the sources' own images away from their people, and two thirds of "
        "39 COCO val2017 images) as negatives; test: LSP images 1001-2000, the MPII validation "
        "frames",
        "machine": {"cpu": cpu_name(), "threads": args.threads, "torch": torch.__version__},
        "lsp_test_box_pck20": round(float(box[False].result.total), 2),
        "lsp_test_box_pck20_flip": round(float(box[True].result.total), 2),
        "lsp_test_box_per_joint_flip": per_joint(box[True].result),
        "lsp_test_whole_photo_flip": whole,
        "mpii_frames_pckh50_flip": {
            "people": len(mpii.people.rows) if mpii.people is not None else None,
            "total": round(float(mpii.result.total), 2),
            "interval": [round(float(v), 2) for v in mpii.result.intervals.total]
            if mpii.result.intervals is not None
            else None,
            "groups": {k: round(float(v), 2) for k, v in mpii.result.groups.items()},
        },
        "calibration": {k: v for k, v in calibration.items() if not k.startswith("reliability")},
        "latency_ms": lat,
        "date": time.strftime("%Y-%m-%d"),
        "note": args.note,
    }
    CARD_JSON.write_text(json.dumps(record, indent=2) + "\n")
    CARD_MD.write_text(render(record))
    if not args.no_ship:
        update_readme(record)
    print(json.dumps({k: record[k] for k in ("lsp_test_box_pck20_flip", "mpii_frames_pckh50_flip",
                                              "latency_ms", "size_mb")}, indent=2))  # fmt: skip
    print(json.dumps(whole, indent=2))
    return 0


README = REPO / "README.md"
MARKERS = ("<!-- whole:start -->", "<!-- whole:end -->")


def readme_block(r: dict[str, Any]) -> str:
    """The README's summary of the whole-photo model (between the ``whole`` markers)."""
    w, m, c, lat = (
        r["lsp_test_whole_photo_flip"],
        r["mpii_frames_pckh50_flip"],
        r["calibration"],
        r["latency_ms"],
    )
    interval = f" ({m['interval'][0]}-{m['interval'][1]})" if m.get("interval") else ""
    return (
        f"`{r['name']}` ({r['model']}, {r['input_size']} px, MPII's 16 joints, "
        f"{r['size_mb']} MB): LSP test **whole photo** (no box, flip) PCK@0.2 "
        f"**{w['pck20_limbs_12']}** on the 12 limb joints, {w['pck20_all_14']} on all 14; given "
        f"the annotation box {r['lsp_test_box_pck20_flip']}; MPII validation frames "
        f"({m['people']} people) PCKh@0.5 **{m['total']}**{interval}; presence AUROC "
        f"{c['presence_auroc']}, joint confidence AUROC {c['joint_auroc_flip']} and ECE "
        f"{c['joint_ece_flip']}{_interval(c, 'joint_ece_flip_interval')} on held-out people "
        "(flip); "
        f"{_latency_line(lat)}, batch 1, "
        f"{r['machine']['threads']} thread(s) on {r['machine']['cpu']}. Training: "
        f"{_this_model(r)} (`scripts/long_run.sh` resumes the long run). [Model card](docs/model_card_whole.md), written by "
        "`scripts/ship_whole.py` (`scripts/reship_whole.sh` runs every step of a reship)."
    )


def _this_model(r: dict[str, Any]) -> str:
    """Where the shipped weights stand in their run: its epoch, or a snapshot's plain words."""
    planned = r["recipe"]["train"]["epochs"]
    t = r["training"]
    if not t:
        return f"a saved snapshot of a run of {planned} planned epochs (no step record)"
    return f"epoch {t.get('epoch')} of {planned} planned, step {t.get('global_step')}"


def _calibration_formula(calibration: dict[str, Any]) -> str:
    """The card's sentence on the fitted calibration (``scripts/calibrate.py``'s record)."""
    biases = ", ".join(f"{k} {v}" for k, v in calibration["bias"].items())
    if "log_spread" not in calibration:  # a record of the earlier three-term calibration
        return (
            "Calibration `sigmoid(a * visibility + b * logit(map confidence) + c * log(map peak) "
            f"+ bias_joint)` with a = {calibration['visibility']}, b = "
            f"{calibration['map_confidence']}, c = {calibration['log_peak']}; biases: {biases}."
        )
    own = (
        "Calibration `sigmoid(a * visibility + b * logit(map confidence) + c * log(map peak) "
        "+ d * log(map spread) + e * log(torso length / 0.5)"
    )
    values = (
        f"a = {calibration['visibility']}, b = {calibration['map_confidence']}, c = "
        f"{calibration['log_peak']}, d = {calibration['log_spread']}, e = "
        f"{calibration['log_scale']}"
    )
    if "person_visibility" not in calibration:  # a record before the person terms
        return (
            f"{own} + bias_joint)` (spread and torso length in normalised crop units, the torso "
            f"of the prediction) with {values}; biases: {biases}."
        )
    return (
        f"{own} + f * mean visibility + g * mean logit(map confidence) + h * mean log(map peak) "
        "+ i * mean log(map spread) + bias_joint)` (spread and torso length in normalised crop "
        "units, the torso of the prediction; the means over the person's joints) with "
        f"{values}, f = {calibration['person_visibility']}, g = "
        f"{calibration['person_map_confidence']}, h = {calibration['person_log_peak']}, i = "
        f"{calibration['person_log_spread']}; biases: {biases}."
    )


def _search_formula(search: dict[str, Any] | None) -> str:
    """The card's sentence on the search score's fit (``calibration.json``'s
    ``search_calibration``), empty without one."""
    if not search:
        return ""
    return (
        " The whole-photo search picks the joints it crops around by a fit of its own on the "
        "first three terms only, no spread, torso or person terms (a person small in the whole "
        "image keeps their joints): a = "
        f"{search['visibility']}, b = {search['map_confidence']}, c = {search['log_peak']}."
    )


def _interval(record: dict[str, Any], key: str) -> str:
    """`` (low-high)`` of a 95% interval the record has, else nothing."""
    if not record.get(key):
        return ""
    low, high = record[key]
    return f" ({low}-{high})"


DECODE_JSON = REPO / "docs" / "results" / "decode_choice.json"


def _decode_line(r: dict[str, Any]) -> str:
    """How the shipped file reads coordinates, and the validation scores that chose it
    (``scripts/choose_decode.py``'s record, when it names this decode)."""
    model = r["recipe"]["model"]
    if model.get("coords", "dsnt") != "local":
        return ""
    radius = model.get("local_radius")
    line = (
        f" Coordinates are read by local DSNT: the expectation inside a {2 * radius + 1} x "
        f"{2 * radius + 1}-cell window around each map's arg-max (`dsntpose.ops.local_dsnt`), "
        "not over the whole map, whose mean falls between two peaks"
    )
    if DECODE_JSON.is_file():
        choice = json.loads(DECODE_JSON.read_text())
        if choice.get("chosen") == {"coords": "local", "local_radius": radius}:
            scores = ", ".join(f"{k} {v}" for k, v in choice["pck20"].items())
            line += (
                f"; chosen by `scripts/choose_decode.py` on the validation split "
                f"({choice['split']}; PCK@0.2: {scores})"
            )
    return line + "."


WHOLE_VALIDATION_JSON = REPO / "docs" / "results" / "whole_validation.json"


FIT_GAP_JSON = REPO / "docs" / "results" / "fit_gap.json"


def _record_of_this_file(path: Path, r: dict[str, Any]) -> dict[str, Any] | None:
    """The JSON record at ``path`` when it measured this very file (matched by sha256), else
    None."""
    if not path.is_file():
        return None
    record: dict[str, Any] = json.loads(path.read_text())
    if not r.get("weights_sha256") or record.get("sha256") != r["weights_sha256"]:
        return None
    return record


def _whole_validation_record(r: dict[str, Any]) -> dict[str, Any] | None:
    """``scripts/whole_validation.py``'s record when it measured this very file."""
    return _record_of_this_file(WHOLE_VALIDATION_JSON, r)


def _fit_gap(r: dict[str, Any]) -> str:
    """``"; on a draw of its own training people ..."`` from ``scripts/fit_gap.py``'s record
    of this file (training against held-out PCK@0.2, per source); empty without one."""
    record = _record_of_this_file(FIT_GAP_JSON, r)
    if record is None:
        return ""
    seen, held = record["training"], record["held_out"]
    names = {"lsp": "LSP", "lspet": "LSP-extended", "mpii_crops": "MPII crops"}
    per = ", ".join(
        f"{names.get(k, k)} {seen[k]['pck20']} / {held[k]['pck20']}"
        for k in held
        if k != "all" and k in seen
    )
    return (
        f"; on a draw of {seen['all']['people']} of its own training people it scores "
        f"{seen['all']['pck20']} against {held['all']['pck20']} on the held-out ones (box crops, "
        f"flip; training / held-out per source: {per}; `scripts/fit_gap.py`)"
        + (
            ", so it falls short on the people it trained on too"
            if seen["all"]["pck20"] < 90
            else ""
        )
    )


def _whole_validation_lines(r: dict[str, Any]) -> list[str]:
    """The whole-photo figures on held-out people (``scripts/whole_validation.py``'s record,
    when it measured this very file), as card lines; none otherwise."""
    record = _whole_validation_record(r)
    if record is None:
        return []
    lines = [
        f"Whole photo on held-out people (`scripts/whole_validation.py`, {record['split']}):",
        "",
        "| Predictor | PCK@0.2 limbs | per source | person found | network runs per image "
        "| backgrounds with a person |",
        "|---|---|---|---|---|---|",
    ]
    for row in record["rows"]:
        setting = ", ".join(f"{k}={v}" for k, v in row["setting"].items()) or "defaults"
        sources = ", ".join(f"{k} {v}" for k, v in row["per_source"].items())
        background = (
            f"{row['background_person_found']} of {row['backgrounds']}"
            if row.get("backgrounds")
            else "-"
        )
        lines.append(
            f"| {setting} | {row['pck20_limbs']} | {sources} "
            f"| {row['person_found']} of {record['people']} "
            f"| {row['crops_per_image']} | {background} |"
        )
        close = row.get("closeups")
        if close:
            lines.append(
                f"| {setting}, upper-body close-ups | {close['pck20_limbs']} (joints in the "
                f"crop) | {', '.join(f'{k} {v}' for k, v in close['per_source'].items())} "
                f"| {close['person_found']} of {close['people']} | {close['crops_per_image']} "
                "| - |"
            )
    first = record["rows"][0] if record["rows"] else {}
    if first.get("background_person_found") and WHOLE_VALIDATION_JSON.with_suffix(".png").is_file():
        lines += [
            "",
            "The background squares the first row reports a person on (labelled with their "
            "index in the split; the negatives are regions away from the *annotated* people of "
            "their frames, so look for people nobody annotated):",
            "",
            f"![backgrounds reported as a person](results/{WHOLE_VALIDATION_JSON.stem}.png)",
        ]
    return [*lines, ""]


def _search_cost(r: dict[str, Any]) -> str:
    """``", while on ... the search costs X points"`` from the whole-photo validation record of
    this file (its default row against the row given the box); empty without one."""
    record = _whole_validation_record(r)
    if record is None:
        return ""
    rows = {json.dumps(row["setting"], sort_keys=True): row for row in record["rows"]}
    whole = rows.get(json.dumps({"flip": True}))
    box = rows.get(json.dumps({"box": True, "flip": True}, sort_keys=True))
    if whole is None or box is None:
        return ""
    return (
        f", while on the {record['people']} held-out photos of its run (most of them "
        "LSP-extended: several people in a frame, inverted poses) the search costs "
        f"{box['pck20_limbs'] - whole['pck20_limbs']:.1f} points ({whole['pck20_limbs']} on the "
        f"limbs against {box['pck20_limbs']} given the labelled joints' box)"
    )


def _latency_line(lat: dict[str, Any]) -> str:
    """``whole-photo Predictor call X ms (Y with flip), median over N LSP test images ...``;
    records from before the per-image timing name their one image."""
    if "images" not in lat:
        return (
            f"whole-photo Predictor call {lat['whole_photo_predictor']} ms "
            f"({lat['whole_photo_predictor_flip']} ms with flip) on one LSP test image"
        )
    low, high = lat["whole_photo_predictor_range"]
    final = (
        f", {lat['whole_photo_predictor_flip_final']} ms with flip on the final crop only "
        '(`flip_passes="final"`)'
        if "whole_photo_predictor_flip_final" in lat
        else ""
    )
    return (
        f"whole-photo Predictor call ({lat['engine']}) {lat['whole_photo_predictor']} ms "
        f"({lat['whole_photo_predictor_flip']} ms with flip{final}), median over the first "
        f"{lat['images']} LSP test images ({low}-{high} ms without flip)"
    )


def update_readme(r: dict[str, Any]) -> None:
    """Replace the README's block between the ``whole`` markers with :func:`readme_block`."""
    text = README.read_text()
    start, end = MARKERS
    if start not in text or end not in text:
        raise ValueError(f"{README}: no {start} ... {end} block to fill")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    README.write_text(f"{head}{start}\n{readme_block(r)}\n{end}{tail}")


def render(r: dict[str, Any]) -> str:
    """The model card (markdown) from its JSON record."""
    w, m, c, lat, t = (
        r["lsp_test_whole_photo_flip"],
        r["mpii_frames_pckh50_flip"],
        r["calibration"],
        r["latency_ms"],
        r["training"],
    )
    interval = f" (95% interval {m['interval'][0]}-{m['interval'][1]})" if m.get("interval") else ""
    lines = [
        f"# Model card: `{r['name']}` (whole-photo pose, MPII's 16 joints)",
        "",
        "Written by `scripts/ship_whole.py` from the run's checkpoint; every figure below is "
        f"measured on that shipped file ({r['weights_file']}, {r['size_mb']} MB half precision) "
        f"on {r['machine']['cpu']}, {r['machine']['threads']} thread(s), torch {r['machine']['torch']}, "
        f"{r['date']}.",
        "",
        "## What it is",
        "",
        f"{r['model']} ({r['params_m']}M parameters), {r['input_size']} px crops, "
        f"{r['heatmap_size']} px maps, DSNT + JS, with a person-presence score and per-joint "
        "visibility (small heads beside the maps, `model.presence`). Given a photo and no box it "
        "finds the one person itself: a pass on the whole image, then passes on the square "
        "around the joints it found, until the square settles; it reports nobody when the "
        "presence score is below 0.5. Joint confidence is calibrated on held-out people."
        + _decode_line(r),
        "",
        "## Data and training",
        "",
        r["data"] + ".",
        "",
        f"Recipe: `{r['recipe']['train'].get('init_from') or 'ImageNet'}` start, "
        f"{r['recipe']['optim']['optimizer']} {r['recipe']['optim']['lr']} "
        f"{r['recipe']['optim']['schedule']}, batch {r['recipe']['data']['batch_size']}, "
        f"{r['recipe']['train']['epochs']} epochs planned; framing: whole image "
        f"{r['recipe']['data']['whole_prob']}, loose crop {r['recipe']['data']['loose_prob']}, "
        f"close-up {r['recipe']['data'].get('tight_prob', 0.0)}; "
        f"negatives {r['recipe']['data']['negatives']} per person. This model: "
        + _this_model(r)
        + (f", {t['wall_minutes']} min of wall clock" if "wall_minutes" in t else "")
        + (
            f"; validation PCK@0.2 by epoch {t.get('val_pck_by_epoch')}"
            if t.get("val_pck_by_epoch")
            else ""
        )
        + ".",
        "",
        "## Accuracy",
        "",
        "| test | protocol | score |",
        "|---|---|---|",
        f"| LSP test, whole photo (no box), flip | PCK@0.2, 12 limb joints | **{w['pck20_limbs_12']}** |",
        f"| LSP test, whole photo (no box), flip | PCK@0.2, all 14 joints | {w['pck20_all_14']} (person found in {w['person_found']} of {w['images']}) |",
        f"| LSP test, annotation box | PCK@0.2, 14 joints | {r['lsp_test_box_pck20']}, {r['lsp_test_box_pck20_flip']} with flip |",
        f"| MPII validation frames ({m['people']} people), flip | PCKh@0.5 Total | **{m['total']}**{interval} |",
        "",
        "MPII groups: " + ", ".join(f"{k} {v}" for k, v in m["groups"].items()) + ".",
        "",
        *_whole_validation_lines(r),
        "Per joint, LSP test, box, flip: "
        + ", ".join(f"{k} {v}" for k, v in r["lsp_test_box_per_joint_flip"].items())
        + ".",
        "",
        "## Presence and confidence",
        "",
        f"On the held-out validation split ({c['split']}): presence AUROC (person crops against "
        f"background crops) **{c['presence_auroc']}**; joint confidence as a predictor of "
        f'"within PCK@0.2", with the flip test (the Predictor\'s default): AUROC '
        f"**{c['joint_auroc_flip']}**, expected calibration error "
        f"**{c['joint_ece_flip']}**{_interval(c, 'joint_ece_flip_interval')}; without flip "
        f"AUROC {c['joint_auroc']}, ECE {c['joint_ece']}{_interval(c, 'joint_ece_interval')}; "
        f"before calibration {c.get('joint_ece_before_flip', c['joint_ece_before'])}. "
        + _calibration_formula(c["calibration"])
        + _search_formula(c.get("search_calibration")),
        "",
        "![reliability](images/calibration.png)",
        "",
        "## Latency (batch 1)",
        "",
        f"{_latency_line(lat)[0].upper()}{_latency_line(lat)[1:]} (all passes, crop warps, "
        "back-projection; 1 to 3 passes per image, as the crop settles); the network alone on "
        f"torch eager {lat.get('network_batch1_torch', lat.get('network_batch1'))} ms per crop "
        f"(median of {lat['rounds']}).",
        "",
        "The same-run comparison with MoveNet and MediaPipe is `benchmarks/peers.py` "
        "([results](results/peers.md)).",
    ]
    lines += ["", *targets_section(r, _peers_record())]
    if r.get("note"):
        lines += ["", "## Notes", "", r["note"]]
    return "\n".join(lines) + "\n"


PEERS_JSON = REPO / "docs" / "results" / "peers.json"


def _peers_record() -> dict[str, Any] | None:
    return json.loads(PEERS_JSON.read_text()) if PEERS_JSON.is_file() else None


def training_runs(run_dirs: list[Path], prior: Path | None = None) -> list[dict[str, Any]]:
    """Per run folder (in order): its ``training_facts`` from ``last.ckpt`` and its metrics,
    after the ``training_runs`` recorded in ``prior`` (a JSON file, e.g. an earlier card's)."""
    sys.path.insert(0, str(REPO / "scripts"))
    from ship_model import training_facts

    out = []
    if prior is not None:
        try:
            runs = json.loads(Path(prior).read_text())["training_runs"]
            if not isinstance(runs, list) or not all("global_step" in r for r in runs):
                raise ValueError("not a list of runs with global_step")
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise SystemExit(
                f"ship_whole: --prior_runs {prior}: no training_runs there ({e})"
            ) from None
        out += runs
    for run_dir in run_dirs:
        last = Path(run_dir) / "last.ckpt"
        if not last.is_file():
            raise SystemExit(f"ship_whole: --run_dir {run_dir}: no last.ckpt there")
        out.append({"run_dir": str(run_dir), **training_facts(last)})
    return out


def _same_run_peers(r: dict[str, Any], peers: dict[str, Any] | None) -> dict[str, Any] | None:
    """From benchmarks/peers.py's JSON, when it ran this shipped file (``--also``): our whole
    photo rows (flip, no flip) and the peers', LSP visible limb joints and median latency."""
    if peers is None:
        return None

    def same_file(entry: dict[str, Any]) -> bool:  # by content where both record it
        if entry.get("sha256") and r.get("weights_sha256"):
            return bool(entry["sha256"] == r["weights_sha256"])
        return bool(entry.get("checkpoint") == r["weights_file"])

    key = next((a["key"] for a in peers.get("also", []) if same_file(a)), None)
    if key is None:
        return None
    rows = {
        "ours_flip": f"{key}_whole",
        "ours_flip_final": f"{key}_whole_flipfinal",
        "ours": f"{key}_whole_noflip",
    }
    rows.update({k: k for k in ("mediapipe", "movenet_lightning", "movenet_thunder")})
    lat = peers["latency"]["results"]
    out = {
        name: (peers["lsp"][k]["visible"]["total"], lat[k]["median_ms"])
        for name, k in rows.items()
        if k in peers["lsp"] and k in lat
    }
    out["confidence"] = {  # each model's own per-joint score, LSP test (peers.py)
        name: peers["lsp"][k]["confidence"]
        for name, k in rows.items()
        if k in peers["lsp"] and peers["lsp"][k].get("confidence", {}).get("auroc") is not None
    }
    out["date"] = peers["date"][:10]
    out["engine"] = next(
        (c.get("how", "") for c in peers["contenders"].values() if "engine=" in c.get("how", "")),
        "",
    )
    return out


PEER_SCORE_NAMES = {
    "ours_flip": "ours (flip)",
    "ours_flip_final": "ours (flip of the final crop)",
    "ours": "ours (no flip)",
    "mediapipe": "MediaPipe's visibility",
    "movenet_lightning": "Lightning's keypoint score",
    "movenet_thunder": "Thunder's",
}


def _confidence_beside_peers(same: dict[str, Any] | None, figure: str = "auroc") -> str:
    """``; each model's own score on LSP test ...``: each model's per-joint score as a
    predictor of "within PCK@0.2" in the same benchmarks/peers.py run, its ``figure``
    (``"auroc"``, or ``"ece"`` with the mean score against the fraction right, which says
    whether a score is over- or under-confident there); empty when the run has none."""
    scores = {k: v for k, v in ((same or {}).get("confidence") or {}).items() if figure in v}
    if not scores:
        return ""
    parts = []
    for key, v in scores.items():
        text = f"{PEER_SCORE_NAMES.get(key, key)} {v[figure]:.3f}"
        if figure == "ece" and key == "ours_flip" and "mean_score" in v and "right_pct" in v:
            side = "under" if v["mean_score"] < v["right_pct"] / 100 else "over"
            text += (
                f" (mean score {v['mean_score']:.3f} where {v['right_pct']:.1f}% are right: "
                f"{side}-confident on this set)"
            )
        parts.append(text)
    return (
        "; each model's own score on LSP test, whole photo (`benchmarks/peers.py`): "
        + ", ".join(parts)
    )


def targets_section(r: dict[str, Any], peers: dict[str, Any] | None) -> list[str]:
    """The issue's targets against this model's figures (the peers from one benchmarks/peers.py
    run that included this file), the training cost, and what would close the rest."""
    w, m, c = r["lsp_test_whole_photo_flip"], r["mpii_frames_pckh50_flip"], r["calibration"]
    same = _same_run_peers(r, peers)

    def verdict(ok: bool) -> str:
        return "**met**" if ok else "**missed**"

    lines = ["## Targets", "", "| target | measured | |", "|---|---|---|"]
    if same and "ours_flip" in same and "movenet_lightning" in same:
        light, light_ms = same["movenet_lightning"]
        settings = [  # (label, PCK, ms) of each whole-photo setting the run measured
            (label, *same[key])
            for key, label in (
                ("ours_flip", "with flip"),
                ("ours_flip_final", "with flip of the final crop"),
                ("ours", "without flip"),
            )
            if key in same
        ]
        faster = [s for s in settings if s[2] < light_ms]
        best = max(faster, key=lambda s: s[1]) if faster else None
        ours = max(s[1] for s in settings)
        measured = ", ".join(f"{pck:.1f} {label} ({ms:.0f} ms)" for label, pck, ms in settings)
        if best is None:
            note = "no setting of ours ran faster than Lightning"
        else:
            note = f"faster than Lightning: at best {best[1]:.1f} {best[0]}"
        lines.append(
            f"| whole photo, LSP test, 12 limb joints (visible): at least MoveNet Lightning's, "
            f"at a lower batch-1 latency (`benchmarks/peers.py`, {same['date']}) | ours "
            f"{measured}; Lightning {light:.1f} ({light_ms:.0f} ms) | "
            f"{verdict(best is not None and best[1] >= light)} ({note}) |"
        )
        if "mediapipe" in same:
            mp, mp_ms = same["mediapipe"]
            lines.append(
                f"| at the very least above MediaPipe BlazePose's | {ours:.1f} "
                f"against {mp:.1f} ({mp_ms:.0f} ms) | {verdict(ours > mp)} |"
            )
    else:
        lines.append(
            "| whole photo against MoveNet and MediaPipe | the last `benchmarks/peers.py` run "
            "did not include this file | - |"
        )
    ece, ece_high = (
        c["joint_ece_flip"],
        (c.get("joint_ece_flip_interval") or [c["joint_ece_flip"]] * 2)[1],
    )
    interval = m.get("interval") or [m["total"]] * 2
    lines += [
        f"| MPII validation frames, PCKh@0.5 Total, at least 85 | {m['total']} "
        f"({interval[0]}-{interval[1]}) | {verdict(m['total'] >= 85)} |",
        f"| presence AUROC at least 0.95 | {c['presence_auroc']} | "
        f"{verdict(c['presence_auroc'] >= 0.95)} |",
        f"| joint confidence AUROC of within PCK@0.2 at least 0.85 (flip) | "
        f"{c['joint_auroc_flip']} on held-out people{_confidence_beside_peers(same)} | "
        f"{verdict(c['joint_auroc_flip'] >= 0.85)} |",
        f"| expected calibration error at most 0.05 (flip) | {ece}"
        f"{_interval(c, 'joint_ece_flip_interval')} on held-out people"
        f"{_confidence_beside_peers(same, 'ece')} | {verdict(ece <= 0.05)}"
        + (" (its interval reaches above 0.05)" if ece <= 0.05 < ece_high else "")
        + " |",
    ]
    runs = r.get("training_runs") or []
    if runs:
        steps = sum(t["global_step"] for t in runs)
        minutes = sum(t.get("wall_minutes", 0.0) for t in runs)
        compute = sum(t.get("train_minutes_at_median_speed", 0.0) for t in runs)
        batch = r["recipe"]["data"]["batch_size"]
        speed = runs[-1].get("train_images_per_s_median", 0.0)
        # epochs each run validated (its curve), else its plan
        per_run = [
            len(t.get("val_pck_by_epoch") or []) or int(r["recipe"]["train"]["epochs"])
            for t in runs
        ]
        epochs = " + ".join(map(str, per_run))
        per_epoch = runs[-1]["global_step"] * batch / max(runs[-1].get("epoch", 1) - 1, 1)
        curve = "; ".join(str(t.get("val_pck_by_epoch")) for t in runs)
        lines += [
            "",
            "## Training cost, and what would close the rest",
            "",
            f"This file's training: {steps} steps of batch {batch} in {len(runs)} run(s) "
            f"(after the start it names), {minutes / 60:.1f} h of wall clock from each run "
            f"folder's first file to its last checkpoint ({compute / 60:.1f} h at the median "
            "logged speed), one or two threads of a 2-core CPU machine, often shared with other work "
            f"(this file measured on {r['machine']['cpu']}; earlier runs may have had another "
            f"machine); validation PCK@0.2 by epoch {curve}.",
            "",
            f"Where the gap is: on LSP test the whole photo scores {w['pck20_all_14']} over all "
            f"14 joints against {r['lsp_test_box_pck20_flip']} given the annotation box, so "
            "finding the person costs next to nothing there"
            + _search_cost(r)
            + "; the gap to the peers is the network's accuracy on a well-framed crop"
            + _fit_gap(r)
            + ". What "
            "would close it, in order: (1) "
            f"training far longer: {epochs} epochs in the runs counted here, the validation curve rising "
            "until the cosine schedule's last epochs; at the last run's median logged "
            f"{speed} images/s one epoch ({per_epoch:.0f} samples) takes "
            f"{per_epoch / max(speed, 1e-9) / 60:.0f} min on this thread, so the paper's 120 "
            f"epochs would take {120 * per_epoch / max(speed, 1e-9) / 86400:.1f} days of it; "
            "(2) more and more varied people: 12,000 here "
            "(LSP, LSP-extended, 2,074 of MPII's 25,000 training people; COCO's 150,000 are "
            "not here), where MoveNet and BlazePose train on their authors' larger sets; (3) "
            f"resolution and capacity: {r['input_size']} px crops and {r['heatmap_size']} px "
            "maps from EfficientNet-Lite0, where MoveNet Thunder reads 256 px and the paper's "
            "best DSNT model used 28 px maps from a ResNet; each step up costs training time "
            "this machine does not have ([short proxies](results/whole_proxies.md) of input "
            "size, output stride and the upsampling decoder measure each). The long run is prepared for a lent GPU "
            "(`scripts/gpu_pack.py`, `scripts/gpu_long_run.sh`: the data in parts that travel, "
            "epochs sized to the minutes given); none has been lent to this work yet.",
        ]
    return lines


if __name__ == "__main__":
    raise SystemExit(main())
