"""Where a job's batches come from: cached activations at the first block it trains, or
the images through the whole trunk.

With the cache usable (``cache`` not off, no augmentation), the trunk is cut at every
block entry, where every tensor crossing into the block is kept
(:func:`graphblocks.segment_model`), and an
:class:`~trainers.training.cache.ActivationWalker` keeps one level's activations within
the memory and disk budgets; a job whose first trained block is K then runs only the
segments from K on. When the trunk cannot be cut, or a level does not fit, jobs run on
the images and :attr:`InputPlanner.note` says why.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from graphblocks import Partition, SegmentChain, segment_model
from trainers.settings import CacheMode, TrainConfig
from trainers.training.cache import GIB, ActivationWalker, Budget, Store
from trainers.training.data import Preprocess


@dataclass
class Inputs:
    """A job's batches: cached activations at its level (``stores``) and the trunk part
    that runs on them, or (None, the whole trunk)."""

    stores: dict[str, Store] | None
    suffix: nn.Module

    @property
    def cache_kinds(self) -> list[str]:
        return sorted({s.kind for s in self.stores.values()}) if self.stores else []


class InputPlanner:
    """Plans each job's :class:`Inputs` and makes its batches."""

    def __init__(
        self,
        config: TrainConfig,
        partition: Partition,
        trunk: nn.Module,
        images: dict[str, torch.Tensor],
        preprocess: Preprocess,
        cache_dir: Path,
        device: torch.device,
    ) -> None:
        self.config, self.partition, self.trunk = config, partition, trunk
        self.split_images, self.preprocess, self.device = images, preprocess, device
        self.cache_dir = cache_dir
        self._segments: list[nn.Module] | None = None
        self._walker: ActivationWalker | None = None
        #: why jobs run without the cache ("" while it works)
        self.note = ""

    def usable(self) -> bool:
        return self.config.cache is not CacheMode.OFF and not self.config.augment

    def segments(self) -> list[nn.Module] | None:
        """The trunk cut at every block entry (None when it cannot be cut)."""
        if self._segments is None and self.usable() and not self.note:
            try:
                self.trunk.eval()
                cuts = [b.inputs for b in self.partition.blocks[1:]]
                self._segments = list(segment_model(self.trunk, cuts))
            except Exception as exc:  # any tracing failure: train without the cache
                self.note = f"no activation cache: {type(exc).__name__}: {str(exc)[:160]}"
        return self._segments

    def walker(self) -> ActivationWalker | None:
        segments = self.segments()
        if segments is None:
            return None
        if self._walker is None:
            cfg = self.config
            memory = cfg.cache_memory_gb * GIB if cfg.cache is not CacheMode.DISK else 0.0
            disk = cfg.cache_disk_gb * GIB if cfg.cache is not CacheMode.MEMORY else 0.0
            dtype = torch.float16 if cfg.cache_dtype == "float16" else torch.float32
            budget = Budget(memory, disk, self.cache_dir, dtype)
            self._walker = ActivationWalker(
                segments, self.split_images, self.preprocess, budget, self.device
            )
        return self._walker

    def whole(self) -> Inputs:
        """The images through the whole trunk."""
        return Inputs(None, self.trunk)

    def plan(self, level: int | None) -> Inputs:
        """Cached activations at block ``level``'s entry when they can be had, else the
        images through the whole trunk."""
        walker = self.walker() if level else None
        if walker is not None and level:
            stores = walker.at(level)
            if stores is not None:
                return Inputs(stores, SegmentChain(walker.segments[level:]))
        return self.whole()

    def batch(
        self,
        split: str,
        index: torch.Tensor,
        inputs: Inputs | None = None,
        generator: torch.Generator | None = None,
        *,
        augment: bool = True,
    ) -> torch.Tensor | tuple[torch.Tensor, ...]:
        """What ``inputs``' suffix takes for rows ``index`` of ``split``: the cached
        activations (a tuple: every tensor entering the level's block), or the images
        (:meth:`images`)."""
        if inputs is not None and inputs.stores is not None:
            return inputs.stores[split].batch(index, self.device)
        return self.images(split, index, generator, augment=augment)

    def images(
        self,
        split: str,
        index: torch.Tensor,
        generator: torch.Generator | None = None,
        *,
        augment: bool = True,
    ) -> torch.Tensor:
        """Rows ``index`` of ``split``, preprocessed (and, for training unless ``augment``
        is off, augmented): what the whole model takes."""
        images = self.split_images[split][index].to(self.device)
        return self.preprocess(images, generator, train=augment and split == "train")
