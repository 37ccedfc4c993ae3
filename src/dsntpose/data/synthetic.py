"""A synthetic pose set: articulated stick figures on varied backgrounds, generated from a seed.

Each sample is drawn from ``(seed, index)`` alone, so the set needs no files, is identical on
every machine and can be regenerated on the fly in any worker. A figure has the LSP skeleton
(MPII's extra pelvis/thorax/upper-neck points are placed on the same body): a torso quad,
thick limbs with round ends, a head ellipse. Limb angles are drawn from human-like ranges, the
figure faces the camera (its right side on the image's left, as in LSP/MPII labels), and its
size and position vary moderately so a small network learns it in minutes. Joints are known to
float precision and drawn sub-pixel accurately (OpenCV fixed-point coordinates, 1/16 px).

Backgrounds mix smooth noise, gradients and random shapes; some figures are partly covered by
an occluder drawn over them (the covered joints stay labelled, like occluded joints in LSP and
MPII), and some stand partly outside the canvas (those joints are masked).

The canvas is the original image: ``inverse`` is the identity for un-augmented samples,
``joints_image`` are canvas px and ``norm_size`` is the torso size (right shoulder to left hip).
"""

from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np

from dsntpose.data.common import PoseDataset, check_augment, finish_sample
from dsntpose.data.joints import JointSet, get_joint_set
from dsntpose.data.transforms import Augment

_SHIFT = 4  # OpenCV fixed-point bits: coordinates drawn to 1/16 px
_ONE = 1 << _SHIFT

# Body proportions as fractions of the figure height.
_TORSO, _HEAD, _SHOULDER, _HIP = 0.30, 0.15, 0.10, 0.065
_UPPER_ARM, _FOREARM, _THIGH, _SHIN = 0.16, 0.15, 0.23, 0.22


def _fixed(point: np.ndarray) -> tuple[int, int]:
    return round(float(point[0]) * _ONE), round(float(point[1]) * _ONE)


def _direction(angle_deg: float) -> np.ndarray:
    """Unit vector at ``angle_deg`` from straight down, positive towards the image's right."""
    a = math.radians(angle_deg)
    return np.array([math.sin(a), math.cos(a)])


def _color(rng: np.random.Generator, low: int = 0, high: int = 256) -> tuple[int, int, int]:
    c = rng.integers(low, high, size=3)
    return int(c[0]), int(c[1]), int(c[2])


def make_pose(rng: np.random.Generator, size: int) -> dict[str, np.ndarray]:
    """Draw one figure's joint positions ``(x, y)`` in canvas px, keyed by joint name.

    The names cover both joint tables (LSP's 14 plus ``pelvis``, ``thorax``, ``upper_neck``).
    """
    height = size * rng.uniform(0.55, 0.75)
    lean = float(np.clip(rng.normal(0.0, 10.0), -30.0, 30.0))  # torso tilt, degrees
    up = -_direction(lean)  # from pelvis towards neck
    right = np.array([-up[1], up[0]])  # towards the image's right (the person's left)
    pelvis = np.array([size / 2, size / 2]) + rng.normal(0.0, 0.06 * size, size=2)
    pelvis[1] += 0.08 * height  # pelvis a little below the centre, the figure's midpoint
    if rng.random() < 0.15:  # occasionally pushed partly out of the canvas
        pelvis += rng.choice([-1.0, 1.0], size=2) * rng.uniform(0.2, 0.35, size=2) * size
    neck = pelvis + _TORSO * height * up
    width = rng.uniform(0.85, 1.15)
    p: dict[str, np.ndarray] = {"pelvis": pelvis, "neck": neck}
    p["r_shoulder"] = neck - _SHOULDER * width * height * right - 0.03 * height * up
    p["l_shoulder"] = neck + _SHOULDER * width * height * right - 0.03 * height * up
    p["r_hip"] = pelvis - _HIP * width * height * right
    p["l_hip"] = pelvis + _HIP * width * height * right
    p["thorax"] = (p["r_shoulder"] + p["l_shoulder"]) / 2
    head_dir = -_direction(lean + rng.normal(0.0, 12.0))
    p["upper_neck"] = neck + 0.25 * _HEAD * height * head_dir
    p["head_top"] = neck + _HEAD * height * head_dir * rng.uniform(0.9, 1.1)

    for side, sign in (("r", -1.0), ("l", 1.0)):
        # Angles from straight down, positive outwards (away from the body's midline).
        shoulder_angle = lean + sign * rng.uniform(-20.0, 150.0)
        elbow_bend = sign * rng.uniform(-10.0, 130.0) * rng.choice([-1.0, 1.0], p=[0.8, 0.2])
        hip_angle = lean + sign * rng.uniform(-15.0, 50.0)
        knee_bend = -sign * rng.uniform(0.0, 90.0) * rng.choice([0.0, 1.0], p=[0.4, 0.6])
        shoulder, hip = p[f"{side}_shoulder"], p[f"{side}_hip"]
        elbow = shoulder + _UPPER_ARM * height * rng.uniform(0.7, 1.05) * _direction(shoulder_angle)
        wrist = elbow + _FOREARM * height * rng.uniform(0.7, 1.05) * _direction(
            shoulder_angle - elbow_bend
        )
        knee = hip + _THIGH * height * rng.uniform(0.75, 1.05) * _direction(hip_angle)
        ankle = knee + _SHIN * height * rng.uniform(0.75, 1.05) * _direction(hip_angle + knee_bend)
        p.update(
            {
                f"{side}_elbow": elbow,
                f"{side}_wrist": wrist,
                f"{side}_knee": knee,
                f"{side}_ankle": ankle,
            }
        )
    return p


def draw_background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A ``(size, size, 3)`` uint8 RGB background: smooth noise or a gradient, plus shapes."""
    kind = rng.integers(3)
    if kind == 0:  # smooth colour noise
        cells = int(rng.integers(2, 8))
        small = rng.integers(0, 256, size=(cells, cells, 3)).astype(np.uint8)
        canvas = cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC)
    elif kind == 1:  # linear gradient between two colours
        a, b = np.array(_color(rng), np.float32), np.array(_color(rng), np.float32)
        t = np.linspace(0.0, 1.0, size, dtype=np.float32)
        ramp = t[:, None] * math.cos(rng.uniform(0, math.pi)) + t[None, :] * math.sin(
            rng.uniform(0, math.pi)
        )
        ramp = (ramp - ramp.min()) / max(float(ramp.max() - ramp.min()), 1e-6)
        canvas = (a + ramp[..., None] * (b - a)).astype(np.uint8)
    else:  # flat colour with fine noise
        canvas = np.empty((size, size, 3), np.uint8)
        canvas[:] = _color(rng)
        noise = rng.integers(-20, 21, size=(size, size, 1))
        canvas = np.clip(canvas.astype(np.int16) + noise, 0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(0, 6))):  # distractor shapes
        _draw_shape(canvas, rng, size, filled=rng.random() < 0.6)
    return canvas


def _draw_shape(canvas: np.ndarray, rng: np.random.Generator, size: int, filled: bool) -> None:
    center = _fixed(rng.uniform(0, size, size=2))
    color, thickness = _color(rng), -1 if filled else int(rng.integers(1, 4))
    if rng.random() < 0.5:
        axes = _fixed(rng.uniform(0.04, 0.2, size=2) * size)
        angle = float(rng.uniform(0, 180))
        cv2.ellipse(canvas, center, axes, angle, 0, 360, color, thickness, cv2.LINE_AA, _SHIFT)
    else:
        corner = _fixed(rng.uniform(0, size, size=2))
        cv2.rectangle(canvas, center, corner, color, thickness, cv2.LINE_AA, _SHIFT)


def draw_figure(canvas: np.ndarray, pose: dict[str, np.ndarray], rng: np.random.Generator) -> None:
    """Draw the figure of ``pose`` (canvas px) onto ``canvas`` in place."""
    height = float(np.linalg.norm(pose["neck"] - pose["pelvis"])) / _TORSO
    limb = max(2, round(height * float(rng.uniform(0.055, 0.08))))
    body = _color(rng, 30, 230)
    shift = rng.integers(-50, 51, size=(4, 3))  # each limb pair a variation of the body colour
    colors = [tuple(int(v) for v in np.clip(np.array(body) + s, 0, 255)) for s in shift]

    def line(a: str, b: str, color: tuple[int, ...], thickness: int) -> None:
        cv2.line(canvas, _fixed(pose[a]), _fixed(pose[b]), color, thickness, cv2.LINE_AA, _SHIFT)

    torso = np.array(
        [_fixed(pose[k]) for k in ("r_shoulder", "l_shoulder", "l_hip", "r_hip")], np.int32
    )
    legs = [("r_hip", "r_knee", "r_ankle"), ("l_hip", "l_knee", "l_ankle")]
    arms = [("r_shoulder", "r_elbow", "r_wrist"), ("l_shoulder", "l_elbow", "l_wrist")]
    order = rng.permutation(2)
    for i in order:
        a, b, c = legs[i]
        line(a, b, colors[0 + i], limb + 1)
        line(b, c, colors[0 + i], limb)
    cv2.fillPoly(canvas, [torso], body, cv2.LINE_AA, _SHIFT)
    line("r_hip", "l_hip", body, limb)
    line("neck", "upper_neck", body, limb)
    head_center = (pose["neck"] + pose["head_top"]) / 2
    head_len = float(np.linalg.norm(pose["head_top"] - pose["neck"]))
    axis = pose["head_top"] - pose["neck"]
    angle = math.degrees(math.atan2(axis[1], axis[0]))
    head_color = _color(rng, 40, 250)
    axes = _fixed(np.array([head_len / 2, head_len / 2.8]))
    cv2.ellipse(
        canvas, _fixed(head_center), axes, angle, 0, 360, head_color, -1, cv2.LINE_AA, _SHIFT
    )
    for i in order:
        a, b, c = arms[i]
        line(a, b, colors[2 + i], limb)
        line(b, c, colors[2 + i], max(2, limb - 1))


def occlude(canvas: np.ndarray, pose: dict[str, np.ndarray], rng: np.random.Generator) -> None:
    """Draw one occluding shape over a random joint of ``pose`` (in place)."""
    names = sorted(pose)
    target = pose[names[int(rng.integers(len(names)))]]
    size = canvas.shape[0]
    center = target + rng.normal(0.0, 0.03 * size, size=2)
    axes = rng.uniform(0.05, 0.1, size=2) * size
    color = _color(rng)
    if rng.random() < 0.5:
        cv2.ellipse(
            canvas,
            _fixed(center),
            _fixed(axes),
            float(rng.uniform(0, 180)),
            0,
            360,
            color,
            -1,
            cv2.LINE_AA,
            _SHIFT,
        )
    else:
        cv2.rectangle(
            canvas, _fixed(center - axes), _fixed(center + axes), color, -1, cv2.LINE_AA, _SHIFT
        )


class Synthetic(PoseDataset):
    """Synthetic stick-figure poses, deterministic per ``(seed, index)``.

    Args:
        num_samples: number of samples ``N``.
        size: canvas and crop side ``S`` px.
        seed: the set's seed; a different seed gives a different set.
        joints: joint table name, ``"lsp"`` (14) or ``"mpii"`` (16).
        augment: ``True`` for the paper's augmentation, an :class:`Augment`, or False (the
            augmentation is drawn from ``(seed, epoch, index)``, see ``set_epoch``).
        occlusion_prob: probability that an occluder is drawn over the figure.
    """

    def __init__(
        self,
        num_samples: int,
        size: int = 128,
        seed: int = 0,
        joints: str = "lsp",
        augment: bool | Augment = False,
        occlusion_prob: float = 0.25,
    ) -> None:
        if num_samples < 0:
            raise ValueError(f"num_samples must be >= 0, got {num_samples}")
        if size < 16:
            raise ValueError(f"size must be at least 16 px, got {size}")
        self.num_samples = int(num_samples)
        self.size = int(size)
        self.seed = int(seed)
        self.joint_set: JointSet = get_joint_set(joints)
        self.augment = check_augment(augment)
        self.occlusion_prob = float(occlusion_prob)

    def __len__(self) -> int:
        return self.num_samples

    def generate(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The canvas ``(S, S, 3)`` uint8 RGB and joints ``(J, 2)`` canvas px of ``index``."""
        rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(index,)))
        pose = make_pose(rng, self.size)
        canvas = draw_background(rng, self.size)
        draw_figure(canvas, pose, rng)
        if rng.random() < self.occlusion_prob:
            occlude(canvas, pose, rng)
        joints = np.stack([pose[name] for name in self.joint_set.names])
        return canvas, joints

    def __getitem__(self, index: int) -> dict[str, Any]:
        index = self.check_index(index)
        canvas, joints = self.generate(index)
        a, b = self.joint_set.torso
        center = ((self.size - 1) / 2, (self.size - 1) / 2)
        return finish_sample(
            canvas,
            joints,
            np.zeros(len(joints), dtype=bool),
            center,
            float(self.size),
            self.size,
            self.joint_set,
            self.augment_params(index),
            index,
            float(np.linalg.norm(joints[a] - joints[b])),
        )
