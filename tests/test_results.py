"""results.json and job names: one format, validated on write and read, clear errors."""

from __future__ import annotations

import json
import math

import pytest
from click.testing import CliRunner

from trainers.cli import cli
from trainers.jobs.job import JOB_KINDS, JobResult, RLTuneOutcome, job_name, parse_job_name
from trainers.jobs.results import (
    ResultsError,
    RunResults,
    best_block,
    load_results,
    read_job_result,
    write_job_result,
)
from trainers.settings.config import ConfigError


def result(name: str, val: float, test: float = 0.5, **extra: object) -> JobResult:
    fields: dict[str, object] = {"best_epoch": 1, "trainable_params": 10, "seconds": 1.0,
                                 "train_seconds": 0.5, "steps": 4, **extra}  # fmt: skip
    return JobResult(name=name, val_acc=val, test_acc=test, **fields)  # type: ignore[arg-type]


def document(*jobs: JobResult) -> RunResults:
    return RunResults(model="m", strategy="sweep", num_blocks=4, classes=("a", "b"),
                      split_sizes={"train": 8, "val": 2, "test": 2}, jobs=jobs)  # fmt: skip


@pytest.mark.parametrize(("kind", "index"), [("block", 0), ("block", 17), ("quartile", 4), ("head", None),
                                             ("full", None), ("layers", None), ("rltune", None), ("uniform", None)])  # fmt: skip
def test_job_names_are_formatted_and_parsed_in_one_place(kind, index):
    assert parse_job_name(job_name(kind, index)) == (kind, index)
    assert kind in JOB_KINDS


@pytest.mark.parametrize("bad", ["block", "block:x", "head:1", "blocks:1", ""])
def test_a_bad_job_name_is_a_one_line_error(bad):
    with pytest.raises(ConfigError, match="bad job name"):
        parse_job_name(bad)


def test_b_opt_is_the_best_validation_block_and_the_earliest_on_a_tie():
    jobs = [
        result("block:0", 0.5),
        result("block:1", 0.7, 0.1),
        result("block:2", 0.7),
        result("full", 0.9),
    ]
    chosen = best_block(jobs)
    assert chosen is not None and (chosen.index, chosen.test_acc) == (1, 0.1)
    assert best_block([result("head", 0.9)]) is None


def test_results_round_trip_through_json_with_nan_and_rltune_fields(tmp_path):
    outcome = RLTuneOutcome(last_target_val_acc=0.7, units=("a", "head"), granularity="layer")
    rl = result("rltune", 0.6, float("nan"), rltune=outcome)
    path = tmp_path / "results.json"
    document(result("block:0", 0.5), rl).save(path)
    again = load_results(tmp_path)
    assert again.jobs[0] == result("block:0", 0.5)
    assert math.isnan(again.jobs[1].test_acc) and again.jobs[1].rltune == outcome
    assert "best_epoch" in json.loads(path.read_text())["strategies"][1]


def test_an_invalid_document_is_refused_before_it_is_written(tmp_path):
    bad = document(result("block:0", 0.5, trainable_params=-1))
    with pytest.raises(ResultsError, match="trainable_params"):
        bad.save(tmp_path / "results.json")
    assert not (tmp_path / "results.json").exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "no readable results"),
        ('{"schema_version": 2, "model": "m"}', "this file has schema_version 2"),
        ('{"model": "m", "strategy": "sweep"}', "invalid results at (top level)"),
    ],
)
def test_a_bad_results_file_is_a_one_line_error(tmp_path, content, message):
    (tmp_path / "results.json").write_text(content)
    with pytest.raises(ResultsError, match=r"invalid results|no readable") as info:
        load_results(tmp_path)
    assert message in str(info.value) and "\n" not in str(info.value)
    report = CliRunner().invoke(cli, ["report", str(tmp_path)])
    assert report.exit_code == 2 and len(report.stderr.strip().splitlines()) == 1


def test_a_job_result_file_is_checked_on_resume(tmp_path):
    path = tmp_path / "block-0.json"
    write_job_result(path, result("block:0", 0.5))
    assert read_job_result(path) == result("block:0", 0.5)
    path.write_text(json.dumps({**result("block:0", 0.5).to_dict(), "val_acc": "high"}))
    with pytest.raises(ResultsError, match="delete it to rerun that job"):
        read_job_result(path)
