"""Blocks where several tensors cross: NASNet-style cells, U-Nets, FPNs, two-branch ViTs."""

from __future__ import annotations

import json

import pytest
import torch

from graphblocks.analysis import output_dominators, scan_cuts
from graphblocks.exports import export_partition
from graphblocks.partition import Partition
from graphblocks.pipeline import Settings, analyze_model
from graphblocks.split import SegmentChain, segment_model
from graphblocks.tables import summary_line
from tests import toy_models as toys
from tests.conftest import block_of_layer, check_invariants

SIZE = (3, 32, 32)


def analyzed(model: torch.nn.Module, **settings):
    result = analyze_model(model.eval(), Settings(input_size=SIZE, **settings))
    check_invariants(result)
    return result


def composes_exactly(model: torch.nn.Module, partition: Partition, size=SIZE) -> bool:
    segments = segment_model(model, [b.inputs for b in partition.blocks[1:]])
    x = torch.randn(2, *size)
    with torch.no_grad():
        return torch.equal(model(x), SegmentChain(segments)(x))


def units_whole(result, prefixes: list[str]) -> bool:
    """Every residual unit (a module path among ``prefixes``) lies in one block."""
    owner = block_of_layer(result)
    return all(len({b for n, b in owner.items() if n.startswith(f"{p}.")}) == 1 for p in prefixes)


def test_two_input_cells_are_one_block_each_with_two_tensors_crossing():
    model = toys.TwoInputCellNet()
    result = analyzed(model)
    p = result.partition
    assert p.num_blocks == 7 and [len(b.inputs) for b in p.blocks] == [1, 1, 2, 2, 2, 2, 2]
    assert [sorted({n.split(".")[1] for n in b.layers}) for b in p.blocks[1:]] == [
        [str(i)] for i in range(6)
    ]
    # a cell's earlier input and its output cross into the next cell
    assert p.blocks[3].inputs == p.blocks[2].outputs and "cells.1.cat" in p.blocks[3].inputs
    assert composes_exactly(model, p)


def test_single_tensor_cuts_only_when_asked_and_the_summary_says_why():
    p = analyzed(toys.TwoInputCellNet(), max_crossing=1).partition
    assert p.num_blocks == 2 and p.blocks[1].narrowest_refused_cut == 2
    assert "no cut with ≤ 1 crossing tensors inside block 1" in summary_line(p)
    assert "--max-crossing 2" in summary_line(p)


def test_unet_residual_encoder_and_concatenating_decoder():
    model = toys.ResUNet()
    result = analyzed(model)
    p = result.partition
    units = [f"enc{s}.{u}" for s in (1, 2, 3) for u in (0, 1)] + ["enc3.2"]
    assert units_whole(result, units), "a cut never falls inside a residual unit"
    assert p.num_blocks == 16 and max(len(b.inputs) for b in p.blocks) == 3
    assert max(b.share for b in p.blocks) <= 0.35
    owner = block_of_layer(result)
    assert len({owner["dec2.0.0"], owner["dec2.1.0"], owner["dec1.0.0"], owner["up3"]}) == 4
    # the strided convolutions open their stages: the skips are carried across them
    assert [b.layers for b in p.blocks if "down2.0" in b.layers] == [["down2.0", "down2.1"]]
    assert p.head.layers == ["head"]
    assert composes_exactly(model, p)
    assert analyzed(toys.ResUNet(), max_crossing=1).partition.num_blocks == 6


def test_fpn_backbone_units_stay_whole_and_laterals_are_carried():
    model = toys.FPNClassifier()
    result = analyzed(model)
    p = result.partition
    units = ["stage1.0", "stage1.1"] + [f"stage{s}.{u}" for s in (2, 3) for u in (1, 2)]
    assert units_whole(result, units)
    assert [len(b.inputs) for b in p.blocks] == [1, 1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3, 3]
    # the backbone's outputs are carried across its later stages, so the strided
    # convolutions open their stages; the smoothing branches of the two coarser levels,
    # parallel branches into the classifier's concatenation, stay together
    owner = block_of_layer(result)
    assert owner["stage3.0.0"] != owner["stage3.1.body.0.0"]
    assert owner["smooth.1.0"] == owner["smooth.2.0"] != owner["smooth.0.0"]
    assert composes_exactly(model, p)


def largest_share(partition: Partition) -> float:
    return max(b.share for b in partition.blocks)


def test_plain_stage_unet_is_cut_between_its_convolutions():
    """Ronneberger's U-Net has no residual unit: its skips are carried across the deeper
    levels (a stage on another grid), so the encoder, the bottleneck and the decoder are
    cut conv by conv; at the bottleneck four skips and the stream cross."""
    model = toys.PlainUNet()
    result = analyzed(model)
    p = result.partition
    owner = block_of_layer(result)
    convs = [f"{part}.{k}.{i}.0" for part in ("down", "dec") for k in range(4) for i in (0, 1)]
    assert len({owner[c] for c in convs}) == len(convs), "one block per convolution"
    assert p.num_blocks == 22 and largest_share(p) <= 0.35
    assert max(len(b.inputs) for b in p.blocks) == 5
    assert analyzed(toys.PlainUNet(), max_crossing=4).partition.blocks[8].narrowest_refused_cut == 5
    assert composes_exactly(model, p)


def test_plain_multi_scale_classifier_is_cut_between_its_convolutions():
    """Every stage's output is pooled by the head: it is carried across the later stages."""
    model = toys.PlainMultiScale()
    p = analyzed(model).partition
    assert p.num_blocks == 8 and largest_share(p) <= 0.35
    assert [len(b.inputs) for b in p.blocks] == [1, 1, 2, 2, 3, 3, 4, 4]
    assert p.head.layers == ["fc"]
    assert composes_exactly(model, p)


def test_cells_that_add_their_branches_are_cut_like_cells_that_concatenate():
    """``(left(x) + p) + (right(p) + x)`` is one merge of four operands, a cell: each cell
    is a block of its own (with its earlier input's adjustment, as for concatenating
    cells), and two tensors cross between cells."""
    model = toys.SumCellNet()
    result = analyzed(model)
    p = result.partition
    cells = [{n.split(".")[1] for n in b.layers if n.startswith("cells.")} for b in p.blocks]
    assert all(len(c) <= 1 for c in cells), "no block mixes two cells"
    assert p.num_blocks == 1 + 8 and largest_share(p) <= 0.35
    assert units_whole(result, [f"cells.{k}.left" for k in range(8)])
    concatenating = analyzed(toys.TwoInputCellNet()).partition
    shape = [[n.split(".", 2)[-1] for n in b.layers] for b in p.blocks[1:4]]
    assert shape == [[n.split(".", 2)[-1] for n in b.layers] for b in concatenating.blocks[1:4]]
    assert composes_exactly(model, p)


def test_depth_five_unet_with_residual_encoder_at_the_default_bound():
    """segmentation-models-pytorch's default ``Unet`` in small: at the deepest stage four
    skips and the stream cross, so the default bound must reach five tensors; every
    residual unit stays whole."""
    model = toys.DeepUNet()
    size = (3, 64, 64)
    result = analyze_model(model.eval(), Settings(input_size=size))
    check_invariants(result)
    p = result.partition
    units = [f"stages.{s}.{u}" for s in range(4) for u in ((0, 1) if s == 0 else (1, 2))]
    assert units_whole(result, units)
    assert p.num_blocks == 22 and largest_share(p) <= 0.35
    assert max(len(b.inputs) for b in p.blocks) == 5
    assert composes_exactly(model, p, size)


def test_a_stage_is_work_on_another_grid_that_returns_by_resampling():
    """The measure that tells a long skip from a unit (:func:`holds_stage`): no merge of
    Inception branches, of a residual unit with a squeeze-excitation gate (MobileNetV3)
    or around spatial-reduction attention (PVTv2, whose keys and values come from a
    strided convolution and rejoin through a matmul) carries an operand across a stage;
    every level of a U-Net does."""
    import timm

    from graphblocks.analysis import crossing

    models = [
        (toys.TinyInception(), SIZE),
        (timm.create_model("mobilenetv3_small_050"), (3, 96, 96)),
        (timm.create_model("pvt_v2_b0"), (3, 64, 64)),
    ]
    for model, size in models:
        graph = analyze_model(model.eval(), Settings(input_size=size)).graph
        order = scan_cuts(graph, 1).order
        position = {n: i for i, n in enumerate(order)}
        level = crossing.spatial_levels(graph, order)
        merges = [n for n in order if graph.nodes[n]["merge"]]
        assert merges and not any(crossing.long_operands(graph, m, position, level) for m in merges)
    graph = analyzed(toys.PlainUNet()).graph
    order = scan_cuts(graph, 1).order
    position = {n: i for i, n in enumerate(order)}
    level = crossing.spatial_levels(graph, order)
    cats = [n for n in order if graph.nodes[n]["canonical"] == "cat"]
    assert [sorted(crossing.long_operands(graph, c, position, level)) for c in cats] == [
        [f"down.{k}.1.2"] for k in (3, 2, 1, 0)
    ]


@pytest.mark.parametrize(
    "factory", [toys.TinyResNet, toys.TinyDenseNet, toys.TinyInception, toys.TinyMobileNetV2]
)
def test_structures_with_single_tensor_cuts_keep_them(factory):
    """Inception branches, dense blocks and residual units are never cut, however many
    tensors may cross: these partitions are the single-tensor ones."""
    wide = analyzed(factory(), max_crossing=8).partition
    single = analyzed(factory(), max_crossing=1).partition
    assert [b.layers for b in wide.blocks] == [b.layers for b in single.blocks]
    assert all(len(b.inputs) == 1 for b in wide.blocks)


@pytest.mark.parametrize("factory", [toys.TinyResNet, toys.TinyUNet, toys.TwoInputCellNet])
def test_single_tensor_cuts_are_the_output_dominators(factory):
    graph = analyzed(factory()).graph
    scan = scan_cuts(graph, 1)
    assert scan.single() == output_dominators(graph)
    assert set(scan.admissible) == set(scan.single())


def test_crossvit_segments_compose_exactly():
    import timm

    model = timm.create_model("crossvit_tiny_240").eval()
    result = analyze_model(model, Settings(input_size=(3, 240, 240)))
    p = result.partition
    assert p.num_blocks >= 8 and 2 <= max(len(b.inputs) for b in p.blocks) <= 4
    assert composes_exactly(model, p, size=(3, 240, 240))


def test_version_1_files_load_and_export(tmp_path):
    p = analyzed(toys.TinyResNet()).partition
    data = p.to_dict()
    data["schema_version"] = 1
    del data["settings"]["max_crossing"]
    for block in data["blocks"]:
        for key in ("inputs", "outputs", "narrowest_refused_cut"):
            del block[key]
    old = tmp_path / "v1.json"
    old.write_text(json.dumps(data))
    loaded = Partition.load(old)
    assert loaded.schema_version == 2 and loaded.settings["max_crossing"] == 1
    assert [(b.inputs, b.outputs) for b in loaded.blocks] == [
        ([b.entry], [b.exit]) for b in loaded.blocks
    ]
    export_partition(loaded, "timm", tmp_path / "groups.json")
    assert json.loads((tmp_path / "groups.json").read_text())


def test_onnx_of_a_unet_partitions_as_its_module(tmp_path):
    """The ONNX frontend reads the file in its own evaluation order; for a U-Net the
    blocks and their widths are the FX frontend's."""
    from tests.onnx_models import export_torch

    model = toys.ResUNet()
    path = export_torch(model, tmp_path / "m.onnx", SIZE, fuse_bn=False)
    fx = analyzed(model).partition
    onnx = analyze_model(str(path)).partition
    assert [len(b.inputs) for b in onnx.blocks] == [len(b.inputs) for b in fx.blocks]
    assert [len(b.layers) for b in onnx.blocks] == [len(b.layers) for b in fx.blocks]


def test_onnx_of_two_input_cells_keeps_cells_apart_and_annotates(tmp_path):
    """In evaluation order a cell adjusts its current input before its earlier one (the
    program did the reverse), which may end a block after that first convolution; no
    block mixes two cells, two tensors cross."""
    from tests.onnx_models import export_torch

    path = export_torch(toys.TwoInputCellNet(), tmp_path / "m.onnx", SIZE, fuse_bn=False)
    p = analyze_model(str(path)).partition
    cells = [{n.split(".")[1] for n in b.layers if n.startswith("cells.")} for b in p.blocks]
    assert p.num_blocks >= 7 and all(len(c) <= 1 for c in cells)
    assert max(len(b.inputs) for b in p.blocks) == 2
    annotated = export_partition(p, "onnx", tmp_path / "annotated.onnx")
    assert analyze_model(str(annotated)).partition.num_blocks == p.num_blocks


def test_every_export_and_picture_of_a_multi_tensor_partition(tmp_path):
    from graphblocks.pipeline import analyze_model as analyze
    from graphblocks.render import render

    result = analyze("tests/toy_models.py:two_input_cells", Settings(input_size=SIZE))
    for fmt in ("param-groups", "timm", "csv", "graphml", "model-explorer"):
        out = export_partition(result.partition, fmt, tmp_path / fmt)
        assert out.exists(), fmt
    assert render(result, tmp_path / "cells.svg").stat().st_size > 0


def test_inspect_reports_the_bound_and_refuses_a_bad_one():
    from click.testing import CliRunner

    from graphblocks.cli import cli

    runner = CliRunner()
    model = ["inspect", "tests/toy_models.py:two_input_cells", "--input-size", "3,32,32"]
    single = runner.invoke(cli, [*model, "--max-crossing", "1"])
    assert single.exit_code == 0, single.output
    assert "no cut with ≤ 1 crossing tensors inside block 1" in single.stdout
    wide = runner.invoke(cli, model)
    assert wide.exit_code == 0 and "widest cut 2 tensors" in wide.stdout
    bad = runner.invoke(cli, [*model, "--max-crossing", "0"])
    assert bad.exit_code == 2 and "max-crossing" in bad.output
