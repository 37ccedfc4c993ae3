"""The weight-free operations of DSNT (Nibali et al., 2018), as a drop-in library.

A fully convolutional network emits one map of logits per joint. ``normalize_heatmaps`` turns
each into a probability map, ``dsnt`` takes its expected coordinates, and the loss is the
Euclidean distance to the target plus a regulariser that pulls the map towards a Gaussian at
the target (``js_reg_losses``, ``kl_reg_losses`` or ``variance_reg_losses``)::

    >>> import torch
    >>> from dsntpose import ops
    >>> logits = torch.randn(2, 16, 28, 28, requires_grad=True)        # (B, J, H, W)
    >>> target = torch.rand(2, 16, 2) * 2 - 1                           # (B, J, 2), normalised
    >>> mask = torch.ones(2, 16)                                         # (B, J), 0 = missing
    >>> probs = ops.normalize_heatmaps(logits)                           # softmax over H*W
    >>> coords = ops.dsnt(probs)                                         # (B, J, 2) as (x, y)
    >>> loss = ops.average_loss(
    ...     ops.euclidean_losses(coords, target) + ops.js_reg_losses(probs, target, 1.0), mask)
    >>> loss.backward()

``softmax_dsnt`` computes the same softmax, DSNT and JS regulariser in one autograd node with a
written-out backward, several times faster on large maps when one output feeds all three.

Conventions (``docs/architecture.md``): pixel coordinates are 0-based with integers at pixel
*centres*; normalised coordinates run from -1 (outer left/top edge) to +1 (outer right/bottom
edge), so pixel ``i`` of a ``W`` px axis has its centre at ``(2 i + 1) / W - 1``. Coordinates
are ordered ``(x, y[, z])``; tensor sizes are ``(..., [D,] H, W)``. Sigmas are in heatmap pixels.

Names follow the paper's own library, dsntnn 0.5.3, wherever it has the function, so its users
can switch. Where this module differs, it is on purpose and tested: every op accepts 1-, 2- and
3-D maps; the Euclidean loss has a zero (not NaN) gradient at zero distance; the KL and JS
regularisers use the target Gaussian's separable, analytic log density, so they stay finite (in
value and gradient) for one-hot and very sharp maps and are several times faster; low-precision
inputs (bf16/fp16, e.g. under autocast) are computed in float32.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal, NamedTuple, overload

import torch
import torch.nn.functional as F
from torch import Tensor

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = [
    "ACTIVATIONS",
    "SoftmaxDSNT",
    "argmax_decode",
    "average_loss",
    "dsnt",
    "euclidean_losses",
    "flat_softmax",
    "heatmap_confidence",
    "heatmap_mse_losses",
    "heatmap_targets",
    "heatmap_variance",
    "js_reg_losses",
    "kl_reg_losses",
    "make_gauss",
    "normalize_heatmaps",
    "normalized_linspace",
    "normalized_to_pixel",
    "pixel_to_normalized",
    "softmax_dsnt",
    "variance_reg_losses",
]

Activation = Literal["softmax", "abs", "relu", "sigmoid"]
ACTIVATIONS: tuple[str, ...] = ("softmax", "abs", "relu", "sigmoid")
Refine = Literal["quarter", "dark"] | None


# --------------------------------------------------------------------------------------------
# Conventions: pixel <-> normalised coordinates
# --------------------------------------------------------------------------------------------


def _xyz_sizes(size: Sequence[int], ndim: int, name: str = "size") -> list[float]:
    """Spatial sizes in (x, y, z) order from a size given in tensor order (..., H, W)."""
    sizes = [float(s) for s in size]
    if len(sizes) != ndim:
        raise ValueError(
            f"{name} must give {ndim} spatial sizes in tensor order (..., H, W) to match "
            f"coordinates with {ndim} components, got {tuple(size)}"
        )
    return sizes[::-1]


@overload
def pixel_to_normalized(coords: Tensor, size: Sequence[int]) -> Tensor: ...
@overload
def pixel_to_normalized(
    coords: npt.NDArray[np.floating], size: Sequence[int]
) -> npt.NDArray[np.floating]: ...
def pixel_to_normalized(coords, size):  # type: ignore[no-untyped-def]
    """Convert pixel coordinates to normalised coordinates.

    Args:
        coords: ``(..., D)`` pixel coordinates in ``(x, y[, z])`` order, 0-based with integers at
            pixel centres; a torch tensor or a numpy array.
        size: the ``D`` spatial sizes in tensor order ``([D,] H, W)``.

    Returns:
        ``(..., D)`` normalised coordinates: ``(2 * px + 1) / size - 1``, so -1 and +1 are the
        outer edges of the first and last pixel.

    Example:
        >>> pixel_to_normalized(torch.tensor([[0.0, 3.0]]), (4, 4))
        tensor([[-0.7500,  0.7500]])
    """
    sizes = _xyz_sizes(size, coords.shape[-1])
    if isinstance(coords, Tensor):
        return (2 * coords + 1) / coords.new_tensor(sizes) - 1
    return (2 * coords + 1) / sizes - 1


@overload
def normalized_to_pixel(coords: Tensor, size: Sequence[int]) -> Tensor: ...
@overload
def normalized_to_pixel(
    coords: npt.NDArray[np.floating], size: Sequence[int]
) -> npt.NDArray[np.floating]: ...
def normalized_to_pixel(coords, size):  # type: ignore[no-untyped-def]
    """Convert normalised coordinates to pixel coordinates (inverse of ``pixel_to_normalized``).

    Args:
        coords: ``(..., D)`` normalised coordinates in ``(x, y[, z])`` order (tensor or array).
        size: the ``D`` spatial sizes in tensor order ``([D,] H, W)``.

    Returns:
        ``(..., D)`` pixel coordinates, ``((norm + 1) * size - 1) / 2``.

    Example:
        >>> normalized_to_pixel(torch.tensor([[-1.0, 1.0]]), (4, 4))
        tensor([[-0.5000,  3.5000]])
    """
    sizes = _xyz_sizes(size, coords.shape[-1])
    if isinstance(coords, Tensor):
        return ((coords + 1) * coords.new_tensor(sizes) - 1) / 2
    return ((coords + 1) * sizes - 1) / 2


def normalized_linspace(
    length: int, *, dtype: torch.dtype | None = None, device: torch.device | str | None = None
) -> Tensor:
    """Normalised coordinates of the centres of ``length`` pixels along one axis.

    Example:
        >>> normalized_linspace(4)
        tensor([-0.7500, -0.2500,  0.2500,  0.7500])
    """
    if length < 1:
        raise ValueError(f"length must be >= 1, got {length}")
    half = 1.0 - 1.0 / length
    return torch.linspace(-half, half, length, dtype=dtype, device=device)


# --------------------------------------------------------------------------------------------
# Shape checks and helpers
# --------------------------------------------------------------------------------------------


def _check_maps(x: Tensor, name: str) -> int:
    """Check ``x`` is ``(B, J, *spatial)`` with 1 to 3 spatial dims; return the spatial count."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not 3 <= x.dim() <= 5:
        raise ValueError(
            f"{name} must be (B, J, W), (B, J, H, W) or (B, J, D, H, W), got {tuple(x.shape)}"
        )
    return x.dim() - 2


def _check_coords(c: Tensor, maps: Tensor, name: str) -> None:
    """Check that ``c`` is ``(B, J, D)`` for the ``(B, J, *spatial)`` maps."""
    ndim = maps.dim() - 2
    if c.dim() != 3 or c.shape[:2] != maps.shape[:2] or c.shape[-1] != ndim:
        b, j = maps.shape[:2]
        raise ValueError(
            f"{name} must be ({b}, {j}, {ndim}) for maps {tuple(maps.shape)}, got {tuple(c.shape)}"
        )


def _float(x: Tensor) -> Tensor:
    """Upcast half and bfloat16 to float32 (DSNT's sums and logs need the precision)."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def _marginals(probs: Tensor) -> list[Tensor]:
    """Marginal distributions of ``(B, J, *spatial)`` maps in (x, y, z) order: ``(B, J, size)``."""
    nd = probs.dim() - 2
    spatial = list(range(2, 2 + nd))
    out = []
    for k in range(nd):  # k = 0 is x, the last axis
        axis = 1 + nd - k
        others = [a for a in spatial if a != axis]
        out.append(probs.sum(dim=others) if others else probs)
    return out


def _axes(probs: Tensor) -> list[Tensor]:
    """Normalised pixel-centre positions per axis in (x, y, z) order."""
    return [
        normalized_linspace(s, dtype=probs.dtype, device=probs.device)
        for s in reversed(probs.shape[2:])
    ]


def _dsnt_2d(p: Tensor) -> Tensor:
    """DSNT of ``(B, J, H, W)`` maps through their marginals (timed faster on CPU than one
    ``(B, J, H * W) @ (H * W, 2)`` product, whose second dimension is too thin for BLAS)."""
    h, w = p.shape[-2:]
    x = (p.sum(-2) * normalized_linspace(w, dtype=p.dtype, device=p.device)).sum(-1)
    y = (p.sum(-1) * normalized_linspace(h, dtype=p.dtype, device=p.device)).sum(-1)
    return torch.stack((x, y), dim=-1)


def _dot(a: Tensor, b: Tensor) -> Tensor:
    """``(a * b).sum(-1)`` of ``(B, J, n)`` tensors as batched products, with no ``(B, J, n)``
    temporary (on CPU a fresh large tensor costs more page faults than its arithmetic), in the
    inputs' dtype also under autocast (which would run a product in bf16/fp16)."""
    a, b = a.unsqueeze(-2), b.unsqueeze(-1)
    if torch.is_autocast_enabled(a.device.type):
        with torch.autocast(a.device.type, enabled=False):
            return (a @ b).flatten(-3)
    return (a @ b).flatten(-3)


def _safe_xlogx(x: Tensor) -> Tensor:
    """``x * log(x)`` with value 0 and a finite gradient at ``x == 0``."""
    return x * torch.log(x.clamp_min(torch.finfo(x.dtype).tiny))


# --------------------------------------------------------------------------------------------
# Heatmap normalisation and the transform itself
# --------------------------------------------------------------------------------------------


def flat_softmax(logits: Tensor, temperature: float = 1.0) -> Tensor:
    """Softmax over all spatial cells of each map.

    Args:
        logits: ``(B, J, *spatial)`` raw maps (1 to 3 spatial dims).
        temperature: logits are divided by it; below 1 sharpens, above 1 flattens.

    Returns:
        Probability maps of the same shape (float32 for half/bf16 input), each summing to 1.
    """
    _check_maps(logits, "logits")
    x = _float(logits)
    if temperature != 1.0:
        x = x / temperature
    flat = x.flatten(2)
    return torch.softmax(flat, dim=-1).view(x.shape)


def normalize_heatmaps(
    logits: Tensor, activation: Activation | str = "softmax", *, temperature: float = 1.0
) -> Tensor:
    """Turn raw maps into probability maps, the paper's "heatmap normalisation".

    ``softmax`` is the flat softmax over all cells (the paper's best); ``abs``, ``relu`` and
    ``sigmoid`` apply the activation and divide by the map's sum. A map whose activation is zero
    everywhere (``relu`` of a non-positive map, ``abs`` of an all-zero map) becomes the uniform
    map, whose expectation is the centre, with a finite (zero) gradient: never NaN. Such joints
    carry no information and should be masked (dsntnn#4).

    Args:
        logits: ``(B, J, *spatial)`` raw maps (1 to 3 spatial dims).
        activation: ``"softmax"``, ``"abs"``, ``"relu"`` or ``"sigmoid"``.
        temperature: softmax temperature (ignored by the other activations).

    Returns:
        ``(B, J, *spatial)`` non-negative maps summing to 1 over the spatial dims.

    Example:
        >>> p = normalize_heatmaps(torch.zeros(1, 1, 3, 3), "relu")
        >>> p.sum().item(), p[0, 0, 1, 1].item()
        (1.0, 0.1111111119389534)
    """
    if activation == "softmax":
        return flat_softmax(logits, temperature)
    _check_maps(logits, "logits")
    x = _float(logits)
    if activation == "abs":
        a = x.abs()
    elif activation == "relu":
        a = F.relu(x)
    elif activation == "sigmoid":
        a = torch.sigmoid(x)
    else:
        raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, got {activation!r}")
    flat = a.flatten(2)
    total = flat.sum(-1, keepdim=True)
    uniform = torch.full_like(flat, 1.0 / flat.shape[-1])
    probs = torch.where(total > 0, flat / total.clamp_min(torch.finfo(a.dtype).tiny), uniform)
    return probs.view(x.shape)


def dsnt(probs: Tensor) -> Tensor:
    """Differentiable spatial to numerical transform: the expected coordinates of each map.

    Args:
        probs: ``(B, J, W)``, ``(B, J, H, W)`` or ``(B, J, D, H, W)`` probability maps, each
            summing to 1 (e.g. from ``normalize_heatmaps``).

    Returns:
        ``(B, J, n)`` normalised coordinates ``(x[, y[, z]])``, in float32 for half input.

    Example:
        >>> p = torch.zeros(1, 1, 4, 4)
        >>> p[0, 0, 3, 0] = 1.0          # row 3 (y), column 0 (x)
        >>> dsnt(p)
        tensor([[[-0.7500,  0.7500]]])
    """
    _check_maps(probs, "probs")
    p = _float(probs)
    if p.dim() == 4:  # the common case, with as few kernels as possible
        return _dsnt_2d(p)
    coords = [(m * v).sum(-1) for m, v in zip(_marginals(p), _axes(p))]
    return torch.stack(coords, dim=-1)


def heatmap_variance(probs: Tensor) -> Tensor:
    """Variance of each map along each axis, in heatmap pixels squared.

    Args:
        probs: ``(B, J, *spatial)`` probability maps.

    Returns:
        ``(B, J, n)`` variances in ``(x, y[, z])`` order, px².
    """
    _check_maps(probs, "probs")
    p = _float(probs)
    out = []
    for m, v, size in zip(_marginals(p), _axes(p), reversed(p.shape[2:])):
        mu = (m * v).sum(-1, keepdim=True)
        var_norm = (m * (v - mu) ** 2).sum(-1)
        out.append(var_norm * (size / 2) ** 2)
    return torch.stack(out, dim=-1)


# --------------------------------------------------------------------------------------------
# Gaussians at normalised means
# --------------------------------------------------------------------------------------------


def _gauss_log_1d(means: Tensor, size: Sequence[int], sigma: float) -> list[Tensor]:
    """Per-axis unnormalised log densities ``-(x - mu)^2 / (2 s^2)``: (B, J, size_k), x first."""
    out = []
    for k, s in enumerate(reversed(list(size))):
        lin = normalized_linspace(int(s), dtype=means.dtype, device=means.device)
        sigma_norm = 2.0 * sigma / s
        out.append(-0.5 * ((lin - means[..., k : k + 1]) / sigma_norm) ** 2)
    return out


def _outer(factors: list[Tensor]) -> Tensor:
    """Outer product of per-axis factors (x, y, z order) into a ``(B, J, [D,] H, W)`` map."""
    nd = len(factors)
    out = factors[0]  # x: (B, J, W)
    for k in range(1, nd):
        # axis k comes before all axes already in `out`
        f = factors[k].reshape(*factors[k].shape, *([1] * k))
        out = f * out.unsqueeze(2)
    return out


def _outer_sum(terms: list[Tensor]) -> Tensor:
    """Outer sum of per-axis terms (x, y, z order) into a ``(B, J, [D,] H, W)`` tensor."""
    out = terms[0]
    for k in range(1, len(terms)):
        out = terms[k].reshape(*terms[k].shape, *([1] * k)) + out.unsqueeze(2)
    return out


def make_gauss(means: Tensor, size: Sequence[int], sigma: float, normalize: bool = True) -> Tensor:
    """Draw axis-aligned Gaussians at normalised means.

    Args:
        means: ``(B, J, n)`` normalised centres in ``(x, y[, z])`` order.
        size: the ``n`` map sizes in tensor order ``([D,] H, W)``, pixels.
        sigma: standard deviation in pixels of the map.
        normalize: ``True`` gives maps summing to 1 (the exact discrete normalisation, computed in
            log space so a centre far outside the map still gives a valid map); ``False`` gives
            peak value 1 at the centre (heatmap-matching targets).

    Returns:
        ``(B, J, *size)`` maps. Differentiable with respect to ``means``.

    Example:
        >>> g = make_gauss(torch.tensor([[[0.0, 0.0]]]), (8, 8), sigma=1.0)
        >>> round(g.sum().item(), 6), dsnt(g).abs().max().item() < 1e-6
        (1.0, True)
    """
    if means.dim() != 3 or means.shape[-1] != len(size):
        raise ValueError(
            f"means must be (B, J, {len(size)}) for size {tuple(size)}, got {tuple(means.shape)}"
        )
    if sigma <= 0:
        raise ValueError(f"sigma must be > 0 pixels, got {sigma}")
    m = _float(means)
    logs = _gauss_log_1d(m, size, sigma)
    if normalize:
        logs = [lg - torch.logsumexp(lg, dim=-1, keepdim=True) for lg in logs]
    return _outer([lg.exp() for lg in logs])


def heatmap_targets(means: Tensor, size: Sequence[int], sigma: float) -> Tensor:
    """Heatmap-matching targets: unnormalised Gaussians (peak 1) at the normalised means.

    Args:
        means: ``(B, J, 2)`` normalised target coordinates ``(x, y)``.
        size: ``(H, W)`` of the heatmaps.
        sigma: Gaussian standard deviation in heatmap pixels (the paper uses 1).

    Returns:
        ``(B, J, H, W)`` target maps with values in ``[0, 1]``.
    """
    return make_gauss(means, size, sigma, normalize=False)


# --------------------------------------------------------------------------------------------
# Losses
# --------------------------------------------------------------------------------------------


def euclidean_losses(actual: Tensor, target: Tensor) -> Tensor:
    """Euclidean distance per joint, with a zero (finite) gradient at zero distance.

    Args:
        actual: ``(B, J, n)`` predicted coordinates.
        target: ``(B, J, n)`` target coordinates, same units.

    Returns:
        ``(B, J)`` distances.
    """
    if actual.shape != target.shape:
        raise ValueError(
            f"actual and target must have the same shape, got {tuple(actual.shape)} and {tuple(target.shape)}"
        )
    d = _float(actual) - _float(target)
    sq = (d * d).sum(-1)
    positive = sq > 0
    # double where: sqrt never sees 0, so its gradient stays finite where the distance is 0
    return torch.where(
        positive, torch.sqrt(torch.where(positive, sq, torch.ones_like(sq))), torch.zeros_like(sq)
    )


def average_loss(losses: Tensor, mask: Tensor | None = None) -> Tensor:
    """Mean of per-joint losses over the joints that the mask keeps.

    Args:
        losses: ``(B, J)`` per-joint losses.
        mask: optional ``(B, J)`` weights, 1 to keep and 0 to ignore (bool or float). Masked
            entries never reach the result, even if they are NaN or inf.

    Returns:
        A scalar: ``sum(mask * losses) / max(sum(mask), 1)``; 0 (not NaN) when all are masked.
    """
    if mask is None:
        return losses.sum() / max(losses.numel(), 1)
    if mask.shape != losses.shape:
        raise ValueError(
            f"mask must have the shape of losses {tuple(losses.shape)}, got {tuple(mask.shape)}"
        )
    w = mask.to(losses.dtype)
    kept = torch.where(w != 0, losses * w, torch.zeros_like(losses))
    return kept.sum() / w.sum().clamp_min(1)


def heatmap_mse_losses(maps: Tensor, targets: Tensor) -> Tensor:
    """Heatmap matching loss: mean squared error per joint over all cells.

    Args:
        maps: ``(B, J, *spatial)`` raw predicted maps.
        targets: ``(B, J, *spatial)`` target maps (``heatmap_targets``).

    Returns:
        ``(B, J)`` losses.
    """
    _check_maps(maps, "maps")
    if maps.shape != targets.shape:
        raise ValueError(
            f"targets must have the shape of maps {tuple(maps.shape)}, got {tuple(targets.shape)}"
        )
    d = _float(maps) - _float(targets)
    return (d * d).flatten(2).mean(-1)


# --------------------------------------------------------------------------------------------
# Regularisers: shape the map towards a Gaussian at the target
# --------------------------------------------------------------------------------------------


def variance_reg_losses(probs: Tensor, sigma_t: float) -> Tensor:
    """Variance regulariser: squared error between each axis's variance and ``sigma_t**2``.

    As in dsntnn, variances are in heatmap pixels: ``sum_axes (Var_px - sigma_t**2) ** 2``.

    Args:
        probs: ``(B, J, *spatial)`` probability maps.
        sigma_t: target standard deviation in heatmap pixels.

    Returns:
        ``(B, J)`` losses.
    """
    return ((heatmap_variance(probs) - sigma_t**2) ** 2).sum(-1)


def _target_log_1d(mu_t: Tensor, size: Sequence[int], sigma_t: float) -> list[Tensor]:
    """Exact per-axis log densities of the normalised target Gaussian: (B, J, size_k), x first."""
    logs = _gauss_log_1d(_float(mu_t).detach(), size, sigma_t)
    return [lg - torch.logsumexp(lg, dim=-1, keepdim=True) for lg in logs]


def _neg_entropy(probs: Tensor) -> Tensor:
    """``sum p log p`` over the spatial cells, finite in value and gradient at p = 0: (B, J)."""
    return _safe_xlogx(probs).flatten(2).sum(-1)


def kl_reg_losses(probs: Tensor, mu_t: Tensor, sigma_t: float) -> Tensor:
    """Kullback-Leibler divergence ``KL(p || q)`` from each map to the target Gaussian ``q``.

    ``q`` is the normalised Gaussian at ``mu_t`` with standard deviation ``sigma_t`` px; it is
    separable, so ``sum p log q`` reduces to the map's marginals and ``log q`` is evaluated
    analytically (it never underflows, unlike a drawn ``q``).

    Args:
        probs: ``(B, J, *spatial)`` probability maps.
        mu_t: ``(B, J, n)`` normalised target coordinates (no gradient flows to them).
        sigma_t: target standard deviation in heatmap pixels.

    Returns:
        ``(B, J)`` divergences in nats.
    """
    _check_maps(probs, "probs")
    _check_coords(mu_t, probs, "mu_t")
    p = _float(probs)
    log_q = _target_log_1d(mu_t, p.shape[2:], sigma_t)
    cross = sum((m * lq).sum(-1) for m, lq in zip(_marginals(p), log_q))
    return _neg_entropy(p) - cross


def _window_half(sigma_t: float, dtype: torch.dtype = torch.float64) -> int:
    """Half-width in px of the window that holds all of the target's mass that ``dtype`` sees.

    The window reaches ``k sigma`` past the target's cell centre on each side: ``k = 8`` in
    float64 (outside, the target is below ``exp(-32)`` of its peak), ``k = 6`` in float32 and
    lower (the mass outside, ``erfc(6 / sqrt 2) = 2e-9`` per axis, is below float32's
    resolution), which on a 28 px map with sigma 1 px cuts the window from 19 to 15 px.
    """
    k = 8.0 if dtype == torch.float64 else 6.0
    return math.ceil(k * sigma_t + 0.5)


def _target_window(
    mu_t: Tensor, size: Sequence[int], sigma_t: float, dtype: torch.dtype = torch.float64
) -> tuple[list[Tensor], list[Tensor]]:
    """Per-axis windows holding all of the target Gaussian's non-negligible mass.

    Along each axis (x first) the window has ``min(2 h + 1, size)`` cells with
    ``h = _window_half(sigma_t, dtype)`` px, centred on the target and clamped inside the map.
    Returns the window's first-cell indices ``(B, J, 1)`` and the target's exact log density in
    the window ``(B, J, win)``.
    """
    m = _float(mu_t).detach()
    starts, logs = [], []
    half = _window_half(sigma_t, dtype)
    for k, s in enumerate(reversed(list(size))):
        s = int(s)
        win = min(2 * half + 1, s)
        lin = normalized_linspace(s, dtype=m.dtype, device=m.device)
        full = -0.5 * ((lin - m[..., k : k + 1]) / (2.0 * sigma_t / s)) ** 2
        full = full - torch.logsumexp(full, dim=-1, keepdim=True)
        centre = torch.round(((m[..., k : k + 1] + 1) * s - 1) / 2)
        start = (centre - half).clamp(0, s - win).long()
        starts.append(start)
        logs.append(full.gather(-1, start + torch.arange(win, device=m.device)))
    return starts, logs


def js_reg_losses(probs: Tensor, mu_t: Tensor, sigma_t: float) -> Tensor:
    """Jensen-Shannon divergence between each map and the target Gaussian (the paper's choice).

    ``JS(p, q) = sum_cells [p log p + q log q] / 2 - m log m`` with ``m = (p + q) / 2``, where
    ``q`` is the normalised Gaussian at ``mu_t`` with standard deviation ``sigma_t`` px. A cell
    where ``q`` vanishes contributes exactly ``p log(2) / 2``, so the cell-by-cell sum is taken
    only in a window of ``+-(8 sigma + 1/2)`` px around the target in float64 (outside it ``q`` is
    below ``exp(-32)`` of its peak; ``+-(6 sigma + 1/2)`` px in float32, where the mass outside
    is below the type's resolution) and the rest of the map enters through its total mass: the
    result equals the full sum to ~1e-12 in float64 and its gradient is exact, while large maps
    cost a few passes instead of a dozen. ``x log x`` is evaluated with value 0 and a finite gradient at
    0, so one-hot and sharp maps near their target stay finite in float32, and the target's
    log density is analytic, so it never underflows.

    Args:
        probs: ``(B, J, *spatial)`` probability maps.
        mu_t: ``(B, J, n)`` normalised target coordinates (no gradient flows to them).
        sigma_t: target standard deviation in heatmap pixels.

    Returns:
        ``(B, J)`` divergences in nats, in ``[0, log 2]``.

    Example:
        >>> mu = torch.zeros(1, 1, 2)
        >>> js_reg_losses(make_gauss(mu, (28, 28), 1.0), mu, 1.0).abs().item() < 1e-6
        True
    """
    _check_maps(probs, "probs")
    _check_coords(mu_t, probs, "mu_t")
    if sigma_t <= 0:
        raise ValueError(f"sigma_t must be > 0 pixels, got {sigma_t}")
    p = _float(probs)
    shape = p.shape[2:]
    if all(2 * _window_half(sigma_t, p.dtype) + 1 >= s for s in shape):  # the whole map
        lq = _outer_sum(_target_log_1d(mu_t, shape, sigma_t)).flatten(2)
        full: Tensor = _JSDivergence.apply(p.flatten(2), None, lq)  # type: ignore[no-untyped-call]
        return full
    starts, log_q = _target_window(mu_t, shape, sigma_t, p.dtype)
    # flat indices of the window cells: sum over axes of (start + offset) * stride
    strides = [1]
    for s in reversed(shape[1:]):
        strides.append(strides[-1] * int(s))
    index_axes = [
        (st + torch.arange(lq.shape[-1], device=p.device)) * stride
        for st, lq, stride in zip(starts, log_q, strides)
    ]
    flat_index = _outer_sum(index_axes).flatten(2)
    lq_win = _outer_sum(log_q).flatten(2)
    out: Tensor = _JSDivergence.apply(p.flatten(2), flat_index, lq_win)  # type: ignore[no-untyped-call]
    return out


class _JSDivergence(torch.autograd.Function):
    """JS divergence of flat maps ``(B, J, N)`` to a target known inside a window.

    ``lq`` is the target's log density at the window cells ``index`` ``(B, J, n)``, or at every
    cell when ``index`` is None; the target is 0 outside the window. The gradient is written
    directly (``log(2) / 2`` outside the window, ``log(p / m) / 2`` inside) rather than
    accumulated from gather, sum and log backwards, which on CPU cost several extra passes over
    the full map.
    """

    @staticmethod
    def forward(
        ctx: torch.autograd.function.FunctionCtx,
        p_flat: Tensor,
        index: Tensor | None,
        lq: Tensor,
    ) -> Tensor:
        p_win = p_flat if index is None else p_flat.gather(-1, index)
        q_win = lq.exp()
        m_win = 0.5 * (p_win + q_win)
        inside = 0.5 * (_safe_xlogx(p_win) + q_win * lq) - _safe_xlogx(m_win)
        ctx.save_for_backward(p_win, m_win, *(() if index is None else (index,)))
        ctx.size = p_flat.shape  # type: ignore[attr-defined]
        if index is None:
            return inside.sum(-1)
        outside_mass = p_flat.sum(-1) - p_win.sum(-1)
        return inside.sum(-1) + _HALF_LOG2 * outside_mass

    @staticmethod
    def backward(
        ctx: torch.autograd.function.FunctionCtx, grad: Tensor
    ) -> tuple[Tensor | None, None, None]:
        p_win, m_win, *rest = ctx.saved_tensors  # type: ignore[attr-defined]
        tiny = torch.finfo(p_win.dtype).tiny
        g = grad.unsqueeze(-1)
        g_win = 0.5 * (torch.log(p_win.clamp_min(tiny)) - torch.log(m_win.clamp_min(tiny))) * g
        if not rest:
            return g_win, None, None
        index = rest[0]
        grad_p = (_HALF_LOG2 * g).expand(ctx.size).contiguous()  # type: ignore[attr-defined]
        return grad_p.scatter_(-1, index, g_win), None, None


_HALF_LOG2 = 0.5 * math.log(2.0)


# --------------------------------------------------------------------------------------------
# The training path in one autograd node
# --------------------------------------------------------------------------------------------


class SoftmaxDSNT(NamedTuple):
    """What :func:`softmax_dsnt` returns: ``probs`` ``(B, J, H, W)``, ``coords`` ``(B, J, 2)``
    and ``js`` ``(B, J)`` (``None`` without a target)."""

    probs: Tensor
    coords: Tensor
    js: Tensor | None


def softmax_dsnt(
    logits: Tensor,
    mu_t: Tensor | None = None,
    sigma_t: float = 1.0,
    temperature: float = 1.0,
) -> SoftmaxDSNT:
    """Flat softmax, DSNT and (given a target) the JS regulariser of 2-D maps in one node.

    The same values as ``p = flat_softmax(logits, temperature)``, ``dsnt(p)`` and
    ``js_reg_losses(p, mu_t, sigma_t)``, but one autograd node computes all three and its
    backward is written out: with ``G`` the gradient reaching each cell's probability (from
    ``coords``, ``js`` and ``probs`` itself), the logits get ``p * (G - sum(p * G)) / T``. The
    coordinate part of ``G`` is the outer sum ``gx * x_w + gy * y_h`` and the JS part is the
    constant ``log(2) / 2`` outside the target's window (see :func:`js_reg_losses`), so apart
    from the window the backward is two passes over the maps, where the composed ops take
    half a dozen. Use it when one network output feeds all three; gradients may flow into any
    subset of the outputs.

    Args:
        logits: ``(B, J, H, W)`` raw maps (half and bf16 are computed in float32).
        mu_t: ``(B, J, 2)`` normalised target coordinates for the JS regulariser, or ``None``.
        sigma_t: the target Gaussian's standard deviation in heatmap pixels.
        temperature: the softmax temperature (see :func:`flat_softmax`).

    Returns:
        :class:`SoftmaxDSNT` ``(probs, coords, js)``.

    Example:
        >>> logits = torch.randn(2, 16, 28, 28, requires_grad=True)
        >>> target = torch.rand(2, 16, 2) * 2 - 1
        >>> probs, coords, js = softmax_dsnt(logits, target, sigma_t=1.0)
        >>> loss = average_loss(euclidean_losses(coords, target) + js)
        >>> loss.backward()
    """
    if logits.dim() != 4:
        raise ValueError(f"logits must be (B, J, H, W), got {tuple(logits.shape)}")
    if mu_t is not None:
        _check_coords(mu_t, logits, "mu_t")
        if sigma_t <= 0:
            raise ValueError(f"sigma_t must be > 0 pixels, got {sigma_t}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    x = _float(logits)
    if temperature != 1.0:
        x = x / temperature
    probs, coords, js = _SoftmaxDSNTJS.apply(x, mu_t, float(sigma_t))  # type: ignore[no-untyped-call]
    return SoftmaxDSNT(probs, coords, js if mu_t is not None else None)


class _SoftmaxDSNTJS(torch.autograd.Function):
    """``(B, J, H, W)`` logits -> probabilities, expected ``(x, y)`` and JS to the target.

    Written to allocate as few map-sized tensors as possible: on CPU a fresh map-sized
    tensor costs page faults that take longer than the arithmetic on it (measured: an
    out-of-place ``mul`` of 32 x 16 x 28 x 28 floats took 9x its in-place twin), so the
    backward fills one output tensor in place.
    """

    @staticmethod
    def forward(
        ctx: torch.autograd.function.FunctionCtx,
        x: Tensor,
        mu_t: Tensor | None,
        sigma_t: float,
    ) -> tuple[Tensor, Tensor, Tensor]:
        ctx.set_materialize_grads(False)
        b, j, h, w = x.shape
        p_flat = torch.softmax(x.flatten(2), dim=-1)
        coords = _dsnt_2d(p_flat.view(b, j, h, w))
        ctx.shape = (b, j, h, w)  # type: ignore[attr-defined]
        ctx.window = mu_t is not None  # type: ignore[attr-defined]
        if mu_t is None:
            ctx.save_for_backward(p_flat, coords)
            return p_flat.view(b, j, h, w), coords, coords.new_zeros(b, j)
        (start_x, start_y), (lq_x, lq_y) = _target_window(mu_t, (h, w), sigma_t, x.dtype)
        lq_x, lq_y = lq_x.to(x.dtype), lq_y.to(x.dtype)
        index: Tensor | None = None  # None: the window is the whole map
        if (lq_y.shape[-1], lq_x.shape[-1]) != (h, w):
            rows = (start_y + torch.arange(lq_y.shape[-1], device=x.device)) * w
            cols = start_x + torch.arange(lq_x.shape[-1], device=x.device)
            index = (rows.unsqueeze(-1) + cols.unsqueeze(-2)).flatten(2)  # (B, J, n) cells
        # Window-sized work, in place where possible. With m = (p + q) / 2 the window's part
        # of JS is (sum p (log p - log m) + sum q (log q - log m)) / 2: two small, non-negative
        # sums rather than three large ones that cancel (10x the float32 rounding error).
        tiny = torch.finfo(x.dtype).tiny
        p_win = p_flat if index is None else p_flat.gather(-1, index)
        q_win = (lq_y.exp().unsqueeze(-1) * lq_x.exp().unsqueeze(-2)).flatten(2)
        log_m = torch.add(p_win, q_win).mul_(0.5).clamp_min_(tiny).log_()
        p_part = p_win.clamp_min(tiny).log_().sub_(log_m)  # log p - log m (p log p = 0 at p = 0)
        q_part = (lq_y.unsqueeze(-1) + lq_x.unsqueeze(-2)).flatten(2).sub_(log_m)
        js = 0.5 * (_dot(p_win, p_part) + _dot(q_win, q_part))
        if index is not None:  # p sums to 1: the rest of it lies outside the window
            js = js + _HALF_LOG2 * (1.0 - p_win.sum(-1)).clamp_min(0.0)
        # p * (d JS / d p - log(2) / 2) in the window: the JS gradient less its outside value
        pd_win = p_part.mul_(0.5).sub_(_HALF_LOG2).mul_(p_win)
        ctx.save_for_backward(p_flat, coords, index, pd_win)  # type: ignore[arg-type]
        return p_flat.view(b, j, h, w), coords, js

    @staticmethod
    def backward(
        ctx: torch.autograd.function.FunctionCtx,
        g_probs: Tensor | None,
        g_coords: Tensor | None,
        g_js: Tensor | None,
    ) -> tuple[Tensor, None, None]:
        p_flat, coords, *window = ctx.saved_tensors  # type: ignore[attr-defined]
        b, j, h, w = ctx.shape  # type: ignore[attr-defined]
        g_c = g_coords if g_coords is not None else coords.new_zeros(b, j, 2)
        g_win = g_js if ctx.window else None  # type: ignore[attr-defined]
        # G = g_c . (x, y) + g_js * log(2)/2 (+ a window term); grad = p * (G - sum p G),
        # where sum p G = g_c . coords + g_js * (log(2)/2 + sum pd) since sum p = 1: the
        # constant g_js * log(2)/2 cancels, the rest is a per-map shift
        shift = -(g_c * coords).sum(-1)
        if g_win is not None:
            index, pd_win = window
            shift = shift - g_win * pd_win.sum(-1)
        lin_x = normalized_linspace(w, dtype=p_flat.dtype, device=p_flat.device)
        lin_y = normalized_linspace(h, dtype=p_flat.dtype, device=p_flat.device)
        along_x = g_c[..., 0:1] * lin_x + shift.unsqueeze(-1)  # (B, J, W)
        along_y = g_c[..., 1:2] * lin_y  # (B, J, H)
        grad = torch.empty_like(p_flat)
        torch.add(along_y.unsqueeze(-1), along_x.unsqueeze(-2), out=grad.view(b, j, h, w))
        grad.mul_(p_flat)
        if g_win is not None:
            if index is None:
                grad.addcmul_(pd_win, g_win.unsqueeze(-1))
            else:
                grad.scatter_add_(-1, index, pd_win * g_win.unsqueeze(-1))
        if g_probs is not None:  # softmax backward of a gradient on the probabilities
            g = g_probs.reshape(b, j, h * w)
            grad.addcmul_(p_flat, g)
            grad.addcmul_(p_flat, _dot(p_flat, g).unsqueeze(-1), value=-1.0)
        return grad.view(b, j, h, w), None, None


# --------------------------------------------------------------------------------------------
# Heatmap matching decode and per-joint confidence
# --------------------------------------------------------------------------------------------


def argmax_decode(maps: Tensor, refine: Refine | str = "quarter") -> Tensor:
    """Decode heatmaps by their arg-max, with an optional sub-pixel refinement.

    Args:
        maps: ``(B, J, H, W)`` raw heatmaps (heatmap matching).
        refine: ``None`` for the integer arg-max; ``"quarter"`` shifts a quarter pixel towards
            the larger neighbour along each axis (Newell et al.); ``"dark"`` takes a Newton step
            on the log heatmap (Zhang et al., DARK), exact for a Gaussian blob, and falls back
            to no shift where the log map is not locally concave. Peaks on the border of the
            map are never shifted.

    Returns:
        ``(B, J, 2)`` normalised coordinates ``(x, y)``. Not differentiable.
    """
    if maps.dim() != 4:
        raise ValueError(f"maps must be (B, J, H, W), got {tuple(maps.shape)}")
    if refine not in (None, "quarter", "dark"):
        raise ValueError(f"refine must be None, 'quarter' or 'dark', got {refine!r}")
    m = _float(maps).detach()
    b, j, h, w = m.shape
    idx = m.flatten(2).argmax(-1)
    iy = torch.div(idx, w, rounding_mode="floor")
    ix = idx - iy * w
    x = ix.to(m.dtype)
    y = iy.to(m.dtype)
    if refine is not None:
        # replicate-pad so neighbours past the border equal the centre (no shift there)
        padded = F.pad(m.reshape(b * j, 1, h, w), (1, 1, 1, 1), mode="replicate").reshape(b, j, -1)
        wp = w + 2

        def at(dx: int, dy: int) -> Tensor:
            return padded.gather(-1, ((iy + 1 + dy) * wp + (ix + 1 + dx)).unsqueeze(-1)).squeeze(-1)

        # as in Newell et al., a peak on the border is not shifted
        inner_x = (ix > 0) & (ix < w - 1)
        inner_y = (iy > 0) & (iy < h - 1)
        if refine == "quarter":
            x = x + torch.where(inner_x, 0.25 * torch.sign(at(1, 0) - at(-1, 0)), 0.0)
            y = y + torch.where(inner_y, 0.25 * torch.sign(at(0, 1) - at(0, -1)), 0.0)
        else:
            tiny = 1e-10

            def lg(dx: int, dy: int) -> Tensor:
                return torch.log(at(dx, dy).clamp_min(tiny))

            c = lg(0, 0)
            gx = 0.5 * (lg(1, 0) - lg(-1, 0))
            gy = 0.5 * (lg(0, 1) - lg(0, -1))
            hxx = lg(1, 0) - 2 * c + lg(-1, 0)
            hyy = lg(0, 1) - 2 * c + lg(0, -1)
            hxy = 0.25 * (lg(1, 1) - lg(1, -1) - lg(-1, 1) + lg(-1, -1))
            det = hxx * hyy - hxy * hxy
            ok = (det > 0) & (hxx < 0) & inner_x & inner_y
            safe = torch.where(ok, det, torch.ones_like(det))
            ox = -(hyy * gx - hxy * gy) / safe
            oy = -(hxx * gy - hxy * gx) / safe
            ok = ok & (ox.abs() <= 1) & (oy.abs() <= 1)
            x = x + torch.where(ok, ox, torch.zeros_like(ox))
            y = y + torch.where(ok, oy, torch.zeros_like(oy))
    return pixel_to_normalized(torch.stack([x, y], dim=-1), (h, w))


def heatmap_confidence(probs: Tensor, radius: float = 2.0) -> Tensor:
    """Per-joint confidence: how much of the map's mass lies close to its own prediction.

    ``confidence = E_p[exp(-d^2 / (2 r^2))]``, where ``d`` is the distance in heatmap pixels from
    a cell to the map's expected location (the DSNT prediction) and ``r = radius``. It is 1 for
    all mass on the prediction, ``r^2 / (r^2 + s^2)`` for a Gaussian map of standard deviation
    ``s`` px (0.8 for the JS target's ``s = 1`` with ``r = 2``), and near 0 for diffuse maps or
    for two distant peaks whose average lies between them (dsntnn#13) -- the failure modes
    that make a DSNT prediction wrong. The Gaussian weight is separable, so this costs one
    pass over the map.

    Args:
        probs: ``(B, J, *spatial)`` probability maps.
        radius: ``r`` in heatmap pixels.

    Returns:
        ``(B, J)`` confidences in ``(0, 1]``.
    """
    _check_maps(probs, "probs")
    if radius <= 0:
        raise ValueError(f"radius must be > 0 pixels, got {radius}")
    p = _float(probs).detach()
    mu = dsnt(p)
    weights = []
    for k, (v, size) in enumerate(zip(_axes(p), reversed(p.shape[2:]))):
        d_px = (v - mu[..., k : k + 1]) * (size / 2)
        weights.append(torch.exp(-0.5 * (d_px / radius) ** 2))
    return (p * _outer(weights)).flatten(2).sum(-1).clamp(0, 1)
