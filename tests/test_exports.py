"""Exports, each loaded back into the tool that consumes it."""

from __future__ import annotations

import csv
import json
import shutil

import networkx as nx
import numpy as np
import onnx
import pytest
import timm
import torch
from click.testing import CliRunner

import graphblocks
from graphblocks.cli import cli
from graphblocks.errors import PartitionError
from graphblocks.exports import ExportOptions, export_partition
from graphblocks.exports.param_groups import layer_decay_scales, param_groups_from_spec
from graphblocks.partition import Partition
from graphblocks.pipeline import analyze_model
from tests.onnx_models import KERAS_FIXTURE, export_torch
from tests.toy_models import TinyResNet


@pytest.fixture(scope="module")
def keras_partition(tmp_path_factory):
    folder = tmp_path_factory.mktemp("keras")
    model = shutil.copy(KERAS_FIXTURE, folder / "keras_small_cnn.onnx")
    return analyze_model(str(model)).partition, model


def test_param_groups_load_into_torch_optim(tmp_path):
    model = TinyResNet()
    partition = graphblocks.analyze(model, input_size=(3, 32, 32))
    scales = {**layer_decay_scales(partition.num_blocks, 0.5), "head": 2.0}
    out = export_partition(
        partition, "param-groups", tmp_path / "g.json", ExportOptions(lr_scales=scales)
    )
    groups = param_groups_from_spec(out, model, lr=0.1)
    optimizer = torch.optim.SGD(groups, lr=0.1)
    assert [g["name"] for g in optimizer.param_groups] == [
        *(f"block{i}" for i in range(partition.num_blocks)),
        "head",
    ]
    assert optimizer.param_groups[-1]["lr"] == pytest.approx(0.2)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.1 * 0.5**partition.num_blocks)
    named = dict(model.named_parameters())
    for group, block in zip(optimizer.param_groups, partition.blocks, strict=False):
        assert {id(p) for p in group["params"]} == {id(named[n]) for n in block.params}
    model(torch.randn(2, 3, 32, 32)).sum().backward()
    optimizer.step()

    spec = json.loads(out.read_text())  # the README's graphblocks-free one-liner
    plain = [
        {"params": [named[n] for n in g["params"]], "lr": 0.1 * g["lr_scale"]}
        for g in spec["groups"]
    ]
    torch.optim.Adam(plain)


def test_param_groups_name_the_missing_parameters(tmp_path):
    partition = graphblocks.analyze(TinyResNet(), input_size=(3, 32, 32))
    out = export_partition(partition, "param-groups", tmp_path / "g.json")
    with pytest.raises(PartitionError, match="has no parameters"):
        param_groups_from_spec(out, torch.nn.Linear(2, 2))


@pytest.mark.parametrize("name", ["resnet18", "vit_tiny_patch16_224", "mobilenetv2_100"])
def test_timm_group_matcher_reproduces_our_blocks(tmp_path, name):
    partition = graphblocks.analyze(name)
    out = export_partition(partition, "timm", tmp_path / "m.json")
    matcher = json.loads(out.read_text())
    model = timm.create_model(name)
    groups = timm.models.group_parameters(model, matcher)
    expected = [b.params for b in partition.blocks] + [partition.head.params]
    assert [sorted(groups[i]) for i in sorted(groups)] == [sorted(g) for g in expected]


def test_onnx_export_passes_the_checker_and_computes_the_same(tmp_path):
    import onnxruntime as ort

    model = export_torch(TinyResNet(), tmp_path / "tiny.onnx", (3, 32, 32), fuse_bn=False)
    partition = analyze_model(str(model)).partition
    out = export_partition(partition, "onnx", tmp_path / "tiny.blocks.onnx")
    annotated = onnx.load(str(out))
    onnx.checker.check_model(annotated)
    summary = json.loads(
        {p.key: p.value for p in annotated.metadata_props}["graphblocks.partition"]
    )
    assert summary["num_blocks"] == partition.num_blocks
    props = [{p.key: p.value for p in n.metadata_props} for n in annotated.graph.node]
    assert all("graphblocks.block" in p for p in props)
    layers = {
        p["graphblocks.layer"]: p["graphblocks.block"] for p in props if "graphblocks.layer" in p
    }
    assert layers == {x.name: "head" if x.block is None else str(x.block) for x in partition.layers}

    x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype("float32")
    before = ort.InferenceSession(str(model)).run(None, {"x": x})
    after = ort.InferenceSession(str(out)).run(None, {"x": x})
    assert all(np.array_equal(a, b) for a, b in zip(before, after, strict=True))


def test_keras_export_names_every_weighted_keras_layer_once(tmp_path, keras_partition):
    partition, _ = keras_partition
    out = export_partition(partition, "keras", tmp_path / "k.json")
    spec = json.loads(out.read_text())
    named = [n for b in spec["blocks"] for n in b["layers"]] + spec["head"]["layers"]
    keras = json.loads(KERAS_FIXTURE.with_suffix(".layers.json").read_text())
    with_weights = sorted(x["name"] for x in keras["layers"] if x["num_weights"])
    assert sorted(named) == with_weights
    assert [b["quartile"] for b in spec["blocks"]] == [1, 2, 3, 4]


def test_keras_export_round_trips_through_keras(tmp_path, keras_partition):
    tf = pytest.importorskip("tensorflow")
    import importlib.util
    import sys

    out = export_partition(keras_partition[0], "keras", tmp_path / "k.json")
    spec = importlib.util.spec_from_file_location(
        "make_keras_onnx", KERAS_FIXTURE.parents[1] / "make_keras_onnx.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_keras_onnx"] = module
    spec.loader.exec_module(module)
    module.check_export(module.build_model(), out)
    assert tf is not None


def test_keras_export_refuses_a_pytorch_model(tmp_path):
    partition = graphblocks.analyze("resnet18")
    with pytest.raises(PartitionError, match="not an ONNX file converted from Keras"):
        export_partition(partition, "keras", tmp_path / "k.json")


def test_csv_has_one_row_per_layer(tmp_path, keras_partition):
    partition, _ = keras_partition
    out = export_partition(partition, "csv", tmp_path / "layers.csv")
    rows = list(csv.DictReader(out.open()))
    assert [r["name"] for r in rows] == [layer.name for layer in partition.layers]
    assert rows[-1]["block"] == "head" and rows[0]["quartile"] == "1"
    assert sum(int(r["params"]) for r in rows) == partition.model.num_params


def test_graphml_loads_into_networkx_with_blocks(tmp_path, keras_partition):
    partition, _ = keras_partition
    out = export_partition(partition, "graphml", tmp_path / "g.graphml")
    graph = nx.read_graphml(out)
    for layer in partition.layers:
        data = graph.nodes[layer.node]
        assert data["block"] == (-1 if layer.block is None else layer.block)
    assert {d["quartile"] for _, d in graph.nodes(data=True)} >= {1, 2, 3, 4}


def test_export_refuses_a_different_model(tmp_path):
    partition_file = tmp_path / "p.json"
    graphblocks.analyze("resnet18").save(partition_file)
    result = CliRunner().invoke(
        cli,
        [
            "export",
            str(partition_file),
            "--to",
            "graphml",
            "--model",
            "resnet34",
            "-o",
            str(tmp_path / "g"),
        ],
    )
    assert result.exit_code == 2 and "does not match" in result.stderr


def test_export_cli_writes_each_partition_only_format(tmp_path):
    partition_file = tmp_path / "p.json"
    graphblocks.analyze("resnet18").save(partition_file)
    for fmt in ("param-groups", "timm", "csv"):
        result = CliRunner().invoke(
            cli,
            [
                "export",
                str(partition_file),
                "--to",
                fmt,
                "--lr-scale",
                "head=10",
                "-o",
                str(tmp_path / fmt),
            ],
        )
        assert result.exit_code == 0, result.output
    groups = json.loads((tmp_path / "param-groups").read_text())["groups"]
    assert groups[-1]["lr_scale"] == 10.0
    bad = CliRunner().invoke(
        cli,
        [
            "export",
            str(partition_file),
            "--to",
            "param-groups",
            "--lr-scale",
            "x",
            "-o",
            str(tmp_path / "y"),
        ],
    )
    assert bad.exit_code == 2 and "bad --lr-scale" in bad.stderr
    assert Partition.load(partition_file).num_blocks == 9


@pytest.mark.parametrize("name", ["resnet18", "vit_tiny_patch16_224"])
def test_split_at_every_block_entry_computes_the_model(name):
    from graphblocks.split import split_model

    model = timm.create_model(name).eval()
    partition = graphblocks.analyze(name)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        expected = model(x)
        for block in partition.blocks:
            halves = split_model(model, block.entry)
            assert torch.allclose(halves.suffix(halves.prefix(x)), expected, atol=1e-5), block.index


def test_split_refuses_an_unknown_node():
    from graphblocks.errors import GraphblocksError
    from graphblocks.split import split_model

    with pytest.raises(GraphblocksError, match="no node"):
        split_model(TinyResNet(), "nowhere")


def test_segments_compose_to_the_model():
    from graphblocks.split import segment_model

    model = timm.create_model("mobilenetv2_100").eval()
    partition = graphblocks.analyze("mobilenetv2_100")
    segments = segment_model(model, [b.entry for b in partition.blocks[1:]])
    x = torch.randn(2, 3, 224, 224)
    y = x
    with torch.no_grad():
        for segment in segments:
            y = segment(y)
        assert len(segments) == partition.num_blocks
        assert torch.allclose(y, model(x), atol=1e-5)


@pytest.mark.parametrize(("name", "size"), [("vit_tiny_patch16_224", 224), ("resnet18", 64)])
def test_peft_adapts_only_the_chosen_blocks(tmp_path, name, size):
    import peft

    partition = graphblocks.analyze(name)
    out = export_partition(partition, "peft", tmp_path / "lora.json", ExportOptions(quartiles=(4,)))
    arguments = json.loads(out.read_text())
    model = peft.get_peft_model(timm.create_model(name), peft.LoraConfig(r=4, **arguments))
    adapted = {
        n.split(".lora_A")[0].removeprefix("base_model.model.")
        for n, _ in model.named_parameters()
        if ".lora_A" in n
    }
    q4 = set(partition.quartiles["4"])
    in_q4 = {layer.name for layer in partition.layers if layer.block in q4}
    assert adapted and adapted <= in_q4 and adapted == set(arguments["target_modules"])
    model(torch.randn(1, 3, size, size))
    with pytest.raises(PartitionError, match="no block 99"):
        export_partition(partition, "peft", tmp_path / "x.json", ExportOptions(blocks=(99,)))
