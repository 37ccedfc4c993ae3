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

The module reads in the paper's order: conventions, heatmap normalisation, the transform
(``dsnt``), losses, regularisers, decodes (arg-max, debiased, local, confidence and its
reliability curve), and last the fused training path ``softmax_dsnt``, which computes the
softmax, DSNT and JS regulariser in one autograd node with a written-out backward.

Conventions (``docs/architecture.md``): pixel coordinates are 0-based with integers at pixel
*centres*; normalised coordinates run from -1 (outer left/top edge) to +1 (outer right/bottom
edge), so pixel ``i`` of a ``W`` px axis has its centre at ``(2 i + 1) / W - 1``. Coordinates
are ordered ``(x, y[, z])``; tensor sizes are ``(..., [D,] H, W)``. Sigmas are in heatmap pixels.

Names and signatures follow the paper's own library, dsntnn 0.5.3, so its users can switch by
changing the import (its own test-suite runs against this module). Where this module differs
it is on purpose and tested (README, "Differences from dsntnn"): the KL and JS regularisers
use the target Gaussian's separable, analytic log density, so they stay finite for one-hot and
very sharp maps, are exact on large maps and several times faster; low-precision inputs are
computed in float32; infinite logits and non-finite targets give defined results.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, overload

import torch
import torch.nn.functional as F
from torch import Tensor

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = [
    "ACTIVATIONS",
    "Reliability",
    "SoftmaxDSNT",
    "argmax_decode",
    "average_loss",
    "debiased_dsnt",
    "dsnt",
    "euclidean_losses",
    "flat_softmax",
    "heatmap_confidence",
    "heatmap_mse_losses",
    "heatmap_spread",
    "heatmap_targets",
    "heatmap_variance",
    "js_reg_losses",
    "kl_reg_losses",
    "l1_losses",
    "linear_expectation",
    "local_dsnt",
    "make_gauss",
    "mse_losses",
    "normalize_heatmaps",
    "normalized_linspace",
    "normalized_to_pixel",
    "normalized_to_pixel_coordinates",
    "pixel_to_normalized",
    "pixel_to_normalized_coordinates",
    "reliability_curve",
    "rle_losses",
    "soft_argmax",
    "softmax_dsnt",
    "variance_reg_losses",
]

Activation = Literal["softmax", "abs", "relu", "sigmoid"]
ACTIVATIONS: tuple[str, ...] = ("softmax", "abs", "relu", "sigmoid")
Refine = Literal["quarter", "dark"] | None

_HALF_LOG2 = 0.5 * math.log(2.0)
_MIN_SIGMA_PX = 1e-3  # narrower targets are one-hot to every dtype; below it exp() overflows


# --------------------------------------------------------------------------------------------
# 1. Conventions: pixel <-> normalised coordinates
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


#: dsntnn's name for :func:`pixel_to_normalized` (same arguments and result).
pixel_to_normalized_coordinates = pixel_to_normalized
#: dsntnn's name for :func:`normalized_to_pixel` (same arguments and result).
normalized_to_pixel_coordinates = normalized_to_pixel


def normalized_linspace(
    length: int | Tensor,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """Normalised coordinates of the centres of ``length`` pixels along one axis.

    Args:
        length: the number of pixels, an int or a 0-d integer tensor (as dsntnn accepts).
        dtype: the result's dtype (default: torch's default float dtype).
        device: the result's device.

    Returns:
        ``(length,)`` values ``(2 i + 1) / length - 1``.

    Example:
        >>> normalized_linspace(4)
        tensor([-0.7500, -0.2500,  0.2500,  0.7500])
    """
    n = int(length)
    if n < 1:
        raise ValueError(f"length must be >= 1, got {n}")
    half = 1.0 - 1.0 / n
    return torch.linspace(-half, half, n, dtype=dtype, device=device)


# --------------------------------------------------------------------------------------------
# Shape checks and shared helpers
# --------------------------------------------------------------------------------------------


def _check_maps(x: Tensor, name: str) -> int:
    """Check ``x`` is ``(B, J, *spatial)`` with at least one spatial dim; return their count."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() < 3:
        raise ValueError(
            f"{name} must be (B, J, W), (B, J, H, W), (B, J, D, H, W) or more spatial dims, "
            f"got {tuple(x.shape)}"
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


def _check_temperature(temperature: float) -> None:
    if not 0 < temperature < math.inf:
        raise ValueError(f"temperature must be > 0 and finite, got {temperature}")


def _check_sigma(sigma: float, name: str = "sigma_t") -> None:
    if not _MIN_SIGMA_PX <= sigma < math.inf:
        raise ValueError(
            f"{name} must be >= {_MIN_SIGMA_PX} pixels and finite (a narrower target is a "
            f"one-hot cell to every float type), got {sigma}"
        )


def _float(x: Tensor) -> Tensor:
    """Half, bfloat16, integer and bool tensors as float32 (sums and logs need the precision;
    an integer map would otherwise meet an integer pixel grid, which rounds to 0)."""
    if x.dtype in (torch.float16, torch.bfloat16) or not x.is_floating_point():
        return x.float()
    return x


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


def _outer(factors: list[Tensor]) -> Tensor:
    """Outer product of per-axis factors ``(..., size_k)`` (x, y, z order) into
    ``(..., [D,] H, W)``."""
    out = factors[0]  # x: (..., W)
    for k in range(1, len(factors)):  # axis k comes before all the axes already in `out`
        out = factors[k].reshape(*factors[k].shape, *([1] * k)) * out.unsqueeze(-(k + 1))
    return out


def _outer_sum(terms: list[Tensor]) -> Tensor:
    """Outer sum of per-axis terms ``(..., size_k)`` (x, y, z order) into ``(..., [D,] H, W)``."""
    out = terms[0]
    for k in range(1, len(terms)):
        out = terms[k].reshape(*terms[k].shape, *([1] * k)) + out.unsqueeze(-(k + 1))
    return out


def _dot(a: Tensor, b: Tensor) -> Tensor:
    """``(a * b).sum(-1)`` of ``(B, J, n)`` tensors in their own dtype, also under autocast.

    Timed against a batched ``(1, n) @ (n, 1)`` product, which avoids the temporary but pays
    BLAS's per-matrix overhead 512 times for B=32, J=16: the product was 5-20x slower once the
    allocator reuses the temporary (as in any long-running process)."""
    return (a * b).sum(-1)


def _safe_xlogx(x: Tensor) -> Tensor:
    """``x * log(x)`` with value 0 and a finite gradient at ``x == 0``."""
    return x * torch.log(x.clamp_min(torch.finfo(x.dtype).tiny))


def _host_checks(x: Tensor) -> bool:
    """Whether a check may read a value back to the host: on CPU, outside compiling and
    tracing (a CPU has no queue to stall; elsewhere the checks stay on the device)."""
    return (
        x.device.type == "cpu"
        and not torch.compiler.is_compiling()
        and torch._C._get_tracing_state() is None
    )


def _all_finite(x: Tensor) -> bool:
    """True when every entry of ``x`` is finite, from one sum (a NaN or inf makes it
    non-finite; a sum that overflows only sends the caller down its careful path)."""
    return math.isfinite(float(x.detach().sum()))


def _finite_targets(target: Tensor) -> tuple[Tensor, Tensor | None]:
    """``(target with non-finite joints at the centre, (B, J) bool: the joint was not finite)``;
    ``(target, None)`` when every target is finite (checked on the host where that is cheap).

    Every per-joint loss of a non-finite target is NaN with a zero gradient, so a masked
    joint (``average_loss`` with mask 0) never turns the step's gradient into NaN. (A sum over
    the components times 0 is 0 when all are finite and NaN otherwise: 3 small kernels.)
    """
    if _host_checks(target) and _all_finite(target):
        return target, None
    bad = target.sum(-1).mul(0.0) != 0
    return target.masked_fill(bad.unsqueeze(-1), 0.0), bad


def _mark_bad(losses: Tensor, bad: Tensor | None) -> Tensor:
    """Per-joint ``losses`` with NaN where the target was not finite (see _finite_targets)."""
    return losses if bad is None else losses.masked_fill(bad, math.nan)


# --------------------------------------------------------------------------------------------
# 2. Heatmap normalisation
# --------------------------------------------------------------------------------------------


def _finite_logits(x: Tensor, scale: float = 1.0) -> Tensor:
    """``x * scale`` with +-inf clamped to the dtype's largest finite values (NaN stays NaN), so
    the softmax takes its limit: all mass on the +inf cells, a uniform map when all are -inf."""
    info = torch.finfo(x.dtype)
    if scale != 1.0:
        return (x * scale).clamp_(info.min, info.max)
    return torch.clamp(x, info.min, info.max)


def _softmax_and_logits(flat: Tensor) -> tuple[Tensor, Tensor]:
    """Softmax over the last dim of ``(B, J, N)`` logits, with infinite logits at their limit;
    returns ``(probabilities, the logits they are the softmax of)`` (``flat`` itself, or
    ``flat`` clamped to finite values).

    Where host checks are cheap (CPU, eager) the plain softmax runs and the maps are recomputed
    from clamped logits only if one came out NaN (which a +inf or an all -inf map makes, as
    does a NaN): one sum over each map's first cell, read without autograd, costs a few
    microseconds next to the softmax. On other devices, and when compiling or tracing, the
    logits are always clamped (one cheap kernel, no host sync).
    """
    if _host_checks(flat):
        p = torch.softmax(flat, dim=-1)
        if not math.isnan(p.detach().select(-1, 0).sum().item()):
            return p, flat
    z = _finite_logits(flat)
    return torch.softmax(z, dim=-1), z


def _softmax_cells(flat: Tensor) -> Tensor:
    """Softmax over the last dim of ``(B, J, N)`` logits, with infinite logits at their limit
    (see ``_softmax_and_logits``)."""
    return _softmax_and_logits(flat)[0]


def _log_softmax_of(p: Tensor, z: Tensor) -> Tensor:
    """``log p`` ``(B, J, N)`` of ``p = softmax(z)`` over the last dim, without a log per cell:
    ``z - logsumexp(z)``, where ``logsumexp(z) = max z - log(max p)`` (the largest cell is
    the same in both and its probability is at least ``1 / N``, so its log is exact to
    rounding). Clamped below at ``log(tiny)``, as ``log(p.clamp_min(tiny))`` is. A new
    tensor."""
    lse = z.amax(-1, keepdim=True) - p.amax(-1, keepdim=True).log_()
    return torch.sub(z, lse).clamp_min_(math.log(torch.finfo(p.dtype).tiny))


def flat_softmax(logits: Tensor, temperature: float = 1.0) -> Tensor:
    """Softmax over all spatial cells of each map.

    Infinite logits take the softmax's limit (all mass shared by the ``+inf`` cells; a map
    that is ``-inf`` everywhere becomes the uniform map, whose expectation is the centre), with
    finite gradients; NaN logits give NaN maps.

    Args:
        logits: ``(B, J, *spatial)`` raw maps (any number of spatial dims).
        temperature: logits are divided by it; below 1 sharpens, above 1 flattens. Must be
            positive and finite (``ValueError`` otherwise).

    Returns:
        Probability maps of the same shape (float32 for half/bf16/integer input), each summing
        to 1.
    """
    _check_maps(logits, "logits")
    _check_temperature(temperature)
    x = _float(logits)
    flat = x.flatten(2)
    if temperature != 1.0:
        flat = flat / temperature
    return _softmax_cells(flat).view(x.shape)


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
        logits: ``(B, J, *spatial)`` raw maps.
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


# --------------------------------------------------------------------------------------------
# 3. The transform: expectations of the map
# --------------------------------------------------------------------------------------------


#: Maps with at most this many cells get the coordinate gradient (and the 2-D outer sums) as
#: one small matrix product with a cached constant; larger ones as a broadcast add. Measured
#: (``benchmarks/ops.py``, B=32, J=16, 1 thread): the product is 2-5x faster than the broadcast
#: add up to 28 x 28 (an add over a 4-28 cell inner dimension runs far below memory speed), and
#: 2-6x slower from 64 x 64 (its inner dimension, 2 or 3, is a shape BLAS handles badly).
_MM_CELLS = 1024
#: From this many cells per map and this many values in all, and on more than one thread,
#: the forward of ``dsnt`` takes the marginal sums (see ``_expectations``). Measured on two
#: threads: below either bound the grid product was as fast or faster (the sums' per-call and
#: threading costs); at 64 px x 512 maps and 128 px x 128 maps the sums took 20-25% off the
#: whole forward+backward. At batch 8 (128 maps) of 56-128 px, inside the benchmark's long
#: process, the grid product's single-threaded section left ``dsnt(flat_softmax(x))`` at
#: 0.84-0.91x dsntnn; the sums from 2^17 values made it 0.98-1.07x (``benchmarks/ops.py``,
#: two threads, both regimes, 3 rounds; the A/A control within 0.95-1.06x at those sizes).
#: Lowering the cell bound to 512 (28 px) measured within that noise, so it stays.
_SUM_CELLS = 2048
_SUM_VALUES = 1 << 17

_GRIDS: dict[tuple[tuple[int, ...], bool, bool, torch.dtype, torch.device], Tensor] = {}


def _cell_grid(
    spatial: Sequence[int],
    normalized: bool,
    dtype: torch.dtype,
    device: torch.device,
    affine: bool = False,
) -> Tensor:
    """``(n, N)`` coordinates of the ``N`` cells of a ``(*spatial)`` map in flat (row-major)
    order, row ``k`` the ``k``-th of ``(x, y[, z])``: normalised centres, or 0-based pixel
    indices; ``affine`` appends a row of ones, ``(n + 1, N)``. Cached (it is a constant;
    building it costs more kernels than using it)."""
    if torch._C._get_tracing_state() is not None:  # sizes are traced: build it in the graph
        axes = [torch.arange(s, dtype=dtype, device=device) for s in spatial]
        if normalized:
            axes = [(2 * a + 1) / s - 1 for a, s in zip(axes, spatial)]
        traced = _stack_mesh(axes)
        return torch.cat((traced, torch.ones_like(traced[:1]))) if affine else traced
    key = (tuple(int(s) for s in spatial), normalized, affine, dtype, device)
    grid = None if torch.compiler.is_compiling() else _GRIDS.get(key)
    if grid is None:
        # a normal tensor even under inference_mode, so a cached one serves autograd later
        with torch.inference_mode(False):
            grid = _stack_mesh(
                [
                    normalized_linspace(s, dtype=dtype, device=device)
                    if normalized
                    else torch.arange(s, dtype=dtype, device=device)
                    for s in key[0]
                ]
            )
            if affine:
                grid = torch.cat((grid, torch.ones_like(grid[:1])))
        if not torch.compiler.is_compiling() and len(_GRIDS) < 64:
            _GRIDS[key] = grid
    return grid


def _stack_mesh(axes: list[Tensor]) -> Tensor:
    """``(n, N)``: row ``k`` the ``k``-th of ``(x, y[, z])`` at each cell of the grid spanned by
    per-axis ``axes`` in tensor order, cells flat in row-major order."""
    mesh = torch.meshgrid(*axes, indexing="ij") if len(axes) > 1 else axes
    return torch.stack([m.reshape(-1) for m in reversed(mesh)])


_INCIDENCE: dict[tuple[int, int, torch.dtype, torch.device], Tensor] = {}


#: Up to this many cells, ``_outer_sum_2d`` is one product with a cached 0/1 matrix; above,
#: a broadcast add. Measured (B=8 and 32, J=16, 1 and 2 threads, 4-15 px): the product was
#: 10-25% faster at batch 32 up to 8 x 8 and slower from 10 x 10 (1.8x slower at 15 x 15,
#: 4x at 28 x 28: its work grows as ``H W (H + W)``); at batch 8 the add was never slower
#: by more than 3 us.
_INC_CELLS = 64


def _outer_sum_2d(along_x: Tensor, along_y: Tensor) -> Tensor:
    """``along_y[..., h] + along_x[..., w]`` of ``(B, J, W)`` and ``(B, J, H)`` terms as flat
    ``(B, J, H * W)``. Up to ``_INC_CELLS`` cells, one ``(B J, W + H) @ (W + H, H W)`` product
    with a cached 0/1 matrix (a broadcast add over a 4-8 cell inner dimension runs at a
    fraction of the speed of a contiguous kernel); above it, the broadcast add."""
    b, j, w = along_x.shape
    h = along_y.shape[-1]
    if h * w > _INC_CELLS:
        return torch.add(along_y.unsqueeze(-1), along_x.unsqueeze(-2)).view(b, j, h * w)
    key = (h, w, along_x.dtype, along_x.device)
    inc = None if torch.compiler.is_compiling() else _INCIDENCE.get(key)
    if inc is None:
        with torch.inference_mode(False):  # cacheable for autograd, as in _cell_grid
            cells = torch.arange(h * w, device=along_x.device)
            inc = torch.cat(
                (
                    (cells % w == torch.arange(w, device=along_x.device)[:, None]),
                    (cells // w == torch.arange(h, device=along_x.device)[:, None]),
                )
            ).to(along_x.dtype)
        if not torch.compiler.is_compiling() and len(_INCIDENCE) < 64:
            _INCIDENCE[key] = inc
    terms = torch.cat((along_x, along_y), -1).view(b * j, w + h)
    if torch.is_autocast_enabled(terms.device.type):
        with torch.autocast(terms.device.type, enabled=False):
            return (terms @ inc).view(b, j, h * w)
    return (terms @ inc).view(b, j, h * w)


def _mm_fp(a: Tensor, b: Tensor) -> Tensor:
    """``a @ b`` in the operands' own float type, also under autocast (a half-precision grid
    would round the coordinates)."""
    if torch.is_autocast_enabled(a.device.type):
        with torch.autocast(a.device.type, enabled=False):
            return torch.mm(a, b)
    return torch.mm(a, b)


def _expectations(p: Tensor, normalized: bool = True) -> Tensor:
    """``(B, J, n)`` expected cell coordinates of ``(B, J, *spatial)`` maps.

    On one thread, or for small maps: one ``(n, N) @ (N, B J)`` product of the cached cell
    grid with the maps seen as columns, a single pass over the maps. With more threads and
    large maps (``_SUM_CELLS``, ``_SUM_VALUES``): the marginal sums, each dotted with its axis,
    because a product with so few rows runs on one thread while the sums split across all of
    them. (Measured against dsntnn's two weighted sums and the ``(B J, N) @ (N, n)`` product:
    the grid product was the fastest of the three at every size from 4 to 128 px on one
    thread, where the other product was up to 10x slower than the sums; on two threads the
    marginal sums took 20-25% off the whole forward+backward of large maps, where the grid
    product lost to dsntnn.)"""
    b, j = p.shape[:2]
    cells = math.prod(p.shape[2:])
    if (  # host checks first: under export a batch-size test would become a shape guard
        _host_checks(p)
        and torch.get_num_threads() > 1
        and cells >= _SUM_CELLS
        and b * j * cells >= _SUM_VALUES
    ):
        axes = [_cell_grid((s,), normalized, p.dtype, p.device)[0] for s in reversed(p.shape[2:])]
        return torch.stack([_dot(m, a) for m, a in zip(_marginals(p), axes)], -1)
    grid = _cell_grid(p.shape[2:], normalized, p.dtype, p.device)
    cols = p.reshape(b * j, grid.shape[1]).t()
    return _mm_fp(grid, cols).t().contiguous().view(b, j, grid.shape[0])


def _expectations_grad(g: Tensor, spatial: Sequence[int], normalized: bool) -> Tensor:
    """Gradient of :func:`_expectations` with respect to the maps: ``sum_k g_k * coord_k``
    at every cell, ``(B, J, *spatial)`` from ``g`` ``(B, J, n)``. Small maps take one
    ``(B J, n) @ (n, N)`` product with the cell grid, larger ones the outer sum of ``n``
    per-axis terms ``g_k * axis_k`` (the grid is an outer sum, so no product is needed)."""
    b, j, n = g.shape
    cells = math.prod(int(s) for s in spatial)
    if cells <= _MM_CELLS:
        grid = _cell_grid(spatial, normalized, g.dtype, g.device)
        return _mm_fp(g.reshape(b * j, n), grid).view(b, j, *spatial)
    terms = []
    for k, s in enumerate(reversed(list(spatial))):  # x (the last axis) first
        axis = (
            normalized_linspace(s, dtype=g.dtype, device=g.device)
            if normalized
            else torch.arange(s, dtype=g.dtype, device=g.device)
        )
        terms.append(g[..., k : k + 1] * axis)
    return _outer_sum(terms)


class _DSNT(torch.autograd.Function):
    """``(B, J, *spatial)`` maps -> ``(B, J, n)`` expected coordinates, with the backward
    written out (the coordinate gradient is ``g . coord`` at every cell; it does not depend on
    the maps, so nothing is saved). Twice differentiable: the backward is linear in ``g`` and
    made of differentiable ops."""

    @staticmethod
    def forward(ctx: Any, p: Tensor, normalized: bool) -> Tensor:
        ctx.spatial = tuple(p.shape[2:])
        ctx.normalized = normalized
        return _expectations(p, normalized)

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> tuple[Tensor, None]:
        return _expectations_grad(g, ctx.spatial, ctx.normalized), None


def dsnt(probs: Tensor, normalized_coordinates: bool = True) -> Tensor:
    """Differentiable spatial to numerical transform: the expected coordinates of each map.

    One pass over the maps forward (a product with the cached cell grid) and one backward,
    in a single autograd node (see ``_DSNT``); the values and gradients are dsntnn's.

    Args:
        probs: ``(B, J, *spatial)`` probability maps (``(B, J, W)``, ``(B, J, H, W)``,
            ``(B, J, D, H, W)``, ...), each summing to 1 (e.g. from ``normalize_heatmaps``).
        normalized_coordinates: ``True`` (default) for normalised coordinates, ``False`` for
            0-based pixel coordinates (dsntnn's keyword).

    Returns:
        ``(B, J, n)`` coordinates ``(x[, y[, z]])``, in float32 for half or integer input.

    Example:
        >>> p = torch.zeros(1, 1, 4, 4)
        >>> p[0, 0, 3, 0] = 1.0          # row 3 (y), column 0 (x)
        >>> dsnt(p)
        tensor([[[-0.7500,  0.7500]]])
        >>> dsnt(p, normalized_coordinates=False)
        tensor([[[0., 3.]]])
    """
    _check_maps(probs, "probs")
    return _DSNT.apply(_float(probs), normalized_coordinates)  # type: ignore[no-untyped-call,no-any-return]


def soft_argmax(heatmaps: Tensor, normalized_coordinates: bool = True) -> Tensor:
    """dsntnn's name for :func:`dsnt` (same arguments and result)."""
    return dsnt(heatmaps, normalized_coordinates)


def linear_expectation(probs: Tensor, values: Sequence[Tensor]) -> Tensor:
    """Expectation of per-axis values under each map, in *tensor* order (dsntnn's semantics).

    Args:
        probs: ``(B, J, *spatial)`` probability maps with ``n`` spatial dims.
        values: ``n`` tensors, one per spatial dim in tensor order (``[D,] H, W``), each
            ``(size_k,)`` or broadcastable to ``(B, J, size_k)``.

    Returns:
        ``(B, J, n)``: ``E[values_k]`` in tensor order (for 2-D maps ``(y, x)``, unlike
        :func:`dsnt`, which returns ``(x, y)``).
    """
    _check_maps(probs, "probs")
    p = _float(probs)
    nd = p.dim() - 2
    if len(values) != nd:
        raise ValueError(f"values must give {nd} tensors for maps {tuple(p.shape)}")
    margs = _marginals(p)[::-1]  # tensor order
    return torch.stack([(m * v).sum(-1) for m, v in zip(margs, values)], dim=-1)


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


def heatmap_spread(probs: Tensor, normalized: bool = False) -> Tensor:
    """Standard deviation of each map along each axis (the square root of ``heatmap_variance``).

    Args:
        probs: ``(B, J, *spatial)`` probability maps.
        normalized: ``False`` (default) for heatmap pixels, ``True`` for normalised units
            (``2 / size`` per pixel along each axis), the units of ``dsnt``'s coordinates.

    Returns:
        ``(B, J, n)`` standard deviations in ``(x, y[, z])`` order, differentiable (the
        gradient at a zero spread is 0, not NaN).
    """
    var = heatmap_variance(probs)
    std = torch.sqrt(var.clamp_min(torch.finfo(var.dtype).tiny))
    if normalized:
        std = std * std.new_tensor([2.0 / s for s in reversed(probs.shape[2:])])
    return std


# --------------------------------------------------------------------------------------------
# Gaussians at normalised means (the targets of the regularisers and of heatmap matching)
# --------------------------------------------------------------------------------------------


def _gauss_log_1d(means: Tensor, size: Sequence[int], sigma: float) -> list[Tensor]:
    """Per-axis unnormalised log densities ``-(x - mu)^2 / (2 s^2)``: ``(..., size_k)``, x
    first, for means ``(..., n)``."""
    out = []
    for k, s in enumerate(reversed(list(size))):
        lin = normalized_linspace(int(s), dtype=means.dtype, device=means.device)
        sigma_norm = 2.0 * sigma / s
        out.append(-0.5 * ((lin - means[..., k : k + 1]) / sigma_norm) ** 2)
    return out


def make_gauss(means: Tensor, size: Sequence[int], sigma: float, normalize: bool = True) -> Tensor:
    """Draw axis-aligned Gaussians at normalised means.

    Args:
        means: ``(..., n)`` normalised centres in ``(x, y[, z])`` order, with any leading
            shape (``(n,)``, ``(J, n)``, ``(B, J, n)``, ...), as dsntnn accepts.
        size: the ``n`` map sizes in tensor order ``([D,] H, W)``, pixels.
        sigma: standard deviation in pixels of the map.
        normalize: ``True`` gives maps summing to 1 (the exact discrete normalisation, computed in
            log space so a centre far outside the map still gives a valid map); ``False`` gives
            peak value 1 at the centre (heatmap-matching targets).

    Returns:
        ``(..., *size)`` maps. Differentiable with respect to ``means``.

    Example:
        >>> g = make_gauss(torch.tensor([[[0.0, 0.0]]]), (8, 8), sigma=1.0)
        >>> round(g.sum().item(), 6), dsnt(g).abs().max().item() < 1e-6
        (1.0, True)
        >>> make_gauss(torch.tensor([0.0, 0.0]), (8, 8), sigma=1.0).shape
        torch.Size([8, 8])
    """
    if means.dim() < 1 or means.shape[-1] != len(size):
        raise ValueError(
            f"means must be (..., {len(size)}) for size {tuple(size)}, got {tuple(means.shape)}"
        )
    if not sigma > 0:
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
# 4. Losses on coordinates
# --------------------------------------------------------------------------------------------


def _check_pair(actual: Tensor, target: Tensor) -> None:
    if actual.shape != target.shape:
        raise ValueError(
            "actual and target must have the same shape, got "
            f"{tuple(actual.shape)} and {tuple(target.shape)}"
        )


def euclidean_losses(actual: Tensor, target: Tensor) -> Tensor:
    """Euclidean distance per joint, with a zero (finite) gradient at zero distance.

    Args:
        actual: ``(B, J, n)`` predicted coordinates.
        target: ``(B, J, n)`` target coordinates, same units. A joint whose target is not
            finite (NaN for "missing") gets a NaN loss with a zero gradient, so under mask 0 in
            ``average_loss`` it changes nothing, not even the gradient.

    Returns:
        ``(B, J)`` distances.
    """
    _check_pair(actual, target)
    t, bad = _finite_targets(_float(target))
    return _mark_bad(torch.linalg.vector_norm(_float(actual) - t, dim=-1), bad)


def l1_losses(actual: Tensor, target: Tensor) -> Tensor:
    """Mean absolute error per joint over the coordinate components (dsntnn's ``l1_losses``).

    Args:
        actual: ``(B, J, n)`` predicted coordinates.
        target: ``(B, J, n)`` targets, same units (non-finite: NaN loss, zero gradient).

    Returns:
        ``(B, J)`` losses, ``mean_k |actual_k - target_k|``.
    """
    _check_pair(actual, target)
    t, bad = _finite_targets(_float(target))
    return _mark_bad((_float(actual) - t).abs().mean(-1), bad)


def mse_losses(actual: Tensor, target: Tensor) -> Tensor:
    """Mean squared error per joint over the coordinate components (dsntnn's ``mse_losses``).

    Args:
        actual: ``(B, J, n)`` predicted coordinates.
        target: ``(B, J, n)`` targets, same units (non-finite: NaN loss, zero gradient).

    Returns:
        ``(B, J)`` losses, ``mean_k (actual_k - target_k)^2``.
    """
    _check_pair(actual, target)
    t, bad = _finite_targets(_float(target))
    d = _float(actual) - t
    return _mark_bad((d * d).mean(-1), bad)


def average_loss(losses: Tensor, mask: Tensor | None = None) -> Tensor:
    """Mean of per-joint losses over the joints that the mask keeps.

    Args:
        losses: ``(B, J)`` per-joint losses.
        mask: optional ``(B, J)`` weights, 1 to keep and 0 to ignore (bool or float). Masked
            entries never reach the result or its gradient, even if they are NaN or inf.

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
    denom = w.sum().clamp_min(1)
    if _host_checks(losses):
        # the plain weighted sum is right unless a masked entry is NaN or inf (0 * inf is NaN);
        # one read of the sum says which, and only then the guarded sum runs
        total = (losses * w).sum()
        if math.isfinite(float(total.detach())):
            return total / denom
    return torch.where(w != 0, losses * w, 0.0).sum() / denom


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


def rle_losses(
    coords: Tensor,
    target: Tensor,
    sigma: Tensor,
    base: Literal["laplace", "gaussian"] = "laplace",
    min_sigma: float = 1e-3,
) -> Tensor:
    """Residual log-likelihood estimation loss (Li et al., ICCV 2021) without its flow.

    RLE trains coordinates by the negative log-likelihood of the target under a density
    centred on the prediction with a per-joint scale ``sigma``: ``-log p(target) = log sigma
    - log Q(e) - log G(e)`` with ``e = (target - coords) / sigma``, ``Q`` a fixed base density
    and ``G`` a learnt residual (a normalising flow). This is the flow-free form, ``G = 1``:
    the Laplace (RLE's choice) or Gaussian negative log-likelihood, summed over the axes. With
    DSNT the scale can come from the map itself, ``sigma = heatmap_spread(probs,
    normalized=True)``: then the gradient also reaches the map's width, which the loss sets to
    the size of the error (a regulariser that adapts, instead of JS's fixed ``sigma_t``).

    Args:
        coords: ``(B, J, n)`` predicted coordinates (normalised, from ``dsnt``).
        target: ``(B, J, n)`` targets in the same units (non-finite: NaN loss, zero gradient).
        sigma: ``(B, J, n)`` (or broadcastable, e.g. ``(B, J, 1)``) positive scales, same
            units; clamped below at ``min_sigma`` so a one-hot map (spread 0) stays finite.
        base: ``"laplace"`` (``log(2 sigma) + |e|``) or ``"gaussian"``
            (``log(sigma) + log(2 pi) / 2 + e^2 / 2``).
        min_sigma: the smallest scale used, same units as ``coords``.

    Returns:
        ``(B, J)`` negative log-likelihoods in nats (may be negative: it is a density).
    """
    _check_pair(coords, target)
    if base not in ("laplace", "gaussian"):
        raise ValueError(f"base must be 'laplace' or 'gaussian', got {base!r}")
    t, bad = _finite_targets(_float(target))
    s = _float(sigma).clamp_min(min_sigma)
    e = (_float(coords) - t) / s
    if base == "laplace":
        nll = torch.log(2 * s) + e.abs()
    else:
        nll = torch.log(s) + 0.5 * math.log(2 * math.pi) + 0.5 * e * e
    return _mark_bad(nll.sum(-1), bad)


# --------------------------------------------------------------------------------------------
# 5. Regularisers: shape the map towards a Gaussian at the target
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
    logs = _gauss_log_1d(mu_t, size, sigma_t)
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
        mu_t: ``(B, J, n)`` normalised target coordinates (no gradient flows to them; a
            non-finite target gives a NaN divergence with a zero gradient).
        sigma_t: target standard deviation in heatmap pixels (>= 1e-3).

    Returns:
        ``(B, J)`` divergences in nats.
    """
    _check_maps(probs, "probs")
    _check_coords(mu_t, probs, "mu_t")
    _check_sigma(sigma_t)
    p = _float(probs)
    mu, bad = _finite_targets(_float(mu_t).detach())
    log_q = _target_log_1d(mu, p.shape[2:], sigma_t)
    cross = sum((m * lq).sum(-1) for m, lq in zip(_marginals(p), log_q))
    return _mark_bad(_neg_entropy(p) - cross, bad)


def _window_half(sigma_t: float, dtype: torch.dtype = torch.float64) -> int:
    """Half-width in px of the window that holds all of the target's mass that ``dtype`` sees.

    The window reaches ``k sigma`` past the target's cell centre on each side: ``k = 8`` in
    float64 (outside, the target is below ``exp(-32)`` of its peak), ``k = 6`` in float32 and
    lower (the mass outside, ``erfc(6 / sqrt 2) = 2e-9`` per axis, is below float32's
    resolution), which on a 28 px map with sigma 1 px cuts the window from 19 to 15 px.
    """
    k = 8.0 if dtype == torch.float64 else 6.0
    return math.ceil(k * sigma_t + 0.5)


def _window_index(starts: Sequence[Tensor], wins: Sequence[int], shape: Sequence[int]) -> Tensor:
    """Flat cell indices ``(B, J, prod(wins))`` of a box of ``wins`` cells per axis (x first)
    whose first cells are ``starts`` (``(B, J, 1)`` long each, x first), in maps of spatial
    ``shape`` (tensor order). The one place a window becomes indices: the JS regulariser, the
    fused kernel and ``local_dsnt`` all use it."""
    strides = [1]
    for s in reversed(list(shape)[1:]):
        strides.append(strides[-1] * int(s))
    return _outer_sum(
        [
            (st + torch.arange(win, device=st.device)) * stride
            for st, win, stride in zip(starts, wins, strides)
        ]
    ).flatten(2)


def _target_window(
    mu: Tensor, size: Sequence[int], sigma_t: float, dtype: torch.dtype = torch.float64
) -> tuple[list[Tensor], list[Tensor]]:
    """Per-axis windows holding all of the target Gaussian's non-negligible mass.

    Along each axis (x first) the window has ``min(2 h + 1, size)`` cells with
    ``h = _window_half(sigma_t, dtype)`` px, centred on the target and clamped inside the map.
    Returns the window's first-cell indices ``(B, J, 1)`` and the target's exact log density in
    the window ``(B, J, win)``. ``mu`` must be finite. Square maps take both axes at once.
    """
    half = _window_half(sigma_t, dtype)
    sizes = [int(s) for s in reversed(list(size))]
    if len(set(sizes)) == 1 and len(sizes) > 1:  # all axes alike: one set of kernels
        s = sizes[0]
        win = min(2 * half + 1, s)
        lin = normalized_linspace(s, dtype=mu.dtype, device=mu.device)
        m = mu.unsqueeze(-1)  # (B, J, n, 1)
        full = (lin - m).mul_(s / (2.0 * sigma_t)).square_().mul_(-0.5)
        full = full - torch.logsumexp(full, dim=-1, keepdim=True)
        if win == s:
            return [mu.new_zeros((*mu.shape[:-1], 1), dtype=torch.long)] * len(sizes), list(
                full.unbind(-2)
            )
        centre = torch.round(((m + 1) * s - 1) / 2)
        start = (centre - half).clamp_(0, s - win).long()  # (B, J, n, 1)
        logs = full.gather(-1, start + torch.arange(win, device=mu.device))
        return list(start.unbind(-2)), list(logs.unbind(-2))
    starts, out = [], []
    for k, s in enumerate(sizes):
        win = min(2 * half + 1, s)
        lin = normalized_linspace(s, dtype=mu.dtype, device=mu.device)
        full = -0.5 * ((lin - mu[..., k : k + 1]) / (2.0 * sigma_t / s)) ** 2
        full = full - torch.logsumexp(full, dim=-1, keepdim=True)
        centre = torch.round(((mu[..., k : k + 1] + 1) * s - 1) / 2)
        start = (centre - half).clamp(0, s - win).long()
        starts.append(start)
        out.append(full.gather(-1, start + torch.arange(win, device=mu.device)))
    return starts, out


#: From this many cells in the target's window, the fused kernel and the JS regulariser take
#: the target density as an outer product of per-axis densities (not an exp per cell), and the
#: fused kernel takes ``log p`` from the logits (not a log per cell) when the window is the
#: whole map (a windowed map would need two passes over all its cells for it). Below, the
#: extra small kernels cost more than the transcendental functions they replace.
_SEPARABLE_CELLS = 100


class _Target(NamedTuple):
    """The target Gaussian inside its window: ``cells`` ``(B, J, n)`` flat cells (``None`` when
    the window is the whole map), its log density ``lq`` and density ``q`` there ``(B, J, n)``,
    and ``bad`` ``(B, J)``: the joint's target was not finite (it was moved to the centre),
    ``None`` when all were finite."""

    cells: Tensor | None
    lq: Tensor
    q: Tensor
    bad: Tensor | None


def _target_terms(
    mu_t: Tensor, shape: Sequence[int], sigma_t: float, dtype: torch.dtype
) -> _Target:
    """The target Gaussian at ``mu_t`` ``(B, J, n)`` on maps of spatial ``shape``, in ``dtype``."""
    mu, bad = _finite_targets(_float(mu_t).detach())
    starts, logs = _target_window(mu, shape, sigma_t, dtype)
    # Below log(tiny) / 2 per axis the density is 0 to the dtype; clamping just above there
    # keeps q and its products normal (denormal floats cost x86 a microcode assist per
    # element, which made a whole-map JS at 14 px 20x slower; at exactly log(tiny) / 2 the
    # product of two per-axis densities rounds below tiny in ~1% of cells) and changes no sum
    # the dtype can see.
    floor = 0.5 * math.log(torch.finfo(dtype).tiny) + 1.0
    logs = [lg.to(dtype).clamp_min(floor) for lg in logs]
    wins = [lg.shape[-1] for lg in logs]
    whole = all(w == int(s) for w, s in zip(wins, reversed(list(shape))))
    index = None if whole else _window_index(starts, wins, shape)
    lq = _outer_sum_2d(logs[0], logs[1]) if len(logs) == 2 else _outer_sum(logs).flatten(2)
    # q is separable: the outer product of per-axis densities, one multiply per cell (below
    # _SEPARABLE_CELLS on 2-D maps, one exp of lq is fewer kernels)
    if len(logs) == 2 and lq.shape[-1] < _SEPARABLE_CELLS:
        return _Target(index, lq, lq.exp(), bad)
    return _Target(index, lq, _outer([lg.exp() for lg in logs]).flatten(2), bad)


def _js_window(
    p_win: Tensor, lq: Tensor, q: Tensor, log_p: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """The JS kernel, the one both ``js_reg_losses`` and ``softmax_dsnt`` use.

    With ``m = (p + q) / 2``, the window's part of JS is ``(sum p (log p - log m) + sum q (log
    q - log m)) / 2``: two small, non-negative sums, where ``sum (p log p + q log q) / 2 - m log
    m`` would be three large ones that cancel (10x the float32 rounding error).

    Args:
        p_win: ``(B, J, n)`` map cells in the window (not modified).
        lq, q: ``(B, J, n)`` the target's log density and density there.
        log_p: ``(B, J, n)`` ``log p_win`` clamped at ``log(tiny)`` where the caller has it
            without a log per cell (the fused kernel, from the logits); overwritten.

    Returns:
        ``js`` ``(B, J)`` (the window's part) and ``d JS / d p = (log p - log m) / 2`` ``(B,
        J, n)`` there (finite at ``p = 0``).
    """
    tiny = torch.finfo(p_win.dtype).tiny
    log_m = torch.add(p_win, q).mul_(0.5).clamp_min_(tiny).log_()
    if log_p is None:
        log_p = p_win.clamp_min(tiny).log_()  # p log p = 0 at p = 0
    p_part = log_p.sub_(log_m)
    q_part = torch.sub(lq, log_m)
    js = 0.5 * (_dot(p_win, p_part) + _dot(q, q_part))
    return js, p_part.mul_(0.5)


class _JSDivergence(torch.autograd.Function):
    """JS divergence of flat maps ``(B, J, N)`` to a target known inside a window.

    The target is 0 outside the window, where each cell contributes ``p log(2) / 2``. The
    gradient is written directly (``log(2) / 2`` outside the window, ``(log p - log m) / 2``
    inside) rather than accumulated from gather, sum and log backwards, which on CPU cost
    several extra passes over the full map.
    """

    @staticmethod
    def forward(ctx: Any, p_flat: Tensor, index: Tensor | None, lq: Tensor, q: Tensor) -> Tensor:
        p_win = p_flat if index is None else p_flat.gather(-1, index)
        js, dp_win = _js_window(p_win, lq, q)
        ctx.save_for_backward(dp_win, *(() if index is None else (index,)))
        ctx.size = p_flat.shape
        if index is None:
            return js
        return js + _HALF_LOG2 * (p_flat.sum(-1) - p_win.sum(-1))

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, None, None, None]:
        dp_win, *rest = ctx.saved_tensors
        g = grad.unsqueeze(-1)
        if not rest:
            return dp_win * g, None, None, None
        grad_p = (_HALF_LOG2 * g).expand(ctx.size).contiguous()
        return grad_p.scatter_(-1, rest[0], dp_win * g), None, None, None


def js_reg_losses(probs: Tensor, mu_t: Tensor, sigma_t: float) -> Tensor:
    """Jensen-Shannon divergence between each map and the target Gaussian (the paper's choice).

    ``JS(p, q) = sum_cells [p log p + q log q] / 2 - m log m`` with ``m = (p + q) / 2``, where
    ``q`` is the normalised Gaussian at ``mu_t`` with standard deviation ``sigma_t`` px. A cell
    where ``q`` vanishes contributes exactly ``p log(2) / 2``, so the cell-by-cell sum is taken
    only in a window of ``+-(8 sigma + 1/2)`` px around the target in float64 (outside it ``q`` is
    below ``exp(-32)`` of its peak; ``+-(6 sigma + 1/2)`` px in float32, where the mass outside
    is below the type's resolution) and the rest of the map enters through its total mass: the
    result equals the full sum to ~1e-12 in float64 and its gradient is exact, while large maps
    cost a few passes instead of a dozen. ``x log x`` is evaluated with value 0 and a finite
    gradient at 0, so one-hot and sharp maps near their target stay finite in float32, and the
    target's log density is analytic, so it never underflows.

    Args:
        probs: ``(B, J, *spatial)`` probability maps.
        mu_t: ``(B, J, n)`` normalised target coordinates (no gradient flows to them; a
            non-finite target gives a NaN divergence with a zero gradient).
        sigma_t: target standard deviation in heatmap pixels (>= 1e-3, else ``ValueError``).

    Returns:
        ``(B, J)`` divergences in nats, in ``[0, log 2]``.

    Example:
        >>> mu = torch.zeros(1, 1, 2)
        >>> js_reg_losses(make_gauss(mu, (28, 28), 1.0), mu, 1.0).abs().item() < 1e-6
        True
    """
    _check_maps(probs, "probs")
    _check_coords(mu_t, probs, "mu_t")
    _check_sigma(sigma_t)
    p = _float(probs)
    tgt = _target_terms(mu_t, p.shape[2:], sigma_t, p.dtype)
    out: Tensor = _JSDivergence.apply(p.flatten(2), tgt.cells, tgt.lq, tgt.q)  # type: ignore[no-untyped-call]
    return _mark_bad(out, tgt.bad)


# --------------------------------------------------------------------------------------------
# 6. Decodes: arg-max, debiased and local expectations, confidence and its calibration
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
        ``(B, J, 2)`` normalised coordinates ``(x, y)``; NaN for a map that holds NaN (it
        has no arg-max). Not differentiable.
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
    coords = pixel_to_normalized(torch.stack([x, y], dim=-1), (h, w))
    # a map holding NaN has no arg-max (torch would report the first NaN's cell): NaN out
    has_nan = m.isnan().flatten(2).any(-1)
    return torch.where(has_nan[..., None], torch.full_like(coords, math.nan), coords)


def debiased_dsnt(logits: Tensor, temperature: float = 1.0) -> Tensor:
    """DSNT with the softmax's background bias removed (Gu et al., ICCV 2021).

    The flat softmax gives every cell mass, also where the network's heatmap is 0, which pulls
    the expectation towards the map's centre. With ``x = logits / temperature``, each cell's
    ``exp(x)`` is ``1`` (its share of a uniform background) plus ``exp(x) - 1`` (the peak), so
    with ``C = sum exp(x)`` over the ``N`` cells the plain expectation is ``(N / C) * centre +
    (1 - N / C) * mu_peak``. The centre is 0 in normalised coordinates, hence ``mu_peak =
    dsnt / (1 - N / C)``, exact for logits that are 0 away from the peak (the paper's model of
    a heatmap). Both the temperature (``C`` is a sum of ``exp(logits / temperature)``) and the
    number of cells ``N`` enter the normaliser, which mmpose's version gets wrong. ``N / C`` is
    evaluated as ``exp(log N - logsumexp(x))``, so large logits do not overflow. A map with
    ``C <= N`` (no positive peak) has nothing to debias and gets plain DSNT.

    Args:
        logits: ``(B, J, *spatial)`` raw maps whose background is at logit 0.
        temperature: the softmax temperature, as in :func:`flat_softmax`.

    Returns:
        ``(B, J, n)`` normalised coordinates ``(x, y[, z])``, differentiable.
    """
    _check_maps(logits, "logits")
    _check_temperature(temperature)
    x = _float(logits)
    coords = dsnt(flat_softmax(x, temperature))
    log_c = torch.logsumexp(_finite_logits(x.flatten(2), 1.0 / temperature), dim=-1)
    r = math.log(x.flatten(2).shape[-1]) - log_c  # log(N / C), (B, J)
    peak = r < 0
    factor = torch.where(peak, 1.0 / -torch.expm1(torch.where(peak, r, -1.0)), 1.0)
    return coords * factor.unsqueeze(-1)


def local_dsnt(probs: Tensor, radius: int = 4) -> Tensor:
    """DSNT inside a window around each map's arg-max: one peak, not the mean of several.

    A map with two peaks (a left and a right wrist, dsntnn#13) has its expectation between
    them, where neither joint is. This takes the expectation of the map renormalised inside a
    box of ``2 radius + 1`` cells per axis centred on the arg-max cell (shifted to stay inside
    the map): exact for a single peak whose mass lies in the box, and the location of the
    strongest peak when there are several. Differentiable with respect to ``probs`` (the box
    is chosen by the arg-max, which is piecewise constant).

    Args:
        probs: ``(B, J, *spatial)`` non-negative maps (e.g. probability maps).
        radius: half-width of the box in heatmap pixels (>= 0).

    Returns:
        ``(B, J, n)`` normalised coordinates ``(x, y[, z])``; plain ``dsnt`` for a map with
        no mass in its box.
    """
    _check_maps(probs, "probs")
    if radius < 0:
        raise ValueError(f"radius must be >= 0 pixels, got {radius}")
    p = _float(probs)
    shape = [int(s) for s in p.shape[2:]]
    sizes = shape[::-1]  # x first
    flat = p.flatten(2)
    rest = flat.argmax(-1, keepdim=True)  # (B, J, 1)
    starts, wins = [], []
    for s in sizes:  # unravel the flat index, x (the last axis) first
        i = rest % s
        rest = torch.div(rest, s, rounding_mode="floor")
        win = min(2 * radius + 1, s)
        starts.append((i - radius).clamp(0, s - win))
        wins.append(win)
    p_win = flat.gather(-1, _window_index(starts, wins, shape))
    box = p_win.view(*p.shape[:2], *wins[::-1])
    mass = p_win.sum(-1)
    coords = []
    for m, st, win, s in zip(_marginals(box), starts, wins, sizes):
        centres = (2 * (st + torch.arange(win, device=p.device)) + 1).to(p.dtype) / s - 1
        coords.append((m * centres).sum(-1))
    found = mass > 0
    local = torch.stack(coords, -1) / torch.where(found, mass, 1.0).unsqueeze(-1)
    return torch.where(found.unsqueeze(-1), local, dsnt(p))


class Reliability(NamedTuple):
    """What :func:`reliability_curve` returns, per bin of confidence (``bins`` bins):
    ``edges`` ``(bins + 1,)``, the mean ``confidence`` and the ``accuracy`` (fraction correct)
    of the joints in the bin (NaN for an empty bin), their ``counts``, and ``ece``, the expected
    calibration error ``sum_b counts_b / total * |accuracy_b - confidence_b|``."""

    edges: npt.NDArray[np.float64]
    confidence: npt.NDArray[np.float64]
    accuracy: npt.NDArray[np.float64]
    counts: npt.NDArray[np.int64]
    ece: float


def reliability_curve(
    confidence: Tensor | npt.ArrayLike,
    correct: Tensor | npt.ArrayLike,
    bins: int = 10,
    mask: Tensor | npt.ArrayLike | None = None,
) -> Reliability:
    """The reliability curve of per-joint confidences: is a confidence of 0.8 right 80% of the
    time? A calibrated confidence has ``accuracy == confidence`` in every bin.

    Args:
        confidence: per-joint confidences in ``[0, 1]``, any shape (e.g. ``(N, J)`` from
            ``heatmap_confidence``); a torch tensor or anything numpy reads.
        correct: the same shape, true where the prediction was right (e.g. within the PCK
            threshold).
        bins: equal-width bins over ``[0, 1]``; a confidence of exactly 1 falls in the last.
        mask: optional, the same shape, false for joints that do not count (missing ones).
            Non-finite confidences never count.

    Returns:
        :class:`Reliability` ``(edges, confidence, accuracy, counts, ece)``.

    Example:
        >>> r = reliability_curve([0.05, 0.15, 0.95, 0.95], [False, False, True, True], bins=2)
        >>> r.counts.tolist(), r.accuracy.tolist()
        ([2, 2], [0.0, 1.0])
    """
    import numpy as np

    def arr(x: Any) -> npt.NDArray[Any]:
        if isinstance(x, Tensor):
            x = x.detach().cpu().numpy()
        return np.asarray(x)

    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    conf = arr(confidence).astype(np.float64).ravel()
    ok = arr(correct).astype(bool).ravel()
    if ok.shape != conf.shape:
        raise ValueError(f"correct must have the shape of confidence, got {ok.shape}")
    keep = np.isfinite(conf)
    if mask is not None:
        keep &= arr(mask).astype(bool).ravel()
    conf, ok = conf[keep], ok[keep]
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.floor(np.clip(conf, 0.0, 1.0) * bins).astype(np.int64), 0, bins - 1)
    count = np.bincount(which, minlength=bins).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(which, weights=conf, minlength=bins) / count
        accuracy = np.bincount(which, weights=ok.astype(np.float64), minlength=bins) / count
    filled = count > 0
    total = max(int(count.sum()), 1)
    ece = float((count[filled] / total * np.abs(accuracy[filled] - mean_conf[filled])).sum())
    return Reliability(edges, mean_conf, accuracy, count, ece)


def heatmap_confidence(probs: Tensor, radius: float = 2.0, center: Tensor | None = None) -> Tensor:
    """Per-joint confidence: how much of the map's mass lies close to its own prediction.

    ``confidence = E_p[exp(-d^2 / (2 r^2))]``, where ``d`` is the distance in heatmap pixels from
    a cell to ``center``, the prediction read off the map (default: its expected location, the
    DSNT prediction), and ``r = radius``. It is 1 for
    all mass on the prediction, ``r^2 / (r^2 + s^2)`` for a Gaussian map of standard deviation
    ``s`` px (0.8 for the JS target's ``s = 1`` with ``r = 2``), and near 0 for diffuse maps or
    for two distant peaks whose average lies between them (dsntnn#13) -- the failure modes
    that make a DSNT prediction wrong. The Gaussian weight is separable, so this costs one
    pass over the map.

    Args:
        probs: ``(B, J, *spatial)`` probability maps.
        radius: ``r`` in heatmap pixels.
        center: ``(B, J, 2)`` normalised ``(x, y)`` the distances are taken from, when the
            coordinates are read otherwise (:func:`local_dsnt` reads a two-peak map at one peak,
            which holds about half the mass, where the expectation holds almost none).

    Returns:
        ``(B, J)`` confidences in ``[0, 1]``.
    """
    _check_maps(probs, "probs")
    if radius <= 0:
        raise ValueError(f"radius must be > 0 pixels, got {radius}")
    p = _float(probs).detach()
    if center is None:
        mu = dsnt(p)
    elif tuple(center.shape) != (*p.shape[:2], p.dim() - 2):
        raise ValueError(
            f"center: expected {(*p.shape[:2], p.dim() - 2)} for maps {tuple(p.shape)}, "
            f"got {tuple(center.shape)}"
        )
    else:
        mu = center.detach().to(p.dtype)
    weights = []
    for k, (v, size) in enumerate(zip(_axes(p), reversed(p.shape[2:]))):
        d_px = (v - mu[..., k : k + 1]) * (size / 2)
        weights.append(torch.exp(-0.5 * (d_px / radius) ** 2))
    return (p * _outer(weights)).flatten(2).sum(-1).clamp(0, 1)


# --------------------------------------------------------------------------------------------
# 7. The training path in one autograd node
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
    ``js_reg_losses(p, mu_t, sigma_t)`` (the same JS kernel), but one autograd node computes
    all three and its backward is written out: with ``G`` the gradient reaching each cell's
    probability (from ``coords``, ``js`` and ``probs`` itself), the logits get ``p * (G - sum(p
    * G)) / T``. The coordinate part of ``G`` is the outer sum ``gx * x_w + gy * y_h`` and the
    JS part is the constant ``log(2) / 2`` outside the target's window (see
    :func:`js_reg_losses`), so apart from the window the backward is two passes over the maps,
    where the composed ops take half a dozen. Use it when one network output feeds all three;
    gradients may flow into any subset of the outputs. Infinite logits and non-finite targets
    behave as in :func:`flat_softmax` and :func:`js_reg_losses`.

    Args:
        logits: ``(B, J, H, W)`` raw maps (half and bf16 are computed in float32).
        mu_t: ``(B, J, 2)`` normalised target coordinates for the JS regulariser, or ``None``.
        sigma_t: the target Gaussian's standard deviation in heatmap pixels (>= 1e-3).
        temperature: the softmax temperature (see :func:`flat_softmax`), positive and finite.

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
        _check_sigma(sigma_t)
    _check_temperature(temperature)
    x = _float(logits)
    scale = 1.0 / temperature if temperature != 1.0 else 1.0
    probs, coords, js = _SoftmaxDSNTJS.apply(x, mu_t, float(sigma_t), scale)  # type: ignore[no-untyped-call]
    return SoftmaxDSNT(probs, coords, js if mu_t is not None else None)


class _SoftmaxDSNTJS(torch.autograd.Function):
    """``(B, J, H, W)`` logits -> probabilities, expected ``(x, y)`` and JS to the target.

    Written to allocate as few map-sized tensors as possible and to launch as few kernels as
    possible (at 7-14 px the cost is per kernel, not per cell): the backward fills one output
    tensor in place.
    """

    @staticmethod
    def forward(
        ctx: Any, x: Tensor, mu_t: Tensor | None, sigma_t: float, scale: float
    ) -> tuple[Tensor, Tensor, Tensor]:
        ctx.set_materialize_grads(False)
        b, j, h, w = x.shape
        flat = x.reshape(b, j, h * w)
        p_flat, z = _softmax_and_logits(flat * scale if scale != 1.0 else flat)
        coords = _expectations(p_flat.view(b, j, h, w))
        ctx.shape = (b, j, h, w)
        ctx.scale = scale
        ctx.window = mu_t is not None
        if mu_t is None:
            ctx.save_for_backward(p_flat, coords)
            return p_flat.view(b, j, h, w), coords, coords.new_zeros(b, j)
        tgt = _target_terms(mu_t, (h, w), sigma_t, x.dtype)
        index = tgt.cells  # None: the window is the whole map
        p_win = p_flat if index is None else p_flat.gather(-1, index)
        log_p = _log_softmax_of(p_flat, z) if index is None and h * w >= _SEPARABLE_CELLS else None
        js, dp_win = _js_window(p_win, tgt.lq, tgt.q, log_p)
        if index is not None:  # p sums to 1: the rest of it lies outside the window
            js = js + _HALF_LOG2 * (1.0 - p_win.sum(-1)).clamp_min(0.0)
        # p * (d JS / d p - log(2) / 2) in the window: the JS gradient less its outside value
        pd_win = dp_win.sub_(_HALF_LOG2).mul_(p_win)
        ctx.save_for_backward(p_flat, coords, index, pd_win)
        return (
            p_flat.view(b, j, h, w),
            coords,
            (js if tgt.bad is None else js.masked_fill_(tgt.bad, math.nan)),
        )

    @staticmethod
    def backward(
        ctx: Any, g_probs: Tensor | None, g_coords: Tensor | None, g_js: Tensor | None
    ) -> tuple[Tensor, None, None, None]:
        p_flat, coords, *window = ctx.saved_tensors
        b, j, h, w = ctx.shape
        g_c = g_coords if g_coords is not None else coords.new_zeros(b, j, 2)
        g_win = g_js if ctx.window else None
        # G = g_c . (x, y) + g_js * log(2)/2 (+ a window term); grad = p * (G - sum p G),
        # where sum p G = g_c . coords + g_js * (log(2)/2 + sum pd) since sum p = 1: the
        # constant g_js * log(2)/2 cancels, the rest is a per-map shift
        shift = -(g_c * coords).sum(-1)
        if g_win is not None:
            index, pd_win = window
            shift = shift - g_win * pd_win.sum(-1)
        if h * w <= _MM_CELLS:  # G - sum p G = (gx, gy, shift) . (x, y, 1): one product
            grid = _cell_grid((h, w), True, p_flat.dtype, p_flat.device, affine=True)
            coef = torch.cat((g_c, shift.unsqueeze(-1)), -1).view(b * j, 3)
            grad = _mm_fp(coef, grid).view(b, j, h * w).mul_(p_flat)
        else:
            lin_x = normalized_linspace(w, dtype=p_flat.dtype, device=p_flat.device)
            lin_y = normalized_linspace(h, dtype=p_flat.dtype, device=p_flat.device)
            along_x = torch.addcmul(shift.unsqueeze(-1), g_c[..., 0:1], lin_x)  # (B, J, W)
            along_y = g_c[..., 1:2] * lin_y  # (B, J, H)
            grad = _outer_sum_2d(along_x, along_y).mul_(p_flat)
        if g_win is not None:
            if index is None:
                grad.addcmul_(pd_win, g_win.unsqueeze(-1))
            else:
                grad.scatter_add_(-1, index, pd_win * g_win.unsqueeze(-1))
        if g_probs is not None:  # softmax backward of a gradient on the probabilities
            g = g_probs.reshape(b, j, h * w)
            grad.addcmul_(p_flat, g)
            grad.addcmul_(p_flat, _dot(p_flat, g).unsqueeze(-1), value=-1.0)
        if ctx.scale != 1.0:
            grad.mul_(ctx.scale)
        return grad.view(b, j, h, w), None, None, None
