"""torch.fx frontend: symbolic tracing with scopes, then meta-tensor shape propagation."""

from __future__ import annotations

import inspect
from typing import Any

import networkx as nx
import torch
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp, TensorMetadata

from graphblocks.frontends import leaves
from graphblocks.frontends.quiet import quiet_torch
from graphblocks.graph import GraphBuilder, function_node_hint
from graphblocks.params import ParamTable


class ScopeTracer(fx.Tracer):
    """An ``fx.Tracer`` that keeps leaf modules whole and records each node's scope.

    ``node.meta["scope"]`` is the path of the module whose ``forward`` created the node.
    """

    def __init__(self) -> None:
        super().__init__(autowrap_functions=leaves.autowrap_functions(), param_shapes_constant=True)
        self._is_leaf = leaves.make_leaf_predicate()
        self._scopes: list[str] = [""]

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return self._is_leaf(m)

    def call_module(
        self, m: nn.Module, forward: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        self._scopes.append(self.path_of_module(m))
        try:
            return super().call_module(m, forward, args, kwargs)
        finally:
            self._scopes.pop()

    def create_node(self, *args: Any, **kwargs: Any) -> fx.Node:
        node = super().create_node(*args, **kwargs)
        node.meta["scope"] = self._scopes[-1]
        return node


def _value_info(
    node: fx.Node, shapes_known: bool
) -> tuple[list[int] | None, str | None, bool | None]:
    meta = node.meta.get("tensor_meta")
    if isinstance(meta, TensorMetadata):
        return list(meta.shape), str(meta.dtype).removeprefix("torch."), True
    if meta is not None:
        return None, None, True  # a container that holds tensors
    return None, None, (False if shapes_known else None)


def optional_defaults(model: nn.Module, given: int) -> dict[str, Any]:
    """Defaults of ``forward``'s arguments past the ``given`` positional inputs.

    Traced as constants, ``mask=None`` keeps ``if mask is not None:`` on the branch the
    caller actually runs, instead of tracing a Proxy that is never None.
    """
    try:
        parameters = list(inspect.signature(model.forward).parameters.values())
    except (TypeError, ValueError):
        return {}
    plain = (
        inspect.Parameter.POSITIONAL_ONLY,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
        inspect.Parameter.KEYWORD_ONLY,
    )
    return {
        p.name: p.default
        for p in parameters[given:]
        if p.kind in plain and p.default is not inspect.Parameter.empty
    }


def _mutates_first_argument(node: fx.Node, root: nn.Module) -> bool:
    """``x.add_(y)``, ``torch.relu_(x)``, ``F.relu(x, inplace=True)``, ``nn.ReLU(inplace=True)(x)``."""
    if not node.args or not isinstance(node.args[0], fx.Node):
        return False
    if node.op == "call_module":
        return bool(getattr(root.get_submodule(str(node.target)), "inplace", False))
    if node.op not in ("call_method", "call_function"):
        return False
    name = _target_name(node.target)
    in_place_name = name.endswith("_") and not name.startswith("_")
    return in_place_name or node.kwargs.get("inplace") is True


def follow_mutations(graph: fx.Graph, root: nn.Module) -> None:
    """Make in-place updates visible as data flow.

    torch.fx records ``y.add_(x)`` as a node but keeps later reads of ``y`` on the
    node that produced ``y`` before the mutation (pytorch#68301), so a residual merge
    written as a mutation would dangle. Every read of ``y`` after an in-place node is
    rewired to read that node, which holds the same tensor at run time.
    """
    order = {node: i for i, node in enumerate(graph.nodes)}
    for node in list(graph.nodes):
        if not _mutates_first_argument(node, root):
            continue
        mutated = node.args[0]
        assert isinstance(mutated, fx.Node)
        for user in list(mutated.users):
            if user is not node and order[user] > order[node]:
                user.replace_input_with(mutated, node)


def _target_name(target: Any) -> str:
    return target if isinstance(target, str) else getattr(target, "__name__", str(target))


def trace(model: nn.Module, num_inputs: int = 1) -> fx.GraphModule:
    """``model`` traced with the scope tracer, in-place updates made visible as data flow."""
    tracer = ScopeTracer()
    graph = tracer.trace(model, concrete_args=optional_defaults(model, num_inputs))
    follow_mutations(graph, tracer.root)
    return fx.GraphModule(tracer.root, graph)


def capture_fx(
    model: nn.Module,
    example: tuple[torch.Tensor, ...],
    table: ParamTable,
    *,
    require_shapes: bool = True,
) -> nx.DiGraph:
    """Trace ``model`` symbolically and return the annotated-ready graph.

    Raises whatever tracing raises; with ``require_shapes`` also what shape
    propagation raises.
    """
    gm = trace(model, len(example))
    shapes_known = True
    try:
        with quiet_torch():
            ShapeProp(gm).propagate(*example)
    except Exception:
        if require_shapes:
            raise
        shapes_known = False
    graph, _ = build_graph(model, gm.graph, table, shapes_known)
    return graph


def build_graph(
    model: nn.Module, graph: fx.Graph, table: ParamTable, shapes_known: bool = False
) -> tuple[nx.DiGraph, dict[fx.Node, str]]:
    """The graph type of :mod:`graphblocks.graph` for a traced ``graph``, and the name
    each fx node got under the naming rule."""
    buffers = {name for name, _ in model.named_buffers(remove_duplicate=False)}
    is_leaf = leaves.make_leaf_predicate()
    is_opaque = leaves.make_opaque_predicate()
    builder = GraphBuilder()
    names: dict[fx.Node, str] = {}
    for node in graph.nodes:
        shape, dtype, is_tensor = _value_info(node, shapes_known)
        inputs = [names[i] for i in node.all_input_nodes]
        scope = node.meta.get("scope", "")
        if node.op == "placeholder":
            names[node] = builder.add(
                "input", kind="input", op="input", shape=shape, dtype=dtype, tensor=is_tensor
            )
        elif node.op == "output":
            names[node] = builder.add("output", kind="output", op="output", inputs=inputs)
        elif node.op == "get_attr":
            target = str(node.target)
            canon = table.canonical(target)
            kind = "parameter" if canon else "buffer"
            names[node] = builder.add(
                canon or target,
                kind=kind,
                op=kind if canon or target in buffers else "constant",
                module=target.rpartition(".")[0],
                params=[canon] if canon else [],
                shape=shape,
                dtype=dtype,
                tensor=True,
            )
        elif node.op == "call_module":
            path = str(node.target)
            sub = model.get_submodule(path)
            assert is_leaf(sub), path
            names[node] = builder.add(
                path,
                kind="module",
                inputs=inputs,
                shape=shape,
                dtype=dtype,
                tensor=is_tensor,
                **leaves.module_node_attrs(sub, path, table, is_opaque),
            )
        else:
            op = _target_name(node.target)
            names[node] = builder.add(
                function_node_hint(scope, op),
                kind="method" if node.op == "call_method" else "function",
                op=op,
                inputs=inputs,
                module=scope,
                shape=shape,
                dtype=dtype,
                tensor=is_tensor,
            )
    return builder.graph, names
