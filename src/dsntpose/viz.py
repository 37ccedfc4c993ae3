"""Pictures: skeletons on images, heatmap panels, PCK curves and training curves.

Skeletons are drawn with OpenCV straight into ``uint8`` RGB arrays (sub-pixel accurate through
``cv2``'s fixed-point ``shift`` argument, so a joint at ``(10.0, 20.0)`` lands on the centre of
pixel row 20, column 10, the convention of ``docs/architecture.md``). Plots are matplotlib
figures made with the non-interactive Agg canvas; matplotlib is imported inside the functions
that need it, so ``import dsntpose.viz`` stays cheap and never opens a window.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from dsntpose.data.joints import JointSet
from dsntpose.inputs import nan_floats

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from torch import Tensor

_SHIFT = 4  # cv2 fixed-point bits: coordinates are drawn to 1/16 px
_ONE = 1 << _SHIFT
_MIN_ALPHA = 0.15  # a joint with confidence 0 is still faintly visible


def _new_figure(**kwargs: Any) -> Figure:
    """A matplotlib ``Figure`` on its own Agg canvas (no pyplot, no global figure manager)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig


def joint_colors(joint_set: JointSet) -> list[tuple[int, int, int]]:
    """One RGB colour per joint, taken from the skeleton's edge colours.

    A joint gets the colour of the first edge that starts at it (``(j, b)``), else of the first
    edge that ends at it, else white. With the MPII and LSP tables this colours each limb's
    joints like the limb.

    Returns:
        ``J`` ``(r, g, b)`` tuples in ``0..255``.
    """
    colors: list[tuple[int, int, int]] = []
    for j in range(joint_set.num_joints):
        starts = [c for (a, _), c in zip(joint_set.skeleton, joint_set.colors) if a == j]
        ends = [c for (_, b), c in zip(joint_set.skeleton, joint_set.colors) if b == j]
        colors.append(starts[0] if starts else ends[0] if ends else (255, 255, 255))
    return colors


def default_sizes(height: int, width: int) -> tuple[float, int]:
    """Joint radius (px, may be fractional) and line thickness (whole px) for an image size.

    Both grow with the shorter side: a 224 px crop gets radius ~2.2 and 1 px lines, a 720p
    frame radius ~7 and 4 px lines.
    """
    scale = min(height, width) / 256
    return max(2.0, 2.5 * scale), max(1, round(1.5 * scale))


def _fixed(point: np.ndarray) -> tuple[int, int]:
    """An ``(x, y)`` pixel position in cv2's fixed point (``_SHIFT`` fractional bits)."""
    return round(float(point[0]) * _ONE), round(float(point[1]) * _ONE)


def _blend(
    out: np.ndarray,
    color: Sequence[int],
    alpha: float,
    points: np.ndarray,
    pad: int,
    paint: Callable[[np.ndarray, np.ndarray], object],
) -> None:
    """Alpha-blend one shape of ``color`` into ``out`` (in place).

    The shape lies within ``pad`` pixels of ``points`` ``(N, 2)`` (image px). ``paint(mask,
    local)`` draws it with value 255 (anti-aliased) into a ``uint8`` mask covering that region,
    given the points in the mask's own pixel coordinates.
    """
    height, width = out.shape[:2]
    x0 = max(math.floor(points[:, 0].min()) - pad, 0)
    y0 = max(math.floor(points[:, 1].min()) - pad, 0)
    x1 = min(math.ceil(points[:, 0].max()) + pad, width - 1)
    y1 = min(math.ceil(points[:, 1].max()) + pad, height - 1)
    if x1 < x0 or y1 < y0:
        return
    mask = np.zeros((y1 - y0 + 1, x1 - x0 + 1), np.uint8)
    paint(mask, points - np.array([x0, y0]))
    weight = mask.astype(np.float32)[..., None] * (alpha / 255.0)
    roi = out[y0 : y1 + 1, x0 : x1 + 1].astype(np.float32)
    roi += (np.asarray(color, np.float32) - roi) * weight
    out[y0 : y1 + 1, x0 : x1 + 1] = np.clip(np.rint(roi), 0, 255).astype(np.uint8)


def draw_skeleton(
    image: np.ndarray,
    joints_px: np.ndarray,
    joint_set: JointSet,
    mask: np.ndarray | None = None,
    confidence: np.ndarray | None = None,
    radius: float | None = None,
    thickness: int | None = None,
) -> np.ndarray:
    """Draw a skeleton (edges, then joints) on a copy of an image.

    Args:
        image: ``(H, W, 3)`` ``uint8`` RGB.
        joints_px: ``(J, 2)`` joint ``(x, y)`` in image pixels, 0-based, integers at pixel
            centres; sub-pixel positions are honoured. Non-finite joints are skipped.
        joint_set: the table giving the skeleton edges and their colours (``J`` must match).
        mask: optional ``(J,)``; joints where it is 0/False are skipped with their edges.
        confidence: optional ``(J,)`` in ``[0, 1]``: each joint is blended with opacity
            ``max(confidence, 0.15)`` and each edge with the smaller opacity of its two joints.
        radius: joint radius in pixels (default grows with the image, see
            :func:`default_sizes`).
        thickness: edge line thickness in whole pixels (default grows with the image).

    Returns:
        A new ``(H, W, 3)`` ``uint8`` RGB image; ``image`` is not modified.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be (H, W, 3) uint8 RGB, got {image.shape} {image.dtype}")
    joints = np.asarray(joints_px, dtype=np.float64)
    num = joint_set.num_joints
    if joints.shape != (num, 2):
        raise ValueError(f"joints_px must be ({num}, 2) for {joint_set.name}, got {joints.shape}")
    keep = np.isfinite(joints).all(axis=1).astype(bool)
    if mask is not None:
        mask = np.asarray(mask)
        if mask.shape != (num,):
            raise ValueError(f"mask must be ({num},), got {mask.shape}")
        keep &= mask.astype(bool)
    alpha = np.ones(num)
    if confidence is not None:
        confidence = np.asarray(confidence, dtype=np.float64)
        if confidence.shape != (num,):
            raise ValueError(f"confidence must be ({num},), got {confidence.shape}")
        alpha = np.clip(np.nan_to_num(confidence), _MIN_ALPHA, 1.0)
    default_radius, default_thickness = default_sizes(*image.shape[:2])
    radius = default_radius if radius is None else float(radius)
    thickness = default_thickness if thickness is None else int(thickness)
    if radius <= 0 or thickness < 1:
        raise ValueError(f"radius must be > 0 and thickness >= 1, got {radius}, {thickness}")

    out: np.ndarray = np.array(image, copy=True, order="C")
    pad = math.ceil(thickness / 2 + radius) + 2

    def line(m: np.ndarray, p: np.ndarray) -> object:
        return cv2.line(m, _fixed(p[0]), _fixed(p[1]), 255, thickness, cv2.LINE_AA, _SHIFT)

    def disc(m: np.ndarray, p: np.ndarray) -> object:
        return cv2.circle(m, _fixed(p[0]), round(radius * _ONE), 255, -1, cv2.LINE_AA, _SHIFT)

    for (a, b), color in zip(joint_set.skeleton, joint_set.colors):
        if keep[a] and keep[b]:
            _blend(out, color, min(alpha[a], alpha[b]), joints[[a, b]], pad, line)
    for j, color in enumerate(joint_colors(joint_set)):
        if keep[j]:
            _blend(out, color, alpha[j], joints[[j]], pad, disc)
    return out


def heatmap_overlay(
    image: np.ndarray,
    heatmaps: np.ndarray,
    joint_set: JointSet,
    joints_px: np.ndarray | None = None,
    ncols: int = 4,
    panel_size: float = 2.2,
) -> Figure:
    """One panel per joint: the image with that joint's heatmap laid over it.

    The heatmaps span the whole image edge to edge (the normalised convention), so a heatmap
    cell ``(u, v)`` of an ``h x w`` map covers image pixels ``[u * W / w - 0.5, (u + 1) * W / w
    - 0.5]`` horizontally; the overlay is placed with exactly that extent, with no resampling.

    Args:
        image: ``(H, W, 3)`` ``uint8`` RGB, the crop the heatmaps were computed on.
        heatmaps: ``(J, h, w)`` maps (probabilities or raw); each panel is scaled to its map's
            own maximum (negative values show as zero) and cold cells are transparent.
        joint_set: gives the panel titles (``J`` must match).
        joints_px: optional ``(J, 2)`` predicted ``(x, y)`` in image pixels, marked with a cross.
        ncols: panels per row.
        panel_size: panel side in inches.

    Returns:
        A matplotlib ``Figure`` (Agg canvas).
    """
    import matplotlib

    image = np.asarray(image)
    maps = np.asarray(heatmaps, dtype=np.float32)
    num = joint_set.num_joints
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be (H, W, 3) RGB, got {image.shape}")
    if maps.ndim != 3 or maps.shape[0] != num:
        raise ValueError(f"heatmaps must be ({num}, h, w) for {joint_set.name}, got {maps.shape}")
    if joints_px is not None and np.shape(joints_px) != (num, 2):
        raise ValueError(f"joints_px must be ({num}, 2), got {np.shape(joints_px)}")
    height, width = image.shape[:2]
    nrows = math.ceil(num / ncols)
    fig = _new_figure(figsize=(ncols * panel_size, nrows * panel_size), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    extent = (-0.5, width - 0.5, height - 0.5, -0.5)
    colormap = matplotlib.colormaps["inferno"]
    peaks = np.nanmax(np.where(np.isfinite(maps), maps, -np.inf), axis=(1, 2))
    for j, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if j >= num:
            continue
        level = np.nan_to_num(maps[j] / peaks[j] if peaks[j] > 0 else maps[j] * 0.0)
        level = np.clip(level, 0.0, 1.0)
        rgba = colormap(level)
        rgba[..., 3] = 0.85 * np.sqrt(level)  # cold cells transparent: the image stays visible
        ax.imshow(image, extent=extent)
        ax.imshow(rgba, extent=extent, interpolation="nearest")
        if joints_px is not None:
            x, y = np.asarray(joints_px, dtype=np.float64)[j]
            ax.plot([x], [y], marker="x", color="cyan", markersize=6)
        ax.set_xlim(-0.5, width - 0.5)
        ax.set_ylim(height - 0.5, -0.5)
        ax.set_title(joint_set.names[j], fontsize=8)
    return fig


def prediction_grid(
    images: Sequence[np.ndarray],
    preds_px: Sequence[np.ndarray] | np.ndarray,
    joint_set: JointSet,
    gt_px: Sequence[np.ndarray] | np.ndarray | None = None,
    confidence: Sequence[np.ndarray] | np.ndarray | None = None,
    ncols: int = 4,
    tile: int = 256,
    gap: int = 4,
) -> np.ndarray:
    """Tile images with their predicted skeletons (and ground truth) into one picture.

    Each image is drawn at its own resolution, then fitted into a ``tile x tile`` cell (aspect
    kept, centred, black bars). The ground truth, when given, is drawn first as a thin white
    skeleton, and a red line joins each predicted joint to its ground truth.

    Args:
        images: ``N`` ``(H_i, W_i, 3)`` ``uint8`` RGB images (sizes may differ).
        preds_px: ``N`` ``(J, 2)`` predicted ``(x, y)`` in each image's pixels.
        joint_set: skeleton and colours (``J`` must match).
        gt_px: optional ``N`` ``(J, 2)`` ground truth in the same pixels (non-finite = missing).
        confidence: optional ``N`` ``(J,)`` per-joint confidence (see :func:`draw_skeleton`).
        ncols: cells per row.
        tile: cell side in pixels.
        gap: black border between cells in pixels.

    Returns:
        ``(rows * (tile + gap) + gap, cols * (tile + gap) + gap, 3)`` ``uint8`` RGB.
    """
    num = len(images)
    if num == 0:
        raise ValueError("images must hold at least one image")
    if len(preds_px) != num or (gt_px is not None and len(gt_px) != num):
        raise ValueError(f"preds_px (and gt_px) must hold one (J, 2) array per image ({num})")
    if confidence is not None and len(confidence) != num:
        raise ValueError(f"confidence must hold one (J,) array per image ({num})")
    cols = min(ncols, num)
    rows = math.ceil(num / cols)
    grid = np.zeros((rows * (tile + gap) + gap, cols * (tile + gap) + gap, 3), np.uint8)
    for i, image in enumerate(images):
        drawn = np.asarray(image)
        radius, thickness = default_sizes(*drawn.shape[:2])
        thin = max(1, thickness // 2)
        if gt_px is not None:
            gt = np.asarray(gt_px[i], dtype=np.float64)
            white = replace(joint_set, colors=((255, 255, 255),) * len(joint_set.skeleton))
            drawn = draw_skeleton(drawn, gt, white, radius=0.6 * radius, thickness=thin)
            pred = np.asarray(preds_px[i], dtype=np.float64)
            for p, g in zip(pred, gt):
                if np.isfinite(p).all() and np.isfinite(g).all():
                    cv2.line(drawn, _fixed(p), _fixed(g), (255, 40, 40), thin, cv2.LINE_AA, _SHIFT)
        conf = None if confidence is None else confidence[i]
        drawn = draw_skeleton(drawn, preds_px[i], joint_set, confidence=conf)
        height, width = drawn.shape[:2]
        scale = tile / max(height, width)
        new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        small = cv2.resize(drawn, (new_w, new_h), interpolation=interp)
        row, col = divmod(i, cols)
        top = gap + row * (tile + gap) + (tile - new_h) // 2
        left = gap + col * (tile + gap) + (tile - new_w) // 2
        grid[top : top + new_h, left : left + new_w] = small
    return grid


def plot_pck_curves(
    curves: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    title: str = "PCK",
    xlabel: str = "threshold (fraction of the normalising size)",
) -> Figure:
    """PCK against threshold, one line per entry.

    Args:
        curves: name -> ``(thresholds, pck)``, two equally long 1-D sequences. ``pck`` is a
            fraction in ``[0, 1]`` or a percentage; the y axis says which (percent when any
            value exceeds 1).
        title: axes title.
        xlabel: x-axis label.

    Returns:
        A matplotlib ``Figure`` (Agg canvas).
    """
    if not curves:
        raise ValueError("curves must hold at least one name -> (thresholds, pck) entry")
    fig = _new_figure(figsize=(5.5, 4.0), layout="constrained")
    ax = fig.subplots()
    top = 1.0
    for name, (thresholds, pck) in curves.items():
        x = np.asarray(thresholds, dtype=np.float64)
        y = np.asarray(pck, dtype=np.float64)
        if x.ndim != 1 or x.shape != y.shape:
            raise ValueError(
                f"curve {name!r}: thresholds and pck must be equal 1-D, got {x.shape}, {y.shape}"
            )
        if np.nanmax(y, initial=0.0) > 1.0:
            top = 100.0
        ax.plot(x, y, label=name)
    ax.set_ylim(0, top * 1.02)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("PCK (%)" if top > 1 else "PCK")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


def find_metrics_csv(csv_path_or_dir: str | Path) -> Path:
    """The Lightning ``CSVLogger`` file for a path: the file itself, ``DIR/metrics.csv``, or the
    most recently modified ``metrics.csv`` anywhere under ``DIR`` (``name/version_N/``)."""
    path = Path(csv_path_or_dir)
    if path.is_file():
        return path
    if not path.is_dir():
        raise FileNotFoundError(f"no metrics file or log folder at {path}")
    if (path / "metrics.csv").is_file():
        return path / "metrics.csv"
    found = sorted(path.rglob("metrics.csv"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise FileNotFoundError(f"no metrics.csv under {path}")
    return found[-1]


def read_metrics_csv(path: str | Path) -> dict[str, np.ndarray]:
    """Columns of a Lightning ``metrics.csv`` as float arrays (empty or non-numeric cells are
    NaN; Lightning writes training and validation metrics on different rows)."""
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    if not rows or not rows[0]:
        raise ValueError(f"{path}: empty metrics file (expected a header row)")
    header, body = rows[0], rows[1:]

    def number(cell: str) -> float:
        try:
            return float(cell)
        except ValueError:
            return math.nan

    table = np.full((len(body), len(header)), np.nan)
    for r, row in enumerate(body):
        for c, cell in enumerate(row[: len(header)]):
            table[r, c] = number(cell)
    return {name: table[:, c] for c, name in enumerate(header)}


def _panel_key(column: str) -> str:
    """Which panel a metric column goes to: ``lr-*`` together, else the part after the last
    ``/`` (``train/loss`` and ``val/loss`` share the ``loss`` panel)."""
    if column.startswith("lr"):
        return "learning rate"
    return column.rsplit("/", 1)[-1]


def plot_training_curves(csv_path_or_dir: str | Path) -> Figure:
    """Training curves from a Lightning ``CSVLogger`` ``metrics.csv``.

    Columns sharing a final name part share a panel (``train/loss`` with ``val/loss``,
    ``train/pck`` with ``val/pck``); ``lr-*`` columns share a log-scale panel. Panels run loss
    first, the metrics in column order, learning rate last. The x axis is
    ``step`` (else ``epoch``, else the row number). Rows where a column is empty are skipped for
    that column only.

    Args:
        csv_path_or_dir: the ``metrics.csv`` file or a log folder (see :func:`find_metrics_csv`).

    Returns:
        A matplotlib ``Figure`` (Agg canvas).
    """
    path = find_metrics_csv(csv_path_or_dir)
    columns = read_metrics_csv(path)
    num_rows = len(next(iter(columns.values())))
    xname = "step" if "step" in columns else "epoch" if "epoch" in columns else "row"
    x = columns.get(xname, np.arange(num_rows, dtype=np.float64))
    panels: dict[str, list[str]] = {}
    for name, values in columns.items():
        if name in ("step", "epoch") or not np.isfinite(values).any():
            continue
        panels.setdefault(_panel_key(name), []).append(name)
    if not panels:
        raise ValueError(f"{path}: no metric column holds a number")
    order = sorted(panels, key=lambda key: (key != "loss", key == "learning rate"))
    panels = {key: panels[key] for key in order}
    ncols = min(3, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig = _new_figure(figsize=(4.2 * ncols, 3.2 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax, (key, names) in zip(axes.flat, panels.items()):
        for name in names:
            values = columns[name]
            ok = np.isfinite(values) & np.isfinite(x)
            style = "o-" if ok.sum() < 30 else "-"
            ax.plot(x[ok], values[ok], style, markersize=3, label=name)
        if key == "learning rate" and all(
            (columns[n][np.isfinite(columns[n])] > 0).all() for n in names
        ):
            ax.set_yscale("log")
        ax.set_title(key)
        ax.set_xlabel(xname)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_axis_off()
    # the run's folder, above the logger's own (logs/csv/version_N/metrics.csv)
    run = next(
        (
            d.name
            for d in path.parents
            if d.name not in ("csv", "logs", "") and not d.name.startswith("version_")
        ),
        path.name,
    )
    fig.suptitle(f"training curves: {run}")
    return fig


# --------------------------------------------------------------------------------------------
# People on an image (predict's drawings and video frames)

_LEGEND_ROW = 18  # px per legend line


def draw_people(
    image: np.ndarray,
    people: Sequence[Any],
    joint_set: JointSet,
    min_side: int = 512,
    legend: bool = True,
) -> np.ndarray:
    """The image with every person's box (thin white), skeleton and joint numbers drawn.

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
        people: :class:`~dsntpose.predictor.Person` objects (anything with ``box``,
            ``keypoints``, ``confidence``) or :func:`~dsntpose.predict.predict`'s person dicts
            (keypoints in ``image``'s px; ``None`` / NaN coordinates are skipped).
        joint_set: the skeleton and names.
        min_side: an image whose longer side is shorter is upscaled (cubic) to this size first
            (0: drawn at its own size, as on video frames),
            so the skeleton of a 100 px LSP image is visible; keypoints are scaled with it
            (pixel centres: ``x' = (x + 0.5) * s - 0.5``).
        legend: number each joint and add a panel on the right listing ``number name`` in the
            joint's colour.

    Returns:
        a new ``(H', W', 3)`` uint8 RGB image (``H' >= H * s``; wider by the legend panel).
    """
    height, width = image.shape[:2]
    scale = max(1.0, min_side / max(height, width)) if min_side else 1.0
    out_w, out_h = round(width * scale), round(height * scale)
    out: np.ndarray = (
        cv2.resize(image, (out_w, out_h), interpolation=cv2.INTER_CUBIC)
        if scale > 1.0
        else image.copy()
    )
    sx, sy = out_w / width, out_h / height
    _, thickness = default_sizes(out_h, out_w)
    colors = joint_colors(joint_set)
    font, font_scale = cv2.FONT_HERSHEY_SIMPLEX, max(0.35, min(out_h, out_w) / 1400)
    for person in people:
        if isinstance(person, Mapping):
            points = person["keypoints"]
            box = nan_floats(person["box"])
            xy = np.stack(
                [nan_floats([k["x"] for k in points]), nan_floats([k["y"] for k in points])], 1
            )
            conf = nan_floats([k["confidence"] for k in points])
        else:
            box, xy, conf = person.box, person.keypoints, person.confidence
        x, y, w, h = (float(v) for v in box)
        if all(map(math.isfinite, (x, y, w, h))):
            cv2.rectangle(
                out,
                (round(x * sx), round(y * sy)),
                (round((x + w) * sx - 1), round((y + h) * sy - 1)),
                (255, 255, 255),
                max(1, thickness // 2),
            )
        scaled = np.stack([(xy[:, 0] + 0.5) * sx - 0.5, (xy[:, 1] + 0.5) * sy - 0.5], axis=1)
        out = draw_skeleton(out, scaled, joint_set, confidence=np.nan_to_num(conf))
        if legend:
            radius = default_sizes(out_h, out_w)[0]
            for j, (px, py) in enumerate(scaled):
                if np.isfinite(px) and np.isfinite(py):
                    org = (round(px + radius + 1), round(py - radius - 1))
                    cv2.putText(out, str(j), org, font, font_scale, (0, 0, 0), 3, cv2.LINE_AA)
                    cv2.putText(out, str(j), org, font, font_scale, colors[j], 1, cv2.LINE_AA)
    if not legend:
        return out
    rows = joint_set.num_joints
    panel_h = max(out_h, 10 + rows * _LEGEND_ROW)
    panel = np.zeros((panel_h, 170, 3), np.uint8)
    for j, name in enumerate(joint_set.names):
        cy = 10 + j * _LEGEND_ROW + _LEGEND_ROW // 2
        cv2.circle(panel, (14, cy), 5, colors[j], -1, cv2.LINE_AA)
        cv2.putText(panel, f"{j} {name}", (26, cy + 5), font, 0.45, colors[j], 1, cv2.LINE_AA)
    canvas = np.zeros((panel_h, out_w + panel.shape[1], 3), np.uint8)
    canvas[:out_h, :out_w] = out
    canvas[:, out_w:] = panel
    return canvas


def save_figure(fig: Figure, path: str | Path, dpi: int = 120) -> Path:
    """Write a matplotlib figure to ``path`` (format from the suffix, e.g. ``.png``); creates the
    parent folder. Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path


def save_image(image: np.ndarray, path: str | Path) -> Path:
    """Write an ``(H, W, 3)`` ``uint8`` RGB image to ``path`` (PNG/JPEG by suffix); creates the
    parent folder. Returns the path."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be (H, W, 3) uint8 RGB, got {image.shape} {image.dtype}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write image {path} (unsupported suffix or folder not writable)")
    return path


def prediction_picture(
    samples: Mapping[str, Tensor], joint_set: Any, tile: int = 160
) -> np.ndarray:
    """A grid of crops with predicted skeletons (ground truth in white).

    Args:
        samples: ``images`` ``(K, 3, S, S)`` RGB in ``[0, 1]``, ``pred`` and ``gt`` ``(K, J, 2)``
            crop px (``gt`` NaN where not labelled).
        joint_set: the :class:`~dsntpose.data.JointSet` to draw.
        tile: cell side in pixels.

    Returns:
        ``(H, W, 3)`` uint8 RGB (see :func:`dsntpose.viz.prediction_grid`).
    """
    images = (samples["images"].detach().float().clamp(0, 1) * 255).round().byte().cpu()
    return prediction_grid(
        [im.permute(1, 2, 0).numpy() for im in images],
        samples["pred"].detach().float().cpu().numpy(),
        joint_set,
        gt_px=samples["gt"].detach().float().cpu().numpy(),
        tile=tile,
    )
