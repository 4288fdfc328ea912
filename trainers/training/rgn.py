"""Relative gradient norms (Lee et al., ICLR 2023, "Surgical fine-tuning", Auto-RGN).

For a parameter tensor θ_i with gradient g_i of the training loss,

    RGN_i = ‖g_i‖₂ / ‖θ_i‖₂,

the size of the step the loss asks of the tensor relative to the tensor itself. Auto-RGN
trains tensor i at the rate lr·RGN_i / max_j RGN_j; the gradient-norm ranker of
:mod:`trainers.selection.gradnorm` averages RGN_i over each block's tensors. Both leave
out the normalization layers' parameters (:func:`~trainers.training.modeling.norm_params`),
as the authors' code does.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from trainers.training.modeling import FineTuneModel


def relative_gradient_norms(module: nn.Module, names: Iterable[str]) -> dict[str, float]:
    """RGN_i = ‖g_i‖/‖θ_i‖ of each named parameter of ``module`` (0 without a gradient,
    or for an all-zero tensor)."""
    norms = {}
    for name in names:
        param = module.get_parameter(name)
        weight = float(param.detach().norm())
        grad = float(param.grad.norm()) if param.grad is not None else 0.0
        norms[name] = grad / weight if weight > 0 else 0.0
    return norms


def accumulate_gradient(
    model: FineTuneModel,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
) -> None:
    """Leave in every trainable parameter's ``.grad`` the gradient of the mean
    cross-entropy over all of ``batches`` (``(images, labels)`` pairs), in the modules'
    current modes; earlier gradients are dropped first."""
    model.zero_grad(set_to_none=True)
    chosen = list(batches)
    total = sum(len(labels) for _, labels in chosen)
    with torch.enable_grad():
        for x, labels in chosen:
            loss = nn.functional.cross_entropy(model(x), labels)
            (loss * len(labels) / total).backward()
