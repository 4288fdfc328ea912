"""The study's settings: one TOML file (``configs/study.toml``) read into dataclasses.

A study is models × targets × seeds. For every (model, target, seed) it runs the block
sweep (BL1, BL2, every block, and ``[train]``'s ``extra_baselines``; B_opt and quartiles
follow) on the whole training split, with ``halving`` also B_opt by successive halving,
and RL-Tune with its uniform baseline at every sampling rate. ``[source]`` says where
the models' weights come from: pre-training on the generated source task
(``kind = "generated"``), timm/torchvision ImageNet weights (``"pretrained"``, the
papers' protocols), or a weights file per model (``"weights"``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import tomllib

from trainers.settings.config import FIELDS as TRAIN_FIELDS
from trainers.settings.config import ConfigError, default_of
from trainers.settings.rltune import rltune_epochs

TARGET_KINDS = ("digits", "photos", "shifted", "faces", "folder")
SOURCE_KINDS = ("generated", "pretrained", "weights")
GENERATED_CLASSES = 16  # trainers.study.datasets: 8 shapes × 2 fills


@dataclass(frozen=True)
class ModelSpec:
    """One model of the study: a graphblocks model name and its factory arguments."""

    name: str
    label: str = ""
    model_args: dict[str, Any] = field(default_factory=dict)
    family: str = ""
    #: the analysis settings of its partition (None: graphblocks' defaults)
    max_blocks: int | None = None
    max_crossing: int | None = None
    delimiters: tuple[str, ...] | None = None
    weights: str | None = None  # source.kind = "weights": the file for this model
    lr: float | None = None  # pre-training rate when not the source's
    epochs: int | None = None  # pre-training epochs when not the source's
    init: str = "model"  # pre-training starts from the factory's init, or "torch"'s defaults
    #: fine-tune from the factory's random initialisation, whatever ``[source]`` says
    random_init: bool = False

    def __post_init__(self) -> None:
        if self.delimiters is not None:
            object.__setattr__(self, "delimiters", tuple(self.delimiters))
        if self.init not in ("model", "torch"):
            raise ConfigError(
                f"model {self.name!r} has unknown init {self.init!r}", "use model or torch"
            )

    @property
    def key(self) -> str:
        """A short, file-safe name."""
        return self.label or self.name.rpartition(":")[2]


@dataclass(frozen=True)
class TargetSpec:
    """One target task: a generated one (``digits``, ``photos``, ``shifted``) or an
    image folder (``folder`` with ``path``)."""

    name: str
    kind: str
    path: str | None = None
    per_class: int = 50

    def __post_init__(self) -> None:
        if self.kind not in TARGET_KINDS:
            raise ConfigError(
                f"target {self.name!r} has unknown kind {self.kind!r}",
                f"choose from {', '.join(TARGET_KINDS)}",
            )
        if self.kind == "folder" and not self.path:
            raise ConfigError(
                f"target {self.name!r} is a folder but has no path",
                "add path = 'DIR', or pass --data NAME=DIR",
            )


@dataclass(frozen=True)
class SourceSpec:
    """Where the models' weights come from, and the generated source task's settings."""

    kind: str = "generated"
    classes: int = 16
    per_class: int = 150
    epochs: int = 10
    batch_size: int = 64
    lr: float = 2e-3
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in SOURCE_KINDS:
            raise ConfigError(
                f"unknown source kind {self.kind!r}", f"choose from {', '.join(SOURCE_KINDS)}"
            )
        if self.kind == "generated" and self.classes != GENERATED_CLASSES:
            raise ConfigError(
                f"the generated source task has {GENERATED_CLASSES} classes, not {self.classes}",
                f"set classes = {GENERATED_CLASSES} or leave it out",
            )


@dataclass(frozen=True)
class RLTuneSpec:
    """RL-Tune's episodes, epochs per episode and unit granularity in the study."""

    enabled: bool = True
    episodes: int = default_of("episodes")
    epochs: int = default_of("epochs")
    granularity: str = default_of("granularity")

    @property
    def total_epochs(self) -> int:
        """The epochs RL-Tune trains in all (:func:`~trainers.settings.rltune.rltune_epochs`)."""
        return rltune_epochs(self.episodes, self.epochs)


@dataclass(frozen=True)
class StudyConfig:
    """Every setting of a study (see the module docstring)."""

    models: tuple[ModelSpec, ...]
    targets: tuple[TargetSpec, ...]
    title: str = "graphblocks transfer study"
    out: str = "runs/study"
    docs: str = "docs/study.md"
    images: str = "docs/images/study"
    seeds: tuple[int, ...] = (0, 1, 2)
    sample_rates: tuple[float, ...] = (0.15, 0.3, 0.5, 1.0)
    input_size: int = 32
    workers: int = 2
    #: where the runs' jobs run: worker processes (local) or Ray tasks (ray)
    executor: str = "local"
    ray_address: str | None = None
    sweep: bool = True  # BL1, BL2 and every block on the whole training split
    halving: bool = False  # B_opt found by successive halving too, in its own run folder
    source: SourceSpec = field(default_factory=SourceSpec)
    rltune: RLTuneSpec = field(default_factory=RLTuneSpec)
    train: dict[str, Any] = field(default_factory=dict)  # TrainConfig settings of every run
    config_path: str = ""

    def __post_init__(self) -> None:
        if not self.models or not self.targets or not self.seeds:
            raise ConfigError("a study needs models, targets and seeds", "list them in the file")
        if self.executor not in ("local", "ray"):
            raise ConfigError(f"unknown executor {self.executor!r}", "choose local or ray")
        if not all(0 < r <= 1 for r in self.sample_rates) or not self.sample_rates:
            raise ConfigError("bad sample_rates", "give shares in (0, 1], e.g. [0.15, 0.3, 1.0]")
        unknown = sorted(set(self.train) - TRAIN_FIELDS)
        if unknown:
            raise ConfigError(f"unknown [train] settings {unknown}", "use graphblocks-train's keys")
        for keys, what in (
            ([m.key for m in self.models], "model"),
            ([t.name for t in self.targets], "target"),
        ):
            if len(set(keys)) != len(keys):
                raise ConfigError(f"two {what}s share a name", f"give each {what} its own label")

    def source_hash(self, model: ModelSpec) -> str:
        """What a pre-trained checkpoint depends on: the model, the source task, the
        input size (12 hex digits)."""
        blob = json.dumps(
            [
                model.name,
                model.model_args,
                model.lr,
                model.epochs,
                model.init,
                asdict(self.source),
                self.input_size,
            ],
            sort_keys=True,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _build(cls: type, table: dict[str, Any], where: str) -> Any:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(table) - known)
    if unknown:
        raise ConfigError(
            f"unknown keys {unknown} in {where}", f"known: {', '.join(sorted(known))}"
        )
    try:
        return cls(**table)
    except TypeError as exc:
        raise ConfigError(f"bad {where}: {exc}", "check the keys and their types") from exc


def load_study(path: str | Path, overrides: dict[str, Any] | None = None) -> StudyConfig:
    """The study described by the TOML file at ``path``; ``overrides`` replace top-level
    keys (``out``, ``docs``, ``workers``, ...) and ``data`` maps target names to folders."""
    path = Path(path)
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read {str(path)!r} ({exc.strerror})", "check the path") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"cannot parse {path.name}: {exc}", "fix the TOML syntax") from exc
    overrides = dict(overrides or {})
    folders: dict[str, str] = overrides.pop("data", {}) or {}
    table.update({k: v for k, v in overrides.items() if v is not None})
    targets = []
    for t in table.pop("targets", []):
        if t.get("name") in folders:
            t = {**t, "kind": "folder", "path": folders.pop(t["name"])}
        targets.append(_build(TargetSpec, t, f"target {t.get('name', '?')}"))
    if folders:
        raise ConfigError(
            f"--data names unknown targets {sorted(folders)}",
            f"targets of {path.name}: {', '.join(t.name for t in targets)}",
        )
    models = [_build(ModelSpec, m, f"model {m.get('name', '?')}") for m in table.pop("models", [])]
    source = _build(SourceSpec, table.pop("source", {}), "[source]")
    rltune = _build(RLTuneSpec, table.pop("rltune", {}), "[rltune]")
    for key in ("seeds", "sample_rates"):
        if key in table:
            table[key] = tuple(table[key])
    return _build(
        StudyConfig,
        {
            **table,
            "models": tuple(models),
            "targets": tuple(targets),
            "source": source,
            "rltune": rltune,
            "config_path": str(path),
        },
        path.name,
    )
