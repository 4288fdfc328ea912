"""The settings of a fine-tuning run: declared once, by concern; the lowest layer of
:mod:`trainers` (it imports no other part of it)."""

from trainers.settings.config import TrainConfig, default_of, resolve_config, settings
from trainers.settings.declare import COMMANDS, ConfigError
from trainers.settings.kinds import (
    BlockSeeds,
    BNMode,
    CacheMode,
    EvalBN,
    ExecutorKind,
    Granularity,
    Selector,
    Strategy,
)

__all__ = [
    "COMMANDS",
    "BNMode",
    "BlockSeeds",
    "CacheMode",
    "ConfigError",
    "EvalBN",
    "ExecutorKind",
    "Granularity",
    "Selector",
    "Strategy",
    "TrainConfig",
    "default_of",
    "resolve_config",
    "settings",
]
