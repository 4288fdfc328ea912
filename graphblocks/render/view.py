"""What a picture shows: a small DAG of the layers, delimiters and merges, or of blocks.

Every node of a :func:`layer_view` is a parameter-owning layer, a delimiter, a
residual merge, an opaque unit, the input or the output; every other activation node
is contracted away, its edges passed on. An edge out of a fork that is not the fork's
first (topologically next) branch is a **skip** edge: a residual shortcut or a
parallel branch. :func:`block_view` draws one box per block instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx

from graphblocks import ops
from graphblocks.partition import Partition
from graphblocks.tables import human_count, layer_span

#: quartile -> (light, dark) fill; the head and plain nodes get the last two.
QUARTILE_COLORS: dict[int, tuple[str, str]] = {
    1: ("#c6dbef", "#6baed6"),
    2: ("#c7e9c0", "#74c476"),
    3: ("#fdd0a2", "#fd8d3c"),
    4: ("#dadaeb", "#9e9ac8"),
}
HEAD_COLOR = "#d9d9d9"
IO_COLOR = "#ffffff"
SKIP_COLOR = "#d62728"
ELLIPSIS = " … "


@dataclass(frozen=True)
class Legend:
    """The legend entries: (label, colour)."""

    entries: tuple[tuple[str, str], ...]


def block_color(block: int | None, quartile: int | None) -> str:
    """Fill of a node in ``block``: its quartile's hue, alternating shades."""
    if block is None or quartile is None:
        return HEAD_COLOR
    return QUARTILE_COLORS[quartile][block % 2]


def legend(partition: Partition) -> Legend:
    """Quartiles with their block ranges, the head, skip edges."""
    entries = []
    for q in range(1, 5):
        indices = partition.quartiles.get(str(q), [])
        if indices:
            span = f"{indices[0]}" if len(indices) == 1 else f"{indices[0]}-{indices[-1]}"
            entries.append((f"Q{q}: blocks {span}", QUARTILE_COLORS[q][1]))
    entries.append(("head", HEAD_COLOR))
    entries.append(("skip edge / merge", SKIP_COLOR))
    return Legend(tuple(entries))


def _kind(data: dict[str, object]) -> str:
    if data["kind"] in ("input", "output"):
        return "io"
    if data["merge"]:
        return "merge"
    if data["owned"] or data["unit"]:
        return "layer"
    return "delimiter"


def _is_drawn(data: dict[str, object]) -> bool:
    if data["kind"] in ("input", "output"):
        return True
    return bool(data["activation"]) and bool(
        data["owned"] or data["delimiter"] or data["merge"] or data["unit"]
    )


def _short_op(op: str) -> str:
    return op.split(".")[-1].replace("_default", "")


def layer_view(
    graph: nx.DiGraph, partition: Partition, node_blocks: dict[str, int | None]
) -> nx.DiGraph:
    """The contracted DAG with drawing attributes (``label``, ``tooltip``, ``kind``,
    ``block``, ``color``) on nodes and ``skip`` on edges."""
    quartile = {b.index: b.quartile for b in partition.blocks}
    layer_name = {layer.node: layer.name for layer in partition.layers}
    view = nx.DiGraph()
    order: dict[str, int] = {}
    reach: dict[str, set[str]] = {}
    for node in graph:
        data = graph.nodes[node]
        sources: set[str] = set()
        for pred in graph.predecessors(node):
            if graph.nodes[pred]["activation"]:  # sizes read off a tensor are no data path
                sources |= {pred} if pred in view else reach.get(pred, set())
        if not _is_drawn(data):
            reach[node] = sources
            continue
        block = node_blocks.get(node)
        in_head = node in node_blocks and block is None
        kind = _kind(data)
        name = layer_name.get(node, node)
        label = (
            "+"
            if kind == "merge" and not ops.is_concat_function(data["canonical"])
            else _short_op(str(data["op"]))
        )
        if kind == "layer":
            label = f"{name}\n{_short_op(str(data['op']))}"
        elif kind == "io":
            label = str(data["kind"])
        if kind == "io" or (block is None and not in_head):
            color = IO_COLOR
        else:
            color = HEAD_COLOR if block is None else block_color(block, quartile[block])
        view.add_node(
            node, label=label, tooltip=f"{name} ({data['op']}) shape={data['shape']}",
            kind=kind, block=-2 if kind == "io" or (block is None and not in_head) else (-1 if in_head else block),
            color=color,
        )  # fmt: skip
        order[node] = len(order)
        for source in sorted(sources, key=order.__getitem__):
            view.add_edge(source, node, skip=False)
    view.remove_nodes_from([n for n in list(view) if view.degree(n) == 0])  # unused inputs
    _mark_skips(view)
    return view


def _mark_skips(view: nx.DiGraph) -> None:
    order = {n: i for i, n in enumerate(view)}
    for node in view:
        targets = sorted(view.successors(node), key=order.__getitem__)
        for target in targets[1:]:
            view.edges[node, target]["skip"] = True


def block_view(partition: Partition) -> nx.DiGraph:
    """input → block 0 → … → block N-1 → head → output, one box each (``collapsed``)."""
    view = nx.DiGraph(collapsed=True)
    view.add_node(
        "input", label="input", tooltip=partition.model.name, kind="io", block=-2, color=IO_COLOR
    )
    previous = "input"
    for b in partition.blocks:
        name = f"block{b.index}"
        residual = " · residual" if b.has_residual else ""
        view.add_node(
            name,
            label=f"block {b.index} · Q{b.quartile}{residual}\n{layer_span(b.layers, ELLIPSIS)}\n"
            f"{len(b.layers)} layers · {human_count(b.num_params, 1)} params",
            tooltip=", ".join(b.layers), kind="layer", block=b.index,
            color=block_color(b.index, b.quartile),
        )  # fmt: skip
        view.add_edge(previous, name, skip=False)
        previous = name
    if partition.head.layers:
        view.add_node(
            "head", label=f"head\n{layer_span(partition.head.layers, ELLIPSIS)}\n{human_count(partition.head.num_params, 1)} params",
            tooltip=", ".join(partition.head.layers), kind="layer", block=-1, color=HEAD_COLOR,
        )  # fmt: skip
        view.add_edge(previous, "head", skip=False)
        previous = "head"
    view.add_node("output", label="output", tooltip="", kind="io", block=-2, color=IO_COLOR)
    view.add_edge(previous, "output", skip=False)
    return view
