"""RL-Tune (Mahmud et al. 2022): a PPO agent picks a learning rate per unit at every step.

* **Units**: every weighted layer of the partition (default), or every block; the new head
  is one more unit, last. A norm or other parameter-owning layer joins the unit of the
  weighted layer before it (the first one when none is before it).
* **State** s_t: per unit, the mean of its output activation over the batch, channels and
  positions: one scalar per unit, read by forward hooks during the training forward pass
  of batch b_t (no extra forward).
* **Action** a_t: per unit, one of K learning rates, ``linspace(lr_min, lr_max, K)``:
  by default 20 values from 0 (included: a unit may pause) to 0.01 (included).
* **Step**: the rates are written into the per-unit parameter groups of one Adam optimizer
  (built once per episode), one step on b_t, reward r_{t+1} = accuracy of the updated model
  on b_t (an eval-mode forward by default; ``reward="train"`` keeps training mode).
* **Episodes** (episodic moving-average control): each episode starts the target from the
  source weights and trains ``epochs`` epochs, the agent updated by PPO after each epoch;
  then source ← (1 − α)·source + α·target (α = 0.2), i.e. the source moves a fifth of the way
  to the target. The final model is the source after the last episode.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from graphblocks import Partition, atomic_target, write_atomic
from trainers.config import TrainConfig
from trainers.data import batches
from trainers.engine import Runner, job_seed
from trainers.jobs import JobResult, job_name
from trainers.modeling import eval_mode, set_modes
from trainers.results import write_job_result
from trainers.rltune.agent import PPO, Agent, Buffer


@dataclass(frozen=True)
class RateUnit:
    """A set of parameters that shares one learning rate, and the module whose output
    is its state feature."""

    name: str
    params: tuple[str, ...]  # names in the fine-tuning model (``trunk.…``, ``head.…``)
    probe: str  # module path in the fine-tuning model


def _module_of(model: nn.Module, param: str) -> str:
    return param.rpartition(".")[0]


def make_units(
    partition: Partition, model: nn.Module, granularity: str, dropped: set[str]
) -> list[RateUnit]:
    """Units in forward order, the head last (see the module docstring)."""
    order = [n for n, _ in model.named_parameters()]
    present = set(order)
    make = _block_units if granularity == "block" else _layer_units
    units = make(
        partition,
        model,
        lambda ps: [f"trunk.{p}" for p in ps if p not in dropped and f"trunk.{p}" in present],
    )
    head = [
        f"trunk.{p}" for p in partition.head.params if p not in dropped and f"trunk.{p}" in present
    ]
    head += [n for n in order if n.startswith("head.")]
    return [*units, RateUnit("head", tuple(head), "head")]


Names = Callable[[list[str]], list[str]]


def _block_units(partition: Partition, model: nn.Module, names: Names) -> list[RateUnit]:
    units = []
    for b in partition.blocks:
        owners = [layer for layer in partition.layers if layer.block == b.index and layer.params]
        probe = (
            _module_of(model, f"trunk.{owners[-1].params[0]}")
            if owners
            else f"trunk.{b.layers[-1]}"
        )
        units.append(RateUnit(job_name("block", b.index), tuple(names(b.params)), probe))
    return units


def _layer_units(partition: Partition, model: nn.Module, names: Names) -> list[RateUnit]:
    units: list[RateUnit] = []
    pending: list[str] = []
    for layer in partition.layers:
        if layer.block is None:
            continue
        params = names(layer.params)
        if layer.role == "weighted":
            probe = _module_of(model, params[0]) if params else f"trunk.{layer.name}"
            units.append(RateUnit(layer.name, tuple(pending + params), probe))
            pending = []
        elif units:
            previous = units[-1]
            units[-1] = RateUnit(previous.name, previous.params + tuple(params), previous.probe)
        else:
            pending += params
    return units


class StateProbe:
    """Forward hooks that record each unit's mean output activation."""

    def __init__(self, model: nn.Module, units: list[RateUnit]) -> None:
        self.values = torch.zeros(len(units))
        self.active = True
        self._handles = []
        modules = dict(model.named_modules())
        for i, unit in enumerate(units):
            module = modules.get(unit.probe)
            if module is not None:
                self._handles.append(module.register_forward_hook(self._hook(i)))

    def _hook(self, index: int) -> Callable[..., None]:
        def record(_module: nn.Module, _inputs: Any, output: Any) -> None:
            if self.active and isinstance(output, torch.Tensor):
                self.values[index] = output.detach().float().mean().cpu()

        return record

    def state(self) -> torch.Tensor:
        """The last recorded state as [units, 1]."""
        return self.values.clone().unsqueeze(-1)

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()


def ema_update(
    source: dict[str, torch.Tensor], target: dict[str, torch.Tensor], alpha: float
) -> None:
    """In place: source ← (1 − α)·source + α·target for floating tensors; others copied."""
    for name, value in source.items():
        new = target[name].detach().to(value.device)
        if value.is_floating_point():
            value.mul_(1 - alpha).add_(new, alpha=alpha)
        else:
            value.copy_(new)


def lr_choices(steps: int, lr_min: float, lr_max: float) -> torch.Tensor:
    """The K learning rates an action chooses from, both ends included."""
    return torch.linspace(lr_min, lr_max, steps)


@dataclass(frozen=True)
class EpochLog:
    """One epoch of RL-Tune: its place, the steps taken, the mean chosen rate per unit."""

    episode: int
    epoch: int
    steps: int
    rates: dict[str, float]


class RLTune:
    """Runs RL-Tune on a :class:`~trainers.engine.Runner`'s model and data, with the
    RL-Tune job's ``settings``."""

    def __init__(
        self, runner: Runner, units: list[RateUnit], folder: Path, settings: TrainConfig
    ) -> None:
        self.runner, self.units, self.folder, self.settings = runner, units, folder, settings
        self.choices = lr_choices(settings.lr_steps, settings.lr_min, settings.lr_max)
        torch.manual_seed(job_seed(settings.seed, "rltune-agent"))
        self.agent = Agent(len(units), settings.lr_steps)
        self.ppo = PPO(self.agent)
        self.lr_log: list[EpochLog] = []
        self.train_seconds = 0.0  # of this invocation's training steps
        self.state_file = folder / "rltune-state.pt"

    def _save(self, episode: int, source: dict[str, torch.Tensor]) -> None:
        state = {"episode": episode, "source": source, "agent": self.agent.state_dict(),
                 "ppo": self.ppo.optimizer.state_dict(), "lr_log": [vars(e) for e in self.lr_log]}  # fmt: skip
        with atomic_target(self.state_file) as tmp:
            torch.save(state, tmp)

    def _load(self) -> tuple[int, dict[str, torch.Tensor] | None]:
        if not self.state_file.exists():
            return 0, None
        state = torch.load(self.state_file, weights_only=False)
        self.agent.load_state_dict(state["agent"])
        self.ppo.optimizer.load_state_dict(state["ppo"])
        self.lr_log = [EpochLog(**e) for e in state["lr_log"]]
        return int(state["episode"]) + 1, state["source"]

    def run(self, progress: Callable[[int, int], None] | None = None) -> JobResult:
        """All episodes (resumed after the last finished one); returns the result."""
        cfg, runner, model = self.settings, self.runner, self.runner.model
        start = time.perf_counter()
        model.trunk.load_state_dict(runner.source_trunk)
        torch.manual_seed(job_seed(cfg.seed, "rltune"))
        for module in model.head.modules():
            if isinstance(module, nn.Linear):
                module.reset_parameters()
        first, saved = self._load() if cfg.resume else (0, None)
        source = saved or {k: v.detach().clone() for k, v in model.state_dict().items()}
        for param in model.parameters():
            param.requires_grad_(True)
        probe = StateProbe(model, self.units)
        try:
            for episode in range(first, cfg.episodes):
                self._episode(episode, source, probe, progress)
        finally:
            probe.remove()
        target_val = runner.evaluate("val")
        model.load_state_dict(source)
        return self._finish(source, target_val, time.perf_counter() - start)

    def _episode(
        self,
        episode: int,
        source: dict[str, torch.Tensor],
        probe: StateProbe,
        progress: Callable[[int, int], None] | None,
    ) -> None:
        """The target restarts from ``source`` and trains; then ``source`` moves toward
        it (in place) and the state is saved."""
        cfg, model = self.settings, self.runner.model
        # seeded per episode, so a resumed run repeats an uninterrupted one exactly
        torch.manual_seed(job_seed(cfg.seed, f"rltune-episode-{episode}"))
        generator = torch.Generator().manual_seed(job_seed(cfg.seed, f"rltune-data-{episode}"))
        model.load_state_dict(source)
        named = dict(model.named_parameters())
        groups = [
            {"params": [named[p] for p in u.params], "lr": 0.0, "name": u.name}
            for u in self.units
            if u.params
        ]
        optimizer = torch.optim.Adam(groups, lr=0.0, weight_decay=cfg.weight_decay)
        for epoch in range(cfg.epochs):
            began = time.perf_counter()
            rates, steps = self.train_epoch(optimizer, probe, generator)
            self.train_seconds += time.perf_counter() - began
            self.lr_log.append(EpochLog(episode + 1, epoch + 1, steps, rates))
            if progress:
                progress(episode * cfg.epochs + epoch + 1, cfg.episodes * cfg.epochs)
        ema_update(source, model.state_dict(), cfg.ema)
        self._save(episode, source)

    def train_epoch(
        self, optimizer: torch.optim.Optimizer, probe: StateProbe, generator: torch.Generator
    ) -> tuple[dict[str, float], int]:
        """One epoch of agent-environment steps, then a PPO update; the mean chosen
        learning rate per unit, and the steps taken."""
        cfg, runner, model = self.settings, self.runner, self.runner.model
        buffer = Buffer()
        totals = torch.zeros(len(self.units))
        labels = runner.data.labels["train"]
        set_modes(model, cfg.bn)  # the reward pass restores the modes it changes
        for index in batches(len(labels), cfg.batch_size, shuffle=True, generator=generator):
            probe.active = True
            x = runner.batch("train", index, None, generator)
            y = labels[index].to(runner.device)
            loss = nn.functional.cross_entropy(model(x), y)
            state = probe.state()
            actions, log_prob, value = self.agent.act(state)
            rates = self.choices[actions]
            totals += rates
            for group, rate in zip(
                optimizer.param_groups,
                (r for u, r in zip(self.units, rates, strict=True) if u.params),
                strict=True,
            ):
                group["lr"] = float(rate)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            probe.active = False
            reward = self._reward(x, y)
            buffer.add(state, actions, log_prob, value, reward)
        self.ppo.update(buffer)
        means = (totals / max(len(buffer), 1)).tolist()
        return {u.name: m for u, m in zip(self.units, means, strict=True)}, len(buffer)

    @torch.no_grad()
    def _reward(self, x: torch.Tensor, y: torch.Tensor) -> float:
        model = self.runner.model
        if self.settings.reward == "train":
            return float((model(x).argmax(1) == y).float().mean())
        with eval_mode(model):
            return float((model(x).argmax(1) == y).float().mean())

    def _finish(
        self, source: dict[str, torch.Tensor], target_val: float, seconds: float
    ) -> JobResult:
        """Evaluate the final model, save it, the agent and the rate log; the result."""
        from safetensors.torch import save_file

        runner = self.runner
        with atomic_target(self.folder / "checkpoints" / "rltune.safetensors") as tmp:
            save_file({k: v.contiguous().cpu() for k, v in source.items()}, str(tmp))
        with atomic_target(self.folder / "checkpoints" / "rltune-agent.pt") as tmp:
            torch.save(self.agent.state_dict(), tmp)
        write_lr_log(self.folder / "rltune-lr.csv", self.lr_log, [u.name for u in self.units])
        result = JobResult(
            name="rltune", val_acc=runner.evaluate("val"), test_acc=runner.evaluate("test"),
            last_target_val_acc=target_val,
            trainable_params=sum(p.numel() for p in runner.model.parameters()),
            seconds=round(seconds, 3), train_seconds=round(self.train_seconds, 3),
            steps=sum(e.steps for e in self.lr_log), units=tuple(u.name for u in self.units),
            granularity=self.settings.granularity,
        )  # fmt: skip
        write_job_result(self.folder / "results" / "rltune.json", result)
        return result


def write_lr_log(path: Path, log: list[EpochLog], units: list[str]) -> None:
    """One row per epoch: episode, epoch, then the mean chosen learning rate per unit."""
    lines = [",".join(["episode", "epoch", *units])]
    lines += [
        ",".join([str(r.episode), str(r.epoch), *(f"{r.rates[u]:.6g}" for u in units)]) for r in log
    ]
    write_atomic(path, "\n".join(lines) + "\n")
