"""The ONNX frontend: an ONNX graph as the one graph type (:mod:`graphblocks.graph`).

Each ONNX node becomes a ``function`` node whose ``op`` is the ONNX operator type
(:mod:`graphblocks.ops` knows what each computes), so the partition rule applies
unchanged. Specific to ONNX:

* **Parameters** are the initializers that hold weights: floating point, more than one
  element, not a BatchNormalization's running mean or variance (buffers in PyTorch,
  non-trainable weights in Keras). Parameter names are the initializer names.
* **A weight op's bias add is part of it**: ``Add(MatMul(x, W), b)`` with ``b`` an
  initializer and the MatMul used only there is one node, as a PyTorch ``Linear`` is.
* **Sizes are no activations**: ``Shape`` / ``Size`` outputs, and the type-only input
  of ``CastLike``, do not carry the model's values (as ``x.shape`` in torch.fx).
* **Scopes** name the framework-level layer of each node, by the first rule that fits
  the file (:data:`SCOPE_RULES`): PyTorch's ``pkg.torch.onnx.name_scopes`` metadata
  (the dynamo exporter), tf2onnx's ``<model>/<layer>/<Op>`` node names (Keras), the
  TorchScript exporter's ``/layer1/layer1.0/conv1/Conv`` node names, else none. A node
  is named ``<scope>.<OpType>`` (or by its ONNX name when it has no scope).
"""

from __future__ import annotations

import ast
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from graphblocks.graph import GraphBuilder, function_node_hint
from graphblocks.params import ParamTable

if TYPE_CHECKING:
    import networkx as nx
    import onnx

_FLOAT_TYPES = frozenset({1, 10, 11, 16})  # FLOAT, FLOAT16, DOUBLE, BFLOAT16
_BIASED_OPS = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul"})
_SIZE_OPS = frozenset({"Shape", "Size"})
#: Inputs that pass only a type or shape, never values: op type -> input indices.
_METADATA_INPUTS: dict[str, frozenset[int]] = {"CastLike": frozenset({1})}
#: Inputs that are statistics, not weights: op type -> input indices.
_STATISTICS_INPUTS: dict[str, frozenset[int]] = {"BatchNormalization": frozenset({3, 4})}
_TORCH_SCOPES_KEY = "pkg.torch.onnx.name_scopes"


def torch_metadata_scope(node: onnx.NodeProto) -> str | None:
    """The module path from the dynamo exporter's ``name_scopes`` (its last item is the op)."""
    for prop in node.metadata_props:
        if prop.key == _TORCH_SCOPES_KEY:
            scopes = ast.literal_eval(prop.value)
            return str(scopes[-2]) if len(scopes) >= 2 else ""
    return None


def keras_layer(name: str) -> str | None:
    """The Keras layer of a tf2onnx name ``<model>/<layer>/<Op>[:k]``, else None."""
    parts = name.split("/")
    return parts[1] if len(parts) >= 3 and parts[1] else None


def torchscript_scope(name: str) -> str:
    """Module path of a TorchScript-exporter node name: ``/layer1/layer1.0/conv1/Conv``
    → ``layer1.0.conv1``. A container's child is written ``<container>.<child>``, so a
    part that extends the previous part replaces it."""
    path: list[str] = []
    for part in [p for p in name.split("/") if p][:-1]:
        if path and part.startswith(path[-1] + "."):
            path[-1] = part
        else:
            path.append(part)
    return ".".join(path)


def _scope_torch(node: onnx.NodeProto) -> str:
    return torch_metadata_scope(node) or torchscript_scope(node.name)


def _scope_keras(node: onnx.NodeProto) -> str:
    return keras_layer(node.name) or ""


def _scope_path(node: onnx.NodeProto) -> str:
    return torchscript_scope(node.name)


#: name -> (does it fit the model, scope of a node), tried in order.
SCOPE_RULES: dict[str, tuple[Callable[[onnx.ModelProto], bool], Callable[[onnx.NodeProto], str]]] = {
    "torch-metadata": (
        lambda m: any(p.key == _TORCH_SCOPES_KEY for n in m.graph.node for p in n.metadata_props),
        _scope_torch,
    ),
    "keras": (lambda m: m.producer_name == "tf2onnx", _scope_keras),
    "path": (lambda m: any(n.name.startswith("/") for n in m.graph.node), _scope_path),
    "none": (lambda m: True, lambda n: ""),
}  # fmt: skip


def scope_rule(model: onnx.ModelProto) -> str:
    """The name of the first rule of :data:`SCOPE_RULES` that fits ``model``."""
    return next(name for name, (fits, _) in SCOPE_RULES.items() if fits(model))


def _value_types(model: onnx.ModelProto) -> dict[str, Any]:
    values = list(model.graph.value_info) + list(model.graph.input) + list(model.graph.output)
    return {v.name: v.type.tensor_type for v in values if v.type.HasField("tensor_type")}


def _shape(tensor_type: Any) -> list[int] | None:
    """Static dimensions; an unknown batch (first) dimension reads as 1."""
    if tensor_type is None or not tensor_type.HasField("shape"):
        return None
    dims = [d.dim_value if d.HasField("dim_value") else -1 for d in tensor_type.shape.dim]
    if dims and dims[0] == -1:
        dims[0] = 1
    return None if -1 in dims else [int(d) for d in dims]


def _dtype(tensor_type: Any) -> str | None:
    import onnx

    if tensor_type is None or not tensor_type.elem_type:
        return None
    return str(onnx.TensorProto.DataType.Name(tensor_type.elem_type)).lower()


def onnx_parameters(model: onnx.ModelProto) -> dict[str, int]:
    """Weight initializers and their element counts, in order of first use."""
    import math

    initializers = {t.name: t for t in model.graph.initializer}
    statistics = {
        name
        for node in model.graph.node
        for i, name in enumerate(node.input)
        if i in _STATISTICS_INPUTS.get(node.op_type, ())
    }
    order = [name for node in model.graph.node for name in node.input if name in initializers]
    order += list(initializers)
    numel: dict[str, int] = {}
    for name in dict.fromkeys(order):
        tensor = initializers[name]
        count = math.prod(tensor.dims)
        if tensor.data_type in _FLOAT_TYPES and count > 1 and name not in statistics:
            numel[name] = count
    return numel


def _constant_ints(model: onnx.ModelProto) -> dict[str, list[int]]:
    """Small integer constants (initializers and Constant nodes), e.g. reduction axes."""
    from onnx import numpy_helper

    tensors = [(t.name, t) for t in model.graph.initializer if t.data_type in (6, 7)]
    for node in model.graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            tensors.append((node.output[0], node.attribute[0].t))
    return {
        name: [int(v) for v in numpy_helper.to_array(t).reshape(-1)]
        for name, t in tensors
        if t.data_type in (6, 7) and len(t.dims) <= 1 and not t.external_data
    }


def _reduced_axes(node: onnx.NodeProto, ints: dict[str, list[int]]) -> list[int] | None:
    for attr in node.attribute:
        if attr.name == "axes":
            return list(attr.ints)
    if len(node.input) > 1 and node.input[1] in ints:
        return ints[node.input[1]]
    return None


def _keras_scopes(node: onnx.NodeProto, params: list[str]) -> list[str]:
    names = [node.name, *node.output, *params]
    return list(dict.fromkeys(layer for n in names if (layer := keras_layer(n))))


def capture_onnx(model: onnx.ModelProto) -> tuple[nx.DiGraph, ParamTable]:
    """The graph of ``model`` (shapes inferred beforehand) and its parameter table."""
    numel = onnx_parameters(model)
    table = ParamTable(numel, {})
    rule = scope_rule(model)
    scope_of = SCOPE_RULES[rule][1]
    types = _value_types(model)
    ints = _constant_ints(model)
    consumers = Counter(name for node in model.graph.node for name in node.input)
    initializers = {t.name for t in model.graph.initializer}
    vectors = {t.name for t in model.graph.initializer if len(t.dims) == 1}

    builder = GraphBuilder(frontend="onnx", scope_rule=rule)
    graph = builder.graph
    producer: dict[str, str] = {}
    for value in model.graph.input:
        if value.name not in initializers:
            tensor_type = types.get(value.name)
            producer[value.name] = builder.add(
                "input", kind="input", op="input", shape=_shape(tensor_type),
                dtype=_dtype(tensor_type), tensor=True, sources=[], scopes=[],
            )  # fmt: skip

    for index, node in enumerate(model.graph.node):
        skip = _METADATA_INPUTS.get(node.op_type, frozenset())
        params = [n for n in node.input if n in numel]
        preds = [producer[n] for i, n in enumerate(node.input) if n in producer and i not in skip]
        folded = _bias_target(graph, node, preds, params, consumers, producer, vectors)
        if folded is not None:
            graph.nodes[folded]["params"].extend(params)
            graph.nodes[folded]["sources"].append(index)
            graph.nodes[folded]["scopes"].extend(
                _keras_scopes(node, params) if rule == "keras" else []
            )
            producer.update(dict.fromkeys(node.output, folded))
            continue
        scope = scope_of(node)
        tensor_type = types.get(node.output[0]) if node.output else None
        extra: dict[str, Any] = {"sources": [index]}
        extra["scopes"] = (
            _keras_scopes(node, params) if rule == "keras" else [scope] if scope else []
        )
        if node.op_type in ("ReduceMean", "ReduceMax"):
            extra["axes"] = _reduced_axes(node, ints)
        name = builder.add(
            function_node_hint(scope, node.op_type) if scope else (node.name or node.op_type),
            kind="function", op=node.op_type, inputs=preds, module=scope, params=params,
            shape=_shape(tensor_type), dtype=_dtype(tensor_type),
            tensor=node.op_type not in _SIZE_OPS, **extra,
        )  # fmt: skip
        producer.update(dict.fromkeys(node.output, name))

    outputs = [producer[o.name] for o in model.graph.output if o.name in producer]
    builder.add("output", kind="output", op="output", inputs=outputs, sources=[], scopes=[])
    return graph, table


def _bias_target(
    graph: nx.DiGraph,
    node: onnx.NodeProto,
    preds: list[str],
    params: list[str],
    consumers: Counter[str],
    producer: dict[str, str],
    vectors: set[str],
) -> str | None:
    """The weight op whose bias ``node`` adds, when ``node`` is such an ``Add``."""
    if node.op_type != "Add" or len(params) != 1 or params[0] not in vectors or len(preds) != 1:
        return None
    target = preds[0]
    source = next(n for n in node.input if producer.get(n) == target)
    if graph.nodes[target]["op"] in _BIASED_OPS and consumers[source] == 1:
        return target
    return None
