"""The report's strategy comparison: which strategy on small data, with 95% intervals.

Every strategy's test accuracy is given as its mean over seeds with the two-level
bootstrap interval of :mod:`trainers.study.intervals`. Block-wise fine-tuning (B_opt of the
full sweep, and B_opt found by successive halving) is compared with each practitioner's
baseline per (model, target) by the paired difference of their accuracies; a difference is
*claimed* only where the two strategies' own intervals do not overlap, the stricter test.
"""

from __future__ import annotations

from collections.abc import Callable

from trainers.settings.kinds import JOB_KIND_TABLE, kinds_where
from trainers.study.intervals import Hits, Interval, accuracy_interval, compare
from trainers.study.results import PairResults

#: the practitioner's baselines: job name → label
PRACTITIONER = {str(kind): JOB_KIND_TABLE[kind].label for kind in kinds_where(practitioner=True)}
#: block-wise fine-tuning's two answers: label → how a pair gives their hits
BLOCKWISE: dict[str, Callable[[PairResults], Hits]] = {
    "B_opt": PairResults.b_opt_hits,
    "B_opt by halving": PairResults.halving_hits,
}


def strategy_hits(pair: PairResults, rates: tuple[float, ...]) -> dict[str, Hits]:
    """Label → seed → test hits of every strategy the pair has results for, in the
    report's order (RL-Tune and its uniform baseline at the lowest and highest rate)."""
    found: dict[str, Hits] = {"BL1 (head)": pair.hits("head"), "BL2 (all)": pair.hits("full")}
    found |= {label: hits(pair) for label, hits in BLOCKWISE.items()}
    found |= {label: pair.hits(job) for job, label in PRACTITIONER.items()}
    for rate in sorted({min(rates), max(rates)}) if rates else []:
        found[f"RL-Tune {rate:.0%}"] = pair.rl_hits(rate, "rltune")
        found[f"uniform {rate:.0%}"] = pair.rl_hits(rate, "uniform")
    return {label: hits for label, hits in found.items() if hits}


def _model_table(pairs: list[PairResults], rates: tuple[float, ...]) -> list[str]:
    """Strategies down, targets across; the best mean of each column in bold; then per
    target, which strategies are apart from the best (intervals that do not overlap)."""
    intervals = {
        p.target: {k: accuracy_interval(v) for k, v in strategy_hits(p, rates).items()}
        for p in pairs
    }
    labels = list(dict.fromkeys(k for by in intervals.values() for k in by))
    best = {t: _best(by) for t, by in intervals.items()}
    lines = ["| strategy | " + " | ".join(intervals) + " |", "|---|" + "---:|" * len(intervals)]
    for label in labels:
        cells = []
        for target, by in intervals.items():
            found = by.get(label)
            text = found.cell() if found else "–"
            cells.append(f"**{text}**" if found and label == best[target] else text)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("")
    for target, by in intervals.items():
        top = best[target]
        if top is not None:
            lines.append(f"- {target}: {_tied_line(by, top)}")
    return lines


def _best(by: dict[str, Interval | None]) -> str | None:
    """The label of the best mean (the first listed among equals)."""
    found = {label: i for label, i in by.items() if i is not None}
    return max(found, key=lambda label: found[label].mean) if found else None


def _tied_line(by: dict[str, Interval | None], best: str) -> str:
    """The best strategy, those whose intervals overlap it, and those apart below it."""
    top = by[best]
    if top is None:
        return f"best mean **{best}**."
    found = {label: i for label, i in by.items() if i is not None and label != best}
    tied = [label for label, i in found.items() if i.overlaps(top)]
    below = [label for label, i in found.items() if not i.overlaps(top)]
    return (
        f"best mean **{best}**; overlapping it: {', '.join(tied) or 'none'}; "
        f"apart below it: {', '.join(below) or 'none'}."
    )


def _versus(pairs: list[PairResults], rates: tuple[float, ...]) -> list[str]:
    """Per (model, target): each block-wise answer minus each practitioner's baseline."""
    rows = []
    for pair in pairs:
        hits = strategy_hits(pair, rates)
        for ours in (label for label in BLOCKWISE if label in hits):
            cells = []
            for theirs in PRACTITIONER.values():
                found = compare([hits[ours]], [hits.get(theirs, {})])
                if found is None:
                    cells.append("–")
                    continue
                verdict = found.verdict()
                shown = verdict if verdict == "not resolved" else f"**{verdict}**"
                cells.append(f"{found.difference.points()} {shown}")
            rows.append(f"| `{pair.model}` | {pair.target} | {ours} | " + " | ".join(cells) + " |")
    if not rows:
        return []
    head = "| model | target | block-wise | " + " | ".join(f"− {b}" for b in PRACTITIONER.values())
    return [head + " |", "|---|---|---|" + "---:|" * len(PRACTITIONER), *rows]


def strategies_section(pairs: list[PairResults], rates: tuple[float, ...]) -> list[str]:
    """The report's section: a table per model, then block-wise against each baseline."""
    if not any(strategy_hits(p, rates) for p in pairs):
        return []
    lines = [
        "## Which strategy on small data?",
        "",
        "Test accuracy (%), the mean over seeds with its 95% interval (a two-level bootstrap "
        "over seeds and test images, `trainers/study/intervals.py`); the best mean of each "
        "target in bold, and under each table the strategies whose intervals overlap the "
        "best one's (not told apart from it) and those apart below it.",
    ]
    for model in dict.fromkeys(p.model for p in pairs):
        lines += [
            "",
            f"### `{model}`",
            "",
            *_model_table([p for p in pairs if p.model == model], rates),
        ]
    versus = _versus(pairs, rates)
    if versus:
        lines += [
            "",
            "### Block-wise fine-tuning against the practitioner's baselines",
            "",
            "Each cell: block-wise minus the baseline, in points, with the paired bootstrap "
            "interval (same seeds, same test images); **ahead** or **behind** only where the "
            "two strategies' own intervals do not overlap.",
            "",
            *versus,
        ]
    return lines
