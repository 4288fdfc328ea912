"""ONNX in: the same partition rule on ONNX files from PyTorch and from Keras (tf2onnx)."""

from __future__ import annotations

import json
import shutil

import onnx
import pytest
import timm
from click.testing import CliRunner

from graphblocks.cli import cli
from graphblocks.errors import GraphblocksError
from graphblocks.frontends.onnx_graph import keras_layer, onnx_parameters, torchscript_scope
from graphblocks.pipeline import Analysis, analyze_model
from tests.conftest import check_invariants
from tests.onnx_models import (
    KERAS_FIXTURE,
    export_torch,
    export_torchscript,
    reduce_mean_model,
    weightless_model,
)
from tests.toy_models import TinyResNet

CROSS_CHECK = {
    "resnet18": (3, 64, 64),
    "mobilenetv2_100": (3, 64, 64),
    "vit_tiny_patch16_224": (3, 224, 224),
}


def analyze_onnx_file(path) -> Analysis:
    result = analyze_model(str(path))
    check_invariants(result, list(onnx_parameters(onnx.load(str(path), load_external_data=False))))
    return result


def blocks_by_module(result: Analysis, roles=("weighted", "norm", "other")) -> list[list[str]]:
    """Each block's layer names (module paths), head last, restricted to ``roles``."""
    role = {layer.name: layer.role for layer in result.partition.layers}
    groups = [b.layers for b in result.partition.blocks] + [result.partition.head.layers]
    return [sorted(n for n in g if role[n] in roles) for g in groups]


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    folder = tmp_path_factory.mktemp("onnx")
    return {
        name: export_torch(timm.create_model(name), folder / f"{name}.onnx", size, fuse_bn=False)
        for name, size in CROSS_CHECK.items()
    }


@pytest.mark.parametrize("name", list(CROSS_CHECK))
def test_onnx_partition_matches_fx_by_module_path(exports, name):
    from graphblocks.pipeline import Settings

    onnx_result = analyze_onnx_file(exports[name])
    fx_result = analyze_model(name, Settings(input_size=CROSS_CHECK[name]))
    assert onnx_result.partition.model.frontend == "onnx"
    assert onnx_result.partition.model.num_params == fx_result.partition.model.num_params
    assert blocks_by_module(onnx_result) == blocks_by_module(fx_result)


def test_bn_folded_export_keeps_the_weighted_layers_of_each_block(tmp_path):
    model = timm.create_model("resnet18", zero_init_last=False)
    fused = analyze_onnx_file(
        export_torch(model, tmp_path / "fused.onnx", (3, 64, 64), fuse_bn=True)
    )
    kept = analyze_onnx_file(
        export_torch(model, tmp_path / "kept.onnx", (3, 64, 64), fuse_bn=False)
    )
    assert {layer.role for layer in fused.partition.layers} == {"weighted"}, "BN folded away"
    assert "norm" in {layer.role for layer in kept.partition.layers}
    assert blocks_by_module(fused, ("weighted",)) == blocks_by_module(kept, ("weighted",))


def test_torchscript_export_names_layers_by_module_path(tmp_path):
    result = analyze_onnx_file(export_torchscript(TinyResNet(), tmp_path / "ts.onnx", (3, 32, 32)))
    fx = analyze_model(TinyResNet())
    weighted = {layer.name for layer in fx.partition.layers if layer.role == "weighted"}
    assert weighted <= {layer.name for layer in result.partition.layers}
    assert result.partition.num_blocks == fx.partition.num_blocks


@pytest.mark.parametrize(
    ("name", "path"),
    [
        ("/layer1/layer1.0/conv1/Conv", "layer1.0.conv1"),
        ("/layer2/layer2.0/downsample/downsample.0/Conv", "layer2.0.downsample.0"),
        ("/blocks/blocks.2/attn/qkv/MatMul", "blocks.2.attn.qkv"),
        ("/fc/Gemm", "fc"),
        ("Conv_12", ""),
    ],
)
def test_torchscript_scope(name, path):
    assert torchscript_scope(name) == path


def test_keras_layer_names():
    assert keras_layer("small_cnn/stem_conv/Conv2D") == "stem_conv"
    assert keras_layer("small_cnn/stem_bn/FusedBatchNormV3:0") == "stem_bn"
    assert keras_layer("const_axes__64") is None


def test_keras_model_from_tf2onnx():
    result = analyze_onnx_file(KERAS_FIXTURE)
    p = result.partition
    assert p.model.producer.startswith("tf2onnx")
    keras = json.loads(KERAS_FIXTURE.with_suffix(".layers.json").read_text())
    with_weights = {x["name"] for x in keras["layers"] if x["num_weights"]}
    assert {layer.name for layer in p.layers} <= with_weights, "layers are Keras layer names"
    assert [b.layers for b in p.blocks] == [
        ["stem_conv"],
        ["res1a_conv", "res1b_conv"],
        ["dw_conv"],
        ["pw_conv"],
    ]
    assert p.blocks[1].has_residual and p.head.layers == ["classifier"]
    swish = [n for n in result.graph if n.startswith("pw_swish.Mul")]
    assert result.graph.nodes[swish[0]]["delimiter"] == "act", "x * sigmoid(x) is an activation"


@pytest.mark.parametrize(("axes", "is_pool"), [([2, 3], True), ([1], False)])
def test_reduce_mean_is_a_pool_only_over_spatial_axes(tmp_path, axes, is_pool):
    result = analyze_onnx_file(reduce_mean_model(axes, tmp_path / "m.onnx"))
    node = next(n for n in result.graph if result.graph.nodes[n]["op"] == "ReduceMean")
    assert (result.graph.nodes[node]["delimiter"] == "pool") is is_pool


def test_input_size_overrides_dynamic_dimensions(tmp_path):
    from graphblocks.pipeline import Settings

    path = reduce_mean_model([2, 3], tmp_path / "m.onnx")
    result = analyze_model(str(path), Settings(input_size=(3, 16, 16)))
    assert result.partition.model.input_size == [3, 16, 16]
    with pytest.raises(GraphblocksError, match="dimensions"):
        analyze_model(str(path), Settings(input_size=(16, 16)))


def _truncate(path, out):
    out.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return out


def _with_opset(path, out, version):
    model = onnx.load(str(path))
    model.opset_import[0].version = version
    onnx.save(model, str(out))
    return out


def _without_external_data(path, out_dir):
    model = onnx.load(str(path))
    target = out_dir / "external.onnx"
    onnx.save(
        model, str(target), save_as_external_data=True, location="weights.bin", size_threshold=0
    )
    (out_dir / "weights.bin").unlink()
    return target


def _invalid(path, out):
    model = onnx.load(str(path))
    model.graph.node[0].input[0] = "no_such_value"
    onnx.save(model, str(out))
    return out


BAD_FILES = {
    "not-onnx": (
        lambda p, d: (d / "x.onnx").write_text("hello") and d / "x.onnx",
        "is not an ONNX model",
    ),
    "truncated": (lambda p, d: _truncate(p, d / "t.onnx"), "truncated or corrupt"),
    "missing-external-data": (lambda p, d: _without_external_data(p, d), "missing external data"),
    "old-opset": (lambda p, d: _with_opset(p, d / "o.onnx", 3), "unsupported opset 3"),
    "future-opset": (lambda p, d: _with_opset(p, d / "o.onnx", 99), "unsupported opset 99"),
    "invalid-graph": (lambda p, d: _invalid(p, d / "i.onnx"), "not a valid ONNX model"),
    "no-weights": (lambda p, d: weightless_model(d / "w.onnx"), "has no weights"),
    "missing-file": (lambda p, d: d / "nothing.onnx", "no such ONNX file"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_onnx_files_fail_in_one_line(tmp_path, case):
    good = reduce_mean_model([2, 3], tmp_path / "good.onnx")
    make, text = BAD_FILES[case]
    bad = make(good, tmp_path)
    result = CliRunner().invoke(cli, ["inspect", str(bad)])
    assert result.exit_code == 2, result.output
    assert text in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output


def test_inspect_onnx_json(tmp_path):
    copy = shutil.copy(KERAS_FIXTURE, tmp_path / "k.onnx")
    result = CliRunner().invoke(cli, ["inspect", str(copy), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["model"]["source"] == "onnx" and len(data["blocks"]) == 4


def test_gather_on_an_initializer_is_an_embedding_layer(tmp_path):
    from tests.onnx_models import embedding_model

    result = analyze_onnx_file(embedding_model(tmp_path / "tokens.onnx"))
    roles = {layer.name: layer.role for layer in result.partition.layers}
    assert roles == {"embed": "weighted", "fc": "weighted"}, "named by the module of embed.weight"
    pool = next(n for n in result.graph if result.graph.nodes[n]["op"] == "ReduceMean")
    assert result.graph.nodes[pool]["delimiter"] == "pool", "a mean over the token axis pools"
    assert result.partition.head.layers == ["fc"] and result.partition.num_blocks == 1


def test_decomposed_gelu_is_an_activation(tmp_path):
    from tests.onnx_models import decomposed_gelu_model

    result = analyze_onnx_file(decomposed_gelu_model(tmp_path / "gelu.onnx"))
    delimiters = {n: d["delimiter"] for n, d in result.graph.nodes(data=True) if d["op"] == "Mul"}
    assert set(delimiters.values()) == {"act"}, delimiters
    assert [b.layers for b in result.partition.blocks] == [["conv1"], ["conv2"]]
