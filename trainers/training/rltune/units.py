"""RL-Tune's units (the sets of parameters that share one learning rate) and its state.

Units are the partition's weighted layers (or its blocks) in forward order, the new head
last; a norm or other parameter-owning layer joins the unit of the weighted layer before
it (the first one when none is before it). The state of a unit is the mean of its output
activation over the batch, channels and positions, read by a forward hook.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from graphblocks import Partition
from trainers.jobs.job import JobKind, job_name


@dataclass(frozen=True)
class RateUnit:
    """A set of parameters that shares one learning rate, and the module whose output
    is its state feature."""

    name: str
    params: tuple[str, ...]  # names in the fine-tuning model (``trunk.…``, ``head.…``)
    probe: str  # module path in the fine-tuning model


def _module_of(param: str) -> str:
    return param.rpartition(".")[0]


Names = Callable[[list[str]], list[str]]


def make_units(
    partition: Partition, model: nn.Module, granularity: str, dropped: set[str]
) -> list[RateUnit]:
    """Units in forward order, the head last (see the module docstring)."""
    order = [n for n, _ in model.named_parameters()]
    present = set(order)

    def names(params: list[str]) -> list[str]:
        return [f"trunk.{p}" for p in params if p not in dropped and f"trunk.{p}" in present]

    units = (_block_units if granularity == "block" else _layer_units)(partition, names)
    head = names(list(partition.head.params)) + [n for n in order if n.startswith("head.")]
    return [*units, RateUnit("head", tuple(head), "head")]


def _block_units(partition: Partition, names: Names) -> list[RateUnit]:
    units = []
    for b in partition.blocks:
        owners = [layer for layer in partition.layers if layer.block == b.index and layer.params]
        probe = _module_of(f"trunk.{owners[-1].params[0]}") if owners else f"trunk.{b.layers[-1]}"
        units.append(RateUnit(job_name(JobKind.BLOCK, b.index), tuple(names(b.params)), probe))
    return units


def _layer_units(partition: Partition, names: Names) -> list[RateUnit]:
    units: list[RateUnit] = []
    pending: list[str] = []
    for layer in partition.layers:
        if layer.block is None:
            continue
        params = names(layer.params)
        if layer.role == "weighted":
            probe = _module_of(params[0]) if params else f"trunk.{layer.name}"
            units.append(RateUnit(layer.name, tuple(pending + params), probe))
            pending = []
        elif units:
            previous = units[-1]
            units[-1] = RateUnit(previous.name, previous.params + tuple(params), previous.probe)
        else:
            pending += params
    return units


class StateProbe:
    """Forward hooks that record each unit's mean output activation."""

    def __init__(self, model: nn.Module, units: list[RateUnit]) -> None:
        self.values = torch.zeros(len(units))
        self.active = True
        self._handles = []
        modules = dict(model.named_modules())
        for i, unit in enumerate(units):
            module = modules.get(unit.probe)
            if module is not None:
                self._handles.append(module.register_forward_hook(self._hook(i)))

    def _hook(self, index: int) -> Callable[..., None]:
        def record(_module: nn.Module, _inputs: Any, output: Any) -> None:
            if self.active and isinstance(output, torch.Tensor):
                self.values[index] = output.detach().float().mean().cpu()

        return record

    def state(self) -> torch.Tensor:
        """The last recorded state as [units, 1]."""
        return self.values.clone().unsqueeze(-1)

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
