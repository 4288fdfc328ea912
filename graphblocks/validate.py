"""Check the invariants every partition must satisfy against the graph it came from."""

from __future__ import annotations

from collections.abc import Sequence

import networkx as nx

from graphblocks.analysis import output_dominators, quartile_of
from graphblocks.errors import PartitionError
from graphblocks.partition import Partition


def check_invariants(
    graph: nx.DiGraph, partition: Partition, parameter_names: Sequence[str]
) -> None:
    """Raise :class:`PartitionError` naming the first broken invariant.

    1. every parameter lands in exactly one block or the head;
    2. blocks are contiguous in topological order (layer block indices never decrease);
    3. every block exit but the last is a cut vertex (a dominator of the output);
    4. every block holds a weighted layer;
    5. block i of N is in quartile ⌊4i/N⌋ + 1, and the quartile lists agree.
    """
    partition.check_coverage(parameter_names)
    order = [layer.block for layer in partition.layers if layer.block is not None]
    if order != sorted(order):
        raise PartitionError("blocks are not contiguous in topological order")
    dominators = set(output_dominators(graph))
    for block in partition.blocks[:-1]:
        if block.exit not in dominators:
            raise PartitionError(
                f"block {block.index} ends at {block.exit!r}, which is not a cut vertex"
            )
    role = {layer.name: layer.role for layer in partition.layers}
    count = partition.num_blocks
    for block in partition.blocks:
        if not any(role[name] == "weighted" for name in block.layers):
            raise PartitionError(f"block {block.index} has no weighted layer")
        if block.quartile != quartile_of(block.index, count):
            raise PartitionError(f"block {block.index} has quartile {block.quartile}")
    listed = sorted(i for indices in partition.quartiles.values() for i in indices)
    if listed != list(range(count)):
        raise PartitionError("the quartile lists do not name every block once")
