"""transformers' ``Trainer`` with graphblocks' blocks: the optimizer for ``optimizers=``, and a
callback for gradual unfreezing.

``Trainer`` builds one optimizer over every trainable parameter; per-group rates are answered
upstream with "override ``create_optimizer``" (transformers#10140). :func:`create_optimizer`
builds the optimizer that ``TrainingArguments`` name (``optim``, ``learning_rate``,
``weight_decay``, Adam's betas and epsilon) over :func:`graphblocks.param_groups`: layer decay
over the blocks that train and timm's weight-decay exemption. ``Trainer`` then makes its
schedule over those groups as usual (``optimizers=(optimizer, None)``).

:class:`GradualUnfreezing` freezes the model when made, before ``Trainer`` wraps it, and adds
blocks or quartiles at the start of the epochs it names, each in a group of its own that the
schedule follows. Under several processes (``args.world_size > 1``) the blocks it will add stay
trainable but outside the optimizer until their epoch, so that distributed data parallel
averages their gradients once they train (as in :mod:`graphblocks.integrations.lightning`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import nn
from transformers import PreTrainedModel, Trainer, TrainerCallback, TrainingArguments

from graphblocks.optim import (
    Selection,
    freeze,
    hold_batchnorms,
    join_optimizer,
    param_groups,
    parameters_of,
    selected_levels,
)
from graphblocks.partition import Partition


def create_optimizer(
    model: nn.Module,
    args: TrainingArguments,
    partition: Partition | None = None,
    *,
    layer_decay: float | None = None,
    block_lrs: Sequence[float] | Mapping[int | str, float] | None = None,
    exclude: Iterable[nn.Parameter] = (),
) -> torch.optim.Optimizer:
    """The optimizer ``args`` name, over :func:`graphblocks.param_groups` of ``model`` at
    ``args.learning_rate`` and ``args.weight_decay``, less the parameters in ``exclude``
    (:meth:`GradualUnfreezing.pending`)."""
    skip = {id(p) for p in exclude}
    groups = param_groups(
        model,
        partition,
        lr=args.learning_rate,
        layer_decay=layer_decay,
        block_lrs=block_lrs,
        weight_decay=args.weight_decay,
    )
    for group in groups:
        group["params"] = [p for p in group["params"] if id(p) not in skip]
    pretrained = model if isinstance(model, PreTrainedModel) else None
    optimizer_class, settings = Trainer.get_optimizer_cls_and_kwargs(args, pretrained)
    settings = {k: v for k, v in settings.items() if k not in ("lr", "weight_decay")}
    optimizer: torch.optim.Optimizer = optimizer_class(
        [g for g in groups if g["params"]], lr=args.learning_rate, **settings
    )
    return optimizer


class GradualUnfreezing(TrainerCallback):
    """Train ``train`` from the start and add the levels of ``unfreeze`` (epoch → blocks,
    quartiles or ``"head"``) at the start of those epochs, at ``lr`` (else the rate of the
    optimizer's first group)."""

    def __init__(
        self,
        model: nn.Module,
        partition: Partition,
        args: TrainingArguments,
        *,
        train: Selection,
        unfreeze: Mapping[int, Selection],
        lr: float | None = None,
    ) -> None:
        self.model, self.partition, self.lr = model, partition, lr
        self.unfreeze = {int(e): list(s) for e, s in unfreeze.items()}
        self.trained = selected_levels(partition, list(train))
        later = [item for s in self.unfreeze.values() for item in s]
        distributed = args.world_size > 1
        freeze(model, partition, train=list(train) + (later if distributed else []))
        if distributed:
            hold_batchnorms(model, partition, selected_levels(partition, later) - self.trained)

    def pending(self) -> list[nn.Parameter]:
        """The parameters that later epochs add: leave them out of the optimizer."""
        later = [item for s in self.unfreeze.values() for item in s]
        chosen = selected_levels(self.partition, later) - self.trained
        return parameters_of(self.model, self.partition, chosen)

    def on_epoch_begin(
        self, args: TrainingArguments, state: Any, control: Any, **kwargs: Any
    ) -> None:
        epoch = round(state.epoch or 0)
        if epoch not in self.unfreeze:
            return
        optimizer, schedule = kwargs["optimizer"], kwargs.get("lr_scheduler")
        selection = self.unfreeze[epoch]
        joining = {id(p) for p in join_optimizer(self.model, self.partition, selection, optimizer)}
        self.trained |= selected_levels(self.partition, selection)
        first = optimizer.param_groups[0]
        base = self.lr if self.lr is not None else first.get("initial_lr", first["lr"])
        groups = param_groups(self.model, self.partition, lr=base, weight_decay=args.weight_decay)
        for group in groups:  # the joining levels, with the weight-decay exemption
            group["params"] = [p for p in group["params"] if id(p) in joining]
            if group["params"]:
                optimizer.add_param_group({**group, "initial_lr": group["lr"]})
                _follow(schedule, group["lr"])


def _follow(schedule: Any, base: float) -> None:
    """Let a ``LambdaLR`` schedule (what ``Trainer`` makes) drive the group just added,
    with the first group's multiplier."""
    if isinstance(schedule, torch.optim.lr_scheduler.LambdaLR):
        schedule.base_lrs.append(base)
        schedule.lr_lambdas.append(schedule.lr_lambdas[0])
        group = schedule.optimizer.param_groups[-1]
        group["lr"] = base * schedule.lr_lambdas[0](schedule.last_epoch)
