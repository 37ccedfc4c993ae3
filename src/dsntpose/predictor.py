"""One pose pipeline for Python callers: load a model once, predict on arrays, images, files.

:class:`Predictor` holds a model (a torch model, a checkpoint or an exported ONNX file) and
turns images into keypoints: for every person box the square crop around the box centre is cut
with one affine warp (:mod:`dsntpose.data.transforms`, the geometry of training), the model
predicts normalised crop coordinates (averaged with the mirrored crop by
:func:`dsntpose.evaluate.flip_test`), and :func:`dsntpose.evaluate.back_project` maps them
through the inverse affine into the original image: 0-based px, integers at pixel centres,
``(x, y)``.

Boxes are ``(x, y, w, h)`` image px covering columns ``x .. x + w - 1`` and rows
``y .. y + h - 1``, so the whole image is ``(0, 0, W, H)`` (also COCO's ``[x, y, w, h]``). The
crop is the square of side ``margin * max(w, h)`` (default 1.25) around the box centre; without
a box the whole image is taken as **one** person, and the crop is the square that just holds
the image (no margin). On a picture of several people that gives one, meaningless, mean pose:
give boxes (e.g. from a person detector).

Example:
    >>> predictor = Predictor.from_checkpoint("run/last.ckpt")  # doctest: +SKIP
    >>> people = predictor(cv2.imread("me.jpg"))  # doctest: +SKIP
    >>> people[0].keypoints.shape, people[0].confidence.shape  # doctest: +SKIP
    ((14, 2), (14,))
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import Tensor, nn

from dsntpose.config import ModelConfig
from dsntpose.data.joints import JointSet, get_joint_set
from dsntpose.data.transforms import crop_matrix, invert_affine, warp_image

__all__ = [
    "MAX_IMAGE_PIXELS",
    "Person",
    "Predictor",
    "as_rgb_image",
    "box_values",
    "check_box",
    "load_image",
]

# Refuse images above this many pixels (a decoded 100 MP image is 300 MB); see load_image.
MAX_IMAGE_PIXELS = 100_000_000

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Person:
    """One person's prediction.

    Attributes:
        keypoints: ``(J, 2)`` float64 ``(x, y)`` original image px (0-based pixel centres);
            NaN where the model gave a non-finite value.
        confidence: ``(J,)`` float64 in ``[0, 1]`` (the heatmap's mass near its mean).
        box: ``(x, y, w, h)`` image px, the person box the crop was cut around.
        inverse: ``(2, 3)`` float64 affine, crop px -> image px.
        score: mean of the finite confidences (NaN if none is finite).
        names: the ``J`` joint names.
    """

    keypoints: np.ndarray
    confidence: np.ndarray
    box: Box
    inverse: np.ndarray
    score: float
    names: tuple[str, ...]

    @property
    def finite(self) -> bool:
        """Whether every keypoint and confidence is finite."""
        return bool(np.isfinite(self.keypoints).all() and np.isfinite(self.confidence).all())

    def to_dict(self, digits: int = 3) -> dict[str, Any]:
        """Plain JSON-safe values: non-finite numbers become ``None`` (JSON ``null``)::

        {"box": [x, y, w, h], "score": 0.7,
         "keypoints": [{"name": "r_ankle", "x": 10.5, "y": 20.25, "confidence": 0.8}, ...]}
        """
        return {
            "box": [_num(v, digits) for v in self.box],
            "score": _num(self.score, 4),
            "keypoints": [
                {
                    "name": name,
                    "x": _num(self.keypoints[j, 0], digits),
                    "y": _num(self.keypoints[j, 1], digits),
                    "confidence": _num(self.confidence[j], 4),
                }
                for j, name in enumerate(self.names)
            ],
        }


def _num(value: float, digits: int) -> float | None:
    """``round(value, digits)`` as a Python float, or ``None`` when not finite."""
    value = float(value)
    return round(value, digits) if math.isfinite(value) else None


# --------------------------------------------------------------------------------------------
# Images in
# --------------------------------------------------------------------------------------------


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


def _check_jpeg(data: bytes, where: str) -> None:
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
    if data.find(b"\xff\xd9", scan) < 0:
        raise OSError(f"truncated JPEG (no end-of-image marker): {where}")


def load_image(path: str | os.PathLike[str], max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """Read an image file as ``(H, W, 3)`` uint8 **RGB**, refusing what cannot be trusted.

    The header's size is read first (nothing decoded): more than ``max_pixels`` pixels is an
    error before any memory is allocated (a 100-byte PNG can claim 60000 x 60000 px). A JPEG
    that is truncated (no end marker after its image data) or whose header is broken, and a PNG
    without its ``IEND`` chunk, are errors too: OpenCV would return them with grey fill. The
    pixels are decoded by OpenCV (as :func:`dsntpose.data.common.read_image`, so EXIF
    orientation is applied the same way as in training).

    Raises:
        FileNotFoundError: no such file. OSError: unreadable, truncated or corrupt.
        ValueError: larger than ``max_pixels``. Each message is one line naming the file.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"image not found: {path}") from None
    except IsADirectoryError:
        raise OSError(f"not an image file (a folder): {path}") from None
    if not data:
        raise OSError(f"empty image file: {path}")
    size = _image_header_size(data, str(path))
    if size is not None and size[0] * size[1] > max_pixels:
        raise ValueError(
            f"image of {size[0]}x{size[1]} px exceeds the {max_pixels} px limit "
            f"(max_pixels): {path}"
        )
    if data[:2] == b"\xff\xd8":
        _check_jpeg(data, str(path))
    elif data[:8] == b"\x89PNG\r\n\x1a\n" and b"IEND" not in data[-16:]:
        raise OSError(f"truncated PNG (no IEND chunk): {path}")
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error as err:
        first = str(err).strip().splitlines()[-1] if str(err).strip() else "cv2.error"
        raise OSError(f"cannot decode image: {path} ({first})") from None
    if image is None:
        raise OSError(f"cannot decode image: {path}")
    if image.shape[0] * image.shape[1] > max_pixels:
        raise ValueError(
            f"image of {image.shape[1]}x{image.shape[0]} px exceeds the {max_pixels} px limit "
            f"(max_pixels): {path}"
        )
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _is_pil(image: Any) -> bool:
    return type(image).__module__.startswith("PIL.") and hasattr(image, "convert")


def as_rgb_image(
    image: Any, rgb: bool = False, max_pixels: int = MAX_IMAGE_PIXELS, where: str = "image"
) -> np.ndarray:
    """One image as ``(H, W, 3)`` RGB: uint8, or float32 in ``[0, 1]`` for float tensors.

    Accepts:
        * a numpy array ``(H, W, 3)`` uint8, **BGR** (OpenCV's order) unless ``rgb=True``;
          ``(H, W)`` / ``(H, W, 1)`` grey and ``(H, W, 4)`` BGRA/RGBA (alpha dropped) too;
        * a PIL image (any mode; converted to RGB; ``rgb`` is ignored);
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
        array = np.asarray(image.convert("RGB"))
        rgb = True
    elif isinstance(image, Tensor):
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


def _check_size(height: int, width: int, max_pixels: int, where: str) -> None:
    if height < 1 or width < 1:
        raise ValueError(f"{where}: empty image ({height}x{width})")
    if height * width > max_pixels:
        raise ValueError(f"{where}: image of {width}x{height} px exceeds the {max_pixels} px limit")


def _tensor_image(image: Tensor, max_pixels: int, where: str) -> np.ndarray:
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
    """``(x, y, w, h)`` floats from a 4-sequence of real, finite numbers with ``w, h > 0``, or a
    one-line ``ValueError`` naming ``where``."""
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
    return box  # type: ignore[return-value]


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


def _box_list(boxes: Any, width: int, height: int, where: str) -> list[Box] | None:
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


# --------------------------------------------------------------------------------------------
# The predictor
# --------------------------------------------------------------------------------------------


class Predictor:
    """A pose model loaded once, called on images (see the module docstring for the geometry).

    Args:
        model: a torch model returning a ``HeadOutput`` (``CoordRegressionModel``), or an
            :class:`~dsntpose.checkpoint.OnnxModel`.
        config: its :class:`~dsntpose.config.ModelConfig` (joint set, input size, head).
        device: device for the crops (default: where the model's parameters are; CPU for ONNX).
        flip: average with the mirrored crop (:func:`dsntpose.evaluate.flip_test`, in the
            head's own flip mode).
        margin: crop side as a multiple of a given box's longer side.
        batch_size: crops per forward pass.
        max_pixels: larger images are refused.

    Use :meth:`from_checkpoint` (or :meth:`from_onnx`) to load a file.
    """

    def __init__(
        self,
        model: nn.Module | Any,
        config: ModelConfig,
        *,
        device: str | torch.device | None = None,
        flip: bool = True,
        margin: float = 1.25,
        batch_size: int = 8,
        max_pixels: int = MAX_IMAGE_PIXELS,
    ) -> None:
        if not isinstance(config, ModelConfig):
            raise TypeError(f"config must be a ModelConfig, got {type(config).__name__}")
        if not callable(model):
            raise TypeError(
                f"model must be callable (nn.Module or OnnxModel), got {type(model).__name__}"
            )
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not margin > 0:
            raise ValueError(f"margin must be > 0, got {margin}")
        self.model, self.config = model, config
        self.joint_set: JointSet = get_joint_set(config.joints)
        self.flip, self.margin, self.batch_size = bool(flip), float(margin), int(batch_size)
        self.max_pixels = int(max_pixels)
        if isinstance(model, nn.Module):
            model.eval()
            if device is not None:
                model.to(device)
            param = next(model.parameters(), None)
            self.device = param.device if param is not None else torch.device(device or "cpu")
        else:
            self.device = torch.device("cpu")

    @property
    def input_size(self) -> int:
        """The crop side ``S`` px the model takes."""
        return int(self.config.input_size)

    @classmethod
    def from_checkpoint(
        cls,
        path: str | os.PathLike[str] | None = None,
        device: str | torch.device = "cpu",
        flip: bool = True,
        *,
        joints: str | None = None,
        **kwargs: Any,
    ) -> Predictor:
        """Load a checkpoint (or an ``.onnx`` file) once.

        Args:
            path: a checkpoint from ``dsntpose train`` / :func:`dsntpose.checkpoint.save_model`, an
                exported ``.onnx`` file, or None for the model shipped with the package
                (:func:`dsntpose.zoo.pretrained_path`).
            device: where the model runs (``"cpu"``, ``"cuda"``).
            flip: flip test.
            joints: the joint set the caller expects; a model for another is an error.
            kwargs: ``margin``, ``batch_size``, ``max_pixels`` (see :class:`Predictor`).

        Raises:
            FileNotFoundError: no such file, or no shipped model installed (``path=None``).
            ValueError: not a dsntpose checkpoint, or one for another joint set.
        """
        if path is None:
            from dsntpose.zoo import pretrained_path

            try:
                path = pretrained_path()
            except FileNotFoundError as err:
                raise FileNotFoundError(
                    f"no shipped model to load: {err}. Pass a checkpoint path "
                    "(Predictor.from_checkpoint('run/last.ckpt'))"
                ) from None
        from dsntpose.checkpoint import load_any

        loaded = load_any(path, joints=joints, map_location=device)
        if loaded.kind == "onnx":
            return cls(loaded.model, loaded.config, flip=flip, **kwargs)
        return cls(loaded.model, loaded.config, device=device, flip=flip, **kwargs)

    @classmethod
    def from_onnx(
        cls,
        path: str | os.PathLike[str],
        config: ModelConfig | None = None,
        flip: bool = True,
        *,
        joints: str | None = None,
        **kwargs: Any,
    ) -> Predictor:
        """An exported ``.onnx`` file on onnxruntime (CPU); ``config`` only for files without a
        dsntpose config in their metadata."""
        from dsntpose.checkpoint import load_onnx

        loaded = load_onnx(path, joints=joints, config=config)
        return cls(loaded.model, loaded.config, flip=flip, **kwargs)

    # ---- the pipeline -------------------------------------------------------------------

    def crop(self, image: np.ndarray, box: Box | None) -> tuple[np.ndarray, np.ndarray]:
        """The model's input crop of one person.

        Args:
            image: ``(H, W, 3)`` RGB, uint8 or float32 (see :func:`as_rgb_image`).
            box: ``(x, y, w, h)`` image px, or None for the whole image (no margin).

        Returns:
            ``crop`` ``(S, S, 3)`` of the image's dtype (outside the image: 0) and ``inverse``
            ``(2, 3)`` crop px -> image px.
        """
        height, width = image.shape[:2]
        if box is None:
            x, y, w, h, scale = 0.0, 0.0, float(width), float(height), 1.0
        else:
            (x, y, w, h), scale = box, self.margin
        center = (x + (w - 1) / 2, y + (h - 1) / 2)
        matrix = crop_matrix(center, max(w, h) * scale, self.input_size)
        return warp_image(image, matrix, self.input_size), invert_affine(matrix)

    def forward_crops(self, crops: Tensor) -> tuple[Tensor, Tensor]:
        """Model (and flip test) on crops.

        Args:
            crops: ``(B, 3, S, S)`` float RGB in ``[0, 1]``.

        Returns:
            coords ``(B, J, 2)`` normalised crop units and confidence ``(B, J)``, float64 CPU.

        Raises:
            ValueError: the model predicts another number of joints than its joint set has.
            TypeError: the model returned complex values.
        """
        from dsntpose.inference import flip_test

        joint_set = self.joint_set
        with torch.no_grad():
            crops = crops.to(self.device, torch.float32)
            if self.flip:  # torch or ONNX: the head's own flip mode, decode and merge
                coords, confidence = flip_test(self.model, crops, joint_set)
            else:
                out = self.model(crops)
                coords, confidence = out.coords, out.confidence
        for label, value in (("coords", coords), ("confidence", confidence)):
            if value.is_complex():
                raise TypeError(f"the model returned complex {label} ({value.dtype}); refused")
        if coords.dim() != 3 or coords.shape[1:] != (joint_set.num_joints, 2):
            raise ValueError(
                f"the model predicts {coords.shape[1] if coords.dim() == 3 else tuple(coords.shape)} "
                f"joints, joint set {joint_set.name} has {joint_set.num_joints}"
            )
        return coords.detach().double().cpu(), confidence.detach().double().cpu()

    def predict_batch(
        self,
        images: Sequence[Any],
        boxes: Sequence[Any] | None = None,
        *,
        rgb: bool = False,
    ) -> list[list[Person]]:
        """Predict every person in every image (crops of all images share batches).

        Args:
            images: ``N`` images, each in a form :func:`as_rgb_image` accepts (numpy BGR
                unless ``rgb=True``, PIL, ``(3, H, W)`` tensor, path).
            boxes: None (each whole image is one person), or ``N`` entries: None, one box
                ``(x, y, w, h)`` or a list/``(K, 4)`` array of boxes (``[]``: nobody).
            rgb: numpy arrays are RGB, not BGR.

        Returns:
            ``N`` lists of :class:`Person`, in box order.
        """
        images = list(images)
        if boxes is not None:
            boxes = list(boxes)
            if len(boxes) != len(images):
                raise ValueError(
                    f"boxes: expected one entry per image ({len(images)}), got {len(boxes)}"
                )
        crops: list[np.ndarray] = []
        owners: list[tuple[int, Box, np.ndarray]] = []
        for i, image in enumerate(images):
            where = f"image {i}" if len(images) > 1 else "image"
            array = as_rgb_image(image, rgb, self.max_pixels, where)
            height, width = array.shape[:2]
            chosen = _box_list(None if boxes is None else boxes[i], width, height, where)
            for box in chosen if chosen is not None else [None]:
                crop, inverse = self.crop(array, box)
                crops.append(crop)
                full: Box = box if box is not None else (0.0, 0.0, float(width), float(height))
                owners.append((i, full, inverse))
        people: list[list[Person]] = [[] for _ in images]
        if not crops:
            return people
        coords, confidence = self._run(crops)
        from dsntpose.inference import back_project

        inverse = np.stack([o[2] for o in owners])
        joints_px = np.asarray(back_project(coords.numpy(), inverse, self.input_size))
        conf = confidence.numpy()
        for k, (i, box, inv) in enumerate(owners):
            finite = conf[k][np.isfinite(conf[k])]
            score = float(finite.mean()) if finite.size else math.nan
            people[i].append(
                Person(joints_px[k].copy(), conf[k].copy(), box, inv, score, self.joint_set.names)
            )
        return people

    def _run(self, crops: list[np.ndarray]) -> tuple[Tensor, Tensor]:
        """``(S, S, 3)`` crops (uint8 or float32 [0, 1]) -> coords and confidence, batched."""
        coords_list, conf_list = [], []
        for start in range(0, len(crops), self.batch_size):
            chunk = np.stack(crops[start : start + self.batch_size]).transpose(0, 3, 1, 2)
            batch = torch.from_numpy(np.ascontiguousarray(chunk))
            batch = batch.float() / 255.0 if batch.dtype == torch.uint8 else batch.float()
            coords, confidence = self.forward_crops(batch)
            coords_list.append(coords)
            conf_list.append(confidence)
        return torch.cat(coords_list), torch.cat(conf_list)

    def predict_image(self, image: Any, boxes: Any = None, *, rgb: bool = False) -> list[Person]:
        """Predict the people of one image (see :meth:`predict_batch` for the forms)."""
        return self.predict_batch([image], None if boxes is None else [boxes], rgb=rgb)[0]

    def __call__(
        self, images: Any, boxes: Any = None, *, rgb: bool = False
    ) -> list[Person] | list[list[Person]]:
        """Predict one image (-> ``list[Person]``) or a batch (-> one list per image).

        A batch is a ``list``/``tuple`` of images, a ``(B, H, W, 3)`` uint8 numpy array or a
        ``(B, 3, H, W)`` tensor; then ``boxes`` holds one entry per image. Numpy arrays are
        **BGR** (as ``cv2.imread`` gives) unless ``rgb=True``; tensors are RGB.
        """
        if isinstance(images, (list, tuple)):
            return self.predict_batch(images, boxes, rgb=rgb)
        if (isinstance(images, np.ndarray) and images.ndim == 4) or (
            isinstance(images, Tensor) and images.dim() == 4
        ):
            return self.predict_batch(list(images), boxes, rgb=rgb)
        return self.predict_image(images, boxes, rgb=rgb)

    def __repr__(self) -> str:
        return (
            f"Predictor({type(self.model).__name__}, joints={self.config.joints!r}, "
            f"input_size={self.input_size}, flip={self.flip}, device={str(self.device)!r})"
        )
