"""Accuracy and the score of a split: the one definition every part of the trainers uses.

:func:`accuracy` scores a batch of logits; :func:`dataset_score` scores a whole
split, batch by batch, with every module of the model in eval mode (each module's own
mode restored after): its accuracy, the exact count of right rows over the split's size,
its mean cross-entropy, and which images it classified right. Both count a prediction right when the arg-max of its logits
is the label; no rows score NaN.

Scores are :class:`trainers.jobs.results.Score`, which orders them.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from trainers.jobs.confidence import hits_string
from trainers.jobs.results import Score
from trainers.training.data import batches
from trainers.training.modeling import eval_mode


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """The share of rows whose arg-max is their label, as a float32 mean (a batch's
    accuracy: RL-Tune's reward); NaN for no rows."""
    if not len(labels):
        return float("nan")
    return float((logits.detach().argmax(1) == labels).float().mean())


@torch.no_grad()
def dataset_score(
    model: nn.Module,
    logits_of: Callable[[torch.Tensor], torch.Tensor],
    labels: torch.Tensor,
    batch_size: int = 128,
) -> Score:
    """The accuracy and mean cross-entropy of ``logits_of(rows)`` over ``labels``, batch
    by batch in order, with ``model`` in eval mode; NaN for no labels."""
    if not len(labels):
        return Score(float("nan"))
    right: list[bool] = []
    loss = 0.0
    with eval_mode(model):
        for index in batches(len(labels), batch_size, shuffle=False):
            logits, target = logits_of(index), labels[index]
            right += (logits.detach().argmax(1).cpu() == target.cpu()).tolist()
            target = target.to(logits.device)
            loss += float(nn.functional.cross_entropy(logits.float(), target, reduction="sum"))
    return Score(sum(right) / len(labels), loss / len(labels), hits_string(right))
