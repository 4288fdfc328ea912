"""Registries that classify an operation: delimiter class, weighted op, merge op.

Operations are named one way whatever the frontend: a module node by its class
name (looked up along the class's MRO, so subclasses inherit their base's class),
a function, method or ATen node by its bare name with in-place and alias spellings
folded (``relu_`` → ``relu``, ``iadd`` → ``add``, ``aten.cat.default`` → ``cat``),
and an ONNX operator by the function it computes (``Relu`` → ``relu``, ``Gemm`` →
``linear``). Extend the tables with :func:`register_module_class`,
:func:`register_function_class` and :func:`register_onnx_op`.
"""

from __future__ import annotations

DELIMITER_CLASSES: tuple[str, ...] = ("pool", "norm", "act")
ALL_BOUNDARY_CLASSES: tuple[str, ...] = ("pool", "norm", "act", "merge")
#: how many tensors may cross a block boundary unless told (``--max-crossing``); the
#: measurement behind it is in docs/partition-rule.md
DEFAULT_MAX_CROSSING = 8

_MODULE_CLASS: dict[str, str] = {}
_FUNCTION_CLASS: dict[str, str] = {}


def register_module_class(delimiter: str, *class_names: str) -> None:
    """Declare module classes (by ``__name__``) as delimiters of one class."""
    for name in class_names:
        _MODULE_CLASS[name] = delimiter


def register_function_class(delimiter: str, *op_names: str) -> None:
    """Declare canonical function / method / ATen op names as delimiters of one class."""
    for name in op_names:
        _FUNCTION_CLASS[name] = delimiter


register_module_class(
    "pool",
    *(
        f"{kind}Pool{d}d"
        for kind in ("Max", "Avg", "AdaptiveAvg", "AdaptiveMax", "LP")
        for d in (1, 2, 3)
    ),
    "FractionalMaxPool2d",
    "FractionalMaxPool3d",
    "SelectAdaptivePool2d",
    "AdaptiveAvgMaxPool2d",
    "AdaptiveCatAvgMaxPool2d",
)
register_module_class(
    "norm",
    "_NormBase",
    "_BatchNorm",
    "_InstanceNorm",
    "LayerNorm",
    "GroupNorm",
    "LocalResponseNorm",
    "RMSNorm",
    "RmsNorm",
    "CrossMapLRN2d",
)
register_module_class(
    "act",
    "ReLU",
    "ReLU6",
    "LeakyReLU",
    "PReLU",
    "RReLU",
    "ELU",
    "SELU",
    "CELU",
    "GELU",
    "SiLU",
    "Mish",
    "Hardswish",
    "Hardsigmoid",
    "Hardtanh",
    "Sigmoid",
    "Tanh",
    "Softplus",
    "Softsign",
    "LogSigmoid",
    "GLU",
    "Tanhshrink",
    "Threshold",
)
register_function_class(
    "pool",
    *(
        f"{kind}_pool{d}d"
        for kind in ("max", "avg", "adaptive_avg", "adaptive_max", "lp")
        for d in (1, 2, 3)
    ),
    "max_pool2d_with_indices",
    # timm's pooling functions, autowrapped as single nodes
    "adaptive_avgmax_pool2d",
    "adaptive_catavgmax_pool2d",
    "select_adaptive_pool2d",
    "avg_pool2d_same",
    "max_pool2d_same",
    "global_pool_nlc",
    "global_pool_naflex",
    "mean",
    "amax",
)
register_function_class(
    "norm",
    "batch_norm",
    "native_batch_norm",
    "_native_batch_norm_legit",
    "_native_batch_norm_legit_no_training",
    "layer_norm",
    "native_layer_norm",
    "group_norm",
    "native_group_norm",
    "instance_norm",
    "local_response_norm",
    "rms_norm",
    "fast_layer_norm",
)
register_function_class(
    "act",
    "relu",
    "relu6",
    "leaky_relu",
    "prelu",
    "rrelu",
    "elu",
    "selu",
    "celu",
    "gelu",
    "silu",
    "swish",
    "mish",
    "hardswish",
    "hard_swish",
    "hardsigmoid",
    "hard_sigmoid",
    "hard_mish",
    "hardtanh",
    "sigmoid",
    "tanh",
    "softplus",
    "softsign",
    "logsigmoid",
    "glu",
    "threshold",
    "gelu_tanh",
    "quick_gelu",
)

#: Operations whose parameter input is a weight in the layer sense (not a scale/shift).
WEIGHTED_FUNCTIONS: frozenset[str] = frozenset(
    {
        "linear",
        "bilinear",
        "conv1d",
        "conv2d",
        "conv3d",
        "conv_transpose1d",
        "conv_transpose2d",
        "conv_transpose3d",
        "convolution",
        "_convolution",
        "embedding",
        "embedding_bag",
        "matmul",
        "mm",
        "bmm",
        "addmm",
        "baddbmm",
        "einsum",
        "scaled_dot_product_attention",
        "multi_head_attention_forward",
        "lstm",
        "gru",
        "rnn_tanh",
        "rnn_relu",
    }
)

#: Module classes (matched along the MRO) that resample their input's spatial axes:
#: convolutions (``_ConvNd`` covers the transposed ones), upsampling and pixel shuffles.
#: Pooling modules resample too (their delimiter class says so).
RESAMPLING_MODULES: frozenset[str] = frozenset(
    {"_ConvNd", "Upsample", "PixelShuffle", "PixelUnshuffle"}
)
#: Canonical functions that resample their input's spatial axes (pooling functions are
#: known by their delimiter class).
RESAMPLING_FUNCTIONS: frozenset[str] = frozenset(
    {
        "conv1d",
        "conv2d",
        "conv3d",
        "convolution",
        "conv_transpose1d",
        "conv_transpose2d",
        "conv_transpose3d",
        "interpolate",
        "upsample",
        "upsample_nearest1d",
        "upsample_nearest2d",
        "upsample_nearest3d",
        "upsample_linear1d",
        "upsample_bilinear2d",
        "upsample_bicubic2d",
        "upsample_trilinear3d",
        "_upsample_bilinear2d_aa",
        "_upsample_bicubic2d_aa",
        "pixel_shuffle",
        "pixel_unshuffle",
    }
)

#: Operations that join activation paths by stacking them side by side.
CONCAT_FUNCTIONS: frozenset[str] = frozenset({"cat", "stack"})
#: Operations that join activation paths (a residual merge when two paths meet).
MERGE_FUNCTIONS: frozenset[str] = frozenset({"add", "sum"}) | CONCAT_FUNCTIONS

#: ONNX operator type -> the canonical function name it computes. ONNX types are
#: CamelCase and torch names lower case, so the two never collide.
_ONNX_OPS: dict[str, str] = {}


def register_onnx_op(onnx_type: str, canonical_name: str) -> None:
    """Declare that ONNX operator ``onnx_type`` computes ``canonical_name``."""
    _ONNX_OPS[onnx_type] = canonical_name


for _onnx_type, _canonical in {
    # weighted: the weight is an initializer reaching the op (checked by the graph)
    "Conv": "convolution",
    "ConvTranspose": "conv_transpose2d",
    "Gemm": "linear",
    "MatMul": "matmul",
    "Gather": "embedding",
    "LSTM": "lstm",
    "GRU": "gru",
    "RNN": "rnn_tanh",
    # normalization
    "BatchNormalization": "batch_norm",
    "LayerNormalization": "layer_norm",
    "InstanceNormalization": "instance_norm",
    "GroupNormalization": "group_norm",
    "LRN": "local_response_norm",
    "RMSNormalization": "rms_norm",
    "SimplifiedLayerNormalization": "rms_norm",
    # activation
    "Relu": "relu",
    "LeakyRelu": "leaky_relu",
    "PRelu": "prelu",
    "Clip": "hardtanh",
    "Sigmoid": "sigmoid",
    "HardSigmoid": "hardsigmoid",
    "HardSwish": "hardswish",
    "Gelu": "gelu",
    "FastGelu": "gelu",
    "Mish": "mish",
    "Tanh": "tanh",
    "Softplus": "softplus",
    "Softsign": "softsign",
    "Elu": "elu",
    "Selu": "selu",
    "Celu": "celu",
    "ThresholdedRelu": "threshold",
    # pooling (ReduceMean / ReduceMax only over spatial axes: see graph.annotate)
    "MaxPool": "max_pool2d",
    "AveragePool": "avg_pool2d",
    "LpPool": "lp_pool2d",
    "GlobalAveragePool": "adaptive_avg_pool2d",
    "GlobalMaxPool": "adaptive_max_pool2d",
    "GlobalLpPool": "lp_pool2d",
    "ReduceMean": "mean",
    "ReduceMax": "amax",
    # merges and the arithmetic of decomposed activations
    "Add": "add",
    "Sum": "sum",
    "Concat": "cat",
    "Mul": "mul",
    "Div": "div",
    "Sub": "sub",
    "Erf": "erf",
    # resampling
    "Resize": "interpolate",
    "Upsample": "interpolate",
    "DepthToSpace": "pixel_shuffle",
    "SpaceToDepth": "pixel_unshuffle",
}.items():
    register_onnx_op(_onnx_type, _canonical)

#: Spellings folded into one canonical name.
_ALIASES: dict[str, str] = {
    "iadd": "add",
    "concat": "cat",
    "concatenate": "cat",
    "_convolution": "convolution",
}


def canonical_function(name: str) -> str:
    """Fold a function / method / ATen spelling into the name the registries use.

    ``aten.add_.Tensor`` → ``add``, ``relu_`` → ``relu``, ``iadd`` → ``add``,
    ``__iadd__`` → ``add``, ONNX ``Relu`` → ``relu``.
    """
    if name in _ONNX_OPS:
        return _ONNX_OPS[name]
    name = name.rsplit("::", 1)[-1]
    if name.startswith("aten."):
        name = name.split(".")[1]
    if name.startswith("__") and name.endswith("__"):
        name = name.strip("_")
    if name.endswith("_") and not name.startswith("_"):
        name = name[:-1]
    return _ALIASES.get(name, name)


def module_delimiter(mro_names: list[str]) -> str | None:
    """Delimiter class of a module given its class MRO names, most derived first."""
    for name in mro_names:
        if name in _MODULE_CLASS:
            return _MODULE_CLASS[name]
    return None


def function_delimiter(canonical_name: str) -> str | None:
    """Delimiter class of a canonical function / method / ATen name."""
    return _FUNCTION_CLASS.get(canonical_name)


def is_weighted_function(canonical_name: str) -> bool:
    """True for ops that apply a weight tensor (conv, linear, embedding, matmul...)."""
    return canonical_name in WEIGHTED_FUNCTIONS


def is_merge_function(canonical_name: str) -> bool:
    """True for ops that can join two activation paths (add, sum, cat, stack)."""
    return canonical_name in MERGE_FUNCTIONS


def is_concat_function(canonical_name: str) -> bool:
    """True for merges that stack their operands side by side (cat, stack) rather than
    add them."""
    return canonical_name in CONCAT_FUNCTIONS


def resamples(kind: str, names: list[str], delimiter: str | None) -> bool:
    """Whether an operation sets its output's spatial grid (channels-first, axes 2 on):
    a convolution, pooling, upsampling or pixel shuffle. ``names`` are a module's class
    MRO names (``kind == "module"``) or a function's canonical name."""
    if delimiter == "pool":
        return True
    if kind == "module":
        return any(name in RESAMPLING_MODULES for name in names)
    return bool(names) and names[0] in RESAMPLING_FUNCTIONS
