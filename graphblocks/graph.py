"""The one graph type every frontend produces: a ``networkx.DiGraph`` in topological order.

Node keys are readable, unique names (the naming rule, shared by all frontends):

* a module call is named by its module path (``layer1.0.conv1``);
* any other operation is ``<enclosing module path>.<op>`` (``layer1.0.add``);
* a parameter or buffer read is named by its ``state_dict`` key (``cls_token``);
* the model's inputs are ``input`` (``input_1``... when several), its result ``output``;
* a name already taken gets ``_1``, ``_2``... appended, in topological order.

Node attributes set by the frontends:

============  =================================================================
``kind``      input, module, function, method, parameter, buffer or output
``op``        the module's class name or the function / method / ATen op name
``module``    the called module's path (module nodes) or the enclosing one
``bases``     module nodes: the class names along the MRO, most derived first
``params``    canonical ``state_dict`` names the node reads directly (a module
              call: its module's parameters; a parameter read: that parameter)
``shape``     output shape (list of ints) or None when unknown / not a tensor
``dtype``     output dtype name or None
``tensor``    True when the output is a tensor (or holds tensors), False for
              Python values such as sizes, None when unknown
``opaque``    module nodes: a registered not-traceable module, seen only whole
============  =================================================================

A frontend may add more, read where present: ``axes`` (the axes a reduction
reduces, when known), ``scopes`` (every framework-level name the node belongs to,
e.g. the Keras layers of a fused ONNX op) and ``sources`` (the indices of the ONNX
nodes the node stands for).

:func:`annotate` adds the analysis flags (``activation``, ``canonical``,
``delimiter``, ``merge``, ``weighted``, ``role``, ``owned``, ``num_params``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from typing import Any

import networkx as nx

from graphblocks import ops
from graphblocks.params import ParamTable

NODE_KINDS = ("input", "module", "function", "method", "parameter", "buffer", "output")


class GraphBuilder:
    """Adds nodes in topological order under the shared naming rule."""

    def __init__(self, **graph_attrs: Any) -> None:
        self.graph: nx.DiGraph = nx.DiGraph(**graph_attrs)
        self._next_suffix: dict[str, int] = {}

    def unique_name(self, hint: str) -> str:
        """``hint`` itself when free, else ``hint_1``, ``hint_2``... (amortized O(1))."""
        if hint not in self.graph:
            return hint
        i = self._next_suffix.get(hint, 1)
        while f"{hint}_{i}" in self.graph:
            i += 1
        self._next_suffix[hint] = i + 1
        return f"{hint}_{i}"

    def add(
        self,
        hint: str,
        *,
        kind: str,
        op: str,
        inputs: Iterable[str] = (),
        module: str = "",
        bases: Sequence[str] = (),
        params: Sequence[str] = (),
        shape: Sequence[int] | None = None,
        dtype: str | None = None,
        tensor: bool | None = None,
        opaque: bool = False,
        **extra: Any,
    ) -> str:
        """Add one node after every node already added; return its unique name.

        ``extra`` holds frontend-specific attributes (see the module docstring)."""
        assert kind in NODE_KINDS, kind
        name = self.unique_name(hint)
        self.graph.add_node(
            name,
            kind=kind,
            op=op,
            module=module,
            bases=list(bases),
            params=list(params),
            shape=None if shape is None else [int(s) for s in shape],
            dtype=dtype,
            tensor=tensor,
            opaque=opaque,
            **extra,
        )
        for src in dict.fromkeys(inputs):
            assert src in self.graph, f"{src} must be added before {name}"
            self.graph.add_edge(src, name)
        return name


def function_node_hint(scope: str, op: str) -> str:
    """Name hint for a non-module operation inside module ``scope``."""
    return f"{scope}.{op}" if scope else op


def inputs_of(graph: nx.DiGraph) -> list[str]:
    """The model's input nodes."""
    return [n for n, k in graph.nodes(data="kind") if k == "input"]


def output_of(graph: nx.DiGraph) -> str:
    """The model's single output node."""
    outs = [n for n, k in graph.nodes(data="kind") if k == "output"]
    assert len(outs) == 1, outs
    return outs[0]


def _activation_nodes(graph: nx.DiGraph) -> set[str]:
    """Nodes whose value is a tensor computed from the model input.

    Python values such as sizes read off a tensor (``x.shape[0]``) do not carry
    activations: they are cut off here so that a size read early and used late is
    not mistaken for a skip connection.
    """
    active: set[str] = set()
    for node in graph:
        data = graph.nodes[node]
        if data["tensor"] is False:
            continue
        if data["kind"] == "input":
            active.add(node)
        elif data["kind"] not in ("parameter", "buffer"):
            if any(p in active for p in graph.predecessors(node)):
                active.add(node)
    return active


def _is_decomposed_swish(graph: nx.DiGraph, node: str, canonical: dict[str, str]) -> bool:
    """``x * sigmoid(x)``: a ``mul`` of a tensor and the sigmoid of that same tensor."""
    if canonical[node] != "mul":
        return False
    preds = list(graph.predecessors(node))
    for p in preds:
        if canonical[p] == "sigmoid":
            sig_in = list(graph.predecessors(p))
            if len(sig_in) == 1 and sig_in[0] in preds:
                return True
    return False


def _is_decomposed_gelu(graph: nx.DiGraph, node: str, canonical: dict[str, str]) -> bool:
    """x · ½(1 + erf(x/√2)), GELU as exporters spell it: a ``mul`` with an ``erf`` at most
    three steps up, whose own input x (through one div or mul by a constant) is at most
    two steps up the ``mul`` by the other path."""
    if canonical[node] != "mul":
        return False
    depth = {node: 0}
    frontier = [node]
    for step in (1, 2, 3):
        frontier = [p for n in frontier for p in graph.predecessors(n) if p not in depth]
        depth.update(dict.fromkeys(frontier, step))
    for erf in (n for n in depth if canonical[n] == "erf"):
        sources = list(graph.predecessors(erf))
        if len(sources) != 1:
            continue
        x = sources[0]
        if canonical[x] in ("div", "mul", "truediv"):
            scaled = [p for p in graph.predecessors(x) if graph.nodes[p].get("activation", True)]
            x = scaled[0] if len(scaled) == 1 else x
        if depth.get(x, 3) <= 2:
            return True
    return False


def _is_reduction_pool(data: dict[str, Any], in_shape: list[int] | None) -> bool:
    """``mean``/``amax`` pool only when they reduce spatial axes.

    With known ``axes`` on an input of rank r: every reduced axis is spatial, i.e.
    ≥ 2 for r ≥ 4 (N, C, H, W...), or exactly the token axis 1 for r = 3 (N, L, C). A
    mean over the channels (a decomposed LayerNorm) is no pool. Otherwise, judged by
    shapes: some axis past the channel axis shrinks to 1.
    """
    axes = data.get("axes")
    if axes is not None and in_shape is not None and axes:
        rank = len(in_shape)
        reduced = {a % rank for a in axes}
        return reduced <= set(range(2, rank)) if rank >= 4 else rank == 3 and reduced == {1}
    out_shape = data["shape"]
    if in_shape is None or out_shape is None:
        return True
    if len(in_shape) < 3:
        return False
    if len(out_shape) < len(in_shape):
        return True
    return any(o == 1 and i > 1 for o, i in zip(out_shape[2:], in_shape[2:], strict=False))


def _carried_weights(
    graph: nx.DiGraph, active: set[str]
) -> tuple[dict[str, str], dict[str, list[str]], dict[str, list[str]]]:
    """Per node: its canonical op name, the parameters it reads directly or through
    parameter-only computations (``w.t()``), and the parameters it *owns*: those it is
    the first activation node to read."""
    canonical: dict[str, str] = {}
    weights_in: dict[str, list[str]] = {}
    owner: dict[str, str] = {}
    for node in graph:
        data = graph.nodes[node]
        kind = data["kind"]
        canonical[node] = data["op"] if kind == "module" else ops.canonical_function(data["op"])
        carried: dict[str, None] = dict.fromkeys(data["params"])
        for p in graph.predecessors(node):
            if p not in active:
                carried.update(dict.fromkeys(weights_in[p]))
        weights_in[node] = list(carried)
        if node in active and kind != "output":
            for name in carried:
                owner.setdefault(name, node)
    owned: dict[str, list[str]] = {n: [] for n in graph}
    for name, node in owner.items():
        owned[node].append(name)
    return canonical, weights_in, owned


def _delimiter(
    graph: nx.DiGraph, node: str, canonical: dict[str, str], active: set[str]
) -> str | None:
    """``pool``, ``norm``, ``act`` or None for an activation node (None for others)."""
    data = graph.nodes[node]
    op = canonical[node]
    if node not in active:
        return None
    if data["kind"] == "module":
        return ops.module_delimiter(data["bases"] or [op])
    if _is_decomposed_swish(graph, node, canonical) or _is_decomposed_gelu(graph, node, canonical):
        return "act"
    delimiter = ops.function_delimiter(op)
    if op in ("mean", "amax") and delimiter == "pool":
        act_in = [p for p in graph.predecessors(node) if p in active]
        in_shape = graph.nodes[act_in[0]]["shape"] if act_in else None
        delimiter = "pool" if _is_reduction_pool(data, in_shape) else None
    return delimiter


def annotate(graph: nx.DiGraph, table: ParamTable) -> nx.DiGraph:
    """Add the analysis flags to every node of ``graph``; return ``graph``.

    * ``activation``: the node's value is a tensor reached from the input;
    * ``params`` (activation nodes): every parameter the node reads, directly or through
      parameter-only computations, so ``F.linear(x, self.w.t())`` lists ``w``;
    * ``canonical``: the op name the registries in :mod:`graphblocks.ops` use;
    * ``delimiter``: ``pool``, ``norm``, ``act`` or None;
    * ``merge``: an add / cat / sum with two or more distinct activation inputs;
    * ``owned``: parameters this node is the first activation node to use, either
      directly or through parameter-only computations (``w.t()``, ``cls_token.expand``);
    * ``num_params``: element count of ``owned`` (tied weights once);
    * ``weighted``: applies a weight (conv, linear, embedding, weight matmul, or a
      parameter-owning module that is no delimiter);
    * ``role``: ``weighted``, ``norm`` or ``other`` for parameter owners, else None;
    * ``unit``: an opaque module that applies weights and is no delimiter, taken as a
      whole residual-unit-like block (timm registers e.g. NFNet's residual block so).
    """
    active = _activation_nodes(graph)
    canonical, weights_in, owned = _carried_weights(graph, active)
    definition_order = {name: i for i, name in enumerate(table.numel)}
    for node in graph:
        data = graph.nodes[node]
        kind, op, is_active = data["kind"], canonical[node], node in active
        delimiter = _delimiter(graph, node, canonical, active)
        merge = (
            is_active
            and kind in ("function", "method")
            and ops.is_merge_function(op)
            and sum(p in active for p in graph.predecessors(node)) >= 2
        )
        node_owned = sorted(owned[node], key=definition_order.__getitem__)
        has_weights = bool(weights_in[node]) and is_active
        if kind == "module":
            weighted = has_weights and delimiter is None
        else:
            weighted = has_weights and ops.is_weighted_function(op)
        role = None
        if node_owned:
            role = "weighted" if weighted else ("norm" if delimiter == "norm" else "other")
        data.update(
            activation=is_active,
            canonical=op,
            delimiter=delimiter,
            merge=bool(merge),
            weighted=bool(weighted),
            unit=bool(kind == "module" and data["opaque"] and weighted),
            params=weights_in[node] if is_active else data["params"],
            owned=node_owned,
            num_params=table.count(node_owned),
            role=role,
        )
    return graph


def graph_hash(graph: nx.DiGraph) -> str:
    """A stable digest of the graph's structure: names, kinds, ops, params, shapes, edges."""
    digest = hashlib.sha256()
    for node in graph:
        d = graph.nodes[node]
        record = [node, d["kind"], d["op"], d["params"], d["shape"], list(graph.predecessors(node))]
        digest.update(json.dumps(record, separators=(",", ":")).encode())
    return "sha256:" + digest.hexdigest()[:32]
