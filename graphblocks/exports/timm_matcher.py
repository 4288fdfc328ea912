"""The ``timm`` export: a ``group_matcher`` dict of regular expressions, one per block.

timm's ``group_with_matcher`` gives each parameter the ordinal of the first pattern
that matches its name (``re.match``); unmatched parameters (our head) come last. So
``{"block0": r0, "block1": r1, ...}`` with disjoint patterns yields exactly our blocks.

Each pattern is as short as the names allow: a module prefix (``^(?:layer1\\.0\\.)``)
wherever every parameter under that module is in the block, the full name otherwise.
"""

from __future__ import annotations

import re

from graphblocks.partition import Partition


def _prefixes(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def block_patterns(groups: list[list[str]]) -> list[str]:
    """One anchored regex per group of parameter names, matching that group only."""
    group_of = {name: i for i, names in enumerate(groups) for name in names}
    owners: dict[str, set[int]] = {}
    for name, i in group_of.items():
        for prefix in _prefixes(name):
            owners.setdefault(prefix, set()).add(i)
    patterns = []
    for i, names in enumerate(groups):
        pieces: dict[str, None] = {}
        for name in names:
            own = [p for p in _prefixes(name) if owners[p] == {i}]
            pieces[re.escape(own[0]) + r"\." if own else re.escape(name) + "$"] = None
        patterns.append("^(?:" + "|".join(pieces) + ")" if pieces else "^(?!)")
    return patterns


def group_matcher(partition: Partition, head: bool = False) -> dict[str, str]:
    """``{"block0": pattern, ...}`` for timm's ``group_parameters``; with ``head`` the
    head gets its own last pattern instead of timm's unmatched group."""
    groups = [b.params for b in partition.blocks] + [partition.head.params]
    names = [f"block{b.index}" for b in partition.blocks] + ["head"]
    patterns = dict(zip(names, block_patterns(groups), strict=True))
    if not head:
        del patterns["head"]  # the head's names still kept the blocks' prefixes apart
    return patterns
