"""Every setting of a fine-tuning run, in one dataclass with one file format.

Precedence: defaults < ``--config FILE`` (TOML or YAML) < command-line flags. The run
folder keeps the resolved settings as ``config.toml``, enough to repeat the run with
``graphblocks-train run --config RUN/config.toml``. Defaults follow Barakat & Huang
(2023): Adam, batch 24, 10 epochs, a 70/20/10 split, images scaled to [0, 1].
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from graphblocks.errors import GraphblocksError


class ConfigError(GraphblocksError):
    """A setting or a config file that cannot be used."""


CHOICES: dict[str, tuple[str, ...]] = {
    "strategy": ("head", "full", "block", "quartile", "layers", "sweep", "rltune"),
    "granularity": ("layer", "block"),
    "reward": ("eval", "train"),
    "head": ("paper", "linear"),
    "preprocess": ("unit", "timm"),
    "schedule": ("constant", "cosine"),
    "bn": ("train", "frozen"),
    "cache": ("auto", "memory", "disk", "off"),
    "cache_dtype": ("float16", "float32"),
    "device": ("auto", "cpu", "cuda", "mps"),
}


@dataclass
class TrainConfig:
    """All settings; the field names are the config-file keys and the flags' names."""

    model: str = ""
    model_args: dict[str, Any] = field(default_factory=dict)
    data: str = ""
    out: str = ""
    partition: str | None = None
    strategy: str = "sweep"
    block: int | None = None
    quartile: int | None = None
    names: list[str] = field(default_factory=list)
    # data
    split: list[float] = field(default_factory=lambda: [0.7, 0.2, 0.1])
    sample_rate: float = 1.0
    input_size: list[int] | None = None
    preprocess: str = "unit"
    augment: bool = False
    strict: bool = False
    # model
    pretrained: bool = True
    weights: str | None = None
    head: str = "paper"
    head_hidden: int = 512
    head_dropout: float = 0.5
    bn: str = "train"
    # optimisation
    epochs: int = 10
    batch_size: int = 24
    lr: float = 1e-3
    weight_decay: float = 0.0
    schedule: str = "constant"
    patience: int | None = None
    seed: int = 0
    deterministic: bool = False
    device: str = "auto"
    amp: bool = True
    # speed
    cache: str = "auto"
    cache_dtype: str = "float16"
    cache_memory_gb: float = 4.0
    cache_disk_gb: float = 20.0
    resume: bool = False
    # RL-Tune (epochs above are the epochs per episode)
    granularity: str = "layer"
    episodes: int = 5
    lr_steps: int = 20
    lr_min: float = 0.0
    lr_max: float = 0.01
    ema: float = 0.2
    reward: str = "eval"

    def __post_init__(self) -> None:
        for key, allowed in CHOICES.items():
            if getattr(self, key) not in allowed:
                raise ConfigError(
                    f"bad {key} {getattr(self, key)!r}", f"choose from {', '.join(allowed)}"
                )
        if len(self.split) != 3 or abs(sum(self.split) - 1) > 1e-6 or min(self.split) < 0:
            raise ConfigError(
                f"bad split {self.split}", "give three shares that sum to 1, e.g. 0.7,0.2,0.1"
            )
        if not 0 < self.sample_rate <= 1:
            raise ConfigError(f"bad sample rate {self.sample_rate}", "give a share in (0, 1]")
        if (
            not 0 < self.ema <= 1
            or self.episodes < 1
            or self.lr_steps < 2
            or not 0 <= self.lr_min < self.lr_max
        ):
            raise ConfigError(
                "bad RL-Tune settings",
                "episodes ≥ 1, lr-steps ≥ 2, 0 ≤ lr-min < lr-max, 0 < ema ≤ 1",
            )
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ConfigError(
                "epochs, batch size and learning rate must be positive", "fix the setting"
            )

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


FIELDS = {f.name for f in dataclasses.fields(TrainConfig)}


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


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Settings from a TOML (``.toml``) or YAML (``.yaml``/``.yml``) file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"cannot read config {str(path)!r} ({exc.strerror})", "check the path"
        ) from exc
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        else:
            data = tomllib.loads(text)
    except Exception as exc:
        raise ConfigError(f"cannot parse {path.name}: {exc}", "fix the file's syntax") from exc
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
    settings: dict[str, Any] = dict(read_config_file(file)) if file else {}
    settings.update({k: v for k, v in overrides.items() if k in FIELDS})
    try:
        return TrainConfig(**settings)
    except TypeError as exc:
        raise ConfigError(f"bad settings: {exc}", "check the keys and their types") from exc
