"""BatchNorm statistics that fit the weights they normalise: recomputed exactly over the
training images.

In training mode a BatchNorm normalises by each batch's statistics and keeps running
averages (momentum 0.1) for evaluation. With few steps per epoch and weights that move
fast, those averages lag the weights: evaluation then normalises by statistics of
earlier weights, and accuracy can sit at chance while the training loss falls
(docs/trainers.md measures it). :func:`recompute_bn` replaces the running statistics by
the exact mean and unbiased variance of each BatchNorm's input over all of the given
inputs (as ``torch.optim.swa_utils.update_bn`` and PreciseBN do), with every other module
in eval mode, so nothing random runs and the weights are untouched.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn

from trainers.training.modeling import BATCH_NORMS, eval_mode


def training_norms(model: nn.Module) -> list[nn.Module]:
    """The BatchNorms of ``model`` in training mode now: those that train (see
    :func:`trainers.training.modeling.set_modes`), whose statistics have moved."""
    return [m for m in model.modules() if isinstance(m, BATCH_NORMS) and m.training]


@torch.no_grad()
def recompute_bn(
    model: nn.Module, inputs: Iterable[Any], norms: Sequence[nn.Module] | None = None
) -> bool:
    """Set the running statistics of ``norms`` (default: every BatchNorm of ``model``)
    to the mean and unbiased variance of their input, pooled over all of ``inputs`` (what
    ``model`` takes: a batch of images, or of cached activations) run through ``model``; every other module in eval mode, those BatchNorms normalising by
    batch statistics meanwhile. Returns whether there was a BatchNorm to recompute; the
    modules' modes are restored."""
    if norms is None:
        norms = [m for m in model.modules() if isinstance(m, BATCH_NORMS)]
    if not norms:
        return False
    sums: dict[nn.Module, list[torch.Tensor | float]] = {}

    def gather(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        x = args[0].detach()
        dims = [0, *range(2, x.dim())]
        total = sums.setdefault(module, [0.0, 0.0, 0.0])
        total[0] = total[0] + x.sum(dims, dtype=torch.float64)  # accumulated in double,
        total[1] = total[1] + x.square().sum(dims, dtype=torch.float64)  # no double copy
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
