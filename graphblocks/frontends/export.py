"""torch.export frontend (non-strict): ATen graph folded back into module calls.

Every ATen node carries ``nn_module_stack``, the chain of module calls that produced
it (outermost first; a repeated call of one module gets its own key). Nodes under the
outermost *leaf* module of that chain (see :mod:`graphblocks.frontends.leaves`) are
contracted into one ``module`` node named by the module path, so the graph reads the
same as the FX frontend's. All other nodes stay ``function`` nodes named after their
ATen op (``aten.add.Tensor`` → ``add``), scoped by the innermost module of the chain.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import torch
from torch import fx, nn

from graphblocks.frontends import leaves
from graphblocks.frontends.quiet import quiet_torch
from graphblocks.graph import GraphBuilder, function_node_hint
from graphblocks.params import ParamTable

_FQN_ROOT = re.compile(r"^(L\['self'\]|L__self__|self)\.?")
_FQN_INDEX = re.compile(r"\[(\d+)\]|\['([^']+)'\]")


def normalize_fqn(fqn: str) -> str:
    """``L['self'].layer1[0]._modules['conv']`` → ``layer1.0.conv``."""
    path = _FQN_ROOT.sub("", fqn)
    path = _FQN_INDEX.sub(lambda m: "." + (m.group(1) or m.group(2)), path)
    path = path.replace("._modules.", ".").replace("_modules.", "")
    return path.strip(".")


def aten_name(target: Any) -> str:
    """Short op name: ``aten.add_.Tensor`` → ``add_``; other callables by ``__name__``."""
    text = str(target)
    if text.startswith("aten."):
        return text.split(".")[1]
    return getattr(target, "__name__", text)


def _value_info(node: fx.Node) -> tuple[list[int] | None, str | None, bool | None]:
    val = node.meta.get("val")
    if isinstance(val, torch.Tensor):
        return [int(s) for s in val.shape], str(val.dtype).removeprefix("torch."), True
    if isinstance(val, (tuple, list)):
        return None, None, any(isinstance(v, torch.Tensor) for v in val)
    if val is None:
        return None, None, None
    return None, None, False


@dataclass
class _Unit:
    """One node-to-be: a single ATen node, or every ATen node of one leaf module call."""

    first: int
    members: list[fx.Node] = field(default_factory=list)
    module_path: str | None = None


def _leaf_call_finder(model: nn.Module) -> Callable[[fx.Node], tuple[str, str] | None]:
    is_leaf = leaves.make_leaf_predicate()
    cache: dict[str, bool] = {}

    def leaf_of(path: str) -> bool:
        if path not in cache:
            try:
                cache[path] = bool(path) and is_leaf(model.get_submodule(path))
            except AttributeError:
                cache[path] = False
        return cache[path]

    def find(node: fx.Node) -> tuple[str, str] | None:
        for key, (fqn, _type) in (node.meta.get("nn_module_stack") or {}).items():
            path = normalize_fqn(fqn)
            if leaf_of(path):
                return key, path
        return None

    return find


def _innermost_scope(node: fx.Node) -> str:
    stack = node.meta.get("nn_module_stack") or {}
    return normalize_fqn(list(stack.values())[-1][0]) if stack else ""


@dataclass
class _Context:
    """What turning one export unit into a graph node needs to know."""

    model: nn.Module
    table: ParamTable
    param_of: dict[str, str]
    buffer_of: dict[str, str]
    unit_of: dict[fx.Node, str] = field(default_factory=dict)
    is_opaque: Callable[[nn.Module], bool] = field(default_factory=leaves.make_opaque_predicate)


def capture_export(
    model: nn.Module, example: tuple[torch.Tensor, ...], table: ParamTable
) -> nx.DiGraph:
    """Export ``model`` with ``torch.export`` (non-strict) and return the graph."""
    with quiet_torch():
        program = torch.export.export(model, example, strict=False)
    signature = program.graph_signature
    ctx = _Context(
        model, table, dict(signature.inputs_to_parameters), dict(signature.inputs_to_buffers)
    )
    ctx.buffer_of.update(getattr(signature, "inputs_to_lifted_tensor_constants", {}) or {})
    find_leaf_call = _leaf_call_finder(model)

    units: dict[str, _Unit] = {}
    for index, node in enumerate(program.graph.nodes):
        call = find_leaf_call(node) if node.op == "call_function" else None
        key = f"module:{call[0]}" if call else f"node:{node.name}"
        unit = units.setdefault(key, _Unit(first=index, module_path=call[1] if call else None))
        unit.members.append(node)
        ctx.unit_of[node] = key

    # Parameter and buffer inputs read only inside leaf modules (or never) are implied.
    for node in program.graph.nodes:
        if node.op == "placeholder" and (node.name in ctx.param_of or node.name in ctx.buffer_of):
            if all(units[ctx.unit_of[u]].module_path is not None for u in node.users):
                del units[ctx.unit_of[node]]

    contracted = nx.DiGraph()
    contracted.add_nodes_from(units)
    for node in program.graph.nodes:
        dst = ctx.unit_of[node]
        for src_node in node.all_input_nodes:
            src = ctx.unit_of[src_node]
            if src != dst and src in units and dst in units:
                contracted.add_edge(src, dst)
    try:
        order = list(nx.lexicographical_topological_sort(contracted, key=lambda k: units[k].first))
    except nx.NetworkXUnfeasible as exc:
        raise RuntimeError("a module call is interleaved with outside operations") from exc

    builder = GraphBuilder()
    names: dict[str, str] = {}
    for key in order:
        inputs = [names[p] for p in contracted.predecessors(key)]
        names[key] = _add_unit(builder, ctx, key, units[key], inputs)
    return builder.graph


def _add_unit(
    builder: GraphBuilder, ctx: _Context, key: str, unit: _Unit, inputs: list[str]
) -> str:
    if unit.module_path is not None:
        path = unit.module_path
        sub = ctx.model.get_submodule(path)
        leaving = [m for m in unit.members if any(ctx.unit_of[u] != key for u in m.users)]
        shape, dtype, is_tensor = _value_info((leaving or unit.members)[-1])
        return builder.add(
            path,
            kind="module",
            inputs=inputs,
            shape=shape,
            dtype=dtype,
            tensor=is_tensor,
            **leaves.module_node_attrs(sub, path, ctx.table, ctx.is_opaque),
        )
    (node,) = unit.members
    shape, dtype, is_tensor = _value_info(node)
    if node.op == "placeholder":
        return _add_placeholder(builder, ctx, node, shape, dtype, is_tensor)
    if node.op == "output":
        return builder.add("output", kind="output", op="output", inputs=inputs)
    if node.op == "get_attr":
        return builder.add(
            str(node.target), kind="buffer", op="constant", inputs=inputs, tensor=True
        )
    scope = _innermost_scope(node)
    op = aten_name(node.target)
    return builder.add(
        function_node_hint(scope, op),
        kind="function",
        op=op,
        inputs=inputs,
        module=scope,
        shape=shape,
        dtype=dtype,
        tensor=is_tensor,
    )


def _add_placeholder(
    builder: GraphBuilder,
    ctx: _Context,
    node: fx.Node,
    shape: list[int] | None,
    dtype: str | None,
    is_tensor: bool | None,
) -> str:
    if node.name in ctx.param_of:
        fqn = ctx.param_of[node.name]
        canon = ctx.table.canonical(fqn) or fqn
        return builder.add(
            canon, kind="parameter", op="parameter", module=fqn.rpartition(".")[0],
            params=[canon], shape=shape, dtype=dtype, tensor=True,
        )  # fmt: skip
    if node.name in ctx.buffer_of:
        fqn = ctx.buffer_of[node.name]
        return builder.add(
            fqn, kind="buffer", op="buffer", module=fqn.rpartition(".")[0],
            shape=shape, dtype=dtype, tensor=True,
        )  # fmt: skip
    return builder.add(
        "input", kind="input", op="input", shape=shape, dtype=dtype, tensor=is_tensor
    )
