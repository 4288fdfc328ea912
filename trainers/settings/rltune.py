"""RL-Tune's settings (Mahmud et al. 2022) and its two presets: ``practical`` (the
default) and ``paper``.

A preset gives the value of every preset-governed setting that the user leaves at None;
docs/rltune.md explains each value and the measurements behind the practical one.
:meth:`RLTuneOptions.rltune_settings` resolves them into :class:`RLTuneSettings`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from trainers.settings.declare import RLTUNE_ONLY, ConfigError, parse_floats, setting
from trainers.settings.kinds import Granularity

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
    average, the reward and PPO's schedule (see :class:`RLTuneOptions` for each)."""

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


@dataclass
class RLTuneOptions:
    """RL-Tune's settings (``epochs`` counts the epochs per episode); None: the preset's value."""

    preset: str = setting(
        "practical",
        "RL-Tune's defaults: practical (rates relative to --lr, the first policy acts at --lr, "
        "reward on the next batch) or paper (Mahmud et al. 2022 as stated). See docs/rltune.md.",
        choices=tuple(RLTUNE_PRESETS),
        commands=RLTUNE_ONLY,
    )
    granularity: Granularity = setting(
        Granularity.LAYER,
        "One learning rate per weighted layer, or per block.",
        choices=Granularity,
        commands=RLTUNE_ONLY,
    )
    episodes: int = setting(5, "Episodes of episodic moving-average control.", commands=RLTUNE_ONLY)
    lr_grid: str | None = setting(
        None,
        "relative: the agent picks a multiple of --lr from --lr-multipliers; "
        "linear: one of --lr-steps rates from --lr-min to --lr-max.",
        choices=("relative", "linear"),
        commands=RLTUNE_ONLY,
        shown_default=preset_default("lr_grid"),
    )
    lr_multipliers: list[float] | None = setting(
        None,
        "The relative grid's multiples of --lr (include 1 for the base rate).",
        parse=parse_floats,
        metavar="M,M,...",
        commands=RLTUNE_ONLY,
        shown_default=preset_default("lr_multipliers"),
    )
    lr_steps: int = setting(20, "The linear grid's number of rates.", commands=RLTUNE_ONLY)
    lr_min: float = setting(0.0, "The linear grid's smallest rate, included.", commands=RLTUNE_ONLY)
    lr_max: float = setting(0.01, "The linear grid's largest rate, included.", commands=RLTUNE_ONLY)
    base_prob: float | None = setting(
        None,
        "The first policy's probability of the base rate (1×) per unit; 0: the agent's "
        "random initial policy.",
        commands=RLTUNE_ONLY,
        shown_default=preset_default("base_prob"),
    )
    warmup_epochs: int | None = setting(
        None,
        "First epochs in which the agent takes its most likely action and does not learn "
        "(with base-prob > 0: plain fine-tuning at --lr); below --episodes × --epochs, so "
        "that the agent acts in at least one.",
        commands=RLTUNE_ONLY,
        shown_default=preset_default("warmup_epochs"),
    )
    ema: float | None = setting(
        None,
        "After each episode: source ← (1 − EMA)·source + EMA·target for the parameters, "
        "BatchNorm statistics recomputed; 1: the target carries on (weights, Adam moments, data).",
        commands=RLTUNE_ONLY,
        shown_default=preset_default("ema"),
    )
    reward: str | None = setting(
        None,
        "The reward of a step: accuracy of the updated model on the batch it trained on, in "
        "eval or train mode, or on the next batch (next: from that batch's training forward, free).",
        choices=("eval", "train", "next"),
        commands=RLTUNE_ONLY,
        shown_default=preset_default("reward"),
    )
    agent_lr: float | None = setting(
        None,
        "Adam learning rate of the agent (PPO).",
        commands=RLTUNE_ONLY,
        shown_default=preset_default("agent_lr"),
    )
    agent_gamma: float | None = setting(
        None,
        "Discount of the agent's return (how far ahead a rate's effect on the reward counts).",
        commands=RLTUNE_ONLY,
        shown_default=preset_default("agent_gamma"),
    )
    ppo_steps: int | None = setting(
        None,
        "Interactions a PPO update waits for (checked at each epoch end; 1: every epoch).",
        commands=RLTUNE_ONLY,
        shown_default=preset_default("ppo_steps"),
    )

    def rltune_settings(self) -> RLTuneSettings:
        """RL-Tune's settings, with the preset's value for each one left at None."""
        preset = RLTUNE_PRESETS[self.preset]
        values = {
            f.name: preset[f.name] if getattr(self, f.name) is None else getattr(self, f.name)
            for f in dataclasses.fields(RLTuneSettings)
        }
        values["lr_multipliers"] = tuple(values["lr_multipliers"])
        return RLTuneSettings(**values)

    def check_rltune(self) -> None:
        rl = self.rltune_settings()
        if (
            not 0 < rl.ema <= 1
            or self.episodes < 1
            or rl.lr_steps < 2
            or not 0 <= rl.lr_min < rl.lr_max
            or not 0 <= rl.base_prob < 1
            or rl.warmup_epochs < 0
            or rl.ppo_steps < 1
            or rl.agent_lr <= 0
            or not 0 <= rl.agent_gamma <= 1
            or (
                rl.lr_grid == "relative"
                and (len(rl.lr_multipliers) < 2 or min(rl.lr_multipliers) < 0)
            )
        ):
            raise ConfigError(
                "bad RL-Tune settings",
                "episodes ≥ 1, lr-steps ≥ 2, 0 ≤ lr-min < lr-max, 0 < ema ≤ 1, 0 ≤ base-prob < 1, "
                "warmup-epochs ≥ 0, ppo-steps ≥ 1, agent-lr > 0, two or more multipliers ≥ 0",
            )


def rltune_epochs(episodes: int, epochs: int) -> int:
    """The epochs RL-Tune trains in all, ``episodes`` of ``epochs`` each: the budget its
    uniform baseline gets, the span of its warm-up check, the scale of its progress."""
    return episodes * epochs


def check_warmup(total_epochs: int, warmup_epochs: int, from_preset: bool) -> None:
    """Refuse, in one line naming both values, a warm-up (given, or the preset's) that
    leaves RL-Tune's agent no epoch to act in: every epoch greedy is plain fine-tuning at the
    first policy's rates, and what the agent learns is never used."""
    if warmup_epochs >= total_epochs:
        source = "the preset's warm-up of" if from_preset else "--warmup-epochs"
        raise ConfigError(
            f"{source} {warmup_epochs} leaves RL-Tune's agent no epoch to act in "
            f"({total_epochs} epochs: --episodes × --epochs)",
            f"give --episodes × --epochs above {warmup_epochs}, or --warmup-epochs below "
            f"{total_epochs}",
        )
