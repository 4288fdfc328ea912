"""The ``param-groups`` export: optimizer groups any PyTorch script can use.

The file is JSON::

    {"format": "graphblocks-param-groups", "version": 1, "model": "resnet50",
     "groups": [{"name": "block0", "block": 0, "quartile": 1, "lr_scale": 1.0,
                 "params": ["conv1.weight", "bn1.weight", ...]},
                ...,
                {"name": "head", "block": null, "quartile": null, "lr_scale": 1.0,
                 "params": ["fc.weight", "fc.bias"]}]}

``lr_scale`` multiplies the optimizer's learning rate, as in timm's layer-wise decay
(timm's schedulers read the same key). One call turns it into ``torch.optim`` groups,
with graphblocks (:func:`param_groups_from_spec`) or without it::

    named = dict(model.named_parameters())
    groups = [{"params": [named[n] for n in g["params"]], "lr": lr * g["lr_scale"]}
              for g in spec["groups"]]
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from graphblocks.errors import PartitionError

if TYPE_CHECKING:
    from torch import nn

    from graphblocks.partition import Partition

FORMAT = "graphblocks-param-groups"
VERSION = 1


def layer_decay_scales(num_blocks: int, decay: float) -> dict[str, float]:
    """timm-style layer-wise decay: block i of N gets ``decay ** (N - i)``, the head 1."""
    if not 0 < decay <= 1:
        raise PartitionError(f"bad layer decay {decay}", "give a value in (0, 1]")
    scales = {f"block{i}": round(decay ** (num_blocks - i), 8) for i in range(num_blocks)}
    return {**scales, "head": 1.0}


def parse_lr_scales(pairs: list[str] | tuple[str, ...]) -> dict[str, float]:
    """``["0=0.1", "head=2"]`` → ``{"block0": 0.1, "head": 2.0}``."""
    scales: dict[str, float] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        try:
            scale = float(value)
        except ValueError:
            scale = -1.0
        if not sep or scale < 0:
            raise PartitionError(f"bad --lr-scale {pair!r}", "write BLOCK=SCALE or head=SCALE")
        key = key.strip()
        scales[f"block{key}" if key.isdigit() else key] = scale
    return scales


def param_group_spec(
    partition: Partition, lr_scales: Mapping[str, float] | None = None
) -> dict[str, Any]:
    """The export document for ``partition``; unnamed groups get scale 1."""
    scales = dict(lr_scales or {})
    names = [f"block{b.index}" for b in partition.blocks] + ["head"]
    unknown = sorted(set(scales) - set(names))
    if unknown:
        raise PartitionError(
            f"learning-rate scales for unknown groups {unknown}",
            f"use block indices 0..{partition.num_blocks - 1} or 'head'",
        )
    groups = [
        {"name": f"block{b.index}", "block": b.index, "quartile": b.quartile,
         "lr_scale": scales.get(f"block{b.index}", 1.0), "params": list(b.params)}
        for b in partition.blocks
    ]  # fmt: skip
    groups.append({"name": "head", "block": None, "quartile": None,
                   "lr_scale": scales.get("head", 1.0), "params": list(partition.head.params)})  # fmt: skip
    return {"format": FORMAT, "version": VERSION, "model": partition.model.name, "groups": groups}


def param_groups_from_spec(
    spec: Mapping[str, Any] | str | Path, model: nn.Module, lr: float | None = None
) -> list[dict[str, Any]]:
    """``torch.optim`` parameter groups from a ``param-groups`` export (a path or the
    parsed document). Each group keeps ``name`` and ``lr_scale``; with ``lr`` it gets
    ``lr * lr_scale``. Names are checked against ``model`` (tied aliases accepted)."""
    doc: Mapping[str, Any] = spec if isinstance(spec, Mapping) else _read(Path(spec))
    if doc.get("format") != FORMAT:
        raise PartitionError(
            "not a param-groups file", "write one with graphblocks export --to param-groups"
        )
    tensors = dict(model.named_parameters(remove_duplicate=False))
    wanted = [n for g in doc["groups"] for n in g["params"]]
    missing = [n for n in wanted if n not in tensors]
    if missing:
        raise PartitionError(
            f"the model has no parameters {missing[:3]} ({len(missing)} missing)",
            "export the groups from a partition of this model",
        )
    groups: list[dict[str, Any]] = []
    seen: set[int] = set()
    for g in doc["groups"]:
        params = [tensors[n] for n in g["params"] if id(tensors[n]) not in seen]
        seen.update(id(p) for p in params)
        group: dict[str, Any] = {"name": g["name"], "params": params, "lr_scale": g["lr_scale"]}
        if lr is not None:
            group["lr"] = lr * g["lr_scale"]
        if params:
            groups.append(group)
    return groups


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise PartitionError(
            f"cannot read param groups {str(path)!r} ({exc})", "check the path"
        ) from exc
    return data if isinstance(data, dict) else {}
