"""The short ImageNet regime in docs/results.md: sweeps (pa), (pb), (pc), (pf) and the headline (g).

The regime takes the paper's start (ImageNet weights) but not its budget: EfficientNet-Lite0,
3 epochs at 128 px on LSP + LSP-extended, where the paper trained ResNets for 120 epochs at
224 px on MPII; :data:`DIFFERENCES` says what that can and cannot explain.

Called by :mod:`experiments.report`. The cells train EfficientNet-Lite0 from ImageNet weights
on LSP + LSP-extended (``experiments/base_pretrained.yaml``) and are scored on the LSP test
set with the flip test. Everything here is read from ``docs/results/``: the cells' JSON
records and CSVs (``experiments/run.py``), ``latency_cpu.csv`` (``experiments/latency.py``)
and ``peers.json`` (``benchmarks/peers.py``, the headline's same-run measurements). A cell that
has not finished is listed with the training minutes it needs on this machine.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Iterable
from typing import Any

import yaml

# the results folder is read as base_report.RESULTS at call time (not bound at import), so one
# patch of experiments.report.RESULTS redirects both reports
from experiments import report as base_report
from experiments.report import (
    STRATEGY_NAMES,
    claim,
    grid_table,
    plot,
    point,
    read_csv,
    table,
)
from experiments.run import base_values, cell_values, cells, config_hash, sweep_file

SWEEPS = {
    "pa_strategy": "(a) Output strategy x heatmap resolution",
    "pb_activation": "(b) Heatmap activation",
    "pc_regularizer": "(c) Regulariser",
    "pf_newops": "(f) The new ops: debiased DSNT, DSNT + RLE, local DSNT",
}
STRIDES = ("s32", "s16", "s8")
ACTIVATIONS = ("softmax", "abs", "relu", "sigmoid")
# Training throughput of one cell, images per second on one thread of the 2-core Xeon, as
# measured when the recipe was sized (experiments/base_pretrained.yaml). Used only to say how
# long a cell at a stride with no finished cell yet would take; finished cells' own minutes
# replace it as soon as there are any.
CALIBRATION_IPS = {32: 20.0, 16: 16.0, 8: 4.5}
# Where this regime differs from the paper's, and what each difference can and cannot explain
# (a line each in docs/results.md).
DIFFERENCES = (
    "Backbone: EfficientNet-Lite0 (3.4 M parameters, depthwise convolutions; the only ImageNet "
    "weights obtainable here) where the paper used ResNet-18 to 101. It can explain absolute "
    "levels and any ordering that depends on the features' quality; it cannot explain an "
    "ordering fixed by the output's geometry (heatmap matching's arg-max quantisation on small "
    "maps, DSNT's continuous expectation), which does not depend on the backbone.",
    "Budget: 3 epochs (about 1,800 steps of batch 16) where the paper trained 120 epochs. It can "
    "explain low absolute numbers and orderings within the seed noise (the network is far from "
    "converged, and a regulariser or activation that helps late in training may not show yet); "
    "it cannot explain a gap of many points that the seed noise and the intervals exclude.",
    "Resolution: 128 px crops, so 4/8/16 px maps at strides 32/16/8, where the paper's crops are "
    "224 px (7/14/28/56 px maps) and its headline model uses 28 px maps. It can explain the "
    "regularisers' results (a sigma of 1 px covers much of a 4 or 8 px map) and heatmap "
    "matching's collapse at s32; it cannot speak for the paper's 28 px results, which no cell "
    "here reaches.",
    "Data and metric: LSP + LSP-extended (about 10,000 images, Mechanical Turk labels for the "
    "9,000 LSPET ones) and PCK@0.2 of the torso on LSP's test set, where the paper trained on "
    "MPII's 25,000 people and reported PCKh@0.5 on MPII. It can explain levels and joint-group "
    "differences; the paper's metric on the paper's data is in the MPII table above, on the 264 "
    "validation people whose frames are here.",
)
OPS = {
    "dsnt_js": "DSNT + JS",
    "debiased": "debiased DSNT + JS",
    "rle": "DSNT + RLE",
    "local": "local DSNT + JS",
}


# ---------------------------------------------------------------------------- what has run


def records() -> dict[str, dict[str, Any]]:
    """Every finished cell record of every sweep, by ``sweep/cell``."""
    out = {}
    for path in sorted(base_report.RESULTS.glob("*/*.json")):
        rec = json.loads(path.read_text())
        if "sweep" in rec and "cell" in rec:
            out[f"{rec['sweep']}/{rec['cell']}"] = rec
    return out


def trained_here(rec: dict[str, Any]) -> bool:
    """A record of a run of its own (not the copy of an identical run of another sweep)."""
    return "same_run_as" not in rec


def plan(sweep: str) -> list[dict[str, Any]]:
    """The sweep's cells in order: ``cell``, ``stride`` (the output stride), ``hash``, the
    finished ``record`` or None, and the identical finished run it would copy (``twin``)."""
    spec = yaml.safe_load(sweep_file(sweep).read_text())
    base = base_values(spec)
    done = records()
    by_hash = {}
    for k, r in done.items():
        if trained_here(r):
            by_hash[r["config_hash"]] = by_hash[config_hash(r["config"])] = k
    from dsntpose.config import RunConfig

    out = []
    for cell_id, _axes, seed, overrides in cells(spec):
        values = cell_values(base, overrides, seed, "-", "lsp", "lspet")
        run = RunConfig.from_dict(values)
        digest = config_hash(run.to_dict())
        out.append(
            {
                "cell": cell_id,
                "stride": run.model.output_stride,
                "hash": digest,
                "record": done.get(f"{sweep}/{cell_id}"),
                "twin": by_hash.get(digest),
                "samples": run.train.epochs * 9500,  # LSP 1000 + LSPET 9000 less 500 held out
            }
        )
    return out


def minutes_at(stride: int, samples: int) -> tuple[float, str]:
    """Training minutes a cell at ``stride`` takes here: the median of the finished cells
    that ran at that stride, else the calibration's throughput; and which it is."""
    spent = [
        r["train_seconds"] / 60
        for r in records().values()
        if str(r.get("sweep", "")) in SWEEPS
        and trained_here(r)
        and r["config"]["model"]["output_stride"] == stride
    ]
    if spent:
        return statistics.median(spent), "measured"
    return samples / CALIBRATION_IPS[stride] / 60, "estimated"


def first_of_hash() -> dict[str, str]:
    """``{config hash: sweep/cell}``: the first unfinished cell of each recipe, in the order
    the sweeps run, which is the one that trains (the others then copy its record)."""
    out: dict[str, str] = {}
    for sweep in SWEEPS:
        for c in plan(sweep):
            if c["record"] is None and c["twin"] is None:
                out.setdefault(c["hash"], f"{sweep}/{c['cell']}")
    return out


def status(sweep: str) -> tuple[str, float]:
    """A sweep's progress line and the training minutes its unfinished cells still need (a
    recipe two sweeps share counts once, in the first)."""
    cells_ = plan(sweep)
    finished = [c for c in cells_ if c["record"] is not None]
    copies = [c for c in finished if not trained_here(c["record"])]
    first = first_of_hash()
    todo, need = [], 0.0
    for c in cells_:
        if c["record"] is not None:
            continue
        if c["twin"] is not None:
            todo.append(f"{c['cell']} (the same run as {c['twin']}: no training)")
            continue
        if first[c["hash"]] != f"{sweep}/{c['cell']}":
            todo.append(f"{c['cell']} (the same run as {first[c['hash']]}, still to run)")
            continue
        minutes, how = minutes_at(c["stride"], c["samples"])
        need += minutes
        todo.append(f"{c['cell']} (~{minutes:.0f} min, {how})")
    text = f"{len(finished)} of {len(cells_)} cells finished"
    if copies:
        text += f" ({len(copies)} the same run as a cell of another sweep)"
    if todo:
        text += f"; still to run: {', '.join(todo)}"
    return text + ".", need


def spent_minutes() -> float:
    """Training minutes of every pretrained-regime cell that ran (copies not counted)."""
    return sum(
        r["train_seconds"] / 60
        for r in records().values()
        if r.get("sweep") in SWEEPS and trained_here(r)
    )


def cell_machines() -> str:
    """The machines the pretrained-regime cells trained on, as their records name them
    (``"2 CPU cores (AMD EPYC (AVX2)), torch threads 1"``), joined; "unrecorded" for none."""
    machines = sorted(
        {
            str(r["machine"])
            for r in records().values()
            if r.get("sweep") in SWEEPS and trained_here(r) and r.get("machine")
        }
    )
    return "; ".join(machines) or "unrecorded"


# ---------------------------------------------------------------------------- seed noise


def pretrained_noise(precisions: Iterable[str] = ()) -> tuple[float, str] | None:
    """The largest PCK@0.2 spread between the seeds of one grid point in this regime (a point
    shared by two sweeps counts once); while no point has two seeds, the float32 spread of the
    from-scratch regime, said as such."""
    points = {
        (round(r["pck20"], 3), round(r["pck20_spread"], 3)): r["pck20_spread"]
        for name in SWEEPS
        for r in read_csv(name)
        if r.get("seeds", 1) > 1
    }
    if points:
        n = len(points)
        return max(points.values()), f"{n} seed pair{'s' if n > 1 else ''} of this regime"
    scratch = base_report.seed_noise(["32-true"])
    if scratch is None:
        return None
    return scratch[0], f"no seed pair of this regime yet: the from-scratch {scratch[1]}"


def pclaim(text: str, test: Callable[[], bool | None], evidence: Callable[[], str], **kw: Any):
    return claim(text, test, evidence, noise=pretrained_noise, **kw)


# ---------------------------------------------------------------------------- seeds


def close_pairs(margin: float = 3.0) -> list[tuple[str, str, float, bool]]:
    """The pairs the orderings compare whose PCK@0.2 lie within ``margin`` of each other:
    ``(sweep/point, sweep/point, gap, both have a second seed)``. Compared are the strategies
    at one stride (pa), the activations (pb), the regularisers (pc), and each new op against
    plain DSNT + JS at its stride (pf)."""

    def rows(sweep: str) -> list[dict[str, Any]]:
        return read_csv(sweep)

    pairs: list[tuple[dict[str, Any], dict[str, Any], str]] = []
    pa = rows("pa_strategy")
    for stride in STRIDES:
        here = [r for r in pa if r["stride"] == stride]
        pairs += [(x, y, "pa_strategy") for i, x in enumerate(here) for y in here[i + 1 :]]
    for sweep in ("pb_activation", "pc_regularizer"):
        here = rows(sweep)
        pairs += [(x, y, sweep) for i, x in enumerate(here) for y in here[i + 1 :]]
    pf = rows("pf_newops")
    for r in pf:
        plain = [p for p in pf if p["stride"] == r["stride"] and p["op"] == "dsnt_js"]
        if r["op"] != "dsnt_js" and plain:
            pairs.append((r, plain[0], "pf_newops"))
    done = records()

    def canonical(sweep: str, row: dict[str, Any]) -> str:
        """The point's own id, or that of the identical run it is a copy of."""
        rec = done.get(f"{sweep}/{row['cell'].split('+')[0]}") or {}
        twin = rec.get("same_run_as")
        return twin.rsplit("-seed", 1)[0] if twin else f"{sweep}/{point(row)}"

    out, seen = [], set()
    for x, y, sweep in pairs:
        gap = abs(x["pck20"] - y["pck20"])
        a, b = canonical(sweep, x), canonical(sweep, y)
        if gap <= margin and frozenset((a, b)) not in seen:
            seen.add(frozenset((a, b)))
            seeded = x.get("seeds", 1) > 1 and y.get("seeds", 1) > 1
            out.append((a, b, gap, seeded))
    return out


def seeds_paragraph(lines: list[str], margin: float = 3.0) -> None:
    """Which compared pairs lie within ``margin`` PCK and whether their second seeds ran."""
    pairs = close_pairs(margin)
    if not pairs:
        lines += [
            f"No two compared cells finished so far lie within {margin:g} PCK@0.2 of each "
            "other, so no second seed is needed yet.",
            "",
        ]
        return
    todo = [(a, b, g) for a, b, g, seeded in pairs if not seeded]
    text = (
        f"Compared pairs within {margin:g} PCK@0.2 of each other (each needs a second seed, "
        "`extra_seeds` in its sweep file): "
        + "; ".join(
            f"{a} and {b} ({g:.1f} apart{', both seeded' if s else ''})" for a, b, g, s in pairs
        )
        + "."
    )
    if todo:
        need = 0.0
        cells_ = {c for a, b, _ in todo for c in (a, b)}
        for cell in sorted(cells_):
            rec = records().get(f"{cell}-seed0")
            if rec is not None:
                samples = int(rec["steps"]) * int(rec["config"]["data"]["batch_size"])
                need += minutes_at(rec["config"]["model"]["output_stride"], samples)[0]
        text += (
            f" Second seeds still to run: {len(cells_)} cells, about {need:.0f} min of training."
        )
    lines += [text, ""]


# ---------------------------------------------------------------------------- orderings


def mpii_scores(sweep: str, match: dict[str, str]) -> list[tuple[float, float, float]]:
    """``(PCKh, low, high)`` on the MPII frames of every seed of the grid point of ``sweep``
    whose axes equal ``match`` (e.g. ``{"op": "rle", "stride": "s32"}``), for the seeds that
    have the score (a cell whose checkpoint was gone before it was scored has none)."""
    out = []
    for r in seed_rows(sweep):
        if all(str(r.get(k)) == v for k, v in match.items()) and isinstance(
            r.get("mpii_pckh"), float
        ):
            low, _, high = str(r.get("mpii_pckh_ci", "")).partition("-")
            try:
                out.append((float(r["mpii_pckh"]), float(low), float(high)))
            except ValueError:
                continue
    return out


def mpii_verdict(
    first: tuple[str, dict[str, str]], second: tuple[str, dict[str, str]], where: str = ""
) -> str:
    """The same ordering judged on the MPII frames (the second score): ``"; on MPII[ at
    where]: ..."`` with both means over their scored seeds, held or not, and whether the 95%
    bootstrap intervals of the two overlap (then the difference is not resolved on 264
    people); ``""`` when either point has no MPII score yet."""
    a, b = mpii_scores(*first), mpii_scores(*second)
    if not a or not b:
        return ""
    mean_a, mean_b = (sum(x[0] for x in s) / len(s) for s in (a, b))
    overlap = any(x[1] <= y[2] and y[1] <= x[2] for x in a for y in b)
    seeds = f"{len(a)} and {len(b)} seed{'s' if len(a) + len(b) > 2 else ''}"
    verdict = "held" if mean_a > mean_b else "did not hold"
    if overlap:
        verdict += ", within the 95% bootstrap intervals"
    at = f" at {where}" if where else ""
    return f"; on MPII{at}, PCKh@0.5 {mean_a:.1f} vs {mean_b:.1f} ({seeds}): **{verdict}**"


def mpii_per_stride(ours: str, other: str) -> str:
    """:func:`mpii_verdict` of pa's ``ours`` against ``other`` at every stride where both
    have an MPII score (``""`` where none has)."""
    return "".join(
        mpii_verdict(
            ("pa_strategy", {"strategy": ours, "stride": s}),
            ("pa_strategy", {"strategy": other, "stride": s}),
            where=s,
        )
        for s in STRIDES
    )


def mpii_best(
    sweep: str, axes: dict[str, str], key: str, labels: Iterable[str], where: str = ""
) -> str:
    """Which of ``labels`` (values of axis ``key``, the other axes fixed by ``axes``) scores
    best on the MPII frames (means over scored seeds): ``"; on MPII[ at where] the best is
    ...: ..."``, ``""`` until every one has a score."""
    means = {}
    for label in labels:
        scores = mpii_scores(sweep, {**axes, key: label})
        if not scores:
            return ""
        means[label] = sum(x[0] for x in scores) / len(scores)
    best = max(means, key=lambda k: means[k])
    listed = ", ".join(f"{k} {v:.1f}" for k, v in means.items())
    at = f" at {where}" if where else ""
    return f"; on MPII{at} (PCKh@0.5) the best is {best}: {listed}"


def seed_rows(sweep: str) -> list[dict[str, Any]]:
    """The sweep's rows, one per seed, with the further seeds of the identical run a cell is
    a copy of (``same_run_as``): pc's js-sigma1 is pa's s16-dsnt_js, so its second seed is
    pa's ``s16-dsnt_js-seed1``. Such a row keeps this sweep's axis values and takes the other
    run's scores."""
    rows = read_csv(sweep, merge_seeds=False)
    done = records()
    out = list(rows)
    for r in rows:
        twin = (done.get(f"{sweep}/{r['cell']}") or {}).get("same_run_as")
        if not twin:
            continue
        other, cell = twin.split("/", 1)
        have = {int(x["seed"]) for x in out if point(x) == point(r)}
        for t in read_csv(other, merge_seeds=False):
            if point(t) == cell.rsplit("-seed", 1)[0] and int(t["seed"]) not in have:
                out.append({**t, **{k: v for k, v in r.items() if k not in t}})
                out[-1]["cell"] = f"{point(r)}-seed{int(t['seed'])}"
    return out


def grid(sweep: str, *keys: str) -> dict[tuple[str, ...], float]:
    """``{axis labels: PCK@0.2}`` of a sweep, means over all seeds of each point (those of
    the identical run of another sweep included: see ``seed_rows``)."""
    scores: dict[tuple[str, ...], list[float]] = {}
    for r in seed_rows(sweep):
        scores.setdefault(tuple(str(r[k]) for k in keys), []).append(float(r["pck20"]))
    return {k: sum(v) / len(v) for k, v in scores.items()}


def orderings(lines: list[str]) -> list[str]:
    """The paper's orderings in this regime, a line each (also returned for the comparison)."""
    a = grid("pa_strategy", "strategy", "stride")
    b = {k[0]: v for k, v in grid("pb_activation", "activation").items()}
    c = grid("pc_regularizer", "reg", "sigma")
    f = grid("pf_newops", "op", "stride")
    prec = ["32-true"]

    def at(strategies: Iterable[str]) -> list[str]:
        return [s for s in STRIDES if all((k, s) in a for k in strategies)]

    def every(strategies: tuple[str, ...], fn: Callable[[str], bool]) -> bool | None:
        done = at(strategies)
        return all(fn(s) for s in done) if done else None

    def gaps(ours: str) -> dict[str, float]:
        return {s: a[(ours, s)] - a[("heatmap", s)] for s in at((ours, "heatmap"))}

    out = [
        pclaim(
            "DSNT (no regulariser) beats heatmap matching and FC at every resolution run",
            lambda: every(
                ("dsnt", "heatmap", "fc"),
                lambda s: a[("dsnt", s)] > max(a[("heatmap", s)], a[("fc", s)]),
            ),
            lambda: (
                ", ".join(
                    f"{s}: {a[('dsnt', s)]:.1f} vs {a[('heatmap', s)]:.1f} and {a[('fc', s)]:.1f}"
                    for s in at(("dsnt", "heatmap", "fc"))
                )
                + mpii_per_stride("dsnt", "heatmap")
                + mpii_per_stride("dsnt", "fc")
            ),
        ),
        pclaim(
            "DSNT + JS beats heatmap matching at every resolution run",
            lambda: every(("dsnt_js", "heatmap"), lambda s: a[("dsnt_js", s)] > a[("heatmap", s)]),
            lambda: (
                ", ".join(
                    f"{s}: {a[('dsnt_js', s)]:.1f} vs {a[('heatmap', s)]:.1f}"
                    for s in at(("dsnt_js", "heatmap"))
                )
                + mpii_per_stride("dsnt_js", "heatmap")
            ),
            margin=lambda: min(
                a[("dsnt_js", s)] - a[("heatmap", s)] for s in at(("dsnt_js", "heatmap"))
            ),
            precisions=prec,
        ),
    ]
    for ours, name in (("dsnt", "DSNT"), ("dsnt_js", "DSNT + JS")):
        out.append(
            pclaim(
                f"the gap from {name} to heatmap matching is largest at the lowest resolution",
                lambda ours=ours: (
                    gaps(ours)["s32"] >= max(gaps(ours).values()) if len(gaps(ours)) > 1 else None
                ),
                lambda ours=ours: ", ".join(f"{s}: {g:+.1f}" for s, g in gaps(ours).items()),
                margin=lambda ours=ours: (
                    gaps(ours)["s32"] - max(g for s, g in gaps(ours).items() if s != "s32")
                ),
                precisions=prec,
            )
        )
    out += [
        pclaim(
            "DSNT + JS beats the fully connected output at every resolution run",
            lambda: every(("dsnt_js", "fc"), lambda s: a[("dsnt_js", s)] > a[("fc", s)]),
            lambda: (
                ", ".join(
                    f"{s}: {a[('dsnt_js', s)]:.1f} vs {a[('fc', s)]:.1f}"
                    for s in at(("dsnt_js", "fc"))
                )
                + mpii_per_stride("dsnt_js", "fc")
            ),
            margin=lambda: min(a[("dsnt_js", s)] - a[("fc", s)] for s in at(("dsnt_js", "fc"))),
            precisions=prec,
        ),
        pclaim(
            "softmax is the best heatmap activation",
            lambda: (b["softmax"] >= max(b.values())) if len(b) == 4 else None,
            lambda: (
                ", ".join(f"{k} {v:.1f}" for k, v in b.items())
                + mpii_best("pb_activation", {}, "activation", ACTIVATIONS)
            ),
            margin=lambda: b["softmax"] - max(v for k, v in b.items() if k != "softmax"),
            precisions=prec,
        ),
        pclaim(
            "JS regularisation helps (sweep (pc): 8 px maps, sigma 1 px, against none)",
            lambda: c[("js", "sigma1")] > c[("none", "sigma1")],
            lambda: (
                f"{c[('js', 'sigma1')]:.1f} vs {c[('none', 'sigma1')]:.1f}"
                + mpii_verdict(
                    ("pc_regularizer", {"reg": "js", "sigma": "sigma1"}),
                    ("pc_regularizer", {"reg": "none", "sigma": "sigma1"}),
                )
            ),
            margin=lambda: c[("js", "sigma1")] - c[("none", "sigma1")],
            precisions=prec,
        ),
        pclaim(
            "JS is the best of the three regularisers (variance, KL, JS; sigma 1 and 2 px)",
            lambda: (
                max(v for (r, _), v in c.items() if r == "js")
                > max(v for (r, _), v in c.items() if r in ("var", "kl"))
                if {r for r, _ in c} >= {"js", "kl", "var"}
                else None
            ),
            lambda: (
                ", ".join(f"{r} {s} {v:.1f}" for (r, s), v in sorted(c.items()) if r != "none")
                + "".join(
                    mpii_best("pc_regularizer", {"sigma": g}, "reg", ("js", "kl", "var"), where=g)
                    for g in ("sigma1", "sigma2")
                )
            ),
            margin=lambda: (
                max(v for (r, _), v in c.items() if r == "js")
                - max(v for (r, _), v in c.items() if r in ("var", "kl"))
            ),
            precisions=prec,
        ),
    ]
    for op in ("debiased", "rle", "local"):
        for stride in ("s32", "s8"):
            out.append(
                pclaim(
                    f"{OPS[op]} beats plain DSNT + JS at {stride}",
                    lambda op=op, stride=stride: f[(op, stride)] > f[("dsnt_js", stride)],
                    lambda op=op, stride=stride: (
                        f"{f[(op, stride)]:.1f} vs {f[('dsnt_js', stride)]:.1f}"
                        + mpii_verdict(
                            ("pf_newops", {"op": op, "stride": stride}),
                            ("pf_newops", {"op": "dsnt_js", "stride": stride}),
                        )
                    ),
                    margin=lambda op=op, stride=stride: f[(op, stride)] - f[("dsnt_js", stride)],
                    precisions=prec,
                )
            )
    out.append(
        pclaim(
            "debiasing gains more on the small maps (s32) than on the large (s8)",
            lambda: (
                (f[("debiased", "s32")] - f[("dsnt_js", "s32")])
                > (f[("debiased", "s8")] - f[("dsnt_js", "s8")])
            ),
            lambda: (
                f"s32 {f[('debiased', 's32')] - f[('dsnt_js', 's32')]:+.1f}, "
                f"s8 {f[('debiased', 's8')] - f[('dsnt_js', 's8')]:+.1f}"
            ),
        )
    )
    lines += out
    return out


def verdict_of(line: str) -> str:
    """The bold verdict of a claim line (``held``, ``did not hold, by ...``, ...)."""
    return line.split("**")[1] if line.count("**") >= 2 else "–"


def claim_text(line: str) -> str:
    return line[2:].split(": **", 1)[0]


def regimes(lines: list[str], ours: list[str]) -> None:
    """Each ordering's verdict in both regimes side by side, and what changed and why."""
    scratch_lines: list[str] = []
    base_report.orderings(scratch_lines)
    scratch = {claim_text(x): verdict_of(x) for x in scratch_lines if x.startswith("* ")}
    renamed = {
        "JS regularisation helps (sweep (pc): 8 px maps, sigma 1 px, against none)": (
            "JS regularisation helps (sweep (c): 12 px maps, sigma 1 px, against none)"
        )
    }
    lines += [
        "### The two regimes side by side",
        "",
        "| ordering | from scratch: ResNet-18, LSP 1000 images, 96 px, 10 epochs | "
        "pretrained: Lite0 from ImageNet, LSP + LSPET, 128 px, 3 epochs |",
        "|---|---|---|",
    ]
    for x in ours:
        text = claim_text(x)
        before = scratch.get(renamed.get(text, text), "not run")
        lines.append(f"| {text} | {before} | {verdict_of(x)} |")
    lines.append("")
    lines += ["What changed between the regimes, and why:", ""]
    points = differences()
    lines += [f"* {p}" for p in points] if points else ["* (no pretrained cell has finished)"]
    lines.append("")


def differences() -> list[str]:
    """Observations comparing the regimes, each only when the data for it exists."""
    a_old = {(r["strategy"], r["stride"]): r for r in read_csv("a_strategy")}
    a_new = {(r["strategy"], r["stride"]): r for r in read_csv("pa_strategy")}
    if not a_new:
        return []
    out = []
    best_old = max(a_old.values(), key=lambda r: r["pck20"]) if a_old else None
    best_new = max(a_new.values(), key=lambda r: r["pck20"])
    if best_old is not None:
        both = [k for k in a_new if k in a_old]
        lift = {k: a_new[k]["pck20"] - a_old[k]["pck20"] for k in both}
        text = (
            f"Level: the best pretrained cell so far ({point(best_new)}, "
            f"{best_new['pck20']:.1f} PCK@0.2, {best_new['train_minutes']:.0f} min of training) "
            f"against the best from scratch ({point(best_old)}, {best_old['pck20']:.1f})."
        )
        if both:
            text += (
                " Cell by cell (same strategy and stride; the pretrained maps are a third "
                "larger, 128 against 96 px crops): "
                + ", ".join(f"{s}-{k} {lift[(k, s)]:+.1f}" for k, s in both)
                + "."
            )
            if all(v > 0 for v in lift.values()):
                text += " ImageNet features and nine times the images lift every cell compared."
        text += (
            " The pretrained budget is 3 epochs (the paper trained 120), so these numbers are "
            "a floor, and the orderings are those of short training."
        )
        out.append(text)
    for stride in STRIDES:
        if ("heatmap", stride) in a_new and ("dsnt_js", stride) in a_new:
            r = a_new[("heatmap", stride)]
            size = crop_size()
            px = int(r["heatmap_px"])
            out.append(
                f"Heatmap matching at {stride}: {r['pck20']:.1f} against DSNT + JS "
                f"{a_new[('dsnt_js', stride)]['pck20']:.1f}. Its arg-max lands on one of "
                f"{px}x{px} cells, each {size // px} crop px wide at {size} px crops"
                + (
                    " (the same 32 px cells as the from-scratch s32 cells, 3 px maps of 96 px "
                    "crops)"
                    if size // px == 32
                    else ""
                )
                + f": up to half a cell, {size // px // 2} crop px, of quantisation error, "
                "which no training removes. The finer the threshold, the more it shows: "
                f"PCK@0.1 {r['pck10']:.1f} against DSNT + JS's "
                f"{a_new[('dsnt_js', stride)]['pck10']:.1f}. DSNT's expectation is continuous "
                "at any map size."
            )
            break

    def both(title: str, ours: str, other: str) -> list[str]:
        """``ours`` minus ``other`` (PCK@0.2) at each stride, in this regime then from scratch;
        the strides where this regime has both cells."""
        here = [s for s in STRIDES if (ours, s) in a_new and (other, s) in a_new]
        if here:
            out.append(
                f"{title}, pretrained: "
                + ", ".join(
                    f"{s} {a_new[(ours, s)]['pck20'] - a_new[(other, s)]['pck20']:+.1f}"
                    for s in here
                )
                + "; from scratch: "
                + ", ".join(
                    f"{s} {a_old[(ours, s)]['pck20'] - a_old[(other, s)]['pck20']:+.1f}"
                    for s in here
                    if (ours, s) in a_old and (other, s) in a_old
                )
                + "."
            )
        return here

    both("DSNT minus FC", "dsnt", "fc")
    js = both("JS against no regulariser", "dsnt_js", "dsnt")
    if js:
        gain = {s: a_new[("dsnt_js", s)]["pck20"] - a_new[("dsnt", s)]["pck20"] for s in js}
        hurt = [s for s in js if gain[s] < 0]
        if hurt:
            px = {s: int(a_new[("dsnt", s)]["heatmap_px"]) for s in hurt}
            out[-1] += (
                " JS lowered PCK at "
                + ", ".join(f"{s} ({px[s]} px maps)" for s in hurt)
                + ": a Gaussian target of sigma 1 px spreads over much of so small a map (on "
                "a 4x4 map its 2-sigma disc covers most cells), so the regulariser pulls the "
                "map away from the peaked shape the coordinate needs; the paper's gains were on "
                "maps of 7 px and more."
            )
        if any(gain[s] > 0 for s in js):
            out[-1] += (
                " Where it raised PCK ("
                + ", ".join(f"{s}" for s in js if gain[s] > 0)
                + ") the maps are larger, as in the paper."
            )
    out += debiased_points()
    return out


def debiased_points() -> list[str]:
    """The debiased cells against plain DSNT + JS, from ``experiments/debiased.py``'s
    ``docs/results/debiased_maps.csv`` (``[]`` until it has both rows of a stride)."""
    path = base_report.RESULTS / "debiased_maps.csv"
    if not path.is_file():
        return []
    import csv

    with path.open() as f:
        rows = {r["cell"]: r for r in csv.DictReader(f)}
    out = []
    for name, r in sorted(rows.items()):
        if r["coords"] != "debiased":
            continue
        stride = name.split("/")[1].split("-")[0]
        plain = rows.get(f"pa_strategy/{stride}-dsnt_js-seed0")
        if plain is None:
            continue
        out.append(
            f"Debiased DSNT at {stride} ({r['heatmap_px']} px maps) did not learn to localise "
            f"(`{name}`): its predictions vary {r['spread_x']} / {r['spread_y']} times as much "
            "as the joints do (x / y; plain DSNT + JS: "
            f"{plain['spread_x']} / {plain['spread_y']}), median error {r['median_error']} "
            f"normalised units against {plain['median_error']}, and the same held when the cell "
            "was run again. The debiasing factor 1 / (1 - N / C) (N cells, C the sum of "
            "exp(logits)) is 1 for a map with C <= N and unbounded as C falls to N from above, "
            "which is where nearly flat maps sit: on the test set the plain DSNT + JS cell's "
            f"maps have a median N / C of {plain['n_over_c']}, where debiasing would multiply "
            f"the coordinate by {plain['factor_median']} at the median and {plain['factor_p95']} "
            f"at the 95th percentile (the debiased cell's own maps: N / C {r['n_over_c']}, "
            f"factor {r['factor_median']} and {r['factor_p95']}). From random head weights "
            "every map starts flat, so the coordinates and their gradients start out "
            "multiplied by arbitrary factors; the correction is exact only for the map it "
            "models, a peak on a background of logit 0. `python -m experiments.debiased` "
            "measures these figures."
        )
    return out


def crop_size() -> int:
    """The crop side of the pretrained cells (one recipe for all)."""
    spec = yaml.safe_load(sweep_file("pa_strategy").read_text())
    return int(base_values(spec)["model"]["input_size"])


# ---------------------------------------------------------------------------- tables


def rerun_note() -> list[str]:
    """A paragraph naming the cells run again for their MPII score (``--retrain_unscored``),
    each with the first run's LSP score beside the new one; ``[]`` while there are none.
    Copies of such a cell in another sweep are not named twice."""
    done = records()
    rerun = [
        (sweep, r)
        for sweep in SWEEPS
        for r in read_csv(sweep, merge_seeds=False)
        if isinstance(r.get("earlier_pck20"), float)
        and trained_here(done.get(f"{sweep}/{r['cell']}", {}))
    ]
    if not rerun:
        return []
    return [
        "Run again for their MPII score (same recipe and seed; the new run's numbers are the "
        "ones above, the first run's LSP PCK@0.2 beside them, a measure of run-to-run noise at "
        "one seed): "
        + "; ".join(
            f"{sweep}/{r['cell']} {r['pck20']:.1f} (first run {r['earlier_pck20']:.1f})"
            for sweep, r in rerun
        )
        + ".",
        "",
    ]


def tables(lines: list[str]) -> None:
    rows = read_csv("pa_strategy")
    size = crop_size()
    titles = {s: f"{size // int(s[1:])} px ({s})" for s in STRIDES}
    text, _ = status("pa_strategy")
    lines += [f"### {SWEEPS['pa_strategy']}", "", text, ""]
    if rows:
        order = [s for s in STRATEGY_NAMES if any(r["strategy"] == s for r in rows)]
        for key, title in (("pck20", "PCK@0.2"), ("pck10", "PCK@0.1")):
            lines += [
                f"{title} (%), LSP test set, flip test:",
                "",
                grid_table(rows, "strategy", "stride", key, order, list(STRIDES), titles),
                "",
            ]
        if any(isinstance(r.get("mpii_pckh"), float) for r in rows):
            lines += [
                "MPII PCKh@0.5 (%), the second score: the MPII validation people whose frames "
                "are in ../shared/data/mpii (264 of 2958), official protocol, flip test, LSP "
                "joints mapped to MPII's by name (`python -m experiments.run pa --score_mpii`; "
                "– where the cell's checkpoint is gone and it still needs retraining):",
                "",
                grid_table(rows, "strategy", "stride", "mpii_pckh", order, list(STRIDES), titles),
                "",
            ]
        lines += base_report.seeds_note(rows)
        with plot("pck_vs_resolution_pretrained.png", "heatmap side (px)", "PCK@0.2 (%)") as ax:
            for s in order:
                pts = sorted((r["heatmap_px"], r["pck20"]) for r in rows if r["strategy"] == s)
                ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=STRATEGY_NAMES[s])
            ax.set_xscale("log", base=2)
            sides = sorted({int(r["heatmap_px"]) for r in rows})
            ax.set_xticks(sides, [str(v) for v in sides])
            ax.minorticks_off()
            ax.set_title(f"LSP, EfficientNet-Lite0 from ImageNet, {size} px crops")
        lines += [
            "![PCK against heatmap resolution, pretrained](results/pck_vs_resolution_pretrained.png)",
            "",
        ]
    cols = [
        ("cell", "cell"),
        ("pck20", "PCK@0.2"),
        ("pck10", "PCK@0.1"),
        ("auc", "AUC@0.5"),
        ("mpii_pckh", "MPII PCKh@0.5"),
        ("mpii_pckh_ci", "MPII 95% CI"),
        ("train_minutes", "train min"),
    ]
    for sweep in ("pb_activation", "pc_regularizer", "pf_newops"):
        text, _ = status(sweep)
        lines += [f"### {SWEEPS[sweep]}", "", text, ""]
        rows = read_csv(sweep)
        if rows:
            lines += [table(rows, cols), "", *base_report.seeds_note(rows)]
    lines += [
        "MPII PCKh@0.5: each cell's second score on the MPII validation people whose frames are "
        "in ../shared/data/mpii (264 of 2958; official protocol, flip test, LSP joints mapped "
        "to MPII's by name, 95% bootstrap interval over people), written when a cell finishes "
        "(`python -m experiments.run ... --score_mpii` for kept checkpoints); – where the cell "
        "ran before its checkpoint was kept and needs retraining to get it "
        "(`python -m experiments.run pa pf --retrain_unscored`).",
        "",
    ]
    lines += rerun_note()
    lines += [
        "Train min is each cell's own training time (a cell that is the same run as another "
        "sweep's repeats its minutes).",
        "",
    ]


def latency_points() -> list[tuple[float, float, str, str]]:
    """``(latency ms, PCK@0.2, strategy, stride)`` of the pretrained (a) cells timed in
    ``latency_cpu.csv``: what the PCK-vs-latency plot adds."""
    timed = base_report.latency_rows("pa_strategy")
    return [
        (float(timed[point(r)]["latency_ms"]), float(r["pck20"]), r["strategy"], r["stride"])
        for r in read_csv("pa_strategy")
        if point(r) in timed
    ]


# ---------------------------------------------------------------------------- (g) headline


def headline(lines: list[str]) -> None:
    """(g): the best DSNT cell, the best heatmap-matching cell and MediaPipe BlazePose, as
    measured in one run of ``benchmarks/peers.py`` (``docs/results/peers.json``)."""
    lines += ["### (g) Headline: the best DSNT and heatmap models against MediaPipe", ""]
    dsnt = [
        (r["pck20"], f"{name}/{r['cell']}")
        for name in ("pa_strategy", "pb_activation", "pc_regularizer", "pf_newops")
        for r in read_csv(name, merge_seeds=False)
        if name != "pa_strategy" or r["strategy"] in ("dsnt", "dsnt_js")
    ]
    heat = [
        (r["pck20"], f"pa_strategy/{r['cell']}")
        for r in read_csv("pa_strategy", merge_seeds=False)
        if r["strategy"] == "heatmap"
    ]
    if not dsnt or not heat:
        lines += ["Not yet measured: no finished DSNT and heatmap-matching cells.", ""]
        return
    best_dsnt, best_heat = max(dsnt)[1], max(heat)[1]
    path = base_report.RESULTS / "peers.json"
    doc = json.loads(path.read_text()) if path.is_file() else {}

    def entry(cell: str) -> dict[str, Any] | None:
        """The peers run's extra model that is ``cell``'s checkpoint, if it measured one."""
        for e in doc.get("also", []):
            if f"/{cell}/" in str(e.get("checkpoint", "")).replace("\\", "/"):
                return e
        return None

    # the best cells the peers run measured (a cell may have finished better since)
    timed_dsnt = [(p, c) for p, c in dsnt if entry(c) is not None]
    timed_heat = [(p, c) for p, c in heat if entry(c) is not None]
    command = ".venv/bin/python benchmarks/peers.py --threads 1 " + " ".join(
        f'--also "{cell}=runs/experiments/{cell}/last.ckpt"' for cell in (best_dsnt, best_heat)
    )
    if not timed_dsnt or not timed_heat:
        lines += [
            f"Not yet measured for the current best cells ({best_dsnt}, {best_heat}): "
            f"`{command}` (needs their run folders' checkpoints).",
            "",
        ]
        return
    chosen = (max(timed_dsnt), max(timed_heat))
    later = [
        f"{best} ({top:.1f}) finished after it and is not in the table; `{command}` adds it"
        for (top, best), (p, c) in zip((max(dsnt), max(heat)), chosen)
        if best != c
    ]
    shipped = {
        "key": "ours",
        "label": doc.get("ours", {}).get("model", "shipped model").split(" (")[0],
    }
    entries = [
        (entry(chosen[0][1]), "best DSNT cell"),
        (entry(chosen[1][1]), "best heatmap cell"),
        (shipped, "the shipped model"),
    ]
    headline_table(lines, doc, entries, doc.get("command", command))
    if later:
        lines += ["Since that run: " + "; ".join(later) + ".", ""]


def headline_table(
    lines: list[str], doc: dict[str, Any], entries: list[tuple[dict[str, Any], str]], command: str
) -> None:
    groups = ("Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle")
    keys = [(e["key"] + "_flip", f"{what}, {e['label']} (flip)") for e, what in entries]
    keys.append(("mediapipe", "MediaPipe BlazePose full (own detector)"))
    pck = doc["pck"]
    lat = doc["latency"]["results"]
    eff = doc.get("efficiency", {})
    head = (
        "| model | "
        + " | ".join(groups)
        + " | Total | batch-1 ms | params (M) | GMACs | peak MiB |"
    )
    out = [head, "|---" * (len(groups) + 6) + "|"]
    for key, label in keys:
        res = pck[key]["visible"]
        g = res.get("groups", {})
        e = eff.get(key.removesuffix("_flip"), {})
        cells_ = [f"{g.get(x, float('nan')):.1f}" for x in groups]
        ms = lat.get(key, {}).get("median_ms")

        def fmt(v: Any, d: int = 1) -> str:
            return "–" if v is None else f"{v:.{d}f}"

        out.append(
            f"| {label} | "
            + " | ".join(cells_)
            + f" | **{res['total']:.1f}** | {fmt(ms)} | {fmt(e.get('params_m'), 2)} | "
            f"{fmt(e.get('gmacs'), 2)} | {fmt(e.get('peak_memory_mib'), 0)} |"
        )
    lines += [
        f"Measured in one run of `{command}` ({doc['date']}, {doc['machine'].get('cpu', '')}, "
        f"{doc['latency']['threads']} thread(s)): PCK@0.2 on the visible limb joints of the "
        f"{doc['data']['images']} LSP test images (the joints MediaPipe predicts; ours are given "
        "the annotation box, MediaPipe finds the person), batch-1 latency from the decoded "
        "image to joints (ours with the flip test), parameters, multiply-adds and peak "
        "inference memory (`docs/results/peers.md` says how each is measured).",
        "",
        *out,
        "",
    ]


# ---------------------------------------------------------------------------- the section


def section(lines: list[str]) -> None:
    spec = yaml.safe_load(sweep_file("pa_strategy").read_text())
    recipe = base_values(spec)
    need = sum(status(s)[1] for s in SWEEPS)
    lines += [
        "## A short ImageNet regime: EfficientNet-Lite0, 3 epochs at 128 px, LSP + LSP-extended",
        "",
        "EfficientNet-Lite0 from its ImageNet weights (the only ImageNet weights obtainable "
        "here), trained on LSP 1-1000 + LSP-extended 1-9000 less 500 held-out images, scored "
        "on LSP 1001-2000 with the flip test, one recipe for every cell "
        f"(`experiments/base_pretrained.yaml`: {recipe['model']['input_size']} px crops, "
        f"{recipe['train']['epochs']} epochs of {recipe['optim']['optimizer']} at lr "
        f"{recipe['optim']['lr']:g} with a cosine schedule, batch {recipe['data']['batch_size']}, "
        f"the paper's augmentation, float32, one thread per cell on {cell_machines()}; "
        "each cell's machine, precision and minutes are in its JSON). Numbers are from the "
        f"last checkpoint. Training spent so far: {spent_minutes():.0f} min; the unfinished "
        f"cells need about {need:.0f} min more (one thread each; two run side by side on this "
        "machine). `python -m experiments.run pa pb pc pf` runs them, resuming any stopped cell.",
        "",
        "This takes the paper's start (ImageNet weights), not its recipe. Where it differs, and "
        "what each difference can and cannot explain:",
        "",
        *(f"* {line}" for line in DIFFERENCES),
        "",
        "### Which of the paper's orderings held",
        "",
    ]
    ours = orderings(lines)
    lines.append("")
    seeds_paragraph(lines)
    regimes(lines, ours)
    tables(lines)
    headline(lines)
