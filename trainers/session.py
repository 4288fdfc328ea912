"""A run folder from settings to ``results.json``: the Python API of ``graphblocks-train``.

``RUN_DIR`` holds ``config.toml`` (the resolved settings), ``partition.json``,
``split.json``, ``metrics/<job>.jsonl``, ``checkpoints/<job>.safetensors``,
``results/<job>.json`` (one per finished job) and ``results.json`` (all of them, plus
the sweep summary), rewritten atomically after every job; ``paused/<job>.pt`` and
``selection.json`` while successive halving runs. With ``resume`` finished jobs are read
back, not rerun, and paused ones continue. The jobs run on the executor that ``executor``
names (:mod:`trainers.executors`); the run folder is written here, on the driver, either way.
"""

from __future__ import annotations

from pathlib import Path

from graphblocks import GraphblocksError, Partition, PartitionError, write_atomic
from trainers.config import ConfigError, TrainConfig
from trainers.data import DataError, Preprocess, decode_images, load_or_make_split, subsample
from trainers.engine import Loaded, Runner
from trainers.executors import make_executor
from trainers.jobs import Job, JobResult
from trainers.modeling import build_finetune_model
from trainers.results import RunResults, Selection, read_job_result, summarize_sweep
from trainers.strategies import jobs_for
from trainers.tasks import Prepared, Progress, Task, run_task

__all__ = ["Prepared", "Progress", "load_data", "load_partition", "prepare", "run", "run_job"]


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
        recorded = partition.settings.get("model_args", {})
        if config.model_args and dict(config.model_args) != recorded:
            raise PartitionError(
                f"the partition was made with model arguments {recorded}, not {config.model_args}",
                "drop --model-arg (the partition's are used), or partition the model again",
            )
        return partition
    if not config.model:
        raise ConfigError("no model given", "pass --model NAME or --partition FILE")
    size = tuple(config.input_size) if config.input_size else None
    return graphblocks.analyze(config.model, input_size=size, model_args=dict(config.model_args))


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


def _prepare_run_dir(config: TrainConfig) -> Path:
    if not config.out:
        raise ConfigError("no run folder given", "pass --out RUN_DIR")
    run_dir = Path(config.out)
    started = [run_dir / d for d in ("results", "paused") if (run_dir / d).is_dir()]
    if any(any(folder.iterdir()) for folder in started) and not config.resume:
        raise GraphblocksError(
            f"{str(run_dir)!r} already holds results",
            "pass --resume to continue it, or choose another --out",
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def load_data(config: TrainConfig, run_dir: Path, input_size: tuple[int, ...]) -> Loaded:
    """The saved (or new) split, sampled and decoded."""
    if not config.data and not (run_dir / "split.json").exists():
        raise ConfigError(
            "no data given", "pass --data DIR (an image folder) or a CSV of path,label"
        )
    split = load_or_make_split(run_dir, config.data, config.split, config.seed)
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

    run_dir = _prepare_run_dir(config)
    for stale in run_dir.glob("*/.*.tmp"):
        stale.unlink()  # left by a killed run: never a result
    if config.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    torch.manual_seed(config.seed)
    partition = load_partition(config)
    config = config.replace(
        model=partition.model.name, input_size=list(config.input_size or partition.model.input_size)
    )
    jobs = jobs_for(config, partition)
    write_atomic(run_dir / "config.toml", config.to_toml())
    partition.save(run_dir / "partition.json")
    input_size = tuple(config.input_size or ())
    data = load_data(config, run_dir, input_size)
    model, dropped, weights_note = build_finetune_model(
        partition, len(data.classes), input_size, pretrained=config.pretrained, weights=config.weights,
        head=config.head, hidden=config.head_hidden, dropout=config.head_dropout,
    )  # fmt: skip
    preprocess = _preprocess(config, partition)
    runner = Runner(config, partition, model, data, preprocess, run_dir, dropped)
    return Prepared(config, run_dir, partition, runner, jobs, weights_note)


def run(config: TrainConfig, progress: Progress | None = None) -> RunResults:
    """Run the jobs of ``config`` into its run folder on its executor; return what
    ``results.json`` holds. A sweep with ``select`` other than ``full`` finds B_opt by
    that selector (:mod:`trainers.selection`) instead of training every block."""
    from trainers.selection import SELECTORS

    ready = prepare(config)
    results = _finished(ready, progress)
    executor = make_executor(ready.config)
    selection = None
    jobs = ready.jobs
    if config.select in SELECTORS:
        chosen, selection = SELECTORS[config.select](ready, executor, progress)
        results.update({r.name: r for r in chosen})
        jobs = [job for job in jobs if job.kind != "block"]
        _write_results(ready, results, selection)
    todo = [Task(job) for job in jobs if job.name not in results]
    total = len(ready.jobs)

    def started(task: Task) -> None:
        if progress:
            progress("start", task.job, len(results), total)

    for task, result in executor.run(ready, todo, progress, started):
        results[task.job.name] = result
        if progress:
            progress("done", task.job, len(results), total)
        _write_results(ready, results, selection)
    return _write_results(ready, results, selection)


def _finished(ready: Prepared, progress: Progress | None) -> dict[str, JobResult]:
    """With ``resume``, the results of the jobs that finished before, read back."""
    results: dict[str, JobResult] = {}
    for job in ready.jobs if ready.config.resume else []:
        saved = ready.run_dir / "results" / f"{job.file_stem}.json"
        if saved.exists():
            results[job.name] = read_job_result(saved)
            if progress:
                progress("skipped", job, len(results), len(ready.jobs))
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
    document = RunResults(
        model=partition.model.name, strategy=config.strategy, num_blocks=partition.num_blocks,
        classes=tuple(data.classes), split_sizes={k: len(v) for k, v in data.labels.items()},
        jobs=tuple(results), skipped_images=tuple(data.skipped), cache_note=ready.runner.cache_note,
        weights_note=ready.weights_note,
        sweep=summarize_sweep(partition, results) if config.strategy == "sweep" else None,
        selection=selection,
    )  # fmt: skip
    document.save(ready.run_dir / "results.json")
    return document
