"""One fine-tuning job (a set of trainable parameters), run to a result file.

:class:`Runner` holds what the jobs of a run share (the model with its source weights,
the decoded data, the activation cache through an
:class:`~trainers.training.inputs.InputPlanner`) and runs each
:class:`~trainers.jobs.job.Job` so that its result depends only on (settings, job): the
trunk is reset to the source weights and the head re-initialised from a seed derived
from the job's name before the job's epochs run (:class:`~trainers.training.loop.EpochLoop`).
A finished job's result goes to ``results/<job>.json`` and its selected epoch's trained
parameters to ``checkpoints/<job>.safetensors``, each written atomically
(:class:`~trainers.jobs.run_folder.RunFolder` names the paths).
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Collection
from dataclasses import dataclass, field

import torch
from torch import nn

from graphblocks import Partition, atomic_target
from trainers.jobs.job import Job, JobResult
from trainers.jobs.results import Score, write_job_result
from trainers.jobs.run_folder import RunFolder
from trainers.jobs.strategies import Trainable, trainable
from trainers.settings import ConfigError, EvalBN, TrainConfig
from trainers.training.batchnorm import recompute_bn, training_norms
from trainers.training.data import Preprocess, batches
from trainers.training.evaluation import dataset_score
from trainers.training.inputs import InputPlanner, Inputs
from trainers.training.loop import EpochLoop, EpochProgress, steps_per_epoch
from trainers.training.modeling import FineTuneModel, freeze
from trainers.training.recipes import Context, recipe_for
from trainers.training.state import Training


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


class Runner:
    """Runs jobs on one model, data set and run folder."""

    def __init__(
        self,
        config: TrainConfig,
        partition: Partition,
        model: FineTuneModel,
        data: Loaded,
        preprocess: Preprocess,
        folder: RunFolder,
        dropped: Collection[str] = (),
    ) -> None:
        self.config, self.partition, self.model = config, partition, model
        self.data, self.preprocess, self.folder = data, preprocess, folder
        self.dropped = tuple(dropped)  # the source classifier's parameters, gone
        self.device = pick_device(config.device)
        self.model.to(self.device)
        self.source_trunk = {k: v.detach().clone() for k, v in model.trunk.state_dict().items()}
        self.inputs = InputPlanner(
            config, partition, model.trunk, data.images, preprocess, folder.cache, self.device
        )
        self.loop = EpochLoop(model, self.inputs, data.labels["train"], folder, self.validate)

    def labels(self, split: str) -> torch.Tensor:
        """The labels of ``split`` (``train``: the sampled training images)."""
        return self.data.labels[split]

    @property
    def train_size(self) -> int:
        """Images in the (sampled) training split."""
        return len(self.data.labels["train"])

    def epochs_done(self, steps: int) -> int:
        """The epochs that ``steps`` optimizer steps make with these settings."""
        return steps // steps_per_epoch(self.config, self.train_size)

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
        inputs = self.inputs.plan(plan.level)
        count = freeze(self.model, plan.params, job.settings.bn)
        stop = min(until or job.settings.epochs, job.settings.epochs)
        generator = torch.Generator().manual_seed(seed)
        recipe = recipe_for(job, self.recipe_context(job))
        training = self.loop.run(job, inputs, generator, progress, stop, recipe)
        if not (training.stopped or training.epoch >= job.settings.epochs):
            return self._result(job, training, inputs, count, start, Score(float("nan")))
        self.model.load_state_dict(training.best.state, strict=False)
        self._save_checkpoint(job, plan, training.best.state)
        result = self._result(job, training, inputs, count, start, self.score("test", inputs))
        write_job_result(self.folder.job_result(job.name), result)
        self.folder.paused(job.name).unlink(missing_ok=True)
        return result

    def recipe_context(self, job: Job) -> Context:
        """What ``job``'s recipe may use: this runner's model, inputs and loop."""
        return Context(
            self.model,
            self.partition,
            job.settings,
            self.inputs,
            self.loop,
            self.labels("train"),
            self.dropped,
        )

    def _result(
        self,
        job: Job,
        training: Training,
        inputs: Inputs,
        count: int,
        start: float,
        test: Score,
    ) -> JobResult:
        trained = [phase.trainable_params for phase in training.phases if phase.epochs]
        return JobResult(
            name=job.name,
            val_acc=training.best.val_acc,
            test_acc=test.accuracy,
            val_loss=training.best.val_loss,
            val_hits=training.best.val_hits or None,
            test_hits=test.hits or None,
            best_epoch=training.best.epoch,
            trainable_params=max(trained, default=count),
            phases=training.phases,
            seconds=round(time.perf_counter() - start, 3),
            train_seconds=round(training.train_seconds, 3),
            steps=training.steps,
            cache=tuple(inputs.cache_kinds),
        )

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

    def validate(self, inputs: Inputs) -> Score:
        """The validation score of the model now, its tuned BatchNorms' statistics first
        recomputed over the training images unless ``eval_bn`` is ``running``."""
        self.recalibrate(inputs)
        return self.score("val", inputs)

    def recalibrate(self, inputs: Inputs | None = None) -> bool:
        """Recompute the statistics of the BatchNorms in training mode (those that tune)
        over the training images as ``inputs`` take them, unaugmented; whether any was.
        Nothing random runs, so the training that follows is unchanged."""
        if self.config.eval_bn is EvalBN.RUNNING:
            return False
        inputs = inputs or self.inputs.whole()
        norms = training_norms(inputs.suffix)
        images = (
            self.inputs.batch("train", index, inputs, augment=False)
            for index in batches(self.train_size, 128, shuffle=False)
        )
        return recompute_bn(inputs.suffix, images, norms)

    def score(self, split: str, inputs: Inputs | None = None) -> Score:
        """Accuracy and loss on ``split`` with every module in eval mode (modes restored
        after); ``inputs`` default to the images through the whole trunk."""
        inputs = inputs or self.inputs.whole()

        def logits(index: torch.Tensor) -> torch.Tensor:
            return self.model.classify(inputs.suffix(self.inputs.batch(split, index, inputs)))

        return dataset_score(self.model, logits, self.data.labels[split])

    def evaluate(self, split: str, inputs: Inputs | None = None) -> float:
        """The accuracy part of :meth:`score`."""
        return self.score(split, inputs).accuracy

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
        with atomic_target(self.folder.checkpoint(job.name)) as tmp:
            save_file(trained, str(tmp))
