"""Exports of a partition for other tools and frameworks, by format name.

=================  ==========================================================  =========
format             what                                                        needs
=================  ==========================================================  =========
``param-groups``   optimizer groups JSON (``torch.optim``, timm's lr_scale)     partition
``timm``           ``group_matcher`` dict JSON for timm's ``group_parameters``  partition
``peft``           ``LoraConfig`` keyword arguments JSON for the chosen blocks  partition
``csv``            one row per layer: name, op, role, block, quartile, params  partition
``keras``          Keras layer names per block (ONNX files from tf2onnx)        model
``onnx``           the ONNX model annotated with blocks and quartiles          model
``graphml``        the annotated DAG with each node's block and quartile       model
``model-explorer`` Model Explorer graph JSON and overlays (a folder)           model
=================  ==========================================================  =========

Formats that need the model analyze it again (from ``--model`` or the name recorded
in the partition) and refuse when its graph differs from the one partitioned.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from graphblocks.atomic import write_atomic
from graphblocks.errors import PartitionError
from graphblocks.partition import Partition

if TYPE_CHECKING:
    from graphblocks.pipeline import Analysis


@dataclass(frozen=True)
class ExportOptions:
    """What a format may need besides the partition."""

    model: str | None = None
    lr_scales: Mapping[str, float] | None = None
    #: peft: the blocks and quartiles to adapt (all blocks when both are empty)
    blocks: tuple[int, ...] = ()
    quartiles: tuple[int, ...] = ()


def reanalyze(partition: Partition, model: str | None = None) -> Analysis:
    """Analyze the partition's model again with its recorded settings; refuse a model
    whose graph is not the one partitioned."""
    from graphblocks.frontends import FALLBACK_CHAIN, FRONTENDS
    from graphblocks.pipeline import Settings, analyze_model

    spec = model or partition.model.name
    recorded, frontend = partition.settings, partition.model.frontend
    settings = Settings(
        delimiters=tuple(recorded["delimiters"]),
        max_blocks=recorded["max_blocks"],
        max_crossing=recorded["max_crossing"],
        input_size=tuple(partition.model.input_size),
        model_args=dict(recorded["model_args"]),
        frontends=(frontend,) if frontend in FRONTENDS else FALLBACK_CHAIN,
    )
    analysis = analyze_model(spec, settings)
    if analysis.partition.model.graph_hash != partition.model.graph_hash:
        raise PartitionError(
            f"the partition does not match {spec!r} (its graph differs from the one partitioned)",
            "partition this model again with graphblocks partition, or pass the right --model",
        )
    return analysis


def _json(data: object) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def _param_groups(partition: Partition, out: Path, options: ExportOptions) -> None:
    from graphblocks.exports.param_groups import param_group_spec

    write_atomic(out, _json(param_group_spec(partition, options.lr_scales)))


def _timm(partition: Partition, out: Path, options: ExportOptions) -> None:
    from graphblocks.exports.timm_matcher import group_matcher

    write_atomic(out, _json(group_matcher(partition)))


def layer_rows(partition: Partition) -> list[dict[str, object]]:
    """One row per layer, in topological order."""
    quartile = {b.index: b.quartile for b in partition.blocks}
    return [
        {"name": layer.name, "op": layer.op, "role": layer.role,
         "block": "head" if layer.block is None else layer.block,
         "quartile": "" if layer.block is None else quartile[layer.block],
         "params": layer.num_params, "macs": "" if layer.macs is None else layer.macs}
        for layer in partition.layers
    ]  # fmt: skip


def _csv(partition: Partition, out: Path, options: ExportOptions) -> None:
    rows = layer_rows(partition)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]) if rows else ["name"])
    writer.writeheader()
    writer.writerows(rows)
    write_atomic(out, buffer.getvalue())


def keras_blocks(analysis: Analysis) -> dict[str, object]:
    """Keras layer names per block and for the head, from a tf2onnx model's scopes."""
    graph, p = analysis.graph, analysis.partition
    from graphblocks.frontends.onnx_graph import KERAS_RULES

    if graph.graph.get("scope_rule") not in KERAS_RULES:
        raise PartitionError(
            f"{p.model.name!r} is not an ONNX file converted from Keras",
            "convert the Keras model with tf2onnx; for PyTorch use --to param-groups or timm",
        )
    owners: dict[int | None, dict[str, None]] = {}
    for layer in p.layers:
        owners.setdefault(layer.block, {}).update(dict.fromkeys(graph.nodes[layer.node]["scopes"]))
    blocks = [{"index": b.index, "quartile": b.quartile, "layers": list(owners.get(b.index, {}))}
              for b in p.blocks]  # fmt: skip
    return {"format": "graphblocks-keras-blocks", "version": 1, "model": p.model.name,
            "blocks": blocks, "head": {"layers": list(owners.get(None, {}))}}  # fmt: skip


def _keras(partition: Partition, out: Path, options: ExportOptions) -> None:
    write_atomic(out, _json(keras_blocks(reanalyze(partition, options.model))))


def _onnx(partition: Partition, out: Path, options: ExportOptions) -> None:
    import onnx

    from graphblocks.exports.onnx_annotate import annotate_model, save_model_atomically

    if partition.model.source != "onnx":
        raise PartitionError(
            f"{partition.model.name!r} is not an ONNX model",
            "export it to ONNX first (torch.onnx.export), then partition the .onnx file",
        )
    analysis = reanalyze(partition, options.model)
    source = options.model or partition.model.name
    save_model_atomically(annotate_model(onnx.load(source), analysis), out)


def _graphml(partition: Partition, out: Path, options: ExportOptions) -> None:
    from graphblocks.graph_io import export_view, graphml_text

    analysis = reanalyze(partition, options.model)
    write_atomic(out, graphml_text(export_view(analysis.graph, partition, analysis.node_blocks)))


def _model_explorer(partition: Partition, out: Path, options: ExportOptions) -> None:
    from graphblocks.exports.model_explorer import write_model_explorer

    analysis = reanalyze(partition, options.model)
    write_model_explorer(out, analysis.graph, partition, analysis.node_blocks)


def _peft(partition: Partition, out: Path, options: ExportOptions) -> None:
    from graphblocks.exports.peft import lora_arguments

    arguments = lora_arguments(partition, options.blocks, options.quartiles)
    write_atomic(out, json.dumps(arguments, indent=1) + "\n")


Exporter = Callable[[Partition, Path, ExportOptions], None]

#: format name -> writer
EXPORTERS: dict[str, Exporter] = {
    "param-groups": _param_groups,
    "timm": _timm,
    "peft": _peft,
    "onnx": _onnx,
    "keras": _keras,
    "csv": _csv,
    "graphml": _graphml,
    "model-explorer": _model_explorer,
}


def export_partition(
    partition: Partition, fmt: str, out: str | Path, options: ExportOptions | None = None
) -> Path:
    """Write ``partition`` in format ``fmt`` to ``out``; return the path written."""
    if fmt not in EXPORTERS:
        raise PartitionError(
            f"unknown export format {fmt!r}", f"choose from {', '.join(EXPORTERS)}"
        )
    out = Path(out)
    EXPORTERS[fmt](partition, out, options or ExportOptions())
    return out
