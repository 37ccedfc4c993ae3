"""The paper's table on real MPII frames: our models beside the published methods.

Scores every model given (the shipped model by default, plus any checkpoints named on the
command line) on the MPII validation people whose frames are in ``--root/images`` (264 of
the 2958 with ../shared/data/mpii) by the official protocol (:func:`dsntpose.inference.
evaluate_mpii_frames`: valid.h5's crop, back-projection to the frame, PCKh@0.5 against
``detections_our_format.mat``, LSP models mapped to MPII's joints by name, flip test), and the
published prediction files on the same people (:func:`dsntpose.mpii_files.score_predictions`),
each with 95% percentile-bootstrap intervals over people (2000 resamples, seed 0). Batch-1
latency (with the flip test, the paper's way: the image and its mirror in one batch of 2) and
peak inference memory are measured here in one run, each model alone in a fresh process at
one thread (``dsntpose.bench.measure_model``); the published methods' networks are stood in
for by dsntpose's own stacked hourglass at 256 px with a heatmap head (Tompson et al.'s network
is not implemented here). The experiment cells whose run folders (checkpoints) are absent
are listed with the training minutes their JSON records give.

Writes ``docs/results/mpii_table.json`` and rewrites the section in ``docs/results.md``
(``experiments/report.py`` renders the same section from the JSON). Rerun with new
checkpoints, e.g. the whole-photo model once it has one:

    python -m experiments.mpii_table /work/runs/whole/best.ckpt=whole-photo
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "docs" / "results"
DOC = REPO / "docs" / "results.md"
JSON_PATH = RESULTS / "mpii_table.json"
DEFAULT_ROOT = REPO.parent / "shared" / "data" / "mpii"
HEADER = "## The paper's table: MPII PCKh@0.5 on real validation frames"
GROUPS = ("Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle")
RESAMPLES, SEED = 2000, 0

# The published prediction files (../shared/data/mpii/reference_preds), in the paper's order,
# with the network that stands in for theirs in the latency and memory columns.
PUBLISHED = (
    ("Tompson et al. 2015", "tompson.h5", None),
    ("Newell et al. 2016, 1-stack hourglass (bearpaw)", "bearpaw-hg_s1_b1.mat", "hourglass-1-heatmap"),
    ("Newell et al. 2016, 2-stack hourglass (bearpaw)", "bearpaw-hg_s2_b1.mat", "hourglass-2-heatmap"),
    ("Newell et al. 2016, 8-stack hourglass (Newell's)", "newell.h5", "hourglass-8-heatmap"),
    ("Newell et al. 2016, 8-stack hourglass (bearpaw)", "bearpaw-hg_s8_b1.mat", "hourglass-8-heatmap"),
)  # fmt: skip


# ---------------------------------------------------------------------------- measuring


def _worker(source: str, threads: int, repeats: int) -> dict[str, Any]:
    """Latency and peak inference memory of one network, in this (fresh) process."""
    import torch

    from dsntpose import bench
    from dsntpose.checkpoint import load_checkpoint
    from dsntpose.model import model_name

    torch.set_num_threads(threads)
    if source.startswith("bench:"):
        name, cfg = source.removeprefix("bench:"), None
    else:
        _, cfg, _ = load_checkpoint(source)
        name = model_name(cfg)
    row = bench.measure_model(
        name, config=cfg, threads=threads, phases=("infer_memory", "timing"), repeats=repeats,
        warmup=2, throughput_batch=2, throughput_repeats=1,
    )  # fmt: skip
    keep = ("latency_ms", "flip_latency_ms", "infer_peak_mb", "memory_method", "params_m",
            "gmacs", "input_size", "memory_format", "threads", "repeats")  # fmt: skip
    return {k: row.get(k) for k in keep}


def measure(source: str, threads: int, repeats: int) -> dict[str, Any]:
    """:func:`_worker` in a fresh process (so that its memory peak is this model's alone)."""
    command = [sys.executable, "-m", "experiments.mpii_table", "--measure-worker", source]
    command += ["--threads", str(threads), "--repeats", str(repeats)]
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=REPO)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise SystemExit(f"error: measuring {source} failed: {last}")
    return json.loads(lines[-1])


# ---------------------------------------------------------------------------- scoring


def _figures(result: Any) -> dict[str, Any]:
    """Groups, totals, joints and their intervals from a PCKResult (NaN -> None)."""
    d = result.to_dict()
    return {
        "groups": d["groups"],
        "total": d["total"],
        "total_unweighted": d["total_unweighted"],
        "joints": d["joints"],
        "counts": d["counts"],
        "intervals": d["intervals"],
    }


def score_model(checkpoint: str, label: str, root: Path, shipped: bool) -> dict[str, Any]:
    from dsntpose.inference import evaluate_checkpoint

    t0 = time.perf_counter()
    ev = evaluate_checkpoint(
        checkpoint, data={"dataset": "mpii", "root": str(root)}, flip=True, num_draw=0
    )
    m, d = ev.run.model, ev.run.data
    return {
        "label": label,
        "checkpoint": "shipped model lsp_efficientnet_lite0" if shipped else str(checkpoint),
        "model": {
            "backbone": m.backbone,
            "output_stride": m.output_stride,
            "head": m.head,
            "joints": m.joints,
            "input_size": m.input_size,
            "heatmap_size": m.heatmap_size,
        },
        "trained_on": d.dataset,
        "joints_scored": list(ev.joints_scored or ()),
        "people": len(ev.people.rows),
        "people_how": ev.people.describe(),
        "ground_truth": Path(str(ev.ground_truth)).name,
        "flip_test": True,
        "eval_seconds": round(time.perf_counter() - t0, 1),
        **_figures(ev.result),
    }


def score_published(root: Path) -> list[dict[str, Any]]:
    from dsntpose.mpii_files import score_predictions

    rows = []
    for label, name, _ in PUBLISHED:
        result, people = score_predictions(
            root / "reference_preds" / name, root / "detections_our_format.mat",
            image_root=root / "images", valid_h5=root / "valid.h5", bootstrap=RESAMPLES,
            seed=SEED,
        )  # fmt: skip
        rows.append(
            {
                "label": label,
                "file": name,
                "people": len(people.rows),
                "people_how": people.describe(),
                **_figures(result),
            }
        )
    return rows


def missing_cells(runs_dir: Path) -> list[dict[str, Any]]:
    """Every experiment cell with a JSON record in docs/results/ whose run folder holds no
    checkpoint, with its training minutes (the record's ``train_seconds``). A cell that is
    the same run as another (``same_run_as: sweep/cell``) looks in that run's folder."""
    out = []
    for path in sorted(RESULTS.glob("*/*.json")):
        rec = json.loads(path.read_text())
        if "cell" not in rec or "sweep" not in rec:
            continue
        folder = runs_dir / rec.get("same_run_as", f"{rec['sweep']}/{rec['cell']}")
        if (folder / "last.ckpt").is_file():
            continue
        cfg = rec.get("config", {})
        out.append(
            {
                "sweep": rec["sweep"],
                "cell": rec["cell"],
                "minutes": round(float(rec.get("train_seconds", math.nan)) / 60, 1),
                "joints": cfg.get("model", {}).get("joints"),
                "machine": rec.get("machine"),
            }
        )
    return out


# ---------------------------------------------------------------------------- the section


def _num(v: float | None, digits: int = 1) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def _ci(point: float | None, bounds: list[float | None] | None) -> str:
    if point is None:
        return "–"
    if not bounds or bounds[0] is None:
        return _num(point)
    return f"{point:.1f} ({bounds[0]:.1f}-{bounds[1]:.1f})"


def _scored(row: dict[str, Any]) -> str:
    joints = row.get("joints_scored")
    if joints is None or len(joints) == 16:
        return "all 16"
    left = [n for n in row["joints"] if n not in joints]
    return f"{len(joints)} (no {', '.join(left)}; neck as upper_neck)"


def _cost(m: dict[str, Any] | None) -> tuple[str, str]:
    if not m:
        return "–", "–"
    return _num(m.get("flip_latency_ms")), _num(m.get("infer_peak_mb"), 0)


def section(lines: list[str], doc: dict[str, Any] | None = None) -> None:
    """The MPII section of docs/results.md, from ``doc`` (default: the JSON written last);
    nothing when there is none."""
    if doc is None:
        if not JSON_PATH.is_file():
            return
        doc = json.loads(JSON_PATH.read_text())
    ours, published = doc["models"], doc["published"]
    n = published[0]["people"] if published else ours[0]["people"]
    meta = doc["meta"]
    lines += [
        HEADER,
        "",
        f"Generated by `{meta['command']}` ({meta['date']}). The paper's metric on the paper's "
        f"data: {n} of the 2958 standard MPII validation people, those whose frames are in "
        "`../shared/data/mpii/images` (the full image set is not available here), scored by "
        "the official protocol: the crop from the annotated centre and scale (valid.h5), "
        "predictions back-projected to the frame, PCKh@0.5 against the official joints and "
        "head boxes of `detections_our_format.mat`. Total: count-weighted over the 14 joints "
        'other than pelvis and thorax (HRNet\'s "Mean"). In brackets: 95% percentile-bootstrap '
        f"intervals over people ({RESAMPLES} resamples, seed {SEED}): on {n} people they span a "
        "few points, so differences smaller than that are not resolved. Our models run with the "
        "flip test; LSP-joint models are scored on MPII's joints by name (LSP's neck is MPII's "
        "upper_neck; they have no pelvis or thorax, which the Total leaves out anyway). The "
        "published methods' figures are their own prediction files on the same people.",
        "",
        "| model | joints scored | " + " | ".join(GROUPS) + " | Total | batch-1 ms (flip) | "
        "peak MiB |",
        "|---|---|" + "---|" * len(GROUPS) + "---|---|---|",
    ]
    for row in ours:
        ms, mib = _cost(row.get("efficiency"))
        cells = [_ci(row["groups"][g], row["intervals"]["groups"][g]) for g in GROUPS]
        m = row["model"]
        label = (
            f"{row['label']} ({m['backbone']}, {m['head']}, {m['input_size']} px, "
            f"{m['heatmap_size']} px maps, trained on {row['trained_on']})"
        )
        lines.append(
            f"| {label} | {_scored(row)} | " + " | ".join(cells)
            + f" | **{_ci(row['total'], row['intervals']['total'])}** | {ms} | {mib} |"
        )  # fmt: skip
    for row in published:
        ms, mib = _cost(row.get("efficiency"))
        cells = [_ci(row["groups"][g], row["intervals"]["groups"][g]) for g in GROUPS]
        stand_in = f" [cost: {row['stand_in']}]" if row.get("stand_in") else ""
        lines.append(
            f"| {row['label']}{stand_in} | all 16 | " + " | ".join(cells)
            + f" | **{_ci(row['total'], row['intervals']['total'])}** | {ms} | {mib} |"
        )  # fmt: skip
    eff = meta.get("efficiency", {})
    lines += [
        "",
        f"Cost columns: measured in one run on this machine ({eff.get('machine', '?')}, "
        f"{eff.get('threads', 1)} thread, every network alone in a fresh process; "
        + (
            f"1-minute load average {eff['load_average'][0]} at the start and "
            f"{eff['load_average'][1]} at the end on {eff.get('cores')} cores, so the times "
            "compare within this table, not with a quiet machine"
            if eff.get("load_average")
            else "other work running beside it on the second core"
        )
        + "): median time of one flip-test forward (the "
        "image and its mirror as a batch of 2, the paper's way of timing; decoding not "
        "included) and the peak memory growth of that forward (`dsntpose.bench.measure_model`: "
        f"{eff.get('memory_method', 'peak RSS growth')}). The published methods' cost is that "
        "of dsntpose's own stacked hourglass of their depth at 256 px with a heatmap head "
        "(random weights: time and memory do not depend on them); Tompson et al.'s network is "
        "not implemented here.",
        "",
        "Per joint (PCKh@0.5, %, 95% interval):",
        "",
    ]
    names = list(ours[0]["joints"]) if ours else list(published[0]["joints"])
    heads = [r["label"] for r in ours] + [r["file"] for r in published]
    lines += [
        "| joint | " + " | ".join(heads) + " |",
        "|---|" + "---|" * len(heads),
    ]
    for j in names:
        cells = [_ci(r["joints"][j], r["intervals"]["joints"][j]) for r in (*ours, *published)]
        lines.append(f"| {j} | " + " | ".join(cells) + " |")
    cells = doc.get("missing_cells", [])
    if cells:
        by_sweep: dict[str, list[str]] = {}
        for c in cells:
            by_sweep.setdefault(c["sweep"], []).append(f"{c['cell']} {_num(c['minutes'])}")
        total = sum(c["minutes"] for c in cells if not math.isnan(c["minutes"]))
        lines += [
            "",
            f"Not in the table: the {len(cells)} experiment cells of `docs/results/` whose run "
            "folders (checkpoints) did not survive onto this machine; each needs retraining "
            f"before it can be scored here, {total:.0f} min in all at the minutes its record "
            "gives (one thread of the 2-core Xeon; the from-scratch cells partly ran in bf16 on "
            "another machine, so their minutes are a guide only). Cell and minutes:",
            "",
        ]
        for sweep, items in by_sweep.items():
            lines.append(f"* {sweep}: " + ", ".join(items))
    lines.append("")


def replace_section(text: str, new: list[str]) -> str:
    """``text`` with its MPII section replaced by ``new`` (inserted before the first
    section after the introduction when absent)."""
    body = "\n".join(new).rstrip("\n") + "\n\n"
    if HEADER in text:
        start = text.index(HEADER)
        end = text.find("\n## ", start + len(HEADER))
        return text[:start] + body + (text[end + 1 :] if end >= 0 else "")
    first = text.index("\n## ") + 1
    return text[:first] + body + text[first:]


# ---------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "checkpoints",
        nargs="*",
        help="more models: CKPT or CKPT=LABEL (the shipped model is always in)",
    )
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="MPII folder")
    parser.add_argument(
        "--runs-dir", type=Path, default=REPO / "runs" / "experiments",
        help="where experiments/run.py keeps the cells' run folders",
    )  # fmt: skip
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=10, help="timed forwards per figure")
    parser.add_argument("--no-measure", action="store_true", help="skip latency and memory")
    parser.add_argument("--measure-worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure_worker:
        print(json.dumps(_worker(args.measure_worker, args.threads, args.repeats)))
        return 0
    import torch

    from dsntpose.checkpoint import LSP_MODEL
    from dsntpose.zoo import pretrained_path

    torch.set_num_threads(args.threads)
    for name in ("valid.h5", "detections_our_format.mat", "images"):
        if not (args.root / name).exists():
            raise SystemExit(f"error: --root {args.root}: no {name}")
    models = [(str(pretrained_path(LSP_MODEL)), f"shipped model {LSP_MODEL}", True)]
    for item in args.checkpoints:
        path, _, label = item.partition("=")
        if not Path(path).is_file():
            raise SystemExit(f"error: checkpoint not found: {path}")
        models.append((path, label or Path(path).parent.name, False))
    ours = []
    for path, label, shipped in models:
        print(f"scoring {label} ...", file=sys.stderr)
        ours.append(score_model(path, label, args.root, shipped))
    published = score_published(args.root)
    eff_meta: dict[str, Any] = {}
    if not args.no_measure:
        load_start = os.getloadavg()[0]
        for (path, label, _), row in zip(models, ours):
            print(f"measuring {label} ...", file=sys.stderr)
            row["efficiency"] = measure(path, args.threads, args.repeats)
        cache: dict[str, dict[str, Any]] = {}
        for (_, _, stand_in), row in zip(PUBLISHED, published):
            if stand_in is None:
                continue
            if stand_in not in cache:
                print(f"measuring {stand_in} ...", file=sys.stderr)
                cache[stand_in] = measure(f"bench:{stand_in}", args.threads, args.repeats)
            row["stand_in"] = f"{stand_in}, 256 px"
            row["efficiency"] = cache[stand_in]
        from dsntpose.bench_report import cpu_name

        cpu = cpu_name()
        first = ours[0]["efficiency"]
        eff_meta = {"machine": cpu, "threads": args.threads, "repeats": args.repeats,
                    "memory_method": first.get("memory_method"), "cores": os.cpu_count(),
                    "load_average": [round(load_start, 2), round(os.getloadavg()[0], 2)]}  # fmt: skip
    given = " ".join(shlex.quote(c) for c in args.checkpoints)
    doc = {
        "meta": {
            "command": "python -m experiments.mpii_table" + (f" {given}" if given else ""),
            "date": time.strftime("%Y-%m-%d"),
            "protocol": "PCKh@0.5, official detections_our_format.mat, valid.h5 crops, flip "
            "test for our models; Total count-weighted over the 14 joints other than pelvis "
            "and thorax",
            "bootstrap": {
                "resamples": RESAMPLES,
                "seed": SEED,
                "level": 0.95,
                "method": "percentile, people resampled",
            },
            "efficiency": eff_meta,
        },
        "models": ours,
        "published": published,
        "missing_cells": missing_cells(args.runs_dir),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    JSON_PATH.write_text(json.dumps(doc, indent=1) + "\n")
    lines: list[str] = []
    section(lines, doc)
    DOC.write_text(replace_section(DOC.read_text(), lines))
    print(f"wrote {JSON_PATH} and the section of {DOC}")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
