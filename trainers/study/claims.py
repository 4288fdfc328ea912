"""The papers' claims, tested on the study's numbers.

Each claim is counted over the cases it speaks of ((model, target) pairs, or RL-Tune runs)
on mean test accuracies over seeds; a claim *holds* in ≥ 75% of its cases, *holds partly*
in ≥ 40%, else it *does not hold*. RL-Tune's low-data claim compares the mean gain at the
lowest sampling rate with the gain at the highest.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from trainers.study.results import PairResults, rl_gains

HOLDS, PARTLY = 0.75, 0.40


@dataclass(frozen=True)
class Claim:
    """One claim, its verdict and the numbers behind it."""

    text: str
    source: str
    verdict: str
    evidence: str


def verdict(share: float) -> str:
    """*holds*, *holds partly* or *does not hold* for the share of cases where it is true."""
    return "holds" if share >= HOLDS else "holds partly" if share >= PARTLY else "does not hold"


def _mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else float("nan")


def _count_claim(
    text: str,
    source: str,
    cases: list[tuple[str, bool]],
    of: str = "(model, target) pairs",
    details: str = "",
) -> Claim:
    """A claim judged by the share of ``cases`` (``(name, true?)``) where it is true."""
    if not cases:
        return Claim(text, source, "not tested", "no finished runs")
    true = [name for name, ok in cases if ok]
    false = [name for name, ok in cases if not ok]
    share = len(true) / len(cases)
    evidence = f"true in {len(true)} of {len(cases)} {of}"
    if false and len(false) <= 6:
        evidence += f"; not in {', '.join(false)}"
    return Claim(text, source, verdict(share), evidence + "." + details)


def evaluate_claims(pairs: list[PairResults], rates: tuple[float, ...]) -> list[Claim]:
    """The block-wise paper's four claims and RL-Tune's two, on these results."""
    swept = [p for p in pairs if p.sweeps and p.test("head") and p.test("full")]
    blockwise = "Barakat & Huang 2023"
    claims = []

    def name(p: PairResults) -> str:
        return f"{p.model}/{p.target}"

    def baselines(p: PairResults) -> float:
        return max(_mean(p.test("head")), _mean(p.test("full")))

    claims.append(
        _count_claim(
            "Fine-tuning a block of the fourth quartile beats both baselines (mean over Q4's blocks)",
            blockwise,
            [(name(p), _mean(p.quartile_test("4")) > baselines(p)) for p in swept],
        )
    )
    claims.append(
        _count_claim(
            "Blocks near the classifier beat blocks near the input (Q4 mean > Q1 mean)",
            blockwise,
            [(name(p), _mean(p.quartile_test("4")) > _mean(p.quartile_test("1"))) for p in swept],
        )
    )
    claims.append(
        _count_claim(
            "The last block beats the first block",
            blockwise,
            [
                (name(p), _mean(p.block_test(p.partition.num_blocks - 1)) > _mean(p.block_test(0)))
                for p in swept
            ],
        )
    )
    claims.append(
        _count_claim(
            "The last block beats both baselines",
            blockwise,
            [
                (name(p), _mean(p.block_test(p.partition.num_blocks - 1)) > baselines(p))
                for p in swept
            ],
        )
    )
    claims.append(
        _count_claim(
            "B_opt (chosen on validation) beats both baselines on test",
            blockwise,
            [(name(p), _mean(p.b_opt()[1]) > baselines(p)) for p in swept],
        )
    )
    if len({p.model for p in swept}) > 1:  # one model cannot vary
        claims.append(_varies_claim(swept, blockwise))
    claims += _rl_claims(pairs, rates)
    return claims


def _varies_claim(swept: list[PairResults], source: str) -> Claim:
    """B_opt's relative depth (index / (blocks − 1)) differs between models on a target."""
    cases = []
    details = []
    for target in dict.fromkeys(p.target for p in swept):
        depths = {}
        for p in swept:
            if p.target == target:
                chosen = p.b_opt()[0]
                n = max(p.partition.num_blocks - 1, 1)
                depths[p.model] = statistics.median(chosen) / n if chosen else float("nan")
        spread = max(depths.values()) - min(depths.values()) if len(depths) > 1 else 0.0
        cases.append((target, spread >= 0.25))
        details.append(f"{target}: " + ", ".join(f"{m} {d:.2f}" for m, d in depths.items()))
    return _count_claim(
        "B_opt varies by model (relative depths spread by ≥ 0.25 on a target)",
        source,
        cases,
        of="targets",
        details=" Median relative depth of B_opt (0 = first block, 1 = last): "
        + "; ".join(details)
        + ".",
    )


def _rl_claims(pairs: list[PairResults], rates: tuple[float, ...]) -> list[Claim]:
    source = "Mahmud et al. 2022"
    gains = rl_gains(pairs, rates)
    runs = [g for r in rates for g in gains.get(r, [])]
    if not runs:
        return [
            Claim("RL-Tune beats uniform fine-tuning", source, "not tested", "no finished runs")
        ]
    wins = sum(g > 0 for g in runs)
    overall = Claim(
        "RL-Tune beats uniform fine-tuning",
        source,
        verdict(wins / len(runs)),
        f"RL-Tune is ahead in {wins} of {len(runs)} runs (all rates); mean gain "
        + ", ".join(f"{r:.0%}: {100 * _mean(gains.get(r, [])):+.1f} pt" for r in rates)
        + ".",
    )
    low, high = min(rates), max(rates)
    low_gain, high_gain = _mean(gains.get(low, [])), _mean(gains.get(high, []))
    most = low_gain > high_gain and low_gain > 0
    partly = low_gain > high_gain
    low_data = Claim(
        "RL-Tune's advantage is largest in low-data regimes",
        source,
        "holds" if most else "holds partly" if partly else "does not hold",
        f"mean gain {100 * low_gain:+.1f} pt at {low:.0%} vs {100 * high_gain:+.1f} pt at {high:.0%}"
        + ("" if low_gain > 0 or not partly else " (larger, but not a gain)")
        + ".",
    )
    return [overall, low_data]
