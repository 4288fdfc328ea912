"""The study's numbers: run folders read back and reduced to means ± standard deviations.

Everything here is a pure function of the run folders' ``results.json`` files (and the
wall seconds of their study markers), so the
report can be rebuilt at any time (``graphblocks-train study CONFIG --report-only``).
Accuracies are test accuracies; every choice (B_opt, the best Q4 block) is made on
validation accuracy, never on test.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from graphblocks import Partition
from trainers.jobs.job import JobResult, job_name
from trainers.jobs.results import best_block, load_results
from trainers.jobs.run_folder import RunFolder
from trainers.study.config import StudyConfig
from trainers.study.runner import run_seconds, unit_dir


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value); NaN for none."""
    if not values:
        return float("nan"), float("nan")
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


Jobs = dict[str, JobResult]  # one run folder's results by job name


@dataclass
class PairResults:
    """All runs of one (model, target): per seed, the sweep's and RL-Tune's results."""

    model: str
    target: str
    partition: Partition
    sweeps: dict[int, Jobs] = field(default_factory=dict)  # seed → job → result
    halving: dict[int, Jobs] = field(default_factory=dict)  # seed → its chosen block's job
    rltune: dict[float, dict[int, Jobs]] = field(default_factory=dict)  # rate → seed → …
    #: wall seconds of each finished run folder, whole: kind ("sweep", "halving") → seed → s
    run_seconds: dict[str, dict[int, float]] = field(default_factory=dict)

    def seeds(self) -> list[int]:
        return sorted(self.sweeps)

    def test(self, job: str) -> list[float]:
        """The test accuracy of ``job`` in every seed's sweep that has it."""
        return [s[job].test_acc for s in self.sweeps.values() if job in s]

    def block_test(self, index: int) -> list[float]:
        return self.test(job_name("block", index))

    def block_mean_val(self, index: int) -> float:
        name = job_name("block", index)
        values = [s[name].val_acc for s in self.sweeps.values() if name in s]
        return statistics.fmean(values) if values else float("-inf")

    def b_opt(self) -> tuple[list[int], list[float]]:
        """Per seed: B_opt (:func:`trainers.jobs.results.best_block`) and its test accuracy."""
        chosen = [best_block(jobs.values()) for jobs in self.sweeps.values()]
        return [c.index for c in chosen if c], [c.test_acc for c in chosen if c]

    def quartile_blocks(self, quartile: str) -> list[int]:
        return list(self.partition.quartiles.get(quartile, []))

    def quartile_test(self, quartile: str) -> list[float]:
        """Per seed, the mean test accuracy over the quartile's blocks."""
        names = [job_name("block", i) for i in self.quartile_blocks(quartile)]
        out = []
        for jobs in self.sweeps.values():
            values = [jobs[n].test_acc for n in names if n in jobs]
            if values:
                out.append(statistics.fmean(values))
        return out

    def best_q4_block(self) -> int | None:
        """The Q4 block with the best mean validation accuracy over seeds."""
        blocks = self.quartile_blocks("4")
        return max(blocks, key=lambda i: (self.block_mean_val(i), -i)) if blocks else None

    def hits(self, job: str) -> dict[int, str]:
        """Seed → the test hits of ``job`` in that seed's sweep (where recorded)."""
        return _hits_of(self.sweeps, lambda jobs: jobs.get(job))

    def b_opt_hits(self) -> dict[int, str]:
        """Seed → the test hits of that seed's B_opt (the full sweep's choice)."""
        return _hits_of(self.sweeps, _b_opt_job)

    def halving_hits(self) -> dict[int, str]:
        """Seed → the test hits of the block successive halving chose (the one block its
        run tested)."""
        return _hits_of(
            self.halving,
            lambda jobs: next(
                (r for r in jobs.values() if r.block is not None and r.test_hits), None
            ),
        )

    def rl_hits(self, rate: float, job: str) -> dict[int, str]:
        """Seed → the test hits of RL-Tune's ``job`` at ``rate``."""
        return _hits_of(self.rltune.get(rate, {}), lambda jobs: jobs.get(job))

    def rl_test(self, rate: float, job: str) -> list[float]:
        return [s[job].test_acc for s in self.rltune.get(rate, {}).values() if job in s]

    def seconds(self, job: str, rate: float | None = None) -> list[float]:
        runs = self.sweeps.values() if rate is None else self.rltune.get(rate, {}).values()
        return [s[job].seconds for s in runs if job in s]

    def trainable(self, job: str) -> int | None:
        for runs in [*self.sweeps.values(), *(r for v in self.rltune.values() for r in v.values())]:
            if job in runs:
                return runs[job].trainable_params
        return None


def _b_opt_job(jobs: Jobs) -> JobResult | None:
    """The job of a sweep's B_opt (:func:`trainers.jobs.results.best_block`)."""
    chosen = best_block(jobs.values())
    return jobs.get(job_name("block", chosen.index)) if chosen else None


def _hits_of(runs: Mapping[int, Jobs], pick: Callable[[Jobs], JobResult | None]) -> dict[int, str]:
    """Seed → the test hits of the job ``pick`` finds in each of ``runs``, where recorded."""
    found = {}
    for seed, jobs in runs.items():
        job = pick(jobs)
        if job is not None and job.test_hits:
            found[seed] = job.test_hits
    return found


def _jobs(run_dir: Path) -> Jobs | None:
    if not RunFolder(run_dir).results.exists():
        return None
    return {r.name: r for r in load_results(run_dir).jobs}


def collect(config: StudyConfig) -> list[PairResults]:
    """Every (model, target) of the study with the results found on disk."""
    out = Path(config.out)
    pairs = []
    for model in config.models:
        partition = Partition.load(out / "partitions" / f"{model.key}.json")
        for target in config.targets:
            pair = PairResults(model.key, target.name, partition)
            for seed in config.seeds:
                for kind, found in (("sweep", pair.sweeps), ("halving", pair.halving)):
                    run_dir = unit_dir(out, model.key, target.name, seed, kind, 1.0)
                    jobs = _jobs(run_dir)
                    if jobs:
                        found[seed] = jobs
                    seconds = run_seconds(run_dir)
                    if seconds is not None:
                        pair.run_seconds.setdefault(kind, {})[seed] = seconds
                for rate in config.sample_rates:
                    jobs = _jobs(unit_dir(out, model.key, target.name, seed, "rltune", rate))
                    if jobs:
                        pair.rltune.setdefault(rate, {})[seed] = jobs
            pairs.append(pair)
    return pairs


def split_sizes(config: StudyConfig) -> dict[str, dict[str, int]]:
    """Per target, the split sizes and class count of the first run found (a sweep's, on
    the whole training split, before an RL-Tune run's at the highest sampling rate)."""
    sizes: dict[str, dict[str, int]] = {}
    runs = Path(config.out).glob("runs/*/*/seed*/*/results.json")
    for path in sorted(runs, key=lambda p: (p.parts[-2] != "sweep", p.parts[-2][::-1], p)):
        target = path.parts[-4]
        if target not in sizes:
            results = load_results(path.parent)
            sizes[target] = {**results.split_sizes, "classes": len(results.classes)}
    return sizes


def rl_gains(pairs: list[PairResults], rates: tuple[float, ...]) -> dict[float, list[float]]:
    """Per sampling rate, RL-Tune − uniform test accuracy of every (model, target, seed)."""
    gains: dict[float, list[float]] = defaultdict(list)
    for pair in pairs:
        for rate in rates:
            for jobs in pair.rltune.get(rate, {}).values():
                if "rltune" in jobs and "uniform" in jobs:
                    gains[rate].append(jobs["rltune"].test_acc - jobs["uniform"].test_acc)
    return dict(gains)


def rl_diagnostics(pairs: list[PairResults], out: Path) -> dict[float, dict[str, float]]:
    """Per sampling rate, means over RL-Tune runs of: the last episode's target model minus
    uniform on validation (``target_gap``), the final (moving-average) model minus uniform
    on validation (``final_gap``), and the agent's mean chosen learning rate over all units
    in the first and the last epoch (``first_lr``, ``last_lr``, from ``rltune-lr.csv``)."""
    found: dict[float, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for pair in pairs:
        for rate, runs in pair.rltune.items():
            for seed, jobs in runs.items():
                if "rltune" not in jobs or "uniform" not in jobs:
                    continue
                rl, uniform, into = jobs["rltune"], jobs["uniform"], found[rate]
                last_target = rl.rltune.last_target_val_acc if rl.rltune else None
                if last_target is not None:
                    into["target_gap"].append(last_target - uniform.val_acc)
                into["final_gap"].append(rl.val_acc - uniform.val_acc)
                rows = _lr_log(unit_dir(out, pair.model, pair.target, seed, "rltune", rate))
                if rows:
                    into["first_lr"].append(statistics.fmean(rows[0]))
                    into["last_lr"].append(statistics.fmean(rows[-1]))
    return {
        rate: {key: statistics.fmean(values) for key, values in d.items() if values}
        for rate, d in found.items()
    }


def _lr_log(run_dir: Path) -> list[list[float]]:
    """The chosen learning rate per unit, one row per epoch (none without a log)."""
    import csv

    log = RunFolder(run_dir).rltune_rates
    if not log.exists():
        return []
    with log.open() as handle:
        rows = list(csv.reader(handle))
    first = 3 if rows and rows[0][2:3] == ["val_acc"] else 2  # older logs have no val_acc
    return [[float(v) for v in row[first:]] for row in rows[1:]]
