"""Episodic moving-average control's two operations on weights: averaging the
parameters, and recomputing BatchNorm statistics for the averaged weights.

Averaging running statistics together with the weights gives statistics that fit neither
model (docs/rltune.md measures what that cost); so only parameters are averaged, and every
BatchNorm's statistics are then recomputed exactly over the training split.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from trainers.training.modeling import BATCH_NORMS, eval_mode


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


@torch.no_grad()
def recompute_bn(model: nn.Module, inputs: Iterator[torch.Tensor]) -> bool:
    """Set every BatchNorm's running statistics to the mean and unbiased variance of its
    input, pooled over all of ``inputs``; every other module in eval mode, each BatchNorm
    normalising by batch statistics meanwhile (as ``torch.optim.swa_utils.update_bn``).
    Returns whether the model has a BatchNorm; the modules' modes are restored."""
    norms = [m for m in model.modules() if isinstance(m, BATCH_NORMS)]
    if not norms:
        return False
    sums: dict[nn.Module, list[torch.Tensor | float]] = {}

    def gather(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        x = args[0].detach().double()
        dims = [0, *range(2, x.dim())]
        total = sums.setdefault(module, [0.0, 0.0, 0.0])
        total[0] = total[0] + x.sum(dims)
        total[1] = total[1] + (x * x).sum(dims)
        total[2] = float(total[2]) + x.numel() / x.shape[1]

    handles = [m.register_forward_pre_hook(gather) for m in norms]
    try:
        with eval_mode(model):
            for m in norms:
                m.train()
            for x in inputs:
                model(x)
    finally:
        for handle in handles:
            handle.remove()
    for norm, (total, squares, count) in sums.items():
        n = float(count)
        mean = torch.as_tensor(total) / n
        var = (torch.as_tensor(squares) - n * mean * mean) / max(n - 1, 1)
        for name, value in (("running_mean", mean), ("running_var", var)):
            getattr(norm, name).copy_(value)
    return True
