"""Check the invariants every partition must satisfy against the graph it came from."""

from __future__ import annotations

from collections.abc import Sequence

import networkx as nx

from graphblocks.analysis import quartile_of, scan_cuts
from graphblocks.errors import PartitionError
from graphblocks.partition import Partition


def check_invariants(
    graph: nx.DiGraph, partition: Partition, parameter_names: Sequence[str]
) -> None:
    """Raise :class:`PartitionError` naming the first broken invariant.

    1. every parameter lands in exactly one block or the head;
    2. blocks are contiguous in topological order (layer block indices never decrease);
    3. every block but the last ends at an admissible cut (:mod:`graphblocks.analysis.crossing`)
       and records its crossing set as its outputs, which are the next block's inputs;
    4. every block holds a weighted layer;
    5. block i of N is in quartile ⌊4i/N⌋ + 1, and the quartile lists agree.
    """
    partition.check_coverage(parameter_names)
    order = [layer.block for layer in partition.layers if layer.block is not None]
    if order != sorted(order):
        raise PartitionError("blocks are not contiguous in topological order")
    cuts = scan_cuts(graph, partition.settings["max_crossing"]).admissible
    for block, following in zip(partition.blocks, partition.blocks[1:], strict=False):
        if list(cuts.get(block.exit, ())) != block.outputs:
            raise PartitionError(
                f"block {block.index} ends at {block.exit!r} with outputs {block.outputs}, "
                "which is not an admissible cut"
            )
        if following.inputs != block.outputs:
            raise PartitionError(
                f"block {following.index}'s inputs are not block {block.index}'s outputs"
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
