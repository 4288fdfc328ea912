"""``--select asha``: asynchronous successive halving over the blocks, by Ray Tune.

Each block is a Tune trial that trains its block job epoch by epoch and reports
``val_acc`` (its best validation accuracy so far) after every epoch; Ray Tune's
``ASHAScheduler`` (Li et al. 2018) stops the trials that fall below the top 1/η of
those recorded at a rung. Its milestones are those of ``--select halving``
(:func:`trainers.selection.rungs.rung_epochs`: grace period ``min_epochs``, reduction factor
``eta``, maximum ``epochs``). Promotions are made as results arrive, without waiting
for the rung to fill: no worker idles at a rung, but a block that reports early is
judged against fewer others, so ASHA may keep a block that synchronous halving would
drop (and the other way round); the chosen block can then depend on timing. B_opt is
the best of the blocks that reached the full budget (the earlier on a tie); its files
come back to the driver through a Tune checkpoint, and the experiment's folder
(``RUN_DIR/tune``) is removed. A killed ``asha`` run is started again from the beginning
(``halving`` resumes where it stopped). ASHA runs on the Ray executor it is given (its
shipped run and its per-task resources); :mod:`trainers.session` gives it the one the run
uses.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from graphblocks import GraphblocksError
from trainers.execution.ray_tasks import RayExecutor
from trainers.execution.tasks import Prepared, Progress, job_threads
from trainers.jobs.job import Job, JobKind, JobResult
from trainers.jobs.results import Rung, Selection, read_job_result
from trainers.jobs.run_folder import RunFolder
from trainers.selection.rungs import epochs_done, promoted, rung_epochs
from trainers.settings import Selector


def _trial(params: dict[str, Any], shipped: Any) -> None:
    """One block's trial: report after every epoch; the last report carries the files."""
    from ray import tune

    # in the trial's own folder, which goes when the driver removes the experiment
    scratch = Path(tempfile.mkdtemp(prefix="block-", dir=tune.get_context().get_trial_dir()))
    ready = shipped.prepared(scratch)
    job = Job(JobKind.BLOCK, shipped.config, block=params["block"])
    epochs, best = job.settings.epochs, [-1.0]

    def report(epoch: int, val_acc: float) -> None:
        best[0] = max(best[0], val_acc)
        if epoch < epochs:
            tune.report({"epoch": epoch, "val_acc": best[0]})

    with job_threads(job.settings.threads_per_job):
        result = ready.runner.run(job, report)
    done = epochs_done(ready, result)
    checkpoint = tune.Checkpoint.from_directory(str(scratch))
    tune.report({"epoch": done, "val_acc": result.val_acc}, checkpoint=checkpoint)


def asha_select(
    ready: Prepared, executor: RayExecutor, progress: Progress | None = None
) -> tuple[list[JobResult], Selection]:
    """Ray Tune's ASHA over the blocks on ``executor``'s cluster (see the module
    docstring). Tune reports no epochs to ``progress``."""
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # verbose=0 then prints nothing
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    cfg, blocks = ready.config, ready.partition.num_blocks
    began = time.perf_counter()
    scheduler = ASHAScheduler(
        time_attr="epoch", max_t=cfg.epochs, grace_period=ready.first_rung, reduction_factor=cfg.eta
    )
    trainable = tune.with_resources(
        tune.with_parameters(_trial, shipped=executor.shipped(ready)),
        {"cpu": executor.cpus, "gpu": executor.gpus},
    )
    storage = ready.folder.tune.resolve()
    shutil.rmtree(storage, ignore_errors=True)
    tuner = tune.Tuner(
        trainable,
        param_space={"block": tune.grid_search(list(range(blocks)))},
        tune_config=tune.TuneConfig(metric="val_acc", mode="max", scheduler=scheduler),
        run_config=tune.RunConfig(storage_path=str(storage), name="asha", verbose=0),
    )
    grid = tuner.fit()
    trials: list[Any] = [grid[i] for i in range(len(grid))]
    histories = {_block_of(trial): _history(trial) for trial in trials}
    finalists = [b for b, h in histories.items() if cfg.epochs in h]
    best = promoted(finalists, [histories[b][cfg.epochs] for b in finalists], 1)[0]
    winner = next(t for t in trials if _block_of(t) == best)
    assert winner.checkpoint is not None
    with winner.checkpoint.as_directory() as folder:
        ready.folder.write_back(RunFolder(Path(folder)).written_files())
    shutil.rmtree(storage, ignore_errors=True)  # the trials' folders and checkpoints
    result = read_job_result(ready.folder.job_result(winner_job(ready, best).name))
    selection = Selection(
        method=Selector.ASHA,
        epochs_run=sum(max(h) for h in histories.values()),
        epochs_full_sweep=blocks * cfg.epochs,
        seconds=round(time.perf_counter() - began, 3),
        eta=cfg.eta,
        rungs=_rungs(histories, rung_epochs(cfg.epochs, cfg.eta, ready.first_rung)),
    )
    return [result], selection


def _block_of(trial: Any) -> int:
    return int(trial.config["block"])


def _history(trial: Any) -> dict[int, float]:
    """Epoch → the reported score, of one finished trial (or the trial's error)."""
    if trial.error is not None:
        raise GraphblocksError(
            f"the ASHA trial of block {_block_of(trial)} failed: {trial.error}",
            "rerun with --select halving to see the error in this process",
        )
    frame = trial.metrics_dataframe
    return {int(e): float(v) for e, v in zip(frame["epoch"], frame["val_acc"], strict=True)}


def winner_job(ready: Prepared, block: int) -> Job:
    return Job(JobKind.BLOCK, ready.config, block=block)


def _rungs(histories: dict[int, dict[int, float]], milestones: list[int]) -> tuple[Rung, ...]:
    """The rungs as ASHA played them: the blocks that reached each milestone, their
    scores there, and those that went on to the next one."""
    rungs, before = [], 0
    for k, epochs in enumerate(milestones):
        reached = sorted(b for b, h in histories.items() if epochs in h)
        if not reached:
            break
        following = milestones[k + 1] if k + 1 < len(milestones) else None
        kept = tuple(b for b in reached if following is not None and following in histories[b])
        if following is None:
            kept = tuple(promoted(reached, [histories[b][epochs] for b in reached], 1))
        spent = len(reached) * (epochs - before)
        rungs.append(
            Rung(epochs, tuple(reached), tuple(histories[b][epochs] for b in reached), kept, spent)
        )
        before = epochs
    return tuple(rungs)
