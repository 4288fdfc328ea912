"""The settings whose values stand for kinds of things, as enums.

Each is a :class:`~enum.StrEnum`: its members compare equal to the strings that the
command line, config files and ``config.toml`` use, so files written before these
enums existed read the same.
"""

from __future__ import annotations

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


#: the practitioner's baselines: a strategy of ``run`` each, and a sweep's extra baselines
BASELINE_STRATEGIES = (
    Strategy.LP_FT, Strategy.LAYER_DECAY, Strategy.L2_SP, Strategy.AUTO_RGN,
)  # fmt: skip


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
