"""B_opt by Auto-RGN's relative gradient norms: train only the block it ranks first.

**Auto-RGN** (Lee et al., ICLR 2023, "Surgical fine-tuning improves adaptation to
distribution shifts", §5) trains tensor i at a rate ∝ its relative gradient norm
RGN_i = ‖g_i‖₂ / ‖θ_i‖₂ (:mod:`trainers.training.rgn`). As a ranker of blocks, as
published, with three choices of ours where the paper leaves room:

1. **Linear-probe warm start.** The gradient is taken after the new head has been
   fitted on the frozen source features (``gradnorm_probe_epochs`` epochs of BL1's training, on
   the cached trunk output), so that it measures how each layer should move to fit the
   target, not the noise of a random head.
2. **Normalization layers excluded** (their affine parameters are left out, as in the
   authors' code).
3. **Aggregated per block as the mean of its tensors' RGN**: the block's average
   learning-rate multiplier under Auto-RGN, so a block of many tensors is not favoured
   over a block of one.

The gradient is of the mean training loss over the training batches (``gradnorm_batches``,
all by default), with every parameter trainable and the modules in the modes of full
fine-tuning.
"""

from __future__ import annotations

import math
import statistics
import time

import torch

from trainers.execution.local import Executor
from trainers.execution.tasks import Prepared, Progress, ProgressEvent, Task
from trainers.jobs.job import Job, JobKind, JobResult
from trainers.jobs.results import Selection, finished_result
from trainers.jobs.strategies import trainable
from trainers.selection.rungs import epochs_done, promoted
from trainers.settings import Selector
from trainers.training.data import batches
from trainers.training.engine import Runner
from trainers.training.modeling import freeze, norm_params, set_modes
from trainers.training.rgn import accumulate_gradient, relative_gradient_norms


def probe_head(runner: Runner, ready: Prepared, epochs: int) -> None:
    """Fit the new head on the frozen source features for ``epochs`` epochs (BL1's job,
    seed and optimizer; the trunk stays at the source weights)."""
    cfg = ready.config
    job = Job(JobKind.HEAD, cfg)
    generator = torch.Generator().manual_seed(runner.reset(job))
    plan = trainable(job, ready.partition, runner.dropped)
    inputs = runner.inputs.plan(plan.level)
    freeze(runner.model, plan.params, cfg.bn)
    optimizer, schedule = runner.loop.optimizer(cfg)
    for _ in range(epochs):
        runner.loop.train_pass(cfg, inputs, optimizer, schedule, generator)


def gradient_scores(ready: Prepared, max_batches: int | None = None) -> list[float]:
    """Each block's mean RGN over its tensors outside normalization layers, taken after
    the linear probe (see the module docstring); the model is reset after."""
    runner, cfg = ready.runner, ready.config
    probe_head(runner, ready, cfg.gradnorm_probe_epochs)
    model = runner.model
    full = Job(JobKind.FULL, cfg)
    freeze(model, trainable(full, ready.partition, runner.dropped).params, cfg.bn)
    set_modes(model, cfg.bn)
    labels = runner.labels("train").to(runner.device)
    chosen = list(batches(runner.train_size, cfg.batch_size, shuffle=False))[:max_batches]
    pairs = ((runner.inputs.images("train", i, augment=False), labels[i]) for i in chosen)
    accumulate_gradient(model, pairs)
    excluded = norm_params(model.trunk)
    scores = []
    for block in ready.partition.blocks:
        names = [n for n in block.params if n not in excluded]
        rgn = relative_gradient_norms(model.trunk, names)
        scores.append(statistics.fmean(rgn.values()) if rgn else 0.0)
    model.zero_grad(set_to_none=True)
    runner.reset(full)  # the probe trained the head; the passes moved BatchNorm statistics
    return scores


def gradnorm_select(
    ready: Prepared, executor: Executor, progress: Progress | None = None
) -> tuple[list[JobResult], Selection]:
    """Rank the blocks by Auto-RGN; fine-tune the top one for the full budget."""
    cfg, blocks = ready.config, ready.partition.num_blocks
    began = time.perf_counter()
    with torch.enable_grad():
        scores = gradient_scores(ready, cfg.gradnorm_batches)
    ranking_seconds = time.perf_counter() - began
    top = promoted(list(range(blocks)), scores, 1)[0]
    job = Job(JobKind.BLOCK, cfg, block=top)
    result = finished_result(ready.folder, job.name)
    if result is None:
        started = (lambda task: progress(ProgressEvent.START, task.job, 0, 1)) if progress else None
        [(_, result)] = list(executor.run(ready, [Task(job)], progress, started))
    share = min(1.0, (cfg.gradnorm_batches or math.inf) * cfg.batch_size / ready.runner.train_size)
    selection = Selection(
        method=Selector.GRADNORM,
        epochs_run=epochs_done(ready, result) + share,
        epochs_full_sweep=blocks * cfg.epochs,
        seconds=round(ranking_seconds + result.seconds, 3),
        scores=tuple(scores),
        ranking_seconds=round(ranking_seconds, 3),
    )
    return [result], selection
