"""The ops no peer has (debiased, local and RLE DSNT, the reliability curve) and the edge cases
of the robustness issue, each proved on rendered maps."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dsntpose import ops

F64 = torch.float64


def bump_logits(
    centres_px: list[tuple[float, float]], heights: list[float], size: int, sigma: float
) -> torch.Tensor:
    """``(1, 1, size, size)`` float64 map: sum of Gaussian bumps of the given peak heights on a
    zero background (the debiasing paper's model of a heatmap)."""
    lin = torch.arange(size, dtype=F64)
    out = torch.zeros(size, size, dtype=F64)
    for (cx, cy), a in zip(centres_px, heights):
        d2 = (lin[None, :] - cx) ** 2 + (lin[:, None] - cy) ** 2
        out = out + a * torch.exp(-0.5 * d2 / sigma**2)
    return out[None, None]


# ------------------------------------------------------------------ debiased DSNT


@pytest.mark.parametrize("temperature", [1.0, 0.5, 2.0])
def test_debiased_dsnt_recovers_subpixel_peaks_where_plain_dsnt_is_off_by_pixels(
    temperature: float,
) -> None:
    size, sigma = 64, 3.0
    off_by_pixels = 0
    for cx, cy in [(20.3, 41.75), (44.6, 18.2), (31.5, 30.9)]:
        for height in [0.5, 1.0, 2.0, 4.0, 8.0]:
            heat = bump_logits([(cx, cy)], [height], size, sigma)
            logits = (temperature * heat).requires_grad_()  # logits / T is the heatmap
            truth = torch.tensor([[[cx, cy]]], dtype=F64)
            plain = ops.normalized_to_pixel(
                ops.dsnt(ops.flat_softmax(logits, temperature)), (64, 64)
            )
            debiased = ops.debiased_dsnt(logits, temperature)
            got = ops.normalized_to_pixel(debiased, (size, size))
            err_plain = (plain - truth).norm().item()
            assert (got - truth).abs().max().item() < 1e-3, (cx, cy, height, err_plain)
            off_by_pixels += err_plain > 1.0
            debiased.sum().backward()
            assert logits.grad is not None and torch.isfinite(logits.grad).all()
    assert off_by_pixels >= 10  # the regime where the bias matters is covered


def test_debiased_dsnt_of_a_map_without_a_peak_is_plain_dsnt() -> None:
    x = -torch.rand(2, 3, 9, 9, dtype=F64)  # all logits below the background
    assert torch.allclose(ops.debiased_dsnt(x), ops.dsnt(ops.flat_softmax(x)))
    assert torch.autograd.gradcheck(
        lambda a: ops.debiased_dsnt(a, 0.7),
        (torch.rand(1, 2, 5, 6, dtype=F64, requires_grad=True) * 3,),
    )


# ------------------------------------------------------------------ local DSNT


def test_local_dsnt_picks_the_stronger_of_two_peaks() -> None:
    """Left and right wrist on one map (dsntnn#13): the mean lies between, the local one on the
    stronger peak, to float precision (its mass lies inside the window)."""
    size = 48
    for strong, weak in [((12.3, 20.6), (35.1, 24.0)), ((30.75, 8.5), (9.2, 40.4))]:
        heat = bump_logits([strong, weak], [1.0, 0.6], size, 1.0)
        probs = heat / heat.sum()
        probs.requires_grad_()
        truth = torch.tensor([[list(strong)]], dtype=F64)
        plain = ops.normalized_to_pixel(ops.dsnt(probs), (size, size))
        local = ops.local_dsnt(probs, radius=6)
        got = ops.normalized_to_pixel(local, (size, size))
        assert (plain - truth).norm() > 5  # pulled towards the other wrist
        assert (got - truth).abs().max() < 1e-6
        local.sum().backward()
        assert probs.grad is not None and torch.isfinite(probs.grad).all()


def test_local_dsnt_is_exact_for_a_single_peak_and_near_the_border() -> None:
    size = 32
    for centre in [(10.4, 20.7), (1.2, 30.1)]:  # the second box is shifted inside the map
        mu = ops.pixel_to_normalized(torch.tensor([[list(centre)]], dtype=F64), (size, size))
        g = ops.make_gauss(mu, (size, size), 0.8)
        local = ops.local_dsnt(g, radius=6)
        assert (local - ops.dsnt(g)).abs().max() < 1e-8
    three_d = ops.make_gauss(torch.tensor([[[0.1, -0.2, 0.3]]], dtype=F64), (16, 20, 24), 1.0)
    assert (ops.local_dsnt(three_d, 7) - ops.dsnt(three_d)).abs().max() < 1e-8
    assert torch.allclose(ops.local_dsnt(torch.zeros(1, 1, 5, 5)), torch.zeros(1, 1, 2))


# ------------------------------------------------------------------ RLE and the map's spread


def test_heatmap_spread_of_a_gaussian_is_its_sigma() -> None:
    g = ops.make_gauss(torch.zeros(1, 1, 2, dtype=F64), (64, 48), 2.5)
    assert torch.allclose(ops.heatmap_spread(g), torch.full((1, 1, 2), 2.5, dtype=F64), atol=1e-6)
    assert torch.allclose(
        ops.heatmap_spread(g, normalized=True),
        torch.tensor([[[2.5 * 2 / 48, 2.5 * 2 / 64]]], dtype=F64),
        atol=1e-8,
    )
    one_hot = torch.zeros(1, 1, 5, 5, requires_grad=True)
    ops.heatmap_spread(one_hot + torch.eye(5)[None, None] / 5).sum().backward()
    assert one_hot.grad is not None and torch.isfinite(one_hot.grad).all()


def test_rle_losses_are_the_base_negative_log_likelihoods() -> None:
    coords = torch.tensor([[[0.1, -0.2]]], dtype=F64)
    target = torch.tensor([[[0.3, -0.1]]], dtype=F64)
    sigma = torch.tensor([[[0.05, 0.2]]], dtype=F64)
    e = (target - coords).abs() / sigma
    laplace = (torch.log(2 * sigma) + e).sum(-1)
    gauss = (torch.log(sigma) + 0.5 * math.log(2 * math.pi) + e**2 / 2).sum(-1)
    assert torch.allclose(ops.rle_losses(coords, target, sigma), laplace)
    assert torch.allclose(ops.rle_losses(coords, target, sigma, base="gaussian"), gauss)
    # the scale that minimises the Laplace NLL is the error itself
    s = torch.linspace(0.01, 1, 2000, dtype=F64)
    nll = ops.rle_losses(coords.expand(2000, 1, 2), target.expand(2000, 1, 2), s[:, None, None])
    best = s[nll[:, 0].argmin()]
    assert best.item() == pytest.approx((0.2 + 0.1) / 2, abs=0.2)  # between the two errors
    with pytest.raises(ValueError, match="base must be"):
        ops.rle_losses(coords, target, sigma, base="cauchy")  # type: ignore[arg-type]


def test_rle_with_the_map_spread_trains_a_dsnt_map() -> None:
    """sigma from the map's own spread: the gradient sharpens a broad map at its target."""
    torch.manual_seed(0)
    logits = (0.1 * torch.randn(1, 1, 16, 16, dtype=F64)).requires_grad_()
    target = torch.tensor([[[0.3, -0.4]]], dtype=F64)
    opt = torch.optim.Adam([logits], lr=0.3)
    for _ in range(150):
        opt.zero_grad()
        p = ops.flat_softmax(logits)
        loss = ops.rle_losses(ops.dsnt(p), target, ops.heatmap_spread(p, normalized=True)).sum()
        loss.backward()
        opt.step()
    p = ops.flat_softmax(logits)
    assert (ops.dsnt(p) - target).abs().max() < 0.02
    assert ops.heatmap_spread(p).max() < 1.5  # px: sharper than the start (about 4.6 px)


# ------------------------------------------------------------------ reliability curve


def test_reliability_curve_of_calibrated_and_overconfident_confidences() -> None:
    rng = np.random.default_rng(0)
    conf = rng.uniform(0, 1, 200_000)
    correct = rng.uniform(0, 1, conf.shape) < conf
    r = ops.reliability_curve(
        torch.from_numpy(conf).view(-1, 16), torch.from_numpy(correct).view(-1, 16)
    )
    assert r.counts.sum() == conf.size and r.edges.shape == (11,)
    assert np.abs(r.accuracy - r.confidence).max() < 0.01 and r.ece < 0.005
    over = ops.reliability_curve(conf, rng.uniform(0, 1, conf.shape) < conf**3, bins=5)
    assert over.ece > 0.1 and (over.accuracy < over.confidence).all()
    masked = ops.reliability_curve([0.2, np.nan, 1.0, 0.9], [1, 1, 1, 0], bins=4, mask=[1, 1, 1, 0])
    assert masked.counts.tolist() == [1, 0, 0, 1] and np.isnan(masked.accuracy[1])


def test_calibration_script_ece_agrees_with_the_library_and_its_interval_covers_it() -> None:
    """scripts/calibrate.py's ECE (ops.reliability_curve's, 15 bins) by hand; its bootstrap interval
    over people holds the estimate, is narrow for many people and wide for few, and a
    miscalibrated set's interval lies above a calibrated one's."""
    from pathlib import Path

    from conftest import load_script

    calibrate = load_script("calibrate", Path(__file__).parents[1] / "scripts" / "calibrate.py")
    rng = np.random.default_rng(1)
    conf = rng.uniform(0, 1, 16 * 3000)
    correct = rng.uniform(0, 1, conf.shape) < conf
    owner = np.repeat(np.arange(3000), 16)
    # by hand: bin of 0.1 right half the time (|0.5 - 0.1| x 2), bin of 0.9 always (0.1 x 2)
    by_hand = calibrate.expected_calibration_error(np.array([0.1, 0.1, 0.9, 0.9]), [0, 1, 1, 1])
    assert by_hand == pytest.approx(0.25)
    ece = calibrate.expected_calibration_error(conf, correct)
    low, high = calibrate.ece_interval(conf, correct, owner, draws=200)
    assert low <= ece <= high and high - low < 0.02
    few = calibrate.ece_interval(conf[:160], correct[:160], owner[:160], draws=200)
    assert few[1] - few[0] > high - low
    over = rng.uniform(0, 1, conf.shape) < conf**2
    assert calibrate.ece_interval(conf, over, owner, draws=200)[0] > high


# ------------------------------------------------------------------ edge cases, each decided


def test_infinite_logits_take_the_softmax_limit_with_finite_gradients() -> None:
    x = torch.randn(2, 3, 6, 7, requires_grad=True)
    logits = x.clone()
    logits.data[0, 0] = -math.inf  # an all -inf map: uniform, the centre
    logits.data[0, 1, 4, 2] = math.inf  # one +inf logit: all mass there
    target = torch.zeros(2, 3, 2)
    mask = torch.ones(2, 3)
    mask[0, :2] = 0  # and masked joints stay out of the gradient
    for fused in (False, True):
        if fused:
            probs, coords, js = ops.softmax_dsnt(logits, target, 1.0)
        else:
            probs = ops.flat_softmax(logits)
            coords, js = ops.dsnt(probs), ops.js_reg_losses(probs, target, 1.0)
        assert torch.allclose(coords[0, 0], torch.zeros(2), atol=1e-6)
        assert torch.allclose(
            coords[0, 1], ops.pixel_to_normalized(torch.tensor([2.0, 4.0]), (6, 7))
        )
        assert js is not None and torch.isfinite(js).all()
        grad = torch.autograd.grad(
            ops.average_loss(ops.euclidean_losses(coords, target) + js, mask), logits
        )[0]
        assert torch.isfinite(grad).all()


def test_temperatures_that_are_not_positive_and_finite_are_errors() -> None:
    x = torch.randn(1, 2, 5, 5)
    for t in (0.0, -1.0, math.inf, math.nan):
        for f in (
            lambda t=t: ops.flat_softmax(x, t),
            lambda t=t: ops.normalize_heatmaps(x, temperature=t),
            lambda t=t: ops.softmax_dsnt(x, temperature=t),
            lambda t=t: ops.debiased_dsnt(x, t),
        ):
            with pytest.raises(ValueError, match="temperature must be > 0 and finite"):
                f()


def test_nan_target_under_mask_zero_gives_a_finite_step() -> None:
    x = torch.randn(2, 3, 20, 20, requires_grad=True)
    target = torch.rand(2, 3, 2) * 2 - 1
    target[1, 2] = math.nan
    target[0, 1, 0] = math.inf
    mask = torch.ones(2, 3)
    mask[1, 2] = mask[0, 1] = 0
    _, c, js = ops.softmax_dsnt(x, target, 1.0)  # once an index error
    assert js is not None and js[1, 2].isnan() and js[0, 1].isnan() and js[0, 0].isfinite()
    p = ops.flat_softmax(x)
    losses = [
        ops.euclidean_losses(c, target) + js,
        ops.l1_losses(ops.dsnt(p), target) + ops.kl_reg_losses(p, target, 1.0),
        ops.mse_losses(ops.dsnt(p), target) + ops.js_reg_losses(p, target, 1.0),
        ops.rle_losses(ops.dsnt(p), target, ops.heatmap_spread(p, normalized=True)),
    ]
    for per_joint in losses:
        assert per_joint[1, 2].isnan()
        loss = ops.average_loss(per_joint, mask)
        (grad,) = torch.autograd.grad(loss, x, retain_graph=True)
        assert torch.isfinite(loss) and torch.isfinite(grad).all()
    unmasked = ops.average_loss(ops.euclidean_losses(c, target))
    assert unmasked.isnan()  # a NaN target that counts is not hidden


def test_tiny_sigma_is_a_clear_error() -> None:
    p = ops.flat_softmax(torch.randn(1, 2, 8, 8))
    mu = torch.zeros(1, 2, 2)
    for f in (ops.js_reg_losses, ops.kl_reg_losses):
        with pytest.raises(ValueError, match=r"sigma_t must be >= 0.001 pixels"):
            f(p, mu, 1e-30)
    with pytest.raises(ValueError, match=r"sigma_t must be >= 0.001 pixels"):
        ops.softmax_dsnt(torch.randn(1, 2, 8, 8), mu, 1e-30)
    assert torch.isfinite(ops.js_reg_losses(p, mu, 1e-3)).all()  # the narrowest accepted


def test_integer_maps_are_computed_in_float() -> None:
    one_hot = torch.zeros(1, 1, 5, 7, dtype=torch.int64)
    one_hot[0, 0, 4, 1] = 1
    expected = ops.pixel_to_normalized(torch.tensor([[[1.0, 4.0]]]), (5, 7))
    assert torch.allclose(ops.dsnt(one_hot), expected)
    assert ops.dsnt(one_hot).dtype == torch.float32
    assert torch.allclose(ops.local_dsnt(one_hot.bool()), expected)
    assert torch.allclose(ops.flat_softmax(one_hot * 50).argmax(), torch.tensor(29))


def test_cached_constants_made_under_inference_mode_serve_autograd() -> None:
    """A map size first seen under ``torch.inference_mode`` (evaluation, a benchmark) must not
    cache inference tensors that a later training step cannot save for backward."""
    size = (5, 13)  # a size no other test uses, so the caches start empty for it
    with torch.inference_mode():
        ops.dsnt(ops.flat_softmax(torch.randn(1, 2, *size)))
        ops.js_reg_losses(ops.flat_softmax(torch.randn(1, 2, *size)), torch.zeros(1, 2, 2), 1.0)
    logits = torch.randn(1, 2, *size, requires_grad=True)
    probs = ops.flat_softmax(logits)
    loss = ops.dsnt(probs).sum() + ops.js_reg_losses(probs, torch.zeros(1, 2, 2), 1.0).sum()
    loss.backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()
