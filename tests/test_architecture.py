"""The import direction of docs/architecture.md, enforced: each module imports only the
layers below it, the ops import nothing of the package, and the core runs without Lightning."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "dsntpose"

# module (top level under dsntpose) -> the dsntpose modules it may import (at any depth,
# function-local imports included). The CLI and __main__ may import anything.
ALLOWED: dict[str, set[str]] = {
    "ops": set(),
    # the families' dicts: torch-free; each entry's factory imports its code when called
    # (config: type names only, under TYPE_CHECKING)
    "families": {"backbones", "config", "heads", "datasets"},
    "config": {"families", "data"},  # validates against the families' dicts and JOINT_SETS
    "backbones": {"families"},  # the output strides each backbone's spec supports
    "data": {"config"},  # the augmentation defaults and their check
    "heads": {"ops", "config", "families"},
    "model": {"backbones", "config", "families", "heads"},
    "checkpoint": {"config", "heads", "model"},  # file formats: read, write, ship, load_any
    "evaluate": {"data", "config", "families"},
    "mpii_files": {"evaluate"},
    "metrics": set(),
    "datasets": {"config", "data", "families"},
    # MPII's frames: the official ground truth and the people scored (mpii_files -> evaluate)
    "inference": {
        "ops", "checkpoint", "config", "data", "datasets", "evaluate", "heads", "model",
        "mpii_files",
    },
    "zoo": {"checkpoint", "config", "families", "model"},
    "export": {"checkpoint", "config", "heads", "model"},
    "viz": {"data", "config"},
    "predictor": {
        "ops", "checkpoint", "config", "data", "export", "heads", "inference", "model", "zoo",
    },
    "predict": {"checkpoint", "config", "data", "export", "predictor", "viz", "model"},
    "video": {"data", "predictor", "viz"},
    "bench": {"checkpoint", "config", "export", "model", "ops", "heads"},
    "training": {
        "checkpoint", "config", "data", "datasets", "evaluate", "heads", "inference", "metrics",
        "model", "ops", "viz", "zoo",
    },
    "demo": {"config", "inference", "model", "training", "viz"},
}  # fmt: skip
ANYTHING = {"cli", "__main__", "__init__"}
# The core: everything a user needs to build, train without Lightning, evaluate and predict.
CORE = [
    "ops", "families", "config", "backbones", "data", "heads", "model", "checkpoint", "evaluate",
    "mpii_files", "datasets", "inference", "zoo", "export", "viz", "predictor", "predict", "video",
]  # fmt: skip


def imports_of(path: Path) -> set[str]:
    """The top-level dsntpose modules ``path`` imports (``dsntpose.data.lsp`` -> ``data``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "dsntpose":
                names = [f"dsntpose.{a.name}" for a in node.names]
            else:
                names = [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        found |= {n.split(".")[1] for n in names if n.startswith("dsntpose.")}
    return found - {"__version__"}


def module_files() -> dict[str, list[Path]]:
    files: dict[str, list[Path]] = {}
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC).parts
        name = rel[0].removesuffix(".py")
        files.setdefault(name, []).append(path)
    return files


def test_every_module_has_a_layer() -> None:
    assert set(module_files()) - ANYTHING <= set(ALLOWED), "add new modules to ALLOWED"


@pytest.mark.parametrize("name", sorted(ALLOWED))
def test_imports_follow_the_intended_direction(name: str) -> None:
    for path in module_files().get(name, []):
        extra = imports_of(path) - ALLOWED[name] - {name}
        assert not extra, f"{path.relative_to(SRC)} imports {sorted(extra)}"


def test_ops_import_nothing_of_the_package() -> None:
    assert imports_of(SRC / "ops.py") == set()


def test_the_core_imports_without_lightning() -> None:
    modules = ", ".join(f"dsntpose.{m}" for m in CORE)
    code = (
        "import sys\n"
        "for blocked in ('lightning', 'pytorch_lightning', 'torchmetrics'):\n"
        "    sys.modules[blocked] = None\n"
        f"import {modules}\n"
        "from dsntpose.model import build_model\n"
        "from dsntpose.config import ModelConfig\n"
        "build_model(ModelConfig(backbone='resnet18', output_stride=32, input_size=64))\n"
        "print('ok')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def test_config_and_the_family_dicts_import_without_torch() -> None:
    """Config validation and the CLI's choices read the families' dicts: those, and a whole
    default run config, must not pull in torch, numpy or OpenCV."""
    code = (
        "import sys\n"
        "from dsntpose.config import RunConfig\n"
        "from dsntpose.families import BACKBONES, DATASETS, HEADS\n"
        "from dsntpose.data.joints import JOINT_SETS\n"
        "RunConfig.from_dict({'model': {'joints': 'lsp'}, 'data': {'dataset': 'coco'}})\n"
        "print(sorted(m for m in ('torch', 'numpy', 'cv2') if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.stdout.strip() == "[]", done.stdout + done.stderr[-2000:]


def test_a_layer_violation_is_caught(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from dsntpose.training import fit\n")
    assert imports_of(bad) == {"training"}


def test_constants_the_standalone_ops_repeat_agree_with_the_config() -> None:
    """ops.py imports nothing of the package (it is the drop-in library), so its activation
    names are written there too: they must be the config's."""
    from dsntpose import config, ops

    assert tuple(ops.ACTIVATIONS) == config.ACTIVATIONS
