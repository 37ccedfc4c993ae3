"""The ``dsntpose`` command: fast help, one-line errors, config printing, data fetching with
sha256 verification, and train/eval end to end on a tiny synthetic run."""

from __future__ import annotations

import argparse
import hashlib
import json
import shlex
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from dsntpose import cli, demo
from dsntpose.config import load_config
from dsntpose.data import download

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(__file__).resolve().parents[1].parent / "shared"
LSP_DIR = SHARED / "data" / "lsp"
MPII_DIR = SHARED / "data" / "mpii"


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dsntpose.cli", *args], capture_output=True, text=True, timeout=120
    )


def test_help_lists_every_command_and_the_parser_imports_nothing_heavy():
    done = run_cli("--help")
    assert done.returncode == 0, done.stderr
    for command in ("train", "eval", "predict", "bench", "export", "data", "demo"):
        assert command in done.stdout
    # torch alone takes seconds to import: building the parser (what --help needs) must not
    probe = (
        "import sys, dsntpose.cli; cli = dsntpose.cli.build_parser(); "
        "print(sorted(m for m in ('torch', 'lightning', 'numpy', 'cv2', 'matplotlib') "
        "if m in sys.modules))"
    )
    modules = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60
    )
    assert modules.stdout.strip() == "[]", modules.stdout + modules.stderr


def readme_commands() -> list[str]:
    """Every ``dsntpose ...`` line of the README's shell blocks, comments cut."""
    text = (REPO / "README.md").read_text()
    blocks = text.split("```sh")[1:]
    lines = [line for block in blocks for line in block.split("```")[0].splitlines()]
    return [line.split(" # ")[0].strip() for line in lines if line.startswith("dsntpose ")]


def test_every_dsntpose_command_in_the_readme_parses(monkeypatch):
    commands = readme_commands()
    assert len(commands) >= 10
    monkeypatch.chdir(REPO)  # the README's --config paths are relative to the repository
    for line in commands:
        # "[--flip_test true]" is an option shown as optional: parse it as given
        argv = shlex.split(line.replace("[", " ").replace("]", " "))[1:]
        argv = [a for a in argv if a != "--print_config"]  # it prints and exits
        try:
            cli.build_parser().parse_args(argv)
        except (argparse.ArgumentError, ValueError) as err:
            pytest.fail(f"README: {line!r} does not parse: {err}")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["train", "--model.backbone", "resnet9"],
            "model.backbone: 'resnet9' is not allowed; choose one of 'resnet18'",
        ),
        (["train", "--train.precision", "64"], "train.precision: '64' is not allowed"),
        (["train", "--model.input_size", "big"], 'Parser key "model.input_size"'),
        (["train", "--config", "/no/such.yaml"], "File does not exist"),
        (["trian"], "invalid choice: 'trian'"),
        (
            ["eval", "--checkpoint", "a.ckpt", "--preds", "p.h5"],
            "give --checkpoint CKPT or --preds FILE, not both",
        ),
        (["eval", "--checkpoint", "/no/such.ckpt"], "checkpoint /no/such.ckpt does not exist"),
        (
            ["data", "lsp", "--data.root", "/tmp", "--zip", "/no/such.zip"],
            "/no/such.zip does not exist",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, message, capsys):
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("dsntpose: error:")]
    assert len(lines) == 1, err
    assert message in lines[0]
    assert "Traceback" not in err


def test_missing_data_root_says_what_to_download(tmp_path, capsys):
    code = cli.main(
        [
            "train",
            "--model.joints",
            "lsp",
            "--data.dataset",
            "lsp",
            "--data.root",
            str(tmp_path / "lsp"),
            "--train.out_dir",
            str(tmp_path / "run"),
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "dsntpose data lsp --data.root DIR" in err and "lsp_dataset.zip" in err
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_print_config_applies_file_then_overrides(capsys):
    config = REPO / "configs" / "lsp_resnet18_s8_dsnt_js.yaml"
    with pytest.raises(SystemExit) as done:
        cli.main(["train", "--config", str(config), "--optim.lr", "0.01", "--print_config"])
    assert done.value.code == 0
    printed = capsys.readouterr().out
    import yaml

    values = yaml.safe_load(printed)
    expected = load_config(config).to_dict()
    expected["optim"]["lr"] = 0.01
    assert {k: values[k] for k in expected} == expected


# ---- data: fetch from a local zip and verify against a manifest ---------------------------


def _zip(path: Path, files: dict[str, bytes], prefix: str = "") -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(prefix + name, data)
    return path


def _manifest(path: Path, files: dict[str, bytes]) -> Path:
    lines = [f"{hashlib.sha256(data).hexdigest()}  {name}" for name, data in files.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_fetch_lsp_from_a_local_zip_verifies_every_file(tmp_path):
    files = {"images/im0001.jpg": b"\xff\xd8one", "images/im0002.jpg": b"two", "joints.mat": b"j"}
    manifest = _manifest(tmp_path / "lsp.sha256", files)
    archive = _zip(tmp_path / "lsp.zip", {**files, "visualized/im0001.jpg": b"extra"}, "lsp/")
    root = download.fetch_lsp(tmp_path / "data", archive, manifest=manifest)
    assert (root / "images" / "im0002.jpg").read_bytes() == b"two"  # top folder dropped
    assert (root / "joints.mat").is_file()

    broken = _zip(tmp_path / "broken.zip", {**files, "images/im0002.jpg": b"changed"})
    with pytest.raises(
        ValueError,
        match=r"1 of 3 files failed verification \(images/im0002\.jpg has a different sha256\)",
    ):
        download.fetch_lsp(tmp_path / "data2", broken, manifest=manifest)
    short = _zip(tmp_path / "short.zip", {"joints.mat": b"j"})
    with pytest.raises(ValueError, match=r"images/im0001\.jpg is missing"):
        download.fetch_lsp(tmp_path / "data3", short, manifest=manifest)


def test_unpack_refuses_paths_outside_the_root(tmp_path):
    archive = _zip(tmp_path / "evil.zip", {"../escape.txt": b"x", "ok.txt": b"y"})
    with pytest.raises(ValueError, match="would leave"):
        download.fetch_lsp(tmp_path / "root", archive, manifest=_manifest(tmp_path / "m", {}))
    assert not (tmp_path / "escape.txt").exists()


def test_packaged_manifests_are_well_formed():
    lsp = download.read_manifest(None, "lsp.sha256")
    assert len(lsp) == 2001
    assert lsp["joints.mat"] == "ddcfcbe904106bfbf26561c8d11720ca62a11c7a861548064b3bae84cb396b2a"
    assert {f"images/im{i:04d}.jpg" for i in range(1, 2001)} <= set(lsp)
    mpii = download.read_manifest(None, "mpii.sha256")
    assert set(mpii) == {"mpii_annotations.json", "valid.h5", "detections_our_format.mat"}
    assert set(mpii) == set(download.MPII_URLS)


@pytest.mark.skipif(not LSP_DIR.is_dir(), reason="../shared/data/lsp not present")
def test_real_lsp_zip_passes_the_committed_manifest(tmp_path):
    archive = tmp_path / "lsp_dataset.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
        zf.write(LSP_DIR / "joints.mat", "joints.mat")
        zf.write(LSP_DIR / "README.txt", "README.txt")
        for image in sorted((LSP_DIR / "images").glob("*.jpg")):
            zf.write(image, f"images/{image.name}")
    assert (
        cli.main(["data", "lsp", "--data.root", str(tmp_path / "lsp"), "--zip", str(archive)]) == 0
    )
    assert len(list((tmp_path / "lsp" / "images").glob("*.jpg"))) == 2000


@pytest.mark.skipif(not MPII_DIR.is_dir(), reason="../shared/data/mpii not present")
def test_mpii_annotations_from_a_folder_pass_the_committed_manifest(tmp_path, capsys):
    assert (
        cli.main(["data", "mpii", "--data.root", str(tmp_path), "--from_dir", str(MPII_DIR)]) == 0
    )
    out = capsys.readouterr().out
    assert "3 annotation files verified" in out and "human-pose.mpi-inf.mpg.de" in out
    assert (tmp_path / "mpii_annotations.json").stat().st_size == 33226856  # gunzipped


def test_fetch_without_network_fails_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(download, "LSP_URL", "http://127.0.0.1:9/lsp_dataset.zip")
    assert cli.main(["data", "lsp", "--data.root", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("dsntpose: could not download http://127.0.0.1:9/lsp_dataset.zip")
    assert "--zip" in err[-1]
    assert not list(tmp_path.glob("*.part"))


# ---- train and eval end to end ------------------------------------------------------------


@pytest.fixture(scope="module")
def smoke_checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "smoke"
    config = REPO / "configs" / "synthetic_smoke.yaml"
    args = ["train", "--config", str(config), "--train.out_dir", str(out)]
    assert cli.main([*args, "--train.progress_bar", "false", "--data.synthetic_train", "32"]) == 0
    return out / "last.ckpt"


def test_train_then_eval_from_the_command_line(smoke_checkpoint, capsys):
    out = smoke_checkpoint.parent
    saved = load_config(out / "config.yaml")
    assert saved.train.out_dir == str(out) and saved.data.synthetic_train == 32
    assert cli.main(["eval", "--checkpoint", str(smoke_checkpoint), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["metric"] == "PCK" and sum(result["counts"].values()) > 0


def test_eval_flip_modes(smoke_checkpoint, capsys):
    ckpt = str(smoke_checkpoint)
    totals = {}
    for mode in ("logits", "coords"):
        assert cli.main(["eval", "--checkpoint", ckpt, "--flip_mode", mode, "--json"]) == 0
        totals[mode] = json.loads(capsys.readouterr().out)["total"]
    assert all(0 <= t <= 100 for t in totals.values())
    assert cli.main(["eval", "--checkpoint", ckpt, "--flip_mode", "heatmaps"]) == 2
    assert "flip_mode: 'heatmaps' does not fit the dsnt head" in capsys.readouterr().err


def test_predict_writes_keypoints_json(smoke_checkpoint, tmp_path):
    import cv2
    import numpy as np

    image = tmp_path / "person.png"
    cv2.imwrite(str(image), np.full((80, 60, 3), 127, np.uint8))
    output = tmp_path / "people.json"
    code = cli.main(
        ["predict", str(image), "--checkpoint", str(smoke_checkpoint), "--output", str(output)]
    )
    assert code == 0
    people = json.loads(output.read_text())["people"]
    assert len(people) == 1 and len(people[0]["keypoints"]) == 14
    # no checkpoint: the shipped model (when this copy has its weights file)
    from dsntpose.zoo import pretrained_path

    try:
        pretrained_path()
    except FileNotFoundError:
        assert cli.main(["predict", str(image)]) == 2
    else:  # the whole-photo model: a grey image holds nobody, so no skeleton
        assert cli.main(["predict", str(image), "--output", str(output)]) == 0
        assert json.loads(output.read_text())["people"] == []
        args = ["predict", str(image), "--checkpoint", "lsp_efficientnet_lite0"]
        assert cli.main([*args, "--output", str(output)]) == 0
        shipped = json.loads(output.read_text())["people"]
        assert len(shipped) == 1 and len(shipped[0]["keypoints"]) == 14


def test_predict_box_and_joints_options(smoke_checkpoint, tmp_path, capsys, caplog):
    import cv2
    import numpy as np

    image = tmp_path / "person.png"
    cv2.imwrite(str(image), np.full((80, 60, 3), 127, np.uint8))
    ckpt = str(smoke_checkpoint)
    assert cli.main(["predict", str(image), "--checkpoint", ckpt, "--box", "5,10,30,50"]) == 0
    people = json.loads(capsys.readouterr().out)["people"]
    assert people[0]["box"] == [5.0, 10.0, 30.0, 50.0]
    # a box outside the image is reported for that image and the exit code says so
    assert cli.main(["predict", str(image), "--checkpoint", ckpt, "--box", "500,10,30,50"]) == 1
    captured = capsys.readouterr()
    assert "lies outside the 60x80 image" in caplog.text  # predict() names it (stderr)
    assert "lies outside the 60x80 image" in json.loads(captured.out)["errors"][0]["error"]
    assert captured.err.strip().splitlines()[-1].startswith("dsntpose: 1 of 1 inputs failed")
    for args, message in [
        (["--box", "1,2,3"], "--box: expected 4 numbers x,y,w,h"),
        (["--box", "a,b,c,d"], "--box: expected x,y,w,h numbers"),
        (["--box", "0,0,0,5"], "box width and height must be > 0"),
        (["--box", "0,0,5,5", "--boxes", "b.json"], "not both"),
        (["--joints", "mpii"], "checkpoint is for 14 joints (lsp) but 16 joints (mpii)"),
    ]:
        assert cli.main(["predict", str(image), "--checkpoint", ckpt, *args]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err


def test_bench_quick_writes_json(tmp_path):
    path = tmp_path / "bench.json"
    code = cli.main(["bench", "--models", "[resnet18-os32]", "--quick", "--json", str(path)])
    assert code == 0
    rows = json.loads(path.read_text())["models"]
    assert rows[0]["model"] == "resnet18-os32" and rows[0]["latency_ms"] > 0


@pytest.mark.slow
def test_export_writes_onnx_that_matches(smoke_checkpoint, tmp_path):
    out = tmp_path / "model.onnx"
    assert cli.main(["export", "--checkpoint", str(smoke_checkpoint), str(out)]) == 0
    assert out.stat().st_size > 1_000_000


@pytest.mark.slow
def test_export_takes_the_shipped_model_by_name(tmp_path):
    out = tmp_path / "m.onnx"
    assert cli.main(["export", "--checkpoint", "lsp_efficientnet_lite0", str(out)]) == 0
    assert out.stat().st_size > 1_000_000


def test_export_resolves_the_shipped_name_and_never_writes_onto_its_input(
    smoke_checkpoint, tmp_path, capsys
):
    # the name is opened (the error comes from the exporter, not "does not exist")
    args = ["export", "--checkpoint", "lsp_efficientnet_lite0", str(tmp_path / "m.onnx")]
    assert cli.main([*args, "--opset", "999"]) == 2
    assert "opset: 999 is not supported" in capsys.readouterr().err
    ckpt = tmp_path / "w.pt"
    ckpt.write_bytes(smoke_checkpoint.read_bytes())
    before = ckpt.read_bytes()
    for out in (ckpt, tmp_path / "." / "w.pt"):
        assert cli.main(["export", "--checkpoint", str(ckpt), str(out)]) == 2
        err = capsys.readouterr().err
        assert "w.pt is also an input" in err and len(err.strip().splitlines()) == 1, err
    assert ckpt.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.pt"]


def test_export_needs_exactly_one_output(smoke_checkpoint, capsys):
    ckpt = str(smoke_checkpoint)
    assert cli.main(["export", "--checkpoint", ckpt]) == 2
    assert cli.main(["export", "--checkpoint", ckpt, "a.onnx", "--output", "b.onnx"]) == 2
    assert capsys.readouterr().err.count("give the .onnx file to write once") == 2


def test_demo_plan_fits_the_time_budget(tmp_path, capsys):
    run = demo.demo_config(None, str(tmp_path / "demo"))
    assert run.model.backbone == "efficientnet_lite0" and run.model.head == "dsnt"
    assert run.model.weights == "imagenet" and run.train.channels_last
    assert run.data.dataset == "synthetic" and run.optim.milestones == [run.train.epochs - 1]
    # 0.4 s per measured step and 128 steps per epoch: 7 minutes hold 5 epochs (with overheads)
    assert demo._demo_epochs(run, 0.4, 7.0) == 5
    assert demo._demo_epochs(run, 10.0, 7.0) == 2  # never fewer than two epochs
    lsp = demo.demo_config(str(tmp_path), str(tmp_path / "demo"), epochs=20, val_every=4)
    assert lsp.data.augment and lsp.data.val_subset == 256 and lsp.optim.milestones == [15]
    assert cli.main(["demo", "--data.root", str(tmp_path / "absent")]) == 2
    assert "dsntpose data lsp --data.root" in capsys.readouterr().err


@pytest.mark.slow
def test_demo_trains_evaluates_and_draws(tmp_path, capsys):
    out = tmp_path / "demo"
    assert cli.main(["demo", "--epochs", "2", "--out_dir", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "PCK@0.2, lsp joints" in printed and "demo: PCK@0.2" in printed
    for name in ("predictions.png", "training_curves.png", "last.ckpt", "config.yaml"):
        assert (out / name).is_file(), name
    assert f"demo: predictions drawn in {out / 'predictions.png'}" in printed


def test_config_by_name_uses_the_shipped_recipe(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # no configs/ folder here: the name must come from the package
    argv = cli.resolve_config_names(["train", "--config", "synthetic_smoke", "--print_config"])
    assert Path(argv[2]).is_file() and Path(argv[2]).name == "synthetic_smoke.yaml"
    assert cli.resolve_config_names(["train", "--config=synthetic_smoke"])[1].endswith(".yaml")
    assert "lsp_efficientnet_lite0_s16_dsnt_js" in cli.packaged_configs()
    assert cli.main(["train", "--config", "no_such_recipe"]) == 2
    assert "shipped: " in capsys.readouterr().err


def test_version_and_module_entry_point():
    done = subprocess.run(
        [sys.executable, "-m", "dsntpose", "--version"], capture_output=True, text=True, check=False
    )
    import dsntpose

    assert done.returncode == 0 and done.stdout.strip() == f"dsntpose {dsntpose.__version__}"


def test_fine_tuning_starts_from_the_checkpoint(smoke_checkpoint, tmp_path, capsys):
    import torch

    from dsntpose.checkpoint import load_checkpoint
    from dsntpose.training import PoseModule

    trained = load_checkpoint(smoke_checkpoint)[0].state_dict()
    config = load_config(smoke_checkpoint.parent / "config.yaml").to_dict()
    config["train"]["init_from"] = str(smoke_checkpoint)
    started = PoseModule(config).model.state_dict()
    assert all(torch.equal(started[k], v) for k, v in trained.items())
    fresh = PoseModule(config, initialise=False).model.state_dict()  # what a resume builds
    assert not all(torch.equal(fresh[k], v) for k, v in trained.items())

    args = ["train", "--config", str(REPO / "configs" / "synthetic_smoke.yaml")]
    args += ["--data.synthetic_train", "16", "--train.epochs", "1", "--train.progress_bar", "false"]
    out = tmp_path / "tuned"
    tuned = [*args, "--train.out_dir", str(out), "--train.init_from", str(smoke_checkpoint)]
    assert cli.main(tuned) == 0
    assert load_config(out / "config.yaml").train.init_from == str(smoke_checkpoint)

    missing = [*args, "--train.out_dir", str(tmp_path / "x"), "--train.init_from", "no/such.pt"]
    assert cli.main(missing) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("dsntpose: error: no/such.pt: no such checkpoint file, and not a")
    assert not (tmp_path / "x").exists()

    # another network does not fit (another joint set does: joints carry over by name)
    other = [*args, "--train.out_dir", str(tmp_path / "y"), "--model.backbone", "resnet34"]
    other += ["--data.dataset", "synthetic", "--train.init_from", str(smoke_checkpoint)]
    assert cli.main(other) == 2
    assert "does not fit model" in capsys.readouterr().err
