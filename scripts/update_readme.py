"""Fill the README's generated sections from the files the benchmarks and sweeps write.

    python scripts/update_readme.py

Each section sits between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->`` in README.md:

* ``ops-bench``: ``docs/bench_ops.md`` (``benchmarks/ops.py --markdown docs/bench_ops.md``)
* ``model-bench``: the paper's comparison from ``docs/bench.md`` (``benchmarks/models.py``)
* ``results``: both regimes' orderings and the from-scratch sweep (a) table from
  ``docs/results.md``
  (``experiments/report.py``)
* ``predictions``: the prediction grid's caption and picture
  (``experiments/report.py --predictions RUN_DIR ...``)
* ``demo``: ``docs/results/demo_*.json`` (the ``summary.json`` a ``make demo`` run writes)
* ``shipped``: ``docs/results/model_card.json`` (``scripts/ship_model.py``) and
  ``docs/results/peers.json`` (``benchmarks/peers.py``)
* ``video``: ``docs/results/video_tracking.json`` (``benchmarks/video_tracking.py``)

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


def demo_table(paths: list[Path]) -> str:
    """The README's demo table from ``docs/results/demo_*.json`` (``scripts/demo_figures.py``):
    one row per data set and conditions, each figure as the range over the runs."""
    import json

    groups: dict[tuple[str, str], list[dict]] = {}
    for path in paths:
        r = json.loads(path.read_text())
        groups.setdefault((r["data"], r.get("conditions", "not recorded")), []).append(r)

    def span(values: list[float], fmt: str = "{:.0f}") -> str:
        lo, hi = min(values), max(values)
        return fmt.format(lo) if lo == hi else f"{fmt.format(lo)}-{fmt.format(hi)}"

    lines = [
        "Measured with `python scripts/demo_figures.py` (each run a fresh `dsntpose demo`, what "
        "`make demo` runs; `.venv` already built). Each cell is the range over the runs:",
        "",
        "| `make demo` | conditions | runs | training steps | training s | whole command s "
        "| PCK@0.2 |",
        "|---|---|---|---|---|---|---|",
    ]
    machines = set()
    for (data, conditions), rs in sorted(groups.items()):
        what = "`DATA=` LSP" if data == "lsp" else "synthetic set"
        split = f"{rs[0]['images']} {rs[0]['split']} images"
        loads = [r[k] for r in rs for k in ("load_before", "load_after") if k in r]
        where = conditions + (f" (load average {span(loads, '{:.1f}')})" if loads else "")
        lines.append(
            f"| {what} | {where} | {len(rs)} | {span([r['steps'] for r in rs])} "
            f"| {span([r['train_seconds'] for r in rs])} | {span([r['total_seconds'] for r in rs])} "
            f"| **{span([r['pck20'] for r in rs], '{:.1f}')}%** on {split} |"
        )
        machines.update(r["cpu"] for r in rs if "cpu" in r)
    model = next(iter(groups.values()))[0]
    lines += [
        "",
        f"Model: {model['model']}, {model['input_size']} px crops. "
        + (f"Machine: {'; '.join(sorted(machines))}." if machines else ""),
    ]
    return "\n".join(lines)


def shipped_summary(card_path: Path) -> str:
    import json

    c = json.loads(card_path.read_text())
    lat = c["latency_ms"]
    text = (
        f"On the 1000 LSP test images (PCK@0.2 of the torso, every annotated joint, boxes from "
        f"the annotations): **{c['lsp_test_pck20']:.1f}%**, **{c['lsp_test_pck20_flip']:.1f}%** "
        f"with the flip test; {c['params_m']:.2f}M parameters, {c['input_size']} px crops; "
        f"batch-1 CPU latency of the network {lat['model_batch1']:.1f} ms "
        f"({c['machine']['threads']} threads, {c['machine']['cpu']}, a shared machine). "
        + trained(c)
    )
    peers = REPO / "docs" / "results" / "peers.json"
    if peers.is_file():
        text += "\n\n" + peers_summary(json.loads(peers.read_text()))
    card_md = (REPO / "docs" / "model_card.md").read_text()
    goals = section(card_md, "## Against the project's targets")
    if goals:
        text += "\n\nAgainst the project's targets (from the [model card](docs/model_card.md)):\n\n"
        text += goals
    return text


def trained(card: dict) -> str:
    """How long the shipped model trained: its run, and the runs it was fine-tuned from."""
    chain = [card]
    while chain[0].get("previous"):
        chain.insert(0, chain[0]["previous"])
    epochs = sum(int(c["training"]["epoch"]) for c in chain)
    wall = sum(float(c["training"].get("wall_minutes", 0)) for c in chain)
    stages = (
        f" in {len(chain)} stages (the last fine-tuned from the one before)"
        if len(chain) > 1
        else ""
    )
    return (
        f"Trained {epochs} epochs{stages}, {wall:.0f} minutes of wall clock on the shared "
        "2-core machine; the model card has the details."
    )


def peers_summary(p: dict) -> str:
    """One paragraph from benchmarks/peers.py's JSON (its own ``summary`` when it has one)."""
    pck, lat = p.get("pck") or p["lsp"], p["latency"]["results"]
    ours, flip, mp = (pck[k]["visible"]["total"] for k in ("ours", "ours_flip", "mediapipe"))
    return (
        f"Against MediaPipe BlazePose (full, its own detector) in the same run "
        f"(`benchmarks/peers.py`, [docs/results/peers.md](docs/results/peers.md)), on the 12 "
        f"limb joints of LSP test, visible joints: ours {ours:.1f}% ({flip:.1f}% with flip, "
        f"person boxes from the annotations) against MediaPipe's {mp:.1f}%; batch-1 latency, "
        f"interleaved, {p['latency']['threads']} thread: ours {lat['ours']['median_ms']:.1f} ms "
        f"({lat['ours_flip']['median_ms']:.1f} ms with flip), MediaPipe "
        f"{lat['mediapipe']['median_ms']:.1f} ms." + whole_photo_summary(p)
    )


def whole_photo_summary(p: dict) -> str:
    """The same run's whole-photo protocol (no box for anyone), when the run has it."""
    pck, lat = p.get("pck") or p["lsp"], p["latency"]["results"]
    labels = {
        "ours_whole": "ours",
        "also1_whole": "the whole-photo model",
        "also1_whole_flipfinal": "the same with flip of the final crop only",
        "also1_whole_noflip": "without flip",
        "mediapipe": "MediaPipe",
        "movenet_lightning": "MoveNet Lightning",
        "movenet_thunder": "MoveNet Thunder",
    }
    parts = [
        f"{name} {pck[k]['visible']['total']:.1f}% ({lat[k]['median_ms']:.0f} ms)"
        for k, name in labels.items()
        if k in pck and k in lat
    ]
    if "ours_whole" not in pck or len(parts) < 2:
        return ""
    return (
        " Whole photo for everyone (no box; ours and the whole-photo model with flip on every "
        "pass of the search unless said), visible "
        "limb joints and batch-1 latency: " + ", ".join(parts) + "."
    )


def video_summary(v: dict) -> str:
    """One paragraph from benchmarks/video_tracking.py's JSON: tracked against searched."""
    s = v["summary"]
    lengths = {k: s[k]["track"]["frames"] // s[k]["track"]["clips"] for k in ("pan", "cuts")}

    def pair(kind: str, key: str) -> str:
        return f"{s[kind]['track'][key]} against {s[kind]['search'][key]}"

    cuts = s["cuts"]["track"]
    return (
        f"`--track` measured on clips made from LSP test photos (`benchmarks/video_tracking.py`, "
        f"[docs/results/video_tracking.md](docs/results/video_tracking.md); {v['clips']} clips "
        f"of each kind, {lengths['pan']} frames a pan or zoom, {lengths['cuts']} a cut clip, model `{v['model']}`, {v['engine']}, "
        f"{v['machine']}): PCK@0.2 on the limb joints in the frame, tracked against every frame "
        f"searched from the whole frame: a slow pan {pair('pan', 'pck')} (last third "
        f"{pair('pan', 'pck_last_third')}), a zoom to 60% {pair('zoom', 'pck')} (person not "
        f"found in {s['zoom']['track']['frames_nobody']} and "
        f"{s['zoom']['search']['frames_nobody']} of {s['zoom']['track']['frames']} frames), "
        f"scene cuts {pair('cuts', 'pck')} (first frame after a cut "
        f"{pair('cuts', 'pck_first_frame_after_cut')}; "
        f"{cuts['black_frames_with_a_person']} of {cuts['black_frames']} frames of a fade to "
        f"black reported as a person); {s['pan']['track']['ms_per_frame']} against "
        f"{s['pan']['search']['ms_per_frame']} ms per frame on the pans."
    )


def main() -> int:
    readme_path = REPO / "README.md"
    readme = readme_path.read_text()
    ops = (REPO / "docs" / "bench_ops.md").read_text()
    # the quoted run only: from the file's title up to its first "## " section (the share of a
    # training step and any unusable runs stay in docs/bench_ops.md)
    quoted = ops.split("\n## ", 1)[0].split("\n", 1)[1].strip()
    readme = replace(readme, "ops-bench", quoted)
    bench = (REPO / "docs" / "bench.md").read_text()
    first = bench.splitlines()[2] if len(bench.splitlines()) > 2 else ""
    paper = section(bench, "## The paper's comparison")
    readme = replace(readme, "model-bench", f"{first}\n\n{paper}")
    results = (REPO / "docs" / "results.md").read_text()
    orderings = section(results, "## Which of the paper's orderings held")
    table = section(results, "PCK@0.2 (%), LSP test set:", "PCK@0.1")
    status = section(results, "## (a) Output strategy x heatmap resolution", "PCK@0.2")
    status = status[0].lower() + status[1:].rstrip(".")
    pretrained = section(results, "### Which of the paper's orderings held", "### ")
    spent = section(results, "## A short ImageNet regime", "### ").splitlines()
    budget = next((s for s in spent if "Training spent so far" in s), "")
    budget = budget[budget.find("Training spent so far") :].split(" `python", 1)[0].rstrip(".")
    pa_table = section(results, "PCK@0.2 (%), LSP test set, flip test:", "PCK@0.1")
    pa_status = section(results, "### (a) Output strategy", "PCK@0.2").split(";", 1)[0]
    body = (
        "In a short ImageNet regime (the paper's start, not its budget: EfficientNet-Lite0 from "
        "ImageNet weights, LSP + LSP-extended, 128 px crops, 3 epochs, flip test, where the "
        "paper trained ResNets 120 epochs at 224 px on MPII; "
        f"{budget[0].lower() + budget[1:]}):\n\n{pretrained}"
        f"\n\nSweep (pa), PCK@0.2 (%) on the LSP test set with the flip test ({pa_status}; "
        f"the others are listed in docs/results.md):\n\n{pa_table}"
        "\n\nFrom random initialisation (ResNet-18, LSP's 1000 training images, 96 px crops, 10 "
        f"epochs):\n\n{orderings}\n\nSweep (a) from scratch, PCK@0.2 (%) on the LSP test set "
        f"({status}):\n\n{table}"
    )
    readme = replace(readme, "results", body)
    caption = REPO / "docs" / "results" / "predictions.txt"
    if caption.is_file():
        grid = f"{caption.read_text().strip()}\n\n![predictions](docs/results/predictions.png)"
        readme = replace(readme, "predictions", grid)
    demos = sorted((REPO / "docs" / "results").glob("demo_*.json"))
    if demos:
        readme = replace(readme, "demo", demo_table(demos))
    card = REPO / "docs" / "results" / "model_card.json"
    if card.is_file():
        readme = replace(readme, "shipped", shipped_summary(card))
    video = REPO / "docs" / "results" / "video_tracking.json"
    if video.is_file():
        import json

        readme = replace(readme, "video", video_summary(json.loads(video.read_text())))
    readme_path.write_text(readme)
    print(f"updated {readme_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
