"""Pictures are checked by their pixels: where a joint lands, what colour, what a file holds."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from dsntpose.data.joints import LSP_JOINTS, MPII_JOINTS
from dsntpose.viz import (
    default_sizes,
    draw_skeleton,
    find_metrics_csv,
    heatmap_overlay,
    joint_colors,
    plot_pck_curves,
    plot_training_curves,
    prediction_grid,
    read_metrics_csv,
    save_figure,
    save_image,
)

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def nan_joints(num: int) -> np.ndarray:
    return np.full((num, 2), np.nan)


def test_joint_colors_follow_limbs() -> None:
    colors = joint_colors(MPII_JOINTS)
    assert len(colors) == 16
    right_leg = MPII_JOINTS.colors[MPII_JOINTS.skeleton.index((0, 1))]
    left_arm = MPII_JOINTS.colors[MPII_JOINTS.skeleton.index((15, 14))]
    assert colors[0] == right_leg  # r_ankle
    assert colors[15] == left_arm  # l_wrist
    assert colors[9] == MPII_JOINTS.colors[MPII_JOINTS.skeleton.index((8, 9))]  # head_top: end only


def test_joint_lands_on_its_pixel_centre() -> None:
    image = np.zeros((40, 30, 3), np.uint8)
    joints = nan_joints(16)
    joints[0] = (10.0, 20.0)
    out = draw_skeleton(image, joints, MPII_JOINTS, radius=2.0)
    assert out[20, 10].tolist() == list(joint_colors(MPII_JOINTS)[0])
    assert out[20, 16].tolist() == [0, 0, 0]  # beyond the radius
    assert out[26, 10].tolist() == [0, 0, 0]
    assert not image.any(), "the input image must not be modified"
    # x is the column, y the row: the transposed position stays empty
    assert out[10, 20].tolist() == [0, 0, 0]


def test_sub_pixel_position_is_honoured() -> None:
    image = np.zeros((30, 30, 3), np.uint8)
    joints = nan_joints(16)
    joints[0] = (10.5, 15.0)
    half = draw_skeleton(image, joints, MPII_JOINTS, radius=1.0).astype(int).sum(axis=2)
    assert half[15, 10] == half[15, 11] > 0  # symmetric about the boundary between 10 and 11
    joints[0] = (10.25, 15.0)
    quarter = draw_skeleton(image, joints, MPII_JOINTS, radius=1.0).astype(int).sum(axis=2)
    assert quarter[15, 9] > quarter[15, 12]
    centroid = (quarter * np.arange(30)[None, :]).sum() / quarter.sum()
    assert centroid == pytest.approx(10.25, abs=0.1)


def test_edge_drawn_between_its_joints_in_its_colour() -> None:
    image = np.zeros((20, 60, 3), np.uint8)
    joints = nan_joints(16)
    joints[0] = (5.0, 10.0)  # r_ankle
    joints[1] = (55.0, 10.0)  # r_knee: edge (0, 1) is the right leg
    out = draw_skeleton(image, joints, MPII_JOINTS, radius=1.0, thickness=3)
    edge_color = MPII_JOINTS.colors[MPII_JOINTS.skeleton.index((0, 1))]
    assert out[10, 30].tolist() == list(edge_color)
    assert out[2, 30].tolist() == [0, 0, 0]


def test_mask_and_non_finite_joints_are_skipped_with_their_edges() -> None:
    image = np.zeros((20, 60, 3), np.uint8)
    joints = nan_joints(16)
    joints[0] = (5.0, 10.0)
    joints[1] = (55.0, 10.0)
    mask = np.ones(16, bool)
    mask[1] = False
    out = draw_skeleton(image, joints, MPII_JOINTS, mask=mask, radius=1.0, thickness=3)
    assert out[10, 5].any()  # joint 0 is drawn
    assert not out[10, 30].any() and not out[10, 55].any()  # joint 1 and the edge are not


def test_confidence_sets_opacity() -> None:
    image = np.zeros((30, 30, 3), np.uint8)
    joints = nan_joints(14)
    joints[13] = (15.0, 15.0)
    confidence = np.full(14, 0.5)
    out = draw_skeleton(image, joints, LSP_JOINTS, confidence=confidence, radius=3.0)
    color = np.asarray(joint_colors(LSP_JOINTS)[13])
    np.testing.assert_allclose(out[15, 15], 0.5 * color, atol=1)
    confidence[13] = 0.0  # still faintly visible
    faint = draw_skeleton(image, joints, LSP_JOINTS, confidence=confidence, radius=3.0)
    assert 0 < faint[15, 15].max() < out[15, 15].max()


def test_joints_outside_the_image_are_clipped_not_an_error() -> None:
    image = np.zeros((20, 20, 3), np.uint8)
    joints = nan_joints(16)
    joints[0] = (-50.0, 10.0)
    joints[1] = (10.0, 10.0)  # the edge enters the image from the left
    out = draw_skeleton(image, joints, MPII_JOINTS, radius=1.0, thickness=1)
    assert out[10, 0].any() and out[10, 5].any()


def test_default_sizes_grow_with_the_image() -> None:
    small, large = default_sizes(224, 224), default_sizes(720, 1280)
    assert small[0] < large[0] and small[1] <= large[1]
    assert small[1] >= 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"image": np.zeros((8, 8), np.uint8)}, r"\(H, W, 3\) uint8"),
        ({"image": np.zeros((8, 8, 3), np.float32)}, r"\(H, W, 3\) uint8"),
        ({"joints_px": np.zeros((14, 2))}, r"\(16, 2\)"),
        ({"mask": np.ones(3)}, r"mask must be \(16,\)"),
        ({"confidence": np.ones((16, 1))}, r"confidence must be \(16,\)"),
        ({"radius": 0.0}, "radius"),
    ],
)
def test_draw_skeleton_rejects_bad_input(kwargs: dict, message: str) -> None:
    args = {"image": np.zeros((8, 8, 3), np.uint8), "joints_px": np.zeros((16, 2))}
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        draw_skeleton(joint_set=MPII_JOINTS, **args)


def test_heatmap_overlay_one_panel_per_joint_spanning_the_image(tmp_path: Path) -> None:
    image = np.full((64, 48, 3), 128, np.uint8)
    maps = np.random.default_rng(0).random((16, 8, 6)).astype(np.float32)
    joints = np.tile([[20.0, 30.0]], (16, 1))
    fig = heatmap_overlay(image, maps, MPII_JOINTS, joints_px=joints, ncols=4, panel_size=1.0)
    titled = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in titled] == list(MPII_JOINTS.names)
    overlay = titled[0].get_images()[1]
    assert tuple(overlay.get_extent()) == (-0.5, 47.5, 63.5, -0.5)
    path = save_figure(fig, tmp_path / "sub" / "maps.png")
    read = cv2.imread(str(path))
    assert path.stat().st_size > 1000 and read is not None and read.std() > 0
    with pytest.raises(ValueError, match=r"heatmaps must be \(16, h, w\)"):
        heatmap_overlay(image, maps[:3], MPII_JOINTS)


def test_heatmap_overlay_peak_is_drawn_where_the_map_peaks(tmp_path: Path) -> None:
    image = np.zeros((40, 40, 3), np.uint8)
    maps = np.zeros((14, 4, 4), np.float32)
    maps[:, 3, 0] = 1.0  # bottom-left cell of every map
    fig = heatmap_overlay(image, maps, LSP_JOINTS, ncols=1, panel_size=2.0)
    fig.canvas.draw()
    ax = fig.axes[0]
    rgba = np.asarray(fig.canvas.buffer_rgba())
    height = rgba.shape[0]

    def pixel_at(x: float, y: float) -> np.ndarray:
        px, py = ax.transData.transform((x, y))
        return rgba[round(height - py), round(px), :3].astype(int)

    assert pixel_at(5.0, 35.0).sum() > pixel_at(35.0, 5.0).sum() + 100  # image px (x=5, y=35)


def test_prediction_grid_layout_and_error_lines() -> None:
    images = [np.zeros((100, 50, 3), np.uint8), np.zeros((60, 60, 3), np.uint8)]
    preds = [nan_joints(16), nan_joints(16)]
    preds[0][0] = (10.0, 10.0)
    gts = [nan_joints(16), nan_joints(16)]
    gts[0][0] = (40.0, 90.0)
    grid = prediction_grid(images, preds, MPII_JOINTS, gt_px=gts, ncols=4, tile=100, gap=2)
    assert grid.shape == (104, 206, 3) and grid.dtype == np.uint8
    # first cell: 100 x 50 image fitted at scale 1, centred horizontally (25 px bars)
    cell = grid[2:102, 2:102]
    assert not cell[:, :20].any()
    midpoint = cell[50, 25 + 25]  # halfway from pred (10, 10) to gt (40, 90)
    assert midpoint[0] > 200 and midpoint[1] < 100
    assert not grid[2:102, 104:204].any()  # the second image has nothing to draw
    with pytest.raises(ValueError, match="one"):
        prediction_grid(images, preds[:1], MPII_JOINTS)


def test_pck_curves_figure(tmp_path: Path) -> None:
    thresholds = np.linspace(0, 0.5, 11)
    fig = plot_pck_curves({"a": (thresholds, thresholds * 150), "b": (thresholds, thresholds)})
    ax = fig.axes[0]
    assert [line.get_label() for line in ax.get_lines()] == ["a", "b"]
    assert ax.get_ylabel() == "PCK (%)"
    assert plot_pck_curves({"a": (thresholds, thresholds)}).axes[0].get_ylabel() == "PCK"
    assert save_figure(fig, tmp_path / "pck.png").stat().st_size > 1000
    with pytest.raises(ValueError, match="equal 1-D"):
        plot_pck_curves({"a": (thresholds, thresholds[:3])})


# What Lightning's CSVLogger writes: one row per logging call, training and validation metrics
# on different rows, empty cells elsewhere.
METRICS_CSV = """epoch,lr-AdamW,step,train/loss,val/loss,val/pck
0,0.001,0,,,
0,,9,2.5,,
0,,19,2.0,,
0,,19,,1.9,0.10
1,0.0005,20,,,
1,,29,1.5,,
1,,39,1.2,,
1,,39,,1.4,0.25
"""


def test_read_metrics_csv_keeps_nan_cells(tmp_path: Path) -> None:
    path = tmp_path / "metrics.csv"
    path.write_text(METRICS_CSV)
    columns = read_metrics_csv(path)
    assert list(columns) == ["epoch", "lr-AdamW", "step", "train/loss", "val/loss", "val/pck"]
    assert np.isfinite(columns["train/loss"]).sum() == 4
    np.testing.assert_array_equal(columns["val/pck"][np.isfinite(columns["val/pck"])], [0.1, 0.25])


def test_training_curves_from_a_lightning_log_folder(tmp_path: Path) -> None:
    run = tmp_path / "logs" / "run" / "version_0"
    run.mkdir(parents=True)
    (run / "metrics.csv").write_text(METRICS_CSV)
    assert find_metrics_csv(tmp_path / "logs") == run / "metrics.csv"
    fig = plot_training_curves(tmp_path / "logs")
    panels = {ax.get_title(): ax for ax in fig.axes if ax.get_title()}
    assert [ax.get_title() for ax in fig.axes[:3]] == ["loss", "pck", "learning rate"]
    lines = {line.get_label(): line for line in panels["loss"].get_lines()}
    np.testing.assert_array_equal(lines["train/loss"].get_xdata(), [9, 19, 29, 39])
    np.testing.assert_array_equal(lines["val/loss"].get_ydata(), [1.9, 1.4])
    assert panels["learning rate"].get_yscale() == "log"
    assert fig.get_suptitle() == "training curves: run"  # the run's folder, not the logger's
    assert save_figure(fig, tmp_path / "curves.png").stat().st_size > 1000
    with pytest.raises(FileNotFoundError, match="no metrics file or log folder"):
        plot_training_curves(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match=r"no metrics\.csv"):
        plot_training_curves(empty)


def test_save_image_round_trip(tmp_path: Path) -> None:
    image = np.zeros((5, 7, 3), np.uint8)
    image[1, 2] = (255, 0, 0)  # red in RGB
    path = save_image(image, tmp_path / "a" / "b.png")
    read = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(read, image)


@pytest.mark.skipif(not (SHARED / "data" / "lsp" / "joints.mat").is_file(), reason="no ../shared")
def test_draw_on_a_real_lsp_image(tmp_path: Path) -> None:
    from scipy.io import loadmat

    raw = loadmat(SHARED / "data" / "lsp" / "joints.mat")["joints"]  # (3, 14, 2000), 1-based
    joints = raw[:2, :, 0].T - 1.0
    bgr = cv2.imread(str(SHARED / "data" / "lsp" / "images" / "im0001.jpg"))
    image = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    out = draw_skeleton(image, joints, LSP_JOINTS)
    colors = joint_colors(LSP_JOINTS)
    for j, (x, y) in enumerate(joints):
        if 0 <= x < image.shape[1] - 0.5 and 0 <= y < image.shape[0] - 0.5:
            assert out[round(y), round(x)].tolist() == list(colors[j])
    save_image(out, tmp_path / "lsp.png")
