"""Whole-or-absent file writes, in one place (no torch: data readers and downloads use it).

:func:`atomic_write` writes a temporary file beside the target (never through a link planted
at its name), flushes it to disk and renames it over the target, so the target is either its
old self or the whole new file; a command never writes onto one of its own inputs
(:func:`refuse_inputs`), and a full disk is said as such. :func:`clean_stale_temporaries`
removes the temporaries of writers that were killed (``kill -9`` during a checkpoint write).
:mod:`dsntpose.checkpoint` re-exports these names.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

__all__ = [
    "MAX_CONFIG_BYTES",
    "TEMPORARY",
    "atomic_write",
    "check_config_file",
    "clean_stale_temporaries",
    "read_yaml",
    "refuse_inputs",
]

PathLike = str | os.PathLike[str]


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def refuse_inputs(path: PathLike, inputs: Iterable[PathLike | None], what: str = "output") -> None:
    """Raise a one-line ``ValueError`` when ``path`` is one of ``inputs`` (the same file, by
    any name): a command never writes over what it reads (``export --checkpoint w.pt w.pt``)."""
    target = Path(path)
    for source in inputs:
        if source is None:
            continue
        source = Path(source)
        same = (
            target.exists() and source.exists() and os.path.samefile(target, source)
        ) or target.resolve() == source.resolve()
        if same:
            raise ValueError(
                f"{what} {target} is also an input of this command ({source}); write to "
                "another file"
            )


def atomic_write(
    path: PathLike,
    write: Callable[[Path], object],
    *,
    inputs: Iterable[PathLike | None] = (),
    what: str = "output",
) -> Path:
    """Write ``path`` so that it is either its old self or the whole new file.

    ``write(tmp)`` writes a temporary file beside ``path`` (same filesystem); it is then
    flushed to disk (``fsync``) and renamed over ``path`` (``os.replace``), and the rename is
    made durable. On any failure the temporary file is removed and ``path`` is left as it was:
    an ``OSError`` naming ``path`` (a full disk; torch reports one as a ``RuntimeError``) or the
    writer's own exception. Parent folders are created. ``path`` being one of ``inputs`` is
    refused before anything is written (:func:`refuse_inputs`).
    """
    path = Path(path)
    refuse_inputs(path, inputs, what)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        if os.path.lexists(tmp):  # never write through a link (or a stale file) left there
            tmp.unlink()
        write(tmp)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if isinstance(err, OSError):
            reason = str(err.strerror or err)
            if err.errno in (errno.ENOSPC, errno.EDQUOT):
                reason += ": disk full (ENOSPC); free some space and run it again"
            if err.errno is None:
                raise OSError(f"could not write {path}: {reason}") from None
            raise OSError(err.errno, f"could not write {path}: {reason}") from None
        if isinstance(err, RuntimeError) and not isinstance(err, NotImplementedError):
            if _disk_full(err, path.parent):
                raise OSError(
                    errno.ENOSPC,
                    f"could not write {path}: disk full (ENOSPC); free some space and run it again",
                ) from None
            raise OSError(f"could not write {path}: {_first_line(err)}") from None
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    return path


def _disk_full(err: BaseException, folder: Path) -> bool:
    """Whether a failed write ``err`` came from a full disk: an ``ENOSPC`` anywhere in its
    chain, or torch's own stream writer failing (``inline_container.cc ... unexpected pos``)
    while ``folder``'s filesystem has under 1 MiB left."""
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        seen = seen.__cause__ or seen.__context__
    text = str(err)
    if "No space left" in text:
        return True
    if "inline_container" in text or "unexpected pos" in text or "file write failed" in text:
        try:
            info = os.statvfs(folder)
        except OSError:
            return False
        return info.f_bavail * info.f_frsize < (1 << 20)
    return False


TEMPORARY = re.compile(r"^\..+\.tmp-(\d+)$")
"""The name :func:`atomic_write` gives its temporary files: ``.NAME.tmp-PID``."""


def clean_stale_temporaries(folder: PathLike) -> list[Path]:
    """Remove the temporary files :func:`atomic_write` left in ``folder`` when its process was
    killed (``kill -9`` during a checkpoint write): those whose pid no longer runs. Returns
    what was removed; a missing folder is nothing to clean."""
    removed: list[Path] = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = TEMPORARY.match(entry.name)
        if match is None or not entry.is_file() or entry.is_symlink():
            continue
        pid = int(match.group(1))
        if pid == os.getpid():
            continue
        try:
            os.kill(pid, 0)
            continue  # still running (or not ours to signal): leave it
        except ProcessLookupError:
            pass
        except PermissionError:
            continue
        with contextlib.suppress(OSError):
            entry.unlink()
            removed.append(entry)
    return removed


# --------------------------------------------------------------------------------------------
# Config files: read strictly (regular file, bounded, no aliases or repeated keys)


MAX_CONFIG_BYTES = 1 << 20
"""The largest YAML config read (the shipped recipes are under 2 KiB)."""


def check_config_file(path: str | Path, what: str = "--config") -> Path:
    """Refuse, in one line naming ``path``, what cannot be a config file, before it is opened:
    a missing file, a folder, a named pipe or device (reading one would wait forever or never
    end), or a file over :data:`MAX_CONFIG_BYTES`."""
    path = Path(path)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} {path}: config file not found") from None
    except OSError as err:
        raise ValueError(f"{what} {path}: cannot be read ({err.strerror})") from None
    if stat.S_ISDIR(info.st_mode):
        raise ValueError(f"{what} {path} is a folder, not a YAML file")
    if not stat.S_ISREG(info.st_mode):
        raise ValueError(
            f"{what} {path} is not a regular file (a named pipe, socket or device); give a "
            "YAML file"
        )
    if info.st_size > MAX_CONFIG_BYTES:
        raise ValueError(
            f"{what} {path} is {info.st_size} bytes, more than the {MAX_CONFIG_BYTES} a config "
            "may have"
        )
    return path


def read_yaml(path: str | Path, what: str = "--config") -> Any:
    """The YAML document of the config file ``path``, read strictly.

    Beside :func:`check_config_file`'s checks, YAML tags other than the plain ones are refused
    (``yaml.safe_load``), and so are aliases (``*name``: an alias bomb expands a small file to
    gigabytes) and a key given twice in one mapping (YAML would silently keep the last), each
    in one ``ValueError`` naming the file, the line and the key.
    """
    import yaml

    class StrictLoader(yaml.SafeLoader):  # type: ignore[misc]  # PyYAML ships no type stubs
        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.events.AliasEvent):
                event = self.peek_event()
                raise ValueError(
                    f"{path}: line {event.start_mark.line + 1}: YAML aliases (*{event.anchor}) "
                    "are not allowed in a config; write the value out"
                )
            return super().compose_node(parent, index)

        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            seen: set[Any] = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                if isinstance(key, (str, int, float, bool)) or key is None:
                    if key in seen:
                        raise ValueError(
                            f"{path}: line {key_node.start_mark.line + 1}: the key {key!r} is "
                            "given twice in the same section; keep one"
                        )
                    seen.add(key)
            return super().construct_mapping(node, deep=deep)

    path = check_config_file(path, what)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{what} {path}: not UTF-8 text ({err.reason})") from None
    try:
        return yaml.load(text, Loader=StrictLoader)
    except yaml.YAMLError as err:
        first = str(err).strip().splitlines()
        raise ValueError(f"{what} {path}: not valid YAML ({'; '.join(first[:2])})") from None
