"""Analysis time against graph size, on synthetic deep nets of 1k to 100k nodes.

Three families, built on the meta device and stacked to the target size:

* ``residual``: units ``x = relu(bn(conv(x))) + x`` (four graph nodes), a cut of one
  tensor after each;
* ``cells``: NASNet-style two-input cells ``merge(cat(p, left(x) + p, right(x) + x))``
  with ``p = adjust(prev)``, so two tensors cross between cells (the multi-tensor path of
  the rule: live sets, joins, carried tensors);
* ``levels``: U-Net levels ``merge(cat(x, up(conv(conv(pool(x))))))``, each a long skip
  (an operand carried across a stage on another grid).

Capture (FX tracing + meta shape propagation) and analysis (annotation, the cut scan,
head, blocks, the partition and its checks) are timed separately; the analysis should
grow near-linearly with the number of nodes.

    python bench/analysis_scaling.py                      # writes docs/analysis-scaling.md and docs/analysis-scaling.png
"""

from __future__ import annotations

import argparse
import functools
import math
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.setrecursionlimit(100_000)


class Unit(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.bn(self.conv(x))) + x


class DeepNet(nn.Module):
    """A stem, ``units`` one-input units of class ``unit`` in a row, a classifier."""

    def __init__(self, units: int, channels: int = 4, unit: type[nn.Module] = Unit) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, channels, 3, padding=1)
        self.units = nn.Sequential(*(unit(channels) for _ in range(units)))
        self.fc = nn.Linear(channels, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.units(self.stem(x)).mean((2, 3)))


class Cell(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.adjust = nn.Conv2d(channels, channels, 1, bias=False)
        self.left = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.right = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.merge = nn.Conv2d(3 * channels, channels, 1, bias=False)

    def forward(self, prev: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        p = self.adjust(prev)
        a = torch.relu(self.left(x)) + p
        b = torch.relu(self.right(x)) + x
        return torch.relu(self.merge(torch.cat([p, a, b], 1)))


class CellNet(nn.Module):
    def __init__(self, cells: int, channels: int = 4) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, channels, 3, padding=1)
        self.cells = nn.ModuleList(Cell(channels) for _ in range(cells))
        self.fc = nn.Linear(channels, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        prev = x = self.stem(x)
        for cell in self.cells:
            prev, x = x, cell(prev, x)
        return self.fc(x.mean((2, 3)))


class Level(nn.Module):
    """A U-Net level: ``x`` waits while two convolutions run at half resolution, then
    ``cat(x, up(…))`` and a 1x1 convolution: a long skip (§2.2 of docs/partition-rule.md)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.down = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.deep = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.merge = nn.Conv2d(2 * channels, channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.deep(torch.relu(self.down(nn.functional.max_pool2d(x, 2)))))
        up = nn.functional.interpolate(y, scale_factor=2.0)
        return torch.relu(self.merge(torch.cat([x, up], 1)))


#: family → (model of about N nodes, nodes per unit)
FAMILIES = {
    "residual": (DeepNet, 4),
    "cells": (CellNet, 10),
    "levels": (functools.partial(DeepNet, unit=Level), 10),
}
#: blocks each family's partition must have for ``units`` units
EXPECTED_BLOCKS = {
    "residual": lambda units: units + 1,
    # a cell is two blocks: up to its concatenation, then the 1x1 convolution after it
    "cells": lambda units: 2 * units + 1,
    # a level is three: each half-resolution convolution, then the merge's 1x1 convolution
    "levels": lambda units: 3 * units + 1,
}


def measure(family: str, units: int) -> dict[str, float]:
    from graphblocks import analysis
    from graphblocks.build import build_partition
    from graphblocks.frontends import capture
    from graphblocks.graph import annotate, graph_hash
    from graphblocks.params import ParamTable
    from graphblocks.partition import ModelInfo
    from graphblocks.pipeline import Settings, gc_paused

    with torch.device("meta"):
        model = FAMILIES[family][0](units).eval()
    table = ParamTable.from_module(model)
    with gc_paused():  # as graphblocks.pipeline.analyze_model runs it
        start = time.perf_counter()
        captured = capture(model, (torch.empty(1, 3, 8, 8, device="meta"),), table, ("fx",))
        captured_at = time.perf_counter()
        graph = annotate(captured.graph, table)
        info = ModelInfo(
            "deep", "module", "fx", [3, 8, 8], table.total, len(graph), graph_hash(graph)
        )
        partition, _ = build_partition(
            graph, table, info, Settings(), analysis.classifier_params(model, table)
        )
        done = time.perf_counter()
    expected = EXPECTED_BLOCKS[family](units)
    assert partition.num_blocks == expected, (family, partition.num_blocks, expected)
    return {"nodes": len(graph), "capture": captured_at - start, "analysis": done - captured_at}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--nodes", type=int, nargs="+", default=[1_000, 3_000, 10_000, 30_000, 100_000]
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="median of this many runs (1 above 30k nodes)"
    )
    args = parser.parse_args()
    results: dict[str, list[dict[str, float]]] = {}
    for family, (_, per_unit) in FAMILIES.items():
        for target in args.nodes:
            repeats = args.repeats if target <= 30_000 else 1
            runs = [measure(family, max(1, target // per_unit)) for _ in range(repeats)]
            row = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            results.setdefault(family, []).append(row)
            print(f"{family} {row['nodes']:>7.0f} nodes: capture {row['capture']:.2f} s, analysis "
                  f"{row['analysis']:.3f} s, {1e6 * row['analysis'] / row['nodes']:.1f} µs/node", flush=True)  # fmt: skip
    write_docs(results)


def _slope(rows: list[dict[str, float]]) -> float:
    first, last = rows[0], rows[-1]
    return math.log(last["analysis"] / first["analysis"]) / math.log(last["nodes"] / first["nodes"])


def write_docs(results: dict[str, list[dict[str, float]]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for family, rows in results.items():
        nodes = [r["nodes"] for r in rows]
        ax.loglog(nodes, [r["capture"] for r in rows], "o--", label=f"{family}: capture")
        ax.loglog(nodes, [r["analysis"] for r in rows], "o-", label=f"{family}: analysis")
    rows = results["residual"]
    nodes = [r["nodes"] for r in rows]
    linear = [rows[0]["analysis"] * n / rows[0]["nodes"] for n in nodes]
    ax.loglog(nodes, linear, "k:", label="linear")
    ax.set_xlabel("graph nodes")
    ax.set_ylabel("seconds")
    ax.set_title("graphblocks on synthetic deep nets")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(ROOT / "docs" / "analysis-scaling.png", dpi=120)
    lines = [
        "# Analysis time against graph size",
        "",
        "Generated by `python bench/analysis_scaling.py`: synthetic deep nets built on the meta device,",
        "medians of 3 runs up to 30k nodes, one run above. `residual`: units `x = relu(bn(conv(x))) + x`,",
        "one tensor crossing each cut; `cells`: NASNet-style two-input cells, two tensors crossing each cut;",
        "`levels`: U-Net levels `cat(x, up(conv(conv(pool(x)))))`, each a long skip whose operand is",
        "carried across a stage (the per-merge analysis of partition-rule.md §2.2).",
        "",
        "| family | nodes | capture (s) | analysis (s) | analysis µs / node |",
        "|---|---:|---:|---:|---:|",
    ]
    for family, rows in results.items():
        lines += [
            f"| {family} | {r['nodes']:.0f} | {r['capture']:.2f} | {r['analysis']:.3f} | {1e6 * r['analysis'] / r['nodes']:.1f} |"
            for r in rows
        ]
    lines.append("")
    for family, rows in results.items():
        lines.append(
            f"- {family}: from {rows[0]['nodes']:.0f} to {rows[-1]['nodes']:.0f} nodes the analysis time has a "
            f"log-log slope of {_slope(rows):.2f} (1.0 is exactly linear)."
        )
    lines += [
        "",
        "Capture, dominated by torch.fx tracing and meta shape propagation, is linear too.",
        "",
        "![analysis time against graph size](analysis-scaling.png)",
    ]
    (ROOT / "docs" / "analysis-scaling.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
