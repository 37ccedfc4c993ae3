"""Write docs/results.md and its plots from the sweep results in docs/results/.

    python -m experiments.report [--predictions RUN_DIR [RUN_DIR ...]]

Reads ``docs/results/<sweep>.csv`` (written by ``experiments/run.py``), the per-cell JSON files
(PCK curves) and ``docs/results/latency_cpu.csv`` (``experiments/latency.py``). Every number in
the page comes from those files; cells not yet run are listed as such. With ``--predictions``
(finished run folders holding ``last.ckpt``), also draws their predictions on the same
test images, one row per run, so that output strategies can be compared by eye.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import itertools
import json
import math
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import yaml

from experiments.run import RESULTS, cells, sweep_file

DOC = RESULTS.parent / "results.md"
STRATEGY_NAMES = {
    "dsnt": "DSNT",
    "dsnt_js": "DSNT + JS",
    "heatmap": "heatmap matching",
    "fc": "fully connected",
}


@contextlib.contextmanager
def plot(
    name: str, xlabel: str, ylabel: str, legend_size: int = 8, outside: bool = False
) -> Iterator[Any]:
    """Axes to draw on; on leaving the block they get labels, a grid and a legend (right of
    the axes with ``outside``, for plots with many series), and the figure is saved as
    ``docs/results/<name>``."""
    fig, ax = plt.subplots(figsize=(8.0 if outside else 5.5, 3.8))
    try:
        yield ax
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if outside:
            ax.legend(fontsize=legend_size, loc="center left", bbox_to_anchor=(1.02, 0.5))
        else:
            ax.legend(fontsize=legend_size)
        fig.tight_layout()
        fig.savefig(RESULTS / name, dpi=110)
    finally:
        plt.close(fig)


def read_csv(
    name: str, merge_seeds: bool = True, precision: str | None = None
) -> list[dict[str, Any]]:
    """Rows of ``docs/results/<name>.csv``; with ``merge_seeds`` one row per grid point, its
    numbers the mean over the seeds run (``seeds`` counts them, ``pck20_spread`` is the
    difference between the best and worst seed's PCK@0.2); with ``precision`` only the runs
    trained in it (``32-true``, ``bf16-mixed``)."""
    path = RESULTS / f"{name}.csv"
    if not path.is_file():
        return []
    with path.open() as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        for k, v in r.items():
            try:
                r[k] = float(v)
            except (TypeError, ValueError):
                pass
    if precision is not None:
        rows = [r for r in rows if r.get("precision") == precision]
    if not merge_seeds or "seed" not in (rows[0] if rows else {}):
        return rows
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(str(r["cell"]).rsplit("-seed", 1)[0], []).append(r)
    merged = []
    for point, group in groups.items():
        out = dict(group[0])
        for k, v in group[0].items():
            if isinstance(v, float) and k not in ("seed", "heatmap_px"):
                values = [g.get(k) for g in group]
                # a figure some seeds lack (e.g. an MPII score of a cell whose checkpoint is
                # gone) has no mean over the seeds
                out[k] = (
                    sum(values) / len(values) if all(isinstance(x, float) for x in values) else ""
                )
        seeds = sorted(int(g["seed"]) for g in group)
        out["cell"] = f"{point}-seed{'+'.join(str(s) for s in seeds)}"
        out["seeds"] = len(group)
        if "precision" in out:  # seeds may have run on different machines
            out["precision"] = "+".join(dict.fromkeys(str(g["precision"]) for g in group))
        out["pck20_spread"] = max(g["pck20"] for g in group) - min(g["pck20"] for g in group)
        merged.append(out)
    return merged


def planned(name: str) -> list[str]:
    spec = yaml.safe_load(sweep_file(name).read_text())
    return [cell_id for cell_id, *_ in cells(spec)]


def status(sweep: str, rows: list[dict[str, Any]]) -> str:
    cells_planned = planned(sweep)
    done = {r["cell"] for r in read_csv(sweep, merge_seeds=False)}
    missing = [c for c in cells_planned if c not in done]
    text = f"{len(cells_planned) - len(missing)} of {len(cells_planned)} cells finished"
    return text + (f"; still to run: {', '.join(missing)}." if missing else ".")


def table(rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> str:
    head = "| " + " | ".join(title for _, title in columns) + " |"
    sep = "|" + "---|" * len(columns)
    body = []
    for r in rows:
        cells_ = []
        for key, _ in columns:
            v = r.get(key, "")
            if v in ("", None):  # not measured (e.g. MPII for a cell whose checkpoint is gone)
                cells_.append("–")
                continue
            cells_.append(
                f"{v:.1f}"
                if isinstance(v, float) and key not in ("heatmap_px", "steps")
                else str(int(v))
                if isinstance(v, float)
                else str(v)
            )
        body.append("| " + " | ".join(cells_) + " |")
    return "\n".join([head, sep, *body])


def grid_table(
    rows: list[dict[str, Any]],
    row_key: str,
    col_key: str,
    value: str,
    row_order: list[str],
    col_order: list[str],
    col_titles: dict[str, str],
) -> str:
    index = {(r[row_key], r[col_key]): r[value] for r in rows}
    lines = [
        "| " + row_key + " | " + " | ".join(col_titles.get(c, c) for c in col_order) + " |",
        "|" + "---|" * (len(col_order) + 1),
    ]
    for rk in row_order:
        vals = [
            f"{index[(rk, c)]:.1f}" if isinstance(index.get((rk, c)), float) else "–"
            for c in col_order
        ]
        lines.append(f"| {rk} | " + " | ".join(vals) + " |")
    return "\n".join(lines)


def point(row: dict[str, Any]) -> str:
    """A cell's grid point: its id less the seed."""
    return str(row["cell"]).rsplit("-seed", 1)[0]


def seed_pairs() -> list[tuple[float, str]]:
    """``(spread, precisions)`` of each grid point of sweeps (a)-(e) run with more than one
    seed: PCK@0.2 of the best minus the worst seed, and the seeds' precisions (``32-true``,
    or ``bf16-mixed+32-true`` for a pair that mixes the two). A point recorded as the same
    runs as a point of another sweep (a twin) counts once."""
    points = {
        (round(r["pck20"], 3), round(r["pck20_spread"], 3)): (
            r["pck20_spread"],
            str(r.get("precision", "")),
        )
        for name in ("a_strategy", "b_activation", "c_regularizer", "d_hourglass", "e_samples")
        for r in read_csv(name)
        if r.get("seeds", 1) > 1
    }
    return sorted(points.values())


def seed_noise(precisions: Iterable[str] = ()) -> tuple[float, str] | None:
    """The largest PCK@0.2 difference between two seeds of one grid point, and what it was
    measured on.

    ``precisions`` are those of the runs a verdict compares: when they are all one
    precision, only seed pairs trained wholly in that precision count (if there are any),
    because a bf16 and a float32 run of one recipe differ by more than two float32 seeds do.
    Otherwise every pair counts."""
    pairs = seed_pairs()
    used = {part for p in precisions for part in str(p).split("+") if part}
    if len(used) == 1:
        same = [spread for spread, prec in pairs if prec == next(iter(used))]
        if same:
            pairs_text = f"{len(same)} seed pair{'s' if len(same) > 1 else ''}"
            return max(same), f"{pairs_text} all in {next(iter(used))}"
    if not pairs:
        return None
    return max(spread for spread, _ in pairs), f"{len(pairs)} seed pairs, bf16 mixes included"


def like_with_like(name: str) -> tuple[list[dict[str, Any]], str | None]:
    """A sweep's rows for comparing its grid points with each other.

    When one precision has a run at every finished point, the means over that precision's
    seeds only (float32 preferred), so that no comparison sets a bf16 run against a float32
    one; otherwise the means over all seeds. Returns the rows and that precision, or None."""
    every = read_csv(name, merge_seeds=False)
    points = {point(r) for r in every}
    for prec in ("32-true", "bf16-mixed"):
        if points and {point(r) for r in every if r.get("precision") == prec} == points:
            return read_csv(name, precision=prec), prec
    return read_csv(name), None


def claim(
    text: str,
    test: Callable[[], bool | None],
    evidence: Callable[[], str],
    margin: Callable[[], float] | None = None,
    precisions: Iterable[str] = (),
    noise: Callable[[Iterable[str]], tuple[float, str] | None] | None = None,
) -> str:
    """One line on one of the paper's orderings; ``margin`` (the PCK@0.2 difference the
    verdict rests on) marks a verdict within the measured seed noise, the noise of
    ``precisions`` (those of the runs compared; see :func:`seed_noise`, or ``noise``, a
    function of the same form for another regime's runs)."""
    try:
        held = test()
        gap = abs(margin()) if margin is not None else None
    except (KeyError, ValueError):  # a cell it needs has not finished
        held = None
    if held is None:
        return f"* {text}: **not yet measured** (its cells have not finished)."
    verdict = "held" if held else "did not hold"
    noise_of = seed_noise if noise is None else noise
    measured = noise_of(precisions) if gap is not None else None  # reads the CSVs: if needed
    if gap is not None and measured is not None and gap <= measured[0]:
        verdict += f", by {gap:.1f}: within the seed noise of {measured[0]:.1f} ({measured[1]})"
    return f"* {text}: **{verdict}** here ({evidence()})."


def sweep_a(lines: list[str]) -> None:
    rows = read_csv("a_strategy")
    lines += ["## (a) Output strategy x heatmap resolution", "", status("a_strategy", rows), ""]
    if not rows:
        return
    strides = ["s32", "s16", "s8", "s4"]
    size = yaml.safe_load((RESULTS.parents[1] / "experiments" / "base_lsp.yaml").read_text())[
        "model"
    ]["input_size"]
    titles = {s: f"{size // int(s[1:])} px ({s})" for s in strides}
    order = [s for s in STRATEGY_NAMES if any(r["strategy"] == s for r in rows)]
    lines += [
        "PCK@0.2 (%), LSP test set:",
        "",
        grid_table(rows, "strategy", "stride", "pck20", order, strides, titles),
        "",
    ]
    lines += seeds_note(rows)
    lines += [
        "PCK@0.1 (%):",
        "",
        grid_table(rows, "strategy", "stride", "pck10", order, strides, titles),
        "",
    ]

    with plot("pck_vs_resolution.png", "heatmap side (px)", "PCK@0.2 (%)") as ax:
        for s in order:
            pts = sorted((r["heatmap_px"], r["pck20"]) for r in rows if r["strategy"] == s)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=STRATEGY_NAMES[s])
        ax.set_xscale("log", base=2)
        sides = sorted({int(r["heatmap_px"]) for r in rows})
        ax.set_xticks(sides, [str(v) for v in sides])  # the map sides run, not powers of 2
        ax.minorticks_off()
        ax.set_title("LSP, ResNet-18 from scratch, 96 px crops")
    lines += ["![PCK against heatmap resolution](results/pck_vs_resolution.png)", ""]

    latency = latency_rows("a_strategy")
    hourglass = []  # sweep (d)'s cells, timed in the same run as (a)'s
    d_latency = latency_rows("d_hourglass")
    for r in read_csv("d_hourglass"):
        if point(r) in d_latency:
            hourglass.append({**r, "latency_ms": d_latency[point(r)]["latency_ms"]})
    if latency:
        xlabel = "latency at batch 1, CPU (ms)"
        colour: dict[str, str] = {}
        from experiments.report_pretrained import latency_points

        pretrained = latency_points()  # the ImageNet regime, timed in the same run
        with plot("pck_vs_latency.png", xlabel, "PCK@0.2 (%)", 7, outside=bool(pretrained)) as ax:
            for s in order:
                pts = sorted(
                    (
                        latency[r["cell"].rsplit("-seed", 1)[0]]["latency_ms"],
                        r["pck20"],
                        r["stride"],
                    )
                    for r in rows
                    if r["strategy"] == s and r["cell"].rsplit("-seed", 1)[0] in latency
                )
                (line,) = ax.plot(
                    [p[0] for p in pts], [p[1] for p in pts], "o-", label=STRATEGY_NAMES[s]
                )
                colour[s] = line.get_color()
                for x, y, lbl in pts:
                    ax.annotate(lbl, (x, y), fontsize=6, xytext=(2, 2), textcoords="offset points")
            for r in hourglass:
                ax.plot(
                    r["latency_ms"],
                    r["pck20"],
                    "*",
                    markersize=11,
                    color=colour.get(r["strategy"]),
                    label=f"2-stack hourglass (d), {STRATEGY_NAMES[r['strategy']]}",
                )
            for s in STRATEGY_NAMES:
                pts = sorted((ms, pck, stride) for ms, pck, k, stride in pretrained if k == s)
                if pts:
                    ax.plot(
                        [p[0] for p in pts],
                        [p[1] for p in pts],
                        "s--",
                        color=colour.get(s),
                        label=f"Lite0 from ImageNet, {STRATEGY_NAMES[s]}",
                    )
                    for x, y, lbl in pts:
                        ax.annotate(
                            lbl, (x, y), fontsize=6, xytext=(2, 2), textcoords="offset points"
                        )
            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
            ax.set_xticks([10, 15, 20, 30, 40, 60])
        machine = next(iter(latency.values()))["machine"]
        lines += [
            f"Inference latency of each cell's model (batch 1, channels-last, `experiments/latency.py`; {machine}; the flip test runs image and mirror as one batch of 2):",
            "",
            table(
                list(latency.values()),
                [
                    ("cell", "cell"),
                    ("heatmap_px", "heatmap px"),
                    ("latency_ms", "latency (ms)"),
                    ("flip_latency_ms", "with flip (ms)"),
                ],
            ),
            "",
            "![PCK against latency](results/pck_vs_latency.png)",
            "",
        ]
        best = []
        for stride in ("s32", "s16", "s8", "s4"):
            here = [r for r in rows if r["stride"] == stride]
            cell = f"{stride}-{here[0]['strategy']}" if here else None
            if not here or cell not in latency:
                continue
            top = max(here, key=lambda r: r["pck20"])
            best.append(
                f"{stride} (~{latency[cell]['latency_ms']:.0f} ms): "
                f"{STRATEGY_NAMES[top['strategy']]} {top['pck20']:.1f}"
            )
        spread = max(
            max(v) / min(v) - 1
            for v in (
                [r["latency_ms"] for r in latency.values() if r["stride"] == st]
                for st in ("s32", "s16", "s8", "s4")
            )
            if v
        )
        lines += [
            "Which output strategy gives the most PCK@0.2 for the cost (at each stride the four "
            f"heads' latencies differ by at most {spread:.0%}, so the stride sets the cost): "
            + "; ".join(best)
            + ".",
            "",
        ]
        if hourglass:
            timed = [
                (latency[point(r)]["latency_ms"], r["pck20"]) for r in rows if point(r) in latency
            ]
            top = max(hourglass, key=lambda r: r["pck20"])
            slower = [p for ms, p in timed if ms >= top["latency_ms"]]
            faster = [p for ms, p in timed if ms < top["latency_ms"]]
            text = (
                "The 2-stack hourglass of sweep (d), timed in the same run (stars): "
                + ", ".join(
                    f"{STRATEGY_NAMES[r['strategy']]} {r['pck20']:.1f} at {r['latency_ms']:.1f} ms"
                    for r in hourglass
                )
                + "."
            )
            if slower and faster:
                text += (
                    f" The ResNet-18 cells slower than its {STRATEGY_NAMES[top['strategy']]} "
                    f"reach at most {max(slower):.1f}, the faster ones {max(faster):.1f}"
                )
                if top["pck20"] > max(slower + faster):
                    text += (
                        ": here it gives more PCK for its cost than ResNet-18 with any output "
                        "strategy, the reverse of the paper's table (ResNet-50 with DSNT faster "
                        "than the hourglass methods at a little less PCKh). Not like for like: "
                        f"the hourglass takes {input_size('d_hourglass')} px crops, ResNet-18 "
                        f"{input_size('a_strategy')} px, and neither starts from ImageNet weights"
                    )
                text += "."
            lines += [text, ""]

    curves = {}
    for path in sorted((RESULTS / "a_strategy").glob("*.json")):
        rec = json.loads(path.read_text())
        stride = rec["axes"]["stride"]
        if stride in ("s8", "s32"):
            label = f"{STRATEGY_NAMES[rec['axes']['strategy']]}, {rec['heatmap_px']} px"
            curves[label] = (rec["metrics"]["curve"], "-" if stride == "s8" else "--")
    if curves:
        with plot("pck_curves.png", "threshold (fraction of torso)", "PCK (%)", 7) as ax:
            for label, (c, style) in curves.items():
                ax.plot(c["thresholds"], c["total"], label=label, lw=1.2, ls=style)
        lines += [
            "PCK against threshold, strides 8 (solid) and 32 (dashed):",
            "",
            "![PCK curves](results/pck_curves.png)",
            "",
        ]


def latency_rows(sweep: str) -> dict[str, dict[str, Any]]:
    """``experiments/latency.py``'s rows for one sweep, by grid point (a cell less its seed)."""
    return {
        str(r["cell"]): r
        for r in read_csv("latency_cpu")
        if r.get("sweep", "a_strategy") == sweep  # files before the sweep column held (a) only
    }


SAMPLES = ("n250", "n500", "n1000")


def sweep_e(lines: list[str]) -> None:
    """(e): PCK against the number of training images, per output strategy."""
    name = "e_samples"
    rows = read_csv(name)
    title = "(e) Training-set size (no augmentation, equal steps)"
    lines += [f"## {title}", "", status(name, rows), ""]
    if not rows:
        return
    order = [s for s in STRATEGY_NAMES if any(r["strategy"] == s for r in rows)]
    titles = {n: f"{n[1:]} images" for n in SAMPLES}
    lines += [
        "Stride 8 (12 px maps), no augmentation, every run the same number of optimiser steps "
        "(epochs x 1000 / N). PCK@0.2 (%), LSP test set:",
        "",
        grid_table(rows, "strategy", "samples", "pck20", order, list(SAMPLES), titles),
        "",
        "PCK@0.1 (%):",
        "",
        grid_table(rows, "strategy", "samples", "pck10", order, list(SAMPLES), titles),
        "",
        *seeds_note(rows),
    ]
    pck = {(r["strategy"], r["samples"]): r["pck20"] for r in rows}
    drops = [
        f"{STRATEGY_NAMES[s]} {pck[(s, 'n1000')] - pck[(s, 'n250')]:.1f}"
        for s in order
        if (s, "n1000") in pck and (s, "n250") in pck
    ]
    if drops:
        lines += [f"PCK@0.2 lost going from 1000 to 250 images: {', '.join(drops)}."]
        sizes = list(SAMPLES)
        series = {
            s: [pck[(s, n)] for n in sizes] for s in order if all((s, n) in pck for n in sizes)
        }
        noise = seed_noise([str(r.get("precision", "")) for r in rows])
        rising = [s for s, v in series.items() if all(x < y for x, y in itertools.pairwise(v))]
        flat = [
            s
            for s in series
            if s not in rising and noise and abs(series[s][-1] - series[s][0]) <= noise[0]
        ]
        limits = {"heatmap": "the arg-max's cell", "fc": "the learnt map-to-coordinate weights"}
        if noise and flat and rising and all(s in limits for s in flat):
            names = " and ".join(STRATEGY_NAMES[s] for s in flat)
            swing = max(max(series[s]) - min(series[s]) for s in flat)
            lines[-1] += (
                f" {names[0].upper() + names[1:]} show no trend with the data ("
                + "; ".join(f"{' / '.join(f'{v:.1f}' for v in series[s])}" for s in flat)
                + f" at {' / '.join(n[1:] for n in sizes)} images), while "
                f"{' and '.join(STRATEGY_NAMES[s] for s in rising)} rose at every step: on this "
                f"budget their limit is likely the output itself "
                f"({', '.join(limits[s] for s in flat)}), not the number of images."
            )
            if swing > noise[0]:
                lines[-1] += (
                    f" Their ups and downs (up to {swing:.1f}) exceed the largest seed "
                    f"difference measured ({noise[0]:.1f}, {noise[1]}), so read (e) for trends, "
                    "not for single differences."
                )
        lines.append("")
    a = {(r["strategy"], r["stride"]): r["pck20"] for r in read_csv("a_strategy")}
    aug = [
        f"{STRATEGY_NAMES[s]} {a[(s, 's8')]:.1f} with, {pck[(s, 'n1000')]:.1f} without"
        for s in order
        if (s, "s8") in a and (s, "n1000") in pck
    ]
    if aug:
        worse = [
            s
            for s in order
            if (s, "s8") in a and (s, "n1000") in pck and a[(s, "s8")] < pck[(s, "n1000")]
        ]
        lines += [
            "What augmentation is worth at 1000 images (sweep (a) at stride 8 is the same recipe "
            f"with augmentation): {'; '.join(aug)}."
            + (
                " On this 10-epoch budget augmentation cost PCK: likely it makes the task harder "
                "than 10 epochs from random weights can learn (the paper trained 120), so the "
                "sweeps that use it, (a)-(c), measure models further from convergence."
                if worse
                else ""
            ),
            "",
        ]
    if any(sum((s, n) in pck for n in SAMPLES) >= 2 for s in order):
        with plot("pck_vs_samples.png", "training images", "PCK@0.2 (%)") as ax:
            for s in order:
                pts = [(int(n[1:]), pck[(s, n)]) for n in SAMPLES if (s, n) in pck]
                ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=STRATEGY_NAMES[s])
            ax.set_xscale("log", base=2)
            ax.set_xticks([250, 500, 1000], ["250", "500", "1000"])
            ax.set_title("LSP, ResNet-18 from scratch, 12 px maps, no augmentation")
        lines += ["![PCK against training-set size](results/pck_vs_samples.png)", ""]


def sweep_d(lines: list[str]) -> None:
    """(d): the hourglass's two heads, with their latency beside sweep (a)'s ResNet-18."""
    name = "d_hourglass"
    rows = read_csv(name)
    lines += ["## (d) Stacked hourglass", "", status(name, rows), ""]
    spec = yaml.safe_load(sweep_file(name).read_text())
    model = spec["fixed"]["model"]
    lines += [
        f"{model['num_stacks']} stacks from scratch, {model['input_size']} px input "
        f"({model['input_size'] // 4} px maps), batch {spec['fixed']['data']['batch_size']}, the "
        "loss summed over the stacks and the last stack's output used at test time; the rest "
        "of the recipe as above.",
        "",
    ]
    latency = latency_rows(name)
    for r in rows:
        hit = latency.get(point(r))
        if hit:
            r["latency_ms"] = hit["latency_ms"]
    if rows:
        cols = [
            ("cell", "cell"),
            ("heatmap_px", "heatmap px"),
            ("pck20", "PCK@0.2"),
            ("pck10", "PCK@0.1"),
            ("train_minutes", "train min"),
            ("precision", "precision"),
        ]
        if any("latency_ms" in r for r in rows):
            cols.insert(4, ("latency_ms", "latency (ms)"))
        lines += [table(rows, cols), "", *seeds_note(rows)]
    resnet = latency_rows("a_strategy")
    a = {point(r): r for r in read_csv("a_strategy")}
    if latency and resnet and "s8-dsnt_js" in resnet:
        ref = resnet["s8-dsnt_js"]
        times = ", ".join(
            f"{cell} {r['latency_ms']:.1f} ms ({r['latency_ms'] / ref['latency_ms']:.1f}x)"
            for cell, r in latency.items()
        )
        pck = f", PCK@0.2 {a['s8-dsnt_js']['pck20']:.1f}" if "s8-dsnt_js" in a else ""
        lines += [
            f"Measured in the same run as sweep (a)'s models: against ResNet-18 DSNT + JS at "
            f"stride 8 ({ref['latency_ms']:.1f} ms at batch 1{pck}), the hourglass takes "
            f"{times}.",
            "",
        ]


def simple_sweep(lines: list[str], name: str, title: str, key: str) -> None:
    rows = read_csv(name)
    lines += [f"## {title}", "", status(name, rows), ""]
    if rows:
        cols = [
            ("cell", "cell"),
            ("pck20", "PCK@0.2"),
            ("pck10", "PCK@0.1"),
            ("auc", "AUC@0.5"),
            ("train_minutes", "train min"),
            ("precision", "precision"),
        ]
        lines += [table(rows, cols), "", *seeds_note(rows)]


def seeds_note(rows: list[dict[str, Any]]) -> list[str]:
    """A line on the grid points run with more than one seed (their numbers are means)."""
    several = [r for r in rows if r.get("seeds", 1) > 1]
    if not several:
        return []
    spread = ", ".join(f"{r['cell']} {r['pck20_spread']:.1f}" for r in several)
    return [f"Means over seeds; best minus worst seed, PCK@0.2: {spread}.", ""]


def flip_section(lines: list[str]) -> None:
    """The flip test's two ways for DSNT, from ``experiments/flip.py``'s CSV."""
    rows = read_csv("flip")
    lines += [
        "## Flip test: average the logits or the coordinates?",
        "",
        "`experiments/flip.py`: each finished DSNT cell evaluated with no flip, with the two",
        "coordinate predictions averaged (`--flip_mode coords`) and with the mirrored pre-softmax",
        "maps averaged before one softmax and DSNT (`--flip_mode logits`, the paper's code).",
        "",
    ]
    if not rows:
        lines += ["No cell evaluated yet.", ""]
        return
    cols = [("cell", "cell"), ("heatmap_px", "map px")] + [
        (f"{m}_pck{t}", f"{name} @0.{t // 10}")
        for t in (20, 10)
        for m, name in (("none", "no flip"), ("coords", "coords"), ("logits", "logits"))
    ]
    shown = [{k: f"{v:.2f}" if k.endswith(("20", "10")) else v for k, v in r.items()} for r in rows]
    lines += [table(shown, cols), ""]
    gain = ", ".join(f"{r['logits_pck20'] - r['coords_pck20']:+.2f}" for r in rows)
    flip = ", ".join(f"{r['logits_pck20'] - r['none_pck20']:+.2f}" for r in rows)
    better = sum(r["logits_pck20"] > r["coords_pck20"] for r in rows)
    lines += [
        f"Logits minus coordinates, PCK@0.2: {gain} (logits better in {better} of {len(rows)} "
        f"cells); flip by logits minus no flip: {flip}.",
        "",
    ]

    def activation(cell: str) -> str | None:
        path = RESULTS / f"{cell}.json"
        return (
            json.loads(path.read_text())["config"]["model"]["activation"]
            if path.is_file()
            else None
        )

    lost = [
        r for r in rows if activation(r["cell"]) == "abs" and r["logits_pck20"] < r["none_pck20"]
    ]
    if lost:
        each = "; ".join(
            f"{r['cell']}: logits {r['logits_pck20'] - r['none_pck20']:+.2f}, "
            f"coordinates {r['coords_pck20'] - r['none_pck20']:+.2f}"
            for r in lost
        )
        kept = all(r["coords_pck20"] >= r["none_pck20"] for r in lost)
        coords = "while flip by coordinates did not" if kept else "flip by coordinates too"
        lines += [
            f"With the abs activation flip by logits lost PCK@0.2 against no flip, {coords} "
            f"({each}): abs counts a logit of -a as much as +a, and "
            "averaging the two views' logits cancels where their signs differ. dsntpose's flip "
            "test therefore averages coordinates for abs models and logits for the others "
            "(`dsntpose.evaluate.default_flip_mode`).",
            "",
        ]


def peak_rows() -> list[dict[str, str]]:
    """``experiments/heatmaps.py``'s rows (``docs/results/heatmap_peaks.csv``), or []."""
    path = RESULTS / "heatmap_peaks.csv"
    if not path.is_file():
        return []
    with path.open() as f:
        return list(csv.DictReader(f))


def peaks_measured() -> str:
    """A sentence on heatmap matching's maps from ``experiments/heatmaps.py``'s CSV, or ''."""
    rows = sorted(peak_rows(), key=lambda r: -float(r["heatmap_px"]))
    if not rows:
        return ""

    def augmented(cell: str) -> bool:
        record = RESULTS / f"{cell}.json"
        if not record.is_file():
            return True
        return bool(json.loads(record.read_text())["config"]["data"].get("augment", True))

    def span(values: list[float], fmt: str) -> str:
        low, high = format(min(values), fmt), format(max(values), fmt)
        return low if low == high else f"{low}-{high}"

    groups: dict[tuple[str, float, bool], list[dict[str, str]]] = {}
    for r in rows:  # one sweep's cells at one map size and augmentation: one entry
        key = (r["cell"].split("/")[0], float(r["heatmap_px"]), augmented(r["cell"]))
        groups.setdefault(key, []).append(r)
    each = []
    for (sweep, px, aug), group in groups.items():
        name = f"`{group[0]['cell']}`" if len(group) == 1 else f"{len(group)} {sweep} cells"
        values = {k: [float(r[k]) for r in group] for k in ("peak", "mse_ratio", "near_pct")}
        each.append(
            f"{name} ({px:.0f} px{'' if aug else ', no augmentation'}): peak "
            f"{span(values['peak'], '.2f')}, {span([100 * v for v in values['mse_ratio']], '.0f')}%"
            f" of a zero map's error, arg-max within a cell of the truth for "
            f"{span(values['near_pct'], '.0f')}%"
        )
    return (
        " Measured on the test set (`experiments/heatmaps.py`, the maps' mean maximum against "
        f"the target's 1, all annotated joints, no flip): {'; '.join(each)}."
    )


def peaks_verdict(small_px: int, large_px: int) -> str:
    """Whether sweep (a)'s heatmap cells at ``large_px`` have weaker peaks and miss more often
    than those at ``small_px`` (same sweep, so same augmentation), from the peaks CSV; or ''."""
    rows = [r for r in peak_rows() if r["cell"].startswith("a_strategy/")]
    by_px: dict[int, list[dict[str, str]]] = {}
    for r in rows:
        by_px.setdefault(int(float(r["heatmap_px"])), []).append(r)
    if small_px not in by_px or large_px not in by_px:
        return ""

    def mean(px: int, key: str) -> float:
        return sum(float(r[key]) for r in by_px[px]) / len(by_px[px])

    weaker = mean(large_px, "peak") < mean(small_px, "peak")
    misses = mean(large_px, "near_pct") < mean(small_px, "near_pct")
    return (
        f" Within sweep (a), with the same augmentation, the {large_px} px maps peak at "
        f"{mean(large_px, 'peak'):.2f} against {mean(small_px, 'peak'):.2f} at {small_px} px and "
        f"their arg-max lands within a cell of the truth for {mean(large_px, 'near_pct'):.0f}% "
        f"against {mean(small_px, 'near_pct'):.0f}%: "
        + (
            "as the explanation predicts."
            if weaker and misses
            else "not what the explanation predicts, so it does not account for the fall."
        )
    )


def orderings(lines: list[str]) -> None:
    """The paper's orderings, each with its verdict here. Sweeps (b) and (c) are compared
    like with like (:func:`like_with_like`): one precision's runs where it covers them."""
    rows_a, rows_d, rows_e = (read_csv(n) for n in ("a_strategy", "d_hourglass", "e_samples"))
    rows_b, prec_b = like_with_like("b_activation")
    rows_c, prec_c = like_with_like("c_regularizer")
    a = {(r["strategy"], r["stride"]): r["pck20"] for r in rows_a}
    b = {r["activation"]: r["pck20"] for r in rows_b}
    c = {(r["regularizer"], r["sigma"]): r["pck20"] for r in rows_c}
    d = {r["strategy"]: r["pck20"] for r in rows_d}
    e = {(r["strategy"], r["samples"]): r["pck20"] for r in rows_e}
    a_strides = ("s32", "s16", "s8", "s4")

    def precisions(rows: list[dict[str, Any]]) -> list[str]:
        return [str(r.get("precision", "")) for r in rows]

    def only(prec: str | None, name: str) -> str:
        """Says so when the comparison left out the runs of another precision."""
        dropped = prec is not None and len(read_csv(name, merge_seeds=False, precision=prec)) < len(
            read_csv(name, merge_seeds=False)
        )
        return f"; {prec} runs only" if dropped else ""

    def all_strides(fn: Callable[[str], bool]) -> bool | None:
        done = [
            s
            for s in ("s32", "s16", "s8", "s4")
            if ("dsnt_js", s) in a and ("heatmap", s) in a and ("fc", s) in a
        ]
        return all(fn(s) for s in done) if done else None

    lines += ["## Which of the paper's orderings held", ""]
    lines.append(
        claim(
            "DSNT (no regulariser) beats heatmap matching and FC at every resolution run",
            lambda: (
                all(
                    a[("dsnt", s)] > max(a[("heatmap", s)], a[("fc", s)])
                    for s in ("s32", "s16", "s8", "s4")
                    if all((k, s) in a for k in ("dsnt", "heatmap", "fc"))
                )
                if any(all((k, s) in a for k in ("dsnt", "heatmap", "fc")) for s in a_strides)
                else None
            ),
            lambda: ", ".join(
                f"{s}: {a[('dsnt', s)]:.1f} vs {a[('heatmap', s)]:.1f} and {a[('fc', s)]:.1f}"
                for s in a_strides
                if all((k, s) in a for k in ("dsnt", "heatmap", "fc"))
            ),
        )
    )
    lines.append(
        claim(
            "DSNT + JS beats heatmap matching at every resolution run",
            lambda: all_strides(lambda s: a[("dsnt_js", s)] > a[("heatmap", s)]),
            lambda: ", ".join(
                f"{s}: {a[('dsnt_js', s)]:.1f} vs {a[('heatmap', s)]:.1f}"
                for s in ("s32", "s16", "s8", "s4")
                if ("dsnt_js", s) in a and ("heatmap", s) in a
            ),
        )
    )

    def gaps(ours: str) -> dict[str, float]:
        """PCK@0.2 of ``ours`` minus heatmap matching's, at each stride both have run."""
        return {
            s: a[(ours, s)] - a[("heatmap", s)]
            for s in a_strides
            if (ours, s) in a and ("heatmap", s) in a
        }

    for ours, name in (("dsnt", "DSNT"), ("dsnt_js", "DSNT + JS")):
        lines.append(
            claim(
                f"the gap from {name} to heatmap matching is largest at the lowest resolution",
                lambda ours=ours: gaps(ours)["s32"] >= max(gaps(ours).values()),
                lambda ours=ours: ", ".join(f"{s}: {g:+.1f}" for s, g in gaps(ours).items()),
                lambda ours=ours: (
                    gaps(ours)["s32"] - max(g for s, g in gaps(ours).items() if s != "s32")
                ),
                precisions(rows_a),
            )
        )
    lines.append(
        claim(
            "DSNT + JS beats the fully connected output at every resolution run",
            lambda: all_strides(lambda s: a[("dsnt_js", s)] > a[("fc", s)]),
            lambda: ", ".join(
                f"{s}: {a[('dsnt_js', s)]:.1f} vs {a[('fc', s)]:.1f}"
                for s in ("s32", "s16", "s8", "s4")
                if ("dsnt_js", s) in a and ("fc", s) in a
            ),
            lambda: min(
                a[("dsnt_js", s)] - a[("fc", s)]
                for s in ("s32", "s16", "s8", "s4")
                if ("dsnt_js", s) in a and ("fc", s) in a
            ),
            precisions(rows_a),
        )
    )
    lines.append(
        claim(
            "softmax is the best heatmap activation",
            lambda: (b["softmax"] >= max(b.values())) if len(b) == 4 else None,
            lambda: ", ".join(f"{k} {v:.1f}" for k, v in b.items()) + only(prec_b, "b_activation"),
            lambda: b["softmax"] - max(b.values()),
            precisions(rows_b),
        )
    )
    lines.append(
        claim(
            "JS regularisation helps (sweep (c): 12 px maps, sigma 1 px, against none)",
            lambda: c[("js", "sigma1")] > c[("none", "sigma1")],
            lambda: (
                f"{c[('js', 'sigma1')]:.1f} vs {c[('none', 'sigma1')]:.1f}"
                + only(prec_c, "c_regularizer")
            ),
            lambda: c[("js", "sigma1")] - c[("none", "sigma1")],
            precisions(rows_c),
        )
    )
    lines.append(
        claim(
            "JS is the best of the three regularisers (variance, KL, JS; sigma 1 and 2 px)",
            lambda: (
                max(v for (r, _), v in c.items() if r == "js")
                > max(v for (r, _), v in c.items() if r in ("var", "kl"))
                if {r for r, _ in c} >= {"js", "kl", "var"}
                else None
            ),
            lambda: (
                ", ".join(f"{r} {s} {v:.1f}" for (r, s), v in sorted(c.items()) if r != "none")
                + only(prec_c, "c_regularizer")
            ),
        )
    )
    lines.append(
        claim(
            "on the hourglass, DSNT + JS beats heatmap matching",
            lambda: d["dsnt_js"] > d["heatmap"],
            lambda: f"{d['dsnt_js']:.1f} vs {d['heatmap']:.1f}",
            lambda: d["dsnt_js"] - d["heatmap"],
            precisions(rows_d),
        )
    )
    e_done = [n for n in SAMPLES if all((k, n) in e for k in ("dsnt_js", "heatmap", "fc"))]
    lines.append(
        claim(
            "DSNT + JS beats heatmap matching and FC at every training-set size run "
            "(250, 500, 1000 images)",
            lambda: (
                all(e[("dsnt_js", n)] > max(e[("heatmap", n)], e[("fc", n)]) for n in e_done)
                if e_done
                else None
            ),
            lambda: ", ".join(
                f"{n[1:]}: {e[('dsnt_js', n)]:.1f} vs {e[('heatmap', n)]:.1f} and "
                f"{e[('fc', n)]:.1f}"
                for n in e_done
            ),
            lambda: min(e[("dsnt_js", n)] - max(e[("heatmap", n)], e[("fc", n)]) for n in e_done),
            precisions(rows_e),
        )
    )
    lines.append("")


def input_size(sweep: str) -> int | None:
    """The crop size (px) of a sweep's finished cells (equal across a sweep), or None."""
    for path in sorted((RESULTS / sweep).glob("*.json")):
        return int(json.loads(path.read_text())["config"]["model"]["input_size"])
    return None


def discussion(lines: list[str]) -> None:
    """Why the orderings may differ from the paper's: each point only when the data shows it."""
    a = {(r["strategy"], r["stride"]): r for r in read_csv("a_strategy")}
    strides = [s for s in ("s32", "s16", "s8", "s4") if ("dsnt", s) in a]
    points = []
    js = [s for s in strides if ("dsnt_js", s) in a]
    if js:
        diff = {s: a[("dsnt_js", s)]["pck20"] - a[("dsnt", s)]["pck20"] for s in js}
        worse = [s for s in js if diff[s] < 0]
        better = [s for s in js if diff[s] > 0]
        px = {s: f"{a[('dsnt', s)]['heatmap_px']:.0f} px" for s in js}
        text = "JS against no regulariser, PCK@0.2: " + ", ".join(
            f"{px[s]} {diff[s]:+.1f}" for s in js
        )
        if worse:
            text += f". JS lowered PCK at {len(worse)} of {len(js)} resolutions here"
            if better and all(js.index(b) > js.index(w) for b in better for w in worse):
                text += (
                    f" and raised it at {' and '.join(px[s] for s in better)}, the largest "
                    "maps run here (the paper ran 7-56 px maps from 224 px crops and used "
                    "DSNT + JS for its results)"
                )
            else:
                text += ", where the paper used DSNT + JS for its results"
            text += (
                ". A target of sigma 1 px is a large share of a 3 or 6 px map (96 px crops here) "
                "and pulls mass away from the cells the coordinate loss "
                "needs, while on a 24 px map it is a sharp peak; and 10 epochs from random "
                "weights leave the regulariser competing with the coordinate loss, where the "
                "paper trained 120 epochs from ImageNet weights"
            )
        mixed = [s for s in js if a[("dsnt", s)]["precision"] != a[("dsnt_js", s)]["precision"]]
        if mixed:
            text += (
                ". At " + ", ".join(px[s] for s in mixed) + " the two cells ran in different "
                "precisions ("
                + "; ".join(
                    f"DSNT {a[('dsnt', s)]['precision']}, DSNT + JS {a[('dsnt_js', s)]['precision']}"
                    for s in mixed
                )
                + "), one more difference between them"
            )
        points.append(text + ".")
    fc = [s for s in strides if ("fc", s) in a]
    if fc:
        gaps = {s: a[("dsnt", s)]["pck20"] - a[("fc", s)]["pck20"] for s in fc}
        points.append(
            "DSNT minus FC, PCK@0.2: "
            + ", ".join(f"{a[('fc', s)]['heatmap_px']:.0f} px {gaps[s]:+.1f}" for s in fc)
            + ". The FC head maps each softmax map through one shared `Linear(H*W, 2)`, which "
            "can express DSNT's fixed weights exactly: on a 3x3 map it has 20 parameters to learn "
            "and comes close to DSNT, while on larger maps its weights must be learnt cell by "
            "cell, which is the loss of spatial generalisation the paper describes."
        )
    hm = [s for s in strides if ("heatmap", s) in a]
    if hm:
        points.append(
            "Heatmap matching, PCK@0.2: "
            + ", ".join(
                f"{a[('heatmap', s)]['heatmap_px']:.0f} px {a[('heatmap', s)]['pck20']:.1f}"
                for s in hm
            )
            + ". Its arg-max can only land on a cell (plus the quarter-pixel shift): on a 3 px "
            "map of a 96 px crop a cell is 32 crop px, far coarser than PCK@0.2 of a torso, "
            "which is why it collapses at low resolution, as in the paper."
        )
        top = max(hm, key=lambda s: a[("heatmap", s)]["pck20"])
        last = max(hm, key=lambda s: a[("heatmap", s)]["heatmap_px"])
        if last != top and a[("heatmap", last)]["pck20"] < a[("heatmap", top)]["pck20"] - 2:
            rec = json.loads((RESULTS / "a_strategy" / f"{last}-heatmap-seed0.json").read_text())
            sigma = rec["config"]["loss"]["heatmap_sigma"]
            px = {s: int(a[("heatmap", s)]["heatmap_px"]) for s in (top, last)}
            share = {s: 2 * math.pi * sigma**2 / px[s] ** 2 for s in px}  # the peak's cells
            zeros = {s: math.pi * sigma**2 / px[s] ** 2 for s in px}  # MSE of an all-zero map
            dsnt_up = all(
                a[(k, last)]["pck20"] > a[(k, top)]["pck20"]
                for k in ("dsnt", "dsnt_js")
                if (k, last) in a and (k, top) in a
            )
            points.append(
                f"Heatmap matching fell from {a[('heatmap', top)]['pck20']:.1f} at {px[top]} px "
                f"to {a[('heatmap', last)]['pck20']:.1f} at {px[last]} px"
                + (", while DSNT rose" if dsnt_up else "")
                + f". Its target is a Gaussian of sigma {sigma:g} heatmap px and its loss the "
                f"mean squared error over all the map's cells, of which the Gaussian's peak "
                f"covers about {share[last]:.1%} at {px[last]} px ({share[top]:.1%} at "
                f"{px[top]} px): a map of zeros already scores {zeros[last]:.4f} "
                f"({zeros[top]:.4f}), so the larger the map, the less of the loss the peak "
                "decides. Likely, from random weights in 10 epochs, the peaks on the larger "
                "maps are still weak and the arg-max often lands on a wrong one."
                + peaks_measured()
                + peaks_verdict(px[top], px[last])
                + " The paper trained 120 epochs from ImageNet weights; whether a wider target "
                "or a longer schedule recovers heatmap matching at this resolution was not run "
                "here. "
                "DSNT's loss is on the coordinates, whatever the map's size."
            )
    c = {r["cell"].rsplit("-seed", 1)[0]: r for r in read_csv("c_regularizer")}
    collapsed = [
        k
        for k in ("var-sigma1", "var-sigma2")
        if k in c and "none-sigma1" in c and c[k]["pck20"] < 0.5 * c["none-sigma1"]["pck20"]
    ]
    if collapsed:
        first = json.loads((RESULTS / "c_regularizer" / f"{collapsed[0]}-seed0.json").read_text())
        weight = first["config"]["loss"]["reg_weight"]
        size = int(c[collapsed[0]]["heatmap_px"])
        uniform = (size**2 - 1) / 12  # variance of a uniform map, px^2 per axis
        start = weight * 2 * (uniform - first["config"]["loss"]["sigma"] ** 2) ** 2
        points.append(
            f"The variance regulariser at the paper's weight of {weight:g} collapsed here ("
            + ", ".join(f"{k} {c[k]['pck20']:.1f}" for k in collapsed)
            + f" against {c['none-sigma1']['pck20']:.1f} with no regulariser). It penalises "
            f"{weight:g} (Var - sigma^2)^2 per axis in px^2: a near-uniform {size} px map, as a "
            f"fresh network gives, has a variance of ({size}^2 - 1) / 12 = {uniform:.1f} px^2 "
            f"per axis, so the term starts near {start:,.0f} against a Euclidean loss below 1. "
            "Likely the network first learns sharp maps wherever they are, and a saturated "
            "softmax then passes little gradient to the coordinates. The paper used it on 28 px "
            "maps from ImageNet weights; a weight scaled to the map size, or a warm-up, would "
            "be needed here."
        )
    rows_b, prec_b = like_with_like("b_activation")
    b = {r["activation"]: r for r in rows_b}
    if len(b) > 1:
        lo, hi = (
            min(b.values(), key=lambda r: r["pck20"]),
            max(b.values(), key=lambda r: r["pck20"]),
        )
        gap = hi["pck20"] - lo["pck20"]
        dropped = len(read_csv("b_activation", merge_seeds=False)) > sum(
            int(r.get("seeds", 1)) for r in rows_b
        )
        text = (
            f"The {len(b)} heatmap activations lie within {gap:.1f} PCK@0.2 of each other ("
            + ", ".join(f"{k} {r['pck20']:.1f}" for k, r in sorted(b.items()))
            + ("; one seed each" if all(r.get("seeds", 1) == 1 for r in b.values()) else "")
            + (f"; {prec_b} runs only, so no pair mixes precisions" if dropped else "")
            + "). "
        )
        pairs = seed_pairs()
        if pairs:

            def spread(v: list[float]) -> str:
                return f"{v[0]:.1f}" if len(v) == 1 else f"{min(v):.1f}-{max(v):.1f}"

            same = [sp for sp, pr in pairs if "+" not in pr]
            mixed = [sp for sp, pr in pairs if "+" in pr]
            found = []
            if same:
                found.append(
                    f"two seeds of one grid point trained in one precision differ by "
                    f"{spread(same)} PCK@0.2 ({len(same)} points)"
                )
            if mixed:
                found.append(
                    f"a bf16 seed from the AMX machine and a float32 seed differ by "
                    f"{spread(mixed)} ({len(mixed)} points)"
                )
            text += "Seed noise across the sweeps: " + "; ".join(found) + ". "
            if same and mixed:
                text += (
                    f"On average the pairs that mix precisions differ by "
                    f"{sum(mixed) / len(mixed):.1f}, those in one precision by "
                    f"{sum(same) / len(same):.1f}. "
                )
            noise = seed_noise(str(r.get("precision", "")) for r in rows_b)
            if noise:
                times = gap / noise[0] if noise[0] > 0 else float("inf")
                verdict = (
                    "within the seed noise"
                    if gap <= noise[0]
                    else "of the order of the seed noise"
                    if gap <= 2 * noise[0]
                    else f"{times:.0f} times that, so the ordering is unlikely to be seed noise"
                )
                text += (
                    f"The largest seed difference among runs like these is {noise[0]:.1f} "
                    f"({noise[1]}); this {gap:.1f} spread is {verdict}. "
                )
        else:
            text += "No cell has a second seed yet, so the seed noise is not measured. "
        precisions = {k: r["precision"] for k, r in b.items()}
        if len(set(precisions.values())) > 1:
            text += (
                "They were not all trained in one precision ("
                + ", ".join(f"{k} {v}" for k, v in precisions.items())
                + "): a bf16 and a float32 run of one recipe need not agree to the decimal. "
            )
        text += (
            "The paper compared them at 28 px after 120 epochs from ImageNet weights; after 10 "
            "epochs from random weights every model here is still far from converged, and the "
            "ordering at that point need not be the converged one."
        )
        points.append(text)
    if strides:
        best = max(r["pck20"] for r in a.values())
        d = {r["strategy"]: r for r in read_csv("d_hourglass")}
        hourglass = ""
        if "dsnt_js" in d and input_size("a_strategy") and input_size("d_hourglass"):
            hg = d["dsnt_js"]
            crop = {sweep: input_size(sweep) for sweep in ("a_strategy", "d_hourglass")}
            top_px = max(r["heatmap_px"] for r in a.values())
            hourglass = (
                f" The 2-stack hourglass with DSNT + JS reached {hg['pck20']:.1f} in sweep (d), "
                f"{hg['pck20'] - best:+.1f} on sweep (a)'s best; its crops are "
                f"{crop['d_hourglass']} px ({crop['a_strategy']} in (a)) and its maps "
                f"{hg['heatmap_px']:.0f} px (at most {top_px:.0f} in (a)), so these "
                "sweeps do not tell how much of that is the network and how much the "
                "resolution."
            )
        points.append(
            f"The best cell of sweep (a) reaches {best:.1f}% PCK@0.2, far from the paper's ~90% "
            "on MPII: ResNet-18 from random weights, 96 px crops and 10 epochs on 1000 images "
            "is a budget for comparing methods, not for absolute accuracy." + hourglass
        )
    lines += ["## Why the results may differ from the paper's", ""]
    lines += [f"* {p}" for p in points] or ["No cells finished yet."]
    lines.append("")


def predictions(run_dirs: list[Path], lines: list[str], num: int = 6) -> None:
    """Draw the first ``num`` LSP test images with each run's predictions, a row per run.

    Writes ``docs/results/predictions.png`` and its caption (``predictions.txt``), which
    later reruns of the report keep showing."""
    import numpy as np

    from dsntpose.data.joints import get_joint_set
    from dsntpose.inference import evaluate_checkpoint
    from dsntpose.viz import prediction_grid, save_image

    lsp = RESULTS.parents[2] / "shared" / "data" / "lsp"
    images, preds, gts, names = [], [], [], []
    for run_dir in run_dirs:
        ckpt = run_dir / "last.ckpt"
        if not ckpt.is_file():
            raise SystemExit(f"error: --predictions: no last.ckpt in {run_dir}")
        ev = evaluate_checkpoint(ckpt, split="test", data={"root": str(lsp)}, num_draw=num)
        shown = (ev.samples["images"].permute(0, 2, 3, 1).numpy() * 255).astype("uint8")
        if images and not np.array_equal(shown, images[0][: len(shown)]):
            raise SystemExit(f"error: --predictions: {run_dir} draws other test crops")
        images.append(shown)
        preds.append(ev.samples["pred"].numpy())
        gts.append(ev.samples["gt"].numpy())
        m = ev.run.model
        names.append(
            f"`{run_dir.parent.name}/{run_dir.name}` ({m.backbone}, {m.head}"
            f"{', ' + m.activation if m.head == 'dsnt' else ''}, {m.heatmap_size} px maps, "
            f"{m.input_size} px crops; PCK@0.2 {ev.result.total:.1f}%)"
        )
    grid = prediction_grid(
        np.concatenate(images),
        np.concatenate(preds),
        get_joint_set(ev.run.model.joints),
        gt_px=np.concatenate(gts),
        ncols=len(images[0]),
        tile=160,
    )
    save_image(grid, RESULTS / "predictions.png")
    rows = "; ".join(f"{i + 1}. {n}" for i, n in enumerate(names))
    caption = (
        "The first LSP test images with each run's predictions (last checkpoints; white: "
        f"ground truth, red: error), one row per run, top to bottom: {rows}."
    )
    PREDICTIONS_CAPTION.write_text(caption + "\n")
    predictions_section(lines)


PREDICTIONS_CAPTION = RESULTS / "predictions.txt"


def predictions_section(lines: list[str]) -> None:
    """The last grid drawn by ``--predictions``, kept across reruns of the report."""
    if PREDICTIONS_CAPTION.is_file() and (RESULTS / "predictions.png").is_file():
        caption = PREDICTIONS_CAPTION.read_text().strip()
        lines += ["## Predictions", "", caption, "", "![predictions](results/predictions.png)", ""]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--predictions",
        type=Path,
        nargs="+",
        default=None,
        help="finished run folders to draw on the same test images, a row each",
    )
    parser.add_argument(
        "--no-readme",
        action="store_true",
        help="leave README.md alone (by default its generated sections are rewritten too)",
    )
    args = parser.parse_args(argv)
    from experiments import report_pretrained

    lines = [
        "# Results: the paper's comparisons on LSP",
        "",
        "Produced by `experiments/report.py` from the sweep results in `docs/results/` (each cell's",
        "config and metrics as JSON, one CSV per sweep), which `experiments/run.py` writes, in two",
        "regimes: a short ImageNet one (EfficientNet-Lite0 from ImageNet weights, 3 epochs at 128 px",
        "on about 10,000 LSP + LSP-extended images: the paper's start, not its budget) and, before",
        "it, from random initialisation on 1000 images. Data: Leeds Sports Pose, tested on images",
        "1001-2000, PCK of the torso (right shoulder to left hip). First, the paper's own table:",
        "MPII PCKh on the real MPII validation frames there are here (`experiments/mpii_table.py`).",
        "",
    ]
    from experiments import mpii_table

    mpii_table.section(lines)
    report_pretrained.section(lines)
    lines += [
        "## From random initialisation: ResNet-18 on LSP's 1000 training images",
        "",
        "Images 1-1000 to train and 1001-2000 to test. Every model starts from random",
        "initialisation: no ImageNet weights for ResNets can be had here, which the paper's",
        "ResNets had. The recipe (`experiments/base_lsp.yaml`):",
        "ResNet-18, 96 px crops, 10 epochs of RMSprop at lr 1e-3 (x0.1 after epoch 8), batch 16,",
        "the paper's augmentation, on a 2-core CPU: bf16 autocast where the CPU has native",
        "bfloat16 (AMX), float32 where it has not (AVX2 only, on which bf16 is ~16x slower);",
        "each cell's precision and CPU are in its JSON and the sweep CSVs. Numbers are from the",
        "last checkpoint. These are small budgets: read the orderings, not the absolute values.",
        "",
    ]
    orderings(lines)
    discussion(lines)
    sweep_a(lines)
    simple_sweep(lines, "c_regularizer", "(c) Regulariser", "regularizer")
    simple_sweep(lines, "b_activation", "(b) Heatmap activation", "activation")
    sweep_e(lines)
    sweep_d(lines)
    flip_section(lines)
    if args.predictions:
        predictions(args.predictions, lines)
    else:
        predictions_section(lines)
    DOC.write_text("\n".join(lines) + "\n")
    print(f"wrote {DOC}")
    if not args.no_readme:  # the README quotes this page: keep the two in step
        import runpy

        script = RESULTS.parents[1] / "scripts" / "update_readme.py"
        return int(runpy.run_path(str(script), run_name="update_readme")["main"]())
    return 0


if __name__ == "__main__":
    sys.exit(main())
