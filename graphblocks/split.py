"""Cut a PyTorch model in two at a node of its graph: ``prefix(x) -> h``, ``suffix(h) -> y``.

At a block boundary exactly one tensor crosses (the boundary is a dominator of the
output), so ``suffix(prefix(x)) == model(x)`` and the prefix's output can be computed
once and reused while only the suffix trains. Nodes are named as in the partition
(:mod:`graphblocks.graph`). Values computed from parameters alone (``w.t()``, an
expanded ``cls_token``) are recomputed in the suffix when it needs them; any other
value crossing the cut (a size read off a tensor before it, say) makes the cut
unusable and raises :class:`SplitError`.

Both halves share the model's parameters and buffers: training the suffix trains the
model.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import fx, nn

from graphblocks.errors import GraphblocksError
from graphblocks.params import ParamTable


class SplitError(GraphblocksError):
    """The model cannot be cut at the requested node."""


@dataclass
class Split:
    """The two halves of a model and the name of the node between them."""

    prefix: fx.GraphModule
    suffix: fx.GraphModule
    cut: str


def _ancestors(node: fx.Node) -> set[fx.Node]:
    seen: set[fx.Node] = set()
    stack = [node]
    while stack:
        current = stack.pop()
        if current not in seen:
            seen.add(current)
            stack.extend(current.all_input_nodes)
    return seen


def split_model(model: nn.Module, cut: str) -> Split:
    """Cut ``model`` (one tensor input) after the node named ``cut``.

    Raises :class:`SplitError` when no node has that name, or when more than the
    cut's tensor would cross.
    """
    from graphblocks.frontends.fx import build_graph, trace

    gm = trace(model)
    _, names = build_graph(model, gm.graph, ParamTable.from_module(model))
    by_name = {name: node for node, name in names.items()}
    if cut not in by_name:
        raise SplitError(f"the model has no node {cut!r}", "cut at a block's entry or exit node")
    cut_node = by_name[cut]
    output = next(n for n in gm.graph.nodes if n.op == "output")
    inputs = {n for n in gm.graph.nodes if n.op == "placeholder" and not n.args}  # no default
    before = _ancestors(cut_node)
    needed = _ancestors(output)
    after = [n for n in gm.graph.nodes if n in needed and n not in before and n is not output]
    # nodes with effects only (shape asserts): with the prefix when they read only it
    checks = {
        n for n in gm.graph.nodes
        if n not in needed and n not in before and _ancestors(n) - {n} <= before
    }  # fmt: skip
    recompute: set[fx.Node] = set()
    for node in after:
        for source in node.all_input_nodes:
            if source in before and source is not cut_node:
                upstream = _ancestors(source)
                if upstream & inputs:
                    raise SplitError(
                        f"cutting at {cut!r} leaves {names[source]!r} crossing too",
                        "cut at another block boundary, or train without the activation cache",
                    )
                recompute |= upstream

    prefix = fx.Graph()
    env: dict[fx.Node, fx.Node] = {}
    for node in gm.graph.nodes:
        if node in before or node in checks:
            env[node] = prefix.node_copy(node, env.__getitem__)
    prefix.output(env[cut_node])

    suffix = fx.Graph()
    env = {cut_node: suffix.placeholder("activation")}
    for node in gm.graph.nodes:
        if node is not cut_node and (node in recompute or node in after or node is output):
            env[node] = suffix.node_copy(node, env.__getitem__)
    return Split(fx.GraphModule(gm, prefix), fx.GraphModule(gm, suffix), cut)
