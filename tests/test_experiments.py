"""The sweep runner's grid (seeds, extra seeds, skips, twins) and the report's seed merging."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest
import yaml

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
sys.path.insert(0, str(EXPERIMENTS))

import report  # noqa: E402
import run  # noqa: E402

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
    monkeypatch.setattr(report, "seed_noise", lambda: 2.0)
    close = report.claim("A beats B", lambda: False, lambda: "33.0 vs 34.0", lambda: -1.0)
    assert (
        close
        == "* A beats B: **did not hold, by 1.0: within the seed noise of 2.0** here (33.0 vs 34.0)."
    )
    clear = report.claim("A beats B", lambda: True, lambda: "40.0 vs 30.0", lambda: 10.0)
    assert clear == "* A beats B: **held** here (40.0 vs 30.0)."
    missing = report.claim("A beats B", lambda: {}["a"], lambda: "", lambda: 0.0)
    assert "not yet measured" in missing
