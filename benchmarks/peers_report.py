"""The markdown report of benchmarks/peers.py (from its JSON document)."""

from __future__ import annotations

from typing import Any

LSP_GROUPS = ("Ankle", "Knee", "Hip", "Wrist", "Elbow", "Shoulder")
MPII_GROUPS = ("Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle")


def _fmt(v: float | None, digits: int = 1) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def _bold_whole(doc: dict[str, Any], key: str) -> str:
    c = doc["contenders"][key]
    return "**whole photo**" if c["protocol"] == "whole photo" else "annotation box"


def render_markdown(doc: dict[str, Any]) -> str:
    """The report: setup, the headline table, LSP and MPII per-group tables, latency,
    efficiency, skipped peers, notes and the command."""
    cont = doc["contenders"]
    keys = list(cont)
    lsp, mpii, lat = doc["lsp"], doc.get("mpii", {}), doc.get("latency", {})
    res = lat.get("results", {})
    m = doc["machine"]
    d_lsp = doc["data"]["lsp"]
    d_mpii = doc["data"].get("mpii")
    lines = [
        "# dsntpose beside MoveNet and MediaPipe BlazePose: whole photo, same images",
        "",
        f"Run finished {doc['date']} on {m['cpu']} ({m['usable_cores']} usable cores; load average "
        f"{m['load_average_at_start']} at the start, {m.get('load_average_at_end')} at the end); "
        f"{m['threads']} thread per model. Ours: {doc['ours']['model']} ({doc['ours']['joints']} "
        f"joints, {doc['ours']['backbone']}, {doc['ours']['input_size']} px).",
        "",
        "**Whole photo** rows: the model gets the whole image (LSP) or the same crop of the "
        "frame (MPII), no box, and finds the person itself; a model that reports nobody scores "
        "a miss on every joint of that image. *Annotation box* rows: ours given the person box "
        "from the annotations (a test-time oracle, for reference).",
        "",
        "## Results",
        "",
        "| model | protocol | LSP PCK@0.2 limbs, visible | limbs, all | its LSP joints, all "
        "| MPII PCKh@0.5, its joints | MPII limbs | median ms | CPU ms |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for key in keys:
        s = lsp[key]
        mp = mpii.get(key, {})
        t = res.get(key)
        its = s["has_all"]
        lines.append(
            f"| {cont[key]['label']} | {_bold_whole(doc, key)} "
            f"| **{_fmt(s['visible']['total'])}** | {_fmt(s['all']['total'])} "
            f"| {_fmt(its['total'])} ({len(its['joints'])}) "
            f"| {_fmt(mp.get('its_joints', {}).get('total'))}"
            f"{' (' + str(len(mp['its_joints']['joints'])) + ')' if mp else ''} "
            f"| {_fmt(mp.get('limbs', {}).get('total'))} "
            f"| {_fmt(t['median_ms'] if t else None)} | {_fmt(t['cpu_median_ms'] if t else None)} |"
        )
    lines += [
        "",
        "Limbs: the 12 limb joints (shoulders, elbows, wrists, hips, knees, ankles); in "
        "parentheses how many joints a Total pools. Totals are count-weighted. Latency: "
        "median per image, batch 1, from the decoded image to joints in image px.",
        "",
    ]
    issue = doc.get("issue_figures", {})
    if issue:
        lines.append(
            "The issue's figures (LSP, visible limb joints, whole photo, another run): "
            + ", ".join(
                f"{cont[k]['label'] if k in cont else v.get('label', k)} {v['pck_visible_limbs']}"
                + (f" at {v['ms']} ms" if v["ms"] else "")
                for k, v in issue.items()
            )
            + "."
        )
        lines.append("")
    if doc.get("skipped"):
        lines += ["Skipped: " + " ".join(doc["skipped"]), ""]

    lines += ["## What each model sees", ""]
    for key in keys:
        c = cont[key]
        lines.append(f"* {c['label']}: {c['how']}.")
    if d_mpii:
        lines.append(
            f"* MPII: {d_mpii['people']} validation people in {d_mpii['frames']} frames "
            f"({d_mpii['rows']}); every model gets the {d_mpii['crop']} "
            f"(crop width min/median/max {d_mpii['crop_sizes_px']['width']}, height "
            f"{d_mpii['crop_sizes_px']['height']} px). Ours given the box: the hourglass box "
            "(side 200 x scale) inside that crop."
        )
    lines.append(
        f"* LSP: {d_lsp['images']} test images ({d_lsp['first']}..{d_lsp['last']}), the "
        "original files."
    )
    lines.append(
        "* MoveNet: letterboxed (longer side to 192 / 256 px, bilinear at pixel centres, black "
        "padding, int32 RGB); its 17 COCO keypoints mapped back to image px, then to LSP's "
        "limb joints by name (left/right are the person's own in both)."
    )
    lines.append("")

    for protocol, title in (
        ("visible", "LSP test, PCK@0.2, visible limb joints (LSP flag: not occluded)"),
        ("all", "LSP test, PCK@0.2, all annotated limb joints"),
        ("has_all", "LSP test, PCK@0.2, every LSP joint the model has, all annotated"),
    ):
        groups = list(LSP_GROUPS) + (["Neck", "Head"] if protocol == "has_all" else [])
        lines += [
            f"## {title}",
            "",
            "| model | " + " | ".join(groups) + " | Total | Mean | joints | no person |",
            "|---|" + "---:|" * (len(groups) + 4),
        ]
        for key in keys:
            r = lsp[key][protocol]
            lines.append(
                f"| {cont[key]['label']} | "
                + " | ".join(_fmt(r["groups"].get(g)) for g in groups)
                + f" | **{_fmt(r['total'])}** | {_fmt(r['total_unweighted'])} | {r['counted']} "
                f"| {lsp[key]['no_person']} |"
            )
        lines.append("")

    if any("confidence" in lsp[key] for key in keys):
        lines += [
            "## Joint confidence: does a model's own score tell its right joints from its wrong?",
            "",
            "LSP test, every annotated limb joint; right = within PCK@0.2 of the torso. Each "
            "model's own per-joint score: dsntpose its calibrated joint confidence, MediaPipe the "
            "landmark visibility, MoveNet the keypoint score (0 on an image where a model found "
            "nobody). AUROC of the score for right (the issue's target: 0.85); ECE (15 bins) "
            "reads the score as the probability of being right, which only dsntpose's is "
            "fitted to be.",
            "",
            "| model | AUROC | ECE | mean score | right % | joints |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for key in keys:
            cf = lsp[key].get("confidence")
            if cf:
                lines.append(
                    f"| {cont[key]['label']} | **{_fmt(cf['auroc'], 3)}** | {_fmt(cf['ece'], 3)} "
                    f"| {_fmt(cf['mean_score'], 3)} | {_fmt(cf['right_pct'])} | {cf['joints']} |"
                )
        lines.append("")

    if mpii:
        lines += [
            "## MPII validation frames, PCKh@0.5",
            "",
            "Total: count-weighted over the joints of MPII's usual Total (all but pelvis and "
            "thorax) that the model has; Limbs: over the 12 limb joints; Unweighted: the plain "
            "mean of the joints in Total. For reference on the same people (SOURCES.md): "
            "Tompson 83.5, bearpaw 1-stack hourglass 87.8, 8-stack 91.2.",
            "",
            "| model | " + " | ".join(MPII_GROUPS) + " | Total | joints | Unweighted | Limbs "
            "| no person |",
            "|---|" + "---:|" * (len(MPII_GROUPS) + 5),
        ]
        for key in keys:
            r, limbs = mpii[key]["its_joints"], mpii[key]["limbs"]
            lines.append(
                f"| {cont[key]['label']} | "
                + " | ".join(_fmt(r["groups"].get(g)) for g in MPII_GROUPS)
                + f" | **{_fmt(r['total'])}** | {r['counted']} | {_fmt(r['total_unweighted'])} "
                f"| {_fmt(limbs['total'])} | {mpii[key]['no_person']} |"
            )
        lines.append("")

    if res:
        paused = lat.get("paused_pids")
        lines += [
            f"## Latency (batch 1, CPU, {lat['threads']} thread, interleaved)",
            "",
            f"{lat['images']} LSP test images x {lat['rounds']} rounds (asked "
            f"{lat['rounds_asked']}), after {lat['warmup']} warm-up images per model; the models "
            "alternate image by image, the order rotating. Each timing is from the decoded uint8 "
            "BGR image to joints in image px, measured in the process that runs the model: ours "
            "in this process (whole photo: every Predictor pass, with flip where named; box: "
            "crop warp + model + back-projection); MediaPipe in its worker (BGR->RGB + "
            "Pose.process: detector + landmark model); MoveNet in node (letterbox + model + "
            "mapping back). JPEG decoding is in no figure. "
            + (
                f"Another process on this machine (pid {', '.join(map(str, paused))}, a "
                f"training run) was paused (SIGSTOP) for the {lat.get('paused_s')} s of this "
                "part and resumed afterwards."
                if paused
                else "Nothing else was paused: other processes on the machine competed."
            ),
            "",
            "| model | protocol | median ms | p90 ms | mean ms | CPU ms (median) | timings |",
            "|---|---|---:|---:|---:|---:|---:|",
        ]
        for key in keys:
            t = res[key]
            lines.append(
                f"| {cont[key]['label']} | {_bold_whole(doc, key)} | {t['median_ms']:.1f} "
                f"| {t['p90_ms']:.1f} | {t['mean_ms']:.1f} | {t['cpu_median_ms']:.1f} | {t['n']} |"
            )
        lines += [
            "",
            "Threads: ours torch.set_num_threads and cv2.setNumThreads; MediaPipe's XNNPACK "
            "runs on one thread on desktop Linux (not settable from its Python solution); "
            "MoveNet's TF.js WebAssembly backend with multithreading off and setThreadsCount(1). "
            "CPU ms above wall ms means more than one core was busy.",
            "",
        ]

    efficiency = doc.get("efficiency")
    if efficiency:
        lines += [
            "## Efficiency",
            "",
            "| model | params M | GMACs (batch 1) | peak memory MiB | model files MB |",
            "|---|---:|---:|---:|---|",
        ]
        labels = {"ours": "dsntpose", **{e["key"]: e["label"] for e in doc.get("also", [])}}
        for key, e in efficiency.items():
            files = e.get("model_file_sizes_mb") or {}
            lines.append(
                f"| {labels[key] + ' (network)' if key in labels else cont[key]['label']} "
                f"| {_fmt(e.get('params_m'), 2)} | {_fmt(e.get('gmacs'), 3)} "
                f"| {_fmt(e.get('peak_memory_mib'))} | "
                + ", ".join(f"{n} {_fmt(v, 2)}" for n, v in files.items())
                + " |"
            )
        lines += [
            "",
            "dsntpose: each network alone in a fresh process (parameters, MACs of one forward, "
            "peak resident growth over loading and 5 flip-test forwards). The peers: their "
            "runtimes give no parameter or MAC counts; memory is their worker's peak resident "
            "growth over loading and running, less the images it holds. Not measured alike: "
            "read them as rough sizes.",
            "",
        ]
    if doc.get("notes"):
        lines += ["## Notes", ""] + [f"* {n}" for n in doc["notes"]] + [""]
    lines += [
        "## Command",
        "",
        "From the repo root, one line (the latency part pauses the training whose pid is in "
        "/work/runs/train.pid, and a trap resumes it whatever happens; for another model add "
        "`--checkpoint PATH`, or `--also LABEL=PATH` to keep the shipped one beside it):",
        "",
        "```",
        doc.get("rerun", doc["command"]),
        "```",
        "",
        f"This run: `{doc['command']}`",
    ]
    return "\n".join(lines) + "\n"
