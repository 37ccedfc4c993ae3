"""Tests for benchmarks/ops.py's tables: the worst ratio of each row and the A/A control's
noise band, from made-up timings (no timing runs here; the benchmark itself is a script)."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import load_script

bench_ops = load_script("bench_ops", Path(__file__).resolve().parents[1] / "benchmarks" / "ops.py")


def run(regime: str, threads: int, times: dict[str, tuple[float, float]]) -> dict:
    """A worker's result with one round per case: ``times[case] = (ours s, dsntnn s)``."""
    return {
        "regime": regime,
        "threads": threads,
        "mallopt_pinned": True,
        "times": {k: {"ours": [o], "dsntnn": [d]} for k, (o, d) in times.items()},
    }


def test_worst_ratio_and_control_band() -> None:
    runs = [
        run(
            "fresh",
            1,
            {"ops/8/28": (1.0, 1.2), "control/8/28": (1.0, 0.95), "dsnt/32/28": (1.0, 2.0)},
        ),
        run(
            "steady",
            2,
            {"ops/8/28": (1.0, 0.9), "control/8/28": (1.0, 1.08), "dsnt/32/28": (1.0, 1.5)},
        ),
    ]
    summary, full, worst = bench_ops.tables(runs)
    assert worst["ops 28 px"] == pytest.approx(
        {"ratio": 0.9, "batch": 8, "regime": "steady", "threads": 2}
    )
    assert worst["dsnt 28 px"]["ratio"] == pytest.approx(1.5)
    per_run = {(r["regime"], r["threads"]): bench_ops.ratios(r) for r in runs}
    assert bench_ops.control_band(per_run) == {28: pytest.approx((0.95, 1.08))}
    # the ops row shows the control's band at its map size; the control row itself does not
    ops_line = next(line for line in summary.splitlines() if line.startswith("| ops |"))
    assert ops_line.endswith("| 0.95-1.08x |") and "0.90x" in ops_line
    control_line = next(line for line in summary.splitlines() if line.startswith("| control |"))
    assert control_line.endswith("| - |")
    assert "| ops | 8 | 28 | 1.20x (1e+03 / 1.2e+03) | 0.90x (1e+03 / 900) |" in full


def test_median_over_rounds() -> None:
    r = {
        "regime": "fresh",
        "threads": 1,
        "times": {"ops/1/4": {"ours": [1.0, 1.0, 1.0], "dsntnn": [0.5, 2.0, 1.1]}},
    }
    assert bench_ops.ratios(r) == {"ops/1/4": pytest.approx(1.1)}


def test_control_row_covers_the_ops_grid() -> None:
    full = bench_ops.cases(quick=False)
    ops_cases = {(b, s) for row, b, s in full if row == "ops"}
    control_cases = {(b, s) for row, b, s in full if row == "control"}
    assert ops_cases == control_cases and len(ops_cases) == 28
    ours, theirs, kind = bench_ops.ROWS["control"]
    assert ours is theirs and kind == "logits"
