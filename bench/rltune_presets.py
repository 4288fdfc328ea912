"""Benchmark: RL-Tune's two presets against uniform fine-tuning on the study's targets.

    python bench/rltune_presets.py        # runs what is missing, rewrites docs/rltune.md's table

The RL-Tune part of configs/study.toml (its models, targets, seeds, sampling rates and
budget) is run twice: with the default (practical) preset into the study's own folder,
so that ``graphblocks-train study configs/study.toml`` reuses the runs, and with
``preset = "paper"`` into ``runs/study-paper-rltune``. The uniform baseline is the same in
both (same seed, data order and budget), so it is shown once. Rerun to resume.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.doc_tables import replace_between  # noqa: E402
from trainers.study import load_study  # noqa: E402
from trainers.study.config import StudyConfig  # noqa: E402
from trainers.study.results import PairResults, collect  # noqa: E402
from trainers.study.runner import Study  # noqa: E402


def run_rl_part(config: StudyConfig, progress: bool = True) -> list[PairResults]:
    """The study's data, partitions, sources and RL-Tune runs (no sweeps); the results."""
    study = Study(dataclasses.replace(config, sweep=False))
    study.make_data()
    study.make_partitions()
    report = (
        (lambda what, done, total: print(f"[{done}/{total}] {what}", flush=True))
        if progress
        else None
    )
    study.pretrain_all(report)
    study.run_all(report)
    return collect(config)


def paper_config(config: StudyConfig, out: Path) -> StudyConfig:
    """The same study with the paper preset, in ``out``, sharing the pre-trained sources."""
    out.mkdir(parents=True, exist_ok=True)
    shared = out / "pretrained"
    if not shared.exists():
        shared.symlink_to((Path(config.out) / "pretrained").resolve(), target_is_directory=True)
    data = out / "data"
    if not data.exists():
        data.symlink_to((Path(config.out) / "data").resolve(), target_is_directory=True)
    partitions = out / "partitions"
    if not partitions.exists():
        partitions.symlink_to((Path(config.out) / "partitions").resolve(), target_is_directory=True)
    train = {**config.train, "preset": "paper"}
    return dataclasses.replace(config, out=str(out), train=train)


def _cell(values: list[float]) -> str:
    if not values:
        return "–"
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * statistics.fmean(values):.1f} ± {100 * std:.1f}"


def _runs(pairs: list[PairResults], target: str, rate: float, job: str) -> list[float]:
    return [a for p in pairs if p.target == target for a in p.rl_test(rate, job)]


def tables(
    config: StudyConfig, practical: list[PairResults], paper: list[PairResults]
) -> list[str]:
    """Per target and sampling rate: uniform, practical and paper test accuracy (mean ± std
    over models and seeds); per model at the lowest rate; the runs near chance."""
    rates = sorted(config.sample_rates)
    lines = ["| target | sample rate | uniform | RL-Tune practical | RL-Tune paper | practical − uniform |",
             "|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    for target in (t.name for t in config.targets):
        for rate in rates:
            uniform = _runs(practical, target, rate, "uniform")
            ours = _runs(practical, target, rate, "rltune")
            theirs = _runs(paper, target, rate, "rltune")
            gap = (
                100 * (statistics.fmean(ours) - statistics.fmean(uniform))
                if ours and uniform
                else float("nan")
            )
            lines.append(
                f"| {target} | {rate:.0%} | {_cell(uniform)} | {_cell(ours)} | {_cell(theirs)} | {gap:+.1f} |"
            )
    low = rates[0]
    lines += ["", f"Per model at {low:.0%} of the data (test %, mean ± std over seeds and targets):", "",
              "| model | uniform | RL-Tune practical | RL-Tune paper |", "|---|---:|---:|---:|"]  # fmt: skip
    for model in (m.key for m in config.models):
        cells = [
            _cell([a for p in pairs if p.model == model for a in p.rl_test(low, job)])
            for pairs, job in ((practical, "uniform"), (practical, "rltune"), (paper, "rltune"))
        ]
        lines.append(f"| `{model}` | {' | '.join(cells)} |")
    return [*lines, "", *_near_chance(config, practical, paper)]


def _near_chance(
    config: StudyConfig, practical: list[PairResults], paper: list[PairResults]
) -> list[str]:
    """How many runs of each end within 5 points of chance (1 / classes)."""
    from trainers.study.results import split_sizes

    classes = {t: s["classes"] for t, s in split_sizes(config).items()}
    out = []
    for label, pairs, job in (("uniform", practical, "uniform"), ("RL-Tune practical", practical, "rltune"),
                              ("RL-Tune paper", paper, "rltune")):  # fmt: skip
        runs = [
            (p, rate, a)
            for p in pairs
            for rate in config.sample_rates
            for a in p.rl_test(rate, job)
        ]
        near = [(p, rate, a) for p, rate, a in runs if a - 1 / classes[p.target] < 0.05]
        listed = ", ".join(
            f"{p.model}/{p.target} {rate:.0%} ({100 * a:.0f}%)" for p, rate, a in near[:6]
        )
        out.append(
            f"- {label}: {len(near)} of {len(runs)} runs within 5 points of chance"
            + (f" ({listed}{', …' if len(near) > 6 else ''})" if near else "")
            + "."
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", default=str(ROOT / "configs" / "study.toml"))
    parser.add_argument("--paper-out", default=str(ROOT / "runs" / "study-paper-rltune"))
    parser.add_argument("--docs", type=Path, default=ROOT / "docs" / "rltune.md")
    args = parser.parse_args()
    config = load_study(args.config)
    practical = run_rl_part(config)
    paper = run_rl_part(paper_config(config, Path(args.paper_out)))
    body = "\n".join(tables(config, practical, paper))
    replace_between(args.docs, "presets table", body)
    print(body)


if __name__ == "__main__":
    main()
