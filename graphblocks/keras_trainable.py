"""Apply a ``graphblocks export --to keras`` file in Keras: train one block (and the head).

Torch-free and dependency-free, so it runs in a TensorFlow environment beside Keras 3 or
tf_keras (install graphblocks there with ``pip install --no-deps graphblocks``, or copy
this one file)::

    from graphblocks.keras_trainable import set_trainable
    names = set_trainable(model, "resnet50v2.keras-blocks.json", blocks=[12])
    model.compile(...)  # compile after changing trainable flags, as Keras requires

Every layer of ``model`` (nested models included) becomes trainable exactly when the
export lists it in one of the chosen blocks, quartiles or the head; all others freeze.
Freezing a BatchNormalization layer in Keras also makes it use its moving statistics.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

EXPORT_FORMAT = "graphblocks-keras-blocks"


class KerasExportError(ValueError):
    """An export that does not fit the model, or a choice the export does not have."""


def read_export(export: str | Path | Mapping[str, Any]) -> dict[str, Any]:
    """The export as a dict (from a file path or an already parsed document)."""
    data = dict(export) if isinstance(export, Mapping) else json.loads(Path(export).read_text())
    if data.get("format") != EXPORT_FORMAT:
        raise KerasExportError(
            f"not a graphblocks Keras export (format {data.get('format')!r}); "
            "write one with: graphblocks export PARTITION --to keras -o FILE"
        )
    return data


def chosen_layers(
    export: str | Path | Mapping[str, Any],
    blocks: Iterable[int] = (),
    quartiles: Iterable[int] = (),
    head: bool = True,
) -> list[str]:
    """The Keras layer names of the chosen blocks and quartiles (and the head)."""
    data = read_export(export)
    wanted_blocks, wanted_quartiles = set(blocks), set(quartiles)
    known = {b["index"] for b in data["blocks"]}
    unknown = sorted(wanted_blocks - known)
    if unknown:
        raise KerasExportError(f"no block {unknown[0]} in the export: it has 0..{max(known)}")
    names = [
        name
        for block in data["blocks"]
        if block["index"] in wanted_blocks or block["quartile"] in wanted_quartiles
        for name in block["layers"]
    ]
    if head:
        names += list(data["head"]["layers"])
    return list(dict.fromkeys(names))


def _layers(model: Any) -> Iterator[Any]:
    """Every layer of ``model``, descending into nested models."""
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from _layers(layer)


def set_trainable(
    model: Any,
    export: str | Path | Mapping[str, Any],
    blocks: Iterable[int] = (),
    quartiles: Iterable[int] = (),
    head: bool = True,
) -> list[str]:
    """Make exactly the chosen layers of ``model`` trainable (see the module docstring);
    returns their names. Raises :class:`KerasExportError` when the export names a layer
    that ``model`` does not have (an export of another model)."""
    names = chosen_layers(export, blocks, quartiles, head)
    layers = [layer for layer in _layers(model) if not hasattr(layer, "layers")]
    chosen = {n: [layer for layer in layers if _is_named(layer.name, n)] for n in names}
    missing = [n for n, found in chosen.items() if not found]
    if missing:
        raise KerasExportError(
            f"the model has no layer {missing[0]!r} ({len(missing)} missing): "
            "give the export of this model"
        )
    trainable = {id(layer) for found in chosen.values() for layer in found}
    if hasattr(model, "trainable"):
        model.trainable = True
    for layer in layers:
        layer.trainable = id(layer) in trainable
    return names


def _is_named(layer: str, listed: str) -> bool:
    """Whether a Keras layer is the one the export lists: the same name, or a name with
    ``/`` whose first part it is (tf_keras's DenseNet names ``conv1/conv``, and tf2onnx's
    node scopes keep only ``conv1``)."""
    return layer == listed or layer.startswith(listed + "/")
