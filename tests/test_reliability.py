"""Nothing lost, nothing silently wrong: the adversarial cases of issue 20 as one table.

Every row runs ``dsntpose.cli.main([...])`` in-process and states the exit status and the words
of the one line it must print (2: bad input, 1: a failure, 0: success). No row may print a
traceback or an "internal error", and no bad input may pass silently with exit 0. The counts are
printed at the end (``pytest tests/test_reliability.py -s``) and are the figures of
docs/reliability.md. Beside the table: the checkpoint writer (finite weights only, atomic), the
run-folder lock, the CSV log on resume, downloads and zip members, PCK with bad norm sizes.
"""

from __future__ import annotations

import csv
import errno
import gzip
import io
import json
import math
import struct
import zipfile
import zlib
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch

from dsntpose import cli
from dsntpose.data import download

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "configs" / "synthetic_smoke.yaml"
TINY = [
    "--data.synthetic_train", "32",
    "--data.synthetic_val", "16",
    "--model.output_stride", "32",
    "--train.progress_bar", "false",
    "--train.vis_every", "0",
]  # fmt: skip


def train_args(out: Path, *extra: str) -> list[str]:
    return ["train", "--config", str(SMOKE), "--train.out_dir", str(out), *TINY, *extra]


def _png_header(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)


@dataclass
class Files:
    """The inputs of the table, made once for the module."""

    root: Path
    ckpt: Path
    nan_ckpt: Path
    f: dict[str, Path] = field(default_factory=dict)

    def __getitem__(self, name: str) -> str:
        return str(self.f[name])


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Files:
    root = tmp_path_factory.mktemp("reliability")
    run = root / "run"
    assert cli.main(train_args(run)) == 0
    ckpt = run / "last.ckpt"
    nan = torch.load(ckpt, map_location="cpu", weights_only=True)
    key = next(k for k, v in nan["state_dict"].items() if v.is_floating_point())
    nan["state_dict"][key] = torch.full_like(nan["state_dict"][key], math.nan)
    nan_ckpt = root / "nan.ckpt"
    torch.save(nan, nan_ckpt)
    f: dict[str, Path] = {}

    def put(name: str, data: bytes) -> None:
        f[name] = root / name
        f[name].write_bytes(data)

    put("empty.ckpt", b"")
    put("trunc.ckpt", ckpt.read_bytes()[: 1 << 20])
    put("text.ckpt", b"hello, not a checkpoint\n")
    put("afile", b"x")
    put("huge.png", _png_header(60000, 60000))
    put("text.mat", b"not a MATLAB file\n")
    put("empty.mat", b"")
    put("model5.yaml", b"model: 5\n")
    put("pytag.yaml", b"model: !!python/object/apply:os.system ['echo pwned']\n")
    image = np.zeros((80, 60, 3), np.uint8)
    import cv2

    f["img.png"] = root / "img.png"
    cv2.imwrite(str(f["img.png"]), image)
    f["adir"] = root / "adir"
    f["adir"].mkdir()
    gzdir = root / "gzdir"
    gz_body = gzip.compress(json.dumps(np.random.default_rng(0).random(5000).tolist()).encode())
    gzdir.mkdir()
    (gzdir / "mpii_annotations.json.gz").write_bytes(gz_body[: len(gz_body) // 2])
    f["gzdir"] = gzdir
    with zipfile.ZipFile(root / "evil.zip", "w") as zf:
        zf.writestr("../escape.txt", b"x")
        zf.writestr("joints.mat", b"j")
    f["evil.zip"] = root / "evil.zip"
    with zipfile.ZipFile(root / "other.zip", "w") as zf:
        zf.writestr("lsp/visualized/extra.jpg", b"x" * 1000)
        zf.writestr("lsp/joints.mat", b"not the real joints")
    f["other.zip"] = root / "other.zip"
    put("notzip.zip", b"PK\x03\x04 truncated")
    from dsntpose.mpii_files import write_predictions

    f["preds.h5"] = write_predictions(root / "preds.h5", np.ones((2958, 16, 2)))
    return Files(root, ckpt, nan_ckpt, f)


@dataclass(frozen=True)
class Case:
    """One row: ``argv(files)`` must exit ``code`` with ``words`` in its last stderr line."""

    name: str
    category: str
    argv: Callable[[Files], list[str]]
    code: int
    words: tuple[str, ...]
    check: Callable[[Files], None] | None = None


def _no_partial_json(fx: Files) -> None:
    assert not (fx.root / "mp" / "mpii_annotations.json").exists()
    assert not list((fx.root / "mp").glob("*.part"))


def _lsp_marked(fx: Files) -> None:
    root = fx.root / "lsp-other"
    assert (root / download.UNVERIFIED).is_file()
    assert not (root / "joints.mat").exists() and (root / "joints.mat.unverified").is_file()
    assert not (root / "visualized").exists()  # only manifest members are extracted


def _no_escape(fx: Files) -> None:
    assert not (fx.root / "escape.txt").exists()


def _diverged_files(fx: Files) -> None:
    from dsntpose.checkpoint import nonfinite_tensors

    out = fx.root / "diverged"
    for path in out.glob("*.ckpt"):  # every checkpoint left under a final name is finite
        state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
        assert not nonfinite_tensors(state), path


C = Case
CASES = [
    # -- checkpoints that are empty, partly copied, foreign, folders or NaN (predict, eval, ...)
    C("predict empty ckpt", "checkpoint", lambda x: ["predict", x["img.png"], "--checkpoint", x["empty.ckpt"]], 2, ("empty.ckpt", "empty (0 bytes)")),
    C("predict truncated ckpt", "checkpoint", lambda x: ["predict", x["img.png"], "--checkpoint", x["trunc.ckpt"]], 2, ("trunc.ckpt", "truncated")),
    C("predict text ckpt", "checkpoint", lambda x: ["predict", x["img.png"], "--checkpoint", x["text.ckpt"]], 2, ("text.ckpt", "not a PyTorch file")),
    C("predict folder ckpt", "checkpoint", lambda x: ["predict", x["img.png"], "--checkpoint", x["adir"]], 2, ("adir", "is a folder")),
    C("eval empty ckpt", "checkpoint", lambda x: ["eval", "--checkpoint", x["empty.ckpt"]], 2, ("empty.ckpt", "empty")),
    C("eval truncated ckpt", "checkpoint", lambda x: ["eval", "--checkpoint", x["trunc.ckpt"]], 2, ("trunc.ckpt", "truncated")),
    C("eval text ckpt", "checkpoint", lambda x: ["eval", "--checkpoint", x["text.ckpt"]], 2, ("not a PyTorch file",)),
    C("eval folder ckpt", "checkpoint", lambda x: ["eval", "--checkpoint", x["adir"]], 2, ("is a folder",)),
    C("eval missing ckpt", "checkpoint", lambda x: ["eval", "--checkpoint", str(x.root / "none.ckpt")], 2, ("none.ckpt", "does not exist")),
    C("eval NaN weights", "silent", lambda x: ["eval", "--checkpoint", str(x.nan_ckpt)], 2, ("nan.ckpt", "NaN or inf")),
    C("predict NaN weights", "silent", lambda x: ["predict", x["img.png"], "--checkpoint", str(x.nan_ckpt)], 2, ("nan.ckpt", "NaN or inf")),
    C("export empty ckpt", "checkpoint", lambda x: ["export", "--checkpoint", x["empty.ckpt"], str(x.root / "o.onnx")], 2, ("empty",)),
    C("export truncated ckpt", "checkpoint", lambda x: ["export", "--checkpoint", x["trunc.ckpt"], str(x.root / "o.onnx")], 2, ("truncated",)),
    C("export folder ckpt", "checkpoint", lambda x: ["export", "--checkpoint", x["adir"], str(x.root / "o.onnx")], 2, ("is a folder",)),
    C("export NaN weights", "silent", lambda x: ["export", "--checkpoint", str(x.nan_ckpt), str(x.root / "o.onnx")], 2, ("NaN or inf",)),
    C("train empty weights", "checkpoint", lambda x: train_args(x.root / "w1", "--model.weights", x["empty.ckpt"]), 2, ("model.weights", "empty")),
    C("train truncated weights", "checkpoint", lambda x: train_args(x.root / "w2", "--model.weights", x["trunc.ckpt"]), 2, ("model.weights", "truncated")),
    C("train text weights", "checkpoint", lambda x: train_args(x.root / "w3", "--model.weights", x["text.ckpt"]), 2, ("model.weights", "not a PyTorch file")),
    # -- resume from a damaged or poisoned checkpoint
    C("resume truncated last", "checkpoint", lambda x: train_args(x.root / "w1", "--resume", x["trunc.ckpt"]), 2, ("trunc.ckpt", "truncated", "--resume")),
    C("resume NaN checkpoint", "silent", lambda x: train_args(x.root / "w1", "--resume", str(x.nan_ckpt)), 2, ("nan.ckpt", "NaN or inf", "not resumed")),
    C("diverging schedule", "silent", lambda x: train_args(x.root / "diverged", "--optim.gamma", "1e12", "--train.ckpt_every", "1", "--train.epochs", "3"), 1, ("training diverged", "moved to last.ckpt.diverged", "last good checkpoint is"), _diverged_files),
    # -- devices
    C("eval cuda on cpu", "device", lambda x: ["eval", "--checkpoint", str(x.ckpt), "--device", "cuda"], 2, ("--device cuda", "no CUDA")),
    C("predict cuda on cpu", "device", lambda x: ["predict", x["img.png"], "--checkpoint", str(x.ckpt), "--device", "cuda:1"], 2, ("--device cuda:1", "no CUDA")),
    C("eval bad device", "device", lambda x: ["eval", "--checkpoint", str(x.ckpt), "--device", "tpu"], 2, ("--device", "'tpu'")),
    # -- output paths that are folders or lie under a file, refused before the work
    C("predict --output folder", "output", lambda x: ["predict", x["img.png"], "--checkpoint", str(x.ckpt), "--output", x["adir"]], 2, ("--output", "is a folder")),
    C("predict --output under file", "output", lambda x: ["predict", x["img.png"], "--checkpoint", str(x.ckpt), "--output", x["afile"] + "/x.json"], 2, ("--output", "is a file, not a folder")),
    C("predict --draw_dir file", "output", lambda x: ["predict", x["img.png"], "--checkpoint", str(x.ckpt), "--draw_dir", x["afile"]], 2, ("--draw_dir", "not a folder")),
    C("predict --draw_dir under file", "output", lambda x: ["predict", x["img.png"], "--checkpoint", str(x.ckpt), "--draw_dir", x["afile"] + "/sub"], 2, ("--draw_dir", "is a file, not a folder")),
    C("predict --boxes folder", "output", lambda x: ["predict", x["img.png"], "--checkpoint", str(x.ckpt), "--boxes", x["adir"]], 2, ("--boxes", "is a folder")),
    C("predict --coco_output folder", "output", lambda x: ["predict", x["img.png"], "--checkpoint", str(x.ckpt), "--coco_output", x["adir"]], 2, ("--coco_output", "is a folder")),
    C("eval --output folder", "output", lambda x: ["eval", "--checkpoint", str(x.ckpt), "--output", x["adir"]], 2, ("--output", "is a folder")),
    C("eval --output under file", "output", lambda x: ["eval", "--checkpoint", str(x.ckpt), "--output", x["afile"] + "/p.h5"], 2, ("--output", "is a file, not a folder")),
    C("eval --output bad suffix", "output", lambda x: ["eval", "--checkpoint", str(x.ckpt), "--output", str(x.root / "p.txt")], 2, ("--output", ".h5 or .mat")),
    C("bench --json folder", "output", lambda x: ["bench", "--quick", "--json", x["adir"]], 2, ("--json", "is a folder")),
    C("bench --markdown folder", "output", lambda x: ["bench", "--quick", "--markdown", x["adir"]], 2, ("--markdown", "is a folder")),
    C("bench --json under file", "output", lambda x: ["bench", "--quick", "--json", x["afile"] + "/b.json"], 2, ("--json", "is a file, not a folder")),
    C("export output folder", "output", lambda x: ["export", "--checkpoint", str(x.ckpt), x["adir"]], 2, ("is a folder",)),
    C("train out_dir is a file", "output", lambda x: train_args(Path(x["afile"])), 2, ("train.out_dir", "is a file")),
    C("train out_dir under a file", "output", lambda x: train_args(Path(x["afile"]) / "run"), 2, ("train.out_dir", "is a file, not a folder")),
    # -- data files: .mat, .json.gz, zips, images
    C("eval --preds text .mat", "data", lambda x: ["eval", "--preds", x["text.mat"], "--gt", x["text.mat"]], 2, ("--preds", "text.mat", "not a readable MATLAB file")),
    C("eval --preds empty .mat", "data", lambda x: ["eval", "--preds", x["empty.mat"], "--gt", x["text.mat"]], 2, ("--preds", "empty")),
    C("eval --gt text .mat", "data", lambda x: ["eval", "--preds", x["text.mat"].replace("text", "text"), "--gt", x["adir"]], 2, ("not a readable MATLAB file",)),
    C("data mpii corrupt .json.gz", "data", lambda x: ["data", "mpii", "--data.root", str(x.root / "mp"), "--from_dir", x["gzdir"]], 2, ("mpii_annotations.json.gz", "not a whole gzip file"), _no_partial_json),
    C("data mpii from_dir missing", "data", lambda x: ["data", "mpii", "--data.root", str(x.root / "mp"), "--from_dir", str(x.root / "nowhere")], 2, ("--from_dir", "not a folder")),
    C("data lsp zip traversal", "data", lambda x: ["data", "lsp", "--data.root", str(x.root / "lsp-evil"), "--zip", x["evil.zip"]], 2, ("would leave",), _no_escape),
    C("data lsp unverified root", "data", lambda x: ["data", "lsp", "--data.root", str(x.root / "lsp-other"), "--zip", x["other.zip"]], 2, ("failed verification", "unverified"), _lsp_marked),
    C("data lsp not a zip", "data", lambda x: ["data", "lsp", "--data.root", str(x.root / "lsp-nz"), "--zip", x["notzip.zip"]], 2, ("not a readable zip file",)),
    C("data lsp zip folder", "data", lambda x: ["data", "lsp", "--data.root", str(x.root / "lsp-d"), "--zip", x["adir"]], 2, ("--zip", "is a folder")),
    C("data lsp root is a file", "data", lambda x: ["data", "lsp", "--data.root", x["afile"], "--zip", x["evil.zip"]], 2, ("--data.root", "is a file")),
    C("predict 60000x60000 png", "data", lambda x: ["predict", x["huge.png"], "--checkpoint", str(x.ckpt)], 1, ("1 of 1 inputs failed",)),
    C("predict missing image", "data", lambda x: ["predict", str(x.root / "none.png"), "--checkpoint", str(x.ckpt)], 1, ("1 of 1 inputs failed",)),
    # -- configs and numbers
    C("yaml model: 5", "config", lambda x: ["train", "--config", x["model5.yaml"]], 2, ("model:", "section of options", "5")),
    C("yaml python tag", "config", lambda x: ["train", "--config", x["pytag.yaml"]], 2, ()),
    C("input_size -64", "config", lambda x: train_args(x.root / "w1", "--model.input_size", "-64"), 2, ("model.input_size", "-64")),
    C("bench --threads 0", "config", lambda x: ["bench", "--threads", "0"], 2, ("threads", "0")),
    C("bench --repeats 0", "config", lambda x: ["bench", "--repeats", "0"], 2, ("repeats", "0")),
    C("demo --epochs 0", "config", lambda x: ["demo", "--epochs", "0"], 2, ("--epochs", "0")),
    C("export --opset 3", "config", lambda x: ["export", "--checkpoint", str(x.ckpt), str(x.root / "o.onnx"), "--opset", "3"], 2, ("opset", "3")),
    C("export --opset 999", "config", lambda x: ["export", "--checkpoint", str(x.ckpt), str(x.root / "o.onnx"), "--opset", "999"], 2, ("opset", "999")),
    C("resume never on a run", "config", lambda x: train_args(x.ckpt.parent, "--resume", "never"), 2, ("already holds a run",)),
]  # fmt: skip

OUTCOMES: Counter[str] = Counter()
# The generated suite's totals: table -> outcome -> count (see test_zzz_suite_totals).
TOTALS: dict[str, Counter[str]] = defaultdict(Counter)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_cli_case(case: Case, files: Files, capsys: pytest.CaptureFixture[str]) -> None:
    if case.category == "device" and "cuda" in " ".join(case.argv(files)):
        if torch.cuda.is_available():
            pytest.skip("this machine has a CUDA GPU")
    try:
        code = cli.main(case.argv(files))
    except BaseException:
        OUTCOMES["traceback"] += 1
        raise
    captured = capsys.readouterr()
    err = captured.err
    lines = [line for line in err.splitlines() if line.startswith("dsntpose")]
    if "Traceback" in err or "Traceback" in captured.out:
        OUTCOMES["traceback"] += 1
        TOTALS["cli table"]["traceback"] += 1
    elif code == 0:
        OUTCOMES["silent"] += 1
        TOTALS["cli table"]["silent"] += 1
    elif lines and "internal error" not in lines[-1]:
        OUTCOMES["clean"] += 1
        TOTALS["cli table"]["clean error"] += 1
    else:
        OUTCOMES["unclean"] += 1
        TOTALS["cli table"]["internal error"] += 1
    assert "Traceback" not in err + captured.out
    assert code == case.code, err[-2000:]
    assert lines, err[-2000:]
    last = lines[-1]
    assert "internal error" not in last
    assert len([line for line in err.splitlines() if line.startswith("dsntpose: error")]) <= 1
    for word in case.words:
        assert word in last, last
    if case.check is not None:
        case.check(files)


def test_zz_reliability_counts() -> None:
    """The figures of docs/reliability.md (run with -s to see them)."""
    if sum(OUTCOMES.values()) < len(CASES):
        pytest.skip("the table did not run in full in this session")
    print(
        f"\nreliability: {len(CASES)} cases, {OUTCOMES['clean']} clean one-line errors, "
        f"{OUTCOMES['traceback']} tracebacks, {OUTCOMES['silent']} silent results, "
        f"{OUTCOMES['unclean']} unclear messages"
    )
    assert len(CASES) >= 40
    assert OUTCOMES["traceback"] == OUTCOMES["silent"] == OUTCOMES["unclean"] == 0


# ---- checkpoints: finite only, atomic, verified on resume ------------------------------------


def test_checkpoint_io_refuses_nonfinite_tensors_and_names_no_bad_file(tmp_path: Path) -> None:
    from dsntpose.training import SafeCheckpointIO, TrainingDiverged

    io_ = SafeCheckpointIO()
    good = {"global_step": 3, "state_dict": {"model.w": torch.ones(2)}}
    io_.save_checkpoint(good, tmp_path / "last.ckpt")
    assert io_.good == {tmp_path / "last.ckpt": 3}
    bad = {"global_step": 4, "state_dict": {"model.bn.running_var": torch.tensor([1.0, math.inf])}}
    with pytest.raises(TrainingDiverged, match=r"bn\.running_var.*last\.ckpt was not written"):
        io_.save_checkpoint(bad, tmp_path / "last.ckpt")
    saved = torch.load(tmp_path / "last.ckpt", weights_only=True)
    assert saved["global_step"] == 3  # the good file is untouched
    # the weights of step 3 gave a NaN loss: last.ckpt holds them, so it is moved, not named
    message = io_.kept(tmp_path, 3)
    assert "moved to last.ckpt.diverged" in message and "no checkpoint verified" in message
    assert not (tmp_path / "last.ckpt").exists()


def test_a_full_disk_leaves_the_previous_checkpoint_whole(tmp_path: Path, monkeypatch) -> None:
    from dsntpose import checkpoint as checkpoint_module
    from dsntpose.training import SafeCheckpointIO

    io_ = SafeCheckpointIO()
    path = tmp_path / "best.ckpt"
    io_.save_checkpoint({"global_step": 1, "state_dict": {"model.w": torch.ones(3)}}, path)
    before = path.read_bytes()
    real_save = torch.save

    def full_disk(obj, f, *args, **kwargs):
        buffer = io.BytesIO()
        real_save(obj, buffer)
        f.write(buffer.getvalue()[:100])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint_module.torch, "save", full_disk)
    with pytest.raises(OSError, match=r"could not write .*best\.ckpt: No space left"):
        io_.save_checkpoint({"global_step": 2, "state_dict": {"model.w": torch.zeros(3)}}, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.ckpt"]  # no temporary left


def test_a_truncated_best_checkpoint_is_set_aside(tmp_path: Path, capsys) -> None:
    from dsntpose.training.run_folder import _set_aside_damaged, _whole

    path = tmp_path / "best.ckpt"
    torch.save({"x": torch.ones(1000)}, path)
    assert _whole(path)
    path.write_bytes(path.read_bytes()[:500])
    assert not _whole(path)
    _set_aside_damaged(path)
    assert not path.exists() and (tmp_path / "best.ckpt.damaged").is_file()
    assert "truncated or damaged" in capsys.readouterr().err


# ---- one run per folder, and the CSV log across a resume ---------------------------------


def test_a_second_run_on_a_locked_folder_is_refused(tmp_path: Path, capsys) -> None:
    from dsntpose.training import run_lock

    out = tmp_path / "run"
    out.mkdir()
    with run_lock(out):
        assert cli.main(train_args(out)) == 1
        err = capsys.readouterr().err
        assert "Traceback" not in err
        line = err.strip().splitlines()[-1]
        assert "is in use by another run" in line and "pid" in line and "host" in line
    assert not (out / "config.yaml").exists() and not (out / "last.ckpt").exists()


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_resume_appends_to_the_csv_log(files: Files, tmp_path: Path) -> None:
    import shutil

    out = tmp_path / "run"
    shutil.copytree(files.ckpt.parent, out)
    metrics = out / "logs" / "csv" / "metrics.csv"
    before = _csv_rows(metrics)
    assert before
    assert cli.main(train_args(out, "--train.epochs", "2")) == 0
    after = _csv_rows(metrics)
    assert after[: len(before)] == before  # the history is kept ...
    assert len(after) > len(before)  # ... and the second epoch appended
    epochs = {row["epoch"] for row in after if row.get("epoch")}
    assert {"0", "1"} <= epochs
    from dsntpose.viz import plot_training_curves

    figure = plot_training_curves(out / "logs" / "csv")
    axis = figure.axes[0]
    steps = np.concatenate([line.get_xdata() for line in axis.get_lines()])
    assert steps.min() <= 1 and steps.max() >= 3  # the plot spans both epochs


# ---- downloads and archives --------------------------------------------------------------


class _Response(io.BytesIO):
    def __init__(self, body: bytes, length: int | None) -> None:
        super().__init__(body)
        self.headers = {} if length is None else {"Content-Length": str(length)}


def test_a_short_download_is_never_kept(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(
        download.urllib.request, "urlopen", lambda url, timeout: _Response(b"x" * 100, 1000)
    )
    dest = tmp_path / "lsp_dataset.zip"
    with pytest.raises(download.DownloadError, match="cut short: 100 of 1000 bytes"):
        download._download("http://127.0.0.1/lsp_dataset.zip", dest)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(
        download.urllib.request, "urlopen", lambda url, timeout: _Response(b"y" * 10, 10)
    )
    download._download("http://127.0.0.1/lsp_dataset.zip", dest)
    assert dest.read_bytes() == b"y" * 10


def test_a_half_downloaded_zip_is_not_reused(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "lsp_dataset.zip").write_bytes(b"PK\x03\x04 half")
    calls = []

    def fake(url: str, dest: Path) -> None:
        calls.append(url)
        raise download.DownloadError("offline")

    monkeypatch.setattr(download, "_download", fake)
    with pytest.raises(download.DownloadError):
        download.fetch_lsp(tmp_path)
    assert calls and (tmp_path / "lsp_dataset.zip.unverified").is_file()


def test_zip_members_are_capped_and_only_manifest_files_extracted(
    tmp_path: Path, monkeypatch
) -> None:
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("joints.mat", b"\0" * 100_000)
        zf.writestr("other.bin", b"\0" * 100_000)
    monkeypatch.setattr(download, "MAX_MEMBER_BYTES", 50_000)
    with pytest.raises(ValueError, match="declares 100000 bytes"):
        download._unpack(archive, tmp_path / "r", {"joints.mat": "0" * 64})
    assert not (tmp_path / "r" / "joints.mat").exists()
    monkeypatch.setattr(download, "MAX_MEMBER_BYTES", 1 << 20)
    monkeypatch.setattr(download, "MAX_TOTAL_BYTES", 50_000)
    with pytest.raises(ValueError, match="would unpack to 100000 bytes"):
        download._unpack(archive, tmp_path / "r", {"joints.mat": "0" * 64})
    monkeypatch.setattr(download, "MAX_TOTAL_BYTES", 1 << 20)
    assert download._unpack(archive, tmp_path / "r", {"joints.mat": "0" * 64}) == 1
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["joints.mat"]


def test_a_root_that_fails_verification_is_marked_then_cleared(tmp_path: Path) -> None:
    import hashlib

    good = {"joints.mat": b"j", "images/im0001.jpg": b"i"}
    manifest = tmp_path / "m.sha256"
    manifest.write_text("".join(f"{hashlib.sha256(v).hexdigest()}  {k}\n" for k, v in good.items()))
    broken = tmp_path / "broken.zip"
    with zipfile.ZipFile(broken, "w") as zf:
        zf.writestr("joints.mat", b"J")
        zf.writestr("images/im0001.jpg", b"i")
    root = tmp_path / "lsp"
    with pytest.raises(ValueError, match="1 of 2 files failed verification"):
        download.fetch_lsp(root, broken, manifest=manifest)
    assert (root / download.UNVERIFIED).is_file() and not (root / "joints.mat").exists()
    fixed = tmp_path / "fixed.zip"
    with zipfile.ZipFile(fixed, "w") as zf:
        for k, v in good.items():
            zf.writestr(k, v)
    download.fetch_lsp(root, fixed, manifest=manifest)
    assert not (root / download.UNVERIFIED).exists() and (root / "joints.mat").read_bytes() == b"j"


# ---- numbers that must not be silently wrong ---------------------------------------------


def test_pck_leaves_out_people_without_a_usable_norm_size() -> None:
    from dsntpose.metrics import PCKMetric

    metric = PCKMetric(2, threshold=0.5)
    target = torch.zeros(4, 2, 2)
    preds = target.clone()
    mask = torch.ones(4, 2)
    metric.update(preds, target, mask, torch.tensor([10.0, math.nan, 0.0, -1.0]))
    result = metric.compute()
    assert metric.total.tolist() == [1, 1]
    assert float(result["total"]) == 100.0


def _bearpaw(records: int = 2, **changes) -> list[dict]:
    rows = []
    for i in range(records):
        row = {
            "img_paths": f"{i:09d}.jpg",
            "isValidation": 0.0,
            "objpos": [100.0, 100.0],
            "scale_provided": 1.5,
            "joint_self": [[50.0 + j, 60.0, 1.0] for j in range(16)],
            "annolist_index": i + 1,
            "people_index": 1,
        }
        rows.append(row)
    for key, value in changes.items():
        rows[1][key] = value
    return rows


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"scale_provided": 0.0}, "record 1 has a scale that is not a positive number"),
        ({"scale_provided": -1.0}, "record 1 has a scale that is not a positive number"),
        ({"scale_provided": math.nan}, "record 1 has a scale"),
        ({"objpos": [math.nan, 3.0]}, "record 1 has a centre that is not finite"),
        (
            {"joint_self": [[math.nan, 60.0, 1.0]] + [[5.0, 6.0, 1.0]] * 15},
            "record 1 has a joint that is NaN or inf",
        ),
    ],
)
def test_read_mpii_json_refuses_bad_numbers(tmp_path: Path, change, message) -> None:
    from dsntpose.data.mpii import read_mpii_json

    path = tmp_path / "a.json"
    path.write_text(json.dumps(_bearpaw(**change)))
    with pytest.raises(ValueError, match=message):
        read_mpii_json(path)
    path.write_text(json.dumps(_bearpaw()))
    assert len(read_mpii_json(path)) == 2


def test_onnx_parity_refuses_a_model_with_nan_outputs(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from dsntpose.config import ModelConfig
    from dsntpose.export import OnnxParityError, check_parity, export_onnx
    from dsntpose.model import build_model

    cfg = ModelConfig(backbone="resnet18", output_stride=32, joints="lsp", input_size=64)
    model = build_model(cfg).eval()
    path = export_onnx(model, tmp_path / "m.onnx", config=cfg, check=False)
    with torch.no_grad():
        next(model.head.parameters()).fill_(math.nan)
    with pytest.raises(OnnxParityError, match="non-finite"):
        check_parity(model, path)
    with pytest.raises(ValueError, match="opset: 999 is not supported"):
        export_onnx(model, tmp_path / "n.onnx", config=cfg, opset=999)


# =============================================================================================
# The generated suite of issue 27: reader x corruption, config key x value, command x misuse,
# fault x phase. Every row ends in one of OUTCOMES_27; only "clean error" and "handled" pass.
# Rows for the inference branch's classes (predict, images, boxes, export) carry that class in
# their ``issue``; with that branch merged they pass like the others.
# =============================================================================================

import os  # noqa: E402
import signal  # noqa: E402

OUTCOMES_27 = (
    "traceback",
    "internal error",
    "silent",
    "hang",
    "security",
    "clean error",
    "handled",
)
HANG_SECONDS = 20


class _Hang(BaseException):
    """Raised by the alarm: the row ran past HANG_SECONDS."""


@dataclass(frozen=True)
class Row:
    """One generated case.

    ``argv(env)`` runs ``cli.main``; ``call(env)`` runs Python code instead. ``code``: the exit
    status wanted (None: any non-zero); 0 means the row must succeed ("handled"). ``words(env)``
    must appear in the last ``dsntpose`` line (or, for ``call``, in the exception's message).
    ``check(env)`` is a post-condition: a failure there is ``security`` when ``security`` is set
    (a write or read outside its root, an unbounded size), otherwise ``silent``.
    """

    table: str
    name: str
    issue: str  # the class of issue 27 it belongs to
    argv: Callable[[Env], list[str]] | None = None
    call: Callable[[Env], object] | None = None
    code: int | None = None
    words: Callable[[Env], tuple[str, ...]] = lambda env: ()
    check: Callable[[Env], None] | None = None
    security: bool = False
    raises: tuple[type[BaseException], ...] = (ValueError, OSError)
    marks: tuple = ()
    timeout: int = HANG_SECONDS


@dataclass
class Env:
    """The module's inputs (the table's ``Files``) and a fresh folder per row."""

    fx: Files
    tmp: Path

    def __getitem__(self, name: str) -> str:
        return self.fx[name]


@pytest.fixture
def env(files: Files, tmp_path: Path) -> Env:
    return Env(files, tmp_path)


def _run_row(row: Row, env: Env, capsys: pytest.CaptureFixture[str]) -> tuple[str, str]:
    """Run ``row``; return ``(outcome, detail)``."""

    def alarm(*_: object) -> None:
        raise _Hang

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(row.timeout)
    error: BaseException | None = None
    code: int | None = None
    try:
        if row.argv is not None:
            code = cli.main(row.argv(env))
        else:
            assert row.call is not None
            try:
                row.call(env)
                code = 0
            except row.raises as err:
                error = err
                code = 2
    except _Hang:
        return "hang", f"still running after {row.timeout} s"
    except BaseException as err:
        return "traceback", f"{type(err).__name__}: {err}"
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    captured = capsys.readouterr()
    text = captured.err + captured.out
    if "Traceback" in text:
        return "traceback", text[-1500:]
    if error is not None:
        last = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    else:
        lines = [line for line in captured.err.splitlines() if line.startswith("dsntpose")]
        last = lines[-1] if lines else ""
    if "internal error" in last:
        return "internal error", last
    if row.check is not None:
        try:
            row.check(env)
        except AssertionError as err:
            return ("security" if row.security else "silent"), f"check failed: {err} ({last})"
    if row.code == 0:
        if code != 0:
            return "internal error" if not last else "silent", f"exit {code}: {last}"
        missing = [word for word in row.words(env) if word not in text]
        if missing:
            return "silent", f"succeeded but never said {missing}: {text[-300:]}"
        return "handled", last
    if code == 0:
        return "silent", f"exit 0 on bad input: {text[-500:]}"
    if row.code is not None and code != row.code:
        return "internal error", f"exit {code}, wanted {row.code}: {last}"
    if not last:
        return "internal error", f"no one-line message: {text[-500:]}"
    missing = [word for word in row.words(env) if word not in last]
    if missing:
        return "internal error", f"message lacks {missing}: {last}"
    return "clean error", last


def _param(row: Row) -> object:
    return pytest.param(row, id=f"{row.table}: {row.name}", marks=list(row.marks))


# ---- inputs: the corruptions a reader may meet ------------------------------------------------


def _corrupt(kind: str, path: Path, good: bytes | None = None) -> None:
    """Leave ``path`` in the state ``kind`` names."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "missing":
        return
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "folder":
        path.mkdir()
    elif kind == "text":
        path.write_bytes(b"hello, this is not that kind of file\n")
    elif kind == "binary":
        path.write_bytes(np.random.default_rng(27).bytes(4096))
    elif kind == "truncated":
        path.write_bytes(
            (good or b"PK\x03\x04" + b"\0" * 64)[: max(1, len(good or b"x" * 68) // 3)]
        )
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "dev-zero link":
        path.symlink_to("/dev/zero")
    elif kind == "dangling link":
        path.symlink_to(path.parent / "nowhere-at-all")
    else:
        raise AssertionError(kind)


CORRUPTIONS = (
    "missing",
    "empty",
    "folder",
    "text",
    "binary",
    "truncated",
    "fifo",
    "dev-zero link",
    "dangling link",
)


@dataclass(frozen=True)
class Reader:
    """A file some command reads: ``argv(env, path_or_folder)``; ``name`` is the file's name
    where the command takes a folder (``folder=True``: the corrupted file is put inside)."""

    label: str
    issue: str
    file: str
    argv: Callable[[Env, Path], list[str]]
    code: int | None = 2
    folder: bool = False
    good: Callable[[Env], bytes] | None = None
    prepare: Callable[[Path], None] | None = None


def _ckpt_bytes(env: Env) -> bytes:
    return env.fx.ckpt.read_bytes()


def _lsp_folder(root: Path) -> None:
    (root / "images").mkdir(parents=True, exist_ok=True)


READERS = (
    Reader("predict --checkpoint", "checkpoint", "c.ckpt", lambda e, p: ["predict", e["img.png"], "--checkpoint", str(p)], good=_ckpt_bytes),
    Reader("eval --checkpoint", "checkpoint", "c.ckpt", lambda e, p: ["eval", "--checkpoint", str(p)], good=_ckpt_bytes),
    Reader("export --checkpoint", "checkpoint", "c.ckpt", lambda e, p: ["export", "--checkpoint", str(p), str(e.tmp / "o.onnx")], good=_ckpt_bytes),
    Reader("train --model.weights", "checkpoint", "w.pt", lambda e, p: train_args(e.tmp / "run", "--model.weights", str(p)), good=_ckpt_bytes),
    Reader("train --resume", "resume", "last.ckpt", lambda e, p: train_args(e.tmp / "run", "--resume", str(p)), good=_ckpt_bytes),
    Reader("train --train.init_from", "checkpoint", "i.ckpt", lambda e, p: train_args(e.tmp / "run", "--train.init_from", str(p)), good=_ckpt_bytes),
    Reader("train --config", "hang", "c.yaml", lambda e, p: ["train", "--config", str(p)]),
    Reader("eval --config", "hang", "c.yaml", lambda e, p: ["eval", "--config", str(p)]),
    Reader("eval --preds", "silent numbers", "p.h5", lambda e, p: ["eval", "--preds", str(p)]),
    Reader("eval --gt", "silent numbers", "gt.mat", lambda e, p: ["eval", "--preds", e["preds.h5"], "--gt", str(p)]),
    Reader("data lsp --zip", "outside the root", "lsp_dataset.zip", lambda e, p: ["data", "lsp", "--data.root", str(e.tmp / "root"), "--zip", str(p)]),
    Reader("data mpii --from_dir", "outside the root", "mpii_annotations.json.gz", lambda e, p: ["data", "mpii", "--data.root", str(e.tmp / "root"), "--from_dir", str(p)], folder=True),
    Reader("train lsp joints.mat", "silent numbers", "joints.mat", lambda e, p: train_args(e.tmp / "run", "--data.dataset", "lsp", "--data.root", str(p), "--train.max_steps", "1"), folder=True, prepare=_lsp_folder),
    Reader("train coco keypoints file", "silent numbers", "person_keypoints.json", lambda e, p: train_args(e.tmp / "run", "--data.dataset", "coco", "--data.root", str(p), "--train.max_steps", "1")),
    Reader("predict image", "hang", "im.jpg", lambda e, p: ["predict", str(p), "--checkpoint", str(e.fx.ckpt)], code=None),
    Reader("predict --boxes", "hang", "boxes.json", lambda e, p: ["predict", e["img.png"], "--checkpoint", str(e.fx.ckpt), "--boxes", str(p)], code=None),
)  # fmt: skip


def _reader_row(reader: Reader, kind: str) -> Row:
    def argv(env: Env) -> list[str]:
        base = env.tmp / "in"
        base.mkdir(exist_ok=True)
        if reader.folder:
            if reader.prepare is not None:
                reader.prepare(base)
            _corrupt(kind, base / reader.file, reader.good(env) if reader.good else None)
            return reader.argv(env, base)
        path = base / reader.file
        _corrupt(kind, path, reader.good(env) if reader.good else None)
        return reader.argv(env, path)

    def no_output(env: Env) -> None:  # nothing written outside the row's folder, no partial
        assert not list((env.tmp / "root").glob("*.part")) if (env.tmp / "root").exists() else True

    return Row(
        "reader x corruption", f"{reader.label} / {kind}",
        "hang" if kind == "fifo" else ("outside the root" if kind == "dev-zero link" else reader.issue),
        argv=argv, code=reader.code, check=no_output,
        security=kind == "dev-zero link", timeout=8 if kind == "fifo" else HANG_SECONDS,
    )  # fmt: skip


READER_ROWS = [_reader_row(r, k) for r in READERS for k in CORRUPTIONS]


# ---- config key x value: every number of the run config, through RunConfig.from_dict ------


def _config_value_rows() -> list[Row]:
    import dataclasses as dc
    import typing

    from dsntpose import config as c

    rows = []
    for section, cls in zip(
        c.SECTIONS, (c.ModelConfig, c.LossConfig, c.DataConfig, c.OptimConfig, c.TrainConfig)
    ):
        hints = typing.get_type_hints(cls)
        for f in dc.fields(cls):
            kinds = typing.get_args(hints[f.name]) or (hints[f.name],)
            if str in kinds or bool in kinds or not ({int, float} & set(kinds)):
                continue
            values = [("NaN", math.nan), ("-1", -1), ("text", "1e-3"), ("inf", math.inf)]
            if float not in kinds:
                values[-1] = ("10**12", 10**12)  # a count nothing could allocate
            for label, value in values:

                def call(env: Env, section=section, key=f.name, value=value) -> None:
                    base = {"model": {"joints": "lsp"}}
                    base.setdefault(section, {})[key] = value
                    c.RunConfig.from_dict(base)

                rows.append(
                    Row("config key x value", f"{section}.{f.name} = {label}", "silent numbers",
                        call=call, words=lambda env, k=f"{section}.{f.name}": (k,))
                )  # fmt: skip
    return rows


# Values that are legal for a key (a row for them expects success instead).
LEGAL = {
    "train.devices = -1",  # all devices
    "optim.min_lr_ratio = 1e300",  # refused as a probability: kept as an error row
}


def _legal_fix(rows: list[Row]) -> list[Row]:
    out = []
    for row in rows:
        if row.name in ("train.devices = -1",):
            continue
        out.append(row)
    return out


CONFIG_ROWS = _legal_fix(_config_value_rows())


# ---- command x misuse ------------------------------------------------------------------------


def _same_file_kept(name: str) -> Callable[[Env], None]:
    def check(env: Env) -> None:
        path = Path(env[name])
        assert path.read_bytes()[:4] in (b"\x89PNG", b"PK\x03\x04"), f"{path} was overwritten"

    return check


def _copy_img(env: Env) -> Path:
    import shutil

    path = env.tmp / "a.png"
    shutil.copy(env["img.png"], path)
    return path


def _predict_onto_input(env: Env) -> list[str]:
    img = _copy_img(env)
    return ["predict", str(img), "--checkpoint", str(env.fx.ckpt), "--output", str(img)]


def _img_kept(env: Env) -> None:
    assert (env.tmp / "a.png").read_bytes()[:4] == b"\x89PNG", "the input image was overwritten"


def _export_onto_checkpoint(env: Env) -> list[str]:
    import shutil

    ckpt = env.tmp / "w.pt"
    shutil.copy(env.fx.ckpt, ckpt)
    return ["export", "--checkpoint", str(ckpt), str(ckpt)]


def _ckpt_kept(env: Env) -> None:
    assert (env.tmp / "w.pt").read_bytes()[:4] == b"PK\x03\x04", "the checkpoint was overwritten"


def _foreign_config(env: Env) -> list[str]:
    out = env.tmp / "mine"
    out.mkdir()
    (out / "config.yaml").write_text("my: own file\n")
    return train_args(out)


def _foreign_kept(env: Env) -> None:
    assert (env.tmp / "mine" / "config.yaml").read_text() == "my: own file\n"


def _alias_bomb(env: Env) -> list[str]:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]")
    path = env.tmp / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n")
    return ["train", "--config", str(path)]


def _dup_keys(env: Env) -> list[str]:
    path = env.tmp / "dup.yaml"
    path.write_text("optim:\n  lr: 0.1\n  lr: 0.001\n")
    return ["train", "--config", str(path)]


def _fifo_config(env: Env) -> list[str]:
    path = env.tmp / "pipe.yaml"
    os.mkfifo(path)
    return ["train", "--config", str(path)]


def _hourglass_ckpt(env: Env) -> list[str]:
    state = torch.load(env.fx.ckpt, map_location="cpu", weights_only=True)
    state["hyper_parameters"]["config"]["model"].update(backbone="hourglass", num_stacks=1000)
    path = env.tmp / "hg.ckpt"
    torch.save(state, path)
    return ["eval", "--checkpoint", str(path)]


def _verified_lsp(env: Env) -> list[str]:
    import hashlib

    root = env.tmp / "lsp"
    (root / "images").mkdir(parents=True)
    (root / "joints.mat").write_bytes(b"j")
    (root / "images" / "im0001.jpg").write_bytes(b"i")
    manifest = {"joints.mat": b"j", "images/im0001.jpg": b"i"}
    text = "".join(f"{hashlib.sha256(v).hexdigest()}  {k}\n" for k, v in manifest.items())
    env.tmp.joinpath("m.sha256").write_text(text)
    return ["data", "lsp", "--data.root", str(root)]


def _no_download(monkeypatch: pytest.MonkeyPatch, env: Env) -> None:
    def refuse(url: str, dest: Path) -> None:
        raise AssertionError(f"downloaded {url} again")

    monkeypatch.setattr(download, "_download", refuse)
    real = download.read_manifest
    monkeypatch.setattr(
        download, "read_manifest", lambda path=None, name="": real(env.tmp / "m.sha256")
    )


def _nan_model_ckpt(env: Env) -> list[str]:
    state = torch.load(env.fx.ckpt, map_location="cpu", weights_only=True)
    # finite weights, NaN outputs: a negative BatchNorm variance (sqrt of it is NaN)
    key = next(k for k in state["state_dict"] if k.endswith("running_var"))
    state["state_dict"][key] = -torch.ones_like(state["state_dict"][key])
    path = env.tmp / "nanout.ckpt"
    torch.save(state, path)
    return ["eval", "--checkpoint", str(path)]


MISUSE_ROWS = [
    Row("command x misuse", "predict onto its own input image", "data destroyed", argv=_predict_onto_input, check=_img_kept),
    Row("command x misuse", "export --checkpoint w.pt w.pt", "data destroyed", argv=_export_onto_checkpoint, check=_ckpt_kept),
    Row("command x misuse", "train.out_dir holds the user's config.yaml", "data destroyed", argv=_foreign_config, words=lambda e: ("not a dsntpose run folder",), check=_foreign_kept),
    Row("command x misuse", "YAML alias bomb as --config", "outside the root", argv=_alias_bomb, words=lambda e: ("aliases",), security=True),
    Row("command x misuse", "duplicate YAML keys", "silent numbers", argv=_dup_keys, words=lambda e: ("'lr'", "twice")),
    Row("command x misuse", "named pipe as --config", "hang", argv=_fifo_config, words=lambda e: ("not a regular file",)),
    Row("command x misuse", "checkpoint asking for a 1000-stack hourglass", "outside the root", argv=_hourglass_ckpt, words=lambda e: ("num_stacks", "1000")),
    Row("command x misuse", "train --train.num_nodes 2 without a launcher", "hang", argv=lambda e: train_args(e.tmp / "r", "--train.num_nodes", "2"), words=lambda e: ("train.num_nodes", "launcher")),
    Row("command x misuse", "train_subset above the data size", "silent numbers", argv=lambda e: train_args(e.tmp / "r", "--data.train_subset", "1000"), words=lambda e: ("data.train_subset", "1000", "32")),
    Row("command x misuse", "val_subset above the data size", "silent numbers", argv=lambda e: train_args(e.tmp / "r", "--data.val_subset", "1000"), words=lambda e: ("data.val_subset", "16")),
    Row("command x misuse", "bench --threads 100000", "first use", argv=lambda e: ["bench", "--threads", "100000"], words=lambda e: ("threads", "100000")),
    Row("command x misuse", "bench --threads -1", "first use", argv=lambda e: ["bench", "--threads", "-1"], words=lambda e: ("threads",)),
    Row("command x misuse", "bench --models [nosuch-os8]", "first use", argv=lambda e: ["bench", "--models", "[nosuch-os8]"], words=lambda e: ("nosuch",)),
    Row("command x misuse", "train --model.num_stacks 1000", "outside the root", argv=lambda e: train_args(e.tmp / "r", "--model.backbone", "hourglass", "--model.num_stacks", "1000"), words=lambda e: ("model.num_stacks",)),
    Row("command x misuse", "train --model.input_size 100000", "outside the root", argv=lambda e: train_args(e.tmp / "r", "--model.input_size", "100000"), words=lambda e: ("model.input_size",)),
    Row("command x misuse", "train --train.max_steps 0", "first use", argv=lambda e: train_args(e.tmp / "r", "--train.max_steps", "0"), words=lambda e: ("train.max_steps",)),
    Row("command x misuse", "train --train.seed -1", "silent numbers", argv=lambda e: train_args(e.tmp / "r", "--train.seed", "-1"), words=lambda e: ("train.seed",)),
    Row("command x misuse", "train --optim.lr nan", "silent numbers", argv=lambda e: train_args(e.tmp / "r", "--optim.lr", "nan"), words=lambda e: ("optim.lr",)),
    Row("command x misuse", "train --loss.sigma inf", "silent numbers", argv=lambda e: train_args(e.tmp / "r", "--loss.sigma", "inf"), words=lambda e: ("loss.sigma",)),
    Row("command x misuse", "train --optim.schedule sgd", "first use", argv=lambda e: train_args(e.tmp / "r", "--optim.schedule", "sgd"), words=lambda e: ("optim.schedule",)),
    Row("command x misuse", "train --train.out_dir ''", "first use", argv=lambda e: ["train", "--config", str(SMOKE), "--train.out_dir", ""], words=lambda e: ("train.out_dir",)),
    Row("command x misuse", "eval --batch_size 0", "first use", argv=lambda e: ["eval", "--checkpoint", str(e.fx.ckpt), "--batch_size", "0"], words=lambda e: ("batch_size",)),
    Row("command x misuse", "eval --limit -1", "first use", argv=lambda e: ["eval", "--checkpoint", str(e.fx.ckpt), "--limit", "-1"], words=lambda e: ("limit",)),
    Row("command x misuse", "eval --split nosuch", "first use", argv=lambda e: ["eval", "--checkpoint", str(e.fx.ckpt), "--split", "nosuch"], words=lambda e: ("split",)),
    Row("command x misuse", "demo --minutes -1", "first use", argv=lambda e: ["demo", "--minutes", "-1"], words=lambda e: ("minutes",)),
    Row("command x misuse", "demo --minutes nan", "first use", argv=lambda e: ["demo", "--minutes", "nan"], words=lambda e: ("minutes",)),
    Row("command x misuse", "export --opset -1", "first use", argv=lambda e: ["export", "--checkpoint", str(e.fx.ckpt), str(e.tmp / "o.onnx"), "--opset", "-1"], words=lambda e: ("opset",)),
    Row("command x misuse", "data nosuch", "first use", argv=lambda e: ["data", "nosuch"]),
    Row("command x misuse", "unknown subcommand", "first use", argv=lambda e: ["nosuch"]),
    Row("command x misuse", "unknown train option", "first use", argv=lambda e: ["train", "--model.nosuch", "1"], words=lambda e: ("nosuch",)),
    Row("command x misuse", "predict --margin 1e-300", "silent numbers", argv=lambda e: ["predict", e["img.png"], "--checkpoint", str(e.fx.ckpt), "--margin", "1e-300"], words=lambda e: ("margin",)),
    Row("command x misuse", "predict --box with a side of 1e-300", "silent numbers", argv=lambda e: ["predict", e["img.png"], "--checkpoint", str(e.fx.ckpt), "--box", "[10,10,1e-300,1e-300]"], words=lambda e: ("box",)),
    Row("command x misuse", "eval of a model whose outputs are NaN", "silent numbers", argv=_nan_model_ckpt, words=lambda e: ("not finite",)),
]  # fmt: skip

HANDLED_ROWS = [
    Row(
        "command x misuse",
        "data lsp on a complete, verified folder",
        "first use",
        argv=_verified_lsp,
        code=0,
    ),
]


@pytest.mark.parametrize("row", [_param(r) for r in READER_ROWS + CONFIG_ROWS + MISUSE_ROWS])
def test_generated_row(row: Row, env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    outcome, detail = _run_row(row, env, capsys)
    TOTALS[row.table][outcome] += 1
    assert outcome in ("clean error", "handled"), f"{outcome}: {detail}"


@pytest.mark.parametrize("row", [_param(r) for r in HANDLED_ROWS])
def test_generated_handled_row(
    row: Row, env: Env, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_download(monkeypatch, env)
    outcome, detail = _run_row(row, env, capsys)
    TOTALS[row.table][outcome] += 1
    assert outcome == "handled", f"{outcome}: {detail}"


# ---- fault x phase: a full disk, torch's writer failing, a planted link, a killed writer ----


def _phase_writers() -> dict[str, tuple[str, Callable[[Path], object], bool]]:
    """phase -> (file name, write(target), whether torch.save writes it)."""
    from dsntpose.checkpoint import atomic_torch_save
    from dsntpose.config import RunConfig
    from dsntpose.mpii_files import write_predictions
    from dsntpose.training import SafeCheckpointIO, save_config

    def unpack(target: Path) -> None:
        archive = target.parent / "a.zip"
        if not archive.exists():
            with zipfile.ZipFile(archive, "w") as zf:
                zf.writestr("joints.mat", b"new joints")
        download._unpack(archive, target.parent, {"joints.mat": "0" * 64})

    def fetch(target: Path) -> None:
        import unittest.mock

        with unittest.mock.patch.object(
            download.urllib.request, "urlopen", lambda url, timeout: _Response(b"zip" * 10, 30)
        ):
            download._download("http://127.0.0.1/lsp_dataset.zip", target)

    return {
        "checkpoint write": ("last.ckpt", lambda t: SafeCheckpointIO().save_checkpoint({"global_step": 1, "state_dict": {"model.w": torch.ones(2)}}, t), True),
        "config.yaml write": ("config.yaml", lambda t: save_config(RunConfig(), t), False),
        "torch file write": ("w.pt", lambda t: atomic_torch_save({"x": torch.ones(2)}, t), True),
        "zip member unpack": ("joints.mat", unpack, False),
        "download": ("lsp_dataset.zip", fetch, False),
        "eval --output .h5": ("p.h5", lambda t: write_predictions(t, np.ones((3, 16, 2))), False),
        "eval --output .mat": ("p.mat", lambda t: write_predictions(t, np.ones((3, 16, 2))), False),
    }  # fmt: skip


PHASES = tuple(_phase_writers())
FAULTS = ("disk full", "torch writer fails on a full disk", "link at the temporary name")


def _fault_row(phase: str, fault: str) -> Row:
    import unittest.mock

    def call(env: Env) -> None:
        name, write, _ = _phase_writers()[phase]
        folder = env.tmp / "out"
        folder.mkdir()
        target = folder / name
        target.write_bytes(b"previous whole file")
        outside = env.tmp / "outside.txt"
        outside.write_bytes(b"not yours")
        patches: list = []
        if fault == "disk full":

            def full(fd: int) -> None:
                raise OSError(errno.ENOSPC, "No space left on device")

            patches.append(unittest.mock.patch("os.fsync", full))
        elif fault == "torch writer fails on a full disk":

            def enforce(*args: object, **kwargs: object) -> None:
                raise RuntimeError(
                    "[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0"
                )

            class NoRoom:
                f_bavail, f_frsize = 0, 4096

            patches.append(unittest.mock.patch("torch.save", enforce))
            patches.append(unittest.mock.patch("os.statvfs", lambda path: NoRoom()))
        else:
            (folder / f".{name}.tmp-{os.getpid()}").symlink_to(outside)
        try:
            for patch in patches:
                patch.start()
            write(target)
        finally:
            for patch in reversed(patches):
                patch.stop()

    def check(env: Env) -> None:
        name = _phase_writers()[phase][0]
        folder = env.tmp / "out"
        assert (env.tmp / "outside.txt").read_bytes() == b"not yours", "wrote through the link"
        left = [p.name for p in folder.iterdir() if ".tmp-" in p.name or p.suffix == ".part"]
        assert not left, f"temporaries left: {left}"
        if fault != "link at the temporary name":
            assert (folder / name).read_bytes() == b"previous whole file", "previous file damaged"

    if fault == "link at the temporary name":
        return Row(
            "fault x phase",
            f"{phase} / {fault}",
            "outside the root",
            call=call,
            code=0,
            check=check,
            security=True,
        )
    words = ("disk full",)
    return Row("fault x phase", f"{phase} / {fault}", "data destroyed", call=call, words=lambda e: words, check=check)  # fmt: skip


FAULT_ROWS = [
    _fault_row(phase, fault)
    for phase in PHASES
    for fault in FAULTS
    if fault != "torch writer fails on a full disk" or _phase_writers()[phase][2]
]


def _stale_temporaries(env: Env) -> list[str]:
    out = env.tmp / "run"
    out.mkdir()
    (out / "train.lock").write_text("")
    for name in (".last.ckpt.tmp-999999", ".best.ckpt.tmp-999998", ".config.yaml.tmp-999997"):
        (out / name).write_bytes(b"x" * 1000)
    (out / f".last.ckpt.tmp-{os.getppid()}").write_bytes(b"a live writer's")
    return train_args(out, "--train.max_steps", "1")


def _stale_removed(env: Env) -> None:
    names = sorted(p.name for p in (env.tmp / "run").iterdir() if ".tmp-" in p.name)
    assert names == [f".last.ckpt.tmp-{os.getppid()}"], names


def _resume_changed(env: Env, **optim: object) -> None:
    from dsntpose.config import RunConfig
    from dsntpose.training import check_resume

    values = torch.load(env.fx.ckpt, map_location="cpu", weights_only=True)["hyper_parameters"][
        "config"
    ]
    values["optim"].update(optim)
    check_resume(env.fx.ckpt, RunConfig.from_dict(values))


def _said_applied(env: Env) -> None:  # the change is said, with the old value
    pass


def _timebudget(env: Env) -> None:
    """A demo whose budget fits 3 epochs of 1 s (milestone 2): only the last runs low."""
    import unittest.mock
    from types import SimpleNamespace

    from dsntpose import demo

    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, [2], 0.1)
    loop = SimpleNamespace(max_epochs=3)
    trainer = SimpleNamespace(
        current_epoch=0, lr_scheduler_configs=[SimpleNamespace(scheduler=sched)], fit_loop=loop
    )
    clock = [0.0]
    budget = demo.TimeBudget(seconds=3.0, final_epochs=1)
    rates = []
    with unittest.mock.patch.object(demo.time, "perf_counter", lambda: clock[0]):
        budget.on_train_start(trainer, None)  # type: ignore[arg-type]
        epoch = 0
        while epoch < loop.max_epochs and epoch < 10:
            rates.append(opt.param_groups[0]["lr"])
            clock[0] += 1.0
            trainer.current_epoch = epoch
            budget.on_train_epoch_end(trainer, None)  # type: ignore[arg-type]
            sched.step()
            epoch += 1
    assert [round(r, 6) for r in rates] == [1.0, 1.0, 0.1], f"rates per epoch {rates}"


import time  # noqa: E402

PHASE_ROWS = [
    Row("fault x phase", "kill -9 during checkpoint writes: stale temporaries removed at start", "data destroyed", argv=_stale_temporaries, code=0, check=_stale_removed),
    Row("fault x phase", "resume with a new optim.lr: applied and said", "resume", call=lambda e: _resume_changed(e, lr=5e-4), code=0),
    Row("fault x phase", "resume with a new optim.gamma: applied and said", "resume", call=lambda e: _resume_changed(e, gamma=0.5), code=0),
    Row("fault x phase", "resume with another optim.optimizer: refused", "resume", call=lambda e: _resume_changed(e, optimizer="sgd"), words=lambda e: ("optim.optimizer", "sgd")),
    Row("fault x phase", "resume with another optim.schedule: refused", "resume", call=lambda e: _resume_changed(e, schedule="cosine"), words=lambda e: ("optim.schedule",)),
    Row("fault x phase", "make demo's time budget moves the rate drop with the end", "first use", call=_timebudget, code=0, raises=()),
]  # fmt: skip


def _resume_cosine(env: Env) -> None:
    import shutil

    from dsntpose.config import RunConfig
    from dsntpose.training import fit

    class CopyAt(__import__("lightning").Callback):
        def on_train_batch_start(self, trainer, *args):  # type: ignore[no-untyped-def]
            if trainer.global_step == 3 and not (env.tmp / "k.ckpt").exists():
                shutil.copy(Path(trainer.default_root_dir) / "last.ckpt", env.tmp / "k.ckpt")

    def run(out: Path) -> RunConfig:
        values = {
            "model": {"backbone": "resnet18", "output_stride": 32, "input_size": 64, "joints": "lsp"},
            "data": {"synthetic_train": 32, "synthetic_val": 16, "batch_size": 16, "num_workers": 0},
            "optim": {"optimizer": "adam", "lr": 1e-3, "schedule": "cosine", "warmup_steps": 1, "milestones": []},
            "train": {"epochs": 2, "out_dir": str(out), "accelerator": "cpu", "devices": 1, "precision": "32-true", "ckpt_every": 1, "progress_bar": False, "vis_every": 0, "deterministic": True},
        }  # fmt: skip
        return RunConfig.from_dict(values)

    straight = fit(run(env.tmp / "a"), resume="never", extra_callbacks=[CopyAt()])
    (env.tmp / "b").mkdir()
    shutil.copy(env.tmp / "k.ckpt", env.tmp / "b" / "last.ckpt")
    resumed = fit(run(env.tmp / "b"), resume="auto")
    a = torch.load(straight.last, weights_only=True)["state_dict"]
    b = torch.load(resumed.last, weights_only=True)["state_dict"]
    differ = [k for k in a if not torch.equal(a[k], b[k])]
    assert not differ, f"{len(differ)} tensors differ after the resume"


def _ctrl_c(env: Env) -> None:
    import lightning as L

    from dsntpose.config import RunConfig
    from dsntpose.training import TrainingInterrupted, fit

    class CtrlC(L.Callback):
        def on_train_batch_start(self, trainer, *args):  # type: ignore[no-untyped-def]
            if trainer.global_step == 1:
                raise KeyboardInterrupt

    values = {"model": {"backbone": "resnet18", "output_stride": 32, "input_size": 64, "joints": "lsp"}, "data": {"synthetic_train": 32, "synthetic_val": 16, "batch_size": 16, "num_workers": 0}, "train": {"epochs": 2, "out_dir": str(env.tmp / "r"), "accelerator": "cpu", "devices": 1, "precision": "32-true", "ckpt_every": 0, "progress_bar": False, "vis_every": 0}}  # fmt: skip
    try:
        fit(RunConfig.from_dict(values), resume="never", extra_callbacks=[CtrlC()])
    except TrainingInterrupted as err:
        assert "saved at step 1" in str(err) and "resume with: dsntpose train --config" in str(err)
        raise ValueError(str(err)) from None
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _bench_quick(env: Env) -> None:
    from dsntpose.bench import run_bench

    start = time.perf_counter()
    rows = run_bench(quick=True, log=None, threads=1)
    assert any(r["model"].startswith("efficientnet_lite0") for r in rows)
    assert time.perf_counter() - start < 60, "bench --quick is not quick"


SLOW = (pytest.mark.slow,)
SLOW_ROWS = [
    Row("fault x phase", "killed at step 3 and resumed: bit-identical (cosine)", "resume", call=_resume_cosine, code=0, raises=(), marks=SLOW, timeout=300),
    Row("fault x phase", "Ctrl-C saves last.ckpt and prints the resume command", "first use", call=_ctrl_c, words=lambda e: ("saved at step 1", "resume with"), raises=(ValueError,), marks=SLOW, timeout=300),
    Row("command x misuse", "bench --quick is quick and includes EfficientNet-Lite", "first use", call=_bench_quick, code=0, raises=(), marks=SLOW, timeout=300),
    Row("command x misuse", "a warm-up longer than the run is warned about", "first use", argv=lambda e: train_args(e.tmp / "w", "--optim.schedule", "cosine", "--optim.milestones", "[]", "--optim.warmup_steps", "50", "--train.max_steps", "2"), code=0, check=None, marks=SLOW, timeout=300),
    Row("command x misuse", "train.max_steps 2 stops after two steps", "first use", argv=lambda e: train_args(e.tmp / "m", "--train.max_steps", "2", "--train.epochs", "5"), code=0, check=lambda e: None if torch.load(e.tmp / "m" / "last.ckpt", weights_only=True)["global_step"] == 2 else (_ for _ in ()).throw(AssertionError("did not stop at 2")), marks=SLOW, timeout=300),
]  # fmt: skip


# ---- the inference branch's classes (predict, images, boxes, export) and data roots ------------


def _image(env: Env, name: str, data: bytes | None = None, mode: str | None = None) -> Path:
    from PIL import Image

    folder = env.tmp / "imgs"
    folder.mkdir(exist_ok=True)
    path = folder / name
    if data is not None:
        path.write_bytes(data)
    elif mode == "I;16":
        Image.fromarray(np.full((80, 60), 300, np.uint16)).save(path)  # nearly black
    elif mode == "F":
        Image.fromarray(np.full((80, 60), 0.9, np.float32), mode="F").save(path)
    else:
        import shutil

        shutil.copy(env["img.png"], path)
    return path


def _jpeg(env: Env) -> bytes:
    import cv2

    image = (np.random.default_rng(1).random((120, 90, 3)) * 255).astype(np.uint8)
    return cv2.imencode(".jpg", image)[1].tobytes()


def _predict(env: Env, *paths: Path, extra: tuple[str, ...] = ()) -> list[str]:
    return ["predict", *map(str, paths), "--checkpoint", str(env.fx.ckpt), *extra]


def _json_out(env: Env) -> dict:
    return json.loads((env.tmp / "o.json").read_text())


def _dark_not_white(env: Env) -> None:
    from dsntpose.predictor import load_image

    pixels = load_image(env.tmp / "imgs" / "a.png")
    assert pixels.mean() < 30, f"a nearly black 16-bit image was read with mean {pixels.mean()}"


def _coco_outside(env: Env) -> list[str]:
    secret = env.tmp / "secret.jpg"
    _image(env, "x.jpg", _jpeg(env)).rename(secret)
    names = ["person"] + [f"j{i}" for i in range(13)]
    doc = {
        "images": [{"id": 1, "file_name": str(secret), "width": 90, "height": 120}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "num_keypoints": 14, "bbox": [1, 1, 80, 100], "keypoints": [10, 10, 2] * 14}],
        "categories": [{"id": 1, "name": "person", "keypoints": names, "skeleton": []}],
    }  # fmt: skip
    path = env.tmp / "root" / "kp.json"
    path.parent.mkdir()
    path.write_text(json.dumps(doc))
    return train_args(
        env.tmp / "r", "--data.dataset", "coco", "--data.root", str(path), "--train.max_steps", "1"
    )


def _predict_full_disk(env: Env) -> None:
    import unittest.mock

    out = env.tmp / "o.json"
    out.write_text("previous")

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    with unittest.mock.patch("os.fsync", full):
        code = cli.main(_predict(env, _image(env, "a.png"), extra=("--output", str(out))))
    assert code != 0, "a full disk was not reported"
    assert out.read_text() == "previous", "the previous JSON was truncated"


def _mpii_h5_names(env: Env, name: str) -> None:
    """An MPII valid.h5 whose image name is ``name``, read by the MPII dataset."""
    import h5py

    from dsntpose.data.mpii import MPII

    root = env.tmp / "mpii"
    (root / "images").mkdir(parents=True)
    (env.tmp / "secret.jpg").write_bytes(_jpeg(env))  # what '..' or an absolute name would reach
    with h5py.File(root / "valid.h5", "w") as file:
        file["imgname"] = np.array([name.encode()])
        file["center"] = np.full((1, 2), 50.0)
        file["scale"] = np.ones(1)
        file["part"] = np.full((1, 16, 2), 40.0)
        file["normalize"] = np.full(1, 30.0)
    MPII(root / "valid.h5", root / "images")


def _coco_worker(env: Env) -> list[str]:
    """A COCO keypoints file whose one image does not decode, loaded by one worker process."""
    root = env.tmp / "root"
    (root / "images").mkdir(parents=True)
    (root / "images" / "bad.jpg").write_bytes(b"this is not a JPEG file at all" * 20)
    from dsntpose.data import LSP_JOINTS

    names = list(LSP_JOINTS.names)
    doc = {
        "images": [{"id": 1, "file_name": "bad.jpg", "width": 90, "height": 120}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "num_keypoints": 14, "bbox": [1, 1, 80, 100], "keypoints": [10, 10, 2] * 14}],
        "categories": [{"id": 1, "name": "person", "keypoints": names, "skeleton": []}],
    }  # fmt: skip
    (root / "kp.json").write_text(json.dumps(doc))
    return train_args(
        env.tmp / "r", "--data.dataset", "coco", "--data.root", str(root / "kp.json"),
        "--data.num_workers", "1", "--train.max_steps", "1",
    )  # fmt: skip


def _coco_folder(env: Env) -> list[str]:
    """predict on a folder of which the COCO image list names one image of three."""
    folder = _image(env, "17.png").parent
    _image(env, "other.png")
    _image(env, "more.png")
    (env.tmp / "dets.json").write_text(
        json.dumps([{"image_id": 17, "category_id": 1, "bbox": [5, 5, 40, 60], "score": 0.9}])
    )
    (env.tmp / "val.json").write_text(json.dumps({"images": [{"id": 17, "file_name": "17.png"}]}))
    return _predict(env, folder, extra=(
        "--boxes", str(env.tmp / "dets.json"), "--coco_images", str(env.tmp / "val.json"),
        "--coco_output", str(env.tmp / "kp.json"),
    ))  # fmt: skip


def _coco_folder_written(env: Env) -> None:
    rows = json.loads((env.tmp / "kp.json").read_text())
    assert [r["image_id"] for r in rows] == [17], f"kp.json holds {rows}"


def _closed_pipe(env: Env) -> None:
    """``dsntpose predict FOLDER | head -c1``: the reader goes away; exit 0, no 'Broken pipe'."""
    import subprocess
    import sys

    for k in range(20):
        _image(env, f"im{k:02d}.png")
    code = (
        "import sys; from dsntpose import cli; sys.exit(cli.main(['predict', "
        f"{str(env.tmp / 'imgs')!r}, '--checkpoint', {str(env.fx.ckpt)!r}, '--box', "
        "'5,5,40,60', '--no-flip']))"
    )
    done = subprocess.run(
        ["bash", "-c", f"set -o pipefail; {sys.executable} -c \"{code}\" | head -c1 >/dev/null"],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )  # fmt: skip
    if done.returncode != 0 or "Broken pipe" in done.stderr or "Errno 32" in done.stderr:
        raise ValueError(f"exit {done.returncode}: {done.stderr.strip()[-300:]}")


OTHER_ROWS = [
    Row("reader x corruption", "predict PIL I;16 image is read dark, not white", "silent numbers", call=lambda e: _image(e, "a.png", mode="I;16"), code=0, check=_dark_not_white, raises=()),
    Row("reader x corruption", "predict PIL F image", "silent numbers", argv=lambda e: _predict(e, _image(e, "f.tif", mode="F")), code=None),
    Row("reader x corruption", "predict JPEG cut at a third with an end marker appended", "silent numbers", argv=lambda e: _predict(e, _image(e, "cut.jpg", _jpeg(e)[: len(_jpeg(e)) // 3] + b"\xff\xd9")), code=1, words=lambda e: ("1 of 1",)),
    Row("reader x corruption", "predict JPEG with a SOF claiming 9000x9000", "silent numbers", argv=lambda e: _predict(e, _image(e, "sof.jpg", _jpeg(e).replace(b"\x00\x78\x00\x5a", b"\x23\x28\x23\x28", 1))), code=1, words=lambda e: ("1 of 1",)),
    Row("reader x corruption", "predict JPEG with flipped scan bits", "silent numbers", argv=lambda e: _predict(e, _image(e, "flip.jpg", (lambda b: b[:-400] + bytes(x ^ 0x5A for x in b[-400:-2]) + b[-2:])(_jpeg(e)))), code=1, words=lambda e: ("1 of 1",)),
    Row("reader x corruption", "predict ①.jpg and ².jpg (legal names)", "first use", argv=lambda e: _predict(e, _image(e, "①.jpg", _jpeg(e)), _image(e, "².jpg", _jpeg(e)), extra=("--output", str(e.tmp / "o.json"))), code=0),
    Row("command x misuse", "predict --coco_output onto the --boxes file", "data destroyed", argv=lambda e: (e.tmp.joinpath("dets.json").write_text("[]"), _predict(e, _image(e, "a.png"), extra=("--boxes", str(e.tmp / "dets.json"), "--coco_output", str(e.tmp / "dets.json"))))[1], check=lambda e: None if e.tmp.joinpath("dets.json").read_text() == "[]" else (_ for _ in ()).throw(AssertionError("boxes file overwritten"))),
    Row("command x misuse", "predict --draw_dir onto the input folder", "data destroyed", argv=lambda e: _predict(e, _image(e, "a.png").parent, extra=("--draw_dir", str(e.tmp / "imgs")))),
    Row("fault x phase", "predict --output on a full disk keeps the previous JSON", "data destroyed", call=lambda e: _predict_full_disk(e), code=0, raises=()),
    Row("fault x phase", "a refused export (NaN model) leaves keep.onnx whole", "data destroyed", argv=lambda e: (e.tmp.joinpath("keep.onnx").write_bytes(b"previous"), ["export", "--checkpoint", str(e.fx.nan_ckpt), str(e.tmp / "keep.onnx")])[1], words=lambda e: ("NaN",), check=lambda e: None if e.tmp.joinpath("keep.onnx").read_bytes() == b"previous" else (_ for _ in ()).throw(AssertionError("keep.onnx replaced"))),
    Row("command x misuse", "predict one image says '1 person written'", "first use", argv=lambda e: _predict(e, _image(e, "a.png"), extra=("--output", str(e.tmp / "o.json"))), code=0, words=lambda e: ("1 person written",)),
    Row("reader x corruption", "COCO file_name absolute: not read outside the root", "outside the root", argv=_coco_outside, words=lambda e: ("file_name",), security=True),
    Row("reader x corruption", "MPII valid.h5 image name absolute: not read outside the root", "outside the root", call=lambda e: _mpii_h5_names(e, str(e.tmp / "secret.jpg")), words=lambda e: ("valid.h5", "refused"), security=True),
    Row("reader x corruption", "MPII valid.h5 image name with '..': not read outside the root", "outside the root", call=lambda e: _mpii_h5_names(e, "../../secret.jpg"), words=lambda e: ("valid.h5", "'..'"), security=True),
    Row("reader x corruption", "undecodable image with data.num_workers 1: one line, no worker traceback", "vague", argv=_coco_worker, words=lambda e: ("bad.jpg",)),
    Row("command x misuse", "predict --coco_images on a folder holding other images too: exit 0, kp.json right", "first use", argv=_coco_folder, code=0, check=_coco_folder_written, words=lambda e: ("written",)),
    Row("fault x phase", "predict into a closed pipe (| head -c1) ends quietly with exit 0", "first use", call=_closed_pipe, code=0, raises=(ValueError,), timeout=150),
]  # fmt: skip


@pytest.mark.parametrize(
    "row", [_param(r) for r in FAULT_ROWS + PHASE_ROWS + SLOW_ROWS + OTHER_ROWS]
)
def test_generated_fault_row(row: Row, env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    outcome, detail = _run_row(row, env, capsys)
    TOTALS[row.table][outcome] += 1
    assert outcome in ("clean error", "handled"), f"{outcome}: {detail}"


ALL_ROWS = (
    READER_ROWS
    + CONFIG_ROWS
    + MISUSE_ROWS
    + HANDLED_ROWS
    + FAULT_ROWS
    + PHASE_ROWS
    + SLOW_ROWS
    + OTHER_ROWS
)


def test_zzz_suite_totals() -> None:
    """The totals per class of the generated suite and the table above (docs/reliability.md).
    Run with -s to see them; a partial run (-k) prints what it ran."""
    rows = len(ALL_ROWS) + len(CASES)
    assert rows >= 300, rows
    seen = sum(sum(c.values()) for c in TOTALS.values())
    if not seen:
        pytest.skip("no row ran in this session")
    print(f"\nreliability suite: {rows} rows, {seen} run in this session")
    grand: Counter[str] = Counter()
    for table in sorted(TOTALS):
        grand.update(TOTALS[table])
        cells = ", ".join(f"{TOTALS[table][o]} {o}" for o in OUTCOMES_27 if TOTALS[table][o])
        print(f"  {table}: {cells}")
    print("  total: " + ", ".join(f"{grand[o]} {o}" for o in OUTCOMES_27))
