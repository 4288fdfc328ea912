"""Run a study: build the data sets, partition and pre-train the models, then every
fine-tuning run, in worker processes; then write the report.

Layout under ``out``::

    data/<set>/                  generated ImageFolders (source, digits, photos, shifted)
    partitions/<model>.json      one partition per model, shared by its runs
    pretrained/<model>-<hash>.*  cached source checkpoints
    runs/<model>/<target>/seed<k>/sweep/         BL1, BL2, every block (all training data)
    runs/<model>/<target>/seed<k>/rltune-<pct>/  RL-Tune and uniform at one sampling rate

A run folder with ``study-unit.json`` is finished and never redone; an unfinished one is
resumed job by job (``graphblocks-train``'s ``resume``), so an interrupted study
continues where it stopped.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from graphblocks import Partition, write_atomic
from trainers.jobs.run_folder import RunFolder
from trainers.settings import ConfigError, ExecutorKind, TrainConfig, default_of
from trainers.settings.groups import partition_mismatch
from trainers.study.config import ModelSpec, StudyConfig, TargetSpec

#: ``(what, done, total)`` after each finished unit of work.
StudyProgress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class StudyRun:
    """One fine-tuning run of the study: a ``graphblocks-train`` run folder."""

    model: str
    target: str
    seed: int
    kind: str  # "sweep", "halving" or "rltune"
    sample_rate: float
    settings: dict[str, Any] = field(hash=False, compare=False)
    cost: float = 0.0

    @property
    def run_dir(self) -> Path:
        return Path(self.settings["out"])

    @property
    def label(self) -> str:
        rate = f" {self.sample_rate:.0%}" if self.kind == "rltune" else ""
        return f"{self.model} / {self.target} / seed {self.seed}: {self.kind}{rate}"


def rate_folder(kind: str, rate: float) -> str:
    """The run folder's name for a kind of run at a sampling rate."""
    return kind if kind in ("sweep", "halving") else f"rltune-{round(rate * 100):03d}"


def unit_dir(out: Path, model: str, target: str, seed: int, kind: str, rate: float) -> Path:
    """Where that run lives."""
    return out / "runs" / model / target / f"seed{seed}" / rate_folder(kind, rate)


def _set_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _pool(workers: int) -> ProcessPoolExecutor:
    """Worker processes (spawned, so no OpenMP state is inherited) with one thread each
    when there are several: small models on few cores scale better by process."""
    import os

    threads = max(1, (os.cpu_count() or 1) // max(workers, 1))
    return ProcessPoolExecutor(
        workers, mp_context=get_context("spawn"), initializer=_set_threads, initargs=(threads,)
    )


def parallel(
    fn: Callable[[Any], Any],
    tasks: Sequence[tuple[Any, Any]],
    workers: int,
    *,
    threads: bool = False,
) -> Iterator[tuple[Any, Any]]:
    """``(key, fn(argument))`` for each ``(key, argument)`` task, as they finish: inline
    with one worker, else in a process pool (or, with ``threads``, in threads of this
    process: the Ray driver's, which only prepare runs and wait for their tasks). On an
    error or an interrupt the queued tasks are cancelled (finished runs stay on disk, so
    the next invocation resumes)."""
    from concurrent.futures import Executor, ThreadPoolExecutor

    workers = min(workers, len(tasks))
    if workers <= 1:
        for key, argument in tasks:
            yield key, fn(argument)
        return
    pool: Executor = ThreadPoolExecutor(workers) if threads else _pool(workers)
    with pool:
        futures = {pool.submit(fn, argument): key for key, argument in tasks}
        try:
            for future in as_completed(futures):
                yield futures[future], future.result()
        except BaseException:
            for future in futures:
                future.cancel()
            raise


def _run_one(settings: dict[str, Any], where: dict[str, Any] | None = None) -> dict[str, Any]:
    """A worker's job: one run folder, then its ``study-unit.json`` marker. ``where``:
    the executor settings, which do not change results and are not recorded."""
    from trainers.session import run

    start = time.perf_counter()
    results = run(TrainConfig(**settings, **(where or {})))
    marker = {
        "seconds": round(time.perf_counter() - start, 2),
        "jobs": len(results.jobs),
        "settings": settings,
    }
    write_atomic(RunFolder(Path(settings["out"])).study_marker, json.dumps(marker) + "\n")
    return marker


def run_seconds(run_dir: Path) -> float | None:
    """The wall seconds the invocation that finished a run folder took (its study marker,
    written by :func:`_run_one`); None while it is unfinished."""
    marker = RunFolder(run_dir).study_marker
    return float(json.loads(marker.read_text())["seconds"]) if marker.exists() else None


#: the fields of a study's model that set how its partition is cut
ANALYSIS_SETTINGS = ("max_blocks", "max_crossing", "delimiters")


def _check_partition(partition: Partition, wanted: dict[str, Any], size: int, path: Path) -> None:
    """Refuse, naming both values, a saved partition made with other analysis settings
    (``wanted``: model arguments, block limit, crossing bound, delimiters) or size."""
    mismatch = partition_mismatch(partition.settings, wanted)
    if size and partition.model.input_size[-1] != size:
        mismatch = ("input size", partition.model.input_size[-1], size)
    if mismatch:
        name, made, value = mismatch
        raise ConfigError(
            f"{str(path)!r} was made with {name} = {made}, not the study's {value}",
            "give the study another --out, or delete that folder to redo it",
        )


def _finished(run: StudyRun) -> bool:
    """Whether the run's folder is finished, with the same settings."""
    marker = RunFolder(run.run_dir).study_marker
    if not marker.exists():
        return False
    recorded = json.loads(marker.read_text()).get("settings")
    wanted = json.loads(json.dumps(run.settings))
    if recorded is not None and recorded != wanted:
        changed = sorted(
            k for k in wanted.keys() | recorded.keys() if wanted.get(k) != recorded.get(k)
        )
        raise ConfigError(
            f"{str(run.run_dir)!r} was run with other settings ({', '.join(changed)})",
            "give the study another --out, or delete that folder to redo it",
        )
    return True


def _pretrain_job(args: tuple[str, str, str, dict[str, Any]]) -> dict[str, Any]:
    from trainers.study.pretrain import pretrain

    partition_path, source_dir, target, settings = args
    return pretrain(Partition.load(partition_path), Path(source_dir), Path(target), **settings)


class Study:
    """The plan of a study and the steps that carry it out."""

    def __init__(self, config: StudyConfig) -> None:
        self.config = config
        self.out = Path(config.out)

    # ---- data, partitions, weights ----------------------------------------------------
    def data_size(self) -> int:
        return self.config.input_size or 64

    def target_dir(self, target: TargetSpec) -> Path:
        if target.kind == "folder":
            assert target.path is not None
            return Path(target.path).expanduser()
        return self.out / "data" / target.name

    def make_data(self) -> None:
        """Generate the source set (when pre-training) and the generated targets."""
        from trainers.study.datasets import materialize

        cfg = self.config
        if cfg.source.kind == "generated":
            materialize(
                "source",
                self.out / "data" / "source",
                per_class=cfg.source.per_class,
                size=self.data_size(),
                seed=cfg.source.seed,
            )
        for target in cfg.targets:
            if target.kind != "folder":
                materialize(
                    target.kind,
                    self.target_dir(target),
                    per_class=target.per_class,
                    size=self.data_size(),
                    seed=cfg.source.seed + 1,
                )

    def partition_path(self, model: ModelSpec) -> Path:
        return self.out / "partitions" / f"{model.key}.json"

    def make_partitions(self) -> None:
        """Analyse every model once (its source classifier included)."""
        import graphblocks

        size = self.config.input_size
        for model in self.config.models:
            path = self.partition_path(model)
            args = dict(model.model_args)
            if self.config.source.kind == "generated":
                args.setdefault("num_classes", self.config.source.classes)
            given = {k: getattr(model, k) for k in ANALYSIS_SETTINGS if getattr(model, k)}
            wanted = {**graphblocks.default_settings(), "model_args": args, **given}
            if path.exists():
                _check_partition(Partition.load(path), wanted, size, path)
                continue
            size_arg = (3, size, size) if size else None
            graphblocks.analyze(model.name, input_size=size_arg, **wanted).save(path)

    def weights_file(self, model: ModelSpec) -> str:
        """The checkpoint of a ``[source] kind = "weights"`` model (a path, or a file of
        an installed package)."""
        from trainers.study.sanity import resolve_weights

        if not model.weights:
            raise ConfigError(
                f"model {model.key!r} has no weights file",
                'add weights = "FILE" (or "package:NAME/path") to it, or change [source] kind',
            )
        return resolve_weights(model.weights, model.key)

    def sanity_path(self, model: ModelSpec) -> Path:
        return self.out / "sanity" / f"{model.key}.json"

    def sanity_checks(self, *, compute: bool = True) -> dict[str, dict[str, Any] | None]:
        """The ImageNet sanity check of every real-weight source (made once, then read;
        without ``compute`` only read, None where it was never made); none for a
        generated source."""
        from trainers.study.sanity import cached_check, saved_check

        kind = self.config.source.kind
        if kind == "generated":
            return {}
        checks: dict[str, dict[str, Any] | None] = {}
        for model in self.config.models:
            if model.random_init:
                checks[model.key] = None
                continue
            weights = self.weights_file(model) if kind == "weights" else None
            path = self.sanity_path(model)
            checks[model.key] = (
                cached_check(path, Partition.load(self.partition_path(model)), weights)
                if compute
                else saved_check(path, weights)
            )
        return checks

    def checkpoint(self, model: ModelSpec) -> Path:
        """Where the model's source checkpoint is (committed or cached) or will be."""
        from trainers.study.pretrain import checkpoint_name, find_checkpoint

        name = checkpoint_name(model.key, self.config.source_hash(model))
        cache = self.out / "pretrained"
        return find_checkpoint(name, cache) or cache / name

    def missing_checkpoint_line(self, model: ModelSpec) -> str:
        """Why ``model`` is pre-trained here: where committed checkpoints were looked for."""
        from trainers.study.pretrain import committed_folders

        folders = committed_folders()
        where = ", ".join(str(f) for f in folders) or "nowhere (no checkout's fixtures/study/)"
        return f"no committed checkpoint of {model.key} (looked in {where}): pre-training it"

    def pretrain_settings(self, model: ModelSpec) -> dict[str, Any]:
        """The keyword arguments of :func:`~trainers.study.pretrain.pretrain` for ``model``."""
        source = self.config.source
        return {
            "epochs": model.epochs or source.epochs,
            "batch_size": source.batch_size,
            "lr": model.lr or source.lr,
            "seed": source.seed,
            "init": model.init,
        }

    def pretrain_all(self, progress: StudyProgress | None = None) -> None:
        """Pre-train the models whose checkpoint is not there yet, in parallel."""
        cfg = self.config
        if cfg.source.kind != "generated":
            return
        todo = [m for m in cfg.models if not m.random_init and not self.checkpoint(m).exists()]
        todo.sort(key=lambda m: -(m.epochs or cfg.source.epochs))
        for model in todo:
            if progress:
                progress(self.missing_checkpoint_line(model), 0, len(todo))
        tasks = [
            (
                m,
                (
                    str(self.partition_path(m)),
                    str(self.out / "data" / "source"),
                    str(self.checkpoint(m)),
                    self.pretrain_settings(m),
                ),
            )
            for m in todo
        ]
        for done, (model, record) in enumerate(parallel(_pretrain_job, tasks, cfg.workers), 1):
            if progress:
                progress(
                    f"pre-trained {model.key}: source accuracy "
                    f"{record['source_val_acc']:.1%} in {record['seconds']:.0f} s",
                    done,
                    len(tasks),
                )

    # ---- fine-tuning runs -------------------------------------------------------------
    def runs(self) -> list[StudyRun]:
        """Every fine-tuning run, costliest first (for load balance)."""
        cfg = self.config
        runs = []
        for model in cfg.models:
            blocks = Partition.load(self.partition_path(model)).num_blocks
            for target in cfg.targets:
                for seed in cfg.seeds:
                    plan = [("sweep", 1.0)] if cfg.sweep else []
                    plan += [("halving", 1.0)] if cfg.halving else []
                    plan += [("rltune", r) for r in cfg.sample_rates] if cfg.rltune.enabled else []
                    for kind, rate in plan:
                        settings = self._settings(model, target, seed, kind, rate)
                        epochs = settings["epochs"]
                        cost = {
                            "sweep": (blocks + 2) * epochs * 0.7,
                            "halving": blocks * epochs * 0.25,
                        }.get(kind, rate * 2.3 * cfg.rltune.total_epochs)
                        runs.append(
                            StudyRun(model.key, target.name, seed, kind, rate, settings, cost)
                        )
        return sorted(runs, key=lambda r: -r.cost)

    def _settings(
        self, model: ModelSpec, target: TargetSpec, seed: int, kind: str, rate: float
    ) -> dict[str, Any]:
        cfg = self.config
        settings: dict[str, Any] = {"epochs": default_of("epochs"), **cfg.train}
        settings.update(
            partition=str(self.partition_path(model)),
            data=str(self.target_dir(target)),
            out=str(unit_dir(self.out, model.key, target.name, seed, kind, rate)),
            seed=seed,
            resume=True,
        )
        if model.random_init:
            settings.update(weights=None, pretrained=False)
        elif cfg.source.kind == "generated":
            settings.update(weights=str(self.checkpoint(model)), pretrained=False)
        elif cfg.source.kind == "weights":
            settings.update(weights=self.weights_file(model), pretrained=False)
        else:
            settings.update(pretrained=True)
        if kind == "sweep":
            settings.update(strategy="sweep", sample_rate=1.0)
        elif kind == "halving":  # only the selection: the sweep runs the baselines
            settings.update(
                strategy="sweep",
                sample_rate=1.0,
                select="halving",
                baselines=False,
                extra_baselines=[],
            )
        else:
            settings.update(
                strategy="rltune",
                sample_rate=rate,
                episodes=cfg.rltune.episodes,
                epochs=cfg.rltune.epochs,
                granularity=cfg.rltune.granularity,
            )
        return settings

    def run_all(self, progress: StudyProgress | None = None) -> None:
        """Carry out the unfinished runs: in worker processes, or on Ray (each run's jobs
        as Ray tasks, ``workers`` runs at a time on this driver)."""
        todo = [(r, r.settings) for r in self.runs() if not _finished(r)]
        cfg = self.config
        if cfg.executor == ExecutorKind.RAY:
            where = {"executor": "ray", "ray_address": cfg.ray_address, "workers": cfg.workers}
            finished = parallel(lambda s: _run_one(s, where), todo, cfg.workers, threads=True)
        else:
            finished = parallel(_run_one, todo, cfg.workers)
        for done, (run, _marker) in enumerate(finished, 1):
            if progress:
                progress(run.label, done, len(todo))
