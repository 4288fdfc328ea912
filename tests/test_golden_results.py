"""Behaviour pinned: a small sweep and an RL-Tune run give the committed results.json.

The golden files are made by fixtures/make_results_golden.py; fixtures/results/v0/ holds
the same runs as written before the trainer redesign (issue 13), before ``schema_version``
existed; fixtures/results/eval-bn-running/ pins the same runs with ``eval_bn = "running"``,
the evaluation before issue 25. Timings are excluded from the comparison."""

from __future__ import annotations

import json

import pytest

from fixtures.make_results_golden import (
    EVAL_BN_RUNNING,
    GOLDEN_DIR,
    RUNS,
    run_golden,
    without_timings,
)
from trainers.jobs.results import RunResults


@pytest.mark.parametrize("name", sorted(RUNS))
def test_results_match_the_committed_golden_run(tmp_path, name):
    golden = json.loads((GOLDEN_DIR / f"{name}.results.json").read_text())
    fresh = without_timings(run_golden(name, tmp_path))
    assert fresh == golden


@pytest.mark.parametrize("name", sorted(RUNS))
def test_the_running_statistics_evaluation_stays_available(tmp_path, name):
    golden = json.loads((GOLDEN_DIR / "eval-bn-running" / f"{name}.results.json").read_text())
    assert without_timings(run_golden(name, tmp_path, **EVAL_BN_RUNNING)) == golden


@pytest.mark.parametrize("name", sorted(RUNS))
def test_results_written_before_the_schema_version_still_load(name):
    text = (GOLDEN_DIR / "v0" / f"{name}.results.json").read_text()
    data = json.loads(text)
    for row in data["strategies"]:  # the golden files leave timings out; real ones have them
        row.update(seconds=1.0, train_seconds=0.5)
    for row in data.get("baselines", {}).values():
        row.update(seconds=1.0, train_seconds=0.5)
    results = RunResults.from_dict(data)
    assert [r.name for r in results.jobs] == [r["name"] for r in data["strategies"]]
    again = results.to_dict()
    assert again.pop("schema_version") == 1 and again == data
