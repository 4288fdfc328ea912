"""B_opt without a full sweep: successive halving over the blocks, and a gradient-norm ranker.

**Successive halving** (Jamieson & Talwalkar 2016; the rungs of ASHA, Li et al. 2018).
With N blocks, a full budget of R epochs, a reduction factor η and a first rung of r₀
epochs, the rungs end at

    r_k = r₀·η^k  for every k with r₀·η^k < R,  then R,

ASHA's milestones (grace period r₀, reduction factor η, maximum R). Rung 0 trains every
block to r₀ epochs; each later rung continues the best ⌊n_k/η⌋ blocks of the rung
before (at least one; exactly one for the last rung, so that one block gets the full
budget) to its own milestone. A block is scored by its best validation accuracy so far;
ties go to the earlier block, as in :func:`trainers.results.best_block`. A promoted
block carries on from where it paused (:mod:`trainers.pause`), so its rungs are a prefix
of one R-epoch job and the last block ends with exactly its full-sweep result.

The promotions are decided on the driver from all of a rung's results, whichever
executor ran them; the chosen block therefore does not depend on the executor or the
order in which tasks finish. ``selection.json`` in the run folder records each finished
(block, rung); with the paused jobs it lets a killed run resume at the task it stopped in.

**Gradient-norm ranking** (Auto-RGN, Lee et al. 2023, "Surgical fine-tuning"). At the
start of fine-tuning (source weights, a new head, the modes of full fine-tuning) the
gradient g of the training loss, summed over the training batches, is taken once; block
b scores its relative gradient norm

    RGN_b = ‖g_b‖ / ‖θ_b‖,

the norms over all of the block's parameters. Only the top block is then fine-tuned.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from graphblocks import write_atomic
from trainers.data import batches
from trainers.engine import steps_per_epoch
from trainers.executors import Executor
from trainers.jobs import Job, JobResult
from trainers.modeling import freeze, set_modes
from trainers.results import Rung, Selection, read_job_result
from trainers.strategies import trainable
from trainers.tasks import Prepared, Progress, Task

RECORD = "selection.json"


def rung_epochs(full: int, eta: int, first: int) -> list[int]:
    """The epochs each rung trains to: ``first·eta^k`` below ``full``, then ``full``."""
    milestones, epochs = [], first
    while epochs < full:
        milestones.append(epochs)
        epochs *= eta
    return [*milestones, full]


def promoted(blocks: list[int], scores: list[float], keep: int) -> list[int]:
    """The ``keep`` best blocks by score, the earlier on a tie, in block order."""
    ranked = sorted(zip(blocks, scores, strict=True), key=lambda pair: (-pair[1], pair[0]))
    return sorted(block for block, _ in ranked[:keep])


class HalvingRecord:
    """``selection.json``: each finished (block, rung) → its best validation accuracy so
    far and its epochs done; plus the seconds spent."""

    def __init__(self, path: Path) -> None:
        self.path = path
        data = json.loads(path.read_text()) if path.exists() else {}
        self.done: dict[str, list[float]] = data.get("done", {})
        self.seconds: float = data.get("seconds", 0.0)

    @staticmethod
    def key(block: int, epochs: int) -> str:
        return f"{block}@{epochs}"

    def add(self, block: int, epochs: int, val_acc: float, epochs_done: int) -> None:
        self.done[self.key(block, epochs)] = [val_acc, epochs_done]

    def save(self) -> None:
        write_atomic(self.path, json.dumps({"done": self.done, "seconds": self.seconds}) + "\n")


def epochs_done(ready: Prepared, result: JobResult) -> int:
    """The epochs a job's result has trained (its steps over the steps of one epoch)."""
    return result.steps // steps_per_epoch(ready.config, len(ready.runner.data.labels["train"]))


def successive_halving(
    ready: Prepared, executor: Executor, progress: Progress | None = None
) -> tuple[list[JobResult], Selection]:
    """Run successive halving over the blocks (see the module docstring); the last
    block's full result and the selection's record."""
    cfg, blocks = ready.config, ready.partition.num_blocks
    record = HalvingRecord(ready.run_dir / RECORD)
    began = time.perf_counter()
    milestones = rung_epochs(cfg.epochs, cfg.eta, cfg.min_epochs)
    survivors, rungs, final = list(range(blocks)), [], []
    for k, epochs in enumerate(milestones):
        last = k == len(milestones) - 1 or len(survivors) == 1
        epochs = cfg.epochs if last else epochs
        final = _run_rung(ready, executor, record, survivors, None if last else epochs, progress)
        scores = [record.done[record.key(b, epochs)][0] for b in survivors]
        before = {b: _done_before(record, b, milestones[:k]) for b in survivors}
        spent = sum(int(record.done[record.key(b, epochs)][1]) - before[b] for b in survivors)
        keep = 1 if last or k + 2 >= len(milestones) else max(1, len(survivors) // cfg.eta)
        kept = promoted(survivors, scores, keep)
        rungs.append(Rung(epochs, tuple(survivors), tuple(scores), tuple(kept), spent))
        if last:
            break
        survivors = kept
    record.seconds += time.perf_counter() - began
    record.save()
    selection = Selection(
        method="halving", epochs_run=sum(r.epochs_run for r in rungs),
        epochs_full_sweep=blocks * cfg.epochs, seconds=round(record.seconds, 3), eta=cfg.eta,
        rungs=tuple(rungs),
    )  # fmt: skip
    return final, selection


def _done_before(record: HalvingRecord, block: int, earlier: list[int]) -> int:
    """Epochs ``block`` had done before this rung (its last earlier rung's)."""
    done = [
        record.done[record.key(block, e)][1] for e in earlier if record.key(block, e) in record.done
    ]
    return int(done[-1]) if done else 0


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
        job = Job("block", cfg, block=block)
        saved = ready.run_dir / "results" / f"{job.file_stem}.json"
        if until is None and saved.exists():
            result = read_job_result(saved)
            finished.append(result)
            record.add(block, epochs, result.val_acc, epochs_done(ready, result))
        elif record.key(block, epochs) not in record.done:
            todo.append(Task(job, until))
    started = (lambda task: progress("start", task.job, 0, len(todo))) if progress else None
    for done, (task, result) in enumerate(executor.run(ready, todo, None, started), 1):
        assert task.job.block is not None
        record.add(task.job.block, epochs, result.val_acc, epochs_done(ready, result))
        record.save()
        if until is None:
            finished.append(result)
        if progress:
            progress("done", task.job, done, len(todo))
    return finished


# ---- gradient-norm ranking ----------------------------------------------------------------
def gradient_scores(ready: Prepared, max_batches: int | None = None) -> list[float]:
    """Each block's relative gradient norm ‖g_b‖/‖θ_b‖ at the start of fine-tuning (the
    gradient of the mean loss over the first ``max_batches`` training batches, or all)."""
    runner, cfg = ready.runner, ready.config
    job = Job("full", cfg)
    runner.reset(job)
    model = runner.model
    freeze(model, trainable(job, ready.partition, runner.dropped).params, cfg.bn)
    set_modes(model, cfg.bn)
    model.zero_grad(set_to_none=True)
    labels = runner.data.labels["train"]
    chosen = list(batches(len(labels), cfg.batch_size, shuffle=False))[:max_batches]
    total = sum(len(index) for index in chosen)
    for index in chosen:
        x = runner.batch("train", index, None, augment=False)
        loss = nn.functional.cross_entropy(model(x), labels[index].to(runner.device))
        (loss * len(index) / total).backward()
    scores = [_relative_norm(model.trunk, block.params) for block in ready.partition.blocks]
    model.zero_grad(set_to_none=True)
    runner.reset(job)  # the forward passes moved BatchNorm statistics
    return scores


def _relative_norm(trunk: nn.Module, params: list[str]) -> float:
    grads = weights = 0.0
    for name in params:
        param = trunk.get_parameter(name)
        weights += float(param.detach().pow(2).sum())
        if param.grad is not None:
            grads += float(param.grad.pow(2).sum())
    return math.sqrt(grads / weights) if weights > 0 else 0.0


def gradnorm_select(
    ready: Prepared, executor: Executor, progress: Progress | None = None
) -> tuple[list[JobResult], Selection]:
    """Rank the blocks by relative gradient norm; fine-tune the top one for the full budget."""
    cfg, blocks = ready.config, ready.partition.num_blocks
    began = time.perf_counter()
    with torch.enable_grad():
        scores = gradient_scores(ready, cfg.gradnorm_batches)
    ranking_seconds = time.perf_counter() - began
    top = promoted(list(range(blocks)), scores, 1)[0]
    job = Job("block", cfg, block=top)
    saved = ready.run_dir / "results" / f"{job.file_stem}.json"
    if saved.exists():
        result = read_job_result(saved)
    else:
        started = (lambda task: progress("start", task.job, 0, 1)) if progress else None
        [(_, result)] = list(executor.run(ready, [Task(job)], progress, started))
    share = min(
        1.0,
        (cfg.gradnorm_batches or math.inf)
        * cfg.batch_size
        / len(ready.runner.data.labels["train"]),
    )
    selection = Selection(
        method="gradnorm", epochs_run=epochs_done(ready, result) + share,
        epochs_full_sweep=blocks * cfg.epochs,
        seconds=round(ranking_seconds + result.seconds, 3), scores=tuple(scores),
        ranking_seconds=round(ranking_seconds, 3),
    )  # fmt: skip
    return [result], selection


def _asha(
    ready: Prepared, executor: Executor, progress: Progress | None = None
) -> tuple[list[JobResult], Selection]:
    from trainers.asha import asha_select

    return asha_select(ready, executor, progress)


#: ``--select`` → the selector (``full`` trains every block: no selector)
SELECTORS: dict[
    str, Callable[[Prepared, Executor, Progress | None], tuple[list[JobResult], Selection]]
] = {
    "halving": successive_halving,
    "gradnorm": gradnorm_select,
    "asha": _asha,
}
