"""``docs/zoo.md`` from a zoo report: coverage, agreement with timm's groups, timings."""

from __future__ import annotations

import csv
import json
import statistics
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from graphblocks.zoo.models import FIELDS, Row

WHY = """
## Why some models disagree

timm's groups are written by hand for layer-wise learning-rate decay; ours come from one rule
with no per-model code. Each disagreement we examined is one of these:

- **A skip or a second stream spans several of timm's groups where no admissible cut lies
  between them** ([partition-rule.md](partition-rule.md) §2). DenseNet's dense blocks (every
  layer's output reaches the block's last concatenation), SelecSLS (skips across blocks),
  MobileNetV5's multi-scale fusion adapter, EfficientViM's multi-stage heads. And where a
  stream starts: a tensor crosses a cut only once it has been carried over a whole unit, so
  the first cut after HRNet's transitions and fuse layers, CrossViT's second patch embedding
  and its fusion, or TNT's patch-stream update waits for the next unit, and that unit shares
  a block with what timm groups before it. With single-tensor cuts only, CSPNet / CSPNeXt
  stages (half the channels bypass the stage's blocks), DLA (tree aggregation), NASNet and
  PNASNet (two-input cells) were undivided too; cuts where several tensors cross now divide
  them, and 31 more models refine timm's groups than in the single-tensor run.
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


def read_rows(path: Path) -> list[Row]:
    """The report's rows, sorted by model."""
    with path.open(newline="") as handle:
        return sorted(csv.DictReader(handle), key=lambda r: r["model"])


def run_info_path(report: Path) -> Path:
    """Where the run's wall time and environment are kept, beside the CSV."""
    return report.with_suffix(".run.json")


def _by_family(rows: list[Row]) -> list[tuple[str, list[Row]]]:
    """Rows grouped by family, families in name order."""
    groups: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        groups[row["family"]].append(row)
    return sorted(groups.items())


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


def _coverage(rows: list[Row]) -> list[str]:
    ok = [r for r in rows if r["status"] == "ok"]
    frontends = Counter(r["frontend"] for r in ok)
    lines = [
        "## Coverage",
        "",
        f"- models run: {len(rows)}; valid partitions: **{len(ok)} ({_pct(len(ok), len(rows))})**",
        "- by source: "
        + ", ".join(
            f"{s} {sum(r['status'] == 'ok' for r in rows if r['source'] == s)}/{sum(r['source'] == s for r in rows)}"
            for s in sorted({r["source"] for r in rows})
        ),
        "- frontend that captured each model: "
        + ", ".join(f"{k} {v}" for k, v in sorted(frontends.items())),
        "",
        "| family | models | valid | fx | export | failed |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for family, fam in _by_family(rows):
        good = [r for r in fam if r["status"] == "ok"]
        lines.append(
            f"| {family} | {len(fam)} | {len(good)} | {sum(r['frontend'] == 'fx' for r in good)} | "
            f"{sum(r['frontend'] == 'export' for r in good)} | {len(fam) - len(good)} |"
        )
    failing = [r for r in rows if r["status"] != "ok"]
    lines += ["", "### Models without a valid partition", ""]
    if failing:
        lines += ["| model | status | reason |", "|---|---|---|"]
        lines += [
            f"| {r['model']} | {r['status']} | {r['error_class']}: {r['error'].replace('|', '/')} |"
            for r in failing
        ]
    else:
        lines.append("None.")
    return lines


def _agreement(rows: list[Row]) -> list[str]:
    compared = [r for r in rows if r["status"] == "ok" and r.get("refines") not in ("", None)]
    refines = sum(r["refines"] == "1" for r in compared)
    cut = sum(int(r["boundaries_cut"]) for r in compared)
    total = sum(int(r["boundaries"]) for r in compared)
    lines = [
        "## Agreement with timm's `group_matcher` groups",
        "",
        f"- timm models with a `group_matcher`: {len(compared)}",
        f"- **no block straddles two timm groups: {refines} of {len(compared)} ({_pct(refines, len(compared))})**",
        f"- timm group boundaries we also cut at: {cut} of {total} ({_pct(cut, total)})",
        "",
        "| family | with groups | refine timm | boundary recall |",
        "|---|---:|---:|---:|",
    ]
    for family, fam in _by_family(compared):
        b = sum(int(r["boundaries"]) for r in fam)
        c = sum(int(r["boundaries_cut"]) for r in fam)
        lines.append(
            f"| {family} | {len(fam)} | {sum(r['refines'] == '1' for r in fam)} | {_pct(c, b)} |"
        )
    lines.append(WHY)
    disagree = sorted(
        (r for r in compared if r["refines"] == "0"), key=lambda r: (r["family"], r["model"])
    )
    if disagree:
        lines += ["### Models whose blocks straddle timm groups", "",
                  "| model | family | blocks | straddling blocks | boundary recall |", "|---|---|---:|---:|---:|"]  # fmt: skip
        for r in disagree:
            recall = _pct(int(r["boundaries_cut"]), int(r["boundaries"]))
            lines.append(
                f"| {r['model']} | {r['family']} | {r['blocks']} | {r['straddling']} | {recall} |"
            )
    return lines


def _block_sizes(rows: list[Row]) -> list[str]:
    """How much of each model its largest block holds, and how many tensors cross its
    widest cut (a run from before these columns existed shows none)."""
    ok = [r for r in rows if r["status"] == "ok" and r.get("largest_share") not in (None, "")]
    if not ok:
        return []
    shares = [float(r["largest_share"]) for r in ok]
    widths = Counter(int(r["widest_cut"]) for r in ok)
    big = sorted(
        (r for r in ok if float(r["largest_share"]) > 0.5), key=lambda r: -float(r["largest_share"])
    )
    lines = [
        "## Block sizes and cut widths",
        "",
        f"- the largest block's share of the weights: median {100 * statistics.median(shares):.1f}%; "
        f"over 35% in {sum(s > 0.35 for s in shares)} models, over 50% in {len(big)}",
        "- tensors crossing the widest cut: "
        + ", ".join(f"{w}: {n} models" for w, n in sorted(widths.items())),
        "",
        "| family | models | widest cut | median largest share | largest share |",
        "|---|---:|---:|---:|---:|",
    ]
    for family, fam in _by_family(ok):
        fam_shares = [float(r["largest_share"]) for r in fam]
        lines.append(
            f"| {family} | {len(fam)} | {max(int(r['widest_cut']) for r in fam)} | "
            f"{100 * statistics.median(fam_shares):.1f}% | {100 * max(fam_shares):.1f}% |"
        )
    if big:
        lines += ["", "### Models whose largest block holds over half the weights", "",
                  "| model | family | blocks | largest share | widest cut |", "|---|---|---:|---:|---:|"]  # fmt: skip
        lines += [
            f"| {r['model']} | {r['family']} | {r['blocks']} | {100 * float(r['largest_share']):.1f}% | {r['widest_cut']} |"
            for r in big
        ]
    return lines


def _timings(rows: list[Row], info: dict[str, Any]) -> list[str]:
    seconds = [float(r["seconds"]) for r in rows if r["seconds"]] or [0.0]
    peaks = [float(r["peak_mb"]) for r in rows if r.get("peak_mb")] or [0.0]
    slowest = sorted(rows, key=lambda r: -float(r["seconds"] or 0))[:5]
    lines = [
        "## Timings",
        "",
        f"- per model (build on the meta device, capture, partition, validate, compare): median "
        f"{statistics.median(seconds):.2f} s, max {max(seconds):.1f} s, {sum(seconds) / 60:.1f} min of worker time in all",
        f"- peak resident memory per model: median {statistics.median(peaks):.0f} MB, max {max(peaks):.0f} MB",
        "- slowest: " + ", ".join(f"{r['model']} {float(r['seconds']):.1f} s" for r in slowest),
    ]
    if info:
        lines.append(
            f"- the run: {info.get('wall_seconds', 0) / 60:.1f} min wall clock with {info.get('jobs')} workers "
            f"on {info.get('cores')} cores (torch {info.get('torch')}, timm {info.get('timm')}, "
            f"torchvision {info.get('torchvision')})"
        )
    return lines


def zoo_markdown(report: Path) -> str:
    """The whole ``docs/zoo.md`` text for the report CSV at ``report``."""
    rows = read_rows(report)
    info_path = run_info_path(report)
    info = json.loads(info_path.read_text()) if info_path.exists() else {}
    lines = [
        "# The zoo: coverage, agreement with timm, block sizes, timings",
        "",
        f"Generated by `graphblocks zoo-report {report.as_posix()} -o docs/zoo.md` from the report that",
        "`graphblocks zoo --source all -o " + report.as_posix() + "` writes; do not edit by hand.",
        "",
        *_coverage(rows),
        "",
        *_agreement(rows),
        "",
        *_block_sizes(rows),
        "",
        *_timings(rows, info),
    ]
    return "\n".join(lines) + "\n"


__all__ = ["FIELDS", "WHY", "read_rows", "run_info_path", "zoo_markdown"]
