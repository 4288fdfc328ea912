"""Pure functions on the annotated graph: cut vertices, admissible cuts, head, blocks, quartiles."""

from graphblocks.analysis.blocks import Block, coarsen, is_boundary, plan_blocks, quartile_of
from graphblocks.analysis.crossing import CutScan, scan_cuts
from graphblocks.analysis.cuts import output_dominators
from graphblocks.analysis.head import classifier_params, find_head, is_global_pool

__all__ = [
    "Block",
    "CutScan",
    "classifier_params",
    "coarsen",
    "find_head",
    "is_boundary",
    "is_global_pool",
    "output_dominators",
    "plan_blocks",
    "quartile_of",
    "scan_cuts",
]
