"""The sweep runner's grid (seeds, extra seeds, skips, twins) and the report's seed merging."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import pytest
import yaml
from experiments import report, run

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"

SPEC = {
    "fixed": {"model": {"output_stride": 8}},
    "grid": {
        "reg": {"none": {"loss": {"regularizer": "none"}}, "js": {"loss": {"regularizer": "js"}}},
        "sigma": {"s1": {"loss": {"sigma": 1.0}}, "s2": {"loss": {"sigma": 2.0}}},
    },
    "skip": ["none-s2"],
    "seeds": [0],
    "extra_seeds": {"js-s1": [1, 2]},
}


def test_cells_run_every_point_then_the_extra_seeds():
    out = list(run.cells(SPEC))
    assert [c[0] for c in out] == [
        "none-s1-seed0",
        "js-s1-seed0",
        "js-s2-seed0",
        "js-s1-seed1",
        "js-s1-seed2",
    ]
    _, axes, seed, overrides = out[3]
    assert axes == {"reg": "js", "sigma": "s1"} and seed == 1
    assert overrides == {"model": {"output_stride": 8}, "loss": {"regularizer": "js", "sigma": 1.0}}
    with pytest.raises(SystemExit, match="extra_seeds names no grid point: none-s2"):
        list(run.cells({**SPEC, "extra_seeds": {"none-s2": [1]}}))


def test_every_sweep_file_expands():
    for path in sorted((EXPERIMENTS / "sweeps").glob("*.yaml")):
        assert list(run.cells(yaml.safe_load(path.read_text()))), path


def test_config_hash_ignores_where_a_run_writes():
    a = {"train": {"out_dir": "x", "seed": 0}, "data": {"root": "/a"}}
    b = {"train": {"out_dir": "y", "seed": 0}, "data": {"root": "/b"}}
    c = {"train": {"out_dir": "y", "seed": 1}, "data": {"root": "/b"}}
    assert run.config_hash(a) == run.config_hash(b) != run.config_hash(c)
    # where LSP-extended lives is no part of the recipe; whether it is used is
    d = {"train": {"out_dir": "x", "seed": 0}, "data": {"root": "/a", "lspet_root": "/e/lspet"}}
    e = {"train": {"out_dir": "x", "seed": 0}, "data": {"root": "/a", "lspet_root": "lspet"}}
    assert run.config_hash(d) == run.config_hash(e) != run.config_hash(a)
    # a field added later leaves earlier hashes alone at its default, not otherwise
    f = {"train": {"out_dir": "x", "seed": 0, "init_from": None}, "data": {"root": "/a"}}
    g = {"train": {"out_dir": "x", "seed": 0, "init_from": "m.pt"}, "data": {"root": "/a"}}
    assert run.config_hash(f) == run.config_hash(a) != run.config_hash(g)


def test_report_merges_seeds_into_means(tmp_path, monkeypatch):
    rows = [
        {
            "cell": "s8-dsnt-seed0",
            "seed": 0,
            "heatmap_px": 12,
            "pck20": 30.0,
            "precision": "bf16-mixed",
        },
        {
            "cell": "s8-dsnt-seed1",
            "seed": 1,
            "heatmap_px": 12,
            "pck20": 34.0,
            "precision": "32-true",
        },
        {"cell": "s8-fc-seed0", "seed": 0, "heatmap_px": 12, "pck20": 20.0, "precision": "32-true"},
    ]
    with (tmp_path / "x.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    monkeypatch.setattr(report, "RESULTS", tmp_path)
    merged = {r["cell"]: r for r in report.read_csv("x")}
    assert set(merged) == {"s8-dsnt-seed0+1", "s8-fc-seed0"}
    assert merged["s8-dsnt-seed0+1"]["pck20"] == 32.0
    assert merged["s8-dsnt-seed0+1"]["seeds"] == 2
    assert merged["s8-dsnt-seed0+1"]["pck20_spread"] == 4.0
    assert merged["s8-dsnt-seed0+1"]["heatmap_px"] == 12.0
    assert (
        merged["s8-dsnt-seed0+1"]["precision"] == "bf16-mixed+32-true"
    )  # the seeds' precisions, kept
    assert merged["s8-fc-seed0"]["precision"] == "32-true"
    assert len(report.read_csv("x", merge_seeds=False)) == 3
    note = report.seeds_note(list(merged.values()))
    assert note[0] == "Means over seeds; best minus worst seed, PCK@0.2: s8-dsnt-seed0+1 4.0."


def test_a_cell_is_claimed_by_one_process_at_a_time(tmp_path):
    first = run.claim(tmp_path / "cell")
    assert first is not None
    assert run.claim(tmp_path / "cell") is None  # held: a second sweep process passes it by
    assert run.claim(tmp_path / "other") is not None
    first.close()  # the cell finished, or its process died
    again = run.claim(tmp_path / "cell")
    assert again is not None
    again.close()


def test_a_verdict_within_the_seed_noise_says_so(monkeypatch):
    monkeypatch.setattr(report, "seed_noise", lambda precisions: (2.0, "3 seed pairs"))
    close = report.claim("A beats B", lambda: False, lambda: "33.0 vs 34.0", lambda: -1.0)
    assert (
        close == "* A beats B: **did not hold, by 1.0: within the seed noise of 2.0 (3 seed "
        "pairs)** here (33.0 vs 34.0)."
    )
    clear = report.claim("A beats B", lambda: True, lambda: "40.0 vs 30.0", lambda: 10.0)
    assert clear == "* A beats B: **held** here (40.0 vs 30.0)."
    missing = report.claim("A beats B", lambda: {}["a"], lambda: "", lambda: 0.0)
    assert "not yet measured" in missing


def write_rows(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_report_draws_the_sample_and_hourglass_sweeps(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "RESULTS", tmp_path)
    e = [
        {
            "cell": f"{s}-{n}-seed0",
            "strategy": s,
            "samples": n,
            "seed": 0,
            "pck20": v,
            "pck10": v / 3,
        }
        for s, n, v in [
            ("dsnt_js", "n250", 20.0),
            ("dsnt_js", "n1000", 30.0),
            ("heatmap", "n250", 10.0),
            ("heatmap", "n1000", 25.0),
            ("fc", "n250", 5.0),
            ("fc", "n1000", 15.0),
        ]
    ]
    write_rows(tmp_path / "e_samples.csv", e)
    write_rows(
        tmp_path / "a_strategy.csv",
        [
            {
                "cell": "s8-dsnt_js-seed0",
                "strategy": "dsnt_js",
                "stride": "s8",
                "seed": 0,
                "pck20": 33.0,
            }
        ],
    )
    write_rows(
        tmp_path / "d_hourglass.csv",
        [
            {
                "cell": "heatmap-seed0",
                "strategy": "heatmap",
                "seed": 0,
                "heatmap_px": 32,
                "pck20": 12.0,
            }
        ],
    )
    write_rows(
        tmp_path / "latency_cpu.csv",
        [
            {"sweep": "a_strategy", "cell": "s8-dsnt_js", "latency_ms": 10.0},
            {"sweep": "d_hourglass", "cell": "heatmap", "latency_ms": 25.0},
        ],
    )
    lines: list[str] = []
    report.sweep_e(lines)
    text = "\n".join(lines)
    assert "| dsnt_js | 20.0 | – | 30.0 |" in text  # n500 not run: a dash, not a number
    assert "PCK@0.2 lost going from 1000 to 250 images: DSNT + JS 10.0, heatmap" in text
    assert "DSNT + JS 33.0 with, 30.0 without" in text  # (a) s8 is the augmented twin
    assert (tmp_path / "pck_vs_samples.png").stat().st_size > 0

    lines = []
    report.sweep_d(lines)
    text = "\n".join(lines)
    assert "1 of 2 cells finished; still to run: dsnt_js-seed0." in text
    assert "| heatmap-seed0 | 32 | 12.0 |" in text and "| 25.0 |" in text
    assert "(10.0 ms at batch 1, PCK@0.2 33.0), the hourglass takes heatmap 25.0 ms (2.5x)" in text

    lines = []
    report.orderings(lines)
    verdict = next(x for x in lines if "every training-set size" in x)
    assert "**held**" in verdict and "250: 20.0 vs 10.0 and 5.0" in verdict
    assert "500:" not in verdict  # a size with a strategy missing is left out


def test_latency_times_several_sweeps_in_one_file(tmp_path, monkeypatch):
    from experiments import latency

    sweeps = {
        "a": {"grid": {"stride": {"s32": {"model": {"output_stride": 32}}}}, "seeds": [0, 1]},
        "d": {
            "fixed": {"model": {"backbone": "hourglass", "num_stacks": 1, "input_size": 64}},
            "grid": {"strategy": {"heatmap": {"model": {"head": "heatmap"}}}},
        },
    }
    for name, spec in sweeps.items():
        (tmp_path / f"{name}_x.yaml").write_text(yaml.safe_dump(spec))
    monkeypatch.setattr(latency, "sweep_file", lambda name: tmp_path / f"{name}_x.yaml")
    monkeypatch.setattr(latency, "RESULTS", tmp_path)
    assert latency.main(["a", "d", "--threads", "1", "--repeats", "1"]) == 0
    with (tmp_path / "latency_cpu.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [(r["sweep"], r["cell"]) for r in rows] == [("a_x", "s32"), ("d_x", "heatmap")]
    assert rows[0]["stride"] == "s32" and rows[1]["stride"] == ""  # axes of both sweeps
    assert rows[1]["strategy"] == "heatmap" and rows[1]["heatmap_px"] == "16"
    assert all(float(r["latency_ms"]) > 0 and float(r["flip_latency_ms"]) > 0 for r in rows)


def test_predictions_draw_one_row_per_run_on_the_same_crops(tmp_path, monkeypatch):
    from types import SimpleNamespace

    import torch

    import dsntpose.training
    from dsntpose.config import RunConfig

    monkeypatch.setattr(report, "RESULTS", tmp_path)
    monkeypatch.setattr(report, "PREDICTIONS_CAPTION", tmp_path / "predictions.txt")
    crops = torch.rand(3, 3, 32, 32)

    def fake_evaluate(ckpt, split, data, num_draw):
        head = ckpt.parent.name
        run = RunConfig.from_dict({"model": {"head": head, "joints": "lsp", "input_size": 32}})
        images = crops if head != "fc" else torch.rand(3, 3, 32, 32)
        return SimpleNamespace(
            samples={
                "images": images[:num_draw],
                "pred": torch.full((num_draw, 14, 2), 16.0),
                "gt": torch.full((num_draw, 14, 2), 10.0),
            },
            run=run,
            result=SimpleNamespace(total=12.34 if head == "dsnt" else 5.0),
        )

    monkeypatch.setattr(dsntpose.inference, "evaluate_checkpoint", fake_evaluate)
    runs = []
    for head in ("dsnt", "heatmap", "fc"):
        (tmp_path / head).mkdir()
        (tmp_path / head / "last.ckpt").touch()
        runs.append(tmp_path / head)
    lines: list[str] = []
    report.predictions(runs[:2], lines, num=3)
    caption = (tmp_path / "predictions.txt").read_text()
    assert "1. `" in caption and "dsnt, softmax, 4 px maps, 32 px crops; PCK@0.2 12.3%" in caption
    assert "2. `" in caption and "heatmap, 4 px maps" in caption
    grid = cv2.imread(str(tmp_path / "predictions.png"))
    assert grid.shape[:2] == (2 * (160 + 4) + 4, 3 * (160 + 4) + 4)  # 2 runs x 3 images
    assert "![predictions](results/predictions.png)" in lines

    with pytest.raises(SystemExit, match="fc draws other test crops"):
        report.predictions(runs, [], num=3)
    (runs[0] / "last.ckpt").unlink()
    with pytest.raises(SystemExit, match=r"no last\.ckpt in .*dsnt"):
        report.predictions(runs, [], num=3)


def test_seed_noise_and_comparisons_keep_precisions_apart(tmp_path, monkeypatch):
    """Two float32 seeds differ less than a bf16 and a float32 run: a verdict on float32 runs
    is weighed against float32 pairs, and a sweep is compared within one precision where
    that precision covers every grid point."""
    monkeypatch.setattr(report, "RESULTS", tmp_path)

    def row(cell, seed, pck, prec, **axes):
        return {"cell": f"{cell}-seed{seed}", **axes, "seed": seed, "pck20": pck, "precision": prec}

    write_rows(
        tmp_path / "b_activation.csv",
        [
            row("softmax", 0, 35.0, "bf16-mixed", activation="softmax"),
            row("softmax", 1, 32.0, "32-true", activation="softmax"),
            row("abs", 0, 33.0, "32-true", activation="abs"),
            row("abs", 1, 33.2, "32-true", activation="abs"),
            row("relu", 0, 33.5, "32-true", activation="relu"),
            row("sigmoid", 0, 34.0, "32-true", activation="sigmoid"),
        ],
    )
    assert report.seed_pairs() == [(pytest.approx(0.2), "32-true"), (3.0, "bf16-mixed+32-true")]
    assert report.seed_noise(["32-true"]) == (pytest.approx(0.2), "1 seed pair all in 32-true")
    assert report.seed_noise(["32-true", "bf16-mixed+32-true"])[0] == 3.0
    assert report.seed_noise([])[0] == 3.0

    rows, prec = report.like_with_like("b_activation")
    assert prec == "32-true"
    assert {r["activation"]: r["pck20"] for r in rows}["softmax"] == 32.0  # its bf16 seed left out
    assert {r["activation"]: r["pck20"] for r in rows}["abs"] == pytest.approx(33.1)
    lines: list[str] = []
    report.orderings(lines)
    softmax = next(x for x in lines if "softmax is the best" in x)
    assert "**did not hold** here (" in softmax and "sigmoid 34.0; 32-true runs only" in softmax

    # a point with no float32 run: every seed counts, whatever its precision
    write_rows(
        tmp_path / "b_activation.csv",
        [
            row("softmax", 0, 35.0, "bf16-mixed", activation="softmax"),
            row("abs", 0, 33.0, "32-true", activation="abs"),
        ],
    )
    rows, prec = report.like_with_like("b_activation")
    assert prec is None and len(rows) == 2


def test_flip_section_names_every_abs_cell_in_one_paragraph(tmp_path, monkeypatch):
    import json

    monkeypatch.setattr(report, "RESULTS", tmp_path)
    flip = [
        {
            "cell": f"b/abs-seed{s}",
            "heatmap_px": 12,
            "none_pck20": 32.0,
            "coords_pck20": 32.5,
            "logits_pck20": 31.0 - s,
            "none_pck10": 12.0,
            "coords_pck10": 12.1,
            "logits_pck10": 11.0,
        }
        for s in (0, 1)
    ] + [
        {
            "cell": "b/relu-seed0",
            "heatmap_px": 12,
            "none_pck20": 33.0,
            "coords_pck20": 33.2,
            "logits_pck20": 33.4,
            "none_pck10": 12.0,
            "coords_pck10": 12.1,
            "logits_pck10": 12.2,
        }
    ]
    write_rows(tmp_path / "flip.csv", flip)
    (tmp_path / "b").mkdir()
    for cell, act in (("abs-seed0", "abs"), ("abs-seed1", "abs"), ("relu-seed0", "softmax")):
        (tmp_path / "b" / f"{cell}.json").write_text(
            json.dumps({"config": {"model": {"activation": act}}})
        )
    lines: list[str] = []
    report.flip_section(lines)
    text = "\n".join(lines)
    assert "logits better in 1 of 3 cells" in text
    abs_lines = [line for line in lines if line.startswith("With the abs activation")]
    assert len(abs_lines) == 1
    assert "while flip by coordinates did not" in abs_lines[0]
    assert "b/abs-seed0: logits -1.00, coordinates +0.50" in abs_lines[0]
    assert "b/abs-seed1: logits -2.00, coordinates +0.50" in abs_lines[0]
    assert "relu" not in abs_lines[0]


def test_heatmap_peak_statistics_on_rendered_maps():
    import torch
    from experiments import heatmaps

    from dsntpose import ops

    size = (12, 12)
    px = torch.tensor([[[2.0, 7.0], [8.0, 3.0], [5.5, 5.5]]])  # (1, 3, 2) at cell centres
    joints = ops.pixel_to_normalized(px, size)
    targets = ops.heatmap_targets(joints, size, 1.0)
    mask = torch.tensor([[1.0, 1.0, 0.0]])  # the third joint is not annotated: not counted

    perfect = heatmaps.finish(heatmaps.peak_sums(targets, targets, px, mask))
    assert perfect == {
        "joints": 2,
        "peak": 1.0,
        "amplitude": 1.0,
        "near_pct": 100.0,
        "mse_ratio": 0.0,
    }
    zero = heatmaps.finish(heatmaps.peak_sums(torch.zeros_like(targets), targets, px, mask))
    assert zero["amplitude"] == 0.0 and zero["mse_ratio"] == 1.0
    # half-height maps, one of them with its peak moved to the far corner
    half = 0.5 * targets.clone()
    half[0, 1] = 0.0
    half[0, 1, 11, 11] = 0.5
    stats = heatmaps.finish(heatmaps.peak_sums(half, targets, px, mask))
    assert stats["peak"] == pytest.approx(0.5, abs=1e-4)
    assert stats["near_pct"] == 50.0  # the moved peak is not within a cell of the truth
    assert 0.0 < stats["amplitude"] < 0.5
    with pytest.raises(ValueError, match=r"expected equal \(B, J, H, W\)"):
        heatmaps.peak_sums(targets[0], targets, px, mask)


def test_debiased_map_statistics_on_known_maps():
    """A flat map has N / C = 1 and the factor 1; a map with one cell at logit log(3 N + 1)
    (the rest at 0) has C = 4 N, so N / C = 1/4 and the factor 4/3; predictions that all sit
    at one place have no spread."""
    import math

    import torch
    from experiments import debiased

    n = 16
    logits = torch.zeros(2, 2, 4, 4)
    logits[1, :, 0, 0] = math.log(3 * n + 1)
    truth = torch.tensor([[[-0.5, 0.5], [0.5, -0.5]], [[0.25, 0.75], [-0.75, -0.25]]])
    mask = torch.ones(2, 2, dtype=torch.bool)
    stats = debiased.map_statistics(logits, truth.clone(), truth, mask)
    assert stats["joints"] == 4
    assert stats["n_over_c"] == pytest.approx((1 + 0.25) / 2, abs=1e-4)  # median of 1, 1, .25, .25
    assert stats["factor_median"] == pytest.approx((1 + 4 / 3) / 2, abs=1e-3)
    assert stats["spread_x"] == 1.0 and stats["spread_y"] == 1.0 and stats["median_error"] == 0.0
    still = debiased.map_statistics(logits, torch.zeros_like(truth), truth, mask)
    assert still["spread_x"] == 0.0 and still["median_error"] > 0.5


def test_report_quotes_the_measured_heatmap_peaks(tmp_path, monkeypatch):
    import json

    monkeypatch.setattr(report, "RESULTS", tmp_path)
    assert report.peaks_measured() == ""  # nothing measured: nothing claimed
    rows = [
        {
            "cell": "e/heatmap-n1000-seed0",
            "heatmap_px": 12,
            "joints": 900,
            "peak": 0.52,
            "amplitude": 0.5,
            "near_pct": 68.0,
            "mse_ratio": 0.598,
        },
        {
            "cell": "a/s4-heatmap-seed0",
            "heatmap_px": 24,
            "joints": 900,
            "peak": 0.129,
            "amplitude": 0.15,
            "near_pct": 25.6,
            "mse_ratio": 0.917,
        },
    ]
    write_rows(tmp_path / "heatmap_peaks.csv", rows)
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "heatmap-n1000-seed0.json").write_text(
        json.dumps({"config": {"data": {"augment": False}}})
    )
    text = report.peaks_measured()
    assert text.index("`a/s4-heatmap-seed0` (24 px): peak 0.13, 92% of a zero map's error") < (
        text.index("`e/heatmap-n1000-seed0` (12 px, no augmentation): peak 0.52, 60%")
    )
    assert "within a cell of the truth for 26%" in text
    # one sweep's cells at one size and augmentation are one entry, with their ranges
    rows.append({**rows[0], "cell": "e/heatmap-n250-seed0", "peak": 0.53, "mse_ratio": 0.545})
    write_rows(tmp_path / "heatmap_peaks.csv", rows)
    (tmp_path / "e" / "heatmap-n250-seed0.json").write_text(
        json.dumps({"config": {"data": {"augment": False}}})
    )
    text = report.peaks_measured()
    assert "2 e cells (12 px, no augmentation): peak 0.52-0.53, 55-60% of a zero map's" in text
    assert "`e/heatmap-n1000-seed0`" not in text


def test_finished_checkpoints_and_rows_round_trip(tmp_path, monkeypatch):
    import json

    results, runs = tmp_path / "results", tmp_path / "runs"
    monkeypatch.setattr(run, "RESULTS", results)
    for cell, head, extra in (
        ("s8-dsnt-seed0", "dsnt", {}),
        ("s8-heatmap-seed0", "heatmap", {}),
        ("s8-dsnt-seed1", "dsnt", {}),  # its run folder is gone: left out
        ("s8-twin-seed0", "dsnt", {"same_run_as": "x/s8-dsnt-seed0"}),
    ):
        (results / "x").mkdir(parents=True, exist_ok=True)
        record = {"sweep": "x", "cell": cell, "config": {"model": {"head": head}}, **extra}
        (results / "x" / f"{cell}.json").write_text(json.dumps(record))
        if cell != "s8-dsnt-seed1":
            (runs / "x" / cell).mkdir(parents=True)
            (runs / "x" / cell / "last.ckpt").write_bytes(b"")
    found = run.finished_checkpoints(runs, "dsnt")
    assert [(name, ckpt) for name, ckpt, _ in found] == [
        ("x/s8-dsnt-seed0", runs / "x" / "s8-dsnt-seed0" / "last.ckpt")
    ]
    assert [n for n, *_ in run.finished_checkpoints(runs, "heatmap")] == ["x/s8-heatmap-seed0"]
    assert run.finished_checkpoints(runs, "dsnt", ["x/other"]) == []

    path = tmp_path / "rows.csv"
    assert run.read_rows(path) == {}
    run.save_rows(path, ["cell", "v"], {"b": {"cell": "b", "v": 2}, "a": {"cell": "a", "v": 1}})
    assert list(run.read_rows(path)) == ["a", "b"]
    assert run.read_rows(path)["b"]["v"] == "2"


def test_discussion_sets_the_hourglass_beside_sweep_a_with_both_crop_sizes(tmp_path, monkeypatch):
    import json

    monkeypatch.setattr(report, "RESULTS", tmp_path)
    a_row = {
        "cell": "s8-dsnt-seed0",
        "strategy": "dsnt",
        "stride": "s8",
        "seed": 0,
        "heatmap_px": 12,
        "pck20": 33.0,
    }
    write_rows(tmp_path / "a_strategy.csv", [a_row])
    d_row = {
        "cell": "dsnt_js-seed0",
        "strategy": "dsnt_js",
        "seed": 0,
        "heatmap_px": 32,
        "pck20": 50.0,
    }
    write_rows(tmp_path / "d_hourglass.csv", [d_row])
    lines: list[str] = []
    report.discussion(lines)
    assert "hourglass" not in "\n".join(lines)  # no crop sizes on record: nothing said
    for sweep, cell, size in (("a_strategy", "s8-dsnt-seed0", 96), ("d_hourglass", "x", 128)):
        (tmp_path / sweep).mkdir()
        (tmp_path / sweep / f"{cell}.json").write_text(
            json.dumps({"config": {"model": {"input_size": size}}})
        )
    lines = []
    report.discussion(lines)
    text = "\n".join(lines)
    assert "The best cell of sweep (a) reaches 33.0% PCK@0.2" in text
    assert "hourglass with DSNT + JS reached 50.0 in sweep (d), +17.0 on sweep (a)'s best" in text
    assert "its crops are 128 px (96 in (a)) and its maps 32 px (at most 12 in (a))" in text


def test_sample_sweep_says_which_strategies_did_not_move_with_the_data(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "RESULTS", tmp_path)
    monkeypatch.setattr(report, "seed_noise", lambda precisions: (1.5, "4 seed pairs"))
    values = {
        "dsnt_js": (32.0, 37.0, 39.0),
        "heatmap": (29.0, 27.0, 30.0),
        "fc": (17.0, 18.0, 16.5),
    }
    e = [
        {
            "cell": f"{s}-{n}-seed0",
            "strategy": s,
            "samples": n,
            "seed": 0,
            "pck20": v,
            "pck10": v / 3,
            "precision": "32-true",
        }
        for s, vs in values.items()
        for n, v in zip(("n250", "n500", "n1000"), vs, strict=True)
    ]
    write_rows(tmp_path / "e_samples.csv", e)
    lines: list[str] = []
    report.sweep_e(lines)
    text = "\n".join(lines)
    assert (
        "Heatmap matching and fully connected show no trend with the data (29.0 / 27.0 / " in text
    )
    assert "30.0; 17.0 / 18.0 / 16.5 at 250 / 500 / 1000 images), while DSNT + JS rose" in text
    assert (
        "Their ups and downs (up to 3.0) exceed the largest seed difference measured (1.5" in text
    )
    monkeypatch.setattr(report, "seed_noise", lambda precisions: (0.4, "4 seed pairs"))
    lines = []
    report.sweep_e(lines)
    assert "no trend" not in "\n".join(lines)  # 1.0 and 0.5 end to end: beyond this noise


def test_latency_section_sets_the_hourglass_beside_sweep_a(tmp_path, monkeypatch):
    import json
    import shutil

    results = tmp_path / "docs" / "results"
    results.mkdir(parents=True)
    (tmp_path / "experiments").mkdir()
    shutil.copy(EXPERIMENTS / "base_lsp.yaml", tmp_path / "experiments")
    monkeypatch.setattr(report, "RESULTS", results)
    a = [
        {
            "cell": f"{st}-{s}-seed0",
            "strategy": s,
            "stride": st,
            "seed": 0,
            "heatmap_px": px,
            "pck20": v,
            "pck10": v / 3,
        }
        for st, px, s, v in [
            ("s8", 12, "dsnt_js", 33.0),
            ("s8", 12, "heatmap", 28.0),
            ("s4", 24, "dsnt_js", 40.0),
            ("s4", 24, "heatmap", 17.0),
        ]
    ]
    write_rows(results / "a_strategy.csv", a)
    write_rows(
        results / "d_hourglass.csv",
        [
            {
                "cell": "dsnt_js-seed0",
                "strategy": "dsnt_js",
                "seed": 0,
                "heatmap_px": 32,
                "pck20": 55.0,
            },
        ],
    )
    write_rows(
        results / "latency_cpu.csv",
        [
            {
                "sweep": "a_strategy",
                "cell": c,
                "stride": c.split("-")[0],
                "heatmap_px": 12,
                "latency_ms": ms,
                "flip_latency_ms": 2 * ms,
                "machine": "test cpu",
            }
            for c, ms in [
                ("s8-dsnt_js", 22.0),
                ("s8-heatmap", 22.5),
                ("s4-dsnt_js", 61.0),
                ("s4-heatmap", 61.5),
            ]
        ]
        + [
            {
                "sweep": "d_hourglass",
                "cell": "dsnt_js",
                "stride": "",
                "heatmap_px": 32,
                "latency_ms": 40.0,
                "flip_latency_ms": 80.0,
                "machine": "test cpu",
            }
        ],
    )
    for sweep, size in (("a_strategy", 96), ("d_hourglass", 128)):
        (results / sweep).mkdir()
        (results / sweep / "x.json").write_text(
            json.dumps(
                {
                    "axes": {"stride": "s4", "strategy": "dsnt_js"},
                    "heatmap_px": 24,
                    "config": {"model": {"input_size": size}},
                }
            )
        )
    lines: list[str] = []
    report.sweep_a(lines)
    text = "\n".join(lines)
    assert (
        "The 2-stack hourglass of sweep (d), timed in the same run (stars): DSNT + JS 55.0 "
        "at 40.0 ms." in text
    )
    assert "slower than its DSNT + JS reach at most 40.0, the faster ones 33.0: here it" in text
    assert "the hourglass takes 128 px crops, ResNet-18 96 px" in text
    assert (results / "pck_vs_latency.png").stat().st_size > 0


def test_peaks_verdict_compares_sweep_a_cells_only(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "RESULTS", tmp_path)
    assert report.peaks_verdict(12, 24) == ""

    def row(cell, px, peak, near):
        return {
            "cell": cell,
            "heatmap_px": px,
            "joints": 10,
            "peak": peak,
            "amplitude": peak,
            "near_pct": near,
            "mse_ratio": 0.5,
        }

    rows = [
        row("a_strategy/s4-heatmap-seed0", 24, 0.13, 26.0),
        row("a_strategy/s8-heatmap-seed1", 12, 0.48, 68.0),
        row("e_samples/heatmap-n1000-seed0", 12, 0.01, 1.0),
    ]  # another sweep: not counted
    write_rows(tmp_path / "heatmap_peaks.csv", rows)
    text = report.peaks_verdict(12, 24)
    assert "the 24 px maps peak at 0.13 against 0.48 at 12 px" in text
    assert "within a cell of the truth for 26% against 68%: as the explanation predicts." in text
    rows[0] = row("a_strategy/s4-heatmap-seed0", 24, 0.6, 80.0)
    write_rows(tmp_path / "heatmap_peaks.csv", rows)
    assert "not what the explanation predicts" in report.peaks_verdict(12, 24)
    assert report.peaks_verdict(6, 24) == ""  # no 6 px cell measured


def test_experiment_scripts_turn_bad_input_into_one_error_line():
    def missing() -> int:
        raise FileNotFoundError("data.root /nowhere does not exist")

    with pytest.raises(SystemExit) as exc:
        run.run_cli(missing)
    assert exc.value.code == "error: data.root /nowhere does not exist"  # printed, exit 1
    with pytest.raises(SystemExit) as exc:
        run.run_cli(lambda: 0)
    assert exc.value.code == 0


# ---- the paper's regime (experiments/report_pretrained.py)


def pretrained_sweeps(tmp_path: Path, monkeypatch) -> dict:
    """Two small pretrained-regime sweeps in ``tmp_path``, the report reading from there."""
    from experiments import report_pretrained as rp

    specs = {
        "pa_strategy": {
            "base": "base_pretrained.yaml",
            "grid": {
                "stride": {
                    "s32": {"model": {"output_stride": 32}},
                    "s8": {"model": {"output_stride": 8}},
                },
                "strategy": {
                    "dsnt_js": {"model": {"head": "dsnt"}, "loss": {"regularizer": "js"}},
                    "heatmap": {"model": {"head": "heatmap"}},
                },
            },
        },
        "pf_newops": {
            "base": "base_pretrained.yaml",
            "grid": {
                "stride": {"s32": {"model": {"output_stride": 32}}},
                "op": {
                    "dsnt_js": {"model": {"coords": "dsnt"}, "loss": {"regularizer": "js"}},
                    "debiased": {"model": {"coords": "debiased"}, "loss": {"regularizer": "js"}},
                },
            },
        },
    }
    for name, spec in specs.items():
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    for module in (report, run):  # report_pretrained reads report.RESULTS at call time
        monkeypatch.setattr(module, "RESULTS", tmp_path)
    monkeypatch.setattr(rp, "sweep_file", lambda name: tmp_path / f"{name}.yaml")
    monkeypatch.setattr(rp, "SWEEPS", {k: rp.SWEEPS[k] for k in specs})
    return specs


def finish(tmp_path: Path, spec: dict, sweep: str, cell: str, pck20: float, minutes: float):
    """Write the record and CSV row of a finished cell, as run.py does."""
    from dsntpose.config import RunConfig

    for cell_id, axes, seed, overrides in run.cells(spec):
        if cell_id != cell:
            continue
        values = run.cell_values(run.base_values(spec), overrides, seed, "x", "lsp", "lspet")
        config = RunConfig.from_dict(values).to_dict()
        record = {
            "sweep": sweep,
            "cell": cell,
            "axes": axes,
            "seed": seed,
            "heatmap_px": 128 // config["model"]["output_stride"],
            "config_hash": run.config_hash(config),
            "metrics": {"pck20": pck20, "pck10": pck20 / 3, "auc": pck20, "pck20_groups": {}},
            "train_seconds": minutes * 60,
            "steps": 1782,
            "config": config,
        }
        (tmp_path / sweep).mkdir(exist_ok=True)
        (tmp_path / sweep / f"{cell}.json").write_text(json.dumps(record))
    run.write_csv(sweep)


def test_pretrained_status_gives_the_minutes_each_unfinished_cell_needs(tmp_path, monkeypatch):
    from experiments import report_pretrained as rp

    specs = pretrained_sweeps(tmp_path, monkeypatch)
    finish(tmp_path, specs["pa_strategy"], "pa_strategy", "s32-dsnt_js-seed0", 41.0, 20.0)
    text, need = rp.status("pa_strategy")
    assert text.startswith(
        "1 of 4 cells finished; still to run: s32-heatmap-seed0 (~20 min, measured)"
    )
    # no s8 cell has finished: the calibration's throughput (28,500 samples at 4.5 img/s)
    assert "s8-dsnt_js-seed0 (~106 min, estimated)" in text
    assert need == pytest.approx(20 + 2 * 28500 / 4.5 / 60)
    # (pf)'s plain cell is the same recipe as (pa)'s finished one: nothing to train
    text, need = rp.status("pf_newops")
    assert "s32-dsnt_js-seed0 (the same run as pa_strategy/s32-dsnt_js-seed0: no training)" in text
    assert need == pytest.approx(20.0)
    assert rp.spent_minutes() == pytest.approx(20.0)


def test_pretrained_orderings_and_the_two_regimes(tmp_path, monkeypatch):
    from experiments import report_pretrained as rp

    specs = pretrained_sweeps(tmp_path, monkeypatch)
    for cell, pck in (("s32-dsnt_js", 41.0), ("s32-heatmap", 23.6), ("s8-dsnt_js", 50.0)):
        finish(tmp_path, specs["pa_strategy"], "pa_strategy", f"{cell}-seed0", pck, 20.0)
    finish(tmp_path, specs["pa_strategy"], "pa_strategy", "s8-heatmap-seed0", 49.0, 100.0)
    finish(tmp_path, specs["pf_newops"], "pf_newops", "s32-debiased-seed0", 44.0, 20.0)
    monkeypatch.setattr(report, "seed_noise", lambda precisions: (2.0, "7 seed pairs"))
    lines: list[str] = []
    ours = rp.orderings(lines)
    said = {rp.claim_text(x): rp.verdict_of(x) for x in ours}
    # no seed pair in this regime yet: the from-scratch noise is used, and said to be
    assert said["DSNT + JS beats heatmap matching at every resolution run"] == (
        "held, by 1.0: within the seed noise of 2.0 (no seed pair of this regime yet: the "
        "from-scratch 7 seed pairs)"
    )
    assert (
        said["the gap from DSNT + JS to heatmap matching is largest at the lowest resolution"]
        == "held"
    )
    # pf's plain DSNT + JS is pa's record, copied by run.py; here only the debiased cell ran
    assert said["debiased DSNT + JS beats plain DSNT + JS at s32"] == "not yet measured"
    finish(tmp_path, specs["pf_newops"], "pf_newops", "s32-dsnt_js-seed0", 41.0, 20.0)
    said = {rp.claim_text(x): rp.verdict_of(x) for x in rp.orderings([])}
    assert said["debiased DSNT + JS beats plain DSNT + JS at s32"] == "held"
    lines = []
    rp.seeds_paragraph(lines)
    assert "pa_strategy/s8-dsnt_js and pa_strategy/s8-heatmap (1.0 apart)" in lines[0]
    assert "pf_newops/s32-debiased and pf_newops/s32-dsnt_js (3.0 apart)" in lines[0]
    # each at its stride's median minutes: s8 60 (20 and 100), s32 20
    assert lines[0].endswith("Second seeds still to run: 4 cells, about 160 min of training.")
    lines = []
    rp.regimes(lines, ours)
    heat = next(x for x in lines if x.startswith("* Heatmap matching at s32"))
    assert "4x4 cells, each 32 crop px wide" in heat and "16 crop px" in heat


def test_headline_reads_one_peers_run_for_the_best_cells(tmp_path, monkeypatch):
    from experiments import report_pretrained as rp

    specs = pretrained_sweeps(tmp_path, monkeypatch)
    for cell, pck in (("s32-dsnt_js", 41.0), ("s32-heatmap", 23.6), ("s8-heatmap", 30.0)):
        finish(tmp_path, specs["pa_strategy"], "pa_strategy", f"{cell}-seed0", pck, 20.0)
    lines: list[str] = []
    rp.headline(lines)
    assert "Not yet measured for the current best cells" in lines[2]
    assert '--also "pa_strategy/s8-heatmap-seed0=runs/experiments/' in lines[2]

    def result(total: float) -> dict:
        groups = dict.fromkeys(("Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle"), total)
        return {"visible": {"groups": groups, "total": total}}

    keys = {"ours": 60.0, "also1": 41.0, "also2": 30.0, "mediapipe": 78.0}
    doc = {
        "date": "2026-12-01T00:00:00+00:00",
        "machine": {"cpu": "Test CPU"},
        "data": {"images": 1000},
        "ours": {"model": "shipped model lsp_efficientnet_lite0"},
        "also": [
            {
                "key": "also1",
                "label": "d",
                "checkpoint": "runs/experiments/pa_strategy/s32-dsnt_js-seed0/last.ckpt",
            },
            {
                "key": "also2",
                "label": "h",
                "checkpoint": "runs/experiments/pa_strategy/s8-heatmap-seed0/last.ckpt",
            },
        ],
        "pck": {
            **{f"{k}_flip": result(v) for k, v in keys.items() if k != "mediapipe"},
            "mediapipe": result(78.0),
        },
        "latency": {
            "threads": 1,
            "results": {f"{k}_flip": {"median_ms": 30.0} for k in keys}
            | {"mediapipe": {"median_ms": 30.1}},
        },
        "efficiency": {k: {"params_m": 3.39, "gmacs": 0.39, "peak_memory_mib": 64.0} for k in keys}
        | {"mediapipe": {"params_m": None, "gmacs": None, "peak_memory_mib": 116.0}},
    }
    (tmp_path / "peers.json").write_text(json.dumps(doc))
    lines = []
    rp.headline(lines)
    rows = [x for x in lines if x.startswith("| ")][1:]
    assert [r.split(" | ")[0] for r in rows] == [
        "| best DSNT cell, d (flip)",
        "| best heatmap cell, h (flip)",
        "| the shipped model, shipped model lsp_efficientnet_lite0 (flip)",
        "| MediaPipe BlazePose full (own detector)",
    ]
    assert "| **41.0** | 30.0 | 3.39 | 0.39 | 64 |" in rows[0]
    assert rows[3].endswith("| **78.0** | 30.1 | – | – | 116 |")


def test_an_ordering_is_judged_on_mpii_too_with_the_intervals(monkeypatch):
    """The second score: means over the seeds that have it, and whether the bootstrap
    intervals leave the difference unresolved."""
    from experiments import report_pretrained as rp

    rows = [
        {"op": "rle", "stride": "s32", "mpii_pckh": 30.0, "mpii_pckh_ci": "28.0-32.0"},
        {"op": "dsnt_js", "stride": "s32", "mpii_pckh": 24.0, "mpii_pckh_ci": "22.0-26.0"},
        {"op": "dsnt_js", "stride": "s32", "mpii_pckh": 26.0, "mpii_pckh_ci": "24.0-27.9"},
        {"op": "local", "stride": "s32", "mpii_pckh": 25.0, "mpii_pckh_ci": "23.0-27.0"},
        {"op": "debiased", "stride": "s32", "mpii_pckh": ""},  # checkpoint gone: no score
    ]
    for i, r in enumerate(rows):
        r.update(cell=f"s32-{r['op']}-seed{i}", seed=float(i))
    monkeypatch.setattr(rp, "read_csv", lambda sweep, merge_seeds=True: rows)
    monkeypatch.setattr(rp, "records", dict)

    def point(op: str) -> tuple[str, dict[str, str]]:
        return ("pf_newops", {"op": op, "stride": "s32"})

    assert rp.mpii_verdict(point("rle"), point("dsnt_js")) == (
        "; on MPII, PCKh@0.5 30.0 vs 25.0 (1 and 2 seeds): **held**"
    )
    assert rp.mpii_verdict(point("local"), point("dsnt_js")) == (
        "; on MPII, PCKh@0.5 25.0 vs 25.0 (1 and 2 seeds): "
        "**did not hold, within the 95% bootstrap intervals**"
    )
    assert rp.mpii_verdict(point("debiased"), point("dsnt_js")) == ""


def test_a_copied_cell_takes_the_later_seeds_of_the_run_it_copies(monkeypatch):
    """pc's js-sigma1 is pa's s16-dsnt_js (same_run_as): its mean and MPII scores include pa's
    second seed, so the orderings of both sweeps judge the same runs by the same numbers; the
    best-of-N verdict on MPII waits until every candidate has a score."""
    from experiments import report_pretrained as rp

    csvs = {
        "pa_strategy": [
            {"cell": "s16-dsnt_js-seed0", "seed": 0.0, "strategy": "dsnt_js", "stride": "s16",
             "pck20": 48.0, "mpii_pckh": ""},
            {"cell": "s16-dsnt_js-seed1", "seed": 1.0, "strategy": "dsnt_js", "stride": "s16",
             "pck20": 50.0, "mpii_pckh": 33.0, "mpii_pckh_ci": "30.0-36.0"},
        ],
        "pc_regularizer": [
            {"cell": "js-sigma1-seed0", "seed": 0.0, "reg": "js", "sigma": "sigma1",
             "pck20": 48.0, "mpii_pckh": ""},
            {"cell": "kl-sigma1-seed0", "seed": 0.0, "reg": "kl", "sigma": "sigma1",
             "pck20": 47.0, "mpii_pckh": 31.0, "mpii_pckh_ci": "28.0-34.0"},
        ],
    }  # fmt: skip
    monkeypatch.setattr(rp, "read_csv", lambda sweep, merge_seeds=True: csvs.get(sweep, []))
    monkeypatch.setattr(
        rp,
        "records",
        lambda: {
            "pc_regularizer/js-sigma1-seed0": {"same_run_as": "pa_strategy/s16-dsnt_js-seed0"}
        },
    )
    grid = rp.grid("pc_regularizer", "reg", "sigma")
    assert grid == {("js", "sigma1"): 49.0, ("kl", "sigma1"): 47.0}
    assert rp.grid("pa_strategy", "strategy", "stride") == {("dsnt_js", "s16"): 49.0}
    js = ("pc_regularizer", {"reg": "js", "sigma": "sigma1"})
    kl = ("pc_regularizer", {"reg": "kl", "sigma": "sigma1"})
    assert rp.mpii_verdict(js, kl) == (
        "; on MPII, PCKh@0.5 33.0 vs 31.0 (1 and 1 seed): "
        "**held, within the 95% bootstrap intervals**"
    )
    three = ("js", "kl", "var")
    assert rp.mpii_best("pc_regularizer", {"sigma": "sigma1"}, "reg", three) == ""  # var: none
    assert rp.mpii_best("pc_regularizer", {"sigma": "sigma1"}, "reg", three[:2], where="s1") == (
        "; on MPII at s1 (PCKh@0.5) the best is js: js 33.0, kl 31.0"
    )


def test_retrain_unscored_picks_cells_without_mpii_or_checkpoint_and_resumes(tmp_path, monkeypatch):
    """--retrain_unscored: a finished cell with no MPII score and no kept checkpoint is run
    again (its old scores kept as earlier_run); a stopped retrain resumes by its marker and
    --score_mpii leaves its partial checkpoint alone; copies of the cell take the new run."""
    import argparse
    import json

    results, runs = tmp_path / "results", tmp_path / "runs"
    monkeypatch.setattr(run, "RESULTS", results)
    (results / "pa").mkdir(parents=True)
    (results / "pc").mkdir()
    old = {"sweep": "pa", "cell": "s16-dsnt-seed0", "metrics": {"pck20": 47.9, "pck10": 19.9},
           "train_seconds": 2000.0, "machine": "m", "config": {}}  # fmt: skip
    path = results / "pa" / "s16-dsnt-seed0.json"
    path.write_text(json.dumps(old))
    cell_dir = runs / "pa" / "s16-dsnt-seed0"
    earlier = run.retrain_target(path, cell_dir)
    assert earlier == {"pck20": 47.9, "pck10": 19.9, "train_seconds": 2000.0, "machine": "m"}
    # scored, a copy, or a kept checkpoint: not retrained
    scored = results / "pa" / "scored.json"
    scored.write_text(json.dumps({**old, "mpii": {"pckh": 30.0}}))
    assert run.retrain_target(scored, runs / "pa" / "scored") is None
    copy = results / "pc" / "none-sigma1-seed0.json"
    copy.write_text(json.dumps({**old, "sweep": "pc", "cell": "none-sigma1-seed0",
                                "axes": {"reg": "none"}, "same_run_as": "pa/s16-dsnt-seed0"}))  # fmt: skip
    assert run.retrain_target(copy, runs / "pc" / "none-sigma1-seed0") is None
    # a retrain in progress: its marker wins over the partial checkpoint it has written
    cell_dir.mkdir(parents=True)
    (cell_dir / "last.ckpt").write_bytes(b"partial")
    assert run.retrain_target(path, cell_dir) is None  # checkpoint, no marker: --score_mpii's
    (cell_dir / run.RETRAIN_MARKER).write_text(json.dumps(earlier))
    assert run.retrain_target(path, cell_dir) == earlier
    scoring = []
    monkeypatch.setattr(run, "score_mpii", lambda *a: scoring.append(a) or {"pckh": 1.0})
    monkeypatch.setattr(run, "write_csv", lambda sweep: None)
    args = argparse.Namespace(runs_dir=str(runs), mpii_root="unused")
    assert run.backfill_mpii(args) == 0 and scoring == []  # the partial run is not scored
    # the new run's record reaches its copies, which keep their own names and axes
    new = {**old, "metrics": {"pck20": 48.3}, "mpii": {"pckh": 34.0}, "earlier_run": earlier}
    run.refresh_copies("pa/s16-dsnt-seed0", new)
    refreshed = json.loads(copy.read_text())
    assert refreshed["metrics"]["pck20"] == 48.3 and refreshed["mpii"]["pckh"] == 34.0
    assert refreshed["cell"] == "none-sigma1-seed0" and refreshed["axes"] == {"reg": "none"}
    assert refreshed["same_run_as"] == "pa/s16-dsnt-seed0" and refreshed["sweep"] == "pc"


def test_cells_run_again_are_named_once_with_their_first_score(monkeypatch):
    from experiments import report_pretrained as rp

    csvs = {
        "pa_strategy": [{"cell": "s16-dsnt-seed0", "pck20": 48.3, "earlier_pck20": 47.9},
                        {"cell": "s16-fc-seed0", "pck20": 30.0, "earlier_pck20": ""}],
        "pc_regularizer": [{"cell": "none-sigma1-seed0", "pck20": 48.3, "earlier_pck20": 47.9}],
    }  # fmt: skip
    monkeypatch.setattr(rp, "read_csv", lambda sweep, merge_seeds=True: csvs.get(sweep, []))
    monkeypatch.setattr(
        rp,
        "records",
        lambda: {"pc_regularizer/none-sigma1-seed0": {"same_run_as": "pa_strategy/s16-dsnt-seed0"}},
    )
    note = rp.rerun_note()
    assert "pa_strategy/s16-dsnt-seed0 48.3 (first run 47.9)." in note[0]
    assert "none-sigma1" not in note[0] and "s16-fc" not in note[0]
    csvs["pa_strategy"] = csvs["pa_strategy"][1:]
    assert rp.rerun_note() == []


def test_a_stopped_cell_says_what_was_saved_and_how_to_resume(tmp_path, monkeypatch, capsys):
    """``kill`` of a running cell: one line naming the cell, the saved step and the
    experiments.run command that resumes it (not a traceback, not ``dsntpose train``, which
    would not write the cell's record); exit 130."""
    import dsntpose.training
    from dsntpose.training import TrainingInterrupted

    def stopped(run_config, **kwargs):
        raise TrainingInterrupted(
            "interrupted: /r/last.ckpt saved at step 610; resume with: dsntpose train --config x"
        )

    monkeypatch.setattr(run, "RESULTS", tmp_path / "results")
    monkeypatch.setattr(dsntpose.training, "fit", stopped)
    lsp = tmp_path / "lsp"
    lsp.mkdir()
    (lsp / "joints.mat").write_bytes(b"")
    argv = ["pa", "--only", "s32-fc-seed0", "--runs_dir", str(tmp_path / "runs"),
            "--data_root", str(lsp)]  # fmt: skip
    with pytest.raises(SystemExit) as stop:
        run.main(argv)
    assert stop.value.code == 130
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    assert err.startswith("pa_strategy/s32-fc-seed0: interrupted: /r/last.ckpt saved at step 610")
    assert err.endswith("resume with: python -m experiments.run " + " ".join(argv))
    assert (tmp_path / "runs" / "pa_strategy" / "s32-fc-seed0" / "train_seconds.txt").is_file()


def test_measure_cells_saves_each_row_and_skips_the_measured(tmp_path, capsys):
    from experiments.run import measure_cells, read_rows

    out = tmp_path / "rows.csv"
    found = [("a/x-seed0", tmp_path / "x.ckpt", {"heatmap_px": 4}),
             ("a/y-seed0", tmp_path / "y.ckpt", {"heatmap_px": 8})]  # fmt: skip
    calls = []

    def measure(checkpoint):
        calls.append(checkpoint.name)
        return {"value": len(calls)}

    done = measure_cells(out, ["cell", "heatmap_px", "value"], found[:1], measure, str)
    assert calls == ["x.ckpt"] and read_rows(out) == done
    done = measure_cells(out, ["cell", "heatmap_px", "value"], found, measure, str)
    assert calls == ["x.ckpt", "y.ckpt"]
    assert done["a/y-seed0"] == {"cell": "a/y-seed0", "heatmap_px": "8", "value": "2"}
    assert capsys.readouterr().out.count("a/x-seed0:") == 1


def test_results_name_the_machine_the_cells_ran_on(monkeypatch) -> None:
    """The regime's header names the machines of the cells' records, not a fixed one."""
    from experiments import report_pretrained as rp

    docs = Path(__file__).resolve().parents[1] / "docs"
    # the committed records, whatever an earlier test left (its patches are undone)
    assert rp.base_report.RESULTS == docs / "results"
    machines = rp.cell_machines()
    assert machines != "unrecorded" and "CPU cores" in machines
    results = (docs / "results.md").read_text()
    assert f"one thread per cell on {machines};" in results


def test_whole_proxies_report_names_every_cell() -> None:
    from experiments import whole_proxies

    record = {
        "cell": "192-s16-up", "heatmap_size": 24, "upsample": True, "val_pck20": 60.1,
        "presence_auroc": 0.99, "visibility_auroc": 0.9, "train_images_per_s_median": 7.0,
        "latency_ms_batch1_1thread": 30.0, "machine": "test machine",
    }  # fmt: skip
    two = {**record, "cell": "192-s16-up2", "heatmap_size": 48, "upsample": 2}
    text = whole_proxies.report({"192-s16-up": record, "192-s16-up2": two})
    assert "| 192-s16-up | 24 px (decoder) | 60.1 | 0.9900 |" in text
    assert "| 192-s16-up2 | 48 px (decoder, 2 stages) | 60.1 |" in text
    assert "| 192-s8 | not run |" in text
    assert set(whole_proxies.CELLS) <= {
        line.split(" | ")[0][2:]
        for line in text.splitlines()
        if line.startswith("| ") and "|---" not in line
    } | {"cell"}
