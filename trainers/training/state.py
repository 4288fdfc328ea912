"""A job stopped and continued later exactly as if it had not stopped: one file and one
format for every job, saved at two cadences (a plain job between epochs, RL-Tune after
each episode).

A job's state goes to ``paused/<job>.pt`` (:meth:`RunFolder.paused
<trainers.jobs.run_folder.RunFolder.paused>`) through :func:`save_state`, atomically, and
comes back through :func:`load_state`, which unpickles nothing (``weights_only=True``):
the state is tensors, numbers, strings and containers of them. The file goes when the
job finishes.

* A plain job pauses between epochs (:func:`save_paused`): successive halving
  (:mod:`trainers.selection`) trains every block for a few epochs and only the best ones
  for more, and a promoted block carries on from where it stopped, so the epochs of a
  rung are a prefix of the job's full run and a block that reaches the full budget ends
  with the same result as in a full sweep. Its state: the trained parameters and buffers
  after the last epoch, Adam's moments, the schedule's step, the batch-order generator,
  torch's global generator (the head's dropout), the best epoch so far and the
  validation accuracy of every epoch.
* RL-Tune saves its state after every episode (:mod:`trainers.training.rltune.tuner`),
  so a killed RL-Tune job continues after its last finished episode.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from graphblocks import atomic_target
from trainers.jobs.job import TrainedPhase


@dataclass
class BestEpoch:
    """The epoch with the best validation score so far (accuracy, then loss), and its
    trained state."""

    val_acc: float = -1.0
    epoch: int = -1
    state: dict[str, torch.Tensor] = field(default_factory=dict)
    #: its validation loss (NaN in states paused before it was recorded)
    val_loss: float = float("nan")
    #: which validation images it classified right ("": paused before they were recorded)
    val_hits: str = ""


@dataclass
class Training:
    """Where a job's epochs stand: the epochs done and what they gave."""

    best: BestEpoch = field(default_factory=BestEpoch)
    epoch: int = 0
    stale: int = 0
    steps: int = 0
    train_seconds: float = 0.0
    #: validation accuracy after each epoch (index 0: epoch 1)
    history: list[float] = field(default_factory=list)
    #: patience ran out: no more epochs will run
    stopped: bool = False
    #: the last epoch's mean training loss, and its validation loss
    last_loss: float = float("nan")
    last_val_loss: float = float("nan")
    #: the stretches of epochs with one optimizer each, as the loop last left them (not
    #: paused with the job: a plain job has one, recounted when it continues)
    phases: tuple[TrainedPhase, ...] = ()


def save_state(path: Path, state: dict[str, Any]) -> None:
    """Write a job's state atomically (tensors, numbers, strings and containers)."""
    with atomic_target(path) as tmp:
        torch.save(state, tmp)


def load_state(path: Path) -> dict[str, Any]:
    """A state written by :func:`save_state`, unpickling nothing."""
    state: dict[str, Any] = torch.load(path, weights_only=True)
    return state


def save_paused(
    path: Path,
    training: Training,
    model_state: dict[str, torch.Tensor],
    optimizer: torch.optim.Optimizer,
    schedule: torch.optim.lr_scheduler.LRScheduler,
    generator: torch.Generator,
) -> None:
    """Write the state after ``training.epoch`` epochs, atomically."""
    record = {k: v for k, v in vars(training).items() if k not in ("best", "phases")}
    state = {
        "training": record,
        "best": vars(training.best),
        "model": model_state,
        "optimizer": optimizer.state_dict(),
        "schedule": schedule.state_dict(),
        "generator": generator.get_state(),
        "rng": torch.get_rng_state(),
    }
    save_state(path, state)


def restore_paused(
    path: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    schedule: torch.optim.lr_scheduler.LRScheduler,
    generator: torch.Generator,
) -> Training:
    """Put the paused state into ``model``, ``optimizer``, ``schedule`` and the
    generators; return where the epochs stand."""
    state = load_state(path)
    model.load_state_dict(state["model"], strict=False)
    optimizer.load_state_dict(state["optimizer"])
    schedule.load_state_dict(state["schedule"])
    generator.set_state(state["generator"])
    torch.set_rng_state(state["rng"])
    fields = {f.name for f in dataclasses.fields(Training)} - {"best"}
    kept = {k: state["training"][k] for k in fields if k in state["training"]}
    return Training(best=BestEpoch(**state["best"]), **kept)
