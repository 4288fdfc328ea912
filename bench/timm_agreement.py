"""Measure how our blocks line up with timm's hand-written ``group_matcher`` groups.

Runs every timm model (or those matching --pattern), one row per model, appended to
a CSV as it goes (``--resume`` skips rows already there), with a per-model time limit.
Then writes ``docs/timm-agreement.md`` from the CSV with ``--report``.

    python bench/timm_agreement.py -o bench/results/timm_agreement.csv --shard 0/2
    python bench/timm_agreement.py -o bench/results/timm_agreement.csv --report docs/timm-agreement.md \
        [--merge shard0.csv shard1.csv]
"""

from __future__ import annotations

import argparse
import csv
import fnmatch
import signal
import statistics
import sys
import time
import warnings
from collections import Counter, defaultdict
from pathlib import Path
from types import FrameType

FIELDS = ["model", "family", "status", "frontend", "blocks", "groups", "refines", "straddling",
          "boundaries", "boundaries_cut", "seconds", "error"]  # fmt: skip


class _Timeout(Exception):
    pass


def _alarm(_signum: int, _frame: FrameType | None) -> None:
    raise _Timeout


def measure(name: str, limit: int) -> dict[str, object]:
    """Analyze one model and compare it with timm's groups."""
    import timm.models._registry as registry

    from graphblocks.compare import agreement, timm_groups
    from graphblocks.pipeline import analyze_model

    row: dict[str, object] = {"model": name, "family": registry._model_to_module.get(name, "?")}
    start = time.perf_counter()
    signal.alarm(limit)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = analyze_model(name)
        groups = timm_groups(result.model)
        row.update(
            status="ok",
            frontend=result.partition.model.frontend,
            blocks=result.partition.num_blocks,
        )
        if groups is not None:
            agree = agreement(result.partition, groups)
            row.update(groups=len(set(groups.values())), refines=int(agree.refines),
                       straddling=len(agree.straddling), boundaries=agree.boundaries,
                       boundaries_cut=agree.boundaries_cut)  # fmt: skip
    except _Timeout:
        row.update(status="timeout", error=f"over {limit} s")
    except Exception as exc:
        row.update(
            status="error",
            error=f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:200],
        )
    finally:
        signal.alarm(0)
    row["seconds"] = round(time.perf_counter() - start, 2)
    return row


def run(args: argparse.Namespace) -> None:
    import timm

    names = [n for n in timm.list_models() if fnmatch.fnmatch(n, args.pattern)]
    index, count = (int(x) for x in args.shard.split("/"))
    names = names[index::count]
    out = Path(args.output)
    done = set()
    if out.exists():
        with out.open() as f:
            done = {r["model"] for r in csv.DictReader(f)}
    new_file = not out.exists()
    out.parent.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGALRM, _alarm)
    with out.open("a", newline="") as f:
        writer = csv.DictWriter(f, FIELDS)
        if new_file:
            writer.writeheader()
        for i, name in enumerate(names):
            if name in done:
                continue
            row = measure(name, args.limit)
            writer.writerow(row)
            f.flush()
            print(
                f"[{i + 1}/{len(names)}] {name}: {row['status']} {row.get('refines', '')} {row['seconds']}s",
                flush=True,
            )


WHY = """
## Why some models disagree

timm's groups are written by hand for layer-wise learning-rate decay; ours come from one rule
with no per-model code. Each disagreement we examined is one of these:

- **A skip or a second stream spans several of timm's groups, so no single-tensor cut exists
  between them.** DenseNet's dense blocks (every layer's output reaches the block's last
  concatenation), CSPNet / CSPNeXt stages (half the channels bypass the stage's blocks), DLA
  and HRNet (tree and multi-resolution aggregation), CrossViT (two branches), TNT (the pixel
  stream runs beside the patch stream), SelecSLS (skips across blocks), MobileNetV5's
  multi-scale fusion adapter, EfficientViM's multi-stage heads, CaiT / XCiT / ConViT class
  attention (the patch tokens feed every class-attention block). timm groups per layer there;
  cutting between those layers would split a residual structure, which the rule forbids.
- **A parameter belongs to its first user.** Shared modules (CoaT's `crpe`, the shared
  relative-position MLP of `vit_srelpos_*`) and late-used tokens (the `cls_token` of CaiT,
  XCiT, ConViT; VOLO's `pos_embed`, added after the first stage) are first used inside a later
  block; timm files them under the stem.
- **timm's groups are finer than a layer.** VGG-BN's matcher gives every `features.N` module its
  own group, so each conv and its BatchNorm fall in different groups; a block is at least one
  weighted layer, and a lone BatchNorm never forms one.
- **No delimiter where timm draws a line.** A pre-activation network's first norm sits on the
  trunk before the first fork (RegNetV: `stem` conv → `s1.b1.norm1`), and HGNet ends a block with
  an ESE gate `x * sigmoid(conv(mean(x)))`, which is neither a delimiter nor a residual merge.
- **Headless models.** Feature models created with `num_classes=0` (EVA-02 MIM, DaViT `_fl`,
  SAM2 Hiera) have no classifier, so the norm after their pooling stays in the last block
  where timm would put it in the head.
"""


def report(rows: list[dict[str, str]]) -> str:
    """Markdown summary: totals, per-family table, and the disagreeing models."""
    ok = [r for r in rows if r["status"] == "ok"]
    seconds = [float(r["seconds"]) for r in rows] or [0.0]
    compared = [r for r in ok if r["refines"] != ""]
    refines = [r for r in compared if r["refines"] == "1"]
    cut = sum(int(r["boundaries_cut"]) for r in compared)
    total = sum(int(r["boundaries"]) for r in compared)
    lines = [
        "# Agreement with timm's `group_matcher` groups",
        "",
        "Generated by `python bench/timm_agreement.py --report` from the CSV it writes; do not edit by hand.",
        "",
        f"- models run: {len(rows)}; partitioned: {len(ok)} ({100 * len(ok) / max(len(rows), 1):.1f}%)",
        f"- models with a `group_matcher`: {len(compared)}",
        f"- **no block straddles two timm groups: {len(refines)} of {len(compared)} "
        f"({100 * len(refines) / max(len(compared), 1):.1f}%)**",
        f"- timm group boundaries we also cut at: {cut} of {total} ({100 * cut / max(total, 1):.1f}%)",
        f"- frontends: {', '.join(f'{k} {v}' for k, v in sorted(Counter(r['frontend'] for r in ok).items()))}",
        f"- analysis time per model (build on meta, capture, partition, compare): median "
        f"{statistics.median(seconds):.2f} s, max {max(seconds):.1f} s, total {sum(seconds) / 60:.1f} min of one core",
        "",
        "| family | models | partitioned | with groups | refine timm | boundary recall |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    by_family: dict[str, list[dict[str, str]]] = defaultdict(list)
    for r in rows:
        by_family[r["family"]].append(r)
    for family in sorted(by_family):
        fam = by_family[family]
        fam_ok = [r for r in fam if r["status"] == "ok"]
        fam_cmp = [r for r in fam_ok if r["refines"] != ""]
        fam_ref = sum(r["refines"] == "1" for r in fam_cmp)
        b = sum(int(r["boundaries"]) for r in fam_cmp)
        c = sum(int(r["boundaries_cut"]) for r in fam_cmp)
        recall = f"{100 * c / b:.0f}%" if b else "-"
        lines.append(
            f"| {family} | {len(fam)} | {len(fam_ok)} | {len(fam_cmp)} | {fam_ref} | {recall} |"
        )
    lines.append(WHY)
    disagree = [r for r in compared if r["refines"] == "0"]
    if disagree:
        lines += ["## Models whose blocks straddle timm groups", "",
                  "| model | family | blocks | straddling blocks | boundary recall |", "|---|---|---:|---:|---:|"]  # fmt: skip
        for r in sorted(disagree, key=lambda r: (r["family"], r["model"])):
            recall = int(r["boundaries_cut"]) / max(int(r["boundaries"]), 1)
            lines.append(
                f"| {r['model']} | {r['family']} | {r['blocks']} | {r['straddling']} | {100 * recall:.0f}% |"
            )
    failing = [r for r in rows if r["status"] != "ok"]
    if failing:
        lines += [
            "",
            "## Models not partitioned",
            "",
            "| model | status | reason |",
            "|---|---|---|",
        ]
        lines += [
            f"| {r['model']} | {r['status']} | {r['error'].replace('|', '/')} |" for r in failing
        ]
    return "\n".join(lines) + "\n"


def _merge(shards: list[str], out: Path) -> None:
    rows = []
    for path in shards:
        with open(path) as f:
            rows += list(csv.DictReader(f))
    with out.open("w", newline="") as f:
        writer = csv.DictWriter(f, FIELDS)
        writer.writeheader()
        writer.writerows(sorted(rows, key=lambda r: r["model"]))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-o", "--output", default="bench/results/timm_agreement.csv")
    parser.add_argument("--pattern", default="*", help="fnmatch pattern over timm model names")
    parser.add_argument("--shard", default="0/1", help="i/n: run every n-th model starting at i")
    parser.add_argument("--limit", type=int, default=120, help="seconds per model")
    parser.add_argument(
        "--report", metavar="MD", help="write the markdown report from the CSV(s) and exit"
    )
    parser.add_argument(
        "--merge",
        nargs="*",
        default=[],
        metavar="CSV",
        help="with --report: merge these shard CSVs into -o first",
    )
    args = parser.parse_args()
    if args.report:
        if args.merge:
            _merge(args.merge, Path(args.output))
        with open(args.output) as f:
            rows = list(csv.DictReader(f))
        Path(args.report).write_text(report(rows))
        return
    run(args)


if __name__ == "__main__":
    sys.exit(main())
