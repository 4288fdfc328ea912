"""The partition rule: cut after delimiting cut vertices, then make every block weighted.

Let v_1 < v_2 < … < v_n be the activation nodes in topological order and
D the admissible cuts: the nodes after which at most K tensors cross under the rule of
:mod:`graphblocks.analysis.crossing` (the dominators of the output when K = 1). The
boundary set is

    B = { v ∈ D : delimiter(v) ∈ C  or  (merge ∈ C and v is a residual merge) }

for the chosen classes C ⊆ {pool, norm, act, merge}. With ``merge`` ∈ C, the entry of
a residual unit (a dominator whose output forks, followed in D by the merge that
joins the paths again) is a boundary too, so both ends of a unit are cut even where
no delimiter precedes it (a ViT stem). Cutting after each b ∈ B gives segments
S_0, S_1, …, S_k, contiguous in topological order. A segment without a weighted layer
(conv, linear, embedding, weight matmul) is merged away: one without normalization
parameters (an activation or pooling tail, ``+ pos_embed``) closes the block before it;
one with a norm joins the neighbour whose adjacent layer shares the longer module path
with it (a stage's post-norm stays in its stage), the block after it on a tie (a
pre-norm belongs to the layer it feeds), the block before when none follows.
So consecutive boundaries collapse into one. The head's
layers belong to no block. Block i of N is in quartile ⌊4i/N⌋ + 1.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

import networkx as nx


@dataclass
class Block:
    """A contiguous run of activation nodes and the parameter-owning layers among them."""

    nodes: list[str] = field(default_factory=list)
    layers: list[str] = field(default_factory=list)
    weighted: bool = False

    def absorb(self, other: Block) -> None:
        """Append ``other``'s nodes and layers (``other`` follows ``self``)."""
        self.nodes += other.nodes
        self.layers += other.layers
        self.weighted = self.weighted or other.weighted


def is_boundary(data: dict[str, object], classes: Collection[str]) -> bool:
    """Whether a dominating node of this kind ends a segment under ``classes``."""
    return data["delimiter"] in classes or (
        "merge" in classes and bool(data["merge"] or data["unit"])
    )


def _segments(graph: nx.DiGraph, boundaries: set[str], head: set[str]) -> list[Block]:
    segments = [Block()]
    for node in graph:
        data = graph.nodes[node]
        if not data["activation"] or data["kind"] == "output" or node in head:
            continue
        current = segments[-1]
        current.nodes.append(node)
        if data["owned"]:
            current.layers.append(node)
            current.weighted = current.weighted or data["role"] == "weighted"
        if node in boundaries:
            segments.append(Block())
    return [s for s in segments if s.nodes]


def shared_path(a: str, b: str) -> int:
    """How many leading dotted components module paths ``a`` and ``b`` share."""
    count = 0
    for x, y in zip(a.split("."), b.split("."), strict=False):
        if x != y:
            break
        count += 1
    return count


def _merge_weightless(
    segments: list[Block], module_of: Callable[[str], str], role_of: Callable[[str], str]
) -> list[Block]:
    following: list[Block | None] = []  # the next weighted segment after each one
    upcoming: Block | None = None
    for segment in reversed(segments):
        following.append(upcoming)
        upcoming = segment if segment.weighted else upcoming
    following.reverse()
    blocks: list[Block] = []
    pending = Block()  # segments waiting to open the next weighted block
    for segment, after in zip(segments, following, strict=True):
        if segment.weighted:
            pending.absorb(segment)
            blocks.append(pending)
            pending = Block()
        elif not blocks or pending.nodes:
            pending.absorb(segment)  # leading, or after a segment already bound forward
        elif not any(role_of(n) == "norm" for n in segment.layers):
            blocks[-1].absorb(segment)  # an activation / pooling tail, or `+ pos_embed`
        else:
            back = shared_path(module_of(segment.layers[0]), module_of(blocks[-1].layers[-1]))
            ahead = (
                -1
                if after is None
                else shared_path(module_of(segment.layers[-1]), module_of(after.layers[0]))
            )
            if back > ahead:
                blocks[-1].absorb(segment)  # a post-norm closes its own stage
            else:
                pending.absorb(segment)  # a pre-norm belongs to the layer it feeds
    if pending.nodes and blocks:
        blocks[-1].absorb(pending)
    elif pending.layers:
        blocks.append(pending)  # a model without any weighted layer: one block
    return blocks


def residual_entries(graph: nx.DiGraph, cuts: list[str]) -> set[str]:
    """Cut nodes that open a residual unit: their output forks into two or more
    activation paths and the next cut is the merge that joins them again; or the next
    cut is an opaque unit (whose fork is hidden inside it). ``cuts`` are the admissible
    cuts in topological order (the output's dominators when only one tensor may cross)."""
    entries = set()
    for node, following in itertools.pairwise(cuts):
        if graph.nodes[following]["unit"]:
            entries.add(node)
        elif graph.nodes[following]["merge"]:
            forks = sum(graph.nodes[s]["activation"] for s in graph.successors(node))
            if forks >= 2:
                entries.add(node)
    return entries


def plan_blocks(
    graph: nx.DiGraph, cuts: list[str], head: Collection[str], classes: Collection[str]
) -> list[Block]:
    """Cut the annotated graph into blocks under the partition rule (see module doc);
    ``cuts`` are the admissible cuts (:func:`graphblocks.analysis.crossing.scan_cuts`)
    in topological order."""
    boundaries = {n for n in cuts if is_boundary(graph.nodes[n], classes)}
    if "merge" in classes:
        boundaries |= residual_entries(graph, cuts)
    segments = _segments(graph, boundaries, set(head))
    return _merge_weightless(
        segments,
        module_of=lambda node: str(graph.nodes[node]["module"]),
        role_of=lambda node: str(graph.nodes[node]["role"]),
    )


def coarsen(
    blocks: list[Block], sizes: list[int], max_blocks: int
) -> tuple[list[Block], list[int]]:
    """Merge adjacent blocks, the pair with the fewest parameters first, until at most
    ``max_blocks`` remain; ties go to the earliest pair. ``sizes`` are parameter counts."""
    blocks, sizes = list(blocks), list(sizes)
    while len(blocks) > max(1, max_blocks):
        pair = min(range(len(blocks) - 1), key=lambda i: (sizes[i] + sizes[i + 1], i))
        merged = Block(list(blocks[pair].nodes), list(blocks[pair].layers), blocks[pair].weighted)
        merged.absorb(blocks[pair + 1])
        blocks[pair : pair + 2] = [merged]
        sizes[pair : pair + 2] = [sizes[pair] + sizes[pair + 1]]
    return blocks, sizes


def quartile_of(index: int, count: int) -> int:
    """Quartile (1..4) of block ``index`` (0-based) among ``count`` blocks: ⌊4i/N⌋ + 1."""
    return (4 * index) // count + 1
