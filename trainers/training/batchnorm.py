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

import contextlib
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn

from trainers.training.modeling import BATCH_NORMS, eval_mode


def training_norms(model: nn.Module) -> list[nn.Module]:
    """The BatchNorms of ``model`` in training mode now: those that train (see
    :func:`trainers.training.modeling.set_modes`), whose statistics have moved."""
    return [m for m in model.modules() if isinstance(m, BATCH_NORMS) and m.training]


class _AllRead(BaseException):
    """Every BatchNorm has read this batch: the rest of the forward pass is not needed.
    (A BaseException, so that no model's ``except Exception`` swallows it.)"""


@torch.no_grad()
def recompute_bn(
    model: nn.Module, inputs: Iterable[Any], norms: Sequence[nn.Module] | None = None
) -> bool:
    """Set the running statistics of ``norms`` (default: every BatchNorm of ``model``)
    to the mean and unbiased variance of their input, pooled over all of ``inputs`` (what
    ``model`` takes: a batch of images, or of cached activations) run through ``model``;
    every other module in eval mode, those BatchNorms normalising by batch statistics
    meanwhile. Returns whether there was a BatchNorm to recompute; the modules' modes,
    momenta and batch counters are restored.

    Each BatchNorm computes its batch's per-channel mean m_b and unbiased variance over
    its n_b values per channel anyway; with momentum 1 its running statistics are exactly
    those, read after each batch (no second reduction over the activations, which cost
    more than the forward pass). The batches are pooled in double precision (Chan et al.
    1979): with N = Σ n_b and μ = Σ n_b·m_b / N,

        σ² = Σ n_b·(v_b + (m_b − μ)²) / (N − 1),

    v_b the batch's biased variance: the exact pooled mean and unbiased variance. A batch's
    forward pass stops as soon as every BatchNorm has read it (for block K of a sweep,
    after block K: the layers after it cannot change its statistics); a BatchNorm applied
    twice in one pass contributes its first application."""
    chosen: list[Any] = (
        list(norms)
        if norms is not None
        else [m for m in model.modules() if isinstance(m, BATCH_NORMS)]
    )  # BatchNorms: their statistics are read and set
    if not chosen:
        return False
    batches = _batch_statistics(model, inputs, chosen)
    for norm in chosen:
        if batches[norm]:
            mean, var = _pooled(batches[norm])
            norm.running_mean.copy_(mean)
            norm.running_var.copy_(var)
    return True


def _batch_statistics(
    model: nn.Module, inputs: Iterable[Any], norms: list[Any]
) -> dict[nn.Module, list[tuple[int, torch.Tensor, torch.Tensor]]]:
    """Each of ``norms``' per-batch ``(n_b, m_b, v_b)`` over ``inputs`` run through
    ``model`` (see :func:`recompute_bn`); modes, momenta and batch counters restored."""
    batches: dict[nn.Module, list[tuple[int, torch.Tensor, torch.Tensor]]] = {n: [] for n in norms}
    saved = {n: (n.momentum, n.num_batches_tracked.clone()) for n in norms}

    pending: set[nn.Module] = set()

    def read(module: Any, args: tuple[torch.Tensor, ...], _output: Any) -> None:
        n = args[0].numel() // args[0].shape[1]
        mean = module.running_mean.double().clone()
        biased = module.running_var.double() * ((n - 1) / n)
        batches[module].append((n, mean, biased))
        pending.discard(module)
        if not pending:
            raise _AllRead

    handles = [m.register_forward_hook(read) for m in norms]
    try:
        with eval_mode(model):
            for m in norms:
                m.train()
                m.momentum = 1.0
            for x in inputs:
                pending.update(norms)
                with contextlib.suppress(_AllRead):
                    model(x)
    finally:
        for handle in handles:
            handle.remove()
        for norm, (momentum, count) in saved.items():
            norm.momentum = momentum
            norm.num_batches_tracked.copy_(count)
    return batches


def _pooled(
    seen: list[tuple[int, torch.Tensor, torch.Tensor]],
) -> tuple[torch.Tensor, torch.Tensor]:
    """The pooled mean and unbiased variance of batches ``(n_b, m_b, v_b)`` (see above)."""
    total = sum(n for n, _, _ in seen)
    mean = sum(n * m for n, m, _ in seen) / total
    spread = sum(n * (v + (m - mean) ** 2) for n, m, v in seen)
    return torch.as_tensor(mean), torch.as_tensor(spread) / max(total - 1, 1)
