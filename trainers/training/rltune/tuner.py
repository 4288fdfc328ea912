"""RL-Tune (Mahmud et al. 2022): a PPO agent picks a learning rate per unit at every step.

* **Units**: every weighted layer of the partition (default), or every block; the new head
  is one more unit, last. A norm or other parameter-owning layer joins the unit of the
  weighted layer before it (the first one when none is before it).
* **State** s_t: per unit, the mean of its output activation over the batch, channels and
  positions, read by forward hooks during the training forward pass of batch b_t.
* **Action** a_t: per unit, one rate of a grid (:class:`RateGrid`): multiples of the base
  rate (``relative``, the practical preset) or ``linspace(lr_min, lr_max, K)``
  (``linear``, the paper's 20 rates over [0, 0.01]).
* **Step**: the rates go into per-unit parameter groups of one Adam optimizer, one step on
  b_t; the reward r_{t+1} is the accuracy of the updated model on b_t (``eval`` or
  ``train`` mode) or on b_{t+1} (``next``: read off that batch's training forward).
* **Episodes**: each starts the target from the source and trains ``epochs`` epochs; then
  source ← (1 − α)·source + α·target for the parameters, with the BatchNorm statistics
  recomputed on the training split for the averaged weights. With α = 1 the target
  carries on (weights, Adam moments, data order): RL-Tune is then uniform fine-tuning
  whose per-unit rates the agent sets.
* **Model selection**: the starting model, the target after every epoch and the source
  after every average are scored on validation; the best is the result.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from graphblocks import atomic_target, write_atomic
from trainers.jobs.job import Job, JobResult, RLTuneOutcome
from trainers.jobs.results import write_job_result
from trainers.settings import BNMode, TrainConfig
from trainers.settings.rltune import RLTuneSettings
from trainers.training.data import batches
from trainers.training.engine import Runner, job_seed
from trainers.training.evaluation import accuracy
from trainers.training.loop import EpochProgress, lr_factor, steps_per_epoch
from trainers.training.modeling import eval_mode, set_modes
from trainers.training.rltune.agent import PPO, Agent, Buffer, PPOSettings
from trainers.training.rltune.moving_average import average_parameters, recompute_bn
from trainers.training.rltune.units import RateUnit, StateProbe, make_units
from trainers.training.state import load_state, save_state

__all__ = ["RLTune", "RateGrid", "RateUnit", "StateProbe", "lr_choices", "make_units"]

#: the name RL-Tune's agent is seeded from (the job itself is seeded from its own name)
AGENT_SEED_NAME = "rltune-agent"


@dataclass(frozen=True)
class RateGrid:
    """The learning rates an action picks from: ``choices`` × the base rate (relative)
    or the rates themselves (linear); ``base`` is the index of 1× (relative grids)."""

    choices: torch.Tensor
    relative: bool

    @classmethod
    def of(cls, rl: RLTuneSettings) -> RateGrid:
        if rl.lr_grid == "relative":
            return cls(torch.tensor(rl.lr_multipliers, dtype=torch.float64), True)
        return cls(lr_choices(rl.lr_steps, rl.lr_min, rl.lr_max), False)

    @property
    def base(self) -> int | None:
        hits = (self.choices == 1.0).nonzero()
        return int(hits[0]) if self.relative and len(hits) else None

    def rates(self, actions: torch.Tensor, base_lr: float) -> torch.Tensor:
        return self.choices[actions] * (base_lr if self.relative else 1.0)


def lr_choices(steps: int, lr_min: float, lr_max: float) -> torch.Tensor:
    """The paper's grid: K learning rates from ``lr_min`` to ``lr_max``, both included."""
    return torch.linspace(lr_min, lr_max, steps, dtype=torch.float64)


@dataclass
class Transition:
    """One agent-environment interaction whose reward may come with the next step."""

    state: torch.Tensor
    actions: torch.Tensor
    log_prob: torch.Tensor
    value: torch.Tensor


@dataclass
class Selected:
    """The best model by validation accuracy so far, and which one it was."""

    val_acc: float = -1.0
    model: str = "source"  # "source" or "target"
    episode: int = 0
    epoch: int = 0  # after this many epochs in all (0: before training)
    state: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass(frozen=True)
class EpochLog:
    """One epoch of RL-Tune: its place, the steps taken, the mean chosen rate per unit,
    the target's validation accuracy after it."""

    episode: int
    epoch: int
    steps: int
    rates: dict[str, float]
    val_acc: float = float("nan")


class RLTune:
    """Runs the RL-Tune ``job`` on a :class:`~trainers.training.engine.Runner`'s model and data."""

    def __init__(self, runner: Runner, units: list[RateUnit], job: Job) -> None:
        self.runner, self.units, self.folder, self.job = runner, units, runner.folder, job
        self.cfg: TrainConfig = job.settings
        self.rl = self.cfg.rltune_settings()
        self.grid = RateGrid.of(self.rl)
        torch.manual_seed(job_seed(self.cfg.seed, AGENT_SEED_NAME))
        self.agent = Agent(len(units), len(self.grid.choices))
        if self.rl.base_prob > 0 and self.grid.base is not None:
            self.agent.start_at(self.grid.base, self.rl.base_prob)
        self.ppo = PPO(self.agent, PPOSettings(lr=self.rl.agent_lr, gamma=self.rl.agent_gamma))
        self.buffer = Buffer()
        self.pending: Transition | None = None
        self.lr_log: list[EpochLog] = []
        self.best = Selected()
        self.step = 0
        self.train_seconds = 0.0  # this invocation's training: steps, agent, moving average
        self.per_epoch = steps_per_epoch(self.cfg, runner.train_size)
        total = self.cfg.rltune_epochs * self.per_epoch
        self.factor = lr_factor(self.cfg, total)
        self.state_file = self.folder.paused(job.name)
        self.params = {n for n, _ in runner.model.named_parameters()}

    # ---- the run ------------------------------------------------------------------------
    def run(self, progress: EpochProgress | None = None) -> JobResult:
        """All episodes (resumed after the last finished one); returns the result."""
        runner, model = self.runner, self.runner.model
        start = time.perf_counter()
        seed = runner.reset(self.job)
        for param in model.parameters():
            param.requires_grad_(True)
        generator = torch.Generator().manual_seed(seed)
        source = {k: v.detach().clone() for k, v in model.state_dict().items()}
        first, optimizer = 0, self._optimizer()
        if self.cfg.resume and self.state_file.exists():
            first, source = self._load(generator, optimizer)
        else:
            self.consider("source", 0, 0)
        probe = StateProbe(model, self.units)
        try:
            for episode in range(first, self.cfg.episodes):
                optimizer = self._episode(episode, source, optimizer, probe, generator, progress)
        finally:
            probe.remove()
        return self._finish(time.perf_counter() - start)

    def _optimizer(self) -> torch.optim.Optimizer:
        named = dict(self.runner.model.named_parameters())
        groups = [
            {"params": [named[p] for p in u.params], "lr": 0.0, "name": u.name}
            for u in self.units
            if u.params
        ]
        return torch.optim.Adam(groups, lr=0.0, weight_decay=self.cfg.weight_decay)

    def _episode(
        self,
        episode: int,
        source: dict[str, torch.Tensor],
        optimizer: torch.optim.Optimizer,
        probe: StateProbe,
        generator: torch.Generator,
        progress: EpochProgress | None,
    ) -> torch.optim.Optimizer:
        """Train the target ``epochs`` epochs, then move the source (in place) and save
        the state; returns the optimizer the next episode continues with."""
        cfg, model = self.cfg, self.runner.model
        if self.rl.ema < 1:  # the target restarts from the source, with fresh moments
            model.load_state_dict(source)
            optimizer = self._optimizer() if episode else optimizer
        for epoch in range(cfg.epochs):
            done = episode * cfg.epochs + epoch + 1
            began = time.perf_counter()
            rates, steps = self.train_epoch(
                optimizer, probe, generator, greedy=done <= self.rl.warmup_epochs
            )
            self._maybe_update(end_of_episode=epoch == cfg.epochs - 1)
            self.train_seconds += time.perf_counter() - began  # the agent's update included
            self.runner.recalibrate()  # the target's tuned BatchNorms (docs/trainers.md)
            val_acc = self.consider("target", episode + 1, done)
            self.lr_log.append(EpochLog(episode + 1, epoch + 1, steps, rates, val_acc))
            if progress:
                progress(done, val_acc)
        began = time.perf_counter()
        self._move_source(episode, source)  # BN recomputation included (its scoring too)
        self.train_seconds += time.perf_counter() - began
        self._save(episode, source, optimizer, generator)
        return optimizer

    def train_epoch(
        self,
        optimizer: torch.optim.Optimizer,
        probe: StateProbe,
        generator: torch.Generator,
        greedy: bool = False,
    ) -> tuple[dict[str, float], int]:
        """One epoch of agent-environment steps (the agent's most likely actions and no
        interactions recorded when ``greedy``); the mean chosen learning rate per unit,
        and the steps taken."""
        runner, model = self.runner, self.runner.model
        totals, steps = torch.zeros(len(self.units), dtype=torch.float64), 0
        labels = runner.labels("train")
        set_modes(model, self.cfg.bn)  # the reward pass restores the modes it changes
        for index in batches(len(labels), self.cfg.batch_size, shuffle=True, generator=generator):
            probe.active = True
            x = runner.inputs.images("train", index, generator)
            y = labels[index].to(runner.device)
            logits = model(x)
            loss = nn.functional.cross_entropy(logits, y)
            state = probe.state()
            probe.active = False
            if self.pending is not None:  # its reward: this batch, before training on it
                self._record(self.pending, accuracy(logits, y))
            actions, log_prob, value = self.agent.act(state, greedy)
            rates = self.grid.rates(actions, self.cfg.lr * self.factor(self.step))
            totals += rates
            self._apply(optimizer, rates)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            self.step, steps = self.step + 1, steps + 1
            if not greedy:
                transition = Transition(state, actions, log_prob, value)
                if self.rl.reward == "next":
                    self.pending = transition
                else:
                    self._record(transition, self._reward(x, y))
        means = (totals / max(steps, 1)).tolist()
        return {u.name: m for u, m in zip(self.units, means, strict=True)}, steps

    def _apply(self, optimizer: torch.optim.Optimizer, rates: torch.Tensor) -> None:
        with_params = (r for u, r in zip(self.units, rates, strict=True) if u.params)
        for group, rate in zip(optimizer.param_groups, with_params, strict=True):
            group["lr"] = float(rate)

    def _record(self, transition: Transition, reward: float) -> None:
        t = transition
        self.buffer.add(t.state, t.actions, t.log_prob, t.value, reward)
        self.pending = None

    @torch.no_grad()
    def _reward(self, x: torch.Tensor, y: torch.Tensor) -> float:
        model = self.runner.model
        if self.rl.reward == "train":
            return accuracy(model(x), y)
        with eval_mode(model):
            return accuracy(model(x), y)

    def _maybe_update(self, end_of_episode: bool) -> None:
        """A PPO update once the buffer holds ``ppo_steps`` interactions (checked at each
        epoch end). An episode's last step has no next batch: its interaction is dropped."""
        if end_of_episode:
            self.pending = None
            self.buffer.end_episode()
        if len(self.buffer) >= self.rl.ppo_steps:
            last = float(self.pending.value) if self.pending is not None else 0.0
            if self.pending is None and not self.buffer.dones[-1]:
                last = float(self.buffer.values[-1])
            self.ppo.update(self.buffer, last)
            self.buffer = Buffer()

    # ---- the source, model selection ------------------------------------------------------
    def _move_source(self, episode: int, source: dict[str, torch.Tensor]) -> None:
        """source ← the moving average (BN statistics recomputed), scored on validation;
        with EMA 1 the source is the target."""
        model = self.runner.model
        if self.rl.ema >= 1:
            for name, value in model.state_dict().items():
                source[name].copy_(value)
            return
        average_parameters(source, model.state_dict(), self.rl.ema, self.params)
        model.load_state_dict(source)
        if self.cfg.bn is not BNMode.FROZEN and recompute_bn(model, self._training_inputs()):
            for name, value in model.state_dict().items():
                source[name].copy_(value)
        self.consider("source", episode + 1, (episode + 1) * self.cfg.epochs)

    def _training_inputs(self) -> Iterator[torch.Tensor]:
        for index in batches(self.runner.train_size, 128, shuffle=False):
            yield self.runner.inputs.images("train", index, augment=False)

    def consider(self, model: str, episode: int, epoch: int) -> float:
        """Score the model now in the runner on validation; keep it if it is the best."""
        val_acc = self.runner.evaluate("val")
        if not val_acc <= self.best.val_acc:  # better, or no validation split (NaN): newer
            state = {k: v.detach().clone() for k, v in self.runner.model.state_dict().items()}
            self.best = Selected(val_acc, model, episode, epoch, state)
        return val_acc

    # ---- saving and resuming ----------------------------------------------------------------
    def _save(
        self,
        episode: int,
        source: dict[str, torch.Tensor],
        optimizer: torch.optim.Optimizer,
        generator: torch.Generator,
    ) -> None:
        best = vars(self.best)
        state = {
            "episode": episode,
            "source": source,
            "optimizer": optimizer.state_dict(),
            "generator": generator.get_state(),
            "rng": torch.get_rng_state(),
            "agent": self.agent.state_dict(),
            "ppo": self.ppo.optimizer.state_dict(),
            "rewards": vars(self.ppo.rewards),
            "buffer": vars(self.buffer),
            "lr_log": [vars(e) for e in self.lr_log],
            "best": best,
            "step": self.step,
        }
        save_state(self.state_file, state)

    def _load(
        self, generator: torch.Generator, optimizer: torch.optim.Optimizer
    ) -> tuple[int, dict[str, torch.Tensor]]:
        """Restore the state after the last finished episode; the next episode and the source."""
        state = load_state(self.state_file)
        self.agent.load_state_dict(state["agent"])
        self.ppo.optimizer.load_state_dict(state["ppo"])
        vars(self.ppo.rewards).update(state["rewards"])
        self.buffer = Buffer(**state["buffer"])
        self.lr_log = [EpochLog(**e) for e in state["lr_log"]]
        self.best, self.step = Selected(**state["best"]), state["step"]
        self.runner.model.load_state_dict(state["source"])
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"])
        torch.set_rng_state(state["rng"])
        return int(state["episode"]) + 1, state["source"]

    def _finish(self, seconds: float) -> JobResult:
        """The selected model into the runner, scored; it, the agent and the rate log
        saved; the result written and the paused state removed."""
        from safetensors.torch import save_file

        runner, best = self.runner, self.best
        target_val = self.lr_log[-1].val_acc if self.lr_log else float("nan")
        runner.model.load_state_dict(best.state)
        name = self.job.name
        with atomic_target(self.folder.checkpoint(name)) as tmp:
            save_file({k: v.contiguous().cpu() for k, v in best.state.items()}, str(tmp))
        with atomic_target(self.folder.checkpoint(name, "-agent.pt")) as tmp:
            torch.save(self.agent.state_dict(), tmp)
        write_lr_log(self.folder.rltune_rates, self.lr_log, [u.name for u in self.units])
        outcome = RLTuneOutcome(
            last_target_val_acc=target_val,
            units=tuple(u.name for u in self.units),
            granularity=self.cfg.granularity,
            preset=self.cfg.preset,
            selected=best.model,
            selected_episode=best.episode,
        )
        test = runner.score("test")
        result = JobResult(
            name=name,
            val_acc=best.val_acc,
            test_acc=test.accuracy,
            test_hits=test.hits or None,
            best_epoch=best.epoch,
            trainable_params=sum(p.numel() for p in runner.model.parameters()),
            seconds=round(seconds, 3),
            train_seconds=round(self.train_seconds, 3),
            steps=self.step,
            rltune=outcome,
        )
        write_job_result(self.folder.job_result(name), result)
        self.state_file.unlink(missing_ok=True)
        return result


def write_lr_log(path: Path, log: list[EpochLog], units: list[str]) -> None:
    """One row per epoch: episode, epoch, the target's validation accuracy, then the mean
    chosen learning rate per unit."""
    lines = [",".join(["episode", "epoch", "val_acc", *units])]
    for r in log:
        rates = [f"{r.rates[u]:.6g}" for u in units]
        lines.append(",".join([str(r.episode), str(r.epoch), f"{r.val_acc:.4f}", *rates]))
    write_atomic(path, "\n".join(lines) + "\n")
