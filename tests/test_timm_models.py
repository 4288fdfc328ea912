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
     "regnetx_002", "inception_v3", "mixer_s16_224"],
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
