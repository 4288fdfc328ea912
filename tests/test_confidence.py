"""B_opt's confidence: the margin over the runner-up and the bootstrap over validation images."""

from __future__ import annotations

import random

import pytest

from trainers.jobs.confidence import COIN_FLIP, choice_confidence, hits_string
from trainers.jobs.job import JobResult
from trainers.jobs.results import best_block
from trainers.report.console import confidence_line


def _hits(rate: float, n: int, seed: int) -> str:
    rng = random.Random(seed)
    return hits_string([rng.random() < rate for _ in range(n)])


def _flip(hits: str, where: int) -> str:
    return hits[:where] + ("0" if hits[where] == "1" else "1") + hits[where + 1 :]


def test_a_clear_lead_stands_and_identical_predictions_are_a_coin_flip():
    strong, weak = _hits(0.95, 160, 0), _hits(0.6, 160, 1)
    clear = choice_confidence([4, 2], [strong, weak])
    assert clear is not None and clear.stands > 0.99 and not clear.coin_flip
    assert clear.margin_images == strong.count("1") - weak.count("1") and clear.images == 160
    same = choice_confidence([4, 2], [strong, strong])
    assert same is not None and same.stands == 0.5 and same.margin_images == 0 and same.coin_flip
    three = choice_confidence([1, 2, 3], [strong] * 3)
    assert three is not None and three.stands == pytest.approx(1 / 3, abs=1e-3)


def test_one_image_apart_is_weaker_than_ten_and_the_draw_is_reproducible():
    base = _hits(0.5, 160, 2)
    zeros = [i for i, c in enumerate(base) if c == "0"]
    one = choice_confidence([0, 1], [_flip(base, zeros[0]), base])
    ten_better = base
    for i in zeros[:10]:
        ten_better = _flip(ten_better, i)
    ten = choice_confidence([0, 1], [ten_better, base])
    assert one is not None and ten is not None
    assert one.margin_images == 1 and ten.margin_images == 10
    assert 0.5 < one.stands < ten.stands <= 1.0
    assert choice_confidence([0, 1], [_flip(base, zeros[0]), base]) == one


def test_no_confidence_without_two_candidates_with_hits_of_one_length():
    assert choice_confidence([3], ["1010"]) is None
    assert choice_confidence([3, 4], ["1010", "10"]) is None
    assert choice_confidence([3, 4], ["1010", ""]) is None


def test_best_block_of_a_sweep_carries_the_bootstrap_of_its_choice():
    def job(block: int, acc: float, hits: str | None) -> JobResult:
        return JobResult(name=f"block:{block}", val_acc=acc, test_acc=acc, val_loss=0.1,
                         val_hits=hits, trainable_params=1, seconds=0.0, train_seconds=0.0,
                         steps=1)  # fmt: skip

    a, b = _hits(0.9, 150, 5), _hits(0.7, 150, 6)
    acc = {h: h.count("1") / 150 for h in (a, b)}
    best = best_block([job(0, acc[b], b), job(1, acc[a], a)])
    assert best is not None and best.index == 1 and best.confidence is not None
    assert best.confidence.runner_up == 0 and best.confidence.stands > 0.99
    old = best_block([job(0, acc[b], None), job(1, acc[a], None)])
    assert old is not None and old.confidence is None, "files written before hits were kept"


def test_the_console_says_plainly_when_the_choice_is_a_coin_flip():
    strong = _hits(0.9, 150, 7)
    flip = choice_confidence([3, 5], [strong, strong])
    assert flip is not None and flip.stands < COIN_FLIP
    line = confidence_line(3, flip)
    assert "coin flip" in line and "block 5" in line and "the loss decided" in line
    firm = choice_confidence([3, 5], [strong, _hits(0.5, 150, 8)])
    assert firm is not None and "coin flip" not in confidence_line(3, firm)
