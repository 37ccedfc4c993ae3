"""scripts/gpu_pack.py and scripts/gpu_long_run.sh: the data travels in parts and is read back
unchanged by the loaders; the runner refuses to train on a partial copy."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import load_script

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
gpu_pack = load_script("gpu_pack", REPO / "scripts" / "gpu_pack.py")


def fake_sources(root: Path, images: int = 6) -> None:
    """Four source folders with textured images and an annotation file each."""
    rng = np.random.default_rng(0)
    for k, name in enumerate(gpu_pack.SOURCES):
        (root / name / "images").mkdir(parents=True)
        (root / name / "joints.json").write_text(json.dumps({"source": name}))
        for i in range(images):
            smooth = cv2.GaussianBlur(rng.integers(0, 256, (90, 120, 3), dtype=np.uint8), (9, 9), 3)
            cv2.imwrite(str(root / name / "images" / f"im{k}{i:03d}.jpg"), smooth)


def test_parts_hold_every_file_under_its_own_name_within_the_limit(tmp_path: Path) -> None:
    data, out = tmp_path / "data", tmp_path / "gpu"
    fake_sources(data)
    one = len(gpu_pack.encode(data / "lsp" / "images" / "im0000.jpg", 70))
    manifest = gpu_pack.pack(data, out, quality=70, part_mib=3.5 * one / 2**20)
    parts = manifest["parts"]
    assert len(parts) >= 6  # 24 images of about one size, three to a part
    files = [f for part in parts for f in part["files"]]
    assert sorted(files) == sorted(str(p.relative_to(data)) for p in data.rglob("*") if p.is_file())
    assert all(f.endswith(".json") for f in parts[0]["files"][:4])  # annotations in part 1
    for part in parts:
        on_disk = sum(p.stat().st_size for p in (out / part["name"]).rglob("*") if p.is_file())
        assert on_disk == part["bytes"] <= 3.5 * one * 1.2
    merged = tmp_path / "merged"
    for part in parts:
        shutil.copytree(out / part["name"] / "data", merged, dirs_exist_ok=True)
    original = cv2.imread(str(data / "lspet" / "images" / "im1003.jpg"))
    packed = merged / "lspet" / "images" / "im1003.jpg"
    assert packed.read_bytes()[8:12] == b"WEBP"  # WebP under the .jpg name ...
    decoded = cv2.imread(str(packed))  # ... which OpenCV reads by its content
    assert decoded.shape == original.shape
    assert np.abs(decoded.astype(int) - original.astype(int)).mean() < 4
    assert (merged / "coco_mini" / "joints.json").read_text() == '{"source": "coco_mini"}'


def test_pack_refuses_bad_input_in_one_line(tmp_path: Path, capsys) -> None:
    (tmp_path / "data" / "lsp").mkdir(parents=True)
    init = tmp_path / "init.pt"
    init.write_bytes(b"x")
    args = ["--out", str(tmp_path / "gpu"), "--init", str(init), "--no_wheels"]
    assert gpu_pack.main(["--data", str(tmp_path / "data"), *args]) == 2
    assert gpu_pack.main(["--data", str(tmp_path / "data"), "--init", str(tmp_path / "no.pt")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and "lspet" in err[0] and "no.pt" in err[1]
    assert all(line.startswith("gpu_pack: ") for line in err)
    with pytest.raises(ValueError, match="no pinned version of nothere"):
        gpu_pack.pinned(("jsonargparse", "nothere"), REPO / "constraints.txt")
    assert gpu_pack.pinned(("jsonargparse",), REPO / "constraints.txt")[0].startswith(
        "jsonargparse=="
    )


def runner(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """scripts/gpu_long_run.sh in a copy of the repo's scripts beside ``tmp_path/.gpu``."""
    work = tmp_path / "work"
    (work / "scripts").mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "scripts" / "gpu_long_run.sh", work / "scripts")
    if not (work / "src").exists():
        (work / "src").symlink_to(REPO / "src")
    shutil.copytree(tmp_path / "gpu", work / ".gpu", dirs_exist_ok=True)
    full = {**os.environ, "PYTHON": sys.executable, "DATA": str(tmp_path / "staged"), **env}
    return subprocess.run(
        ["bash", str(work / "scripts" / "gpu_long_run.sh"), *args],
        capture_output=True, text=True, env=full, cwd=work,
    )  # fmt: skip


def test_the_runner_stages_parts_and_will_not_train_on_a_partial_copy(tmp_path: Path) -> None:
    data = tmp_path / "data"
    fake_sources(data, images=2)
    one = len(gpu_pack.encode(data / "lsp" / "images" / "im0000.jpg", 70))
    manifest = gpu_pack.pack(data, tmp_path / "all", part_mib=2.5 * one / 2**20)
    names = [part["name"] for part in manifest["parts"]]
    assert len(names) >= 3

    def carry(name: str) -> None:  # one call carries one part (and the manifest)
        shutil.rmtree(tmp_path / "gpu", ignore_errors=True)
        (tmp_path / "gpu").mkdir()
        shutil.copy(tmp_path / "all" / "manifest.json", tmp_path / "gpu")
        shutil.copytree(tmp_path / "all" / name, tmp_path / "gpu" / name)

    carry(names[0])
    first = runner(tmp_path, "stage")
    assert first.returncode == 0, first.stderr
    assert f"still to stage: {' '.join(names[1:])}" in first.stdout
    carry(names[-1])
    refused = runner(tmp_path, "train", "1")
    assert refused.returncode == 2
    assert refused.stderr.strip() == (
        "gpu_long_run: parts not staged on this machine yet: "
        f"{' '.join(names[1:-1])} (stage them first, back to back)"
    )
    for name in names[1:-1]:
        carry(name)
        assert runner(tmp_path, "stage").returncode == 0
    assert "still to stage: nothing" in runner(tmp_path, "stage").stdout
    assert runner(tmp_path, "bogus").returncode == 2


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED / "lspet").is_dir(), reason="needs ../shared/data")
def test_rehearsal_of_the_whole_gpu_run_on_the_cpu(tmp_path: Path) -> None:
    """Pack the real data, stage every part, train two steps on the CPU, get a shipped file."""
    out = tmp_path / "gpu"
    init = REPO / "snapshots" / "whole_continuation.pt"
    args = ["--data", str(SHARED), "--out", str(out), "--init", str(init), "--no_wheels"]
    assert gpu_pack.main(args) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert all(part["bytes"] <= 34 * 2**20 for part in manifest["parts"])
    shutil.copytree(out, tmp_path / "all")
    result = runner(
        tmp_path, "train", "0.01", "--train.max_steps", "2",
        ACCELERATOR="cpu", BATCH="4", PROBE_STEPS="2", OUT=str(tmp_path / "out"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "out" / "whole_gpu.pt").is_file()
    from dsntpose.checkpoint import load_any

    assert load_any(tmp_path / "out" / "whole_gpu.pt").config.presence
