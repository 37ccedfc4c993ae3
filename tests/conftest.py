"""What the test files share: fixtures and small builders (import the builders with
``from conftest import ...``; pytest puts this folder on ``sys.path``)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch
from torch import nn


@pytest.fixture(autouse=True)
def _torch_engine_and_private_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Predictors run torch unless a test asks for ONNX Runtime (exporting every toy model
    would take most of the suite's time), and any ONNX cache goes to a temporary folder."""
    monkeypatch.setenv("DSNTPOSE_ENGINE", "torch")
    monkeypatch.setenv("DSNTPOSE_CACHE", str(tmp_path_factory.getbasetemp() / "dsntpose-cache"))
    monkeypatch.setenv("DSNTPOSE_THREADS", "1")


@pytest.fixture
def one_thread():
    """One intra-op thread: on a shared 2-core machine two OpenMP threads that wait for each
    other run these small convolutions tens of times slower than one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_backbone() -> nn.Module:
    """Two strided convs, 16 channels out at stride 4: fast to build, run and export."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1),
        nn.ReLU(),
    )


REPO = Path(__file__).resolve().parents[1]


def load_script(name: str, path: Path) -> ModuleType:
    """Import a script that is not in a package (``benchmarks/*.py``) as module ``name``,
    registered in ``sys.modules`` (so dataclasses and pickling inside it work)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
