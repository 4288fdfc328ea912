"""graphblocks: cut any network into residual-safe blocks and quartiles.

The public API is small and imported lazily, so that ``graphblocks --help`` starts fast::

    import graphblocks
    partition = graphblocks.analyze("resnet50")          # or "model.onnx", or an nn.Module
    groups = partition.param_groups(model, lrs=[1e-4] * partition.num_blocks + [1e-3])
    graphblocks.export(partition, "timm", "resnet50.timm-groups.json")
    graphblocks.draw("resnet50", "resnet50.svg", collapse=True)

Tools built on graphblocks (its fine-tuning trainers among them) use only the names in
``__all__``:

* analysis: :func:`analyze` (its defaults: :func:`default_settings`; the crossing bound
  :data:`DEFAULT_MAX_CROSSING`), :class:`Partition`, :func:`export`, :func:`draw`;
* models: :func:`resolve_model` (a specification to a buildable
  :class:`~graphblocks.sources.ModelSource`), :func:`parse_model_args` and
  :func:`parse_input_size` (the ``--model-arg`` and ``--input-size`` syntaxes);
* cutting a model where the partition cuts it: :func:`segment_model`, :func:`split_model`,
  and running the pieces in turn: :class:`SegmentChain`;
* weights from another implementation: :func:`read_checkpoint`, :func:`port_state_dict`,
  :func:`port_checkpoint` (see :mod:`graphblocks.porting`);
* the Hugging Face Hub: :func:`load_hf_pretrained` (an ``hf:`` model with its weights) and
  :func:`hub_access` (downloads that fail in one line, fast, when offline; see
  :mod:`graphblocks.hub`);
* files: :func:`write_atomic`, :func:`atomic_target`;
* errors and command lines: :class:`GraphblocksError`, :class:`PartitionError`,
  :class:`PortError`,
  :class:`OneLineErrors` and :func:`debug_option` (one-line errors, ``--debug``);
* the user's own loop: :func:`param_groups` (optimizer groups with layer decay and the
  weight-decay exemption), :func:`freeze` and :func:`unfreeze` (see :mod:`graphblocks.optim`;
  timm's optimizer factory: :func:`graphblocks.timm.set_group_matcher`);
* people: :func:`human_count`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from graphblocks.atomic import atomic_target, write_atomic
from graphblocks.errors import GraphblocksError, PartitionError, PortError

__version__ = "0.1.0"

if TYPE_CHECKING:
    from pathlib import Path

    from torch import nn

    from graphblocks.commandline import OneLineErrors, debug_option
    from graphblocks.hub import hub_access, load_hf_pretrained
    from graphblocks.optim import freeze, param_groups, unfreeze
    from graphblocks.partition import Partition
    from graphblocks.porting import Ported, port_checkpoint, port_state_dict, read_checkpoint
    from graphblocks.sources import parse_input_size, parse_model_args, resolve_model
    from graphblocks.split import SegmentChain, segment_model, split_model
    from graphblocks.tables import human_count

#: public names imported on first use: name -> the module that defines it
_LAZY = {
    "DEFAULT_MAX_CROSSING": "graphblocks.ops",
    "Partition": "graphblocks.partition",
    "OneLineErrors": "graphblocks.commandline",
    "debug_option": "graphblocks.commandline",
    "Ported": "graphblocks.porting",
    "port_checkpoint": "graphblocks.porting",
    "port_state_dict": "graphblocks.porting",
    "read_checkpoint": "graphblocks.porting",
    "parse_input_size": "graphblocks.sources",
    "parse_model_args": "graphblocks.sources",
    "resolve_model": "graphblocks.sources",
    "SegmentChain": "graphblocks.split",
    "segment_model": "graphblocks.split",
    "split_model": "graphblocks.split",
    "human_count": "graphblocks.tables",
    "hub_access": "graphblocks.hub",
    "freeze": "graphblocks.optim",
    "unfreeze": "graphblocks.optim",
    "param_groups": "graphblocks.optim",
    "load_hf_pretrained": "graphblocks.hub",
}

__all__ = [
    "DEFAULT_MAX_CROSSING",
    "GraphblocksError",
    "OneLineErrors",
    "Partition",
    "PartitionError",
    "PortError",
    "Ported",
    "SegmentChain",
    "__version__",
    "analyze",
    "atomic_target",
    "debug_option",
    "default_settings",
    "draw",
    "export",
    "freeze",
    "hub_access",
    "human_count",
    "load_hf_pretrained",
    "param_groups",
    "parse_input_size",
    "parse_model_args",
    "port_checkpoint",
    "port_state_dict",
    "read_checkpoint",
    "resolve_model",
    "segment_model",
    "split_model",
    "unfreeze",
    "write_atomic",
]


def analyze(model_or_name: nn.Module | str, **settings: Any) -> Partition:
    """Partition a model into blocks, quartiles and a head.

    ``model_or_name`` is an ``nn.Module`` or a specification (``resnet50``,
    ``torchvision:vgg16``, ``pkg.module:factory``, ``path/file.py:factory``,
    ``hf:ORG/NAME`` or ``hf:folder``).
    ``settings`` are the fields of :class:`graphblocks.pipeline.Settings`:
    ``delimiters``, ``max_blocks``, ``input_size``, ``model_args``, ``frontends``;
    ``name`` labels an ``nn.Module`` in the partition.
    """
    from graphblocks.pipeline import Settings, analyze_model

    name = settings.pop("name", None)
    return analyze_model(model_or_name, Settings(**_tupled(settings)), name=name).partition


def default_settings() -> dict[str, Any]:
    """The analysis settings :func:`analyze` uses when given none, as a partition records
    them in its ``settings`` (``delimiters``, ``max_blocks``, ``max_crossing``,
    ``model_args``): what a saved partition is compared with."""
    from graphblocks.pipeline import Settings

    return Settings().recorded()


def export(partition: Partition, fmt: str, out: str | Path, **options: Any) -> Path:
    """Write ``partition`` for another tool: ``fmt`` is one of ``param-groups``, ``timm``,
    ``peft``, ``onnx``, ``keras``, ``csv``, ``graphml``, ``model-explorer`` (see
    :mod:`graphblocks.exports`); ``options`` are ``model`` (what to re-analyze),
    ``lr_scales``, and peft's ``blocks`` and ``quartiles``."""
    from graphblocks.exports import ExportOptions, export_partition

    return export_partition(partition, fmt, out, ExportOptions(**options))


def draw(
    model_or_partition: nn.Module | str | Partition,
    out: str | Path,
    *,
    collapse: bool = False,
    engine: str = "auto",
    **settings: Any,
) -> Path:
    """Draw a model (as :func:`analyze` takes it) or a saved partition's model into
    ``out`` (.svg, .png or .html); see :mod:`graphblocks.render`."""
    from graphblocks.partition import Partition
    from graphblocks.pipeline import Settings, analyze_model
    from graphblocks.render import render

    if isinstance(model_or_partition, Partition):
        from graphblocks.exports import reanalyze

        analysis = reanalyze(model_or_partition)
    else:
        analysis = analyze_model(model_or_partition, Settings(**_tupled(settings)))
    return render(analysis, out, collapse=collapse, engine=engine)


def _tupled(settings: dict[str, Any]) -> dict[str, Any]:
    for key in ("delimiters", "frontends", "input_size"):
        if settings.get(key) is not None:
            settings[key] = tuple(settings[key])
    return settings


def __getattr__(attr: str) -> Any:
    if attr in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[attr]), attr)
    raise AttributeError(f"module 'graphblocks' has no attribute {attr!r}")
