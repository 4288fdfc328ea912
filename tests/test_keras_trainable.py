"""graphblocks.keras_trainable without TensorFlow: the export's checks and the matching rule.

The real round trip (Keras 3 and tf_keras models) is tests_keras/, in the TensorFlow
environment; here plain objects with Keras's ``name``/``trainable``/``layers`` attributes
stand in for layers, which is all the helper reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from graphblocks.keras_trainable import KerasExportError, chosen_layers, set_trainable

EXPORT = {
    "format": "graphblocks-keras-blocks",
    "version": 1,
    "model": "m",
    "blocks": [
        {"index": 0, "quartile": 1, "layers": ["conv1"]},
        {"index": 1, "quartile": 2, "layers": ["block1_conv", "block1_bn"]},
    ],
    "head": {"layers": ["dense"]},
}


@dataclass
class Layer:
    name: str
    trainable: bool = True


@dataclass
class Model:
    layers: list[Any] = field(default_factory=list)
    name: str = "m"
    trainable: bool = False


def test_one_block_trains_its_layers_and_a_slash_name_matches_its_first_part() -> None:
    inner = Model([Layer("block1_conv"), Layer("block1_bn")], name="inner")
    model = Model([Layer("conv1/conv"), Layer("conv1/bn"), inner, Layer("dense")])
    set_trainable(model, EXPORT, blocks=[0], head=False)
    assert {layer.name: layer.trainable for layer in [*model.layers[:2], *inner.layers]} == {
        "conv1/conv": True, "conv1/bn": True, "block1_conv": False, "block1_bn": False}  # fmt: skip
    set_trainable(model, EXPORT, quartiles=[2])
    assert [layer.trainable for layer in inner.layers] == [True, True]
    assert model.layers[0].trainable is False and model.layers[3].trainable is True


def test_an_export_of_another_model_or_format_is_refused() -> None:
    with pytest.raises(KerasExportError, match="no layer 'dense'"):
        set_trainable(Model([Layer("conv1"), Layer("block1_conv"), Layer("block1_bn")]), EXPORT)
    with pytest.raises(KerasExportError, match="no block 7"):
        chosen_layers(EXPORT, blocks=[7])
    with pytest.raises(KerasExportError, match="not a graphblocks Keras export"):
        chosen_layers({"format": "timm"})
