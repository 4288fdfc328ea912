"""ONNX files for the tests: PyTorch exports made on the fly, tiny hand-built graphs."""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

KERAS_FIXTURE = (
    Path(__file__).resolve().parent.parent / "fixtures" / "onnx" / "keras_small_cnn.onnx"
)


def export_torch(
    model: nn.Module, path: Path, input_size: tuple[int, ...], *, fuse_bn: bool
) -> Path:
    """Export with the dynamo exporter: ``fuse_bn`` runs its optimizer, which folds
    BatchNorm into the preceding Conv; without it BatchNormalization nodes stay."""
    model = model.eval()
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (torch.randn(1, *input_size),), str(path), dynamo=True, optimize=fuse_bn
        )
    return path


def export_torchscript(model: nn.Module, path: Path, input_size: tuple[int, ...]) -> Path:
    """Export with the TorchScript exporter, which names nodes ``/layer1/layer1.0/conv1/Conv``."""
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model.eval(), (torch.randn(1, *input_size),), str(path), dynamo=False)
    return path


def _weight(name: str, *shape: int) -> TensorProto:

    values = np.random.default_rng(len(name)).standard_normal(shape).astype("float32")
    return numpy_helper.from_array(values, name)


def reduce_mean_model(axes: list[int], path: Path) -> Path:
    """Conv → ReduceMean(axes, keepdims) → Flatten → Gemm, on a 1x3x8x8 input."""
    nodes = [
        helper.make_node("Conv", ["x", "conv.weight"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("ReduceMean", ["r", "axes"], ["m"], name="mean", keepdims=1),
        helper.make_node("Flatten", ["m"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "fc.weight", "fc.bias"], ["y"], name="fc", transB=1),
    ]
    features = 4 * 8 * 8 // (64 if axes == [2, 3] else 4)
    inits = [
        _weight("conv.weight", 4, 3, 3, 3),
        numpy_helper.from_array(np.array(axes, dtype="int64"), "axes"),
        _weight("fc.weight", 5, features),
        _weight("fc.bias", 5),
    ]
    return _save(nodes, inits, [1, 3, 8, 8], [1, 5], path)


def weightless_model(path: Path) -> Path:
    """Relu and an Add: an ONNX graph without a single weight."""
    nodes = [
        helper.make_node("Relu", ["x"], ["r"], name="relu"),
        helper.make_node("Add", ["x", "r"], ["y"], name="add"),
    ]
    return _save(nodes, [], [1, 3, 8, 8], [1, 3, 8, 8], path)


def _save(
    nodes: list[onnx.NodeProto],
    inits: list[TensorProto],
    in_shape: list[int],
    out_shape: list[int],
    path: Path,
    opset: int = 18,
) -> Path:
    graph = helper.make_graph(
        nodes,
        "test",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    onnx.save(model, str(path))
    return path


def embedding_model(path: Path) -> Path:
    """Token ids → Gather on an embedding table → mean over tokens → Gemm."""
    nodes = [
        helper.make_node("Gather", ["embed.weight", "x"], ["e"], name="embed"),
        helper.make_node("ReduceMean", ["e", "axes"], ["m"], name="pool", keepdims=0),
        helper.make_node("Gemm", ["m", "fc.weight", "fc.bias"], ["y"], name="fc", transB=1),
    ]
    inits = [
        _weight("embed.weight", 100, 16),
        numpy_helper.from_array(np.array([1], dtype="int64"), "axes"),
        _weight("fc.weight", 4, 16),
        _weight("fc.bias", 4),
    ]
    graph = helper.make_graph(
        nodes,
        "tokens",
        [helper.make_tensor_value_info("x", TensorProto.INT64, [1, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        initializer=inits,
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    return path


def decomposed_gelu_model(path: Path) -> Path:
    """Conv → x·½(1 + erf(x/√2)) (as opset < 20 exporters write GELU) → Conv → pool → Gemm."""
    nodes = [
        helper.make_node("Conv", ["x", "conv1.weight"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Div", ["c1", "sqrt2"], ["d"], name="gelu_div"),
        helper.make_node("Erf", ["d"], ["e"], name="gelu_erf"),
        helper.make_node("Add", ["e", "one"], ["a"], name="gelu_add"),
        helper.make_node("Mul", ["c1", "a"], ["m"], name="gelu_mul"),
        helper.make_node("Mul", ["m", "half"], ["g"], name="gelu_half"),
        helper.make_node("Conv", ["g", "conv2.weight"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
        helper.make_node("GlobalAveragePool", ["c2"], ["p"], name="pool"),
        helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "fc.weight", "fc.bias"], ["y"], name="fc", transB=1),
    ]
    scalars = [
        numpy_helper.from_array(np.array(v, dtype="float32"), n)
        for n, v in (("sqrt2", 1.4142135), ("one", 1.0), ("half", 0.5))
    ]
    inits = [
        _weight("conv1.weight", 4, 3, 3, 3),
        _weight("conv2.weight", 4, 4, 3, 3),
        _weight("fc.weight", 5, 4),
        _weight("fc.bias", 5),
        *scalars,
    ]
    return _save(nodes, inits, [1, 3, 8, 8], [1, 5], path)


def with_constant_nodes(path: Path, out: Path) -> Path:
    """The model at ``path`` with every floating-point initializer written as a
    ``Constant`` node instead, as paddle2onnx and some other exporters store weights."""
    model = onnx.load(str(path))
    floats = [t for t in model.graph.initializer if t.data_type == TensorProto.FLOAT]
    constants = [helper.make_node("Constant", [], [t.name], name=f"const_{i}", value=t)
                 for i, t in enumerate(floats)]  # fmt: skip
    kept = [t for t in model.graph.initializer if t.data_type != TensorProto.FLOAT]
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept)
    nodes = [*constants, *model.graph.node]
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    onnx.save(model, str(out))
    return out


def deduplicated_keras_model(path: Path) -> Path:
    """A tf_keras-through-tf2onnx graph whose equal constants were merged: both fused
    convolutions read one zero bias named after ``b_conv``; the standalone BatchNorm
    ``c_bn`` reads that bias as its beta and a gamma named after ``a_bn`` (whose own
    BatchNorm was folded into ``a_conv``)."""
    ones = numpy_helper.from_array(np.ones(4, dtype="float32"), "m/a_bn/ReadVariableOp:0")
    zeros = numpy_helper.from_array(np.zeros(4, dtype="float32"), "m/b_conv/Conv2D_bias_fused_bn")
    nodes = [
        helper.make_node("Conv", ["x", "m/a_conv/Conv2D_weights_fused_bn", zeros.name],
                         ["m/a_bn/FusedBatchNormV3:0"], name="m/a_conv/Conv2D", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["m/a_bn/FusedBatchNormV3:0"], ["m/a_relu/Relu:0"], name="m/a_relu/Relu"),
        helper.make_node("Conv", ["m/a_relu/Relu:0", "m/b_conv/Conv2D_weights_fused_bn", zeros.name],
                         ["m/b_bn/FusedBatchNormV3:0"], name="m/b_conv/Conv2D", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["m/b_bn/FusedBatchNormV3:0"], ["m/b_relu/Relu:0"], name="m/b_relu/Relu"),
        helper.make_node("BatchNormalization", ["m/b_relu/Relu:0", ones.name, zeros.name, zeros.name, ones.name],
                         ["m/c_bn/FusedBatchNormV3:0"], name="m/c_bn/FusedBatchNormV3"),
        helper.make_node("Relu", ["m/c_bn/FusedBatchNormV3:0"], ["m/c_relu/Relu:0"], name="m/c_relu/Relu"),
        helper.make_node("GlobalAveragePool", ["m/c_relu/Relu:0"], ["m/pool/Mean:0"], name="m/pool/Mean"),
        helper.make_node("Flatten", ["m/pool/Mean:0"], ["m/pool/flat:0"], name="m/pool/Flatten"),
        helper.make_node("MatMul", ["m/pool/flat:0", "m/dense/MatMul/ReadVariableOp:0"], ["y"],
                         name="m/dense/MatMul"),
    ]  # fmt: skip
    inits = [
        _weight("m/a_conv/Conv2D_weights_fused_bn", 4, 3, 3, 3),
        _weight("m/b_conv/Conv2D_weights_fused_bn", 4, 4, 3, 3),
        _weight("m/dense/MatMul/ReadVariableOp:0", 4, 5),
        ones,
        zeros,
    ]
    _save(nodes, inits, [1, 3, 8, 8], [1, 5], path)
    model = onnx.load(str(path))
    model.producer_name = "tf2onnx"
    onnx.save(model, str(path))
    return path


def broadcast_bias_model(path: Path) -> Path:
    """paddle2onnx's layout: a convolution's bias is a separate ``Add`` of a ``[1, C, 1, 1]``
    constant named after the Reshape it was folded from, not after the layer."""
    nodes = [
        helper.make_node("Conv", ["x", "conv2d_0.w_0"], ["c"], name="Conv.0", pads=[1, 1, 1, 1]),
        helper.make_node("Add", ["c", "p2o.pd_op.reshape.0.0"], ["b"], name="Add.0"),
        helper.make_node("Relu", ["b"], ["r"], name="Relu.0"),
        helper.make_node("GlobalAveragePool", ["r"], ["p"], name="Pool.0"),
        helper.make_node("Flatten", ["p"], ["f"], name="Flatten.0"),
        helper.make_node("Gemm", ["f", "linear_0.w_0", "linear_0.b_0"], ["y"], name="Gemm.0"),
    ]
    inits = [_weight("conv2d_0.w_0", 4, 3, 3, 3), _weight("p2o.pd_op.reshape.0.0", 1, 4, 1, 1),
             _weight("linear_0.w_0", 4, 5), _weight("linear_0.b_0", 5)]  # fmt: skip
    return _save(nodes, inits, [1, 3, 8, 8], [1, 5], path)


def symbolic_input_model(path: Path, dims: list[int | str]) -> Path:
    """:func:`reduce_mean_model`'s graph with input dims ``dims`` (names are symbolic)."""
    model = onnx.load(str(reduce_mean_model([2, 3], path)))
    shape = model.graph.input[0].type.tensor_type.shape
    for dim, value in zip(shape.dim, dims, strict=True):
        if isinstance(value, str):
            dim.dim_param = value
        else:
            dim.dim_value = value
    onnx.save(model, str(path))
    return path
