"""From a model (or its name) to a :class:`~graphblocks.partition.Partition`."""

from __future__ import annotations

import contextlib
import gc
import math
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import torch
from torch import nn

from graphblocks import analysis, ops
from graphblocks.errors import CaptureError, GraphblocksError, ModelBuildError
from graphblocks.frontends import FALLBACK_CHAIN, FRONTENDS, Captured, capture
from graphblocks.graph import annotate, graph_hash, inputs_of, output_of
from graphblocks.params import ParamTable
from graphblocks.partition import BlockInfo, Head, Layer, ModelInfo, Partition
from graphblocks.sources import DEFAULT_INPUT_SIZE, ModelSource, is_onnx_path, resolve_model


@dataclass(frozen=True)
class Settings:
    """Everything that changes a partition besides the model itself."""

    delimiters: tuple[str, ...] = ops.ALL_BOUNDARY_CLASSES
    max_blocks: int | None = None
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

    def recorded(self) -> dict[str, Any]:
        """The settings as written into the partition."""
        return {
            "delimiters": [d for d in ops.ALL_BOUNDARY_CLASSES if d in self.delimiters],
            "max_blocks": self.max_blocks,
            "model_args": dict(sorted(self.model_args.items())),
        }


@dataclass
class Analysis:
    """A partition with the graph and module it was computed from.

    ``node_blocks`` maps every activation node of ``graph`` to its block index, or to
    None for the head; ``model`` is None for an ONNX file.
    """

    partition: Partition
    graph: nx.DiGraph
    model: nn.Module | None
    seconds: float
    node_blocks: dict[str, int | None] = field(default_factory=dict)


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while graphs are built and analyzed.

    Building a graph allocates many small objects on a heap that already holds the
    model; each full collection walks that whole heap, which makes analysis time grow
    faster than the graph. Reference counting still frees everything meanwhile; cycles
    are collected once the collector resumes.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _build_on_meta_else_cpu(source: ModelSource) -> nn.Module:
    """The meta device allocates nothing; a factory that reads its own initial values
    (``.item()``, copies) cannot run there and is built on the CPU instead."""
    try:
        return source.build("meta")
    except ModelBuildError:
        return source.build("cpu")


def _example_input(model: nn.Module, input_size: Sequence[int]) -> tuple[torch.Tensor, ...]:
    param = next(iter(model.parameters()), None)
    device = param.device if param is not None else torch.device("cpu")
    return (torch.zeros((1, *input_size), device=device),)


def _capture_with_fallback(
    source: ModelSource | None, model: nn.Module, input_size: Sequence[int], settings: Settings
) -> tuple[nn.Module, ParamTable, Captured]:
    """Capture on the model as given; a meta-built model that fails is rebuilt on the CPU."""
    while True:
        table = ParamTable.from_module(model)
        try:
            captured = capture(model, _example_input(model, input_size), table, settings.frontends)
            return model, table, captured
        except CaptureError:
            if source is None or not any(p.is_meta for p in model.parameters()):
                raise
        model = source.build("cpu")


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
    name of: the module owning its parameters (a lone root parameter by its own name)
    when they have ``state_dict``-like names, the scope a frontend gave it (an ONNX
    node's Keras layer or module path), its node name."""
    data = graph.nodes[node]
    if data["kind"] == "module":
        return node
    owned = data["owned"]
    owner = ""
    if all(_is_state_dict_name(p) for p in owned):
        owner = _common_module(owned) or (owned[0] if len(owned) == 1 else "")
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


def build_partition(
    graph: nx.DiGraph,
    table: ParamTable,
    model_info: ModelInfo,
    settings: Settings,
    classifier: set[str],
) -> tuple[Partition, dict[str, int | None]]:
    """Apply the partition rule to an annotated graph; return the Partition and the
    block index (None: head) of every activation node."""
    dominators = analysis.output_dominators(graph)
    head_nodes = analysis.find_head(graph, classifier, dominators)
    blocks = analysis.plan_blocks(graph, dominators, head_nodes, settings.delimiters)
    sizes = [sum(graph.nodes[n]["num_params"] for n in b.layers) for b in blocks]
    if settings.max_blocks is not None:
        blocks, sizes = analysis.coarsen(blocks, sizes, settings.max_blocks)

    owners = [n for n in graph if graph.nodes[n]["owned"]]
    taken = {n for n in owners if graph.nodes[n]["kind"] == "module"}
    names: dict[str, str] = {}
    for node in owners:
        names[node] = _layer_name(graph, node, taken)
        taken.add(names[node])
    macs = {node: layer_macs(graph, node, table) for node in owners}
    block_of_node = {n: i for i, b in enumerate(blocks) for n in b.layers}
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
    unused = _place_unused(table, owner_block)
    owner_block.update(unused)

    total = table.total or 1
    head_entry = _head_entry(graph, head_nodes)
    infos: list[BlockInfo] = []
    params_of: dict[int | None, list[str]] = {}
    for name in table.numel:
        params_of.setdefault(owner_block[name], []).append(name)
    head_params = params_of.get(None, [])
    entry = inputs_of(graph)[0] if inputs_of(graph) else "input"
    for i, block in enumerate(blocks):
        params = params_of.get(i, [])
        exit_node = _block_exit(graph, block, head_entry if i == len(blocks) - 1 else None)
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
            )
        )
        entry = exit_node
    quartiles = {str(q): [b.index for b in infos if b.quartile == q] for q in range(1, 5)}
    quartile_params: dict[str, dict[str, float | int]] = {}
    for q, indices in quartiles.items():
        count = sum(infos[i].num_params for i in indices)
        quartile_params[q] = {"num_params": count, "share": round(count / total, 6)}
    partition = Partition(
        model=model_info,
        settings=settings.recorded(),
        layers=layers,
        blocks=infos,
        quartiles=quartiles,
        quartile_params=quartile_params,
        head=Head(
            [names[n] for n in head_nodes], head_params, table.count(head_params), head_entry
        ),
        tied=table.tied_groups(),
        unused=sorted(unused),
    )
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


def analyze_model(
    model: nn.Module | str, settings: Settings | None = None, *, name: str | None = None
) -> Analysis:
    """Capture and partition ``model`` (an ``nn.Module`` or a model specification)."""
    settings = settings or Settings()
    if isinstance(model, str) and is_onnx_path(model):
        return analyze_onnx(model, settings)
    start = time.perf_counter()
    source: ModelSource | None = None
    if isinstance(model, str):
        source = resolve_model(model, settings.model_args)
        module = _build_on_meta_else_cpu(source)
        input_size = tuple(settings.input_size or source.default_input_size(module))
    else:
        module = model.eval()
        input_size = tuple(settings.input_size or DEFAULT_INPUT_SIZE)
    with torch.no_grad(), gc_paused():
        module, table, captured = _capture_with_fallback(source, module, input_size, settings)
        graph = annotate(captured.graph, table)
        info = ModelInfo(
            name=source.name if source else (name or type(module).__name__),
            source=source.source if source else "module",
            frontend=captured.frontend,
            input_size=list(input_size),
            num_params=table.total,
            num_nodes=graph.number_of_nodes(),
            graph_hash=graph_hash(graph),
            frontend_failures=dict(captured.failures),
        )
        classifier = analysis.classifier_params(module, table)
        partition, node_blocks = build_partition(graph, table, info, settings, classifier)
    return Analysis(partition, graph, module, time.perf_counter() - start, node_blocks)


def analyze_onnx(path: str, settings: Settings | None = None) -> Analysis:
    """Capture and partition the ONNX model in the file at ``path``.

    The head is what follows the last global pool, else the last weighted layer (an
    ONNX file has no ``get_classifier``).
    """
    from graphblocks.frontends.onnx_graph import capture_onnx
    from graphblocks.frontends.onnx_load import load_onnx

    settings = settings or Settings()
    start = time.perf_counter()
    model = load_onnx(path, settings.input_size)
    with gc_paused():
        graph, table = capture_onnx(model)
        graph = annotate(graph, table)
        if not any(weighted for _, weighted in graph.nodes(data="weighted")):
            raise GraphblocksError(
                f"{path} has no weights: no Conv, Gemm, MatMul or Gather reads an initializer",
                "export it with its parameters (torch.onnx.export(..., export_params=True))",
            )
        entry = inputs_of(graph)
        shape = graph.nodes[entry[0]]["shape"] if entry else None
        if not shape or len(shape) < 2:
            raise GraphblocksError(
                f"the input of {path} has dynamic or unknown dimensions",
                "give them with --input-size, e.g. --input-size 3,224,224",
            )
        info = ModelInfo(
            name=path,
            source="onnx",
            frontend="onnx",
            input_size=list(shape[1:]) if shape else [],
            num_params=table.total,
            num_nodes=graph.number_of_nodes(),
            graph_hash=graph_hash(graph),
            producer=f"{model.producer_name} {model.producer_version}".strip(),
        )
        partition, node_blocks = build_partition(graph, table, info, settings, set())
    return Analysis(partition, graph, None, time.perf_counter() - start, node_blocks)
