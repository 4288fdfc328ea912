"""Shared checks: the invariants every partition must satisfy, whatever the model."""

from __future__ import annotations

import itertools

import networkx as nx
import pytest

from graphblocks.graph import inputs_of, output_of
from graphblocks.pipeline import Analysis, Settings, analyze_model


def cuts_input_from_output(graph: nx.DiGraph, nodes: str | list[str]) -> bool:
    """Brute force: with ``nodes`` removed, no activation path joins input and output."""
    removed = {nodes} if isinstance(nodes, str) else set(nodes)
    active = [n for n, a in graph.nodes(data="activation") if a and n not in removed]
    out = output_of(graph)
    sub = graph.subgraph([*active, out])
    return not any(nx.has_path(sub, i, out) for i in inputs_of(graph) if i in sub)


def check_invariants(result: Analysis, names: list[str] | None = None) -> None:
    """Coverage, contiguity, cuts (each block's outputs separate input from output and
    are the next block's inputs), weighted blocks, quartiles.

    ``names``: every parameter name, read off the module when not given."""
    p, graph = result.partition, result.graph
    if names is None:
        assert result.model is not None
        names = [n for n, _ in result.model.named_parameters()]
    placed = [x for b in p.blocks for x in b.params] + p.head.params
    assert sorted(placed) == sorted(names), "every parameter in exactly one block or the head"
    order = [layer.block for layer in p.layers if layer.block is not None]
    assert order == sorted(order), "blocks are contiguous in topological order"
    layer_role = {layer.name: layer.role for layer in p.layers}
    for block in p.blocks:
        assert any(layer_role[name] == "weighted" for name in block.layers), (
            f"block {block.index} has no weighted layer"
        )
        assert block.quartile == 4 * block.index // p.num_blocks + 1
    for block, following in itertools.pairwise(p.blocks):
        assert block.exit in block.outputs and following.inputs == block.outputs
        assert len(block.outputs) <= p.settings["max_crossing"]
        assert cuts_input_from_output(graph, block.outputs), (
            f"block {block.index}'s outputs {block.outputs} do not separate input from output"
        )
    for q, indices in p.quartiles.items():
        assert all(p.blocks[i].quartile == int(q) for i in indices)
    assert sum(len(v) for v in p.quartiles.values()) == p.num_blocks


def block_of_layer(result: Analysis) -> dict[str, int | None]:
    return {layer.name: layer.block for layer in result.partition.layers}


@pytest.fixture
def analyze():
    """Analyze a model with the default settings and check the invariants."""

    def run(model, **settings):
        result = analyze_model(model, Settings(**settings))
        check_invariants(result)
        return result

    return run
