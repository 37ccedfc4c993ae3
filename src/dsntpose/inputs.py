"""Images and person boxes in: the one place where files become arrays and boxes.

Every reader here refuses what cannot be trusted with a one-line error naming the file:

* :func:`load_image` reads only regular files (a symlink to ``/dev/zero`` or a named pipe is
  refused before anything is read), at most :data:`MAX_IMAGE_BYTES`, checks the header's size
  against ``max_pixels`` before decoding, and refuses a JPEG whose markers are broken, which
  ends before its end marker, whose scan data is too short for the size its header claims, or
  which the decoder itself reports as corrupt (a file cut short with an end marker appended,
  flipped bits in the scan), and a PNG without its ``IEND``;
* :func:`as_rgb_image` takes numpy (BGR unless ``rgb``), PIL (16-bit ``I;16``, 32-bit ``I`` and
  float ``F`` modes scaled to 8 bits, never clipped to white or black), tensors and paths;
* :func:`box_values` / :func:`check_box` check a box ``(x, y, w, h)`` (finite, at least
  :data:`MIN_BOX_SIDE` px, overlapping the image); :func:`box_list` reads one box or a list;
* :func:`read_json_file` (bounded, regular files only), :func:`read_boxes`,
  :func:`read_detections`, :func:`read_image_ids` and :class:`BoxSource` read boxes files;
* :func:`json_safe` (NaN -> ``None``) and :func:`nan_floats` (``None`` -> NaN): the one
  conversion between arrays and JSON values.

Boxes are ``(x, y, w, h)`` image px covering columns ``x .. x + w - 1`` and rows
``y .. y + h - 1``, so the whole image is ``(0, 0, W, H)`` (also COCO's ``[x, y, w, h]``).

This module imports nothing of dsntpose, and torch only when given a tensor (numpy, OpenCV,
PIL).
"""

from __future__ import annotations

import json
import math
import os
import stat
import tempfile
import threading
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

if TYPE_CHECKING:
    from torch import Tensor

__all__ = [
    "IMAGE_SUFFIXES",
    "MAX_IMAGE_BYTES",
    "MAX_IMAGE_PIXELS",
    "MAX_JSON_BYTES",
    "MIN_BOX_SIDE",
    "Box",
    "BoxSource",
    "BoxesArg",
    "as_rgb_image",
    "box_list",
    "box_values",
    "check_box",
    "check_regular_file",
    "json_number",
    "json_safe",
    "list_images",
    "load_image",
    "nan_floats",
    "read_boxes",
    "read_detections",
    "read_image_ids",
    "read_json_file",
]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
# Refuse image files larger than this before reading them (a 100 MP PNG is far smaller).
MAX_IMAGE_BYTES = 512 * 1024 * 1024
# Refuse boxes / detections / COCO files larger than this before reading them.
MAX_JSON_BYTES = 1024 * 1024 * 1024
# The smallest box side (px) predicted on: below one pixel a crop holds nothing to see, and a
# side like 1e-300 makes the crop's affine degenerate (every joint at the box's corner).
MIN_BOX_SIDE = 1.0

# Refuse images above this many pixels (a decoded 100 MP image is 300 MB); see load_image.
MAX_IMAGE_PIXELS = 100_000_000

Box = tuple[float, float, float, float]
# What predict's ``boxes`` may be: one box, a boxes file or map, COCO detections or annotations.
BoxesArg = Box | Sequence[Any] | str | os.PathLike[str] | Mapping[str, Any] | None


def _image_header_size(data: bytes, where: str) -> tuple[int, int] | None:
    """``(width, height)`` from the file header (nothing decoded: PNG's IHDR, else PIL), None
    if the header does not tell."""
    import io

    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24 and data[12:16] == b"IHDR":
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
                return int(width), int(height)
        except Image.DecompressionBombError as err:
            raise ValueError(f"{where}: image too large ({str(err).split('.')[0]})") from None
        except (OSError, SyntaxError, ValueError):
            return None


def _check_jpeg(data: bytes, where: str, size: tuple[int, int] | None = None) -> None:
    """Refuse a JPEG whose marker structure is broken or which ends before its EOI marker.

    The header segments are walked by their lengths (an EXIF thumbnail, which has its own
    markers, lies inside one and is skipped); after the first start-of-scan the entropy-coded
    data cannot hold ``FF D9`` (an ``FF`` there is stuffed as ``FF 00``), so the first ``FF D9``
    after it is the image's end marker, and a truncated file has none.
    """
    pos, n = 2, len(data)
    while True:
        if pos + 4 > n or data[pos] != 0xFF:
            raise OSError(f"corrupt JPEG (broken marker structure): {where}")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xD9 or 0xD0 <= marker <= 0xD7 or marker == 0x01:
            raise OSError(f"corrupt JPEG (no image data): {where}")
        length = (data[pos + 2] << 8) | data[pos + 3]
        if length < 2 or pos + 2 + length > n:
            raise OSError(f"truncated or corrupt JPEG (header segment runs past the end): {where}")
        if marker == 0xDA:
            scan = pos + 2 + length
            break
        pos += 2 + length
    end = data.find(b"\xff\xd9", scan)
    if end < 0:
        raise OSError(f"truncated JPEG (no end-of-image marker): {where}")
    if size is not None:
        # every 8x8 block of the luminance needs at least one bit in the scans (its DC code);
        # a header claiming far more blocks than the data can hold is a damaged or forged file
        blocks = math.ceil(size[0] / 8) * math.ceil(size[1] / 8)
        if (end - scan) * 8 < blocks:
            raise OSError(
                f"corrupt JPEG (its {end - scan} bytes of image data cannot hold the "
                f"{size[0]}x{size[1]} px its header claims): {where}"
            )


def check_regular_file(path: str | os.PathLike[str], what: str, max_bytes: int) -> Path:
    """``path`` if it is a regular file of at most ``max_bytes`` (symlinks followed), else a
    one-line error naming it, before anything is read: a folder, a device (``/dev/zero``) or a
    named pipe is never opened (reading one would not end, or block).

    Raises:
        FileNotFoundError: nothing there. OSError: not a regular file. ValueError: too large.
    """
    path = Path(path)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} not found: {path}") from None
    except OSError as err:
        raise OSError(f"{what} cannot be read: {path} ({err.strerror or err})") from None
    if stat.S_ISDIR(info.st_mode):
        raise OSError(f"{what} {path} is a folder, not a file")
    if not stat.S_ISREG(info.st_mode):
        kind = "a named pipe" if stat.S_ISFIFO(info.st_mode) else "a device or socket"
        raise OSError(f"{what} {path} is not a regular file ({kind}); refused unread")
    if info.st_size > max_bytes:
        raise ValueError(
            f"{what} file of {info.st_size} bytes exceeds the {max_bytes} byte limit: {path}"
        )
    return path


def _read_bounded(path: Path, max_bytes: int) -> bytes:
    """At most ``max_bytes`` of a regular file (a file that grew past it is refused)."""
    with path.open("rb") as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ValueError(f"file exceeds the {max_bytes} byte limit: {path}")
    return data


# libjpeg reports a corrupt scan (data cut short, an end marker where scan data should be,
# flipped bits) only as a warning on the process's stderr, and OpenCV returns the image
# grey-filled; the decode runs with stderr captured so such a file is refused.
_STDERR_LOCK = threading.Lock()
_JPEG_WARNINGS = (b"Corrupt JPEG data", b"Premature end of JPEG", b"Bogus", b"Invalid JPEG")


def _decode_capturing_warnings(data: bytes) -> tuple[np.ndarray | None, bytes]:
    with _STDERR_LOCK, tempfile.TemporaryFile() as capture:
        try:
            saved = os.dup(2)
        except OSError:  # no stderr to capture: decode without the check
            return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), b""
        try:
            os.dup2(capture.fileno(), 2)
            image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        capture.seek(0)
        return image, capture.read(4096)


def load_image(path: str | os.PathLike[str], max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """Read an image file as ``(H, W, 3)`` uint8 **RGB**, refusing what cannot be trusted.

    Only a regular file of at most :data:`MAX_IMAGE_BYTES` is read (a device or named pipe is
    refused unread). The header's size is read first (nothing decoded): more than
    ``max_pixels`` pixels is an error before any memory is allocated (a 100-byte PNG can claim
    60000 x 60000 px). A JPEG that is truncated (no end marker after its image data), whose
    header is broken, whose scan data is too short for the size its header claims, or which
    the decoder reports corrupt, and a PNG without its ``IEND`` chunk, are errors too: OpenCV
    would return them with grey fill. The pixels are decoded by OpenCV (as
    :func:`dsntpose.data.common.read_image`, so EXIF orientation is applied the same way as in
    training); 16-bit files are scaled to 8 bits.

    Raises:
        FileNotFoundError: no such file. OSError: not a regular file, unreadable, truncated or
        corrupt. ValueError: larger than ``max_pixels``. Each message is one line naming the
        file.
    """
    path = check_regular_file(path, "image", MAX_IMAGE_BYTES)
    data = _read_bounded(path, MAX_IMAGE_BYTES)
    if not data:
        raise OSError(f"empty image file: {path}")
    size = _image_header_size(data, str(path))
    if size is not None and size[0] * size[1] > max_pixels:
        raise ValueError(
            f"image of {size[0]}x{size[1]} px exceeds the {max_pixels} px limit "
            f"(max_pixels): {path}"
        )
    jpeg = data[:2] == b"\xff\xd8"
    if jpeg:
        _check_jpeg(data, str(path), size)
    elif data[:8] == b"\x89PNG\r\n\x1a\n" and b"IEND" not in data[-16:]:
        raise OSError(f"truncated PNG (no IEND chunk): {path}")
    try:
        if jpeg:
            image, messages = _decode_capturing_warnings(data)
        else:
            image, messages = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), b""
    except cv2.error as err:
        first = str(err).strip().splitlines()[-1] if str(err).strip() else "cv2.error"
        raise OSError(f"cannot decode image: {path} ({first})") from None
    if image is None:
        raise OSError(f"cannot decode image: {path}")
    if any(w in messages for w in _JPEG_WARNINGS):
        said = messages.decode("ascii", "replace").strip().splitlines()[0]
        raise OSError(f"corrupt JPEG ({said}): {path}")
    if image.shape[0] * image.shape[1] > max_pixels:
        raise ValueError(
            f"image of {image.shape[1]}x{image.shape[0]} px exceeds the {max_pixels} px limit "
            f"(max_pixels): {path}"
        )
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _is_tensor(image: Any) -> bool:
    """A torch tensor (torch is imported only when one is given)."""
    if not type(image).__module__.startswith("torch"):
        return False
    import torch

    return isinstance(image, torch.Tensor)


def _is_pil(image: Any) -> bool:
    return type(image).__module__.startswith("PIL.") and hasattr(image, "convert")


def as_rgb_image(
    image: Any, rgb: bool = False, max_pixels: int = MAX_IMAGE_PIXELS, where: str = "image"
) -> np.ndarray:
    """One image as ``(H, W, 3)`` RGB: uint8, or float32 in ``[0, 1]`` for float tensors.

    Accepts:
        * a numpy array ``(H, W, 3)`` uint8, **BGR** (OpenCV's order) unless ``rgb=True``;
          ``(H, W)`` / ``(H, W, 1)`` grey and ``(H, W, 4)`` BGRA/RGBA (alpha dropped) too;
        * a PIL image (any mode; converted to RGB; 16-bit ``I;16``, 32-bit ``I`` and float
          ``F`` images scaled to 8 bits by :func:`_pil_rgb`; ``rgb`` is ignored);
        * a torch tensor ``(3, H, W)`` RGB, float in ``[0, 1]`` (or uint8 ``0..255``);
          ``(1, H, W)`` grey; ``rgb`` is ignored (tensors are RGB, as torchvision's);
        * a path (``str``/``PathLike``), read by :func:`load_image`.

    Raises:
        TypeError: another type, a complex or non-uint8 array. ValueError: a wrong shape, an
        empty or oversized image, float values outside ``[0, 1]`` or not finite.
    """
    if isinstance(image, (str, os.PathLike)):
        return load_image(image, max_pixels)
    if _is_pil(image):
        array = _pil_rgb(image, where)
        rgb = True
    elif _is_tensor(image):
        return _tensor_image(image, max_pixels, where)
    elif isinstance(image, np.ndarray):
        array = image
    else:
        raise TypeError(
            f"{where}: expected a numpy array (H, W, 3) uint8, a PIL image, a (3, H, W) tensor "
            f"or a path, got {type(image).__name__}"
        )
    if np.iscomplexobj(array):
        raise TypeError(f"{where}: complex arrays are not images, got dtype {array.dtype}")
    if array.dtype != np.uint8:
        raise TypeError(
            f"{where}: numpy images must be uint8 (H, W, 3), got {array.dtype}; pass float "
            "images in [0, 1] as a (3, H, W) torch tensor"
        )
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4):
        raise ValueError(f"{where}: expected (H, W, 3) (or (H, W), (H, W, 4)), got {array.shape}")
    _check_size(array.shape[0], array.shape[1], max_pixels, where)
    if array.shape[2] == 1:
        return np.ascontiguousarray(np.repeat(array, 3, axis=2))
    array = array[..., :3]
    return np.ascontiguousarray(array if rgb else array[..., ::-1])


def _pil_rgb(image: Any, where: str) -> np.ndarray:
    """A PIL image as ``(H, W, 3)`` uint8 RGB. PIL's own ``convert("RGB")`` clips the wide
    modes (a 16-bit ``I;16`` image becomes white, a float ``F`` image in ``[0, 1]`` black):
    those are scaled instead: 16-bit and 32-bit integers by their type's range (``I`` holding
    only 0..255 stays), floats from ``[0, 1]`` (or ``[0, 255]`` when larger values occur)."""
    mode = str(image.mode)
    if not (mode.startswith("I") or mode == "F"):
        return np.asarray(image.convert("RGB"))
    values = np.asarray(image).astype(np.float64)
    if not np.isfinite(values).all():
        raise ValueError(f"{where}: the {mode} image holds non-finite values")
    top = float(values.max()) if values.size else 0.0
    if mode == "F":
        scale = 255.0 if top <= 1.0 else 1.0
    elif mode.startswith("I;16") or top > 255:
        scale = 255.0 / 65535.0 if top <= 65535 else 255.0 / float(2**32 - 1)
    else:
        scale = 1.0
    grey = np.clip(np.rint(values * scale), 0, 255).astype(np.uint8)
    if grey.ndim == 3:  # multi-channel wide modes are grey in PIL; keep the first plane
        grey = grey[..., 0]
    return np.ascontiguousarray(np.repeat(grey[..., None], 3, axis=2))


def _check_size(height: int, width: int, max_pixels: int, where: str) -> None:
    if height < 1 or width < 1:
        raise ValueError(f"{where}: empty image ({height}x{width})")
    if height * width > max_pixels:
        raise ValueError(f"{where}: image of {width}x{height} px exceeds the {max_pixels} px limit")


def _tensor_image(image: Tensor, max_pixels: int, where: str) -> np.ndarray:
    import torch

    if image.is_complex():
        raise TypeError(f"{where}: complex tensors are not images, got {image.dtype}")
    if image.dim() != 3 or image.shape[0] not in (1, 3):
        raise ValueError(f"{where}: expected a (3, H, W) RGB tensor, got {tuple(image.shape)}")
    _check_size(image.shape[1], image.shape[2], max_pixels, where)
    image = image.detach().cpu().expand(3, -1, -1)
    if image.dtype == torch.uint8:
        return np.ascontiguousarray(image.permute(1, 2, 0).numpy())
    if not image.is_floating_point():
        raise TypeError(
            f"{where}: tensor images must be float in [0, 1] or uint8, got {image.dtype}"
        )
    array = image.float().permute(1, 2, 0).numpy()
    if not np.isfinite(array).all():
        raise ValueError(f"{where}: the tensor holds non-finite values")
    low, high = float(array.min()), float(array.max())
    if low < -1e-3 or high > 1 + 1e-3:
        raise ValueError(f"{where}: float tensors must be in [0, 1], got [{low:.3g}, {high:.3g}]")
    return np.ascontiguousarray(np.clip(array, 0.0, 1.0))


def box_values(value: Any, where: str = "box") -> Box:
    """``(x, y, w, h)`` floats from a 4-sequence of real, finite numbers with ``w, h > 0`` and
    the longer side at least :data:`MIN_BOX_SIDE` px, or a one-line ``ValueError`` naming
    ``where``."""
    if isinstance(value, (np.ndarray, list, tuple)) and np.iscomplexobj(value):
        raise ValueError(f"{where}: a box must be 4 real numbers [x, y, w, h], got {value!r}")
    try:
        box = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: a box must be 4 numbers [x, y, w, h], got {value!r}") from None
    if len(box) != 4 or not np.isfinite(box).all():
        raise ValueError(f"{where}: a box must be 4 finite numbers [x, y, w, h], got {value!r}")
    if box[2] <= 0 or box[3] <= 0:
        raise ValueError(f"{where}: box width and height must be > 0, got {value!r}")
    if box[2] < MIN_BOX_SIDE and box[3] < MIN_BOX_SIDE:
        raise ValueError(
            f"{where}: box of {box[2]:g} x {box[3]:g} px is too small to predict on (its "
            f"longer side must be at least {MIN_BOX_SIDE:g} px), got {value!r}"
        )
    return box


def check_box(value: Any, width: int, height: int, where: str = "box") -> Box:
    """``(x, y, w, h)`` floats of a box that overlaps the ``width`` x ``height`` image.

    Raises:
        ValueError: not 4 finite numbers, ``w``/``h`` not > 0, or entirely outside the image.
    """
    x, y, w, h = box_values(value, where)
    # overlap of the box's pixel span with the image's [-0.5, W - 0.5] x [-0.5, H - 0.5]
    if x >= width or y >= height or x + w <= 0 or y + h <= 0:
        raise ValueError(
            f"box [{x:g}, {y:g}, {w:g}, {h:g}] lies outside the {width}x{height} image"
        )
    return x, y, w, h


def box_list(boxes: Any, width: int, height: int, where: str) -> list[Box] | None:
    """None (whole image), or the image's boxes from one box or a list/``(K, 4)`` array."""
    if boxes is None:
        return None
    if isinstance(boxes, np.ndarray):
        items = [boxes] if boxes.ndim == 1 else list(boxes)
    elif isinstance(boxes, (list, tuple)):
        single = len(boxes) == 4 and not any(
            isinstance(v, (list, tuple, np.ndarray)) for v in boxes
        )
        items = [boxes] if single else list(boxes)
    else:
        raise TypeError(
            f"{where}: boxes must be a box [x, y, w, h] or a list of boxes, got {boxes!r}"
        )
    return [check_box(b, width, height, f"{where}: box {k}") for k, b in enumerate(items)]


def json_safe(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None (recursively): the one
    array-to-JSON conversion (:func:`nan_floats` is the way back)."""
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def json_number(value: Any, digits: int) -> float | None:
    """``round(value, digits)`` as a Python float, or ``None`` when not finite (one value of
    :func:`json_safe`)."""
    value = float(value)
    return round(value, digits) if math.isfinite(value) else None


def nan_floats(values: Sequence[Any]) -> np.ndarray:
    """JSON numbers as a float64 array, ``None`` (JSON ``null``) as NaN: the way back from
    :func:`json_safe`."""
    return np.array([math.nan if v is None else float(v) for v in values], dtype=np.float64)


def list_images(images: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Image paths from a file, a folder (its image files, sorted by name) or a list of both.

    Paths that do not exist are kept (they are reported per image later); a folder without
    image files is an error.
    """
    items = [images] if isinstance(images, (str, os.PathLike)) else list(images)
    paths: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise FileNotFoundError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) in {path}")
            paths.extend(found)
        else:
            paths.append(path)
    if not paths:
        raise ValueError("no images given")
    return paths


def read_json_file(
    source: str | os.PathLike[str], what: str, max_bytes: int = MAX_JSON_BYTES
) -> Any:
    """A JSON file's value: a regular file only (a device or named pipe is refused unread), at
    most ``max_bytes``; each error is one line naming the file."""
    where = str(source)
    try:
        path = check_regular_file(source, what, max_bytes)
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} {where} does not exist") from None
    try:
        return json.loads(_read_bounded(path, max_bytes).decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{where}: not JSON ({err})") from None


def read_boxes(source: str | os.PathLike[str] | Mapping[str, Any]) -> dict[str, list[Box]]:
    """Read a boxes map (see the module docstring) or check a dict of the same form.

    Returns:
        image name (or path) -> list of ``(x, y, w, h)`` boxes in image pixels.
    """
    where = "boxes"
    if not isinstance(source, Mapping):
        where = str(source)
        source = read_json_file(source, "boxes file")
    if not isinstance(source, Mapping):
        raise ValueError(f"{where}: expected a JSON object {{image_name: [[x, y, w, h], ...]}}")
    boxes: dict[str, list[Box]] = {}
    for name, value in source.items():
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{where}: {name}: expected [[x, y, w, h], ...], got {value!r}")
        nested = all(isinstance(v, (list, tuple)) for v in value)
        items = value if nested else [value]  # [] is an image with nobody to predict
        boxes[str(name)] = [box_values(v, f"{where}: {name}") for v in items]
    return boxes


def read_detections(
    source: str | os.PathLike[str] | Sequence[Mapping[str, Any]],
    score_threshold: float = 0.5,
    category_id: int | None = 1,
) -> dict[int, list[Box]]:
    """Person boxes from COCO detection results.

    Args:
        source: a JSON file or list of ``{"image_id", "category_id", "bbox": [x, y, w, h],
            "score"}`` (``bbox`` image px, predict's box convention).
        score_threshold: keep detections with ``score >= score_threshold`` (a detection
            without ``score`` counts as 1).
        category_id: keep this category only (None: every category).

    Returns:
        image id -> boxes, highest score first.

    Raises:
        ValueError: not a list of detections (the message names the file and the entry).
    """
    where = "detections"
    if isinstance(source, (str, os.PathLike)):
        where = str(source)
        source = read_json_file(source, "detections file")
    if not isinstance(source, list):
        raise ValueError(f"{where}: expected a JSON list of {{image_id, category_id, bbox, score}}")
    kept: dict[int, list[tuple[float, Box]]] = {}
    for k, det in enumerate(source):
        if not isinstance(det, Mapping) or "image_id" not in det or "bbox" not in det:
            raise ValueError(f"{where}: detection {k} needs 'image_id' and 'bbox'")
        try:
            score = float(det.get("score", 1.0))
            image_id = int(det["image_id"])
        except (TypeError, ValueError):
            raise ValueError(
                f"{where}: detection {k}: image_id and score must be numbers"
            ) from None
        if category_id is not None and det.get("category_id", category_id) != category_id:
            continue
        if not score >= score_threshold:
            continue
        box = box_values(det["bbox"], f"{where}: detection {k}")
        kept.setdefault(image_id, []).append((score, box))
    return {i: [b for _, b in sorted(v, key=lambda sb: -sb[0])] for i, v in kept.items()}


def read_image_ids(
    source: str | os.PathLike[str] | Mapping[str, Any] | Sequence[Any],
) -> dict[str, int]:
    """``file_name -> image id`` from a COCO file's ``images`` list (or the list itself)."""
    where = "images"
    if isinstance(source, (str, os.PathLike)):
        where = str(source)
        source = read_json_file(source, "COCO images file")
    images = source.get("images") if isinstance(source, Mapping) else source
    if not isinstance(images, list):
        raise ValueError(f"{where}: expected a COCO file with an 'images' list")
    ids: dict[str, int] = {}
    for k, image in enumerate(images):
        if not isinstance(image, Mapping) or "id" not in image or "file_name" not in image:
            raise ValueError(f"{where}: images[{k}] needs 'id' and 'file_name'")
        ids[str(image["file_name"]).replace("\\", "/")] = int(image["id"])
    return ids


class BoxSource:
    """Resolves the boxes and COCO image id of each image file (see :func:`dsntpose.predict.predict`
    for the forms ``boxes`` takes)."""

    def __init__(
        self,
        boxes: BoxesArg,
        det_threshold: float,
        det_category: int | None,
        coco_images: str | os.PathLike[str] | Mapping[str, Any] | None,
    ) -> None:
        self.single: Box | None = None
        self.by_name: dict[str, list[Box]] | None = None
        self.by_id: dict[int, list[Box]] | None = None
        self.source = "boxes"
        self.ids_source = (
            "coco_images" if not isinstance(coco_images, (str, os.PathLike)) else str(coco_images)
        )
        ids = read_image_ids(coco_images) if coco_images is not None else None
        data: Any = boxes
        if isinstance(boxes, (str, os.PathLike)):
            self.source = str(boxes)
            data = read_json_file(boxes, "boxes file")
        if data is None:
            pass
        elif (
            isinstance(data, Mapping)
            and isinstance(data.get("annotations"), list)
            and isinstance(data.get("images"), list)
        ):
            detections = [
                {**a, "score": 1.0}
                for a in data["annotations"]
                if not a.get("iscrowd", 0) and "bbox" in a
            ]
            self.by_id = read_detections(detections, -math.inf, det_category)
            if ids is None:
                ids = read_image_ids(data)
        elif isinstance(data, Mapping):
            self.by_name = read_boxes(data)
        elif isinstance(data, list) and data and all(isinstance(d, Mapping) for d in data):
            self.by_id = read_detections(data, det_threshold, det_category)
        elif isinstance(data, list) and not data and self.source != "boxes":
            self.by_id = {}  # an empty detections file: nobody anywhere
        else:
            self.single = box_values(data, "box")
        self.ids = ids
        self.known_ids = set(ids.values()) if ids else set()
        self.by_base: dict[str, int] = {}
        if ids:
            counts: dict[str, int] = {}
            for name in ids:
                base = name.rsplit("/", 1)[-1]
                counts[base] = counts.get(base, 0) + 1
            self.by_base = {
                n.rsplit("/", 1)[-1]: i for n, i in ids.items() if counts[n.rsplit("/", 1)[-1]] == 1
            }

    @property
    def whole_image(self) -> bool:
        return self.single is None and self.by_name is None and self.by_id is None

    def image_id(self, path: Path) -> int | None:
        """The COCO id of an image file: from ``coco_images`` or an integer (ASCII) file stem."""
        if self.ids:
            posix = path.as_posix()
            for key in (posix, path.name):
                if key in self.ids:
                    return self.ids[key]
            if path.name in self.by_base:
                return self.by_base[path.name]
            for name, image_id in self.ids.items():
                if posix.endswith("/" + name):
                    return image_id
        stem = path.stem  # "①" and "²" are digits to str.isdigit but not to int()
        return int(stem) if stem.isascii() and stem.isdigit() else None

    def listed(self, path: Path) -> bool:
        """False for an image that COCO detections cannot concern: ``coco_images`` is given
        and does not list it (a folder may hold other images too; they are skipped)."""
        if self.by_id is None or not self.ids:
            return True
        return self.image_id(path) in self.known_ids

    def for_image(self, path: Path, width: int, height: int) -> list[Box] | None:
        """The boxes of one image (None: the whole image), checked against its size."""
        if self.whole_image:
            return None
        if self.single is not None:
            chosen = [self.single]
        elif self.by_name is not None:
            found = self.by_name.get(str(path), self.by_name.get(path.name))
            if found is None:
                raise ValueError(f"no boxes for {path.name} in {self.source}")
            chosen = found
        else:
            assert self.by_id is not None
            image_id = self.image_id(path)
            if image_id is None:
                raise ValueError(
                    f"no COCO image id for {path.name}: pass coco_images (a COCO images file) "
                    "or name the files by their integer id"
                )
            chosen = self.by_id.get(image_id, [])
        return [check_box(b, width, height) for b in chosen]
