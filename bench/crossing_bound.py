"""Benchmark: how the crossing bound K (``--max-crossing``) divides networks whose stages
carry several tensors forward (docs/partition-rule.md, §2.4).

    python bench/crossing_bound.py                       # the models the rule was chosen on
    python bench/crossing_bound.py --onnx nasnet.onnx    # and ONNX files (e.g. from tf2onnx)
    python bench/crossing_bound.py --zoo bench/results/zoo.csv   # and the zoo's multi-tensor models

For each model and K: the block count, the largest block's share of the weights and the
widest cut. Writes bench/results/crossing-bound.json and the table in the doc.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.doc_tables import replace_between  # noqa: E402

MODELS = [
    "nasnetalarge", "pnasnet5large", "crossvit_9_240", "tnt_s_patch16_224", "hrnet_w18_small",
    "torchvision:lraspp_mobilenet_v3_large", "torchvision:deeplabv3_mobilenet_v3_large",
    "tests/toy_models.py:ResUNet", "resnet50",
]  # fmt: skip
BOUNDS = (1, 2, 4, 8)


def measure(model: str, bound: int) -> dict[str, Any]:
    """One partition's shape under ``--max-crossing bound``."""
    from graphblocks.pipeline import Settings, analyze_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p = analyze_model(model, Settings(max_crossing=bound)).partition
    return {
        "model": model, "max_crossing": bound, "blocks": p.num_blocks,
        "largest_share": max(b.share for b in p.blocks),
        "widest_cut": max(len(b.inputs) for b in p.blocks),
    }  # fmt: skip


def table(rows: list[dict[str, Any]]) -> str:
    """One line per model: ``blocks, largest share`` at each bound."""
    lines = ["| model | " + " | ".join(f"K = {k}" for k in BOUNDS) + " |",
             "|---|" + "---|" * len(BOUNDS)]  # fmt: skip
    for model in dict.fromkeys(r["model"] for r in rows):
        cells = {r["max_crossing"]: r for r in rows if r["model"] == model}
        shown = Path(model).name if model.endswith(".onnx") else model
        lines.append(f"| {shown} | " + " | ".join(
            f"{cells[k]['blocks']}, {100 * cells[k]['largest_share']:.1f}% (widest {cells[k]['widest_cut']})"
            for k in BOUNDS) + " |")  # fmt: skip
    return "\n".join(lines)


def zoo_summary(report: Path) -> str:
    """For every zoo model whose widest cut carries more than one tensor at the default
    bound: how many blocks it gets at each bound."""
    import csv

    with report.open(newline="") as handle:
        models = [
            r["model"] for r in csv.DictReader(handle) if r.get("widest_cut", "1") not in ("", "1")
        ]
    counts = {model: [measure(model, k)["blocks"] for k in BOUNDS] for model in models}
    lines = [
        f"Zoo models ({report.name}) with a cut of several tensors at the default bound: {len(models)}."
    ]
    for a, b in itertools.pairwise(range(len(BOUNDS))):
        gained = [m for m, c in counts.items() if c[b] > c[a]]
        named = f" ({', '.join(gained[:8])}{', …' if len(gained) > 8 else ''})" if gained else ""
        lines.append(f"From K = {BOUNDS[a]} to K = {BOUNDS[b]}, {len(gained)} gain blocks{named}.")
    return " ".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--onnx", nargs="*", default=[], help="ONNX files to add")
    parser.add_argument("--zoo", type=Path, help="a zoo report: rerun its multi-tensor models")
    args = parser.parse_args()
    rows = [measure(model, k) for model in [*MODELS, *args.onnx] for k in BOUNDS]
    out = ROOT / "bench" / "results" / "crossing-bound.json"
    out.write_text(json.dumps(rows, indent=1) + "\n")
    body = table(rows) + ("\n\n" + zoo_summary(args.zoo) if args.zoo else "")
    replace_between(ROOT / "docs" / "partition-rule.md", "crossing-bound", body)
    print(body)


if __name__ == "__main__":
    main()
