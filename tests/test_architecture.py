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
    "config": set(),
    "backbones": {"config"},  # the output strides a config may name
    "data": {"config"},  # the augmentation defaults and their check
    "heads": {"ops", "config"},
    "model": {"backbones", "config", "heads"},
    "evaluate": {"data", "config"},
    "mpii_files": {"evaluate"},
    "metrics": set(),
    "datasets": {"config", "data"},
    # MPII's frames: the official ground truth and the people scored (mpii_files -> evaluate)
    "inference": {"ops", "config", "data", "datasets", "evaluate", "heads", "model", "mpii_files"},
    "zoo": {"config", "model"},
    "export": {"config", "heads", "model"},
    "viz": {"data", "config"},
    "predictor": {"ops", "config", "data", "export", "heads", "inference", "model", "zoo"},
    "predict": {"config", "data", "export", "predictor", "viz", "model"},
    "video": {"data", "predictor", "viz"},
    "bench": {"config", "export", "model", "ops", "heads"},
    "training": {
        "config", "data", "datasets", "evaluate", "heads", "inference", "metrics", "model",
        "ops", "viz", "zoo",
    },
    "demo": {"config", "inference", "model", "training", "viz"},
}  # fmt: skip
ANYTHING = {"cli", "__main__", "__init__"}
# The core: everything a user needs to build, train without Lightning, evaluate and predict.
CORE = [
    "ops", "config", "backbones", "data", "heads", "model", "evaluate", "mpii_files", "datasets",
    "inference", "zoo", "export", "viz", "predictor", "predict", "video",
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


def test_a_layer_violation_is_caught(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from dsntpose.training import fit\n")
    assert imports_of(bad) == {"training"}


def test_constants_the_standalone_ops_repeat_agree_with_the_config() -> None:
    """ops.py imports nothing of the package (it is the drop-in library), so its activation
    names are written there too: they must be the config's."""
    from dsntpose import config, ops

    assert tuple(ops.ACTIVATIONS) == config.ACTIVATIONS
