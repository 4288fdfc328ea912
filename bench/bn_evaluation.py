"""Why evaluations sat at chance while the training loss fell (issue 25), measured.

The same jobs run twice, with ``--eval-bn running`` (the running averages that training
left, as before) and ``--eval-bn recompute`` (each tuned BatchNorm's statistics
recomputed exactly over the training images before every evaluation). Recomputing draws
no random numbers and training never reads running statistics, so both runs train the
same weights: the script checks that every epoch's training loss is identical, so any
difference in accuracy is the BatchNorm statistics alone.

Measured: BL2 (every layer) and every block job of a residual CNN from random init
(``tests/toy_models.py:tiny_resnet``) on scikit-learn's digits at 32 px (400 images,
70/20/10), batch 24, 10 epochs, seeds 0-2; the validation accuracy after each epoch, the
test accuracy of the selected epoch, and the seconds. Results go to
``docs/bn-evaluation.json``; docs/trainers.md quotes them.

Usage: ``python bench/bn_evaluation.py [--seeds 0 1 2] [--epochs 10]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trainers.jobs.run_folder import RunFolder  # noqa: E402
from trainers.session import run  # noqa: E402
from trainers.settings import TrainConfig  # noqa: E402

MODES = ("running", "recompute")


def digits(folder: Path) -> Path:
    from trainers.study.datasets import materialize

    materialize("digits", folder, per_class=40, size=32, seed=0)
    return folder


def epochs_of(folder: Path, job: str) -> list[dict[str, float]]:
    lines = RunFolder(folder).metrics(job).read_text().splitlines()
    return [json.loads(line) for line in lines]


def one(data: Path, out: Path, mode: str, seed: int, epochs: int, strategy: str) -> dict[str, Any]:
    """One run: each job's validation accuracy per epoch, losses, test accuracy, seconds."""
    results = run(TrainConfig(
        model="tests/toy_models.py:tiny_resnet", model_args={"num_classes": 10},
        input_size=[3, 32, 32], data=str(data), out=str(out), strategy=strategy,
        epochs=epochs, seed=seed, eval_bn=mode, pretrained=False, baselines=False,
    ))  # fmt: skip
    jobs = {}
    for job in results.jobs:
        logged = epochs_of(out, job.name)
        jobs[job.name] = {
            "val": [e["val_acc"] for e in logged], "loss": [e["train_loss"] for e in logged],
            "test": job.test_acc, "best_epoch": job.best_epoch, "seconds": job.seconds,
        }  # fmt: skip
    return jobs


def measure(seeds: list[int], epochs: int) -> dict[str, Any]:
    found: dict[str, Any] = {"seeds": seeds, "epochs": epochs, "runs": {}}
    with tempfile.TemporaryDirectory() as folder:
        data = digits(Path(folder) / "digits")
        for strategy in ("full", "sweep"):
            for seed in seeds:
                pair = {m: one(data, Path(folder) / f"{strategy}-{m}-{seed}", m, seed, epochs,
                               strategy) for m in MODES}  # fmt: skip
                for job in pair["running"]:
                    same = pair["running"][job]["loss"] == pair["recompute"][job]["loss"]
                    assert same, f"{strategy} seed {seed} {job}: the weights differ"
                found["runs"][f"{strategy}/seed{seed}"] = pair
                print(f"{strategy} seed {seed}: done", flush=True)
    return found


def summary(found: dict[str, Any]) -> None:
    """Print what docs/trainers.md quotes."""
    for key, pair in found["runs"].items():
        for job in pair["running"]:
            r, c = pair["running"][job], pair["recompute"][job]
            print(f"{key} {job:8s} val running {[round(100 * v) for v in r['val']]}")
            print(f"{key} {job:8s} val recompute {[round(100 * v) for v in c['val']]}")
            print(f"{key} {job:8s} test {100 * r['test']:.1f} -> {100 * c['test']:.1f}; "
                  f"seconds {r['seconds']:.1f} -> {c['seconds']:.1f}")  # fmt: skip
    for strategy in ("full", "sweep"):
        pairs = [p for k, p in found["runs"].items() if k.startswith(strategy)]
        for mode in MODES:
            tests = [100 * j["test"] for p in pairs for j in p[mode].values()]
            first = [100 * j["val"][0] for p in pairs for j in p[mode].values()]
            print(
                f"{strategy} {mode}: test mean {statistics.fmean(tests):.1f}, "
                f"epoch-1 validation mean {statistics.fmean(first):.1f} "
                f"({len(set(round(v, 6) for v in first))} distinct of {len(first)})"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()
    found = measure(args.seeds, args.epochs)
    (ROOT / "docs" / "bn-evaluation.json").write_text(json.dumps(found, indent=1) + "\n")
    summary(found)


if __name__ == "__main__":
    main()
