"""What an executor runs: a :class:`Task` (a job, perhaps stopped at a halving rung) of a
:class:`Prepared` run, in the process that holds it (:func:`run_task`).

The local executor calls :func:`run_task` on the driver's run; the Ray executor ships the
prepared run to a worker once, and each task there runs :func:`run_task` on a copy in a
scratch folder whose files go back to the driver (:mod:`trainers.ray_executor`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from graphblocks import Partition
from trainers.config import TrainConfig
from trainers.engine import EpochProgress, Runner
from trainers.jobs import Job, JobResult

#: ``(event, job, done, total)``: events ``start``/``done``/``skipped`` count jobs, ``epoch`` epochs.
Progress = Callable[[str, Job, int, int], None]


@dataclass
class Prepared:
    """Everything a run needs, ready to run jobs."""

    config: TrainConfig
    run_dir: Path
    partition: Partition
    runner: Runner
    jobs: list[Job]
    #: how ``--weights`` were loaded when they had to be ported (else empty)
    weights_note: str = ""


@dataclass(frozen=True)
class Task:
    """One job to run, to its full budget or (``until``) to the end of that epoch,
    paused there for a later rung."""

    job: Job
    until: int | None = None

    @property
    def label(self) -> str:
        return self.job.name if self.until is None else f"{self.job.name} to epoch {self.until}"


def _run_rltune(ready: Prepared, task: Task, progress: Progress | None) -> JobResult:
    from trainers.rltune.tuner import RLTune, make_units

    job, cfg = task.job, task.job.settings
    units = make_units(
        ready.partition, ready.runner.model, cfg.granularity, set(ready.runner.dropped)
    )
    total = cfg.episodes * cfg.epochs
    report = (lambda done, _total: progress("epoch", job, done, total)) if progress else None
    return RLTune(ready.runner, units, ready.run_dir, job).run(report)


def _run_plain(ready: Prepared, task: Task, progress: Progress | None) -> JobResult:
    return ready.runner.run(task.job, _epoch_reporter(progress, task.job), task.until)


#: job kinds that do not run as one plain training job
SPECIAL_JOBS: dict[str, Callable[[Prepared, Task, Progress | None], JobResult]] = {
    "rltune": _run_rltune,
}


def run_task(ready: Prepared, task: Task, progress: Progress | None = None) -> JobResult:
    """Run one task of a prepared run (RL-Tune, or one plain training job) in this process."""
    return SPECIAL_JOBS.get(task.job.kind, _run_plain)(ready, task, progress)


def _epoch_reporter(progress: Progress | None, job: Job) -> EpochProgress | None:
    if progress is None:
        return None
    return lambda epoch, _val_acc: progress("epoch", job, epoch, job.settings.epochs)
