"""The papers' claims, tested on the study's numbers.

Each claim is counted over the cases it speaks of ((model, target) pairs, or RL-Tune runs)
on mean test accuracies over seeds; a claim *holds* in ≥ 75% of its cases, *holds partly*
in ≥ 40%, else it *does not hold*. RL-Tune's low-data claim compares the mean gain at the
lowest sampling rate with the gain at the highest.

A case compares two sides (:class:`Side`), each a reduction of some strategies' accuracies (the
mean over Q4's blocks, the better of the two baselines, RL-Tune's gain over uniform). Where
the runs kept their test hits, every case also carries the two sides' 95% intervals and
their difference's (:func:`trainers.study.intervals.compare`); the claim's evidence says in
how many cases the intervals are apart, and the report lists every case.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from trainers.jobs.job import job_name
from trainers.study.intervals import REDUCERS, Comparison, Hits, Reduce, compare
from trainers.study.results import PairResults, rl_gains

HOLDS, PARTLY = 0.75, 0.40
BLOCKWISE_PAPER = "Barakat & Huang 2023"
RLTUNE_PAPER = "Mahmud et al. 2022"


@dataclass(frozen=True)
class Side:
    """One side of a case: strategies' test accuracies and hits, and how they reduce."""

    label: str
    tests: tuple[list[float], ...]  # per strategy: its test accuracy in each seed
    hits: tuple[Hits, ...]  # per strategy: seed → its test hits
    reduce: Reduce = Reduce.MEAN

    def value(self) -> float:
        """The reduction of the strategies' mean accuracies over seeds (NaN without runs)."""
        if not self.tests or not all(self.tests):
            return float("nan")
        means = np.array([[statistics.fmean(t)] for t in self.tests])
        return float(REDUCERS[self.reduce](means)[0])


@dataclass(frozen=True)
class Case:
    """One case of a claim: is the left side ahead of the right?"""

    name: str
    left: Side
    right: Side

    @property
    def true(self) -> bool:
        return self.left.value() > self.right.value()

    @cached_property
    def comparison(self) -> Comparison | None:
        """Both sides' intervals and the difference's; None where hits were not kept."""
        how = (self.left.reduce, self.right.reduce)
        return compare(self.left.hits, self.right.hits, how)


@dataclass(frozen=True)
class Claim:
    """One claim, its verdict and the numbers behind it."""

    text: str
    source: str
    verdict: str
    evidence: str
    cases: tuple[Case, ...] = field(default=(), repr=False, compare=False)

    def record(self) -> dict[str, str]:
        """What study.json keeps of it."""
        return {
            "text": self.text,
            "source": self.source,
            "verdict": self.verdict,
            "evidence": self.evidence,
        }


def verdict(share: float) -> str:
    """*holds*, *holds partly* or *does not hold* for the share of cases where it is true."""
    return "holds" if share >= HOLDS else "holds partly" if share >= PARTLY else "does not hold"


def _mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else float("nan")


def _resolved_note(cases: tuple[Case, ...]) -> str:
    """`` 95% intervals apart in k of n (a ahead, b behind).`` ('' when no case kept hits)."""
    found = [c.comparison for c in cases if c.comparison is not None]
    if not found:
        return ""
    apart = [c for c in found if c.resolved]
    ahead = sum(c.verdict() == "ahead" for c in apart)
    return f" 95% intervals apart in {len(apart)} of {len(found)}" + (
        f" ({ahead} ahead, {len(apart) - ahead} behind)." if apart else "."
    )


def _count_claim(
    text: str,
    source: str,
    outcomes: list[tuple[str, bool]],
    of: str = "(model, target) pairs",
    details: str = "",
    cases: tuple[Case, ...] = (),
) -> Claim:
    """A claim judged by the share of ``outcomes`` (``(name, true?)``) where it is true;
    ``cases`` add their intervals to the evidence."""
    if not outcomes:
        return Claim(text, source, "not tested", "no finished runs")
    false = [name for name, ok in outcomes if not ok]
    evidence = f"true in {len(outcomes) - len(false)} of {len(outcomes)} {of}"
    if false and len(false) <= 6:
        evidence += f"; not in {', '.join(false)}"
    share = 1 - len(false) / len(outcomes)
    return Claim(
        text, source, verdict(share), evidence + "." + _resolved_note(cases) + details, cases
    )


def _case_claim(text: str, source: str, cases: list[Case]) -> Claim:
    """A claim whose outcomes are its cases' (is the left side ahead?)."""
    return _count_claim(text, source, [(c.name, c.true) for c in cases], cases=tuple(cases))


def _jobs_side(
    pair: PairResults, label: str, jobs: list[str], reduce: Reduce = Reduce.MEAN
) -> Side:
    """The side of ``jobs`` in the pair's sweeps."""
    return Side(label, tuple(pair.test(j) for j in jobs), tuple(pair.hits(j) for j in jobs), reduce)


def _baselines(pair: PairResults) -> Side:
    return _jobs_side(pair, "better baseline", ["head", "full"], Reduce.BEST)


def _blocks(pair: PairResults, label: str, indices: list[int]) -> Side:
    return _jobs_side(pair, label, [job_name("block", i) for i in indices])


def _last(pair: PairResults) -> Side:
    return _blocks(pair, "last block", [pair.partition.num_blocks - 1])


def _quartile(pair: PairResults, quartile: str) -> Side:
    return _blocks(pair, f"Q{quartile} mean", pair.quartile_blocks(quartile))


def _b_opt(pair: PairResults) -> Side:
    return Side("B_opt", (pair.b_opt()[1],), (pair.b_opt_hits(),))


#: the block-wise paper's claims: text → the two sides it compares on a pair
BLOCKWISE_CLAIMS: dict[str, Callable[[PairResults], tuple[Side, Side]]] = {
    "Fine-tuning a block of the fourth quartile beats both baselines (mean over Q4's blocks)": lambda p: (
        _quartile(p, "4"),
        _baselines(p),
    ),
    "Blocks near the classifier beat blocks near the input (Q4 mean > Q1 mean)": lambda p: (
        _quartile(p, "4"),
        _quartile(p, "1"),
    ),
    "The last block beats the first block": lambda p: (_last(p), _blocks(p, "first block", [0])),
    "The last block beats both baselines": lambda p: (_last(p), _baselines(p)),
    "B_opt (chosen on validation) beats both baselines on test": lambda p: (
        _b_opt(p),
        _baselines(p),
    ),
}


def evaluate_claims(pairs: list[PairResults], rates: tuple[float, ...]) -> list[Claim]:
    """The block-wise paper's five claims (six with several models) and RL-Tune's two."""
    swept = [p for p in pairs if p.sweeps and p.test("head") and p.test("full")]
    claims = [
        _case_claim(
            text, BLOCKWISE_PAPER, [Case(f"{p.model}/{p.target}", *sides(p)) for p in swept]
        )
        for text, sides in BLOCKWISE_CLAIMS.items()
    ]
    if len({p.model for p in swept}) > 1:  # one model cannot vary
        claims.append(_varies_claim(swept))
    claims += _rl_claims(pairs, rates)
    return claims


def _varies_claim(swept: list[PairResults]) -> Claim:
    """B_opt's relative depth (index / (blocks − 1)) differs between models on a target."""
    outcomes = []
    details = []
    for target in dict.fromkeys(p.target for p in swept):
        depths = {}
        for p in swept:
            if p.target == target:
                chosen = p.b_opt()[0]
                n = max(p.partition.num_blocks - 1, 1)
                depths[p.model] = statistics.median(chosen) / n if chosen else float("nan")
        spread = max(depths.values()) - min(depths.values()) if len(depths) > 1 else 0.0
        outcomes.append((target, spread >= 0.25))
        details.append(f"{target}: " + ", ".join(f"{m} {d:.2f}" for m, d in depths.items()))
    return _count_claim(
        "B_opt varies by model (relative depths spread by ≥ 0.25 on a target)",
        BLOCKWISE_PAPER,
        outcomes,
        of="targets",
        details=" Median relative depth of B_opt (0 = first block, 1 = last): "
        + "; ".join(details)
        + ".",
    )


def _rl_side(pair: PairResults, rate: float, label: str, jobs: tuple[str, ...]) -> Side:
    """RL-Tune's runs at ``rate``: one job's accuracy, or (two jobs) the first's gain."""
    tests = tuple(pair.rl_test(rate, j) for j in jobs)
    hits = tuple(pair.rl_hits(rate, j) for j in jobs)
    return Side(label, tests, hits, Reduce.GAIN if len(jobs) == 2 else Reduce.MEAN)


def _rl_claims(pairs: list[PairResults], rates: tuple[float, ...]) -> list[Claim]:
    gains = rl_gains(pairs, rates)
    runs = [g for r in rates for g in gains.get(r, [])]
    if not runs:
        return [
            Claim(
                "RL-Tune beats uniform fine-tuning", RLTUNE_PAPER, "not tested", "no finished runs"
            )
        ]
    ran = [p for p in pairs if p.rltune]
    versus = tuple(
        Case(
            f"{p.model}/{p.target} at {r:.0%}",
            _rl_side(p, r, "RL-Tune", ("rltune",)),
            _rl_side(p, r, "uniform", ("uniform",)),
        )
        for p in ran
        for r in rates
        if p.rl_test(r, "rltune")
    )
    wins = sum(g > 0 for g in runs)
    overall = Claim(
        "RL-Tune beats uniform fine-tuning",
        RLTUNE_PAPER,
        verdict(wins / len(runs)),
        f"RL-Tune is ahead in {wins} of {len(runs)} runs (all rates); mean gain "
        + ", ".join(f"{r:.0%}: {100 * _mean(gains.get(r, [])):+.1f} pt" for r in rates)
        + "."
        + _resolved_note(versus),
        versus,
    )
    low, high = min(rates), max(rates)
    gain = ("rltune", "uniform")
    by_rate = tuple(
        Case(
            f"{p.model}/{p.target}",
            _rl_side(p, low, f"gain at {low:.0%}", gain),
            _rl_side(p, high, f"gain at {high:.0%}", gain),
        )
        for p in ran
    )
    low_gain, high_gain = _mean(gains.get(low, [])), _mean(gains.get(high, []))
    most = low_gain > high_gain and low_gain > 0
    partly = low_gain > high_gain
    low_data = Claim(
        "RL-Tune's advantage is largest in low-data regimes",
        RLTUNE_PAPER,
        "holds" if most else "holds partly" if partly else "does not hold",
        f"mean gain {100 * low_gain:+.1f} pt at {low:.0%} vs {100 * high_gain:+.1f} pt at {high:.0%}"
        + ("" if low_gain > 0 or not partly else " (larger, but not a gain)")
        + "."
        + (_resolved_note(by_rate) if low != high else ""),
        by_rate if low != high else (),
    )
    return [overall, low_data]


def _case_rows(claim: Claim) -> list[str]:
    """One row per case of the claim that kept hits: both sides and the difference."""
    rows = []
    for case in claim.cases:
        found = case.comparison
        if found is None:
            continue
        rows.append(
            f"| {case.name} | {case.left.label} {found.left.cell()} | "
            f"{case.right.label} {found.right.cell()} | {found.difference.points()} | "
            f"{found.verdict()} |"
        )
    return rows


def claims_section(claims: list[Claim]) -> list[str]:
    """The report's reading of the claims, then each claim's cases with their intervals."""
    lines = [
        "## Reading: which of the papers' claims hold here",
        "",
        "Computed from the tables below; a claim *holds* when it is true in at least "
        "75% of the cases it is tested on, *holds partly* from 40%, else *does not hold*. "
        "A case is *resolved* where the two sides' 95% intervals do not overlap "
        "(a two-level bootstrap over seeds and test images, `trainers/study/intervals.py`).",
        "",
    ]
    lines += [f"- **{c.text}** ({c.source}) — *{c.verdict}*: {c.evidence}" for c in claims]
    tables = [(claim, _case_rows(claim)) for claim in claims]
    if any(rows for _, rows in tables):
        lines += ["", "### Each case, with its 95% interval", ""]
    for claim, rows in tables:
        if rows:
            lines += [
                f"<details><summary>{claim.text}</summary>",
                "",
                "| case | left side (%) | right side (%) | left − right (points) | |",
                "|---|---:|---:|---:|---|",
                *rows,
                "",
                "</details>",
                "",
            ]
    return lines
