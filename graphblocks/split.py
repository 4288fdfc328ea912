"""Cut a PyTorch model where a partition cuts it: ``prefix(x) -> h``, ``suffix(h) -> y``.

At a block boundary the tensors the partition records (a block's ``inputs``) cross, and
nothing else, so ``suffix(*prefix(x)) == model(x)`` and the prefix's outputs can be
computed once and reused while only the suffix trains. Nodes are named as in the partition
(:mod:`graphblocks.graph`). Values computed from parameters alone (``w.t()``, an
expanded ``cls_token``) are recomputed in the suffix when it needs them; any other
value crossing the cut (a size read off a tensor before it, say) makes the cut
unusable and raises :class:`SplitError`.

Both halves share the model's parameters and buffers: training the suffix trains the
model.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

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
    cut: str  # the crossing tensors' names, joined by commas


def _ancestors(node: fx.Node) -> set[fx.Node]:
    seen: set[fx.Node] = set()
    stack = [node]
    while stack:
        current = stack.pop()
        if current not in seen:
            seen.add(current)
            stack.extend(current.all_input_nodes)
    return seen


Cut = str | Sequence[str]
"""Where to cut: one node's name (a bare tensor crosses), or the names of every tensor
crossing the cut, as a partition records them in a block's ``inputs`` (a tuple crosses)."""


def split_model(model: nn.Module, cut: Cut) -> ModelHalves:
    """Cut ``model`` after ``cut`` (:data:`Cut`).

    Raises :class:`SplitError` when no node has that name, or when more than the
    cut's tensors would cross.
    """
    prefix, suffix = segment_model(model, [cut])
    return ModelHalves(prefix, suffix, cut if isinstance(cut, str) else ",".join(cut))


def segment_model(model: nn.Module, cuts: Sequence[Cut]) -> list[fx.GraphModule]:
    """Cut ``model`` at each of ``cuts`` (:data:`Cut`, in topological order): segment 0
    maps the model's input to cut 0's tensors, segment i maps cut i-1's tensors to cut
    i's, the last maps the last cut's tensors to the output. A cut named by a sequence
    is passed as one argument per tensor and returned as a tuple; a tensor may pass
    through a segment unread. Composing the segments (:class:`SegmentChain`) computes
    the model. Raises :class:`SplitError` as :func:`split_model` does."""
    from graphblocks.frontends.fx import build_graph, trace

    gm = trace(model)
    _, names = build_graph(model, gm.graph, ParamTable.from_module(model))
    by_name = {name: node for node, name in names.items()}
    groups = [[c] if isinstance(c, str) else list(c) for c in cuts]
    unknown = [c for group in groups for c in group if c not in by_name]
    if unknown:
        raise SplitError(
            f"the model has no node {unknown[0]!r}", "cut at a block's entry or exit node"
        )
    output = next(n for n in gm.graph.nodes if n.op == "output")
    inputs = {n for n in gm.graph.nodes if n.op == "placeholder" and not n.args}  # no default
    needed = _ancestors(output)
    cut_nodes = [[by_name[c] for c in group] for group in groups]
    levels = [set().union(*(_ancestors(c) for c in group)) for group in cut_nodes] + [needed]
    for earlier, later in itertools.pairwise(levels):
        if not earlier <= later:
            raise SplitError(
                f"cuts {list(cuts)} are not in topological order along one path", "sort them"
            )
    # nodes with effects only (shape asserts) go with the first segment that can run them
    extras = [n for n in gm.graph.nodes if n not in needed and n.op != "output"]
    segments = []
    for i, level in enumerate(levels):
        done = levels[i - 1] if i else set()
        own = [n for n in gm.graph.nodes if n in level and n not in done and n is not output]
        own += [
            n for n in extras if _ancestors(n) - {n} <= level and not _ancestors(n) - {n} <= done
        ]
        ends = _Ends(
            start=cut_nodes[i - 1] if i else [],
            end=cut_nodes[i] if i < len(cuts) else output,
            bare=(
                isinstance(cuts[i - 1], str) if i else True,
                i < len(cuts) and isinstance(cuts[i], str),
            ),
        )
        segments.append(_segment(gm, names, own, ends, done, inputs))
    return segments


@dataclass
class _Ends:
    """What a segment takes (``start``: none for the model input) and gives (``end``:
    tensors, or the model's output node); ``bare``: whether each is a lone tensor."""

    start: list[fx.Node]
    end: list[fx.Node] | fx.Node
    bare: tuple[bool, bool]


def _segment(
    gm: fx.GraphModule,
    names: dict[fx.Node, str],
    own: list[fx.Node],
    ends: _Ends,
    done: set[fx.Node],
    inputs: set[fx.Node],
) -> fx.GraphModule:
    """One segment: ``ends.start``'s values (or the model input) in, ``ends.end``'s out."""
    starts = set(ends.start)
    where = ",".join(names[s] for s in ends.start) or "input"
    recompute: set[fx.Node] = set()
    for node in own:
        for source in node.all_input_nodes:
            if source in done and source not in starts:
                upstream = _ancestors(source)
                if upstream & inputs:
                    raise SplitError(
                        f"cutting at {where!r} leaves {names[source]!r} crossing too",
                        "cut at another block boundary, or train without the activation cache",
                    )
                recompute |= upstream
    graph = fx.Graph()
    env: dict[fx.Node, fx.Node] = {}
    for k, start in enumerate(ends.start):
        env[start] = graph.placeholder("activation" if ends.bare[0] else f"activation_{k}")
    members = set(own) | recompute
    for node in gm.graph.nodes:
        if node in members and node not in starts:
            env[node] = graph.node_copy(node, env.__getitem__)
    if isinstance(ends.end, fx.Node):
        graph.node_copy(ends.end, env.__getitem__)
    else:
        missing = [names[n] for n in ends.end if n not in env]
        if missing:
            raise SplitError(
                f"cutting at {where!r} leaves {missing[0]!r} crossing too",
                "cut at another block boundary, or train without the activation cache",
            )
        values = [env[n] for n in ends.end]
        graph.output(values[0] if ends.bare[1] else tuple(values))
    return fx.GraphModule(gm, graph)


class SegmentChain(nn.Module):
    """Segments run one after another: a tuple a segment returns is spread over the
    next one's arguments. Called with one tensor, or the tuple of a cut's tensors."""

    def __init__(self, segments: Sequence[nn.Module]) -> None:
        super().__init__()
        self.segments = nn.ModuleList(segments)

    def forward(self, x: Any) -> Any:
        for segment in self.segments:
            x = segment(*x) if isinstance(x, tuple) else segment(x)
        return x
