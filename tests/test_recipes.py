"""The practitioner's baselines: LP-FT, layer-wise rate decay, L2-SP and Auto-RGN, run as
jobs on a real small model."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from tests.test_trainers import SMALL
from tests.test_trainers import images as images  # the module's image folder (a fixture)
from trainers.jobs.job import Job, JobKind
from trainers.jobs.results import load_results
from trainers.session import prepare, run
from trainers.settings import ConfigError, TrainConfig
from trainers.training.modeling import norm_params
from trainers.training.recipes import FullFineTune, recipe_for
from trainers.training.state import Training

BASELINES = ("lp-ft", "layer-decay", "l2-sp", "auto-rgn")


def config(images, out, **changes) -> TrainConfig:
    return TrainConfig(**{**SMALL, "epochs": 3, "data": str(images), "out": str(out), **changes})


def _recipe(images, tmp_path, kind: JobKind, **settings) -> tuple[Any, FullFineTune]:
    """A prepared run of ``kind`` and its job's recipe, the model reset as the job starts."""
    ready = prepare(config(images, tmp_path / "run", strategy=str(kind), **settings))
    runner = ready.runner
    job = Job(kind, ready.config)
    runner.reset(job)
    recipe = recipe_for(job, runner.recipe_context(job))
    assert recipe is not None
    return ready, recipe


@pytest.mark.parametrize("strategy", BASELINES)
def test_each_baseline_runs_as_a_job_with_every_layer_trainable(images, tmp_path, strategy):
    results = run(config(images, tmp_path / strategy, strategy=strategy))
    full = run(config(images, tmp_path / "full", strategy="full"))
    [job] = results.jobs
    assert job.name == strategy and job.steps == full.jobs[0].steps
    assert job.trainable_params == full.jobs[0].trainable_params
    assert 0 <= job.val_acc <= 1 and job.val_hits is not None
    assert load_results(tmp_path / strategy) == results
    lines = (tmp_path / strategy / "metrics" / f"{strategy}.jsonl").read_text().splitlines()
    assert len(lines) == 3


def test_a_sweep_adds_the_extra_baselines_after_bl1_and_bl2(images, tmp_path):
    results = run(config(images, tmp_path / "run", epochs=2, extra_baselines="l2-sp,lp-ft"))
    names = [j.name for j in results.jobs]
    assert names[-4:] == ["head", "full", "l2-sp", "lp-ft"]
    assert results.sweep is not None and set(results.sweep.baselines) == set(names[-4:])
    from trainers.report.plots import plot_blocks

    assert plot_blocks(results, tmp_path / "blocks.png").stat().st_size > 0
    with pytest.raises(ConfigError, match="not an extra baseline"):
        config(images, tmp_path / "bad", extra_baselines="lp-ft,sgd")


def test_lp_ft_probes_on_cached_features_then_tunes_everything_at_its_scale(images, tmp_path):
    ready, recipe = _recipe(images, tmp_path, JobKind.LP_FT, probe_epochs=2, lp_ft_lr_scale=0.1)
    probe = recipe.before_epoch(Training())
    assert probe is not None and probe.inputs.stores is not None, "the trunk output, cached"
    trunk = ready.runner.model.trunk
    assert not any(p.requires_grad for p in trunk.parameters())
    assert recipe.before_epoch(Training(epoch=1)) is None
    tune = recipe.before_epoch(Training(epoch=2))
    assert tune is not None and tune.inputs.stores is None
    assert all(p.requires_grad for p in trunk.parameters())
    assert [g["lr"] for g in tune.optimizer.param_groups] == [pytest.approx(1e-4)]


def test_layer_decay_gives_block_b_of_b_blocks_lr_times_decay_to_the_b_minus_b(images, tmp_path):
    ready, recipe = _recipe(images, tmp_path, JobKind.LAYER_DECAY, layer_decay=0.5)
    phase = recipe.before_epoch(Training())
    assert phase is not None
    trunk, blocks = ready.runner.model.trunk, ready.partition.blocks
    rate = {id(p): g["lr"] for g in phase.optimizer.param_groups for p in g["params"]}
    for b, block in enumerate(blocks):
        for name in block.params:
            assert rate[id(trunk.get_parameter(name))] == pytest.approx(
                1e-3 * 0.5 ** (len(blocks) - b)
            )
    head = ready.runner.model.head.parameters()
    assert all(rate[id(p)] == 1e-3 for p in head)
    trained = [p for p in ready.runner.model.parameters() if p.requires_grad]
    assert sorted(map(id, trained)) == sorted(rate), "every trainable parameter, once"


def test_l2_sp_pulls_the_trunk_to_its_source_weights(images, tmp_path):
    ready, recipe = _recipe(images, tmp_path, JobKind.L2_SP, l2sp_alpha=0.2, l2sp_beta=0.0)
    assert float(recipe.penalty().detach()) == 0.0, "at the source weights"
    name = ready.partition.blocks[1].params[0]
    weight = ready.runner.model.trunk.get_parameter(name)
    with torch.no_grad():
        weight.add_(0.5)
    assert float(recipe.penalty().detach()) == pytest.approx(
        0.5 * 0.2 * 0.25 * weight.numel(), rel=1e-5
    )


def test_auto_rgn_scales_each_tensor_by_its_relative_gradient_norm(images, tmp_path):
    ready, recipe = _recipe(images, tmp_path, JobKind.AUTO_RGN)
    phase = recipe.before_epoch(Training())
    assert phase is not None
    trunk = ready.runner.model.trunk
    rates = {id(p): g["lr"] for g in phase.optimizer.param_groups for p in g["params"]}
    norms = norm_params(trunk)
    scaled = [n for b in ready.partition.blocks for n in b.params if n not in norms]
    values = [rates[id(trunk.get_parameter(n))] for n in scaled]
    assert max(values) == pytest.approx(1e-3) and min(values) < 1e-3 and min(values) >= 0
    assert all(rates[id(trunk.get_parameter(n))] == 1e-3 for n in norms), "norms at lr"
    assert recipe.before_epoch(Training(epoch=1)) is None, "the same optimizer, new rates"
    now = [g["lr"] for g in phase.optimizer.param_groups]
    assert phase.schedule.base_lrs == pytest.approx(now), "the schedule scales the new rates"


#: what each baseline's name promises, checked on its recorded phases at ``budget`` epochs
PROMISES = {
    "lp-ft": "a probe of the head alone, then every layer",
    "layer-decay": "every layer, at rates decaying toward the input",
    "l2-sp": "every layer at one rate",
    "auto-rgn": "every layer, at per-tensor rates",
}


@pytest.fixture(scope="module")
def everything(images, tmp_path_factory) -> int:
    """The parameter elements of the whole fine-tuned model (BL2's trainable count)."""
    out = tmp_path_factory.mktemp("full")
    return run(config(images, out, strategy="full", epochs=1)).jobs[0].trainable_params


@pytest.mark.parametrize("budget", [1, 2, 5])
@pytest.mark.parametrize("strategy", BASELINES)
def test_each_baseline_trains_what_its_name_promises_or_is_refused(
    images, everything, tmp_path, strategy, budget
):
    """At the smallest budget the CLI accepts (1 epoch) and above, a baseline either
    trains its promise (PROMISES), which results.json's phases record, or is refused in one
    line naming the budget."""
    if strategy == "lp-ft" and budget == 1:
        with pytest.raises(ConfigError, match="--epochs is 1"):
            config(images, tmp_path / strategy, strategy=strategy, epochs=budget)
        return
    settings = config(images, tmp_path / strategy, strategy=strategy, epochs=budget)
    [job] = run(settings).jobs
    phases = job.phases
    assert sum(p.epochs for p in phases) == budget and all(p.epochs for p in phases)
    assert job.trainable_params == phases[-1].trainable_params == everything, PROMISES[strategy]
    if strategy == "lp-ft":
        assert [p.name for p in phases] == ["probe", "fine-tune"], PROMISES[strategy]
        assert phases[0].trainable_params < everything
        assert (phases[0].epochs, phases[1].epochs) == settings.lp_ft_phases()
    else:
        assert [p.name for p in phases] == ["train"]
        ranged = phases[0].lr_min < phases[0].lr
        assert ranged == (strategy in ("layer-decay", "auto-rgn")), PROMISES[strategy]


@pytest.mark.parametrize(
    ("budget", "probe", "phases"),
    [(2, None, (1, 1)), (5, None, (2, 3)), (10, None, (4, 6)), (5, 4, (4, 1))],
)
def test_lp_ft_probes_for_a_share_of_the_budget_unless_told(budget, probe, phases):
    cfg = TrainConfig(strategy="lp-ft", epochs=budget, probe_epochs=probe)
    assert cfg.lp_ft_phases() == phases


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"epochs": 5, "probe_epochs": 5},
            "--probe-epochs 5 leaves LP-FT no fine-tuning within --epochs 5",
        ),
        ({"epochs": 5, "probe_epochs": 0}, "--probe-epochs 0 leaves LP-FT no linear probe"),
        ({"epochs": 1}, "LP-FT needs two phases"),
    ],
)
def test_an_lp_ft_setting_that_empties_a_phase_is_refused_naming_both_values(settings, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(strategy="lp-ft", **settings)
    with pytest.raises(ConfigError, match=message):
        TrainConfig(strategy="sweep", extra_baselines="lp-ft", **settings)
    TrainConfig(strategy="sweep", extra_baselines="l2-sp", **settings)  # no LP-FT: no check
