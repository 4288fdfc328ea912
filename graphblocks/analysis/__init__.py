"""Pure functions on the annotated graph: cut vertices, head, blocks, quartiles."""

from graphblocks.analysis.blocks import Block, coarsen, plan_blocks, quartile_of
from graphblocks.analysis.cuts import output_dominators
from graphblocks.analysis.head import classifier_params, find_head, is_global_pool

__all__ = [
    "Block",
    "classifier_params",
    "coarsen",
    "find_head",
    "is_global_pool",
    "output_dominators",
    "plan_blocks",
    "quartile_of",
]
