"""Benchmark: why RL-Tune lost to uniform fine-tuning, cause by cause (docs/rltune.md).

    python bench/rltune_diagnosis.py                  # the table of docs/rltune.md, "Diagnosis"
    python bench/rltune_diagnosis.py --seeds 0 --episodes 1   # a quick look

Setting of the first diagnosis in the issue: resnet10t from a random initialisation,
600 of scikit-learn's digits at 32 px (70/20/10), 2 episodes x 5 epochs, seeds 0-2. Each
variant is RL-Tune with one cause put back or taken away; its uniform baseline (the same
seed, data order and budget) is run once per seed. The defects that the product no longer
has are put back here by replacing one function for the run (``DEFECTS``); ``before`` runs
the code of main before the fix (a git worktree of ``--before``) as a separate process.

A second part measures the agent alone: on a bandit where one unit's best rate is known,
how often PPO picks it after a given number of interactions, with the paper preset's PPO
and with the practical one (``agent_table``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: RL-Tune settings of each variant (on top of the base run); "defects" put old code back
VARIANTS: dict[str, dict[str, Any]] = {
    "paper, BN statistics averaged, last source reported": {
        "preset": "paper", "defects": ["average_bn", "no_selection"]},
    "paper, last source reported": {"preset": "paper", "defects": ["no_selection"]},
    "paper, BN statistics averaged": {"preset": "paper", "defects": ["average_bn"]},
    "paper": {"preset": "paper"},
    "paper, reward on the next batch": {"preset": "paper", "reward": "next"},
    "paper, EMA 1 (no restarts)": {"preset": "paper", "ema": 1.0},
    "practical": {"preset": "practical"},
    "practical, EMA 0.2 (restarts)": {"preset": "practical", "ema": 0.2},
    "practical, random first policy": {"preset": "practical", "base_prob": 0.0},
    "practical, reward eval-mode on the batch trained on": {"preset": "practical", "reward": "eval"},
    "practical, agent held at 1× (no agent)": {"preset": "practical", "defects": ["greedy"]},
    "practical, agent held at 1×, EMA 0.2": {"preset": "practical", "ema": 0.2, "defects": ["greedy"]},
}  # fmt: skip


@contextmanager
def defects(names: list[str]) -> Iterator[None]:
    """Put old behaviour back for one run: ``average_bn`` (the moving average of the
    BatchNorm statistics, no recomputation), ``no_selection`` (the last source is the
    result), ``greedy`` (the agent always takes its most likely action)."""
    from trainers.training.rltune import tuner

    saved = {
        "average_parameters": tuner.average_parameters,
        "recompute_bn": tuner.recompute_bn,
        "consider": tuner.RLTune.consider,
        "train_epoch": tuner.RLTune.train_epoch,
    }
    if "average_bn" in names:
        tuner.average_parameters = lambda s, t, a, params: saved["average_parameters"](
            s, t, a, set(s)
        )
        tuner.recompute_bn = lambda model, inputs: False
    if "no_selection" in names:

        def last_source(self: Any, model: str, episode: int, epoch: int) -> float:
            val = self.runner.evaluate("val")
            if model == "source":
                state = {k: v.detach().clone() for k, v in self.runner.model.state_dict().items()}
                self.best = tuner.Selected(val, model, episode, epoch, state)
            return val

        tuner.RLTune.consider = last_source
    if "greedy" in names:

        def greedy_epoch(
            self: Any, optimizer: Any, probe: Any, generator: Any, greedy: bool = False
        ) -> Any:
            return saved["train_epoch"](self, optimizer, probe, generator, True)

        tuner.RLTune.train_epoch = greedy_epoch
    try:
        yield
    finally:
        tuner.average_parameters = saved["average_parameters"]
        tuner.recompute_bn = saved["recompute_bn"]
        tuner.RLTune.consider = saved["consider"]
        tuner.RLTune.train_epoch = saved["train_epoch"]


def base_settings(args: argparse.Namespace, data: Path, out: Path, seed: int) -> dict[str, Any]:
    return {
        "model": args.model, "data": str(data), "out": str(out), "strategy": "rltune",
        "input_size": [3, args.size, args.size], "pretrained": False, "seed": seed,
        "episodes": args.episodes, "epochs": args.epochs, "batch_size": args.batch_size,
        "granularity": args.granularity,
    }  # fmt: skip


def run_variant(task: tuple[str, dict[str, Any], dict[str, Any]]) -> dict[str, Any]:
    """One RL-Tune run (or its uniform baseline: name ``uniform``) in this process."""
    import torch

    from trainers.session import prepare, run_job
    from trainers.settings.config import TrainConfig

    torch.set_num_threads(1)
    name, base, variant = task
    variant = dict(variant)
    broken = variant.pop("defects", [])
    ready = prepare(TrainConfig(**{**base, **variant}))
    job = ready.jobs[1] if name == "uniform" else ready.jobs[0]
    with defects(broken):
        result = run_job(ready, job)
    return {"variant": name, "seed": base["seed"], "val": result.val_acc, "test": result.test_acc,
            "last_target": result.last_target_val_acc, "selected": result.selected,
            "train_seconds": result.train_seconds}  # fmt: skip


def run_before(args: argparse.Namespace, data: Path, work: Path, seed: int) -> dict[str, Any]:
    """The RL-Tune of ``--before`` (its defaults, the same data and budget), in its own
    worktree and process."""
    tree = work / "before"
    settings = {k: v for k, v in base_settings(args, data, work / f"before-{seed}", seed).items()}
    code = (
        "import json, sys, torch; torch.set_num_threads(1); "
        f"sys.path.insert(0, {str(tree)!r}); "
        "from trainers.settings.config import TrainConfig; from trainers.session import run; "
        f"doc = run(TrainConfig(**json.loads({json.dumps(json.dumps(settings))}))); "
        "print(json.dumps(doc['strategies'][0]))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    row = json.loads(out.stdout.strip().splitlines()[-1])
    return {"variant": f"before ({args.before})", "seed": seed, "val": row["val_acc"],
            "test": row["test_acc"], "last_target": row.get("last_target_val_acc"),
            "selected": "last source", "train_seconds": row["train_seconds"]}  # fmt: skip


def agent_table(updates: list[int], seeds: int = 5) -> list[tuple[str, int, float, float]]:
    """A bandit: 12 units, 8 rates; the reward is 1 when unit 3 takes rate 6, else 0 with
    noise. Per PPO configuration and interaction budget: the mean probability of the right
    rate and the entropy left (share of the maximum), over seeds."""
    import math

    import torch

    from trainers.settings.rltune import RLTUNE_PRESETS
    from trainers.training.rltune.agent import PPO, Agent, Buffer, PPOSettings

    def preset(name: str) -> tuple[int, float, float, float, float]:
        p = RLTUNE_PRESETS[name]
        return max(14, p["ppo_steps"]), p["agent_lr"], p["base_prob"], 0.01, p["agent_gamma"]

    configs = {
        "before: entropy bonus summed over the 12 units, no reward normalisation": (
            14,
            3e-4,
            0.0,
            0.12,
            0.99,
        ),
        "paper preset (updates every epoch, 14 steps here)": preset("paper"),
        "practical preset": preset("practical"),
    }
    rows = []
    for label, (batch, lr, base_prob, entropy, gamma) in configs.items():
        for budget in updates:
            probs, entropies = [], []
            for seed in range(seeds):
                torch.manual_seed(seed)
                agent = Agent(12, 8)
                if base_prob:
                    agent.start_at(5, base_prob)
                ppo = PPO(agent, PPOSettings(lr=lr, entropy=entropy, gamma=gamma))
                if entropy > 0.05:  # the old PPO used raw rewards
                    ppo.rewards.normalise = lambda values: values  # type: ignore[method-assign]
                state = torch.randn(12, 1)
                buffer = Buffer()
                for _ in range(budget):
                    actions, log_prob, value = agent.act(state)
                    reward = float(actions[3] == 6) + 0.3 * float(torch.randn(()))
                    buffer.add(state, actions, log_prob, value, reward)
                    if len(buffer) >= batch:
                        ppo.update(buffer)
                        buffer = Buffer()
                with torch.no_grad():
                    dist = agent(state.unsqueeze(0))[0]
                probs.append(float(dist.probs[0, 3, 6]))
                entropies.append(float(dist.entropy().mean()) / math.log(8))
            rows.append((label, budget, statistics.fmean(probs), statistics.fmean(entropies)))
    return rows


def _cell(values: list[float]) -> str:
    if not values:
        return "–"
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * statistics.fmean(values):.1f} ± {100 * std:.1f}"


def table(rows: list[dict[str, Any]], order: list[str]) -> list[str]:
    lines = ["| variant | val. acc. (%) | test acc. (%) | last target val. (%) | selected | train s |",
             "|---|---:|---:|---:|---|---:|"]  # fmt: skip
    for name in order:
        mine = [r for r in rows if r["variant"] == name]
        if not mine:
            continue
        last = [r["last_target"] for r in mine if r["last_target"] is not None]
        picked = ", ".join(sorted({str(r["selected"]) for r in mine if r["selected"]}))
        seconds = statistics.median(r["train_seconds"] for r in mine)
        lines.append(f"| {name} | {_cell([r['val'] for r in mine])} | {_cell([r['test'] for r in mine])} "
                     f"| {_cell(last)} | {picked or '–'} | {seconds:.1f} |")  # fmt: skip
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet10t")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--per-class", type=int, default=60)
    parser.add_argument("--episodes", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=24)
    parser.add_argument("--granularity", default="layer")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS))
    parser.add_argument("--before", default="fe52ddf", help="commit whose RL-Tune is 'before'")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--json", type=Path, default=ROOT / "bench" / "results" / "rltune-diagnosis.json"
    )
    parser.add_argument("--docs", type=Path, help="write the table into this markdown file")
    args = parser.parse_args()

    from trainers.study.datasets import materialize

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = materialize(
            "digits", work / "digits", per_class=args.per_class, size=args.size, seed=1
        )
        tasks = [(name, base_settings(args, data, work / f"{i}-{seed}", seed), VARIANTS.get(name, {}))
                 for seed in args.seeds for i, name in enumerate(["uniform", *args.variants])]  # fmt: skip
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "-f", str(work / "before"), args.before],
                       check=True, capture_output=True)  # fmt: skip
        with ProcessPoolExecutor(args.workers) as pool:
            rows = list(pool.map(run_variant, tasks))
            rows += list(pool.map(run_before, [args] * len(args.seeds), [data] * len(args.seeds),
                                  [work] * len(args.seeds), args.seeds))  # fmt: skip
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "-f", str(work / "before")],
                       capture_output=True)  # fmt: skip
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(rows, indent=1) + "\n")
    order = ["uniform", f"before ({args.before})", *args.variants]
    command = "python bench/rltune_diagnosis.py " + " ".join(sys.argv[1:])
    lines = [f"Generated by `{command.strip()}`: {args.model} from a random initialisation, "
             f"{10 * args.per_class} digits at {args.size} px, {args.episodes} episodes × {args.epochs} "
             f"epochs, batch {args.batch_size}, seeds {args.seeds}; mean ± std over seeds.", "",
             *table(rows, order), "", "| agent on a bandit | interactions | P(right rate) | entropy left |",
             "|---|---:|---:|---:|"]  # fmt: skip
    for label, budget, prob, entropy in agent_table([64, 256, 1024]):
        lines.append(f"| {label} | {budget} | {prob:.2f} | {entropy:.0%} |")
    print("\n".join(lines))
    if args.docs:
        from bench.doc_tables import replace_between

        replace_between(args.docs, "diagnosis table", "\n".join(lines))


if __name__ == "__main__":
    main()
