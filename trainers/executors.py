"""Where a run's jobs run: in this process (``local``, the default) or as Ray tasks (``ray``).

An executor takes the :class:`~trainers.tasks.Task` s of a prepared run and yields each
one's result as it finishes. Whatever the executor, the driver (the process that called
:func:`trainers.session.run`) owns the run folder: by the time a result is yielded, the
task's files (``results/``, ``metrics/``, ``checkpoints/``, ``paused/``) are in it,
written atomically, so ``--resume`` continues a run started on either executor.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Protocol

from trainers.config import TrainConfig
from trainers.jobs import JobResult
from trainers.tasks import Prepared, Progress, Task, run_task

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


def _local(_config: TrainConfig) -> Executor:
    return LocalExecutor()


def _ray(config: TrainConfig) -> Executor:
    from trainers.ray_executor import RayExecutor

    return RayExecutor.connect(config.ray_address, config.workers, config.cpus_per_task)


#: ``--executor`` name -> a factory of it
EXECUTORS: dict[str, Callable[[TrainConfig], Executor]] = {"local": _local, "ray": _ray}


def make_executor(config: TrainConfig) -> Executor:
    """The executor that ``config.executor`` names (Ray: connected)."""
    return EXECUTORS[config.executor](config)
