"""Fine-tuning on partitions: strategies, freezing, the activation cache, resuming, bad data."""

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

from tests.image_data import make_image_folder
from trainers.cli import cli
from trainers.jobs.results import load_results
from trainers.session import prepare, run
from trainers.settings.config import TrainConfig, resolve_config

MODEL = "tests/toy_models.py:tiny_resnet"
SMALL = {"model": MODEL, "input_size": [3, 24, 24], "epochs": 2, "batch_size": 8}


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return make_image_folder(tmp_path_factory.mktemp("images"), classes=3, per_class=12, size=24)


def config(images, out, **changes) -> TrainConfig:
    return TrainConfig(**{**SMALL, "data": str(images), "out": str(out), **changes})


@pytest.mark.parametrize(
    ("strategy", "extra", "names"),
    [
        ("head", {}, ["head"]),
        ("full", {}, ["full"]),
        ("block", {"block": 2, "schedule": "cosine", "patience": 1}, ["block:2"]),
        ("quartile", {"quartile": 4}, ["quartile:4"]),
        ("layers", {"names": ["unit2.conv1", "unit2.bn1"]}, ["layers"]),
        ("sweep", {}, ["block:0", "block:1", "block:2", "block:3", "head", "full"]),
    ],
)
def test_every_strategy_end_to_end(images, tmp_path, strategy, extra, names):
    results = run(config(images, tmp_path / "run", strategy=strategy, **extra))
    assert [r.name for r in results.jobs] == names
    for r in results.jobs:
        assert 0 <= r.test_acc <= 1 and r.trainable_params > 0
        stem = r.name.replace(":", "-")
        assert (tmp_path / "run" / "checkpoints" / f"{stem}.safetensors").exists()
        assert (tmp_path / "run" / "metrics" / f"{stem}.jsonl").read_text().count("\n") == 2
    assert load_results(tmp_path / "run") == results, "results.json holds what run returned"
    if strategy == "sweep":
        assert results.sweep is not None and results.best_block is not None
        assert 0 <= results.best_block.index < 4
        assert set(results.sweep.quartiles) == {"1", "2", "3", "4"}
        assert set(results.sweep.baselines) == {"head", "full"}
    trainable = {r.name: r.trainable_params for r in results.jobs}
    if strategy == "sweep":
        assert trainable["head"] < trainable["block:2"] < trainable["full"]


def test_frozen_parameters_and_bn_statistics_stay_bit_identical(images, tmp_path):
    ready = prepare(config(images, tmp_path / "run", strategy="block", block=2, epochs=3))
    trunk = ready.runner.model.trunk
    before = {k: v.clone() for k, v in trunk.state_dict().items()}
    ready.runner.run(ready.jobs[0])
    after = trunk.state_dict()
    tuned = set(ready.partition.blocks[2].params)
    tuned_modules = {p.rpartition(".")[0] for p in tuned}
    for name, value in before.items():
        if name.rpartition(".")[0] in tuned_modules:
            continue
        assert torch.equal(value, after[name]), f"{name} changed"
    assert any(not torch.equal(before[p], after[p]) for p in tuned), "the tuned block trained"
    bn_stats = [
        n for n in before if n.endswith("running_mean") and n.rpartition(".")[0] in tuned_modules
    ]
    assert bn_stats and any(not torch.equal(before[n], after[n]) for n in bn_stats), (
        "the tuned block's BN trains with batch statistics by default"
    )
    from safetensors.torch import load_file

    saved = load_file(str(ready.folder.checkpoint("block:2")))
    assert {f"trunk.{n}" for n in bn_stats} <= set(saved), (
        "the checkpoint keeps the tuned BN statistics"
    )
    assert {f"trunk.{p}" for p in tuned} <= set(saved) and any(k.startswith("head.") for k in saved)


@pytest.mark.parametrize(("dtype", "atol"), [("float32", 1e-5), ("float16", 2e-2)])
def test_cached_activations_give_the_uncached_logits(images, tmp_path, dtype, atol):
    ready = prepare(config(images, tmp_path / "run", strategy="block", block=2, cache_dtype=dtype))
    runner, model = ready.runner, ready.runner.model
    model.eval()
    inputs = runner.inputs.plan(level=2)
    assert inputs.stores is not None and inputs.stores["train"].kind == "memory"
    index = torch.arange(len(runner.data.labels["train"]))
    with torch.no_grad():
        cached = model.classify(inputs.suffix(runner.inputs.batch("train", index, inputs)))
        direct = model(runner.preprocess(runner.data.images["train"][index]))
    assert torch.allclose(cached, direct, atol=atol)


def test_cache_falls_back_to_disk_then_to_no_cache(images, tmp_path):
    disk = run(config(images, tmp_path / "disk", strategy="block", block=1, cache_memory_gb=0.0))
    assert disk.jobs[0].cache == ("disk",)
    none = run(
        config(
            images,
            tmp_path / "none",
            strategy="block",
            block=1,
            cache_memory_gb=0.0,
            cache_disk_gb=0.0,
        )
    )
    assert none.jobs[0].cache == ()


def test_a_job_is_a_pure_function_of_settings_and_job(images, tmp_path):
    alone = run(config(images, tmp_path / "alone", strategy="block", block=3))
    swept = run(config(images, tmp_path / "sweep", strategy="sweep"))
    same = swept.job("block:3")
    assert same is not None
    for key in ("val_acc", "test_acc", "best_epoch", "trainable_params"):
        assert getattr(alone.jobs[0], key) == getattr(same, key)


def test_config_file_then_flags(tmp_path, images):
    file = tmp_path / "c.toml"
    file.write_text(f'model = "{MODEL}"\ndata = "{images}"\nepochs = 7\nlr = 0.01\n')
    resolved = resolve_config(file, {"epochs": 3})
    assert (resolved.epochs, resolved.lr, resolved.model) == (3, 0.01, MODEL)
    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text("epochs: 5\nhead: linear\n")
    assert resolve_config(yaml_file, {}).head == "linear"


def test_the_saved_config_repeats_the_run(images, tmp_path):
    first = run(config(images, tmp_path / "a", strategy="block", block=1))
    again = resolve_config(tmp_path / "a" / "config.toml", {"out": str(tmp_path / "b")})
    second = run(again)
    assert first.jobs[0].test_acc == second.jobs[0].test_acc
    assert (tmp_path / "a" / "split.json").read_text().count("class_") > 0


def test_resume_after_kill_redoes_nothing_finished(images, tmp_path):
    out = tmp_path / "run"
    args = [sys.executable, "-m", "trainers.cli", "sweep", "--model", MODEL, "--data", str(images),
            "--out", str(out), "--input-size", "3,24,24", "--epochs", "8", "--batch-size", "4"]  # fmt: skip
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and len(list((out / "results").glob("*.json"))) < 2:
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    finished = {p.name: p.read_text() for p in (out / "results").glob("*.json")}
    assert 2 <= len(finished) < 6, "killed midway"
    for text in finished.values():
        json.loads(text)  # none corrupt
    result = CliRunner().invoke(cli, [*args[3:], "--resume"])
    assert result.exit_code == 0, result.output
    for name, text in finished.items():
        assert (out / "results" / name).read_text() == text, f"{name} was redone"
    doc = json.loads((out / "results.json").read_text())
    assert len(doc["strategies"]) == 6 and "best_block" in doc
    assert not list(out.rglob(".*.tmp"))


def test_a_finished_run_folder_needs_resume(images, tmp_path):
    run(config(images, tmp_path / "run", strategy="head"))
    result = CliRunner().invoke(cli, ["run", "--strategy", "head", "--model", MODEL, "--data", str(images),
                                      "--out", str(tmp_path / "run"), "--input-size", "3,24,24"])  # fmt: skip
    assert result.exit_code == 2 and "--resume" in result.stderr


def _bad(tmp_path, case):
    if not case:
        return ""
    root = tmp_path / case
    if case == "missing":
        return root
    if case == "no-images":
        (root / "a").mkdir(parents=True)
        (root / "a" / "notes.txt").write_text("x")
        return root
    make_image_folder(root, classes=1 if case == "one-class" else 2, per_class=4, size=8)
    if case == "empty-class":
        (root / "class_9").mkdir()
    return root


@pytest.mark.parametrize(
    ("case", "text"),
    [
        ("", "no data given"),
        ("missing", "no such data folder"),
        ("no-images", "has no images"),
        ("one-class", "single class"),
        ("empty-class", "'class_9'"),
    ],
)
def test_bad_data_is_one_line(tmp_path, case, text):
    data = _bad(tmp_path, case)
    result = CliRunner().invoke(cli, ["run", "--strategy", "head", "--model", MODEL, "--data", str(data),
                                      "--out", str(tmp_path / "out"), "--input-size", "3,24,24"])  # fmt: skip
    assert result.exit_code == 2, result.output
    assert text in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_unreadable_images_are_skipped_and_listed_or_fail_with_strict(tmp_path):
    data = make_image_folder(tmp_path / "d", classes=2, per_class=10, size=8)
    (data / "class_0" / "broken.png").write_bytes(b"not a png")
    results = run(
        TrainConfig(**{**SMALL, "data": str(data), "out": str(tmp_path / "a"), "strategy": "head"})
    )
    assert any("broken.png" in p for p in results.skipped_images)
    strict = CliRunner().invoke(cli, ["run", "--strategy", "head", "--model", MODEL, "--data", str(data), "--strict",
                                      "--out", str(tmp_path / "b"), "--input-size", "3,24,24"])  # fmt: skip
    assert strict.exit_code == 2 and "cannot read image" in strict.stderr


def test_weights_file_is_checked_against_the_partition(images, tmp_path):
    from safetensors.torch import save_file

    from tests.toy_models import tiny_resnet

    good = tmp_path / "good.safetensors"
    save_file({k: v.contiguous() for k, v in tiny_resnet().state_dict().items()}, str(good))
    results = run(config(images, tmp_path / "ok", strategy="head", weights=str(good)))
    assert results.jobs[0].name == "head"
    bad = tmp_path / "bad.pth"
    torch.save({"fc.weight": torch.zeros(4, 32), "extra.weight": torch.zeros(1)}, bad)
    result = CliRunner().invoke(cli, ["run", "--strategy", "head", "--model", MODEL, "--data", str(images),
                                      "--weights", str(bad), "--out", str(tmp_path / "x"), "--input-size", "3,24,24"])  # fmt: skip
    assert result.exit_code == 2 and "missing" in result.stderr and "extra.weight" in result.stderr


def test_a_foreign_checkpoint_is_ported_and_said_so(images, tmp_path):
    """Another implementation's names (here: renamed, registration order) are ported by
    graph structure; the fine-tuned trunk starts from exactly those tensors."""
    from tests.toy_models import tiny_resnet

    torch.manual_seed(3)
    source = tiny_resnet()
    foreign = {
        k if k.endswith("num_batches_tracked") else f"backbone_{i}": v
        for i, (k, v) in enumerate(source.state_dict().items())
    }
    path = tmp_path / "foreign.pth"
    torch.save({"state_dict": foreign}, path)
    ready = prepare(config(images, tmp_path / "run", strategy="head", weights=str(path)))
    assert "ported from another layout" in ready.weights_note and "backbone_0" in ready.weights_note
    trunk = ready.runner.model.trunk.state_dict()
    assert all(torch.equal(trunk[k], v) for k, v in source.state_dict().items() if k in trunk)
    result = CliRunner().invoke(cli, ["run", "--strategy", "head", "--model", MODEL, "--data", str(images),
                                      "--weights", str(path), "--out", str(tmp_path / "cli"), "--input-size", "3,24,24"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "ported from another layout" in result.output
    assert "ported" in load_results(tmp_path / "cli").weights_note


def test_report_renders_plots_for_several_runs(images, tmp_path):
    for seed in (0, 1):
        run(config(images, tmp_path / f"r{seed}", strategy="sweep", epochs=1, seed=seed))
    result = CliRunner().invoke(
        cli, ["report", str(tmp_path / "r0"), str(tmp_path / "r1"), "-o", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    assert "B_opt" in result.output
    for path in (
        tmp_path / "r0" / "blocks.png",
        tmp_path / "r0" / "quartiles.png",
        tmp_path / "quartiles.png",
    ):
        assert path.read_bytes().startswith(b"\x89PNG")


def test_model_args_reach_the_model_and_the_saved_config(images, tmp_path):
    result = CliRunner().invoke(cli, ["run", "--strategy", "head", "--model", "vit_tiny_patch16_224", "--no-pretrained",
                                      "--model-arg", "img_size=24", "--model-arg", "depth=2", "--data", str(images),
                                      "--input-size", "3,24,24", "--epochs", "1", "--out", str(tmp_path / "vit")])  # fmt: skip
    assert result.exit_code == 0, result.output
    saved = resolve_config(tmp_path / "vit" / "config.toml", {})
    assert saved.model_args == {"img_size": 24, "depth": 2}
    assert json.loads((tmp_path / "vit" / "partition.json").read_text())["settings"][
        "model_args"
    ] == {"depth": 2, "img_size": 24}


@pytest.mark.skipif(sys.platform == "darwin", reason="MPS may be there")
def test_an_unavailable_device_is_one_line(images, tmp_path):
    result = CliRunner().invoke(cli, ["run", "--strategy", "head", "--model", MODEL, "--data", str(images),
                                      "--device", "mps", "--out", str(tmp_path / "x"), "--input-size", "3,24,24"])  # fmt: skip
    assert result.exit_code == 2 and "not available" in result.stderr


def test_recomputed_bn_statistics_change_the_evaluation_not_the_training(images, tmp_path):
    """Recalibration draws no random numbers and training never reads running
    statistics: both settings train the same weights, epoch for epoch (issue 25)."""
    losses, saved = {}, {}
    for mode in ("running", "recompute"):
        run(config(images, tmp_path / mode, strategy="full", epochs=3, eval_bn=mode))
        lines = (tmp_path / mode / "metrics" / "full.jsonl").read_text().splitlines()
        losses[mode] = [json.loads(line)["train_loss"] for line in lines]
        from safetensors.torch import load_file

        saved[mode] = load_file(str(tmp_path / mode / "checkpoints" / "full.safetensors"))
    assert losses["running"] == losses["recompute"]
    means = [k for k in saved["running"] if k.endswith("running_mean")]
    assert means and any(
        not torch.equal(saved["running"][k], saved["recompute"][k]) for k in means
    ), "the selected epoch's BatchNorm statistics are the recomputed ones"


CELLS = "tests/toy_models.py:two_input_cells"


def test_two_tensors_cached_give_the_uncached_logits_and_the_same_training(images, tmp_path):
    """Between NASNet-style cells two tensors cross: both are cached, and training on
    them is training on the images."""
    base = {"model": CELLS, "strategy": "block", "block": 3}
    ready = prepare(config(images, tmp_path / "run", **base))
    runner, model = ready.runner, ready.runner.model
    assert len(ready.partition.blocks[3].inputs) == 2
    model.eval()
    inputs = runner.inputs.plan(level=3)
    assert inputs.stores is not None and len(inputs.stores["train"].data) == 2
    index = torch.arange(len(runner.data.labels["train"]))
    with torch.no_grad():
        cached = model.classify(inputs.suffix(runner.inputs.batch("train", index, inputs)))
        direct = model(runner.preprocess(runner.data.images["train"][index]))
    assert torch.allclose(cached, direct, atol=1e-5)
    on = run(config(images, tmp_path / "on", cache_dtype="float32", **base)).jobs[0]
    off = run(config(images, tmp_path / "off", cache="off", **base)).jobs[0]
    assert on.cache == ("memory",) and off.cache == ()
    assert on.val_loss == pytest.approx(off.val_loss, abs=1e-4)


def test_a_sweep_over_multi_tensor_blocks_trains_the_same_with_the_cache_on_and_off(
    images, tmp_path
):
    """A plain multi-scale classifier (issue 35): up to four tensors cross into a block,
    every one of them is cached, and every block's job trains as on the images."""
    base = {"model": "tests/toy_models.py:plain_multi_scale", "strategy": "sweep", "epochs": 1}
    on = run(config(images, tmp_path / "on", cache_dtype="float32", **base))
    off = run(config(images, tmp_path / "off", cache="off", **base))
    blocks = [r for r in on.jobs if r.name.startswith("block:")]
    assert len(blocks) == 8 and all(r.cache == ("memory",) for r in blocks[1:])
    assert all(r.cache == () for r in off.jobs)
    assert [r.name for r in on.jobs] == [r.name for r in off.jobs]
    for cached, direct in zip(on.jobs, off.jobs, strict=True):
        assert cached.val_loss == pytest.approx(direct.val_loss, abs=1e-4), cached.name


#: a 1-epoch RL-Tune acts from its first epoch (a warm-up would cover it all, and is refused)
RLTUNE_BLOCKS = {
    "strategy": "rltune",
    "granularity": "block",
    "episodes": 1,
    "epochs": 1,
    "warmup_epochs": 0,
}


@pytest.mark.parametrize(
    "extra",
    [{"strategy": "sweep", "select": "halving"}, RLTUNE_BLOCKS],
    ids=["halving-sweep", "rltune-blocks"],
)
def test_selection_and_rltune_run_on_cells(images, tmp_path, extra):
    results = run(config(images, tmp_path / "run", model=CELLS, **extra))
    assert results.jobs and all(0 <= r.test_acc <= 1 for r in results.jobs)


def test_a_job_runs_on_its_own_thread_count_whatever_the_process_uses(images, tmp_path):
    """Thread counts change the order of float sums; a job always runs on
    --threads-per-job threads, so the process's count does not change its results."""
    rows = []
    for threads in (1, 2):
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            result = run(
                config(images, tmp_path / f"t{threads}", strategy="full", input_size=[3, 64, 64])
            )
        finally:
            torch.set_num_threads(before)
        rows.append([(j.val_acc, j.val_loss, j.test_acc, j.steps) for j in result.jobs])
    assert rows[0] == rows[1]


def test_the_partition_settings_reach_the_trainer_and_a_saved_one_must_match(images, tmp_path):
    """--max-crossing, --max-blocks and --delimiters cut the partition a run makes; a
    saved partition cut otherwise is refused in one line naming both values."""
    from graphblocks import PartitionError

    made = prepare(config(images, tmp_path / "a", max_crossing=1, max_blocks=2))
    assert made.partition.settings["max_crossing"] == 1 and made.partition.num_blocks <= 2
    saved = tmp_path / "a" / "partition.json"
    same = prepare(config(images, tmp_path / "b", partition=str(saved), max_crossing=1))
    assert same.partition.num_blocks == made.partition.num_blocks
    for change, message in (
        ({"max_crossing": 4}, "made with max_crossing = 1, not 4; drop --max-crossing"),
        ({"max_blocks": 3}, "made with max_blocks = 2, not 3"),
        ({"delimiters": "pool"}, r"made with delimiters = \[.*\], not \['pool'\]"),
    ):
        with pytest.raises(PartitionError, match=message):
            prepare(config(images, tmp_path / "c", partition=str(saved), **change))
