"""The partition rule on hand-built networks, one structural case each."""

from __future__ import annotations

import pytest
import torch

from tests import toy_models as toys
from tests.conftest import block_of_layer


def groups(result) -> list[list[str]]:
    return [b.layers for b in result.partition.blocks]


def test_plain_stack_cuts_after_each_conv_unit(analyze):
    result = analyze(toys.VGGLike().eval(), input_size=(3, 16, 16))
    assert groups(result) == [
        ["features.0.0", "features.0.1"],
        ["features.1.0", "features.1.1"],
        ["features.3"],
    ]
    assert result.partition.head.layers == ["fc"]
    assert [b.has_residual for b in result.partition.blocks] == [False, False, False]


@pytest.mark.parametrize(
    "factory", [toys.TinyResNet, toys.tiny_resnet_inplace], ids=["plain-ops", "inplace-ops"]
)
def test_residual_units_are_never_split(analyze, factory):
    result = analyze(factory().eval(), input_size=(3, 16, 16))
    blocks = groups(result)
    assert blocks[0] == ["stem.0", "stem.1"]
    assert [sorted({name.split(".")[0] for name in b}) for b in blocks[1:]] == [
        ["unit1"],
        ["unit2"],
        ["unit3"],
    ]
    assert [b.has_residual for b in result.partition.blocks] == [False, True, True, True]
    assert result.partition.head.layers == ["fc"]


def test_inplace_merges_are_recognised(analyze):
    result = analyze(toys.tiny_resnet_inplace().eval(), input_size=(3, 16, 16))
    merges = {n: d["op"] for n, d in result.graph.nodes(data=True) if d["merge"]}
    # torch.fx records `y += skip` as operator.add (a Proxy has no __iadd__)
    assert merges == {"unit1.add": "add", "unit2.add": "add", "unit3.add_": "add_"}


def test_merges_by_mutation_are_followed(analyze):
    """torch.fx keeps reading ``y`` after ``y.add_(x)`` (pytorch#68301); the frontend
    rewires later reads to the mutation so the residual unit is not cut."""
    result = analyze(toys.MutatingNet().eval(), input_size=(3, 8, 8))
    assert [sorted({n.split(".")[0] for n in b}) for b in groups(result)] == [
        ["stem"],
        ["unit1"],
        ["unit2"],
    ]
    assert all(b.has_residual for b in result.partition.blocks[1:])


def test_inverted_residual_with_and_without_skip(analyze):
    result = analyze(toys.TinyMobileNetV2().eval(), input_size=(3, 32, 32))
    blocks = groups(result)
    assert blocks[1:4] == [
        ["ir_noskip.conv_pw.0", "ir_noskip.conv_pw.1"],
        ["ir_noskip.conv_dw.0", "ir_noskip.conv_dw.1"],
        ["ir_noskip.conv_pwl.0", "ir_noskip.conv_pwl.1"],
    ]
    assert all(name.startswith("ir_skip.") for name in blocks[4]) and len(blocks) == 5
    assert result.partition.blocks[4].has_residual


def test_dense_block_is_one_block(analyze):
    result = analyze(toys.TinyDenseNet().eval(), input_size=(3, 16, 16))
    owner = block_of_layer(result)
    assert len({owner[n] for n in owner if n.startswith("dense.")}) == 1
    assert result.partition.num_blocks == 3


def test_inception_branches_stay_together(analyze):
    result = analyze(toys.TinyInception().eval(), input_size=(3, 16, 16))
    owner = block_of_layer(result)
    for unit in ("mixed1", "mixed2"):
        assert len({owner[n] for n in owner if n.startswith(unit)}) == 1
    assert result.partition.num_blocks == 3


def test_single_tensor_cuts_never_fall_under_a_unet_skip(analyze):
    result = analyze(toys.TinyUNet().eval(), input_size=(3, 16, 16), max_crossing=1)
    owner = block_of_layer(result)
    inner = {owner[n] for n in owner if n.split(".")[0] in ("enc2", "bottom", "up2", "dec2")}
    assert len(inner) == 1
    assert owner["enc1.0"] != owner["enc2.0"] and owner["dec1.0"] != owner["dec2.0"]
    assert result.partition.head.layers == ["out"]


def test_prenorm_transformer_with_cls_token(analyze):
    result = analyze(toys.TinyViT().eval(), input_size=(3, 16, 16))
    p = result.partition
    assert {"cls_token", "pos_embed"} <= set(p.blocks[0].params)
    # stem, then attention and MLP halves of two blocks; the final norm closes the last block
    assert p.num_blocks == 5
    assert "norm" in p.blocks[-1].layers
    assert p.head.layers == ["head"] and p.head.entry is not None
    roles = {layer.name: layer.role for layer in p.layers}
    assert roles["cls_token"] == "other" and roles["pos_embed"] == "other"
    assert [b.quartile for b in p.blocks] == [1, 1, 2, 3, 4]


def test_tied_weight_belongs_to_its_first_user(analyze):
    result = analyze(toys.TiedConvs().eval(), input_size=(3, 8, 8))
    p = result.partition
    assert p.tied == {"conv_a.weight": ["conv_b.weight"]}
    owner = {param: b.index for b in p.blocks for param in b.params}
    assert "conv_b.weight" not in owner and owner["conv_a.weight"] is not None
    layer = {x.name: x for x in p.layers}
    assert layer["conv_a"].params == ["conv_a.weight", "conv_a.bias"] and layer[
        "conv_b"
    ].params == ["conv_b.bias"]
    assert p.model.num_params == sum(t.numel() for t in result.model.parameters())


def test_functional_parameters_are_found(analyze):
    result = analyze(toys.FunctionalParams().eval(), input_size=(3, 8, 8))
    layers = {x.name: x for x in result.partition.layers}
    assert layers["kernel"].role == "weighted" and layers["kernel"].op == "conv2d"
    assert layers["scale"].role == "other"
    by_param = {p: x for x in layers.values() for p in x.params}
    assert by_param["w1"].op == "linear" and by_param["w1"].params == ["w1", "b1"]
    assert by_param["w2"].op == "matmul" and by_param["w2"].role == "weighted"
    assert set(result.partition.head.params) == {"w1", "b1", "w2"}
    uses = {
        d["op"]: d["params"]
        for _, d in result.graph.nodes(data=True)
        if d["activation"] and d["params"]
    }
    assert (
        uses["matmul"] == ["w2"] and uses["linear"] == ["w1", "b1"] and uses["conv2d"] == ["kernel"]
    )


def test_shape_control_flow_falls_back_to_export(analyze):
    result = analyze(toys.ShapeBranching().eval(), input_size=(3, 32, 32))
    assert result.partition.model.frontend == "export"
    assert "fx" in result.partition.model.frontend_failures
    assert [sorted({n.split(".")[0] for n in b}) for b in groups(result)] == [["stem"], ["large"]]
    assert set(result.partition.unused) == {
        p for p, _ in result.model.named_parameters() if p.startswith("small.")
    }


def test_fx_and_export_agree(analyze):
    fx = analyze(toys.TinyResNet().eval(), input_size=(3, 16, 16), frontends=("fx",))
    ex = analyze(toys.TinyResNet().eval(), input_size=(3, 16, 16), frontends=("export",))
    assert ex.partition.model.frontend == "export"
    assert groups(fx) == groups(ex)
    assert fx.partition.head == ex.partition.head


def test_untraceable_model_names_every_frontend():
    from graphblocks.errors import CaptureError
    from graphblocks.pipeline import analyze_model

    with pytest.raises(CaptureError) as err:
        analyze_model(toys.DataDependent().eval())
    message = str(err.value)
    assert "\n" not in message and "fx:" in message and "export:" in message


def test_delimiter_classes_and_max_blocks(analyze):
    model = toys.VGGLike().eval()
    only_pool = analyze(model, input_size=(3, 16, 16), delimiters=("pool",))
    assert groups(only_pool) == [
        ["features.0.0", "features.0.1", "features.1.0", "features.1.1"],
        ["features.3"],
    ]
    coarse = analyze(toys.TinyResNet().eval(), input_size=(3, 16, 16), max_blocks=2)
    assert coarse.partition.num_blocks == 2
    assert coarse.partition.settings["max_blocks"] == 2


def test_smallest_adjacent_pair_merges_first():
    from graphblocks.analysis.blocks import Block, coarsen

    blocks = [Block([f"n{i}"], [f"l{i}"], True) for i in range(4)]
    merged, sizes = coarsen(blocks, [5, 1, 1, 9], 3)
    assert [b.layers for b in merged] == [["l0"], ["l1", "l2"], ["l3"]] and sizes == [5, 2, 9]


def test_macs_for_convolutions(analyze):
    result = analyze(toys.VGGLike().eval(), input_size=(3, 16, 16))
    first = next(x for x in result.partition.layers if x.name == "features.0.0")
    assert first.macs == 8 * 16 * 16 * 3 * 3 * 3


def test_meta_model_matches_real_model(analyze):
    meta = analyze("tests/toy_models.py:vgg_like", input_size=(3, 16, 16))
    with torch.device("cpu"):
        real = analyze(toys.VGGLike().eval(), input_size=(3, 16, 16))
    assert groups(meta) == groups(real)
