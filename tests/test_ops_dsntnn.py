"""dsntpose.ops as a drop-in for dsntnn 0.5.3: every dsntnn name, called the way dsntnn is called.

The dsntnn-style calls below run against both libraries (``lib`` is each in turn), and the
import test aliases ``sys.modules["dsntnn"]`` to ``dsntpose.ops`` as a dsntnn user's code would
see it. dsntnn's own suite (not shipped in its wheel) was run the same way: see the README.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from types import ModuleType

import numpy as np
import pytest
import torch

from dsntpose import ops

dsntnn = pytest.importorskip("dsntnn")

F64 = torch.float64
LIBS = [pytest.param(dsntnn, id="dsntnn"), pytest.param(ops, id="dsntpose")]
DSNTNN_NAMES = [
    n
    for n, f in vars(dsntnn).items()
    if inspect.isfunction(f) and not n.startswith("_") and f.__module__ == "dsntnn"
]


def test_every_dsntnn_function_exists_with_its_parameters() -> None:
    assert len(DSNTNN_NAMES) == 15
    for name in DSNTNN_NAMES:
        ours = inspect.signature(getattr(ops, name))
        theirs = inspect.signature(getattr(dsntnn, name))
        positional = [p for p in theirs.parameters.values() if p.kind != p.VAR_KEYWORD]
        ours_params = list(ours.parameters.values())
        for k, p in enumerate(positional):  # same order; the names may differ (probs/heatmaps)
            assert k < len(ours_params), (name, p.name)
            if p.default is not inspect.Parameter.empty:
                assert ours_params[k].default == p.default, (name, p.name)


def test_aliased_import_runs_dsntnn_code(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "dsntnn", ops)
    alias = importlib.import_module("dsntnn")
    assert alias is ops
    namespace: dict[str, object] = {}
    exec(  # a dsntnn user's training step, untouched
        "from dsntnn import flat_softmax, dsnt, euclidean_losses, js_reg_losses, average_loss\n"
        "import torch\n"
        "x = torch.randn(2, 3, 9, 9, requires_grad=True)\n"
        "t = torch.rand(2, 3, 2) * 2 - 1\n"
        "h = flat_softmax(x)\n"
        "loss = average_loss(euclidean_losses(dsnt(h), t) + js_reg_losses(h, t, sigma_t=1.0))\n"
        "loss.backward()\n",
        namespace,
    )
    x = namespace["x"]
    assert isinstance(x, torch.Tensor) and x.grad is not None


SIMPLE = torch.tensor(
    [
        [
            [
                [0.0, 0.0, 0.0, 0.0, 0.0],
                [0.0, 0.0, 0.0, 0.1, 0.0],
                [0.0, 0.0, 0.1, 0.6, 0.1],
                [0.0, 0.0, 0.0, 0.1, 0.0],
                [0.0, 0.0, 0.0, 0.0, 0.0],
            ]
        ]
    ]
)


@pytest.mark.parametrize("lib", LIBS)
def test_dsnt_keyword_and_pixel_coordinates(lib: ModuleType) -> None:
    assert torch.allclose(lib.dsnt(SIMPLE), torch.tensor([[[0.4, 0.0]]]))
    assert torch.allclose(
        lib.dsnt(SIMPLE, normalized_coordinates=True), torch.tensor([[[0.4, 0.0]]])
    )
    assert torch.allclose(
        lib.dsnt(SIMPLE, normalized_coordinates=False), torch.tensor([[[3.0, 2.0]]])
    )
    assert torch.allclose(
        lib.soft_argmax(SIMPLE, normalized_coordinates=False), torch.tensor([[[3.0, 2.0]]])
    )
    traced = torch.jit.trace(lambda h: lib.dsnt(h, normalized_coordinates=False), (SIMPLE,))
    assert torch.allclose(traced(SIMPLE), torch.tensor([[[3.0, 2.0]]]))


@pytest.mark.parametrize("lib", LIBS)
def test_linear_expectation_is_in_tensor_order(lib: ModuleType) -> None:
    probs = torch.zeros(1, 1, 4, 5)
    probs[0, 0, 1:3, 2:4] = torch.tensor([[0.2, 0.3], [0.3, 0.2]])
    values = [torch.arange(d, dtype=probs.dtype) for d in probs.shape[2:]]
    assert torch.allclose(lib.linear_expectation(probs, values), torch.tensor([[[1.5, 2.5]]]))


@pytest.mark.parametrize("lib", LIBS)
def test_coordinate_conversions_on_unbatched_points(lib: ModuleType) -> None:
    px = lib.normalized_to_pixel_coordinates(torch.tensor([0.0, 0.0]), (5, 2))
    assert torch.allclose(px, torch.tensor([0.5, 2.0]))
    norm = lib.pixel_to_normalized_coordinates(torch.tensor([0.5, 2.0]), (5, 2))
    assert torch.allclose(norm, torch.zeros(2))


@pytest.mark.parametrize("lib", LIBS)
def test_l1_and_mse_losses(lib: ModuleType) -> None:
    a = torch.tensor([[[3.0, 4.0], [1.0, -1.0]]])
    t = torch.zeros(1, 2, 2)
    assert torch.allclose(lib.l1_losses(a, t), torch.tensor([[3.5, 1.0]]))
    assert torch.allclose(lib.mse_losses(a, t), torch.tensor([[12.5, 1.0]]))
    for f in (lib.euclidean_losses, lib.l1_losses, lib.mse_losses):
        assert f(torch.randn(4, 3, 2), torch.randn(4, 3, 2)).shape == (4, 3)


@pytest.mark.parametrize("shape", [(2,), (3, 2), (2, 3, 2), (2, 1, 3, 2)])
def test_make_gauss_with_any_leading_shape(shape: tuple[int, ...]) -> None:
    g = torch.Generator().manual_seed(0)
    means = torch.rand(*shape, generator=g, dtype=F64) * 1.6 - 0.8
    for normalize in (True, False):
        ours = ops.make_gauss(means, [5, 7], sigma=1.0, normalize=normalize)
        theirs = dsntnn.make_gauss(means, [5, 7], sigma=1.0, normalize=normalize)
        assert ours.shape == theirs.shape == (*shape[:-1], 5, 7)
        assert torch.allclose(ours, theirs, atol=1e-12)
    three = torch.tensor([-1.0, 1.0, 0.0], dtype=F64)
    assert torch.allclose(
        ops.make_gauss(three, [3, 3, 3], sigma=0.6), dsntnn.make_gauss(three, [3, 3, 3], sigma=0.6)
    )


@pytest.mark.parametrize("lib", LIBS)
def test_normalized_linspace_positional_and_tensor_length(lib: ModuleType) -> None:
    ref = torch.tensor([-0.75, -0.25, 0.25, 0.75], dtype=F64)
    assert torch.allclose(lib.normalized_linspace(4, F64), ref)
    assert torch.allclose(lib.normalized_linspace(4, F64, "cpu"), ref)
    assert torch.allclose(lib.normalized_linspace(torch.tensor(4), dtype=F64), ref)


@pytest.mark.parametrize("size", [(3, 4, 5, 6), (2, 3, 2, 3, 2)])
def test_maps_with_four_or_five_spatial_dims(size: tuple[int, ...]) -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, *size, generator=g, dtype=F64)
    p = ops.flat_softmax(x)
    assert torch.allclose(p, dsntnn.flat_softmax(x))
    assert torch.allclose(ops.dsnt(p), dsntnn.dsnt(p))
    assert torch.allclose(
        ops.dsnt(p, normalized_coordinates=False), dsntnn.dsnt(p, normalized_coordinates=False)
    )
    mu = torch.rand(2, 3, len(size), generator=g, dtype=F64) * 1.6 - 0.8
    assert torch.allclose(ops.make_gauss(mu, size, 1.0), dsntnn.make_gauss(mu, size, 1.0))
    assert torch.allclose(ops.js_reg_losses(p, mu, 1.0), dsntnn.js_reg_losses(p, mu, 1.0))
    assert torch.allclose(ops.kl_reg_losses(p, mu, 1.0), dsntnn.kl_reg_losses(p, mu, 1.0))
    assert torch.allclose(ops.variance_reg_losses(p, 1.0), dsntnn.variance_reg_losses(p, 1.0))


@pytest.mark.parametrize("lib", LIBS)
def test_dsntnn_regulariser_reference_values(lib: ModuleType) -> None:
    """Values from maps like dsntnn's own regulariser tests (float64)."""
    t = torch.zeros(1, 2, 4, 4, dtype=F64)
    t[0, 0, 2:, 2:] = torch.tensor([[0.0, 0.1], [0.1, 0.8]], dtype=F64)
    t[0, 1, :2, :2] = torch.tensor([[0.8, 0.1], [0.1, 0.0]], dtype=F64)
    coords = torch.tensor([[[1.0, 1.0], [0.0, 0.0]]], dtype=F64)
    mask = torch.tensor([[1.0, 0.0]], dtype=F64)
    kl = lib.average_loss(lib.kl_reg_losses(t, coords, 2.0), mask)
    ref = dsntnn.average_loss(dsntnn.kl_reg_losses(t, coords, 2.0), mask)
    assert kl.item() == pytest.approx(ref.item(), abs=1e-9)
    v = torch.zeros(1, 1, 4, 6, dtype=F64)
    v[0, 0, 1:4, 1:4] = torch.tensor([[0, 0.1, 0], [0.1, 0.6, 0.1], [0, 0.1, 0]], dtype=F64)
    assert lib.average_loss(lib.variance_reg_losses(v, 2.0)).item() == pytest.approx(28.88)


def test_numpy_pixel_conversion_flips_the_size_unlike_dsntnn() -> None:
    """dsntnn flips ``size`` to (x, y) only for tensors; for numpy arrays it uses (H, W) as
    (x, y), a documented difference: ours treats both alike."""
    pt = np.array([0.0, 0.0])
    assert np.allclose(ops.normalized_to_pixel_coordinates(pt, (5, 2)), [0.5, 2.0])
    assert np.allclose(dsntnn.normalized_to_pixel_coordinates(pt, (5, 2)), [2.0, 0.5])
