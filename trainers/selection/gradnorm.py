"""B_opt by a gradient-norm ranker: train only the block it ranks first.

**Gradient-norm ranking** (Auto-RGN, Lee et al. 2023, "Surgical fine-tuning"). At the
start of fine-tuning (source weights, a new head, the modes of full fine-tuning) the
gradient g of the training loss, summed over the training batches, is taken once; block
b scores its relative gradient norm

    RGN_b = ‖g_b‖ / ‖θ_b‖,

the norms over all of the block's parameters. Only the top block is then fine-tuned.
"""

from __future__ import annotations

import math
import time

import torch
from torch import nn

from trainers.execution.local import Executor
from trainers.execution.tasks import Prepared, Progress, ProgressEvent, Task
from trainers.jobs.job import Job, JobKind, JobResult
from trainers.jobs.results import Selection, read_job_result
from trainers.jobs.strategies import trainable
from trainers.selection.rungs import epochs_done, promoted
from trainers.settings import Selector
from trainers.training.data import batches
from trainers.training.modeling import freeze, set_modes


def gradient_scores(ready: Prepared, max_batches: int | None = None) -> list[float]:
    """Each block's relative gradient norm ‖g_b‖/‖θ_b‖ at the start of fine-tuning (the
    gradient of the mean loss over the first ``max_batches`` training batches, or all)."""
    runner, cfg = ready.runner, ready.config
    job = Job(JobKind.FULL, cfg)
    runner.reset(job)
    model = runner.model
    freeze(model, trainable(job, ready.partition, runner.dropped).params, cfg.bn)
    set_modes(model, cfg.bn)
    model.zero_grad(set_to_none=True)
    labels = runner.labels("train")
    chosen = list(batches(runner.train_size, cfg.batch_size, shuffle=False))[:max_batches]
    total = sum(len(index) for index in chosen)
    for index in chosen:
        x = runner.inputs.images("train", index, augment=False)
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
    job = Job(JobKind.BLOCK, cfg, block=top)
    saved = ready.folder.job_result(job.name)
    if saved.exists():
        result = read_job_result(saved)
    else:
        started = (lambda task: progress(ProgressEvent.START, task.job, 0, 1)) if progress else None
        [(_, result)] = list(executor.run(ready, [Task(job)], progress, started))
    share = min(1.0, (cfg.gradnorm_batches or math.inf) * cfg.batch_size / ready.runner.train_size)
    selection = Selection(
        method=Selector.GRADNORM, epochs_run=epochs_done(ready, result) + share,
        epochs_full_sweep=blocks * cfg.epochs,
        seconds=round(ranking_seconds + result.seconds, 3), scores=tuple(scores),
        ranking_seconds=round(ranking_seconds, 3),
    )  # fmt: skip
    return [result], selection
