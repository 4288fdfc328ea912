"""The ``onnx`` export: the input model with the partition in its metadata.

Every ONNX node gets ``metadata_props`` entries ``graphblocks.block`` (a block index
or ``head``) and ``graphblocks.quartile`` (``1``..``4``, absent for the head); nodes
that own parameters also get ``graphblocks.layer``. Nodes outside the activation path
(constants, weight transposes, shape arithmetic) take the block of the first node
they feed. The model's own ``metadata_props`` get ``graphblocks.partition``: a JSON
summary (blocks with quartile, first and last layer, parameter count; the head).
Nothing else changes, so the model computes exactly what it computed before.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from graphblocks.atomic import atomic_target
from graphblocks.errors import PartitionError

if TYPE_CHECKING:
    import networkx as nx
    import onnx

    from graphblocks.pipeline import Analysis

PREFIX = "graphblocks."
#: ONNX's 2 GB protobuf limit, with room to spare: past it weights go to a .data file.
_SINGLE_FILE_LIMIT = 1_800_000_000


def blocks_of_all_nodes(graph: nx.DiGraph, node_blocks: dict[str, int | None]) -> dict[str, Any]:
    """Block (or None for the head) of every node that feeds the activation path."""
    assigned: dict[str, Any] = {}
    for node in reversed(list(graph)):
        if node in node_blocks:
            assigned[node] = node_blocks[node]
            continue
        fed = [assigned[s] for s in graph.successors(node) if s in assigned]
        if fed:  # the earliest block fed; the head (None) only when nothing else is
            blocks = [b for b in fed if b is not None]
            assigned[node] = min(blocks) if blocks else None
    return assigned


def partition_summary(analysis: Analysis) -> str:
    """The compact JSON stored in the model's metadata."""
    p = analysis.partition
    blocks = [
        {"index": b.index, "quartile": b.quartile, "first": b.layers[0], "last": b.layers[-1],
         "num_params": b.num_params}
        for b in p.blocks
    ]  # fmt: skip
    head = {"layers": p.head.layers, "num_params": p.head.num_params}
    return json.dumps(
        {"schema_version": p.schema_version, "num_blocks": p.num_blocks, "blocks": blocks,
         "head": head, "settings": p.settings},
        separators=(",", ":"),
    )  # fmt: skip


def _set_prop(props: Any, key: str, value: str) -> None:
    for prop in props:
        if prop.key == key:
            prop.value = value
            return
    entry = props.add()
    entry.key, entry.value = key, value


def annotate_model(model: onnx.ModelProto, analysis: Analysis) -> onnx.ModelProto:
    """``model`` (the file ``analysis`` was computed from) with the partition added."""
    graph = analysis.graph
    if len(model.graph.node) != sum(len(d["sources"]) for _, d in graph.nodes(data=True)):
        raise PartitionError(
            "the ONNX model does not match its analysis", "export from the same file"
        )
    block_of = blocks_of_all_nodes(graph, analysis.node_blocks)
    quartile = {b.index: b.quartile for b in analysis.partition.blocks}
    layer_of = {layer.node: layer.name for layer in analysis.partition.layers}
    for node, data in graph.nodes(data=True):
        if node not in block_of:
            continue
        block = block_of[node]
        for index in data["sources"]:
            props = model.graph.node[index].metadata_props
            _set_prop(props, PREFIX + "block", "head" if block is None else str(block))
            if block is not None:
                _set_prop(props, PREFIX + "quartile", str(quartile[block]))
            if node in layer_of:
                _set_prop(props, PREFIX + "layer", layer_of[node])
    _set_prop(model.metadata_props, PREFIX + "partition", partition_summary(analysis))
    return model


def save_model_atomically(model: onnx.ModelProto, out: Path) -> None:
    """Write ``model`` to ``out`` through a temporary file; weights past 1.8 GB go to
    ``<out>.data`` next to it (written first, so the model never points at nothing)."""
    import onnx

    with atomic_target(Path(out)) as tmp:
        if model.ByteSize() > _SINGLE_FILE_LIMIT:
            data = Path(out).with_name(Path(out).name + ".data")
            data.unlink(missing_ok=True)  # onnx appends to an existing data file
            onnx.save_model(model, str(tmp), save_as_external_data=True, location=data.name)
        else:
            onnx.save_model(model, str(tmp))
