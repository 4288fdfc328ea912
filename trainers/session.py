"""A run folder from settings to ``results.json``: the Python API of ``graphblocks-train``.

``RUN_DIR`` holds ``config.toml`` (the resolved settings), ``partition.json``,
``split.json``, ``metrics/<job>.jsonl``, ``checkpoints/<job>.safetensors``,
``results/<job>.json`` (one per finished job) and ``results.json`` (all of them, plus
the sweep summary), rewritten atomically after every job. With ``resume`` finished
jobs are read back, not rerun.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from graphblocks.errors import GraphblocksError, PartitionError
from graphblocks.partition import Partition, write_atomic
from trainers.config import ConfigError, TrainConfig
from trainers.data import DataError, Preprocess, decode_images, load_or_make_split, subsample
from trainers.engine import Job, Loaded, Runner
from trainers.modeling import build_finetune_model
from trainers.strategies import (
    block_job,
    full_job,
    head_job,
    layers_job,
    quartile_job,
    sweep_jobs,
    sweep_summary,
)

#: ``(event, job, done, total)``: events ``start``/``done``/``skipped`` count jobs, ``epoch`` epochs.
Progress = Callable[[str, Job, int, int], None]


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


def jobs_for(config: TrainConfig, partition: Partition, dropped: list[str]) -> list[Job]:
    """The jobs a ``strategy`` setting asks for."""
    makers: dict[str, Callable[[], list[Job]]] = {
        "sweep": lambda: sweep_jobs(partition, dropped),
        "head": lambda: [head_job(partition, dropped)],
        "full": lambda: [full_job(partition, dropped)],
        "block": lambda: [block_job(partition, dropped, _required(config.block, "--block K"))],
        "quartile": lambda: [
            quartile_job(partition, dropped, _required(config.quartile, "--quartile Q"))
        ],
        "layers": lambda: [layers_job(partition, dropped, config.names)],
        "rltune": lambda: [
            full_job(partition, dropped, "rltune"),
            full_job(partition, dropped, "uniform"),
        ],
    }
    return makers[config.strategy]()


def _required(value: int | None, flag: str) -> int:
    if value is None:
        raise ConfigError(f"this strategy needs {flag}", f"pass {flag}")
    return value


def _prepare_run_dir(config: TrainConfig) -> Path:
    if not config.out:
        raise ConfigError("no run folder given", "pass --out RUN_DIR")
    run_dir = Path(config.out)
    if (
        (run_dir / "results").is_dir()
        and any((run_dir / "results").iterdir())
        and not config.resume
    ):
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


@dataclass
class Prepared:
    """Everything a run needs, ready to run jobs."""

    config: TrainConfig
    run_dir: Path
    partition: Partition
    runner: Runner
    jobs: list[Job]
    dropped: list[str]


def prepare(config: TrainConfig) -> Prepared:
    """Resolve the partition, split and decode the data, build the model; write
    ``config.toml`` and ``partition.json`` into the run folder."""
    import torch

    run_dir = _prepare_run_dir(config)
    for stale in [*run_dir.glob("results/.*.tmp"), *run_dir.glob("checkpoints/.*.tmp")]:
        stale.unlink()  # left by a killed run: never a result
    if config.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    torch.manual_seed(config.seed)
    partition = load_partition(config)
    config = config.replace(
        model=partition.model.name, input_size=list(config.input_size or partition.model.input_size)
    )
    write_atomic(run_dir / "config.toml", config.to_toml())
    partition.save(run_dir / "partition.json")
    input_size = tuple(config.input_size or ())
    data = load_data(config, run_dir, input_size)
    model, dropped = build_finetune_model(
        partition, len(data.classes), input_size, pretrained=config.pretrained, weights=config.weights,
        head=config.head, hidden=config.head_hidden, dropout=config.head_dropout,
    )  # fmt: skip
    runner = Runner(config, partition, model, data, _preprocess(config, partition), run_dir)
    return Prepared(
        config, run_dir, partition, runner, jobs_for(config, partition, dropped), dropped
    )


def run(config: TrainConfig, progress: Progress | None = None) -> dict[str, Any]:
    """Run the jobs of ``config`` into its run folder; return ``results.json``'s content."""
    ready = prepare(config)
    results: dict[str, dict[str, Any]] = {}
    jobs = ready.jobs
    for done, job in enumerate(jobs):
        saved = ready.run_dir / "results" / f"{job.file_stem}.json"
        if ready.config.resume and saved.exists():
            results[job.name] = json.loads(saved.read_text())
            if progress:
                progress("skipped", job, done + 1, len(jobs))
            continue
        if progress:
            progress("start", job, done, len(jobs))
        results[job.name] = _run_job(ready, job, progress)
        if progress:
            progress("done", job, done + 1, len(jobs))
        _write_results(ready, list(results.values()))
    return _write_results(ready, list(results.values()))


def _run_job(ready: Prepared, job: Job, progress: Progress | None) -> dict[str, Any]:
    """RL-Tune, its uniform baseline over the same number of epochs, or a plain job."""
    cfg = ready.config
    if job.name == "rltune":
        from trainers.rltune.tuner import RLTune, make_units

        units = make_units(ready.partition, ready.runner.model, cfg.granularity, set(ready.dropped))
        total = cfg.episodes * cfg.epochs
        report = (lambda done, _total: progress("epoch", job, done, total)) if progress else None
        return RLTune(ready.runner, units, ready.run_dir).run(report)
    epochs = cfg.episodes * cfg.epochs if job.name == "uniform" else cfg.epochs
    return ready.runner.run(job, _epoch_reporter(progress, job, epochs), epochs)


def _epoch_reporter(
    progress: Progress | None, job: Job, epochs: int
) -> Callable[[int, float], None] | None:
    if progress is None:
        return None
    return lambda epoch, _val_acc: progress("epoch", job, epoch, epochs)


def _write_results(ready: Prepared, results: list[dict[str, Any]]) -> dict[str, Any]:
    """Write ``results.json`` (all finished jobs, and a sweep's summary)."""
    config, partition, runner = ready.config, ready.partition, ready.runner
    data = runner.data
    document: dict[str, Any] = {
        "model": partition.model.name, "strategy": config.strategy, "num_blocks": partition.num_blocks,
        "classes": data.classes, "split_sizes": {k: len(v) for k, v in data.labels.items()},
        "strategies": results, "skipped_images": data.skipped,
    }  # fmt: skip
    if runner.cache_note:
        document["cache_note"] = runner.cache_note
    if config.strategy == "sweep":
        document.update(sweep_summary(partition, results))
    write_atomic(
        ready.run_dir / "results.json", json.dumps(document, indent=1, allow_nan=True) + "\n"
    )
    return document
