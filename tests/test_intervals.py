"""The study's confidence intervals: a two-level bootstrap over seeds and test images."""

from __future__ import annotations

import random

from trainers.jobs.confidence import hits_string
from trainers.study.intervals import (
    Over,
    Reduce,
    accuracy_interval,
    compare,
)


def _hits(rate: float, n: int, seed: int) -> str:
    rng = random.Random(seed)
    return hits_string([rng.random() < rate for _ in range(n)])


def test_the_interval_holds_the_mean_and_narrows_with_more_images():
    small = accuracy_interval({s: _hits(0.8, 40, s) for s in range(3)})
    large = accuracy_interval({s: _hits(0.8, 400, s) for s in range(3)})
    assert small is not None and large is not None
    assert small.low <= small.mean <= small.high and large.low <= large.mean <= large.high
    assert large.high - large.low < small.high - small.low
    assert 0.74 < large.mean < 0.86 and large.high - large.low < 0.1
    perfect = accuracy_interval({0: "1" * 50, 1: "1" * 50})
    assert perfect is not None and (perfect.mean, perfect.low, perfect.high) == (1.0, 1.0, 1.0)


def test_seeds_that_disagree_widen_the_interval():
    agree = accuracy_interval({s: _hits(0.7, 160, s) for s in range(3)})
    spread = accuracy_interval(
        {0: _hits(0.5, 160, 0), 1: _hits(0.7, 160, 1), 2: _hits(0.9, 160, 2)}
    )
    assert agree is not None and spread is not None
    assert spread.high - spread.low > 2 * (agree.high - agree.low)


def test_a_paired_difference_resolves_what_overlapping_intervals_cannot():
    base = {s: _hits(0.8, 160, s) for s in range(3)}
    better = {s: h.replace("0", "1", 4) for s, h in base.items()}  # 4 more images right each
    a, b = accuracy_interval(better), accuracy_interval(base)
    assert a is not None and b is not None and a.overlaps(b)
    paired = compare([better], [base])
    assert paired is not None and paired.verdict() == "not resolved"
    diff = paired.difference
    assert abs(diff.mean - 4 / 160) < 1e-12 and diff.low > 0
    same = compare([base], [base])
    assert same is not None and (same.difference.low, same.difference.high) == (0.0, 0.0)
    assert accuracy_interval(base) == b, "resamples from a fixed seed"


def test_no_interval_without_common_hits_of_one_length():
    assert accuracy_interval({}) is None
    assert compare([{0: "101"}], [{1: "101"}]) is None
    assert compare([{0: "101"}], [{0: "10"}]) is None
    assert accuracy_interval({0: ""}) is None


def test_a_comparison_reduces_each_side_and_resolves_only_apart_intervals():
    strong = {s: _hits(0.95, 160, s) for s in range(3)}
    weak = {s: _hits(0.5, 160, 10 + s) for s in range(3)}
    middle = {s: _hits(0.7, 160, 20 + s) for s in range(3)}
    mean = lambda hits: sum(h.count("1") / len(h) for h in hits.values()) / len(hits)  # noqa: E731
    found = compare([strong, weak], [middle, weak], (Reduce.MEAN, Reduce.BEST))
    assert found is not None
    assert abs(found.left.mean - (mean(strong) + mean(weak)) / 2) < 1e-12
    assert abs(found.right.mean - max(mean(middle), mean(weak))) < 1e-12
    assert abs(found.difference.mean - (found.left.mean - found.right.mean)) < 1e-12
    assert found.left.overlaps(found.right) and found.verdict() == "not resolved"
    ahead = compare([strong], [middle, weak], (Reduce.MEAN, Reduce.BEST))
    assert ahead is not None and ahead.resolved and ahead.verdict() == "ahead"
    behind = compare([weak], [strong])
    assert behind is not None and behind.verdict() == "behind"
    gains = compare([strong, weak], [middle, middle], (Reduce.GAIN, Reduce.GAIN))
    assert gains is not None and abs(gains.left.mean - (mean(strong) - mean(weak))) < 1e-12
    assert (gains.right.mean, gains.right.low, gains.right.high) == (0.0, 0.0, 0.0)
    assert compare([strong], []) is None and compare([strong], [{5: "1"}]) is None


def test_one_level_bootstraps_tell_which_level_makes_an_interval_wide():
    def width(hits: dict[int, str], over: Over) -> float:
        found = accuracy_interval(hits, over)
        assert found is not None
        return found.high - found.low

    same = _hits(0.8, 40, 0)
    alike = {s: same for s in range(3)}  # seeds agree: only the images are uncertain
    assert width(alike, Over.SEEDS) == 0.0 and width(alike, Over.IMAGES) > 0.1
    apart = {0: _hits(0.5, 400, 0), 1: _hits(0.7, 400, 1), 2: _hits(0.9, 400, 2)}
    assert width(apart, Over.SEEDS) > 3 * width(apart, Over.IMAGES)
    assert width(apart, Over.SEEDS_AND_IMAGES) >= width(apart, Over.IMAGES)
