"""Cuts where a few tensors cross: the live tensors at each point of a topological order.

Let v_1 < … < v_n be the activation nodes that reach the output, in the graph's
(topological, program) order, and cut right after v_i. The tensors that cross the cut are

    X_i = { u ≤ v_i : some reader w of u has w > v_i }      (the output node reads too)

so a segment between two cuts is a function from one crossing set to the next. What a cut
must never split is a unit of computation, local in scale; a tensor carried while the
stream works on another grid and comes back by resampling (a U-Net's skip, an FPN's tap) is
*carried across a stage* (:func:`long_operands`, :func:`holds_stage`) and is inside no unit.
A cut is **admissible** when

1. **narrow**: |X_i| ≤ K (``max_crossing``);
2. **no operands split**: no later node reads two tensors of X_i directly, operands
   carried across a stage not counted. Such a node joins two operands the cut separates:
   the branches of an Inception module before their concatenation, the layers of a dense
   block, ``x`` and ``f(x)`` just before their sum;
3. **carried over a whole unit, or across a stage**: every *carried* tensor
   u ∈ C_i = X_i - {v_i} is carried across a stage, or is *held* and has, since its last
   read r(u) ≤ i (or its creation), been carried over a complete unit: a merge m with
   R_i < m ≤ v_i, R_i = max r(u) over the held tensors, at which only C_i and m itself
   were live, X_m = C_i + {m}. Units are the merges that close a skip or a cell
   (:class:`Join`) deeply enough (:data:`UNIT_DEPTH`); a join of parallel branches never
   is one. A tensor about to close a concatenating skip it starts needs a skip unit;
4. **not inside a residual unit**: no held tensor has entered an ``x + f(x)`` it starts
   that closes after the cut, unless a path of :data:`UNIT_DEPTH` weighted layers still
   lies between the cut and that sum (a skip over a stage, as an FPN lateral's).

Every held u is live throughout (R_i, v_i] and m is read after m, so X_m ⊇ C_i + {m}, and
the test is |X_m| = |X_i| for the latest unit of that width: O(1) per cut. Inside a residual
unit the skip x has been read by f's first layer and is due to be summed, so conditions 3
and 4 fail whatever K. A NASNet cell's earlier input is carried over the previous cell, a
second transformer branch over the first branch's units. The math and the measurements
are in docs/partition-rule.md.

A single-tensor cut (|X_i| = 1, C_i = ∅) is admissible exactly when v_i dominates the
output (:mod:`graphblocks.analysis.cuts`): with K = 1 this rule is the single-tensor one.
The scan is one pass over the order and its edges, O(n + e) plus O(W) per cut of width
W ≤ ``scan_limit``, after classifying each merge over the region its operands span.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

import networkx as nx

from graphblocks import ops
from graphblocks.graph import output_of

#: merges that add their operands, so nested ones flatten (:func:`operands`)
SUMS = ops.MERGE_FUNCTIONS - ops.CONCAT_FUNCTIONS
#: widths beyond this are not examined for :attr:`CutScan.refused`
SCAN_LIMIT = 32
#: a unit counts (condition 3) when some path through it holds this many weighted layers:
#: a bottleneck, an attention or MLP half, a NASNet cell's separable branches, not one
#: re-parameterizable convolution beside an identity
UNIT_DEPTH = 2


@dataclass
class CutScan:
    """The live tensors along the order, and the cuts the rule admits.

    ``admissible`` maps v_i to X_i (in topological order) for every admissible cut;
    ``refused`` maps v_i to |X_i| where the cut passes conditions 2 to 4 but is wider
    than ``max_crossing``; ``width`` is |X_i| for every activation node that reaches
    the output.
    """

    max_crossing: int
    order: list[str] = field(default_factory=list)
    width: dict[str, int] = field(default_factory=dict)
    admissible: dict[str, tuple[str, ...]] = field(default_factory=dict)
    refused: dict[str, int] = field(default_factory=dict)

    def single(self) -> list[str]:
        """The single-tensor cuts (the output's dominators), in topological order."""
        return [n for n in self.order if len(self.admissible.get(n, ())) == 1]


def _useful_order(graph: nx.DiGraph) -> list[str]:
    """Activation nodes from which the output can be reached, in graph order."""
    out = output_of(graph)
    reaching = nx.ancestors(graph, out)
    return [n for n in graph if n in reaching and graph.nodes[n]["activation"]]


def _split_operands(
    graph: nx.DiGraph, order: list[str], position: dict[str, int], long: dict[str, set[str]]
) -> list[bool]:
    """Positions i where a later node reads two tensors of X_i: for a node w whose
    distinct activation inputs sit at q_1 < q_2 < …, every i with q_2 ≤ i < w. Inputs
    carried across a stage (``long[w]``, :func:`long_operands`) are not counted: a cut
    inside that stage separates them from nothing they are computed with."""
    change = [0] * (len(order) + 1)
    for node in order:
        exempt = long.get(node, set())
        inputs = sorted(
            {position[u] for u in graph.predecessors(node) if u in position and u not in exempt}
        )
        if len(inputs) >= 2:
            change[inputs[1]] += 1
            change[position[node]] -= 1
    split, running = [], 0
    for delta in change[:-1]:
        running += delta
        split.append(running > 0)
    return split


class Join(IntEnum):
    """What a merge closes, by the ancestry among its inputs (:func:`join_kind`)."""

    #: no unit: parallel branches joined (no input is an ancestor of another: Inception,
    #: ASPP), or a skip or cell too thin to count as a unit
    PARALLEL = 0
    #: some input is an ancestor of another, but not the earliest of all the others
    #: (a NASNet cell's output concatenation, a Res2Net hierarchy)
    CELL = 1
    #: the earliest input is an ancestor of every other: a skip closed, ``x + f(x)``,
    #: ``cat(e, up(g(e)))``
    SKIP = 2


def join_kind(graph: nx.DiGraph, node: str, position: dict[str, int]) -> tuple[Join, str | None]:
    """Classify a merge (:class:`Join`) and name the tensor a skip starts from (None for a
    cell or parallel join). A sum whose inputs run back, each through a chain of
    one-input operations, to one fork closes a skip from that fork: the projection
    shortcut ``f(x) + bn(conv(x))`` (a concatenation of such chains joins parallel
    branches). A skip with fewer than :data:`UNIT_DEPTH` weighted layers on any path
    between its start and the merge (a cell: without a weighted layer) counts as no unit
    (:attr:`Join.PARALLEL`) but still starts where it starts: ConvNeXt-V2's
    ``x + γ·(x·N(x)) + β``, a Ghost module's ``cat(x, dw(x))``, MobileOne's and RepVGG's
    ``bn(x) + conv1(x) + conv3(x)``. Searches back from each later input only down
    to the earliest input's position, so the cost is the size of the unit."""
    inputs = sorted((position[u], u) for u in operands(graph, node, position))
    if len(inputs) < 2:
        return Join.PARALLEL, None
    floor, first = inputs[0]
    earlier = {u for _, u in inputs}
    reaches_first, reaches_any, region = True, False, set()
    for _, start in inputs[1:]:
        found, walked = _earlier_ancestors(graph, start, earlier - {start}, floor, position)
        reaches_any = reaches_any or bool(found)
        reaches_first = reaches_first and first in found
        region |= walked
    if reaches_first:
        deep = weighted_depth(graph, region, position, first) >= UNIT_DEPTH
        return (Join.SKIP if deep else Join.PARALLEL), first
    if not ops.is_concat_function(graph.nodes[node]["canonical"]):
        for _, u in inputs:
            fork = _shortcut_fork(graph, u, [v for _, v in inputs if v != u], position)
            if fork is not None:
                return fork
    # a cell's inputs come from several sources, so its region depends on the order;
    # one weighted layer in it is enough
    held = any(graph.nodes[n]["role"] == "weighted" for n in region)
    return (Join.CELL if reaches_any and held else Join.PARALLEL), None


def operands(graph: nx.DiGraph, merge: str, position: dict[str, int]) -> list[str]:
    """The activation operands of a merge, with sums flattened: an input that is a sum
    read by this sum alone contributes its own operands, so ``(a + b) + (c + d)`` is one
    merge of a, b, c and d however the program associates it (a cell that adds its
    branches is classified like one that concatenates them)."""
    canonical = graph.nodes[merge]["canonical"]
    found: list[str] = []
    for u in graph.predecessors(merge):
        if u not in position:
            continue
        nested = (
            canonical in SUMS
            and graph.nodes[u]["merge"]
            and graph.nodes[u]["canonical"] in SUMS
            and sum(w in position for w in graph.successors(u)) == 1
        )
        found += operands(graph, u, position) if nested else [u]
    return found


def weighted_depth(
    graph: nx.DiGraph, region: set[str], position: dict[str, int], start: str
) -> int:
    """The most weighted layers on one path from ``start`` through ``region`` (longest
    path counted in weighted nodes, over the region in topological order); nodes of the
    region that ``start`` does not reach are not on the unit's paths."""
    depth: dict[str, int] = {start: 0}
    for node in sorted(region - {start}, key=position.__getitem__):
        below = [depth[p] for p in graph.predecessors(node) if p in depth]
        if below:
            depth[node] = max(below) + (graph.nodes[node]["role"] == "weighted")
    return max(depth.values())


def _shortcut_fork(
    graph: nx.DiGraph, shortcut: str, others: list[str], position: dict[str, int]
) -> tuple[Join, str] | None:
    """A projection shortcut: ``shortcut`` runs back through one-input operations to a
    fork that is an ancestor of every other input of the sum; then the sum closes a skip
    from that fork (a unit when :data:`UNIT_DEPTH` weighted layers lie on one path)."""
    chain = _chain_to_fork(graph, shortcut, position)
    fork = chain[-1]
    region = set(chain)
    for other in others:
        found, walked = _earlier_ancestors(graph, other, {fork}, position[fork], position)
        if other != fork and fork not in found:
            return None
        region |= walked
    deep = weighted_depth(graph, region, position, fork) >= UNIT_DEPTH
    return (Join.SKIP if deep else Join.PARALLEL), fork


def _chain_to_fork(graph: nx.DiGraph, node: str, position: dict[str, int]) -> list[str]:
    """Walking back from ``node`` through operations with one activation input, the
    nodes passed, ending with the first tensor read by more than one operation."""
    chain = [node]
    while True:
        readers = sum(1 for w in graph.successors(node) if w in position)
        sources = [u for u in graph.predecessors(node) if u in position]
        if readers > 1 or len(sources) != 1:
            return chain
        node = sources[0]
        chain.append(node)


def _earlier_ancestors(
    graph: nx.DiGraph, start: str, targets: set[str], floor: int, position: dict[str, int]
) -> tuple[set[str], set[str]]:
    """Which of ``targets`` are ancestors of ``start``, walking no lower than ``floor``;
    and the nodes walked."""
    found: set[str] = set()
    stack, seen = [start], {start}
    while stack:
        for u in graph.predecessors(stack.pop()):
            if u in targets:
                found.add(u)
            if u not in seen and position.get(u, -1) > floor:
                seen.add(u)
                stack.append(u)
    return found, seen


def spatial_levels(graph: nx.DiGraph, order: list[str]) -> dict[str, int | None]:
    """The size of each node's spatial grid: |axes 2…| of its output where the node
    resamples (:func:`graphblocks.ops.resamples`: a convolution, pooling, upsampling;
    1 for a pooled vector), else the largest among its activation inputs' grids (a
    broadcast gate such as ``x * se(x)`` keeps x's grid); a resampling node that keeps
    its input's size keeps its grid too (:func:`_resized`). The input's grid is read off
    its shape when it has spatial axes; None where a shape is unknown."""
    level: dict[str, int | None] = {}
    for node in order:
        data = graph.nodes[node]
        inputs = [level[u] for u in graph.predecessors(node) if u in level]
        known = [grid for grid in inputs if grid is not None]
        inherited = max(known) if known and len(known) == len(inputs) else None
        if data["kind"] == "input":
            level[node] = _grid(data["shape"], vector=False)
        elif _resamples(data) and _resized(graph, node, inherited):
            level[node] = _grid(data["shape"], vector=True)
        else:
            level[node] = inherited
    return level


def _resized(graph: nx.DiGraph, node: str, inherited: int | None) -> bool:
    """Whether a resampling node changes the size of axes 2… of what it reads. One that
    does not keeps its input's grid: a stride-1 convolution, and so a convolution over
    attention maps (EfficientFormerV2's talking heads) or along a pooled vector's channels
    (ECA), whose axes are no image grid."""
    data = graph.nodes[node]
    sources = [graph.nodes[u] for u in graph.predecessors(node)]
    shapes = [u["shape"] for u in sources if u["activation"] and u["shape"] is not None]
    if inherited is None or data["shape"] is None or not shapes:
        return True
    return all(list(shape[2:]) != list(data["shape"][2:]) for shape in shapes)


def _grid(shape: list[int] | None, vector: bool) -> int | None:
    """|axes 2…| of a channels-first shape; a pooled ``(B, C)`` is the 1-point grid."""
    if shape is None:
        return None
    if len(shape) < 3:
        return 1 if vector else None
    return math.prod(shape[2:])


def holds_stage(
    graph: nx.DiGraph,
    region: set[str],
    position: dict[str, int],
    level: dict[str, int | None],
    fork: str,
    merge: str,
) -> bool:
    """Whether some path through ``region`` into ``merge`` runs :data:`UNIT_DEPTH`
    weighted layers on spatial grids that are neither ``fork``'s nor ``merge``'s, and
    arrives on ``merge``'s grid (on any grid when ``merge`` is the model's output, which
    has no grid of its own and takes each tensor on its own).

    A path's grid changes only where it passes a resampling node (a layer runs on the
    grid it outputs); a path starts in the region on its first node's grid. Such a path
    does a unit's depth of work away from both ends' scales and comes back by
    resampling: a U-Net level's pool → convolutions → upsample, an FPN's later backbone
    stages before the top-down upsampling, a pyramid level's own convolutions on its way
    up to the finest grid, a multi-scale head's next stage before its global pooling, a
    UNet++ node one level down. Not such a path: one that returns without resampling (the
    key/value of spatial-reduction attention, PVT, rejoins its grid through a matmul),
    one on the 1-point grid of a squeeze-excitation gate, a strided branch that ends on
    the merge's grid (an Inception reduction). An attention or a gate is a unit of its
    own: a product of activations (:func:`_gates`: GhostNetV2's DFC attention pools,
    convolves, upsamples and multiplies), and the merge that takes a product's result
    (EfficientFormerV2's strided attention adds its local value convolution to
    ``attn @ v`` before upsampling), start the count again. Each node keeps the states
    (grid, layers so far up to :data:`UNIT_DEPTH`, whether a product's result flows on
    it) of the paths reaching it, in order: O(|region| · grids)."""
    returning = merge in level
    ends = {level[fork], level.get(merge)}
    states: dict[str, set[tuple[int | None, int, bool]]] = {}
    for node in sorted(region, key=position.__getitem__):
        data = graph.nodes[node]
        resampling = _resamples(data) and _resized(graph, node, level[node])
        reaching = set().union(*(states[u] for u in graph.predecessors(node) if u in states))
        product = _gates(graph, node, level)
        # a merge that takes a product's result closes that attention or gate, and the
        # work on every path into it belongs to the attention's unit
        closing = data["merge"] and any(gated for _, _, gated in reaching)
        here: set[tuple[int | None, int, bool]] = set()
        for grid, count, gated in reaching or {(level[node], 0, False)}:
            grid = level[node] if resampling else grid
            count = 0 if product or closing else count
            away = data["role"] == "weighted" and grid not in ends and (grid or 0) > 1
            gated = product or (gated and not data["merge"])
            here.add((grid, min(count + away, UNIT_DEPTH), gated))
        states[node] = here
    return any(
        count >= UNIT_DEPTH and (not returning or grid == level[merge])
        for source in graph.predecessors(merge)
        for grid, count, _ in states.get(source, ())
    )


def _gates(graph: nx.DiGraph, node: str, level: dict[str, int | None]) -> bool:
    """A product of activations that is no merge and no activation function: a gate
    (squeeze-excitation's, GhostNetV2's upsampled DFC attention) or an attention matmul."""
    data = graph.nodes[node]
    sources = sum(u in level for u in graph.predecessors(node))
    return sources >= 2 and not data["merge"] and data["delimiter"] is None


def _resamples(data: dict[str, Any]) -> bool:
    """Whether an annotated node sets its output's grid (:func:`graphblocks.ops.resamples`)."""
    kind = data["kind"]
    names = list(data["bases"] or [data["op"]]) if kind == "module" else [data["canonical"]]
    return ops.resamples(kind, names, data["delimiter"])


def long_operands(
    graph: nx.DiGraph, merge: str, position: dict[str, int], level: dict[str, int | None]
) -> dict[str, list[str]]:
    """The operands of a merge that are carried across a stage, each with its side: the
    one-input operations it runs back through to its fork (``[operand, …, fork]``).

    An operand a runs back through one-input operations to a fork f (a itself when a has
    other readers: a U-Net's encoder output; an FPN's lateral convolution, back to the
    stage output it reads). a is carried across a stage when a path created after f into
    another operand of the merge holds one (:func:`holds_stage`, on a grid that is
    neither f's nor the merge's): while f waits, the stream visits another
    grid, works there and returns by resampling, as in a U-Net's deeper levels, an FPN's
    later stages, a multi-scale head's next stages, the node one level down between two
    nodes of a UNet++ row. No unit of computation holds a stage on another grid, so a cut
    inside that stage splits no unit around a. A side's one-input operations have one
    reader each, so the other operands' ancestors never pass them: the stage lies off a's
    side. The model's output counts as such a merge: a feature pyramid's backbone
    returns its finer stages' outputs after its coarser stages (any grid is its own).
    Walks each other operand's ancestors down to the earliest fork once."""
    inputs = [u for u in graph.predecessors(merge) if u in position]
    chains = {a: _chain_to_fork(graph, a, position) for a in inputs}
    floor = min(position[chain[-1]] for chain in chains.values()) if chains else 0
    walked = {b: _earlier_ancestors(graph, b, set(), floor, position)[1] for b in inputs}
    carried: dict[str, list[str]] = {}
    for a, chain in chains.items():
        fork = chain[-1]
        region = {
            n for b in inputs if b not in chain for n in walked[b] if position[n] > position[fork]
        }
        if region and holds_stage(graph, region, position, level, fork, merge):
            carried[a] = chain
    return carried


@dataclass
class _Joins:
    """The merges that close a unit (``kind``); for each tensor that starts additive
    skips, each sum's position and the position from which fewer than
    :data:`UNIT_DEPTH` weighted layers remain before it; for each concatenation that
    closes a skip, the tensor it starts from; for each tensor on the skip side of a long
    skip (:func:`long_operands`), the positions of the nodes that read it there (each
    tensor of a side is read by the next one along it, the operand by the merge); for
    each merge, its operands carried across a stage."""

    kind: dict[str, Join] = field(default_factory=dict)
    sums: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    concat_start: dict[str, str] = field(default_factory=dict)
    long_reads: dict[str, set[int]] = field(default_factory=dict)
    long_operands: dict[str, set[str]] = field(default_factory=dict)


def _joins(graph: nx.DiGraph, order: list[str], position: dict[str, int]) -> _Joins:
    """Classify every merge (:func:`join_kind`, :func:`long_operands`; the model's output
    is read like a merge); an opaque unit is a whole skip unit."""
    joins = _Joins()
    level = spatial_levels(graph, order)
    out = output_of(graph)
    at = {**position, out: len(order)}
    for merge in [out, *(n for n in order if graph.nodes[n]["merge"])]:
        carried = long_operands(graph, merge, position, level)
        joins.long_operands[merge] = set(carried)
        for chain in carried.values():
            for tensor, reader in zip(chain, [merge, *chain], strict=False):
                joins.long_reads.setdefault(tensor, set()).add(at[reader])
    for node in order:
        data = graph.nodes[node]
        if data["unit"]:
            joins.kind[node] = Join.SKIP
        elif data["merge"]:
            kind, start = join_kind(graph, node, position)
            if kind is not Join.PARALLEL:
                joins.kind[node] = kind
            if start is not None and ops.is_concat_function(data["canonical"]):
                joins.concat_start[node] = start
            elif start is not None:
                tail = _shallow_tail(graph, node, position, order)
                joins.sums.setdefault(start, []).append((position[node], tail))
    return joins


def _shallow_tail(graph: nx.DiGraph, merge: str, position: dict[str, int], order: list[str]) -> int:
    """The latest position p such that some path from a node after p into ``merge``
    holds :data:`UNIT_DEPTH` weighted layers (-1 when none does): a cut at or after p
    leaves less than a unit before the sum. Walks back from ``merge`` in decreasing
    position and stops at the first such node, so the cost is the tail's size."""
    below: dict[str, int] = {merge: 0}  # most weighted layers on a path from here to merge
    heap = [-position[u] for u in graph.predecessors(merge) if u in position]
    heapq.heapify(heap)
    while heap:
        at = -heapq.heappop(heap)
        node = order[at]
        if node in below:
            continue
        after = [below[w] for w in graph.successors(node) if w in below]
        below[node] = max(after, default=0) + (graph.nodes[node]["role"] == "weighted")
        if below[node] >= UNIT_DEPTH:
            return at - 1
        for u in graph.predecessors(node):
            if u in position and u not in below:
                heapq.heappush(heap, -position[u])
    return -1


class _Sweep:
    """The state of one pass along the order: who is live, when each was last read, and
    the latest unit of each kind and width."""

    def __init__(self, graph: nx.DiGraph, order: list[str]) -> None:
        self.graph, self.order = graph, order
        self.position = {n: i for i, n in enumerate(order)}
        at = {**self.position, output_of(graph): len(order)}
        self.reads = {u: sorted(at[w] for w in graph.successors(u) if w in at) for u in order}
        self.joins = _joins(graph, order, self.position)
        self.live: dict[str, int] = {}  # u → how many of its reads are done; creation order
        self.since: dict[str, int] = {}  # r(u): u's latest read so far, else its creation
        self.latest: dict[tuple[Join, int], int] = {}  # (kind, width) → latest unit's position

    def step(self, i: int, node: str) -> int:
        """Run ``node`` (position ``i``); return |X_i|."""
        for u in self.graph.predecessors(node):
            if u in self.live:
                self.since[u], self.live[u] = i, self.live[u] + 1
                if self.live[u] == len(self.reads[u]):
                    del self.live[u]
        self.live[node], self.since[node] = 0, i
        width = len(self.live)
        if node in self.joins.kind:
            self.latest[Join.CELL, width] = i
            self.latest[self.joins.kind[node], width] = i
        return width

    def on_long_skip(self, u: str) -> bool:
        """Whether carried ``u`` is next read on the skip side of a long skip: carried
        past a stage on another grid, not inside a unit (conditions 3 and 4 exempt it)."""
        return self.reads[u][self.live[u]] in self.joins.long_reads.get(u, ())

    def inside_residual(self, u: str, i: int) -> bool:
        """Condition 4 for carried ``u``: it has been read and is due to be summed in an
        ``x + f(x)`` it starts, with less than a unit's depth of layers left before."""
        entered = self.since[u] > self.position[u]
        sums = self.joins.sums.get(u, ())
        return entered and any(end > i >= tail for end, tail in sums)

    def carried_over_a_unit(self, held: list[str], width: int) -> bool:
        """Condition 3 for the carried tensors ``held`` (those on no long skip): since the
        last read of any of them, a unit closed at which only the carried tensors and its
        result were live (``width`` of them); a skip about to close by concatenation (a
        short ``cat(x, f(x))``) needs a skip unit, not only a cell."""
        nexts = (self.reads[u][self.live[u]] for u in held)
        closing = any(
            n < len(self.order) and self.joins.concat_start.get(self.order[n]) == u
            for u, n in zip(held, nexts, strict=True)
        )
        needed = Join.SKIP if closing else Join.CELL
        unit = self.latest.get((needed, width), -1)
        return unit > max(self.since[u] for u in held)


def scan_cuts(graph: nx.DiGraph, max_crossing: int, scan_limit: int = SCAN_LIMIT) -> CutScan:
    """Sweep the order once: the crossing set at every node and the admissible cuts."""
    scan = CutScan(max_crossing)
    order = scan.order = _useful_order(graph)
    sweep = _Sweep(graph, order)
    split = _split_operands(graph, order, sweep.position, sweep.joins.long_operands)
    for i, node in enumerate(order):
        width = scan.width[node] = sweep.step(i, node)
        if width > scan_limit or split[i]:
            continue
        held = [u for u in sweep.live if u != node and not sweep.on_long_skip(u)]
        if held and (
            any(sweep.inside_residual(u, i) for u in held)
            or not sweep.carried_over_a_unit(held, width)
        ):
            continue
        if width <= max_crossing:
            scan.admissible[node] = tuple(sweep.live)
        else:
            scan.refused[node] = width
    return scan
