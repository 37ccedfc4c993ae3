"""How inference runs on this machine: the thread count, and the engine (torch or ONNX Runtime).

Threads (:func:`resolve_threads`): ``"auto"`` is the one policy, used by ``dsntpose predict``,
``eval``, video and :class:`~dsntpose.predictor.Predictor`: the CPUs this process may run on
(``os.sched_getaffinity``) less the load the rest of the machine puts on them (the 1-minute
``os.getloadavg``), at least 1. On a busy 2-core machine that is 1 thread: two threads fighting
a training run for two cores made one Predictor call 3.3 s instead of 105 ms. The environment
variable ``DSNTPOSE_THREADS`` (a number, or ``auto``) overrides the default everywhere; an
explicit number always wins.

Engine (:func:`onnx_engine`): when ``onnxruntime`` is installed a Predictor opened from a file
runs an ONNX export of it (faster than torch eager at batch 1 on a CPU: see
``benchmarks/onnx_vs_torch.py``), exported once into a cache keyed by the checkpoint's sha256
(``$DSNTPOSE_CACHE`` or ``~/.cache/dsntpose/onnx``; written atomically). ``engine="torch"`` (or
``DSNTPOSE_ENGINE=torch``) opts out.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "ENGINES",
    "Threads",
    "auto_threads",
    "onnx_cache_dir",
    "onnx_engine",
    "resolve_engine",
    "resolve_threads",
    "set_threads",
]

log = logging.getLogger(__name__)

Threads = int | Literal["auto"] | None
ENGINES = ("auto", "torch", "onnxruntime")
MAX_THREADS = 256  # torch.set_num_threads(100000) crashes; no CPU here has more


def auto_threads() -> int:
    """The threads one inference process should use now: the CPUs it may run on less the
    machine's 1-minute load (rounded, other processes' work), between 1 and those CPUs."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        load = 0.0
    if not math.isfinite(load):
        load = 0.0
    return max(1, min(cpus, round(cpus - load)))


def resolve_threads(threads: Threads = "auto") -> int | None:
    """A thread count from ``threads``: a number (1 to 256), ``"auto"`` (:func:`auto_threads`,
    or ``$DSNTPOSE_THREADS`` when set), or None (leave the libraries' own setting)."""
    if threads is None:
        return None
    if threads == "auto":
        env = os.environ.get("DSNTPOSE_THREADS", "auto").strip() or "auto"
        if env == "auto":
            return auto_threads()
        try:
            threads = int(env)
        except ValueError:
            raise ValueError(f"DSNTPOSE_THREADS: expected a number or auto, got {env!r}") from None
    if isinstance(threads, bool) or not isinstance(threads, int):
        raise ValueError(f"threads: expected a number or 'auto', got {threads!r}")
    if not 1 <= threads <= MAX_THREADS:
        raise ValueError(f"threads: must be between 1 and {MAX_THREADS}, got {threads}")
    return threads


def set_threads(threads: Threads = "auto") -> int | None:
    """Set torch's intra-op threads by :func:`resolve_threads`; returns the count (None: left)."""
    count = resolve_threads(threads)
    if count is not None:
        import torch

        if torch.get_num_threads() != count:
            torch.set_num_threads(count)
    return count


def _asked_engine(engine: str) -> str:
    """``engine`` checked, with ``"auto"`` replaced by ``$DSNTPOSE_ENGINE`` where that is set."""
    if engine not in ENGINES:
        raise ValueError(f"engine: expected one of {', '.join(ENGINES)}, got {engine!r}")
    if engine == "auto":
        engine = os.environ.get("DSNTPOSE_ENGINE", "auto").strip() or "auto"
        if engine not in ENGINES:
            raise ValueError(
                f"DSNTPOSE_ENGINE: expected one of {', '.join(ENGINES)}, got {engine!r}"
            )
    return engine


def resolve_engine(engine: str = "auto") -> str:
    """``"torch"`` or ``"onnxruntime"``: ``"auto"`` (or ``$DSNTPOSE_ENGINE``) is ONNX Runtime
    when it is installed, else torch."""
    engine = _asked_engine(engine)
    if engine == "auto":
        import importlib.util

        engine = "onnxruntime" if importlib.util.find_spec("onnxruntime") else "torch"
    return engine


def onnx_cache_dir() -> Path:
    """Where exported models are cached: ``$DSNTPOSE_CACHE/onnx`` or ``~/.cache/dsntpose/onnx``."""
    root = os.environ.get("DSNTPOSE_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "dsntpose") / "onnx"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def engine_insisted(engine: str = "auto") -> bool:
    """Whether ``engine`` (or, for ``"auto"``, ``$DSNTPOSE_ENGINE``) names ONNX Runtime
    outright: then a model that does not export is an error, not a quiet fall back to torch."""
    return _asked_engine(engine) == "onnxruntime"


def onnx_engine(loaded: Any, threads: int | None = None, *, required: bool = False) -> Any:
    """The ONNX Runtime twin of a torch :class:`~dsntpose.checkpoint.LoadedModel`: its export,
    made once and cached by the checkpoint's sha256 (and the package version), opened as an
    :class:`~dsntpose.checkpoint.OnnxModel` with ``threads`` intra-op threads. Returns None (and
    logs why) when the export fails: the caller keeps torch; with ``required`` that is a
    ``ValueError`` naming the file and the exporter's first line instead."""
    from dsntpose import __version__
    from dsntpose.checkpoint import OnnxModel

    source = Path(loaded.source)
    key = f"{_sha256(source)[:32]}-{__version__}"
    target = onnx_cache_dir() / f"{source.stem}-{key}.onnx"
    if not target.is_file():
        from dsntpose.export import export_onnx

        log.info("exporting %s to ONNX once (cached as %s)", source, target)
        try:
            export_onnx(loaded.model, target, config=loaded.config, check=True, inputs=[source])
        except Exception as err:  # a model the exporter cannot trace: torch it is
            if required:
                first = next((line for line in str(err).splitlines() if line.strip()), repr(err))
                raise ValueError(
                    f"engine onnxruntime: {source} does not export to ONNX ({first.strip()}); "
                    "use engine 'torch' or 'auto' (auto falls back to torch)"
                ) from err
            log.warning("ONNX Runtime not used for %s (%s); running torch", source, err)
            return None
    try:
        return OnnxModel(target, threads=threads)
    except ValueError as err:  # a damaged cache file: export again next time
        target.unlink(missing_ok=True)
        log.warning("ONNX Runtime not used for %s (%s); running torch", source, err)
        return None
