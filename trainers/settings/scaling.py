"""The settings of where a run's jobs run and how a sweep finds B_opt (docs/scaling.md,
docs/selection.md)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from trainers.settings.declare import SWEEPS, ConfigError, setting
from trainers.settings.kinds import ExecutorKind, Selector


@dataclass
class ExecutionOptions:
    """Where jobs run: in this process, or as Ray tasks."""

    executor: ExecutorKind = setting(
        ExecutorKind.LOCAL,
        "Where jobs run: one after another in this process (local), or each as a Ray task "
        "(ray; pip install 'graphblocks[ray]').",
        choices=ExecutorKind,
    )
    ray_address: str | None = setting(
        None,
        "The Ray cluster to join: auto (the one started on this machine with `ray start "
        "--head`) or HOST:PORT.",
        shown_default="a new local cluster",
        metavar="ADDRESS",
    )
    workers: int | None = setting(
        None, "CPUs of the new local Ray cluster.", shown_default="all cores"
    )
    threads_per_job: int = setting(
        0,
        "Torch threads each job runs on, in this process and in a Ray task alike (a task asks "
        "Ray for as many CPUs, and one GPU when the cluster has GPUs): one count everywhere "
        "gives bit-identical results on every executor. 0: this machine's cores.",
        shown_default="0 (this machine's cores)",
    )

    def check_execution(self) -> None:
        if self.threads_per_job < 0:
            raise ConfigError(f"bad threads-per-job {self.threads_per_job}", "give 0 or more")
        if self.threads_per_job == 0:
            self.threads_per_job = os.cpu_count() or 1
        if self.workers is not None and self.workers < 1:
            raise ConfigError(f"bad workers {self.workers}", "give one or more")


#: the first rung's epochs by default (docs/selection.md: replayed on 18 full sweeps, the
#: blocks' standings after one epoch predict the last on transferred weights, not on random
#: initialisation, where they favour the late blocks that fit a new head fastest)
FIRST_RUNG_TRANSFERRED, FIRST_RUNG_RANDOM_INIT = 1, 3


@dataclass
class SelectionOptions:
    """How a sweep finds B_opt without training every block fully."""

    select: Selector = setting(
        Selector.EVERY_BLOCK,
        "How a sweep finds B_opt: every block for --epochs (full); successive halving over "
        "the blocks (halving); or rank the blocks by relative gradient norm and train only the "
        "top one (gradnorm); or Ray Tune's asynchronous halving (asha, with --executor ray). "
        "BL1 and BL2 run unless --no-baselines.",
        choices=Selector,
        commands=SWEEPS,
    )
    baselines: bool = setting(
        True,
        "A sweep's BL1 (head) and BL2 (full) after its blocks.",
        syntax="flag",
        commands=SWEEPS,
    )
    eta: int = setting(
        3,
        "Successive halving: each rung keeps the best 1/ETA blocks (at least one).",
        commands=SWEEPS,
    )
    min_epochs: int | None = setting(
        None,
        "Successive halving: the first rung's epochs; rung k trains to MIN·ETA^k epochs, the "
        "last one block to --epochs. Auto: 1 from transferred weights (pretrained or "
        "--weights), 3 from random initialisation, whose early rankings mislead "
        "(docs/selection.md), cut to --epochs - 1; one not below --epochs is refused.",
        commands=SWEEPS,
        shown_default="auto",
    )
    gradnorm_probe_epochs: int = setting(
        5,
        "Gradient-norm ranking: epochs of the linear probe (the new head on the frozen "
        "features, BL1's job) fitted before the gradient is taken.",
        commands=SWEEPS,
    )
    gradnorm_batches: int | None = setting(
        None,
        "Gradient-norm ranking: the training batches whose summed gradient scores the blocks.",
        commands=SWEEPS,
        shown_default="all",
    )

    def first_rung(self, transferred: bool, budget: int) -> int:
        """The first rung's epochs: ``min_epochs``, or by the measured rule when auto, cut
        to leave a later rung within ``budget`` epochs (at least 1)."""
        if self.min_epochs is not None:
            return self.min_epochs
        auto = FIRST_RUNG_TRANSFERRED if transferred else FIRST_RUNG_RANDOM_INIT
        return max(1, min(auto, budget - 1))

    def check_selection(self) -> None:
        if (
            self.eta < 2
            or (self.min_epochs is not None and self.min_epochs < 1)
            or self.gradnorm_probe_epochs < 0
        ):
            raise ConfigError(
                "bad selection settings", "eta ≥ 2, min-epochs ≥ 1, gradnorm-probe-epochs ≥ 0"
            )


def check_rungs(budget: int, min_epochs: int | None) -> None:
    """Refuse, in one line naming both values, a halving whose first rung would already be
    the whole ``budget``: every block would train fully, a full sweep under another name."""
    if budget < 2:
        raise ConfigError(
            f"successive halving needs --epochs 2 or more to cut blocks early; --epochs is {budget}",
            "give --epochs 2 or more, or --select full",
        )
    if min_epochs is not None and min_epochs >= budget:
        raise ConfigError(
            f"--min-epochs {min_epochs} is not below --epochs {budget}: halving would train "
            "every block fully",
            f"give --min-epochs from 1 to {budget - 1}, or leave it out",
        )
