"""Benchmark: a full block sweep with the activation cache vs the naive loop, and our
training step against a bare PyTorch loop.

    python bench/sweep_speed.py                 # writes docs/trainer-speed.md

For each model (a ResNet-style and a VGG-style timm model, random init: no weights can be
downloaded here) it runs ``graphblocks-train sweep`` twice on the same generated image
folder with the same seeds: ``--cache auto`` (activations before the tuned block
computed once, shared along the sweep) and ``--cache off`` (a full forward every step).
Reported: wall time of each sweep, the speed-up, and the largest difference in test
accuracy between the two over all jobs. Then the ``full`` job (everything trains, so no
cache) against a bare loop (Adam, cross entropy, the same batches, evaluation each
epoch) on the same model and data, interleaved, median of ``--repeats``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.image_data import make_image_folder  # noqa: E402
from trainers.session import prepare, run  # noqa: E402
from trainers.settings.config import TrainConfig  # noqa: E402
from trainers.training.data import batches  # noqa: E402


def partition_file(spec: str, work: Path, size: int) -> tuple[str, str]:
    """``name[key=value,...]`` → (label, partition JSON path), factory arguments applied."""
    import ast

    import graphblocks

    name, _, rest = spec.partition("[")
    kwargs = {
        k: ast.literal_eval(v)
        for k, v in (kv.split("=") for kv in rest.rstrip("]").split(",") if kv)
    }
    path = work / f"{spec}.json"
    graphblocks.analyze(name, input_size=(3, size, size), model_args=kwargs).save(path)
    return spec, str(path)


def sweep_pair(spec: str, data: Path, work: Path, args: argparse.Namespace) -> dict[str, object]:
    timings, docs = {}, {}
    model, partition = partition_file(spec, work, args.size)
    for cache in ("auto", "off"):
        config = TrainConfig(
            partition=partition, data=str(data), out=str(work / f"{model}-{cache}"), strategy="sweep",
            input_size=[3, args.size, args.size], epochs=args.epochs, batch_size=args.batch_size,
            pretrained=False, cache=cache, seed=0,
        )  # fmt: skip
        start = time.perf_counter()
        docs[cache] = run(config)
        timings[cache] = time.perf_counter() - start
    cached = {r.name: r.test_acc for r in docs["auto"].jobs}
    naive = {r.name: r.test_acc for r in docs["off"].jobs}
    return {
        "model": model,
        "jobs": len(cached),
        "cached_s": timings["auto"],
        "naive_s": timings["off"],
        "speedup": timings["off"] / timings["auto"],
        "max_acc_diff": max(abs(cached[k] - naive[k]) for k in cached),
        "mean_acc_cached": statistics.fmean(cached.values()),
        "mean_acc_naive": statistics.fmean(naive.values()),
    }


def bare_loop(runner, epochs: int, batch_size: int) -> float:  # type: ignore[no-untyped-def]
    """Seconds per training step of Adam + cross entropy over the same tensors."""
    model, data = runner.model, runner.data
    model.trunk.load_state_dict(runner.source_trunk)
    for p in model.parameters():
        p.requires_grad_(True)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(0)
    seconds, steps = 0.0, 0
    for _ in range(epochs):
        model.train()
        start = time.perf_counter()
        for index in batches(
            len(data.labels["train"]), batch_size, shuffle=True, generator=generator
        ):
            x = data.images["train"][index].float().div_(255)
            loss = torch.nn.functional.cross_entropy(model(x), data.labels["train"][index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            steps += 1
        seconds += time.perf_counter() - start
    return seconds / steps


def step_throughput(
    spec: str, data: Path, work: Path, args: argparse.Namespace
) -> dict[str, object]:
    model, partition = partition_file(spec, work, args.size)
    config = TrainConfig(
        partition=partition, data=str(data), out=str(work / f"{model}-throughput"), strategy="full",
        input_size=[3, args.size, args.size], epochs=args.epochs, batch_size=args.batch_size,
        pretrained=False, seed=0, resume=True,
    )  # fmt: skip
    ready = prepare(config)
    ours, bare = [], []
    for _ in range(args.repeats):
        result = ready.runner.run(ready.jobs[0])
        ours.append(result.train_seconds / result.steps)
        bare.append(bare_loop(ready.runner, args.epochs, args.batch_size))
    return {
        "model": model,
        "ours_ms": 1000 * statistics.median(ours),
        "bare_ms": 1000 * statistics.median(bare),
        "ratio": statistics.median(bare) / statistics.median(ours),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--models", nargs="+", default=["resnet18", "vgg11[mlp_ratio=0.125]"],
        help="timm names, factory arguments in brackets (VGG's 4096-wide MLP shrunk to 512)",
    )  # fmt: skip
    parser.add_argument("--classes", type=int, default=4)
    parser.add_argument("--per-class", type=int, default=60)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("-o", "--output", type=Path, default=ROOT / "docs" / "trainer-speed.md")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = make_image_folder(work / "images", args.classes, args.per_class, args.size)
        sweeps = [sweep_pair(m, data, work, args) for m in args.models]
        steps = [step_throughput(m, data, work, args) for m in args.models]
    lines = [
        "# Trainer speed",
        "",
        "Generated by `python bench/sweep_speed.py " + " ".join(sys.argv[1:]) + "` "
        f"on {torch.get_num_threads()} CPU threads, torch {torch.__version__}. Data: "
        f"{args.classes} classes x {args.per_class} generated images at {args.size} px "
        f"(70/20/10 split), {args.epochs} epochs, batch {args.batch_size}, random init.",
        "",
        "## Full sweep (every block, BL1, BL2): activation cache vs naive loop",
        "",
        "| model | jobs | cached (s) | naive (s) | speed-up | max test-acc difference | mean test acc cached / naive |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for s in sweeps:
        lines.append(
            f"| {s['model']} | {s['jobs']} | {s['cached_s']:.1f} | {s['naive_s']:.1f} | "
            f"{s['speedup']:.2f}x | {s['max_acc_diff']:.3f} | "
            f"{s['mean_acc_cached']:.3f} / {s['mean_acc_naive']:.3f} |"
        )
    lines += [
        "",
        "## Training step: `full` job vs a bare PyTorch loop (median of "
        f"{args.repeats}, interleaved)",
        "",
        "| model | ours (ms/step) | bare loop (ms/step) | throughput ratio (ours / bare) |",
        "|---|---:|---:|---:|",
    ]
    for t in steps:
        lines.append(
            f"| {t['model']} | {t['ours_ms']:.1f} | {t['bare_ms']:.1f} | {t['ratio']:.3f} |"
        )
    args.output.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
