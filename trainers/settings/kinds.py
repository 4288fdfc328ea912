"""The settings whose values stand for kinds of things, as enums.

Each is a :class:`~enum.StrEnum`: its members compare equal to the strings that the
command line, config files and ``config.toml`` use, so files written before these
enums existed read the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Strategy(StrEnum):
    """What a run trains (``--strategy``; the ``sweep`` and ``rltune`` commands fix it)."""

    HEAD = "head"  #: BL1: the new head
    FULL = "full"  #: BL2: every layer
    BLOCK = "block"  #: one block and the head
    QUARTILE = "quartile"  #: one quartile's blocks and the head
    LAYERS = "layers"  #: the named layers and the head
    SWEEP = "sweep"  #: every block, then BL1 and BL2 (Algorithm 1)
    RLTUNE = "rltune"  #: RL-Tune, then its uniform baseline
    LP_FT = "lp-ft"  #: linear probe, then every layer (Kumar et al. 2022)
    LAYER_DECAY = "layer-decay"  #: every layer, rates decaying toward the input
    L2_SP = "l2-sp"  #: every layer, pulled to the source weights (Li et al. 2018)
    AUTO_RGN = "auto-rgn"  #: every layer at rates ∝ relative gradient norm (Lee et al. 2023)


class JobKind(StrEnum):
    """What a job trains (:data:`JOB_KIND_TABLE`; names in :mod:`trainers.jobs.job`)."""

    HEAD = "head"
    FULL = "full"
    BLOCK = "block"
    QUARTILE = "quartile"
    LAYERS = "layers"
    RLTUNE = "rltune"
    UNIFORM = "uniform"
    LP_FT = "lp-ft"
    LAYER_DECAY = "layer-decay"
    L2_SP = "l2-sp"
    AUTO_RGN = "auto-rgn"


@dataclass(frozen=True)
class KindRow:
    """What is fixed about one job kind."""

    #: how tables, plots and the console name it
    label: str
    #: the ``--strategy`` that runs this kind alone (None: it runs only inside another)
    strategy: Strategy | None = None
    #: a sweep compares its blocks with it: BL1, BL2 and the practitioner's baselines
    baseline: bool = False
    #: one of the practitioner's baselines (a strategy of ``run`` and a sweep's extra job)
    practitioner: bool = False
    #: its job name carries an index (the block, the quartile)
    indexed: bool = False
    #: its colour in plots (baselines)
    color: str | None = None


#: every job kind, once; the lists of kinds elsewhere are read off this table
JOB_KIND_TABLE: dict[JobKind, KindRow] = {
    JobKind.HEAD: KindRow("BL1: head only", Strategy.HEAD, baseline=True, color="#d62728"),
    JobKind.FULL: KindRow("BL2: all layers", Strategy.FULL, baseline=True, color="#2ca02c"),
    JobKind.BLOCK: KindRow("block", Strategy.BLOCK, indexed=True),
    JobKind.QUARTILE: KindRow("quartile", Strategy.QUARTILE, indexed=True),
    JobKind.LAYERS: KindRow("layers", Strategy.LAYERS),
    JobKind.RLTUNE: KindRow("RL-Tune", Strategy.RLTUNE),
    JobKind.UNIFORM: KindRow("uniform"),
    JobKind.LP_FT: KindRow(
        "LP-FT", Strategy.LP_FT, baseline=True, practitioner=True, color="#9467bd"
    ),
    JobKind.LAYER_DECAY: KindRow(
        "layer decay", Strategy.LAYER_DECAY, baseline=True, practitioner=True, color="#8c564b"
    ),
    JobKind.L2_SP: KindRow(
        "L2-SP", Strategy.L2_SP, baseline=True, practitioner=True, color="#e377c2"
    ),
    JobKind.AUTO_RGN: KindRow(
        "Auto-RGN", Strategy.AUTO_RGN, baseline=True, practitioner=True, color="#17becf"
    ),
}


def kinds_where(**flags: bool) -> tuple[JobKind, ...]:
    """The job kinds whose rows have every given flag (``baseline=True``, ...), in the
    table's order."""
    return tuple(
        kind
        for kind, row in JOB_KIND_TABLE.items()
        if all(getattr(row, name) == value for name, value in flags.items())
    )


def kind_of(strategy: Strategy) -> JobKind:
    """The job kind a strategy runs alone (a one-job strategy: not sweep)."""
    return next(kind for kind, row in JOB_KIND_TABLE.items() if row.strategy is strategy)


#: the practitioner's baselines: a strategy of ``run`` each, and a sweep's extra baselines
BASELINE_STRATEGIES: tuple[Strategy, ...] = tuple(
    row.strategy for row in JOB_KIND_TABLE.values() if row.practitioner and row.strategy
)


class Selector(StrEnum):
    """How a sweep finds B_opt (``--select``)."""

    EVERY_BLOCK = "full"  #: train every block for the full budget: no selector
    HALVING = "halving"  #: successive halving over the blocks
    GRADNORM = "gradnorm"  #: rank by relative gradient norm, train the top block
    ASHA = "asha"  #: Ray Tune's asynchronous successive halving


class ExecutorKind(StrEnum):
    """Where a run's jobs run (``--executor``)."""

    LOCAL = "local"  #: one after another in this process
    RAY = "ray"  #: each as a Ray task


class BlockSeeds(StrEnum):
    """How block jobs are seeded (``--block-seeds``)."""

    OWN = "own"  #: each from its own name
    SHARED = "shared"  #: one seed for every block: common random numbers


class Granularity(StrEnum):
    """What gets one learning rate in RL-Tune (``--granularity``)."""

    LAYER = "layer"
    BLOCK = "block"


class BNMode(StrEnum):
    """How tuned BatchNorm layers normalize (``--bn``)."""

    TRAIN = "train"  #: batch statistics while training
    FROZEN = "frozen"  #: every BatchNorm on its running statistics


class CacheMode(StrEnum):
    """Where the activation cache may live (``--cache``)."""

    AUTO = "auto"  #: memory, else disk, within the budgets
    MEMORY = "memory"
    DISK = "disk"
    OFF = "off"


class EvalBN(StrEnum):
    """Which statistics the tuned BatchNorms evaluate with (``--eval-bn``)."""

    RECOMPUTE = "recompute"  #: recomputed over the training images before each evaluation
    RUNNING = "running"  #: the running averages training left
