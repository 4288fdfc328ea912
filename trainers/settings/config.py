"""Every setting of a fine-tuning run, in one flat dataclass: the single source of truth.

:class:`TrainConfig` inherits one dataclass per concern (:mod:`trainers.settings.groups`,
:mod:`trainers.settings.scaling`, :mod:`trainers.settings.rltune`), each field declared
with :func:`~trainers.settings.declare.setting`: its default, its help text, its allowed
values and the commands that offer it. From those declarations come the
``graphblocks-train`` flags (:mod:`trainers.cli`), the TOML/YAML loader
(:func:`resolve_config`) and the settings table of ``docs/trainers.md``
(:mod:`trainers.settings.table`, checked by a test).

Precedence: defaults < ``--config FILE`` (TOML or YAML) < command-line flags. The run
folder keeps the resolved settings as ``config.toml``, enough to repeat the run with
``graphblocks-train run --config RUN/config.toml``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomllib

from trainers.settings.baselines import BaselineOptions, lp_ft_phases
from trainers.settings.declare import (
    COMMANDS,
    EVERY_COMMAND,
    ConfigError,
    Setting,
    check_choice,
)
from trainers.settings.groups import (
    DataOptions,
    ModelOptions,
    OptimizationOptions,
    SourceOptions,
    SpeedOptions,
    StrategyOptions,
)
from trainers.settings.kinds import BASELINE_STRATEGIES, ExecutorKind, Selector, Strategy
from trainers.settings.rltune import RLTuneOptions, check_warmup, rltune_epochs
from trainers.settings.scaling import ExecutionOptions, SelectionOptions, check_rungs

__all__ = ["COMMANDS", "EVERY_COMMAND", "ConfigError", "TrainConfig", "resolve_config", "settings"]


@dataclass
class TrainConfig(
    BaselineOptions,
    RLTuneOptions,
    SelectionOptions,
    ExecutionOptions,
    SpeedOptions,
    OptimizationOptions,
    ModelOptions,
    DataOptions,
    StrategyOptions,
    SourceOptions,
):
    """All settings; the field names are the config-file keys and the flags' names.
    The groups are listed last-first: a dataclass takes its bases' fields from the last
    base to the first, so the settings keep their documented order."""

    def __post_init__(self) -> None:
        for spec in settings():
            setattr(self, spec.name, check_choice(spec, getattr(self, spec.name)))
        self.check_data()
        self.check_rltune()
        self.check_execution()
        self.check_selection()
        self.check_baselines()
        if self.select is Selector.ASHA and self.executor is not ExecutorKind.RAY:
            raise ConfigError(
                "--select asha runs on Ray Tune", "add --executor ray, or use --select halving"
            )
        if self.select is not Selector.EVERY_BLOCK and self.strategy is not Strategy.SWEEP:
            raise ConfigError(
                f"--select {self.select} chooses among the blocks of a sweep",
                "use graphblocks-train sweep, or --strategy sweep",
            )
        self.check_optimization()
        self.check_budgets()

    def check_budgets(self) -> None:
        """Refuse, in one line naming both values, a setting that leaves a phase of what
        this run trains empty within ``epochs``: LP-FT's probe or fine-tuning, halving's
        later rungs, the epochs in which RL-Tune's agent acts."""
        if Strategy.LP_FT in self.baselines_run():
            self.lp_ft_phases()
        if self.select in (Selector.HALVING, Selector.ASHA):
            check_rungs(self.epochs, self.min_epochs)
        if self.strategy is Strategy.RLTUNE:
            warmup = self.rltune_settings().warmup_epochs
            check_warmup(self.rltune_epochs, warmup, self.warmup_epochs is None)

    @property
    def rltune_epochs(self) -> int:
        """The epochs RL-Tune trains in all (:func:`~trainers.settings.rltune.rltune_epochs`)."""
        return rltune_epochs(self.episodes, self.epochs)

    def baselines_run(self) -> list[Strategy]:
        """The practitioner's baselines this run trains: its strategy, or a sweep's extras."""
        if self.strategy in BASELINE_STRATEGIES:
            return [self.strategy]
        return list(self.extra_baselines) if self.strategy is Strategy.SWEEP else []

    def lp_ft_phases(self) -> tuple[int, int]:
        """LP-FT's (probe, fine-tuning) epochs within ``epochs`` (see
        :func:`~trainers.settings.baselines.lp_ft_phases`)."""
        return lp_ft_phases(self.epochs, self.probe_epochs)

    def to_toml(self) -> str:
        """The settings as TOML (None values left out: they are the defaults)."""
        lines = [
            "# graphblocks-train settings; repeat with: graphblocks-train run --config THIS_FILE"
        ]
        for key, value in dataclasses.asdict(self).items():
            if value is not None:
                lines.append(f"{key} = {_toml_value(value)}")
        return "\n".join(lines) + "\n"

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with ``changes`` applied (validated)."""
        return dataclasses.replace(self, **changes)


def settings() -> Iterator[Setting]:
    """Every declared setting of :class:`TrainConfig`, in declaration order."""
    for f in dataclasses.fields(TrainConfig):
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        yield Setting(f.name, default, f.metadata["setting"])


FIELDS = frozenset(f.name for f in dataclasses.fields(TrainConfig))


def default_of(name: str) -> Any:
    """The default value of setting ``name``."""
    return next(s.default for s in settings() if s.name == name)


def _toml_value(value: Any) -> str:
    """A TOML value: JSON spells strings, numbers, booleans and arrays the same way;
    tables are written inline."""
    if isinstance(value, Mapping):
        return (
            "{"
            + ", ".join(f"{json.dumps(str(k))} = {_toml_value(v)}" for k, v in value.items())
            + "}"
        )
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(value)


def _parse_file(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"cannot read config {str(path)!r} ({exc.strerror})", "check the path"
        ) from exc
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            return yaml.safe_load(text) or {}
        return tomllib.loads(text)
    except Exception as exc:
        raise ConfigError(f"cannot parse {path.name}: {exc}", "fix the file's syntax") from exc


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Settings from a TOML (``.toml``) or YAML (``.yaml``/``.yml``) file."""
    path = Path(path)
    data = _parse_file(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path.name} is not a table of settings", "write key = value lines")
    unknown = sorted(set(data) - FIELDS)
    if unknown:
        raise ConfigError(
            f"unknown settings {unknown} in {path.name}", f"known: {', '.join(sorted(FIELDS))}"
        )
    return data


def resolve_config(file: str | Path | None, overrides: Mapping[str, Any]) -> TrainConfig:
    """Defaults, then the file's settings, then ``overrides`` (the flags given)."""
    values: dict[str, Any] = dict(read_config_file(file)) if file else {}
    values.update({k: v for k, v in overrides.items() if k in FIELDS})
    try:
        return TrainConfig(**values)
    except TypeError as exc:
        raise ConfigError(f"bad settings: {exc}", "check the keys and their types") from exc
