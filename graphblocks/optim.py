"""Blocks in the user's own training loop: optimizer groups with layer decay, and freezing.

A partition orders a model's parameters into *levels*: block 0 (nearest the input) to block
B − 1, then the head (level B). The functions here turn that order into what a training loop
needs, for any model, without a per-architecture table:

* :func:`param_groups`: ``torch.optim`` parameter groups. Each trainable parameter lies in
  exactly one group; frozen ones (``requires_grad=False``) are left out. With layer decay,
  the trained levels, from the head down, get rates ``lr·decay^0, lr·decay^1, …``: the
  scales count only the levels that train, so freezing the early blocks does not shrink
  the rates of the others (the fix of timm#2691). Biases, normalization weights (every
  parameter with ``ndim ≤ 1``) and the model's own ``no_weight_decay()`` names (timm's
  position embeddings and class tokens) are exempt from weight decay, as in timm.
* :func:`freeze` and :func:`unfreeze`: train only some blocks, quartiles or the head. A
  BatchNorm whose layer is frozen keeps its running statistics: it stays in eval mode even
  after ``model.train()`` (a forward pre-hook), unless ``bn_eval=False``.

What to train is a :data:`Selection`: block indices, quartile names (``"Q1"`` … ``"Q4"``) and
``"head"``, in any mix.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from torch import nn

from graphblocks.errors import PartitionError
from graphblocks.partition import Partition

#: the BatchNorm layers that freezing holds in eval mode
BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)
#: what to train: block indices, ``"Q1"``..``"Q4"`` and ``"head"``
Selection = Iterable[int | str]
HEAD = "head"
#: the forward pre-hooks that keep frozen BatchNorms in eval mode, by module
_EVAL_HOOK = "_graphblocks_eval_hook"


def levels(partition: Partition) -> dict[str, int]:
    """Parameter name → its level: the block index, or ``num_blocks`` for the head."""
    return {
        name: partition.num_blocks if block is None else block
        for name, block in partition.block_of().items()
    }


def selected_levels(partition: Partition, selection: Selection) -> set[int]:
    """The levels a :data:`Selection` names; a one-line error for anything unknown."""
    chosen: set[int] = set()
    for item in selection:
        if isinstance(item, int) and 0 <= item < partition.num_blocks:
            chosen.add(item)
        elif item == HEAD:
            chosen.add(partition.num_blocks)
        elif (
            isinstance(item, str)
            and item.upper().startswith("Q")
            and item[1:] in partition.quartiles
        ):
            chosen.update(partition.quartiles[item[1:]])
        else:
            raise PartitionError(
                f"cannot train {item!r}: not a block, quartile or the head",
                f"name blocks 0..{partition.num_blocks - 1}, quartiles Q1..Q4, or 'head'",
            )
    return chosen


def param_groups(
    model: nn.Module,
    partition: Partition | None = None,
    *,
    lr: float,
    layer_decay: float | None = None,
    block_lrs: Sequence[float] | Mapping[int | str, float] | None = None,
    weight_decay: float = 0.0,
    no_weight_decay_1d: bool = True,
    frozen: Selection = (),
) -> list[dict[str, Any]]:
    """``torch.optim`` parameter groups of ``model``'s trainable parameters, one per level
    and weight-decay class (``block3``, ``block3/no_decay``, ``head``, …).

    Each group's ``lr`` is ``block_lrs``' value for its level when given (a sequence of one
    rate per block and optionally the head's, or a mapping keyed by block index or
    ``"head"``), else ``lr·layer_decay^k`` for the k-th trained level below the top one
    (``lr`` for all without ``layer_decay``). ``lr_scale`` (the rate over ``lr``) is set too,
    for timm's schedulers, which read it. The levels ``frozen`` names are left out as if
    their parameters did not require a gradient. ``partition`` defaults to an analysis of
    ``model``.
    """
    partition = partition or _analyze(model)
    partition.check_model(model)
    level_of = levels(partition)
    skipped = selected_levels(partition, frozen)
    named = [
        (n, p)
        for n, p in model.named_parameters()
        if p.requires_grad and level_of[n] not in skipped
    ]
    trained = sorted({level_of[n] for n, _ in named}, reverse=True)
    rates = _explicit_rates(partition, block_lrs)
    exempt = _no_weight_decay(model)
    groups: dict[str, dict[str, Any]] = {}
    for name, param in named:
        level = level_of[name]
        rate = rates.get(level, lr * (layer_decay or 1.0) ** trained.index(level))
        decays = not ((no_weight_decay_1d and param.ndim <= 1) or _matches(name, exempt))
        key = (HEAD if level == partition.num_blocks else f"block{level}") + (
            "" if decays else "/no_decay"
        )
        group = groups.setdefault(
            key,
            {
                "name": key,
                "params": [],
                "lr": rate,
                "lr_scale": rate / lr,
                "weight_decay": weight_decay if decays else 0.0,
            },
        )
        group["params"].append(param)
    return list(groups.values())


def freeze(
    model: nn.Module, partition: Partition, train: Selection, *, bn_eval: bool = True
) -> int:
    """Train only the levels ``train`` names: every other parameter gets
    ``requires_grad=False`` and, with ``bn_eval``, every BatchNorm of a frozen block stays
    in eval mode (its running statistics kept). Returns the parameter elements that train."""
    partition.check_model(model)
    keep = selected_levels(partition, train)
    level_of = levels(partition)
    for name, param in model.named_parameters():
        param.requires_grad_(level_of[name] in keep)
    frozen = set(range(partition.num_blocks + 1)) - keep
    hold_batchnorms(model, partition, frozen, hold=bn_eval)
    hold_batchnorms(model, partition, keep, hold=False)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def unfreeze(model: nn.Module, partition: Partition, train: Selection) -> int:
    """Make the levels ``train`` names trainable too (their BatchNorms follow
    ``model.train()`` again); the others stay as they are. Returns the parameter
    elements that train."""
    partition.check_model(model)
    more = selected_levels(partition, train)
    level_of = levels(partition)
    for name, param in model.named_parameters():
        if level_of[name] in more:
            param.requires_grad_(True)
    hold_batchnorms(model, partition, more, hold=False)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def parameters_of(model: nn.Module, partition: Partition, chosen: set[int]) -> list[nn.Parameter]:
    """``model``'s parameters in the levels ``chosen``, in the model's order."""
    level_of = levels(partition)
    return [p for n, p in model.named_parameters() if level_of[n] in chosen]


def join_optimizer(
    model: nn.Module, partition: Partition, selection: Selection, optimizer: Any
) -> list[nn.Parameter]:
    """Unfreeze the levels ``selection`` names into a running ``optimizer``: their parameters
    that it does not hold yet become trainable with no gradient (what they gathered while
    frozen or left out is not a step's), their BatchNorms follow ``model.train()`` again.
    Returns those parameters, for the caller to add in groups of its own."""
    chosen = selected_levels(partition, selection)
    present = {id(p) for group in optimizer.param_groups for p in group["params"]}
    joining = [p for p in parameters_of(model, partition, chosen) if id(p) not in present]
    for param in joining:
        param.requires_grad_(True)
        param.grad = None
    hold_batchnorms(model, partition, chosen, hold=False)
    return joining


def _analyze(model: nn.Module) -> Partition:
    from graphblocks import analyze

    return analyze(model)


def _explicit_rates(
    partition: Partition, block_lrs: Sequence[float] | Mapping[int | str, float] | None
) -> dict[int, float]:
    """``block_lrs`` by level (the head is level ``num_blocks``)."""
    if block_lrs is None:
        return {}
    count = partition.num_blocks
    if isinstance(block_lrs, Mapping):
        return {
            level: float(rate)
            for key, rate in block_lrs.items()
            for level in selected_levels(partition, [key])
        }
    if len(block_lrs) not in (count, count + 1):
        raise PartitionError(
            f"{len(block_lrs)} block rates for {count} blocks",
            f"give {count} (blocks) or {count + 1} (blocks, then the head)",
        )
    return dict(enumerate(float(r) for r in block_lrs))


def _no_weight_decay(model: nn.Module) -> set[str]:
    """The model's own exemptions (timm's ``no_weight_decay()``: names or patterns)."""
    method = getattr(model, "no_weight_decay", None)
    return set(method()) if callable(method) else set()


def _matches(name: str, patterns: set[str]) -> bool:
    return name in patterns or any(fnmatch.fnmatchcase(name, p) for p in patterns)


def hold_batchnorms(
    model: nn.Module, partition: Partition, chosen: set[int], hold: bool = True
) -> None:
    """Hold the BatchNorms of the ``chosen`` levels in eval mode at every forward, their
    running statistics kept (a forward pre-hook), or release them (``hold=False``)."""
    modules = dict(model.named_modules())
    for layer in partition.layers:
        module = modules.get(layer.name)
        level = partition.num_blocks if layer.block is None else layer.block
        if isinstance(module, BATCHNORMS) and level in chosen:
            _hold(module, hold)


def _hold(module: nn.Module, hold: bool) -> None:
    handle = getattr(module, _EVAL_HOOK, None)
    if handle is not None and not hold:
        handle.remove()
        delattr(module, _EVAL_HOOK)
    elif handle is None and hold:
        setattr(module, _EVAL_HOOK, module.register_forward_pre_hook(_hold_in_eval))
        module.eval()


def _hold_in_eval(module: nn.Module, args: Any) -> None:
    """A forward pre-hook: ``module`` runs in eval mode, its inputs unchanged."""
    module.eval()
