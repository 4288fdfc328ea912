"""B_opt without a full sweep, measured against the study's full sweeps (docs/selection.md).

For every (model, target, seed) sweep of a study, this runs ``--select halving`` and
``--select gradnorm`` with the study's settings (no baselines: they are the same under
every selector) and compares them with the full sweep of the study's own run folder
(run first when missing). Worker processes as in the study (one torch thread each, so
the last rung's block reproduces the full sweep's result bit for bit).

    python bench/selection.py                                  # configs/study-imagenet.toml
    python bench/selection.py --config configs/study.toml --out runs/selection-study
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from doc_tables import replace_between  # noqa: E402

#: asha runs on a local Ray cluster in this process (use --workers 1 with it)
RAY_SELECTORS = {"asha": {"executor": "ray", "workers": 2}}


def spearman(a: list[float], b: list[float]) -> float:
    """Spearman's ρ: Pearson's correlation of the ranks (ties share their mean rank)."""

    def ranks(values: list[float]) -> list[float]:
        order = sorted(range(len(values)), key=lambda i: values[i])
        out = [0.0] * len(values)
        i = 0
        while i < len(order):
            j = i
            while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
                j += 1
            for k in range(i, j + 1):
                out[order[k]] = (i + j) / 2
            i = j + 1
        return out

    ra, rb = ranks(a), ranks(b)
    ma, mb = statistics.fmean(ra), statistics.fmean(rb)
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb, strict=True))
    var = (sum((x - ma) ** 2 for x in ra) * sum((y - mb) ** 2 for y in rb)) ** 0.5
    return cov / var if var else float("nan")


def _one(settings: dict[str, Any]) -> dict[str, Any]:
    """A worker's job: one run folder (resumed when it exists); its results.json."""
    from trainers.session import run
    from trainers.settings.config import TrainConfig

    began = time.perf_counter()
    results = run(TrainConfig(**settings))
    return {"results": results.to_dict(), "wall": time.perf_counter() - began}


def _tasks(
    study: Any,
    out: Path,
    seeds: str,
    budget: dict[str, int],
    methods: list[str],
    targets: list[str] | None = None,
) -> list[tuple[tuple[str, ...], dict[str, Any]]]:
    """Every sweep of the study: its full sweep (the study's own folder with the study's
    seeding and budget, else a new one without baselines) and each selector."""
    tasks = []
    for unit in study.runs():
        if unit.kind != "sweep" or (targets and unit.target not in targets):
            continue
        key = (unit.model, unit.target, str(unit.seed))
        folder = out / unit.model / unit.target / f"seed{unit.seed}"
        full = {**unit.settings, **budget}
        if seeds != "own" or "epochs" in budget:
            full.update(out=str(folder / "full"), baselines=False, block_seeds=seeds)
        tasks.append(((*key, "full"), full))
        for method in methods:
            settings = {**full, "out": str(folder / method), "select": method, "baselines": False}
            tasks.append(((*key, method), {**settings, **RAY_SELECTORS.get(method, {})}))
    return tasks


def _row(full: dict[str, Any], chosen: dict[str, Any]) -> dict[str, Any]:
    """How one selector's B_opt and cost compare with the full sweep's."""
    blocks = [j for j in full["strategies"] if j["name"].startswith("block:")]
    block_seconds = sum(j["seconds"] for j in blocks)
    best = full["best_block"]
    mine = chosen["best_block"]
    selection = chosen["selection"]
    row = {
        "full_block": best["index"], "full_test": best["test_acc"], "block": mine["index"],
        "test": mine["test_acc"], "gap": 100 * (best["test_acc"] - mine["test_acc"]),
        "share": selection["epochs_run"] / selection["epochs_full_sweep"],
        "seconds": selection["seconds"], "full_seconds": block_seconds,
    }  # fmt: skip
    if selection.get("scores"):
        row["rho"] = spearman(selection["scores"], [j["val_acc"] for j in blocks])
    return row


def _table(rows: dict[tuple[str, ...], dict[str, dict[str, Any]]], methods: list[str]) -> str:
    head = ["model", "target", "seed", "full sweep B_opt (test %)"]
    for method in methods:
        head += [f"{method}: block (test %)", "gap (pt)", "epochs"]
        head += ["ρ"] if method == "gradnorm" else []
    head.append(f"seconds full / {' / '.join(methods)}")
    lines = ["| " + " | ".join(head) + " |", "|---|---|---:|---|" + "---|---:|---:|" * len(methods)]
    lines[1] += "---:|" * ("gradnorm" in methods) + "---|"
    for (model, target, seed), by in sorted(rows.items()):
        first = by[methods[0]]
        cells = [model, target, seed, f"{first['full_block']} ({100 * first['full_test']:.1f})"]
        for method in methods:
            v = by[method]
            cells += [
                f"{v['block']} ({100 * v['test']:.1f})",
                f"{v['gap']:.1f}",
                f"{v['share']:.0%}",
            ]
            cells += [f"{v['rho']:+.2f}"] if method == "gradnorm" else []
        seconds = [first["full_seconds"], *(by[m]["seconds"] for m in methods)]
        cells.append(" / ".join(f"{x:.0f}" for x in seconds))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _summary(
    rows: dict[tuple[str, ...], dict[str, dict[str, Any]]], methods: list[str], command: str
) -> str:
    def share(method: str, test: Any) -> str:
        hits = [test(by[method]) for by in rows.values()]
        return f"{sum(hits)}/{len(hits)} ({sum(hits) / len(hits):.0%})"

    lines = [f"Command: `{command}`", ""]
    for method in methods:
        values = [by[method] for by in rows.values()]
        epochs = [v["share"] for v in values]
        seconds = sum(v["seconds"] for v in values) / sum(v["full_seconds"] for v in values)
        lines.append(
            f"- **{method}**: B_opt within 1 point of the full sweep's in {share(method, lambda v: v['gap'] <= 1.0)} runs; "
            f"the same block in {share(method, lambda v: v['block'] == v['full_block'])}; "
            f"mean gap {statistics.fmean(v['gap'] for v in values):.1f} pt (max {max(v['gap'] for v in values):.1f}); "
            f"{statistics.fmean(epochs):.0%} of the full sweep's block epochs (max {max(epochs):.0%}); "
            f"{seconds:.0%} of its block seconds."
        )
    if "gradnorm" in methods:
        every = [by["gradnorm"]["rho"] for by in rows.values()]
        rhos = [r for r in every if r == r]
        lines.append(
            f"- **gradnorm ranking vs the full sweep's validation ranking**: Spearman ρ mean "
            f"{statistics.fmean(rhos):+.2f}, median {statistics.median(rhos):+.2f}, range "
            f"{min(rhos):+.2f} … {max(rhos):+.2f} over {len(rhos)} runs ({len(every) - len(rhos)} "
            "without a ranking: every block at the same validation accuracy)."
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/study-imagenet.toml")
    parser.add_argument("--out", default="runs/selection")
    parser.add_argument("--docs", default="docs/selection.md")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--selectors", default="halving,gradnorm", help="comma-separated")
    parser.add_argument("--targets", help="comma-separated [all of the study's]")
    parser.add_argument("--epochs", type=int, help="the full budget [the study's]")
    parser.add_argument("--min-epochs", type=int, help="halving's first rung [1]")
    parser.add_argument(
        "--block-seeds", choices=("own", "shared"), default="own",
        help="the block jobs' seeding (shared: common random numbers; new full sweeps)",
    )  # fmt: skip
    args = parser.parse_args()
    from trainers.study import load_study
    from trainers.study.runner import Study, parallel

    study = Study(load_study(args.config))
    study.make_data()
    study.make_partitions()
    found: dict[tuple[str, ...], dict[str, Any]] = {}
    began = time.perf_counter()
    budget = {k: v for k, v in (("epochs", args.epochs), ("min_epochs", args.min_epochs)) if v}
    methods = [m for m in args.selectors.split(",") if m]
    targets = args.targets.split(",") if args.targets else None
    tasks = _tasks(study, Path(args.out), args.block_seeds, budget, methods, targets)
    for key, record in parallel(_one, tasks, args.workers):
        found[key] = record
        print(f"{'/'.join(key)}: {record['wall']:.0f} s", flush=True)
    rows: dict[tuple[str, ...], dict[str, dict[str, Any]]] = {}
    for (model, target, seed, method), record in found.items():
        if method != "full":
            full = found[(model, target, seed, "full")]["results"]
            rows.setdefault((model, target, seed), {})[method] = _row(full, record["results"])
    command = f"python bench/selection.py --config {args.config}"
    if args.selectors != "halving,gradnorm":
        command += f" --selectors {args.selectors} --workers {args.workers}"
    command += f" --targets {args.targets}" if args.targets else ""
    for flag, value in (("--epochs", args.epochs), ("--min-epochs", args.min_epochs)):
        command += f" {flag} {value}" if value else ""
    if args.block_seeds != "own":
        command += f" --block-seeds {args.block_seeds}"
    if args.out != "runs/selection":
        command += f" --out {args.out}"
    body = f"{_summary(rows, methods, command)}\n\n{_table(rows, methods)}\n\nWall time of the benchmark: {time.perf_counter() - began:.0f} s with {args.workers} workers."
    docs = ROOT / args.docs
    if not docs.exists():
        docs.write_text("# B_opt without a full sweep\n")
    name = f"selection-{Path(args.config).stem}-{args.block_seeds}-seeds"
    name += f"-{args.epochs}-epochs" if args.epochs else ""
    name += f"-{'-'.join(methods)}" if args.selectors != "halving,gradnorm" else ""
    name += f"-{args.targets.replace(',', '-')}" if args.targets else ""
    replace_between(docs, name, body)
    docs.with_name(f"{name}.json").write_text(
        json.dumps({"/".join(k): v for k, v in rows.items()}, indent=1) + "\n"
    )
    print(f"wrote {docs}")


if __name__ == "__main__":
    main()
