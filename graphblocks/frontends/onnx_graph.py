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
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
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


_CALL_SUFFIX = re.compile(r"_\d+$")
_FOLDED_PREFIX = "ConstantFolding/"


def keras_layer(name: str, call_suffix: bool = False) -> str | None:
    """The Keras layer of a tf2onnx name ``<model>/<layer>/<Op>[:k]``, else None; with
    ``call_suffix`` (Keras 3) the layer part's ``_<k>`` is dropped: ``conv1_conv_1`` →
    ``conv1_conv``. Grappler's ``ConstantFolding/`` prefix on folded constants is
    skipped."""
    parts = name.removeprefix(_FOLDED_PREFIX).split("/")
    if len(parts) < 3 or not parts[1]:
        return None
    return _CALL_SUFFIX.sub("", parts[1]) if call_suffix else parts[1]


def is_keras3(model: onnx.ModelProto) -> bool:
    """Whether a tf2onnx file comes from Keras 3: Keras 3 runs a layer's ops in the name
    scope ``<layer>_<k>`` (its k-th call), so every layer part of every node name ends in
    ``_<digits>``; tf_keras uses the bare layer name."""
    layers = {parts[1] for n in model.graph.node if len(parts := n.name.split("/")) >= 3}
    return bool(layers) and all(_CALL_SUFFIX.search(layer) for layer in layers)


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


def _scope_keras3(node: onnx.NodeProto) -> str:
    return keras_layer(node.name, call_suffix=True) or ""


def _scope_path(node: onnx.NodeProto) -> str:
    return torchscript_scope(node.name)


#: name -> (does it fit the model, scope of a node), tried in order.
SCOPE_RULES: dict[str, tuple[Callable[[onnx.ModelProto], bool], Callable[[onnx.NodeProto], str]]] = {
    "torch-metadata": (
        lambda m: any(p.key == _TORCH_SCOPES_KEY for n in m.graph.node for p in n.metadata_props),
        _scope_torch,
    ),
    "keras3": (lambda m: m.producer_name == "tf2onnx" and is_keras3(m), _scope_keras3),
    "keras": (lambda m: m.producer_name == "tf2onnx", _scope_keras),
    "path": (lambda m: any(n.name.startswith("/") for n in m.graph.node), _scope_path),
    "none": (lambda m: True, lambda n: ""),
}  # fmt: skip


#: the scope rules of files converted from Keras (layer names are Keras layers)
KERAS_RULES = frozenset({"keras", "keras3"})


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


def weight_tensors(model: onnx.ModelProto) -> dict[str, onnx.TensorProto]:
    """Every constant tensor that can hold weights, by the name its consumers read:
    initializers, and the outputs of ``Constant`` nodes (paddle2onnx writes all its
    weights so)."""
    tensors = {t.name: t for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant" and node.output:
            value = next((a.t for a in node.attribute if a.name == "value"), None)
            if value is not None and value.dims:
                tensors.setdefault(node.output[0], value)
    return tensors


def weight_inputs(node: onnx.NodeProto) -> list[str]:
    """The inputs of ``node`` that may be weights: all but a BatchNormalization's running
    statistics (a use, not a tensor, is a statistic: tf2onnx may feed one tensor of ones
    to a gamma and to a variance)."""
    statistics = _STATISTICS_INPUTS.get(node.op_type, frozenset())
    return [name for i, name in enumerate(node.input) if i not in statistics]


def onnx_parameters(model: onnx.ModelProto) -> dict[str, int]:
    """Weights and their element counts, in order of first use: floating-point constant
    tensors (:func:`weight_tensors`) of more than one element read as a weight
    (:func:`weight_inputs`), then initializers that nothing reads."""
    import math

    tensors = weight_tensors(model)
    read = {n for node in model.graph.node for n in node.input}
    used = [n for node in model.graph.node for n in weight_inputs(node) if n in tensors]
    unread = [t.name for t in model.graph.initializer if t.name not in read]  # placed later
    numel: dict[str, int] = {}
    for name in [*used, *unread]:
        tensor = tensors[name]
        count = math.prod(tensor.dims)
        if tensor.data_type in _FLOAT_TYPES and count > 1:
            numel.setdefault(name, count)
    return numel


@dataclass
class LayerWeights:
    """Weights as layers own them. tf2onnx replaces equal constants by one (every fresh
    BatchNormalization's gamma is ones, every bias zeros), so one initializer can stand
    for the weights of several Keras layers; Keras layers share weights only by being
    called twice, which keeps one layer scope. So in tf2onnx files a weight read in k
    layers is k weights: the first layer's keeps the name, the others are
    ``<name>#<layer>``. ``renamed`` maps (node index, input name) to the weight's name;
    ``shared`` are the names read in several layers in any role (a merged tensor's name
    is one of its copies', so it names no layer)."""

    numel: dict[str, int]
    renamed: dict[tuple[int, str], str]
    shared: set[str]

    def params_of(self, index: int, node: onnx.NodeProto) -> list[str]:
        return [self.renamed.get((index, n), n) for n in weight_inputs(node) if n in self.numel]


def layer_weights(model: onnx.ModelProto, numel: dict[str, int], rule: str) -> LayerWeights:
    """The weights of ``model`` per layer (see :class:`LayerWeights`); one name per
    initializer outside tf2onnx files, where a shared initializer is a tied weight."""
    if rule not in KERAS_RULES:
        return LayerWeights(dict(numel), {}, set())
    layer_of = SCOPE_RULES[rule][1]
    readers: dict[str, dict[str, None]] = {}  # weight -> the layers that read it as one
    everyone: dict[str, dict[str, None]] = {}  # any tensor -> the layers that read it
    for node in model.graph.node:
        layer = layer_of(node)
        for name in node.input:
            everyone.setdefault(name, {})[layer] = None
        for name in weight_inputs(node):
            if name in numel and layer:
                readers.setdefault(name, {})[layer] = None
    shared = {name for name in numel if len(everyone.get(name, {})) > 1}
    renamed: dict[tuple[int, str], str] = {}
    split: dict[str, int] = {}
    for index, node in enumerate(model.graph.node):
        for name in (n for n in weight_inputs(node) if n in numel):
            layer = layer_of(node)
            if len(readers.get(name, {})) > 1 and layer and layer != next(iter(readers[name])):
                renamed[(index, name)] = f"{name}#{layer}"
            split.setdefault(renamed.get((index, name), name), numel[name])
    return LayerWeights(
        {**split, **{k: v for k, v in numel.items() if k not in split}}, renamed, shared
    )


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


def keras_claims(model: onnx.ModelProto, weights: set[str], keras3: bool) -> dict[str, set[str]]:
    """Keras layer -> the names of the nodes that read ``weights`` and are named after
    the layer by their own name or an output's (evidence that tf2onnx's deduplication of
    constants cannot move; a weightless node such as a moved Transpose claims nothing)."""
    claims: dict[str, set[str]] = {}
    for node in model.graph.node:
        if not any(n in weights for n in weight_inputs(node)):
            continue
        for name in (node.name, *node.output):
            if layer := keras_layer(name, keras3):
                claims.setdefault(layer, set()).add(node.name)
    return claims


def _keras_scopes(
    node: onnx.NodeProto,
    params: list[str],
    weights: LayerWeights,
    claims: dict[str, set[str]],
    keras3: bool,
) -> list[str]:
    """The Keras layers a node computes: its own name's and its outputs' (a BatchNorm
    folded into a convolution keeps the BatchNorm's output name), and its weights' when
    they belong to this node's layers alone (a folded convolution's kernel). A weight's
    name is evidence only for a layer that no other node claims: a deduplicated constant
    keeps the name of whichever layer tf2onnx met first."""
    own = [p for p in params if "#" not in p and p not in weights.shared]
    from_weights = [
        layer for p in own
        if (layer := keras_layer(p, keras3)) and claims.get(layer, set()) <= {node.name}
    ]  # fmt: skip
    names = [node.name, *node.output]
    layers = [layer for n in names if (layer := keras_layer(n, keras3))]
    return list(dict.fromkeys([*layers, *from_weights]))


@dataclass
class _Context:
    """What capturing one model needs to know about all of it."""

    model: onnx.ModelProto
    rule: str
    weights: LayerWeights
    types: dict[str, Any]
    ints: dict[str, list[int]]
    consumers: Counter[str]
    vectors: set[str]
    constants: set[str]  # Constant nodes' outputs that are weights
    claims: dict[str, set[str]]  # Keras layer -> the nodes named after it

    @classmethod
    def of(cls, model: onnx.ModelProto) -> _Context:
        tensors = weight_tensors(model)
        rule = scope_rule(model)
        weights = layer_weights(model, onnx_parameters(model), rule)
        vectors = {n for n in weights.numel if _is_vector(tensors[n.partition("#")[0]].dims)}
        initializers = {t.name for t in model.graph.initializer}
        return cls(model, rule, weights, _value_types(model), _constant_ints(model),
                   Counter(n for node in model.graph.node for n in node.input), vectors,
                   {n for n in weights.numel if n not in initializers},
                   keras_claims(model, set(weights.numel), rule == "keras3"))  # fmt: skip

    def scopes(self, node: onnx.NodeProto, params: list[str], scope: str) -> list[str]:
        if self.rule in KERAS_RULES:
            return _keras_scopes(node, params, self.weights, self.claims, self.rule == "keras3")
        return [scope] if scope else []


def evaluation_order(model: onnx.ModelProto) -> list[int]:
    """Node indices with each node as late as it can run: right before its first reader.

    Built backwards from the graph outputs: a node is placed once every reader of its
    outputs is, and the node placed most recently becomes ready first (its inputs in their
    order, the last input nearest to it). The nodes no output needs follow in file order.

    An exporter may store a valid topological order that interleaves independent parts
    (tf2onnx computes parts of a NASNet cell before the previous cell's concatenation);
    the tensors live across a cut depend on the order, so the partition rule reads this
    one, which computes each value where the program would, whatever the file's order.
    """
    nodes = model.graph.node
    made_by = {out: i for i, node in enumerate(nodes) for out in node.output}
    outputs = [value.name for value in model.graph.output]
    waiting = [0] * len(nodes)  # readers not yet placed, per node (a graph output is one)
    for name in [*outputs, *(name for node in nodes for name in node.input)]:
        if name in made_by:
            waiting[made_by[name]] += 1
    ready: list[int] = []

    def placed_reader_of(names: Iterable[str]) -> None:
        for name in names:
            if name in made_by:
                waiting[made_by[name]] -= 1
                if waiting[made_by[name]] == 0:
                    ready.append(made_by[name])

    placed_reader_of(outputs)
    placed: list[int] = []
    while ready:
        placed.append(ready.pop())
        placed_reader_of(nodes[placed[-1]].input)
    placed.reverse()
    seen = set(placed)
    return placed + [i for i in range(len(nodes)) if i not in seen]


def capture_onnx(model: onnx.ModelProto) -> tuple[nx.DiGraph, ParamTable]:
    """The graph of ``model`` (shapes inferred beforehand) and its parameter table."""
    ctx = _Context.of(model)
    builder = GraphBuilder(frontend="onnx", scope_rule=ctx.rule)
    producer: dict[str, str] = {}
    initializers = {t.name for t in model.graph.initializer}
    for value in model.graph.input:
        if value.name not in initializers:
            tensor_type = ctx.types.get(value.name)
            producer[value.name] = builder.add(
                "input", kind="input", op="input", shape=_shape(tensor_type),
                dtype=_dtype(tensor_type), tensor=True, sources=[], scopes=[],
            )  # fmt: skip
    for index in evaluation_order(model):
        node = model.graph.node[index]
        if node.op_type == "Constant" and set(node.output) <= ctx.constants:
            continue  # a weight, read by its consumers as a parameter
        _add_node(builder, ctx, index, node, producer)
    outputs = [producer[o.name] for o in model.graph.output if o.name in producer]
    builder.add("output", kind="output", op="output", inputs=outputs, sources=[], scopes=[])
    return builder.graph, ParamTable(ctx.weights.numel, {})


def _add_node(
    builder: GraphBuilder, ctx: _Context, index: int, node: onnx.NodeProto, producer: dict[str, str]
) -> None:
    """Add ``node`` to the graph, or fold it into the weight op whose bias it adds."""
    graph = builder.graph
    skip = _METADATA_INPUTS.get(node.op_type, frozenset())
    params = ctx.weights.params_of(index, node)
    preds = [producer[n] for i, n in enumerate(node.input) if n in producer and i not in skip]
    folded = _bias_target(graph, node, preds, params, ctx.consumers, producer, ctx.vectors)
    if folded is not None:
        graph.nodes[folded]["params"].extend(params)
        graph.nodes[folded]["sources"].append(index)
        graph.nodes[folded]["scopes"].extend(ctx.scopes(node, params, ""))
        producer.update(dict.fromkeys(node.output, folded))
        return
    scope = SCOPE_RULES[ctx.rule][1](node)
    tensor_type = ctx.types.get(node.output[0]) if node.output else None
    extra: dict[str, Any] = {"sources": [index], "scopes": ctx.scopes(node, params, scope)}
    if node.op_type in ("ReduceMean", "ReduceMax"):
        extra["axes"] = _reduced_axes(node, ctx.ints)
    name = builder.add(
        function_node_hint(scope, node.op_type) if scope else (node.name or node.op_type),
        kind="function", op=node.op_type, inputs=preds, module=scope, params=params,
        shape=_shape(tensor_type), dtype=_dtype(tensor_type),
        tensor=node.op_type not in _SIZE_OPS, **extra,
    )  # fmt: skip
    producer.update(dict.fromkeys(node.output, name))


def _is_vector(dims: Sequence[int]) -> bool:
    """Whether a tensor of ``dims`` is a vector, standing or broadcast: ``[C]``, ``[1, C]``,
    ``[1, C, 1, 1]`` (paddle2onnx writes a convolution's bias that way)."""
    return sum(1 for d in dims if d != 1) == 1


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
