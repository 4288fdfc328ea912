"""How well a block's validation accuracy after e epochs ranks the blocks as the full budget
does: Spearman's ρ between the best-so-far validation accuracy at epoch e and at the last
epoch, over the blocks of each full sweep (docs/selection.md, the diagnosis)::

    python bench/early_ranking.py runs/study-imagenet/runs runs/selection-shared runs/selection-r10
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path

from selection import spearman


def curves(sweep: Path) -> list[list[float]]:
    """Each block's best validation accuracy so far, epoch by epoch."""
    found = []
    for path in sorted(sweep.glob("metrics/block-*.jsonl"), key=lambda p: int(p.stem[6:])):
        values = [json.loads(line)["val_acc"] for line in path.read_text().splitlines()]
        found.append([max(values[: e + 1]) for e in range(len(values))])
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("roots", nargs="+", type=Path)
    parser.add_argument("--epochs", type=int, nargs="+", default=[1, 2, 3, 4])
    args = parser.parse_args()
    print("| full sweeps | runs ranked | " + " | ".join(f"ρ at {e}" for e in args.epochs) + " |")
    print("|---|---:|" + "---:|" * len(args.epochs))
    for root in args.roots:
        sweeps = sorted(p.parent for p in root.rglob("results.json") if "sweep" in p.parent.name
                        or p.parent.name == "full")  # fmt: skip
        rhos: dict[int, list[float]] = {e: [] for e in args.epochs}
        for sweep in sweeps:
            blocks = curves(sweep)
            final = [c[-1] for c in blocks]
            for e in args.epochs:
                rho = spearman([c[e - 1] for c in blocks], final)
                if not math.isnan(rho):
                    rhos[e].append(rho)
        cells = [f"{statistics.fmean(v):+.2f}" if v else "-" for v in rhos.values()]
        print(
            f"| `{root}` ({len(blocks[0])} epochs) | {len(rhos[args.epochs[0]])} of {len(sweeps)} | "
            + " | ".join(cells)
            + " |"
        )


if __name__ == "__main__":
    main()
