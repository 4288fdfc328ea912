"""Where Auto-RGN puts its learning rates: the rates of its first epoch, block by block.

Auto-RGN (``--strategy auto-rgn``) trains tensor i at lr·RGN_i / max_j RGN_j. This prepares
a finished run's settings (a study sweep's ``config.toml``), sets the first epoch's rates as
the job does, and prints, per block of the partition, the parameter-weighted mean rate as a
share of ``--lr``, the share of the block's parameters below a tenth of it, and the tensor
with the largest RGN::

    python bench/auto_rgn_rates.py runs/study-imagenet/runs/lite0/digits/seed0/sweep/config.toml
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import tomllib

from trainers.jobs.job import Job, JobKind
from trainers.session import prepare
from trainers.settings import TrainConfig
from trainers.training.modeling import norm_params
from trainers.training.recipes import recipe_for
from trainers.training.state import Training


def block_rates(
    config_path: Path, scratch: Path
) -> tuple[list[tuple[int, float, float, int]], str]:
    """Per block (index, mean rate / lr, share of parameters under lr/10, parameters) and
    the name of the tensor with the largest RGN; ``scratch``: an empty run folder."""
    settings = tomllib.loads(config_path.read_text())
    split = (config_path.parent / "split.json").read_text()  # the run's own split
    scratch.mkdir(parents=True)
    (scratch / "split.json").write_text(split)
    settings.update(strategy="auto-rgn", out=str(scratch), resume=True)
    ready = prepare(TrainConfig(**settings))
    runner = ready.runner
    job = Job(JobKind.AUTO_RGN, ready.config)
    runner.reset(job)
    recipe = recipe_for(job, runner.recipe_context(job))
    assert recipe is not None
    phase = recipe.before_epoch(Training())
    assert phase is not None
    lr = ready.config.lr
    rate = {id(p): g["lr"] / lr for g in phase.optimizer.param_groups for p in g["params"]}
    trunk, norms = runner.model.trunk, norm_params(runner.model.trunk)
    rows = []
    for block in ready.partition.blocks:
        params = [trunk.get_parameter(n) for n in block.params if n not in norms]
        total = sum(p.numel() for p in params)
        mean = sum(rate[id(p)] * p.numel() for p in params) / max(total, 1)
        low = sum(p.numel() for p in params if rate[id(p)] < 0.1) / max(total, 1)
        rows.append((block.index, mean, low, total))
    scaled = [n for b in ready.partition.blocks for n in b.params if n not in norms]
    top = max(scaled, key=lambda n: rate[id(trunk.get_parameter(n))])
    return rows, top


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("configs", type=Path, nargs="+", help="run folders' config.toml")
    args = parser.parse_args()
    print("| run | block | params | mean rate / lr | params under lr/10 |")
    print("|---|---:|---:|---:|---:|")
    for path in args.configs:
        with tempfile.TemporaryDirectory() as scratch:
            rows, top = block_rates(path, Path(scratch) / "run")
        run = "/".join(path.parts[-5:-2])
        for index, mean, low, total in rows:
            print(f"| {run} | {index} | {total:,} | {mean:.3f} | {100 * low:.0f}% |")
        print(f"| {run} | largest RGN: `{top}` | | | |")


if __name__ == "__main__":
    main()
