"""The settings of the practitioner's baselines: LP-FT, layer-wise learning-rate decay,
L2-SP and Auto-RGN (docs/trainers.md, "Other fine-tuning strategies")."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from trainers.settings.declare import SWEEPS, ConfigError, setting
from trainers.settings.kinds import BASELINE_STRATEGIES, Strategy

#: LP-FT's default linear probe: this share of the budget (rounded, at least one epoch and
#: leaving at least one to fine-tune), chosen by bench/baseline_budgets.py (docs/trainers.md)
PROBE_SHARE = 0.4


def parse_strategies(text: str | Sequence[str]) -> list[Strategy]:
    """``lp-ft,l2-sp`` (or a list of names) → the strategies; a one-line error naming
    the unknown one."""
    names = text.split(",") if isinstance(text, str) else list(text)
    chosen = []
    for name in (n.strip() for n in names if n.strip()):
        if name not in BASELINE_STRATEGIES:
            raise ConfigError(
                f"{name!r} is not an extra baseline",
                f"choose from {', '.join(BASELINE_STRATEGIES)}",
            )
        chosen.append(Strategy(name))
    return chosen


@dataclass
class BaselineOptions:
    """LP-FT, layer decay, L2-SP and Auto-RGN: their settings, and which a sweep adds."""

    extra_baselines: list[Strategy] = setting(
        [],
        "A sweep's further baselines after BL1 and BL2, comma-separated: lp-ft, layer-decay, "
        "l2-sp, auto-rgn (each also a --strategy of run).",
        parse=parse_strategies,
        commands=SWEEPS,
        shown_default="none",
        metavar="NAMES",
    )
    probe_epochs: int | None = setting(
        None,
        "LP-FT: epochs of the linear probe (the new head alone, on frozen features) before "
        "fine-tuning every layer; 1 to --epochs - 1. Default: 40% of --epochs, rounded, "
        "within those bounds.",
        commands=SWEEPS,
        shown_default="40% of --epochs",
    )
    lp_ft_lr_scale: float = setting(
        1.0,
        "LP-FT: the fine-tuning phase's learning rate as a share of --lr (Kumar et al. "
        "tune it on validation; below 1, a short budget leaves the network unmoved).",
        commands=SWEEPS,
    )
    layer_decay: float = setting(
        0.75,
        "Layer-wise learning-rate decay: block b of B trains at --lr x DECAY^(B - b), the "
        "head at --lr (timm's param_groups_layer_decay over the partition's blocks).",
        commands=SWEEPS,
    )
    l2sp_alpha: float = setting(
        0.01,
        "L2-SP: weight of (alpha/2)·||w - w0||² pulling the trunk to its source weights w0.",
        commands=SWEEPS,
    )
    l2sp_beta: float = setting(
        0.01, "L2-SP: weight of (beta/2)·||w||² on the new head's weights.", commands=SWEEPS
    )
    rgn_batches: int | None = setting(
        None,
        "Auto-RGN strategy: training batches whose gradient sets each epoch's per-tensor rates.",
        shown_default="all",
        commands=SWEEPS,
    )

    def check_baselines(self) -> None:
        self.extra_baselines = parse_strategies(self.extra_baselines)
        if self.lp_ft_lr_scale <= 0 or not 0 < self.layer_decay <= 1:
            raise ConfigError("bad baseline settings", "lp-ft-lr-scale > 0, 0 < layer-decay <= 1")
        if self.l2sp_alpha < 0 or self.l2sp_beta < 0:
            raise ConfigError("bad L2-SP weights", "give l2sp-alpha and l2sp-beta >= 0")
        if self.rgn_batches is not None and self.rgn_batches < 1:
            raise ConfigError(f"bad rgn-batches {self.rgn_batches}", "give 1 or more")


def lp_ft_phases(budget: int, probe_epochs: int | None) -> tuple[int, int]:
    """LP-FT's (probe, fine-tuning) epochs of a job of ``budget`` epochs: ``probe_epochs``,
    or :data:`PROBE_SHARE` of the budget (rounded, from 1 to ``budget - 1``); a one-line
    :class:`ConfigError` naming both values when either phase would be empty."""
    if budget < 2:
        raise ConfigError(
            f"LP-FT needs two phases, a linear probe and fine-tuning, but --epochs is {budget}",
            "give --epochs 2 or more",
        )
    probe = probe_epochs
    if probe is None:
        probe = min(max(round(PROBE_SHARE * budget), 1), budget - 1)
    elif not 0 < probe < budget:
        empty = "no linear probe" if probe < 1 else f"no fine-tuning within --epochs {budget}"
        raise ConfigError(
            f"--probe-epochs {probe} leaves LP-FT {empty}",
            f"give --probe-epochs from 1 to {budget - 1}, or leave it out "
            f"({PROBE_SHARE:.0%} of --epochs)",
        )
    return probe, budget - probe
