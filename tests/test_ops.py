"""Tests of dsntpose.ops: conventions, numbers, gradients, stability, and dsntnn as an oracle."""

from __future__ import annotations

import doctest
import math

import cv2
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dsntpose import ops

dsntnn = pytest.importorskip("dsntnn")

F64 = torch.float64


def rand_probs(b: int, j: int, *size: int, seed: int = 0, dtype: torch.dtype = F64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return ops.flat_softmax(torch.randn(b, j, *size, generator=g, dtype=dtype))


# ------------------------------------------------------------------ conventions


def test_linspace_is_pixel_centres() -> None:
    assert torch.allclose(ops.normalized_linspace(4), torch.tensor([-0.75, -0.25, 0.25, 0.75]))
    assert torch.allclose(ops.normalized_linspace(1), torch.tensor([0.0]))


def test_pixel_normalized_known_values_torch_and_numpy() -> None:
    px = torch.tensor([[0.0, 0.0], [3.0, 1.0], [-0.5, 3.5]])
    norm = ops.pixel_to_normalized(px, (2, 4))  # H=2, W=4; x uses W, y uses H
    expected = torch.tensor([[-0.75, -0.5], [0.75, 0.5], [-1.0, 3.0]])
    assert torch.allclose(norm, expected)
    norm_np = ops.pixel_to_normalized(px.numpy(), (2, 4))
    assert isinstance(norm_np, np.ndarray)
    np.testing.assert_allclose(norm_np, expected.numpy())
    np.testing.assert_allclose(ops.normalized_to_pixel(norm_np, (2, 4)), px.numpy())


@settings(max_examples=50, deadline=None)
@given(
    x=st.floats(-50, 150),
    y=st.floats(-50, 150),
    z=st.floats(-50, 150),
    w=st.integers(1, 256),
    h=st.integers(1, 256),
    d=st.integers(1, 64),
)
def test_px_norm_round_trip(x: float, y: float, z: float, w: int, h: int, d: int) -> None:
    c2 = torch.tensor([[x, y]], dtype=F64)
    assert torch.allclose(ops.normalized_to_pixel(ops.pixel_to_normalized(c2, (h, w)), (h, w)), c2)
    c3 = torch.tensor([[x, y, z]], dtype=F64)
    back = ops.normalized_to_pixel(ops.pixel_to_normalized(c3, (d, h, w)), (d, h, w))
    assert torch.allclose(back, c3)


def test_size_mismatch_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"size must give 2 spatial sizes"):
        ops.pixel_to_normalized(torch.zeros(3, 2), (4, 4, 4))


def test_rendered_blob_shifted_by_opencv_lands_where_dsnt_says() -> None:
    """A blob rendered at an integer pixel and moved by a sub-pixel warpAffine translation.

    OpenCV's warpAffine uses the pixel-centre convention and bilinear interpolation keeps the
    centroid of a smooth blob, so DSNT of the warped image must give the moved centre -- up to
    OpenCV's fixed-point interpolation, which rounds sub-pixel offsets to 1/32 px.
    """
    h, w = 40, 56
    img = np.zeros((h, w), np.float64)
    img[18, 25] = 1.0
    img = cv2.GaussianBlur(img, (0, 0), 2.0)
    for dx, dy in [(0.25, -0.75), (3.6, 2.1), (-7.5, 5.3)]:
        moved = cv2.warpAffine(
            img, np.array([[1, 0, dx], [0, 1, dy]], np.float64), (w, h), flags=cv2.INTER_LINEAR
        )
        probs = torch.from_numpy(moved / moved.sum())[None, None]
        got_px = ops.normalized_to_pixel(ops.dsnt(probs), (h, w))[0, 0]
        assert torch.allclose(got_px, torch.tensor([25 + dx, 18 + dy], dtype=F64), atol=1 / 64)


def test_supersampled_disc_downsampled_by_area_is_centred_in_pixel_centres() -> None:
    """A disc drawn at 16x and area-averaged down: output pixel i covers input [16 i, 16 i + 16)."""
    k, h, w = 16, 12, 20
    for cx_s, cy_s in [(150, 71), (200, 101), (97, 133)]:
        big = np.zeros((h * k, w * k), np.float32)
        cv2.circle(big, (cx_s, cy_s), 40, 1.0, thickness=-1)
        small = cv2.resize(big, (w, h), interpolation=cv2.INTER_AREA).astype(np.float64)
        probs = torch.from_numpy(small / small.sum())[None, None]
        got_px = ops.normalized_to_pixel(ops.dsnt(probs), (h, w))[0, 0]
        expected = torch.tensor([(cx_s - (k - 1) / 2) / k, (cy_s - (k - 1) / 2) / k], dtype=F64)
        assert torch.allclose(got_px, expected, atol=0.01)


def test_dsnt_of_one_hot_pixel_is_its_centre() -> None:
    p = torch.zeros(1, 1, 5, 7)
    p[0, 0, 4, 1] = 1  # y=4, x=1
    assert torch.allclose(
        ops.dsnt(p), ops.pixel_to_normalized(torch.tensor([[[1.0, 4.0]]]), (5, 7))
    )


# ------------------------------------------------------------------ activations


@pytest.mark.parametrize("activation", ops.ACTIVATIONS)
def test_activations_give_probability_maps(activation: str) -> None:
    x = torch.randn(2, 3, 6, 5)
    p = ops.normalize_heatmaps(x, activation)
    assert p.shape == x.shape and (p >= 0).all()
    assert torch.allclose(p.flatten(2).sum(-1), torch.ones(2, 3))


@pytest.mark.parametrize("activation", ["abs", "relu"])
def test_all_zero_map_is_uniform_with_finite_gradient(activation: str) -> None:
    x = torch.zeros(1, 2, 4, 4, requires_grad=True)
    if activation == "relu":
        x = (-torch.ones(1, 2, 4, 4)).requires_grad_()
    p = ops.normalize_heatmaps(x, activation)
    assert torch.allclose(p, torch.full_like(p, 1 / 16))
    assert torch.allclose(ops.dsnt(p), torch.zeros(1, 2, 2))
    ops.dsnt(p).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_softmax_temperature_sharpens() -> None:
    x = torch.randn(1, 1, 8, 8)
    sharp = ops.normalize_heatmaps(x, temperature=0.5)
    assert torch.allclose(sharp, torch.softmax(x.flatten(2) / 0.5, -1).view_as(x))
    assert sharp.max() > ops.normalize_heatmaps(x).max()


def test_bad_activation_and_shapes_are_named() -> None:
    with pytest.raises(ValueError, match="activation must be one of"):
        ops.normalize_heatmaps(torch.zeros(1, 1, 2, 2), "tanh")
    with pytest.raises(ValueError, match=r"\(B, J, H, W\).*got \(3, 64\)"):
        ops.dsnt(torch.zeros(3, 64))
    with pytest.raises(ValueError, match=r"mu_t must be \(2, 3, 2\)"):
        ops.js_reg_losses(torch.zeros(2, 3, 4, 4), torch.zeros(2, 3), 1.0)
    with pytest.raises(ValueError, match="mask must have the shape"):
        ops.average_loss(torch.zeros(2, 3), torch.ones(3, 2))


# ------------------------------------------------------------------ gaussians and dsnt properties


def discrete_mean_px(mu_px: float, size: int, sigma: float) -> float:
    """Brute-force float64 mean of a Gaussian sampled at the pixel centres of one axis."""
    i = np.arange(size, dtype=np.float64)
    w = np.exp(-0.5 * ((i - mu_px) / sigma) ** 2)
    return float((i * w).sum() / w.sum())


@settings(max_examples=60, deadline=None)
@given(
    size=st.integers(16, 64),
    sigma=st.floats(1.0, 3.0),
    fx=st.floats(0, 1),
    fy=st.floats(0, 1),
    margin_sigmas=st.sampled_from([3.0, 4.5]),
)
def test_dsnt_recovers_gauss_mean(
    size: int, sigma: float, fx: float, fy: float, margin_sigmas: float
) -> None:
    """dsnt(make_gauss(mu)) == mu, up to the truncation of the Gaussian by the map's edges.

    With mu 4.5 sigma or more inside the outer edges the result is within 1e-5 (normalised).
    At 3 sigma the map cuts ~1e-3 of the Gaussian's mass and the mean moves inwards by up to
    ~5e-4 px; that shift is real and must equal the brute-force discrete mean.
    """
    lo = margin_sigmas * sigma - 0.5  # the outer edge is at -0.5 px
    span = size - 1 - 2 * lo
    if span <= 0:
        return
    mu_px = torch.tensor([[[lo + fx * span, lo + fy * span]]], dtype=F64)
    mu = ops.pixel_to_normalized(mu_px, (size, size))
    g = ops.make_gauss(mu, (size, size), sigma)
    assert abs(g.sum().item() - 1) < 1e-12
    got = ops.dsnt(g)
    if margin_sigmas >= 4.5:
        assert (got - mu).abs().max().item() < 1e-5
    expected_px = [discrete_mean_px(mu_px[0, 0, k].item(), size, sigma) for k in range(2)]
    expected = ops.pixel_to_normalized(torch.tensor([[expected_px]], dtype=F64), (size, size))
    assert (got - expected).abs().max().item() < 1e-12


@settings(max_examples=40, deadline=None)
@given(k=st.integers(-6, 6), w=st.integers(16, 48), seed=st.integers(0, 1000))
def test_shifting_a_map_moves_dsnt_by_2k_over_w(k: int, w: int, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    p = torch.zeros(1, 1, 12, w, dtype=F64)
    p[..., :, 6 : w - 6] = torch.rand(12, w - 12, generator=g, dtype=F64)  # empty 6 px border
    p = p / p.sum()
    shifted = torch.roll(p, shifts=k, dims=-1)
    dx = ops.dsnt(shifted)[0, 0, 0] - ops.dsnt(p)[0, 0, 0]
    assert abs(dx.item() - 2 * k / w) < 1e-12


def test_make_gauss_3d_and_1d() -> None:
    mu = torch.tensor([[[0.1, -0.2, 0.3]]], dtype=F64)
    g = ops.make_gauss(mu, (24, 28, 32), 2.0)
    assert g.shape == (1, 1, 24, 28, 32)
    assert (ops.dsnt(g) - mu).abs().max() < 1e-4  # edge truncation, see above
    g1 = ops.make_gauss(torch.tensor([[[0.25]]], dtype=F64), (40,), 2.0)
    assert (ops.dsnt(g1) - 0.25).abs().max() < 1e-6


def test_make_gauss_far_outside_the_map_is_still_a_distribution() -> None:
    g = ops.make_gauss(torch.tensor([[[40.0, -40.0]]]), (8, 8), 1.0)
    assert torch.isfinite(g).all() and abs(g.sum().item() - 1) < 1e-5
    assert g[0, 0, 0, 7] > 0.99  # all mass in the corner nearest the mean


def test_heatmap_targets_peak_one_at_integer_pixel() -> None:
    mu = ops.pixel_to_normalized(torch.tensor([[[5.0, 2.0]]]), (8, 10))
    t = ops.heatmap_targets(mu, (8, 10), 1.0)
    assert t[0, 0, 2, 5].item() == pytest.approx(1.0)
    assert t[0, 0, 2, 6].item() == pytest.approx(math.exp(-0.5))


# ------------------------------------------------------------------ dsntnn as an oracle


@pytest.mark.parametrize("size", [(7, 7), (14, 11), (28, 28), (9,), (4, 5, 6)])
def test_oracle_coordinates(size: tuple[int, ...]) -> None:
    x = torch.randn(3, 5, *size, dtype=F64)
    p = ops.flat_softmax(x)
    assert torch.allclose(p, dsntnn.flat_softmax(x), atol=1e-12)
    assert (ops.dsnt(p) - dsntnn.dsnt(p)).abs().max() < 1e-5
    mu = torch.rand(3, 5, len(size), dtype=F64) * 1.6 - 0.8
    for normalize in (True, False):
        assert (
            ops.make_gauss(mu, size, 1.5, normalize) - dsntnn.make_gauss(mu, size, 1.5, normalize)
        ).abs().max() < 1e-5
    px = ops.normalized_to_pixel(mu, size)
    assert torch.allclose(px, dsntnn.normalized_to_pixel_coordinates(mu, size))
    assert torch.allclose(
        ops.pixel_to_normalized(px, size), dsntnn.pixel_to_normalized_coordinates(px, size)
    )
    assert torch.allclose(
        ops.normalized_linspace(size[-1], dtype=F64),
        dsntnn.normalized_linspace(size[-1], dtype=F64),
    )


@pytest.mark.parametrize(
    ("size", "sigma"),
    [((7, 7), 1.0), ((14, 14), 2.0), ((16, 12), 1.5), ((4, 5, 6), 1.0), ((56, 56), 1.0)],
)
def test_oracle_losses_and_regularisers(size: tuple[int, ...], sigma: float) -> None:
    g = torch.Generator().manual_seed(1)
    p = ops.flat_softmax(torch.randn(4, 6, *size, generator=g, dtype=F64))
    mu = torch.rand(4, 6, len(size), generator=g, dtype=F64) * 1.6 - 0.8
    target = torch.rand(4, 6, len(size), generator=g, dtype=F64) * 2 - 1
    mask = (torch.rand(4, 6, generator=g) > 0.3).to(F64)
    c = ops.dsnt(p)
    euc = ops.euclidean_losses(c, target)
    assert (euc - dsntnn.euclidean_losses(c, target)).abs().max() < 1e-5
    assert (ops.average_loss(euc, mask) - dsntnn.average_loss(euc, mask)).abs() < 1e-5
    assert (ops.average_loss(euc) - dsntnn.average_loss(euc)).abs() < 1e-5
    assert (ops.js_reg_losses(p, mu, sigma) - dsntnn.js_reg_losses(p, mu, sigma)).abs().max() < 1e-4
    assert (
        ops.variance_reg_losses(p, sigma) - dsntnn.variance_reg_losses(p, sigma)
    ).abs().max() < 1e-4
    if max(size) <= 6 * sigma + 1:  # farther out, dsntnn's log(q + 1e-24) clips KL; see below
        assert (
            ops.kl_reg_losses(p, mu, sigma) - dsntnn.kl_reg_losses(p, mu, sigma)
        ).abs().max() < 1e-4
    masked = ops.average_loss(ops.js_reg_losses(p, mu, sigma), mask)
    assert (masked - dsntnn.average_loss(dsntnn.js_reg_losses(p, mu, sigma), mask)).abs() < 1e-4


def test_kl_is_exact_where_dsntnn_clips_the_log() -> None:
    """On a 56 px map with sigma 1, the target underflows far away: ours keeps the exact log q."""
    size, sigma = (56, 56), 1.0
    p = rand_probs(2, 3, *size, seed=3)
    mu = torch.tensor([[[0.6, -0.5]] * 3] * 2, dtype=F64)
    # brute force in float64 with the analytic log density
    lin = ops.normalized_linspace(56, dtype=F64)
    ly = -0.5 * ((lin - mu[..., 1:2]) / (2 * sigma / 56)) ** 2
    lx = -0.5 * ((lin - mu[..., 0:1]) / (2 * sigma / 56)) ** 2
    log_q = ly.unsqueeze(-1) + lx.unsqueeze(-2)
    log_q = log_q - torch.logsumexp(log_q.flatten(2), -1)[..., None, None]
    exact = (p * (p.log() - log_q)).flatten(2).sum(-1)
    assert (ops.kl_reg_losses(p, mu, sigma) - exact).abs().max() < 1e-9
    assert (dsntnn.kl_reg_losses(p, mu, sigma) - exact).abs().max() > 1.0  # dsntnn is far off


# ------------------------------------------------------------------ gradients


def test_gradcheck_every_differentiable_op() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 5, 6, generator=g, dtype=F64, requires_grad=True)
    mu = (torch.rand(2, 3, 2, generator=g, dtype=F64) * 1.4 - 0.7).requires_grad_()
    t = torch.rand(2, 3, 2, generator=g, dtype=F64) * 2 - 1
    mask = (torch.rand(2, 3, generator=g) > 0.3).to(F64)
    gc = torch.autograd.gradcheck
    assert gc(lambda a: ops.flat_softmax(a, 0.7), (x,))
    for act in ("softmax", "abs", "sigmoid"):
        assert gc(lambda a, act=act: ops.normalize_heatmaps(a, act), (x,))
    assert gc(lambda a: ops.normalize_heatmaps(a.abs() + 0.1, "relu"), (x,))
    assert gc(lambda a: ops.dsnt(ops.flat_softmax(a)), (x,))
    assert gc(lambda a: ops.heatmap_variance(ops.flat_softmax(a)), (x,))
    assert gc(lambda m: ops.make_gauss(m, (5, 6), 1.3), (mu,))
    assert gc(lambda m: ops.make_gauss(m, (5, 6), 1.3, normalize=False), (mu,))
    assert gc(lambda m: ops.euclidean_losses(m, t), (mu,))
    assert gc(lambda m: ops.average_loss(ops.euclidean_losses(m, t), mask), (mu,))
    assert gc(lambda a: ops.variance_reg_losses(ops.flat_softmax(a), 1.0), (x,))
    assert gc(lambda a: ops.kl_reg_losses(ops.flat_softmax(a), t, 1.0), (x,))
    assert gc(lambda a: ops.js_reg_losses(ops.flat_softmax(a), t, 1.0), (x,))
    # the regularisers as functions of arbitrary positive maps (not only normalised ones)
    pos = (torch.rand(2, 3, 5, 6, generator=g, dtype=F64) + 0.05).requires_grad_()
    assert gc(lambda p: ops.js_reg_losses(p, t, 0.8), (pos,))
    assert gc(lambda p: ops.kl_reg_losses(p, t, 0.8), (pos,))
    big = (torch.rand(1, 2, 30, 30, generator=g, dtype=F64) + 0.05).requires_grad_()
    t2 = torch.tensor([[[0.3, -0.2], [-0.9, 0.95]]], dtype=F64)
    assert gc(lambda p: ops.js_reg_losses(p, t2, 1.0), (big,))  # window smaller than the map
    assert gc(lambda a: ops.heatmap_mse_losses(a, torch.zeros_like(a)), (x,))
    x3 = torch.randn(1, 2, 3, 4, 5, generator=g, dtype=F64, requires_grad=True)
    t3 = torch.rand(1, 2, 3, generator=g, dtype=F64) - 0.5
    assert gc(lambda a: ops.js_reg_losses(ops.flat_softmax(a), t3, 1.0), (x3,))
    assert gc(lambda a: ops.dsnt(ops.flat_softmax(a)), (x3,))


def test_euclidean_gradient_is_zero_at_zero_distance() -> None:
    a = torch.zeros(1, 2, 2, requires_grad=True)
    target = torch.zeros(1, 2, 2)
    ops.euclidean_losses(a, target).sum().backward()
    assert a.grad is not None and torch.equal(a.grad, torch.zeros_like(a))
    # the plain formula is NaN there (dsntnn 0.5.3 relies on torch.norm's subgradient instead)
    b = torch.zeros(1, 2, 2, requires_grad=True)
    ((b - target) ** 2).sum(-1).sqrt().sum().backward()
    assert b.grad is not None and torch.isnan(b.grad).all()


def test_average_loss_all_masked_is_zero_and_ignores_nan() -> None:
    losses = torch.tensor([[1.0, float("nan")], [2.0, 3.0]], requires_grad=True)
    mask = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    out = ops.average_loss(losses, mask)
    assert out.item() == pytest.approx(2.0)
    out.backward()
    assert losses.grad is not None and torch.isfinite(losses.grad).all()
    assert ops.average_loss(losses, torch.zeros(2, 2)).item() == 0.0
    assert ops.average_loss(losses, torch.zeros(2, 2, dtype=torch.bool)).item() == 0.0


# ------------------------------------------------------------------ numerical stability


def sharp_blob(
    size: int, width_px: float, target_px: tuple[float, float], dtype: torch.dtype
) -> torch.Tensor:
    """Softmax of a quadratic bowl: a blob of ``width_px`` standard deviation at the target."""
    lin = torch.arange(size, dtype=dtype)
    d2 = (lin[None, :] - target_px[0]) ** 2 + (lin[:, None] - target_px[1]) ** 2
    return (-0.5 * d2 / width_px**2)[None, None].requires_grad_()


@pytest.mark.parametrize("size", [56, 64])
@pytest.mark.parametrize("width", [0.7, 1.0, 2.0, 3.0])
@pytest.mark.parametrize("name", ["js", "kl", "var"])
def test_sharp_maps_near_target_are_finite_in_float32(size: int, width: float, name: str) -> None:
    target_px = (size * 0.4 + 0.3, size * 0.55 - 0.2)
    mu = ops.pixel_to_normalized(torch.tensor([[target_px]]), (size, size))
    logits = sharp_blob(size, width, target_px, torch.float32)
    probs = ops.flat_softmax(logits)
    assert (probs == 0).any() or width > 1  # cells underflow: the case kornia's JS gets wrong
    reg = {
        "js": lambda p: ops.js_reg_losses(p, mu, 1.0),
        "kl": lambda p: ops.kl_reg_losses(p, mu, 1.0),
        "var": lambda p: ops.variance_reg_losses(p, 1.0),
    }[name]
    value = reg(probs)
    value.sum().backward()
    assert (
        torch.isfinite(value).all()
        and logits.grad is not None
        and torch.isfinite(logits.grad).all()
    )
    # and the float32 value agrees with float64
    logits64 = sharp_blob(size, width, target_px, F64)
    ref = reg(ops.flat_softmax(logits64))
    assert (value.double() - ref).abs().max() < 1e-4 * max(1.0, ref.abs().max().item())


@pytest.mark.parametrize("name", ["js", "kl"])
def test_one_hot_maps_are_finite(name: str) -> None:
    p = torch.zeros(2, 3, 28, 28)
    p[:, :, 10, 17] = 1
    p.requires_grad_()
    mu = torch.zeros(2, 3, 2)
    f = ops.js_reg_losses if name == "js" else ops.kl_reg_losses
    value = f(p, mu, 1.0)
    value.sum().backward()
    assert torch.isfinite(value).all() and p.grad is not None and torch.isfinite(p.grad).all()
    if name == "js":
        assert (value <= math.log(2) + 1e-6).all()


def test_js_is_zero_at_the_target_and_symmetric_bounds() -> None:
    mu = torch.tensor([[[0.1, -0.3]]], dtype=F64)
    g = ops.make_gauss(mu, (28, 28), 1.0)
    assert ops.js_reg_losses(g, mu, 1.0).abs().max() < 1e-12
    assert ops.kl_reg_losses(g, mu, 1.0).abs().max() < 1e-12
    far = ops.make_gauss(torch.tensor([[[0.9, 0.9]]], dtype=F64), (28, 28), 1.0)
    assert ops.js_reg_losses(far, mu, 1.0).item() == pytest.approx(math.log(2), abs=1e-6)


def test_low_precision_inputs_are_computed_in_float32() -> None:
    x = torch.randn(2, 4, 28, 28)
    t = torch.rand(2, 4, 2) * 2 - 1
    with torch.autocast("cpu", dtype=torch.bfloat16):
        xb = x.bfloat16()
        p = ops.flat_softmax(xb)
        c = ops.dsnt(p)
        js = ops.js_reg_losses(p, t, 1.0)
        euc = ops.euclidean_losses(c, t)
    for out in (p, c, js, euc):
        assert out.dtype == torch.float32
    ref = ops.dsnt(ops.flat_softmax(xb.float()))
    assert torch.allclose(c, ref, atol=1e-6)


# ------------------------------------------------------------------ heatmap matching decode


def test_argmax_decode_integer_and_quarter_shift() -> None:
    m = torch.zeros(1, 2, 8, 10)
    m[0, 0, 3, 4] = 1.0
    m[0, 1, 5, 2] = 1.0
    m[0, 1, 5, 3] = 0.5  # right neighbour larger -> +0.25 in x
    m[0, 1, 4, 2] = 0.2  # upper neighbour larger than lower -> -0.25 in y
    exact = ops.normalized_to_pixel(ops.argmax_decode(m, refine=None), (8, 10))
    assert torch.allclose(exact, torch.tensor([[[4.0, 3.0], [2.0, 5.0]]]))
    quarter = ops.normalized_to_pixel(ops.argmax_decode(m), (8, 10))
    assert torch.allclose(quarter, torch.tensor([[[4.0, 3.0], [2.25, 4.75]]]))


def test_argmax_decode_at_the_border_does_not_shift_outside() -> None:
    m = torch.zeros(1, 1, 6, 6)
    m[0, 0, 0, 5] = 1.0
    px = ops.normalized_to_pixel(ops.argmax_decode(m), (6, 6))
    assert torch.allclose(px, torch.tensor([[[5.0, 0.0]]]), atol=1e-5)


@settings(max_examples=30, deadline=None)
@given(x=st.floats(3, 28), y=st.floats(3, 20))
def test_dark_recovers_a_gaussian_to_subpixel(x: float, y: float) -> None:
    mu = ops.pixel_to_normalized(torch.tensor([[[x, y]]], dtype=F64), (24, 32))
    t = ops.heatmap_targets(mu, (24, 32), 1.5)
    dark = ops.normalized_to_pixel(ops.argmax_decode(t, refine="dark"), (24, 32))
    assert (dark - torch.tensor([[[x, y]]], dtype=F64)).abs().max() < 1e-3
    quarter = ops.normalized_to_pixel(ops.argmax_decode(t, refine="quarter"), (24, 32))
    assert (quarter - torch.tensor([[[x, y]]], dtype=F64)).abs().max() <= 0.5 + 1e-9


# ------------------------------------------------------------------ confidence


def test_confidence_reference_values() -> None:
    one_hot = torch.zeros(1, 1, 16, 16)
    one_hot[0, 0, 7, 9] = 1
    assert ops.heatmap_confidence(one_hot).item() == pytest.approx(1.0)
    g = ops.make_gauss(torch.zeros(1, 1, 2, dtype=F64), (64, 64), 1.0)
    assert ops.heatmap_confidence(g, radius=2.0).item() == pytest.approx(0.8, abs=1e-3)
    two = torch.zeros(1, 1, 16, 16)
    two[0, 0, 8, 1] = two[0, 0, 8, 14] = 0.5
    assert ops.heatmap_confidence(two).item() == pytest.approx(math.exp(-(6.5**2) / 8), rel=1e-4)


def test_confidence_around_the_local_prediction_of_a_two_peak_map() -> None:
    """Two equal peaks 13 px apart: the expectation lies between them, where the map holds
    almost nothing; read at one peak (local DSNT, the arg-max's window) half the mass is
    there, and the confidence around that prediction says so."""
    two = torch.zeros(1, 1, 16, 16)
    two[0, 0, 8, 1] = 0.5
    two[0, 0, 8, 14] = 0.5 - 1e-3  # the left peak is the arg-max
    two[0, 0, 0, 0] = 1e-3
    local = ops.local_dsnt(two, radius=2)
    assert ops.normalized_to_pixel(local, (16, 16))[0, 0].tolist() == pytest.approx([1.0, 8.0])
    assert ops.heatmap_confidence(two).item() < 0.01
    at_peak = ops.heatmap_confidence(two, center=local).item()
    assert at_peak == pytest.approx(0.5 + 1e-3 * math.exp(-(1 + 64) / 8), abs=1e-6)
    assert ops.heatmap_confidence(two, center=ops.dsnt(two)).item() == pytest.approx(
        ops.heatmap_confidence(two).item()
    )
    with pytest.raises(ValueError, match=r"center: expected \(1, 1, 2\)"):
        ops.heatmap_confidence(two, center=torch.zeros(1, 2))


def test_confidence_separates_good_from_bad_predictions() -> None:
    """Synthetic maps: a bump at the truth, noise, and sometimes a distractor bump elsewhere.

    The distractor pulls the DSNT estimate away from the truth and spreads the map: the
    confidence must rank accurate predictions above inaccurate ones (AUROC > 0.9).
    """
    g = torch.Generator().manual_seed(0)
    n, size = 400, 28
    truth = torch.rand(n, 1, 2, generator=g) * 1.2 - 0.6
    lin = torch.arange(size, dtype=torch.float32)

    def bump(c_norm: torch.Tensor, width: float) -> torch.Tensor:
        c = ops.normalized_to_pixel(c_norm, (size, size))
        d2 = (lin[None, None, None, :] - c[..., 0, None, None]) ** 2 + (
            lin[None, None, :, None] - c[..., 1, None, None]
        ) ** 2
        return -0.5 * d2 / width**2

    distractor = torch.rand(n, 1, 2, generator=g) * 1.8 - 0.9
    strength = torch.rand(n, 1, 1, 1, generator=g) * (torch.rand(n, 1, 1, 1, generator=g) < 0.5)
    logits = torch.logaddexp(
        bump(truth, 1.0), bump(distractor, 1.0) + torch.log(strength * 3 + 1e-9)
    )
    logits = logits + 0.5 * torch.randn(n, 1, size, size, generator=g)
    probs = ops.flat_softmax(logits)
    err_px = (
        ops.normalized_to_pixel(ops.dsnt(probs), (size, size))
        - ops.normalized_to_pixel(truth, (size, size))
    ).norm(dim=-1)[:, 0]
    conf = ops.heatmap_confidence(probs)[:, 0]
    good, bad = conf[err_px < 1.0], conf[err_px > 2.0]
    assert len(good) > 50 and len(bad) > 50
    auroc = (good[:, None] > bad[None, :]).float().mean().item()
    assert auroc > 0.9


# ------------------------------------------------------------------ compile and docs


# ------------------------------------------------------------------ the fused training path


def _composed(x: torch.Tensor, mu: torch.Tensor | None, sigma: float, temperature: float):
    p = ops.flat_softmax(x, temperature)
    return p, ops.dsnt(p), (ops.js_reg_losses(p, mu, sigma) if mu is not None else None)


@pytest.mark.parametrize(
    ("size", "sigma", "temperature"),
    # whole-map windows (7, 5x9 with sigma 2), partial windows (28, 40x33), a wide target
    [((7, 7), 1.0, 1.0), ((5, 9), 2.0, 0.5), ((28, 28), 1.0, 1.0), ((40, 33), 1.5, 2.0)],
)
def test_softmax_dsnt_equals_the_composed_ops_in_value_and_gradient(
    size: tuple[int, int], sigma: float, temperature: float
) -> None:
    g = torch.Generator().manual_seed(7)
    x = (torch.randn(3, 5, *size, generator=g, dtype=F64) * 3).requires_grad_()
    mu = torch.rand(3, 5, 2, generator=g, dtype=F64) * 2.6 - 1.3  # some targets off the map
    weights = [
        torch.randn(3, 5, *size, generator=g, dtype=F64),
        torch.randn(3, 5, 2, generator=g, dtype=F64),
        torch.rand(3, 5, generator=g, dtype=F64),
    ]
    fused = ops.softmax_dsnt(x, mu, sigma, temperature)
    composed = _composed(x, mu, sigma, temperature)
    for a, b in zip(fused, composed):
        assert b is not None and (a - b).abs().max() < 1e-12
    # every subset of the outputs carries gradient: probs, coords, js, and all together
    for used in ([0], [1], [2], [1, 2], [0, 1, 2]):
        grads = []
        for outs in (
            ops.softmax_dsnt(x, mu, sigma, temperature),
            _composed(x, mu, sigma, temperature),
        ):
            total = sum((outs[k] * weights[k]).sum() for k in used)
            grads.append(torch.autograd.grad(total, x)[0])
        assert (grads[0] - grads[1]).abs().max() < 1e-12, used


def test_softmax_dsnt_gradcheck_and_no_target() -> None:
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 3, 6, 5, generator=g, dtype=F64, requires_grad=True)
    mu = torch.rand(2, 3, 2, generator=g, dtype=F64) * 2 - 1
    assert torch.autograd.gradcheck(lambda x: tuple(ops.softmax_dsnt(x, mu, 1.0)), (x,))
    assert torch.autograd.gradcheck(lambda x: tuple(ops.softmax_dsnt(x, mu, 0.6, 1.7)), (x,))
    _probs, coords, js = ops.softmax_dsnt(x)
    assert js is None and torch.allclose(coords, ops.dsnt(ops.flat_softmax(x)), atol=1e-14)
    assert torch.autograd.gradcheck(lambda x: ops.softmax_dsnt(x).coords, (x,))
    # a large map with a partial window (at 2 sigma the window is 37 px of 40)
    x = torch.randn(1, 2, 40, 12, generator=g, dtype=F64, requires_grad=True)
    mu = torch.tensor([[[0.5, -0.8], [-0.2, 0.3]]], dtype=F64)
    assert torch.autograd.gradcheck(lambda x: ops.softmax_dsnt(x, mu, 1.0).js, (x,))


def test_softmax_dsnt_matches_dsntnn_and_stays_finite_on_sharp_maps() -> None:
    g = torch.Generator().manual_seed(5)
    x = torch.randn(4, 6, 28, 28, generator=g)
    mu = torch.rand(4, 6, 2, generator=g) * 1.6 - 0.8
    _probs, coords, js = ops.softmax_dsnt(x, mu, 1.0)
    ref_p = dsntnn.flat_softmax(x)
    assert (coords - dsntnn.dsnt(ref_p)).abs().max() < 1e-5
    assert js is not None and (js - dsntnn.js_reg_losses(ref_p, mu, 1.0)).abs().max() < 1e-4
    # a softmax blob of 0.7 px at its target on a 64 px map underflows most cells in float32
    target_px = (64 * 0.4 + 0.3, 64 * 0.55 - 0.2)
    mu = ops.pixel_to_normalized(torch.tensor([[target_px]]), (64, 64))
    logits = sharp_blob(64, 0.7, target_px, torch.float32)
    _, coords, js = ops.softmax_dsnt(logits, mu, 1.0)
    assert js is not None
    (coords.sum() + js.sum()).backward()
    assert (
        logits.grad is not None and torch.isfinite(logits.grad).all() and torch.isfinite(js).all()
    )
    ref = ops.js_reg_losses(ops.flat_softmax(sharp_blob(64, 0.7, target_px, F64)), mu.double(), 1.0)
    assert (js.double() - ref).abs().max() < 1e-4


@pytest.mark.parametrize(("size", "sigma"), [(28, 1.0), (56, 1.0), (64, 2.0), (40, 0.6)])
def test_js_in_float32_matches_a_float64_brute_force(size: int, sigma: float) -> None:
    """The float32 window (6 sigma) loses nothing float32 can see, fused or composed."""
    g = torch.Generator().manual_seed(size)
    x = torch.randn(4, 8, size, size, generator=g, dtype=F64) * 2
    mu = torch.rand(4, 8, 2, generator=g, dtype=F64) * 2 - 1
    p = ops.flat_softmax(x)
    lin = ops.normalized_linspace(size, dtype=F64)
    lx = -0.5 * ((lin - mu[..., 0:1]) / (2 * sigma / size)) ** 2
    ly = -0.5 * ((lin - mu[..., 1:2]) / (2 * sigma / size)) ** 2
    log_q = ly.unsqueeze(-1) + lx.unsqueeze(-2)
    log_q = log_q - torch.logsumexp(log_q.flatten(2), -1)[..., None, None]
    q = log_q.exp()
    m = (p + q) / 2
    exact = (0.5 * (p * p.log() + q * log_q) - m * m.log()).flatten(2).sum(-1)
    composed = ops.js_reg_losses(ops.flat_softmax(x.float()), mu.float(), sigma)
    fused = ops.softmax_dsnt(x.float(), mu.float(), sigma).js
    assert fused is not None
    assert (composed.double() - exact).abs().max() < 1e-6
    assert (fused.double() - exact).abs().max() < 1e-6


def test_softmax_dsnt_low_precision_and_errors() -> None:
    x = torch.randn(2, 4, 14, 14)
    t = torch.rand(2, 4, 2) * 2 - 1
    probs, coords, js = ops.softmax_dsnt(x.bfloat16(), t, 1.0)
    assert probs.dtype == coords.dtype == torch.float32 and js is not None
    assert torch.allclose(coords, ops.dsnt(ops.flat_softmax(x.bfloat16().float())), atol=1e-6)
    with pytest.raises(ValueError, match=r"logits must be \(B, J, H, W\), got \(2, 4, 14\)"):
        ops.softmax_dsnt(x[..., 0])
    with pytest.raises(ValueError, match=r"mu_t must be \(2, 4, 2\)"):
        ops.softmax_dsnt(x, t[:, :3])
    with pytest.raises(ValueError, match=r"sigma_t must be >= 0\.001 pixels"):
        ops.softmax_dsnt(x, t, 0.0)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        ops.softmax_dsnt(x, t, 1.0, temperature=0.0)


def test_docstring_examples_run() -> None:
    result = doctest.testmod(ops, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 5 and result.failed == 0


@pytest.mark.slow
def test_compile_fullgraph_forward_backward() -> None:
    def step(x: torch.Tensor, t: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        p = ops.normalize_heatmaps(x)
        c = ops.dsnt(p)
        loss = (
            ops.euclidean_losses(c, t) + ops.js_reg_losses(p, t, 1.0) + ops.kl_reg_losses(p, t, 1.0)
        )
        loss = loss + ops.variance_reg_losses(p, 1.0) + ops.heatmap_confidence(p)
        _, c2, js = ops.softmax_dsnt(x, t, 1.0)
        loss = loss + ops.euclidean_losses(c2, t) + js
        return ops.average_loss(loss, m)

    compiled = torch.compile(step, fullgraph=True, backend="aot_eager")
    x = torch.randn(2, 3, 14, 14, requires_grad=True)
    t = torch.rand(2, 3, 2) * 2 - 1
    m = torch.ones(2, 3)
    out = compiled(x, t, m)
    out.backward()
    x2 = x.detach().clone().requires_grad_()
    ref = step(x2, t, m)
    ref.backward()
    assert torch.allclose(out, ref, atol=1e-5)
    assert x.grad is not None and x2.grad is not None and torch.allclose(x.grad, x2.grad, atol=1e-5)


# ------------------------------------------------------------------ dsnt's autograd node

# 1-px axes, odd and even sizes, 1-D and 3-D maps, and maps on both sides of _MM_CELLS (the
# backward's switch from one product to the broadcast outer sum)
DSNT_SIZES = [(1,), (6,), (1, 1), (1, 5), (4, 4), (7, 6), (33, 40), (2, 1, 3), (3, 4, 5)]


@pytest.mark.parametrize("size", DSNT_SIZES)
@pytest.mark.parametrize("normalized", [True, False])
def test_dsnt_node_gradcheck_and_gradgradcheck(size: tuple[int, ...], normalized: bool) -> None:
    assert math.prod((33, 40)) > ops._MM_CELLS >= 7 * 6
    g = torch.Generator().manual_seed(len(size))
    p = torch.rand(1, 2, *size, generator=g, dtype=F64, requires_grad=True)
    fn = lambda q: ops.dsnt(q, normalized_coordinates=normalized)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (p,))
    assert torch.autograd.gradgradcheck(fn, (p,))


@pytest.mark.parametrize("size", DSNT_SIZES)
@pytest.mark.parametrize("normalized", [True, False])
@pytest.mark.parametrize("layout", ["contiguous", "transposed", "sliced", "channels_last"])
def test_dsnt_node_values_and_gradients_are_dsntnns(
    size: tuple[int, ...], normalized: bool, layout: str
) -> None:
    g = torch.Generator().manual_seed(sum(size))
    base = torch.rand(3, 5, *size, generator=g, dtype=F64)
    if layout == "transposed":  # same values, batch and joint strides swapped
        base = base.transpose(0, 1).contiguous().transpose(0, 1)
    elif layout == "sliced":  # every other joint of a larger tensor
        base = torch.rand(3, 10, *size, generator=g, dtype=F64)[:, ::2]
    elif layout == "channels_last":
        if len(size) != 2:
            pytest.skip("channels_last is a 4-D layout")
        base = base.contiguous(memory_format=torch.channels_last)
    weight = torch.randn(3, 5, len(size), generator=g, dtype=F64)
    out = {}
    for name, fn in (("ours", ops.dsnt), ("dsntnn", dsntnn.dsnt)):
        p = base.detach().clone(memory_format=torch.preserve_format).requires_grad_()
        c = fn(p, normalized_coordinates=normalized)
        (grad,) = torch.autograd.grad((c * weight).sum(), p)
        out[name] = (c, grad)
    assert out["ours"][0].shape == (3, 5, len(size)) and out["ours"][0].is_contiguous()
    # the maps are not normalised (mass up to ~700, pixel coordinates up to 1e4): rounding
    # of float64 sums of that size, in a different order than dsntnn's, is ~1e-12
    assert torch.allclose(out["ours"][0], out["dsntnn"][0], rtol=1e-13, atol=1e-10)
    assert torch.allclose(out["ours"][1], out["dsntnn"][1], rtol=1e-13, atol=1e-13)


@pytest.fixture
def two_threads():
    """Run the test with two intra-op threads (the default suite runs on one)."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("size", [(48, 50), (13, 14, 15), (3000,)])
@pytest.mark.parametrize("normalized", [True, False])
def test_dsnt_forward_on_two_threads_is_the_marginal_sums_with_dsntnns_values(
    size: tuple[int, ...], normalized: bool, two_threads: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ops, "_SUM_VALUES", 1)  # small batches take the sums too (gradcheck)
    batch = 3
    assert math.prod(size) >= ops._SUM_CELLS and torch.get_num_threads() == 2
    g = torch.Generator().manual_seed(len(size))
    base = torch.rand(batch, 5, *size, generator=g, dtype=F64)
    weight = torch.randn(batch, 5, len(size), generator=g, dtype=F64)
    out = {}
    for name, fn in (("ours", ops.dsnt), ("dsntnn", dsntnn.dsnt)):
        p = base.clone().requires_grad_()
        c = fn(p, normalized_coordinates=normalized)
        out[name] = (c, torch.autograd.grad((c * weight).sum(), p)[0])
    assert out["ours"][0].shape == (batch, 5, len(size)) and out["ours"][0].is_contiguous()
    assert torch.allclose(out["ours"][0], out["dsntnn"][0], rtol=1e-13, atol=1e-10)
    assert torch.allclose(out["ours"][1], out["dsntnn"][1], rtol=1e-13, atol=1e-13)
    p = torch.rand(1, 2, *size, generator=g, dtype=F64, requires_grad=True)
    fn = lambda q: ops.dsnt(q, normalized_coordinates=normalized)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (p,)) and torch.autograd.gradgradcheck(fn, (p,))
    # the fused path takes the same forward
    x = torch.randn(2, 3, *size[-2:], generator=g) if len(size) >= 2 else None
    if x is not None and len(size) == 2:
        fused = ops.softmax_dsnt(x).coords
        assert (fused - dsntnn.dsnt(dsntnn.flat_softmax(x))).abs().max() < 1e-6


@pytest.mark.parametrize("size", [(28, 28), (64, 64), (5, 6, 7)])
def test_dsnt_node_in_the_composed_path_matches_dsntnn_in_float32(size: tuple[int, ...]) -> None:
    g = torch.Generator().manual_seed(5)
    x = torch.randn(4, 16, *size, generator=g) * 3
    weight = torch.randn(4, 16, len(size), generator=g)
    res = []
    for lib in (ops, dsntnn):
        xl = x.clone().requires_grad_()
        c = lib.dsnt(lib.flat_softmax(xl))
        res.append((c, torch.autograd.grad((c * weight).sum(), xl)[0]))
    assert (res[0][0] - res[1][0]).abs().max() < 1e-6
    assert (res[0][1] - res[1][1]).abs().max() < 1e-7


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_dsnt_node_low_precision_is_computed_in_float32(dtype: torch.dtype) -> None:
    p32 = rand_probs(2, 3, 9, 8, dtype=torch.float32)
    low = p32.to(dtype).requires_grad_()
    c = ops.dsnt(low)
    assert c.dtype == torch.float32
    assert torch.allclose(c, ops.dsnt(low.detach().float()), atol=1e-7)
    (grad,) = torch.autograd.grad(c.sum(), low)
    assert grad.dtype == dtype
    ref_in = low.detach().float().requires_grad_()
    (ref_grad,) = torch.autograd.grad(dsntnn.dsnt(ref_in).sum(), ref_in)
    assert torch.equal(grad, ref_grad.to(dtype))
    with torch.autocast("cpu", dtype=torch.bfloat16):  # the grid product is not autocast
        assert torch.equal(ops.dsnt(p32), ops.dsnt(p32.clone()).float())
        assert ops.dsnt(p32).dtype == torch.float32
