"""Benchmark dsntpose.ops against dsntnn 0.5.3 (the paper's library) in the same run.

Two paths, at B=32, J=16 and square maps of 7, 14, 28, 56 and 64 px:

  (i)  flat softmax -> dsnt
  (ii) flat softmax -> dsnt -> Euclidean loss + JS regulariser to the target Gaussian
       (sigma 1 px) -> masked mean (the paper's training path)

each forward only and forward+backward, against a floor: a bare ``torch.softmax`` over the same
maps, forward+backward. Ours is timed twice: composed from the dsntnn-named ops
(``flat_softmax``, ``dsnt``, ``js_reg_losses``), and fused (``softmax_dsnt``, one autograd node
for softmax, DSNT and JS). Ours and dsntnn are timed in alternating rounds so that load on a
shared machine hits both alike; the figures to trust are the ratios, not the milliseconds.

    python benchmarks/ops.py [--threads 2] [--repeats 30] [--json FILE] [--markdown FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import dsntnn
import torch

from dsntpose import ops
from dsntpose.bench import cpu_name

B, J = 32, 16
SIZES = (7, 14, 28, 56, 64)


def ours_path_i(x: torch.Tensor, t: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    return ops.dsnt(ops.flat_softmax(x))


def fused_path_i(x: torch.Tensor, t: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    return ops.softmax_dsnt(x).coords


def dsntnn_path_i(x: torch.Tensor, t: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    return dsntnn.dsnt(dsntnn.flat_softmax(x))


def ours_path_ii(x: torch.Tensor, t: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    p = ops.flat_softmax(x)
    c = ops.dsnt(p)
    return ops.average_loss(ops.euclidean_losses(c, t) + ops.js_reg_losses(p, t, 1.0), m)


def fused_path_ii(x: torch.Tensor, t: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    _, c, js = ops.softmax_dsnt(x, t, 1.0)
    assert js is not None
    return ops.average_loss(ops.euclidean_losses(c, t) + js, m)


def dsntnn_path_ii(x: torch.Tensor, t: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    p = dsntnn.flat_softmax(x)
    c = dsntnn.dsnt(p)
    return dsntnn.average_loss(dsntnn.euclidean_losses(c, t) + dsntnn.js_reg_losses(p, t, 1.0), m)


def floor_softmax(x: torch.Tensor, t: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    return torch.softmax(x.flatten(2), -1)


def run_once(
    fn: Callable[..., torch.Tensor],
    x: torch.Tensor,
    t: torch.Tensor,
    m: torch.Tensor,
    backward: bool,
) -> float:
    """Seconds for one call (plus a backward of the summed output when asked)."""
    x.grad = None
    start = time.perf_counter()
    if backward:
        fn(x, t, m).sum().backward()
    else:
        with torch.no_grad():
            fn(x, t, m)
    return time.perf_counter() - start


def bench_size(size: int, repeats: int) -> dict[str, float]:
    g = torch.Generator().manual_seed(size)
    x = torch.randn(B, J, size, size, generator=g, requires_grad=True)
    t = torch.rand(B, J, 2, generator=g) * 1.8 - 0.9
    m = (torch.rand(B, J, generator=g) > 0.1).float()
    cases = {
        "i_fwd_ours": (ours_path_i, False),
        "i_fwd_dsntnn": (dsntnn_path_i, False),
        "i_fwd_fused": (fused_path_i, False),
        "i_fb_ours": (ours_path_i, True),
        "i_fb_fused": (fused_path_i, True),
        "i_fb_dsntnn": (dsntnn_path_i, True),
        "ii_fwd_ours": (ours_path_ii, False),
        "ii_fwd_fused": (fused_path_ii, False),
        "ii_fwd_dsntnn": (dsntnn_path_ii, False),
        "ii_fb_ours": (ours_path_ii, True),
        "ii_fb_fused": (fused_path_ii, True),
        "ii_fb_dsntnn": (dsntnn_path_ii, True),
        "floor_fb": (floor_softmax, True),
    }
    times: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(3):  # warm-up
        for fn, bwd in cases.values():
            run_once(fn, x, t, m, bwd)
    for _ in range(repeats):  # alternate all cases every round
        for key, (fn, bwd) in cases.items():
            times[key].append(run_once(fn, x, t, m, bwd))
    return {k: statistics.median(v) * 1e3 for k, v in times.items()}


def main(argv: list[str] | None = None) -> list[dict[str, float]]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--json", type=Path, default=None, help="write the rows as JSON")
    parser.add_argument("--markdown", type=Path, default=None, help="write the table as markdown")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    rows = []
    for size in args.sizes:
        r = bench_size(size, args.repeats)
        r["size"] = size
        rows.append(r)

    header = (
        "| map | (i) fwd+bwd ms: ours / fused / dsntnn | (i) speed-up: ours, fused | "
        "(ii) fwd ms: ours / fused / dsntnn | (ii) fwd+bwd ms: ours / fused / dsntnn | "
        "(ii) speed-up: ours, fused | floor ms | (i) / floor | (ii) fused / floor |"
    )
    lines = [header, "|" + "---|" * 9]
    for r in rows:
        lines.append(
            f"| {r['size']}x{r['size']} "
            f"| {r['i_fb_ours']:.2f} / {r['i_fb_fused']:.2f} / {r['i_fb_dsntnn']:.2f} "
            f"| {r['i_fb_dsntnn'] / r['i_fb_ours']:.2f}x, {r['i_fb_dsntnn'] / r['i_fb_fused']:.2f}x "
            f"| {r['ii_fwd_ours']:.2f} / {r['ii_fwd_fused']:.2f} / {r['ii_fwd_dsntnn']:.2f} "
            f"| {r['ii_fb_ours']:.2f} / {r['ii_fb_fused']:.2f} / {r['ii_fb_dsntnn']:.2f} "
            f"| {r['ii_fb_dsntnn'] / r['ii_fb_ours']:.2f}x, {r['ii_fb_dsntnn'] / r['ii_fb_fused']:.2f}x "
            f"| {r['floor_fb']:.2f} | {r['i_fb_ours'] / r['floor_fb']:.2f} "
            f"| {r['ii_fb_fused'] / r['floor_fb']:.2f} |"
        )
    machine = f"{cpu_name()}, torch {torch.__version__}, {args.threads} threads"
    note = (
        f"B={B}, J={J}, median of {args.repeats} alternating rounds; {machine}; load average "
        f"{os.getloadavg()[0]:.1f} at the end. Speed-up = dsntnn time / ours (forward+backward); "
        "ours = the dsntnn-named ops composed, fused = `ops.softmax_dsnt` (one autograd node); "
        "floor = bare softmax forward+backward over the same maps."
    )
    table = "\n".join(lines)
    print(table)
    print(note)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"note": note, "rows": rows}, indent=2))
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(table + "\n\n" + note + "\n")
    return rows


if __name__ == "__main__":
    main()
