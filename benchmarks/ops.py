"""Benchmark dsntpose.ops against dsntnn 0.5.3 (the paper's library), forward+backward.

Rows (J=16 maps per sample, square maps, float32; every row times ours and dsntnn's in the same
process, alternating):

  ops          ``dsnt(flat_softmax(x))``, the op the package is named after, at 4-128 px and
               batch 1, 8, 32 and 64
  fused        the same values from one autograd node, ``softmax_dsnt(x).coords``, against
               the same dsntnn composition, same sizes and batches
  softmax      ``flat_softmax(x)`` alone                       } the per-op split, batch 32:
  dsnt         ``dsnt(p)`` on a map that requires grad        } a regression in one op
  losses       ``average_loss(euclidean_losses(c, t), mask)``  } shows in its own row
  regulariser  ``js_reg_losses(p, t, 1.0)``                     }
  train        the paper's training path, softmax -> DSNT -> Euclidean + JS (sigma 1 px) ->
               masked mean: ours fused (``ops.softmax_dsnt``) against dsntnn's, at 7-64 px,
               batch 32
  control      dsntnn's ``dsnt(flat_softmax(x))`` against itself (an A/A test, each side on
               its own copy of the inputs), same sizes and batches as ``ops``: its spread
               around 1.0x is what noise alone does to a ratio in this harness, so a worst
               ratio inside the control's band at that size is not a measured difference

Timing: ``torch.utils.benchmark.Timer.blocked_autorange`` (``--min-run-time`` seconds per
measurement), the two libraries of a row back to back and the rows in turn, for ``--rounds``
rounds; a row's ratio is the median over rounds of dsntnn's time / ours (above 1: ours is
faster). Each (regime, thread count) runs in its own child process:

  fresh   a new process with glibc's default allocator: what a short script or the first
          steps of training meet (large temporaries are new mmaps whose pages fault in until
          glibc raises its mmap threshold)
  steady  a new process whose mmap and trim thresholds are pinned high (``mallopt``: 1 GiB
          each), so freed temporaries are reused: what a long training process meets, and
          what a GPU's caching allocator gives

on 1 thread (the child pinned to one core) and 2 threads. The summary quotes the WORST ratio
of each row over batches, regimes and thread counts, with where it occurred.

    python benchmarks/ops.py [--threads 1 2] [--rounds 5] [--quick] [--json F] [--markdown F]
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import dsntnn
import torch
from torch.utils import benchmark

from dsntpose import ops
from dsntpose.bench import cpu_name

J = 16
OPS_SIZES = (4, 7, 14, 28, 56, 64, 128)
OPS_BATCHES = (1, 8, 32, 64)
SPLIT_SIZES = (4, 7, 14, 28, 56, 64, 128)
TRAIN_SIZES = (7, 14, 28, 56, 64)
SPLIT_BATCH = 32
REGIMES = ("fresh", "steady")
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3

Fn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def pin_steady() -> bool:
    """Pin glibc's mmap and trim thresholds high; False where mallopt is not available."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        ok = libc.mallopt(M_MMAP_THRESHOLD, 1 << 30) and libc.mallopt(M_TRIM_THRESHOLD, 1 << 30)
    except (OSError, AttributeError):
        return False
    return bool(ok)


# ------------------------------------------------------------------ the rows' functions
# each takes (x, t, m): x the leaf that requires grad, t targets (B, J, 2), m a mask (B, J)


def ops_ours(x: torch.Tensor, t: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    return ops.dsnt(ops.flat_softmax(x))


def ops_dsntnn(x: torch.Tensor, t: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    return dsntnn.dsnt(dsntnn.flat_softmax(x))


def fused_ours(x: torch.Tensor, t: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    return ops.softmax_dsnt(x).coords


def softmax_ours(x: torch.Tensor, t: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    return ops.flat_softmax(x)


def softmax_dsntnn(x: torch.Tensor, t: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    return dsntnn.flat_softmax(x)


def dsnt_ours(x: torch.Tensor, t: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    return ops.dsnt(x)


def dsnt_dsntnn(x: torch.Tensor, t: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    return dsntnn.dsnt(x)


def losses_ours(x: torch.Tensor, t: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    return ops.average_loss(ops.euclidean_losses(x, t), m)


def losses_dsntnn(x: torch.Tensor, t: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    return dsntnn.average_loss(dsntnn.euclidean_losses(x, t), m)


def reg_ours(x: torch.Tensor, t: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    return ops.js_reg_losses(x, t, 1.0)


def reg_dsntnn(x: torch.Tensor, t: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    return dsntnn.js_reg_losses(x, t, 1.0)


def train_ours(x: torch.Tensor, t: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    _, c, js = ops.softmax_dsnt(x, t, 1.0)
    assert js is not None
    return ops.average_loss(ops.euclidean_losses(c, t) + js, m)


def train_dsntnn(x: torch.Tensor, t: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    p = dsntnn.flat_softmax(x)
    c = dsntnn.dsnt(p)
    return dsntnn.average_loss(dsntnn.euclidean_losses(c, t) + dsntnn.js_reg_losses(p, t, 1.0), m)


#: row name -> (ours, dsntnn, what the leaf x is: "logits", "probs" or "coords")
ROWS: dict[str, tuple[Fn, Fn, str]] = {
    "ops": (ops_ours, ops_dsntnn, "logits"),
    "fused": (fused_ours, ops_dsntnn, "logits"),
    "softmax": (softmax_ours, softmax_dsntnn, "logits"),
    "dsnt": (dsnt_ours, dsnt_dsntnn, "probs"),
    "losses": (losses_ours, losses_dsntnn, "coords"),
    "regulariser": (reg_ours, reg_dsntnn, "probs"),
    "train": (train_ours, train_dsntnn, "logits"),
    "control": (ops_dsntnn, ops_dsntnn, "logits"),
}


def cases(quick: bool, rows: list[str] | None = None) -> list[tuple[str, int, int]]:
    """``(row, batch, size)`` of every case (of ``rows`` only, when given)."""
    if quick:
        out = [("ops", 8, 7), ("ops", 32, 28), ("dsnt", 32, 28), ("train", 32, 14)]
    else:
        out = [
            (row, b, s)
            for row in ("ops", "fused", "control")
            for s in OPS_SIZES
            for b in OPS_BATCHES
        ]
        for row in ("softmax", "dsnt", "regulariser"):
            out += [(row, SPLIT_BATCH, s) for s in SPLIT_SIZES]
        out += [("losses", SPLIT_BATCH, 0)]  # coordinates only: no map size
        out += [("train", SPLIT_BATCH, s) for s in TRAIN_SIZES]
    return [c for c in out if rows is None or c[0] in rows]


def inputs(
    kind: str, batch: int, size: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    t = torch.rand(batch, J, 2, generator=g) * 1.8 - 0.9
    m = (torch.rand(batch, J, generator=g) > 0.1).float()
    if kind == "coords":
        x = torch.rand(batch, J, 2, generator=g) * 2 - 1
    else:
        x = torch.randn(batch, J, size, size, generator=g)
        if kind == "probs":
            x = torch.softmax(x.flatten(2), -1).view_as(x)
    return x.requires_grad_(), t, m


def make_stmt(fn: Fn, x: torch.Tensor, t: torch.Tensor, m: torch.Tensor) -> Callable[[], None]:
    def stmt() -> None:
        torch.autograd.grad(fn(x, t, m).sum(), x)

    return stmt


def worker(
    regime: str,
    threads: int,
    rounds: int,
    min_run_time: float,
    quick: bool,
    rows: list[str] | None = None,
) -> dict:
    """Time every case in this process; returns per-case lists of per-round times (s)."""
    pinned = pin_steady() if regime == "steady" else False
    if threads == 1 and hasattr(os, "sched_setaffinity"):
        cpus = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpus[-1]})
    torch.set_num_threads(threads)
    todo = cases(quick, rows)
    stmts = {}
    for i, (row, batch, size) in enumerate(todo):
        ours, theirs, kind = ROWS[row]
        x, t, m = inputs(kind, batch, size, seed=i)
        # each library gets its own copy of the inputs, so neither reads the other's cache lines
        x2 = x.detach().clone().requires_grad_()
        stmts[(row, batch, size)] = (make_stmt(ours, x, t, m), make_stmt(theirs, x2, t, m))
    times: dict[str, dict[str, list[float]]] = {}
    for r in range(rounds):
        for key, (s_ours, s_theirs) in stmts.items():
            pair = [("ours", s_ours), ("dsntnn", s_theirs)]
            if r % 2:  # alternate which library goes first
                pair.reverse()
            rec = times.setdefault("/".join(map(str, key)), {"ours": [], "dsntnn": []})
            for lib, stmt in pair:
                timer = benchmark.Timer("stmt()", globals={"stmt": stmt}, num_threads=threads)
                rec[lib].append(timer.blocked_autorange(min_run_time=min_run_time).median)
    return {"regime": regime, "threads": threads, "mallopt_pinned": pinned, "times": times}


def run_child(regime: str, threads: int, args: argparse.Namespace) -> dict:
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        regime,
        "--threads",
        str(threads),
        "--rounds",
        str(args.rounds),
        "--min-run-time",
        str(args.min_run_time),
    ]
    cmd += ["--quick"] if args.quick else []
    cmd += ["--rows", *args.rows] if args.rows else []
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


# ------------------------------------------------------------------ tables


def ratios(run: dict) -> dict[str, float]:
    """Per case: the median over rounds of dsntnn's time / ours."""
    return {
        k: statistics.median(d / o for d, o in zip(v["dsntnn"], v["ours"]))
        for k, v in run["times"].items()
    }


def label(key: str) -> tuple[str, int, int]:
    row, batch, size = key.split("/")
    return row, int(batch), int(size)


def control_band(
    per_run: dict[tuple[str, int], dict[str, float]],
) -> dict[int, tuple[float, float]]:
    """Map size -> (lowest, highest) ratio of the A/A ``control`` row over batches, regimes
    and thread counts: the spread noise alone gives."""
    band: dict[int, tuple[float, float]] = {}
    for col in per_run.values():
        for k, ratio in col.items():
            row, _, size = label(k)
            if row == "control":
                lo, hi = band.get(size, (ratio, ratio))
                band[size] = (min(lo, ratio), max(hi, ratio))
    return band


def tables(runs: list[dict]) -> tuple[str, str, dict]:
    """The summary (worst ratio per row) and the full per-run tables, as markdown."""
    per_run = {(r["regime"], r["threads"]): ratios(r) for r in runs}
    keys = list(runs[0]["times"])
    cols = list(per_run)
    worst: dict[str, dict] = {}
    for k in keys:
        row, batch, size = label(k)
        name = f"{row} {size} px" if size else row
        for col in cols:
            ratio = per_run[col][k]
            w = worst.get(name)
            if w is None or ratio < w["ratio"]:
                worst[name] = {"ratio": ratio, "batch": batch, "regime": col[0], "threads": col[1]}
    band = control_band(per_run)
    lines = [
        "| row | map | worst ratio (dsntnn time / ours) | where: batch, regime, threads "
        "| control at this map (noise band) |",
        "|---|---|---|---|---|",
    ]
    for name, w in worst.items():
        row, _, px = name.partition(" ")
        size = int(px.replace(" px", "")) if px else 0
        lo_hi = band.get(size)
        lines.append(
            f"| {row} | {px.replace(' px', '') + ' px' if px else '-'} | {w['ratio']:.2f}x "
            f"| B={w['batch']}, {w['regime']}, {w['threads']} thr "
            f"| {f'{lo_hi[0]:.2f}-{lo_hi[1]:.2f}x' if lo_hi and row != 'control' else '-'} |"
        )
    summary = "\n".join(lines)
    full = [
        "| row | batch | map | " + " | ".join(f"{reg}, {thr} thr" for reg, thr in cols) + " |",
        "|---|---|---|" + "---|" * len(cols),
    ]
    for k in keys:
        row, batch, size = label(k)
        cells = []
        for col in cols:
            run = next(r for r in runs if (r["regime"], r["threads"]) == col)
            t = run["times"][k]
            ms_o = statistics.median(t["ours"]) * 1e3
            ms_d = statistics.median(t["dsntnn"]) * 1e3
            cells.append(f"{per_run[col][k]:.2f}x ({ms_o:.3g} / {ms_d:.3g})")
        full.append(f"| {row} | {batch} | {size or '-'} | " + " | ".join(cells) + " |")
    return summary, "\n".join(full), worst


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--regimes", nargs="+", default=list(REGIMES), choices=REGIMES)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--min-run-time", type=float, default=0.2, help="s per measurement")
    parser.add_argument("--quick", action="store_true", help="a CI-sized smoke run")
    parser.add_argument(
        "--rows", nargs="+", default=None, choices=list(ROWS), help="only these rows (default all)"
    )
    parser.add_argument("--conditions", default="", help="what else ran on the machine")
    parser.add_argument("--json", type=Path, default=None, help="write the results as JSON")
    parser.add_argument("--markdown", type=Path, default=None, help="write the tables")
    parser.add_argument("--worker", choices=REGIMES, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.min_run_time = 2, 0.05
    if args.worker:
        res = worker(
            args.worker, args.threads[0], args.rounds, args.min_run_time, args.quick, args.rows
        )
        print(json.dumps(res))
        return res

    start = time.time()
    runs = []
    for threads in args.threads:
        for regime in args.regimes:
            runs.append(run_child(regime, threads, args))
            print(f"{regime}, {threads} thread(s) done", file=sys.stderr, flush=True)
    summary, full, worst = tables(runs)
    machine = (
        f"{cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__}, dsntnn "
        f"{getattr(dsntnn, '__version__', '0.5.3')}"
    )
    pinned = all(r["mallopt_pinned"] for r in runs if r["regime"] == "steady")
    note = (
        f"{machine}. J={J}, float32, forward+backward (`torch.autograd.grad`), "
        f"`blocked_autorange(min_run_time={args.min_run_time})` per measurement, {args.rounds} "
        "rounds with the two libraries alternating (which goes first swaps each round), a "
        "row's ratio the median over rounds; each regime and thread count in its own fresh "
        "child process (1 thread: pinned to one core); steady = glibc mmap/trim thresholds "
        f"pinned at 1 GiB ({'mallopt applied' if pinned else 'mallopt NOT available'}). "
        f"Load average {os.getloadavg()[0]:.2f} at the end; run took "
        f"{(time.time() - start) / 60:.1f} min."
        + (f" Conditions: {args.conditions}" if args.conditions else "")
    )
    text = (
        "Worst ratio of each row over batches, regimes (fresh process, steady allocator) and "
        "thread counts (above 1: ours is faster):\n\n"
        f"{summary}\n\n{note}\n"
    )
    detail = f"## Every measurement\n\nratio (ours ms / dsntnn ms), median over rounds:\n\n{full}\n"
    print(text)
    print(detail)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"note": note, "worst": worst, "runs": runs}, indent=1))
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(f"# benchmarks/ops.py\n\n{text}\n{detail}")
    return {"worst": worst, "runs": runs, "note": note}


if __name__ == "__main__":
    main()
