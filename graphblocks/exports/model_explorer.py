"""A partition as Google's Model Explorer shows it: graph JSON and node-data overlays.

Model Explorer (``pip install ai-edge-model-explorer``) draws a graph whose nodes carry a
*namespace*, a ``/``-separated path of nested groups that expand and collapse. Every
node of the analysed graph is written with the namespace of its block, then the parent
of its module path, and labelled with the last component::

    layer1.2.conv1 in block 3 of quartile 1  →  namespace "block 3 (Q1)/layer1.2", label "conv1"

The head's nodes sit under ``head``, nodes off the activation path under ``other``.
Each node's attributes (all strings, as the viewer wants them) are its op, role,
block, quartile, parameter count and names, MACs and output shape; each block's group
node shows the block's layers, parameters and share.

Overlays are Model Explorer's node data (one JSON file each, ``{"results": {node id:
{"value": number}}, "gradient": [...]}``): the block index and the quartile of every node
of a block, and each node's own share of the weights in percent (so that a block's sum,
which the side panel lists, is the block's share); a run's per-block
validation and test accuracy with B_opt marked, or RL-Tune's learning rate per layer,
come from :mod:`graphblocks.view` (``sweep_overlays``, ``rate_overlay``). The files are exactly what Model Explorer's own loader
reads: a graph collection (``{"label", "graphs"}``) and per-graph node data.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import networkx as nx

from graphblocks.atomic import write_atomic
from graphblocks.partition import Partition

HEAD = "head"
OTHER = "other"
#: the suffix Model Explorer gives a group node's id (its namespace path + this)
GROUP_SUFFIX = "___group___"
#: colour ramps of the overlays (low → high)
GRADIENT = [{"stop": 0, "bgColor": "#f7fbff"}, {"stop": 1, "bgColor": "#08519c"}]
ACCURACY_GRADIENT = [{"stop": 0, "bgColor": "#d73027"}, {"stop": 0.5, "bgColor": "#fee08b"},
                     {"stop": 1, "bgColor": "#1a9850"}]  # fmt: skip


def block_label(partition: Partition, block: int | None) -> str:
    """The top-level group of a block: ``block 3 (Q1)``; the head's is ``head``."""
    if block is None:
        return HEAD
    return f"block {block} (Q{partition.blocks[block].quartile})"


def namespace_of(node: str, group: str) -> tuple[str, str]:
    """``(namespace, label)`` of a node named by its dotted module path in ``group``."""
    parent, _, label = node.rpartition(".")
    return (f"{group}/{parent}" if parent else group), label


def group_id(namespace: str) -> str:
    """The id Model Explorer gives the group node of ``namespace``."""
    return namespace + GROUP_SUFFIX


@dataclass(frozen=True)
class Overlay:
    """One node-data file: a name, a value per node id, and its colour ramp."""

    name: str
    values: Mapping[str, float]
    gradient: tuple[Mapping[str, Any], ...] = tuple(GRADIENT)
    #: whether the side panel's sums and averages mean something (not for an index)
    stats: bool = False

    def node_data(self, graph_id: str) -> dict[str, Any]:
        """Model Explorer's node data of one graph (``ModelNodeData`` JSON)."""
        results = {node: {"value": value} for node, value in self.values.items()}
        data: dict[str, Any] = {"results": results, "gradient": list(self.gradient)}
        if not self.stats:
            data |= {"hideInAggregatedStatsTable": True, "hideInChildrenStatsTable": True}
        return {graph_id: data}


def _group_of(partition: Partition, node_blocks: Mapping[str, int | None], node: str) -> str:
    if node not in node_blocks:
        return OTHER
    return block_label(partition, node_blocks[node])


def _attrs(
    data: Mapping[str, Any], block: int | None, partition: Partition, macs: int | None
) -> list[dict[str, str]]:
    quartile = "" if block is None else str(partition.blocks[block].quartile)
    values = {
        "op": data.get("op") or "", "role": data.get("role") or "",
        "block": HEAD if block is None else str(block), "quartile": quartile,
        "parameters": str(data.get("num_params") or 0),
        "parameter names": ", ".join(data.get("owned") or []),
        "MACs": "" if macs is None else str(macs),
        "output shape": json.dumps(data.get("shape")) if data.get("shape") else "",
    }  # fmt: skip
    return [{"key": k, "value": v} for k, v in values.items() if v != ""]


def graph_collection(
    graph: nx.DiGraph, partition: Partition, node_blocks: Mapping[str, int | None]
) -> dict[str, Any]:
    """The graph collection JSON of the partitioned ``graph`` (see the module docstring)."""
    macs = {layer.node: layer.macs for layer in partition.layers}
    nodes = []
    for node, data in graph.nodes(data=True):
        group = _group_of(partition, node_blocks, node)
        namespace, label = namespace_of(node, group)
        block = node_blocks.get(node)
        edges = [{"sourceNodeId": p, "sourceNodeOutputId": "0", "targetNodeInputId": str(i)}
                 for i, p in enumerate(graph.predecessors(node))]  # fmt: skip
        nodes.append({"id": node, "label": label, "namespace": namespace,
                      "attrs": _attrs(data, block, partition, macs.get(node)),
                      "incomingEdges": edges})  # fmt: skip
    groups = {block_label(partition, b.index): {
        "layers": f"{len(b.layers)} ({b.layers[0]} → {b.layers[-1]})" if b.layers else "0",
        "parameters": str(b.num_params), "share": f"{100 * b.share:.1f}%",
        "quartile": f"Q{b.quartile}"} for b in partition.blocks}  # fmt: skip
    groups[HEAD] = {"layers": ", ".join(partition.head.layers) or "none",
                    "parameters": str(partition.head.num_params)}  # fmt: skip
    graph_json = {"id": graph_id(partition), "nodes": nodes, "groupNodeAttributes": groups}
    return {"label": partition.model.name, "graphs": [graph_json]}


def graph_id(partition: Partition) -> str:
    """The id of the one graph of a partition's collection."""
    return partition.model.name


def partition_overlays(
    graph: nx.DiGraph, partition: Partition, node_blocks: Mapping[str, int | None]
) -> list[Overlay]:
    """For every node of a block: the block index, the quartile, and the node's own
    share of the weights in percent, so that a block's sum is the block's share."""
    in_blocks = {n: b for n, b in node_blocks.items() if b is not None}
    total = partition.model.num_params or 1
    return [
        Overlay("block", {n: float(b) for n, b in in_blocks.items()}),
        Overlay("quartile", {n: float(partition.blocks[b].quartile) for n, b in in_blocks.items()}),
        Overlay(
            "share of weights (%)",
            {n: round(100 * graph.nodes[n]["num_params"] / total, 4) for n in in_blocks},
            stats=True,  # the side panel lists each block with its sum: the block's share
        ),
    ]


def per_block(
    node_blocks: Mapping[str, int | None], values: Mapping[int, float]
) -> dict[str, float]:
    """Each node of a block that has a value, with that value."""
    return {n: values[b] for n, b in node_blocks.items() if b is not None and b in values}


def write_model_explorer(
    out: Path,
    graph: nx.DiGraph,
    partition: Partition,
    node_blocks: Mapping[str, int | None],
    extra: Iterable[Overlay] = (),
) -> tuple[Path, list[Path]]:
    """Write ``graph.json`` and one ``<overlay name>.json`` per overlay into the folder
    ``out``, atomically; the graph's path and the overlays' paths."""
    out.mkdir(parents=True, exist_ok=True)
    graph_path = out / "graph.json"
    write_atomic(graph_path, json.dumps(graph_collection(graph, partition, node_blocks)) + "\n")
    paths = []
    for overlay in [*partition_overlays(graph, partition, node_blocks), *extra]:
        path = out / f"{_file_name(overlay.name)}.json"
        write_atomic(path, json.dumps(overlay.node_data(graph_id(partition))) + "\n")
        paths.append(path)
    return graph_path, paths


def _file_name(name: str) -> str:
    slug = "".join(c if c.isalnum() else "-" for c in name).strip("-").lower()
    return "-".join(part for part in slug.split("-") if part)
