"""An exponential moving average of the network's weights (``train.ema_decay``).

Averaging the weights over the last steps of training (Polyak averaging; the "EMA" of most
pose-estimation trainers) smooths out the noise of the last optimiser steps at no cost to the
network a user runs. The trainer keeps the average beside the network it optimises,
validates it (``val/pck``; the raw weights' score is ``val/pck_raw`` in the same pass, so a
run measures what the average gained) and saves both in every checkpoint: ``model.*`` the
weights the optimiser works on (a resumed run continues them), ``ema.network.*`` the
average, which :func:`dsntpose.checkpoint.load_checkpoint` reads first, so a shipped model,
a calibration or a warm start ``train.init_from`` uses the average.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from dsntpose.checkpoint import AVERAGE_PREFIX

__all__ = ["AVERAGE_PREFIX", "WeightAverage"]


class WeightAverage(nn.Module):
    """The exponential moving average of ``model``'s state.

    After each optimiser step :meth:`update` moves every floating-point tensor of the copy
    (parameters and BatchNorm statistics alike) towards the network's:
    ``average = d * average + (1 - d) * current`` with ``d = min(decay, (1 + n) / (10 + n))``
    at the ``n``-th update, so the first updates follow the network closely (the average of a
    fresh copy is not held back by its start) and later ones average over about
    ``1 / (1 - decay)`` steps. Integer buffers (BatchNorm's step count) are copied.

    Args:
        model: the network to average; copied (its weights are where the average starts).
        decay: in ``(0, 1)``; ``0.999`` averages over about the last 1000 steps.

    Attributes:
        network: the averaged copy (no gradients; evaluate it in ``eval()`` mode).
        updates: ``()`` long buffer, the updates made (kept in checkpoints).
    """

    updates: torch.Tensor

    def __init__(self, model: nn.Module, decay: float) -> None:
        super().__init__()
        if not 0.0 < decay < 1.0:
            raise ValueError(f"decay must be in (0, 1), got {decay}")
        self.decay = float(decay)
        self.network = copy.deepcopy(model)
        for param in self.network.parameters():
            param.requires_grad_(False)
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))

    def current_decay(self) -> float:
        """The ``d`` of the next :meth:`update`."""
        n = int(self.updates)
        return min(self.decay, (1.0 + n) / (10.0 + n))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the average one step towards ``model`` (the network it copied)."""
        weight = 1.0 - self.current_decay()
        mine, theirs = self.network.state_dict(), model.state_dict()
        if mine.keys() != theirs.keys():
            raise ValueError("WeightAverage.update: the model is not the network it averages")
        for key, average in mine.items():
            current = theirs[key].detach()
            if average.is_floating_point():
                average.lerp_(current.to(average.dtype), weight)
            else:
                average.copy_(current)
        self.updates += 1
