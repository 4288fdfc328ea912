"""B_opt without a full sweep: successive halving over the blocks, and a gradient-norm ranker.

**Successive halving** (Jamieson & Talwalkar 2016; the rungs of ASHA, Li et al. 2018).
With N blocks, a full budget of R epochs, a reduction factor η and a first rung of r₀
epochs, the rungs end at

    r_k = r₀·η^k  for every k with r₀·η^k < R,  then R,

ASHA's milestones (:func:`~trainers.selection.rungs.rung_epochs`). Rung 0 trains every
block to r₀ epochs; each later rung continues the best ⌊n_k/η⌋ blocks of the rung
before (at least one; exactly one for the last rung, so that one block gets the full
budget) to its own milestone. A block is scored by its best validation score so far:
its accuracy, then its loss (:func:`trainers.jobs.results.ranked`), so that blocks are
ranked by position only when both tie exactly. A promoted
block carries on from where it paused (:mod:`trainers.training.state`), so its rungs are a prefix
of one R-epoch job and the last block ends with exactly its full-sweep result.

The promotions are decided on the driver from all of a rung's results, whichever
executor ran them; the chosen block therefore does not depend on the executor or the
order in which tasks finish. ``selection.json`` in the run folder records each finished
(block, rung); with the paused jobs it lets a killed run resume at the task it stopped in.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from graphblocks import write_atomic
from trainers.execution.local import Executor
from trainers.execution.tasks import Prepared, Progress, ProgressEvent, Task
from trainers.jobs.job import Job, JobKind, JobResult
from trainers.jobs.results import Rung, Selection, finished_result
from trainers.selection.rungs import epochs_done, kept_count, promoted, rung_epochs
from trainers.settings import Selector


class HalvingRecord:
    """``selection.json``: each finished (block, rung) → ``[val_acc, epochs_done,
    val_loss, val_hits]`` (its best validation score so far, its epochs done, and which
    validation images that epoch classified right; records written before the loss or
    the hits were kept lack them), plus the seconds spent."""

    def __init__(self, path: Path) -> None:
        self.path = path
        data = json.loads(path.read_text()) if path.exists() else {}
        self.done: dict[str, list[Any]] = data.get("done", {})
        self.seconds: float = data.get("seconds", 0.0)

    @staticmethod
    def key(block: int, epochs: int) -> str:
        return f"{block}@{epochs}"

    def has(self, block: int, epochs: int) -> bool:
        return self.key(block, epochs) in self.done

    def add(self, block: int, epochs: int, result: JobResult, epochs_done: int) -> None:
        loss = result.val_loss if result.val_loss is not None else float("nan")
        self.done[self.key(block, epochs)] = [
            result.val_acc,
            epochs_done,
            loss,
            result.val_hits or "",
        ]

    def score(self, block: int, epochs: int) -> tuple[float, float]:
        """``(val_acc, val_loss)`` of ``block`` at the rung of ``epochs`` (loss NaN when
        the record predates it)."""
        entry = self.done[self.key(block, epochs)]
        return entry[0], entry[2] if len(entry) > 2 else float("nan")

    def hits(self, block: int, epochs: int) -> str:
        """Which validation images ``block`` classified right at that rung ("": not kept)."""
        entry = self.done[self.key(block, epochs)]
        return str(entry[3]) if len(entry) > 3 else ""

    def epochs_done(self, block: int, epochs: int) -> int:
        return int(self.done[self.key(block, epochs)][1])

    def save(self) -> None:
        write_atomic(self.path, json.dumps({"done": self.done, "seconds": self.seconds}) + "\n")


def successive_halving(
    ready: Prepared, executor: Executor, progress: Progress | None = None
) -> tuple[list[JobResult], Selection]:
    """Run successive halving over the blocks (see the module docstring); the last
    block's full result and the selection's record."""
    cfg, blocks = ready.config, ready.partition.num_blocks
    record = HalvingRecord(ready.folder.selection_record)
    began = time.perf_counter()
    milestones = rung_epochs(cfg.epochs, cfg.eta, ready.first_rung)
    survivors, rungs, final = list(range(blocks)), [], []
    for k, epochs in enumerate(milestones):
        last = k == len(milestones) - 1 or len(survivors) == 1
        epochs = cfg.epochs if last else epochs
        final = _run_rung(ready, executor, record, survivors, None if last else epochs, progress)
        scores, losses = zip(*(record.score(b, epochs) for b in survivors), strict=True)
        before = {b: _done_before(record, b, milestones[:k]) for b in survivors}
        spent = sum(record.epochs_done(b, epochs) - before[b] for b in survivors)
        keep = kept_count(k, milestones, len(survivors), cfg.eta, last)
        kept = promoted(survivors, list(scores), keep, list(losses))
        hits = tuple(record.hits(b, epochs) for b in survivors)
        hits = hits if all(hits) else ()
        rungs.append(Rung(epochs, tuple(survivors), scores, tuple(kept), spent, losses, hits))
        if last:
            break
        survivors = kept
    record.seconds += time.perf_counter() - began
    record.save()
    selection = Selection(
        method=Selector.HALVING,
        epochs_run=sum(r.epochs_run for r in rungs),
        epochs_full_sweep=blocks * cfg.epochs,
        seconds=round(record.seconds, 3),
        eta=cfg.eta,
        rungs=tuple(rungs),
    )
    return final, selection


def _done_before(record: HalvingRecord, block: int, earlier: list[int]) -> int:
    """Epochs ``block`` had done before this rung (its last earlier rung's)."""
    done = [record.epochs_done(block, e) for e in earlier if record.has(block, e)]
    return done[-1] if done else 0


def _run_rung(
    ready: Prepared,
    executor: Executor,
    record: HalvingRecord,
    survivors: list[int],
    until: int | None,
    progress: Progress | None,
) -> list[JobResult]:
    """Train ``survivors`` to ``until`` (None: their full budget), skipping what the record
    holds; the full results of a last rung."""
    cfg = ready.config
    epochs = until or cfg.epochs
    finished: list[JobResult] = []
    todo = []
    for block in survivors:
        job = Job(JobKind.BLOCK, cfg, block=block)
        result = finished_result(ready.folder, job.name) if until is None else None
        if result is not None:
            finished.append(result)
            record.add(block, epochs, result, epochs_done(ready, result))
        elif not record.has(block, epochs):
            todo.append(Task(job, until))
    started = (
        (lambda task: progress(ProgressEvent.START, task.job, 0, len(todo))) if progress else None
    )
    for done, (task, result) in enumerate(executor.run(ready, todo, None, started), 1):
        assert task.job.block is not None
        record.add(task.job.block, epochs, result, epochs_done(ready, result))
        record.save()
        if until is None:
            finished.append(result)
        if progress:
            progress(ProgressEvent.DONE, task.job, done, len(todo))
    return finished
