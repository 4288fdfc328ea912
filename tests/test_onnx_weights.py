"""Where ONNX files keep their weights: Constant nodes, deduplicated constants, broadcast
biases; and the input sizes a file fixes itself (issue 16)."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest

import graphblocks
from graphblocks.errors import GraphblocksError
from graphblocks.frontends.onnx_graph import onnx_parameters
from graphblocks.pipeline import analyze_model
from tests.onnx_models import (
    KERAS_FIXTURE,
    broadcast_bias_model,
    deduplicated_keras_model,
    export_torchscript,
    symbolic_input_model,
    with_constant_nodes,
)
from tests.toy_models import TinyResNet


def _exports(partition: graphblocks.Partition, folder: Path, formats: list[str]) -> dict[str, str]:
    return {f: graphblocks.export(partition, f, folder / f"{f}.json").read_text() for f in formats}


@pytest.mark.parametrize("source", ["keras", "torchscript"])
def test_constant_node_weights_are_parameters_like_initializers(
    tmp_path: Path, source: str
) -> None:
    if source == "keras":
        original = KERAS_FIXTURE
    else:
        original = export_torchscript(TinyResNet(), tmp_path / "ts.onnx", (3, 32, 32))
    constants = with_constant_nodes(original, tmp_path / "constants.onnx")
    assert not [t for t in onnx.load(str(constants)).graph.initializer if t.data_type == 1]
    assert onnx_parameters(onnx.load(str(constants))) == onnx_parameters(onnx.load(str(original)))
    a, b = graphblocks.analyze(str(original)), graphblocks.analyze(str(constants))
    assert b.model.num_params == a.model.num_params > 0
    assert [blk.params for blk in b.blocks] == [blk.params for blk in a.blocks]
    assert b.head.params == a.head.params
    formats = ["param-groups", "keras"] if source == "keras" else ["param-groups"]
    one, two = _exports(a, tmp_path / "a", formats), _exports(b, tmp_path / "b", formats)
    for fmt in formats:
        left, right = json.loads(one[fmt]), json.loads(two[fmt])
        left.pop("model", None), right.pop("model", None)
        assert left == right, fmt


def test_a_deduplicated_constant_never_merges_or_drops_a_layer(tmp_path: Path) -> None:
    partition = graphblocks.analyze(str(deduplicated_keras_model(tmp_path / "dedup.onnx")))
    # the zero bias is read by three layers: three weights; the gamma by one
    assert partition.model.num_params == 108 + 4 + 144 + 4 + 4 + 4 + 20
    export = json.loads(graphblocks.export(partition, "keras", tmp_path / "k.json").read_text())
    listed = [n for b in export["blocks"] for n in b["layers"]] + export["head"]["layers"]
    assert sorted(listed) == ["a_bn", "a_conv", "b_bn", "b_conv", "c_bn", "dense"]


def test_a_broadcast_bias_folds_into_its_convolution(tmp_path: Path) -> None:
    partition = graphblocks.analyze(str(broadcast_bias_model(tmp_path / "paddle.onnx")))
    conv = next(layer for layer in partition.layers if layer.op == "Conv")
    assert conv.name == "conv2d_0" and conv.num_params == 108 + 4
    assert [layer.name for layer in partition.layers] == ["conv2d_0", "linear_0"]


def test_input_dims_fixed_by_the_file_need_no_input_size(tmp_path: Path) -> None:
    fixed = analyze_model(str(symbolic_input_model(tmp_path / "a.onnx", ["batch", 3, 8, 8])))
    assert fixed.partition.model.input_size == [3, 8, 8]
    with pytest.raises(GraphblocksError, match="--input-size"):
        analyze_model(str(symbolic_input_model(tmp_path / "b.onnx", ["batch", 3, "h", "w"])))
