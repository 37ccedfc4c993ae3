"""Pack the whole-photo model's training data into parts small enough to travel to a GPU machine.

    .venv/bin/python scripts/gpu_pack.py [--data ../shared/data] [--out .gpu]
        [--quality 70] [--part_mib 34] [--init snapshots/whole_continuation.pt] [--no_wheels]

The GPU machine (the ``device`` tool) receives the working tree and the paths a call carries,
at most 64 MiB a call with the repository's own ~25 MiB, and reaches nothing else: not
``../shared``. The training sources of ``data.dataset: mixed`` (LSP, LSP-extended, the MPII
training crops, the COCO backgrounds: about 220 MB of JPEG) therefore travel in parts, one per
call, gathered on that machine into one folder (``scripts/gpu_long_run.sh stage``).

Each part ``OUT/partK/data/`` has the layout of ``--data`` (``lsp/``, ``lspet/``,
``mpii_train_crops/``, ``coco_mini/``); the annotation files are copied unchanged into part 1,
and every image is re-encoded as WebP at ``--quality`` under its own name (OpenCV decodes by
content, so the loaders read the parts unchanged; the people's pixels stay where they were, so
the annotations hold). Images are dealt out so that no part exceeds ``--part_mib``.
``OUT/manifest.json`` lists the parts, their files and sizes; the command prints one line per part.
It also copies the run's start (``--init``) to ``OUT/init.pt`` and downloads into ``OUT/wheels``
the packages the GPU image lacks (:data:`WHEELS`, at the versions of ``constraints.txt``, for
its Python 3.12). ``scripts/gpu_long_run.sh`` says how the parts travel and what runs there.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOURCES = ("lsp", "lspet", "mpii_train_crops", "coco_mini")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
# what dsntpose imports that the GPU machine's image does not hold (device/KINDS.md)
WHEELS = ("jsonargparse", "docstring_parser", "typeshed_client", "pycocotools")


def pinned(names: tuple[str, ...], constraints: Path) -> list[str]:
    """``name==version`` of each of ``names`` as ``constraints`` pins it (``ValueError`` naming
    one it does not pin)."""
    pins = {}
    for line in constraints.read_text().splitlines():
        name, sep, version = line.split("#")[0].strip().partition("==")
        if sep:
            pins[name.lower().replace("-", "_")] = version
    missing = [n for n in names if n.lower() not in pins]
    if missing:
        raise ValueError(f"{constraints}: no pinned version of {', '.join(missing)}")
    return [f"{n}=={pins[n.lower()]}" for n in names]


def download_wheels(target: Path, constraints: Path) -> None:
    """``pip download`` of :data:`WHEELS` for CPython 3.12 on manylinux x86-64 into ``target``."""
    import subprocess

    shutil.rmtree(target, ignore_errors=True)
    platforms = ["manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"]
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
               "--only-binary=:all:", "--python-version", "3.12", "--implementation", "cp",
               *[arg for p in platforms for arg in ("--platform", p)],
               "-d", str(target), *pinned(WHEELS, constraints)]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["pip failed"])[-1]
        raise OSError(f"pip download of {', '.join(WHEELS)} failed: {last}")


def source_files(data: Path) -> tuple[list[Path], list[Path]]:
    """``(annotation files, images)`` of the training sources under ``data`` (paths relative
    to it). Raises ``FileNotFoundError`` naming a missing source folder."""
    notes, images = [], []
    for name in SOURCES:
        root = data / name
        if not root.is_dir():
            raise FileNotFoundError(f"{root}: no such folder (the {name} source)")
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            rel = path.relative_to(data)
            (images if path.suffix.lower() in IMAGE_SUFFIXES else notes).append(rel)
    return notes, images


def encode(path: Path, quality: int) -> bytes:
    """The image at ``path`` as WebP bytes (``OSError`` naming it when it cannot be read)."""
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise OSError(f"cannot decode image: {path}")
    ok, data = cv2.imencode(".webp", image, [cv2.IMWRITE_WEBP_QUALITY, quality])
    if not ok:
        raise OSError(f"cannot encode {path} as WebP")
    return data.tobytes()


def pack(data: Path, out: Path, quality: int = 70, part_mib: float = 34.0) -> dict[str, object]:
    """Write the parts under ``out`` (replacing earlier ones) and return the manifest."""
    if not 1 <= quality <= 100:
        raise ValueError(f"--quality must be in 1..100, got {quality}")
    limit = int(part_mib * 2**20)
    notes, images = source_files(data)
    for old in out.glob("part*"):
        shutil.rmtree(old)
    parts: list[dict[str, object]] = []
    current: list[str] = []
    size = 0

    def close() -> None:
        nonlocal current, size
        parts.append({"name": f"part{len(parts) + 1}", "files": current, "bytes": size})
        current, size = [], 0

    for rel in notes:
        target = out / "part1" / "data" / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(data / rel, target)
        current.append(str(rel))
        size += target.stat().st_size
    for rel in images:
        blob = encode(data / rel, quality)
        if size + len(blob) > limit and current:
            close()
        target = out / f"part{len(parts) + 1}" / "data" / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(blob)
        current.append(str(rel))
        size += len(blob)
    if current:
        close()
    manifest = {"data": str(data), "quality": quality, "part_mib": part_mib, "parts": parts}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=REPO / ".gpu")
    parser.add_argument("--quality", type=int, default=70)
    parser.add_argument("--part_mib", type=float, default=34.0)
    parser.add_argument("--init", type=Path, default=REPO / "snapshots" / "whole_continuation.pt")
    parser.add_argument("--no_wheels", action="store_true", help="skip the pip download")
    args = parser.parse_args(argv)
    try:
        if not args.init.is_file():
            raise FileNotFoundError(f"--init {args.init}: no such file")
        manifest = pack(args.data, args.out, args.quality, args.part_mib)
        shutil.copyfile(args.init, args.out / "init.pt")
        if not args.no_wheels:
            download_wheels(args.out / "wheels", REPO / "constraints.txt")
    except (OSError, ValueError) as err:
        print(f"gpu_pack: {err}", file=sys.stderr)
        return 2
    for part in manifest["parts"]:  # type: ignore[attr-defined]
        print(
            f"{args.out / part['name']}: {len(part['files'])} files, {part['bytes'] / 2**20:.1f} MiB"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
