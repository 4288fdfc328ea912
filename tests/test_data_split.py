"""Properties of the seeded stratified split and the training-split sampling."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from trainers.training.data import stratified_split, subsample

class_sizes = st.lists(st.integers(min_value=1, max_value=40), min_size=2, max_size=6)


def _samples(sizes: list[int]) -> list[tuple[str, int]]:
    return [(f"c{k}/img{i}.png", k) for k, n in enumerate(sizes) for i in range(n)]


@settings(max_examples=60, deadline=None)
@given(sizes=class_sizes, seed=st.integers(0, 10_000))
def test_split_is_a_seeded_stratified_partition(sizes, seed):
    samples = _samples(sizes)
    parts = stratified_split(samples, [0.7, 0.2, 0.1], seed)
    flat = [s for part in parts for s in part]
    assert sorted(flat) == sorted(samples), "every sample in exactly one part"
    assert {label for _, label in parts[0]} == set(range(len(sizes))), "every class trains"
    for k, n in enumerate(sizes):
        train = sum(1 for _, label in parts[0] if label == k)
        assert abs(train - max(1, round(0.7 * n))) <= 1
    assert parts == stratified_split(samples, [0.7, 0.2, 0.1], seed), "same seed, same split"


@settings(max_examples=60, deadline=None)
@given(sizes=class_sizes, rate=st.sampled_from([0.15, 0.3, 0.5]), seed=st.integers(0, 10_000))
def test_sampling_keeps_a_stratified_share_and_every_class(sizes, rate, seed):
    samples = _samples(sizes)
    kept = subsample(samples, rate, seed)
    assert set(kept) <= set(samples) and kept == [s for s in samples if s in set(kept)]
    counts = Counter(label for _, label in kept)
    for k, n in enumerate(sizes):
        assert 1 <= counts[k] <= max(1, round(rate * n) + 1)
    assert subsample(samples, 1.0, seed) == samples
