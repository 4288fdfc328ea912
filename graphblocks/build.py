"""From an annotated graph to a :class:`~graphblocks.partition.Partition`.

The partition rule (:mod:`graphblocks.analysis`) gives blocks of graph nodes; this module
records them: it names each parameter-owning layer, places every parameter in exactly one
block or the head (parameters the forward never reads go with their neighbours in
definition order), counts parameters and multiply-accumulates, and groups the blocks into
quartiles.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from graphblocks import analysis, ops
from graphblocks.errors import GraphblocksError
from graphblocks.frontends import FALLBACK_CHAIN, FRONTENDS
from graphblocks.graph import inputs_of, output_of
from graphblocks.params import ParamTable
from graphblocks.partition import BlockInfo, Head, Layer, ModelInfo, Partition


@dataclass(frozen=True)
class Settings:
    """Everything that changes a partition besides the model itself."""

    delimiters: tuple[str, ...] = ops.ALL_BOUNDARY_CLASSES
    max_blocks: int | None = None
    max_crossing: int = ops.DEFAULT_MAX_CROSSING
    input_size: tuple[int, ...] | None = None
    model_args: Mapping[str, Any] = field(default_factory=dict)
    frontends: tuple[str, ...] = FALLBACK_CHAIN

    def __post_init__(self) -> None:
        unknown = sorted(set(self.delimiters) - set(ops.ALL_BOUNDARY_CLASSES))
        if unknown or not self.delimiters:
            raise GraphblocksError(
                f"bad delimiters {list(self.delimiters)!r}",
                f"choose from {','.join(ops.ALL_BOUNDARY_CLASSES)}",
            )
        unknown_frontends = sorted(set(self.frontends) - set(FRONTENDS))
        if unknown_frontends or not self.frontends:
            raise GraphblocksError(
                f"bad frontends {list(self.frontends)!r}", f"choose from {', '.join(FRONTENDS)}"
            )
        if self.max_blocks is not None and self.max_blocks < 1:
            raise GraphblocksError(f"bad --max-blocks {self.max_blocks}", "give a positive number")
        if self.max_crossing < 1:
            raise GraphblocksError(
                f"bad --max-crossing {self.max_crossing}",
                "give a positive number (1: cut only where a single tensor crosses)",
            )

    def recorded(self) -> dict[str, Any]:
        """The settings as written into the partition."""
        return {
            "delimiters": [d for d in ops.ALL_BOUNDARY_CLASSES if d in self.delimiters],
            "max_blocks": self.max_blocks,
            "max_crossing": self.max_crossing,
            "model_args": dict(sorted(self.model_args.items())),
        }


def layer_macs(graph: nx.DiGraph, node: str, table: ParamTable) -> int | None:
    """Multiply-accumulates of a weighted conv / linear / matmul node for one input.

    ``MACs = |output| · |W| / C_out``: each output element costs one dot product over
    the weight's fan-in. ``C_out`` is axis 1 for convolutions, the last axis otherwise.
    """
    data = graph.nodes[node]
    shape = data["shape"]
    if data["role"] != "weighted" or not shape or len(shape) < 2:
        return None
    op = data["canonical"].lower()
    if "embedding" in op:
        return 0
    weight = max(table.numel[p] for p in data["owned"])
    out_features = shape[1] if "conv" in op else shape[-1]
    if out_features <= 0 or weight % out_features:
        return None
    return math.prod(shape[1:]) * (weight // out_features)


def _layer_name(graph: nx.DiGraph, node: str, taken: set[str]) -> str:
    """A module call is named by its path. Another owner is named by the first free
    name of: the module owning its parameters (else the one owning its first parameter,
    the weight; a lone root parameter by its own name) when they have ``state_dict``-like
    names, the scope a frontend gave it (an ONNX node's Keras layer or module path), its
    node name."""
    data = graph.nodes[node]
    if data["kind"] == "module":
        return node
    owned = data["owned"]
    owner = ""
    if all(_is_state_dict_name(p) for p in owned):
        # else the weight's (ONNX reads it before the bias, which an exporter may rename)
        owner = (
            _common_module(owned)
            or _common_module(owned[:1])
            or (owned[0] if len(owned) == 1 else "")
        )
    scope = data["module"] if data.get("scopes") is not None else ""
    return next((n for n in (owner, scope) if n and n not in taken), node)


def _is_state_dict_name(name: str) -> bool:
    """``layer1.0.conv1.weight`` is; ``onnx::Conv_193`` or ``model/dense/MatMul:0`` is not."""
    return "/" not in name and ":" not in name


def _common_module(params: Sequence[str]) -> str:
    paths = [p.rpartition(".")[0].split(".") for p in params]
    common: list[str] = []
    for parts in zip(*paths, strict=False):
        if len(set(parts)) != 1:
            break
        common.append(parts[0])
    return ".".join(common)


def _place_unused(table: ParamTable, owner_block: dict[str, int | None]) -> dict[str, int | None]:
    """Block (or None for head) of each parameter the forward never reads: that of the
    nearest preceding parameter in definition order, else of the nearest following."""
    names = list(table.numel)
    placed: dict[str, int | None] = {}
    last: int | None = None
    have_last = False
    pending: list[str] = []
    for name in names:
        if name in owner_block:
            last, have_last = owner_block[name], True
            for p in pending:
                placed[p] = last
            pending = []
        elif have_last:
            placed[name] = last
        else:
            pending.append(name)
    for p in pending:
        placed[p] = 0 if any(v is not None for v in owner_block.values()) else None
    return placed


def _layer_names(graph: nx.DiGraph, owners: Sequence[str]) -> dict[str, str]:
    """Each parameter owner's layer name (:func:`_layer_name`), unique, in graph order."""
    taken = {n for n in owners if graph.nodes[n]["kind"] == "module"}
    names: dict[str, str] = {}
    for node in owners:
        names[node] = _layer_name(graph, node, taken)
        taken.add(names[node])
    return names


def _layers(
    graph: nx.DiGraph,
    names: Mapping[str, str],
    macs: Mapping[str, int | None],
    block_of_node: Mapping[str, int],
    head_nodes: Sequence[str],
) -> tuple[list[Layer], dict[str, int | None]]:
    """One :class:`Layer` per owner, and the block (None: head) of each owned parameter."""
    head_set = set(head_nodes)
    owner_block: dict[str, int | None] = {}
    layers: list[Layer] = []
    for node, name in names.items():
        data = graph.nodes[node]
        index = block_of_node.get(node)
        if index is None and node not in head_set:
            raise AssertionError(f"layer {name} is in no block and not in the head")
        layers.append(
            Layer(name, node, data["op"], data["role"], list(data["owned"]), data["num_params"],
                  macs[node], index)
        )  # fmt: skip
        owner_block.update(dict.fromkeys(data["owned"], index))
    return layers, owner_block


def _block_infos(
    graph: nx.DiGraph,
    blocks: Sequence[analysis.Block],
    params_of: Mapping[int | None, list[str]],
    names: Mapping[str, str],
    macs: Mapping[str, int | None],
    table: ParamTable,
    scan: analysis.CutScan,
    head_entry: str | None,
    classes: Sequence[str],
) -> list[BlockInfo]:
    """The blocks as recorded: layers, parameters, share, MACs, the node each starts
    after and ends with, and the tensors crossing into and out of it. Block i's entry
    and inputs are block i-1's exit and outputs (the model inputs for block 0)."""
    total = table.total or 1
    model_inputs = inputs_of(graph)
    entry = model_inputs[0] if model_inputs else "input"
    inputs = [n for n in model_inputs if n in scan.width] or [entry]
    infos: list[BlockInfo] = []
    for i, block in enumerate(blocks):
        params = params_of.get(i, [])
        last = i == len(blocks) - 1
        exit_node = _block_exit(graph, block, head_entry if last else None)
        outputs = _block_outputs(graph, scan, exit_node, last and head_entry is None)
        block_macs = [m for m in (macs[n] for n in block.layers) if m is not None]
        infos.append(
            BlockInfo(
                index=i,
                quartile=analysis.quartile_of(i, len(blocks)),
                layers=[names[n] for n in block.layers],
                params=params,
                num_params=table.count(params),
                share=round(table.count(params) / total, 6),
                macs=sum(block_macs) if block_macs else None,
                entry=entry,
                exit=exit_node,
                exit_shape=graph.nodes[exit_node]["shape"],
                has_residual=any(graph.nodes[n]["merge"] for n in block.nodes),
                num_nodes=len(block.nodes),
                inputs=inputs,
                outputs=outputs,
                narrowest_refused_cut=_narrowest_refused(graph, scan, block, classes),
            )
        )
        entry, inputs = exit_node, outputs
    return infos


def _block_outputs(
    graph: nx.DiGraph, scan: analysis.CutScan, exit_node: str, to_output: bool
) -> list[str]:
    """The tensors crossing out of a block: the crossing set at its exit; for a last
    block without a head, what the model returns."""
    if to_output:
        out = output_of(graph)
        return [n for n in graph.predecessors(out) if n in scan.width] or [exit_node]
    return list(scan.admissible.get(exit_node, (exit_node,)))


def _narrowest_refused(
    graph: nx.DiGraph, scan: analysis.CutScan, block: analysis.Block, classes: Sequence[str]
) -> int | None:
    """The width of the narrowest cut inside ``block`` that only the crossing bound
    refused (a boundary under the rule otherwise), None when there is none."""
    inside = (n for n in block.nodes[:-1] if n in scan.refused)
    widths = [scan.refused[n] for n in inside if analysis.is_boundary(graph.nodes[n], classes)]
    return min(widths, default=None)


def _quartile_tables(
    infos: Sequence[BlockInfo], total: int
) -> tuple[dict[str, list[int]], dict[str, dict[str, float | int]]]:
    """The blocks of each quartile 1..4, and each quartile's parameter count and share."""
    quartiles = {str(q): [b.index for b in infos if b.quartile == q] for q in range(1, 5)}
    quartile_params: dict[str, dict[str, float | int]] = {}
    for q, indices in quartiles.items():
        count = sum(infos[i].num_params for i in indices)
        quartile_params[q] = {"num_params": count, "share": round(count / (total or 1), 6)}
    return quartiles, quartile_params


def build_partition(
    graph: nx.DiGraph,
    table: ParamTable,
    model_info: ModelInfo,
    settings: Settings,
    classifier: set[str],
) -> tuple[Partition, dict[str, int | None]]:
    """Apply the partition rule to an annotated graph; return the Partition and the
    block index (None: head) of every activation node."""
    scan = analysis.scan_cuts(graph, settings.max_crossing)
    head_nodes = analysis.find_head(graph, classifier, scan.single())
    cuts = [n for n in scan.order if n in scan.admissible]
    blocks = analysis.plan_blocks(graph, cuts, head_nodes, settings.delimiters)
    sizes = [sum(graph.nodes[n]["num_params"] for n in b.layers) for b in blocks]
    if settings.max_blocks is not None:
        blocks, sizes = analysis.coarsen(blocks, sizes, settings.max_blocks)

    owners = [n for n in graph if graph.nodes[n]["owned"]]
    names = _layer_names(graph, owners)
    macs = {node: layer_macs(graph, node, table) for node in owners}
    block_of_node = {n: i for i, b in enumerate(blocks) for n in b.layers}
    layers, owner_block = _layers(graph, names, macs, block_of_node, head_nodes)
    unused = _place_unused(table, owner_block)
    owner_block.update(unused)
    params_of: dict[int | None, list[str]] = {}
    for name in table.numel:
        params_of.setdefault(owner_block[name], []).append(name)

    head_entry = _head_entry(graph, head_nodes)
    infos = _block_infos(
        graph, blocks, params_of, names, macs, table, scan, head_entry, settings.delimiters
    )
    quartiles, quartile_params = _quartile_tables(infos, table.total)
    head_params = params_of.get(None, [])
    partition = Partition(
        model=model_info, settings=settings.recorded(), layers=layers, blocks=infos,
        quartiles=quartiles, quartile_params=quartile_params,
        head=Head([names[n] for n in head_nodes], head_params, table.count(head_params), head_entry),
        tied=table.tied_groups(), unused=sorted(unused),
    )  # fmt: skip
    partition.check_coverage(list(table.numel))
    node_blocks: dict[str, int | None] = {n: i for i, b in enumerate(blocks) for n in b.nodes}
    node_blocks.update(dict.fromkeys(head_nodes))
    return partition, node_blocks


def _head_entry(graph: nx.DiGraph, head_nodes: Sequence[str]) -> str | None:
    if not head_nodes:
        return None
    sources = [p for p in graph.predecessors(head_nodes[0]) if graph.nodes[p]["activation"]]
    return sources[0] if len(sources) == 1 else None


def _block_exit(graph: nx.DiGraph, block: analysis.Block, head_entry: str | None) -> str:
    if head_entry is not None:
        return head_entry
    if block.nodes[-1] in graph and graph.nodes[block.nodes[-1]]["kind"] != "output":
        return block.nodes[-1]
    return output_of(graph)
