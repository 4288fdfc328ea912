"""Hugging Face models end to end (issue 27): hf: sources, fine-tuning transformers' image
classifiers, porting between Hugging Face and timm, and the Hub offline.

Every model is built from a small config and saved with ``save_pretrained`` into the
test's temp folder; nothing is downloaded. Tests that need the Hub to be unreachable
point ``HF_ENDPOINT`` at a closed port on the loopback interface, so no request leaves
the machine.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import graphblocks
from graphblocks.cli import cli as graphblocks_cli
from tests.image_data import make_image_folder
from trainers.session import run
from trainers.settings import TrainConfig

transformers = pytest.importorskip("transformers")

#: a Hub endpoint that refuses at once: nothing listens on the discard port
UNREACHABLE = "http://127.0.0.1:9"


def tiny_resnet_config(**changes: object) -> object:
    return transformers.ResNetConfig(
        embedding_size=8,
        hidden_sizes=[8, 16, 24, 32],
        depths=[1, 1, 1, 1],
        layer_type="basic",
        num_labels=3,
        **changes,
    )


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small transformers ResNet, saved with save_pretrained."""
    folder = tmp_path_factory.mktemp("hf") / "tiny-resnet"
    torch.manual_seed(0)
    transformers.ResNetForImageClassification(tiny_resnet_config()).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_image_folder(tmp_path_factory.mktemp("hf-images"), classes=3, per_class=10)


def cli_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of a graphblocks process whose Hub is unreachable and whose
    Hugging Face cache is the test's own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    return {**env, "HF_ENDPOINT": UNREACHABLE, "HF_HOME": str(tmp_path / "hf-home"), **extra}


def graphblocks_process(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "graphblocks.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)


# ---- hf: sources -----------------------------------------------------------------------------
def test_a_saved_folder_partitions_from_its_config_on_the_meta_device(tiny: Path) -> None:
    partition = graphblocks.analyze(f"hf:{tiny}", input_size=(3, 32, 32))
    assert partition.model.source == "hf" and partition.model.name == f"hf:{tiny}"
    assert partition.num_blocks >= 4
    assert partition.head.layers == ["classifier.1"]
    assert all(p.startswith("resnet.") for b in partition.blocks for p in b.params)


def test_the_config_gives_the_input_size(tmp_path: Path) -> None:
    config = transformers.ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                    intermediate_size=64, image_size=48, patch_size=16)  # fmt: skip
    transformers.ViTForImageClassification(config).save_pretrained(tmp_path / "vit")
    partition = graphblocks.analyze(f"hf:{tmp_path / 'vit'}")
    assert partition.model.input_size == [3, 48, 48]


def test_a_folder_without_a_config_is_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(graphblocks_cli, ["inspect", f"hf:{tmp_path}"])
    assert result.exit_code == 2
    assert "holds no config.json" in result.stderr and "Traceback" not in result.stderr


def test_an_unreachable_hub_is_one_line_within_seconds(tmp_path: Path) -> None:
    began = time.perf_counter()
    result = graphblocks_process(["inspect", "hf:org/model"], cli_env(tmp_path))
    seconds = time.perf_counter() - began
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "the Hub cannot be reached" in lines[0], result.stderr
    assert "hf:PATH" in lines[0] and seconds < 30  # start-up included; the probe is 3 s at most


def test_hf_hub_offline_is_honoured_and_named(tmp_path: Path) -> None:
    result = graphblocks_process(["inspect", "hf:org/model"], cli_env(tmp_path, HF_HUB_OFFLINE="1"))
    assert result.returncode == 2 and "HF_HUB_OFFLINE is set" in result.stderr


def put_in_hub_cache(home: Path, repo: str, folder: Path) -> None:
    """Lay ``folder``'s files out as the Hub client caches ``repo`` at revision main."""
    revision = "0" * 40
    root = home / "hub" / f"models--{repo.replace('/', '--')}"
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text(revision)
    snapshot = root / "snapshots" / revision
    snapshot.mkdir(parents=True)
    for file in folder.iterdir():
        (snapshot / file.name).write_bytes(file.read_bytes())


def test_a_model_in_the_local_cache_is_used_as_it_is_offline(tiny: Path, tmp_path: Path) -> None:
    put_in_hub_cache(tmp_path / "hf-home", "org/tiny-resnet", tiny)
    result = graphblocks_process(
        ["inspect", "hf:org/tiny-resnet", "--input-size", "3,32,32", "--json"], cli_env(tmp_path)
    )
    assert result.returncode == 0, result.stderr
    assert '"name": "hf:org/tiny-resnet"' in result.stdout


def test_timm_pretrained_weights_offline_are_one_line_naming_weights(
    images: Path, tmp_path: Path
) -> None:
    command = [sys.executable, "-m", "trainers.cli", "run", "--strategy", "head",
               "--model", "resnet18", "--data", str(images), "--out", str(tmp_path / "run"),
               "--input-size", "3,24,24"]  # fmt: skip
    began = time.perf_counter()
    result = subprocess.run(
        command, capture_output=True, text=True, env=cli_env(tmp_path), timeout=120
    )
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert "pretrained weights for 'resnet18'" in last and "--weights FILE" in last
    assert "Traceback" not in result.stderr and time.perf_counter() - began < 40


# ---- fine-tuning transformers' classifiers ---------------------------------------------------
def settings(tiny: Path, images: Path, out: Path, **changes: object) -> TrainConfig:
    base = {"model": f"hf:{tiny}", "data": str(images), "out": str(out),
            "input_size": [3, 24, 24], "epochs": 2, "batch_size": 8}  # fmt: skip
    return TrainConfig(**{**base, **changes})


def test_a_block_job_trains_a_transformers_classifier(
    tiny: Path, images: Path, tmp_path: Path
) -> None:
    results = run(settings(tiny, images, tmp_path / "run", strategy="block", block=1))
    [job] = results.jobs
    assert job.name == "block:1" and 0 <= job.test_acc <= 1
    assert job.trainable_params > 0


def test_a_halving_sweep_and_rltune_run_on_it(tiny: Path, images: Path, tmp_path: Path) -> None:
    sweep = run(settings(tiny, images, tmp_path / "sweep", select="halving", epochs=3))
    assert sweep.selection is not None and sweep.best_block is not None
    assert {"head", "full"} <= {j.name for j in sweep.jobs}
    tuned = run(settings(tiny, images, tmp_path / "rl", strategy="rltune", episodes=2,
                         epochs=1, granularity="block"))  # fmt: skip
    assert [j.name for j in tuned.jobs] == ["rltune", "uniform"]
    assert tuned.jobs[0].rltune is not None and tuned.jobs[0].rltune.units


def test_a_hub_layout_checkpoint_loads_as_saved(tmp_path: Path, images: Path) -> None:
    """transformers 5 saves ViT under the Hub's older names; --weights reads them as
    from_pretrained does, so nothing needs porting."""
    config = transformers.ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                    intermediate_size=64, image_size=32, patch_size=16,
                                    num_labels=3)  # fmt: skip
    transformers.ViTForImageClassification(config).save_pretrained(tmp_path / "vit")
    results = run(TrainConfig(
        model=f"hf:{tmp_path / 'vit'}", data=str(images), out=str(tmp_path / "run"),
        strategy="head", epochs=1, pretrained=False, weights=str(tmp_path / "vit"),
    ))  # fmt: skip
    assert results.weights_note == "", "loaded under its own names, not ported"


# ---- porting between Hugging Face and timm ----------------------------------------------------
def logits(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        out = model.eval()(x)
    return out.logits if hasattr(out, "logits") else out


@pytest.mark.parametrize(
    ("hf_model", "timm_name"),
    [
        (lambda: transformers.ResNetForImageClassification(transformers.ResNetConfig(num_labels=10)), "resnet50"),
        (lambda: transformers.ConvNextForImageClassification(transformers.ConvNextConfig(num_labels=10)), "convnext_tiny"),
    ],
    ids=["resnet50", "convnext_tiny"],
)  # fmt: skip
def test_ported_weights_give_the_same_logits_both_ways(hf_model, timm_name, tmp_path):
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(0)
    hf = hf_model().eval()
    hf.save_pretrained(tmp_path / "hf")
    x = torch.randn(2, 3, 64, 64)
    spec = f"hf:{tmp_path / 'hf'}"
    to_timm = graphblocks.port_checkpoint(
        tmp_path / "hf", timm_name, source=spec, model_args={"num_classes": 10}
    )
    model = timm.create_model(timm_name, num_classes=10)
    model.load_state_dict(to_timm.state)
    assert torch.allclose(logits(model, x), logits(hf, x), atol=1e-4, rtol=0)

    torch.manual_seed(1)
    source = timm.create_model(timm_name, num_classes=10).eval()
    save_file(
        {k: v.contiguous() for k, v in source.state_dict().items()}, tmp_path / "t.safetensors"
    )
    to_hf = graphblocks.port_checkpoint(tmp_path / "t.safetensors", spec, source=timm_name)
    target = type(hf)(hf.config)
    target.load_state_dict(to_hf.state)
    assert torch.allclose(logits(target, x), logits(source, x), atol=1e-4, rtol=0)


def test_vit_qkv_is_refused_in_one_line_naming_the_split(tmp_path: Path) -> None:
    config = transformers.ViTConfig(hidden_size=192, num_hidden_layers=1, num_attention_heads=3,
                                    intermediate_size=384, image_size=32, patch_size=16)  # fmt: skip
    transformers.ViTForImageClassification(config).save_pretrained(tmp_path / "vit")
    result = CliRunner().invoke(graphblocks_cli, [
        "port-weights", str(tmp_path / "vit"), "--from", f"hf:{tmp_path / 'vit'}",
        "--to", "vit_tiny_patch16_224", "--model-arg", "img_size=32", "--model-arg", "depth=1",
        "-o", str(tmp_path / "out.safetensors"),
    ])  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "q_proj.weight" in result.stderr and "qkv.weight" in result.stderr
    assert "does not split or fuse" in result.stderr
    assert not (tmp_path / "out.safetensors").exists()


def test_the_trainer_takes_the_block_optimizer_and_unfreezes_by_epoch(tiny, tmp_path):
    """transformers' Trainer with graphblocks' optimizer (decayed rates, no decay on 1-D
    tensors) and gradual unfreezing: only the named blocks move, each in its own group."""
    from graphblocks.integrations.transformers import GradualUnfreezing, create_optimizer
    from graphblocks.optim import levels, selected_levels

    partition = graphblocks.analyze(f"hf:{tiny}")
    model = transformers.ResNetForImageClassification.from_pretrained(tiny)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "out"),
        num_train_epochs=2,
        per_device_train_batch_size=4,
        learning_rate=1e-2,
        weight_decay=0.05,
        report_to=[],
        save_strategy="no",
        logging_strategy="no",
        use_cpu=True,
        disable_tqdm=True,
    )
    everything = create_optimizer(model, args, partition, layer_decay=0.5)
    top, level_of = partition.num_blocks, levels(partition)
    groups = everything.param_groups
    name_of = {id(p): n for n, p in model.named_parameters()}
    assert sorted(name_of[id(p)] for g in groups for p in g["params"]) == sorted(name_of.values())
    for group in groups:  # each level at the head's rate halved once per level below it
        rates = {1e-2 * 0.5 ** (top - level_of[name_of[id(p)]]) for p in group["params"]}
        assert rates == {group["lr"]}
        assert (group["weight_decay"] == 0) == all(p.ndim <= 1 for p in group["params"])
    unfreezing = GradualUnfreezing(model, partition, args, train=["head"], unfreeze={1: ["Q4"]})
    optimizer = create_optimizer(model, args, partition, layer_decay=0.5)
    assert all(g["lr"] == 1e-2 for g in optimizer.param_groups), "only the head trains"
    assert {g["weight_decay"] for g in optimizer.param_groups} == {0.0, 0.05}
    first = len(optimizer.param_groups)
    data = [{"pixel_values": torch.randn(3, 32, 32), "labels": i % 3} for i in range(12)]
    trainer = transformers.Trainer(
        model=model,
        args=args,
        train_dataset=data,
        optimizers=(optimizer, None),
        callbacks=[unfreezing],
    )
    trainer.train()
    added = optimizer.param_groups[first:]
    assert {g["name"] for g in added} >= {f"block{b}" for b in partition.quartiles["4"]}
    assert {g["weight_decay"] for g in added} == {0.0, 0.05}, "the exemption holds for them"
    schedule = trainer.lr_scheduler
    assert len(schedule.base_lrs) == len(schedule.lr_lambdas) == len(optimizer.param_groups)
    assert all(g["lr"] == optimizer.param_groups[0]["lr"] for g in added), "on the schedule"
    level_of, moved = levels(partition), set()
    for name, param in model.named_parameters():
        if not torch.equal(param.detach(), before[name]):
            moved.add(level_of[name])
    assert moved == selected_levels(partition, ["Q4", "head"])
