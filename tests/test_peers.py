"""Tests for benchmarks/peers.py: landmark mapping, scoring, the worker protocol, input errors.

None needs MediaPipe: the worker loop is driven with a fake estimator.
"""

from __future__ import annotations

import importlib.util
import io
import json
import math
import mmap
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SPEC = importlib.util.spec_from_file_location("peers", REPO / "benchmarks" / "peers.py")
assert SPEC is not None and SPEC.loader is not None
peers = importlib.util.module_from_spec(SPEC)
sys.modules["peers"] = peers
SPEC.loader.exec_module(peers)

# BlazePose landmark names, in MediaPipe's index order (the 33-point topology).
MEDIAPIPE_NAMES = (
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye",
    "right_eye_outer", "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_pinky",
    "right_pinky", "left_index", "right_index", "left_thumb", "right_thumb", "left_hip",
    "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle", "left_heel",
    "right_heel", "left_foot_index", "right_foot_index",
)  # fmt: skip


def people(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random LSP-like ground truth ``(n, 14, 2)`` px and its torso sizes ``(n,)``."""
    rng = np.random.default_rng(seed)
    gt = rng.uniform(20.0, 300.0, size=(n, 14, 2))
    return gt, peers.torso_sizes(gt)


# --------------------------------------------------------------------------------------------
# Landmark mapping
# --------------------------------------------------------------------------------------------


def test_map_names_match_joints() -> None:
    """Every LSP limb joint takes the MediaPipe landmark of the same side and part."""
    assert len(MEDIAPIPE_NAMES) == peers.NUM_MEDIAPIPE
    assert sorted(peers.LSP_FROM_MEDIAPIPE) == list(range(12))
    for lsp, mp in peers.LSP_FROM_MEDIAPIPE.items():
        side, part = peers.LSP_NAMES[lsp].split("_")
        assert MEDIAPIPE_NAMES[mp] == {"r": "right", "l": "left"}[side] + "_" + part
    assert len(set(peers.LSP_FROM_MEDIAPIPE.values())) == 12


def test_mediapipe_to_lsp_pixels() -> None:
    """Landmark ``m`` at a known position lands in its LSP slot, in pixel-centre px."""
    w, h = 200, 100
    lm = np.zeros((33, 4))
    lm[:, 0] = (np.arange(33) + 0.5) / w  # centre of pixel column m
    lm[:, 1] = (2 * np.arange(33) + 0.5) / h
    out = peers.mediapipe_to_lsp(lm, w, h)
    assert out.shape == (14, 2)
    for lsp, mp in peers.LSP_FROM_MEDIAPIPE.items():
        np.testing.assert_allclose(out[lsp], [mp, 2 * mp], atol=1e-9)
    assert np.isnan(out[12:]).all()  # neck and head top: no counterpart
    # outer edges: 0 -> -0.5 px, 1 -> W - 0.5 px
    edge = np.zeros((33, 2))
    edge[12] = [1.0, 1.0]
    out = peers.mediapipe_to_lsp(edge, w, h)
    np.testing.assert_allclose(out[8], [w - 0.5, h - 0.5])
    np.testing.assert_allclose(out[9], [-0.5, -0.5])


def test_mediapipe_to_lsp_no_detection_and_bad_shape() -> None:
    assert np.isnan(peers.mediapipe_to_lsp(None, 10, 10)).all()
    with pytest.raises(ValueError, match="33"):
        peers.mediapipe_to_lsp(np.zeros((17, 2)), 10, 10)


# --------------------------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------------------------


def test_score_by_hand() -> None:
    """Two people with a torso of 10 px: the threshold is 2 px, inclusive."""
    gt = np.zeros((2, 14, 2))
    gt[:, 3] = [6.0, 8.0]  # l_hip; r_shoulder (8) at the origin: torso 10
    preds = gt.copy()
    preds[0, 0] += [2.0, 0.0]  # r_ankle exactly at the threshold: correct
    preds[1, 0] += [0.0, 2.01]  # just outside: a miss
    preds[0, 6] = np.nan  # no prediction: a miss
    counted = np.ones((2, 14), dtype=bool)
    counted[1, 11] = False  # one l_wrist not counted
    r = peers.score(preds, gt, counted, peers.torso_sizes(gt))
    assert r["joints"]["r_ankle"] == 50.0
    assert r["joints"]["r_wrist"] == 50.0
    assert r["counts"]["l_wrist"] == 1 and r["joints"]["l_wrist"] == 100.0
    assert r["groups"]["Ankle"] == 75.0  # mean of r_ankle 50 and l_ankle 100
    assert r["groups"]["Wrist"] == 75.0
    assert r["counted"] == 23
    assert r["total"] == pytest.approx(100.0 * 21 / 23, abs=1e-4)
    assert r["total_unweighted"] == pytest.approx((10 * 100 + 50 + 50) / 12, abs=1e-4)
    assert "neck" not in r["joints"] and "head_top" not in r["joints"]


def test_score_ignores_neck_and_head() -> None:
    gt, torso = people(5)
    preds = gt.copy()
    preds[:, 12:] += 1e6  # far off, but not scored
    r = peers.score(preds, gt, np.ones((5, 14), bool), torso)
    assert r["total"] == 100.0 and r["counted"] == 60


def test_score_both_protocols() -> None:
    """``visible`` counts only visible joints; ``all`` every annotated one."""
    gt, _ = people(4, seed=1)
    preds = gt.copy()
    visible = np.ones((4, 14), dtype=bool)
    visible[:, 0] = False  # every r_ankle occluded ...
    preds[:, 0] += 1e3  # ... and wrong
    missing = np.zeros((4, 14), dtype=bool)
    both = peers.score_both(preds, gt, visible, missing)
    assert both["visible"]["total"] == 100.0 and both["visible"]["counted"] == 44
    assert both["visible"]["joints"]["r_ankle"] is None  # never counted
    assert both["all"]["counted"] == 48
    assert both["all"]["total"] == pytest.approx(100.0 * 44 / 48, abs=1e-4)


def test_score_matches_dsntpose_pck() -> None:
    """Per joint, the same as ``dsntpose.evaluate.pck`` (which scores all 14 joints)."""
    evaluate = pytest.importorskip("dsntpose.evaluate")
    gt, torso = people(200, seed=2)
    rng = np.random.default_rng(3)
    preds = gt + rng.normal(scale=0.15, size=gt.shape) * torso[:, None, None]
    missing = rng.random((200, 14)) < 0.1
    ours = peers.score(preds, gt, ~missing, torso)
    ref = evaluate.pck(preds, gt, missing, evaluate.torso_sizes(gt), 0.2)
    for j in range(12):
        assert ours["joints"][peers.LSP_NAMES[j]] == pytest.approx(ref.per_joint[j], abs=1e-3)
    np.testing.assert_allclose(evaluate.torso_sizes(gt), torso)


def test_score_rejects_bad_input() -> None:
    gt, torso = people(3)
    counted = np.ones((3, 14), dtype=bool)
    with pytest.raises(ValueError, match="14, 2"):
        peers.score(gt[:, :12], gt[:, :12], counted, torso)
    bad = torso.copy()
    bad[1] = 0.0
    with pytest.raises(ValueError, match="torso"):
        peers.score(gt, gt, counted, bad)
    with pytest.raises(ValueError, match="threshold"):
        peers.score(gt, gt, counted, torso, threshold=0.0)


def test_summary_and_order() -> None:
    s = peers.summarize_ms([1.0, 2.0, 3.0, 4.0, 100.0])
    assert s["median_ms"] == 3.0 and s["n"] == 5 and s["min_ms"] == 1.0
    assert s["p90_ms"] == pytest.approx(61.6)
    names = ["a", "b", "c"]
    firsts = {peers.interleaved_order(names, 0, i)[0] for i in range(3)}
    assert firsts == set(names)
    assert sorted(peers.interleaved_order(names, 1, 7)) == names


# --------------------------------------------------------------------------------------------
# Worker protocol (fake estimator) and input errors
# --------------------------------------------------------------------------------------------


def test_worker_protocol(tmp_path: Path) -> None:
    cv2 = pytest.importorskip("cv2")
    image = np.zeros((40, 80, 3), dtype=np.uint8)
    image[..., 2] = 255  # red in BGR
    path = tmp_path / "im.png"
    cv2.imwrite(str(path), image)
    seen = []

    def make() -> tuple[object, dict[str, str]]:
        def estimate(rgb: np.ndarray) -> object:
            seen.append(rgb[0, 0].tolist())
            return None if len(seen) > 1 else [(0.5, 0.25, 0.0, 1.0)] * 33

        return estimate, {"mediapipe": "fake", "threads": "1"}

    requests = [
        {"op": "load", "paths": [str(path)]},
        {"op": "run", "index": 0},
        {"op": "run", "index": 0},
        {"op": "run", "index": 5},
        {"op": "nonsense"},
        {"op": "quit"},
    ]
    stdin = io.StringIO("".join(json.dumps(r) + "\n" for r in requests))
    stdout = io.StringIO()
    peers.serve(stdin, stdout, make)
    answers = [json.loads(line) for line in stdout.getvalue().splitlines()]
    assert answers[0]["ready"] and answers[0]["info"]["mediapipe"] == "fake"
    assert answers[1]["sizes"] == [[80, 40]]
    first = answers[2]
    assert seen[0] == [255, 0, 0]  # the estimator gets RGB
    assert first["joints"][8] == [39.5, 9.5] and first["joints"][12] == [None, None]
    assert first["ms"] >= 0 and first["cpu_ms"] >= 0
    assert answers[3]["landmarks"] is None and answers[3]["joints"][0] == [None, None]
    assert "error" in answers[4] and "error" in answers[5]
    assert answers[6] == {"bye": True}


def run_main(*argv: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = peers.main(list(argv))
    return code, capsys.readouterr().err


def test_missing_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run_main("--checkpoint", str(tmp_path / "nope.ckpt"), capsys=capsys)
    assert code != 0
    assert err.strip().count("\n") == 0 and "checkpoint not found" in err


def test_missing_data_root(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run_main("--data_root", str(tmp_path / "lsp"), capsys=capsys)
    assert code != 0
    assert err.strip().count("\n") == 0 and "LSP data not found" in err


def test_bad_option() -> None:
    with pytest.raises(SystemExit) as info:
        peers.parse_args(["--limit", "0"])
    assert info.value.code != 0


def test_markdown_renders() -> None:
    """The report renders from a minimal document (the shape ``run`` builds)."""
    gt, _ = people(3)
    both = peers.score_both(gt, gt, np.ones((3, 14), bool), np.zeros((3, 14), bool))
    timing = {**peers.summarize_ms([1.0, 2.0]), "cpu_median_ms": 1.5}
    doc = {
        "date": "today",
        "command": "peers.py",
        "machine": {"cpu": "cpu", "usable_cores": 2, "load_average_at_start": [0.0]},
        "data": {"images": 3, "first": "im1001.jpg", "last": "im1003.jpg"},
        "ours": {"model": "m", "backbone": "b", "input_size": 160},
        "mediapipe": {"mediapipe": "0", "api": "api", "no_detection": 0},
        "pck": {"ours": both, "ours_flip": both, "mediapipe": both},
        "latency": {
            "threads": 1,
            "images": 2,
            "rounds": 1,
            "warmup": 0,
            "included": "x",
            "results": {"ours": timing, "ours_flip": timing, "mediapipe": timing},
            "decode": timing,
            "ratios": {"r": 1.0},
            "threading": "t",
        },
        "notes": ["n"],
        "pck_detected_only": {"images": 3, "results": {"mediapipe": both["visible"]}},
    }
    text = peers.render_markdown(doc)
    assert "**100.0**" in text and "annotation box" in text and "own detector" in text
    assert "on the 3 images where MediaPipe found a person" in text
    assert not math.isnan(both["all"]["total"])


# --------------------------------------------------------------------------------------------
# --also (more dsntpose models), the worker's memory answer, efficiency
# --------------------------------------------------------------------------------------------


def test_parse_also() -> None:
    """``LABEL=CHECKPOINT``, split at the first ``=``; a label may hold spaces and brackets."""
    got = peers.parse_also(["best cell (pa s16)=runs/a=b/last.ckpt", " stage 1 = x.pt "])
    assert got == [("best cell (pa s16)", Path("runs/a=b/last.ckpt")), ("stage 1", Path("x.pt"))]
    for bad in (["no_label.ckpt"], ["=x.pt"], ["label="], ["a=x.pt", "a=y.pt"]):
        with pytest.raises(peers.PeersError):
            peers.parse_also(bad)


def test_also_without_equals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run_main("--also", str(tmp_path / "x.ckpt"), capsys=capsys)
    assert code == 2
    assert err.strip().count("\n") == 0 and "LABEL=CHECKPOINT" in err


def test_also_missing_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run_main("--also", f"stage 1={tmp_path / 'nope.ckpt'}", capsys=capsys)
    assert code == 2
    assert err.strip().count("\n") == 0
    assert "--also stage 1: checkpoint not found" in err


def test_also_bad_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A file that is no dsntpose checkpoint fails in one line, before MediaPipe starts."""
    torch = pytest.importorskip("torch")
    zoo = pytest.importorskip("dsntpose.zoo")
    try:
        zoo.pretrained_path()  # the main model: the shipped one
    except FileNotFoundError:
        pytest.skip("no shipped model installed")
    root = tmp_path / "lsp"
    (root / "images").mkdir(parents=True)
    (root / "joints.mat").write_bytes(b"")  # check_inputs only looks for the files
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"not a checkpoint")
    threads = torch.get_num_threads()
    try:
        code, err = run_main("--data_root", str(root), "--also", f"x={bad}", capsys=capsys)
    finally:
        torch.set_num_threads(threads)  # run() sets --threads (1) for the process
    assert code == 2
    assert err.strip().count("\n") == 0 and err.startswith("peers.py: error: --also x: ")


def test_worker_memory_answer(tmp_path: Path) -> None:
    """``memory``: peak RSS growth since before the estimator was made, and the decoded images
    held (MiB)."""
    cv2 = pytest.importorskip("cv2")
    path = tmp_path / "im.png"
    cv2.imwrite(str(path), np.zeros((64, 128, 3), dtype=np.uint8))
    held = []

    def make() -> tuple[object, dict[str, str]]:
        model = mmap.mmap(-1, 8 * 2**20)  # an 8 MiB "model" in new pages (not malloc's free
        model.write(b"x" * len(model))  # memory, which may be resident already), touched
        held.append(model)
        return (lambda rgb: None), {"mediapipe": "fake", "threads": "1"}

    requests = [{"op": "load", "paths": [str(path)]}, {"op": "memory"}, {"op": "quit"}]
    stdin = io.StringIO("".join(json.dumps(r) + "\n" for r in requests))
    stdout = io.StringIO()
    peers.serve(stdin, stdout, make)
    answer = [json.loads(line) for line in stdout.getvalue().splitlines()][2]
    assert answer["images_mib"] == pytest.approx(64 * 128 * 3 / 2**20)
    assert answer["peak_growth_mib"] >= 7.0
    assert "VmHWM" in answer["method"] or "ru_maxrss" in answer["method"]


def test_measure_dsntpose_uses_the_checkpoint_config(tmp_path) -> None:
    """The figures are of the checkpoint's network (LSP joints, its crop size), and its peak
    memory, measured in a fresh process, covers loading the model, as MediaPipe's does."""
    pytest.importorskip("torch")
    from dsntpose.checkpoint import save_model
    from dsntpose.config import ModelConfig
    from dsntpose.model import build_model

    cfg = ModelConfig(backbone="efficientnet_lite0", output_stride=16, joints="lsp", input_size=64)
    model = build_model(cfg)
    path = save_model(model, tmp_path / "m.pt", cfg)
    row = peers.measure_efficiency(str(path), threads=1)
    params = sum(p.numel() for p in model.parameters()) / 1e6
    assert row["params_m"] == pytest.approx(params, abs=1e-4)
    assert row["input_size"] == 64 and row["threads"] == 1
    assert row["gmacs"] > row["head_gmacs"] > 0
    weights_mib = params * 1e6 * 4 / 2**20
    assert row["peak_memory_mib"] > 0.9 * weights_mib  # the loaded float32 weights at least


def test_markdown_with_an_extra_model() -> None:
    """An ``--also`` contender gets a row in every table; the efficiency table renders with
    MediaPipe's null parameters and MACs as n/a."""
    gt, _ = people(3)
    both = peers.score_both(gt, gt, np.ones((3, 14), bool), np.zeros((3, 14), bool))
    timing = {**peers.summarize_ms([1.0, 2.0]), "cpu_median_ms": 1.5}
    ours_eff = {"params_m": 3.39, "gmacs": 0.123, "peak_memory_mib": 12.5, "how": "fresh"}
    doc = {
        "date": "today",
        "command": "peers.py",
        "machine": {"cpu": "cpu", "usable_cores": 2, "load_average_at_start": [0.0]},
        "data": {"images": 3, "first": "im1001.jpg", "last": "im1003.jpg"},
        "ours": {"model": "m", "backbone": "b", "input_size": 160},
        "also": [
            {
                "key": "also1",
                "label": "stage 1",
                "checkpoint": "runs/s1.pt",
                "backbone": "efficientnet_lite0",
                "input_size": 160,
                "head": "dsnt",
                "output_stride": 16,
            }
        ],
        "mediapipe": {"mediapipe": "0", "api": "api", "no_detection": 0},
        "pck": {
            "ours": both,
            "ours_flip": both,
            "also1": both,
            "also1_flip": both,
            "mediapipe": both,
        },
        "latency": {
            "threads": 1,
            "images": 2,
            "rounds": 1,
            "warmup": 0,
            "included": "x",
            "results": {
                k: timing for k in ("ours", "ours_flip", "also1", "also1_flip", "mediapipe")
            },
            "decode": timing,
            "ratios": {"r": 1.0},
            "threading": "t",
        },
        "efficiency": {
            "ours": ours_eff,
            "also1": {**ours_eff, "params_m": 5.0},
            "mediapipe": {
                "params_m": None,
                "gmacs": None,
                "peak_memory_mib": 40.0,
                "how": "worker",
                "model_file_sizes_mb": {"pose_detection.tflite": 2.959},
                "note": "not exposed",
            },
        },
        "notes": ["n"],
        "pck_detected_only": {"images": 3, "results": {"also1": both["visible"]}},
    }
    text = peers.render_markdown(doc)
    assert "* stage 1: runs/s1.pt (efficientnet_lite0, 160 px, dsnt head" in text
    # two PCK tables and the latency table, plain and flip
    assert text.count("| stage 1 (annotation box) |") == 3
    assert text.count("| stage 1 + flip (annotation box) |") == 3
    assert "stage 1 (annotation box) 100.0%" in text  # the detected-only diagnostic
    efficiency = text.split("## Efficiency", 1)[1]
    assert "| dsntpose | 3.39 | 0.123 | 12.5 | fresh |" in efficiency
    assert "| stage 1 | 5.00 | 0.123 | 12.5 | fresh |" in efficiency
    assert "| n/a | n/a | 40.0 | worker |" in efficiency
    assert "pose_detection.tflite 2.96 MB" in efficiency and "* not exposed" in efficiency
