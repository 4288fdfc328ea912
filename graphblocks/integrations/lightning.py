"""Lightning: :class:`BlockwiseFinetuning`, a ``BaseFinetuning`` callback over a partition.

Three modes, which combine:

* **one block and the head** (the block-wise paper's B_opt): ``train=[k, "head"]``;
* **gradual unfreezing** by block or quartile: ``unfreeze={2: ["Q4"], 4: ["Q3"]}`` adds those
  levels at the start of each named epoch, in an optimizer group of their own (at ``lr``, or
  the first group's rate);
* **layer decay**: ``layer_decay=0.75`` turns the optimizer's one group into
  :func:`graphblocks.param_groups`' groups when fitting starts (the first group's settings,
  each level's rate decayed from it).

Distributed data parallel registers only the parameters that require a gradient when it
wraps the model, so a parameter unfrozen later would never have its gradient averaged and
the replicas would drift apart (Lightning#20340). Under several processes the callback
therefore keeps the parameters it will unfreeze later trainable but outside the optimizer
until their epoch (their gradients are computed and averaged, then dropped); in one process
they are frozen as usual. Frozen BatchNorms keep their running statistics either way
(:func:`graphblocks.freeze`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import BaseFinetuning
from torch import nn
from torch.optim import Optimizer

from graphblocks.errors import GraphblocksError
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


class BlockwiseFinetuning(BaseFinetuning):
    """Train the levels ``train`` names from the start, add those of ``unfreeze`` at their
    epochs, and optionally decay the rates by level (see the module docstring).
    ``network`` is the attribute of the LightningModule whose parameter names the partition
    holds (``"model"`` for ``self.model``; the module itself by default)."""

    def __init__(
        self,
        partition: Partition,
        *,
        train: Selection = ("head",),
        unfreeze: Mapping[int, Selection] | None = None,
        lr: float | None = None,
        layer_decay: float | None = None,
        network: str | None = None,
        bn_eval: bool = True,
    ) -> None:
        super().__init__()
        self.partition, self.network, self.bn_eval = partition, network, bn_eval
        self.train = list(train)
        self.unfreeze = {int(e): list(s) for e, s in (unfreeze or {}).items()}
        #: what ``unfreeze`` adds later, all epochs together
        self.later = [item for selection in self.unfreeze.values() for item in selection]
        self.lr, self.layer_decay = lr, layer_decay
        self.distributed = False

    def net(self, pl_module: pl.LightningModule) -> nn.Module:
        """The network the partition describes."""
        return getattr(pl_module, self.network) if self.network else pl_module

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self.distributed = trainer.world_size > 1
        super().setup(trainer, pl_module, stage)

    def freeze_before_training(self, pl_module: pl.LightningModule) -> None:
        """Freeze all but ``train``; under several processes, the levels unfrozen later
        stay trainable (see the module docstring) and leave the optimizer instead."""
        kept = self.train + (self.later if self.distributed else [])
        freeze(self.net(pl_module), self.partition, train=kept, bn_eval=self.bn_eval)
        if self.distributed:  # their BatchNorms stay frozen until their epoch
            hold_batchnorms(
                self.net(pl_module), self.partition, self._pending_levels(), self.bn_eval
            )

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_fit_start(trainer, pl_module)
        optimizer = trainer.optimizers[0]
        net = self.net(pl_module)
        if self.distributed:
            pending = {id(p) for p in self._pending(net)}
            for group in optimizer.param_groups:
                group["params"] = [p for p in group["params"] if id(p) not in pending]
        if self.layer_decay is not None:
            if trainer.lr_scheduler_configs:
                raise GraphblocksError(
                    "layer_decay rewrites the optimizer's groups, which a scheduler made "
                    "before it cannot follow",
                    "build the groups with graphblocks.param_groups(...) in "
                    "configure_optimizers, and leave layer_decay out",
                )
            _decay(optimizer, net, self.partition, self.layer_decay, self._pending(net))

    def finetune_function(
        self, pl_module: pl.LightningModule, epoch: int, optimizer: Optimizer
    ) -> None:
        """At an epoch of ``unfreeze``: make its levels trainable and add them to the
        optimizer in a group of their own."""
        if epoch not in self.unfreeze:
            return
        joining = join_optimizer(
            self.net(pl_module), self.partition, self.unfreeze[epoch], optimizer
        )
        if joining:
            rate = self.lr if self.lr is not None else optimizer.param_groups[0]["lr"]
            optimizer.add_param_group({"params": joining, "lr": rate, "name": f"epoch{epoch}"})

    def _pending_levels(self) -> set[int]:
        """The levels ``unfreeze`` adds later that ``train`` does not hold from the start."""
        return selected_levels(self.partition, self.later) - selected_levels(
            self.partition, self.train
        )

    def _pending(self, net: nn.Module) -> list[nn.Parameter]:
        """The parameters of :meth:`_pending_levels`."""
        return parameters_of(net, self.partition, self._pending_levels())

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "unfreeze": self.unfreeze}


def _decay(
    optimizer: Optimizer,
    net: nn.Module,
    partition: Partition,
    decay: float,
    pending: list[nn.Parameter],
) -> None:
    """Replace ``optimizer``'s one group by :func:`graphblocks.param_groups`' groups, the
    first group's other settings kept, its rate decayed by level."""
    if len(optimizer.param_groups) != 1:
        raise GraphblocksError(
            f"layer_decay needs an optimizer of one parameter group, not "
            f"{len(optimizer.param_groups)}",
            "return an optimizer over the module's parameters from configure_optimizers",
        )
    base = {k: v for k, v in optimizer.param_groups[0].items() if k != "params"}
    skip = {id(p) for p in pending}
    groups = param_groups(
        net, partition, lr=base["lr"], layer_decay=decay, weight_decay=base.get("weight_decay", 0.0)
    )
    optimizer.param_groups.clear()
    for group in groups:
        group["params"] = [p for p in group["params"] if id(p) not in skip]
        if group["params"]:
            optimizer.add_param_group({**base, **group})
