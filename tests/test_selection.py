"""B_opt without a full sweep: paused jobs, successive halving, the gradient-norm ranker."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from click.testing import CliRunner

from tests.test_trainers import MODEL, SMALL
from tests.test_trainers import images as images  # the module's image folder (a fixture)
from trainers.cli import cli
from trainers.jobs.results import load_results, ranked
from trainers.report.console import selection_line
from trainers.selection.halving import promoted, rung_epochs
from trainers.session import prepare, run
from trainers.settings.config import ConfigError, TrainConfig


def config(images, out, **changes) -> TrainConfig:
    return TrainConfig(**{**SMALL, "epochs": 4, "data": str(images), "out": str(out), **changes})


@pytest.mark.parametrize(
    ("full", "eta", "first", "milestones"),
    [(5, 3, 1, [1, 3, 5]), (9, 3, 1, [1, 3, 9]), (10, 2, 2, [2, 4, 8, 10]), (1, 3, 1, [1]),
     (4, 3, 5, [4])],
)  # fmt: skip
def test_rungs_are_ashas_milestones(full, eta, first, milestones):
    assert rung_epochs(full, eta, first) == milestones


def test_promotion_keeps_the_best_and_the_earlier_block_on_a_tie():
    assert promoted([0, 1, 2, 3], [0.5, 0.9, 0.9, 0.7], 2) == [1, 2]
    assert promoted([0, 1, 2, 3], [0.5, 0.9, 0.9, 0.7], 1) == [1]
    assert promoted([4, 6], [0.2, 0.2], 1) == [4]


def test_an_accuracy_tie_goes_to_the_lower_loss_and_position_comes_last():
    from trainers.jobs.results import Score, ranked

    assert ranked([0, 1, 2], [0.5, 0.5, 0.4], [0.9, 0.3, 0.1]) == [1, 0, 2]
    assert ranked([0, 1], [0.5, 0.5], [float("nan"), 2.0]) == [1, 0], "an unknown loss is last"
    assert ranked([3, 1], [0.5, 0.5], [0.2, 0.2]) == [1, 3], "position only on an exact tie"
    assert promoted([0, 1, 2, 3], [0.1, 0.1, 0.1, 0.1], 2, [0.4, 0.3, 0.2, 0.1]) == [2, 3]
    assert Score(0.5, 0.2).beats(Score(0.5, 0.3)) and not Score(0.5, 0.3).beats(Score(0.5, 0.3))
    assert Score(0.6, 9.0).beats(Score(0.5, 0.1)), "accuracy first"


def test_a_job_paused_and_continued_ends_as_one_straight_run(images, tmp_path):
    straight = prepare(config(images, tmp_path / "a", strategy="block", block=2))
    expected = straight.runner.run(straight.jobs[0])
    paused = prepare(config(images, tmp_path / "b", strategy="block", block=2))
    for until in (1, 3):
        partial = paused.runner.run(paused.jobs[0], until=until)
        assert partial.test_acc != partial.test_acc, "no test accuracy before the end"
        assert (tmp_path / "b" / "paused" / "block-2.pt").exists()
        assert not (tmp_path / "b" / "results" / "block-2.json").exists()
    result = paused.runner.run(paused.jobs[0])
    assert (result.val_acc, result.test_acc, result.best_epoch, result.steps) == (
        expected.val_acc, expected.test_acc, expected.best_epoch, expected.steps
    )  # fmt: skip
    for folder in ("metrics/block-2.jsonl", "checkpoints/block-2.safetensors"):
        assert (tmp_path / "a" / folder).read_bytes() == (tmp_path / "b" / folder).read_bytes()
    assert not (tmp_path / "b" / "paused" / "block-2.pt").exists()


def test_halving_records_its_rungs_and_ends_with_the_full_sweeps_result(images, tmp_path):
    full = run(config(images, tmp_path / "full", epochs=5))
    halving = run(
        config(images, tmp_path / "halving", epochs=5, select="halving", eta=2, min_epochs=1)
    )
    selection = halving.selection
    assert selection is not None and selection.method == "halving"
    assert [r.epochs for r in selection.rungs] == [1, 2, 5]
    assert [len(r.blocks) for r in selection.rungs] == [4, 2, 1]
    assert selection.epochs_full_sweep == 4 * 5
    assert (
        selection.epochs_run == 4 * 1 + 2 * 1 + 1 * 3 == sum(r.epochs_run for r in selection.rungs)
    )
    assert selection.seconds > 0
    best = halving.best_block
    assert best is not None and (best.index,) == selection.rungs[-1].kept
    assert [j.name for j in halving.jobs] == [f"block:{best.index}", "head", "full"]
    same = full.job(f"block:{best.index}")
    assert same is not None and (best.val_acc, best.test_acc) == (same.val_acc, same.test_acc)
    for rung in selection.rungs[:-1]:
        assert set(rung.kept) <= set(rung.blocks)
        assert len(rung.val_loss) == len(rung.blocks), "each block's loss, to break ties"
        ranks = ranked(list(rung.blocks), list(rung.val_acc), list(rung.val_loss))
        assert set(rung.kept) == set(ranks[: len(rung.kept)])
    assert (
        same.val_loss is not None and same.val_loss == halving.job(f"block:{best.index}").val_loss
    )
    assert load_results(tmp_path / "halving") == halving
    deciding = selection.rungs[-2]
    assert all(len(h) == halving.split_sizes["val"] for h in deciding.val_hits)
    assert best.confidence == deciding.confidence() and best.confidence is not None
    assert best.confidence.runner_up in deciding.blocks and best.confidence.runner_up != best.index
    full_best = full.best_block
    assert full_best is not None and full_best.confidence is not None, (
        "a full sweep's, over all blocks"
    )
    line = selection_line(selection)
    assert "successive halving (η 2; blocks × epochs 4 × 1 → 2 × 2 → 1 × 5)" in line
    assert "9 of 20 block epochs (45% of a full sweep)" in line


def test_gradnorm_ranks_every_block_and_trains_only_the_top_one(images, tmp_path):
    result = run(config(images, tmp_path / "run", select="gradnorm"))
    selection = result.selection
    assert selection is not None and selection.method == "gradnorm"
    assert selection.scores is not None and len(selection.scores) == 4
    assert all(s > 0 for s in selection.scores)
    top = max(range(4), key=lambda b: (selection.scores[b], -b))
    assert result.best_block is not None and result.best_block.index == top
    assert selection.epochs_run == 4 + 1, "the top block's epochs and one ranking pass"
    assert (
        selection.ranking_seconds is not None and 0 < selection.ranking_seconds <= selection.seconds
    )
    assert [j.name for j in result.jobs] == [f"block:{top}", "head", "full"]


def test_auto_rgn_scores_after_a_linear_probe_without_normalization_layers(images, tmp_path):
    from trainers.selection.gradnorm import gradient_scores, probe_head
    from trainers.training.modeling import BATCH_NORMS, norm_params

    ready = prepare(config(images, tmp_path / "run", select="gradnorm", gradnorm_probe_epochs=3))
    runner, trunk = ready.runner, ready.runner.model.trunk
    norms = norm_params(trunk)
    assert norms and all(
        isinstance(trunk.get_submodule(n.rpartition(".")[0]), BATCH_NORMS) for n in norms
    )
    assert not any(n.endswith("conv1.weight") for n in norms)
    probe_head(runner, ready, 0)  # the head as the probe starts it
    before = runner.score("train").loss
    probe_head(runner, ready, 3)
    assert runner.score("train").loss < before, "the probe fits the head"
    source = {k: v.clone() for k, v in trunk.state_dict().items()}
    scores = gradient_scores(ready)
    assert len(scores) == ready.partition.num_blocks and all(s > 0 for s in scores)
    after = trunk.state_dict()
    assert all(torch.equal(source[k], after[k]) for k in source), "the trunk is reset after"


def test_the_first_rung_is_one_epoch_from_transferred_weights_three_from_random_init(
    images, tmp_path
):
    from safetensors.torch import save_file

    random_init = prepare(config(images, tmp_path / "random", select="halving"))
    assert random_init.first_rung == 3
    assert (tmp_path / "random" / "config.toml").read_text().count("min_epochs = 3") == 1
    from tests.toy_models import tiny_resnet

    save_file(dict(tiny_resnet().state_dict()), tmp_path / "w.safetensors")
    weights = str(tmp_path / "w.safetensors")
    transferred = prepare(config(images, tmp_path / "weights", select="halving", weights=weights))
    assert transferred.first_rung == 1
    chosen = prepare(config(images, tmp_path / "chosen", select="halving", min_epochs=2))
    assert chosen.first_rung == 2


def test_selection_needs_a_sweep(images, tmp_path):
    with pytest.raises(ConfigError, match="blocks of a sweep"):
        config(images, tmp_path, strategy="head", select="halving")


def _halving_args(images, out) -> list[str]:
    return ["sweep", "--select", "halving", "--model", MODEL, "--data", str(images),
            "--out", str(out), "--input-size", "3,24,24", "--epochs", "9", "--batch-size", "4",
            "--eta", "2"]  # fmt: skip


def test_halving_resumes_after_kill_9(images, tmp_path):
    out = tmp_path / "run"
    command = [sys.executable, "-m", "trainers.cli", *_halving_args(images, out)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    record = out / "selection.json"
    deadline = time.time() + 120
    while time.time() < deadline and (
        not record.exists() or len(json.loads(record.read_text()).get("done", {})) < 2
    ):
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    done = json.loads(record.read_text())["done"]
    assert 2 <= len(done) < 4 + 2 + 1, "killed inside the rungs"
    assert list((out / "paused").glob("*.pt")), "paused jobs left to continue"
    resumed = CliRunner().invoke(cli, [*_halving_args(images, out), "--resume"])
    assert resumed.exit_code == 0, resumed.output
    straight = CliRunner().invoke(cli, _halving_args(images, tmp_path / "straight"))
    assert straight.exit_code == 0, straight.output
    a, b = load_results(out), load_results(tmp_path / "straight")
    assert a.selection is not None and b.selection is not None
    assert a.selection.rungs == b.selection.rungs
    assert a.selection.epochs_run == b.selection.epochs_run
    assert a.best_block == b.best_block
    assert not list(out.rglob(".*.tmp"))
    kept = {f"block-{b}.pt" for b in range(4)} - {f"block-{a.best_block.index}.pt"}
    assert {p.name for p in (out / "paused").iterdir()} == kept, "eliminated blocks stay paused"


def test_a_halving_run_completes_into_the_full_sweep(images, tmp_path):
    """The eliminated blocks stay paused; a full sweep resumed in the same folder
    continues them and ends with the full sweep's results."""
    halving = run(config(images, tmp_path / "run", select="halving", eta=2))
    assert halving.selection is not None
    completed = run(config(images, tmp_path / "run", resume=True))
    straight = run(config(images, tmp_path / "straight"))
    assert [(j.name, j.val_acc, j.test_acc) for j in completed.jobs] == [
        (j.name, j.val_acc, j.test_acc) for j in straight.jobs
    ]
    assert completed.best_block == straight.best_block


def test_halving_that_would_train_every_block_fully_is_refused_naming_both_values():
    with pytest.raises(ConfigError, match="--epochs is 1"):
        TrainConfig(strategy="sweep", select="halving", epochs=1)
    with pytest.raises(ConfigError, match="--min-epochs 4 is not below --epochs 4"):
        TrainConfig(strategy="sweep", select="halving", epochs=4, min_epochs=4)
    cfg = TrainConfig(strategy="sweep", select="halving", epochs=3)
    assert [cfg.first_rung(False, b) for b in (2, 3, 4, 10)] == [1, 2, 3, 3], "auto, cut"
    assert rung_epochs(3, cfg.eta, cfg.first_rung(False, 3)) == [2, 3], "a rung cuts blocks"
