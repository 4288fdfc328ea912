"""Blocks in the user's own loop (graphblocks.optim, graphblocks.timm): optimizer groups
with layer decay and timm's weight-decay exemption, freezing, and timm's optimizer factory
on models without a group matcher; on real timm and torchvision models."""

from __future__ import annotations

import pytest
import timm
import torch
from timm.models import group_parameters
from timm.optim import param_groups_layer_decay

import graphblocks
from graphblocks import PartitionError
from graphblocks.optim import levels


def _names(model: torch.nn.Module, groups: list[dict]) -> list[list[str]]:
    name_of = {id(p): n for n, p in model.named_parameters()}
    return [[name_of[id(p)] for p in g["params"]] for g in groups]


@pytest.mark.parametrize("name", ["resnet50", "vit_tiny_patch16_224", "convnext_atto"])
def test_groups_decay_by_level_exempt_what_timm_exempts_and_follow_timms_order(name):
    partition, model = graphblocks.analyze(name), timm.create_model(name)
    groups = graphblocks.param_groups(model, partition, lr=1.0, layer_decay=0.5, weight_decay=0.05)
    names = _names(model, groups)
    assert sorted(n for g in names for n in g) == sorted(n for n, _ in model.named_parameters())
    level_of, top = levels(partition), partition.num_blocks
    for group, members in zip(groups, names, strict=True):
        assert {group["lr"]} == {0.5 ** (top - level_of[n]) for n in members}
    exempt = {n for g, ns in zip(groups, names, strict=True) if g["weight_decay"] == 0 for n in ns}
    nwd = getattr(model, "no_weight_decay", set)()
    theirs = param_groups_layer_decay(model, 0.05, no_weight_decay_list=nwd, layer_decay=0.5)
    pairs = zip(theirs, _names(model, theirs), strict=True)
    assert exempt == {n for g, ns in pairs if g["weight_decay"] == 0 for n in ns}
    timm_layer = group_parameters(model, model.group_matcher(coarse=False), reverse=True)
    ordered = sorted(level_of, key=lambda n: (level_of[n], timm_layer[n]))
    assert [timm_layer[n] for n in ordered] == sorted(timm_layer[n] for n in ordered), (
        "an earlier block never holds a later timm group"
    )


def test_decay_counts_only_the_levels_that_train_and_frozen_batchnorms_keep_their_statistics():
    partition, model = graphblocks.analyze("resnet18"), timm.create_model("resnet18")
    top = partition.num_blocks
    trained = graphblocks.freeze(model, partition, train=["Q4", "head"])
    assert trained == sum(p.numel() for p in model.parameters() if p.requires_grad) > 0
    groups = graphblocks.param_groups(model, partition, lr=1.0, layer_decay=0.5)
    pairs = zip(groups, _names(model, groups), strict=True)
    by_level = {levels(partition)[n]: g["lr"] for g, ns in pairs for n in ns}
    q4 = partition.quartiles["4"]
    assert sorted(by_level) == [*q4, top], "frozen parameters are left out"
    told = graphblocks.param_groups(model, partition, lr=1.0, layer_decay=0.5, frozen=[q4[0]])
    assert {levels(partition)[n] for ns in _names(model, told) for n in ns} == {*q4[1:], top}
    assert [by_level[level] for level in [top, *reversed(q4)]] == [
        0.5**k for k in range(len(q4) + 1)
    ]
    model.train()
    stem_bn = model.bn1
    before = stem_bn.running_mean.clone()
    model(torch.randn(2, 3, 64, 64))
    assert not stem_bn.training and torch.equal(stem_bn.running_mean, before), "block 0 is frozen"
    graphblocks.unfreeze(model, partition, train=[0])
    model.train()
    model(torch.randn(2, 3, 64, 64))
    assert stem_bn.training and not torch.equal(stem_bn.running_mean, before)
    assert all(p.requires_grad for n, p in model.named_parameters() if levels(partition)[n] == 0)
    with pytest.raises(PartitionError, match="cannot train 'Q5'"):
        graphblocks.freeze(model, partition, train=["Q5"])


def test_timms_optimizer_factory_decays_by_block_on_a_model_without_a_matcher():
    import torchvision

    from graphblocks.timm import set_group_matcher

    model = torchvision.models.resnet18()
    assert not hasattr(model, "group_matcher")
    partition = set_group_matcher(model, graphblocks.analyze("torchvision:resnet18"))
    optimizer = timm.optim.create_optimizer_v2(model, "adamw", lr=1e-3, layer_decay=0.5)
    level_of, top = levels(partition), partition.num_blocks
    groups = optimizer.param_groups
    for group, members in zip(groups, _names(model, groups), strict=True):
        assert {group["lr_scale"]} == {0.5 ** (top - level_of[n]) for n in members}


def test_the_integration_examples_run():
    """Every Python block of docs/integrations.md runs as written."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "integrations.md").read_text()
    examples = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(examples) >= 3
    for example in examples:
        exec(compile(example, "docs/integrations.md", "exec"), {})


def test_without_a_partition_the_model_is_analyzed_in_place():
    model = timm.create_model("resnet18", num_classes=5)
    groups = graphblocks.param_groups(model, lr=1e-3, layer_decay=0.5)
    names = [n for ns in _names(model, groups) for n in ns]
    assert sorted(names) == sorted(n for n, _ in model.named_parameters())
    assert groups[-1]["name"].startswith("head") and groups[0]["lr"] < groups[-1]["lr"]
