"""Metrics for validation during training (torchmetrics, so counts sum across DDP ranks).

Kept apart from :mod:`dsntpose.evaluate` because importing torchmetrics takes seconds;
``dsntpose.evaluate.PCKMetric`` still resolves here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

__all__ = ["PCKMetric"]


class PCKMetric(Metric):
    """Running PCK (or PCKh) as correct/counted joint counts, summed across DDP ranks.

    Args:
        num_joints: ``J``.
        threshold: fraction of the normalising size (0.5 for PCKh, 0.2 for PCK).
        total_joints: joints pooled into ``total`` (e.g. ``MPII_JOINTS.pck_total``); default
            all.

    ``update(preds, target, mask, norm_size)``: ``preds``, ``target`` ``(B, J, 2)`` and
    ``norm_size`` ``(B,)`` in one consistent unit (image px, or normalised crop units with the
    size converted alike); ``mask`` ``(B, J)``, nonzero for joints that count.
    ``compute()`` -> ``{"per_joint": (J,) %, NaN where nothing counted, "total": %}``, the total
    count-weighted like :attr:`PCKResult.total`. States ``correct`` and ``total`` ``(J,)``
    (int64, ``dist_reduce_fx="sum"``).
    """

    full_state_update = False
    higher_is_better = True
    correct: Tensor
    total: Tensor

    def __init__(
        self,
        num_joints: int,
        threshold: float = 0.5,
        total_joints: Sequence[int] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if num_joints < 1 or not threshold > 0:
            raise ValueError(
                f"need num_joints >= 1 and threshold > 0, got {num_joints}, {threshold}"
            )
        self.num_joints = num_joints
        self.threshold = float(threshold)
        self.total_joints = list(range(num_joints) if total_joints is None else total_joints)
        if any(not 0 <= j < num_joints for j in self.total_joints):
            raise ValueError(f"total_joints: indices must be in range(0, {num_joints})")
        self.add_state("correct", torch.zeros(num_joints, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("total", torch.zeros(num_joints, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds: Tensor, target: Tensor, mask: Tensor, norm_size: Tensor) -> None:
        """Count one batch: shapes ``(B, J, 2)``, ``(B, J, 2)``, ``(B, J)``, ``(B,)``."""
        j = self.num_joints
        if preds.dim() != 3 or preds.shape[1:] != (j, 2) or target.shape != preds.shape:
            raise ValueError(
                f"preds and target: expected (B, {j}, 2), got {tuple(preds.shape)}, "
                f"{tuple(target.shape)}"
            )
        b = preds.shape[0]
        if mask.shape != (b, j) or norm_size.shape != (b,):
            raise ValueError(
                f"mask and norm_size: expected ({b}, {j}) and ({b},), got "
                f"{tuple(mask.shape)}, {tuple(norm_size.shape)}"
            )
        size = norm_size.float()
        # a person without a usable normalising size (NaN torso/head, 0, negative) is not
        # scored at all: counting them as misses would lower PCK for a labelling fault
        counted = mask.bool() & (torch.isfinite(size) & (size > 0))[:, None]
        dist = torch.linalg.vector_norm(preds.float() - target.float(), dim=-1)
        hit = (dist <= self.threshold * size[:, None]) & counted
        self.correct += hit.sum(dim=0)
        self.total += counted.sum(dim=0)

    def compute(self) -> dict[str, Tensor]:
        """``{"per_joint": (J,) %, "total": scalar %}`` over everything seen."""
        per_joint = 100.0 * self.correct.double() / self.total.double()
        per_joint = torch.where(self.total > 0, per_joint, torch.full_like(per_joint, math.nan))
        idx = self.total_joints
        total = 100.0 * self.correct[idx].sum().double() / self.total[idx].sum().double()
        return {"per_joint": per_joint.float(), "total": total.float()}
