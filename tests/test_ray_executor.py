"""The Ray executor on a local cluster: the same jobs, files and B_opt as in-process."""

from __future__ import annotations

import shutil
import sys

import pytest

from tests.image_data import make_image_folder
from trainers.execution.tasks import ProgressEvent
from trainers.jobs.results import load_results
from trainers.session import run
from trainers.settings.config import ConfigError, TrainConfig

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.xdist_group("ray")  # one local cluster per test process

MODEL = "tests/toy_models.py:tiny_resnet"
SMALL = {
    "model": MODEL,
    "input_size": [3, 24, 24],
    "epochs": 3,
    "batch_size": 8,
    "threads_per_job": 1,
}


@pytest.fixture(scope="module")
def cluster():
    """A local cluster of two CPUs. This process keeps torch's own thread count: every job
    runs on ``--threads-per-job`` threads wherever it runs, and the tests compare bit for
    bit."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("ray")
    images = make_image_folder(root / "images", classes=3, per_class=20, size=24)
    import graphblocks

    partition = graphblocks.analyze(MODEL, input_size=(3, 24, 24), max_blocks=1)
    partition.save(root / "one-block.json")
    return images, root / "one-block.json"


def config(data, out, **changes) -> TrainConfig:
    images, partition = data
    return TrainConfig(
        **{**SMALL, "model": "", "partition": str(partition), "data": str(images),
           "out": str(out), **changes}
    )  # fmt: skip


def _rows(results):
    return [(j.name, j.val_acc, j.test_acc, j.best_epoch, j.steps) for j in results.jobs]


def _epochs(events):
    """A progress callback that records each epoch event as ``(job, epoch, of)``."""

    def record(event, job, done, total):
        if event is ProgressEvent.EPOCH:
            events.append((job.name, done, total))

    return record


def test_a_three_job_sweep_on_ray_equals_in_process(cluster, data, tmp_path):
    local_epochs, remote_epochs = [], []
    local = run(config(data, tmp_path / "local"), _epochs(local_epochs))
    remote = run(config(data, tmp_path / "ray", executor="ray"), _epochs(remote_epochs))
    assert len(local_epochs) == 9, "three jobs of three epochs"
    assert sorted(remote_epochs) == sorted(local_epochs), "Ray reports every epoch too"
    assert [j.name for j in local.jobs] == ["block:0", "head", "full"]
    assert _rows(remote) == _rows(local), "the same jobs, accuracies, best epochs and steps"
    assert remote.best_block == local.best_block
    for folder in ("results", "metrics", "checkpoints"):
        names = sorted(p.name for p in (tmp_path / "local" / folder).iterdir())
        assert sorted(p.name for p in (tmp_path / "ray" / folder).iterdir()) == names
    assert load_results(tmp_path / "ray") == remote


def test_resume_continues_a_local_run_on_ray(cluster, data, tmp_path):
    local = run(config(data, tmp_path / "local"))
    shutil.copytree(tmp_path / "local", tmp_path / "mixed")
    (tmp_path / "mixed" / "results" / "full.json").unlink()
    kept = (tmp_path / "mixed" / "results" / "head.json").read_text()
    events = []
    resumed = run(
        config(data, tmp_path / "mixed", executor="ray", resume=True),
        lambda event, job, *_: events.append((event, job.name)),
    )
    assert ("skipped", "head") in events and ("done", "full") in events
    assert (tmp_path / "mixed" / "results" / "head.json").read_text() == kept
    assert _rows(resumed) == _rows(local)


def test_halving_on_ray_promotes_as_in_process(cluster, data, tmp_path):
    import graphblocks

    partition = graphblocks.analyze(MODEL, input_size=(3, 24, 24))
    partition.save(tmp_path / "all.json")
    images, _ = data
    settings = {"select": "halving", "eta": 2, "epochs": 4, "min_epochs": 1}
    local = run(config((images, tmp_path / "all.json"), tmp_path / "local", **settings))
    remote = run(
        config((images, tmp_path / "all.json"), tmp_path / "ray", executor="ray", **settings)
    )
    assert local.selection is not None and remote.selection is not None
    assert remote.selection.rungs == local.selection.rungs
    assert remote.best_block == local.best_block


def test_without_ray_the_executor_says_how_to_get_it(data, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ConfigError, match=r"graphblocks\[ray\]"):
        run(config(data, tmp_path / "run", executor="ray"))


def test_asha_on_ray_tune_records_its_rungs(cluster, data, tmp_path):
    import graphblocks

    partition = graphblocks.analyze(MODEL, input_size=(3, 24, 24))
    partition.save(tmp_path / "all.json")
    images, _ = data
    where = (images, tmp_path / "all.json")
    settings = {"eta": 2, "epochs": 4, "baselines": False, "min_epochs": 1}
    full = run(config(where, tmp_path / "full", **settings))
    asha = run(config(where, tmp_path / "asha", executor="ray", select="asha", **settings))
    selection = asha.selection
    assert selection is not None and selection.method == "asha" and selection.eta == 2
    assert [r.epochs for r in selection.rungs][:1] == [1]
    assert {r.epochs for r in selection.rungs} <= {1, 2, 4}
    assert selection.rungs[0].blocks == (0, 1, 2, 3), "every block starts"
    assert selection.epochs_run == sum(r.epochs_run for r in selection.rungs) <= 4 * 4
    best = asha.best_block
    assert best is not None and selection.rungs[-1].kept == (best.index,)
    same = full.job(f"block:{best.index}")
    assert same is not None and (best.val_acc, best.test_acc) == (same.val_acc, same.test_acc)
    assert (tmp_path / "asha" / "checkpoints" / f"block-{best.index}.safetensors").exists()
    assert not (tmp_path / "asha" / "tune").exists(), "the Tune experiment is cleaned up"
    from trainers.report.console import selection_line

    assert selection_line(selection).startswith(
        "B_opt by Ray Tune's ASHA (η 2; blocks × epochs 4 × 1"
    )


def test_asha_needs_ray(data, tmp_path):
    with pytest.raises(ConfigError, match="--executor ray"):
        run(config(data, tmp_path / "run", select="asha"))


def test_a_study_on_ray_gives_the_in_process_results(cluster, tmp_path):
    from click.testing import CliRunner

    from tests.test_study import TINY
    from trainers.cli import cli

    config = tmp_path / "tiny.toml"
    one_target = TINY.split('[[targets]]\nname = "folder"')[0]
    config.write_text(one_target.replace("seeds = [0, 1]", "seeds = [0]"))
    found = {}
    for executor in ("local", "ray"):
        out = tmp_path / executor
        args = ["study", str(config), "--out", str(out), "--docs", str(out / "study.md"),
                "--images", str(out / "img"), "--executor", executor]  # fmt: skip
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, result.output
        found[executor] = {
            str(path.parent.relative_to(out)): _rows(load_results(path.parent))
            for path in sorted((out / "runs").rglob("results.json"))
        }
    assert len(found["ray"]) == 4, "the sweep, halving, and RL-Tune at two rates"
    assert found["ray"] == found["local"]


def test_a_job_wider_than_every_node_is_refused(cluster, data, tmp_path):
    from graphblocks import GraphblocksError

    with pytest.raises(GraphblocksError, match="largest node of the cluster has 2"):
        run(config(data, tmp_path / "wide", executor="ray", threads_per_job=3))
