"""graphblocks' Lightning callback: each mode trains only what it names, in one process and
under DDP with two CPU processes, where gradual unfreezing keeps the replicas equal."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from graphblocks.optim import levels, selected_levels
from tests.lightning_run import MODES, Classifier, fit, partition

ROOT = Path(__file__).resolve().parents[1]


def _changed_levels(after: dict[str, torch.Tensor]) -> set[int]:
    """The levels whose parameters or BatchNorm statistics moved from the start."""
    before = Classifier().model.state_dict()
    level_of = levels(partition())
    owner = {name.rpartition(".")[0]: level for name, level in level_of.items()}
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    return {owner[k.rpartition(".")[0]] for k in moved if not k.endswith("num_batches_tracked")}


def _expected(mode: str) -> set[int]:
    later = [item for v in MODES[mode].get("unfreeze", {}).values() for item in v]
    return selected_levels(partition(), MODES[mode]["train"] + later)


@pytest.mark.parametrize("mode", sorted(MODES))
def test_each_mode_trains_only_what_it_names(mode):
    module = fit(mode)
    assert _changed_levels(module.model.state_dict()) == _expected(mode)
    optimizer = module.trainer.optimizers[0]
    if mode == "gradual":
        assert [g.get("name") for g in optimizer.param_groups][-1] == "epoch1"
    if mode == "decay":
        rates = sorted({g["lr"] for g in optimizer.param_groups}, reverse=True)
        assert rates[:2] == [1e-2, 5e-3], "the head at the rate, the block below at half"


@pytest.mark.parametrize("mode", sorted(MODES))
def test_under_ddp_each_mode_keeps_the_replicas_equal(tmp_path, mode):
    """Two CPU processes (gloo): the replicas end equal, and only the named blocks moved;
    gradual unfreezing is the case a plain freeze gets wrong (Lightning#20340)."""
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "tests.lightning_run", mode, str(tmp_path), "--ddp"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    # the parameters agree; a trained BatchNorm's running statistics hold each rank's own
    # last batch (DDP broadcasts buffers before each forward, not after the last)
    names = [n for n, _ in Classifier().model.named_parameters()]
    assert all(torch.equal(ranks[0][n], ranks[1][n]) for n in names), "the replicas agree"
    assert _changed_levels(ranks[0]) == _expected(mode)
