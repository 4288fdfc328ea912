"""Run a zoo into a report CSV, one flushed row per model, resumable."""

from __future__ import annotations

import csv
import json
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from graphblocks.atomic import write_atomic
from graphblocks.errors import GraphblocksError
from graphblocks.zoo.markdown import run_info_path
from graphblocks.zoo.models import FIELDS, Row, ZooModel, read_done
from graphblocks.zoo.pool import WorkerPool


@dataclass(frozen=True)
class ZooRun:
    """What ``graphblocks zoo`` runs and how."""

    output: Path
    source: str = "all"
    pattern: str = "*"
    sample: int | None = None
    jobs: int = 2
    timeout: float = 300.0
    memory_gb: float | None = 8.0
    resume: bool = False


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "?"


def pending_models(models: Sequence[ZooModel], report: Path, resume: bool) -> list[ZooModel]:
    """The models still to run; refuses to overwrite a report unless resuming it."""
    if report.exists() and not resume:
        raise GraphblocksError(
            f"report {report.as_posix()!r} already exists",
            "pass --resume to continue it, or choose another -o",
        )
    done = read_done(report) if resume else set()
    return [m for m in models if m.spec not in done]


def run_zoo(
    models: Sequence[ZooModel],
    report: Path,
    *,
    jobs: int,
    timeout: float,
    memory_gb: float | None,
    on_row: Callable[[Row], None] = lambda row: None,
) -> None:
    """Run ``models`` in a worker pool, appending each row to ``report`` as it comes.

    The run's wall time accumulates in the ``.run.json`` beside the report.
    """
    report.parent.mkdir(parents=True, exist_ok=True)
    new = not report.exists()
    start = time.monotonic()
    try:
        with report.open("a", newline="") as handle:
            writer = csv.DictWriter(handle, FIELDS, extrasaction="ignore")
            if new:
                writer.writeheader()
            for row in WorkerPool(jobs, timeout, memory_gb).run(models):
                writer.writerow(row)
                handle.flush()
                on_row(row)
    finally:
        _record_run(report, jobs, time.monotonic() - start)


def _record_run(report: Path, jobs: int, seconds: float) -> None:
    path = run_info_path(report)
    info = json.loads(path.read_text()) if path.exists() else {}
    info.update(
        wall_seconds=round(info.get("wall_seconds", 0.0) + seconds, 1),
        jobs=jobs,
        cores=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        machine=platform.machine(),
        python=platform.python_version(),
        **{name: _version(name) for name in ("torch", "timm", "torchvision")},
    )
    write_atomic(path, json.dumps(info, indent=2, sort_keys=True) + "\n")
