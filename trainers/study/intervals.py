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

Resamples come from a fixed seed: a report is reproducible.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

#: bootstrap resamples
RESAMPLES = 2000
#: the interval's coverage
LEVEL = 0.95


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


def _table(hits: Mapping[int, str]) -> dict[int, np.ndarray]:
    return {seed: np.frombuffer(h.encode(), dtype=np.uint8) == ord("1") for seed, h in hits.items()}


def _resampled_means(strategies: Sequence[Mapping[int, str]], seeds: Sequence[int]) -> np.ndarray:
    """(strategies, RESAMPLES) mean accuracies, every strategy on the same draws."""
    tables = [_table(h) for h in strategies]
    rng = np.random.default_rng(0)
    means = np.zeros((len(tables), RESAMPLES))
    for b in range(RESAMPLES):
        drawn = rng.choice(len(seeds), size=len(seeds))
        for i in drawn:
            seed = seeds[i]
            n = len(tables[0][seed])
            index = rng.integers(0, n, size=n)
            for k, table in enumerate(tables):
                means[k, b] += table[seed][index].mean()
    return means / len(seeds)


def _interval(mean: float, draws: np.ndarray) -> Interval:
    tail = 100 * (1 - LEVEL) / 2
    low, high = np.percentile(draws, [tail, 100 - tail])
    return Interval(mean, float(low), float(high))


def _seeds(strategies: Sequence[Mapping[int, str]]) -> list[int] | None:
    """The seeds every strategy has hits for, of one length per seed; None if none."""
    seeds = sorted(set.intersection(*(set(h) for h in strategies))) if strategies else []
    for seed in seeds:
        if len({len(h[seed]) for h in strategies}) != 1 or not strategies[0][seed]:
            return None
    return seeds or None


def accuracy_interval(hits: Mapping[int, str]) -> Interval | None:
    """The mean test accuracy over seeds of one strategy (seed → its test hits) with its
    two-level bootstrap interval; None without hits."""
    seeds = _seeds([hits])
    if seeds is None:
        return None
    mean = float(np.mean([_table(hits)[s].mean() for s in seeds]))
    return _interval(mean, _resampled_means([hits], seeds)[0])


def difference_interval(a: Mapping[int, str], b: Mapping[int, str]) -> Interval | None:
    """A's mean accuracy minus B's over their common seeds, with the paired bootstrap
    interval; None without common hits."""
    seeds = _seeds([a, b])
    if seeds is None:
        return None
    ta, tb = _table(a), _table(b)
    mean = float(np.mean([ta[s].mean() - tb[s].mean() for s in seeds]))
    draws = _resampled_means([a, b], seeds)
    return _interval(mean, draws[0] - draws[1])
