"""What an executor runs: a :class:`Task` (a job, perhaps stopped at a halving rung) of a
:class:`Prepared` run, in the process that holds it (:func:`run_task`), and how it
reports progress (:data:`Progress`, with :class:`ProgressEvent`).

The local executor calls :func:`run_task` on the driver's run; the Ray executor ships the
prepared run to a worker once, and each task there runs :func:`run_task` on a copy in a
scratch folder whose files go back to the driver (:mod:`trainers.execution.ray_tasks`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum

from graphblocks import Partition
from trainers.jobs.job import Job, JobKind, JobResult
from trainers.jobs.run_folder import RunFolder
from trainers.settings import TrainConfig
from trainers.training.engine import Runner
from trainers.training.loop import EpochProgress


class ProgressEvent(StrEnum):
    """What a :data:`Progress` call reports."""

    START = "start"  #: a job starts (or is handed to a worker); counts jobs
    DONE = "done"  #: a job finished; counts jobs
    SKIPPED = "skipped"  #: a job finished before (``resume``) and is read back; counts jobs
    EPOCH = "epoch"  #: an epoch of the current job ended; counts its epochs


#: ``(event, job, done, total)``: how far the run, or (``EPOCH``) the job, has come
Progress = Callable[[ProgressEvent, Job, int, int], None]


@dataclass
class Prepared:
    """A run ready to run jobs: its :class:`~trainers.training.engine.Runner` (which
    holds the settings, partition, model, data and folder), its jobs in order, and how
    ``--weights`` were loaded when they had to be ported (else empty)."""

    runner: Runner
    jobs: list[Job]
    weights_note: str = ""

    @property
    def config(self) -> TrainConfig:
        return self.runner.config

    @property
    def partition(self) -> Partition:
        return self.runner.partition

    @property
    def folder(self) -> RunFolder:
        return self.runner.folder

    @property
    def first_rung(self) -> int:
        """Successive halving's first rung, in epochs (``min_epochs``, which preparing the
        run resolved from auto)."""
        first = self.config.min_epochs
        if first is None:
            raise ValueError("min_epochs is resolved when the run is prepared")
        return first


@dataclass(frozen=True)
class Task:
    """One job to run, to its full budget or (``until``) to the end of that epoch,
    paused there for a later rung."""

    job: Job
    until: int | None = None


def epoch_reporter(progress: Progress | None, job: Job, total: int) -> EpochProgress | None:
    """``progress``'s ``EPOCH`` events for ``job``, out of ``total`` epochs."""
    if progress is None:
        return None
    return lambda epoch, _val_acc: progress(ProgressEvent.EPOCH, job, epoch, total)


@contextmanager
def job_threads(count: int) -> Iterator[None]:
    """Run torch on ``count`` threads meanwhile. The thread count changes the order of
    float sums; one count on every executor makes a job's results bit-identical."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run_task(ready: Prepared, task: Task, progress: Progress | None = None) -> JobResult:
    """Run one task of a prepared run in this process on ``threads_per_job`` torch
    threads: RL-Tune's episodes, or one plain training job (to ``task.until`` when given)."""
    job, cfg = task.job, task.job.settings
    with job_threads(cfg.threads_per_job):
        if job.kind is JobKind.RLTUNE:
            from trainers.training.rltune.tuner import RLTune, make_units

            runner = ready.runner
            units = make_units(ready.partition, runner.model, cfg.granularity, set(runner.dropped))
            report = epoch_reporter(progress, job, cfg.rltune_epochs)
            return RLTune(runner, units, job).run(report)
        return ready.runner.run(job, epoch_reporter(progress, job, cfg.epochs), task.until)
