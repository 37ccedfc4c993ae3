"""Run the paper's ablations on LSP as sweeps that survive being stopped.

    python -m experiments.run a [c b e d] [--data_root DIR] [--runs_dir DIR] [--only CELL] [--list]
    python -m experiments.run pa pb pc pf --score_mpii   # MPII PCKh of finished, kept cells
    python -m experiments.run pa pf --retrain_unscored   # run again cells with no checkpoint

Each sweep is a YAML file in ``experiments/sweeps/`` (``a`` picks ``a_strategy.yaml``): a
``grid`` of named axes whose values are partial run configs merged over
``experiments/base_lsp.yaml`` (and the sweep's ``fixed`` part), times ``seeds``. Each finished
cell writes ``docs/results/<sweep>/<cell>.json`` (its full config, PCK@0.2 and @0.1 per group,
the PCK curve, training time and, where ``--mpii_root`` holds MPII frames, its MPII PCKh@0.5
with a bootstrap interval as the second score) and the sweep's ``docs/results/<sweep>.csv`` is rebuilt from
those files. A cell whose JSON exists is skipped; an unfinished cell resumes from the last
checkpoint in its run folder (Lightning's ``last.ckpt``, saved every ``train.ckpt_every``
steps), so the command can be stopped and restarted at any time without losing finished runs.
Start it once per core (each with ``OMP_NUM_THREADS=1``): a process locks the cell it runs and
the others pass that cell by, so side-by-side processes share the sweeps without overlap.

Reported numbers are those of the *last* checkpoint on the LSP test set (images 1001-2000):
LSP has no separate validation split, so choosing the best epoch on it would select on test.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, NoReturn

import lightning as L
import numpy as np
import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = REPO / "docs" / "results"
THRESHOLDS = np.linspace(0.0, 0.5, 51)


def deep_merge(base: Mapping[str, Any], *updates: Mapping[str, Any]) -> dict[str, Any]:
    """Nested dict merge; later updates win, mappings merge key by key."""
    out: dict[str, Any] = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in base.items()}
    for update in updates:
        for key, value in update.items():
            if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
                out[key] = deep_merge(out[key], value)
            else:
                out[key] = value
    return out


def sweep_file(name: str) -> Path:
    """``a`` -> ``sweeps/a_strategy.yaml``; a full stem or path works too."""
    path = Path(name)
    if path.is_file():
        return path
    matches = sorted((HERE / "sweeps").glob(f"{name}*.yaml"))
    if len(matches) != 1:
        known = ", ".join(p.stem for p in sorted((HERE / "sweeps").glob("*.yaml")))
        raise SystemExit(f"error: sweep {name!r} matches {len(matches)} files; sweeps: {known}")
    return matches[0]


def cells(spec: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, str], int, dict[str, Any]]]:
    """Yield ``(cell_id, axis labels, seed, overrides)`` for every cell of a sweep.

    Every grid point runs with each of ``seeds``; then the points named in ``extra_seeds``
    (``{point: [seed, ...]}``, for comparisons whose differences are small) run with those.
    """
    grid: Mapping[str, Mapping[str, Any]] = spec["grid"]
    axes = list(grid)
    skip = set(spec.get("skip", []))
    points = {}
    for labels in itertools.product(*(list(grid[a]) for a in axes)):
        name = "-".join(labels)
        if name not in skip:
            points[name] = labels
    extra: Mapping[str, list[int]] = spec.get("extra_seeds", {})
    unknown = sorted(set(extra) - set(points))
    if unknown:
        raise SystemExit(f"error: extra_seeds names no grid point: {', '.join(unknown)}")
    runs = [(name, seed) for name in points for seed in spec.get("seeds", [0])]
    runs += [(name, seed) for name, seeds in extra.items() for seed in seeds]
    for name, seed in runs:
        labels = points[name]
        overrides = deep_merge(
            spec.get("fixed", {}), *(grid[a][lbl] for a, lbl in zip(axes, labels))
        )
        yield f"{name}-seed{seed}", dict(zip(axes, labels)), int(seed), overrides


def base_values(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The common recipe a sweep names (``base``; default ``base_lsp.yaml``, from scratch)."""
    return yaml.safe_load((HERE / spec.get("base", "base_lsp.yaml")).read_text())


def cell_values(
    base: Mapping[str, Any],
    overrides: Mapping[str, Any],
    seed: int,
    run_dir: str | Path,
    data_root: str,
    lspet_root: str,
) -> dict[str, Any]:
    """A cell's whole run config as nested dicts: the base recipe, the cell's ``overrides``
    (from :func:`cells`), its seed and run folder, and where the data is (LSP-extended only
    for a base that trains on it)."""
    return deep_merge(
        base,
        overrides,
        {"data": {"root": data_root}, "train": {"seed": seed, "out_dir": str(run_dir)}},
        {"data": {"lspet_root": lspet_root}} if base.get("data", {}).get("lspet_root") else {},
    )


def evaluate_test(
    checkpoint: Path, data_root: str, flip_mode: str | None = None, *, flip: bool = False
) -> Any:
    """The checkpoint's :class:`~dsntpose.inference.Evaluation` on the LSP test split
    (images 1001-2000), with the flip test (merging by ``flip_mode`` when given, else the
    head's way) when ``flip`` or ``flip_mode``."""
    from dsntpose.inference import evaluate_checkpoint

    return evaluate_checkpoint(
        checkpoint,
        split="test",
        data={"root": data_root, "lspet_root": None},
        flip=flip or flip_mode is not None,
        flip_mode=flip_mode,  # type: ignore[arg-type]
        num_draw=0,
    )


def pck_at(predictions: Any, threshold: float) -> Any:
    """The LSP PCK table of ``predictions`` (``dsntpose.inference.Predictions``) at
    ``threshold`` torso sizes."""
    from dsntpose.data import LSP_JOINTS
    from dsntpose.evaluate import pck

    p = predictions
    gt = np.where(p.missing[..., None], 0.0, p.gt_px)
    return pck(p.preds_px, gt, p.missing, p.norm_size, threshold=threshold, joint_set=LSP_JOINTS)


def evaluate_cell(checkpoint: Path, data_root: str, flip: bool = False) -> dict[str, Any]:
    """PCK@0.2, PCK@0.1 and the PCK curve of a checkpoint on the LSP test split."""
    from dsntpose.data import LSP_JOINTS
    from dsntpose.evaluate import normalized_distances, pck_curve

    p = evaluate_test(checkpoint, data_root, flip=flip).predictions
    out: dict[str, Any] = {}
    for t in (0.2, 0.1):
        res = pck_at(p, t)
        out[f"pck{int(t * 100)}"] = round(res.total, 3)
        out[f"pck{int(t * 100)}_groups"] = {k: round(v, 3) for k, v in res.groups.items()}
    gt = np.where(p.missing[..., None], 0.0, p.gt_px)
    dist = normalized_distances(p.preds_px, gt, p.norm_size)
    curve = pck_curve(dist, p.missing, THRESHOLDS, LSP_JOINTS.pck_total)
    out["curve"] = {
        "thresholds": THRESHOLDS.round(4).tolist(),
        "total": curve.total.round(3).tolist(),
    }
    out["auc"] = round(float(curve.auc), 3)
    return out


def score_mpii(checkpoint: Path, mpii_root: str | Path) -> dict[str, Any] | None:
    """The cell's second score: MPII PCKh@0.5 on the validation people whose frames are in
    ``mpii_root/images`` (264 of 2958 with ../shared/data/mpii), the official protocol with the
    flip test, LSP models mapped to MPII's joints by name, 95% bootstrap intervals over people
    (2000 resamples, seed 0). None when ``mpii_root`` has no valid.h5 or frames."""
    root = Path(mpii_root)
    if not (root / "valid.h5").is_file() or not (root / "images").is_dir():
        return None
    from dsntpose.inference import evaluate_checkpoint

    ev = evaluate_checkpoint(
        str(checkpoint), data={"dataset": "mpii", "root": str(root)}, flip=True, num_draw=0
    )
    d = ev.result.to_dict()
    return {
        "pckh": round(d["total"], 3),
        "pckh_ci": [round(v, 3) for v in d["intervals"]["total"]],
        "groups": {k: round(v, 3) for k, v in d["groups"].items()},
        "people": ev.people.describe(),
        "joints_scored": list(ev.joints_scored or ()),
        "protocol": "PCKh@0.5, official head boxes (detections_our_format.mat), valid.h5 "
        "crops back-projected, flip test; Total count-weighted over the 14 joints other than "
        "pelvis and thorax",
    }


#: In a run folder: the earlier scores of a cell being run again (``--retrain_unscored``);
#: while it exists the folder's checkpoint is a retrain in progress, not the cell's result.
RETRAIN_MARKER = "retrain.json"


def retrain_target(result_path: Path, run_dir: Path) -> dict[str, Any] | None:
    """For ``--retrain_unscored``: the scores of a finished cell to run again, because its
    record has no MPII score and its checkpoint is gone (it ran before checkpoints were kept);
    None for any other cell (scored, a copy of another sweep's run, or a checkpoint that
    ``--score_mpii`` can still score). The returned figures go into the new record as
    ``earlier_run``, so the report can show both runs of the same recipe and seed."""
    marker = run_dir / RETRAIN_MARKER
    if marker.is_file():  # a retrain that was stopped: resume it
        earlier: dict[str, Any] = json.loads(marker.read_text())
        return earlier
    record = json.loads(result_path.read_text())
    if "mpii" in record or "same_run_as" in record or (run_dir / "last.ckpt").is_file():
        return None
    metrics = record.get("metrics", {})
    return {
        "pck20": metrics.get("pck20"),
        "pck10": metrics.get("pck10"),
        "train_seconds": record.get("train_seconds"),
        "machine": record.get("machine"),
    }


def refresh_copies(source: str, record: Mapping[str, Any]) -> None:
    """Give every record that is a copy of ``source`` (``same_run_as``) the new run's scores,
    so a grid point shared by two sweeps shows one run's numbers in both."""
    for path in sorted(RESULTS.glob("*/*.json")):
        copy = json.loads(path.read_text())
        if copy.get("same_run_as") != source:
            continue
        keep = {k: copy[k] for k in ("sweep", "cell", "axes", "same_run_as")}
        updated = {**record, **keep}
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(updated, indent=1))
        tmp.replace(path)
        write_csv(copy["sweep"])


def backfill_mpii(args: argparse.Namespace) -> int:
    """Score on MPII every finished cell whose record lacks it and whose run folder still
    holds its last.ckpt (cells that are the same run as another take that one's score)."""
    done = 0
    for path in sorted(RESULTS.glob("*/*.json")):
        record = json.loads(path.read_text())
        if "cell" not in record or "mpii" in record:
            continue
        source = record.get("same_run_as", f"{record['sweep']}/{record['cell']}")
        checkpoint = Path(args.runs_dir) / source / "last.ckpt"
        if not checkpoint.is_file() or (checkpoint.parent / RETRAIN_MARKER).is_file():
            continue  # gone, or a retrain in progress (not this record's run)
        twin = RESULTS / f"{source}.json"
        twin_record = json.loads(twin.read_text()) if twin.is_file() else {}
        mpii = twin_record.get("mpii") or score_mpii(checkpoint, args.mpii_root)
        if mpii is None:
            print(f"error: no MPII frames at {args.mpii_root}", file=sys.stderr)
            return 2
        record["mpii"] = mpii
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record, indent=1))
        tmp.replace(path)
        write_csv(record["sweep"])
        done += 1
        print(f"[mpii] {source}: PCKh {mpii['pckh']:.1f} {mpii['pckh_ci']}", flush=True)
    print(f"[mpii] {done} cell(s) scored on MPII", flush=True)
    return 0


# (section, key, default) of config fields added after the first experiment records.
ADDED_FIELDS = (
    ("train", "init_from", None),
    ("train", "max_steps", None),
    ("model", "presence", False),
    ("loss", "presence_weight", 0.1),
    ("loss", "visibility_weight", 0.1),
    ("data", "mpii_crops_root", None),
    ("data", "coco_root", None),
    ("data", "mix_weights", {}),
    ("data", "negatives", 0.0),
    ("data", "whole_prob", 0.0),
    ("data", "loose_prob", 0.0),
    ("data", "loose_scale", 1.0),
    ("data", "shift", 0.0),
    ("data", "tight_prob", 0.0),
    ("data", "tight_scale", 1.0),
)


def config_hash(values: Mapping[str, Any]) -> str:
    """A hash of everything that decides a run's result (not where it writes or logs)."""
    import hashlib

    core = deep_merge(
        values,
        {
            "train": {"out_dir": None, "progress_bar": None},
            # where the data lives is not part of the recipe (a checkout elsewhere must find
            # the same twins); which data is, through data.dataset and the split fields
            "data": {"root": None, "image_root": None, "lspet_root": None},
        },
    )
    core["data"]["lspet"] = bool(values.get("data", {}).get("lspet_root"))
    # fields added after the first records: at their defaults they leave those hashes as they were
    for section, key, default in ADDED_FIELDS:
        if section in core and core[section].get(key, default) == default:
            core[section].pop(key, None)
    return hashlib.sha256(json.dumps(core, sort_keys=True).encode()).hexdigest()[:16]


def finished_twin(digest: str) -> dict[str, Any] | None:
    """A finished record of any sweep with the same config hash (identical runs run once).

    A record matches by the hash it stored (its recipe's, before any change of precision for
    the machine) or by the hash of the config it ran, recomputed, so that records written
    before a change to :func:`config_hash` still match."""
    for path in sorted(RESULTS.glob("*/*.json")):
        record = json.loads(path.read_text())
        if "same_run_as" in record or "config" not in record:
            continue
        if digest in (record.get("config_hash"), config_hash(record["config"])):
            return record
    return None


def claim(run_dir: Path) -> IO[str] | None:
    """Lock ``run_dir`` for this process, or None when another process holds it.

    Sweep processes started side by side (one per core) share the work this way: each runs
    the next cell nobody else holds. The lock is ``flock`` on ``run_dir/.lock``; it goes with
    the file's closing or the process's death, so a killed run leaves nothing to clean up.
    Where ``fcntl`` does not exist (Windows) every cell is claimed: run one process there.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    handle = (run_dir / ".lock").open("a")
    try:
        import fcntl
    except ImportError:
        return handle
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


def finished_checkpoints(
    runs_dir: str | Path, head: str, names: Sequence[str] = ()
) -> list[tuple[str, Path, dict[str, Any]]]:
    """``(sweep/cell, last.ckpt, result record)`` of every finished cell with ``head`` whose run
    folder under ``runs_dir`` still holds its ``last.ckpt``, sorted; only ``names`` if given.
    A cell recorded as the same run as another (``same_run_as``) is left out."""
    found = []
    for path in sorted(RESULTS.glob("*/*.json")):
        record = json.loads(path.read_text())
        name = f"{record['sweep']}/{record['cell']}"
        if (names and name not in names) or "same_run_as" in record:
            continue
        if record["config"]["model"]["head"] != head:
            continue
        checkpoint = Path(runs_dir) / record["sweep"] / record["cell"] / "last.ckpt"
        if checkpoint.is_file():
            found.append((name, checkpoint, record))
    return found


def read_rows(path: Path) -> dict[str, dict[str, str]]:
    """A CSV with a ``cell`` column as ``{cell: row}`` (empty when the file is absent)."""
    if not path.is_file():
        return {}
    with path.open() as f:
        return {row["cell"]: row for row in csv.DictReader(f)}


def save_rows(path: Path, fields: Sequence[str], rows: Mapping[str, Mapping[str, Any]]) -> None:
    """Write ``rows`` (by cell, sorted) as a CSV; called after every cell, so a stopped
    evaluation loses nothing."""
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, list(fields))
        writer.writeheader()
        writer.writerows(rows[k] for k in sorted(rows))


def measure_cells(
    out: Path,
    fields: Sequence[str],
    found: Sequence[tuple[str, Path, Mapping[str, Any]]],
    measure: Callable[[Path], Mapping[str, Any]],
    describe: Callable[[Mapping[str, Any]], str],
) -> dict[str, dict[str, str]]:
    """The per-cell diagnostics' loop (``experiments/heatmaps.py``, ``experiments/debiased.py``):
    for each ``(sweep/cell, checkpoint, record)`` of :func:`finished_checkpoints` not yet in the
    CSV ``out``, the row ``cell``, ``heatmap_px`` and ``measure(checkpoint)``, saved after every
    cell and printed as ``cell: describe(row)``. Returns every row of the CSV."""
    done = read_rows(out)
    for name, checkpoint, record in found:
        if name in done:
            continue
        row = {"cell": name, "heatmap_px": record["heatmap_px"], **measure(checkpoint)}
        done[name] = {k: str(v) for k, v in row.items()}
        save_rows(out, fields, done)
        print(f"{name}: {describe(row)}", flush=True)
    return done


def lsp_test_set(checkpoint: Path, data_root: str) -> tuple[Any, Any, Any]:
    """``(model in eval mode, RunConfig, LSP test dataset)`` of a cell's checkpoint, its
    data read from ``data_root``."""
    from dsntpose.checkpoint import load_checkpoint
    from dsntpose.config import RunConfig
    from dsntpose.training import build_datasets

    model, _, config = load_checkpoint(checkpoint)
    values = {k: dict(v) for k, v in config.items()}
    values["data"].update({"root": data_root, "val_subset": None})
    run = RunConfig.from_dict(values)
    return model.eval(), run, build_datasets(run)[1]


def run_cli(main: Callable[[], int]) -> NoReturn:
    """Exit with ``main()``'s status; a missing file or bad input exits 1 with one line
    (``error: ...``), not a traceback."""
    try:
        status = main()
    except (FileNotFoundError, ValueError) as exc:
        raise SystemExit(f"error: {exc}") from None
    raise SystemExit(status)


def write_csv(sweep: str) -> Path:
    """Rebuild ``docs/results/<sweep>.csv`` from every finished cell's JSON."""
    rows = []
    for path in sorted((RESULTS / sweep).glob("*.json")):
        r = json.loads(path.read_text())
        row = {"cell": r["cell"], **r["axes"], "seed": r["seed"]}
        row.update(
            heatmap_px=r["heatmap_px"],
            pck20=r["metrics"]["pck20"],
            pck10=r["metrics"]["pck10"],
            auc=r["metrics"]["auc"],
            **{f"pck20_{k.lower()}": v for k, v in r["metrics"]["pck20_groups"].items()},
            mpii_pckh=r.get("mpii", {}).get("pckh"),
            mpii_pckh_ci="-".join(f"{v:.1f}" for v in r["mpii"]["pckh_ci"])
            if "mpii" in r
            else None,
            train_minutes=round(r["train_seconds"] / 60, 2),
            steps=r["steps"],
            precision=r["config"]["train"]["precision"],
        )
        if "earlier_run" in r:  # run again (--retrain_unscored): the first run's score
            row["earlier_pck20"] = r["earlier_run"].get("pck20")
        rows.append(row)
    out = RESULTS / f"{sweep}.csv"
    if rows:
        keys = list(dict.fromkeys(k for row in rows for k in row))
        # Written aside and renamed: two sweep processes may finish cells of one sweep at once.
        tmp = out.with_suffix(f".{os.getpid()}.tmp")
        with tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, keys)
            writer.writeheader()
            writer.writerows(rows)
        tmp.replace(out)
    return out


class Clock(L.Callback):
    """Training seconds of a run, summed over sessions: a stopped run keeps its time.

    Adds the time since the last save to ``path`` every 20 training batches and at the end.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.spent = float(path.read_text()) if path.is_file() else 0.0
        self.since = time.perf_counter()

    def save(self) -> float:
        now = time.perf_counter()
        self.spent += now - self.since
        self.since = now
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(f"{self.spent:.1f}")
        return self.spent

    def on_train_batch_end(
        self, trainer: Any, module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if batch_idx % 20 == 0:
            self.save()


def run_sweep(name: str, args: argparse.Namespace) -> None:
    from dsntpose.bench import cpu_name
    from dsntpose.config import RunConfig
    from dsntpose.training import TrainingInterrupted, cpu_has_native_bf16, fit

    path = sweep_file(name)
    spec = yaml.safe_load(path.read_text())
    base = base_values(spec)
    flip = bool(spec.get("flip", False))  # score with the flip test (the paper's protocol)
    sweep = path.stem
    for cell_id, axes, seed, overrides in cells(spec):
        if args.only and not any(o in cell_id for o in args.only):
            continue
        result_path = RESULTS / sweep / f"{cell_id}.json"
        run_dir = Path(args.runs_dir) / sweep / cell_id
        if args.list:
            state = "done" if result_path.is_file() else "to run"
            if state == "to run" and run_dir.is_dir():
                lock = claim(run_dir)
                state = "running (another process)" if lock is None else "to run"
                if lock is not None:
                    lock.close()
            print(f"{sweep}/{cell_id}: {state}")
            continue
        earlier = None
        if result_path.is_file():
            earlier = retrain_target(result_path, run_dir) if args.retrain_unscored else None
            if earlier is None:
                print(f"[skip] {sweep}/{cell_id} (finished)", flush=True)
                continue
        lock = claim(run_dir)
        if lock is None:
            print(f"[busy] {sweep}/{cell_id} (another process is running it)", flush=True)
            continue
        try:
            if result_path.is_file() and (
                earlier is None or retrain_target(result_path, run_dir) is None
            ):  # finished (or rescored) by another process since the check above
                print(f"[skip] {sweep}/{cell_id} (finished)", flush=True)
                continue
            values = cell_values(base, overrides, seed, run_dir, args.data_root, args.lspet_root)
            run = RunConfig.from_dict(values)
            digest = config_hash(run.to_dict())
            twin = None if earlier is not None else finished_twin(digest)
            if twin is not None:
                record = {
                    **twin,
                    "sweep": sweep,
                    "cell": cell_id,
                    "axes": axes,
                    "same_run_as": f"{twin['sweep']}/{twin['cell']}",
                }
                result_path.parent.mkdir(parents=True, exist_ok=True)
                result_path.write_text(json.dumps(record, indent=1))
                write_csv(sweep)
                print(f"[same] {sweep}/{cell_id} is {twin['sweep']}/{twin['cell']}", flush=True)
                continue
            if run.train.precision == "bf16-mixed" and not cpu_has_native_bf16():
                # the recipe (and its hash) stays bf16; this machine runs it in float32, which
                # on an AVX2-only CPU is ~16x faster than emulated bfloat16 (see the record)
                run = RunConfig.from_dict(deep_merge(values, {"train": {"precision": "32-true"}}))
                print(f"[note] {sweep}/{cell_id}: no native bfloat16 on this CPU, running 32-true")
            if earlier is not None:
                run_dir.mkdir(parents=True, exist_ok=True)
                (run_dir / RETRAIN_MARKER).write_text(json.dumps(earlier))
            print(f"[run ] {sweep}/{cell_id} -> {run_dir}", flush=True)
            clock = Clock(run_dir / "train_seconds.txt")
            try:
                result = fit(run, resume="auto", extra_callbacks=[clock])
            except TrainingInterrupted as stop:
                clock.save()
                saved = str(stop).split("; resume with")[0]  # what was saved, at which step
                again = " ".join(["python -m experiments.run", *args.argv])
                print(f"{sweep}/{cell_id}: {saved}; resume with: {again}", file=sys.stderr)
                raise SystemExit(130) from None
            spent = clock.save()
            if result.last is None:
                raise SystemExit(f"error: {sweep}/{cell_id} left no last.ckpt in {run_dir}")
            metrics = evaluate_cell(result.last, args.data_root, flip)
            mpii = score_mpii(result.last, args.mpii_root)
            record = {
                "sweep": sweep,
                "cell": cell_id,
                "axes": axes,
                "seed": seed,
                "heatmap_px": run.model.heatmap_size,
                "config_hash": digest,
                "metrics": metrics,
                "train_seconds": round(spent, 1),
                "steps": result.global_step,
                "config": run.to_dict(),
                "machine": f"{os.cpu_count()} CPU cores ({cpu_name()}), torch threads "
                f"{os.environ.get('OMP_NUM_THREADS', 'default')}",
                "checkpoint": "last",
                "flip_test": flip,
                "data": "LSP test split (images 1001-2000), PCK of the torso (r_shoulder-l_hip)",
                **({"mpii": mpii} if mpii is not None else {}),
                **({"earlier_run": earlier} if earlier is not None else {}),
            }
            result_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = result_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(record, indent=1))
            tmp.replace(result_path)
            write_csv(sweep)
            if earlier is not None:
                refresh_copies(f"{sweep}/{cell_id}", record)
                (run_dir / RETRAIN_MARKER).unlink()
            print(
                f"[done] {sweep}/{cell_id}: PCK@0.2 {metrics['pck20']:.1f} PCK@0.1 {metrics['pck10']:.1f} "
                f"({spent / 60:.1f} min)",
                flush=True,
            )
        finally:
            lock.close()
    if not args.list:
        write_csv(sweep)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("sweeps", nargs="+", help="sweep names in the order to run (a b c d e)")
    parser.add_argument(
        "--data_root",
        default=str(REPO.parent / "shared" / "data" / "lsp"),
        help="LSP folder (images/, joints.mat)",
    )
    parser.add_argument(
        "--lspet_root",
        default=str(REPO.parent / "shared" / "data" / "lspet"),
        help="LSP-extended folder, for sweeps whose base trains on it",
    )
    parser.add_argument(
        "--runs_dir", default=os.environ.get("DSNTPOSE_RUNS", str(REPO / "runs" / "experiments"))
    )
    parser.add_argument(
        "--only", nargs="*", default=None, help="run only cells whose id contains one of these"
    )
    parser.add_argument(
        "--list", action="store_true", help="list the cells and whether they are done"
    )
    parser.add_argument(
        "--mpii_root",
        default=str(REPO.parent / "shared" / "data" / "mpii"),
        help="MPII folder (valid.h5, images/): each finished cell is also scored there",
    )
    parser.add_argument(
        "--score_mpii",
        action="store_true",
        help="only score on MPII the finished cells whose checkpoints are kept (no training)",
    )
    parser.add_argument(
        "--retrain_unscored",
        action="store_true",
        help="also run again the finished cells that have no MPII score and no kept "
        "checkpoint (the new run replaces the record; the old scores stay as earlier_run)",
    )
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # a stopped cell's resume command
    if args.score_mpii:
        return backfill_mpii(args)
    if not args.list and not (Path(args.data_root) / "joints.mat").is_file():
        print(
            f"error: no LSP at {args.data_root} (joints.mat missing); get it with `dsntpose data lsp --root DIR`",
            file=sys.stderr,
        )
        return 2
    for name in args.sweeps:
        run_sweep(name, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
