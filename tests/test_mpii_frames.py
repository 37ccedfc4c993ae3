"""MPII on real frames: people subsets, bootstrap intervals, LSP models scored by joint name.

The published prediction files are scored on the 264 validation people whose frames are in
../shared/data/mpii/images and on all 2958, against figures computed independently of this
code (../shared/data/README.md and mpii/SOURCES.md). Tests that read ../shared skip without it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dsntpose import cli
from dsntpose import evaluate as ev
from dsntpose import inference as inf
from dsntpose import mpii_files as mf
from dsntpose.data.joints import LSP_JOINTS, MPII_JOINTS

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
MPII_DIR = SHARED / "data" / "mpii"
GT_MAT = MPII_DIR / "detections_our_format.mat"
PEOPLE = MPII_DIR / "images_val_people.json"
needs_frames = pytest.mark.skipif(
    not (PEOPLE.is_file() and GT_MAT.is_file() and (MPII_DIR / "images").is_dir()),
    reason="../shared/data/mpii with its validation frames is absent",
)

# Count-weighted Total over the 14 joints other than pelvis and thorax: on the 264 people with
# frames (README, "images/") and on all 2958 (SOURCES.md's table).
PUBLISHED = {
    "tompson.h5": (83.5, 82.34),
    "bearpaw-hg_s1_b1.mat": (87.8, 85.08),
    "bearpaw-hg_s2_b1.mat": (89.5, 87.30),
    "newell.h5": (90.5, 88.43),
    "bearpaw-hg_s8_b1.mat": (91.2, 89.09),
}


# --------------------------------------------------------------------------------------------
# Published prediction files on the people subset and on the whole split
# --------------------------------------------------------------------------------------------


@needs_frames
@pytest.mark.parametrize("name", list(PUBLISHED))
def test_published_files_on_the_264_people_and_on_all(name: str) -> None:
    path = MPII_DIR / "reference_preds" / name
    subset, whole = PUBLISHED[name]
    listed, people = mf.score_predictions(path, GT_MAT, people=PEOPLE)
    assert len(people.rows) == 264 and people.total == 2958
    assert listed.total == pytest.approx(subset, abs=0.1)
    lo, hi = listed.intervals.total
    assert lo < listed.total < hi and 2.0 < hi - lo < 8.0  # a few points on 264 people
    framed, by_frames = mf.score_predictions(path, GT_MAT, image_root=MPII_DIR / "images")
    np.testing.assert_array_equal(by_frames.rows, people.rows)  # the same people
    np.testing.assert_array_equal(framed.correct, listed.correct)
    full, everyone = mf.score_predictions(path, GT_MAT, bootstrap=0)
    assert len(everyone.rows) == 2958 and full.intervals is None
    assert full.total == pytest.approx(whole, abs=0.01)


@needs_frames
def test_subset_intervals_are_wider_than_the_whole_splits() -> None:
    path = MPII_DIR / "reference_preds" / "bearpaw-hg_s8_b1.mat"
    subset = mf.score_predictions(path, GT_MAT, people=PEOPLE)[0].intervals
    whole = mf.score_predictions(path, GT_MAT)[0].intervals
    assert np.diff(whole.total)[0] < np.diff(subset.total)[0]
    assert whole.people == 2958 and subset.people == 264


@needs_frames
def test_eval_preds_command_line_on_the_listed_people(capsys: pytest.CaptureFixture[str]) -> None:
    path = MPII_DIR / "reference_preds" / "newell.h5"
    args = ["eval", "--preds", str(path), "--gt", str(GT_MAT), "--people", str(PEOPLE)]
    assert cli.main([*args, "--json"]) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert out["total"] == pytest.approx(90.5, abs=0.1)
    assert out["intervals"]["people"] == 264 and len(out["intervals"]["joints"]) == 16
    assert "264 of the 2958 validation people" in captured.err
    # the same subset by default when --data.root has only some frames
    assert cli.main(["eval", "--preds", str(path), "--data.root", str(MPII_DIR)]) == 0
    captured = capsys.readouterr()
    assert "264 of the 2958" in captured.err and "90.47" in captured.out
    assert "95% percentile-bootstrap intervals over 264 people" in captured.out


def write_gt_mat(path: Path, joints: np.ndarray, missing: np.ndarray, head: np.ndarray) -> None:
    """A detections_our_format.mat-style file (1-based) with square head boxes of size ``head``."""
    import scipy.io

    half = head / 0.6 / np.sqrt(2) / 2  # 0.6 * diagonal = head, diagonal = side * sqrt(2)
    boxes = np.stack([joints[:, 9] - half[:, None], joints[:, 9] + half[:, None]], axis=1)
    scipy.io.savemat(
        path,
        {
            "jnt_missing": missing.T.astype(np.uint8),
            "pos_gt_src": (joints + 1).transpose(1, 2, 0),
            "headboxes_src": (boxes + 1).transpose(1, 2, 0),
        },
    )


def test_predictions_of_the_selected_people_only(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    joints = rng.uniform(200, 600, (40, 16, 2))
    missing = np.zeros((40, 16), bool)
    head = np.full(40, 60.0)
    gt = tmp_path / "gt.mat"
    write_gt_mat(gt, joints, missing, head)
    rows = [3, 1, 30]
    people = tmp_path / "people.json"
    people.write_text(json.dumps(rows))
    mf.write_predictions(tmp_path / "few.h5", joints[rows] + 5.0)  # 5 px: within 30 px
    r, subset = mf.score_predictions(
        tmp_path / "few.h5", gt, people=people, bootstrap=0, check_frame_offset=False
    )
    assert subset.rows.tolist() == rows and r.total == 100.0
    mf.write_predictions(tmp_path / "odd.h5", joints[:7])
    with pytest.raises(ValueError, match=r"odd\.h5: 7 people, .* one per selected person \(3\)"):
        mf.score_predictions(tmp_path / "odd.h5", gt, people=people)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "not a readable JSON file"),
        ('{"rows": [1]}', "expected a non-empty JSON list"),
        ("[1, 2.5]", "expected a non-empty JSON list"),
        ("[1, 40]", "row 40 is outside the 40 ground-truth people"),
        ("[-1]", "row -1 is outside"),
        ("[2, 2]", "rows repeat"),
    ],
)
def test_people_file_errors_name_the_file(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "people.json"
    path.write_text(text)
    with pytest.raises(ValueError, match=rf"people\.json: .*{message}"):
        mf.read_people(path, 40)
    with pytest.raises(FileNotFoundError, match=r"people file not found: .*absent\.json"):
        mf.read_people(tmp_path / "absent.json", 40)


def test_people_with_frames(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(b"x")
    (tmp_path / "c.jpg").write_bytes(b"x")
    subset = mf.select_people(
        4, image_names=["a.jpg", "b.jpg", "c.jpg", "a.jpg"], image_root=tmp_path
    )
    assert subset.rows.tolist() == [0, 2, 3] and "3 of the 4" in subset.describe()
    with pytest.raises(FileNotFoundError, match="holds none of the 2 validation frames"):
        mf.select_people(2, image_names=["x.jpg", "y.jpg"], image_root=tmp_path)
    assert mf.select_people(5).rows.tolist() == [0, 1, 2, 3, 4]


# --------------------------------------------------------------------------------------------
# Bootstrap
# --------------------------------------------------------------------------------------------


def people_at(rate: float, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` people whose joints are each correct with probability ``rate`` (pelvis missing)."""
    rng = np.random.default_rng(seed)
    counted = np.ones((n, 16), bool)
    counted[:, 6] = False
    correct = (rng.random((n, 16)) < rate) & counted
    return correct, counted


def test_bootstrap_contains_the_estimate_and_shrinks_with_more_people() -> None:
    widths = []
    for n in (100, 400, 1600):
        correct, counted = people_at(0.8, n)
        ci = ev.bootstrap_pck(correct, counted, MPII_JOINTS, resamples=1000, seed=1)
        total = 100 * correct[:, list(MPII_JOINTS.pck_total)].sum() / (n * 14)
        assert ci.total[0] <= total <= ci.total[1]
        per_joint = 100 * correct.sum(0) / np.maximum(counted.sum(0), 1)
        for j in range(16):
            if j == 6:
                assert np.isnan(ci.per_joint[j]).all()  # never counted
            else:
                assert ci.per_joint[j, 0] <= per_joint[j] <= ci.per_joint[j, 1]
        for group, (lo, hi) in ci.groups.items():
            point = per_joint[list(MPII_JOINTS.pck_groups[group])].mean()
            assert lo <= point <= hi, group
        widths.append(ci.total[1] - ci.total[0])
    assert widths[0] > widths[1] > widths[2]
    assert widths[0] / widths[2] == pytest.approx(4.0, rel=0.3)  # 1 / sqrt(n)


def test_bootstrap_is_seeded_and_matches_the_tables_intervals() -> None:
    correct, counted = people_at(0.6, 50)
    a = ev.bootstrap_pck(correct, counted, MPII_JOINTS, resamples=200, seed=3)
    b = ev.bootstrap_pck(correct, counted, MPII_JOINTS, resamples=200, seed=3)
    assert a.total == b.total and a.groups == b.groups
    assert a.describe().startswith("95% percentile-bootstrap intervals over 50 people")
    d = a.to_dict(MPII_JOINTS.names)
    assert d["joints"]["pelvis"] == [None, None] and d["resamples"] == 200


def test_pckh_with_bootstrap_prints_and_serialises_intervals() -> None:
    rng = np.random.default_rng(0)
    joints = rng.uniform(0, 500, (60, 16, 2))
    preds = joints + rng.normal(size=joints.shape) * 20
    missing = np.zeros((60, 16), bool)
    r = ev.pckh(preds, joints, missing, np.full(60, 50.0), bootstrap=300)
    plain = ev.pckh(preds, joints, missing, np.full(60, 50.0))
    np.testing.assert_array_equal(r.correct, plain.correct)
    assert plain.intervals is None and "intervals" not in plain.to_dict()
    assert r.intervals.total[0] <= r.total <= r.intervals.total[1]
    assert "95% interval" in str(r) and "over 60 people" in str(r)
    assert json.loads(r.to_json())["intervals"]["total"] == list(r.intervals.total)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"correct": np.zeros((3, 14), bool)}, r"expected \(N, 16\) each"),
        ({"resamples": 5}, "at least 10"),
        ({"level": 1.5}, "coverage"),
        ({"correct": np.ones((3, 16), bool), "counted": np.zeros((3, 16), bool)}, "not counted"),
    ],
)
def test_bootstrap_rejects_bad_inputs(kwargs: dict, message: str) -> None:
    args = {"correct": np.zeros((3, 16), bool), "counted": np.ones((3, 16), bool)}
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        ev.bootstrap_pck(args.pop("correct"), args.pop("counted"), MPII_JOINTS, **args)


# --------------------------------------------------------------------------------------------
# LSP models on MPII: joints by name
# --------------------------------------------------------------------------------------------


def test_lsp_predictions_map_onto_mpii_joints_by_name() -> None:
    preds = np.arange(2 * 14 * 2, dtype=float).reshape(2, 14, 2)
    mapped, scored = inf.map_joints(preds, LSP_JOINTS, MPII_JOINTS)
    assert mapped.shape == (2, 16, 2)
    names = MPII_JOINTS.names
    assert [n for n, ok in zip(names, scored) if not ok] == ["pelvis", "thorax"]
    assert np.isnan(mapped[:, [6, 7]]).all()
    np.testing.assert_array_equal(mapped[:, names.index("upper_neck")], preds[:, 12])  # neck
    for j, name in enumerate(names):
        if name in LSP_JOINTS.names:
            np.testing.assert_array_equal(mapped[:, j], preds[:, LSP_JOINTS.index(name)])
    same, all_scored = inf.map_joints(mapped, MPII_JOINTS, MPII_JOINTS)
    assert all_scored.all() and np.array_equal(same, mapped, equal_nan=True)
    with pytest.raises(ValueError, match=r"expected \(\.\.\., 14, K\) for lsp"):
        inf.map_joints(np.zeros((2, 16, 2)), LSP_JOINTS, MPII_JOINTS)


def test_an_lsp_model_scored_by_name_counts_the_same_total_joints() -> None:
    """An LSP model's MPII Total pools the same 14 joints as a 16-joint model's."""
    rng = np.random.default_rng(0)
    joints = rng.uniform(0, 500, (30, 16, 2))
    missing = np.zeros((30, 16), bool)
    full = ev.pckh(joints, joints, missing, np.full(30, 40.0))
    lsp = joints[:, [MPII_JOINTS.index(LSP_JOINTS.names[j].replace("neck", "upper_neck"))
                     for j in range(14)]]  # fmt: skip
    mapped, scored = inf.map_joints(lsp, LSP_JOINTS, MPII_JOINTS)
    r = ev.pckh(mapped, joints, missing | ~scored, np.full(30, 40.0))
    assert r.total == full.total == 100.0 and r.counts[6] == r.counts[7] == 0


@needs_frames
def test_shipped_lsp_model_on_mpii_frames(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["eval", "--data.dataset", "mpii", "--data.root", str(MPII_DIR), "--limit", "6"]
    lsp = ["--checkpoint", "lsp_efficientnet_lite0"]
    assert cli.main([*args, *lsp, "--no-progress", "--json"]) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert out["metric"] == "PCKh" and out["counts"]["pelvis"] == 0 == out["counts"]["thorax"]
    assert out["counts"]["upper_neck"] > 0 and out["intervals"]["people"] == 6
    assert "6 of the 2958 validation people" in captured.err and "on 14 MPII joints" in captured.err
    assert "detections_our_format.mat" in captured.err
    # the default model (whole_efficientnet_lite0) predicts MPII's 16 joints: all are scored
    assert cli.main([*args, "--no-progress", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["counts"]["pelvis"] > 0 and out["counts"]["thorax"] > 0


# --------------------------------------------------------------------------------------------
# The table in docs/results.md (experiments/mpii_table.py)
# --------------------------------------------------------------------------------------------


def _row(label: str, total: float, scored: list[str] | None) -> dict:
    names = list(MPII_JOINTS.names)
    groups = {g: total for g in MPII_JOINTS.pck_groups}
    return {
        "label": label,
        "file": f"{label}.h5",
        "people": 264,
        "groups": groups,
        "total": total,
        "joints": {n: (None if scored and n not in scored else total) for n in names},
        "intervals": {
            "groups": {g: [total - 2, total + 2] for g in groups},
            "total": [total - 1.5, total + 1.5],
            "joints": {n: [total - 3, total + 3] for n in names},
        },
        "joints_scored": scored,
        "model": {
            "backbone": "efficientnet_lite0",
            "head": "dsnt",
            "input_size": 160,
            "heatmap_size": 10,
        },
        "trained_on": "lsp",
        "efficiency": {"flip_latency_ms": 40.0, "infer_peak_mb": 70.0},
    }


def test_mpii_table_section_and_its_place_in_the_results_page() -> None:
    from experiments import mpii_table as mt

    lsp = [n for n in MPII_JOINTS.names if n not in ("pelvis", "thorax")]
    doc = {
        "meta": {
            "command": "python -m experiments.mpii_table",
            "date": "2026-12-06",
            "efficiency": {"machine": "cpu", "threads": 1},
        },
        "models": [_row("shipped", 49.3, lsp)],
        "published": [_row("Tompson", 83.5, None)],
        "missing_cells": [
            {"sweep": "pa_strategy", "cell": "s16-dsnt-seed0", "minutes": 35.8},
            {"sweep": "a_strategy", "cell": "s4-dsnt-seed0", "minutes": 20.0},
        ],
    }
    lines: list[str] = []
    mt.section(lines, doc)
    text = "\n".join(lines)
    assert text.startswith(mt.HEADER) and "264 of the 2958" in text
    assert "**49.3 (47.8-50.8)**" in text and "**83.5 (82.0-85.0)**" in text
    assert "14 (no pelvis, thorax; neck as upper_neck)" in text and "| all 16 |" in text
    assert "| pelvis | – |" in text
    assert "2 experiment cells" in text and "56 min in all" in text
    assert "* pa_strategy: s16-dsnt-seed0 35.8" in text
    page = "# Results\n\nintro\n\n## Next\n\nbody\n"
    once = mt.replace_section(page, lines)
    assert once.index(mt.HEADER) < once.index("## Next") and once.endswith("body\n")
    assert mt.replace_section(once, lines) == once  # rerunning replaces, never duplicates


def test_mpii_table_lists_only_cells_whose_run_is_gone(tmp_path: Path, monkeypatch) -> None:
    """A cell that is the same run as another (``same_run_as``) is found in that run's
    folder; a cell with no checkpoint anywhere is listed with its minutes."""
    from experiments import mpii_table

    results, runs = tmp_path / "results", tmp_path / "runs"
    for sweep, cell, extra in (
        ("pa", "s16-dsnt-seed0", {}),
        ("pc", "none-seed0", {"same_run_as": "pa/s16-dsnt-seed0"}),
        ("pa", "s32-fc-seed0", {}),
    ):
        (results / sweep).mkdir(parents=True, exist_ok=True)
        record = {"sweep": sweep, "cell": cell, "train_seconds": 600, **extra}
        (results / sweep / f"{cell}.json").write_text(json.dumps(record))
    (runs / "pa" / "s16-dsnt-seed0").mkdir(parents=True)
    (runs / "pa" / "s16-dsnt-seed0" / "last.ckpt").write_bytes(b"x")
    monkeypatch.setattr(mpii_table, "RESULTS", results)
    missing = mpii_table.missing_cells(runs)
    assert [(m["sweep"], m["cell"], m["minutes"]) for m in missing] == [
        ("pa", "s32-fc-seed0", 10.0)
    ]
