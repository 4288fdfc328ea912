"""Read an ONNX file for analysis, failing in one line on anything that is not a usable model.

Checks, in order: the file exists and parses as an ONNX ``ModelProto`` (else: not ONNX,
or truncated); every tensor stored as external data has its file, long enough; the
default-domain opset is one this ``onnx`` knows; the ONNX checker passes. Shapes are
then inferred (``onnx.shape_inference``, with data propagation); a model whose shapes
cannot be inferred is still analyzed, without shapes.

Weights stored as external data are not read: analysis needs their shapes, which the
model file holds. :func:`load_onnx` with ``with_data=True`` reads them (exports do).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from graphblocks.errors import GraphblocksError, first_line

if TYPE_CHECKING:
    import onnx

#: Oldest default-domain opset accepted (the first with today's BatchNormalization).
MIN_OPSET = 7
_DEFAULT_DOMAINS = ("", "ai.onnx")
#: Every serialized ModelProto starts with field 1, ``ir_version``, as a varint.
_IR_VERSION_TAG = b"\x08"


class OnnxFileError(GraphblocksError):
    """An ONNX file that cannot be read or is not a valid model."""


def load_onnx(
    path: str | Path, input_size: Sequence[int] | None = None, *, with_data: bool = False
) -> onnx.ModelProto:
    """The checked model at ``path``, with inferred shapes.

    ``input_size`` (C, H, W... without batch) replaces the first input's dimensions
    before shape inference, for models exported with dynamic spatial sizes.
    """
    import onnx

    path = Path(path)
    if not path.is_file():
        raise OnnxFileError(f"no such ONNX file {str(path)!r}", "check the path")
    model = _parse(path)
    _check_external_data(model, path.parent)
    _check_opset(model)
    try:  # with external data the checker needs the path to find the data files
        onnx.checker.check_model(str(path) if _external_tensors(model) else model)
    except onnx.checker.ValidationError as exc:
        raise OnnxFileError(
            f"{path.name} is not a valid ONNX model: {first_line(exc, 200)}",
            "re-export it, or run onnx.checker.check_model on it for details",
        ) from exc
    if with_data:
        onnx.load_external_data_for_model(model, str(path.parent))
    if input_size is not None:
        _set_input_size(model, input_size)
    try:
        return onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
    except Exception:  # shapes are a bonus: analysis works without them
        return model


def _parse(path: Path) -> onnx.ModelProto:
    import onnx
    from google.protobuf.message import DecodeError

    try:
        model = onnx.load(str(path), load_external_data=False)
    except DecodeError as exc:
        with path.open("rb") as f:
            starts_like_onnx = f.read(1) == _IR_VERSION_TAG
        what = (
            "is truncated or corrupt (it starts like an ONNX model but does not parse)"
            if starts_like_onnx
            else "is not an ONNX model"
        )
        raise OnnxFileError(
            f"{path.name} {what} ({first_line(exc, 120)})",
            "re-export or re-download the model; give an .onnx file written by onnx.save",
        ) from exc
    if model.ir_version <= 0 or not model.graph.node:
        raise OnnxFileError(
            f"{path.name} is not an ONNX model (no graph in it)",
            "give an .onnx file written by onnx.save or torch.onnx.export",
        )
    return model


def _external_tensors(model: onnx.ModelProto) -> list[onnx.TensorProto]:
    import onnx

    return [t for t in model.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]


def _check_external_data(model: onnx.ModelProto, base: Path) -> None:
    for tensor in _external_tensors(model):
        info = {entry.key: entry.value for entry in tensor.external_data}
        location = base / info.get("location", "")
        if not info.get("location") or not location.is_file():
            raise OnnxFileError(
                f"missing external data file {info.get('location', '?')!r} "
                f"(weights of {tensor.name!r})",
                f"put the file next to the model, in {str(base)!r}",
            )
        end = int(info.get("offset", 0)) + int(info.get("length", 0))
        if end > location.stat().st_size:
            raise OnnxFileError(
                f"external data file {info['location']!r} is shorter than the model says "
                f"({location.stat().st_size} < {end} bytes)",
                "copy the complete file again",
            )


def default_opset(model: onnx.ModelProto) -> int | None:
    """The model's default-domain (``ai.onnx``) opset version, None when absent."""
    versions = [o.version for o in model.opset_import if o.domain in _DEFAULT_DOMAINS]
    return versions[0] if versions else None


def _check_opset(model: onnx.ModelProto) -> None:
    import onnx

    newest = onnx.defs.onnx_opset_version()
    opset = default_opset(model)
    if opset is None or not MIN_OPSET <= opset <= newest:
        raise OnnxFileError(
            f"unsupported opset {opset} (supported: {MIN_OPSET} to {newest})",
            "convert it with onnx.version_converter.convert_version(model, 17), "
            "or re-export with opset_version=17",
        )


def _set_input_size(model: onnx.ModelProto, input_size: Sequence[int]) -> None:
    initializers = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if not inputs:
        return
    dims = inputs[0].type.tensor_type.shape.dim
    if len(dims) != len(input_size) + 1:
        raise OnnxFileError(
            f"--input-size has {len(input_size)} dimensions, the model's input "
            f"{inputs[0].name!r} has {len(dims) - 1} besides the batch",
            "give one size per non-batch dimension, in the model's own layout",
        )
    for dim, size in zip(list(dims)[1:], input_size, strict=True):
        dim.dim_value = int(size)
