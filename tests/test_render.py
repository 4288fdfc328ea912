"""Pictures: the drawn DAG, its layout, both engines, the CLI."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from graphblocks.cli import cli
from graphblocks.pipeline import Settings, analyze_model
from graphblocks.render import render
from graphblocks.render.dot import dot_available
from graphblocks.render.mpl import layered_layout
from graphblocks.render.view import QUARTILE_COLORS, block_view, layer_view
from tests.toy_models import TinyResNet

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def tiny():
    return analyze_model(TinyResNet(), Settings(input_size=(3, 32, 32)))


def test_layer_view_shows_layers_merges_and_skips(tiny):
    view = layer_view(tiny.graph, tiny.partition, tiny.node_blocks)
    kinds = {data["kind"] for _, data in view.nodes(data=True)}
    assert kinds == {"io", "layer", "delimiter", "merge"}
    layers = {layer.node for layer in tiny.partition.layers}
    assert layers <= set(view), "every layer is drawn"
    merges = [n for n, k in view.nodes(data="kind") if k == "merge"]
    skips = [(u, v) for u, v, skip in view.edges(data="skip") if skip]
    assert len(merges) == 3 and len(skips) == 3, "one shortcut per residual unit"
    assert all(view.out_degree(u) >= 2 for u, _ in skips), "a skip edge leaves a fork"
    quartile = {b.index: b.quartile for b in tiny.partition.blocks}
    for _node, data in view.nodes(data=True):
        if data["block"] >= 0:
            assert data["color"] in QUARTILE_COLORS[quartile[data["block"]]]
    assert all(view.degree(n) for n in view), "nothing floats"


def test_layout_points_every_edge_down(tiny):
    view = layer_view(tiny.graph, tiny.partition, tiny.node_blocks)
    pos = layered_layout(view)
    assert all(pos[u][1] < pos[v][1] for u, v in view.edges)


def test_block_view_is_one_box_per_block(tiny):
    view = block_view(tiny.partition)
    assert len(view) == tiny.partition.num_blocks + 3  # input, head, output
    assert "params" in view.nodes["block0"]["label"]


@pytest.mark.parametrize("suffix", [".png", ".svg", ".html"])
@pytest.mark.parametrize("collapse", [False, True])
def test_python_engine_writes_each_format(tmp_path, tiny, suffix, collapse):
    out = render(tiny, tmp_path / f"tiny{suffix}", collapse=collapse, engine="python")
    data = out.read_bytes()
    if suffix == ".png":
        assert data.startswith(PNG_MAGIC)
    else:
        assert b"<svg" in data
    if suffix == ".html":
        assert b"<table>" in data and b"block" in data


@pytest.mark.skipif(not dot_available(), reason="Graphviz dot is not installed")
def test_dot_engine_clusters_blocks(tmp_path, tiny):
    svg = render(tiny, tmp_path / "tiny.svg", engine="dot").read_text()
    assert "block 0 · Q1" in svg and "cluster_" in svg
    assert render(tiny, tmp_path / "tiny.png", engine="dot").read_bytes().startswith(PNG_MAGIC)


def test_render_cli_from_a_partition_file(tmp_path):
    runner = CliRunner()
    partition = tmp_path / "p.json"
    model = "tests/toy_models.py:vgg_like"
    assert (
        runner.invoke(
            cli, ["partition", model, "--input-size", "3,16,16", "-o", str(partition)]
        ).exit_code
        == 0
    )
    result = runner.invoke(
        cli,
        [
            "render",
            str(partition),
            "--collapse",
            "--engine",
            "python",
            "-o",
            str(tmp_path / "p.png"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "p.png").read_bytes().startswith(PNG_MAGIC)
    bad = runner.invoke(
        cli, ["render", model, "--input-size", "3,16,16", "-o", str(tmp_path / "p.pdf")]
    )
    assert bad.exit_code == 2 and "cannot render to '.pdf'" in bad.stderr


def test_python_api_draws_and_exports(tmp_path):
    import graphblocks

    partition = graphblocks.analyze(TinyResNet(), input_size=(3, 32, 32))
    out = graphblocks.draw(
        TinyResNet(), tmp_path / "t.svg", engine="python", input_size=(3, 32, 32)
    )
    assert b"<svg" in out.read_bytes()
    rows = graphblocks.export(partition, "csv", tmp_path / "t.csv").read_text().splitlines()
    assert len(rows) == len(partition.layers) + 1
