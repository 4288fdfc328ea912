"""graphblocks: cut any network into residual-safe blocks and quartiles.

The public API is small and imported lazily, so that ``graphblocks --help`` starts fast::

    import graphblocks
    partition = graphblocks.analyze("resnet50")
    groups = partition.param_groups(model, lrs=[1e-4] * partition.num_blocks + [1e-3])
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from graphblocks.errors import GraphblocksError

__version__ = "0.1.0"

if TYPE_CHECKING:
    from torch import nn

    from graphblocks.partition import Partition

__all__ = ["GraphblocksError", "Partition", "__version__", "analyze"]


def analyze(model_or_name: nn.Module | str, **settings: Any) -> Partition:
    """Partition a model into blocks, quartiles and a head.

    ``model_or_name`` is an ``nn.Module`` or a specification (``resnet50``,
    ``torchvision:vgg16``, ``pkg.module:factory``, ``path/file.py:factory``).
    ``settings`` are the fields of :class:`graphblocks.pipeline.Settings`:
    ``delimiters``, ``max_blocks``, ``input_size``, ``model_args``, ``frontends``;
    ``name`` labels an ``nn.Module`` in the partition.
    """
    from graphblocks.pipeline import Settings, analyze_model

    name = settings.pop("name", None)
    for key in ("delimiters", "frontends", "input_size"):
        if settings.get(key) is not None:
            settings[key] = tuple(settings[key])
    return analyze_model(model_or_name, Settings(**settings), name=name).partition


def __getattr__(attr: str) -> Any:
    if attr == "Partition":
        from graphblocks.partition import Partition

        return Partition
    raise AttributeError(f"module 'graphblocks' has no attribute {attr!r}")
