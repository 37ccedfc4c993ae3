"""The import direction of docs/architecture.md, enforced: each module imports only the
layers below it, the ops import nothing of the package, and the core runs without Lightning."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "dsntpose"

DOC = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"


def layer_table() -> tuple[dict[str, set[str]], set[str]]:
    """docs/architecture.md's module table: module -> the dsntpose modules it may import (at
    any depth, function-local imports included), and the modules that may import anything."""
    allowed: dict[str, set[str]] = {}
    anything: set[str] = set()
    section = DOC.read_text().split("## Modules, one job each", 1)[1].split("\n## ", 1)[0]
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[0].startswith("`"):
            continue
        module, imports = cells[0].strip("`"), cells[1]
        if imports == "anything":
            anything.add(module)
        else:
            allowed[module] = {
                name.strip().strip("`") for name in imports.split(",") if name.strip() != "nothing"
            }
    return allowed, anything


ALLOWED, ANYTHING = layer_table()
# The core: everything a user needs to build, train without Lightning, evaluate and predict.
CORE = [
    "ops", "families", "config", "backbones", "data", "heads", "model", "checkpoint", "evaluate",
    "mpii_files", "datasets", "inference", "zoo", "export", "viz", "predictor", "predict", "video",
    "inputs", "runtime",
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
    assert len(ALLOWED) > 20, "docs/architecture.md's module table was not found"
    missing = set(module_files()) - ANYTHING - set(ALLOWED)
    assert not missing, f"add {sorted(missing)} to docs/architecture.md's module table"
    assert not (set(ALLOWED) | ANYTHING) - set(module_files()), "the table names a lost module"


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


def test_every_name_imported_from_the_package_exists() -> None:
    """Scripts, experiments, benchmarks and tests import names that exist: a module split
    (e.g. load_checkpoint moving from model to checkpoint) cannot leave a caller importing
    the old place, even in a function body that no default test runs."""
    import importlib

    repo = SRC.parents[1]
    stale = []
    for folder in ("src/dsntpose", "scripts", "experiments", "benchmarks", "tests"):
        for path in sorted((repo / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if not (isinstance(node, ast.ImportFrom) and node.level == 0 and node.module):
                    continue
                if node.module.split(".")[0] != "dsntpose":
                    continue
                module = importlib.import_module(node.module)
                for alias in node.names:
                    if alias.name == "*" or hasattr(module, alias.name):
                        continue
                    try:
                        importlib.import_module(f"{node.module}.{alias.name}")
                    except ImportError:
                        stale.append(
                            f"{path.relative_to(repo)}:{node.lineno} {node.module}.{alias.name}"
                        )
    assert not stale, stale
