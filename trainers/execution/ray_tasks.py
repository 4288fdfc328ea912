"""The Ray executor: every task a Ray task, on a local cluster or one that is running.

Each task asks Ray for ``--threads-per-job`` CPUs (and runs that many torch threads), and
for one GPU when the cluster has GPUs. While tasks run, each epoch's end travels back
through a Ray queue, so the driver's progress bars move as they do in-process. A run is
shipped to the cluster once, through Ray's object store: its settings, partition, model
with the source weights, decoded images and preprocessing. Workers therefore need graphblocks installed, but neither the
data folder nor the weights file nor the run folder. A worker runs its task in a
scratch folder (given the job's own files when it continues a paused job) and returns
the result with every file it wrote; the driver writes them into the run folder
atomically. The run folder lives on the driver only: no shared storage is needed.
"""

from __future__ import annotations

import copy
import itertools
import os
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from graphblocks import GraphblocksError, Partition
from trainers.execution.local import Started
from trainers.execution.tasks import Prepared, Progress, ProgressEvent, Task, run_task
from trainers.jobs.job import Job, JobResult
from trainers.jobs.run_folder import RunFolder
from trainers.settings import ConfigError, TrainConfig
from trainers.training.data import Preprocess
from trainers.training.engine import Loaded, Runner
from trainers.training.modeling import FineTuneModel

_connect_lock = threading.Lock()
#: seconds between the driver's looks at the progress queue while tasks run
POLL_SECONDS = 0.25


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "--executor ray needs Ray, which is not installed",
            "pip install 'graphblocks[ray]' (or use --executor local)",
        ) from None
    return ray


@dataclass
class Shipped:
    """What a worker needs to run any task of one run."""

    config: TrainConfig
    partition: Partition
    model: FineTuneModel
    data: Loaded
    preprocess: Preprocess
    dropped: tuple[str, ...]
    weights_note: str

    @classmethod
    def of(cls, ready: Prepared) -> Shipped:
        runner = ready.runner
        model = copy.deepcopy(runner.model).cpu()
        model.trunk.load_state_dict(runner.source_trunk)
        return cls(
            ready.config,
            ready.partition,
            model,
            runner.data,
            runner.preprocess,
            runner.dropped,
            ready.weights_note,
        )

    def prepared(self, folder: Path) -> Prepared:
        """The run, on a worker, writing into ``folder``."""
        runner = Runner(
            self.config,
            self.partition,
            self.model,
            self.data,
            self.preprocess,
            RunFolder(folder),
            self.dropped,
        )
        return Prepared(runner, [], self.weights_note)


def _token_mode_like_ray_start() -> None:
    """Like ``ray start --head`` (Ray ≥ 2.59), use token authentication when
    ``RAY_AUTH_MODE`` is unset and a token is at hand (``RAY_AUTH_TOKEN``,
    ``RAY_AUTH_TOKEN_PATH`` or ``~/.ray/auth_token``). Ray reads the mode when it is
    first imported, so this runs before."""
    token = any(os.environ.get(k) for k in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"))
    if "RAY_AUTH_MODE" not in os.environ and (
        token or (Path.home() / ".ray" / "auth_token").exists()
    ):
        os.environ["RAY_AUTH_MODE"] = "token"


def _join(ray: Any, address: str, options: dict[str, Any]) -> None:
    """``ray.init`` on a running cluster, or a one-line error."""
    try:
        ray.init(address=address, **options)
    except ConnectionError as exc:
        raise ConfigError(
            f"cannot join the Ray cluster at {address!r}: {exc}",
            "check --ray-address (`ray status` on the head node); a cluster with token "
            "authentication needs RAY_AUTH_MODE=token and its token (`ray get-auth-token`)",
        ) from None


def _unimportable_modules(model: Any) -> list[Any]:
    """The Python modules of ``model``'s layers that a worker cannot import by name (a
    model file given as ``path/to/file.py:factory``): they travel by value."""
    import sys
    from importlib.machinery import PathFinder

    names = {type(m).__module__ for m in model.modules()}
    return [
        sys.modules[name]
        for name in sorted(names)
        if name in sys.modules
        and name.partition(".")[0] not in sys.builtin_module_names
        and PathFinder.find_spec(name.partition(".")[0]) is None
    ]


def _queued_progress(queue: Any, key: int) -> Progress | None:
    """A worker's progress: each epoch's end put on the driver's ``queue`` as
    ``(key, epoch, total)``; None without a queue."""
    if queue is None:
        return None

    def put(event: ProgressEvent, _job: Job, done: int, total: int) -> None:
        if event is ProgressEvent.EPOCH:
            queue.put_nowait((key, done, total))

    return put


def execute_shipped(
    shipped: Shipped,
    task: Task,
    files: dict[str, bytes],
    queue: Any = None,
    key: int = 0,
) -> tuple[JobResult, dict[str, bytes], list[str]]:
    """A worker's side of a task: run it in a scratch folder holding ``files``,
    reporting epochs on ``queue`` under ``key`` (:func:`run_task` sets the job's torch
    threads); the result, the files the folder holds after it, and the given files it
    removed."""
    with tempfile.TemporaryDirectory(prefix="graphblocks-task-") as folder:
        scratch = RunFolder(Path(folder))
        scratch.write_back(files)
        result = run_task(shipped.prepared(scratch.path), task, _queued_progress(queue, key))
        written = scratch.written_files()
    return result, written, [name for name in files if name not in written]


def _check_room(ray: Any, threads: int) -> None:
    """Refuse a thread count no node of the cluster has CPUs for: its tasks would wait
    forever."""
    largest = max((n["Resources"].get("CPU", 0) for n in ray.nodes() if n["Alive"]), default=0)
    if threads > largest:
        raise GraphblocksError(
            f"each job asks Ray for {threads} CPUs (--threads-per-job {threads}) but the "
            f"largest node of the cluster has {largest:g}",
            f"give --threads-per-job {int(largest)} or fewer; in-process runs use the same "
            "count, so their results stay identical",
        )


def _result(ray: Any, reference: Any) -> Any:
    """A finished task's value; a one-line error of the task raised as itself."""
    try:
        return ray.get(reference)
    except ray.exceptions.RayTaskError as exc:
        if isinstance(exc.cause, GraphblocksError):
            raise exc.cause from None
        raise


class RayExecutor:
    """Tasks as Ray tasks; see the module docstring."""

    def __init__(self, threads_per_job: int, gpus_per_task: int) -> None:
        #: what each task asks Ray for (it runs as many torch threads)
        self.cpus, self.gpus = threads_per_job, gpus_per_task
        self._shipped: dict[int, Any] = {}
        self._queue: Any = None
        self._keys = itertools.count()  # task keys on the queue, unique per executor

    @classmethod
    def connect(cls, address: str | None, workers: int | None, threads_per_job: int) -> RayExecutor:
        """Join the cluster at ``address`` (``auto``: the one this machine runs), or start
        a local one with ``workers`` CPUs (default: all); once per process."""
        if address:
            _token_mode_like_ray_start()
        ray = _import_ray()
        with _connect_lock:
            if not ray.is_initialized():
                options: dict[str, Any] = {"log_to_driver": False, "configure_logging": False}
                if address:
                    _join(ray, address, options)
                else:
                    ray.init(num_cpus=workers or os.cpu_count(), include_dashboard=False, **options)
        _check_room(ray, threads_per_job)
        gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
        return cls(threads_per_job, gpus)

    def shipped(self, ready: Prepared) -> Any:
        """The reference to ``ready`` in the object store (put there once)."""
        ray = _import_ray()
        key = id(ready)
        if key not in self._shipped:
            shipped = Shipped.of(ready)
            for module in _unimportable_modules(shipped.model):
                ray.cloudpickle.register_pickle_by_value(module)
            self._shipped[key] = ray.put(shipped)
        return self._shipped[key]

    def progress_queue(self) -> Any:
        """The queue workers put epoch ends on (one per executor, made on first use)."""
        if self._queue is None:
            from ray.util.queue import Queue

            self._queue = Queue(actor_options={"num_cpus": 0})
        return self._queue

    def run(
        self,
        ready: Prepared,
        tasks: Sequence[Task],
        progress: Progress | None = None,
        started: Started | None = None,
    ) -> Iterator[tuple[Task, JobResult]]:
        ray = _import_ray()
        if not tasks:
            return
        remote = ray.remote(execute_shipped).options(num_cpus=self.cpus, num_gpus=self.gpus)
        shipped = self.shipped(ready)
        queue = self.progress_queue() if progress else None
        pending: dict[Any, tuple[int, Task]] = {}
        for task in tasks:
            key = next(self._keys)
            files = ready.folder.continued_files(task.job.name)
            reference = remote.remote(shipped, task, files, queue, key)
            pending[reference] = (key, task)
            if started:
                started(task)
        by_key = dict(pending.values())
        try:
            while pending:
                finished, _ = ray.wait(list(pending), num_returns=1, timeout=POLL_SECONDS)
                _report_epochs(queue, by_key, progress)
                if not finished:
                    continue
                _, task = pending.pop(finished[0])
                result, files, removed = _result(ray, finished[0])
                ready.folder.write_back(files, removed)
                yield task, result
        finally:
            for reference in pending:
                ray.cancel(reference)


def _report_epochs(queue: Any, tasks: dict[int, Task], progress: Progress | None) -> None:
    """Pass the epoch ends waiting on ``queue`` to ``progress``."""
    if queue is None or progress is None:
        return
    while not queue.empty():
        key, done, total = queue.get_nowait()
        if key in tasks:  # else a task of an earlier call, abandoned
            progress(ProgressEvent.EPOCH, tasks[key].job, done, total)
