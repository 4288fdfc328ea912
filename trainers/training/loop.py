"""The epochs of one plain job: train, validate, log, keep the best epoch, pause.

:class:`EpochLoop` runs a job's epochs up to a stop (its budget, or a halving rung's
end), continuing from ``paused/<job>.pt`` when the job was paused
(:mod:`trainers.training.state`) and pausing it there again when it stops short of its
budget. Each epoch is one shuffled pass over the training split (Adam, the schedule
stepped per batch), then the validation score; the best epoch's trained state is kept
(the higher accuracy, then the lower loss, the earlier epoch on an exact tie:
:class:`~trainers.jobs.results.Score`), and ``patience`` epochs without a better
one stop the job.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import nn

from trainers.jobs.job import Job, PhaseName, TrainedPhase
from trainers.jobs.results import Score
from trainers.jobs.run_folder import RunFolder
from trainers.settings import ConfigError, TrainConfig
from trainers.training.data import batches
from trainers.training.inputs import InputPlanner, Inputs
from trainers.training.modeling import FineTuneModel, set_modes
from trainers.training.state import BestEpoch, Training, restore_paused, save_paused

#: ``(epoch, validation accuracy)`` after each epoch
EpochProgress = Callable[[int, float], None]
#: the validation score of the model now, on ``inputs``
Validate = Callable[[Inputs], Score]
#: a term added to each batch's loss (a recipe's), or None for nothing
Penalty = Callable[[], torch.Tensor | None]


@dataclass
class Phase:
    """What a job's epochs train on from some epoch on: their inputs and optimizer."""

    inputs: Inputs
    optimizer: torch.optim.Optimizer
    schedule: torch.optim.lr_scheduler.LRScheduler
    name: PhaseName = PhaseName.TRAIN


def began(name: PhaseName, optimizer: torch.optim.Optimizer) -> TrainedPhase:
    """The record of a phase starting now with ``optimizer`` (no epochs yet): the
    parameter elements it trains and its groups' highest and lowest rate."""
    groups = [g for g in optimizer.param_groups if g["params"]]
    unique = {id(p): p.numel() for g in groups for p in g["params"]}
    rates = [float(g["lr"]) for g in groups] or [0.0]
    return TrainedPhase(name, 0, sum(unique.values()), max(rates), min(rates))


def with_epochs(phases: list[tuple[int, TrainedPhase]], done: int) -> tuple[TrainedPhase, ...]:
    """``(first epoch, phase)`` records with each phase's epochs filled in: up to the next
    phase's start, the last up to ``done``."""
    ends = [start for start, _ in phases[1:]] + [done]
    return tuple(
        dataclasses.replace(phase, epochs=end - start)
        for (start, phase), end in zip(phases, ends, strict=True)
    )


class Recipe(Protocol):
    """How a job departs from plain training (:mod:`trainers.training.recipes`)."""

    def before_epoch(self, training: Training) -> Phase | None:
        """The phase that starts before epoch ``training.epoch + 1`` (None: no change)."""

    def penalty(self) -> torch.Tensor | None:
        """A term added to each batch's loss (None: nothing)."""


def lr_factor(cfg: TrainConfig, total_steps: int) -> Callable[[int], float]:
    """The schedule: the share of ``cfg.lr`` at optimizer step s (constant, or cosine
    from 1 to 0 over ``total_steps``)."""
    if cfg.schedule == "cosine":
        return lambda s: 0.5 * (1 + math.cos(math.pi * s / total_steps))
    return lambda s: 1.0


def steps_per_epoch(cfg: TrainConfig, images: int) -> int:
    """Optimizer steps in one pass over ``images`` training images."""
    return math.ceil(images / cfg.batch_size)


def trained_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Copies of the trainable parameters and of every buffer."""
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad} | {
        n: b.detach().clone() for n, b in model.named_buffers()
    }


class EpochLoop:
    """The epochs of plain jobs on one model (see the module docstring)."""

    def __init__(
        self,
        model: FineTuneModel,
        planner: InputPlanner,
        labels: torch.Tensor,
        folder: RunFolder,
        validate: Validate,
    ) -> None:
        self.model, self.planner, self.labels = model, planner, labels
        self.folder, self.validate = folder, validate

    def optimizer(
        self,
        cfg: TrainConfig,
        groups: Sequence[tuple[list[nn.Parameter], float]] | None = None,
        epochs: int | None = None,
    ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
        """Adam over the trainable parameters at ``cfg.lr`` (or over ``groups``, each
        ``(parameters, rate)``), with the schedule over the steps of ``epochs`` epochs
        (the job's budget when not given)."""
        if groups is None:
            groups = [([p for p in self.model.parameters() if p.requires_grad], cfg.lr)]
        chosen = [{"params": params, "lr": rate} for params, rate in groups]
        optimizer = torch.optim.Adam(chosen, lr=cfg.lr, weight_decay=cfg.weight_decay)
        total = (epochs or cfg.epochs) * steps_per_epoch(cfg, len(self.labels))
        return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(cfg, total))

    def run(
        self,
        job: Job,
        inputs: Inputs,
        generator: torch.Generator,
        progress: EpochProgress | None,
        stop: int,
        recipe: Recipe | None = None,
    ) -> Training:
        """Epochs up to ``stop`` (or until ``patience`` runs out), continuing a paused
        job, logging metrics; pauses the job when it stops short of its budget. A
        ``recipe`` may switch the inputs and optimizer before an epoch and adds its
        penalty to the loss; a job with one cannot pause."""
        cfg = job.settings
        if recipe is not None and stop < cfg.epochs:
            raise ConfigError(f"{job.name} cannot pause", "run it for its whole budget")
        optimizer, schedule = self.optimizer(cfg)
        paused = self.folder.paused(job.name)
        training = Training()
        if paused.exists():
            training = restore_paused(paused, self.model, optimizer, schedule, generator)
            if training.epoch > stop:
                raise ConfigError(
                    f"{job.name} is paused after epoch {training.epoch}, past this rung's {stop}",
                    "resume with the settings the run was started with (see its config.toml)",
                )
        metrics_path = self.folder.metrics(job.name)
        metrics_path.parent.mkdir(parents=True, exist_ok=True)
        phases = [] if recipe else [(0, began(PhaseName.TRAIN, optimizer))]
        with metrics_path.open("a" if training.epoch else "w") as log:
            while training.epoch < stop and not training.stopped:
                phase = recipe.before_epoch(training) if recipe else None
                if phase is not None:
                    inputs, optimizer, schedule = phase.inputs, phase.optimizer, phase.schedule
                    phases.append((training.epoch, began(phase.name, optimizer)))
                penalty = recipe.penalty if recipe else None
                self.epoch(cfg, inputs, optimizer, schedule, generator, training, penalty)
                epoch, val_acc = training.epoch, training.history[-1]
                record = {
                    "epoch": epoch,
                    "train_loss": training.last_loss,
                    "val_acc": val_acc,
                    "val_loss": training.last_val_loss,
                }
                log.write(json.dumps(record) + "\n")
                log.flush()
                if progress:
                    progress(epoch, val_acc)
        training.phases = with_epochs(phases, training.epoch)
        if training.epoch < cfg.epochs and not training.stopped:
            state = trained_state(self.model)
            save_paused(paused, training, state, optimizer, schedule, generator)
        return training

    def epoch(
        self,
        cfg: TrainConfig,
        inputs: Inputs,
        optimizer: torch.optim.Optimizer,
        schedule: torch.optim.lr_scheduler.LRScheduler,
        generator: torch.Generator,
        training: Training,
        penalty: Penalty | None = None,
    ) -> None:
        """One epoch, validated; ``training`` updated (best epoch, patience)."""
        began = time.perf_counter()
        loss, seen = self.train_pass(cfg, inputs, optimizer, schedule, generator, penalty)
        training.train_seconds += time.perf_counter() - began
        training.steps += math.ceil(seen / cfg.batch_size)
        training.epoch += 1
        training.last_loss = loss / max(seen, 1)
        score = self.validate(inputs)
        training.history.append(score.accuracy)
        training.last_val_loss = score.loss
        best = Score(training.best.val_acc, training.best.val_loss)
        if score.beats(best) or training.best.epoch < 0:
            state = trained_state(self.model)
            training.best = BestEpoch(score.accuracy, training.epoch, state, score.loss, score.hits)
            training.stale = 0
        else:
            training.stale += 1
            training.stopped = cfg.patience is not None and training.stale >= cfg.patience

    def train_pass(
        self,
        cfg: TrainConfig,
        inputs: Inputs,
        optimizer: torch.optim.Optimizer,
        schedule: torch.optim.lr_scheduler.LRScheduler,
        generator: torch.Generator,
        penalty: Penalty | None = None,
    ) -> tuple[float, int]:
        """One pass over the training split, each batch's loss plus ``penalty()`` when given;
        the summed cross-entropy (without the penalty) and the images seen."""
        model, device = self.model, self.planner.device
        autocast = cfg.amp and device.type == "cuda"  # bfloat16: no loss scaling needed
        set_modes(model, cfg.bn)
        loss_sum, seen = 0.0, 0
        for index in batches(len(self.labels), cfg.batch_size, shuffle=True, generator=generator):
            x = self.planner.batch("train", index, inputs, generator)
            y = self.labels[index].to(device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                loss = nn.functional.cross_entropy(model.classify(inputs.suffix(x)), y)
            extra = penalty() if penalty else None
            optimizer.zero_grad(set_to_none=True)
            (loss if extra is None else loss + extra).backward()
            optimizer.step()
            schedule.step()
            loss_sum, seen = loss_sum + float(loss.detach()) * len(index), seen + len(index)
        return loss_sum, seen
