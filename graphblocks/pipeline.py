"""From a model (or its name) to a :class:`~graphblocks.partition.Partition`: build
the module, capture its graph with the frontends, annotate it, apply the partition rule
(:mod:`graphblocks.build`)."""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import torch
from torch import nn

from graphblocks import analysis
from graphblocks.build import Settings, build_partition
from graphblocks.errors import CaptureError, GraphblocksError, ModelBuildError
from graphblocks.frontends import Captured, capture
from graphblocks.graph import annotate, graph_hash, inputs_of
from graphblocks.params import ParamTable
from graphblocks.partition import ModelInfo, Partition
from graphblocks.sources import DEFAULT_INPUT_SIZE, ModelSource, is_onnx_path, resolve_model


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
        return _partitioned(
            captured.graph, table, settings, start=start, model=module,
            classifier=analysis.classifier_params(module, table),
            name=source.name if source else (name or type(module).__name__),
            source=source.source if source else "module", frontend=captured.frontend,
            input_size=list(input_size), frontend_failures=dict(captured.failures),
        )  # fmt: skip


def _partitioned(
    captured: nx.DiGraph,
    table: ParamTable,
    settings: Settings,
    *,
    start: float,
    model: nn.Module | None,
    classifier: set[str],
    check: Callable[[nx.DiGraph], dict[str, Any]] | None = None,
    **info: Any,
) -> Analysis:
    """The build sequence every capture ends with: annotate the captured graph, let
    ``check`` refuse it or add :class:`ModelInfo` fields, describe the model (``info``
    and the graph's own figures), apply the partition rule."""
    graph = annotate(captured, table)
    info.update(check(graph) if check else {})
    info.update(
        num_params=table.total, num_nodes=graph.number_of_nodes(), graph_hash=graph_hash(graph)
    )
    partition, node_blocks = build_partition(graph, table, ModelInfo(**info), settings, classifier)
    return Analysis(partition, graph, model, time.perf_counter() - start, node_blocks)


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

    def check(graph: nx.DiGraph) -> dict[str, Any]:
        """Refuse a file without weights or a known input shape; its input size."""
        if not any(weighted for _, weighted in graph.nodes(data="weighted")):
            raise GraphblocksError(
                f"{path} has no weights: no Conv, Gemm, MatMul or Gather reads an initializer or a Constant",
                "export it with its parameters (torch.onnx.export(..., export_params=True))",
            )
        entry = inputs_of(graph)
        shape = graph.nodes[entry[0]]["shape"] if entry else None
        if not shape or len(shape) < 2:
            raise GraphblocksError(
                f"the input of {path} has dynamic or unknown dimensions",
                "give them with --input-size, e.g. --input-size 3,224,224",
            )
        return {"input_size": list(shape[1:])}

    with gc_paused():
        graph, table = capture_onnx(model)
        producer = f"{model.producer_name} {model.producer_version}".strip()
        return _partitioned(
            graph, table, settings, start=start, model=None, classifier=set(), check=check,
            name=path, source="onnx", frontend="onnx", producer=producer,
        )  # fmt: skip
