"""One fine-tuning job (a set of trainable parameters), run to a result file.

:class:`Runner` holds what jobs share (data, the source weights, the activation cache)
and runs each :class:`~trainers.jobs.Job` as a pure function of (settings, job): the
trunk is reset to the source weights, the head re-initialised from a seed derived from
the job's name, and the result written atomically to ``results/<job>.json``. Per-epoch
metrics go to ``metrics/<job>.jsonl`` and the best epoch's trained parameters to
``checkpoints/<job>.safetensors``.
"""

from __future__ import annotations

import json
import math
import time
import zlib
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from graphblocks import Partition, atomic_target, segment_model
from trainers.cache import GIB, ActivationWalker, Budget, Store
from trainers.config import ConfigError, TrainConfig
from trainers.data import Preprocess, batches
from trainers.jobs import Job, JobResult
from trainers.modeling import FineTuneModel, eval_mode, freeze, set_modes
from trainers.pause import BestEpoch, Training, paused_path, restore_paused, save_paused
from trainers.results import write_job_result
from trainers.strategies import Trainable, trainable

#: ``(epoch, validation accuracy)`` after each epoch
EpochProgress = Callable[[int, float], None]


@dataclass
class Loaded:
    """Decoded images and labels per split."""

    images: dict[str, torch.Tensor]
    labels: dict[str, torch.Tensor]
    classes: list[str]
    skipped: list[str] = field(default_factory=list)


def pick_device(name: str) -> torch.device:
    """``auto``: CUDA, then Apple MPS, then the CPU; a named device must be there."""
    available = {
        "cuda": torch.cuda.is_available(),
        "mps": getattr(torch.backends, "mps", None) is not None
        and torch.backends.mps.is_available(),
        "cpu": True,
    }
    if name == "auto":
        return torch.device(next(d for d, ok in available.items() if ok))
    if not available.get(name, False):
        raise ConfigError(f"device {name!r} is not available here", "use --device auto or cpu")
    return torch.device(name)


def job_seed(seed: int, name: str) -> int:
    """The job's own seed: the same for a job whatever ran before it."""
    return (seed * 1_000_003 + zlib.crc32(name.encode())) % 2**31


def lr_factor(cfg: TrainConfig, total_steps: int) -> Callable[[int], float]:
    """The schedule: the share of ``cfg.lr`` at optimizer step s (constant, or cosine
    from 1 to 0 over ``total_steps``)."""
    if cfg.schedule == "cosine":
        return lambda s: 0.5 * (1 + math.cos(math.pi * s / total_steps))
    return lambda s: 1.0


def steps_per_epoch(cfg: TrainConfig, images: int) -> int:
    """Optimizer steps in one pass over ``images`` training images."""
    return math.ceil(images / cfg.batch_size)


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return float((logits.argmax(1) == labels).float().mean()) if len(labels) else float("nan")


@dataclass
class Inputs:
    """Where a job's batches come from: cached activations at its level (``stores``)
    and the trunk part that runs on them, or (None, the whole trunk)."""

    stores: dict[str, Store] | None
    suffix: nn.Module

    @property
    def cache_kinds(self) -> list[str]:
        return sorted({s.kind for s in self.stores.values()}) if self.stores else []


class Runner:
    """Runs jobs on one model, data set and run folder."""

    def __init__(
        self,
        config: TrainConfig,
        partition: Partition,
        model: FineTuneModel,
        data: Loaded,
        preprocess: Preprocess,
        run_dir: Path,
        dropped: Collection[str] = (),
    ) -> None:
        self.config = config
        self.partition = partition
        self.model = model
        self.data = data
        self.preprocess = preprocess
        self.run_dir = run_dir
        self.dropped = tuple(dropped)  # the source classifier's parameters, gone
        self.device = pick_device(config.device)
        self.model.to(self.device)
        self.source_trunk = {k: v.detach().clone() for k, v in model.trunk.state_dict().items()}
        self._segments: list[nn.Module] | None = None
        self._walker: ActivationWalker | None = None
        self.cache_note = ""

    # ---- activation cache ------------------------------------------------------------
    def cache_usable(self) -> bool:
        return self.config.cache != "off" and not self.config.augment

    def segments(self) -> list[nn.Module] | None:
        """The trunk cut at every block entry (None when it cannot be cut)."""
        if self._segments is None and self.cache_usable() and not self.cache_note:
            try:
                self.model.trunk.eval()
                cuts = [b.entry for b in self.partition.blocks[1:]]
                self._segments = list(segment_model(self.model.trunk, cuts))
            except Exception as exc:  # any tracing failure: train without the cache
                self.cache_note = f"no activation cache: {type(exc).__name__}: {str(exc)[:160]}"
        return self._segments

    def walker(self) -> ActivationWalker | None:
        segments = self.segments()
        if segments is None:
            return None
        if self._walker is None:
            memory = self.config.cache_memory_gb * GIB if self.config.cache != "disk" else 0.0
            disk = self.config.cache_disk_gb * GIB if self.config.cache != "memory" else 0.0
            dtype = torch.float16 if self.config.cache_dtype == "float16" else torch.float32
            budget = Budget(memory, disk, self.run_dir / "cache", dtype)
            self._walker = ActivationWalker(
                segments, self.data.images, self.preprocess, budget, self.device
            )
        return self._walker

    def plan_inputs(self, level: int | None) -> Inputs:
        """Cached activations at block ``level``'s entry when they can be had, else the
        images through the whole trunk."""
        walker = self.walker() if level else None
        if walker is not None and level:
            stores = walker.at(level)
            if stores is not None:
                return Inputs(stores, nn.Sequential(*walker.segments[level:]))
        return Inputs(None, self.model.trunk)

    def batch(
        self,
        split: str,
        index: torch.Tensor,
        inputs: Inputs | None = None,
        generator: torch.Generator | None = None,
        *,
        augment: bool = True,
    ) -> torch.Tensor:
        """What ``inputs``' suffix takes for rows ``index`` of ``split``: cached
        activations, or the preprocessed (and, for training unless ``augment`` is off,
        augmented) images."""
        if inputs is not None and inputs.stores is not None:
            return inputs.stores[split].batch(index, self.device)
        images = self.data.images[split][index].to(self.device)
        return self.preprocess(images, generator, train=augment and split == "train")

    # ---- one job -------------------------------------------------------------------------
    def run(
        self, job: Job, progress: EpochProgress | None = None, until: int | None = None
    ) -> JobResult:
        """Train ``job`` from the source weights, or from where it was paused; write and
        return its result. With ``until`` below the job's epochs, pause after epoch
        ``until`` instead (``paused/<job>.pt``) and return the best epoch so far, with no
        test accuracy and no result file."""
        start = time.perf_counter()
        seed = self.reset(job)
        plan = trainable(job, self.partition, self.dropped)
        inputs = self.plan_inputs(plan.level)
        count = freeze(self.model, plan.params, job.settings.bn)
        stop = min(until or job.settings.epochs, job.settings.epochs)
        training = self._train(job, inputs, torch.Generator().manual_seed(seed), progress, stop)
        done = training.stopped or training.epoch >= job.settings.epochs
        if not done:
            return JobResult(
                name=job.name, val_acc=training.best.val_acc, test_acc=float("nan"),
                best_epoch=training.best.epoch, trainable_params=count,
                seconds=round(time.perf_counter() - start, 3),
                train_seconds=round(training.train_seconds, 3), steps=training.steps,
                cache=tuple(inputs.cache_kinds),
            )  # fmt: skip
        self.model.load_state_dict(training.best.state, strict=False)
        self._save_checkpoint(job, plan, training.best.state)
        result = JobResult(
            name=job.name, val_acc=training.best.val_acc,
            test_acc=self.evaluate("test", inputs), best_epoch=training.best.epoch,
            trainable_params=count, seconds=round(time.perf_counter() - start, 3),
            train_seconds=round(training.train_seconds, 3), steps=training.steps,
            cache=tuple(inputs.cache_kinds),
        )  # fmt: skip
        write_job_result(self.run_dir / "results" / f"{job.file_stem}.json", result)
        paused_path(self.run_dir, job.file_stem).unlink(missing_ok=True)
        return result

    def reset(self, job: Job) -> int:
        """The trunk back to the source weights, the head re-initialised from the job's
        own seed; returns that seed."""
        self.model.trunk.load_state_dict(self.source_trunk)
        seed = job_seed(job.settings.seed, job.seed_name)
        torch.manual_seed(seed)
        for module in self.model.head.modules():
            if isinstance(module, nn.Linear):
                module.reset_parameters()
        self.model.trunk.eval()
        return seed

    def _optimizer(
        self, cfg: TrainConfig
    ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
        """Adam over the trainable parameters, with the schedule over all steps."""
        params = [p for p in self.model.parameters() if p.requires_grad]
        optimizer = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        total = cfg.epochs * steps_per_epoch(cfg, len(self.data.labels["train"]))
        return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(cfg, total))

    def _train(
        self,
        job: Job,
        inputs: Inputs,
        generator: torch.Generator,
        progress: EpochProgress | None,
        stop: int,
    ) -> Training:
        """Epochs up to ``stop`` (or until ``patience`` runs out), continuing a paused
        job, logging metrics; pauses the job when it stops short of its budget."""
        cfg = job.settings
        optimizer, schedule = self._optimizer(cfg)
        paused = paused_path(self.run_dir, job.file_stem)
        training = Training()
        if paused.exists():
            training = restore_paused(paused, self.model, optimizer, schedule, generator)
            if training.epoch > stop:
                raise ConfigError(
                    f"{job.name} is paused after epoch {training.epoch}, past this rung's {stop}",
                    "resume with the settings the run was started with (see its config.toml)",
                )
        metrics_path = self.run_dir / "metrics" / f"{job.file_stem}.jsonl"
        metrics_path.parent.mkdir(parents=True, exist_ok=True)
        with metrics_path.open("a" if training.epoch else "w") as log:
            while training.epoch < stop and not training.stopped:
                self._epoch(cfg, inputs, optimizer, schedule, generator, training)
                epoch, val_acc = training.epoch, training.history[-1]
                record = {"epoch": epoch, "train_loss": training.last_loss, "val_acc": val_acc}
                log.write(json.dumps(record) + "\n")
                log.flush()
                if progress:
                    progress(epoch, val_acc)
        if training.epoch < cfg.epochs and not training.stopped:
            state = self._trained_state()
            save_paused(paused, training, state, optimizer, schedule, generator)
        return training

    def _epoch(
        self,
        cfg: TrainConfig,
        inputs: Inputs,
        optimizer: torch.optim.Optimizer,
        schedule: torch.optim.lr_scheduler.LRScheduler,
        generator: torch.Generator,
        training: Training,
    ) -> None:
        """One epoch, validated; ``training`` updated (best epoch, patience)."""
        began = time.perf_counter()
        loss, seen = self._train_epoch(cfg, inputs, optimizer, schedule, generator)
        training.train_seconds += time.perf_counter() - began
        training.steps += math.ceil(seen / cfg.batch_size)
        training.epoch += 1
        training.last_loss = loss / max(seen, 1)
        val_acc = self.evaluate("val", inputs)
        training.history.append(val_acc)
        if val_acc > training.best.val_acc or training.best.epoch < 0:
            training.best, training.stale = (
                BestEpoch(val_acc, training.epoch, self._trained_state()),
                0,
            )
        else:
            training.stale += 1
            training.stopped = cfg.patience is not None and training.stale >= cfg.patience

    def _train_epoch(
        self,
        cfg: TrainConfig,
        inputs: Inputs,
        optimizer: torch.optim.Optimizer,
        schedule: torch.optim.lr_scheduler.LRScheduler,
        generator: torch.Generator,
    ) -> tuple[float, int]:
        """One pass over the training split; the summed loss and the images seen."""
        model, labels = self.model, self.data.labels["train"]
        autocast = cfg.amp and self.device.type == "cuda"  # bfloat16: no loss scaling needed
        set_modes(model, cfg.bn)
        loss_sum, seen = 0.0, 0
        for index in batches(len(labels), cfg.batch_size, shuffle=True, generator=generator):
            x = self.batch("train", index, inputs, generator)
            y = labels[index].to(self.device)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=autocast):
                loss = nn.functional.cross_entropy(model.head(inputs.suffix(x)), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            loss_sum, seen = loss_sum + float(loss.detach()) * len(index), seen + len(index)
        return loss_sum, seen

    @torch.no_grad()
    def evaluate(self, split: str, inputs: Inputs | None = None) -> float:
        """Accuracy on ``split`` with every module in eval mode (modes restored after);
        ``inputs`` default to the images through the whole trunk."""
        inputs = inputs or Inputs(None, self.model.trunk)
        labels = self.data.labels[split]
        if not len(labels):
            return float("nan")
        correct = 0
        with eval_mode(self.model):
            for index in batches(len(labels), 128, shuffle=False):
                logits = self.model.head(inputs.suffix(self.batch(split, index, inputs)))
                correct += int((logits.argmax(1).cpu() == labels[index]).sum())
        return correct / len(labels)

    def _trained_state(self) -> dict[str, torch.Tensor]:
        return {
            n: p.detach().clone() for n, p in self.model.named_parameters() if p.requires_grad
        } | {n: b.detach().clone() for n, b in self.model.named_buffers()}

    def _save_checkpoint(self, job: Job, plan: Trainable, state: dict[str, torch.Tensor]) -> None:
        from safetensors.torch import save_file

        modules = {p.rpartition(".")[0] for p in plan.params}  # their buffers trained too
        trained = {
            n: t.contiguous().cpu()
            for n, t in state.items()
            if n.startswith("head.")
            or n.removeprefix("trunk.") in plan.params
            or n.removeprefix("trunk.").rpartition(".")[0] in modules
        }
        with atomic_target(self.run_dir / "checkpoints" / f"{job.file_stem}.safetensors") as tmp:
            save_file(trained, str(tmp))
