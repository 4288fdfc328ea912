"""Activations at block entries, computed once and reused while the suffix trains.

With augmentation off and everything before the tuned block frozen (eval mode), the
inputs to block K (every tensor crossing into it: one for a chain of blocks, several
where a U-Net's skips or a NASNet cell's earlier input cross) are a fixed function of
the image. :class:`ActivationWalker` keeps
the activations of one *level* (the entry of one block) for every split and moves
forward through the model's segments (:func:`graphblocks.split.segment_model`), so a
sweep over blocks 0..N-1 and the head computes the whole network over the data once.

Storage, chosen per level from the size: in memory as ``cache_dtype`` within the
memory budget, else a memory-mapped file in the run folder within the disk budget,
else nothing (the job then runs uncached, recomputing the prefix every step).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

GIB = 1024**3


@dataclass
class Store:
    """One split's activations at one level: every tensor crossing into the level's
    block (several where the partition cuts where several cross)."""

    data: list[torch.Tensor]
    kind: str  # "memory" | "disk": where all of its tensors are kept

    def batch(self, index: torch.Tensor, device: torch.device) -> tuple[torch.Tensor, ...]:
        """Rows ``index`` of every tensor, as float32 on ``device``."""
        return tuple(
            t[index].to(device=device, dtype=torch.float32, non_blocking=True) for t in self.data
        )

    @property
    def nbytes(self) -> int:
        return sum(t.nbytes for t in self.data)


@dataclass
class Budget:
    """Where activations may be kept."""

    memory_bytes: float
    disk_bytes: float
    folder: Path
    dtype: torch.dtype = torch.float16


def _allocate(shapes: Sequence[Sequence[int]], budget: Budget, name: str) -> Store | None:
    """Room for tensors of ``shapes`` (all in memory, else all in one file on disk),
    counted against ``budget``; None when they do not fit."""
    size = sum(math.prod(shape) for shape in shapes) * torch.finfo(budget.dtype).bits // 8
    if size <= budget.memory_bytes:
        budget.memory_bytes -= size
        return Store([torch.empty(tuple(s), dtype=budget.dtype) for s in shapes], "memory")
    if size <= budget.disk_bytes:
        import numpy as np

        budget.disk_bytes -= size
        budget.folder.mkdir(parents=True, exist_ok=True)
        np_dtype = np.float16 if budget.dtype == torch.float16 else np.float32
        flat = np.memmap(budget.folder / f"{name}.bin", dtype=np_dtype, mode="w+", shape=(size,))
        views, offset = [], 0
        for shape in shapes:
            count = math.prod(shape)
            views.append(torch.from_numpy(flat[offset : offset + count]).view(tuple(shape)))
            offset += count
        return Store(views, "disk")
    return None


class ActivationWalker:
    """Activations of every split at one level, moved forward segment by segment."""

    def __init__(
        self,
        segments: Sequence[nn.Module],
        inputs: dict[str, torch.Tensor],
        to_input: Callable[[torch.Tensor], torch.Tensor],
        budget: Budget,
        device: torch.device,
        batch_size: int = 64,
    ) -> None:
        self.segments = list(segments)
        self.inputs = inputs  # uint8 images per split
        self.to_input = to_input
        self.budget = budget
        self.device = device
        self.batch_size = batch_size
        self.level = 0
        self.stores: dict[str, Store] | None = None
        self._capacity = (budget.memory_bytes, budget.disk_bytes)

    @torch.no_grad()
    def at(self, level: int) -> dict[str, Store] | None:
        """The stores at ``level`` (the entry of segment ``level``), or None when they
        do not fit. The segments must hold the frozen (source) weights, in eval mode."""
        if level < self.level:
            self._restart()
        while self.level < level:
            stores = self._advance()
            if stores is None:
                self._restart()
                return None
            self.stores = stores
            self.level += 1
        return self.stores

    def _restart(self) -> None:
        self._release(self.stores, self.level)
        self.stores, self.level = None, 0

    def _release(self, stores: dict[str, Store] | None, level: int) -> None:
        """Delete the files of ``level``'s disk stores."""
        for name, store in (stores or {}).items():
            if store.kind == "disk":
                (self.budget.folder / f"level{level}-{name}.bin").unlink(missing_ok=True)

    def _advance(self) -> dict[str, Store] | None:
        """The next level's stores; the current level's are kept until it is done, so
        they count against the budget meanwhile."""
        segment = self.segments[self.level]
        previous = self.stores or {}
        memory, disk = self._capacity
        for kept in previous.values():
            if kept.kind == "memory":
                memory -= kept.nbytes
            else:
                disk -= kept.nbytes
        self.budget.memory_bytes, self.budget.disk_bytes = memory, disk
        stores: dict[str, Store] = {}
        for split, images in self.inputs.items():
            count = len(images)
            store: Store | None = None
            for start in range(0, count, self.batch_size):
                index = torch.arange(start, min(start + self.batch_size, count))
                if previous:
                    ys = segment(*previous[split].batch(index, self.device))
                else:
                    ys = segment(self.to_input(images[index].to(self.device)))
                ys = ys if isinstance(ys, tuple) else (ys,)
                if store is None:
                    shapes = [(count, *y.shape[1:]) for y in ys]
                    store = _allocate(shapes, self.budget, f"level{self.level + 1}-{split}")
                    if store is None:
                        self._release(stores, self.level + 1)
                        return None
                for tensor, y in zip(store.data, ys, strict=True):
                    tensor[start : start + len(index)] = y.to("cpu", tensor.dtype)
            stores[split] = store if store is not None else Store([], "memory")
        self._release(previous, self.level)
        return stores
