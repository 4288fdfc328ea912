"""Behaviour pinned: a small sweep and an RL-Tune run give the committed results.json.

The golden files were made by fixtures/make_results_golden.py; timings are excluded."""

from __future__ import annotations

import json

import pytest

from fixtures.make_results_golden import GOLDEN_DIR, RUNS, run_golden, without_timings


@pytest.mark.parametrize("name", sorted(RUNS))
def test_results_match_the_committed_golden_run(tmp_path, name):
    golden = json.loads((GOLDEN_DIR / f"{name}.results.json").read_text())
    fresh = without_timings(run_golden(name, tmp_path))
    assert fresh == golden
