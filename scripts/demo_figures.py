"""Run ``dsntpose demo`` (what ``make demo`` runs) several times and keep each run's summary
for the README's demo table, with the conditions it ran under.

    python scripts/demo_figures.py [--data DIR] [--runs 2] [--tag quiet]
        [--conditions "nothing else ran"] [--minutes 8]

Each run is a fresh ``dsntpose demo`` process (as ``make demo`` starts one) in its own folder
under ``--out`` (default ``runs/demo-figures``); its ``summary.json`` is copied to
``docs/results/demo_<data>_<tag><k>.json`` with ``conditions`` (your words), the 1-minute
load average before and after, the CPU and the date added. ``scripts/update_readme.py`` turns
those files into the README's table: one row per data set and conditions, with the spread
over runs. The script does not pause other work: say in ``--conditions`` what else ran.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "docs" / "results"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default=None, help="an LSP folder (default: synthetic set)")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--tag", default="quiet", help="a word for the conditions, in names")
    parser.add_argument("--conditions", required=True, help="what else ran on the machine")
    parser.add_argument("--minutes", type=float, default=8.0)
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "demo-figures")
    args = parser.parse_args(argv)
    from dsntpose.bench_report import cpu_name

    if args.runs < 1:
        parser.error("--runs: must be >= 1")
    if not args.tag.isalnum():
        parser.error(f"--tag: letters and digits only, got {args.tag!r}")
    data = "lsp" if args.data else "synthetic"
    exe = Path(sys.executable).with_name("dsntpose")
    for k in range(1, args.runs + 1):
        out = args.out / f"{data}-{args.tag}{k}"
        cmd = [str(exe), "demo", "--out_dir", str(out), "--minutes", f"{args.minutes:g}"]
        cmd += ["--data.root", args.data] if args.data else []
        load_before = os.getloadavg()[0]
        print(f"[demo_figures] run {k}/{args.runs}: {' '.join(cmd)}", flush=True)
        started = time.strftime("%Y-%m-%d %H:%M")
        done = subprocess.run(cmd, cwd=REPO)
        if done.returncode != 0:
            print(f"[demo_figures] run {k} failed with exit {done.returncode}", file=sys.stderr)
            return done.returncode
        summary = json.loads((out / "summary.json").read_text())
        summary.update(
            conditions=args.conditions,
            load_before=round(load_before, 2),
            load_after=round(os.getloadavg()[0], 2),
            cpu=f"{cpu_name()}, {os.cpu_count()} cores",
            date=started,
        )
        dest = RESULTS / f"demo_{data}_{args.tag}{k}.json"
        dest.write_text(json.dumps(summary, indent=2) + "\n")
        print(f"[demo_figures] {dest.relative_to(REPO)}: PCK@0.2 {summary['pck20']}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
