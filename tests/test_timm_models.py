"""Real timm and torchvision models: golden partitions and agreement with timm's groups."""

from __future__ import annotations

from pathlib import Path

import pytest

from fixtures.make_golden import GOLDEN_DIR, GOLDEN_MODELS
from graphblocks.compare import agreement, timm_groups


@pytest.mark.parametrize("name", GOLDEN_MODELS)
def test_golden_partition(analyze, name):
    result = analyze(name)
    expected = Path(GOLDEN_DIR / f"{name}.json").read_text()
    assert result.partition.to_json() == expected, (
        f"partition of {name} changed; run `make golden` if intended"
    )


def test_resnet50_is_a_stem_and_sixteen_bottlenecks(analyze):
    p = analyze("resnet50").partition
    assert p.num_blocks == 17 and p.blocks[0].layers == ["conv1", "bn1"]
    assert all(b.has_residual for b in p.blocks[1:]) and p.head.layers == ["fc"]
    assert [len(v) for v in p.quartiles.values()] == [5, 4, 4, 4]


@pytest.mark.parametrize(
    "name",
    ["resnet50", "mobilenetv2_100", "efficientnet_b0", "vit_tiny_patch16_224", "swin_tiny_patch4_window7_224",
     "regnetx_002", "inception_v3", "mixer_s16_224", "convnext_atto", "pvt_v2_b0", "nf_resnet26", "hiera_tiny_224",
     # Conv2dSame stem, `+ pos_embed` after a normed patch embedding, timm's pool function
     "tf_mobilenetv3_small_100", "aimv2_large_patch14_224", "naflexvit_base_patch16_gap"],
)  # fmt: skip
def test_blocks_refine_timm_groups(analyze, name):
    result = analyze(name)
    groups = timm_groups(result.model)
    assert groups is not None
    agree = agreement(result.partition, groups)
    assert agree.refines, f"blocks {agree.straddling} straddle timm groups"
    assert agree.recall == 1.0


def test_torchvision_models(analyze):
    resnet = analyze("torchvision:resnet18").partition
    assert resnet.num_blocks == 9 and resnet.head.layers == ["fc"]
    vgg = analyze("torchvision:vgg11").partition
    assert vgg.head.layers == ["classifier.6"]


def test_post_pool_norm_belongs_to_the_head(analyze):
    """timm's get_classifier() is head.fc; the LayerNorm applied after pooling joins it."""
    p = analyze("convnext_atto").partition
    assert p.head.layers == ["head.norm", "head.fc"]


def test_opaque_registered_units_are_blocks(analyze):
    """timm registers NFNet's residual block as not traceable: each is one block."""
    p = analyze("nf_resnet26").partition
    assert all(len(b.layers) == 1 and b.layers[0].startswith("stages.") for b in p.blocks[1:])


def test_headless_model_has_no_head(analyze):
    p = analyze("resnet18", model_args={"num_classes": 0}).partition
    assert p.head.layers == [] and p.head.params == [] and p.head.entry is None
    assert p.blocks[-1].layers[-1] == "layer4.1.bn2"


def test_optional_forward_arguments_are_traced_as_constants(analyze):
    """hiera's forward(x, mask=None): tracing mask as a Proxy broke shape propagation."""
    p = analyze("hiera_tiny_224").partition
    assert p.model.frontend == "fx" and p.model.frontend_failures == {}
