"""Write the annotated graph for other tools: GraphML or networkx node-link JSON."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from io import BytesIO
from pathlib import Path
from typing import Any

import networkx as nx

from graphblocks.atomic import write_atomic
from graphblocks.partition import Partition

HEAD_BLOCK = -1
NO_BLOCK = -2
_EXPORTED = ("kind", "op", "module", "params", "shape", "dtype", "activation", "delimiter",
             "merge", "unit", "weighted", "role", "num_params")  # fmt: skip


def export_view(
    graph: nx.DiGraph, partition: Partition, node_blocks: Mapping[str, int | None]
) -> nx.DiGraph:
    """A copy of ``graph`` with the public attributes plus each node's ``block``
    (:data:`HEAD_BLOCK` for the head, :data:`NO_BLOCK` off the activation path) and
    ``quartile`` (0 when in no block)."""
    quartile = {b.index: b.quartile for b in partition.blocks}
    view = nx.DiGraph(model=partition.model.name, frontend=partition.model.frontend)
    for node, data in graph.nodes(data=True):
        attrs = {k: data.get(k) for k in _EXPORTED}
        block = node_blocks.get(node, NO_BLOCK)
        attrs["block"] = HEAD_BLOCK if block is None else block
        attrs["quartile"] = quartile.get(attrs["block"], 0)
        view.add_node(node, **attrs)
    view.add_edges_from(graph.edges)
    return view


def _scalar(value: Any) -> str | int | float | bool:
    if value is None:
        return ""
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value)
    return value


def graphml_text(view: nx.DiGraph) -> str:
    """GraphML with list attributes as JSON strings and None as empty strings."""
    flat = nx.DiGraph(**view.graph)
    for node, data in view.nodes(data=True):
        flat.add_node(node, **{k: _scalar(v) for k, v in data.items()})
    flat.add_edges_from(view.edges)
    buffer = BytesIO()
    nx.write_graphml(flat, buffer)
    return buffer.getvalue().decode()


def node_link_text(view: nx.DiGraph) -> str:
    """networkx node-link JSON (``nx.node_link_graph`` reads it back)."""
    return json.dumps(nx.node_link_data(view, edges="edges"), indent=1) + "\n"


GRAPH_WRITERS: dict[str, Callable[[nx.DiGraph], str]] = {
    ".graphml": graphml_text,
    ".json": node_link_text,
}


def write_graph(
    graph: nx.DiGraph, partition: Partition, path: Path, node_blocks: Mapping[str, int | None]
) -> None:
    """Write the graph in the format the file extension names, atomically."""
    view = export_view(graph, partition, node_blocks)
    write_atomic(path, GRAPH_WRITERS[path.suffix.lower()](view))
