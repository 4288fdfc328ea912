"""Frontends turn a model into the one graph type (see :mod:`graphblocks.graph`).

They are tried as a fallback chain, in :data:`FALLBACK_CHAIN` order; the first that
captures the model wins and its name is recorded in the partition.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from graphblocks.errors import CaptureError, first_line

if TYPE_CHECKING:
    import networkx as nx
    import torch
    from torch import nn

    from graphblocks.params import ParamTable

Capture = Callable[["nn.Module", "tuple[torch.Tensor, ...]", "ParamTable"], "nx.DiGraph"]


def _fx(model: nn.Module, example: tuple[torch.Tensor, ...], table: ParamTable) -> nx.DiGraph:
    from graphblocks.frontends.fx import capture_fx

    return capture_fx(model, example, table)


def _export(model: nn.Module, example: tuple[torch.Tensor, ...], table: ParamTable) -> nx.DiGraph:
    from graphblocks.frontends.export import capture_export

    return capture_export(model, example, table)


def _fx_without_shapes(
    model: nn.Module, example: tuple[torch.Tensor, ...], table: ParamTable
) -> nx.DiGraph:
    from graphblocks.frontends.fx import capture_fx

    return capture_fx(model, example, table, require_shapes=False)


#: name -> capture function; ``fx-noshape`` is the last resort when shapes cannot be propagated.
FRONTENDS: dict[str, Capture] = {"fx": _fx, "export": _export, "fx-noshape": _fx_without_shapes}
FALLBACK_CHAIN: tuple[str, ...] = ("fx", "export", "fx-noshape")


@dataclass
class Captured:
    """A captured graph, the frontend that produced it and why earlier ones failed."""

    graph: nx.DiGraph
    frontend: str
    failures: dict[str, str] = field(default_factory=dict)


def capture(
    model: nn.Module,
    example: tuple[torch.Tensor, ...],
    table: ParamTable,
    chain: Sequence[str] = FALLBACK_CHAIN,
) -> Captured:
    """Run the frontends of ``chain`` in order and return the first capture that works.

    Raises :class:`CaptureError` with each frontend's reason when none works.
    """
    failures: dict[str, str] = {}
    for name in chain:
        try:
            return Captured(FRONTENDS[name](model, example, table), name, failures)
        except Exception as exc:  # any frontend failure means: try the next one
            failures[name] = f"{type(exc).__name__}: {first_line(exc)}".strip()[:300]
    reasons = "; ".join(f"{k}: {v}" for k, v in failures.items())
    raise CaptureError(
        f"no frontend could capture the model ({reasons})",
        "make the forward traceable, register leaf modules with "
        "graphblocks.frontends.leaves.register_leaf_module, or run with --debug",
    )
