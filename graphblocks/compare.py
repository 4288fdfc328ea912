"""Compare a partition with another grouping of the same parameters (timm's ``group_matcher``).

Two measures, for a grouping g: parameter name → group ordinal:

* **straddling blocks**: blocks B with |{g(p) : p ∈ B}| > 1, i.e. blocks that cross a
  boundary the other grouping draws. Zero means our partition refines the other one.
* **boundary recall**: the share of the other grouping's boundaries (consecutive
  ordinals k, k+1) where no block of ours holds parameters of both k and k+1.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from graphblocks.partition import Partition

if TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True)
class Agreement:
    """How a partition lines up with a reference grouping."""

    straddling: list[int]
    boundaries: int
    boundaries_cut: int

    @property
    def refines(self) -> bool:
        """No block straddles two reference groups."""
        return not self.straddling

    @property
    def recall(self) -> float:
        """Share of reference boundaries we also cut at (1.0 when there are none)."""
        return self.boundaries_cut / self.boundaries if self.boundaries else 1.0


def timm_groups(model: nn.Module) -> dict[str, int] | None:
    """timm's fine-grained groups (``group_matcher(coarse=False)``), None when the model has none."""
    matcher = getattr(model, "group_matcher", None)
    if not callable(matcher):
        return None
    from timm.models import group_parameters

    groups: dict[str, int] = group_parameters(model, matcher(coarse=False), reverse=True)
    return groups


def agreement(partition: Partition, groups: Mapping[str, int]) -> Agreement:
    """Compare the partition's blocks (the head as one more unit) with ``groups``."""
    unit_of = partition.block_of()
    straddling = []
    for block in partition.blocks:
        if len({groups[p] for p in block.params if p in groups}) > 1:
            straddling.append(block.index)
    units_by_group: dict[int, set[int | None]] = {}
    for name, group in groups.items():
        if name in unit_of:
            units_by_group.setdefault(group, set()).add(unit_of[name])
    ordinals = sorted(units_by_group)
    cut = sum(not (units_by_group[a] & units_by_group[b]) for a, b in itertools.pairwise(ordinals))
    return Agreement(straddling, max(len(ordinals) - 1, 0), cut)
