"""RL-Tune: the agent learns, its rates reach the optimizer, EMA, end to end, resume."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from click.testing import CliRunner

from tests.image_data import make_image_folder
from trainers.cli import cli
from trainers.config import TrainConfig
from trainers.rltune.agent import PPO, Agent, Buffer, PPOSettings, gae
from trainers.rltune.tuner import RLTune, ema_update, lr_choices, make_units
from trainers.session import prepare, run

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
            log_probs = dist.log_prob(chosen).sum(-1)
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


def test_ema_moves_the_source_a_fifth_of_the_way():
    source = {"w": torch.tensor([0.0, 10.0]), "n": torch.tensor(3)}
    ema_update(source, {"w": torch.tensor([10.0, 0.0]), "n": torch.tensor(7)}, 0.2)
    assert torch.allclose(source["w"], torch.tensor([2.0, 8.0])) and int(source["n"]) == 7


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
    tuner = RLTune(ready.runner, units, ready.run_dir, ready.config)
    act = tuner.agent.act

    def first_unit_paused(state):  # the agent's choice, except unit 0 gets rate 0
        actions, log_prob, value = act(state)
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
    from trainers.rltune.tuner import StateProbe

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
    assert rates <= {float(c) for c in tuner.choices}


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
    straight = run(settings(images, tmp_path / "straight", episodes=2))
    out = tmp_path / "rl"
    run(settings(images, out, episodes=1))
    first = (out / "rltune-lr.csv").read_text().splitlines()
    for name in ("rltune.json", "uniform.json"):  # as if killed during episode 2
        (out / "results" / name).unlink()
    resumed = run(settings(images, out, episodes=2, resume=True))
    again = (out / "rltune-lr.csv").read_text().splitlines()
    assert len(again) == 3 and again[:2] == first, "episode 1 kept, episode 2 added"
    assert again == (tmp_path / "straight" / "rltune-lr.csv").read_text().splitlines()
    assert resumed.jobs[0].test_acc == straight.jobs[0].test_acc
