"""The zoo runner: isolation of bad models, resuming, the report, and a stratified sample."""

from __future__ import annotations

import csv

import pytest
from click.testing import CliRunner

from graphblocks.cli import cli
from graphblocks.errors import GraphblocksError, PartitionError
from graphblocks.pipeline import Settings, analyze_model
from graphblocks.validate import check_invariants
from graphblocks.zoo.models import ZooModel, list_zoo, run_model, stratified_sample
from graphblocks.zoo.pool import WorkerPool
from graphblocks.zoo.run import pending_models, run_zoo
from tests import toy_models as toys


def toy(name: str) -> ZooModel:
    return ZooModel(f"tests/toy_models.py:{name}", "python", "toy")


def test_bad_models_never_stop_the_run():
    models = [toy("sleeper"), toy("crasher"), toy("memory_hog"), toy("vgg_like")]
    rows = {
        r["model"].split(":")[1]: r for r in WorkerPool(jobs=2, timeout=20, memory_gb=4).run(models)
    }
    assert rows["sleeper"]["status"] == "timeout"
    assert rows["crasher"]["status"] == "crash" and "code 3" in rows["crasher"]["error"]
    assert rows["memory_hog"]["status"] == "error" and "allocat" in rows["memory_hog"]["error"]
    assert rows["vgg_like"]["status"] == "ok" and rows["vgg_like"]["peak_mb"] > 0


def test_report_resumes_and_never_overwrites(tmp_path):
    report = tmp_path / "zoo.csv"
    models = [toy("vgg_like"), toy("widened")]
    run_zoo(models[:1], report, jobs=1, timeout=120, memory_gb=None)
    with pytest.raises(GraphblocksError, match="--resume"):
        pending_models(models, report, resume=False)
    todo = pending_models(models, report, resume=True)
    assert [m.spec for m in todo] == [models[1].spec]
    run_zoo(todo, report, jobs=1, timeout=120, memory_gb=None)
    with report.open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["model"] for r in rows] == [m.spec for m in models] and {
        r["status"] for r in rows
    } == {"ok"}
    result = CliRunner().invoke(cli, ["zoo-report", str(report), "-o", str(tmp_path / "zoo.md")])
    assert result.exit_code == 0, result.output
    text = (tmp_path / "zoo.md").read_text()
    assert "valid partitions: **2 (100.0%)**" in text and "| toy | 2 | 2 | 2 | 0 | 0 |" in text


def test_invariant_checker_catches_a_bad_cut():
    result = analyze_model(toys.TinyResNet().eval(), Settings(input_size=(3, 16, 16)))
    names = [n for n, _ in result.model.named_parameters()]
    check_invariants(result.graph, result.partition, names)
    result.partition.blocks[1].exit = "unit1.conv1"  # inside a residual unit
    with pytest.raises(PartitionError, match="not an admissible cut"):
        check_invariants(result.graph, result.partition, names)


def test_stratified_sample_is_one_per_family_and_reproducible():
    zoo = list_zoo("all")
    sample = stratified_sample(zoo, 30)
    assert len(sample) == 30 and len({m.family for m in sample}) == 30
    assert sample == stratified_sample(zoo, 30)
    assert {m.source for m in sample} == {"timm", "torchvision"}


SAMPLE = stratified_sample(list_zoo("all"), 30)


@pytest.mark.parametrize("model", SAMPLE, ids=[m.spec for m in SAMPLE])
def test_zoo_sample(model):
    row = run_model(model)
    assert row["status"] == "ok", f"{row.get('error_class')}: {row.get('error')}"
