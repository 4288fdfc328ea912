"""The practitioner's baselines: every layer fine-tuned, with one change each.

A recipe (:class:`~trainers.training.loop.Recipe`) is asked before each epoch whether the
job enters a new phase (what trains, on which inputs, with which optimizer), and adds a
penalty to each batch's loss.
:data:`RECIPES` maps each job kind to its recipe; the epochs themselves are
:class:`~trainers.training.loop.EpochLoop`'s, so validation, the best epoch and the
metrics are those of every other job. Choices where the papers leave room are settings
(:mod:`trainers.settings.baselines`) and are documented in docs/trainers.md.

=================  ==================================================================
``lp-ft``          Kumar et al., ICLR 2022: the new head alone on frozen features for
                   the probe's epochs (``probe_epochs``, else 40% of the budget; the
                   cached trunk output), then every layer for the rest at
                   ``lr·lp_ft_lr_scale`` with a fresh Adam and schedule, the head kept.
``layer-decay``    timm's ``param_groups_layer_decay`` over the partition's blocks:
                   block b of B at ``lr·decay^(B−b)``, the head at ``lr``.
``l2-sp``          Li et al., ICML 2018: the loss plus (α/2)·‖w − w⁰‖² over the trunk's
                   weights (w⁰ the source weights) and (β/2)·‖w‖² over the new head's.
``auto-rgn``       Lee et al., ICLR 2023: before each epoch, each tensor's rate is
                   ``lr·RGN_i / max_j RGN_j`` (:mod:`trainers.training.rgn`) from the
                   gradient over ``rgn_batches`` training batches; normalization layers
                   are left out of the scaling and train at ``lr``. Adam's moments carry
                   over from epoch to epoch.
=================  ==================================================================
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from graphblocks import Partition
from trainers.jobs.job import Job, JobKind, PhaseName
from trainers.settings import TrainConfig
from trainers.training.data import batches
from trainers.training.inputs import InputPlanner
from trainers.training.loop import EpochLoop, Phase
from trainers.training.modeling import FineTuneModel, freeze, norm_params
from trainers.training.rgn import accumulate_gradient, relative_gradient_norms
from trainers.training.state import Training

#: a parameter group of the optimizer: the parameters and their rate
Group = tuple[list[nn.Parameter], float]


@dataclass
class Context:
    """What a recipe may use: the model, its partition, the job's settings, the inputs
    and the loop (for optimizers), the source classifier's dropped parameter names."""

    model: FineTuneModel
    partition: Partition
    config: TrainConfig
    planner: InputPlanner
    loop: EpochLoop
    labels: torch.Tensor
    dropped: tuple[str, ...]

    def trunk_params(self) -> list[str]:
        """Every trunk parameter the partition's blocks and head hold, less the dropped."""
        names = [p for b in self.partition.blocks for p in b.params]
        return [*names, *(p for p in self.partition.head.params if p not in self.dropped)]

    def train_everything(self) -> list[nn.Parameter]:
        """Make every layer trainable (modes set as for BL2); the trainable parameters."""
        freeze(self.model, self.trunk_params(), self.config.bn)
        return [p for p in self.model.parameters() if p.requires_grad]

    def on_images(self, groups: Sequence[Group], epochs: int | None = None) -> Phase:
        """Epochs on the images through the whole trunk, with Adam over ``groups`` and
        the schedule over ``epochs`` (the job's budget when not given)."""
        optimizer, schedule = self.loop.optimizer(self.config, groups, epochs)
        return Phase(self.planner.whole(), optimizer, schedule)

    def everything(self, scale: float = 1.0) -> Phase:
        """Every layer trainable on the images, one rate ``lr·scale``."""
        return self.on_images([(self.train_everything(), self.config.lr * scale)])

    def by_tensor(self, groups: Sequence[Group]) -> Phase:
        """Every layer trainable on the images: ``groups`` at their rates, every other
        trainable parameter at ``lr`` in one last group."""
        grouped = {id(p) for params, _ in groups for p in params}
        rest = [p for p in self.train_everything() if id(p) not in grouped]
        return self.on_images([*(g for g in groups if g[0]), (rest, self.config.lr)])


class FullFineTune:
    """A full fine-tune, unchanged: the base of the recipes (a
    :class:`~trainers.training.loop.Recipe`)."""

    def __init__(self, context: Context) -> None:
        self.context = context

    def before_epoch(self, training: Training) -> Phase | None:
        """The phase that starts before epoch ``training.epoch + 1`` (None: no change)."""
        return self.context.everything() if training.epoch == 0 else None

    def penalty(self) -> torch.Tensor | None:
        """A term added to each batch's loss (None: nothing)."""
        return None


class LinearProbeThenFineTune(FullFineTune):
    """LP-FT (see the module docstring): the phases of
    :meth:`~trainers.settings.TrainConfig.lp_ft_phases`."""

    def before_epoch(self, training: Training) -> Phase | None:
        ctx = self.context
        probe, fine_tune = ctx.config.lp_ft_phases()
        if training.epoch == 0:
            head = [p for p in ctx.partition.head.params if p not in ctx.dropped]
            freeze(ctx.model, head, ctx.config.bn)
            level = ctx.partition.num_blocks - 1 if head else ctx.partition.num_blocks
            optimizer, schedule = ctx.loop.optimizer(ctx.config, epochs=probe)
            return Phase(ctx.planner.plan(level), optimizer, schedule, PhaseName.PROBE)
        if training.epoch == probe:
            if training.best.state:  # the probe's best epoch: its trunk is the source's
                trunk = {f"trunk.{n}": ctx.model.trunk.get_parameter(n) for n in ctx.trunk_params()}
                training.best.state |= {n: p.detach().clone() for n, p in trunk.items()}
            rate = ctx.config.lr * ctx.config.lp_ft_lr_scale
            phase = ctx.on_images([(ctx.train_everything(), rate)], epochs=fine_tune)
            return dataclasses.replace(phase, name=PhaseName.FINE_TUNE)
        return None


class LayerDecay(FullFineTune):
    """Layer-wise learning-rate decay over the partition's blocks."""

    def before_epoch(self, training: Training) -> Phase | None:
        if training.epoch:
            return None
        ctx, cfg = self.context, self.context.config
        trunk, count = ctx.model.trunk, ctx.partition.num_blocks
        return ctx.by_tensor(
            [
                (
                    [trunk.get_parameter(n) for n in block.params],
                    cfg.lr * cfg.layer_decay ** (count - b),
                )
                for b, block in enumerate(ctx.partition.blocks)
            ]
        )


class L2SP(FullFineTune):
    """L2-SP: a pull toward the source weights."""

    def __init__(self, context: Context) -> None:
        super().__init__(context)
        trunk = context.model.trunk
        self.source = {n: trunk.get_parameter(n).detach().clone() for n in context.trunk_params()}
        self.head = [m.weight for m in context.model.head.modules() if isinstance(m, nn.Linear)]

    def penalty(self) -> torch.Tensor:
        """(α/2)·‖w − w⁰‖² over the trunk plus (β/2)·‖w‖² over the new head's weights."""
        cfg, trunk = self.context.config, self.context.model.trunk
        pull = torch.as_tensor(
            sum((trunk.get_parameter(n) - w0).pow(2).sum() for n, w0 in self.source.items())
        )
        decay = torch.as_tensor(sum(w.pow(2).sum() for w in self.head))
        return 0.5 * (cfg.l2sp_alpha * pull + cfg.l2sp_beta * decay)


class AutoRGN(FullFineTune):
    """Auto-RGN: per-tensor rates from the relative gradient norms, every epoch."""

    def __init__(self, context: Context) -> None:
        super().__init__(context)
        excluded = norm_params(context.model.trunk)
        self.scaled = [n for n in context.trunk_params() if n not in excluded]
        self.phase: Phase | None = None

    def before_epoch(self, training: Training) -> Phase | None:
        ctx, cfg = self.context, self.context.config
        if self.phase is None:  # one group per scaled tensor, then the rest at lr
            trunk = ctx.model.trunk
            self.phase = ctx.by_tensor([([trunk.get_parameter(n)], cfg.lr) for n in self.scaled])
        self._set_rates(self.phase)
        return self.phase if training.epoch == 0 else None

    def _set_rates(self, phase: Phase) -> None:
        """Each scaled tensor's rate from the gradient of the training batches now."""
        ctx, cfg = self.context, self.context.config
        chosen = list(batches(len(ctx.labels), cfg.batch_size, shuffle=False))[: cfg.rgn_batches]
        labels = ctx.labels.to(ctx.planner.device)
        accumulate_gradient(
            ctx.model, ((ctx.planner.images("train", i, augment=False), labels[i]) for i in chosen)
        )
        rgn = relative_gradient_norms(ctx.model.trunk, self.scaled)
        ctx.model.zero_grad(set_to_none=True)
        top = max(rgn.values(), default=0.0) or 1.0
        rates: list[float | torch.Tensor] = [*(cfg.lr * rgn[n] / top for n in self.scaled), cfg.lr]
        factor = phase.optimizer.param_groups[-1]["lr"] / cfg.lr  # the schedule's, now
        for group, rate in zip(phase.optimizer.param_groups, rates, strict=True):
            group["lr"] = rate * factor
        phase.schedule.base_lrs = rates


#: job kind -> its recipe (the other kinds train as they always have)
RECIPES: dict[JobKind, Callable[[Context], FullFineTune]] = {
    JobKind.LP_FT: LinearProbeThenFineTune,
    JobKind.LAYER_DECAY: LayerDecay,
    JobKind.L2_SP: L2SP,
    JobKind.AUTO_RGN: AutoRGN,
}


def recipe_for(job: Job, context: Context) -> FullFineTune | None:
    """The recipe of ``job``'s kind, or None for a plain job."""
    make = RECIPES.get(job.kind)
    return make(context) if make else None
