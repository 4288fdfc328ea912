"""One fine-tuning job (a set of trainable parameters), run to a result file.

A :class:`Job` names what trains: ``head`` (BL1), ``full`` (BL2), ``block:K``,
``quartile:Q``, ``layers``. :class:`Runner` holds what jobs share (data, the source
weights, the activation cache) and runs each job as a pure function of (settings,
job): the trunk is reset to the source weights, the head re-initialised from a seed
derived from the job's name, and the result written atomically to
``results/<job>.json``. Per-epoch metrics go to ``metrics/<job>.jsonl`` and the best
epoch's trained parameters to ``checkpoints/<job>.safetensors``.
"""

from __future__ import annotations

import json
import math
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from graphblocks.partition import Partition, atomic_target, write_atomic
from trainers.cache import GIB, ActivationWalker, Budget, Store
from trainers.config import TrainConfig
from trainers.data import Preprocess, batches
from trainers.modeling import FineTuneModel, eval_mode, freeze, set_modes


@dataclass(frozen=True)
class Job:
    """What trains: ``trainable`` trunk parameters (and always the new head).

    ``level``: the block whose entry is the first point anything trains (None: the
    input), i.e. where cached activations can start."""

    name: str
    trainable: tuple[str, ...]
    level: int | None

    @property
    def file_stem(self) -> str:
        return self.name.replace(":", "-")


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
        from trainers.config import ConfigError

        raise ConfigError(f"device {name!r} is not available here", "use --device auto or cpu")
    return torch.device(name)


def job_seed(seed: int, name: str) -> int:
    """The job's own seed: the same for a job whatever ran before it."""
    return (seed * 1_000_003 + zlib.crc32(name.encode())) % 2**31


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return float((logits.argmax(1) == labels).float().mean()) if len(labels) else float("nan")


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
    ) -> None:
        self.config = config
        self.partition = partition
        self.model = model
        self.data = data
        self.preprocess = preprocess
        self.run_dir = run_dir
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
            from graphblocks.split import segment_model

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

    # ---- one job -------------------------------------------------------------------------
    def run(
        self,
        job: Job,
        progress: Callable[[int, float], None] | None = None,
        epochs: int | None = None,
    ) -> dict[str, Any]:
        """Train ``job`` from the source weights (``epochs`` overrides the setting);
        write and return its result."""
        cfg, model = self.config, self.model
        epochs = epochs or cfg.epochs
        start = time.perf_counter()
        model.trunk.load_state_dict(self.source_trunk)
        seed = job_seed(cfg.seed, job.name)
        torch.manual_seed(seed)
        for module in model.head.modules():
            if isinstance(module, nn.Linear):
                module.reset_parameters()
        model.trunk.eval()
        stores, suffix = self._plan(job)
        trainable = freeze(model, job.trainable, cfg.bn)
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        total_steps = epochs * math.ceil(len(self.data.labels["train"]) / cfg.batch_size)
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer,
            (lambda s: 0.5 * (1 + math.cos(math.pi * s / total_steps)))
            if cfg.schedule == "cosine"
            else (lambda s: 1.0),
        )
        generator = torch.Generator().manual_seed(seed)
        autocast = cfg.amp and self.device.type == "cuda"  # bfloat16: no loss scaling needed
        metrics_path = self.run_dir / "metrics" / f"{job.file_stem}.jsonl"
        metrics_path.parent.mkdir(parents=True, exist_ok=True)
        best: tuple[float, int, dict[str, torch.Tensor]] = (-1.0, -1, {})
        stale, steps, train_seconds = 0, 0, 0.0
        with metrics_path.open("w") as log:
            for epoch in range(epochs):
                set_modes(model, cfg.bn)
                loss_sum, seen = 0.0, 0
                epoch_start = time.perf_counter()
                for index in batches(
                    len(self.data.labels["train"]),
                    cfg.batch_size,
                    shuffle=True,
                    generator=generator,
                ):
                    x = self._inputs("train", index, stores, generator)
                    y = self.data.labels["train"][index].to(self.device)
                    with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=autocast):
                        loss = nn.functional.cross_entropy(model.head(suffix(x)), y)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    schedule.step()
                    loss_sum, seen = loss_sum + float(loss.detach()) * len(index), seen + len(index)
                train_seconds += time.perf_counter() - epoch_start
                steps += math.ceil(seen / cfg.batch_size)
                val_acc = self.evaluate("val", stores, suffix)
                record = {
                    "epoch": epoch + 1,
                    "train_loss": loss_sum / max(seen, 1),
                    "val_acc": val_acc,
                }
                log.write(json.dumps(record) + "\n")
                log.flush()
                if progress:
                    progress(epoch + 1, val_acc)
                if val_acc > best[0] or best[1] < 0:
                    best, stale = (val_acc, epoch + 1, self._trained_state()), 0
                else:
                    stale += 1
                    if cfg.patience is not None and stale >= cfg.patience:
                        break
        model.load_state_dict(best[2], strict=False)
        test_acc = self.evaluate("test", stores, suffix)
        self._save_checkpoint(job, best[2])
        result = {
            "name": job.name, "val_acc": best[0], "test_acc": test_acc, "best_epoch": best[1],
            "trainable_params": trainable, "seconds": round(time.perf_counter() - start, 3),
            "train_seconds": round(train_seconds, 3), "steps": steps,
            "cache": sorted({s.kind for s in stores.values()}) if stores else [],
        }  # fmt: skip
        write_atomic(
            self.run_dir / "results" / f"{job.file_stem}.json", json.dumps(result, indent=1) + "\n"
        )
        return result

    def _plan(self, job: Job) -> tuple[dict[str, Store] | None, nn.Module]:
        """Cached activations at the job's level and the trunk part that runs on them,
        or (None, the whole trunk)."""
        walker = self.walker() if job.level else None
        if walker is not None and job.level:
            stores = walker.at(job.level)
            if stores is not None:
                return stores, nn.Sequential(*walker.segments[job.level :])
        return None, self.model.trunk

    def _inputs(
        self,
        split: str,
        index: torch.Tensor,
        stores: dict[str, Store] | None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        if stores is not None:
            return stores[split].batch(index, self.device)
        images = self.data.images[split][index].to(self.device)
        return self.preprocess(images, generator, train=split == "train")

    @torch.no_grad()
    def evaluate(self, split: str, stores: dict[str, Store] | None, suffix: nn.Module) -> float:
        """Accuracy on ``split`` with every module in eval mode (modes restored after)."""
        labels = self.data.labels[split]
        if not len(labels):
            return float("nan")
        correct = 0
        with eval_mode(self.model):
            for index in batches(len(labels), 128, shuffle=False):
                logits = self.model.head(suffix(self._inputs(split, index, stores)))
                correct += int((logits.argmax(1).cpu() == labels[index]).sum())
        return correct / len(labels)

    def _trained_state(self) -> dict[str, torch.Tensor]:
        return {
            n: p.detach().clone() for n, p in self.model.named_parameters() if p.requires_grad
        } | {n: b.detach().clone() for n, b in self.model.named_buffers()}

    def _save_checkpoint(self, job: Job, state: dict[str, torch.Tensor]) -> None:
        from safetensors.torch import save_file

        modules = {p.rpartition(".")[0] for p in job.trainable}  # their buffers trained too
        trained = {
            n: t.contiguous().cpu()
            for n, t in state.items()
            if n.startswith("head.")
            or n.removeprefix("trunk.") in job.trainable
            or n.removeprefix("trunk.").rpartition(".")[0] in modules
        }
        with atomic_target(self.run_dir / "checkpoints" / f"{job.file_stem}.safetensors") as tmp:
            save_file(trained, str(tmp))
