"""Strategies as jobs, and the sweep's summary (Algorithm 1 of Barakat & Huang 2023).

==============  ==================================================================
``head``        BL1: the new head (and any other head layer of the partition)
``full``        BL2: everything
``block:K``     block K and the head; the rest frozen
``quartile:Q``  every block of quartile Q and the head
``layers``      the named layers and the head
``sweep``       every block, then both baselines; B_opt is the block with the best
                validation accuracy (the earliest on a tie), reported on test
``rltune``      RL-Tune, then ``uniform`` (all layers, one learning rate, as many
                epochs as RL-Tune's episodes × epochs)
==============  ==================================================================
"""

from __future__ import annotations

import difflib
import statistics
from collections.abc import Collection, Sequence
from typing import Any

from graphblocks.partition import Partition
from trainers.config import ConfigError
from trainers.engine import Job


def _head_params(partition: Partition, dropped: Collection[str]) -> tuple[str, ...]:
    return tuple(p for p in partition.head.params if p not in dropped)


def head_job(partition: Partition, dropped: Collection[str]) -> Job:
    """BL1. Cached at the trunk's output, or at the last block's entry when the
    partition's head keeps trunk layers (a norm before the classifier)."""
    extra = _head_params(partition, dropped)
    return Job("head", extra, partition.num_blocks - 1 if extra else partition.num_blocks)


def full_job(partition: Partition, dropped: Collection[str], name: str = "full") -> Job:
    """BL2: everything trains. ``rltune`` (at the agent's per-unit rates, see
    trainers.rltune) and its baseline ``uniform`` (one rate, as many epochs as RL-Tune's
    episodes × epochs) train everything too."""
    names = [p for b in partition.blocks for p in b.params] + list(_head_params(partition, dropped))
    return Job(name, tuple(names), None)


def block_job(partition: Partition, dropped: Collection[str], index: int) -> Job:
    if not 0 <= index < partition.num_blocks:
        raise ConfigError(f"no block {index}", f"choose 0..{partition.num_blocks - 1}")
    params = tuple(partition.blocks[index].params) + _head_params(partition, dropped)
    return Job(f"block:{index}", params, index or None)


def quartile_job(partition: Partition, dropped: Collection[str], quartile: int) -> Job:
    indices = partition.quartiles.get(str(quartile), [])
    if not indices:
        raise ConfigError(
            f"quartile {quartile} has no blocks", "choose a quartile 1..4 with blocks"
        )
    params = tuple(p for i in indices for p in partition.blocks[i].params)
    return Job(
        f"quartile:{quartile}", params + _head_params(partition, dropped), indices[0] or None
    )


def layers_job(partition: Partition, dropped: Collection[str], names: Sequence[str]) -> Job:
    by_name = {layer.name: layer for layer in partition.layers}
    unknown = [n for n in names if n not in by_name]
    if unknown or not names:
        close = difflib.get_close_matches(unknown[0], list(by_name), n=3) if unknown else []
        raise ConfigError(
            f"unknown layers {unknown}" if unknown else "no layers named",
            f"closest: {', '.join(close)}"
            if close
            else "name layers as `graphblocks inspect --json` lists them",
        )
    params = tuple(p for n in names for p in by_name[n].params if p not in dropped)
    blocks = [by_name[n].block for n in names]
    level = min(b for b in blocks if b is not None) if None not in blocks else None
    return Job("layers", params + _head_params(partition, dropped), level or None)


def sweep_jobs(partition: Partition, dropped: Collection[str]) -> list[Job]:
    """Every block in order, then BL1 and BL2: the order that walks the cache forward."""
    jobs = [block_job(partition, dropped, i) for i in range(partition.num_blocks)]
    return [*jobs, head_job(partition, dropped), full_job(partition, dropped)]


def _stats(values: Sequence[float]) -> dict[str, float | None]:
    clean = [v for v in values if v == v]  # drop NaN (no test split)
    if not clean:
        return {"mean": None, "std": None, "min": None, "max": None}
    return {
        "mean": statistics.fmean(clean),
        "std": statistics.pstdev(clean),
        "min": min(clean),
        "max": max(clean),
    }


def sweep_summary(partition: Partition, results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """``best_block`` (B_opt by validation accuracy), per-quartile statistics of the
    block results, and the baselines, from the results present."""
    by_name = {r["name"]: r for r in results}
    blocks = [
        by_name[f"block:{b.index}"] for b in partition.blocks if f"block:{b.index}" in by_name
    ]
    summary: dict[str, Any] = {}
    if blocks:
        best = max(blocks, key=lambda r: (r["val_acc"], -int(r["name"].split(":")[1])))
        summary["best_block"] = {
            "index": int(best["name"].split(":")[1]),
            "val_acc": best["val_acc"],
            "test_acc": best["test_acc"],
        }
    quartiles: dict[str, Any] = {}
    for q, indices in partition.quartiles.items():
        done = [by_name[f"block:{i}"] for i in indices if f"block:{i}" in by_name]
        if done:
            quartiles[q] = {
                "blocks": [int(r["name"].split(":")[1]) for r in done],
                "test_acc": _stats([r["test_acc"] for r in done]),
                "val_acc": _stats([r["val_acc"] for r in done]),
            }
    summary["quartiles"] = quartiles
    summary["baselines"] = {k: by_name[k] for k in ("head", "full") if k in by_name}
    return summary
