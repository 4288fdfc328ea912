"""The classifier head: the trailing weighted layers that are reported apart from blocks."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import networkx as nx

from graphblocks.graph import output_of
from graphblocks.params import ParamTable

if TYPE_CHECKING:
    from torch import nn

_TOKEN_SELECT = frozenset({"getitem", "select"})


def classifier_params(model: nn.Module, table: ParamTable) -> set[str]:
    """Canonical names of the parameters under timm's ``get_classifier()``; empty if none."""
    get = getattr(model, "get_classifier", None)
    if not callable(get):
        return set()
    try:
        found = get()
    except Exception:  # a model's own accessor may not work on every configuration
        return set()
    heads = list(found) if isinstance(found, (tuple, list)) else [found]
    wanted = {id(h) for h in heads}
    names: list[str] = []
    for path, module in model.named_modules(remove_duplicate=False):
        if id(module) in wanted:
            names += [n for n, _ in module.named_parameters(prefix=path, remove_duplicate=False)]
    return set(table.canonical_all(names))


def is_global_pool(graph: nx.DiGraph, node: str) -> bool:
    """A pooling, mean or token selection that turns a feature map or sequence into a vector.

    The output is vector-like, ``(B, C)`` or ``(B, C, 1, …, 1)``, and smaller per
    sample than the activation it reads.
    """
    data = graph.nodes[node]
    if not data["activation"] or not (
        data["delimiter"] == "pool" or data["canonical"] in _TOKEN_SELECT
    ):
        return False
    sources = [p for p in graph.predecessors(node) if graph.nodes[p]["activation"]]
    out, src = data["shape"], graph.nodes[sources[0]]["shape"] if sources else None
    if not out or not src or len(src) < 3:
        return False
    vector_like = len(out) == 2 or all(d == 1 for d in out[2:])
    return vector_like and math.prod(out[1:]) < math.prod(src[1:])


def find_head(graph: nx.DiGraph, classifier: set[str], dominators: list[str]) -> list[str]:
    """Parameter-owning nodes that form the classifier head, in topological order.

    1. the nodes whose parameters all belong to ``classifier`` (timm's ``get_classifier``),
       together with the owners between the last global pooling before them and them
       (a post-pool norm such as ConvNeXt's ``head.norm``, as timm's head modules do);
    2. else the owners after the last global pooling that dominates the output;
    3. else the layer that produces the output: walking back from the output along the
       dominators, the first parameter owner when it is weighted; none when a norm, a
       merge or an opaque unit comes first (a headless model, ``num_classes=0``).
    """
    owners = [n for n in graph if graph.nodes[n]["owned"]]
    feeding = nx.ancestors(graph, output_of(graph))
    position = {n: i for i, n in enumerate(graph)}
    if classifier:
        head = [n for n in owners if set(graph.nodes[n]["owned"]) <= classifier]
        if head:
            first = position[head[0]]
            pools = [n for n in dominators if position[n] < first and is_global_pool(graph, n)]
            if pools:
                start = position[pools[-1]]
                between = {n for n in owners if start < position[n] < first and n in feeding}
                head = [n for n in owners if n in between or n in head]
            return head
    pools = [n for n in dominators if is_global_pool(graph, n)]
    if pools:
        after = [n for n in owners if position[n] > position[pools[-1]] and n in feeding]
        if any(graph.nodes[n]["role"] == "weighted" for n in after):
            return after
    for node in reversed(dominators):
        data = graph.nodes[node]
        if data["merge"] or data["unit"] or data["owned"]:
            return [node] if data["role"] == "weighted" and not data["unit"] else []
    return []
