"""The Keras side of the round trip, run in the TensorFlow environment (``.venv-tf``).

    python tests_keras/keras_side.py convert FLAVOUR OUT_DIR [--app NAME] [--size S] [--weights none|random]
    python tests_keras/keras_side.py apply FLAVOUR OUT_DIR EXPORT BLOCK

``FLAVOUR`` is ``keras3`` (Keras 3, TensorFlow's default) or ``tf_keras`` (legacy Keras 2,
``TF_USE_LEGACY_KERAS=1``); it must be chosen before TensorFlow is imported, so each call
is its own process. ``convert`` builds a model (a small residual CNN, or a
``keras.applications`` model with ``--app``), saves it, converts it with tf2onnx and writes
``model.onnx`` and ``layers.json`` (every layer with weights: name, class, weight count).
``apply`` loads the saved model, calls :func:`graphblocks.keras_trainable.set_trainable`
for one block of a ``graphblocks export --to keras`` file and prints, as JSON, the names of
the trainable weights and of the weights of the layers the export lists for that block.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]


def keras_module(flavour: str) -> Any:
    """Keras 3 or tf_keras; sets ``TF_USE_LEGACY_KERAS`` before TensorFlow is imported."""
    if flavour == "tf_keras":
        os.environ["TF_USE_LEGACY_KERAS"] = "1"
        import tf_keras

        return tf_keras
    import keras

    return keras


def small_cnn(k: Any) -> Any:
    """Stem, a residual unit, a depthwise-separable stage, a dense head (10 classes)."""
    layers = k.layers
    inputs = k.Input((32, 32, 3), name="image")

    def conv_bn_relu(x: Any, filters: int, name: str, stride: int = 1) -> Any:
        x = layers.Conv2D(
            filters, 3, strides=stride, padding="same", use_bias=False, name=f"{name}_conv"
        )(x)
        x = layers.BatchNormalization(name=f"{name}_bn")(x)
        return layers.ReLU(name=f"{name}_relu")(x)

    x = conv_bn_relu(inputs, 16, "stem", stride=2)
    y = conv_bn_relu(x, 16, "res1a")
    y = layers.Conv2D(16, 3, padding="same", use_bias=False, name="res1b_conv")(y)
    y = layers.BatchNormalization(name="res1b_bn")(y)
    x = layers.ReLU(name="res1_out")(layers.Add(name="res1_add")([x, y]))
    x = layers.BatchNormalization(name="preact_bn")(x)  # a standalone BN, as ResNetV2 has
    x = layers.DepthwiseConv2D(3, strides=2, padding="same", use_bias=False, name="dw_conv")(x)
    x = layers.BatchNormalization(name="dw_bn")(x)
    x = layers.Conv2D(32, 1, use_bias=False, name="pw_conv")(layers.ReLU(6.0, name="dw_relu6")(x))
    x = layers.Activation("swish", name="pw_swish")(layers.BatchNormalization(name="pw_bn")(x))
    x = layers.Dense(10, name="classifier")(layers.GlobalAveragePooling2D(name="pool")(x))
    return k.Model(inputs, x, name="small_cnn")


def application(k: Any, name: str, size: int) -> Any:
    """A ``keras.applications`` model without pretrained weights (they cannot be
    downloaded here) at ``size`` px."""
    return getattr(k.applications, name)(weights=None, input_shape=(size, size, 3))


def randomize(model: Any, seed: int = 0) -> None:
    """Give every weight (BatchNorm statistics too) its own non-trivial values, as after
    training: fresh weights repeat (all gammas one, all biases zero) and tf2onnx merges
    equal constants."""
    import numpy as np

    rng = np.random.default_rng(seed)
    for layer in model.layers:
        values = [rng.uniform(0.5, 1.5, w.shape).astype("float32") for w in layer.get_weights()]
        layer.set_weights(values)


def weighted_layers(model: Any) -> list[dict[str, Any]]:
    return [{"name": layer.name, "class": type(layer).__name__, "num_weights": int(layer.count_params())}
            for layer in model.layers if layer.weights]  # fmt: skip


def convert(args: argparse.Namespace) -> None:
    import tensorflow as tf
    import tf2onnx

    k = keras_module(args.flavour)
    k.utils.set_random_seed(0)
    model = application(k, args.app, args.size) if args.app else small_cnn(k)
    if args.weights == "random":
        randomize(model)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    size = model.input_shape[1:]
    spec = (tf.TensorSpec((None, *size), tf.float32, name="image"),)
    tf2onnx.convert.from_keras(
        model, input_signature=spec, opset=17, output_path=str(out / "model.onnx")
    )
    if not args.app:
        model.save(out / ("model.keras" if args.flavour == "keras3" else "model.h5"))
    info = {"flavour": args.flavour, "model": model.name, "layers": weighted_layers(model)}
    (out / "layers.json").write_text(json.dumps(info, indent=1) + "\n")


def apply(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(ROOT))
    from graphblocks.keras_trainable import chosen_layers, set_trainable

    k = keras_module(args.flavour)
    out = Path(args.out)
    model = k.models.load_model(out / ("model.keras" if args.flavour == "keras3" else "model.h5"))
    set_trainable(model, args.export, blocks=[args.block], head=False)
    listed = chosen_layers(args.export, blocks=[args.block], head=False)
    expected = [_name(w) for n in listed for w in model.get_layer(n).weights if w.trainable]
    print(json.dumps({"trainable": [_name(w) for w in model.trainable_weights], "expected": expected,
                      "frozen": [_name(w) for w in model.non_trainable_weights]}))  # fmt: skip


def _name(weight: Any) -> str:
    """A weight's unique name: Keras 3's path (``stem_conv/kernel``), tf_keras's name."""
    return str(getattr(weight, "path", None) or weight.name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("convert")
    c.add_argument("flavour", choices=["keras3", "tf_keras"])
    c.add_argument("out")
    c.add_argument("--app")
    c.add_argument("--size", type=int, default=128)
    c.add_argument("--weights", choices=["none", "random"], default="random")
    a = sub.add_parser("apply")
    a.add_argument("flavour", choices=["keras3", "tf_keras"])
    a.add_argument("out")
    a.add_argument("export")
    a.add_argument("block", type=int)
    args = parser.parse_args()
    {"convert": convert, "apply": apply}[args.command](args)


if __name__ == "__main__":
    main()
