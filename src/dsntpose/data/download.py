"""Downloading and verifying the data sets: LSP (zip) and the MPII annotation files.

Every file is checked against a packaged ``sha256sum``-style manifest
(``dsntpose/manifests/*.sha256``). ``dsntpose data lsp|mpii`` calls :func:`fetch_lsp` and
:func:`fetch_mpii`.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import sys
import urllib.request
import zipfile
import zlib
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = [
    "UNVERIFIED",
    "DownloadError",
    "fetch_lsp",
    "fetch_mpii",
    "read_manifest",
    "sha256_file",
    "verify_manifest",
]


def default_data_root(name: str) -> Path:
    """Where ``dsntpose data NAME`` puts a data set by default: ``$DSNTPOSE_DATA/NAME`` when
    that variable is set, else ``~/.cache/dsntpose/NAME`` (where ``dsntpose eval --preds``
    looks for the MPII ground truth)."""
    base = os.environ.get("DSNTPOSE_DATA")
    return (Path(base) if base else Path.home() / ".cache" / "dsntpose") / name


class DownloadError(OSError):
    """A download failed (network error, or fewer bytes than announced); the message says how
    to fetch the file by hand."""


# Where the data sets live on the internet (none of them can be reached from the build machine;
# the manifests were made from copies whose origin /work/shared/data/*/SOURCES.md records).
LSP_URL = "http://sam.johnson.io/research/lsp_dataset.zip"
MPII_URLS = {
    # bearpaw/pytorch-pose's training annotations (json, both splits via isValidation)
    "mpii_annotations.json": "https://raw.githubusercontent.com/bearpaw/pytorch-pose/"
    "edc7aece651649927764435ce0c1f03cffa2edaf/data/mpii/mpii_annotations.json",
    # the standard 2958-person validation split with PCKh head sizes (stacked hourglass, DSNT)
    "valid.h5": "https://raw.githubusercontent.com/anibali/eval-mpii-pose/"
    "938ef9a57fde14fdd1754fa668ec13ec4c00adab/annot/valid.h5",
    # the official-style PCKh ground truth of the same people (dsntpose eval --preds)
    "detections_our_format.mat": "https://raw.githubusercontent.com/bearpaw/pytorch-pose/"
    "edc7aece651649927764435ce0c1f03cffa2edaf/evaluation/data/detections_our_format.mat",
}
MPII_IMAGES = (
    "the MPII images (mpii_human_pose_v1.tar.gz, 12.9 GB) are behind the licence page "
    "http://human-pose.mpi-inf.mpg.de/ : download them there and unpack into ROOT/images"
)


UNVERIFIED = ".dsntpose-unverified"
"""Marker file written into a data root whose files failed verification (it lists them);
removed when a later fetch verifies every file. A data set should refuse a root holding it."""

MAX_MEMBER_BYTES = 256 << 20
"""The largest file a data set archive may unpack to (LSP's largest image is < 1 MiB)."""
MAX_TOTAL_BYTES = 4 << 30
"""The most an archive may unpack to in all."""


def read_manifest(path: Path | None = None, name: str = "lsp.sha256") -> dict[str, str]:
    """``relative path -> sha256`` from a ``sha256sum``-style manifest (the packaged one
    called ``name`` when ``path`` is None)."""
    if path is None:
        text = (resources.files("dsntpose") / "manifests" / name).read_text()
    else:
        text = Path(path).read_text()
    entries = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        digest, sep, rel = line.partition("  ")
        if not sep or len(digest) != 64:
            raise ValueError(f"{path or name}: line {number} is not 'SHA256  PATH'")
        entries[rel.strip()] = digest.lower()
    return entries


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def verify_manifest(root: Path, manifest: dict[str, str], what: str) -> int:
    """Check every manifest file under ``root``; return how many were checked.

    Raises ``ValueError`` naming the first few missing or different files and their count.
    """
    problems = []
    for rel, digest in manifest.items():
        path = root / rel
        if not path.is_file():
            problems.append(f"{rel} is missing")
        elif sha256_file(path) != digest:
            problems.append(f"{rel} has a different sha256")
    if problems:
        shown = "; ".join(problems[:5]) + ("; ..." if len(problems) > 5 else "")
        raise ValueError(
            f"{what} in {root}: {len(problems)} of {len(manifest)} files failed verification "
            f"({shown})"
        )
    return len(manifest)


def _verify_or_mark(root: Path, manifest: dict[str, str], what: str) -> int:
    """:func:`verify_manifest`, leaving no bad file usable: on failure every file that differs
    is renamed ``NAME.unverified`` and the marker :data:`UNVERIFIED` (listing the problems) is
    written into ``root``; on success a marker from an earlier failure is removed."""
    marker = root / UNVERIFIED
    try:
        count = verify_manifest(root, manifest, what)
    except ValueError as err:
        for rel, digest in manifest.items():
            path = root / rel
            if path.is_file() and sha256_file(path) != digest:
                path.replace(path.with_name(path.name + ".unverified"))
        note = f"{err}\n".encode()
        _write_atomic(marker, lambda out: out.write(note))
        raise ValueError(
            f"{err}; the files that differ were renamed *.unverified and {marker} marks the "
            "folder as unusable until a fetch verifies it"
        ) from None
    marker.unlink(missing_ok=True)
    return count


def _create(tmp: Path) -> Any:
    """Open ``tmp`` for writing as a new file, never through a symlink planted there."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    return os.fdopen(os.open(tmp, flags, 0o644), "wb")


def _write_atomic(dest: Path, write: Callable[[Any], None]) -> None:
    """``write(file)`` into a new temporary file beside ``dest``, renamed over ``dest`` when
    complete (:func:`dsntpose.checkpoint.atomic_write`: never through a symlink, nothing
    partial left under any name)."""
    from dsntpose.files import atomic_write

    def body(tmp: Path) -> None:
        with _create(tmp) as out:
            write(out)

    atomic_write(dest, body, what="data file")


def _copy_bounded(src: Any, out: Any, limit: int, what: str) -> int:
    """Copy the stream ``src`` into ``out``; ``ValueError`` naming ``what`` past ``limit``."""
    done = 0
    while block := src.read(1 << 20):
        done += len(block)
        if done > limit:
            raise ValueError(
                f"{what} unpacks to more than {limit} bytes, far more than the data set file "
                "it should be (a compression bomb?); nothing was kept"
            )
        out.write(block)
    return done


def _download(url: str, dest: Path) -> None:
    """Fetch ``url`` into ``dest`` (through a temporary file beside it), printing progress."""
    print(f"downloading {url}", file=sys.stderr)
    hint = "fetch it by hand and pass it with --zip (LSP) or --from_dir (MPII)"
    got = {"done": 0, "total": -1}

    def write(out: Any) -> None:
        try:
            fetch(out)
        except DownloadError as err:
            raise _Failed(err) from None
        except (OSError, http.client.HTTPException) as err:
            raise _Failed(DownloadError(f"could not download {url} ({err}); {hint}")) from None

    def fetch(out: Any) -> None:
        with urllib.request.urlopen(url, timeout=60) as response:
            try:
                total = int(response.headers.get("Content-Length") or -1)
            except ValueError:
                total = -1
            got["total"] = total
            while block := response.read(1 << 20):
                out.write(block)
                got["done"] += len(block)
                if got["done"] > MAX_TOTAL_BYTES:
                    raise DownloadError(f"download of {url} is larger than {MAX_TOTAL_BYTES} bytes")
                if total > 0:
                    done = got["done"]
                    print(f"\r  {done >> 20} / {total >> 20} MiB", end="", file=sys.stderr)
            done, total = got["done"], got["total"]
            if total >= 0 and done != total:
                raise DownloadError(
                    f"download of {url} was cut short: {done} of {total} bytes received "
                    f"(nothing kept); run the command again, or {hint}"
                )
            if done == 0:
                raise DownloadError(f"download of {url} returned no data (nothing kept); {hint}")
        print(file=sys.stderr)

    try:
        _write_atomic(dest, write)
    except _Failed as failed:
        raise failed.args[0] from None
    except OSError as err:  # writing the file itself: a full disk, a read-only folder
        raise DownloadError(f"could not download {url} ({err}); {hint}") from None


class _Failed(Exception):
    """Carries a :class:`DownloadError` through :func:`_write_atomic` unchanged."""


def _unpack(archive: Path, root: Path, manifest: dict[str, str] | None = None) -> int:
    """Unzip ``archive`` into ``root``; a single top-level folder in the archive is dropped.

    Refuses members that would land outside ``root`` (absolute paths, ``..``) and archives
    whose members declare more than :data:`MAX_MEMBER_BYTES` each or
    :data:`MAX_TOTAL_BYTES` in all (a zip bomb). With ``manifest``, only its files are
    extracted (the rest is skipped). Each file is written beside its final name and renamed
    when complete. Returns the number of files written.
    """
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as err:
        raise ValueError(f"{archive}: not a readable zip file ({err})") from None
    with zf:
        members = [m for m in zf.infolist() if not m.is_dir()]
        tops = {Path(m.filename).parts[0] for m in members if Path(m.filename).parts}
        strip = len(tops) == 1 and all(len(Path(m.filename).parts) > 1 for m in members)
        base = root.resolve()
        chosen = []
        for member in members:
            parts = Path(member.filename).parts[1 if strip else 0 :]
            target = (root / Path(*parts)).resolve()
            if base not in target.parents:
                raise ValueError(f"{archive}: member {member.filename!r} would leave {root}")
            rel = Path(*parts).as_posix()
            if manifest is not None and rel not in manifest:
                continue
            if member.file_size > MAX_MEMBER_BYTES:
                raise ValueError(
                    f"{archive}: member {member.filename!r} declares {member.file_size} bytes, "
                    f"more than the {MAX_MEMBER_BYTES} allowed; the archive is not a data set "
                    "release (nothing was extracted)"
                )
            chosen.append((member, target))
        total = sum(m.file_size for m, _ in chosen)
        if total > MAX_TOTAL_BYTES:
            raise ValueError(
                f"{archive}: members would unpack to {total} bytes, more than the "
                f"{MAX_TOTAL_BYTES} allowed (nothing was extracted)"
            )
        for member, target in chosen:
            target.parent.mkdir(parents=True, exist_ok=True)

            def write(dst: Any, member: zipfile.ZipInfo = member) -> None:
                with zf.open(member) as src:
                    written = 0
                    while block := src.read(1 << 20):
                        written += len(block)
                        if written > member.file_size:
                            raise ValueError(
                                f"{archive}: member {member.filename!r} unpacks to more than "
                                f"the {member.file_size} bytes it declares"
                            )
                        dst.write(block)

            try:
                _write_atomic(target, write)
            except (zipfile.BadZipFile, EOFError, zlib.error) as err:
                raise ValueError(
                    f"{archive}: member {member.filename!r} is damaged ({err}); download the "
                    "archive again"
                ) from None
    return len(chosen)


def _make_root(root: Path) -> None:
    """Create the data root, or refuse it in one line when it cannot be a folder."""
    if root.exists() and not root.is_dir():
        raise ValueError(f"--data.root {root} is a file, not a folder")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise ValueError(f"--data.root {root}: a parent of it is a file, not a folder") from None


def fetch_lsp(
    root: str | Path, zip_path: str | Path | None = None, manifest: Path | None = None
) -> Path:
    """Fetch (or take ``zip_path``), unpack and verify LSP into ``root``.

    ``root`` ends up holding ``images/im0001.jpg .. im2000.jpg`` and ``joints.mat``, each
    checked against the packaged ``manifests/lsp.sha256`` (or ``manifest``). Returns ``root``.
    """
    root = Path(root).expanduser()
    _make_root(root)
    entries = read_manifest(manifest, "lsp.sha256")
    if zip_path is None and not (root / UNVERIFIED).exists():
        try:
            count = verify_manifest(root, entries, "LSP")
        except ValueError:
            pass  # incomplete or different: fetch below
        else:
            print(f"LSP: {count} files already verified in {root}; nothing to download")
            return root
    if zip_path is None:
        archive = root / "lsp_dataset.zip"
        if not archive.is_file():
            _download(LSP_URL, archive)
        elif not zipfile.is_zipfile(archive):  # an earlier download that did not finish
            bad = archive.with_name(archive.name + ".unverified")
            archive.replace(bad)
            print(f"{archive} is not a whole zip file: moved to {bad.name}", file=sys.stderr)
            _download(LSP_URL, archive)
    else:
        archive = Path(zip_path).expanduser()
        if archive.is_dir():
            raise ValueError(f"--zip {archive} is a folder; give the lsp_dataset.zip file")
        if not archive.is_file():
            raise FileNotFoundError(f"--zip {archive} does not exist")
    _unpack(archive, root, entries)
    count = _verify_or_mark(root, entries, "LSP")
    print(f"LSP: {count} files verified in {root}")
    return root


def fetch_mpii(
    root: str | Path, from_dir: str | Path | None = None, manifest: Path | None = None
) -> Path:
    """Fetch (or copy from ``from_dir``) and verify the MPII annotation files into ``root``.

    Files: ``mpii_annotations.json`` (training people), ``valid.h5`` (the standard validation
    people) and ``detections_our_format.mat`` (PCKh ground truth); ``from_dir`` may hold the
    json gzipped (``mpii_annotations.json.gz``). The images are not fetched (see
    ``MPII_IMAGES``). Returns ``root``.
    """
    root = Path(root).expanduser()
    _make_root(root)
    entries = read_manifest(manifest, "mpii.sha256")
    if from_dir is not None and not Path(from_dir).expanduser().is_dir():
        raise FileNotFoundError(f"--from_dir {from_dir} is not a folder")
    for name, digest in entries.items():
        dest = root / name
        if from_dir is None:
            if dest.is_file() and sha256_file(dest) != digest:  # a bad earlier download
                dest.replace(dest.with_name(dest.name + ".unverified"))
            if not dest.is_file():
                _download(MPII_URLS[name], dest)
            continue
        src = Path(from_dir).expanduser() / name
        gz = src.with_name(src.name + ".gz")
        source = src if src.exists() else gz
        if not source.exists():
            raise FileNotFoundError(f"--from_dir {from_dir} has no {name} (or {name}.gz)")
        if not source.is_file():
            raise ValueError(f"--from_dir: {source} is not a regular file")

        def write(out: Any, source: Path = source) -> None:
            opener = gzip.open if source.suffix == ".gz" else open
            try:
                with opener(source, "rb") as fin:
                    _copy_bounded(fin, out, MAX_MEMBER_BYTES, str(source))
            except (EOFError, zlib.error, gzip.BadGzipFile) as err:
                raise ValueError(
                    f"{source}: not a whole gzip file ({err}); copy it again"
                ) from None

        _write_atomic(dest, write)
    count = _verify_or_mark(root, entries, "MPII annotations")
    print(f"MPII: {count} annotation files verified in {root}")
    print(f"MPII: {MPII_IMAGES.replace('ROOT', str(root))}")
    return root
