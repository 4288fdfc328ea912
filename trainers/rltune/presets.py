"""RL-Tune's two presets: ``practical`` (the default) and ``paper``.

A preset gives the value of every preset-governed RL-Tune setting that the user leaves
at None (see :class:`trainers.config.TrainConfig`); docs/rltune.md explains each value
and the measurements behind the practical one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: RL-Tune's presets: the value of each preset-governed setting left at None
RLTUNE_PRESETS: dict[str, dict[str, Any]] = {
    "practical": {
        "lr_grid": "relative",
        "lr_multipliers": [0.0, 0.0625, 0.125, 0.25, 0.5, 1.0, 2.0, 4.0],
        "base_prob": 0.9,
        "warmup_epochs": 1,
        "ema": 1.0,
        "reward": "next",
        "agent_lr": 3e-3,
        "agent_gamma": 0.5,
        "ppo_steps": 32,
    },
    "paper": {
        "lr_grid": "linear",
        "lr_multipliers": [0.0, 0.0625, 0.125, 0.25, 0.5, 1.0, 2.0, 4.0],
        "base_prob": 0.0,
        "warmup_epochs": 0,
        "ema": 0.2,
        "reward": "eval",
        "agent_lr": 3e-4,
        "agent_gamma": 0.99,
        "ppo_steps": 1,
    },
}


@dataclass(frozen=True)
class RLTuneSettings:
    """RL-Tune's effective settings: the action grid, the policy's start, the moving
    average, the reward and PPO's schedule (see :class:`TrainConfig` for each)."""

    lr_grid: str
    lr_multipliers: tuple[float, ...]
    lr_steps: int
    lr_min: float
    lr_max: float
    base_prob: float
    warmup_epochs: int
    ema: float
    reward: str
    agent_lr: float
    agent_gamma: float
    ppo_steps: int


def preset_default(name: str) -> str:
    """How a preset-governed setting's default reads: ``practical: 1 · paper: 0.2``."""

    def shown(value: Any) -> str:
        return ",".join(f"{v:g}" for v in value) if isinstance(value, list) else f"{value}"

    return " · ".join(f"{p}: {shown(values[name])}" for p, values in RLTUNE_PRESETS.items())
