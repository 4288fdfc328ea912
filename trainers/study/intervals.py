"""Confidence intervals of a strategy's test accuracy over seeds and test images.

A strategy run with seeds s = 1..S on a (model, target) classifies each seed's test images
right or wrong: h_s ∈ {0, 1}^{n_s} (``test_hits``; each seed has its own split). Its
accuracy is the mean over seeds, A = (1/S) Σ_s mean(h_s). Both the training (the seed) and
the finite test split make A uncertain, so the interval comes from a **two-level
bootstrap** (Davison & Hinkley 1997, §3.8): each of B resamples draws S seeds with
replacement, then each drawn seed's n_s images with replacement, and takes the mean
accuracy; the 95% interval is the 2.5th and 97.5th percentile of the B means.

Two strategies run on the same seeds see the same test images, so their **difference** is
bootstrapped *paired*: the same seeds and image indices for both in every resample.

A claim compares two *sides*, each a statistic of several strategies' accuracies
(:class:`Reduce`: their mean, e.g. over a quartile's blocks; their best, e.g. the better
of two baselines; or a gain, one minus another). :func:`compare` draws every strategy of
both sides on the same resamples and gives each side's interval and their difference's.
A difference is *resolved* when the two sides' own intervals do not overlap: stricter than
the difference's interval excluding zero.

Resamples come from a fixed seed: a report is reproducible.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

#: bootstrap resamples
RESAMPLES = 2000
#: the interval's coverage
LEVEL = 0.95

Hits = Mapping[int, str]  # seed → test hits, "1" right, "0" wrong per image
Table = dict[int, np.ndarray]  # the same as booleans, one per test image


class Over(StrEnum):
    """What a bootstrap resamples: both levels (the intervals of the report), or one level
    with the other held as observed (to see which makes an interval wide)."""

    SEEDS_AND_IMAGES = "seeds and images"
    SEEDS = "seeds"
    IMAGES = "images"


class Reduce(StrEnum):
    """How a side of a comparison turns its strategies' accuracies into one value."""

    MEAN = "mean"  # their mean (a quartile's blocks)
    BEST = "best"  # the best of them (the better baseline)
    GAIN = "gain"  # the first minus the second (RL-Tune over uniform)


#: each reduction on accuracies with one row per strategy, one column per resample
REDUCERS: dict[Reduce, Callable[[np.ndarray], np.ndarray]] = {
    Reduce.MEAN: lambda acc: acc.mean(axis=0),
    Reduce.BEST: lambda acc: acc.max(axis=0),
    Reduce.GAIN: lambda acc: acc[0] - acc[1],
}


@dataclass(frozen=True)
class Interval:
    """A mean and its bootstrap interval, as shares (0..1)."""

    mean: float
    low: float
    high: float

    def overlaps(self, other: Interval) -> bool:
        """Whether the two intervals share a point."""
        return self.low <= other.high and other.low <= self.high

    def cell(self) -> str:
        """``mean [low, high]`` in percent, one decimal."""
        return f"{100 * self.mean:.1f} [{100 * self.low:.1f}, {100 * self.high:.1f}]"

    def points(self) -> str:
        """``+mean [+low, +high]`` in signed points: a difference."""
        return f"{100 * self.mean:+.1f} [{100 * self.low:+.1f}, {100 * self.high:+.1f}]"


@dataclass(frozen=True)
class Comparison:
    """Two sides' intervals and their difference's, from the same resamples."""

    left: Interval
    right: Interval
    difference: Interval

    @property
    def resolved(self) -> bool:
        """Whether the two sides' own intervals do not overlap."""
        return not self.left.overlaps(self.right)

    def verdict(self) -> str:
        """*ahead* or *behind* (the left side) when resolved, else *not resolved*."""
        if not self.resolved:
            return "not resolved"
        return "ahead" if self.difference.mean > 0 else "behind"


def _table(hits: Hits) -> Table:
    return {seed: np.frombuffer(h.encode(), dtype=np.uint8) == ord("1") for seed, h in hits.items()}


def _resampled_means(
    tables: Sequence[Table], seeds: Sequence[int], over: Over = Over.SEEDS_AND_IMAGES
) -> np.ndarray:
    """(strategies, RESAMPLES) mean accuracies, every strategy on the same draws."""
    rng = np.random.default_rng(0)
    means = np.zeros((len(tables), RESAMPLES))
    every = np.arange(len(seeds))
    for b in range(RESAMPLES):
        drawn = every if over == Over.IMAGES else rng.choice(len(seeds), size=len(seeds))
        for i in drawn:
            seed = seeds[i]
            n = len(tables[0][seed])
            index = np.arange(n) if over == Over.SEEDS else rng.integers(0, n, size=n)
            for k, table in enumerate(tables):
                means[k, b] += table[seed][index].mean()
    return means / len(seeds)


def _interval(mean: float, draws: np.ndarray) -> Interval:
    tail = 100 * (1 - LEVEL) / 2
    low, high = np.percentile(draws, [tail, 100 - tail])
    return Interval(mean, float(low), float(high))


def _seeds(strategies: Sequence[Hits]) -> list[int] | None:
    """The seeds every strategy has hits for, of one length per seed; None if none."""
    seeds = sorted(set.intersection(*(set(h) for h in strategies))) if strategies else []
    for seed in seeds:
        if len({len(h[seed]) for h in strategies}) != 1 or not strategies[0][seed]:
            return None
    return seeds or None


def _means(tables: Sequence[Table], seeds: Sequence[int]) -> np.ndarray:
    """(strategies, 1) mean accuracies over ``seeds``: the point estimates."""
    return np.array([[np.mean([t[s].mean() for s in seeds])] for t in tables])


def accuracy_interval(hits: Hits, over: Over = Over.SEEDS_AND_IMAGES) -> Interval | None:
    """The mean test accuracy over seeds of one strategy (seed → its test hits) with its
    bootstrap interval (two-level unless ``over`` says one); None without hits."""
    seeds = _seeds([hits])
    if seeds is None:
        return None
    tables = [_table(hits)]
    return _interval(float(_means(tables, seeds)[0, 0]), _resampled_means(tables, seeds, over)[0])


def compare(
    left: Sequence[Hits],
    right: Sequence[Hits],
    how: tuple[Reduce, Reduce] = (Reduce.MEAN, Reduce.MEAN),
) -> Comparison | None:
    """Left side against right side, each its strategies' accuracies reduced as ``how``
    says, over the seeds all of them share; None when one lacks hits."""
    strategies = [*left, *right]
    seeds = _seeds(strategies)
    if seeds is None or not left or not right:
        return None
    tables = [_table(h) for h in strategies]
    point, draws = _means(tables, seeds), _resampled_means(tables, seeds)
    split = len(left)

    def sides(acc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return REDUCERS[how[0]](acc[:split]), REDUCERS[how[1]](acc[split:])

    (a, b), (da, db) = sides(point), sides(draws)
    return Comparison(
        _interval(float(a[0]), da),
        _interval(float(b[0]), db),
        _interval(float(a[0] - b[0]), da - db),
    )
