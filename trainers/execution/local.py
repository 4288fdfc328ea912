"""Where a run's jobs run: the :class:`Executor` protocol, and the local executor.

An executor takes the :class:`~trainers.execution.tasks.Task` s of a prepared run and
yields each one's result as it finishes, reporting every epoch through ``progress``.
Whatever the executor, the driver (the process that called
:func:`trainers.session.run`) owns the run folder: by the time a result is yielded, the
task's files (``results/``, ``metrics/``, ``checkpoints/``, ``paused/``) are in it,
written atomically, so ``--resume`` continues a run started on either executor.
:mod:`trainers.session` picks the executor; the Ray one is
:class:`trainers.execution.ray_tasks.RayExecutor`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Protocol

from trainers.execution.tasks import Prepared, Progress, Task, run_task
from trainers.jobs.job import JobResult

#: called as each task starts (the local executor) or is handed over (Ray)
Started = Callable[[Task], None]


class Executor(Protocol):
    """Runs the tasks of prepared runs."""

    def run(
        self,
        ready: Prepared,
        tasks: Sequence[Task],
        progress: Progress | None = None,
        started: Started | None = None,
    ) -> Iterator[tuple[Task, JobResult]]:
        """``(task, result)`` for every task, as they finish; their files are in the run
        folder by then."""
        ...


class LocalExecutor:
    """Every task in this process, one after another, in the order given."""

    def run(
        self,
        ready: Prepared,
        tasks: Sequence[Task],
        progress: Progress | None = None,
        started: Started | None = None,
    ) -> Iterator[tuple[Task, JobResult]]:
        for task in tasks:
            if started:
                started(task)
            yield task, run_task(ready, task, progress)
