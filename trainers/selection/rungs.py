"""What every selector shares: the rungs' epochs, promotions by the one ranking rule, and
the epochs a result has trained.

The rungs end at ``r_k = r₀·η^k`` for every k with ``r₀·η^k < R``, then ``R`` (ASHA's
milestones: grace period r₀, reduction factor η, maximum R). A rung keeps blocks by
:func:`trainers.jobs.results.ranked`: the higher score first, then the lower loss, the
earlier block only on an exact tie.
"""

from __future__ import annotations

from trainers.execution.tasks import Prepared
from trainers.jobs.job import JobResult
from trainers.jobs.results import ranked


def rung_epochs(full: int, eta: int, first: int) -> list[int]:
    """The epochs each rung trains to: ``first·eta^k`` below ``full``, then ``full``."""
    milestones, epochs = [], first
    while epochs < full:
        milestones.append(epochs)
        epochs *= eta
    return [*milestones, full]


def kept_count(rung: int, milestones: list[int], survivors: int, eta: int, last: bool) -> int:
    """How many of a rung's ``survivors`` go on: ⌊n/η⌋ (at least one), and exactly one
    from the last rung and the rung before it, so that one block gets the full budget."""
    return 1 if last or rung + 2 >= len(milestones) else max(1, survivors // eta)


def promoted(
    blocks: list[int], scores: list[float], keep: int, losses: list[float] | None = None
) -> list[int]:
    """The ``keep`` best blocks by score, then loss (:func:`~trainers.jobs.results.ranked`),
    in block order."""
    return sorted(ranked(blocks, scores, losses)[:keep])


def epochs_done(ready: Prepared, result: JobResult) -> int:
    """The epochs a job's result has trained (its steps over the steps of one epoch)."""
    return ready.runner.epochs_done(result.steps)
