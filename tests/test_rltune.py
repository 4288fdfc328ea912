"""RL-Tune: the agent learns, its rates reach the optimizer, the presets, the moving
average and BatchNorm statistics, model selection, end to end, resume."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from click.testing import CliRunner

from tests.image_data import make_image_folder
from trainers.cli import cli
from trainers.session import prepare, run
from trainers.settings.config import TrainConfig
from trainers.training.rltune.agent import PPO, Agent, Buffer, PPOSettings, gae
from trainers.training.rltune.moving_average import average_parameters, recompute_bn
from trainers.training.rltune.tuner import RateGrid, RLTune, StateProbe, lr_choices, make_units

MODEL = "tests/toy_models.py:tiny_resnet"


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return make_image_folder(tmp_path_factory.mktemp("images"), classes=3, per_class=10, size=24)


def settings(images, out, **changes) -> TrainConfig:
    base = {"model": MODEL, "input_size": [3, 24, 24], "data": str(images), "out": str(out),
            "strategy": "rltune", "episodes": 2, "epochs": 1, "batch_size": 8}  # fmt: skip
    return TrainConfig(**{**base, **changes})


def test_agent_learns_which_unit_needs_the_high_rate():
    torch.manual_seed(0)
    units, actions, right = 4, 5, 4
    agent = Agent(units, actions)
    ppo = PPO(agent, PPOSettings(lr=3e-3))  # the paper's ε = 0.1
    state = torch.randn(units, 1)

    def p_right() -> float:
        with torch.no_grad():
            return float(agent(state.unsqueeze(0))[0].probs[0, 2, right])

    before = p_right()
    states = state.expand(128, units, 1)
    for _ in range(40):  # updates
        buffer = Buffer()
        with torch.no_grad():  # 128 interactions per update, sampled at once
            dist, values = agent(states)
            chosen = dist.sample()
            log_probs = dist.log_prob(chosen)
        for action, log_prob, value in zip(chosen, log_probs, values, strict=True):
            buffer.add(state, action, log_prob, value, 1.0 if int(action[2]) == right else 0.0)
        ppo.update(buffer)
    assert before < 0.3 and p_right() > 0.5, (before, p_right())  # chance is 0.2


def test_gae_matches_the_recursion():
    rewards, values = torch.tensor([1.0, 0.0, 1.0]), torch.tensor([0.5, 0.4, 0.3])
    advantages, returns = gae(rewards, values, gamma=0.9, lam=0.5)
    d2 = 1.0 - 0.3
    d1 = 0.0 + 0.9 * 0.3 - 0.4
    d0 = 1.0 + 0.9 * 0.4 - 0.5
    expected = torch.tensor([d0 + 0.45 * (d1 + 0.45 * d2), d1 + 0.45 * d2, d2])
    assert torch.allclose(advantages, expected) and torch.allclose(returns, expected + values)


def test_gae_stops_at_an_episode_end_and_bootstraps_past_the_buffer():
    rewards, values = torch.tensor([1.0, 0.0]), torch.tensor([0.5, 0.4])
    cut, _ = gae(rewards, values, gamma=0.9, lam=0.5, last_value=2.0, dones=[True, False])
    assert torch.allclose(cut, torch.tensor([1.0 - 0.5, 0.9 * 2.0 - 0.4]))


def test_the_moving_average_moves_parameters_and_copies_buffers():
    source = {
        "w": torch.tensor([0.0, 10.0]),
        "bn.running_mean": torch.tensor([0.0]),
        "n": torch.tensor(3),
    }
    target = {
        "w": torch.tensor([10.0, 0.0]),
        "bn.running_mean": torch.tensor([4.0]),
        "n": torch.tensor(7),
    }
    average_parameters(source, target, 0.2, params={"w"})
    assert torch.allclose(source["w"], torch.tensor([2.0, 8.0]))
    assert float(source["bn.running_mean"]) == 4.0 and int(source["n"]) == 7


def test_batchnorm_statistics_are_recomputed_exactly_for_the_weights():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Dropout(0.5)
    )
    data = [torch.randn(n, 3, 6, 6) * 3 + n for n in (8, 3, 13)]  # batches of unequal size
    model[1].running_mean.fill_(100.0)
    model[1].num_batches_tracked.fill_(5)
    assert recompute_bn(model, iter(data)) and model.training and model[1].training, (
        "modes restored"
    )
    with torch.no_grad():
        features = torch.cat([model[0](x) for x in data])
    assert torch.allclose(model[1].running_mean, features.mean((0, 2, 3)), atol=1e-5)
    assert torch.allclose(model[1].running_var, features.var((0, 2, 3)), atol=1e-4)
    assert model[1].momentum == 0.1 and int(model[1].num_batches_tracked) == 5
    assert not recompute_bn(torch.nn.Linear(2, 2), iter(data))


def test_the_paper_preset_builds_the_papers_grid_and_practical_a_relative_one():
    paper = TrainConfig(strategy="rltune", preset="paper").rltune_settings()
    grid = RateGrid.of(paper)
    assert (
        len(grid.choices) == 20
        and grid.choices[0] == 0
        and abs(float(grid.choices[-1]) - 0.01) < 1e-12
    )
    assert (paper.ema, paper.reward, paper.ppo_steps, paper.base_prob) == (0.2, "eval", 1, 0.0)
    practical = RateGrid.of(TrainConfig(strategy="rltune").rltune_settings())
    assert practical.relative and practical.base is not None and float(practical.choices[0]) == 0
    assert float(practical.rates(torch.tensor([practical.base]), 3e-4)[0]) == 3e-4
    agent = Agent(3, len(practical.choices))
    agent.start_at(practical.base, 0.9)
    probs = agent(torch.randn(5, 3, 1))[0].probs
    assert torch.allclose(probs[..., practical.base], torch.tensor(0.9))
    explicit = TrainConfig(strategy="rltune", preset="paper", ema=1.0).rltune_settings()
    assert explicit.ema == 1.0, "a setting given wins over the preset"


def test_lr_choices_include_both_ends():
    choices = lr_choices(20, 0.0, 0.01)
    assert len(choices) == 20 and choices[0] == 0 and abs(float(choices[-1]) - 0.01) < 1e-9


@pytest.mark.parametrize("granularity", ["layer", "block"])
def test_units_cover_every_parameter_once(images, tmp_path, granularity):
    ready = prepare(settings(images, tmp_path / "run", granularity=granularity))
    units = make_units(ready.partition, ready.runner.model, granularity, set(ready.runner.dropped))
    names = [p for u in units for p in u.params]
    assert sorted(names) == sorted(n for n, _ in ready.runner.model.named_parameters())
    assert units[-1].name == "head"
    expected = (
        ready.partition.num_blocks
        if granularity == "block"
        else sum(
            1
            for layer in ready.partition.layers
            if layer.role == "weighted" and layer.block is not None
        )
    )
    assert len(units) == expected + 1


def test_chosen_rates_reach_the_optimizer(images, tmp_path):
    ready = prepare(settings(images, tmp_path / "run"))
    model = ready.runner.model
    units = make_units(ready.partition, model, "layer", set(ready.runner.dropped))
    tuner = RLTune(ready.runner, units, ready.jobs[0])
    act = tuner.agent.act

    def first_unit_paused(state, greedy=False):  # the agent's choice, but unit 0 gets rate 0
        actions, log_prob, value = act(state, greedy)
        actions = actions.clone()
        actions[0] = 0
        return actions, log_prob, value

    tuner.agent.act = first_unit_paused
    named = dict(model.named_parameters())
    for p in model.parameters():
        p.requires_grad_(True)
    groups = [{"params": [named[p] for p in u.params], "lr": 0.0} for u in units]
    optimizer = torch.optim.Adam(groups)
    before = {p: named[p].detach().clone() for u in units for p in u.params}
    probe = StateProbe(model, units)
    tuner.train_epoch(optimizer, probe, torch.Generator().manual_seed(0))
    probe.remove()
    assert optimizer.param_groups[0]["lr"] == 0.0
    assert all(torch.equal(before[p], named[p]) for p in units[0].params), (
        "rate 0: unit 0 unchanged"
    )
    moved = [u for u in units[1:] if any(not torch.equal(before[p], named[p]) for p in u.params)]
    assert moved, "other units trained at their chosen rates"
    rates = {float(g["lr"]) for g in optimizer.param_groups}
    assert rates <= {float(c) * ready.config.lr for c in tuner.grid.choices}


def test_rltune_end_to_end_with_its_baseline(images, tmp_path):
    result = CliRunner().invoke(cli, ["rltune", "--model", MODEL, "--data", str(images), "--out", str(tmp_path / "rl"),
                                      "--input-size", "3,24,24", "--episodes", "2", "--epochs-per-episode", "1",
                                      "--granularity", "block", "--batch-size", "8"])  # fmt: skip
    assert result.exit_code == 0, result.output
    doc = json.loads((tmp_path / "rl" / "results.json").read_text())
    assert [r["name"] for r in doc["strategies"]] == ["rltune", "uniform"]
    uniform = doc["strategies"][1]
    assert (
        json.loads((tmp_path / "rl" / "metrics" / "uniform.jsonl").read_text().splitlines()[-1])[
            "epoch"
        ]
        == 2
    )
    assert uniform["steps"] == doc["strategies"][0]["steps"], "same budget"
    rows = list(csv.DictReader((tmp_path / "rl" / "rltune-lr.csv").open()))
    assert len(rows) == 2 and "head" in rows[0]
    for name in ("rltune-lr.png", "checkpoints/rltune.safetensors", "checkpoints/rltune-agent.pt"):
        assert (tmp_path / "rl" / name).exists(), name


def test_rltune_resumes_after_the_last_finished_episode(images, tmp_path):
    # no warm-up: one episode of one epoch would be all warm-up, which is refused
    straight = run(settings(images, tmp_path / "straight", episodes=2, warmup_epochs=0))
    out = tmp_path / "rl"
    run(settings(images, out, episodes=1, warmup_epochs=0))
    first = (out / "rltune-lr.csv").read_text().splitlines()
    for name in ("rltune.json", "uniform.json"):  # as if killed during episode 2
        (out / "results" / name).unlink()
    resumed = run(settings(images, out, episodes=2, warmup_epochs=0, resume=True))
    again = (out / "rltune-lr.csv").read_text().splitlines()
    assert len(again) == 3 and again[:2] == first, "episode 1 kept, episode 2 added"
    assert again == (tmp_path / "straight" / "rltune-lr.csv").read_text().splitlines()
    assert resumed.jobs[0].test_acc == straight.jobs[0].test_acc


def _trained_weights(run_dir, job: str) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(run_dir / "checkpoints" / f"{job}.safetensors"))


def test_practical_rltune_starts_as_uniform_fine_tuning(images, tmp_path):
    """Epoch 1 of the practical preset takes uniform fine-tuning's optimizer steps: the
    same weights after it, bit for bit, from the same seed."""
    ready = prepare(settings(images, tmp_path / "run", episodes=1, epochs=2))
    rltune, uniform = ready.jobs
    assert rltune.settings.rltune_settings().warmup_epochs == 1 and uniform.settings.epochs == 2
    model = ready.runner.model
    units = make_units(ready.partition, model, "layer", set(ready.runner.dropped))
    after: dict[str, torch.Tensor] = {}

    def keep(done: int, _total: int) -> None:
        if done == 1:
            after.update({k: v.detach().clone() for k, v in model.state_dict().items()})

    RLTune(ready.runner, units, rltune).run(keep)
    ready.runner.run(uniform, until=1)
    plain = model.state_dict()
    assert after.keys() == plain.keys()
    different = [k for k in plain if not torch.equal(after[k], plain[k])]
    assert not different, different[:5]


def test_rltune_reports_its_best_validation_model(images, tmp_path):
    ready = prepare(settings(images, tmp_path / "run", episodes=1, epochs=2))
    model = ready.runner.model
    units = make_units(ready.partition, model, "layer", set(ready.runner.dropped))
    tuner = RLTune(ready.runner, units, ready.jobs[0])
    scores = iter([0.5, 0.3, 0.7, 0.7, 0.6])  # validation accuracy of each model in turn
    ready.runner.evaluate = lambda split, inputs=None: next(scores)  # type: ignore[method-assign]
    bias = model.head[-1].bias
    for i, (kind, episode) in enumerate([("source", 0), ("target", 1), ("target", 1),
                                         ("source", 1), ("target", 2)]):  # fmt: skip
        with torch.no_grad():
            bias.fill_(float(i))
        tuner.consider(kind, episode, i)
    best = tuner.best
    assert (best.val_acc, best.model, best.episode, best.epoch) == (0.7, "target", 1, 2), (
        "the first 0.7"
    )
    assert float(best.state["head.4.bias"][0]) == 2.0, "its weights, not the latest ones"

    result = run(settings(images, tmp_path / "full", episodes=2, epochs=2, preset="paper"))
    rl = result.jobs[0]
    log = list(csv.DictReader((tmp_path / "full" / "rltune-lr.csv").open()))
    assert rl.val_acc >= max(float(r["val_acc"]) for r in log)
    outcome = rl.rltune
    assert outcome is not None and rl.best_epoch is not None
    assert outcome.selected in ("source", "target")
    assert outcome.preset == "paper" and outcome.selected_episode is not None


def test_a_warm_up_that_leaves_the_agent_no_epoch_to_act_in_is_refused():
    from trainers.settings import ConfigError

    with pytest.raises(ConfigError, match="--warmup-epochs 2 leaves RL-Tune's agent no epoch"):
        TrainConfig(strategy="rltune", episodes=1, epochs=2, warmup_epochs=2)
    with pytest.raises(ConfigError, match="the preset's warm-up of 1 leaves RL-Tune's agent"):
        TrainConfig(strategy="rltune", episodes=1, epochs=1, preset="practical")
    TrainConfig(strategy="rltune", episodes=1, epochs=1, preset="paper")  # no warm-up
    TrainConfig(strategy="rltune", episodes=1, epochs=1, warmup_epochs=0)
