"""Cuts where a few tensors cross: the live tensors at each point of a topological order.

Let v_1 < … < v_n be the activation nodes that reach the output, in the graph's
(topological, program) order, and cut right after v_i. The tensors that cross the cut are

    X_i = { u ≤ v_i : some reader w of u has w > v_i }      (the output node reads too)

so a segment between two cuts is a function from one crossing set to the next. A cut is
**admissible** when

1. **narrow**: |X_i| ≤ K (``max_crossing``);
2. **no operands split**: no later node reads two tensors of X_i directly. Such a node
   joins two operands the cut separates: the branches of an Inception module before their
   concatenation, the layers of a dense block, ``x`` and ``f(x)`` just before their sum;
3. **carried over a whole unit**: every *carried* tensor u ∈ C_i = X_i - {v_i} has, since
   its last read r(u) ≤ i (or its creation), been carried over a complete unit: a merge m
   with R_i < m ≤ v_i, R_i = max_{u ∈ C_i} r(u), at which only C_i and m itself were
   live, X_m = C_i + {m}. Units are the merges that close a skip or a cell (:class:`Join`)
   deeply enough (:data:`UNIT_DEPTH`); a join of parallel branches never is one. A tensor
   about to close a concatenating skip it starts (a U-Net level) needs a skip unit;
4. **not inside a residual unit**: no carried tensor has entered an ``x + f(x)`` it starts
   that closes after the cut, unless a path of :data:`UNIT_DEPTH` weighted layers still
   lies between the cut and that sum (a skip over a stage, as an FPN lateral's).

Every u ∈ C_i is live throughout (R_i, v_i] and m is read after m, so X_m ⊇ C_i + {m}, and
the test is |X_m| = |X_i| for the latest unit of that width: O(1) per cut. Inside a residual
unit the skip x has been read by f's first layer and is due to be summed, so conditions 3
and 4 fail whatever K. A U-Net skip is carried over the next stage's residual units, a
NASNet cell's earlier input over the previous cell, an FPN lateral over the backbone's later
units, a second transformer branch over the first branch's units. The math and the
measurements are in docs/partition-rule.md.

A single-tensor cut (|X_i| = 1, C_i = ∅) is admissible exactly when v_i dominates the
output (:mod:`graphblocks.analysis.cuts`): with K = 1 this rule is the single-tensor one.
The scan is one pass over the order and its edges, O(n + e) plus O(W) per cut of width
W ≤ ``scan_limit``.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from enum import IntEnum

import networkx as nx

from graphblocks.graph import output_of

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


def _split_operands(graph: nx.DiGraph, order: list[str], position: dict[str, int]) -> list[bool]:
    """Positions i where a later node reads two tensors of X_i: for a node w whose
    distinct activation inputs sit at q_1 < q_2 < …, every i with q_2 ≤ i < w."""
    change = [0] * (len(order) + 1)
    for node in order:
        inputs = sorted({position[u] for u in graph.predecessors(node) if u in position})
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
    inputs = sorted((position[u], u) for u in graph.predecessors(node) if u in position)
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
    if graph.nodes[node]["canonical"] != "cat":
        for _, u in inputs:
            fork = _shortcut_fork(graph, u, [v for _, v in inputs if v != u], position)
            if fork is not None:
                return fork
    # a cell's inputs come from several sources, so its region depends on the order;
    # one weighted layer in it is enough
    held = any(graph.nodes[n]["role"] == "weighted" for n in region)
    return (Join.CELL if reaches_any and held else Join.PARALLEL), None


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


@dataclass
class _Joins:
    """The merges that close a unit (``kind``); for each tensor that starts additive
    skips, each sum's position and the position from which fewer than
    :data:`UNIT_DEPTH` weighted layers remain before it; for each concatenation that
    closes a skip, the tensor it starts from."""

    kind: dict[str, Join] = field(default_factory=dict)
    sums: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    concat_start: dict[str, str] = field(default_factory=dict)


def _joins(graph: nx.DiGraph, order: list[str], position: dict[str, int]) -> _Joins:
    """Classify every merge (:func:`join_kind`); an opaque unit is a whole skip unit."""
    joins = _Joins()
    for node in order:
        data = graph.nodes[node]
        if data["unit"]:
            joins.kind[node] = Join.SKIP
        elif data["merge"]:
            kind, start = join_kind(graph, node, position)
            if kind is not Join.PARALLEL:
                joins.kind[node] = kind
            if start is not None and data["canonical"] == "cat":
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

    def inside_residual(self, u: str, i: int) -> bool:
        """Condition 4 for carried ``u``: it has been read and is due to be summed in an
        ``x + f(x)`` it starts, with less than a unit's depth of layers left before."""
        entered = self.since[u] > self.position[u]
        sums = self.joins.sums.get(u, ())
        return entered and any(end > i >= tail for end, tail in sums)

    def carried_over_a_unit(self, carried: list[str]) -> bool:
        """Condition 3: since the last read of any carried tensor, a unit closed at which
        only the carried tensors and its result were live; a skip about to close by
        concatenation (a U-Net level) needs a skip unit, not only a cell."""
        nexts = (self.reads[u][self.live[u]] for u in carried)
        closing = any(
            n < len(self.order) and self.joins.concat_start.get(self.order[n]) == u
            for u, n in zip(carried, nexts, strict=True)
        )
        needed = Join.SKIP if closing else Join.CELL
        unit = self.latest.get((needed, len(carried) + 1), -1)
        return unit > max(self.since[u] for u in carried)


def scan_cuts(graph: nx.DiGraph, max_crossing: int, scan_limit: int = SCAN_LIMIT) -> CutScan:
    """Sweep the order once: the crossing set at every node and the admissible cuts."""
    scan = CutScan(max_crossing)
    order = scan.order = _useful_order(graph)
    sweep = _Sweep(graph, order)
    split = _split_operands(graph, order, sweep.position)
    for i, node in enumerate(order):
        width = scan.width[node] = sweep.step(i, node)
        if width > scan_limit or split[i]:
            continue
        carried = [u for u in sweep.live if u != node]
        if carried and (
            any(sweep.inside_residual(u, i) for u in carried)
            or not sweep.carried_over_a_unit(carried)
        ):
            continue
        if width <= max_crossing:
            scan.admissible[node] = tuple(sweep.live)
        else:
            scan.refused[node] = width
    return scan
