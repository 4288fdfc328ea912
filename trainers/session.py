"""A run folder from settings to ``results.json``: the Python API of ``graphblocks-train``.

:func:`run` prepares the run (partition, split, data, model), picks the executor that
``executor`` names and, for a sweep with a ``select`` other than ``full``, the selector
that finds B_opt (both registries live here, at the top of the layers they choose
from), then runs the jobs and rewrites ``results.json`` atomically after every one. The
run folder's layout is :class:`~trainers.jobs.run_folder.RunFolder`'s; :func:`run`
holds its lock for the whole run, so a second process writing into the same folder gets
a one-line error naming the first. With ``resume`` finished jobs are read back, not
rerun, and paused ones continue. The run folder is written here, on the driver, whatever
the executor.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from graphblocks import GraphblocksError, Partition, PartitionError, write_atomic
from trainers.execution.local import Executor, LocalExecutor
from trainers.execution.tasks import Prepared, Progress, ProgressEvent, Task, run_task
from trainers.jobs.job import Job, JobKind, JobResult
from trainers.jobs.results import RunResults, Selection, finished_result, summarize_sweep
from trainers.jobs.run_folder import RunFolder
from trainers.jobs.strategies import jobs_for
from trainers.settings import ConfigError, ExecutorKind, Selector, Strategy, TrainConfig
from trainers.settings.groups import partition_mismatch
from trainers.training.data import (
    DataError,
    Preprocess,
    decode_images,
    load_or_make_split,
    subsample,
)
from trainers.training.engine import Loaded, Runner
from trainers.training.modeling import build_finetune_model, has_source_weights

__all__ = ["Prepared", "Progress", "load_data", "load_partition", "prepare", "run", "run_job"]

#: a selector: the block results it ends with, and how it chose
Selected = tuple[list[JobResult], Selection]
Selects = Callable[[Prepared, Executor, Progress | None], Selected]


def load_partition(config: TrainConfig) -> Partition:
    """The given partition (checked against ``--model``), or a fresh analysis."""
    import graphblocks

    if config.partition:
        partition = Partition.load(config.partition)
        if config.model and config.model != partition.model.name:
            raise PartitionError(
                f"the partition is for {partition.model.name!r}, not {config.model!r}",
                "drop --model, or give the partition of that model",
            )
        mismatch = partition_mismatch(partition.settings, config.partition_settings())
        if mismatch:
            name, made, wanted = mismatch
            flag = "--model-arg" if name == "model_args" else "--" + name.replace("_", "-")
            raise PartitionError(
                f"the partition was made with {name} = {made}, not {wanted}",
                f"drop {flag} (the partition's is used), or partition the model again",
            )
        return partition
    if not config.model:
        raise ConfigError("no model given", "pass --model NAME or --partition FILE")
    size = tuple(config.input_size) if config.input_size else None
    return graphblocks.analyze(config.model, input_size=size, **config.partition_settings())


def _preprocess(config: TrainConfig, partition: Partition) -> Preprocess:
    if config.preprocess == "unit":
        return Preprocess(augment=config.augment)
    from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

    mean: tuple[float, ...] = tuple(IMAGENET_DEFAULT_MEAN)
    std: tuple[float, ...] = tuple(IMAGENET_DEFAULT_STD)
    if partition.model.source == "timm":
        import timm

        cfg = timm.get_pretrained_cfg(partition.model.name.removeprefix("timm:").split(".")[0])
        if cfg is not None:
            mean, std = tuple(cfg.mean), tuple(cfg.std)
    return Preprocess(tuple(mean), tuple(std), augment=config.augment)


def run_folder(config: TrainConfig) -> RunFolder:
    """The run folder that ``config.out`` names (a one-line error without one)."""
    if not config.out:
        raise ConfigError("no run folder given", "pass --out RUN_DIR")
    return RunFolder(Path(config.out))


def _prepare_run_dir(config: TrainConfig) -> RunFolder:
    folder = run_folder(config)
    if folder.has_started() and not config.resume:
        raise GraphblocksError(
            f"{str(folder.path)!r} already holds results",
            "pass --resume to continue it, or choose another --out",
        )
    folder.path.mkdir(parents=True, exist_ok=True)
    return folder


def load_data(config: TrainConfig, folder: RunFolder, input_size: tuple[int, ...]) -> Loaded:
    """The saved (or new) split, sampled and decoded."""
    if not config.data and not folder.split.exists():
        raise ConfigError(
            "no data given", "pass --data DIR (an image folder) or a CSV of path,label"
        )
    split = load_or_make_split(folder.split, config.data, config.split, config.seed)
    images, labels, skipped = {}, {}, list(split.skipped)
    for part in ("train", "val", "test"):
        samples = (
            subsample(split.parts[part], config.sample_rate, config.seed)
            if part == "train"
            else None
        )
        images[part], labels[part], bad = decode_images(
            split, part, input_size, strict=config.strict, samples=samples
        )
        skipped += bad
    if len(labels["train"]) == 0:
        raise DataError("no readable training images", "check the images in --data")
    if len(set(labels["train"].tolist())) < 2:
        raise DataError(
            "the training split has a single class", "classification needs at least two classes"
        )
    return Loaded(images, labels, split.classes, skipped)


def prepare(config: TrainConfig) -> Prepared:
    """Resolve the partition, split and decode the data, build the model; write
    ``config.toml`` and ``partition.json`` into the run folder."""
    import torch

    folder = _prepare_run_dir(config)
    folder.remove_stale_temporaries()
    if config.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    torch.manual_seed(config.seed)
    partition = load_partition(config)
    transferred = has_source_weights(
        partition, pretrained=config.pretrained, weights=config.weights
    )
    config = config.replace(
        model=partition.model.name,
        input_size=list(config.input_size or partition.model.input_size),
        min_epochs=config.first_rung(transferred, config.epochs),
    )
    jobs = jobs_for(config, partition)
    write_atomic(folder.config, config.to_toml())
    partition.save(folder.partition)
    input_size = tuple(config.input_size or ())
    data = load_data(config, folder, input_size)
    model, dropped, weights_note = build_finetune_model(
        partition,
        len(data.classes),
        input_size,
        pretrained=config.pretrained,
        weights=config.weights,
        head=config.head,
        hidden=config.head_hidden,
        dropout=config.head_dropout,
    )
    preprocess = _preprocess(config, partition)
    runner = Runner(config, partition, model, data, preprocess, folder, dropped)
    return Prepared(runner, jobs, weights_note)


def _ray_executor(config: TrainConfig) -> Executor:
    from trainers.execution.ray_tasks import RayExecutor

    return RayExecutor.connect(config.ray_address, config.workers, config.threads_per_job)


#: ``--executor`` → a factory of the executor (Ray: connected to its cluster)
EXECUTORS: dict[ExecutorKind, Callable[[TrainConfig], Executor]] = {
    ExecutorKind.LOCAL: lambda _config: LocalExecutor(),
    ExecutorKind.RAY: _ray_executor,
}


def _halving(ready: Prepared, executor: Executor, progress: Progress | None) -> Selected:
    from trainers.selection.halving import successive_halving

    return successive_halving(ready, executor, progress)


def _gradnorm(ready: Prepared, executor: Executor, progress: Progress | None) -> Selected:
    from trainers.selection.gradnorm import gradnorm_select

    return gradnorm_select(ready, executor, progress)


def _asha(ready: Prepared, executor: Executor, progress: Progress | None) -> Selected:
    from trainers.execution.ray_tasks import RayExecutor
    from trainers.selection.asha import asha_select

    if not isinstance(executor, RayExecutor):  # TrainConfig refuses asha without Ray
        raise ConfigError("--select asha runs on Ray Tune", "add --executor ray")
    return asha_select(ready, executor, progress)


#: ``--select`` → the selector (``full`` trains every block: no selector)
SELECTORS: dict[Selector, Selects] = {
    Selector.HALVING: _halving,
    Selector.GRADNORM: _gradnorm,
    Selector.ASHA: _asha,
}


def run(config: TrainConfig, progress: Progress | None = None) -> RunResults:
    """Run the jobs of ``config`` into its run folder on its executor, holding the
    folder's lock; return what ``results.json`` holds. A sweep with a ``select`` other
    than ``full`` finds B_opt by that selector instead of training every block."""
    with run_folder(config).locked():
        ready = prepare(config)
        results = _finished(ready, progress)
        executor = EXECUTORS[ready.config.executor](ready.config)
        selection, jobs = None, ready.jobs
        if config.select in SELECTORS:
            chosen, selection = SELECTORS[config.select](ready, executor, progress)
            results.update({r.name: r for r in chosen})
            jobs = [job for job in jobs if job.kind is not JobKind.BLOCK]
            _write_results(ready, results, selection)
        todo = [Task(job) for job in jobs if job.name not in results]
        for _ in _run_tasks(ready, executor, todo, results, progress):
            _write_results(ready, results, selection)
        return _write_results(ready, results, selection)


def _run_tasks(
    ready: Prepared,
    executor: Executor,
    todo: list[Task],
    results: dict[str, JobResult],
    progress: Progress | None,
) -> Iterator[JobResult]:
    """Run ``todo`` on ``executor``, adding each result to ``results`` as it comes."""
    total = len(ready.jobs)

    def started(task: Task) -> None:
        if progress:
            progress(ProgressEvent.START, task.job, len(results), total)

    for task, result in executor.run(ready, todo, progress, started):
        results[task.job.name] = result
        if progress:
            progress(ProgressEvent.DONE, task.job, len(results), total)
        yield result


def _finished(ready: Prepared, progress: Progress | None) -> dict[str, JobResult]:
    """With ``resume``, the results of the jobs that finished before, read back."""
    results: dict[str, JobResult] = {}
    for job in ready.jobs if ready.config.resume else []:
        if (result := finished_result(ready.folder, job.name)) is not None:
            results[job.name] = result
            if progress:
                progress(ProgressEvent.SKIPPED, job, len(results), len(ready.jobs))
    return results


def run_job(ready: Prepared, job: Job, progress: Progress | None = None) -> JobResult:
    """Run one job of a prepared run in this process."""
    return run_task(ready, Task(job), progress)


def _write_results(
    ready: Prepared, finished: dict[str, JobResult], selection: Selection | None
) -> RunResults:
    """Write ``results.json`` (all finished jobs in the jobs' order, and a sweep's summary)."""
    config, partition, data = ready.config, ready.partition, ready.runner.data
    results = [finished[job.name] for job in ready.jobs if job.name in finished]
    sweep = config.strategy is Strategy.SWEEP
    document = RunResults(
        model=partition.model.name,
        strategy=config.strategy,
        num_blocks=partition.num_blocks,
        classes=tuple(data.classes),
        split_sizes={k: len(v) for k, v in data.labels.items()},
        jobs=tuple(results),
        skipped_images=tuple(data.skipped),
        cache_note=ready.runner.inputs.note,
        weights_note=ready.weights_note,
        sweep=summarize_sweep(partition, results, selection) if sweep else None,
        selection=selection,
    )
    document.save(ready.folder.results)
    return document
