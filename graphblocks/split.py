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

import itertools
from dataclasses import dataclass

from torch import fx, nn

from graphblocks.errors import GraphblocksError
from graphblocks.params import ParamTable


class SplitError(GraphblocksError):
    """The model cannot be cut at the requested node."""


@dataclass
class ModelHalves:
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


def split_model(model: nn.Module, cut: str) -> ModelHalves:
    """Cut ``model`` (one tensor input) after the node named ``cut``.

    Raises :class:`SplitError` when no node has that name, or when more than the
    cut's tensor would cross.
    """
    prefix, suffix = segment_model(model, [cut])
    return ModelHalves(prefix, suffix, cut)


def segment_model(model: nn.Module, cuts: list[str]) -> list[fx.GraphModule]:
    """Cut ``model`` after each node of ``cuts`` (in topological order): segment 0
    maps the input to ``cuts[0]``'s value, segment i maps ``cuts[i-1]``'s value to
    ``cuts[i]``'s, the last maps ``cuts[-1]``'s value to the output. Composing them
    computes the model. Raises :class:`SplitError` as :func:`split_model` does."""
    from graphblocks.frontends.fx import build_graph, trace

    gm = trace(model)
    _, names = build_graph(model, gm.graph, ParamTable.from_module(model))
    by_name = {name: node for node, name in names.items()}
    unknown = [c for c in cuts if c not in by_name]
    if unknown:
        raise SplitError(
            f"the model has no node {unknown[0]!r}", "cut at a block's entry or exit node"
        )
    output = next(n for n in gm.graph.nodes if n.op == "output")
    inputs = {n for n in gm.graph.nodes if n.op == "placeholder" and not n.args}  # no default
    needed = _ancestors(output)
    cut_nodes = [by_name[c] for c in cuts]
    levels = [_ancestors(c) for c in cut_nodes] + [needed]
    for earlier, later in itertools.pairwise(levels):
        if not earlier <= later:
            raise SplitError(
                f"cuts {cuts} are not in topological order along one path", "sort them"
            )
    # nodes with effects only (shape asserts) go with the first segment that can run them
    extras = [n for n in gm.graph.nodes if n not in needed and n.op != "output"]
    segments = []
    for i, level in enumerate(levels):
        start = cut_nodes[i - 1] if i else None
        done = levels[i - 1] if i else set()
        own = [n for n in gm.graph.nodes if n in level and n not in done and n is not output]
        own += [
            n for n in extras if _ancestors(n) - {n} <= level and not _ancestors(n) - {n} <= done
        ]
        segments.append(
            _segment(gm, names, own, start, cut_nodes[i] if i < len(cuts) else output, done, inputs)
        )
    return segments


def _segment(
    gm: fx.GraphModule,
    names: dict[fx.Node, str],
    own: list[fx.Node],
    start: fx.Node | None,
    end: fx.Node,
    done: set[fx.Node],
    inputs: set[fx.Node],
) -> fx.GraphModule:
    """One segment: ``start``'s value (or the model input) in, ``end``'s value out."""
    recompute: set[fx.Node] = set()
    for node in own:
        for source in node.all_input_nodes:
            if source in done and source is not start:
                upstream = _ancestors(source)
                if upstream & inputs:
                    raise SplitError(
                        f"cutting at {names[start] if start else 'input'!r} leaves "
                        f"{names[source]!r} crossing too",
                        "cut at another block boundary, or train without the activation cache",
                    )
                recompute |= upstream
    graph = fx.Graph()
    env: dict[fx.Node, fx.Node] = {}
    if start is not None:
        env[start] = graph.placeholder("activation")
    members = set(own) | recompute
    for node in gm.graph.nodes:
        if node in members and node is not start:
            env[node] = graph.node_copy(node, env.__getitem__)
    if end.op == "output":
        graph.node_copy(end, env.__getitem__)
    else:
        graph.output(env[end])
    return fx.GraphModule(gm, graph)
