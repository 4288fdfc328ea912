"""The model's parameters by their real ``state_dict`` names, with tied weights resolved."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True)
class ParamTable:
    """Every distinct parameter tensor of a model, once.

    ``numel`` maps each canonical name (the first name ``named_parameters`` gives a
    tensor) to its element count, in definition order. ``aliases`` maps every other
    name under which the same tensor is reachable (tied weights) to its canonical name.
    """

    numel: dict[str, int]
    aliases: dict[str, str]

    @classmethod
    def from_module(cls, model: nn.Module) -> ParamTable:
        """Read the table off ``model`` (works on the meta device)."""
        canonical_by_id: dict[int, str] = {}
        numel: dict[str, int] = {}
        aliases: dict[str, str] = {}
        for name, param in model.named_parameters(remove_duplicate=False):
            first = canonical_by_id.setdefault(id(param), name)
            if first == name:
                numel[name] = int(param.numel())
            else:
                aliases[name] = first
        return cls(numel, aliases)

    def canonical(self, name: str) -> str | None:
        """The canonical name for ``name``, or None when it is not a parameter."""
        if name in self.numel:
            return name
        return self.aliases.get(name)

    def canonical_all(self, names: Iterable[str]) -> list[str]:
        """Canonical names of ``names`` that are parameters, deduplicated, order kept."""
        seen: dict[str, None] = {}
        for name in names:
            canon = self.canonical(name)
            if canon is not None:
                seen.setdefault(canon)
        return list(seen)

    def count(self, names: Iterable[str]) -> int:
        """Total elements of the distinct canonical parameters among ``names``."""
        return sum(self.numel[n] for n in set(self.canonical_all(names)))

    @property
    def total(self) -> int:
        """Element count of the whole model, tied weights counted once."""
        return sum(self.numel.values())

    def tied_groups(self) -> dict[str, list[str]]:
        """``{canonical: [alias, ...]}`` for every tied parameter."""
        groups: dict[str, list[str]] = {}
        for alias, canon in self.aliases.items():
            groups.setdefault(canon, []).append(alias)
        return {k: sorted(v) for k, v in sorted(groups.items())}
