"""The ``peft`` export: ``LoraConfig`` keyword arguments that adapt the chosen blocks only.

PEFT picks the layers to adapt by name (``target_modules``, optionally narrowed by
``layers_to_transform`` and ``layers_pattern``), written by hand per architecture. Here they
come from the partition: every layer of the chosen blocks that LoRA can wrap, by its full
module name. PEFT matches a name in a list when the module's name equals it or ends with
``"." + name``, so full names adapt exactly those modules; ``layers_to_transform`` is not
needed and is left out.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from graphblocks.errors import PartitionError
from graphblocks.partition import Partition

#: the module types (the partition's ``op``) that PEFT's LoRA wraps
LORA_OPS = frozenset({"Linear", "Conv1d", "Conv2d", "Conv3d", "Embedding"})


def lora_arguments(
    partition: Partition, blocks: Iterable[int] = (), quartiles: Iterable[int] = ()
) -> dict[str, Any]:
    """``{"target_modules": [...]}`` for ``peft.LoraConfig``: the LoRA-wrappable layers of
    ``blocks`` and of every block of ``quartiles`` (all blocks when neither is given), in
    order; a one-line error when they hold none."""
    chosen = set(blocks)
    for quartile in quartiles:
        if str(quartile) not in partition.quartiles:
            raise PartitionError(f"no quartile Q{quartile}", "give quartiles 1 to 4")
        chosen.update(partition.quartiles[str(quartile)])
    unknown = sorted(b for b in chosen if not 0 <= b < partition.num_blocks)
    if unknown:
        raise PartitionError(
            f"no block {unknown[0]} in a partition of {partition.num_blocks} blocks",
            f"give blocks 0 to {partition.num_blocks - 1}",
        )
    wanted = chosen or set(range(partition.num_blocks))
    targets = [
        layer.name
        for layer in partition.layers
        if layer.block in wanted and layer.op in LORA_OPS and layer.role == "weighted"
    ]
    if not targets:
        raise PartitionError(
            f"blocks {sorted(wanted)} hold no layer LoRA can adapt ({', '.join(sorted(LORA_OPS))})",
            "choose other blocks",
        )
    return {"target_modules": targets}
