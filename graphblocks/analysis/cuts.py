"""Cut vertices of the activation graph: the nodes every input→output path passes.

Let A be the subgraph of activation nodes (tensors computed from the input), with a
virtual source s joined to every input node and t the output node. A node v
*dominates* t when every path s ⇝ t in A contains v. The dominators of t form a chain
s = d_0 ≻ d_1 ≻ … ≻ d_k = t, read off the immediate-dominator tree
(Cooper, Harvey & Kennedy's iterative algorithm, ``networkx.immediate_dominators``).

Cutting right after a dominator v leaves exactly one tensor, v's output, crossing
the cut: any edge (u, w) with u before v and w after v in topological order would
give a path s ⇝ u → w ⇝ t that avoids v.
"""

from __future__ import annotations

import networkx as nx

from graphblocks.graph import output_of

_SOURCE = ("graphblocks", "source")


def output_dominators(graph: nx.DiGraph) -> list[str]:
    """Activation nodes that dominate the output, in topological order.

    The input nodes' virtual source and the output itself are not listed; a single
    input node is listed (it trivially dominates). Needs :func:`graphblocks.graph.annotate`.
    """
    out = output_of(graph)
    active = {n for n, a in graph.nodes(data="activation") if a}
    reach = nx.DiGraph()
    reach.add_node(_SOURCE)
    reach.add_edges_from((_SOURCE, n) for n in active if graph.nodes[n]["kind"] == "input")
    reach.add_edges_from(
        (u, v) for u, v in graph.edges if u in active and (v in active or v == out)
    )
    if out not in reach:
        return []
    idom = nx.immediate_dominators(reach, _SOURCE)
    if out not in idom:
        return []
    chain: set[str] = set()
    node = idom[out]
    while node != _SOURCE:
        chain.add(node)
        node = idom[node]
    return [n for n in graph if n in chain]
