"""Benchmark dsntpose.ops against dsntnn 0.5.3 (the paper's library) in the same run.

Part 1, the ops, at B=32, J=16 and square maps of 7, 14, 28, 56 and 64 px, forward+backward:

  (i)  flat softmax -> dsnt ("ops only": ours composed against dsntnn's)
  (ii) flat softmax -> dsnt -> Euclidean loss + JS regulariser to the target Gaussian
       (sigma 1 px) -> masked mean (the paper's training path): ours fused
       (``ops.softmax_dsnt``, one autograd node), ours composed from the dsntnn-named ops, and
       dsntnn's

against a floor, a bare ``torch.softmax`` over the same maps, forward+backward.

Each case is timed in two allocation regimes, switched inside the one process with glibc's
``mallopt``:

  steady  mmap and trim thresholds pinned high (32 MiB / 1 GiB), so freed temporaries go back
          to the heap and the next call reuses them. This is what a training process sees:
          glibc raises its mmap threshold by itself to the size of the largest temporary
          freed (up to 32 MiB), so after the first steps every map-sized temporary is
          recycled; a GPU's caching allocator does the same.
  fresh   both thresholds pinned at glibc's initial 128 KiB: every map-sized temporary is a
          new mmap whose pages fault in on first touch (a short script, or the first step).

The figures to quote are the steady ones. Cases and regimes alternate inside every round
(``torch.utils.benchmark``, median over rounds), so load on a shared machine hits all alike:
trust the ratios, not the milliseconds.

Part 2, what users feel: the share of a whole training step (forward, backward, RMSprop step)
spent in the head and loss (1x1 conv, softmax, DSNT, Euclidean + JS, masked mean) for
ResNet-18 and EfficientNet-Lite0 at output stride 8, dsntpose (``softmax_dsnt``) against
dsntnn in the same run (steady regime). The head+loss time is measured on the backbone's
features, detached, forward+backward.

    python benchmarks/ops.py [--threads 2] [--rounds 7] [--quick] [--json FILE] [--markdown FILE]
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import json
import os
import statistics
from collections.abc import Callable
from pathlib import Path

import dsntnn
import torch
from torch.utils import benchmark

from dsntpose import ops
from dsntpose.bench import cpu_name

B, J = 32, 16
SIZES = (7, 14, 28, 56, 64)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
REGIMES = ("steady", "fresh")

Path_fn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        lib = ctypes.CDLL(name or "libc.so.6")
        lib.mallopt  # noqa: B018 (glibc only)
    except (OSError, AttributeError):
        return None
    return lib


LIBC = _libc()


def set_regime(regime: str) -> bool:
    """Pin glibc's thresholds for ``regime``; False where mallopt is not available."""
    if LIBC is None:
        return False
    if regime == "steady":
        ok = LIBC.mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024)
        ok &= LIBC.mallopt(M_TRIM_THRESHOLD, 1024 * 1024 * 1024)
    else:
        ok = LIBC.mallopt(M_MMAP_THRESHOLD, 128 * 1024)
        ok &= LIBC.mallopt(M_TRIM_THRESHOLD, 128 * 1024)
        LIBC.malloc_trim(0)
    return bool(ok)


# ------------------------------------------------------------------ part 1: the ops


def ours_i(x: torch.Tensor, t: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    return ops.dsnt(ops.flat_softmax(x))


def dsntnn_i(x: torch.Tensor, t: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    return dsntnn.dsnt(dsntnn.flat_softmax(x))


def fused_ii(x: torch.Tensor, t: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    _, c, js = ops.softmax_dsnt(x, t, 1.0)
    assert js is not None
    return ops.average_loss(ops.euclidean_losses(c, t) + js, m)


def composed_ii(x: torch.Tensor, t: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    p = ops.flat_softmax(x)
    c = ops.dsnt(p)
    return ops.average_loss(ops.euclidean_losses(c, t) + ops.js_reg_losses(p, t, 1.0), m)


def dsntnn_ii(x: torch.Tensor, t: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    p = dsntnn.flat_softmax(x)
    c = dsntnn.dsnt(p)
    return dsntnn.average_loss(dsntnn.euclidean_losses(c, t) + dsntnn.js_reg_losses(p, t, 1.0), m)


def floor(x: torch.Tensor, t: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    return torch.softmax(x.flatten(2), -1)


CASES: dict[str, Path_fn] = {
    "floor": floor,
    "i_ours": ours_i,
    "i_dsntnn": dsntnn_i,
    "ii_fused": fused_ii,
    "ii_composed": composed_ii,
    "ii_dsntnn": dsntnn_ii,
}


def fwd_bwd(fn: Path_fn, x: torch.Tensor, t: torch.Tensor, m: torch.Tensor) -> None:
    x.grad = None
    fn(x, t, m).sum().backward()


def _timer(stmt: Callable[[], None], threads: int) -> benchmark.Timer:
    return benchmark.Timer("stmt()", globals={"stmt": stmt}, num_threads=threads)


def bench_size(size: int, rounds: int, threads: int, budget_s: float) -> dict[str, float]:
    """Median ms per call of every case in every regime: keys ``{regime}:{case}``."""
    g = torch.Generator().manual_seed(size)
    x = torch.randn(B, J, size, size, generator=g, requires_grad=True)
    t = torch.rand(B, J, 2, generator=g) * 1.8 - 0.9
    m = (torch.rand(B, J, generator=g) > 0.1).float()
    stmts = {k: (lambda fn=fn: fwd_bwd(fn, x, t, m)) for k, fn in CASES.items()}
    number = {}
    set_regime("steady")
    for key, stmt in stmts.items():  # warm-up, and calls per measurement for ~budget_s
        pilot = _timer(stmt, threads).timeit(3).median
        number[key] = max(2, int(budget_s / max(pilot, 1e-6)))
    times: dict[str, list[float]] = {}
    for _ in range(rounds):
        for regime in REGIMES:
            set_regime(regime)
            for key, stmt in stmts.items():
                ms = _timer(stmt, threads).timeit(number[key]).median * 1e3
                times.setdefault(f"{regime}:{key}", []).append(ms)
    set_regime("steady")
    return {k: statistics.median(v) for k, v in times.items()}


def ops_tables(rows: list[dict[str, float]]) -> str:
    out = []
    for regime in REGIMES:
        r0 = f"{regime}:"
        out.append(
            f"**{regime}** allocation regime"
            + (" (what training sees)" if regime == "steady" else "")
        )
        out.append("")
        out.append(
            "| map | (i) ms: ours / dsntnn | (i) ours vs dsntnn | (ii) ms: fused / composed / dsntnn "
            "| (ii) fused vs dsntnn | (ii) composed vs dsntnn | floor ms | (ii) fused / floor |"
        )
        out.append("|" + "---|" * 8)
        for r in rows:
            g = {k.removeprefix(r0): v for k, v in r.items() if k.startswith(r0)}
            out.append(
                f"| {int(r['size'])}x{int(r['size'])} "
                f"| {g['i_ours']:.2f} / {g['i_dsntnn']:.2f} | {g['i_dsntnn'] / g['i_ours']:.2f}x "
                f"| {g['ii_fused']:.2f} / {g['ii_composed']:.2f} / {g['ii_dsntnn']:.2f} "
                f"| {g['ii_dsntnn'] / g['ii_fused']:.2f}x | {g['ii_dsntnn'] / g['ii_composed']:.2f}x "
                f"| {g['floor']:.2f} | {g['ii_fused'] / g['floor']:.2f} |"
            )
        out.append("")
    return "\n".join(out)


# ------------------------------------------------------------------ part 2: share of a step


def _head_loss(lib: str) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]:
    return fused_ii if lib == "dsntpose" else dsntnn_ii


def bench_step_share(
    backbone_name: str, batch: int, input_size: int, rounds: int, threads: int
) -> dict[str, float | str]:
    """Step and head+loss times (ms) for dsntpose and dsntnn, and the head+loss share."""
    from dsntpose.config import ModelConfig
    from dsntpose.model import build_model

    torch.manual_seed(0)
    cfg = ModelConfig(backbone=backbone_name, output_stride=8, joints="lsp", input_size=input_size)
    model = build_model(cfg).train()
    conv = model.head.conv
    opt = torch.optim.RMSprop(model.parameters(), lr=1e-6)
    images = torch.rand(batch, 3, input_size, input_size)
    joints = cfg.num_joints
    target = torch.rand(batch, joints, 2) * 1.8 - 0.9
    mask = (torch.rand(batch, joints) > 0.1).float()
    with torch.no_grad():
        feats = model.backbone(images).detach()
    map_px = int(conv(feats).shape[-1])

    def step(lib: str) -> None:
        opt.zero_grad(set_to_none=True)
        logits = conv(model.backbone(images))
        _head_loss(lib)(logits, target, mask).backward()
        opt.step()

    def head(lib: str) -> None:
        f = feats.detach().requires_grad_()
        _head_loss(lib)(conv(f), target, mask).backward()
        conv.zero_grad(set_to_none=True)

    set_regime("steady")
    stmts = {
        f"{kind}_{lib}": (lambda kind=kind, lib=lib: (step if kind == "step" else head)(lib))
        for lib in ("dsntpose", "dsntnn")
        for kind in ("step", "head")
    }
    for stmt in stmts.values():
        stmt()  # warm-up
    times: dict[str, list[float]] = {}
    head_number = {}
    for key, stmt in stmts.items():
        if key.startswith("head"):
            pilot = _timer(stmt, threads).timeit(3).median
            head_number[key] = max(3, int(0.05 / max(pilot, 1e-6)))
    for _ in range(rounds):
        for key, stmt in stmts.items():
            n = head_number.get(key, 1)
            times.setdefault(key, []).append(_timer(stmt, threads).timeit(n).median * 1e3)
    med = {k: statistics.median(v) for k, v in times.items()}
    out: dict[str, float | str] = {"model": f"{backbone_name}-os8", "map_px": map_px}
    out.update(med)
    for lib in ("dsntpose", "dsntnn"):
        out[f"share_{lib}"] = med[f"head_{lib}"] / med[f"step_{lib}"]
    return out


def share_table(rows: list[dict[str, float | str]], batch: int, input_size: int) -> str:
    lines = [
        f"| model (batch {batch}, {input_size} px in) | map | step ms: dsntpose / dsntnn "
        "| head+loss ms: dsntpose / dsntnn | head+loss share of the step: dsntpose / dsntnn |",
        "|" + "---|" * 5,
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['map_px']}x{r['map_px']} "
            f"| {float(r['step_dsntpose']):.0f} / {float(r['step_dsntnn']):.0f} "
            f"| {float(r['head_dsntpose']):.2f} / {float(r['head_dsntnn']):.2f} "
            f"| {100 * float(r['share_dsntpose']):.1f}% / {100 * float(r['share_dsntnn']):.1f}% |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--quick", action="store_true", help="a CI-sized smoke run")
    parser.add_argument("--no-models", action="store_true", help="skip part 2")
    parser.add_argument("--batch", type=int, default=8, help="part 2 batch size")
    parser.add_argument("--input-size", type=int, default=224, help="part 2 input size")
    parser.add_argument("--json", type=Path, default=None, help="write the results as JSON")
    parser.add_argument("--markdown", type=Path, default=None, help="write the tables")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.sizes, args.batch, args.input_size = 2, [7, 28], 2, 128
    torch.set_num_threads(args.threads)
    budget = 0.01 if args.quick else 0.03

    rows = []
    for size in args.sizes:
        r = bench_size(size, args.rounds, args.threads, budget)
        print(f"{size} px done", flush=True)
        r["size"] = size
        rows.append(r)
    text = ops_tables(rows)
    share_rows: list[dict[str, float | str]] = []
    if not args.no_models:
        for name in ("resnet18", "efficientnet_lite0"):
            share_rows.append(
                bench_step_share(
                    name, args.batch, args.input_size, max(args.rounds // 2, 1), args.threads
                )
            )
        text += "\n" + share_table(share_rows, args.batch, args.input_size) + "\n"
    machine = f"{cpu_name()}, torch {torch.__version__}, {args.threads} threads"
    note = (
        f"Ops: B={B}, J={J}, forward+backward, median of {args.rounds} rounds in which every "
        f"case and both regimes alternate; {machine}; mallopt "
        f"{'available' if LIBC is not None else 'unavailable (regimes not pinned)'}; load "
        f"average {os.getloadavg()[0]:.1f} at the end. X vs dsntnn = dsntnn's time / X's "
        "(above 1: faster than dsntnn). (i) = flat softmax -> DSNT; (ii) = + Euclidean + JS "
        "(sigma 1 px) -> masked mean; fused = `ops.softmax_dsnt`, composed = the dsntnn-named "
        "ops; floor = bare softmax forward+backward."
    )
    print(text)
    print(note)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {"note": note, "rows": rows, "step_share": share_rows}
        args.json.write_text(json.dumps(payload, indent=2))
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(text + "\n" + note + "\n")
    return {"rows": rows, "step_share": share_rows, "note": note}


if __name__ == "__main__":
    main()
