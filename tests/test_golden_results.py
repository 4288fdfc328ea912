"""Behaviour pinned: a small sweep and an RL-Tune run give the committed results.json.

The golden files are made by fixtures/make_results_golden.py and compared by its
``differences``: every count, accuracy, hit, epoch and name exactly, the trained losses
within a tolerance measured across CPUs' kernels (bench/golden_spread.py), tight enough
that a real change of settings fails (tested below); fixtures/results/v0/ holds
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
    differences,
    run_golden,
    without_timings,
)
from trainers.jobs.results import RunResults
from trainers.settings.config import default_of


def _golden(name: str, folder: str = "") -> dict:
    return json.loads((GOLDEN_DIR / folder / f"{name}.results.json").read_text())


def _assert_matches(fresh: dict, golden: dict) -> None:
    found = differences(fresh, golden)
    assert not found, "differs from the golden run:\n" + "\n".join(found)


@pytest.mark.golden
@pytest.mark.parametrize("name", sorted(RUNS))
def test_results_match_the_committed_golden_run(tmp_path, name):
    _assert_matches(without_timings(run_golden(name, tmp_path)), _golden(name))


@pytest.mark.golden
@pytest.mark.parametrize("name", sorted(RUNS))
def test_the_running_statistics_evaluation_stays_available(tmp_path, name):
    fresh = without_timings(run_golden(name, tmp_path, **EVAL_BN_RUNNING))
    _assert_matches(fresh, _golden(name, "eval-bn-running"))


@pytest.mark.parametrize(
    "change",
    [{"lr": 1.02 * default_of("lr")}, {"epochs": RUNS["sweep"]["epochs"] + 1}],
    ids=["learning rate 2% higher", "one more epoch"],
)
def test_a_real_change_of_settings_fails_the_comparison(tmp_path, change):
    """The tolerance on trained floats is no blindfold: the smallest changes measured by
    bench/golden_spread.py are caught on the sweep alone."""
    changed = without_timings(run_golden("sweep", tmp_path, **change))
    assert differences(changed, _golden("sweep"))


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
