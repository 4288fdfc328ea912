"""The Ray executor: every task a Ray task, on a local cluster or one that is running.

Each task asks Ray for ``--cpus-per-task`` CPUs (and runs that many torch threads), and
for one GPU when the cluster has GPUs. A run is shipped to the cluster once, through
Ray's object store: its settings, partition, model with the source weights, decoded
images and preprocessing. Workers therefore need graphblocks installed, but neither the
data folder nor the weights file nor the run folder. A worker runs its task in a
scratch folder (given the job's own files when it continues a paused job) and returns
the result with every file it wrote; the driver writes them into the run folder
atomically. The run folder lives on the driver only: no shared storage is needed.
"""

from __future__ import annotations

import copy
import os
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from graphblocks import GraphblocksError, Partition
from trainers.config import ConfigError, TrainConfig
from trainers.data import Preprocess
from trainers.engine import Loaded, Runner
from trainers.executors import Started
from trainers.jobs import JobResult
from trainers.modeling import FineTuneModel
from trainers.tasks import Prepared, Progress, Task, run_task

#: the run folder's subfolders whose files a task may continue from (halving's paused jobs)
CONTINUED = ("paused", "metrics")
#: a worker's scratch files that never go back (the activation cache)
LOCAL_ONLY = ("cache",)

_connect_lock = threading.Lock()


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
        return cls(ready.config, ready.partition, model, runner.data, runner.preprocess,
                   runner.dropped, ready.weights_note)  # fmt: skip

    def prepared(self, run_dir: Path) -> Prepared:
        runner = Runner(self.config, self.partition, self.model, self.data, self.preprocess,
                        run_dir, self.dropped)  # fmt: skip
        return Prepared(self.config, run_dir, self.partition, runner, [], self.weights_note)


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


def task_files(run_dir: Path, task: Task) -> dict[str, bytes]:
    """The files of the run folder that ``task`` continues from, by relative path."""
    stem = task.job.file_stem
    return {
        str(path.relative_to(run_dir)): path.read_bytes()
        for folder in CONTINUED
        for path in sorted((run_dir / folder).glob(f"{stem}.*"))
    }


def _written(scratch: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(scratch)): path.read_bytes()
        for path in sorted(scratch.rglob("*"))
        if path.is_file() and path.relative_to(scratch).parts[0] not in LOCAL_ONLY
    }


def execute_shipped(
    shipped: Shipped, task: Task, files: dict[str, bytes], threads: int
) -> tuple[JobResult, dict[str, bytes], list[str]]:
    """A worker's side of a task: run it in a scratch folder holding ``files``; the
    result, the files the folder holds after it, and the given files it removed."""
    import torch

    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory(prefix="graphblocks-task-") as folder:
        scratch = Path(folder)
        for relative, blob in files.items():
            (scratch / relative).parent.mkdir(parents=True, exist_ok=True)
            (scratch / relative).write_bytes(blob)
        result = run_task(shipped.prepared(scratch), task)
        written = _written(scratch)
    return result, written, [name for name in files if name not in written]


def _result(ray: Any, reference: Any) -> Any:
    """A finished task's value; a one-line error of the task raised as itself."""
    try:
        return ray.get(reference)
    except ray.exceptions.RayTaskError as exc:
        if isinstance(exc.cause, GraphblocksError):
            raise exc.cause from None
        raise


def _write_back(run_dir: Path, files: dict[str, bytes], removed: Sequence[str]) -> None:
    """A task's files into the driver's run folder, each atomically."""
    from graphblocks import atomic_target

    for relative, blob in files.items():
        with atomic_target(run_dir / relative) as tmp:
            tmp.write_bytes(blob)
    for relative in removed:
        (run_dir / relative).unlink(missing_ok=True)


class RayExecutor:
    """Tasks as Ray tasks; see the module docstring."""

    def __init__(self, cpus_per_task: int, gpus_per_task: int) -> None:
        self.cpus, self.gpus = cpus_per_task, gpus_per_task
        self._shipped: dict[int, Any] = {}

    @classmethod
    def connect(cls, address: str | None, workers: int | None, cpus_per_task: int) -> RayExecutor:
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
        gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
        return cls(cpus_per_task, gpus)

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
        pending = {}
        for task in tasks:
            files = task_files(ready.run_dir, task)
            pending[remote.remote(shipped, task, files, self.cpus)] = task
            if started:
                started(task)
        try:
            while pending:
                [finished], _ = ray.wait(list(pending), num_returns=1)
                task = pending.pop(finished)
                result, files, removed = _result(ray, finished)
                _write_back(ready.run_dir, files, removed)
                yield task, result
        finally:
            for reference in pending:
                ray.cancel(reference)
