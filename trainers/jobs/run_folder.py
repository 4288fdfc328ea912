"""The run folder: every path in it, named here and nowhere else, and who may write it.

``RUN_DIR`` holds::

    config.toml                    the resolved settings (repeat with --config)
    partition.json  split.json     the partition, the seeded split
    results.json                   every finished job, and a sweep's summary
    results/<job>.json             one finished job (written atomically)
    metrics/<job>.jsonl            one line per epoch
    checkpoints/<job>.safetensors  the trained parameters of the selected epoch
    paused/<job>.pt                a job stopped between epochs (halving) or between
                                   RL-Tune episodes; gone when the job finishes
    selection.json                 successive halving's record
    rltune-lr.csv                  RL-Tune's chosen learning rate per unit and epoch
    cache/  tune/                  the activation cache on disk; Ray Tune's scratch
    blocks.png  quartiles.png  rltune-lr.png   the figures
    study-unit.json                a finished run of a study
    .graphblocks.lock              the advisory lock of the process writing the folder

``<job>`` is the job's name as a file name (:func:`~trainers.jobs.job.file_stem`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from graphblocks import GraphblocksError, atomic_target
from trainers.jobs.job import file_stem

#: folders whose files a job continues from when it was paused (its own files only)
CONTINUED = ("paused", "metrics")
#: what stays with the process that wrote it (a remote worker's activation cache)
LOCAL_ONLY = ("cache",)
LOCK = ".graphblocks.lock"


class RunFolderBusy(GraphblocksError):
    """Another process is writing the run folder."""


@dataclass(frozen=True)
class RunFolder:
    """The paths of one run folder (see the module docstring)."""

    path: Path

    # ---- the run's files ------------------------------------------------------------------
    @property
    def config(self) -> Path:
        return self.path / "config.toml"

    @property
    def partition(self) -> Path:
        return self.path / "partition.json"

    @property
    def split(self) -> Path:
        return self.path / "split.json"

    @property
    def results(self) -> Path:
        return self.path / "results.json"

    @property
    def selection_record(self) -> Path:
        return self.path / "selection.json"

    @property
    def cache(self) -> Path:
        return self.path / "cache"

    @property
    def tune(self) -> Path:
        return self.path / "tune"

    @property
    def rltune_rates(self) -> Path:
        return self.path / "rltune-lr.csv"

    @property
    def study_marker(self) -> Path:
        return self.path / "study-unit.json"

    def figure(self, name: str) -> Path:
        """A figure of the run: ``blocks``, ``quartiles``, ``rltune-lr``."""
        return self.path / f"{name}.png"

    # ---- one job's files -------------------------------------------------------------------
    def job_result(self, job: str) -> Path:
        return self.path / "results" / f"{file_stem(job)}.json"

    def metrics(self, job: str) -> Path:
        return self.path / "metrics" / f"{file_stem(job)}.jsonl"

    def checkpoint(self, job: str, suffix: str = ".safetensors") -> Path:
        """The job's trained parameters (``suffix`` ``-agent.pt``: RL-Tune's agent)."""
        return self.path / "checkpoints" / f"{file_stem(job)}{suffix}"

    def paused(self, job: str) -> Path:
        return self.path / "paused" / f"{file_stem(job)}.pt"

    # ---- state of the folder ---------------------------------------------------------------
    def has_started(self) -> bool:
        """Whether a job has finished or paused here."""
        folders = [self.path / d for d in ("results", "paused") if (self.path / d).is_dir()]
        return any(any(folder.iterdir()) for folder in folders)

    def remove_stale_temporaries(self) -> None:
        """Delete what an atomic write killed midway left, in the folder and its
        subfolders (never a result: ``results.json``'s own is in the folder itself)."""
        for pattern in (".*.tmp", "*/.*.tmp"):
            for stale in self.path.glob(pattern):
                stale.unlink()

    # ---- moving a job's files between machines ----------------------------------------------
    def continued_files(self, job: str) -> dict[str, bytes]:
        """The files that ``job`` continues from, by path relative to the folder."""
        return {
            str(path.relative_to(self.path)): path.read_bytes()
            for folder in CONTINUED
            for path in sorted((self.path / folder).glob(f"{file_stem(job)}.*"))
        }

    def written_files(self) -> dict[str, bytes]:
        """Every file in the folder but the activation cache and the lock, by relative
        path (what a worker's scratch folder sends back)."""
        return {
            str(relative): path.read_bytes()
            for path in sorted(self.path.rglob("*"))
            if path.is_file()
            and (relative := path.relative_to(self.path)).parts[0] not in (*LOCAL_ONLY, LOCK)
        }

    def write_back(self, files: Mapping[str, bytes], removed: Sequence[str] = ()) -> None:
        """Files another folder's job wrote, each written here atomically; ``removed``
        (relative paths) deleted."""
        for relative, blob in files.items():
            with atomic_target(self.path / relative) as tmp:
                tmp.write_bytes(blob)
        for relative in removed:
            (self.path / relative).unlink(missing_ok=True)

    # ---- who writes ------------------------------------------------------------------------
    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the folder's advisory lock (``flock``) while the block runs; a one-line
        :class:`RunFolderBusy` naming the other process when one holds it.

        The kernel releases an ``flock`` when its process ends, however it ends, so the
        lock of a crashed or ``kill -9``-ed run is stale by construction: its file still
        names the dead process, but the lock is free and the next run takes it."""
        self.path.mkdir(parents=True, exist_ok=True)
        handle = (self.path / LOCK).open("a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "another process"
            handle.close()
            raise RunFolderBusy(
                f"{str(self.path)!r} is being written by {owner}",
                "wait for that run to end, or choose another --out",
            ) from None
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(f"process {os.getpid()} on {socket.gethostname()}\n")
            handle.flush()
            yield
        finally:
            handle.close()  # releases the lock
