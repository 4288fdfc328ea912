"""Run models in worker processes: a hang, crash or OOM in one never stops the run.

Each worker is a spawned process that imports torch once and runs models one at a
time, under an address-space cap (``RLIMIT_AS``, so an oversized allocation fails in
that model instead of waking the kernel's OOM killer). A model that passes its time
limit gets its worker killed; a worker that dies takes only its current model with it.
Either way a fresh worker takes its place and the run goes on.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from pathlib import Path

from graphblocks.zoo.models import Row, ZooModel, run_model

_STARTUP_SECONDS = 300.0


def _reset_peak_rss() -> None:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def _peak_rss_mb() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _worker(conn: Connection, memory_bytes: int | None) -> None:
    """Worker loop: receive a model, send back its row; ``None`` ends the loop."""
    import resource

    import torch

    import graphblocks.pipeline  # noqa: F401  (import once, before the clock runs)

    if memory_bytes:
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    torch.set_num_threads(1)
    conn.send("ready")
    while True:
        model = conn.recv()
        if model is None:
            return
        _reset_peak_rss()
        row = run_model(model)
        row["peak_mb"] = _peak_rss_mb()
        conn.send(row)


@dataclass
class _Slot:
    process: BaseProcess
    conn: Connection
    model: ZooModel | None = None
    started: float = 0.0


class WorkerPool:
    """``jobs`` workers, each model limited to ``timeout`` seconds and ``memory_gb``."""

    def __init__(self, jobs: int, timeout: float, memory_gb: float | None) -> None:
        self.jobs = max(1, jobs)
        self.timeout = timeout
        self.memory_bytes = int(memory_gb * 2**30) if memory_gb else None
        self._context = mp.get_context("spawn")

    def _spawn(self) -> _Slot:
        parent, child = self._context.Pipe()
        process = self._context.Process(
            target=_worker, args=(child, self.memory_bytes), daemon=True
        )
        process.start()
        child.close()
        return _Slot(process, parent)

    @staticmethod
    def _ready(slot: _Slot) -> _Slot:
        """Wait until the worker has imported torch, so imports never count as model time."""
        if not slot.conn.poll(_STARTUP_SECONDS) or slot.conn.recv() != "ready":
            raise RuntimeError("a zoo worker did not start")
        return slot

    def _start(self) -> _Slot:
        return self._ready(self._spawn())

    @staticmethod
    def _stop(slot: _Slot, grace: float = 0.0) -> None:
        slot.process.join(grace)
        if slot.process.is_alive():
            slot.process.kill()
            slot.process.join(5)
        slot.conn.close()

    def run(self, models: Iterable[ZooModel]) -> Iterator[Row]:
        """Yield one row per model, in completion order."""
        queue = list(models)
        queue.reverse()
        spawned = [self._spawn() for _ in range(min(self.jobs, len(queue)))]
        slots = [self._ready(slot) for slot in spawned]
        try:
            while queue or any(s.model for s in slots):
                for slot in slots:
                    if slot.model is None and queue:
                        slot.model, slot.started = queue.pop(), time.monotonic()
                        slot.conn.send(slot.model)
                busy = {s.conn: s for s in slots if s.model is not None}
                for conn in wait(list(busy), timeout=0.5):
                    slot = busy[conn]  # type: ignore[index]
                    yield self._collect(slot, slots)
                now = time.monotonic()
                for slot in slots:
                    if slot.model is not None and now - slot.started > self.timeout:
                        yield self._replace(
                            slot, slots, "timeout", "Timeout", f"over {self.timeout:.0f} s"
                        )
        finally:
            for slot in slots:
                try:
                    slot.conn.send(None)
                except OSError:
                    pass
                self._stop(slot, grace=10.0)

    def _collect(self, slot: _Slot, slots: list[_Slot]) -> Row:
        try:
            row: Row = slot.conn.recv()
        except (EOFError, OSError):
            slot.process.join(5)  # reap it, so that its exit code is known
            code = slot.process.exitcode
            reason = "killed (out of memory?)" if code == -9 else f"worker exited with code {code}"
            return self._replace(slot, slots, "crash", "WorkerCrash", reason)
        slot.model = None
        return row

    def _replace(
        self, slot: _Slot, slots: list[_Slot], status: str, error_class: str, error: str
    ) -> Row:
        model = slot.model
        assert model is not None
        row: Row = {
            "model": model.spec, "source": model.source, "family": model.family, "status": status,
            "error_class": error_class, "error": error, "seconds": round(time.monotonic() - slot.started, 2),
        }  # fmt: skip
        self._stop(slot)
        slots[slots.index(slot)] = self._start()
        return row
