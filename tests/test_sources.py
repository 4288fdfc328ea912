"""The model resolver: every spec form, and one clear line for each mistake."""

from __future__ import annotations

import re

import pytest

from graphblocks.errors import ModelBuildError, UnknownModelError
from graphblocks.sources import parse_input_size, parse_model_args, resolve_model


def test_timm_name_builds_on_meta_with_its_input_size():
    source = resolve_model("resnet18")
    model = source.build("meta")
    assert source.source == "timm" and next(model.parameters()).is_meta
    assert source.default_input_size(model) == (3, 224, 224)
    assert resolve_model("timm:resnet18.a1_in1k").source == "timm"


def test_timm_pretrained_cfg_sets_the_input_size():
    source = resolve_model("inception_v3")
    assert source.default_input_size(source.build("meta")) == (3, 299, 299)


def test_torchvision_name():
    source = resolve_model("torchvision:resnet18")
    assert source.source == "torchvision" and source.name == "torchvision:resnet18"
    assert type(source.build("meta")).__name__ == "ResNet"


def test_module_and_file_factories_with_kwargs():
    by_module = resolve_model("tests.toy_models:widened", {"width": 16})
    by_file = resolve_model("tests/toy_models.py:widened", {"width": 16})
    for source in (by_module, by_file):
        assert source.source == "python"
        assert source.build("cpu")[0][0].out_channels == 16


def test_unknown_name_suggests_three_close_names():
    with pytest.raises(UnknownModelError) as err:
        resolve_model("resnet5O")
    message = str(err.value)
    assert (
        "unknown model 'resnet5O'" in message and message.count(",") >= 2 and "resnet50" in message
    )
    assert "\n" not in message


def test_unknown_torchvision_name():
    with pytest.raises(UnknownModelError, match=r"did you mean: torchvision:resnet18"):
        resolve_model("torchvision:resnet1")


@pytest.mark.parametrize(
    ("spec", "error", "text"),
    [
        ("tests/toy_models.py:vgg_lik", UnknownModelError, "closest: vgg_like"),
        ("tests/nope.py:f", UnknownModelError, "no such Python file"),
        ("no_such_pkg.models:f", UnknownModelError, "cannot import module"),
        ("model.onnx", UnknownModelError, "ONNX"),
    ],
)
def test_bad_specs(spec, error, text):
    with pytest.raises(error, match=re.escape(text)):
        resolve_model(spec)


def test_factory_failures_are_one_line():
    with pytest.raises(ModelBuildError, match="width 3 is not supported"):
        resolve_model("tests/toy_models.py:failing_factory", {"width": 3}).build("cpu")
    with pytest.raises(ModelBuildError, match=r"not a torch\.nn\.Module"):
        resolve_model("tests/toy_models.py:not_a_module").build("cpu")


def test_argument_parsing():
    assert parse_model_args(["num_classes=10", "drop_rate=0.1", "act=relu", "flag=True"]) == {
        "num_classes": 10, "drop_rate": 0.1, "act": "relu", "flag": True,
    }  # fmt: skip
    with pytest.raises(ModelBuildError, match="key=value"):
        parse_model_args(["oops"])
    assert parse_input_size("3,64,64") == (3, 64, 64)
    for bad in ("3,64", "a,b,c", "3,0,4"):
        with pytest.raises(ModelBuildError, match="C,H,W"):
            parse_input_size(bad)
