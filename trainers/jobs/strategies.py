"""Strategies as jobs, and what each job trains (Algorithm 1 of Barakat & Huang 2023).

==============  ==================================================================
``head``        BL1: the new head (and any other head layer of the partition)
``full``        BL2: everything
``block``       block K and the head; the rest frozen
``quartile``    every block of quartile Q and the head
``layers``      the named layers and the head
``sweep``       every block, then both baselines (unless ``baselines`` is off); B_opt
                follows (:func:`trainers.jobs.results.best_block`); with a ``select``
                other than ``full``, B_opt is found by :mod:`trainers.selection` instead
``rltune``      RL-Tune, then ``uniform`` (all layers, one learning rate, as many
                epochs as RL-Tune's episodes × epochs)
``lp-ft``,      the practitioner's baselines (:mod:`trainers.training.recipes`): every
``layer-decay``,  layer trains, with the recipe's change; a sweep adds those named in
``l2-sp``,      ``extra_baselines`` after BL1 and BL2
``auto-rgn``
==============  ==================================================================
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Collection
from dataclasses import dataclass

from graphblocks import Partition
from trainers.jobs.job import Job, JobKind
from trainers.settings import ConfigError, Strategy, TrainConfig
from trainers.settings.kinds import BASELINE_STRATEGIES, kind_of


@dataclass(frozen=True)
class Trainable:
    """The trunk parameters a job trains (the new head always trains too), and its
    ``level``: the block whose entry is the first point anything trains (None: the
    input), i.e. where cached activations can start."""

    params: tuple[str, ...]
    level: int | None


def _required(value: int | None, flag: str) -> int:
    if value is None:
        raise ConfigError(f"this strategy needs {flag}", f"pass {flag}")
    return value


def _sweep(config: TrainConfig, partition: Partition) -> list[Job]:
    """Every block in order, then BL1 and BL2: the order that walks the cache forward."""
    blocks = [Job(JobKind.BLOCK, config, block=i) for i in range(partition.num_blocks)]
    baselines = [Job(JobKind.HEAD, config), Job(JobKind.FULL, config)] if config.baselines else []
    extra = [Job(JobKind(str(s)), config) for s in config.extra_baselines]
    return [*blocks, *baselines, *extra]


def _rltune(config: TrainConfig, _partition: Partition) -> list[Job]:
    """RL-Tune, then its baseline with as many epochs as RL-Tune trains in all."""
    uniform = config.replace(epochs=config.rltune_epochs)
    return [Job(JobKind.RLTUNE, config), Job(JobKind.UNIFORM, uniform)]


def _baseline_job(config: TrainConfig, _partition: Partition) -> list[Job]:
    """One of the practitioner's baselines: the job kind its row in the kind table runs."""
    return [Job(kind_of(config.strategy), config)]


def _block_job(config: TrainConfig, _partition: Partition) -> list[Job]:
    return [Job(JobKind.BLOCK, config, block=_required(config.block, "--block K"))]


def _quartile_job(config: TrainConfig, _partition: Partition) -> list[Job]:
    return [Job(JobKind.QUARTILE, config, quartile=_required(config.quartile, "--quartile Q"))]


#: strategy -> its jobs, in the order they run
STRATEGY_JOBS: dict[Strategy, Callable[[TrainConfig, Partition], list[Job]]] = {
    Strategy.SWEEP: _sweep,
    Strategy.HEAD: lambda c, _p: [Job(JobKind.HEAD, c)],
    Strategy.FULL: lambda c, _p: [Job(JobKind.FULL, c)],
    Strategy.BLOCK: _block_job,
    Strategy.QUARTILE: _quartile_job,
    Strategy.LAYERS: lambda c, _p: [Job(JobKind.LAYERS, c, layers=tuple(c.names))],
    Strategy.RLTUNE: _rltune,
    **{s: _baseline_job for s in BASELINE_STRATEGIES},
}


def jobs_for(config: TrainConfig, partition: Partition) -> list[Job]:
    """The jobs that ``config.strategy`` asks for, each checked against ``partition``."""
    jobs = STRATEGY_JOBS[config.strategy](config, partition)
    for job in jobs:
        trainable(job, partition, ())
    return jobs


def _head_params(partition: Partition, dropped: Collection[str]) -> tuple[str, ...]:
    return tuple(p for p in partition.head.params if p not in dropped)


def _head(job: Job, partition: Partition, dropped: Collection[str]) -> Trainable:
    """BL1. Cached at the trunk's output, or at the last block's entry when the
    partition's head keeps trunk layers (a norm before the classifier)."""
    extra = _head_params(partition, dropped)
    return Trainable(extra, partition.num_blocks - 1 if extra else partition.num_blocks)


def _everything(job: Job, partition: Partition, dropped: Collection[str]) -> Trainable:
    names = [p for b in partition.blocks for p in b.params]
    return Trainable((*names, *_head_params(partition, dropped)), None)


def _block(job: Job, partition: Partition, dropped: Collection[str]) -> Trainable:
    index = job.block
    if index is None or not 0 <= index < partition.num_blocks:
        raise ConfigError(f"no block {index}", f"choose 0..{partition.num_blocks - 1}")
    params = tuple(partition.blocks[index].params) + _head_params(partition, dropped)
    return Trainable(params, index or None)


def _quartile(job: Job, partition: Partition, dropped: Collection[str]) -> Trainable:
    indices = partition.quartiles.get(str(job.quartile), [])
    if not indices:
        raise ConfigError(
            f"quartile {job.quartile} has no blocks", "choose a quartile 1..4 with blocks"
        )
    params = tuple(p for i in indices for p in partition.blocks[i].params)
    return Trainable(params + _head_params(partition, dropped), indices[0] or None)


def _layers(job: Job, partition: Partition, dropped: Collection[str]) -> Trainable:
    by_name = {layer.name: layer for layer in partition.layers}
    unknown = [n for n in job.layers if n not in by_name]
    if unknown or not job.layers:
        close = difflib.get_close_matches(unknown[0], list(by_name), n=3) if unknown else []
        raise ConfigError(
            f"unknown layers {unknown}" if unknown else "no layers named",
            f"closest: {', '.join(close)}"
            if close
            else "name layers as `graphblocks inspect --json` lists them",
        )
    params = tuple(p for n in job.layers for p in by_name[n].params if p not in dropped)
    blocks = [by_name[n].block for n in job.layers]
    level = min(b for b in blocks if b is not None) if None not in blocks else None
    return Trainable(params + _head_params(partition, dropped), level or None)


#: job kind -> what it trains
TRAINABLE: dict[JobKind, Callable[[Job, Partition, Collection[str]], Trainable]] = {
    JobKind.HEAD: _head,
    JobKind.FULL: _everything,
    JobKind.RLTUNE: _everything,
    JobKind.UNIFORM: _everything,
    JobKind.BLOCK: _block,
    JobKind.QUARTILE: _quartile,
    JobKind.LAYERS: _layers,
    JobKind.LP_FT: _everything,
    JobKind.LAYER_DECAY: _everything,
    JobKind.L2_SP: _everything,
    JobKind.AUTO_RGN: _everything,
}


def trainable(job: Job, partition: Partition, dropped: Collection[str]) -> Trainable:
    """What ``job`` trains on ``partition``'s model, less the ``dropped`` source
    classifier's parameters; a one-line error for a block, quartile or layer that the
    partition does not have."""
    return TRAINABLE[job.kind](job, partition, dropped)
