"""Episodic moving-average control's two operations on weights: averaging the
parameters, and recomputing BatchNorm statistics for the averaged weights.

Averaging running statistics together with the weights gives statistics that fit neither
model (docs/rltune.md measures what that cost); so only parameters are averaged, and every
BatchNorm's statistics are then recomputed exactly over the training split.
"""

from __future__ import annotations

import torch

from trainers.training.batchnorm import recompute_bn

__all__ = ["average_parameters", "recompute_bn"]


def average_parameters(
    source: dict[str, torch.Tensor], target: dict[str, torch.Tensor], alpha: float, params: set[str]
) -> None:
    """In place: source ← (1 − α)·source + α·target for the parameters in ``params``;
    every other entry (buffers) is copied from the target, to be recomputed."""
    for name, value in source.items():
        new = target[name].detach().to(value.device)
        if name in params and value.is_floating_point():
            value.mul_(1 - alpha).add_(new, alpha=alpha)
        else:
            value.copy_(new)
