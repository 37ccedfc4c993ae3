"""Fill the README's generated sections from the files the benchmarks and sweeps write.

    python scripts/update_readme.py

Each section sits between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->`` in README.md:

* ``ops-bench``: ``docs/bench_ops.md`` (``benchmarks/ops.py --markdown docs/bench_ops.md``)
* ``model-bench``: the paper's comparison from ``docs/bench.md`` (``benchmarks/models.py``)
* ``results``: the orderings and sweep (a) table from ``docs/results.md``
  (``experiments/report.py``)
* ``predictions``: the prediction grid's caption and picture
  (``experiments/report.py --predictions RUN_DIR ...``)

So no figure in the README is typed by hand.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def section(text: str, start: str, end: str | None = None) -> str:
    """The lines of ``text`` from the heading ``start`` up to the next heading (or ``end``)."""
    lines = text.splitlines()
    try:
        i = next(k for k, line in enumerate(lines) if line.startswith(start))
    except StopIteration:
        return ""
    out = []
    for line in lines[i + 1 :]:
        if (end is not None and line.startswith(end)) or (end is None and line.startswith("## ")):
            break
        out.append(line)
    return "\n".join(out).strip()


def replace(readme: str, name: str, body: str) -> str:
    pattern = re.compile(rf"(<!-- {name}:start -->\n)(?:.*?\n)?(<!-- {name}:end -->)", re.S)
    if not pattern.search(readme):
        raise SystemExit(
            f"error: README.md has no <!-- {name}:start --> ... <!-- {name}:end --> section"
        )
    return pattern.sub(lambda m: m.group(1) + body + "\n" + m.group(2), readme)


def main() -> int:
    readme_path = REPO / "README.md"
    readme = readme_path.read_text()
    ops = (REPO / "docs" / "bench_ops.md").read_text().strip()
    readme = replace(readme, "ops-bench", ops)
    bench = (REPO / "docs" / "bench.md").read_text()
    first = bench.splitlines()[2] if len(bench.splitlines()) > 2 else ""
    paper = section(bench, "## The paper's comparison")
    readme = replace(readme, "model-bench", f"{first}\n\n{paper}")
    results = (REPO / "docs" / "results.md").read_text()
    orderings = section(results, "## Which of the paper's orderings held")
    table = section(results, "PCK@0.2 (%), LSP test set:", "PCK@0.1")
    status = section(results, "## (a) Output strategy x heatmap resolution", "PCK@0.2")
    status = status[0].lower() + status[1:].rstrip(".")
    body = f"{orderings}\n\nSweep (a), PCK@0.2 (%) on the LSP test set ({status}):\n\n{table}"
    readme = replace(readme, "results", body)
    caption = REPO / "docs" / "results" / "predictions.txt"
    if caption.is_file():
        grid = f"{caption.read_text().strip()}\n\n![predictions](docs/results/predictions.png)"
        readme = replace(readme, "predictions", grid)
    readme_path.write_text(readme)
    print(f"updated {readme_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
