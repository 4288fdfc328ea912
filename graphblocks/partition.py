"""The partition: a dataclass with one JSON serializer, checked against a shipped schema.

The JSON format is documented field by field in ``graphblocks/schema/partition-v2.schema.json``
and in ``docs/partition-format.md``. The same model and settings always serialize
to the same bytes: no timestamps, no timings, keys in a fixed order.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from graphblocks.atomic import write_atomic
from graphblocks.errors import PartitionError, SchemaError

if TYPE_CHECKING:
    from torch import nn

SCHEMA_VERSION = 2
#: every version this graphblocks reads; older ones are upgraded on load (:func:`upgraded`)
SCHEMA_FILES = {1: "partition-v1.schema.json", 2: "partition-v2.schema.json"}


@dataclass
class ModelInfo:
    """What was analyzed and how."""

    name: str
    source: str
    frontend: str
    input_size: list[int]
    num_params: int
    num_nodes: int
    graph_hash: str
    frontend_failures: dict[str, str] = field(default_factory=dict)
    producer: str | None = None


@dataclass
class Layer:
    """A parameter-owning node: ``block`` is None for head layers."""

    name: str
    node: str
    op: str
    role: str
    params: list[str]
    num_params: int
    macs: int | None
    block: int | None


@dataclass
class BlockInfo:
    """One block: the unit that block-wise fine-tuning trains."""

    index: int
    quartile: int
    layers: list[str]
    params: list[str]
    num_params: int
    share: float
    macs: int | None
    entry: str
    exit: str
    exit_shape: list[int] | None
    has_residual: bool
    num_nodes: int
    inputs: list[str]
    outputs: list[str]
    narrowest_refused_cut: int | None = None


@dataclass
class Head:
    """The classifier head, reported apart from the blocks."""

    layers: list[str]
    params: list[str]
    num_params: int
    entry: str | None


@dataclass
class Partition:
    """A model cut into blocks, quartiles and a head, keyed by ``state_dict`` names."""

    model: ModelInfo
    settings: dict[str, Any]
    layers: list[Layer]
    blocks: list[BlockInfo]
    quartiles: dict[str, list[int]]
    quartile_params: dict[str, dict[str, float | int]]
    head: Head
    tied: dict[str, list[str]] = field(default_factory=dict)
    unused: list[str] = field(default_factory=list)
    schema_version: int = SCHEMA_VERSION

    # ---- serialization -------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The JSON document as plain Python data, keys in the documented order."""
        data = dataclasses.asdict(self)
        if data["model"]["producer"] is None:
            del data["model"]["producer"]
        version = data.pop("schema_version")
        return {"schema_version": version, **data}

    def to_json(self) -> str:
        """Serialize, validating against the schema first; ends with a newline."""
        data = self.to_dict()
        validate_document(data)
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Partition:
        """Build from a parsed document, validating it first; a version 1 document is
        upgraded (:func:`upgraded`)."""
        validate_document(data)
        data = upgraded(data)
        return cls(
            model=ModelInfo(**data["model"]),
            settings=dict(data["settings"]),
            layers=[Layer(**x) for x in data["layers"]],
            blocks=[BlockInfo(**b) for b in data["blocks"]],
            quartiles={k: list(v) for k, v in data["quartiles"].items()},
            quartile_params={k: dict(v) for k, v in data["quartile_params"].items()},
            head=Head(**data["head"]),
            tied={k: list(v) for k, v in data.get("tied", {}).items()},
            unused=list(data.get("unused", [])),
            schema_version=data["schema_version"],
        )

    @classmethod
    def from_json(cls, text: str) -> Partition:
        """Parse and validate a JSON document."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SchemaError(
                f"not a partition JSON file ({exc})", "pass a file written by graphblocks partition"
            ) from exc
        if not isinstance(data, dict):
            raise SchemaError("not a partition JSON file (top level is not an object)")
        return cls.from_dict(data)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Partition:
        """Read a partition file."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise PartitionError(
                f"cannot read partition {os.fspath(path)!r} ({exc.strerror})", "check the path"
            ) from exc
        return cls.from_json(text)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write atomically: a reader sees the old file or the new one, never half of one."""
        write_atomic(Path(path), self.to_json())

    # ---- queries -------------------------------------------------------------------
    @property
    def num_blocks(self) -> int:
        """How many blocks (the head not counted)."""
        return len(self.blocks)

    def block_of(self) -> dict[str, int | None]:
        """Canonical parameter name → block index, None for head parameters."""
        owner: dict[str, int | None] = {p: b.index for b in self.blocks for p in b.params}
        owner.update(dict.fromkeys(self.head.params))
        return owner

    def check_coverage(self, parameter_names: Sequence[str]) -> None:
        """Assert every canonical parameter lands in exactly one block or the head."""
        placed = [p for b in self.blocks for p in b.params] + list(self.head.params)
        doubled = sorted(p for p, n in Counter(placed).items() if n > 1)
        missing = sorted(set(parameter_names) - set(placed))
        extra = sorted(set(placed) - set(parameter_names))
        if doubled or missing or extra:
            raise PartitionError(
                f"partition does not cover the parameters exactly once "
                f"(doubled: {_few(doubled)}; missing: {_few(missing)}; extra: {_few(extra)})"
            )

    def check_model(self, model: nn.Module) -> None:
        """Raise :class:`PartitionError` when ``model``'s parameters are not this partition's."""
        names = [n for n, _ in model.named_parameters()]
        placed = set(self.block_of())
        missing, extra = sorted(placed - set(names)), sorted(set(names) - placed)
        if missing or extra:
            raise PartitionError(
                f"partition for {self.model.name!r} does not match the model: "
                f"{len(missing)} partition parameters not in the model ({_few(missing)}), "
                f"{len(extra)} model parameters not in the partition ({_few(extra)})",
                "recompute it with graphblocks partition on this model",
            )

    def param_groups(
        self, model: nn.Module, lrs: Sequence[float] | Mapping[str | int, float] | None = None
    ) -> list[dict[str, Any]]:
        """``torch.optim`` parameter groups: one per block (``block0``...) then ``head``.

        ``lrs`` sets a per-group learning rate: a sequence with one value per block and
        optionally one more for the head, or a mapping keyed by block index or group
        name (``"head"``). Groups without a rate use the optimizer's default.
        """
        self.check_model(model)
        tensors = dict(model.named_parameters())
        names = [f"block{b.index}" for b in self.blocks] + ["head"]
        members = [b.params for b in self.blocks] + [self.head.params]
        rates = _rates_by_group(lrs, names)
        groups = []
        for group_name, params in zip(names, members, strict=True):
            group: dict[str, Any] = {"name": group_name, "params": [tensors[p] for p in params]}
            if group_name in rates:
                group["lr"] = rates[group_name]
            groups.append(group)
        return [g for g in groups if g["params"]]


def _rates_by_group(
    lrs: Sequence[float] | Mapping[str | int, float] | None, names: list[str]
) -> dict[str, float]:
    if lrs is None:
        return {}
    if isinstance(lrs, Mapping):
        rates = {(f"block{k}" if isinstance(k, int) else k): float(v) for k, v in lrs.items()}
        unknown = sorted(set(rates) - set(names))
        if unknown:
            raise PartitionError(
                f"learning rates for unknown groups {unknown}",
                f"use block indices 0..{len(names) - 2} or 'head'",
            )
        return rates
    if len(lrs) not in (len(names) - 1, len(names)):
        raise PartitionError(
            f"{len(lrs)} learning rates for {len(names) - 1} blocks",
            f"give {len(names) - 1} (blocks) or {len(names)} (blocks then head)",
        )
    return {n: float(v) for n, v in zip(names, lrs, strict=False)}


def _few(names: Sequence[str], k: int = 3) -> str:
    if not names:
        return "none"
    more = f", … {len(names) - k} more" if len(names) > k else ""
    return ", ".join(names[:k]) + more


@cache
def partition_schema(version: int = SCHEMA_VERSION) -> dict[str, Any]:
    """The shipped JSON Schema for partition documents of ``version``."""
    files = resources.files("graphblocks.schema")
    schema: dict[str, Any] = json.loads(
        files.joinpath(SCHEMA_FILES[version]).read_text(encoding="utf-8")
    )
    return schema


def validate_document(data: Mapping[str, Any]) -> None:
    """Raise :class:`SchemaError` naming the first place ``data`` breaks the schema of
    its own ``schema_version`` (the current one when it names none this graphblocks reads)."""
    import jsonschema

    version = data.get("schema_version") if isinstance(data, Mapping) else None
    known = version if version in SCHEMA_FILES else SCHEMA_VERSION
    validator = jsonschema.Draft202012Validator(partition_schema(known))
    error = jsonschema.exceptions.best_match(validator.iter_errors(data))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        hint = (
            f"this file has schema_version {version!r}; this graphblocks reads "
            f"{', '.join(map(str, SCHEMA_FILES))}"
            if version not in SCHEMA_FILES
            else "regenerate it with graphblocks partition"
        )
        raise SchemaError(f"invalid partition at {where}: {error.message}", hint)


def upgraded(data: Mapping[str, Any]) -> Mapping[str, Any]:
    """A valid document in the current version. Version 1 cut only where one tensor
    crosses: each block's inputs are its entry, its outputs its exit."""
    if data["schema_version"] == SCHEMA_VERSION:
        return data
    blocks = [
        {**b, "inputs": [b["entry"]], "outputs": [b["exit"]], "narrowest_refused_cut": None}
        for b in data["blocks"]
    ]
    settings = {**data["settings"], "max_crossing": 1}
    return {**data, "blocks": blocks, "settings": settings, "schema_version": SCHEMA_VERSION}
