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
crop is the square of side ``margin * max(w, h)`` (default 1.25) around the box centre. Without
a box the predictor finds **one** person itself (:meth:`Predictor.find_people`): a first pass on
the square that holds the whole image, then passes on the square around the joints it found,
until that square stops moving; a model with a presence head says when nobody is there. On a
picture of several people that finds one of them: give boxes (e.g. from a person detector) for
the others.

Example:
    >>> predictor = Predictor.from_checkpoint("run/last.ckpt")  # doctest: +SKIP
    >>> people = predictor(cv2.imread("me.jpg"))  # doctest: +SKIP
    >>> people[0].keypoints.shape, people[0].confidence.shape  # doctest: +SKIP
    ((14, 2), (14,))
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from dsntpose.config import ModelConfig
from dsntpose.data.joints import JointSet, get_joint_set
from dsntpose.data.transforms import crop_matrix, invert_affine, warp_image
from dsntpose.inputs import (
    MAX_IMAGE_PIXELS,
    Box,
    as_rgb_image,
    box_list,
    box_values,
    check_box,
    json_number,
    load_image,
    nan_floats,
)

__all__ = [
    "BATCH_SIZE",
    "MARGIN",
    "MAX_IMAGE_PIXELS",
    "CropOutput",
    "Person",
    "Predictor",
    "as_rgb_image",
    "body_square",
    "box_values",
    "check_box",
    "keypoint_box",
    "load_image",
    "whole_square",
]

# The defaults of every entry point (Predictor, predict, video, the CLI), stated once.
MARGIN = 1.25  # crop side as a multiple of a given box's longer side (MPII's person scale)
MARGIN_RANGE = (0.1, 10.0)  # a margin outside it crops nothing useful (1e-300: a point)
BATCH_SIZE = 8  # crops per forward pass


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
        presence: probability that the crop shows a person (models with a presence head;
            NaN otherwise).
        visibility: ``(J,)`` probability that each joint is in view and not occluded (models
            with a presence head), else None.
        search_confidence: ``(J,)`` the scores the whole-photo search picks joints by (models
            with a calibrated presence head, :meth:`Predictor.search_confidence`), else None.
    """

    keypoints: np.ndarray
    confidence: np.ndarray
    box: Box
    inverse: np.ndarray
    score: float
    names: tuple[str, ...]
    presence: float = math.nan
    visibility: np.ndarray | None = None
    search_confidence: np.ndarray | None = dataclasses.field(default=None, repr=False)

    @property
    def finite(self) -> bool:
        """Whether every keypoint and confidence is finite."""
        return bool(np.isfinite(self.keypoints).all() and np.isfinite(self.confidence).all())

    def to_dict(self, digits: int = 3) -> dict[str, Any]:
        """Plain JSON-safe values: non-finite numbers become ``None`` (JSON ``null``)::

        {"box": [x, y, w, h], "score": 0.7,
         "keypoints": [{"name": "r_ankle", "x": 10.5, "y": 20.25, "confidence": 0.8}, ...]}
        """
        out: dict[str, Any] = {
            "box": [json_number(v, digits) for v in self.box],
            "score": json_number(self.score, 4),
        }
        if math.isfinite(self.presence):
            out["presence"] = json_number(self.presence, 4)
        out["keypoints"] = [
            {
                "name": name,
                "x": json_number(self.keypoints[j, 0], digits),
                "y": json_number(self.keypoints[j, 1], digits),
                "confidence": json_number(self.confidence[j], 4),
                **(
                    {}
                    if self.visibility is None
                    else {"visible": json_number(self.visibility[j], 4)}
                ),
            }
            for j, name in enumerate(self.names)
        ]
        return out

    @classmethod
    def from_dict(cls, entry: Mapping[str, Any], names: Sequence[str] | None = None) -> Person:
        """The :class:`Person` of a :meth:`to_dict` entry (``null`` back to NaN; ``inverse``
        is not stored there and comes back as NaN)."""
        points = entry["keypoints"]
        visible = [k.get("visible") for k in points]
        xy = np.stack(
            [nan_floats([k["x"] for k in points]), nan_floats([k["y"] for k in points])], 1
        )
        return cls(
            xy,
            nan_floats([k["confidence"] for k in points]),
            tuple(nan_floats(entry["box"]).tolist()),
            np.full((2, 3), math.nan),
            float(nan_floats([entry.get("score")])[0]),
            tuple(names or (k["name"] for k in points)),
            float(nan_floats([entry.get("presence")])[0]),
            None if all(v is None for v in visible) else nan_floats(visible),
        )


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
        min_presence: without a box, a model with a presence head reports nobody where the
            presence probability is below this (see :meth:`find_people`).
        max_passes: without a box, at most this many passes (whole image, then crops around
            the joints found).
        min_joint_score: joints whose confidence is below this do not shape the next crop (the
            confidence without its scale term, :meth:`search_confidence`).
        flip_passes: with ``flip``, which passes of the whole-photo search (:meth:`find_people`)
            run the flip test: ``"every"`` pass, or only the ``"final"`` crop (the passes run
            without it, then that crop's mirror: one network run fewer per pass after the
            first; on the shipped model's held-out people 27% fewer runs and 0.6 points lower,
            within the run-to-run spread, ``scripts/whole_validation.py``).
        track_keep: in tracking, the crop side never shrinks below this fraction of the
            previous frame's.
        threads: torch's CPU threads: ``"auto"`` (:func:`dsntpose.runtime.auto_threads`: the
            CPUs free now), a number, or None (leave torch's setting).
        engine: for a model opened from a file (:meth:`from_checkpoint`): ``"auto"`` runs it
            on ONNX Runtime when that is installed (an export cached by the checkpoint's hash,
            :func:`dsntpose.runtime.onnx_engine`; about 1.9x torch eager's speed at batch 1),
            ``"torch"`` keeps torch, ``"onnxruntime"`` insists (a model that does not export is a
            ``ValueError``, where ``"auto"`` falls back to torch).

    Use :meth:`from_checkpoint` (or :meth:`from_onnx`) to load a file.
    """

    def __init__(
        self,
        model: nn.Module | Any,
        config: ModelConfig,
        *,
        device: str | torch.device | None = None,
        flip: bool = True,
        margin: float = MARGIN,
        batch_size: int = BATCH_SIZE,
        max_pixels: int = MAX_IMAGE_PIXELS,
        min_presence: float = 0.5,
        max_passes: int = 3,
        min_joint_score: float = 0.3,
        flip_passes: str = "every",
        track_keep: float = 0.9,
        threads: int | str | None = "auto",
        engine: str = "auto",
    ) -> None:
        if not isinstance(config, ModelConfig):
            raise TypeError(f"config must be a ModelConfig, got {type(config).__name__}")
        if not callable(model):
            raise TypeError(
                f"model must be callable (nn.Module or OnnxModel), got {type(model).__name__}"
            )
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not MARGIN_RANGE[0] <= margin <= MARGIN_RANGE[1]:
            raise ValueError(
                f"margin must be in [{MARGIN_RANGE[0]:g}, {MARGIN_RANGE[1]:g}] (the crop side as a "
                f"multiple of the box's longer side), got {margin:g}"
            )
        self.model, self.config = model, config
        self.joint_set: JointSet = get_joint_set(config.joints)
        self.flip, self.margin, self.batch_size = bool(flip), float(margin), int(batch_size)
        self.max_pixels = int(max_pixels)
        if not 0.0 <= min_presence <= 1.0 or not 0.0 <= min_joint_score <= 1.0:
            raise ValueError(
                f"min_presence and min_joint_score must be in [0, 1], got {min_presence}, {min_joint_score}"
            )
        if max_passes < 1:
            raise ValueError(f"max_passes must be >= 1, got {max_passes}")
        if not 0.0 < track_keep <= 1.0:
            raise ValueError(f"track_keep must be in (0, 1], got {track_keep}")
        self.min_presence, self.max_passes = float(min_presence), int(max_passes)
        self.min_joint_score, self.track_keep = float(min_joint_score), float(track_keep)
        if flip_passes not in ("every", "final"):
            raise ValueError(f"flip_passes must be 'every' or 'final', got {flip_passes!r}")
        self.flip_passes = flip_passes
        from dsntpose.runtime import resolve_engine, set_threads

        self.engine = resolve_engine(engine)
        self.threads = set_threads(threads)  # type: ignore[arg-type]
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
            path: what :func:`dsntpose.checkpoint.load_any` opens: a shipped model's name, a
                checkpoint from ``dsntpose train`` / :func:`dsntpose.checkpoint.save_model`, an
                exported ``.onnx`` file; None for the model shipped with the package.
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
        return cls.from_loaded(loaded, device=device, flip=flip, **kwargs)

    @classmethod
    def from_loaded(
        cls, loaded: Any, *, device: str | torch.device | None = None, **kwargs: Any
    ) -> Predictor:
        """A predictor for a :class:`~dsntpose.checkpoint.LoadedModel` (what
        :func:`~dsntpose.checkpoint.load_any` opened); an ONNX model runs on the CPU, and a
        torch one on the CPU runs on ONNX Runtime when ``engine`` says so (see
        :class:`Predictor`)."""
        from dsntpose.runtime import engine_insisted, resolve_engine, resolve_threads

        asked = kwargs.get("engine", "auto")
        engine = resolve_engine(asked)
        on_cpu = device is None or torch.device(device).type == "cpu"
        if loaded.kind == "torch" and engine == "onnxruntime" and on_cpu:
            from dsntpose.runtime import onnx_engine

            threads = resolve_threads(kwargs.get("threads", "auto"))
            onnx = onnx_engine(loaded, threads, required=engine_insisted(asked))
            if onnx is not None:
                return cls(onnx, loaded.config, **kwargs)
        if loaded.kind == "onnx":
            return cls(loaded.model, loaded.config, **kwargs)
        return cls(loaded.model, loaded.config, device=device, **kwargs)

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

    def forward_crops(self, crops: Tensor) -> CropOutput:
        """Model (and flip test) on crops.

        Args:
            crops: ``(B, 3, S, S)`` float RGB in ``[0, 1]``.

        Returns:
            :class:`CropOutput`: coords ``(B, J, 2)`` normalised crop units, confidence
            ``(B, J)``, and for a model with a presence head presence ``(B,)`` and visibility
            ``(B, J)`` probabilities (else None); float64 on the CPU.

        Raises:
            ValueError: the model predicts another number of joints than its joint set has.
            TypeError: the model returned complex values.
        """
        from dsntpose.inference import flip_test

        with torch.no_grad():
            crops = crops.to(self.device, torch.float32)
            if self.flip:  # torch or ONNX: the head's own flip mode, decode and merge
                return self._crop_output(flip_test(self.model, crops, self.joint_set))
            return self._crop_output(self.model(crops))

    def _crop_output(self, out: Any) -> CropOutput:
        """A model's output (``HeadOutput``) or a flip test's (``FlipOutput``), checked, as a
        :class:`CropOutput` (probabilities, float64 on the CPU)."""
        joint_set = self.joint_set
        coords, confidence = out.coords, out.confidence
        presence, visibility = getattr(out, "presence", None), getattr(out, "visibility", None)
        for label, value in (("coords", coords), ("confidence", confidence)):
            if value.is_complex():
                raise TypeError(f"the model returned complex {label} ({value.dtype}); refused")
        if coords.dim() != 3 or coords.shape[1:] != (joint_set.num_joints, 2):
            raise ValueError(
                f"the model predicts {coords.shape[1] if coords.dim() == 3 else tuple(coords.shape)} "
                f"joints, joint set {joint_set.name} has {joint_set.num_joints}"
            )

        def cpu(value: Tensor | None, sigmoid: bool = False) -> Tensor | None:
            if value is None:
                return None
            value = torch.sigmoid(value.float()) if sigmoid else value
            return value.detach().double().cpu()

        return CropOutput(
            cpu(coords),  # type: ignore[arg-type]
            cpu(confidence),  # type: ignore[arg-type]
            cpu(presence, sigmoid=True),
            cpu(visibility, sigmoid=True),
            cpu(self._search_scores(out)),
        )

    def _search_scores(self, out: Any) -> Tensor | None:
        """``(B, J)`` :func:`dsntpose.heads.search_confidence` of a model output or a flip
        test's (the features it merged), None for a model without a calibration."""
        from dsntpose import ops
        from dsntpose.heads import joint_features, search_confidence

        calibration = getattr(self.model, "joint_calibration", None)
        if calibration is None or getattr(out, "visibility", None) is None:
            return None
        features = getattr(out, "features", None)
        if features is None:
            if not hasattr(out, "heatmaps"):  # a flip test that averaged the confidences
                return None
            probs = out.heatmaps.float()
            coords = out.coords.float()
            features = joint_features(
                out.visibility.float(),
                ops.heatmap_confidence(probs, center=coords),
                probs,
                coords,
                self.joint_set.torso,
            )
        return search_confidence(calibration.detach().cpu(), features.float().cpu())

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
            boxes: None (find the one person of each image: :meth:`find_people`), or ``N``
                entries: None (find the person), one box ``(x, y, w, h)`` or a list/``(K, 4)``
                array of boxes (``[]``: nobody).
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
        arrays: list[np.ndarray] = []
        chosen: list[list[Box] | None] = []
        for i, image in enumerate(images):
            where = f"image {i}" if len(images) > 1 else "image"
            array = as_rgb_image(image, rgb, self.max_pixels, where)
            arrays.append(array)
            height, width = array.shape[:2]
            chosen.append(box_list(None if boxes is None else boxes[i], width, height, where))
        return self.predict_arrays(arrays, chosen)

    def predict_arrays(
        self, arrays: Sequence[np.ndarray], boxes: Sequence[Sequence[Box] | None]
    ) -> list[list[Person]]:
        """:meth:`predict_batch` on ``(H, W, 3)`` RGB arrays whose boxes are already checked
        (:func:`~dsntpose.inputs.check_box`): each image's list of boxes, or None to find its
        one person (:meth:`find_people`)."""
        jobs: list[tuple[int, np.ndarray, float, Box]] = []  # image, centre, side, box
        search: list[int] = []
        for i, chosen in enumerate(boxes):
            if chosen is None:
                search.append(i)
                continue
            for box in chosen:
                x, y, w, h = box
                center = np.array([x + (w - 1) / 2, y + (h - 1) / 2])
                jobs.append((i, center, max(w, h) * self.margin, box))
        people: list[list[Person]] = [[] for _ in arrays]
        for (i, *_), person in zip(jobs, self._predict_squares(arrays, jobs)):
            people[i].append(person)
        for i, found in zip(search, self.find_people([arrays[i] for i in search])):
            if found is not None:
                people[i].append(found)
        return people

    def _square(
        self, image: np.ndarray, center: np.ndarray, side: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """The model's input crop: the square of ``side`` image px around ``center``."""
        matrix = crop_matrix(center, side, self.input_size)
        return warp_image(image, matrix, self.input_size), invert_affine(matrix)

    def _predict_squares(
        self, arrays: Sequence[np.ndarray], jobs: Sequence[tuple[int, np.ndarray, float, Box]]
    ) -> list[Person]:
        """One :class:`Person` per ``(image, centre, side, box)`` job: the model on that square."""
        if not jobs:
            return []
        crops, inverses = zip(*(self._square(arrays[i], c, side) for i, c, side, _ in jobs))
        return self._people(self._run(list(crops)), inverses, [job[3] for job in jobs])

    def _people(
        self, out: CropOutput, inverses: Sequence[np.ndarray], boxes: Sequence[Box]
    ) -> list[Person]:
        """One :class:`Person` per crop of ``out``: its coordinates through the crop's inverse
        affine into image px, reported with ``box``."""
        from dsntpose.inference import back_project

        inverse = np.stack(inverses)
        joints_px = np.asarray(back_project(out.coords.numpy(), inverse, self.input_size))
        conf = out.confidence.numpy()
        found = []
        for k, box in enumerate(boxes):
            finite = conf[k][np.isfinite(conf[k])]
            score = float(finite.mean()) if finite.size else math.nan
            found.append(
                Person(
                    joints_px[k].copy(),
                    conf[k].copy(),
                    box,
                    inverse[k],
                    score,
                    self.joint_set.names,
                    math.nan if out.presence is None else float(out.presence[k]),
                    None if out.visibility is None else out.visibility[k].numpy().copy(),
                    None if out.search is None else out.search[k].numpy().copy(),
                )
            )
        return found

    @staticmethod
    def search_confidence(person: Person) -> np.ndarray:
        """``(J,)`` the joint scores the whole-photo search chooses its crops by: ``person``'s
        ``search_confidence`` (:func:`dsntpose.heads.search_confidence`, the calibration's
        visibility, map and peak terms without the person's scale), else its confidence."""
        return person.confidence if person.search_confidence is None else person.search_confidence

    def find_people(
        self, arrays: Sequence[np.ndarray], start: Sequence[Person | None] | None = None
    ) -> list[Person | None]:
        """The one person of each image, found without a box (whole-photo pose).

        The first pass sees the whole image (the square around it, zero-padded) or, where
        ``start`` gives the previous frame's person, the square around that person's confident
        joints (:func:`body_square`; the side never below ``track_keep`` of that person's
        crop). Each further pass crops the square around the confident joints of the pass
        before, until the square stops moving (centre within 5% of the side, side within 10%)
        or ``max_passes`` passes ran. With ``flip`` every pass runs the flip test, or with
        ``flip_passes="final"`` the passes run without it and only the final crop's mirror runs
        after them, merged with that crop's own output (:func:`dsntpose.inference.merge_flip`):
        the flip test of the final crop at one extra network run rather than one per pass. A
        model with a presence head reports no person (None) where the final crop's presence is
        below ``min_presence``; a tracked start whose presence falls below it is searched again
        from the whole image.

        Args:
            arrays: ``(H, W, 3)`` RGB images.
            start: per image, a :class:`Person` to start from (video tracking) or None.

        Returns:
            per image, the :class:`Person` (its ``box`` is the box of its confident joints) or
            None.
        """
        arrays = list(arrays)
        state: list[tuple[np.ndarray, float]] = []  # per image, the square to crop next
        for k, array in enumerate(arrays):
            previous = None if start is None else start[k]
            square = None
            if previous is not None:
                square = body_square(
                    previous.keypoints, self.search_confidence(previous), self.min_joint_score
                )
                if square is not None:
                    _, _, pw, ph = previous.box
                    floor = self.track_keep * max(pw, ph) * BODY_MARGIN
                    square = (square[0], max(square[1], floor))
            state.append(square if square is not None else whole_square(*array.shape[:2]))
        tracked = [start is not None and start[k] is not None for k in range(len(arrays))]
        results: list[Person | None] = [None] * len(arrays)
        # per image, where its latest pass ran: (raw output, its row, crop, inverse, box)
        last: list[tuple[Any, int, np.ndarray, np.ndarray, Box] | None] = [None] * len(arrays)
        pending = list(range(len(arrays)))
        mirror_last = self.flip and self.flip_passes == "final"
        for step in range(self.max_passes):
            if not pending:
                break
            jobs = [(k, *state[k], _square_box(*state[k])) for k in pending]
            if mirror_last:  # this pass without the flip test; its raw output kept
                boxes = [job[3] for job in jobs]
                crops, inverses = zip(*(self._square(arrays[k], *state[k]) for k in pending))
                raw = self._raw(list(crops))
                found = self._people(self._crop_output(raw), inverses, boxes)
                for j, k in enumerate(pending):
                    last[k] = (raw, j, crops[j], inverses[j], boxes[j])
            else:
                found = self._predict_squares(arrays, jobs)
            still = []
            for k, person in zip(pending, found):
                results[k] = person
                lost = math.isfinite(person.presence) and person.presence < self.min_presence
                if lost and tracked[k]:  # the tracked person is gone: search the whole frame
                    tracked[k] = False
                    state[k] = whole_square(*arrays[k].shape[:2])
                    still.append(k)
                    continue
                square = body_square(
                    person.keypoints, self.search_confidence(person), self.min_joint_score
                )
                if square is None or step == self.max_passes - 1:
                    continue
                center, side = state[k]
                moved = np.abs(square[0] - center).max() > 0.05 * side
                resized = not 1 / 1.1 <= square[1] / side <= 1.1
                if moved or resized:
                    state[k] = square
                    still.append(k)
            pending = still
        if mirror_last:
            results = self._flip_final(results, last)
        answers: list[Person | None] = []
        for result in results:
            if result is None or (
                math.isfinite(result.presence) and result.presence < self.min_presence
            ):
                answers.append(None)
                continue
            box = keypoint_box(
                result.keypoints, self.search_confidence(result), self.min_joint_score
            )
            answers.append(result if box is None else dataclasses.replace(result, box=box))
        return answers

    def _flip_final(
        self,
        results: list[Person | None],
        last: Sequence[tuple[Any, int, np.ndarray, np.ndarray, Box] | None],
    ) -> list[Person | None]:
        """The flip test on each image's final crop: the search's passes ran without it, so
        only the mirrors run here, merged with the final pass's own outputs
        (:func:`dsntpose.inference.merge_flip`; the same answer as a flip test on that crop)."""
        from dsntpose.inference import merge_flip

        done = [k for k, entry in enumerate(last) if entry is not None]
        if not done:
            return results
        rows = [last[k] for k in done]
        own = _cat_outputs([_take(raw, j) for raw, j, *_ in rows])  # type: ignore[misc]
        mirrored = self._raw([row[2] for row in rows], mirror=True)  # type: ignore[index]
        with torch.no_grad():
            merged = merge_flip(self.model, own, mirrored, self.joint_set)
        people = self._people(
            self._crop_output(merged),
            [row[3] for row in rows],  # type: ignore[index]
            [row[4] for row in rows],  # type: ignore[index]
        )
        results = list(results)
        for k, person in zip(done, people):
            results[k] = person
        return results

    def _batches(self, crops: list[np.ndarray]) -> list[Tensor]:
        """``(S, S, 3)`` crops (uint8 or float32 [0, 1]) as ``(B, 3, S, S)`` float batches of
        at most ``batch_size``, on the model's device."""
        batches = []
        for start in range(0, len(crops), self.batch_size):
            chunk = np.stack(crops[start : start + self.batch_size]).transpose(0, 3, 1, 2)
            batch = torch.from_numpy(np.ascontiguousarray(chunk))
            batch = batch.float() / 255.0 if batch.dtype == torch.uint8 else batch.float()
            batches.append(batch.to(self.device))
        return batches

    def _raw(self, crops: list[np.ndarray], mirror: bool = False) -> Any:
        """The model's own output (``HeadOutput``, no flip test) on crops, batched; with
        ``mirror`` on their mirrors (``torch.flip`` along the width)."""
        with torch.no_grad():
            return _cat_outputs(
                [
                    self.model(torch.flip(batch, dims=[-1]) if mirror else batch)
                    for batch in self._batches(crops)
                ]
            )

    def _run(self, crops: list[np.ndarray]) -> CropOutput:
        """``(S, S, 3)`` crops (uint8 or float32 [0, 1]) -> the model's outputs (with the flip
        test when ``flip``), batched."""
        parts = [self.forward_crops(batch) for batch in self._batches(crops)]

        def join(values: Sequence[Tensor | None]) -> Tensor | None:
            return None if values[0] is None else torch.cat(values)  # type: ignore[arg-type]

        return CropOutput(*(join(v) for v in zip(*parts)))  # type: ignore[arg-type]

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


class CropOutput(NamedTuple):
    """The model's answer on crops (float64, CPU): ``coords`` ``(B, J, 2)`` normalised,
    ``confidence`` ``(B, J)``, and (presence head) ``presence`` ``(B,)`` and ``visibility``
    ``(B, J)`` probabilities and ``search`` ``(B, J)`` the whole-photo search's joint scores
    (:func:`dsntpose.heads.search_confidence`), else None."""

    coords: Tensor
    confidence: Tensor
    presence: Tensor | None = None
    visibility: Tensor | None = None
    search: Tensor | None = None


# The crop side around a person's joints, as a multiple of their extent: the training box
# (dsntpose.data.LSP and the mixed set: the joint box plus 20% of its longer side each side).
BODY_MARGIN = 1.4


def whole_square(height: int, width: int) -> tuple[np.ndarray, float]:
    """``(centre, side)`` of the square that just holds an ``H x W`` image (image px)."""
    return np.array([(width - 1) / 2, (height - 1) / 2]), float(max(height, width))


def body_square(
    keypoints: np.ndarray,
    confidence: np.ndarray,
    min_score: float = 0.3,
    min_joints: int = 3,
    margin: float = BODY_MARGIN,
) -> tuple[np.ndarray, float] | None:
    """``(centre, side)`` image px of the square around a person's confident joints: centred on
    their box, side ``margin`` times its longer side (at least 16 px); None when fewer than
    ``min_joints`` finite joints score ``min_score`` or more.

    Args:
        keypoints: ``(J, 2)`` image px. confidence: ``(J,)``.
    """
    box = keypoint_box(keypoints, confidence, min_score, min_joints)
    if box is None:
        return None
    x, y, w, h = box
    return np.array([x + (w - 1) / 2, y + (h - 1) / 2]), max(16.0, margin * max(w, h))


def keypoint_box(
    keypoints: np.ndarray,
    confidence: np.ndarray,
    min_confidence: float = 0.2,
    min_joints: int = 3,
) -> Box | None:
    """The ``(x, y, w, h)`` box of the confident, finite keypoints (None when fewer than
    ``min_joints`` qualify).

    Args:
        keypoints: ``(J, 2)`` image px. confidence: ``(J,)``.
        min_confidence: joints below this are ignored.
    """
    keypoints, confidence = np.asarray(keypoints, np.float64), np.asarray(confidence, np.float64)
    if keypoints.ndim != 2 or keypoints.shape[1] != 2 or confidence.shape != keypoints.shape[:1]:
        raise ValueError(
            f"keypoints must be (J, 2) and confidence (J,), got {keypoints.shape}, {confidence.shape}"
        )
    good = (
        np.isfinite(keypoints).all(axis=1)
        & np.isfinite(confidence)
        & (confidence >= min_confidence)
    )
    if good.sum() < min_joints:
        return None
    low, high = keypoints[good].min(axis=0), keypoints[good].max(axis=0)
    return float(low[0]), float(low[1]), float(high[0] - low[0] + 1), float(high[1] - low[1] + 1)


def _cat_outputs(parts: Sequence[Any]) -> Any:
    """Model outputs (``HeadOutput`` named tuples) of consecutive batches as one: each tensor
    field concatenated along the batch, None kept, ``aux`` dropped."""
    first = parts[0]
    if len(parts) == 1:
        return first._replace(aux=()) if hasattr(first, "aux") else first
    joined: dict[str, Any] = {}
    for field in first._fields:
        values = [getattr(part, field) for part in parts]
        if field == "aux":
            joined[field] = ()
        elif isinstance(values[0], Tensor):
            joined[field] = torch.cat(values)
        else:
            joined[field] = values[0]
    return first._replace(**joined)


def _take(out: Any, row: int) -> Any:
    """Row ``row`` of a model output (``HeadOutput``), kept as a batch of one."""
    return out._replace(
        **{
            field: value[row : row + 1]
            for field, value in zip(out._fields, out)
            if isinstance(value, Tensor)
        }
    )


def _square_box(center: np.ndarray, side: float) -> Box:
    """The square ``(centre, side)`` as an ``(x, y, w, h)`` box."""
    return (
        float(center[0] - (side - 1) / 2),
        float(center[1] - (side - 1) / 2),
        float(side),
        float(side),
    )
